//! `/volumes/...` (create, list, inspect, remove, prune) and the volume side of a container:
//! its mounts made at create (volumes created and filled from the image), its anonymous
//! volumes removed with it.

use std::collections::BTreeMap;
use std::sync::Arc;

use hyper::body::Incoming;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::containers::{Container, Entry};
use crate::daemon::Daemon;
use crate::error::ApiError;
use crate::http::{json as reply_json, status, Query, Reply};
use crate::volumes::{self, MountPoint, MountRequest};

fn blocking_err(e: tokio::task::JoinError) -> ApiError {
    ApiError::internal(e.to_string())
}

/// Short IDs of the containers that mount volume `name`.
pub fn users(d: &Daemon, name: &str) -> Vec<String> {
    d.containers
        .all()
        .iter()
        .map(|e| e.snapshot())
        .filter(|c| {
            !c.removed
                && c.mounts
                    .iter()
                    .any(|m| m.kind == "volume" && m.name == name)
        })
        .map(|c| c.short_id().to_owned())
        .collect()
}

fn labels_of(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
        .collect()
}

pub async fn create(d: &Arc<Daemon>, body: Incoming) -> Result<Reply, ApiError> {
    let bytes = crate::http::read_body(body).await?;
    let body: Value = if bytes.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&bytes)?
    };
    let driver = body["Driver"].as_str().unwrap_or("");
    if !driver.is_empty() && driver != "local" {
        return Err(ApiError::not_found(format!(
            "error looking up volume plugin {driver}: plugin \"{driver}\" not found"
        )));
    }
    if body["DriverOpts"]
        .as_object()
        .is_some_and(|o| !o.is_empty())
    {
        return Err(ApiError::bad_request(
            "the local driver of berth takes no options (type/device/o mounts are not supported)",
        ));
    }
    let name = body["Name"].as_str().filter(|n| !n.is_empty());
    let (v, made) = d.volumes.create(name, labels_of(&body["Labels"]))?;
    if made {
        d.events
            .emit("volume", "create", &v.name, &[("driver", "local")]);
    }
    Ok(reply_json(StatusCode::CREATED, &d.volumes.to_json(&v)))
}

/// Remove a volume (refused while `users` is not empty) and tell the event log.
fn destroy(d: &Daemon, name: &str, users: &[String]) -> Result<(), ApiError> {
    d.volumes.remove(name, users)?;
    d.events
        .emit("volume", "destroy", name, &[("driver", "local")]);
    Ok(())
}

fn label_matches(labels: &BTreeMap<String, String>, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
        None => labels.contains_key(want),
    }
}

fn matches(
    d: &Daemon,
    v: &volumes::Volume,
    filters: &std::collections::HashMap<String, Vec<String>>,
) -> Result<bool, ApiError> {
    for (k, vals) in filters {
        let ok = match k.as_str() {
            "name" => vals.iter().any(|n| v.name.contains(n.as_str())),
            "label" => vals.iter().all(|l| label_matches(&v.labels, l)),
            "driver" => vals.iter().any(|x| x == "local"),
            "dangling" => {
                let unused = users(d, &v.name).is_empty();
                vals.iter().any(|x| match x.as_str() {
                    "true" | "1" => unused,
                    "false" | "0" => !unused,
                    _ => false,
                })
            }
            other => return Err(ApiError::bad_request(format!("invalid filter '{other}'"))),
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

pub async fn list(d: &Arc<Daemon>, q: &Query) -> Result<Reply, ApiError> {
    let filters = q.filters()?;
    let mut out = Vec::new();
    for v in d.volumes.list() {
        if matches(d, &v, &filters)? {
            out.push(d.volumes.to_json(&v));
        }
    }
    Ok(reply_json(
        StatusCode::OK,
        &json!({"Volumes": out, "Warnings": Value::Null}),
    ))
}

pub async fn inspect(d: &Arc<Daemon>, name: &str) -> Result<Reply, ApiError> {
    let v = d.volumes.get(name)?;
    Ok(reply_json(StatusCode::OK, &d.volumes.to_json(&v)))
}

pub async fn remove(d: &Arc<Daemon>, name: &str, q: &Query) -> Result<Reply, ApiError> {
    let users = users(d, name);
    match destroy(d, name, &users) {
        // `force` only hides a missing volume, as Docker's
        Err(e) if e.status == StatusCode::NOT_FOUND && q.flag("force") => {}
        other => other?,
    }
    Ok(status(StatusCode::NO_CONTENT))
}

pub async fn prune(d: &Arc<Daemon>, q: &Query) -> Result<Reply, ApiError> {
    let filters = q.filters()?;
    let mut deleted = Vec::new();
    let mut reclaimed = 0u64;
    for v in d.volumes.list() {
        let labels_ok = filters.iter().all(|(k, vals)| match k.as_str() {
            "label" => vals.iter().all(|l| label_matches(&v.labels, l)),
            "label!" => !vals.iter().any(|l| label_matches(&v.labels, l)),
            _ => true,
        });
        if !labels_ok || !users(d, &v.name).is_empty() {
            continue;
        }
        let size = d.volumes.size(&v.name);
        if destroy(d, &v.name, &[]).is_ok() {
            reclaimed += size;
            deleted.push(v.name);
        }
    }
    Ok(reply_json(
        StatusCode::OK,
        &json!({"VolumesDeleted": deleted, "SpaceReclaimed": reclaimed}),
    ))
}

/// Make what `reqs` ask for: volumes created (anonymous ones named afresh), bind sources
/// of `-v` created as Docker does, empty volumes filled from the image unless `nocopy`.
/// On failure, the anonymous volumes made here are removed again.
pub fn prepare_mounts(
    d: &Daemon,
    c: &Container,
    reqs: Vec<MountRequest>,
) -> Result<Vec<MountPoint>, ApiError> {
    let mut made_anonymous = Vec::new();
    let out = make_mounts(d, c, reqs, &mut made_anonymous);
    if out.is_err() {
        for n in made_anonymous {
            let _ = destroy(d, &n, &[]);
        }
    }
    out
}

fn make_mounts(
    d: &Daemon,
    c: &Container,
    reqs: Vec<MountRequest>,
    made_anonymous: &mut Vec<String>,
) -> Result<Vec<MountPoint>, ApiError> {
    let mut out = Vec::new();
    let mut fill = Vec::new();
    for r in reqs {
        let mut m = MountPoint {
            kind: r.kind.clone(),
            name: String::new(),
            source: r.source.clone(),
            destination: r.destination,
            rw: r.rw,
            mode: r.mode,
            nocopy: r.nocopy,
            tmpfs_options: r.tmpfs_options,
        };
        match r.kind.as_str() {
            "volume" => {
                let name = (!r.source.is_empty()).then_some(r.source.as_str());
                let (v, made) = d.volumes.create(name, BTreeMap::new())?;
                if made {
                    d.events
                        .emit("volume", "create", &v.name, &[("driver", "local")]);
                }
                if made && v.anonymous {
                    made_anonymous.push(v.name.clone());
                }
                let mp = d.volumes.mountpoint(&v.name);
                let empty = std::fs::read_dir(&mp).is_ok_and(|mut it| it.next().is_none());
                if empty && !m.nocopy {
                    fill.push((m.destination.clone(), mp.clone()));
                }
                m.source = mp.display().to_string();
                m.name = v.name;
            }
            // `-v /host:/dst` makes a missing host directory, as Docker's
            "bind" if std::fs::symlink_metadata(&r.source).is_err() => {
                std::fs::create_dir_all(&r.source).map_err(|e| {
                    ApiError::bad_request(format!(
                        "error while creating mount source path '{}': {e}",
                        r.source
                    ))
                })?;
            }
            _ => {}
        }
        out.push(m);
    }
    if !fill.is_empty() {
        fill_from_image(d, c, &fill)?;
    }
    Ok(out)
}

/// Copy the image's content at each destination into its (empty) volume, through a
/// temporary mount of the container's root filesystem.
fn fill_from_image(
    d: &Daemon,
    c: &Container,
    fill: &[(String, std::path::PathBuf)],
) -> Result<(), ApiError> {
    let dir = d.containers.dir_of(&c.id);
    let overlay = d
        .store
        .overlay(&image_store::Digest::parse(&c.image_id)?, &dir)?;
    let target = dir.join("volume-init");
    crate::build::files::mount_overlay(&overlay, &target)
        .map_err(|e| ApiError::internal(format!("mounting the image to fill volumes: {e}")))?;
    let copied = fill.iter().try_for_each(|(dst, mp)| {
        crate::build::files::copy_tree(&target, dst, mp).map_err(|e| {
            ApiError::internal(format!(
                "copying the image's {dst} into its volume: {}",
                crate::build::files::chain(&e)
            ))
        })
    });
    crate::build::files::unmount(&target);
    let _ = std::fs::remove_dir(&target);
    copied
}

/// After a container is gone: remove the anonymous volumes it used (`rm -v`, `--rm`).
pub fn remove_anonymous(d: &Daemon, c: &Container) {
    for m in c.mounts.iter().filter(|m| m.kind == "volume") {
        if let Ok(v) = d.volumes.get(&m.name) {
            if v.anonymous && users(d, &v.name).is_empty() {
                if let Err(e) = destroy(d, &v.name, &[]) {
                    tracing::warn!("removing volume {}: {}", v.name, e.message);
                }
            }
        }
    }
}

/// Remove a container's record and files, and with `volumes` its anonymous volumes.
pub fn remove_container(d: &Daemon, e: &Arc<Entry>, volumes: bool) -> Result<(), ApiError> {
    let c = e.snapshot();
    d.containers.remove_files(e)?;
    d.events.container(&c, "destroy", &[]);
    if volumes {
        remove_anonymous(d, &c);
    }
    Ok(())
}

/// `remove_container` off the async runtime.
pub async fn remove_container_async(
    d: &Arc<Daemon>,
    e: &Arc<Entry>,
    volumes: bool,
) -> Result<(), ApiError> {
    let (d2, e2) = (d.clone(), e.clone());
    tokio::task::spawn_blocking(move || remove_container(&d2, &e2, volumes))
        .await
        .map_err(blocking_err)?
}
