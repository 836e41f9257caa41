//! What is saved, under the data root, each file written whole (temp file, rename) before
//! the kernel is touched, so that an address is never handed out twice, even after the
//! daemon crashes:
//! - network definitions, `<state_dir>/<name>.json`, fsynced: they outlive a power loss;
//! - each network's endpoints (the addresses handed out), `<state_dir>/endpoints/<name>.<seq>.json`,
//!   not fsynced: a daemon crash keeps them (the page cache survives it), and a machine crash
//!   kills every container, whose endpoints `reconcile` drops at the next start anyway.
//!
//! Endpoints change at every container start and stop, so their save must be cheap: each
//! one goes to a new file (the next `seq`), and the one before is removed after. Renaming
//! over the old file instead makes ext4 write the new one out first (its `auto_da_alloc`),
//! which cost 0.4–1 ms on this machine; a new name costs a few microseconds. A daemon that
//! crashed between the two finds both: the higher `seq` wins.
//!
//! Definitions written by earlier versions hold their endpoints too: they are read when no
//! endpoints file exists.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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

/// The directory of network definitions, and of their endpoints.
#[derive(Debug)]
pub struct Store {
    dir: PathBuf,
    endpoints: PathBuf,
    /// The `seq` of each network's current endpoints file.
    seq: Mutex<HashMap<String, u64>>,
}

impl Store {
    pub fn open(dir: &Path) -> Result<Store, NetError> {
        let endpoints = dir.join("endpoints");
        fs::create_dir_all(&endpoints).map_err(|source| NetError::State {
            path: endpoints.clone(),
            source,
        })?;
        Ok(Store {
            dir: dir.to_path_buf(),
            endpoints,
            seq: Mutex::default(),
        })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    fn endpoints_path(&self, name: &str, seq: u64) -> PathBuf {
        self.endpoints.join(format!("{name}.{seq}.json"))
    }

    fn seqs(&self) -> std::sync::MutexGuard<'_, HashMap<String, u64>> {
        self.seq.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The endpoints files there are, by network name: every `seq` found.
    fn endpoint_files(&self) -> Result<HashMap<String, Vec<u64>>, NetError> {
        let mut found: HashMap<String, Vec<u64>> = HashMap::new();
        let rd = fs::read_dir(&self.endpoints).map_err(|source| NetError::State {
            path: self.endpoints.clone(),
            source,
        })?;
        for e in rd.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            let parsed = file
                .strip_suffix(".json")
                .and_then(|f| f.rsplit_once('.'))
                .and_then(|(name, seq)| Some((name.to_owned(), seq.parse::<u64>().ok()?)));
            if let Some((name, seq)) = parsed {
                found.entry(name).or_default().push(seq);
            }
        }
        Ok(found)
    }

    pub fn load_all(&self) -> Result<Vec<NetworkRecord>, NetError> {
        let err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| NetError::State { path, source }
        };
        let mut files = self.endpoint_files()?;
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).map_err(err(&self.dir))? {
            let path = entry.map_err(err(&self.dir))?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let data = fs::read(&path).map_err(err(&path))?;
                let mut rec: NetworkRecord = serde_json::from_slice(&data)
                    .map_err(|source| NetError::StateParse { path, source })?;
                let mut seqs = files.remove(&rec.name).unwrap_or_default();
                seqs.sort_unstable();
                if let Some(&seq) = seqs.last() {
                    let eps = self.endpoints_path(&rec.name, seq);
                    let data = fs::read(&eps).map_err(err(&eps))?;
                    rec.endpoints = serde_json::from_slice(&data)
                        .map_err(|source| NetError::StateParse { path: eps, source })?;
                    // an older one a crash left beside it
                    for old in &seqs[..seqs.len() - 1] {
                        let _ = fs::remove_file(self.endpoints_path(&rec.name, *old));
                    }
                    self.seqs().insert(rec.name.clone(), seq);
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

    /// Save a network's endpoints only (a container's start or stop): to the next file, then
    /// the one before goes.
    pub fn save_endpoints(&self, rec: &NetworkRecord) -> Result<(), NetError> {
        let mut seqs = self.seqs();
        let before = seqs.get(&rec.name).copied();
        let next = before.map_or(1, |s| s + 1);
        write_atomic(
            &self.endpoints,
            &self.endpoints_path(&rec.name, next),
            &rec.endpoints,
            false,
        )?;
        seqs.insert(rec.name.clone(), next);
        if let Some(old) = before {
            let _ = fs::remove_file(self.endpoints_path(&rec.name, old));
        }
        Ok(())
    }

    pub fn delete(&self, name: &str) -> Result<(), NetError> {
        let mut paths: Vec<PathBuf> = self
            .endpoint_files()?
            .remove(name)
            .unwrap_or_default()
            .into_iter()
            .map(|seq| self.endpoints_path(name, seq))
            .collect();
        paths.push(self.path(name));
        for path in paths {
            match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(NetError::State { path, source: e });
                }
                _ => {}
            }
        }
        self.seqs().remove(name);
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

    fn endpoint_files(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir.join("endpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn definitions_and_endpoints_apart_each_endpoints_save_a_new_file() {
        let data = tempfile::tempdir().unwrap();
        let store = Store::open(data.path()).unwrap();
        let rec = record();
        store.save(&rec).unwrap();
        let def: NetworkRecord =
            serde_json::from_slice(&fs::read(data.path().join("front.json")).unwrap()).unwrap();
        assert!(def.endpoints.is_empty());
        assert_eq!(endpoint_files(data.path()), ["front.1.json"]);
        assert_eq!(store.load_all().unwrap(), std::slice::from_ref(&rec));
        // a container's stop writes the next file and removes the one before
        let mut stopped = rec.clone();
        stopped.endpoints.clear();
        store.save_endpoints(&stopped).unwrap();
        assert_eq!(endpoint_files(data.path()), ["front.2.json"]);
        assert_eq!(store.load_all().unwrap(), std::slice::from_ref(&stopped));
        // a daemon that died between the write and the removal left two: the newer wins,
        // the older goes, and the sequence goes on from it
        fs::write(
            data.path().join("endpoints/front.1.json"),
            serde_json::to_vec(&rec.endpoints).unwrap(),
        )
        .unwrap();
        let store = Store::open(data.path()).unwrap();
        assert_eq!(store.load_all().unwrap(), std::slice::from_ref(&stopped));
        assert_eq!(endpoint_files(data.path()), ["front.2.json"]);
        store.save_endpoints(&rec).unwrap();
        assert_eq!(endpoint_files(data.path()), ["front.3.json"]);
        // a network whose name has dots keeps its own files
        let dotted = NetworkRecord {
            name: "front.2".into(),
            ..rec.clone()
        };
        store.save(&dotted).unwrap();
        let loaded = Store::open(data.path()).unwrap().load_all().unwrap();
        assert_eq!(loaded, [rec.clone(), dotted]);
        // removal takes definition and endpoints
        store.delete("front").unwrap();
        store.delete("front.2").unwrap();
        assert!(store.load_all().unwrap().is_empty());
        assert!(endpoint_files(data.path()).is_empty());
    }

    #[test]
    fn endpoints_inside_an_older_definition_are_read() {
        let data = tempfile::tempdir().unwrap();
        let rec = record();
        fs::write(
            data.path().join("front.json"),
            serde_json::to_vec(&rec).unwrap(),
        )
        .unwrap();
        let store = Store::open(data.path()).unwrap();
        assert_eq!(store.load_all().unwrap(), [rec]);
    }

    #[test]
    fn a_damaged_endpoints_file_is_a_clear_error() {
        let data = tempfile::tempdir().unwrap();
        let store = Store::open(data.path()).unwrap();
        store.save(&record()).unwrap();
        fs::write(data.path().join("endpoints/front.1.json"), b"{not json").unwrap();
        let err = store.load_all().unwrap_err().to_string();
        assert!(err.contains("endpoints/front.1.json"), "{err}");
    }
}
