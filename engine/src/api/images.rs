//! `/images/...`: list, inspect, tag, remove, load, save (get), import (create?fromSrc), prune.

use std::collections::HashMap;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::StatusCode;
use image_store::{ImageRecord, ImportOptions, Reference, Removed};
use serde_json::{json, Value};

use crate::daemon::Daemon;
use crate::error::ApiError;
use crate::http::{blocking_reader, channel_body, json as reply_json, status, Query, Reply};

fn created_unix(rec: &ImageRecord) -> i64 {
    created_time(rec).map_or(0, |t| t.timestamp())
}

fn created_time(rec: &ImageRecord) -> Option<chrono::DateTime<chrono::FixedOffset>> {
    rec.config
        .created()
        .as_deref()
        .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
}

fn labels(rec: &ImageRecord) -> Value {
    match rec
        .config
        .config()
        .as_ref()
        .and_then(|c| c.labels().clone())
    {
        Some(l) => json!(l),
        None => Value::Null,
    }
}

fn repo_digests(rec: &ImageRecord, dangling: bool) -> Value {
    if !rec.repo_digests.is_empty() {
        json!(rec
            .repo_digests
            .iter()
            .map(Reference::familiar)
            .collect::<Vec<_>>())
    } else if dangling {
        json!(["<none>@<none>"])
    } else {
        json!([])
    }
}

/// One entry of `GET /images/json`, as dockerd 20.10 writes it.
pub(crate) fn summary(rec: &ImageRecord) -> Value {
    let tags = rec.repo_tags();
    let dangling = tags.is_empty();
    json!({
        "Containers": -1,
        "Created": created_unix(rec),
        "Id": rec.id.as_str(),
        "Labels": labels(rec),
        "ParentId": "",
        "RepoDigests": repo_digests(rec, dangling),
        "RepoTags": if dangling { json!(["<none>:<none>"]) } else { json!(tags) },
        "SharedSize": -1,
        "Size": rec.size,
        "VirtualSize": rec.size,
    })
}

fn matches_filters(rec: &ImageRecord, f: &HashMap<String, Vec<String>>) -> Result<bool, ApiError> {
    for (k, vals) in f {
        let ok = match k.as_str() {
            "dangling" => vals
                .iter()
                .all(|v| (v == "true" || v == "1") == rec.refs.is_empty()),
            "reference" => vals
                .iter()
                .any(|pat| rec.refs.iter().any(|r| reference_matches(pat, r))),
            "label" => vals.iter().all(|l| {
                let labels = rec
                    .config
                    .config()
                    .as_ref()
                    .and_then(|c| c.labels().clone())
                    .unwrap_or_default();
                match l.split_once('=') {
                    Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
                    None => labels.contains_key(l),
                }
            }),
            "before" | "since" => true,
            other => return Err(ApiError::bad_request(format!("invalid filter '{other}'"))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

/// `reference=busybox` matches `busybox:*`; `reference=busybox:1*` globs the tag too.
pub(crate) fn reference_matches(pat: &str, r: &Reference) -> bool {
    let fam = r.familiar();
    let (pat_repo, pat_tag) = match pat.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
        Some((a, b)) => (a, Some(b)),
        None => (pat, None),
    };
    let repo = r.familiar_repository();
    glob(pat_repo, &repo) && pat_tag.is_none_or(|t| glob(t, r.tag().unwrap_or(""))) || fam == pat
}

/// `*` matches any run of characters, everything else itself. Greedy with one backtrack
/// point, so time stays linear in the pattern times the text however many `*` a filter has
/// (the recursive form was exponential), and it walks characters, never bytes.
pub(crate) fn glob(pat: &str, s: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pat.chars().collect(), s.chars().collect());
    let (mut i, mut j) = (0, 0);
    // where to resume after the last `*`: the pattern after it, and the text it has eaten
    let mut star: Option<(usize, usize)> = None;
    while j < t.len() {
        if p.get(i) == Some(&'*') {
            i += 1;
            star = Some((i, j));
        } else if p.get(i) == Some(&t[j]) {
            i += 1;
            j += 1;
        } else if let Some((si, sj)) = star {
            i = si;
            j = sj + 1;
            star = Some((si, sj + 1));
        } else {
            return false;
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

pub async fn list(d: &Daemon, q: &Query) -> Result<Reply, ApiError> {
    let filters = q.filters()?;
    let mut out = Vec::new();
    let mut recs = d.store.list();
    recs.sort_by_key(|r| std::cmp::Reverse(created_unix(r)));
    let patterns = filters.get("reference");
    for rec in recs {
        if !matches_filters(&rec, &filters)? {
            continue;
        }
        let mut s = summary(&rec);
        if let Some(pats) = patterns {
            let tags: Vec<String> = rec
                .refs
                .iter()
                .filter(|r| pats.iter().any(|p| reference_matches(p, r)))
                .map(Reference::familiar)
                .collect();
            if tags.is_empty() {
                continue;
            }
            s["RepoTags"] = json!(tags);
        }
        out.push(s);
    }
    Ok(reply_json(StatusCode::OK, &out))
}

pub async fn inspect(d: &Daemon, name: &str) -> Result<Reply, ApiError> {
    let rec = d.store.resolve(name).map_err(|e| {
        let mut e = ApiError::from(e);
        if e.status == StatusCode::NOT_FOUND {
            e.message = format!("no such image: {name}: {}", e.message);
        }
        e
    })?;
    let raw: Value = serde_json::from_slice(&d.store.config_bytes(&rec.id)?).unwrap_or(Value::Null);
    let mut config = json!({
        "Hostname": "", "Domainname": "", "User": "", "AttachStdin": false, "AttachStdout": false,
        "AttachStderr": false, "Tty": false, "OpenStdin": false, "StdinOnce": false, "Env": null,
        "Cmd": null, "Image": "", "Volumes": null, "WorkingDir": "", "Entrypoint": null,
        "OnBuild": null, "Labels": null,
    });
    if let (Some(c), Some(src)) = (
        config.as_object_mut(),
        raw.get("config").and_then(Value::as_object),
    ) {
        for (k, v) in src {
            c.insert(k.clone(), v.clone());
        }
    }
    let lower: Vec<String> = rec
        .chain_ids
        .iter()
        .rev()
        .map(|c| d.store.layers().diff_dir(c).display().to_string())
        .collect();
    let body = json!({
        "Id": rec.id.as_str(),
        "RepoTags": rec.repo_tags(),
        "RepoDigests": rec.repo_digests.iter().map(Reference::familiar).collect::<Vec<_>>(),
        "Parent": "",
        "Comment": raw.get("comment").cloned().unwrap_or(json!("")),
        "Created": rec.config.created().clone().unwrap_or_default(),
        "Container": raw.get("container").cloned().unwrap_or(json!("")),
        "ContainerConfig": raw.get("container_config").cloned().unwrap_or(config.clone()),
        "DockerVersion": raw.get("docker_version").cloned().unwrap_or(json!("")),
        "Author": rec.config.author().clone().unwrap_or_default(),
        "Config": config,
        "Architecture": rec.config.architecture().to_string(),
        "Variant": rec.config.variant().clone(),
        "Os": rec.config.os().to_string(),
        "Size": rec.size,
        "VirtualSize": rec.size,
        "GraphDriver": { "Name": "overlay2", "Data": { "LowerDir": lower.join(":") } },
        "RootFS": { "Type": "layers", "Layers": rec.diff_ids.iter().map(|d| d.as_str()).collect::<Vec<_>>() },
        "Metadata": { "LastTagTime": "0001-01-01T00:00:00Z" },
    });
    Ok(reply_json(StatusCode::OK, &body))
}

pub async fn history(d: &Daemon, name: &str) -> Result<Reply, ApiError> {
    let rec = d.store.resolve(name)?;
    let hist = rec.config.history().clone().unwrap_or_default();
    let mut out = Vec::new();
    let mut layer = rec.chain_ids.len();
    for (i, h) in hist.iter().enumerate().rev() {
        let empty = h.empty_layer().unwrap_or(false);
        let size = if empty || layer == 0 {
            0
        } else {
            layer -= 1;
            d.store
                .layers()
                .meta(&rec.chain_ids[layer])
                .map(|m| m.size)
                .unwrap_or(0)
        };
        let created = h
            .created()
            .as_deref()
            .and_then(|c| chrono::DateTime::parse_from_rfc3339(c).ok())
            .map_or(0, |t| t.timestamp());
        out.push(json!({
            "Id": if i + 1 == hist.len() { rec.id.to_string() } else { "<missing>".to_owned() },
            "Created": created,
            "CreatedBy": h.created_by().clone().unwrap_or_default(),
            "Tags": if i + 1 == hist.len() { json!(rec.repo_tags()) } else { Value::Null },
            "Size": size,
            "Comment": h.comment().clone().unwrap_or_default(),
        }));
    }
    Ok(reply_json(StatusCode::OK, &out))
}

pub async fn tag(d: &Daemon, name: &str, q: &Query) -> Result<Reply, ApiError> {
    let repo = q.get("repo").unwrap_or("");
    let mut target = Reference::parse_named(repo)?;
    if let Some(t) = q.get("tag").filter(|t| !t.is_empty()) {
        target = target.with_tag(t)?;
    }
    d.store.tag(name, &target)?;
    if let Ok(rec) = d.store.resolve(name) {
        d.events.emit(
            "image",
            "tag",
            rec.id.as_str(),
            &[("name", &target.familiar())],
        );
    }
    Ok(status(StatusCode::CREATED))
}

pub async fn remove(d: &Arc<Daemon>, name: &str, q: &Query) -> Result<Reply, ApiError> {
    let store = d.store.clone();
    let d2 = d.clone();
    let force = q.flag("force");
    let name = name.to_owned();
    let removed = tokio::task::spawn_blocking(move || {
        store.remove(&name, force, &|id| d2.containers.uses_image(id.as_str()))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    image_events(d, &removed);
    Ok(reply_json(StatusCode::OK, &removed_json(&removed)))
}

/// `untag` and `delete` events for what a removal or prune took.
fn image_events(d: &Daemon, removed: &[Removed]) {
    for r in removed {
        match r {
            Removed::Untagged(t) => d.events.emit("image", "untag", t, &[("name", t)]),
            Removed::Deleted(id) => d.events.emit("image", "delete", id.as_str(), &[]),
        }
    }
}

fn removed_json(removed: &[Removed]) -> Vec<Value> {
    removed
        .iter()
        .map(|r| match r {
            Removed::Untagged(t) => json!({ "Untagged": t }),
            Removed::Deleted(id) => json!({ "Deleted": id.as_str() }),
        })
        .collect()
}

pub async fn prune(d: &Arc<Daemon>, q: &Query) -> Result<Reply, ApiError> {
    let filters = q.filters()?;
    let all = filters
        .get("dangling")
        .is_some_and(|v| v.iter().any(|x| x == "false" || x == "0"));
    let store = d.store.clone();
    let d2 = d.clone();
    let (removed, reclaimed) = tokio::task::spawn_blocking(move || {
        store.prune(all, &|id| d2.containers.uses_image(id.as_str()).is_some())
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    image_events(d, &removed);
    let deleted = removed_json(&removed);
    Ok(reply_json(
        StatusCode::OK,
        &json!({ "ImagesDeleted": if deleted.is_empty() { Value::Null } else { json!(deleted) }, "SpaceReclaimed": reclaimed }),
    ))
}

/// `POST /images/load`: the archive streams in; "Loaded image" lines stream out.
pub async fn load(d: Arc<Daemon>, _q: &Query, body: Incoming) -> Result<Reply, ApiError> {
    let (mut w, reply) = channel_body("application/json");
    let mut reader = blocking_reader(body);
    tokio::task::spawn_blocking(move || {
        let loaded = d.store.load(&mut reader);
        if loaded.is_err() {
            // the client may still be sending (a full disk stops us early): read it all, so
            // that it gets our error and not a broken connection, as `cp` does
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        }
        let line = match loaded {
            Ok(images) => {
                let mut text = String::new();
                for img in images {
                    let name = img.refs.first().map(|r| r.familiar()).unwrap_or_default();
                    d.events
                        .emit("image", "load", img.id.as_str(), &[("name", &name)]);
                    if img.refs.is_empty() {
                        text.push_str(&format!("Loaded image ID: {}\n", img.id));
                    }
                    for r in img.refs {
                        text.push_str(&format!("Loaded image: {}\n", r.familiar()));
                    }
                }
                json!({ "stream": text })
            }
            Err(e) => {
                json!({ "errorDetail": { "message": e.to_string() }, "error": e.to_string() })
            }
        };
        let _ = w.json_line(&line);
    });
    Ok(reply)
}

/// `GET /images/get`: the archive streams out as it is written.
pub async fn save(d: Arc<Daemon>, names: Vec<String>) -> Result<Reply, ApiError> {
    let names: Vec<String> = names
        .iter()
        .flat_map(|n| n.split(','))
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .collect();
    if names.is_empty() {
        return Err(ApiError::bad_request("no image names given"));
    }
    // Resolve first, so that an unknown name is a 404 rather than a broken stream.
    for n in &names {
        d.store.resolve(n)?;
    }
    let (w, reply) = channel_body("application/x-tar");
    for n in &names {
        d.events.emit("image", "save", n, &[("name", n)]);
    }
    tokio::task::spawn_blocking(move || {
        if let Err(e) = d.store.save(&names, w) {
            tracing::warn!("save {names:?} failed mid-stream: {e}");
        }
    });
    Ok(reply)
}

/// `POST /images/create?fromSrc=-`: import the body (`fromImage` pulls: see `api::registry`).
pub async fn create(d: Arc<Daemon>, q: &Query, body: Incoming) -> Result<Reply, ApiError> {
    match q.get("fromSrc") {
        Some("-") => {}
        Some(other) => return Err(ApiError::bad_request(format!("import from {other:?} is not supported: send the tarball as the request body (fromSrc=-)"))),
        None => return Err(ApiError::bad_request("fromImage or fromSrc is required")),
    }
    let mut refs = Vec::new();
    if let Some(repo) = q.get("repo").filter(|r| !r.is_empty()) {
        let mut r = Reference::parse_named(repo)?;
        if let Some(t) = q.get("tag").filter(|t| !t.is_empty()) {
            r = r.with_tag(t)?;
        }
        refs.push(if r.tag().is_none() {
            r.with_tag("latest")?
        } else {
            r
        });
    }
    let config = crate::changes::apply(&q.all("changes"))?;
    let comment = q
        .get("message")
        .filter(|m| !m.is_empty())
        .map(str::to_owned);
    let (mut w, reply) = channel_body("application/json");
    let reader = blocking_reader(body);
    tokio::task::spawn_blocking(move || {
        let opts = ImportOptions {
            config: Some(config),
            comment,
            refs,
        };
        let line = match d.store.import(reader, opts) {
            Ok(rec) => {
                d.events.emit("image", "import", rec.id.as_str(), &[]);
                json!({ "status": rec.id.as_str() })
            }
            Err(e) => {
                json!({ "errorDetail": { "message": e.to_string() }, "error": e.to_string() })
            }
        };
        let _ = w.json_line(&line);
    });
    Ok(reply)
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn glob_matches_as_before() {
        assert!(glob("busy*", "busybox"));
        assert!(glob("*box", "busybox"));
        assert!(glob("b*s*x", "busybox"));
        assert!(glob("*", ""));
        assert!(glob("busybox", "busybox"));
        assert!(!glob("busy", "busybox"));
        assert!(!glob("*z*", "busybox"));
        assert!(!glob("", "x"));
    }

    /// Found by the api_request fuzz target: the old glob sliced the text at byte offsets.
    #[test]
    fn glob_walks_characters() {
        assert!(glob("*é", "aé"));
        assert!(!glob("*x", "é;"));
        assert!(glob("a*ü*", "aöü"));
    }

    /// `*a*a*...*b` against a long `aaaa...` took exponential time.
    #[test]
    fn glob_is_not_exponential() {
        let text = "a".repeat(255);
        let pat = format!("{}b", "*a".repeat(30));
        let start = std::time::Instant::now();
        assert!(!glob(&pat, &text));
        assert!(start.elapsed() < std::time::Duration::from_secs(1));
    }
}
