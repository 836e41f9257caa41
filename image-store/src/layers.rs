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

/// The directories of a container's own that its overlay uses (upper and work), made by
/// [`LayerStore::overlay`] when missing.
pub const CONTAINER_SUBDIRS: [&str; 2] = ["upper", "work"];

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
        let [upper, work] = CONTAINER_SUBDIRS;
        let upperdir = container_dir.join(upper);
        let workdir = container_dir.join(work);
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

/// What a container's runtime mounts over: a bind-mount target (a file) or a mount point
/// (a directory), relative to the root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InitEntry {
    File(&'static str),
    Dir(&'static str),
}

impl InitEntry {
    fn path(self) -> &'static str {
        match self {
            InitEntry::File(p) | InitEntry::Dir(p) => p,
        }
    }
}

/// The init layer's name in the top layer's directory; a new version of the entries or of
/// how they are made takes a new name.
const INIT_NAME: &str = "init-v1";

impl LayerStore {
    /// [`Self::overlay`] with the image's init layer (Docker's, made once per image rather
    /// than per container) as its top-most lower layer: the `entries` the image lacks, so
    /// that a start finds every target in place. Without it the runtime creates them in
    /// the container's upper dir at each start: a copy-up of `/etc` and three new files on
    /// the data root's disk, about 0.5 ms of a `run` here. The rest is as `overlay`; no init
    /// layer when it cannot be made (the runtime then creates what is missing, as before).
    pub fn overlay_with_init(
        &self,
        chains: &[Digest],
        container_dir: &Path,
        entries: &[InitEntry],
    ) -> Result<OverlayMount> {
        let mut m = self.overlay(chains, container_dir)?;
        if m.chdir.is_some() {
            return Ok(m); // short names only: keep what fits in a page
        }
        let Some(top) = chains.last() else {
            return Ok(m);
        };
        match self.init_layer(chains, top, entries) {
            Ok(Some(init)) => {
                m.lowerdirs.insert(0, init);
                if m.options().len() > MAX_MOUNT_OPTIONS {
                    m.lowerdirs.remove(0);
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("making the init layer of {top}: {e}"),
        }
        Ok(m)
    }

    /// The init layer of the image whose layers are `chains` (bottom-most first), made
    /// when first asked for. `None` when the image has every entry already (remembered by
    /// a file in the layer directory's place).
    fn init_layer(
        &self,
        chains: &[Digest],
        top: &Digest,
        entries: &[InitEntry],
    ) -> Result<Option<PathBuf>> {
        let dst = self.path(top).join(INIT_NAME);
        match fs::symlink_metadata(&dst) {
            Ok(md) if md.is_dir() => return Ok(Some(dst)),
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).at("stat", dst),
        }
        let layers: Vec<PathBuf> = chains.iter().rev().map(|c| self.diff_dir(c)).collect();
        let staged = Staged {
            dir: Some(self.tmp.join(format!("init-{}", tmp_name()))),
        };
        let made = build_init(&layers, staged.path(), entries)?;
        if !made {
            fs::write(staged.path(), b"").at("write", staged.path())?;
        }
        match fs::rename(staged.path(), &dst) {
            Ok(()) => staged.disarm(),
            // made meanwhile by another start: theirs is the same
            Err(_) if dst.exists() => {}
            Err(e) => return Err(e).at("rename", dst),
        }
        Ok(made.then_some(dst))
    }
}

/// What the top-most layer holding `rel` has there (`None`: no layer has it).
fn top_entry(layers: &[PathBuf], rel: &Path) -> Option<fs::Metadata> {
    layers
        .iter()
        .find_map(|l| fs::symlink_metadata(l.join(rel)).ok())
}

/// Write into `out` (not yet there) each of `entries` that no layer has. Cautious: an entry
/// any layer holds (even one a later layer hides) is left alone, and so is one under a
/// parent that is not a plain directory where it shows (a symlink: the runtime resolves
/// those inside the container's root at its start). A parent made here copies the mode,
/// owner and times of the one it covers, which the merged view takes from it. Returns
/// whether anything was made (`out` exists then).
fn build_init(layers: &[PathBuf], out: &Path, entries: &[InitEntry]) -> Result<bool> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
    let mut made = false;
    let mut copied = Vec::new();
    for e in entries {
        let rel = Path::new(e.path());
        if top_entry(layers, rel).is_some() {
            continue;
        }
        // top-most first, each with what the image has there
        let parents: Vec<(&Path, Option<fs::Metadata>)> = rel
            .ancestors()
            .skip(1)
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| (p, top_entry(layers, p)))
            .collect();
        let plain = parents
            .iter()
            .all(|(_, md)| md.as_ref().is_none_or(|md| md.file_type().is_dir()));
        if !plain {
            continue;
        }
        if !made {
            fs::create_dir(out).at("create", out)?;
            made = true;
        }
        for (p, md) in parents.into_iter().rev() {
            let dir = out.join(p);
            if dir.exists() {
                continue;
            }
            fs::DirBuilder::new()
                .mode(0o755)
                .create(&dir)
                .at("create", &dir)?;
            if let Some(md) = md {
                fs::set_permissions(&dir, fs::Permissions::from_mode(md.mode() & 0o7777))
                    .at("chmod", &dir)?;
                std::os::unix::fs::lchown(&dir, Some(md.uid()), Some(md.gid()))
                    .at("chown", &dir)?;
                copied.push((dir, md));
            }
        }
        let path = out.join(rel);
        match e {
            InitEntry::File(_) => {
                fs::File::create(&path).at("create", &path)?;
                fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).at("chmod", &path)?;
            }
            InitEntry::Dir(_) => {
                fs::DirBuilder::new()
                    .mode(0o755)
                    .create(&path)
                    .at("create", &path)?;
            }
        }
    }
    // the times last: making what is in a directory changes its own
    for (dir, md) in copied.iter().rev() {
        let times = fs::FileTimes::new()
            .set_accessed(md.accessed().at("stat", dir)?)
            .set_modified(md.modified().at("stat", dir)?);
        fs::File::open(dir)
            .and_then(|f| f.set_times(times))
            .at("set times", dir)?;
    }
    Ok(made)
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

    /// Two layers: `etc` (mode 0750, an old mtime) in the lower, `proc` and a symlinked
    /// `lib` in the upper.
    fn two_layers(ls: &LayerStore) -> Vec<Digest> {
        use std::os::unix::fs::PermissionsExt;
        let mut chains = Vec::new();
        for (i, make) in [
            (|d: &Path| {
                fs::create_dir(d.join("etc")).unwrap();
                fs::write(d.join("etc/passwd"), "root:x:0:0::/:/bin/sh\n").unwrap();
                fs::set_permissions(d.join("etc"), fs::Permissions::from_mode(0o750)).unwrap();
                let old = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
                fs::File::open(d.join("etc"))
                    .unwrap()
                    .set_times(fs::FileTimes::new().set_modified(old).set_accessed(old))
                    .unwrap();
            }) as fn(&Path),
            |d: &Path| {
                fs::create_dir(d.join("proc")).unwrap();
                std::os::unix::fs::symlink("usr/lib", d.join("lib")).unwrap();
            },
        ]
        .into_iter()
        .enumerate()
        {
            let staged = ls.stage().unwrap();
            fs::create_dir_all(staged.diff()).unwrap();
            make(&staged.diff());
            let d = Digest::of_bytes(&(i as u32).to_le_bytes());
            ls.commit(staged, &d, &d, 0, 0).unwrap();
            chains.push(d);
        }
        chains
    }

    /// The init layer holds what no layer has, under a parent that looks as the image's;
    /// it is made once and sits on top of the image's layers.
    #[test]
    fn the_init_layer_holds_what_the_image_lacks() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let ls = LayerStore::open(dir.path()).unwrap();
        let chains = two_layers(&ls);
        let entries = [
            InitEntry::Dir("proc"),
            InitEntry::Dir("sys"),
            InitEntry::File("etc/hosts"),
            InitEntry::File("etc/passwd"),
            InitEntry::File("lib/x"),
            InitEntry::File("run/y/z"),
        ];
        let m = ls
            .overlay_with_init(&chains, &dir.path().join("c1"), &entries)
            .unwrap();
        let init = &m.lowerdirs[0];
        assert!(init.ends_with(INIT_NAME), "{:?}", m.lowerdirs);
        assert_eq!(m.lowerdirs[1], ls.diff_dir(&chains[1]));
        assert_eq!(m.lowerdirs.len(), 3);
        let mut found: Vec<String> = Vec::new();
        for e in walk(init) {
            found.push(e.strip_prefix(init).unwrap().display().to_string());
        }
        found.sort();
        // proc, etc/passwd: the image's; lib/x: under a symlink (the runtime's to resolve)
        assert_eq!(
            found,
            ["etc", "etc/hosts", "run", "run/y", "run/y/z", "sys"]
        );
        let (etc, img_etc) = (
            fs::metadata(init.join("etc")).unwrap(),
            fs::metadata(ls.diff_dir(&chains[0]).join("etc")).unwrap(),
        );
        assert_eq!(etc.mode(), img_etc.mode());
        assert_eq!(etc.mtime(), 1_000_000);
        assert_eq!(
            fs::metadata(init.join("run")).unwrap().mode() & 0o7777,
            0o755
        );
        assert!(fs::metadata(init.join("etc/hosts")).unwrap().is_file());
        // made once: a second container gets the same, and nothing is left in tmp/
        fs::write(init.join("mark"), "").unwrap();
        let m2 = ls
            .overlay_with_init(&chains, &dir.path().join("c2"), &entries)
            .unwrap();
        assert!(m2.lowerdirs[0].join("mark").exists());
        assert_eq!(fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    /// An image with every entry gets no init layer, and remembers that.
    #[test]
    fn no_init_layer_when_the_image_has_everything() {
        let dir = tempfile::tempdir().unwrap();
        let ls = LayerStore::open(dir.path()).unwrap();
        let chains = two_layers(&ls);
        let entries = [InitEntry::Dir("proc"), InitEntry::File("etc/passwd")];
        let m = ls
            .overlay_with_init(&chains, &dir.path().join("c1"), &entries)
            .unwrap();
        assert_eq!(m, ls.overlay(&chains, &dir.path().join("c1")).unwrap());
        let marker = dir
            .path()
            .join("layers")
            .join(chains[1].hex())
            .join(INIT_NAME);
        assert!(marker.is_file());
        assert_eq!(
            ls.overlay_with_init(&chains, &dir.path().join("c1"), &entries)
                .unwrap()
                .lowerdirs
                .len(),
            2
        );
    }

    fn walk(d: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(d).unwrap().flatten() {
            out.push(e.path());
            if e.file_type().unwrap().is_dir() {
                out.extend(walk(&e.path()));
            }
        }
        out
    }
}
