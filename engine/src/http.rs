//! Small HTTP helpers: query strings, JSON replies, streamed bodies in both directions.

use std::collections::HashMap;
use std::convert::Infallible;
use std::io;

use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::{combinators::BoxBody, BodyExt, BodyStream, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Response, StatusCode};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::io::{StreamReader, SyncIoBridge};

use crate::error::ApiError;

pub type Body = BoxBody<Bytes, Infallible>;
pub type Reply = Response<Body>;

/// Parsed query parameters; repeated keys keep every value.
#[derive(Debug, Default)]
pub struct Query(HashMap<String, Vec<String>>);

impl Query {
    pub fn parse(q: Option<&str>) -> Self {
        let mut m: HashMap<String, Vec<String>> = HashMap::new();
        for (k, v) in form_urlencoded::parse(q.unwrap_or("").as_bytes()) {
            m.entry(k.into_owned()).or_default().push(v.into_owned());
        }
        Self(m)
    }
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).and_then(|v| v.first()).map(String::as_str)
    }
    pub fn all(&self, k: &str) -> Vec<String> {
        self.0.get(k).cloned().unwrap_or_default()
    }
    /// Docker's boolean query values: `1`, `true`, `True` (anything but `0`/`false`/empty).
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some(v) if !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
    }
    /// The `filters` parameter: `{"key": {"value": true}}` or `{"key": ["value"]}`.
    pub fn filters(&self) -> Result<HashMap<String, Vec<String>>, ApiError> {
        let Some(raw) = self.get("filters").filter(|s| !s.is_empty()) else {
            return Ok(HashMap::new());
        };
        let v: serde_json::Value = serde_json::from_str(raw)
            .map_err(|e| ApiError::bad_request(format!("invalid filter {raw:?}: {e}")))?;
        let mut out = HashMap::new();
        if let serde_json::Value::Object(m) = v {
            for (k, vals) in m {
                let list = match vals {
                    serde_json::Value::Object(o) => o
                        .into_iter()
                        .filter(|(_, b)| b.as_bool().unwrap_or(true))
                        .map(|(s, _)| s)
                        .collect(),
                    serde_json::Value::Array(a) => a
                        .into_iter()
                        .filter_map(|s| s.as_str().map(str::to_owned))
                        .collect(),
                    _ => return Err(ApiError::bad_request(format!("invalid filter {raw:?}"))),
                };
                out.insert(k, list);
            }
        }
        Ok(out)
    }
}

pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

pub fn empty() -> Body {
    full(Bytes::new())
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Reply {
    let body = serde_json::to_vec(value)
        .unwrap_or_else(|e| format!("{{\"message\":\"{e}\"}}").into_bytes());
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    r
}

pub fn error_reply(e: &ApiError) -> Reply {
    json(e.status, &serde_json::json!({ "message": e.message }))
}

pub fn status(code: StatusCode) -> Reply {
    let mut r = Response::new(empty());
    *r.status_mut() = code;
    r
}

/// The reply that hands a connection over to a raw stream (attach, exec start): Docker's
/// literal `101 UPGRADED`, which the docker CLI insists on.
pub fn upgraded() -> Reply {
    let mut r = Response::new(empty());
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    r.extensions_mut()
        .insert(hyper::ext::ReasonPhrase::from_static(b"UPGRADED"));
    let h = r.headers_mut();
    h.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/vnd.docker.raw-stream"),
    );
    h.insert("Connection", HeaderValue::from_static("Upgrade"));
    h.insert("Upgrade", HeaderValue::from_static("tcp"));
    r
}

/// The strings of a JSON array (Docker's `Cmd`, `Env`, `Binds`...); anything else is empty.
pub fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .into_iter()
        .flatten()
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect()
}

/// A whole (small) request body, such as a JSON create request.
pub async fn read_body(body: Incoming) -> Result<Bytes, ApiError> {
    Ok(body
        .collect()
        .await
        .map_err(|e| ApiError::bad_request(e.to_string()))?
        .to_bytes())
}

/// A request body as a blocking `Read`, for use inside `spawn_blocking`.
pub fn blocking_reader(body: Incoming) -> impl io::Read + Send {
    let stream = BodyStream::new(body).map(|frame| {
        frame
            .map(|f| f.into_data().unwrap_or_default())
            .map_err(io::Error::other)
    });
    Coalesce {
        inner: SyncIoBridge::new(StreamReader::new(stream)),
        pending: None,
    }
}

/// Clients send bodies in chunks as small as 4 KiB; each read of the bridge is a trip through
/// the async runtime. Fill the caller's buffer from several chunks before returning.
struct Coalesce<R> {
    inner: R,
    /// An error met after some bytes were read: returned by the next call.
    pending: Option<io::Error>,
}

impl<R: io::Read> io::Read for Coalesce<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(e) = self.pending.take() {
            return Err(e);
        }
        let want = buf.len().min(256 << 10);
        let mut n = 0;
        while n < want {
            match self.inner.read(&mut buf[n..want]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if n > 0 => {
                    self.pending = Some(e);
                    break;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }
}

/// A streamed reply fed from a blocking writer (for `save`) or from JSON progress lines.
pub fn channel_body(content_type: &'static str) -> (ChannelWriter, Reply) {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(16);
    let stream = ReceiverStream::new(rx);
    let mut r = Response::new(BodyExt::boxed(StreamBody::new(stream)));
    r.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    (ChannelWriter { tx }, r)
}

/// The sending half of a streamed reply. Writes block (call it from blocking threads).
pub struct ChannelWriter {
    tx: mpsc::Sender<Result<Frame<Bytes>, Infallible>>,
}

impl ChannelWriter {
    /// One JSON object per line, as Docker's progress streams.
    pub fn json_line<T: Serialize>(&mut self, v: &T) -> io::Result<()> {
        let mut b = serde_json::to_vec(v).map_err(io::Error::other)?;
        b.push(b'\n');
        io::Write::write_all(self, &b)
    }
}

impl ChannelWriter {
    /// `json_line` for async callers: waits for room instead of blocking the thread.
    pub async fn json_line_async<T: Serialize>(&self, v: &T) -> io::Result<()> {
        let mut b = serde_json::to_vec(v).map_err(io::Error::other)?;
        b.push(b'\n');
        self.tx
            .send(Ok(Frame::data(Bytes::from(b))))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))
    }
}

impl io::Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx
            .blocking_send(Ok(Frame::data(Bytes::copy_from_slice(buf))))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "client went away"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
