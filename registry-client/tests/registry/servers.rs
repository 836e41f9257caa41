//! Small HTTP servers the tests run on 127.0.0.1: a token issuer for distribution's token auth
//! (JWTs signed with openssl, RS256, certificate in `x5c`) and a fault-injecting proxy in front
//! of a registry. Both stop when dropped.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{combinators::BoxBody, BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::harness::{run, ISSUER};

pub type Body = BoxBody<Bytes, std::io::Error>;

pub fn full(b: impl Into<Bytes>) -> Body {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

pub async fn serve<F, Fut>(bind: &str, handler: F) -> (SocketAddr, JoinHandle<()>)
where
    F: Fn(Request<Incoming>) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Response<Body>> + Send + 'static,
{
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let h = handler.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let h = h.clone();
                    async move { Ok::<_, Infallible>(h(req).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    (addr, task)
}

/// A token issuer: users by name and password; anonymous callers may only pull `public/*`.
pub struct TokenServer {
    pub realm: String,
    pub signing_cert: PathBuf,
    pub requests: Arc<AtomicUsize>,
    pub scopes: Arc<Mutex<Vec<Vec<String>>>>,
    task: JoinHandle<()>,
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

struct Issuer {
    key: PathBuf,
    x5c: String,
    users: Vec<(String, String)>,
    requests: Arc<AtomicUsize>,
    scopes: Arc<Mutex<Vec<Vec<String>>>>,
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

impl Issuer {
    fn sign(&self, claims: &serde_json::Value) -> String {
        let header = json!({"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]});
        let input = format!(
            "{}.{}",
            b64url(&serde_json::to_vec(&header).unwrap()),
            b64url(&serde_json::to_vec(claims).unwrap())
        );
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("input");
        std::fs::write(&f, &input).unwrap();
        let out = run(
            "openssl",
            &[
                "dgst",
                "-sha256",
                "-sign",
                self.key.to_str().unwrap(),
                f.to_str().unwrap(),
            ],
        );
        format!("{input}.{}", b64url(&out.stdout))
    }

    fn handle(&self, req: &Request<Incoming>) -> Response<Body> {
        self.requests.fetch_add(1, Ordering::SeqCst);
        let query = req.uri().query().unwrap_or("");
        let mut service = String::new();
        let mut scopes = Vec::new();
        for (k, v) in form_pairs(query) {
            match k.as_str() {
                "service" => service = v,
                "scope" => scopes.push(v),
                _ => {}
            }
        }
        self.scopes.lock().unwrap().push(scopes.clone());
        let user = match req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
        {
            None => None,
            Some(h) => {
                let raw = h
                    .strip_prefix("Basic ")
                    .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
                    .and_then(|b| String::from_utf8(b).ok())
                    .unwrap_or_default();
                let ok = self.users.iter().any(|(u, p)| raw == format!("{u}:{p}"));
                if !ok {
                    return Response::builder()
                        .status(StatusCode::UNAUTHORIZED)
                        .body(full(r#"{"details":"incorrect username or password"}"#))
                        .unwrap();
                }
                raw.split(':').next().map(str::to_owned)
            }
        };
        let mut access = Vec::new();
        for s in &scopes {
            let mut parts = s.splitn(3, ':');
            let (Some(typ), Some(name), Some(actions)) = (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            let granted: Vec<&str> = actions
                .split(',')
                .filter(|a| user.is_some() || (*a == "pull" && name.starts_with("public/")))
                .collect();
            if !granted.is_empty() {
                access.push(json!({"type": typ, "name": name, "actions": granted}));
            }
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let claims = json!({
            "iss": ISSUER, "sub": user.clone().unwrap_or_default(), "aud": service,
            "exp": now + 300, "nbf": now - 10, "iat": now,
            "jti": format!("{now}-{}", self.requests.load(Ordering::SeqCst)),
            "access": access,
        });
        let token = self.sign(&claims);
        Response::new(full(
            serde_json::to_vec(&json!({"token": token, "expires_in": 300})).unwrap(),
        ))
    }
}

fn form_pairs(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            (
                k.to_owned(),
                percent_encoding::percent_decode_str(&v.replace('+', " "))
                    .decode_utf8_lossy()
                    .into_owned(),
            )
        })
        .collect()
}

impl TokenServer {
    pub async fn start(dir: &Path, users: &[(&str, &str)]) -> Self {
        let key = dir.join("sign.key");
        let cert = dir.join("sign.crt");
        run(
            "openssl",
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=berth token signer",
                "-keyout",
                key.to_str().unwrap(),
                "-out",
                cert.to_str().unwrap(),
            ],
        );
        let der = run(
            "openssl",
            &["x509", "-in", cert.to_str().unwrap(), "-outform", "DER"],
        )
        .stdout;
        let requests = Arc::new(AtomicUsize::new(0));
        let scopes = Arc::new(Mutex::new(Vec::new()));
        let issuer = Arc::new(Issuer {
            key,
            x5c: base64::engine::general_purpose::STANDARD.encode(der),
            users: users
                .iter()
                .map(|(u, p)| (u.to_string(), p.to_string()))
                .collect(),
            requests: requests.clone(),
            scopes: scopes.clone(),
        });
        let (addr, task) = serve("127.0.0.1:0", move |req| {
            let issuer = issuer.clone();
            async move {
                tokio::task::spawn_blocking(move || issuer.handle(&req))
                    .await
                    .unwrap()
            }
        })
        .await;
        TokenServer {
            realm: format!("http://{addr}/token"),
            signing_cert: cert,
            requests,
            scopes,
            task,
        }
    }
}

/// What the proxy does to blob GETs.
#[derive(Clone, Copy, Debug)]
pub enum Fault {
    /// Close the connection after this many body bytes, this many times.
    DropAfter { bytes: usize, times: usize },
    /// Answer 500, this many times.
    ServerError { times: usize },
    /// Flip one byte of every blob body.
    Corrupt,
}

/// A proxy in front of a registry that injects `fault` into blob GETs and records the
/// `Range` headers it saw.
pub struct FaultProxy {
    pub host: String,
    pub ranges: Arc<Mutex<Vec<Option<String>>>>,
    task: JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FaultProxy {
    pub async fn start(upstream: &str, fault: Fault) -> Self {
        let upstream = upstream.to_owned();
        let ranges = Arc::new(Mutex::new(Vec::new()));
        let budget = Arc::new(AtomicUsize::new(match fault {
            Fault::DropAfter { times, .. } | Fault::ServerError { times } => times,
            Fault::Corrupt => usize::MAX,
        }));
        let client =
            hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                .build_http::<Incoming>();
        let seen = ranges.clone();
        let (addr, task) = serve("127.0.0.1:0", move |req: Request<Incoming>| {
            let (upstream, client, seen, budget) = (
                upstream.clone(),
                client.clone(),
                seen.clone(),
                budget.clone(),
            );
            async move {
                let is_blob_get = req.method() == hyper::Method::GET
                    && req.uri().path().contains("/blobs/sha256:");
                if is_blob_get {
                    seen.lock().unwrap().push(
                        req.headers()
                            .get("range")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned),
                    );
                }
                let take = || {
                    budget
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                        .is_ok()
                };
                if is_blob_get && matches!(fault, Fault::ServerError { .. }) && take() {
                    return Response::builder()
                        .status(500)
                        .body(full("injected failure"))
                        .unwrap();
                }
                // Keep the Host header: the registry builds Location URLs from it.
                let (mut parts, body) = req.into_parts();
                let pq = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/")
                    .to_owned();
                parts.uri = format!("http://{upstream}{pq}").parse().unwrap();
                let resp = match client.request(Request::from_parts(parts, body)).await {
                    Ok(r) => r,
                    Err(e) => {
                        return Response::builder()
                            .status(502)
                            .body(full(e.to_string()))
                            .unwrap()
                    }
                };
                let ok = resp.status().is_success();
                let (parts, body) = resp.into_parts();
                let stream = body.into_data_stream();
                let body: Body = match fault {
                    Fault::DropAfter { bytes, .. } if is_blob_get && ok && take() => {
                        let mut left = bytes;
                        let s = stream.map(move |chunk| {
                            let mut c = chunk.map_err(std::io::Error::other)?;
                            if left == 0 {
                                return Err(std::io::Error::other("injected connection drop"));
                            }
                            if c.len() > left {
                                c.truncate(left);
                            }
                            left -= c.len();
                            Ok(Frame::data(c))
                        });
                        BodyExt::boxed(StreamBody::new(s))
                    }
                    Fault::Corrupt if is_blob_get && ok => {
                        let mut first = true;
                        let s = stream.map(move |chunk| {
                            let c = chunk.map_err(std::io::Error::other)?;
                            if first && !c.is_empty() {
                                first = false;
                                let mut v = c.to_vec();
                                v[0] ^= 0xff;
                                return Ok(Frame::data(Bytes::from(v)));
                            }
                            Ok(Frame::data(c))
                        });
                        BodyExt::boxed(StreamBody::new(s))
                    }
                    _ => BodyExt::boxed(StreamBody::new(
                        stream.map(|c| c.map(Frame::data).map_err(std::io::Error::other)),
                    )),
                };
                Response::from_parts(parts, body)
            }
        })
        .await;
        FaultProxy {
            host: addr.to_string(),
            ranges,
            task,
        }
    }
}
