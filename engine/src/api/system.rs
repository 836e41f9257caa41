//! `/_ping`, `/version`, `/info`, `/system/df`, and berth's `/berth/check`.

use hyper::header::HeaderValue;
use hyper::{Method, Response, StatusCode};
use serde_json::{json, Value};

use std::sync::Arc;

/// The runtime containers run with: berth's own, in-process (berth-runtime is its CLI).
pub(crate) const DEFAULT_RUNTIME: &str = "berth";

use crate::daemon::Daemon;
use crate::error::ApiError;
use crate::http::{empty, full, json as reply_json, Query, Reply};
use crate::version::{API_VERSION, MIN_API_VERSION, VERSION};

pub fn ping(m: &Method) -> Reply {
    let mut r = Response::new(if m == Method::HEAD {
        empty()
    } else {
        full("OK")
    });
    let h = r.headers_mut();
    h.insert("Builder-Version", HeaderValue::from_static("1"));
    h.insert(
        "Cache-Control",
        HeaderValue::from_static("no-cache, no-store, must-revalidate"),
    );
    h.insert("Pragma", HeaderValue::from_static("no-cache"));
    h.insert(
        "Content-Type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

fn kernel_version() -> String {
    let u = rustix::system::uname();
    u.release().to_string_lossy().into_owned()
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub fn version() -> Reply {
    let body = json!({
        "Platform": { "Name": "berth" },
        "Components": [{ "Name": "Engine", "Version": VERSION, "Details": {
            "ApiVersion": API_VERSION, "MinAPIVersion": MIN_API_VERSION, "Os": "linux", "Arch": go_arch(),
            "KernelVersion": kernel_version(), "Experimental": "false",
        }}],
        "Version": VERSION,
        "ApiVersion": API_VERSION,
        "MinAPIVersion": MIN_API_VERSION,
        "GitCommit": option_env!("BERTH_GIT_COMMIT").unwrap_or("unknown"),
        "GoVersion": "n/a (rust)",
        "Os": "linux",
        "Arch": go_arch(),
        "KernelVersion": kernel_version(),
        "BuildTime": "",
    });
    reply_json(StatusCode::OK, &body)
}

fn os_release() -> (String, String) {
    let text = std::fs::read_to_string("/etc/os-release").unwrap_or_default();
    let field = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .map(|v| v.trim_matches('"').to_owned())
            .unwrap_or_default()
    };
    (field("PRETTY_NAME"), field("VERSION_ID"))
}

fn mem_total() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn cgroup_version() -> &'static str {
    if std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        "2"
    } else {
        "1"
    }
}

pub async fn info(d: &Daemon) -> Result<Reply, ApiError> {
    let (os, os_version) = os_release();
    let hostname = rustix::system::uname()
        .nodename()
        .to_string_lossy()
        .into_owned();
    let states: Vec<_> = d
        .containers
        .all()
        .iter()
        .map(|e| e.snapshot().state.status)
        .collect();
    let count =
        |f: &dyn Fn(crate::containers::Status) -> bool| states.iter().filter(|s| f(**s)).count();
    use crate::containers::Status;
    let body = json!({
        "ID": d.id,
        "Containers": states.len(),
        "ContainersRunning": count(&|s| s == Status::Running),
        "ContainersPaused": count(&|s| s == Status::Paused),
        "ContainersStopped": count(&|s| !s.is_running()),
        "Images": d.store.list().len(),
        "Driver": "overlay2",
        "DriverStatus": [["Backing Filesystem", "extfs"], ["Supports d_type", "true"], ["Native Overlay Diff", "true"]],
        "Plugins": { "Volume": ["local"], "Network": ["bridge", "host", "null"], "Authorization": null, "Log": ["json-file"] },
        "MemoryLimit": true, "SwapLimit": false, "KernelMemory": false, "KernelMemoryTCP": false,
        "CpuCfsPeriod": true, "CpuCfsQuota": true, "CPUShares": true, "CPUSet": true, "PidsLimit": true,
        "IPv4Forwarding": true, "BridgeNfIptables": false, "BridgeNfIp6tables": false, "Debug": false,
        "NFd": std::fs::read_dir("/proc/self/fd").map(|r| r.count()).unwrap_or(0),
        "OomKillDisable": false, "NGoroutines": 0,
        "SystemTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        "LoggingDriver": "json-file", "CgroupDriver": "cgroupfs", "CgroupVersion": cgroup_version(),
        "NEventsListener": 0,
        "KernelVersion": kernel_version(),
        "OperatingSystem": os, "OSVersion": os_version, "OSType": "linux",
        "Architecture": std::env::consts::ARCH,
        "IndexServerAddress": "https://index.docker.io/v1/",
        "RegistryConfig": {
            "AllowNondistributableArtifactsCIDRs": [], "AllowNondistributableArtifactsHostnames": [],
            "InsecureRegistryCIDRs": ["127.0.0.0/8"],
            "IndexConfigs": { "docker.io": { "Name": "docker.io", "Mirrors": [], "Secure": true, "Official": true } },
            "Mirrors": [],
        },
        "NCPU": std::thread::available_parallelism().map_or(1, |n| n.get()),
        "MemTotal": mem_total(),
        "GenericResources": null,
        "DockerRootDir": d.config.data_root.display().to_string(),
        "HttpProxy": "", "HttpsProxy": "", "NoProxy": "",
        "Name": hostname,
        "Labels": [],
        "ExperimentalBuild": false,
        "ServerVersion": VERSION,
        "Runtimes": { DEFAULT_RUNTIME: { "path": "berth-runtime" } },
        "DefaultRuntime": DEFAULT_RUNTIME,
        "Swarm": { "NodeID": "", "NodeAddr": "", "LocalNodeState": "inactive", "ControlAvailable": false, "Error": "", "RemoteManagers": null },
        "LiveRestoreEnabled": true,
        "Isolation": "",
        "InitBinary": "",
        "ContainerdCommit": { "ID": "", "Expected": "" },
        "RuncCommit": { "ID": "", "Expected": "" },
        "InitCommit": { "ID": "", "Expected": "" },
        "SecurityOptions": ["name=seccomp,profile=default"],
        "Warnings": Value::Array(vec![]),
    });
    Ok(reply_json(StatusCode::OK, &body))
}

pub async fn df(d: &std::sync::Arc<Daemon>) -> Result<Reply, ApiError> {
    let store = d.store.clone();
    let d2 = d.clone();
    let (usage, images) = tokio::task::spawn_blocking(move || {
        (
            store.usage(&|id| d2.containers.uses_image(id.as_str()).is_some()),
            store.list(),
        )
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let usage = usage?;
    let imgs: Vec<Value> = images
        .iter()
        .map(|r| {
            let mut s = super::images::summary(r);
            let users = d
                .containers
                .all()
                .iter()
                .filter(|e| e.snapshot().image_id == r.id.as_str())
                .count();
            s["Containers"] = json!(users);
            s["SharedSize"] = json!(0);
            s
        })
        .collect();
    Ok(reply_json(
        StatusCode::OK,
        &json!({ "LayersSize": usage.size, "Images": imgs, "Containers": [], "Volumes": [], "BuildCache": [] }),
    ))
}

pub async fn check(d: &Daemon) -> Result<Reply, ApiError> {
    let store = d.store.clone();
    let rep = tokio::task::spawn_blocking(move || store.check())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    Ok(reply_json(
        StatusCode::OK,
        &json!({ "Blobs": rep.blobs, "Layers": rep.layers, "Images": rep.images, "Refs": rep.refs, "Problems": rep.problems }),
    ))
}

/// `GET /events?since=&until=&filters=`: past events from `since` (the daemon keeps the
/// recent ones), then live ones until `until` or until the client goes.
pub async fn events(d: &Arc<Daemon>, q: &Query) -> Result<Reply, ApiError> {
    use crate::events::{parse_time, Filter};
    let time = |k: &str| -> Result<Option<i64>, ApiError> {
        match q.get(k).filter(|v| !v.is_empty()) {
            None => Ok(None),
            Some(v) => parse_time(v)
                .map(Some)
                .ok_or_else(|| ApiError::bad_request(format!("invalid value for {k}: {v:?}"))),
        }
    };
    let (since, until) = (time("since")?, time("until")?);
    let filter = Filter(q.filters()?.into_iter().collect());
    for k in filter.0.keys() {
        if !matches!(
            k.as_str(),
            "type"
                | "event"
                | "action"
                | "container"
                | "image"
                | "volume"
                | "network"
                | "label"
                | "scope"
        ) {
            return Err(ApiError::bad_request(format!("invalid filter '{k}'")));
        }
    }
    let (past, mut rx) = d.events.subscribe(since);
    let (w, reply) = crate::http::channel_body("application/json");
    tokio::spawn(async move {
        let before_until = |t: i64| until.is_none_or(|u| t <= u);
        for e in past
            .iter()
            .filter(|e| filter.matches(e) && before_until(e.time_nano))
        {
            if w.json_line_async(&e.to_json()).await.is_err() {
                return;
            }
        }
        let deadline = until.map(|u| {
            let now = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0);
            tokio::time::Instant::now()
                + std::time::Duration::from_nanos(u64::try_from(u - now).unwrap_or(0))
        });
        loop {
            let next = async {
                match deadline {
                    Some(dl) => tokio::time::timeout_at(dl, rx.recv()).await.ok(),
                    None => Some(rx.recv().await),
                }
            };
            let e = match next.await {
                None => return, // until reached
                Some(Ok(e)) => e,
                Some(Err(tokio::sync::broadcast::error::RecvError::Lagged(_))) => continue,
                Some(Err(_)) => return,
            };
            if filter.matches(&e)
                && before_until(e.time_nano)
                && w.json_line_async(&e.to_json()).await.is_err()
            {
                return;
            }
        }
    });
    Ok(reply)
}
