//! Unpacked layers: `layers/<chain-id>/diff` (+ `meta.json`), created once per chain ID, and
//! the overlay mount spec that stacks them for a container.
//!
//! A layer directory is built in `tmp/` and renamed into place: if `layers/<chain>` exists,
//! it is complete. Short links `l/<id>` keep long lowerdir lists under the kernel's limit.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::digest::Digest;
use crate::error::{IoContext, Result, StoreError};

/// What we remember about an unpacked layer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LayerMeta {
    pub chain_id: Digest,
    pub diff_id: Digest,
    /// Bytes of file content in the layer (what `docker images` sums as SIZE).
    pub size: u64,
    /// Size of the uncompressed tar stream (its digest is `diff_id`).
    pub tar_size: u64,
    /// Short link name under `l/`.
    pub link: String,
}

#[derive(Debug)]
pub struct LayerStore {
    dir: PathBuf,
    links: PathBuf,
    tmp: PathBuf,
    empty: PathBuf,
}

static TMP_SEQ: AtomicU64 = AtomicU64::new(0);

impl serde::Serialize for Digest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Digest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The kernel limit on mount options is one page.
const MAX_MOUNT_OPTIONS: usize = 4095;

/// An overlay mount for a container's root filesystem, as data: the caller mounts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayMount {
    /// Top-most first, as overlayfs wants them.
    pub lowerdirs: Vec<PathBuf>,
    pub upperdir: PathBuf,
    pub workdir: PathBuf,
    /// When set, `lowerdirs` are short names relative to this directory, and the mount must
    /// be performed with it as the working directory (the options would be too long otherwise).
    pub chdir: Option<PathBuf>,
}

impl OverlayMount {
    pub fn options(&self) -> String {
        let lower: Vec<String> = self
            .lowerdirs
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            self.upperdir.display(),
            self.workdir.display()
        )
    }
}

fn tmp_name() -> String {
    format!(
        "{}-{}",
        std::process::id(),
        TMP_SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

impl LayerStore {
    pub(crate) fn open(root: &Path) -> Result<Self> {
        let s = Self {
            dir: root.join("layers"),
            links: root.join("l"),
            tmp: root.join("tmp"),
            empty: root.join("layers-empty"),
        };
        for d in [&s.dir, &s.links, &s.empty] {
            fs::create_dir_all(d).at("create", d)?;
        }
        // Anything in tmp/ is a half-built layer from a crash.
        if s.tmp.exists() {
            remove_tree(&s.tmp)?;
        }
        fs::create_dir_all(&s.tmp).at("create", &s.tmp)?;
        Ok(s)
    }

    fn path(&self, chain: &Digest) -> PathBuf {
        self.dir.join(chain.hex())
    }

    pub fn diff_dir(&self, chain: &Digest) -> PathBuf {
        self.path(chain).join("diff")
    }

    pub fn exists(&self, chain: &Digest) -> bool {
        self.path(chain).join("meta.json").is_file()
    }

    pub fn meta(&self, chain: &Digest) -> Result<LayerMeta> {
        let p = self.path(chain).join("meta.json");
        let bytes = fs::read(&p).at("read", &p)?;
        serde_json::from_slice(&bytes).map_err(|e| StoreError::InvalidJson {
            what: "layer metadata",
            digest: chain.to_string(),
            reason: e.to_string(),
        })
    }

    pub fn list(&self) -> Result<Vec<Digest>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir).at("read", &self.dir)? {
            let e = e.at("read", &self.dir)?;
            if let Ok(d) = Digest::from_hex(&e.file_name().to_string_lossy()) {
                out.push(d);
            }
        }
        Ok(out)
    }

    /// A fresh staging directory (with `diff/` inside) that [`LayerStore::commit`] moves into place.
    pub fn stage(&self) -> Result<Staged> {
        let dir = self.tmp.join(format!("layer-{}", tmp_name()));
        let diff = dir.join("diff");
        fs::create_dir_all(&diff).at("create", &diff)?;
        Ok(Staged { dir: Some(dir) })
    }

    /// Move a staged layer into place as `chain`. If another writer got there first, ours is dropped.
    pub fn commit(
        &self,
        staged: Staged,
        chain: &Digest,
        diff_id: &Digest,
        size: u64,
        tar_size: u64,
    ) -> Result<LayerMeta> {
        if self.exists(chain) {
            return self.meta(chain);
        }
        let link = chain.hex()[..26].to_owned();
        let meta = LayerMeta {
            chain_id: chain.clone(),
            diff_id: diff_id.clone(),
            size,
            tar_size,
            link: link.clone(),
        };
        let sdir = staged.path().to_owned();
        let mp = sdir.join("meta.json");
        let json = serde_json::to_vec_pretty(&meta).map_err(|e| StoreError::InvalidJson {
            what: "layer metadata",
            digest: chain.to_string(),
            reason: e.to_string(),
        })?;
        fs::write(&mp, json).at("write", &mp)?;
        let dst = self.path(chain);
        match fs::rename(&sdir, &dst) {
            Ok(()) => {
                staged.disarm();
            }
            Err(_) if self.exists(chain) => return self.meta(chain),
            Err(e) => return Err(e).at("rename", dst),
        }
        let lp = self.links.join(&link);
        let _ = fs::remove_file(&lp);
        std::os::unix::fs::symlink(format!("../layers/{}/diff", chain.hex()), &lp)
            .at("symlink", &lp)?;
        Ok(meta)
    }

    pub fn remove(&self, chain: &Digest) -> Result<()> {
        let p = self.path(chain);
        if let Ok(meta) = self.meta(chain) {
            let _ = fs::remove_file(self.links.join(meta.link));
        }
        // Rename first so a half-removed layer never looks complete.
        let doomed = self.tmp.join(format!("rm-{}", tmp_name()));
        match fs::rename(&p, &doomed) {
            Ok(()) => remove_tree(&doomed),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).at("rename", p),
        }
    }

    /// The overlay mount for a container on top of `chains` (bottom-most first).
    pub fn overlay(&self, chains: &[Digest], container_dir: &Path) -> Result<OverlayMount> {
        let upperdir = container_dir.join("upper");
        let workdir = container_dir.join("work");
        for d in [&upperdir, &workdir] {
            fs::create_dir_all(d).at("create", d)?;
        }
        let mut m = OverlayMount {
            lowerdirs: chains.iter().rev().map(|c| self.diff_dir(c)).collect(),
            upperdir,
            workdir,
            chdir: None,
        };
        if m.lowerdirs.is_empty() {
            m.lowerdirs.push(self.empty.clone());
        }
        if m.options().len() <= MAX_MOUNT_OPTIONS {
            return Ok(m);
        }
        let mut short = Vec::with_capacity(chains.len());
        for c in chains.iter().rev() {
            short.push(PathBuf::from(self.meta(c)?.link));
        }
        m.lowerdirs = short;
        m.chdir = Some(self.links.clone());
        let len = m.options().len();
        if len > MAX_MOUNT_OPTIONS {
            return Err(StoreError::TooManyLayers {
                layers: chains.len(),
                len,
                max: MAX_MOUNT_OPTIONS,
            });
        }
        Ok(m)
    }
}

/// A staging directory; removed on drop unless committed.
#[derive(Debug)]
pub struct Staged {
    dir: Option<PathBuf>,
}

impl Staged {
    pub fn path(&self) -> &Path {
        self.dir.as_deref().unwrap_or(Path::new("/nonexistent"))
    }
    pub fn diff(&self) -> PathBuf {
        self.path().join("diff")
    }
    fn disarm(mut self) {
        self.dir = None;
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(d) = self.dir.take() {
            let _ = remove_tree(&d);
        }
    }
}

/// Remove a directory tree, including read-only dirs (a layer may contain 0555 dirs).
pub(crate) fn remove_tree(p: &Path) -> Result<()> {
    match fs::remove_dir_all(p) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(_) => {
            make_writable(p);
            match fs::remove_dir_all(p) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e).at("remove", p),
                _ => Ok(()),
            }
        }
    }
}

fn make_writable(p: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(md) = fs::symlink_metadata(p) {
        if md.is_dir() {
            let _ = fs::set_permissions(p, fs::Permissions::from_mode(0o700));
            if let Ok(rd) = fs::read_dir(p) {
                for e in rd.flatten() {
                    make_writable(&e.path());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_falls_back_to_short_links_then_errors() {
        let dir = tempfile::tempdir().unwrap();
        let ls = LayerStore::open(dir.path()).unwrap();
        let mut chains = Vec::new();
        for i in 0..60u32 {
            let staged = ls.stage().unwrap();
            let d = Digest::of_bytes(&i.to_le_bytes());
            ls.commit(staged, &d, &d, 0, 0).unwrap();
            chains.push(d);
        }
        let cdir = dir.path().join("c1");
        let m = ls.overlay(&chains[..2], &cdir).unwrap();
        assert!(m.chdir.is_none());
        assert_eq!(m.lowerdirs[0], ls.diff_dir(&chains[1]), "top-most first");
        let m = ls.overlay(&chains, &cdir).unwrap();
        assert_eq!(m.chdir.as_deref(), Some(dir.path().join("l").as_path()));
        assert!(m.options().len() <= MAX_MOUNT_OPTIONS);
        assert!(dir
            .path()
            .join("l")
            .join(&m.lowerdirs[0])
            .join(".")
            .is_dir());
        let many: Vec<Digest> = chains.iter().cycle().take(400).cloned().collect();
        let err = ls.overlay(&many, &cdir).unwrap_err();
        assert!(
            matches!(err, StoreError::TooManyLayers { layers: 400, .. }),
            "{err}"
        );
    }
}
