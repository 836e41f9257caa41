//! HTTP plumbing: one pooled hyper client per `host[:port]` (each with that host's TLS trust),
//! the rule for when plain HTTP is allowed, request bodies, and URL helpers. Knows nothing of
//! auth or the distribution API.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, Uri};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::TokioExecutor;

use crate::error::{RegistryError, Result};
use crate::tls;

pub(crate) type Body = UnsyncBoxBody<Bytes, io::Error>;
type Pooled = HyperClient<HttpsConnector<HttpConnector>, Body>;

/// Whether plain HTTP may be used for `host_port`: loopback addresses and `localhost` always
/// (as Docker treats 127.0.0.0/8), other names only when listed as insecure.
pub fn http_allowed(host_port: &str, insecure: &[String]) -> bool {
    if insecure.iter().any(|i| i == host_port) {
        return true;
    }
    let host = host_of(host_port);
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    if insecure.iter().any(|i| i == host) {
        return true;
    }
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
}

/// `host` of `host[:port]`, keeping IPv6 brackets off.
pub fn host_of(host_port: &str) -> &str {
    if host_port.parse::<IpAddr>().is_ok() {
        return host_port; // a bare IPv6 address has colons but no port
    }
    if let Some(rest) = host_port.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host_port.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|c| c.is_ascii_digit()) => h,
        _ => host_port,
    }
}

/// The body of a request, re-creatable for a second attempt (after a 401 or a redirect).
#[derive(Clone, Debug)]
pub(crate) enum BodySpec {
    Empty,
    Bytes(Bytes),
    /// `len` bytes of a file from `offset`: streamed, never held in memory.
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
}

impl BodySpec {
    pub(crate) fn len(&self) -> u64 {
        match self {
            BodySpec::Empty => 0,
            BodySpec::Bytes(b) => b.len() as u64,
            BodySpec::File { len, .. } => *len,
        }
    }

    pub(crate) async fn open(&self) -> io::Result<Body> {
        Ok(match self {
            BodySpec::Empty => Empty::new().map_err(|never| match never {}).boxed_unsync(),
            BodySpec::Bytes(b) => Full::new(b.clone())
                .map_err(|never| match never {})
                .boxed_unsync(),
            BodySpec::File { path, offset, len } => {
                use tokio::io::{AsyncReadExt, AsyncSeekExt};
                let mut f = tokio::fs::File::open(path).await?;
                f.seek(io::SeekFrom::Start(*offset)).await?;
                let reader = tokio_util::io::ReaderStream::with_capacity(f.take(*len), 256 << 10);
                use futures_util::StreamExt;
                StreamBody::new(reader.map(|r| r.map(Frame::data))).boxed_unsync()
            }
        })
    }
}

/// Connection pools, one per `host[:port]`, created on first use.
pub(crate) struct Transport {
    certs_dir: Option<PathBuf>,
    pub(crate) insecure: Vec<String>,
    pub(crate) request_timeout: Duration,
    pub(crate) user_agent: String,
    pools: Mutex<HashMap<String, Pooled>>,
}

impl Transport {
    pub(crate) fn new(
        certs_dir: Option<PathBuf>,
        insecure: Vec<String>,
        request_timeout: Duration,
        user_agent: String,
    ) -> Self {
        Self {
            certs_dir,
            insecure,
            request_timeout,
            user_agent,
            pools: Mutex::new(HashMap::new()),
        }
    }

    fn pool(&self, host_port: &str) -> Result<Pooled> {
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = pools.get(host_port) {
            return Ok(p.clone());
        }
        let tls = tls::client_config(self.certs_dir.as_deref(), host_port)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        http.set_nodelay(true);
        http.set_connect_timeout(Some(self.request_timeout));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config((*tls).clone())
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let client = HyperClient::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .build(https);
        pools.insert(host_port.to_owned(), client.clone());
        Ok(client)
    }

    /// Send one request (no redirects, no auth) and wait for the response head, bounded by the
    /// request timeout. Plain HTTP to a host that may not have it is refused here, the one place
    /// every request passes.
    pub(crate) async fn send(&self, req: Request<Body>, what: &str) -> Result<Response<Incoming>> {
        self.send_with(req, what, Some(self.request_timeout)).await
    }

    /// [`Transport::send`] with the bound on the response head chosen by the caller: `None`
    /// for uploads, whose answer comes only after the whole body went out (connecting stays
    /// bounded by the connector's timeout).
    pub(crate) async fn send_with(
        &self,
        req: Request<Body>,
        what: &str,
        head_timeout: Option<Duration>,
    ) -> Result<Response<Incoming>> {
        let uri = req.uri().clone();
        let host_port = authority(&uri);
        if uri.scheme_str() == Some("http") && !http_allowed(&host_port, &self.insecure) {
            return Err(RegistryError::InsecureRefused {
                registry: host_port,
            });
        }
        let pool = self.pool(&host_port)?;
        tracing::debug!(method = %req.method(), %uri, "registry request");
        let response = pool.request(req);
        let outcome = match head_timeout {
            Some(t) => tokio::time::timeout(t, response).await,
            None => Ok(response.await),
        };
        match outcome {
            Err(_) => Err(RegistryError::Timeout {
                host: host_port,
                what: what.to_owned(),
            }),
            Ok(Err(e)) => Err(RegistryError::Transport {
                host: host_port,
                what: what.to_owned(),
                source: Box::new(e),
            }),
            Ok(Ok(resp)) => Ok(resp),
        }
    }
}

/// `host[:port]` of a URI as written (the key for pools, certs.d and insecure checks).
pub(crate) fn authority(uri: &Uri) -> String {
    uri.authority()
        .map(|a| a.as_str().to_owned())
        .unwrap_or_default()
}

/// Whether two URIs share scheme, host and port: credentials may only follow a redirect then.
pub(crate) fn same_origin(a: &Uri, b: &Uri) -> bool {
    a.scheme_str() == b.scheme_str() && a.host() == b.host() && a.port_u16() == b.port_u16()
}

/// Resolve `location` (absolute, or a path on the same origin) against `base`.
pub(crate) fn resolve(base: &Uri, location: &str) -> std::result::Result<Uri, String> {
    if location.starts_with("http://") || location.starts_with("https://") {
        return location
            .parse()
            .map_err(|e| format!("bad location {location:?}: {e}"));
    }
    if !location.starts_with('/') {
        return Err(format!("relative location {location:?} is not supported"));
    }
    let scheme = base.scheme_str().unwrap_or("https");
    let auth = authority(base);
    format!("{scheme}://{auth}{location}")
        .parse()
        .map_err(|e| format!("bad location {location:?}: {e}"))
}

/// Append `key=value` to a URL's query, percent-encoding the value.
pub(crate) fn with_query(url: &str, key: &str, value: &str) -> String {
    let sep = if url.contains('?') { '&' } else { '?' };
    format!("{url}{sep}{key}={}", encode_query(value))
}

pub(crate) fn encode_query(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const QUERY: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    utf8_percent_encode(s, QUERY).to_string()
}

/// Read a whole (small) body, refusing more than `limit` bytes; `Ok(None)` when over the limit.
pub(crate) async fn read_body(
    body: Incoming,
    limit: usize,
    host: &str,
    what: &str,
) -> Result<Option<Bytes>> {
    let limited = http_body_util::Limited::new(body, limit);
    match limited.collect().await {
        Ok(c) => Ok(Some(c.to_bytes())),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => Ok(None),
        Err(e) => Err(RegistryError::Transport {
            host: host.to_owned(),
            what: what.to_owned(),
            source: e,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_for_loopback_or_listed() {
        let none: Vec<String> = vec![];
        for ok in [
            "127.0.0.1:5000",
            "127.3.4.5",
            "localhost:5000",
            "[::1]:5000",
            "::1",
        ] {
            assert!(http_allowed(ok, &none), "{ok}");
        }
        for no in [
            "registry.example:5000",
            "10.0.0.1:5000",
            "localhost.example",
            "docker.io",
        ] {
            assert!(!http_allowed(no, &none), "{no}");
        }
        let list = vec!["registry.example:5000".to_owned(), "lab.example".to_owned()];
        assert!(http_allowed("registry.example:5000", &list));
        assert!(!http_allowed("registry.example:6000", &list));
        assert!(http_allowed("lab.example:7000", &list));
    }

    #[test]
    fn origin_and_resolution() {
        let a: Uri = "https://r.example/v2/x".parse().unwrap();
        let b: Uri = "https://cdn.example/blob".parse().unwrap();
        let c: Uri = "http://r.example/v2/y".parse().unwrap();
        assert!(!same_origin(&a, &b));
        assert!(!same_origin(&a, &c));
        assert!(same_origin(&a, &"https://r.example/other".parse().unwrap()));
        assert_eq!(
            resolve(&a, "/v2/n/blobs/uploads/u?_state=x")
                .unwrap()
                .to_string(),
            "https://r.example/v2/n/blobs/uploads/u?_state=x"
        );
        assert_eq!(
            with_query("http://h/v2/u?_state=a", "digest", "sha256:ab"),
            "http://h/v2/u?_state=a&digest=sha256%3Aab"
        );
        assert_eq!(host_of("[::1]:5000"), "::1");
        assert_eq!(host_of("h:5000"), "h");
    }
}
