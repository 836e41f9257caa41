//! The Engine API router: version prefix handling, Docker's common headers, dispatch.

pub mod archive;
mod build;
pub mod containers;
pub mod exec;
pub(crate) mod images;
mod networks;
mod registry;
mod stats;
mod system;
pub(crate) mod update;
pub(crate) mod volumes;

use std::convert::Infallible;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::{Method, Request, StatusCode};

use crate::daemon::Daemon;
use crate::error::ApiError;
use crate::http::{error_reply, Query, Reply};
use crate::version::{self, API_VERSION, MIN_API_VERSION};

/// Split `/v1.41/images/json` into (`Some("1.41")`, `/images/json`).
fn split_version(path: &str) -> (Option<&str>, &str) {
    if let Some(rest) = path.strip_prefix("/v") {
        if let Some(i) = rest.find('/') {
            let v = &rest[..i];
            if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
                return (Some(v), &rest[i..]);
            }
        }
    }
    (None, path)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Serve one request. Never fails at the HTTP level: errors become Docker's JSON errors.
pub async fn handle(daemon: Arc<Daemon>, req: Request<Incoming>) -> Result<Reply, Infallible> {
    let (version, path) = {
        let (v, p) = split_version(req.uri().path());
        (v.map(str::to_owned), percent_decode(p))
    };
    let mut reply = match check_version(version.as_deref()) {
        Err(e) => error_reply(&e),
        Ok(()) => match route(daemon, req, &path).await {
            Ok(r) => r,
            Err(e) => error_reply(&e),
        },
    };
    let h = reply.headers_mut();
    h.insert("Api-Version", HeaderValue::from_static(API_VERSION));
    h.insert("Ostype", HeaderValue::from_static("linux"));
    h.insert("Docker-Experimental", HeaderValue::from_static("false"));
    if let Ok(v) = HeaderValue::from_str(&format!("berth/{} (linux)", version::VERSION)) {
        h.insert("Server", v);
    }
    Ok(reply)
}

fn check_version(v: Option<&str>) -> Result<(), ApiError> {
    let Some(v) = v else { return Ok(()) };
    if version::cmp(v, API_VERSION).is_gt() {
        return Err(ApiError::bad_request(format!(
            "client version {v} is too new. Maximum supported API version is {API_VERSION}"
        )));
    }
    if version::cmp(v, MIN_API_VERSION).is_lt() {
        return Err(ApiError::bad_request(format!(
            "client version {v} is too old. Minimum supported API version is {MIN_API_VERSION}, please upgrade your client to a newer version"
        )));
    }
    Ok(())
}

async fn route(d: Arc<Daemon>, req: Request<Incoming>, path: &str) -> Result<Reply, ApiError> {
    let q = Query::parse(req.uri().query());
    let m = req.method().clone();
    let registry_auth = req
        .headers()
        .get("x-registry-auth")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let not_found = || ApiError::not_found(format!("page not found: {} {path}", req.method()));
    match (&m, path) {
        (&Method::GET | &Method::HEAD, "/_ping") => Ok(system::ping(&m)),
        (&Method::GET, "/version") => Ok(system::version()),
        (&Method::GET, "/info") => system::info(&d).await,
        (&Method::GET, "/system/df") => system::df(&d).await,
        (&Method::GET, "/events") => system::events(&d, &q).await,
        (&Method::POST, "/berth/check") => system::check(&d).await,
        (&Method::GET, "/images/json") => images::list(&d, &q).await,
        (&Method::POST, "/images/load") => images::load(d, &q, req.into_body()).await,
        (&Method::GET, "/images/get") => images::save(d, q.all("names")).await,
        (&Method::POST, "/images/create") if q.get("fromImage").is_some() => {
            registry::pull(d, &q, &registry_auth).await
        }
        (&Method::POST, "/images/create") => images::create(d, &q, req.into_body()).await,
        (&Method::GET, "/images/search") => registry::search(&d, &q, &registry_auth).await,
        (&Method::POST, "/auth") => registry::auth(&d, req.into_body()).await,
        (&Method::POST, "/images/prune") => images::prune(&d, &q).await,
        (&Method::POST, "/build") => {
            let config = req
                .headers()
                .get("x-registry-config")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .to_owned();
            build::build(d, &q, &config, req.into_body()).await
        }
        (&Method::POST, "/build/prune") => build::prune(&d).await,
        (&Method::POST, "/commit") => build::commit(&d, &q, req.into_body()).await,
        (&Method::POST, "/containers/create") => containers::create(&d, &q, req.into_body()).await,
        (&Method::GET, "/containers/json") => containers::list(&d, &q).await,
        (&Method::POST, "/containers/prune") => containers::prune(&d).await,
        (&Method::GET, "/networks") => networks::list(&d, &q).await,
        (&Method::POST, "/networks/create") => networks::create(&d, req.into_body()).await,
        (&Method::POST, "/networks/prune") => networks::prune(&d).await,
        (&Method::GET, "/volumes") => volumes::list(&d, &q).await,
        (&Method::POST, "/volumes/create") => volumes::create(&d, req.into_body()).await,
        (&Method::POST, "/volumes/prune") => volumes::prune(&d, &q).await,
        _ => {
            if let Some(rest) = path.strip_prefix("/images/") {
                let (name, op) = match rest.rsplit_once('/') {
                    Some((n, op)) if !n.is_empty() => (n, op),
                    _ => (rest, ""),
                };
                return match (&m, op) {
                    (&Method::GET, "json") => images::inspect(&d, name).await,
                    (&Method::POST, "tag") => images::tag(&d, name, &q).await,
                    (&Method::GET, "get") => images::save(d, vec![name.to_owned()]).await,
                    (&Method::GET, "history") => images::history(&d, name).await,
                    (&Method::POST, "push") => registry::push(d, name, &q, &registry_auth).await,
                    (&Method::DELETE, _) => images::remove(&d, rest, &q).await,
                    _ => Err(not_found()),
                };
            }
            if let Some(name) = path.strip_prefix("/networks/") {
                if let Some(name) = name.strip_suffix("/connect") {
                    if m == Method::POST {
                        return networks::connect(&d, name, req.into_body()).await;
                    }
                }
                if let Some(name) = name.strip_suffix("/disconnect") {
                    if m == Method::POST {
                        return networks::disconnect(&d, name, req.into_body()).await;
                    }
                }
                return match m {
                    Method::GET => networks::inspect(&d, name).await,
                    Method::DELETE => networks::remove(&d, name).await,
                    _ => Err(not_found()),
                };
            }
            if let Some(name) = path.strip_prefix("/volumes/") {
                return match m {
                    Method::GET => volumes::inspect(&d, name).await,
                    Method::DELETE => volumes::remove(&d, name, &q).await,
                    _ => Err(not_found()),
                };
            }
            if let Some(rest) = path.strip_prefix("/containers/") {
                if m == Method::DELETE && q.flag("link") {
                    return containers::remove_link(&d, rest).await;
                }
                let (name, op) = rest.split_once('/').unwrap_or((rest, ""));
                return match (&m, op) {
                    (&Method::GET, "json") => containers::inspect(&d, name).await,
                    (&Method::POST, "start") => containers::start(&d, name).await,
                    (&Method::POST, "stop") => containers::stop(&d, name, &q).await,
                    (&Method::POST, "restart") => containers::restart(&d, name, &q).await,
                    (&Method::POST, "kill") => containers::kill(&d, name, &q).await,
                    (&Method::POST, "pause") => containers::pause(&d, name, true).await,
                    (&Method::POST, "rename") => containers::rename(&d, name, &q).await,
                    (&Method::POST, "update") => update::update(&d, name, req.into_body()).await,
                    (&Method::GET, "changes") => containers::changes(&d, name).await,
                    (&Method::GET, "top") => containers::top(&d, name, &q).await,
                    (&Method::GET, "stats") => stats::stats(&d, name, &q).await,
                    (&Method::POST, "unpause") => containers::pause(&d, name, false).await,
                    (&Method::POST, "resize") => containers::resize(&d, name, &q).await,
                    (&Method::POST, "wait") => containers::wait(&d, name, &q).await,
                    (&Method::GET, "logs") => containers::logs(&d, name, &q).await,
                    (&Method::POST, "attach") => {
                        let name = name.to_owned();
                        containers::attach(&d, &name, &q, req).await
                    }
                    (&Method::DELETE, "") => containers::remove(&d, name, &q).await,
                    (&Method::POST, "exec") => exec::create(&d, name, req.into_body()).await,
                    (&Method::HEAD, "archive") => archive::stat(&d, name, &q).await,
                    (&Method::GET, "archive") => archive::get(&d, name, &q).await,
                    (&Method::PUT, "archive") => archive::put(&d, name, &q, req.into_body()).await,
                    _ => Err(not_found()),
                };
            }
            if let Some(rest) = path.strip_prefix("/exec/") {
                let (id, op) = rest.split_once('/').unwrap_or((rest, ""));
                let id = id.to_owned();
                return match (&m, op) {
                    (&Method::POST, "start") => exec::start(&d, &id, req).await,
                    (&Method::GET, "json") => exec::inspect(&d, &id).await,
                    (&Method::POST, "resize") => exec::resize(&d, &id, &q).await,
                    _ => Err(not_found()),
                };
            }
            if m == Method::OPTIONS {
                return Ok(crate::http::status(StatusCode::OK));
            }
            Err(not_found())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_prefix() {
        assert_eq!(
            split_version("/v1.41/images/json"),
            (Some("1.41"), "/images/json")
        );
        assert_eq!(split_version("/images/json"), (None, "/images/json"));
        assert_eq!(split_version("/version"), (None, "/version"));
        assert!(check_version(Some("1.41")).is_ok());
        assert!(check_version(Some("1.24")).is_ok());
        let e = check_version(Some("1.50")).unwrap_err();
        assert_eq!(
            e.message,
            "client version 1.50 is too new. Maximum supported API version is 1.41"
        );
        assert!(check_version(Some("1.12"))
            .unwrap_err()
            .message
            .contains("too old"));
        assert_eq!(percent_decode("127.0.0.1%3A5000%2Fa"), "127.0.0.1:5000/a");
        assert_eq!(percent_decode("é%zz%"), "é%zz%");
    }
}
