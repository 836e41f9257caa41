//! Loading an archive in one streaming pass: each layer file is stored as a blob and unpacked
//! while it is read; small JSON files are kept in memory. Only when the whole archive has
//! been read and every digest checks out are layers named and refs written, so a failed or
//! killed load leaves no partial image visible.

use std::collections::{BTreeMap, HashMap};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use oci_spec::image::{ImageIndex, ImageManifest, MediaType};
use serde::Deserialize;

use super::archive_path;
use crate::digest::{chain_ids, Digest};
use crate::error::{Result, StoreError};
use crate::reference::Reference;
use crate::store::{json_err, parse_config, Store};
use crate::tee::LayerIngest;
use crate::unpack::UnpackOptions;

/// Small files (JSON, VERSION) are held in memory up to this size each.
const MAX_META_FILE: u64 = 32 << 20;

/// One image that a load added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadedImage {
    pub id: Digest,
    pub refs: Vec<Reference>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct LegacyManifest {
    config: String,
    #[serde(default)]
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

/// A docker-archive's `manifest.json`.
pub(crate) fn parse_legacy_manifest(bytes: &[u8]) -> Result<Vec<LegacyManifest>> {
    serde_json::from_slice(bytes).map_err(|e| invalid(format!("manifest.json: {e}")))
}

fn invalid(msg: impl Into<String>) -> StoreError {
    StoreError::InvalidArchive(msg.into())
}

#[derive(Default)]
struct Contents {
    meta: HashMap<PathBuf, Vec<u8>>,
    layers: HashMap<PathBuf, LayerIngest>,
    links: HashMap<PathBuf, PathBuf>,
}

impl Contents {
    /// Follow archive-internal links to the real entry.
    fn resolve(&self, p: &Path) -> Result<PathBuf> {
        let mut cur =
            archive_path(p).ok_or_else(|| invalid(format!("path {p:?} leaves the archive")))?;
        for _ in 0..16 {
            match self.links.get(&cur) {
                Some(t) => cur = t.clone(),
                None => return Ok(cur),
            }
        }
        Err(invalid(format!("too many levels of links at {p:?}")))
    }

    fn meta(&self, p: &Path) -> Result<&[u8]> {
        let r = self.resolve(p)?;
        self.meta
            .get(&r)
            .map(Vec::as_slice)
            .ok_or_else(|| invalid(format!("{} is missing from the archive", p.display())))
    }

    fn blob_path(d: &str) -> Result<PathBuf> {
        let d = Digest::parse(d)?;
        Ok(PathBuf::from(format!("blobs/sha256/{}", d.hex())))
    }
}

impl Store {
    /// Load a docker-archive or OCI archive. Returns the images it named (or added untagged).
    pub fn load(&self, reader: impl Read) -> Result<Vec<LoadedImage>> {
        let _writer = self.leases.writer();
        let mut c = Contents::default();
        // Large reads: the tar reader asks for 512-byte headers, each of which would otherwise
        // be a round trip to the (async) request body.
        let mut archive = tar::Archive::new(std::io::BufReader::with_capacity(1 << 20, reader));
        let opts = UnpackOptions::for_overlay();
        for entry in archive
            .entries()
            .map_err(|e| invalid(format!("reading the archive: {e}")))?
        {
            let entry = entry.map_err(|e| invalid(format!("reading the archive: {e}")))?;
            let raw = entry
                .path()
                .map_err(|e| invalid(e.to_string()))?
                .into_owned();
            let Some(path) = archive_path(&raw) else {
                return Err(invalid(format!("entry {raw:?} leaves the archive")));
            };
            let kind = entry.header().entry_type();
            if kind.is_symlink() || kind.is_hard_link() {
                let target = entry
                    .link_name()
                    .map_err(|e| invalid(e.to_string()))?
                    .unwrap_or_default()
                    .into_owned();
                // symlinks are relative to their directory, hard links to the archive root
                let joined = if kind.is_symlink() {
                    path.parent().unwrap_or(Path::new("")).join(&target)
                } else {
                    target.clone()
                };
                let t = archive_path(&joined).ok_or_else(|| {
                    invalid(format!("link {raw:?} -> {target:?} leaves the archive"))
                })?;
                c.links.insert(path, t);
                continue;
            }
            if !kind.is_file() {
                continue;
            }
            let size = entry.size();
            let mut br = BufReader::with_capacity(64 << 10, entry);
            let head = br
                .fill_buf()
                .map_err(|e| invalid(format!("reading {raw:?}: {e}")))?;
            let is_meta = size < 512
                || (size <= MAX_META_FILE && matches!(head.first(), Some(b'{') | Some(b'[')));
            if is_meta {
                let mut buf = Vec::with_capacity(size as usize);
                br.read_to_end(&mut buf)
                    .map_err(|e| invalid(format!("reading {raw:?}: {e}")))?;
                if buf.len() as u64 != size {
                    return Err(invalid(format!("entry {raw:?} is truncated")));
                }
                c.meta.insert(path, buf);
            } else {
                let ingest = LayerIngest::run(self, &mut br, opts).map_err(|e| match e {
                    StoreError::Layer { source, .. } => StoreError::Layer {
                        digest: raw.display().to_string(),
                        source,
                    },
                    other => other,
                })?;
                if ingest.blob_size != size {
                    return Err(invalid(format!("entry {raw:?} is truncated")));
                }
                c.layers.insert(path, ingest);
            }
        }
        let has_legacy = c.meta.contains_key(Path::new("manifest.json"));
        let images = if has_legacy {
            self.plan_legacy(&c)?
        } else if c.meta.contains_key(Path::new("index.json")) {
            self.plan_oci(&c)?
        } else {
            return Err(invalid(
                "neither manifest.json nor index.json found: not a docker-archive or OCI archive",
            ));
        };
        self.commit_planned(c, images)
    }

    fn plan_legacy(&self, c: &Contents) -> Result<Vec<Planned>> {
        let bytes = c.meta(Path::new("manifest.json"))?;
        let manifests = parse_legacy_manifest(bytes)?;
        let mut out = Vec::new();
        for m in manifests {
            let config = c.meta(Path::new(&m.config))?.to_vec();
            let refs = m
                .repo_tags
                .unwrap_or_default()
                .iter()
                .map(|t| Reference::parse(t))
                .collect::<Result<Vec<_>>>()?;
            let layers = m
                .layers
                .iter()
                .map(|l| c.resolve(Path::new(l)))
                .collect::<Result<Vec<_>>>()?;
            out.push(Planned {
                config,
                manifest: None,
                layers,
                refs,
            });
        }
        Ok(out)
    }

    fn plan_oci(&self, c: &Contents) -> Result<Vec<Planned>> {
        let index: ImageIndex = serde_json::from_slice(c.meta(Path::new("index.json"))?)
            .map_err(|e| invalid(format!("index.json: {e}")))?;
        let mut out = Vec::new();
        let mut todo: Vec<_> = index
            .manifests()
            .iter()
            .map(|d| (d.clone(), None::<Reference>))
            .collect();
        while let Some((desc, inherited)) = todo.pop() {
            let ann = desc.annotations().clone().unwrap_or_default();
            let name = ann
                .get("io.containerd.image.name")
                .or_else(|| {
                    ann.get(crate::store::REF_NAME)
                        .filter(|n| n.contains(':') || n.contains('/'))
                })
                .and_then(|n| Reference::parse(n).ok())
                .or(inherited);
            let bytes = c.meta(&Contents::blob_path(desc.digest().as_ref())?)?;
            let d = Digest::parse(desc.digest().as_ref())?;
            if Digest::of_bytes(bytes) != d {
                return Err(StoreError::DigestMismatch {
                    expected: d.to_string(),
                    actual: Digest::of_bytes(bytes).to_string(),
                });
            }
            match desc.media_type() {
                MediaType::ImageIndex => {
                    let sub: ImageIndex =
                        serde_json::from_slice(bytes).map_err(json_err("index", &d))?;
                    // Nested index: the host's platform, else the first entry.
                    let arch = crate::import::host_arch();
                    let pick = sub
                        .manifests()
                        .iter()
                        .find(|m| {
                            m.platform()
                                .as_ref()
                                .is_some_and(|p| p.architecture() == &arch)
                        })
                        .or_else(|| sub.manifests().first());
                    if let Some(m) = pick {
                        todo.push((m.clone(), name));
                    }
                }
                MediaType::ImageManifest | MediaType::Other(_) => {
                    let m: ImageManifest =
                        serde_json::from_slice(bytes).map_err(json_err("manifest", &d))?;
                    let config = c
                        .meta(&Contents::blob_path(m.config().digest().as_ref())?)?
                        .to_vec();
                    let layers = m
                        .layers()
                        .iter()
                        .map(|l| Contents::blob_path(l.digest().as_ref()))
                        .collect::<Result<Vec<_>>>()?;
                    out.push(Planned {
                        config,
                        manifest: Some((d, bytes.to_vec(), desc.media_type().clone())),
                        layers,
                        refs: name.into_iter().collect(),
                    });
                }
                other => return Err(StoreError::UnsupportedMediaType(other.to_string())),
            }
        }
        Ok(out)
    }

    /// Everything verified: store configs and manifests, name layers by chain ID, write refs.
    fn commit_planned(&self, mut c: Contents, planned: Vec<Planned>) -> Result<Vec<LoadedImage>> {
        // Check everything before making anything visible.
        let mut prepared = Vec::new();
        for p in &planned {
            let id = Digest::of_bytes(&p.config);
            let (_, diff_ids) = parse_config(&p.config, &id)?;
            if diff_ids.len() != p.layers.len() {
                return Err(invalid(format!(
                    "image {id}: config lists {} layers, manifest {}",
                    diff_ids.len(),
                    p.layers.len()
                )));
            }
            for (want, path) in diff_ids.iter().zip(&p.layers) {
                let l = c.layers.get(path).ok_or_else(|| {
                    invalid(format!(
                        "layer {} is missing from the archive",
                        path.display()
                    ))
                })?;
                if &l.diff_id != want {
                    return Err(StoreError::DigestMismatch {
                        expected: want.to_string(),
                        actual: l.diff_id.to_string(),
                    });
                }
                if let Some(hex) = path
                    .strip_prefix("blobs/sha256")
                    .ok()
                    .and_then(|p| p.to_str())
                {
                    if l.blob.hex() != hex {
                        return Err(StoreError::DigestMismatch {
                            expected: format!("sha256:{hex}"),
                            actual: l.blob.to_string(),
                        });
                    }
                }
            }
            prepared.push((id, diff_ids));
        }
        let mut out = Vec::new();
        let mut staged: BTreeMap<PathBuf, LayerIngest> = c.layers.drain().collect();
        let mut done: HashMap<PathBuf, (Digest, u64, MediaType)> = HashMap::new();
        for (p, (id, diff_ids)) in planned.into_iter().zip(prepared) {
            let chains = chain_ids(&diff_ids);
            let mut layer_descs = Vec::new();
            for ((path, chain), diff_id) in p.layers.iter().zip(&chains).zip(&diff_ids) {
                if let Some(l) = staged.remove(path) {
                    done.insert(
                        path.clone(),
                        (l.blob.clone(), l.blob_size, l.media_type.clone()),
                    );
                    if !self.layers.exists(chain) {
                        self.layers
                            .commit(l.staged, chain, diff_id, l.size, l.tar_size)?;
                    }
                } else if !self.layers.exists(chain) {
                    // The same layer file at a second chain position: unpack it again from its blob.
                    let (blob, ..) = &done[path];
                    let f = self.blobs.open_blob(blob)?;
                    let again = LayerIngest::run(self, f, UnpackOptions::for_overlay())?;
                    self.layers
                        .commit(again.staged, chain, diff_id, again.size, again.tar_size)?;
                }
                layer_descs.push(done[path].clone());
            }
            let (manifest, mt) = match p.manifest {
                Some((d, bytes, mt)) => {
                    self.blobs.put(&p.config)?;
                    (
                        self.blobs.put(&bytes).and_then(|got| {
                            if got == d {
                                Ok(d)
                            } else {
                                Err(invalid("manifest digest changed"))
                            }
                        })?,
                        mt,
                    )
                }
                None => (
                    self.write_manifest(&p.config, &layer_descs)?,
                    MediaType::ImageManifest,
                ),
            };
            let rec = self.commit_image(&manifest, mt, &p.refs)?;
            debug_assert_eq!(rec.id, id);
            out.push(LoadedImage { id, refs: p.refs });
        }
        Ok(out)
    }
}

struct Planned {
    config: Vec<u8>,
    manifest: Option<(Digest, Vec<u8>, MediaType)>,
    layers: Vec<PathBuf>,
    refs: Vec<Reference>,
}
