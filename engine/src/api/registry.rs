//! `/images/create?fromImage=` (pull), `/images/{name}/push`, `/auth`, `/images/search`.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::StatusCode;
use image_store::Reference;
use registry_client::Platform;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::daemon::Daemon;
use crate::error::ApiError;
use crate::http::{channel_body, json as reply_json, read_body, ChannelWriter, Query, Reply};
use crate::registry::{self, AuthConfig, Lines};

/// Forward progress lines to the reply until every sender is gone.
async fn forward(mut rx: mpsc::UnboundedReceiver<Value>, w: ChannelWriter) {
    while let Some(v) = rx.recv().await {
        if w.json_line_async(&v).await.is_err() {
            // The client went away; the transfer still finishes (like dockerd), unheard.
            while rx.recv().await.is_some() {}
            return;
        }
    }
}

/// A streamed JSON reply and the lines that feed it.
pub(crate) fn progress_reply() -> (Lines, Reply) {
    let (w, reply) = channel_body("application/json");
    let (tx, rx) = mpsc::unbounded_channel();
    tokio::spawn(forward(rx, w));
    (Lines(tx), reply)
}

/// `POST /images/create?fromImage=NAME&tag=TAG[&platform=os/arch]`.
pub async fn pull(d: Arc<Daemon>, q: &Query, auth: &str) -> Result<Reply, ApiError> {
    let r = registry::pull_reference(q.get("fromImage").unwrap_or(""), q.get("tag").unwrap_or(""))?;
    let platform = match q.get("platform").filter(|p| !p.is_empty()) {
        Some(p) => Platform::parse(p)?,
        None => Platform::host(),
    };
    let auth = AuthConfig::from_header(auth)?;
    let client = registry::client_for(&d.registry, r.domain(), &auth);
    // Resolving first makes "not found" or "unauthorized" a plain HTTP error, as dockerd's.
    let plan = registry::plan(&client, &d.store, &r, &platform).await?;
    let (lines, reply) = progress_reply();
    tokio::spawn(async move {
        match registry::pull(&client, &d.store, &r, plan, &lines).await {
            Ok(p) => {
                d.events
                    .emit("image", "pull", &r.familiar(), &[("name", &r.familiar())]);
                lines.status(format!("Digest: {}", p.digest));
                lines.status(if p.up_to_date {
                    format!("Status: Image is up to date for {}", r.familiar())
                } else {
                    format!("Status: Downloaded newer image for {}", r.familiar())
                });
            }
            Err(e) => lines.error(&e.message),
        }
    });
    Ok(reply)
}

/// `POST /images/{name}/push?tag=TAG`: one tag, or every local tag of the repository.
pub async fn push(d: Arc<Daemon>, name: &str, q: &Query, auth: &str) -> Result<Reply, ApiError> {
    let named = Reference::parse_named(name)?;
    let tag = q.get("tag").filter(|t| !t.is_empty());
    let mut targets = Vec::new();
    match (tag, named.tag()) {
        (Some(t), _) => targets.push(named.with_tag(t)?),
        (None, Some(_)) => targets.push(named.clone()),
        (None, None) => {
            for rec in d.store.list() {
                for r in &rec.refs {
                    if r.repository() == named.repository() && r.tag().is_some() {
                        targets.push(r.clone());
                    }
                }
            }
            targets.sort_by_key(|r| r.to_string());
        }
    }
    if targets.is_empty() {
        return Err(ApiError::not_found(format!(
            "An image does not exist locally with the tag: {}",
            named.familiar_repository()
        )));
    }
    for t in &targets {
        d.store.resolve(&t.to_string()).map_err(|_| {
            ApiError::not_found(format!(
                "An image does not exist locally with the tag: {}",
                t.familiar()
            ))
        })?;
    }
    let auth = AuthConfig::from_header(auth)?;
    let client = registry::client_for(&d.registry, named.domain(), &auth);
    let (lines, reply) = progress_reply();
    tokio::spawn(async move {
        lines.status(format!(
            "The push refers to repository [{}]",
            named.repository()
        ));
        for t in &targets {
            if let Err(e) = registry::push(&client, &d.store, t, &lines).await {
                lines.error(&e.message);
                return;
            }
            d.events
                .emit("image", "push", &t.familiar(), &[("name", &t.familiar())]);
        }
    });
    Ok(reply)
}

/// `POST /auth`: check credentials against a registry; nothing is stored by the daemon.
pub async fn auth(d: &Daemon, body: Incoming) -> Result<Reply, ApiError> {
    let bytes = read_body(body).await?;
    let a: AuthConfig = serde_json::from_slice(&bytes)?;
    let registry = registry::registry_host(&a.serveraddress);
    let creds = a
        .credentials()
        .ok_or_else(|| ApiError::bad_request("a username and password are required to log in"))?;
    d.registry.scoped().login(&registry, creds).await?;
    Ok(reply_json(
        StatusCode::OK,
        &json!({ "Status": "Login Succeeded", "IdentityToken": "" }),
    ))
}

/// `GET /images/search?term=&limit=&filters=`.
pub async fn search(d: &Daemon, q: &Query, auth: &str) -> Result<Reply, ApiError> {
    let term = q.get("term").unwrap_or("");
    if term.is_empty() {
        return Err(ApiError::bad_request("a search term is required"));
    }
    let limit = match q.get("limit").filter(|l| !l.is_empty()) {
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=100).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!("invalid limit {l:?}: must be 1 to 100"))
            })?,
        None => 25,
    };
    let filters = q.filters()?;
    let (registry_name, term) = registry::search_target(term);
    let auth = AuthConfig::from_header(auth)?;
    let client = registry::client_for(&d.registry, &registry_name, &auth);
    let found = client.search(&registry_name, &term, limit).await?;
    let mut out = Vec::new();
    for r in found {
        let mut keep = true;
        for (k, vals) in &filters {
            for v in vals {
                keep &= match k.as_str() {
                    "is-official" => (v == "true") == r.is_official,
                    "is-automated" => (v == "true") == r.is_automated,
                    "stars" => {
                        v.parse::<u64>().map_err(|_| {
                            ApiError::bad_request(format!("invalid filter 'stars={v}'"))
                        })? <= r.star_count
                    }
                    other => {
                        return Err(ApiError::bad_request(format!("invalid filter '{other}'")))
                    }
                };
            }
        }
        if keep {
            out.push(r);
        }
    }
    Ok(reply_json(StatusCode::OK, &out))
}
