//! Containers on networks: the engine's side of netbridge. A container on `bridge` (the
//! default) or a user network gets a persistent netns with a veth on the network's bridge
//! before its monitor starts; the runtime joins that netns by path. Docker's
//! `NetworkSettings` are kept in the container record; the netns is released when it exits.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;

use hyper::StatusCode;
use netbridge::{ConnectRequest, Endpoint, NetError, Networks, PortMapping, Proto};
use serde_json::{json, Map, Value};

use crate::containers::model::Container;

use crate::error::ApiError;
pub use netbridge::{parse_port_spec, PortMapping as PortSpec};

impl From<NetError> for ApiError {
    fn from(e: NetError) -> Self {
        let m = e.to_string();
        let status = if matches!(
            e,
            NetError::AlreadyConnected { .. } | NetError::NotConnected { .. }
        ) {
            // Docker's: a forbidden operation on the endpoint
            StatusCode::FORBIDDEN
        } else if matches!(e, NetError::BadAddress { ref reason, .. } if reason != "already in use")
        {
            StatusCode::BAD_REQUEST
        } else if m.contains("not found") || m.contains("No such") {
            StatusCode::NOT_FOUND
        } else if m.contains("already") || m.contains("in use") || m.contains("has active") {
            StatusCode::CONFLICT
        } else if m.contains("invalid") {
            StatusCode::BAD_REQUEST
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        ApiError::new(status, m)
    }
}

/// Open the daemon's networks (root only: bridges and nftables need it): definitions on the
/// data root with the addresses they handed out (endpoints), netns files under `run_dir`
/// (in the exec-root: a reboot voids them).
pub fn open(data_root: &std::path::Path, run_dir: &std::path::Path) -> Option<Arc<Networks>> {
    if !rustix::process::geteuid().is_root() {
        tracing::warn!("not root: bridge networking is off, containers get --network none");
        return None;
    }
    let dns = tokio::runtime::Handle::try_current()
        .ok()
        .map(netbridge::DnsOptions::new);
    let cfg = netbridge::Config {
        dns,
        ..netbridge::Config::under(data_root, run_dir)
    };
    match Networks::open(
        cfg,
        Arc::new(netbridge::LinuxNetlink::default()),
        Arc::new(netbridge::Nft::default()),
    ) {
        Ok(n) => Some(Arc::new(n)),
        Err(e) => {
            tracing::warn!("bridge networking is off: {e}");
            None
        }
    }
}

/// The network a container asked for: `none`, `host`, or a bridge network's name.
pub fn mode(host_config: &Value) -> String {
    match host_config["NetworkMode"].as_str().unwrap_or("") {
        "" | "default" => netbridge::DEFAULT_NETWORK.to_owned(),
        m => m.to_owned(),
    }
}

pub fn is_bridged(mode: &str) -> bool {
    !matches!(mode, "none" | "host")
}

/// `HostConfig.PortBindings` (`{"80/tcp": [{"HostIp": "", "HostPort": "4000"}]}`), plus
/// every exposed port when `PublishAllPorts`.
pub fn port_mappings(c: &Container) -> Result<Vec<PortMapping>, ApiError> {
    let mut out = Vec::new();
    let parse_key = |k: &str| -> Result<(u16, Proto), ApiError> {
        let (port, proto) = k.split_once('/').unwrap_or((k, "tcp"));
        let port = port
            .parse::<u16>()
            .map_err(|_| ApiError::bad_request(format!("invalid port {k:?}")))?;
        let proto = match proto {
            "tcp" => Proto::Tcp,
            "udp" => Proto::Udp,
            p => {
                return Err(ApiError::bad_request(format!(
                    "invalid protocol {p:?} in {k:?}"
                )))
            }
        };
        Ok((port, proto))
    };
    if let Some(b) = c.host_config["PortBindings"].as_object() {
        for (k, list) in b {
            let (container_port, proto) = parse_key(k)?;
            for m in list.as_array().into_iter().flatten() {
                let host_ip = match m["HostIp"].as_str().unwrap_or("") {
                    "" | "0.0.0.0" => None,
                    ip => Some(ip.parse::<Ipv4Addr>().map_err(|_| {
                        ApiError::bad_request(format!(
                            "invalid host IP {ip:?}: berth publishes IPv4 only"
                        ))
                    })?),
                };
                let host_port =
                    match m["HostPort"].as_str().unwrap_or("") {
                        "" => None,
                        p => Some(p.parse::<u16>().map_err(|_| {
                            ApiError::bad_request(format!("invalid host port {p:?}"))
                        })?),
                    };
                out.push(PortMapping {
                    host_ip,
                    host_port,
                    container_port,
                    proto,
                });
            }
        }
    }
    if c.host_config["PublishAllPorts"].as_bool().unwrap_or(false) {
        for k in c.config["ExposedPorts"]
            .as_object()
            .into_iter()
            .flat_map(Map::keys)
        {
            let (container_port, proto) = parse_key(k)?;
            if !out
                .iter()
                .any(|m| m.container_port == container_port && m.proto == proto)
            {
                out.push(PortMapping {
                    host_ip: None,
                    host_port: None,
                    container_port,
                    proto,
                });
            }
        }
    }
    Ok(out)
}

/// What a networked container needs to start: its netns, Docker's NetworkSettings, and the
/// lines for its /etc/hosts and resolv.conf.
pub struct Attached {
    pub netns: PathBuf,
    pub settings: Value,
    pub hosts: String,
    pub resolv: Option<String>,
}

/// One network a container joins when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub network: String,
    pub aliases: Vec<String>,
    pub ip: Option<Ipv4Addr>,
    /// (linked container's id, alias): names this container alone resolves there.
    pub links: Vec<(String, String)>,
    /// Its `NetworkMode` network (the MAC address asked for goes there).
    pub primary: bool,
}

/// The networks a bridged container joins at start, in order: its `NetworkMode` network
/// (unless disconnected from it), then those `network connect` added.
pub fn wanted(c: &Container) -> Vec<Wanted> {
    let mode = mode(&c.host_config);
    let mut out = Vec::with_capacity(1 + c.extra_networks.len());
    if !is_bridged(&mode) {
        return out;
    }
    let short = |net: &str| (net != netbridge::DEFAULT_NETWORK).then(|| c.short_id().to_owned());
    let link_pairs = |links: &[crate::containers::model::Link]| {
        links
            .iter()
            .map(|l| (l.container_id.clone(), l.alias.clone()))
            .collect::<Vec<_>>()
    };
    if !c.off_primary {
        let mut aliases: Vec<String> = c.host_config["NetworkingAliases"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        aliases.extend(short(&mode));
        out.push(Wanted {
            // on the default bridge, links are /etc/hosts lines (crate::links)
            links: if mode == netbridge::DEFAULT_NETWORK {
                Vec::new()
            } else {
                link_pairs(&c.links)
            },
            ip: c.host_config["BerthIPv4Address"]
                .as_str()
                .and_then(|s| s.parse().ok()),
            network: mode,
            aliases,
            primary: true,
        });
    }
    for a in &c.extra_networks {
        let mut aliases = a.aliases.clone();
        aliases.extend(short(&a.network));
        out.push(Wanted {
            network: a.network.clone(),
            aliases,
            ip: a.ip,
            links: link_pairs(&a.links),
            primary: false,
        });
    }
    out
}

/// The request that connects `c` (whose netns is `netns`) to one network.
pub fn request(
    c: &Container,
    w: Wanted,
    netns: PathBuf,
    ports: Vec<PortMapping>,
) -> ConnectRequest {
    ConnectRequest {
        network: w.network,
        container_id: c.id.clone(),
        container_name: c.name.clone(),
        aliases: w.aliases,
        netns,
        ip: w.ip,
        // checked at create
        mac: if w.primary {
            c.config["MacAddress"]
                .as_str()
                .and_then(|m| netbridge::ipam::parse_mac(m).ok())
        } else {
            None
        },
        ports,
        links: w.links,
    }
}

/// Create the container's netns and connect it to its networks (blocking).
pub fn attach(nets: &Networks, c: &Container, hostname: &str) -> Result<Attached, ApiError> {
    let mut ports = port_mappings(c)?;
    let netns = nets.create_netns(&c.id)?;
    let mut eps = Vec::with_capacity(1);
    for w in wanted(c) {
        // published ports go to the first network, as Docker's
        let req = request(c, w, netns.clone(), std::mem::take(&mut ports));
        match nets.connect(&req) {
            Ok(ep) => eps.push(ep),
            Err(e) => {
                let _ = nets.release(&c.id);
                return Err(e.into());
            }
        }
    }
    Ok(Attached {
        netns,
        hosts: eps
            .iter()
            .map(|ep| format!("{}\t{hostname}\n", ep.ip))
            .collect(),
        resolv: eps.iter().find_map(|ep| ep.dns_server).map(resolv_conf),
        settings: settings(&eps),
    })
}

/// The resolv.conf of a container whose resolver is a network's DNS responder.
pub fn resolv_conf(server: Ipv4Addr) -> String {
    format!("nameserver {server}\noptions ndots:0\n")
}

/// The responder a resolv.conf written by [`resolv_conf`] names, if it is one.
pub fn resolv_conf_server(text: &str) -> Option<Ipv4Addr> {
    let ip = text
        .strip_prefix("nameserver ")?
        .strip_suffix("\noptions ndots:0\n")?;
    ip.parse().ok()
}

/// Docker's `NetworkSettings` for a container's endpoints.
pub fn settings(eps: &[Endpoint]) -> Value {
    let mut ports = Map::new();
    let mut networks = Map::new();
    for ep in eps {
        for p in &ep.ports {
            let key = format!("{}/{}", p.container_port, p.proto);
            let entry = ports.entry(key).or_insert_with(|| json!([]));
            if let Some(a) = entry.as_array_mut() {
                a.push(
                    json!({"HostIp": p.host_ip.to_string(), "HostPort": p.host_port.to_string()}),
                );
            }
        }
        networks.insert(
            ep.network_name.clone(),
            json!({
                "IPAMConfig": null, "Links": null, "Aliases": ep.aliases,
                "NetworkID": ep.network_id, "EndpointID": ep.endpoint_id,
                "Gateway": ep.gateway.to_string(), "IPAddress": ep.ip.to_string(),
                "IPPrefixLen": ep.prefix_len, "IPv6Gateway": "", "GlobalIPv6Address": "",
                "GlobalIPv6PrefixLen": 0, "MacAddress": ep.mac, "DriverOpts": null,
            }),
        );
    }
    let first = eps.first();
    let default = eps
        .iter()
        .find(|e| e.network_name == netbridge::DEFAULT_NETWORK);
    json!({
        "Bridge": "", "SandboxID": "", "HairpinMode": false,
        "LinkLocalIPv6Address": "", "LinkLocalIPv6PrefixLen": 0,
        "Ports": ports,
        "SandboxKey": "",
        "Gateway": default.map(|e| e.gateway.to_string()).unwrap_or_default(),
        "IPAddress": default.map(|e| e.ip.to_string()).unwrap_or_default(),
        "IPPrefixLen": default.map(|e| e.prefix_len).unwrap_or(0),
        "MacAddress": default.or(first).map(|e| e.mac.clone()).unwrap_or_default(),
        "Networks": networks,
    })
}

/// `Ports` of `GET /containers/json`.
pub fn ps_ports(settings: &Value) -> Value {
    let mut out = Vec::new();
    if let Some(m) = settings["Ports"].as_object() {
        for (k, list) in m {
            let (port, proto) = k.split_once('/').unwrap_or((k, "tcp"));
            let private: u16 = port.parse().unwrap_or(0);
            for b in list.as_array().into_iter().flatten() {
                out.push(json!({
                    "IP": b["HostIp"], "PrivatePort": private,
                    "PublicPort": b["HostPort"].as_str().and_then(|p| p.parse::<u16>().ok()),
                    "Type": proto,
                }));
            }
        }
    }
    Value::Array(out)
}

/// Docker's network object for `GET /networks` and inspect.
pub fn network_json(n: &netbridge::NetworkInfo) -> Value {
    let containers: Map<String, Value> = n
        .endpoints
        .iter()
        .map(|e| {
            (
                e.container_id.clone(),
                json!({
                    "Name": e.container_name, "EndpointID": e.endpoint_id, "MacAddress": e.mac,
                    "IPv4Address": format!("{}/{}", e.ip, e.prefix_len), "IPv6Address": "",
                }),
            )
        })
        .collect();
    // Only the options a network was created with, as Docker shows them (compose recreates a
    // network whose options differ from its file's); the default bridge names its device.
    let options = if n.name == netbridge::DEFAULT_NETWORK {
        json!({"com.docker.network.bridge.name": n.bridge})
    } else {
        json!({})
    };
    let created = chrono::DateTime::from_timestamp(n.created as i64, 0)
        .map(|t| t.to_rfc3339())
        .unwrap_or_default();
    json!({
        "Name": n.name, "Id": n.id, "Created": created, "Scope": "local", "Driver": n.driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": null,
                 "Config": [{"Subnet": n.subnet.to_string(), "Gateway": n.gateway.to_string()}]},
        "Internal": n.internal, "Attachable": false, "Ingress": false,
        "ConfigFrom": {"Network": ""}, "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": n.labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_of_a_responder() {
        let ip = Ipv4Addr::new(172, 18, 0, 1);
        assert_eq!(resolv_conf_server(&resolv_conf(ip)), Some(ip));
        assert_eq!(resolv_conf_server("nameserver 10.0.0.53\n"), None);
        assert_eq!(resolv_conf_server("nameserver x\noptions ndots:0\n"), None);
        assert_eq!(resolv_conf_server(""), None);
    }
}
