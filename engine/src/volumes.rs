//! Named and anonymous volumes (the `local` driver): a directory per volume under
//! `<data-root>/volumes/<name>/_data`, its metadata beside it in `volume.json`, written
//! atomically. Which containers use a volume is read from the containers' mount lists, so
//! the two can never disagree.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ApiError;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Volume {
    pub name: String,
    pub created_at: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Made for one container (`-v /data`, an image's VOLUME): removed with it by `rm -v`.
    #[serde(default)]
    pub anonymous: bool,
}

#[derive(Debug)]
pub struct Volumes {
    root: PathBuf,
    /// Serialises create and remove, so a name is made or removed once.
    lock: Mutex<()>,
}

/// Docker's rule for volume names: two or more characters, starting alphanumeric.
pub fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    b.len() >= 2
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

pub fn no_such(name: &str) -> ApiError {
    ApiError::not_found(format!("get {name}: no such volume"))
}

impl Volumes {
    pub fn open(data_root: &Path) -> std::io::Result<Self> {
        let root = data_root.join("volumes");
        std::fs::create_dir_all(&root)?;
        Ok(Self {
            root,
            lock: Mutex::new(()),
        })
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Where a volume's content lives on the host.
    pub fn mountpoint(&self, name: &str) -> PathBuf {
        self.dir(name).join("_data")
    }

    fn guard(&self) -> std::sync::MutexGuard<'_, ()> {
        self.lock.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Create `name` (a fresh anonymous name when `None`); an existing volume of that name
    /// is returned as it is, as Docker does. The bool says whether it was made just now.
    pub fn create(
        &self,
        name: Option<&str>,
        labels: BTreeMap<String, String>,
    ) -> Result<(Volume, bool), ApiError> {
        let anonymous = name.is_none();
        let name = match name {
            Some(n) => n.to_owned(),
            None => crate::containers::random_id(),
        };
        if !valid_name(&name) {
            return Err(ApiError::bad_request(format!(
                "create {name}: \"{name}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
            )));
        }
        let _g = self.guard();
        if let Ok(v) = self.read(&name) {
            return Ok((v, false));
        }
        let v = Volume {
            name: name.clone(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            labels,
            anonymous,
        };
        let dir = self.dir(&name);
        let made = (|| {
            std::fs::create_dir_all(self.mountpoint(&name))?;
            let tmp = dir.join("volume.json.tmp");
            std::fs::write(&tmp, serde_json::to_vec(&v).unwrap_or_default())?;
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, dir.join("volume.json"))
        })();
        if let Err(e) = made {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(ApiError::internal(format!("create {name}: {e}")));
        }
        Ok((v, true))
    }

    fn read(&self, name: &str) -> Result<Volume, ApiError> {
        if !valid_name(name) {
            return Err(no_such(name));
        }
        let bytes = std::fs::read(self.dir(name).join("volume.json")).map_err(|_| no_such(name))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::internal(format!("volume {name}: corrupt metadata: {e}")))
    }

    pub fn get(&self, name: &str) -> Result<Volume, ApiError> {
        self.read(name)
    }

    pub fn list(&self) -> Vec<Volume> {
        let mut out: Vec<Volume> = std::fs::read_dir(&self.root)
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| self.read(&e.file_name().to_string_lossy()).ok())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Remove `name` unless `users` (the containers using it) is not empty.
    pub fn remove(&self, name: &str, users: &[String]) -> Result<(), ApiError> {
        let _g = self.guard();
        self.read(name)?;
        if !users.is_empty() {
            return Err(ApiError::new(
                hyper::StatusCode::CONFLICT,
                format!("remove {name}: volume is in use - [{}]", users.join(", ")),
            ));
        }
        let dir = self.dir(name);
        // the metadata first: a crash half-way leaves no volume that looks whole
        let _ = std::fs::remove_file(dir.join("volume.json"));
        std::fs::remove_dir_all(&dir).map_err(|e| ApiError::internal(format!("remove {name}: {e}")))
    }

    /// Bytes used by a volume (for prune's SpaceReclaimed and `system df -v`).
    pub fn size(&self, name: &str) -> u64 {
        tree_size(&self.mountpoint(name))
    }

    /// Docker's JSON for a volume.
    pub fn to_json(&self, v: &Volume) -> Value {
        json!({
            "CreatedAt": v.created_at,
            "Driver": "local",
            "Labels": if v.labels.is_empty() { Value::Null } else { json!(v.labels) },
            "Mountpoint": self.mountpoint(&v.name),
            "Name": v.name,
            "Options": Value::Null,
            "Scope": "local",
        })
    }
}

/// Bytes of the files under `p` (symlinks not followed).
pub fn tree_size(p: &Path) -> u64 {
    let Ok(md) = std::fs::symlink_metadata(p) else {
        return 0;
    };
    if md.is_dir() {
        std::fs::read_dir(p)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| tree_size(&e.path()))
            .sum()
    } else {
        md.len()
    }
}

/// One mount of a container, resolved at create (Docker's `MountPoint`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPoint {
    /// `bind`, `volume` or `tmpfs`.
    pub kind: String,
    /// The volume's name (volumes only).
    #[serde(default)]
    pub name: String,
    /// The host path (binds) or the volume's mountpoint.
    #[serde(default)]
    pub source: String,
    pub destination: String,
    pub rw: bool,
    /// Mode as given (`ro`, `z`, ...), shown by inspect.
    #[serde(default)]
    pub mode: String,
    /// Do not fill an empty volume from the image.
    #[serde(default)]
    pub nocopy: bool,
    /// tmpfs options (`size=...,mode=...`).
    #[serde(default)]
    pub tmpfs_options: String,
}

impl MountPoint {
    pub fn to_json(&self) -> Value {
        let mut m = json!({
            "Type": self.kind,
            "Source": self.source,
            "Destination": self.destination,
            "Mode": self.mode,
            "RW": self.rw,
            "Propagation": if self.kind == "bind" { "rprivate" } else { "" },
        });
        if self.kind == "volume" {
            m["Name"] = json!(self.name);
            m["Driver"] = json!("local");
        }
        m
    }
}

/// What a container asked for, before volumes are made: from `HostConfig.Binds`,
/// `HostConfig.Mounts` and `Config.Volumes` (the image's and `-v /path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountRequest {
    pub kind: String,
    /// Host path for binds, volume name for volumes (empty: anonymous).
    pub source: String,
    pub destination: String,
    pub rw: bool,
    pub mode: String,
    pub nocopy: bool,
    pub tmpfs_options: String,
}

fn clean_dest(d: &str, spec: &str) -> Result<String, ApiError> {
    if !d.starts_with('/') {
        return Err(ApiError::bad_request(format!(
            "invalid mount config for type \"volume\": invalid mount path: '{d}' mount path must be absolute ({spec})"
        )));
    }
    let mut out = String::new();
    for part in d.split('/').filter(|p| !p.is_empty() && *p != ".") {
        if part == ".." {
            if let Some(i) = out.rfind('/') {
                out.truncate(i);
            }
            continue;
        }
        out.push('/');
        out.push_str(part);
    }
    if out.is_empty() {
        return Err(ApiError::bad_request(format!(
            "invalid volume specification: '{spec}': invalid mount config: destination can't be '/'"
        )));
    }
    Ok(out)
}

/// Parse one `-v` entry: `SRC:DST[:MODE]` (SRC absolute = bind, else a volume name) or
/// `DST` alone (an anonymous volume).
pub fn parse_bind(spec: &str) -> Result<MountRequest, ApiError> {
    let parts: Vec<&str> = spec.split(':').collect();
    let bad = || ApiError::bad_request(format!("invalid volume specification: '{spec}'"));
    let (src, dst, mode) = match parts.as_slice() {
        [d] => ("", *d, ""),
        [s, d] => (*s, *d, ""),
        [s, d, m] => (*s, *d, *m),
        _ => return Err(bad()),
    };
    if dst.is_empty() || (parts.len() > 1 && src.is_empty()) {
        return Err(bad());
    }
    let mut rw = true;
    let mut nocopy = false;
    for o in mode.split(',').filter(|o| !o.is_empty()) {
        match o {
            "ro" => rw = false,
            "rw" => rw = true,
            "nocopy" => nocopy = true,
            "z" | "Z" | "private" | "rprivate" | "shared" | "rshared" | "slave" | "rslave"
            | "consistent" | "cached" | "delegated" => {}
            _ => {
                return Err(ApiError::bad_request(format!(
                    "invalid mode: {o} in volume specification '{spec}'"
                )))
            }
        }
    }
    let bind = src.starts_with('/');
    if !bind && !src.is_empty() && !valid_name(src) {
        return Err(ApiError::bad_request(format!(
            "create {src}: \"{src}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )));
    }
    if bind && nocopy {
        return Err(ApiError::bad_request(format!(
            "invalid mode: nocopy in volume specification '{spec}'"
        )));
    }
    Ok(MountRequest {
        kind: if bind { "bind" } else { "volume" }.into(),
        source: src.to_owned(),
        destination: clean_dest(dst, spec)?,
        rw,
        mode: mode.to_owned(),
        nocopy,
        tmpfs_options: String::new(),
    })
}

/// Parse one `HostConfig.Mounts` entry (`--mount type=...,source=...,target=...`).
pub fn parse_mount(m: &Value) -> Result<MountRequest, ApiError> {
    let kind = m["Type"].as_str().unwrap_or("").to_owned();
    let source = m["Source"].as_str().unwrap_or("").to_owned();
    let target = m["Target"].as_str().unwrap_or("");
    let spec = format!("type={kind},source={source},target={target}");
    if target.is_empty() {
        return Err(ApiError::bad_request(format!(
            "invalid mount config for type \"{kind}\": field Target must not be empty"
        )));
    }
    let destination = clean_dest(target, &spec)?;
    let rw = !m["ReadOnly"].as_bool().unwrap_or(false);
    match kind.as_str() {
        "bind" => {
            if !source.starts_with('/') {
                return Err(ApiError::bad_request(format!(
                    "invalid mount config for type \"bind\": invalid mount path: '{source}' mount path must be absolute"
                )));
            }
            if std::fs::metadata(&source).is_err() {
                return Err(ApiError::bad_request(format!(
                    "invalid mount config for type \"bind\": bind source path does not exist: {source}"
                )));
            }
        }
        "volume" => {
            if !source.is_empty() && !valid_name(&source) {
                return Err(ApiError::bad_request(format!(
                    "invalid mount config for type \"volume\": invalid volume name {source:?}"
                )));
            }
        }
        "tmpfs" => {
            if !source.is_empty() {
                return Err(ApiError::bad_request(
                    "invalid mount config for type \"tmpfs\": field Source must not be specified",
                ));
            }
        }
        other => {
            return Err(ApiError::bad_request(format!(
                "invalid mount config for type \"{other}\": mount type unknown"
            )))
        }
    }
    let mut tmpfs_options = Vec::new();
    if let Some(n) = m["TmpfsOptions"]["SizeBytes"].as_i64() {
        tmpfs_options.push(format!("size={n}"));
    }
    if let Some(n) = m["TmpfsOptions"]["Mode"].as_u64() {
        tmpfs_options.push(format!("mode={n:o}"));
    }
    Ok(MountRequest {
        kind,
        source,
        destination,
        rw,
        mode: String::new(),
        nocopy: m["VolumeOptions"]["NoCopy"].as_bool().unwrap_or(false),
        tmpfs_options: tmpfs_options.join(","),
    })
}

/// All of a container's mount requests, one per destination: `Mounts` and `Binds` first
/// (a duplicate destination between them is an error, as Docker's), then the config's
/// `Volumes` for destinations nothing else covers.
pub fn requests(host_config: &Value, config: &Value) -> Result<Vec<MountRequest>, ApiError> {
    let mut out: Vec<MountRequest> = Vec::new();
    let push = |r: MountRequest, out: &mut Vec<MountRequest>| {
        if out.iter().any(|x| x.destination == r.destination) {
            return Err(ApiError::bad_request(format!(
                "Duplicate mount point: {}",
                r.destination
            )));
        }
        out.push(r);
        Ok(())
    };
    for b in host_config["Binds"].as_array().into_iter().flatten() {
        push(parse_bind(b.as_str().unwrap_or(""))?, &mut out)?;
    }
    for m in host_config["Mounts"].as_array().into_iter().flatten() {
        push(parse_mount(m)?, &mut out)?;
    }
    if let Some(vols) = config["Volumes"].as_object() {
        for dst in vols.keys() {
            let r = parse_bind(dst)?;
            if !out.iter().any(|x| x.destination == r.destination) {
                out.push(r);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_like_docker() {
        assert!(valid_name("data"));
        assert!(valid_name("a1_b.c-d"));
        assert!(!valid_name("a"));
        assert!(!valid_name("_x"));
        assert!(!valid_name("a/b"));
        assert!(!valid_name("../etc"));
        assert!(!valid_name(""));
    }

    #[test]
    fn bind_specs() {
        let r = parse_bind("/host/dir:/data:ro").unwrap();
        assert_eq!(
            (
                r.kind.as_str(),
                r.source.as_str(),
                r.destination.as_str(),
                r.rw
            ),
            ("bind", "/host/dir", "/data", false)
        );
        let r = parse_bind("cache:/var/cache/").unwrap();
        assert_eq!(
            (
                r.kind.as_str(),
                r.source.as_str(),
                r.destination.as_str(),
                r.rw
            ),
            ("volume", "cache", "/var/cache", true)
        );
        let r = parse_bind("/data").unwrap();
        assert_eq!((r.kind.as_str(), r.source.as_str()), ("volume", ""));
        assert!(parse_bind("cache:/x:nocopy").unwrap().nocopy);
        for bad in [
            "",
            "a:b:c:d",
            ":/x",
            "cache:rel",
            "v:/",
            "cache:/x:bogus",
            "x y:/d",
            "/h:/d:nocopy",
        ] {
            assert!(parse_bind(bad).is_err(), "{bad} accepted");
        }
        assert_eq!(parse_bind("cc:/a/../b/./").unwrap().destination, "/b");
    }

    #[test]
    fn mounts_and_volumes_merge_by_destination() {
        let hc = json!({
            "Binds": ["named:/data"],
            "Mounts": [{"Type": "tmpfs", "Target": "/tmp", "TmpfsOptions": {"SizeBytes": 1024}}],
        });
        let cfg = json!({"Volumes": {"/data": {}, "/logs": {}}});
        let r = requests(&hc, &cfg).unwrap();
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].source, "named");
        assert_eq!(r[1].tmpfs_options, "size=1024");
        assert_eq!(
            (r[2].destination.as_str(), r[2].source.as_str()),
            ("/logs", "")
        );
        let dup = json!({"Binds": ["a1:/d", "/h:/d"]});
        assert!(requests(&dup, &json!({}))
            .unwrap_err()
            .message
            .contains("Duplicate mount point"));
        let bad = json!({"Mounts": [{"Type": "nfs", "Target": "/x"}]});
        assert!(requests(&bad, &json!({})).is_err());
    }

    #[test]
    fn create_list_remove() {
        let dir = tempfile::tempdir().unwrap();
        let v = Volumes::open(dir.path()).unwrap();
        let (a, made) = v.create(Some("data"), BTreeMap::new()).unwrap();
        assert!(made && !a.anonymous);
        let (_, again) = v.create(Some("data"), BTreeMap::new()).unwrap();
        assert!(!again);
        let (anon, _) = v.create(None, BTreeMap::new()).unwrap();
        assert_eq!(anon.name.len(), 64);
        assert!(anon.anonymous);
        assert_eq!(v.list().len(), 2);
        std::fs::write(v.mountpoint("data").join("f"), b"12345").unwrap();
        assert_eq!(v.size("data"), 5);
        let e = v.remove("data", &["c1".into()]).unwrap_err();
        assert_eq!(e.message, "remove data: volume is in use - [c1]");
        v.remove("data", &[]).unwrap();
        assert_eq!(
            v.get("data").unwrap_err().message,
            "get data: no such volume"
        );
        assert!(v.create(Some("bad/name"), BTreeMap::new()).is_err());
        assert_eq!(v.list().len(), 1);
    }
}
