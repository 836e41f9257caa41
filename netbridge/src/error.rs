//! The crate's one error type: each variant names what failed and on what.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use crate::ports::Proto;

#[derive(Debug, thiserror::Error)]
pub enum NetError {
    #[error("netlink {op} {target}: {source}")]
    Netlink {
        op: &'static str,
        target: String,
        #[source]
        source: std::io::Error,
    },
    #[error("network namespace {op} {path}: {source}")]
    Netns {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sysctl {key}: {source}")]
    Sysctl {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("network state {path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("network state {path} is corrupt: {source}")]
    StateParse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("nft: {0}")]
    Nft(String),
    #[error("invalid port spec {spec:?}: {reason}")]
    PortSpec { spec: String, reason: String },
    #[error("host port {host_ip}:{port}/{proto} is already in use: stop what listens there or publish another port")]
    PortInUse {
        host_ip: Ipv4Addr,
        port: u16,
        proto: Proto,
    },
    #[error("binding host port {host_ip}:{port}/{proto}: {source}")]
    PortBind {
        host_ip: Ipv4Addr,
        port: u16,
        proto: Proto,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid subnet {value:?}: {reason}")]
    BadSubnet { value: String, reason: String },
    #[error("invalid network name {0:?}: use letters, digits, '_', '.', '-'")]
    BadName(String),
    #[error("network {0} not found")]
    NotFound(String),
    #[error("network with name {0} already exists")]
    Exists(String),
    #[error("network {name} has active endpoints ({containers})")]
    InUse { name: String, containers: String },
    #[error("{0} is a predefined network and cannot be removed")]
    Predefined(String),
    #[error("subnet {subnet} overlaps with {other}")]
    Overlap { subnet: String, other: String },
    #[error("no free address pool left for a new network: give one with --subnet")]
    NoFreePool,
    #[error("no free address left in network {network} ({subnet})")]
    Exhausted { network: String, subnet: String },
    #[error("address {ip} is not usable in network {network} ({reason})")]
    BadAddress {
        ip: Ipv4Addr,
        network: String,
        reason: String,
    },
    #[error("endpoint with name {container} already exists in network {network}")]
    AlreadyConnected { network: String, container: String },
    #[error("container {container} is not connected to network {network}")]
    NotConnected { network: String, container: String },
    #[error("dns responder on {addr}: {source}")]
    Dns {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// Several steps of a teardown or rollback failed; each is listed.
    #[error("{}", join(.0))]
    Many(Vec<NetError>),
}

fn join(errs: &[NetError]) -> String {
    errs.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

impl NetError {
    /// One error from a list of failures, or `Ok` when there were none.
    pub fn collect(errs: Vec<NetError>) -> Result<(), NetError> {
        if errs.is_empty() {
            Ok(())
        } else {
            Err(NetError::from_list(errs))
        }
    }

    /// One error for a non-empty list: the error itself when alone.
    pub fn from_list(mut errs: Vec<NetError>) -> NetError {
        if errs.len() == 1 {
            errs.remove(0)
        } else {
            NetError::Many(errs)
        }
    }
}
