//! The store: blobs + layers + the image records that `index.json` names.
//!
//! Image identity is the config digest (Docker's image ID). `index.json` holds one
//! descriptor per (image, tag) pair, plus one unnamed descriptor for an untagged image;
//! it is rewritten atomically (temp file, fsync, rename, fsync dir) on every change.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use oci_spec::image::{
    Descriptor, DescriptorBuilder, ImageConfiguration, ImageIndex, ImageIndexBuilder,
    ImageManifest, MediaType,
};

use crate::blobs::BlobStore;
use crate::digest::{chain_ids, Digest};
use crate::error::{IoContext, Result, StoreError};
use crate::layers::{LayerStore, OverlayMount};
use crate::lease::{Leases, WriteLease};
use crate::reference::Reference;

pub const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// berth's annotation on index.json entries: the image's repo digests, space-separated.
pub const REPO_DIGESTS: &str = "io.berth.repo-digests";
pub const MEDIA_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// One image, as loaded from its manifest and config.
#[derive(Debug, Clone)]
pub struct ImageRecord {
    pub id: Digest,
    pub manifest: Digest,
    pub manifest_media_type: MediaType,
    pub manifest_size: u64,
    /// Full references (`docker.io/library/busybox:latest`), sorted.
    pub refs: BTreeSet<Reference>,
    /// `repository@digest` names it was pulled or pushed by (Docker's RepoDigests); the
    /// digest may be an index's that led to this image's manifest.
    pub repo_digests: BTreeSet<Reference>,
    pub config: ImageConfiguration,
    /// Layer blobs as the manifest lists them (bottom-most first).
    pub layers: Vec<Descriptor>,
    pub diff_ids: Vec<Digest>,
    pub chain_ids: Vec<Digest>,
    /// Sum of unpacked layer sizes.
    pub size: u64,
}

impl ImageRecord {
    /// `busybox:latest` style tags, as the Engine API reports them.
    pub fn repo_tags(&self) -> Vec<String> {
        self.refs.iter().map(Reference::familiar).collect()
    }
}

impl PartialOrd for Reference {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Reference {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.to_string().cmp(&other.to_string())
    }
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub images: BTreeMap<Digest, Arc<ImageRecord>>,
    /// full ref string → image id
    pub refs: BTreeMap<String, Digest>,
}

/// The image store of one data root.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    pub(crate) blobs: BlobStore,
    pub(crate) layers: LayerStore,
    state: Mutex<State>,
    /// Writers (load, import, pull) hold a lease; garbage collection waits for none to be
    /// out, so GC never removes a blob that a writer has stored but not yet named.
    pub(crate) leases: Arc<Leases>,
}

/// What `rmi` did, in Docker's words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    Untagged(String),
    Deleted(Digest),
}

pub(crate) fn json_err<'d>(
    what: &'static str,
    digest: &'d Digest,
) -> impl FnOnce(serde_json::Error) -> StoreError + 'd {
    move |e| StoreError::InvalidJson {
        what,
        digest: digest.to_string(),
        reason: e.to_string(),
    }
}

impl Store {
    /// Open (creating if needed) the store at `root`. Leftovers of a crash are cleaned here.
    pub fn open(root: impl AsRef<Path>) -> Result<Self> {
        let root = root.as_ref().to_owned();
        fs::create_dir_all(&root).at("create", &root)?;
        {
            use std::os::unix::fs::PermissionsExt;
            // Layers may hold setuid files: keep them out of other users' reach.
            fs::set_permissions(&root, fs::Permissions::from_mode(0o700)).at("chmod", &root)?;
        }
        let layout = root.join("oci-layout");
        if !layout.exists() {
            atomic_write(&layout, br#"{"imageLayoutVersion":"1.0.0"}"#)?;
        }
        let store = Self {
            blobs: BlobStore::open(&root)?,
            layers: LayerStore::open(&root)?,
            root,
            state: Mutex::new(State::default()),
            leases: Arc::default(),
        };
        let index = store.read_index()?;
        let mut state = State::default();
        for desc in index.manifests() {
            let name = desc
                .annotations()
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .and_then(|n| Reference::parse(n).ok());
            let digest = Digest::parse(desc.digest().as_ref())?;
            let rec = match state.images.values().find(|r| r.manifest == digest) {
                Some(r) => r.id.clone(),
                None => match store.record_for_manifest(&digest, desc.media_type().clone()) {
                    Ok(rec) => {
                        let id = rec.id.clone();
                        state
                            .images
                            .entry(id.clone())
                            .or_insert_with(|| Arc::new(rec));
                        id
                    }
                    Err(e) => {
                        tracing::warn!("index entry {digest} is unusable: {e}");
                        continue;
                    }
                },
            };
            let repo_digests = desc
                .annotations()
                .as_ref()
                .and_then(|a| a.get(REPO_DIGESTS))
                .map(|v| {
                    v.split_whitespace()
                        .filter_map(|n| Reference::parse(n).ok())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            if let Some(r) = state.images.get_mut(&rec) {
                Arc::make_mut(r).repo_digests.extend(repo_digests);
            }
            if let Some(name) = name {
                if let Some(r) = state.images.get_mut(&rec) {
                    Arc::make_mut(r).refs.insert(name.clone());
                }
                state.refs.insert(name.to_string(), rec);
            }
        }
        *store.lock() = state;
        Ok(store)
    }

    /// Keep garbage collection away while the caller stores blobs or layers that no image
    /// names yet.
    pub fn write_lease(&self) -> WriteLease {
        self.leases.writer()
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn blobs(&self) -> &BlobStore {
        &self.blobs
    }

    pub fn layers(&self) -> &LayerStore {
        &self.layers
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn read_index(&self) -> Result<ImageIndex> {
        let p = self.root.join("index.json");
        match fs::read(&p) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| StoreError::InvalidJson {
                what: "index.json",
                digest: p.display().to_string(),
                reason: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(empty_index()),
            Err(e) => Err(e).at("read", p),
        }
    }

    /// Build the record of the image whose manifest is `manifest`.
    pub(crate) fn record_for_manifest(
        &self,
        manifest: &Digest,
        media_type: MediaType,
    ) -> Result<ImageRecord> {
        let bytes = self.blobs.read(manifest)?;
        let m: ImageManifest =
            serde_json::from_slice(&bytes).map_err(json_err("manifest", manifest))?;
        let id = Digest::parse(m.config().digest().as_ref())?;
        let (config, diff_ids) = parse_config(&self.blobs.read(&id)?, &id)?;
        if diff_ids.len() != m.layers().len() {
            return Err(StoreError::InvalidJson {
                what: "image config",
                digest: id.to_string(),
                reason: format!(
                    "{} diff_ids for {} layers in manifest {manifest}",
                    diff_ids.len(),
                    m.layers().len()
                ),
            });
        }
        let chain_ids = chain_ids(&diff_ids);
        let size = chain_ids
            .iter()
            .map(|c| self.layers.meta(c).map(|m| m.size).unwrap_or(0))
            .sum();
        Ok(ImageRecord {
            id,
            manifest: manifest.clone(),
            manifest_media_type: media_type,
            manifest_size: bytes.len() as u64,
            refs: BTreeSet::new(),
            repo_digests: BTreeSet::new(),
            config,
            layers: m.layers().clone(),
            diff_ids,
            chain_ids,
            size,
        })
    }

    /// Persist the refs: one descriptor per tag, one unnamed per untagged image.
    pub(crate) fn save_index(&self, state: &State) -> Result<()> {
        let mut manifests = Vec::new();
        for rec in state.images.values() {
            let base = |name: Option<&Reference>| -> Result<Descriptor> {
                let mut b = DescriptorBuilder::default()
                    .media_type(rec.manifest_media_type.clone())
                    .digest(oci_digest(&rec.manifest)?)
                    .size(rec.manifest_size);
                let mut ann = std::collections::HashMap::new();
                if let Some(n) = name {
                    ann.insert(REF_NAME.to_owned(), n.to_string());
                }
                if !rec.repo_digests.is_empty() {
                    let all: Vec<String> = rec.repo_digests.iter().map(|r| r.to_string()).collect();
                    ann.insert(REPO_DIGESTS.to_owned(), all.join(" "));
                }
                if !ann.is_empty() {
                    b = b.annotations(ann);
                }
                b.build()
                    .map_err(|e| StoreError::InvalidArchive(e.to_string()))
            };
            if rec.refs.is_empty() {
                manifests.push(base(None)?);
            }
            for r in &rec.refs {
                manifests.push(base(Some(r))?);
            }
        }
        let index = ImageIndexBuilder::default()
            .schema_version(2u32)
            .media_type(MediaType::ImageIndex)
            .manifests(manifests)
            .build()
            .map_err(|e| StoreError::InvalidArchive(e.to_string()))?;
        let json = serde_json::to_vec_pretty(&index)
            .map_err(|e| StoreError::InvalidArchive(e.to_string()))?;
        atomic_write(&self.root.join("index.json"), &json)
    }

    /// Add (or update) an image from a stored manifest, naming it by `refs`. Each ref moves
    /// to this image; an image left without refs stays as an untagged image.
    pub fn commit_image(
        &self,
        manifest: &Digest,
        media_type: MediaType,
        refs: &[Reference],
    ) -> Result<Arc<ImageRecord>> {
        self.commit_image_with_digests(manifest, media_type, refs, &[])
    }

    /// `commit_image`, also recording `repository@digest` names for the image.
    pub fn commit_image_with_digests(
        &self,
        manifest: &Digest,
        media_type: MediaType,
        refs: &[Reference],
        repo_digests: &[Reference],
    ) -> Result<Arc<ImageRecord>> {
        let rec = self.record_for_manifest(manifest, media_type)?;
        let mut st = self.lock();
        let id = rec.id.clone();
        st.images.entry(id.clone()).or_insert_with(|| Arc::new(rec));
        for r in refs {
            self.set_ref(&mut st, r, &id);
        }
        if let Some(rec) = st.images.get_mut(&id) {
            Arc::make_mut(rec)
                .repo_digests
                .extend(repo_digests.iter().cloned());
        }
        self.save_index(&st)?;
        Ok(st.images[&id].clone())
    }

    /// Remember that `id` is known to a registry as `repo_digest` (after a push).
    pub fn add_repo_digest(&self, id: &Digest, repo_digest: &Reference) -> Result<()> {
        let mut st = self.lock();
        let Some(rec) = st.images.get_mut(id) else {
            return Err(StoreError::ImageNotFound(id.to_string()));
        };
        if !Arc::make_mut(rec).repo_digests.insert(repo_digest.clone()) {
            return Ok(());
        }
        self.save_index(&st)
    }

    fn set_ref(&self, st: &mut State, r: &Reference, id: &Digest) {
        if let Some(old) = st.refs.insert(r.to_string(), id.clone()) {
            if let Some(o) = st.images.get_mut(&old) {
                Arc::make_mut(o).refs.remove(r);
            }
        }
        if let Some(rec) = st.images.get_mut(id) {
            Arc::make_mut(rec).refs.insert(r.clone());
        }
    }

    /// Find an image by reference, full or short ID, or `name@digest`.
    pub fn resolve(&self, name: &str) -> Result<Arc<ImageRecord>> {
        let st = self.lock();
        Self::resolve_in(&st, name).cloned()
    }

    fn resolve_in<'s>(st: &'s State, name: &str) -> Result<&'s Arc<ImageRecord>> {
        // Docker names a missing image by its familiar form with tag: `nosuch:latest`.
        let not_found = || {
            StoreError::ImageNotFound(
                Reference::parse(name)
                    .map(|r| r.familiar())
                    .unwrap_or_else(|_| name.to_owned()),
            )
        };
        if let Ok(r) = Reference::parse(name) {
            if let Some(d) = r.digest() {
                if let Some(rec) = st.images.values().find(|rec| {
                    (&rec.manifest == d
                        && rec.refs.iter().any(|x| x.repository() == r.repository()))
                        || rec.repo_digests.contains(&r)
                }) {
                    return Ok(rec);
                }
            } else if let Some(id) = st.refs.get(&r.to_string()) {
                return st.images.get(id).ok_or_else(not_found);
            }
        }
        let hex = name.strip_prefix("sha256:").unwrap_or(name);
        if !hex.is_empty()
            && hex.len() <= 64
            && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        {
            let mut it = st.images.values().filter(|r| r.id.hex().starts_with(hex));
            if let Some(first) = it.next() {
                if it.next().is_some() {
                    return Err(StoreError::AmbiguousId(name.to_owned()));
                }
                return Ok(first);
            }
        }
        Err(not_found())
    }

    pub fn list(&self) -> Vec<Arc<ImageRecord>> {
        self.lock().images.values().cloned().collect()
    }

    pub fn config_bytes(&self, id: &Digest) -> Result<Vec<u8>> {
        self.blobs.read(id)
    }

    /// `docker tag SOURCE TARGET`.
    pub fn tag(&self, source: &str, target: &Reference) -> Result<()> {
        let mut st = self.lock();
        let id = Self::resolve_in(&st, source)?.id.clone();
        let target = if target.tag().is_none() && target.digest().is_none() {
            target.with_tag(crate::reference::DEFAULT_TAG)?
        } else {
            target.clone()
        };
        self.set_ref(&mut st, &target, &id);
        self.save_index(&st)
    }

    /// `docker rmi`: untag a reference, and delete the image when nothing names it any more.
    /// `in_use` describes containers using an image (by id), which blocks deletion.
    pub fn remove(
        &self,
        name: &str,
        force: bool,
        in_use: &dyn Fn(&Digest) -> Option<String>,
    ) -> Result<Vec<Removed>> {
        let chains = self
            .resolve(name)
            .map(|r| r.chain_ids.clone())
            .unwrap_or_default();
        let mut out = self.remove_refs(name, force, in_use)?;
        if out.iter().any(|r| matches!(r, Removed::Deleted(_))) {
            // As Docker: the image's layers that went with it are listed too, top-most first.
            let (_, gone) = self.collect()?;
            out.extend(
                chains
                    .iter()
                    .rev()
                    .filter(|c| gone.contains(c))
                    .cloned()
                    .map(Removed::Deleted),
            );
        }
        Ok(out)
    }

    /// `remove` without the garbage collection.
    pub(crate) fn remove_refs(
        &self,
        name: &str,
        force: bool,
        in_use: &dyn Fn(&Digest) -> Option<String>,
    ) -> Result<Vec<Removed>> {
        let mut out = Vec::new();
        {
            let mut st = self.lock();
            let rec = Self::resolve_in(&st, name)?.clone();
            let by_ref = Reference::parse(name)
                .ok()
                .filter(|r| r.digest().is_none() && st.refs.contains_key(&r.to_string()));
            let untag: Vec<Reference> = match by_ref {
                Some(r) => vec![r],
                None => {
                    // by id: all tags go, which needs force when there are several
                    if rec.refs.len() > 1 && !force {
                        return Err(StoreError::MultipleRefs {
                            id: rec.id.short().to_owned(),
                        });
                    }
                    rec.refs.iter().cloned().collect()
                }
            };
            let remaining = rec.refs.len() - untag.len();
            let users = if remaining == 0 {
                in_use(&rec.id)
            } else {
                None
            };
            if let (Some(users), false) = (&users, force) {
                return Err(StoreError::InUse {
                    id: rec.id.short().to_owned(),
                    users: users.clone(),
                });
            }
            let id = rec.id.clone();
            for r in &untag {
                st.refs.remove(&r.to_string());
                out.push(Removed::Untagged(r.familiar()));
            }
            if let Some(r) = st.images.get_mut(&id) {
                let r = Arc::make_mut(r);
                for u in &untag {
                    r.refs.remove(u);
                }
            }
            // An image that containers use stays, untagged, even when forced (as Docker).
            if remaining == 0 && users.is_none() {
                st.images.remove(&id);
                out.push(Removed::Deleted(id));
            }
            self.save_index(&st)?;
        }
        Ok(out)
    }

    /// The overlay mount spec for a container's rootfs on image `id`.
    pub fn overlay(&self, id: &Digest, container_dir: &Path) -> Result<OverlayMount> {
        let rec = self.resolve(id.as_str())?;
        self.layers.overlay(&rec.chain_ids, container_dir)
    }

    /// [`Self::overlay`] with the image's init layer holding `entries` (see
    /// [`crate::layers::LayerStore::overlay_with_init`]).
    pub fn overlay_with_init(
        &self,
        id: &Digest,
        container_dir: &Path,
        entries: &[crate::layers::InitEntry],
    ) -> Result<OverlayMount> {
        let rec = self.resolve(id.as_str())?;
        self.layers
            .overlay_with_init(&rec.chain_ids, container_dir, entries)
    }

    /// Delete every blob and layer that no image references. Returns the unpacked layer bytes
    /// freed (what Docker reports as space reclaimed).
    pub fn gc(&self) -> Result<u64> {
        Ok(self.collect()?.0)
    }

    /// `gc`, also returning the chain IDs of the layers it removed.
    pub(crate) fn collect(&self) -> Result<(u64, Vec<Digest>)> {
        let _excl = self.leases.exclusive();
        // Roots: every named image, and every pinned one (the build cache).
        let mut keep_blobs = BTreeSet::new();
        let mut keep_layers = BTreeSet::new();
        let mut keep = |rec: &ImageRecord| {
            keep_blobs.insert(rec.manifest.clone());
            keep_blobs.insert(rec.id.clone());
            for l in &rec.layers {
                if let Ok(d) = Digest::parse(l.digest().as_ref()) {
                    keep_blobs.insert(d);
                }
            }
            keep_layers.extend(rec.chain_ids.iter().cloned());
        };
        for rec in self.lock().images.values() {
            keep(rec);
        }
        for m in self.pinned_manifests() {
            if let Ok(rec) = self.record_for_manifest(&m, MediaType::ImageManifest) {
                keep(&rec);
            }
        }
        let mut reclaimed = 0;
        let mut removed = Vec::new();
        for d in self.blobs.list()?.into_iter().flatten() {
            if !keep_blobs.contains(&d) {
                self.blobs.remove(&d)?;
            }
        }
        for c in self.layers.list()? {
            if !keep_layers.contains(&c) {
                reclaimed += self.layers.meta(&c).map(|m| m.size).unwrap_or(0);
                self.layers.remove(&c)?;
                removed.push(c);
            }
        }
        Ok((reclaimed, removed))
    }
}

/// An image config (whose digest is `id`) and its layers' diff IDs.
pub(crate) fn parse_config(bytes: &[u8], id: &Digest) -> Result<(ImageConfiguration, Vec<Digest>)> {
    let config: ImageConfiguration =
        serde_json::from_slice(bytes).map_err(json_err("image config", id))?;
    let diff_ids = config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|d| Digest::parse(d))
        .collect::<Result<Vec<_>>>()?;
    Ok((config, diff_ids))
}

pub(crate) fn oci_digest(d: &Digest) -> Result<oci_spec::image::Digest> {
    d.as_str()
        .parse()
        .map_err(|_| StoreError::InvalidDigest(d.to_string()))
}

fn empty_index() -> ImageIndex {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(Vec::new())
        .build()
        .unwrap_or_default()
}

/// Write a small file so that readers see the old or the new content, never a mix,
/// also after a power loss.
pub(crate) fn atomic_write(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    let mut f = File::create(&tmp).at("create", &tmp)?;
    f.write_all(bytes).at("write", &tmp)?;
    f.sync_all().at("fsync", &tmp)?;
    fs::rename(&tmp, path).at("rename", path)?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .at("fsync", dir)?;
    }
    Ok(())
}
