//! The Engine API client: HTTP/1.1 over the daemon's unix socket or TCP with TLS, one
//! connection per call.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{combinators::UnsyncBoxBody, BodyExt, BodyStream, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::UnixStream;

type Body = UnsyncBoxBody<Bytes, std::io::Error>;

/// A client bound to one daemon endpoint.
#[derive(Debug, Clone)]
pub struct Client {
    target: Target,
}

#[derive(Clone)]
enum Target {
    Unix(PathBuf),
    /// `host:port`, with TLS unless `--insecure-tcp` was meant.
    Tcp {
        addr: String,
        tls: Option<(
            tokio_rustls::TlsConnector,
            rustls::pki_types::ServerName<'static>,
        )>,
    },
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_string())
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Unix(p) => write!(f, "unix://{}", p.display()),
            Self::Tcp { addr, .. } => write!(f, "tcp://{addr}"),
        }
    }
}

/// A connection to the daemon, whatever carries it.
pub trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Conn for T {}

/// Where a request body comes from.
pub enum Payload {
    None,
    Json(serde_json::Value),
    /// Streamed from a file or stdin.
    Reader(Box<dyn tokio::io::AsyncRead + Send + Unpin>, &'static str),
}

impl Client {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            target: Target::Unix(socket.into()),
        }
    }

    /// A client of `tcp://addr`; `tls` (CA, client certificate and key) unless plain.
    pub fn tcp(addr: &str, tls: Option<Arc<rustls::ClientConfig>>) -> Result<Self> {
        let tls = match tls {
            None => None,
            Some(config) => {
                let host = match addr.rsplit_once(':') {
                    Some((h, _)) => h.trim_start_matches('[').trim_end_matches(']'),
                    None => addr,
                };
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .with_context(|| format!("{host:?} is not a valid TLS server name"))?;
                Some((tokio_rustls::TlsConnector::from(config), name))
            }
        };
        Ok(Self {
            target: Target::Tcp {
                addr: addr.to_owned(),
                tls,
            },
        })
    }

    pub async fn connect(path: &Path) -> std::io::Result<UnixStream> {
        UnixStream::connect(path).await
    }

    /// A new connection to the daemon.
    async fn open(&self) -> Result<Box<dyn Conn>> {
        let cannot = || format!("cannot connect to the berth daemon at {}", self.target);
        Ok(match &self.target {
            Target::Unix(p) => Box::new(Self::connect(p).await.with_context(cannot)?),
            Target::Tcp { addr, tls } => {
                let s = tokio::net::TcpStream::connect(addr.as_str())
                    .await
                    .with_context(cannot)?;
                let _ = s.set_nodelay(true);
                match tls {
                    None => Box::new(s),
                    Some((c, name)) => Box::new(
                        c.connect(name.clone(), s)
                            .await
                            .with_context(|| format!("{}: TLS handshake", cannot()))?,
                    ),
                }
            }
        })
    }

    /// Send a request; the path is relative to the API version (`/images/json`).
    pub async fn request(
        &self,
        method: Method,
        path: &str,
        payload: Payload,
    ) -> Result<Response<Incoming>> {
        self.request_with(method, path, payload, &[]).await
    }

    /// `request` with extra headers (`X-Registry-Auth`).
    pub async fn request_with(
        &self,
        method: Method,
        path: &str,
        payload: Payload,
        headers: &[(&str, String)],
    ) -> Result<Response<Incoming>> {
        let stream = self.open().await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let uri = format!("/v{}{path}", engine::version::API_VERSION);
        let mut builder = Request::builder()
            .method(method)
            .uri(uri)
            .header("Host", "berth");
        for (k, v) in headers {
            builder = builder.header(*k, v);
        }
        let req = match payload {
            Payload::None => builder.body(Empty::new().map_err(|e| match e {}).boxed_unsync())?,
            Payload::Json(v) => builder.header("Content-Type", "application/json").body(
                Full::new(Bytes::from(serde_json::to_vec(&v)?))
                    .map_err(|e| match e {})
                    .boxed_unsync(),
            )?,
            Payload::Reader(r, ct) => {
                let stream = tokio_util::io::ReaderStream::with_capacity(r, 256 << 10)
                    .map(|r| r.map(Frame::data));
                let body: Body = BodyExt::boxed_unsync(StreamBody::new(stream));
                builder.header("Content-Type", ct).body(body)?
            }
        };
        Ok(sender.send_request(req).await?)
    }

    /// `POST` with `Upgrade: tcp`: the daemon answers 101 and the connection becomes a raw
    /// stream (attach, exec start).
    pub async fn hijack(&self, path: &str) -> Result<TokioIo<hyper::upgrade::Upgraded>> {
        self.hijack_with(path, None).await
    }

    /// `hijack` with a JSON body (exec start's `{"Tty": ...}`, which says raw or framed).
    pub async fn hijack_with(
        &self,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> Result<TokioIo<hyper::upgrade::Upgraded>> {
        let stream = self.open().await?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, Body>(TokioIo::new(stream)).await?;
        tokio::spawn(async move {
            let _ = conn.with_upgrades().await;
        });
        let uri = format!("/v{}{path}", engine::version::API_VERSION);
        let req = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header("Host", "berth")
            .header("Connection", "Upgrade")
            .header("Upgrade", "tcp")
            .header(
                "Content-Type",
                if body.is_some() {
                    "application/json"
                } else {
                    "text/plain"
                },
            )
            .body(match body {
                Some(v) => Full::new(Bytes::from(serde_json::to_vec(&v)?))
                    .map_err(|e| match e {})
                    .boxed_unsync(),
                None => Empty::new().map_err(|e| match e {}).boxed_unsync(),
            })?;
        let resp = sender.send_request(req).await?;
        if resp.status() != StatusCode::SWITCHING_PROTOCOLS {
            let resp = Self::ok(resp).await?;
            bail!(
                "unable to upgrade to tcp, received {}",
                resp.status().as_u16()
            );
        }
        Ok(TokioIo::new(hyper::upgrade::on(resp).await?))
    }

    /// A request whose reply is JSON; non-2xx replies become errors with Docker's message.
    pub async fn json(
        &self,
        method: Method,
        path: &str,
        payload: Payload,
    ) -> Result<serde_json::Value> {
        let resp = self.request(method, path, payload).await?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        // 304: already in the asked state (start a running container, stop a stopped one);
        // the docker CLI takes that as done
        if !status.is_success() && status != StatusCode::NOT_MODIFIED {
            bail!("{}", error_message(status, &bytes));
        }
        if bytes.is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_slice(&bytes).context("daemon sent invalid JSON")
    }

    /// Check the status of a reply, turning errors into messages.
    pub async fn ok(resp: Response<Incoming>) -> Result<Response<Incoming>> {
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let bytes = resp.into_body().collect().await?.to_bytes();
        bail!("{}", error_message(status, &bytes))
    }
}

fn error_message(status: StatusCode, body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
        .unwrap_or_else(|| {
            format!(
                "daemon answered {status}: {}",
                String::from_utf8_lossy(body).trim()
            )
        })
}

/// Print a JSON progress stream (`stream`, `status`, `error` lines); fail on an error line.
pub async fn print_json_stream(
    resp: Response<Incoming>,
    mut on_line: impl FnMut(&serde_json::Value),
) -> Result<()> {
    let resp = Client::ok(resp).await?;
    let mut body = BodyStream::new(resp.into_body());
    let mut buf = Vec::new();
    let mut handle = |line: &[u8]| -> Result<()> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let v: serde_json::Value =
            serde_json::from_slice(line).context("daemon sent an invalid progress line")?;
        if let Some(e) = v.get("error").and_then(|e| e.as_str()) {
            bail!("{e}");
        }
        on_line(&v);
        Ok(())
    };
    while let Some(frame) = body.next().await {
        if let Ok(data) = frame?.into_data() {
            buf.extend_from_slice(&data);
            while let Some(i) = buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = buf.drain(..=i).collect();
                handle(&line)?;
            }
        }
    }
    handle(&buf)
}
