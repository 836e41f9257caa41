//! Legacy container links (`--link NAME[:ALIAS]`, `HostConfig.Links`). On the default bridge
//! a link is an /etc/hosts line and Docker's `ALIAS_PORT_…`, `ALIAS_NAME`, `ALIAS_ENV_…`
//! variables in the linking container; on a user network it is a name only the linking
//! container resolves (netbridge's DNS responder). The parsing and the text are pure
//! functions here; the engine's start path calls [`for_start`] only for a container that
//! has links, so a container without any pays nothing.

use hyper::StatusCode;
use serde_json::Value;

use crate::containers::model::{Container, Link};
use crate::containers::Containers;
use crate::error::ApiError;

/// Docker's `opts.ParseLink`: `name:alias`, `name` (alias = name), or the form inspect shows,
/// `/name:/linker/alias`.
pub fn parse(val: &str) -> Result<(String, String), String> {
    if val.is_empty() {
        return Err("empty string specified for links".into());
    }
    let parts: Vec<&str> = val.split(':').collect();
    match parts[..] {
        [one] => Ok((
            one.trim_start_matches('/').into(),
            one.trim_start_matches('/').into(),
        )),
        [name, alias] if name.starts_with('/') => Ok((
            name[1..].into(),
            alias.rsplit('/').next().unwrap_or(alias).into(),
        )),
        [name, alias] => Ok((name.into(), alias.into())),
        _ => Err(format!("bad format for links: {val}")),
    }
}

/// Resolve `HostConfig.Links` (or an endpoint's `Links`) against the existing containers:
/// a missing one is Docker's "could not get container for NAME" (400).
pub fn resolve(containers: &Containers, links: &Value) -> Result<Vec<Link>, ApiError> {
    let mut out: Vec<Link> = Vec::new();
    for v in links.as_array().into_iter().flatten() {
        let s = v.as_str().unwrap_or("");
        let (name, alias) = parse(s).map_err(ApiError::bad_request)?;
        let target = containers.get(&name).map_err(|e| {
            ApiError::bad_request(format!("could not get container for {name}: {}", e.message))
        })?;
        let t = target.snapshot();
        if alias.is_empty() || alias.contains('/') {
            return Err(ApiError::bad_request(format!(
                "invalid link alias in {s:?}"
            )));
        }
        out.retain(|l| l.alias != alias);
        out.push(Link {
            container_id: t.id.clone(),
            name: t.name.clone(),
            alias,
        });
    }
    Ok(out)
}

/// `HostConfig.Links` as Docker's inspect shows them: `/name:/linker/alias`.
pub fn inspect_form(containers: &Containers, linker: &str, links: &[Link]) -> Value {
    if links.is_empty() {
        return Value::Null;
    }
    links
        .iter()
        .map(|l| {
            let name = containers
                .get(&l.container_id)
                .map(|e| e.snapshot().name)
                .unwrap_or_else(|_| l.name.clone());
            Value::String(format!("/{name}:/{linker}/{}", l.alias))
        })
        .collect()
}

/// What a linked container gives its linker on the default bridge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Linked {
    pub alias: String,
    pub name: String,
    pub hostname: String,
    pub ip: String,
    /// The linked container's `Config.Env`.
    pub env: Vec<String>,
    /// `80/tcp`, … (its `ExposedPorts`).
    pub exposed: Vec<String>,
}

/// The /etc/hosts line for a link: `IP\tALIAS HOSTNAME NAME` (the name only when it differs
/// from the alias), as Docker writes it.
pub fn hosts_line(l: &Linked) -> String {
    let mut names = format!("{} {}", l.alias, l.hostname);
    if l.alias != l.name {
        names = format!("{names} {}", l.name);
    }
    format!("{}\t{names}\n", l.ip)
}

/// Docker's link variables (`links.Link.ToEnv`) for a linker named `linker`.
pub fn env(linker: &str, l: &Linked) -> Vec<String> {
    let prefix = l.alias.to_ascii_uppercase().replace('-', "_");
    let mut out = Vec::new();
    let mut ports: Vec<(u16, String)> = l
        .exposed
        .iter()
        .filter_map(|p| {
            let (port, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            Some((port.parse().ok()?, proto.to_ascii_lowercase()))
        })
        .collect();
    ports.sort();
    if let Some((port, proto)) = ports.first() {
        out.push(format!("{prefix}_PORT={proto}://{}:{port}", l.ip));
    }
    for (port, proto) in &ports {
        let p = format!("{prefix}_PORT_{port}_{}", proto.to_ascii_uppercase());
        out.push(format!("{p}={proto}://{}:{port}", l.ip));
        out.push(format!("{p}_ADDR={}", l.ip));
        out.push(format!("{p}_PORT={port}"));
        out.push(format!("{p}_PROTO={proto}"));
    }
    out.push(format!("{prefix}_NAME=/{linker}/{}", l.alias));
    for e in &l.env {
        if let Some((k, v)) = e.split_once('=') {
            if k != "HOME" && k != "PATH" {
                out.push(format!("{prefix}_ENV_{k}={v}"));
            }
        }
    }
    out
}

/// For a container with links on the default bridge: its /etc/hosts lines and variables.
/// Every linked container must be running there (Docker's errors otherwise).
pub fn for_start(
    containers: &Containers,
    c: &Container,
) -> Result<(String, Vec<String>), ApiError> {
    let mut hosts = String::new();
    let mut vars = Vec::new();
    for l in &c.links {
        let t = containers
            .get(&l.container_id)
            .map_err(|_| ApiError::bad_request(format!("could not get container for {}", l.name)))?
            .snapshot();
        if !t.state.status.is_running() {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "Cannot link to a non running container: /{} AS /{}/{}",
                    t.name, c.name, l.alias
                ),
            ));
        }
        let ip = t.network_settings["Networks"][netbridge::DEFAULT_NETWORK]["IPAddress"]
            .as_str()
            .filter(|ip| !ip.is_empty())
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "container {} not attached to default bridge network",
                    t.id
                ))
            })?
            .to_owned();
        let linked = Linked {
            alias: l.alias.clone(),
            name: t.name.clone(),
            hostname: t.config["Hostname"]
                .as_str()
                .filter(|h| !h.is_empty())
                .unwrap_or(t.short_id())
                .to_owned(),
            ip,
            env: t.config["Env"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            exposed: t.config["ExposedPorts"]
                .as_object()
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default(),
        };
        hosts.push_str(&hosts_line(&linked));
        vars.extend(env(&c.name, &linked));
    }
    Ok((hosts, vars))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn parses_docker_link_forms() {
        let p = |s: &str| parse(s).map(|(n, a)| format!("{n} {a}"));
        assert_eq!(p("db").unwrap(), "db db");
        assert_eq!(p("db:cache").unwrap(), "db cache");
        assert_eq!(p("/db:/web/cache").unwrap(), "db cache");
        assert!(p("").unwrap_err().contains("empty"));
        assert!(p("a:b:c")
            .unwrap_err()
            .contains("bad format for links: a:b:c"));
    }

    #[test]
    fn hosts_and_variables() {
        let l = Linked {
            alias: "my-db".into(),
            name: "db".into(),
            hostname: "0123456789ab".into(),
            ip: "172.17.0.2".into(),
            env: vec!["PATH=/bin".into(), "FOO=1".into(), "EMPTY=".into()],
            exposed: vec!["6379/tcp".into(), "53/udp".into()],
        };
        assert_eq!(hosts_line(&l), "172.17.0.2\tmy-db 0123456789ab db\n");
        let same = Linked {
            alias: "db".into(),
            ..l.clone()
        };
        assert_eq!(hosts_line(&same), "172.17.0.2\tdb 0123456789ab\n");
        assert_eq!(
            env("web", &l),
            [
                "MY_DB_PORT=udp://172.17.0.2:53",
                "MY_DB_PORT_53_UDP=udp://172.17.0.2:53",
                "MY_DB_PORT_53_UDP_ADDR=172.17.0.2",
                "MY_DB_PORT_53_UDP_PORT=53",
                "MY_DB_PORT_53_UDP_PROTO=udp",
                "MY_DB_PORT_6379_TCP=tcp://172.17.0.2:6379",
                "MY_DB_PORT_6379_TCP_ADDR=172.17.0.2",
                "MY_DB_PORT_6379_TCP_PORT=6379",
                "MY_DB_PORT_6379_TCP_PROTO=tcp",
                "MY_DB_NAME=/web/my-db",
                "MY_DB_ENV_FOO=1",
                "MY_DB_ENV_EMPTY=",
            ]
        );
    }
}
