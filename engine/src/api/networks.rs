//! `/networks`: list, create, inspect, remove, prune (bridge networks through netbridge), and
//! connect for a container's own network (how docker-compose gives it its aliases).

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::daemon::Daemon;
use crate::error::ApiError;
use crate::http::{json as reply_json, read_body, status, Query, Reply};
use crate::network::network_json;

fn nets(d: &Daemon) -> Result<Arc<netbridge::Networks>, ApiError> {
    d.networks.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "bridge networking is not available on this daemon (it needs root; see the daemon log)",
        )
    })
}

/// Run a blocking netbridge call off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, netbridge::NetError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
        .map_err(ApiError::from)
}

pub async fn list(d: &Daemon, q: &Query) -> Result<Reply, ApiError> {
    let filters = q.filters()?;
    let Some(n) = d.networks.clone() else {
        return Ok(reply_json(StatusCode::OK, &json!([])));
    };
    let all = tokio::task::spawn_blocking(move || n.list())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let out: Vec<Value> = all
        .iter()
        .filter(|n| {
            filters.iter().all(|(k, vals)| match k.as_str() {
                "name" => vals.iter().any(|v| n.name.contains(v.as_str())),
                "id" => vals.iter().any(|v| n.id.starts_with(v.as_str())),
                "driver" => vals.iter().any(|v| v == &n.driver),
                "label" => vals.iter().all(|l| match l.split_once('=') {
                    Some((k, v)) => n.labels.get(k).is_some_and(|x| x == v),
                    None => n.labels.contains_key(l),
                }),
                _ => true,
            })
        })
        .map(network_json)
        .collect();
    Ok(reply_json(StatusCode::OK, &out))
}

pub async fn create(d: &Daemon, body: Incoming) -> Result<Reply, ApiError> {
    let n = nets(d)?;
    let v: Value = serde_json::from_slice(&read_body(body).await?)?;
    let name = v["Name"].as_str().unwrap_or("").to_owned();
    if name.is_empty() {
        return Err(ApiError::bad_request("network name is required"));
    }
    match v["Driver"].as_str().unwrap_or("") {
        "" | "bridge" => {}
        other => {
            return Err(ApiError::bad_request(format!(
                "network driver {other:?} is not supported: berth has bridge networks"
            )))
        }
    }
    let ipam = v["IPAM"]["Config"]
        .as_array()
        .and_then(|a| a.first())
        .cloned()
        .unwrap_or(Value::Null);
    let subnet = match ipam["Subnet"].as_str().filter(|s| !s.is_empty()) {
        Some(s) => Some(
            s.parse::<netbridge::Subnet>()
                .map_err(|e| ApiError::bad_request(format!("invalid subnet {s:?}: {e}")))?,
        ),
        None => None,
    };
    let gateway = match ipam["Gateway"].as_str().filter(|s| !s.is_empty()) {
        Some(g) => Some(
            g.parse()
                .map_err(|_| ApiError::bad_request(format!("invalid gateway {g:?}")))?,
        ),
        None => None,
    };
    let labels = v["Labels"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                .collect()
        })
        .unwrap_or_default();
    let opts = netbridge::CreateOptions {
        name,
        subnet,
        gateway,
        internal: v["Internal"].as_bool().unwrap_or(false),
        mtu: None,
        labels,
    };
    let info = blocking(move || n.create(&opts)).await?;
    d.events.emit(
        "network",
        "create",
        &info.id,
        &[("name", &info.name), ("type", "bridge")],
    );
    Ok(reply_json(
        StatusCode::CREATED,
        &json!({"Id": info.id, "Warning": ""}),
    ))
}

pub async fn inspect(d: &Daemon, name: &str) -> Result<Reply, ApiError> {
    let n = nets(d)?;
    let name = name.to_owned();
    let info = blocking(move || n.inspect(&name)).await?;
    Ok(reply_json(StatusCode::OK, &network_json(&info)))
}

pub async fn remove(d: &Daemon, name: &str) -> Result<Reply, ApiError> {
    let n = nets(d)?;
    let name = name.to_owned();
    let info = {
        let (n, name) = (n.clone(), name.clone());
        blocking(move || n.inspect(&name)).await?
    };
    blocking(move || n.remove(&name)).await?;
    d.events.emit(
        "network",
        "destroy",
        &info.id,
        &[("name", &info.name), ("type", "bridge")],
    );
    Ok(status(StatusCode::NO_CONTENT))
}

pub async fn prune(d: &Daemon) -> Result<Reply, ApiError> {
    let n = nets(d)?;
    let removed = blocking(move || n.prune()).await?;
    for name in &removed {
        d.events.emit(
            "network",
            "destroy",
            name,
            &[("name", name), ("type", "bridge")],
        );
    }
    Ok(reply_json(
        StatusCode::OK,
        &json!({"NetworksDeleted": removed}),
    ))
}

/// `POST /networks/{id}/connect`. A berth container has one network, its `NetworkMode`:
/// connecting it to that network again adds aliases (and an address) to a container that is
/// not running, as docker-compose does between create and start; joining a second network
/// is not supported yet and says so.
pub async fn connect(d: &Daemon, name: &str, body: Incoming) -> Result<Reply, ApiError> {
    let n = nets(d)?;
    let v: Value = serde_json::from_slice(&read_body(body).await?)?;
    let container = v["Container"].as_str().unwrap_or("").to_owned();
    if container.is_empty() {
        return Err(ApiError::bad_request("a container is required"));
    }
    let name = name.to_owned();
    let info = blocking(move || n.inspect(&name)).await?;
    let e = d.containers.get(&container)?;
    let c = e.snapshot();
    let mode = crate::network::mode(&c.host_config);
    if mode != info.name && mode != info.id {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!(
                "container {container} is on network {mode}: berth does not connect a container \
                 to a second network yet"
            ),
        ));
    }
    let endpoint = &v["EndpointConfig"];
    let mut aliases: Vec<Value> = c.host_config["NetworkingAliases"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    // the short ID is every container's alias on a user network already
    let new: Vec<&Value> = endpoint["Aliases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|a| a.as_str().is_some_and(|a| a != c.short_id()) && !aliases.contains(a))
        .collect();
    let ip = endpoint["IPAMConfig"]["IPv4Address"]
        .as_str()
        .filter(|ip| !ip.is_empty() && c.host_config["BerthIPv4Address"].as_str() != Some(ip));
    if new.is_empty() && ip.is_none() {
        return Ok(status(StatusCode::OK));
    }
    if c.state.status.is_running() {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!(
                "container {container} is running: berth sets its aliases and address on \
                 network {} only before it starts",
                info.name
            ),
        ));
    }
    aliases.extend(new.into_iter().cloned());
    d.containers.update(&e, |c| {
        c.host_config["NetworkingAliases"] = Value::Array(aliases);
        if let Some(ip) = ip {
            c.host_config["BerthIPv4Address"] = json!(ip);
        }
    })?;
    Ok(status(StatusCode::OK))
}

/// `POST /networks/{id}/disconnect`. As `connect`: for a container's own network, before it
/// runs, this forgets the aliases and address given at create (docker-compose disconnects
/// and reconnects a new container to set them); a running container, or a second network,
/// is not supported yet and says so.
pub async fn disconnect(d: &Daemon, name: &str, body: Incoming) -> Result<Reply, ApiError> {
    let n = nets(d)?;
    let v: Value = serde_json::from_slice(&read_body(body).await?)?;
    let container = v["Container"].as_str().unwrap_or("").to_owned();
    if container.is_empty() {
        return Err(ApiError::bad_request("a container is required"));
    }
    let name = name.to_owned();
    let info = blocking(move || n.inspect(&name)).await?;
    let e = d.containers.get(&container)?;
    let c = e.snapshot();
    let mode = crate::network::mode(&c.host_config);
    if mode != info.name && mode != info.id {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "container {} is not connected to network {}",
                c.id, info.name
            ),
        ));
    }
    if c.state.status.is_running() {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            format!(
                "container {container} is running: berth does not disconnect a running \
                 container from its network yet"
            ),
        ));
    }
    d.containers.update(&e, |c| {
        if let Some(hc) = c.host_config.as_object_mut() {
            hc.remove("NetworkingAliases");
            hc.remove("BerthIPv4Address");
        }
    })?;
    d.events.emit(
        "network",
        "disconnect",
        &info.id,
        &[
            ("container", &c.id),
            ("name", &info.name),
            ("type", "bridge"),
        ],
    );
    Ok(status(StatusCode::OK))
}
