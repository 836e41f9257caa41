//! What is saved: one JSON file per network (`<state_dir>/<name>.json`) holding the network
//! and its endpoints, written atomically (temp file, rename) before the kernel is touched, so
//! that an address is never handed out twice, even after the daemon crashes.
//!
//! Only network definitions are fsynced ([`Durability::Sync`]). Endpoint changes are not: a
//! daemon crash keeps them (the page cache survives it), and a machine crash kills every
//! container, whose endpoints `reconcile` drops at the next start anyway. That saves 1–2 ms
//! on every container start and stop.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::NetError;
use crate::ports::PublishedPort;
use crate::subnet::Subnet;

/// A network as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkRecord {
    pub id: String,
    pub name: String,
    pub bridge: String,
    pub subnet: Subnet,
    pub gateway: Ipv4Addr,
    /// The subnet was given by the user (`--subnet`), not taken from a pool.
    #[serde(default)]
    pub user_subnet: bool,
    #[serde(default)]
    pub internal: bool,
    /// Containers' names resolve through the network's DNS responder.
    #[serde(default)]
    pub dns: bool,
    pub mtu: u32,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Seconds since the epoch.
    pub created: u64,
    /// Endpoints by container id.
    #[serde(default)]
    pub endpoints: BTreeMap<String, EndpointRecord>,
}

/// One container's attachment to a network, as saved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndpointRecord {
    pub id: String,
    pub container_name: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    pub ip: Ipv4Addr,
    /// The address was asked for (`--ip`).
    #[serde(default)]
    pub fixed_ip: bool,
    pub mac: String,
    /// The interface's name inside the container (`eth0`, `eth1`, …).
    pub ifname: String,
    pub host_veth: String,
    pub netns: PathBuf,
    #[serde(default)]
    pub ports: Vec<PublishedPort>,
    /// `--link`s on this network: names only this container resolves.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<LinkRecord>,
}

/// A `--link` on a user network: `alias` resolves, for the linking container only, to the
/// linked container's address on the same network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    pub container_id: String,
    pub alias: String,
}

/// How hard a save is: both are atomic, only `Sync` survives a power loss.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fsync the file and the directory: network definitions.
    Sync,
    /// rename only: endpoints, which die with the machine anyway.
    Atomic,
}

/// The directory of network files.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, NetError> {
        fs::create_dir_all(dir).map_err(|source| NetError::State {
            path: dir.to_path_buf(),
            source,
        })?;
        Ok(Store {
            dir: dir.to_path_buf(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    pub fn load_all(&self) -> Result<Vec<NetworkRecord>, NetError> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| NetError::State { path, source }
        };
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(err(&self.dir))? {
            let path = entry.map_err(err(&self.dir))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let data = fs::read(&path).map_err(err(&path))?;
                let rec = serde_json::from_slice(&data)
                    .map_err(|source| NetError::StateParse { path, source })?;
                out.push(rec);
            }
        }
        out.sort_by(|a: &NetworkRecord, b| a.name.cmp(&b.name));
        Ok(out)
    }

    pub fn save(&self, rec: &NetworkRecord, durability: Durability) -> Result<(), NetError> {
        let path = self.path(&rec.name);
        let tmp = self.dir.join(format!(".{}.json.tmp", rec.name));
        let err = |source| NetError::State {
            path: path.clone(),
            source,
        };
        let data = serde_json::to_vec_pretty(rec).map_err(|e| err(e.into()))?;
        let mut f = File::create(&tmp).map_err(err)?;
        f.write_all(&data).map_err(err)?;
        if durability == Durability::Sync {
            f.sync_all().map_err(err)?;
        }
        fs::rename(&tmp, &path).map_err(err)?;
        match durability {
            Durability::Sync => self.sync_dir(),
            Durability::Atomic => Ok(()),
        }
    }

    pub fn delete(&self, name: &str) -> Result<(), NetError> {
        let path = self.path(name);
        match fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(NetError::State { path, source: e })
            }
            _ => self.sync_dir(),
        }
    }

    fn sync_dir(&self) -> Result<(), NetError> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(|source| NetError::State {
                path: self.dir.clone(),
                source,
            })
    }
}
