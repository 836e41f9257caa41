//! `/networks`: list, create, inspect, remove, prune (bridge networks through netbridge),
//! connect and disconnect of created and running containers (a container may be on several
//! networks; docker-compose disconnects and reconnects a new one to give it its aliases).

use std::sync::Arc;

use hyper::body::Incoming;
use hyper::StatusCode;
use serde_json::{json, Value};

use crate::containers::model::{Container, NetworkAttachment};
use crate::containers::Entry;
use crate::daemon::Daemon;
use crate::error::ApiError;
use crate::http::{json as reply_json, read_body, status, Query, Reply};
use crate::network::{network_json, Wanted};

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

/// Docker's refusals for a container whose network mode cannot take another network.
fn shared_mode_error(mode: &str) -> Option<ApiError> {
    let msg = match mode {
        "host" => "container sharing network namespace with another container or host cannot be connected to any other network",
        "none" => "container cannot be connected to multiple networks with one of the networks in private (none) mode",
        m if m.starts_with("container:") => "container sharing network namespace with another container or host cannot be connected to any other network",
        _ => return None,
    };
    Some(ApiError::bad_request(msg))
}

/// A running container's resolver follows its networks: the first one with a DNS responder
/// (a container that started on the default bridge and joins a user network, or leaves the
/// network whose gateway answered it). Only a resolv.conf berth wrote, or the host's copy, is
/// rewritten, in place (the container sees the file through a bind mount).
fn follow_resolver(d: &Daemon, id: &str, eps: &[netbridge::Endpoint]) {
    let path = d.containers.dir_of(id).join("resolv.conf");
    let host = || std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let current = std::fs::read_to_string(&path).unwrap_or_default();
    let ours = crate::network::resolv_conf_server(&current);
    let want = eps.iter().find_map(|e| e.dns_server);
    let next = match (ours, want) {
        (Some(a), Some(b)) if a == b => return,
        (_, Some(b)) => crate::network::resolv_conf(b),
        (Some(_), None) => host(),
        (None, None) => return,
    };
    if ours.is_none() && current != host() {
        return; // not ours to change
    }
    if let Err(e) = std::fs::write(&path, next) {
        tracing::warn!("rewriting {}: {e}", path.display());
    }
}

/// The request body's container and the network, both looked up (404s as Docker's).
async fn parties(
    d: &Daemon,
    name: &str,
    body: Incoming,
) -> Result<(Value, netbridge::NetworkInfo, Arc<Entry>), ApiError> {
    let n = nets(d)?;
    let v: Value = serde_json::from_slice(&read_body(body).await?)?;
    let container = v["Container"].as_str().unwrap_or("").to_owned();
    if container.is_empty() {
        return Err(ApiError::bad_request("a container is required"));
    }
    let name = name.to_owned();
    let info = blocking(move || n.inspect(&name)).await?;
    let e = d.containers.get(&container)?;
    Ok((v, info, e))
}

/// Whether `c`'s `NetworkMode` names network `info`.
fn is_primary(c: &Container, info: &netbridge::NetworkInfo) -> bool {
    let mode = crate::network::mode(&c.host_config);
    mode == info.name || mode == info.id
}

/// Whether `c`, by its record, is on network `info`.
fn is_on(c: &Container, info: &netbridge::NetworkInfo) -> bool {
    (is_primary(c, info) && !c.off_primary)
        || c.extra_networks.iter().any(|a| a.network == info.name)
}

/// `POST /networks/{id}/connect`: a created or stopped container joins the network at its
/// next start; a running one at once (a new interface, eth1, eth2, …, an address, its names
/// in the network's DNS). Its first network keeps the default route.
pub async fn connect(d: &Daemon, name: &str, body: Incoming) -> Result<Reply, ApiError> {
    let n = nets(d)?;
    let (v, info, e) = parties(d, name, body).await?;
    let c = e.snapshot();
    if let Some(err) = shared_mode_error(&crate::network::mode(&c.host_config)) {
        return Err(err);
    }
    if info.name == "host" || info.name == "none" {
        return Err(ApiError::bad_request(
            "container cannot be disconnected from host network or connected to host network",
        ));
    }
    let endpoint = &v["EndpointConfig"];
    let aliases: Vec<String> = endpoint["Aliases"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        // the short ID is every container's alias on a user network already
        .filter(|a| !a.is_empty() && *a != c.short_id())
        .map(str::to_owned)
        .fold(Vec::new(), |mut acc, a| {
            if !acc.contains(&a) {
                acc.push(a);
            }
            acc
        });
    let ip = match endpoint["IPAMConfig"]["IPv4Address"]
        .as_str()
        .filter(|ip| !ip.is_empty())
    {
        Some(ip) => Some(
            ip.parse::<std::net::Ipv4Addr>()
                .map_err(|_| ApiError::bad_request(format!("invalid IPv4 address: {ip}")))?,
        ),
        None => None,
    };
    let links = crate::links::resolve(&d.containers, &endpoint["Links"])?;
    let exists = || {
        ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "endpoint with name {} already exists in network {}",
                c.name, info.name
            ),
        )
    };
    let primary = is_primary(&c, &info);
    let record = {
        let (aliases, links, network) = (aliases.clone(), links.clone(), info.name.clone());
        move |c: &mut Container| {
            if primary {
                c.off_primary = false;
                c.host_config["NetworkingAliases"] = json!(aliases);
                match ip {
                    Some(ip) => c.host_config["BerthIPv4Address"] = json!(ip.to_string()),
                    None => {
                        if let Some(hc) = c.host_config.as_object_mut() {
                            hc.remove("BerthIPv4Address");
                        }
                    }
                }
            } else {
                c.extra_networks.push(NetworkAttachment {
                    network,
                    aliases,
                    ip,
                    links,
                });
            }
        }
    };
    if c.state.status.is_running() {
        let id = c.id.clone();
        let already = {
            let (n, id) = (n.clone(), id.clone());
            let net = info.name.clone();
            tokio::task::spawn_blocking(move || {
                n.endpoints(&id).iter().any(|e| e.network_name == net)
            })
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
        };
        if already || is_on(&c, &info) {
            return Err(exists());
        }
        let mut w = Wanted {
            network: info.name.clone(),
            aliases: aliases.clone(),
            ip,
            links: links
                .iter()
                .map(|l| (l.container_id.clone(), l.alias.clone()))
                .collect(),
            primary: false,
        };
        if info.name != netbridge::DEFAULT_NETWORK {
            w.aliases.push(c.short_id().to_owned());
        }
        let req = crate::network::request(&c, w, n.netns_path(&id), Vec::new());
        let eps = {
            let n = n.clone();
            blocking(move || n.connect(&req).map(|_| n.endpoints(&id))).await?
        };
        follow_resolver(d, &c.id, &eps);
        let settings = crate::network::settings(&eps);
        let updated = d.containers.update(&e, |c| {
            record(c);
            c.network_settings = settings;
        });
        if let Err(err) = updated {
            let (n, id, net) = (n.clone(), c.id.clone(), info.name.clone());
            let _ = blocking(move || n.disconnect(&net, &id)).await;
            return Err(err);
        }
    } else {
        if is_on(&c, &info) {
            return Err(exists());
        }
        d.containers.update(&e, record)?;
    }
    d.events.emit(
        "network",
        "connect",
        &info.id,
        &[
            ("container", &c.id),
            ("name", &info.name),
            ("type", "bridge"),
        ],
    );
    Ok(status(StatusCode::OK))
}

/// `POST /networks/{id}/disconnect`: the container leaves the network (a running one at
/// once: its interface goes, its address is released, its names no longer resolve there).
/// Leaving its last network leaves it with none.
pub async fn disconnect(d: &Daemon, name: &str, body: Incoming) -> Result<Reply, ApiError> {
    let n = nets(d)?;
    let (_, info, e) = parties(d, name, body).await?;
    let c = e.snapshot();
    if !is_on(&c, &info) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "container {} is not connected to network {}",
                c.id, info.name
            ),
        ));
    }
    let primary = is_primary(&c, &info) && !c.off_primary;
    let forget = |c: &mut Container| {
        if primary {
            c.off_primary = true;
            if let Some(hc) = c.host_config.as_object_mut() {
                hc.remove("NetworkingAliases");
                hc.remove("BerthIPv4Address");
            }
        } else {
            c.extra_networks.retain(|a| a.network != info.name);
        }
    };
    if c.state.status.is_running() {
        let (n2, id, net) = (n.clone(), c.id.clone(), info.name.clone());
        let eps = blocking(move || {
            match n2.disconnect(&net, &id) {
                // it was not wired (e.g. it left meanwhile): the record is what remains
                Ok(()) | Err(netbridge::NetError::NotConnected { .. }) => {}
                Err(e) => return Err(e),
            }
            Ok(n2.endpoints(&id))
        })
        .await?;
        follow_resolver(d, &c.id, &eps);
        let settings = crate::network::settings(&eps);
        d.containers.update(&e, |c| {
            forget(c);
            c.network_settings = settings;
        })?;
    } else {
        d.containers.update(&e, forget)?;
    }
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
