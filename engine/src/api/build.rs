//! `POST /build` (the classic builder's tar-in, JSON-lines-out protocol) and `POST /commit`.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::StatusCode;
use image_store::Reference;
use serde_json::{json, Value};

use crate::build::{self, commit::CommitOptions, Build, Options};
use crate::daemon::Daemon;
use crate::error::ApiError;
use crate::http::{blocking_reader, json as reply_json, read_body, Query, Reply};

fn random_hex() -> String {
    let mut b = [0u8; 8];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    hex::encode(b)
}

/// `POST /build?t=…&dockerfile=…&buildargs=…`: the body is the context as a tar.
pub async fn build(
    d: Arc<Daemon>,
    q: &Query,
    registry_config: &str,
    body: Incoming,
) -> Result<Reply, ApiError> {
    let opts = Options::from_query(q, registry_config)?;
    if q.get("remote").is_some_and(|r| !r.is_empty()) {
        return Err(ApiError::bad_request(
            "remote build contexts (git or URL) are not supported: send the context as a tar",
        ));
    }
    let dir = d.config.data_root.join("builds").join(random_hex());
    let ctx = dir.join("context");
    let reader = blocking_reader(body);
    let unpacked =
        tokio::task::spawn_blocking(move || build::files::unpack_context(reader, &ctx)).await;
    let fail = |dir: &std::path::Path, e: ApiError| {
        build::cleanup(dir);
        Err(e)
    };
    match unpacked {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            return fail(
                &dir,
                ApiError::bad_request(format!("failed to read the build context: {e}")),
            )
        }
        Err(e) => return fail(&dir, ApiError::internal(e.to_string())),
    }
    // read in the context's root: a Dockerfile that is a symlink must not lead out of it
    let rel = build::files::clean_abs(&opts.dockerfile);
    let text = build::files::in_root(&dir.join("context"), move || std::fs::read(&rel));
    let text = match text {
        Ok(t) => String::from_utf8_lossy(&t).into_owned(),
        Err(_) => {
            return fail(
                &dir,
                ApiError::bad_request(format!(
                    "Cannot locate specified Dockerfile: {}",
                    opts.dockerfile
                )),
            );
        }
    };
    if let Err(e) = builder::dockerfile::parse(&text) {
        return fail(
            &dir,
            ApiError::bad_request(format!("dockerfile parse error {e}")),
        );
    }
    let (lines, reply) = super::registry::progress_reply();
    let _lease = d.store.write_lease();
    tokio::spawn(async move {
        let _lease = _lease;
        let mut b = Build::new(d, opts, dir.clone(), lines.clone());
        if let Err(e) = b.run(&text).await {
            lines.error(&e.message);
        }
        let _ = tokio::task::spawn_blocking(move || build::cleanup(&dir)).await;
    });
    Ok(reply)
}

/// `POST /commit?container=…&repo=…&tag=…&comment=…&author=…&changes=…`.
pub async fn commit(d: &Arc<Daemon>, q: &Query, body: Incoming) -> Result<Reply, ApiError> {
    let name = q.get("container").unwrap_or("");
    let e = d.containers.get(name)?;
    let c = e.snapshot();
    let reference = match q.get("repo").filter(|r| !r.is_empty()) {
        None => None,
        Some(repo) => {
            let tag = q.get("tag").filter(|t| !t.is_empty()).unwrap_or("latest");
            let text = format!("{repo}:{tag}");
            Some(Reference::parse_named(&text).map_err(|e| {
                ApiError::bad_request(format!("invalid reference format: {text:?}: {e}"))
            })?)
        }
    };
    let bytes = read_body(body).await?;
    let config: Option<Value> = if bytes.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(serde_json::from_slice(&bytes)?)
    };
    let opts = CommitOptions {
        reference,
        comment: q.get("comment").unwrap_or("").to_owned(),
        author: q.get("author").unwrap_or("").to_owned(),
        changes: q
            .all("changes")
            .into_iter()
            .flat_map(|c| c.lines().map(str::to_owned).collect::<Vec<_>>())
            .filter(|c| !c.trim().is_empty())
            .collect(),
        config: config.filter(|c| !c.is_null()),
    };
    let _lease = d.store.write_lease();
    // as Docker: a running container is paused while its changes are read (pause=1 default)
    let pause = c.state.status == crate::containers::Status::Running
        && q.get("pause").is_none_or(|p| !matches!(p, "0" | "false"));
    if pause {
        let (d2, e2) = (d.clone(), e.clone());
        tokio::task::spawn_blocking(move || super::containers::commit_pause(&d2, &e2, true))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??;
    }
    let id = build::commit::commit(d, &c, opts).await;
    if pause {
        let (d2, e2) = (d.clone(), e.clone());
        let _ =
            tokio::task::spawn_blocking(move || super::containers::commit_pause(&d2, &e2, false))
                .await;
    }
    let id = id?;
    d.events
        .container(&c, "commit", &[("comment", q.get("comment").unwrap_or(""))]);
    Ok(reply_json(StatusCode::CREATED, &json!({"Id": id.as_str()})))
}

/// `POST /build/prune`: forget the build cache (the next GC frees what only it held).
pub async fn prune(d: &Arc<Daemon>) -> Result<Reply, ApiError> {
    let store = d.store.clone();
    let n = tokio::task::spawn_blocking(move || -> Result<u64, ApiError> {
        store.clear_pins()?;
        Ok(store.gc()?)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(reply_json(
        StatusCode::OK,
        &json!({"CachesDeleted": [], "SpaceReclaimed": n}),
    ))
}
