//! New layers from a directory of changes, new images over stored layers, and pins.
//!
//! `commit` and `build` hand us an overlay upper directory: what a container changed, with
//! overlayfs's own marks for deletions (a 0/0 character device) and replaced directories
//! (`trusted.overlay.opaque=y`). We turn it into an OCI layer tar (`.wh.` files) that is
//! stored and unpacked in the same pass as any pulled layer, so a committed layer is a
//! layer like the others.
//!
//! A pin names an image manifest that no tag holds, by a caller's key: the build cache keeps
//! each step's image this way, and garbage collection keeps what pins reach.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use oci_spec::image::MediaType;

use crate::digest::Digest;
use crate::error::{IoContext, Result, StoreError};
use crate::reference::Reference;
use crate::store::{ImageRecord, Store};
use crate::tee::LayerIngest;
use crate::unpack::UnpackOptions;

const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

/// A layer stored from a directory of changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewLayer {
    pub blob: Digest,
    pub blob_size: u64,
    pub media_type: MediaType,
    pub diff_id: Digest,
    pub chain_id: Digest,
    /// Bytes of file content.
    pub size: u64,
}

/// Write `dir` (an overlay upper directory) as a layer tar to `out`: sorted names, overlay
/// whiteouts and opaque directories as OCI `.wh.` entries, hard links as links, sockets
/// skipped. Returns how many entries were written.
pub fn write_diff_tar(dir: &Path, out: impl Write) -> io::Result<u64> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let mut w = DiffWalker {
        root: dir.to_owned(),
        links: HashMap::new(),
        entries: 0,
    };
    w.walk(&mut b, Path::new(""))?;
    b.finish()?;
    Ok(w.entries)
}

struct DiffWalker {
    root: PathBuf,
    /// (dev, ino) of files with several links → the first name written.
    links: HashMap<(u64, u64), PathBuf>,
    entries: u64,
}

fn header_for(md: &fs::Metadata, kind: tar::EntryType) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(md.mode() & 0o7777);
    h.set_uid(md.uid().into());
    h.set_gid(md.gid().into());
    h.set_mtime(u64::try_from(md.mtime()).unwrap_or(0));
    h.set_size(0);
    h
}

impl DiffWalker {
    fn walk<W: Write>(&mut self, b: &mut tar::Builder<W>, rel: &Path) -> io::Result<()> {
        let abs = self.root.join(rel);
        let mut names: Vec<_> = fs::read_dir(&abs)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        for name in names {
            let path = rel.join(&name);
            let full = self.root.join(&path);
            let md = fs::symlink_metadata(&full)?;
            let ft = md.file_type();
            if ft.is_char_device() && md.rdev() == 0 {
                // overlayfs's whiteout: the file was deleted
                let mut wh = name.clone();
                wh.clear();
                wh.push(".wh.");
                wh.push(&name);
                let mut h = header_for(&md, tar::EntryType::Regular);
                h.set_mode(0o600);
                b.append_data(&mut h, rel.join(wh), io::empty())?;
                self.entries += 1;
            } else if ft.is_dir() {
                let mut h = header_for(&md, tar::EntryType::Directory);
                b.append_data(&mut h, &path, io::empty())?;
                self.entries += 1;
                let opaque = rustix::fs::lgetxattr(&full, OPAQUE_XATTR, &mut [0u8; 4])
                    .ok()
                    .is_some_and(|n| n == 1);
                if opaque {
                    let mut h = header_for(&md, tar::EntryType::Regular);
                    h.set_mode(0o600);
                    b.append_data(&mut h, path.join(".wh..wh..opq"), io::empty())?;
                    self.entries += 1;
                }
                self.walk(b, &path)?;
            } else if ft.is_symlink() {
                let target = fs::read_link(&full)?;
                let mut h = header_for(&md, tar::EntryType::Symlink);
                b.append_link(&mut h, &path, target)?;
                self.entries += 1;
            } else if ft.is_file() {
                if md.nlink() > 1 {
                    if let Some(first) = self.links.get(&(md.dev(), md.ino())) {
                        let mut h = header_for(&md, tar::EntryType::Link);
                        b.append_link(&mut h, &path, first)?;
                        self.entries += 1;
                        continue;
                    }
                    self.links.insert((md.dev(), md.ino()), path.clone());
                }
                let mut h = header_for(&md, tar::EntryType::Regular);
                h.set_size(md.len());
                let f = fs::File::open(&full)?;
                b.append_data(&mut h, &path, f)?;
                self.entries += 1;
            } else if ft.is_fifo() || ft.is_char_device() || ft.is_block_device() {
                let kind = if ft.is_fifo() {
                    tar::EntryType::Fifo
                } else if ft.is_char_device() {
                    tar::EntryType::Char
                } else {
                    tar::EntryType::Block
                };
                let mut h = header_for(&md, kind);
                let dev = md.rdev();
                h.set_device_major(rustix::fs::major(dev))?;
                h.set_device_minor(rustix::fs::minor(dev))?;
                b.append_data(&mut h, &path, io::empty())?;
                self.entries += 1;
            }
            // sockets have no tar form: Docker skips them too
        }
        Ok(())
    }
}

fn spec_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::InvalidArchive(e.to_string())
}

impl Store {
    /// Store the changes in `dir` (an overlay upper directory) as a layer over the layer
    /// `parent` (a chain ID, none for the first layer). `None` when nothing changed.
    pub fn layer_from_dir(&self, dir: &Path, parent: Option<&Digest>) -> Result<Option<NewLayer>> {
        let empty = fs::read_dir(dir).at("read", dir)?.next().is_none();
        if empty {
            return Ok(None);
        }
        let _writer = self.leases.writer();
        let (reader, writer) = io::pipe().at("pipe", dir)?;
        let ingest = std::thread::scope(|s| {
            let producer = s.spawn(move || write_diff_tar(dir, writer));
            let ingest = LayerIngest::run(self, reader, UnpackOptions::for_overlay());
            let produced = producer
                .join()
                .map_err(|_| StoreError::InvalidArchive("layer writer thread panicked".into()))?;
            produced.at("archive", dir)?;
            ingest
        })?;
        let chain_id = match parent {
            None => ingest.diff_id.clone(),
            Some(p) => Digest::of_bytes(format!("{p} {}", ingest.diff_id).as_bytes()),
        };
        let meta = self.layers.commit(
            ingest.staged,
            &chain_id,
            &ingest.diff_id,
            ingest.size,
            ingest.tar_size,
        )?;
        Ok(Some(NewLayer {
            blob: ingest.blob,
            blob_size: ingest.blob_size,
            media_type: ingest.media_type,
            diff_id: meta.diff_id,
            chain_id,
            size: meta.size,
        }))
    }

    /// Store `config` (an image config, as JSON) and a manifest over already-stored layer
    /// blobs, without naming the image. Returns the manifest's digest.
    pub fn write_image(
        &self,
        config: &[u8],
        layers: &[(Digest, u64, MediaType)],
    ) -> Result<Digest> {
        self.write_manifest(config, layers)
    }

    /// The image a stored manifest describes, named or not; `None` when any of its blobs or
    /// unpacked layers is gone.
    pub fn image_of_manifest(&self, manifest: &Digest) -> Option<ImageRecord> {
        if !self.blobs.exists(manifest) {
            return None;
        }
        let rec = self
            .record_for_manifest(manifest, MediaType::ImageManifest)
            .ok()?;
        let complete = rec.chain_ids.iter().all(|c| self.layers.exists(c))
            && rec
                .layers
                .iter()
                .all(|l| Digest::parse(l.digest().as_ref()).is_ok_and(|d| self.blobs.exists(&d)));
        complete.then_some(rec)
    }

    /// Name the stored image `manifest` by `refs` (or keep it untagged when empty).
    pub fn name_image(&self, manifest: &Digest, refs: &[Reference]) -> Result<Arc<ImageRecord>> {
        self.commit_image(manifest, MediaType::ImageManifest, refs)
    }

    fn pins_dir(&self) -> PathBuf {
        self.root().join("pins")
    }

    /// Keep `manifest` (and what it references) from garbage collection, findable by `key`.
    pub fn pin(&self, key: &Digest, manifest: &Digest) -> Result<()> {
        let dir = self.pins_dir();
        fs::create_dir_all(&dir).at("create", &dir)?;
        crate::store::atomic_write(&dir.join(key.hex()), manifest.as_str().as_bytes())
    }

    /// The manifest pinned under `key`, if it is still complete.
    pub fn pinned(&self, key: &Digest) -> Option<ImageRecord> {
        let text = fs::read_to_string(self.pins_dir().join(key.hex())).ok()?;
        let manifest = Digest::parse(text.trim()).ok()?;
        self.image_of_manifest(&manifest)
    }

    /// Drop every pin (`builder prune`); the next GC frees what only pins held.
    pub fn clear_pins(&self) -> Result<usize> {
        let dir = self.pins_dir();
        let mut n = 0;
        match fs::read_dir(&dir) {
            Ok(rd) => {
                for e in rd.flatten() {
                    if fs::remove_file(e.path()).is_ok() {
                        n += 1;
                    }
                }
                Ok(n)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(e).at("read", dir),
        }
    }

    /// Manifests held by pins (for GC).
    pub(crate) fn pinned_manifests(&self) -> Vec<Digest> {
        let Ok(rd) = fs::read_dir(self.pins_dir()) else {
            return Vec::new();
        };
        rd.flatten()
            .filter_map(|e| fs::read_to_string(e.path()).ok())
            .filter_map(|t| Digest::parse(t.trim()).ok())
            .collect()
    }
}

/// A minimal image config JSON (for tests and `FROM scratch`).
pub fn empty_config() -> Result<serde_json::Value> {
    let arch = serde_json::to_value(crate::import::host_arch()).map_err(spec_err)?;
    Ok(serde_json::json!({
        "architecture": arch,
        "os": "linux",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(tar_bytes: &[u8]) -> Vec<(String, tar::EntryType)> {
        let mut a = tar::Archive::new(tar_bytes);
        a.entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.path().unwrap().display().to_string(),
                    e.header().entry_type(),
                )
            })
            .collect()
    }

    #[test]
    fn diff_tar_is_sorted_and_links_hard_links() {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir_all(d.path().join("b/c")).unwrap();
        fs::write(d.path().join("b/c/f"), "x").unwrap();
        fs::hard_link(d.path().join("b/c/f"), d.path().join("a")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.path().join("z")).unwrap();
        let mut out = Vec::new();
        write_diff_tar(d.path(), &mut out).unwrap();
        let got = entries(&out);
        assert_eq!(
            got,
            vec![
                ("a".to_string(), tar::EntryType::Regular),
                ("b".to_string(), tar::EntryType::Directory),
                ("b/c".to_string(), tar::EntryType::Directory),
                ("b/c/f".to_string(), tar::EntryType::Link),
                ("z".to_string(), tar::EntryType::Symlink),
            ]
        );
        // the same tree gives the same bytes: a layer's diff ID is stable
        let mut again = Vec::new();
        write_diff_tar(d.path(), &mut again).unwrap();
        assert_eq!(out, again);
    }

    #[test]
    fn layer_from_dir_stores_unpacks_and_pins() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let changes = tempfile::tempdir().unwrap();
        assert_eq!(store.layer_from_dir(changes.path(), None).unwrap(), None);
        fs::create_dir(changes.path().join("app")).unwrap();
        fs::write(changes.path().join("app/hello.txt"), "hello\n").unwrap();
        let layer = store.layer_from_dir(changes.path(), None).unwrap().unwrap();
        assert_eq!(layer.chain_id, layer.diff_id);
        assert_eq!(layer.size, 6);
        let unpacked = store
            .layers()
            .diff_dir(&layer.chain_id)
            .join("app/hello.txt");
        assert_eq!(fs::read_to_string(unpacked).unwrap(), "hello\n");

        let mut config = empty_config().unwrap();
        config["rootfs"]["diff_ids"] = serde_json::json!([layer.diff_id.as_str()]);
        let bytes = serde_json::to_vec(&config).unwrap();
        let manifest = store
            .write_image(
                &bytes,
                &[(
                    layer.blob.clone(),
                    layer.blob_size,
                    layer.media_type.clone(),
                )],
            )
            .unwrap();
        let key = Digest::of_bytes(b"step key");
        assert!(store.pinned(&key).is_none());
        store.pin(&key, &manifest).unwrap();
        let rec = store.pinned(&key).unwrap();
        assert_eq!(rec.chain_ids, vec![layer.chain_id.clone()]);
        // GC keeps what a pin holds, and frees it once the pins are cleared
        store.gc().unwrap();
        assert!(store.pinned(&key).is_some());
        assert_eq!(store.clear_pins().unwrap(), 1);
        store.gc().unwrap();
        assert!(!store.layers().exists(&layer.chain_id));
        assert!(store.image_of_manifest(&manifest).is_none());
    }
}
