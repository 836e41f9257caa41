//! `GET /containers/{id}/stats`: the container's cgroup counters in Docker's shape, one
//! sample (`stream=false`, with a first reading a moment earlier so CPU % can be computed)
//! or one a second until the client goes or the container stops.

use std::sync::Arc;
use std::time::Duration;

use hyper::StatusCode;
use serde_json::{json, Value};

use crate::daemon::Daemon;
use crate::error::ApiError;
use crate::http::{channel_body, json as reply_json, Query, Reply};
use crate::monitor;

/// One reading: the cgroup's counters (zero when the container does not run) and the
/// host's CPU time.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    cg: runtime::cgroup::Stats,
    system_ns: u64,
    running: bool,
}

/// Total CPU time of the host in ns (`/proc/stat`'s first line, in USER_HZ ticks).
fn system_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .filter_map(|v| v.parse::<u64>().ok())
                    .sum::<u64>()
                    * 10_000_000
            })
        })
        .unwrap_or(0)
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("MemTotal:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

fn sample(d: &Daemon, id: &str, running: bool) -> Sample {
    let cg = running
        .then(|| runtime::Container::load(&d.containers.runtime_root, id).ok())
        .flatten()
        .and_then(|mut c| c.state().cgroup.clone())
        .map(|cg| cg.stats(&runtime::cgroup::fs::RealCgroupFs))
        .unwrap_or_default();
    Sample {
        cg,
        system_ns: system_cpu_ns(),
        running,
    }
}

/// Docker's stats object from this sample and the one before.
fn to_json(c: &crate::containers::Container, now: &Sample, before: &Sample) -> Value {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpu = |s: &Sample| json!({"cpu_usage": {"total_usage": s.cg.cpu_ns}, "system_cpu_usage": s.system_ns, "online_cpus": cpus});
    // no limit: the host's memory, as dockerd reports it
    let limit = if now.cg.memory_limit == u64::MAX {
        host_memory()
    } else {
        now.cg.memory_limit
    };
    json!({
        "id": c.id,
        "name": format!("/{}", c.name),
        "read": monitor::now(),
        "memory_stats": if now.running { json!({"usage": now.cg.memory_usage, "limit": limit}) } else { json!({}) },
        "cpu_stats": cpu(now),
        "precpu_stats": cpu(before),
        "pids_stats": if now.running { json!({"current": now.cg.pids}) } else { json!({}) },
        "networks": {},
        "blkio_stats": {},
    })
}

pub async fn stats(d: &Arc<Daemon>, name: &str, q: &Query) -> Result<Reply, ApiError> {
    let e = d.containers.get(name)?;
    let c = e.snapshot();
    // docker-py sends Python's `False`
    let stream = q
        .get("stream")
        .is_none_or(|s| !(s == "0" || s.eq_ignore_ascii_case("false")));
    let read = |d: Arc<Daemon>, id: String, running: bool| async move {
        tokio::task::spawn_blocking(move || sample(&d, &id, running))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))
    };
    let running = c.state.status.is_live();
    if !stream {
        let first = read(d.clone(), c.id.clone(), running).await?;
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = read(d.clone(), c.id.clone(), running).await?;
        return Ok(reply_json(StatusCode::OK, &to_json(&c, &now, &first)));
    }
    let (w, reply) = channel_body("application/json");
    let d = d.clone();
    tokio::spawn(async move {
        let mut before = Sample::default();
        loop {
            let c = e.snapshot();
            let running = c.state.status.is_live();
            let Ok(now) = read(d.clone(), c.id.clone(), running).await else {
                return;
            };
            if w.json_line_async(&to_json(&c, &now, &before))
                .await
                .is_err()
                || c.removed
            {
                return;
            }
            before = now;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    Ok(reply)
}
