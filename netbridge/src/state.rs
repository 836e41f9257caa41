//! What is saved, in two places, each written atomically (temp file, rename) before the
//! kernel is touched, so that an address is never handed out twice, even after the daemon
//! crashes:
//! - network definitions, `<state_dir>/<name>.json` on the data root, fsynced: they outlive
//!   a reboot;
//! - each network's endpoints, `<run_dir>/endpoints/<name>.json` beside the containers' run
//!   state (a tmpfs, the daemon's exec-root), not fsynced: they die with the containers at a
//!   reboot, and a daemon crash keeps them. A new file on this machine's data root costs
//!   0.4–1 ms (ext4 without a journal looks past recently deleted inodes for a free one);
//!   on a tmpfs a few microseconds, on every container start and stop.
//!
//! Definitions written by earlier versions hold their endpoints too: they are read when no
//! endpoints file exists (and `reconcile` drops those of containers that are gone).

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

/// The directories of network definitions and of their endpoints.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
    endpoints: PathBuf,
}

impl Store {
    pub fn open(dir: &Path, run_dir: &Path) -> Result<Store, NetError> {
        let endpoints = run_dir.join("endpoints");
        for d in [dir, endpoints.as_path()] {
            fs::create_dir_all(d).map_err(|source| NetError::State {
                path: d.to_path_buf(),
                source,
            })?;
        }
        Ok(Store {
            dir: dir.to_path_buf(),
            endpoints,
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    fn endpoints_path(&self, name: &str) -> PathBuf {
        self.endpoints.join(format!("{name}.json"))
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
                let mut rec: NetworkRecord = serde_json::from_slice(&data)
                    .map_err(|source| NetError::StateParse { path, source })?;
                let eps = self.endpoints_path(&rec.name);
                match fs::read(&eps) {
                    Ok(data) => {
                        rec.endpoints = serde_json::from_slice(&data)
                            .map_err(|source| NetError::StateParse { path: eps, source })?;
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err(err(&eps)(e)),
                }
                out.push(rec);
            }
        }
        out.sort_by(|a: &NetworkRecord, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Save a network's definition (durably) and its endpoints.
    pub fn save(&self, rec: &NetworkRecord) -> Result<(), NetError> {
        let definition = NetworkRecord {
            endpoints: BTreeMap::new(),
            ..rec.clone()
        };
        write_atomic(&self.dir, &self.path(&rec.name), &definition, true)?;
        self.save_endpoints(rec)
    }

    /// Save a network's endpoints only: the change of a container's start or stop.
    pub fn save_endpoints(&self, rec: &NetworkRecord) -> Result<(), NetError> {
        write_atomic(
            &self.endpoints,
            &self.endpoints_path(&rec.name),
            &rec.endpoints,
            false,
        )
    }

    pub fn delete(&self, name: &str) -> Result<(), NetError> {
        for path in [self.endpoints_path(name), self.path(name)] {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(NetError::State { path, source: e });
                }
                _ => {}
            }
        }
        sync_dir(&self.dir)
    }
}

/// Write `value` as JSON to `path` through a temp file in `dir` and a rename; with `sync`,
/// fsync the file and the directory (it survives a power loss).
fn write_atomic<T: Serialize>(
    dir: &Path,
    path: &Path,
    value: &T,
    sync: bool,
) -> Result<(), NetError> {
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let tmp = dir.join(format!(".{name}.tmp"));
    let err = |source| NetError::State {
        path: path.to_path_buf(),
        source,
    };
    let data = serde_json::to_vec_pretty(value).map_err(|e| err(e.into()))?;
    let mut f = File::create(&tmp).map_err(err)?;
    f.write_all(&data).map_err(err)?;
    if sync {
        f.sync_all().map_err(err)?;
    }
    fs::rename(&tmp, path).map_err(err)?;
    if sync {
        sync_dir(dir)?;
    }
    Ok(())
}

fn sync_dir(dir: &Path) -> Result<(), NetError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| NetError::State {
            path: dir.to_path_buf(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> NetworkRecord {
        let ep = EndpointRecord {
            id: "e1".into(),
            container_name: "web".into(),
            aliases: vec![],
            ip: "172.17.0.2".parse().unwrap(),
            fixed_ip: false,
            mac: "02:42:ac:11:00:02".into(),
            ifname: "eth0".into(),
            host_veth: "veth1".into(),
            netns: "/run/x/netns/c1".into(),
            ports: vec![],
            links: vec![],
        };
        NetworkRecord {
            id: "n1".into(),
            name: "front".into(),
            bridge: "br-n1".into(),
            subnet: "172.17.0.0/16".parse().unwrap(),
            gateway: "172.17.0.1".parse().unwrap(),
            user_subnet: false,
            internal: false,
            dns: true,
            mtu: 1500,
            labels: BTreeMap::new(),
            created: 1,
            endpoints: [("c1".to_string(), ep)].into(),
        }
    }

    #[test]
    fn definitions_on_the_data_root_endpoints_in_the_run_dir() {
        let (data, run) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let store = Store::open(data.path(), run.path()).unwrap();
        let rec = record();
        store.save(&rec).unwrap();
        let def: NetworkRecord =
            serde_json::from_slice(&fs::read(data.path().join("front.json")).unwrap()).unwrap();
        assert!(def.endpoints.is_empty());
        assert!(run.path().join("endpoints/front.json").exists());
        assert_eq!(store.load_all().unwrap(), std::slice::from_ref(&rec));
        // a container's stop touches only the endpoints
        let mut stopped = rec.clone();
        stopped.endpoints.clear();
        store.save_endpoints(&stopped).unwrap();
        assert_eq!(store.load_all().unwrap(), [stopped]);
        // a reboot empties the run dir: the network stays, without endpoints
        store.save_endpoints(&rec).unwrap();
        fs::remove_dir_all(run.path().join("endpoints")).unwrap();
        let loaded = store.load_all().unwrap();
        assert_eq!(loaded.len(), 1);
        assert!(loaded[0].endpoints.is_empty());
        // removal takes both files
        let store = Store::open(data.path(), run.path()).unwrap();
        store.save(&rec).unwrap();
        store.delete("front").unwrap();
        assert!(store.load_all().unwrap().is_empty());
        assert!(!run.path().join("endpoints/front.json").exists());
    }

    #[test]
    fn endpoints_inside_an_older_definition_are_read() {
        let (data, run) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let rec = record();
        fs::write(
            data.path().join("front.json"),
            serde_json::to_vec(&rec).unwrap(),
        )
        .unwrap();
        let store = Store::open(data.path(), run.path()).unwrap();
        assert_eq!(store.load_all().unwrap(), [rec]);
    }

    #[test]
    fn a_damaged_endpoints_file_is_a_clear_error() {
        let (data, run) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let store = Store::open(data.path(), run.path()).unwrap();
        store.save(&record()).unwrap();
        fs::write(run.path().join("endpoints/front.json"), b"{not json").unwrap();
        let err = store.load_all().unwrap_err().to_string();
        assert!(err.contains("endpoints/front.json"), "{err}");
    }
}
