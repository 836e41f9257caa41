//! `POST /containers/{id}/update`: change a container's resource limits and restart policy,
//! on its record (for the next start) and, when it runs, on its cgroup at once.

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::daemon::Daemon;
use crate::error::ApiError;
use crate::http::{json as reply_json, Reply};

/// The fields of the request that change `HostConfig`, after Docker's checks. Zero or
/// absent fields leave the current value.
pub(crate) fn changes(
    body: &Value,
    auto_remove: bool,
) -> Result<Vec<(&'static str, Value)>, ApiError> {
    let mut out = Vec::new();
    let num = |k: &str| body[k].as_i64().filter(|n| *n != 0);
    if let Some(m) = num("Memory") {
        if m < 6 << 20 {
            return Err(ApiError::bad_request("Minimum memory limit allowed is 6MB"));
        }
        out.push(("Memory", json!(m)));
    }
    if let Some(s) = num("MemorySwap") {
        out.push(("MemorySwap", json!(s)));
    }
    let nano = num("NanoCpus");
    if nano.is_some() && (num("CpuPeriod").is_some() || num("CpuQuota").is_some()) {
        return Err(ApiError::bad_request(
            "Conflicting options: Nano CPUs and CPU Period cannot both be set",
        ));
    }
    if let Some(n) = nano {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as i64;
        if n < 0 || n > cpus * 1_000_000_000 {
            return Err(ApiError::bad_request(format!(
                "Range of CPUs is from 0.01 to {cpus}.00, as there are only {cpus} CPUs available"
            )));
        }
        out.push(("NanoCpus", json!(n)));
    }
    if let Some(s) = num("CpuShares") {
        out.push(("CpuShares", json!(s)));
    }
    if let Some(p) = num("PidsLimit") {
        out.push(("PidsLimit", json!(p)));
    }
    let policy = &body["RestartPolicy"];
    if policy["Name"].as_str().is_some_and(|n| !n.is_empty()) {
        let name = policy["Name"].as_str().unwrap_or("");
        if !matches!(name, "no" | "always" | "on-failure" | "unless-stopped") {
            return Err(ApiError::bad_request(format!(
                "invalid restart policy '{name}'"
            )));
        }
        if auto_remove && name != "no" {
            return Err(ApiError::bad_request(
                "Restart policy cannot be updated because AutoRemove is enabled for the container",
            ));
        }
        out.push(("RestartPolicy", policy.clone()));
    }
    Ok(out)
}

/// `linux.resources` for what changed (what the runtime writes into the cgroup).
fn resources(hc: &Value, changed: &[(&'static str, Value)]) -> Value {
    let has = |k: &str| changed.iter().any(|(c, _)| *c == k);
    let mut r = json!({});
    if has("Memory") {
        r["memory"]["limit"] = hc["Memory"].clone();
        // as Docker: without a swap limit of its own, swap follows the memory limit up
        if !has("MemorySwap") {
            let swap = hc["MemorySwap"].as_i64().unwrap_or(0);
            if swap > 0 && swap < hc["Memory"].as_i64().unwrap_or(0) {
                r["memory"]["swap"] = hc["Memory"].clone();
            }
        }
    }
    if has("MemorySwap") {
        r["memory"]["swap"] = hc["MemorySwap"].clone();
    }
    if has("NanoCpus") {
        let period = 100_000i64;
        r["cpu"]["period"] = json!(period);
        r["cpu"]["quota"] = json!(hc["NanoCpus"].as_i64().unwrap_or(0) * period / 1_000_000_000);
    }
    if has("CpuShares") {
        r["cpu"]["shares"] = hc["CpuShares"].clone();
    }
    if has("PidsLimit") {
        r["pids"]["limit"] = hc["PidsLimit"].clone();
    }
    r
}

pub async fn update(d: &Arc<Daemon>, name: &str, body: Incoming) -> Result<Reply, ApiError> {
    let bytes = crate::http::read_body(body).await?;
    let body: Value = serde_json::from_slice(&bytes)?;
    let e = d.containers.get(name)?;
    let c = e.snapshot();
    let changed = changes(&body, c.auto_remove())?;
    let mut hc = c.host_config.clone();
    for (k, v) in &changed {
        hc[*k] = v.clone();
    }
    if c.state.status.is_live() {
        let res: oci_spec::runtime::LinuxResources =
            serde_json::from_value(resources(&hc, &changed))
                .map_err(|e| ApiError::internal(format!("resources: {e}")))?;
        let root = d.containers.runtime_root.clone();
        let id = c.id.clone();
        tokio::task::spawn_blocking(move || -> Result<(), ApiError> {
            let mut rc = runtime::Container::load(&root, &id)
                .map_err(|e| ApiError::internal(e.to_string()))?;
            rc.update(&res)
                .map_err(|e| ApiError::internal(format!("Cannot update container {id}: {e}")))
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))??;
    }
    d.containers.update(&e, |c| c.host_config = hc)?;
    d.events.container(&e.snapshot(), "update", &[]);
    Ok(reply_json(StatusCode::OK, &json!({"Warnings": []})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_like_docker() {
        let e = changes(&json!({"Memory": 1024}), false).unwrap_err();
        assert_eq!(e.message, "Minimum memory limit allowed is 6MB");
        let e = changes(&json!({"NanoCpus": 500_000_000, "CpuQuota": 1000}), false).unwrap_err();
        assert!(e.message.contains("Conflicting options"));
        let e = changes(&json!({"RestartPolicy": {"Name": "always"}}), true).unwrap_err();
        assert!(e.message.contains("AutoRemove"));
        assert!(changes(&json!({"RestartPolicy": {"Name": "sometimes"}}), false).is_err());
        let c = changes(
            &json!({"Memory": 64 << 20, "PidsLimit": 0, "CpuShares": 512}),
            false,
        )
        .unwrap();
        assert_eq!(c.len(), 2, "zero leaves a field as it is");
        let hc = json!({"Memory": 64 << 20, "CpuShares": 512});
        let r = resources(&hc, &c);
        assert_eq!(
            r,
            json!({"memory": {"limit": 64 << 20}, "cpu": {"shares": 512}})
        );
        let r: oci_spec::runtime::LinuxResources = serde_json::from_value(r).unwrap();
        assert_eq!(r.memory().as_ref().unwrap().limit(), Some(64 << 20));
    }
}
