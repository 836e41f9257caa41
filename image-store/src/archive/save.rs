//! Writing images as a Docker 25-style archive: an OCI layout (`oci-layout`, `index.json`,
//! `blobs/sha256/`) with the legacy `manifest.json` beside it, so that `docker load`,
//! `skopeo ... docker-archive:` and OCI tools all read it. Layers are written uncompressed.

use std::collections::BTreeSet;
use std::io::{Read, Write};

use oci_spec::image::MediaType;
use serde::Serialize;

use crate::digest::Digest;
use crate::error::{IoContext, Result, StoreError};
use crate::reference::Reference;
use crate::store::{ImageRecord, Store, REF_NAME};
use crate::unpack;

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct LegacyManifest {
    config: String,
    repo_tags: Option<Vec<String>>,
    layers: Vec<String>,
}

fn tar_err(e: std::io::Error) -> StoreError {
    StoreError::Io {
        op: "write archive",
        path: "-".into(),
        source: e,
    }
}

fn header(path: &str, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    let _ = h.set_path(path);
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(0);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    h
}

impl Store {
    /// Write `names` (references or IDs) to `out` as one archive.
    pub fn save(&self, names: &[String], out: impl Write) -> Result<()> {
        // Resolve every name first: an unknown name fails before anything is written.
        let mut images: Vec<(std::sync::Arc<ImageRecord>, Vec<Reference>)> = Vec::new();
        for n in names {
            let rec = self.resolve(n)?;
            let tag = Reference::parse(n).ok().filter(|r| rec.refs.contains(r));
            match images.iter_mut().find(|(r, _)| r.id == rec.id) {
                Some((_, tags)) => tags.extend(tag),
                None => images.push((rec, tag.into_iter().collect())),
            }
        }
        let mut tar = tar::Builder::new(out);
        let mut written: BTreeSet<Digest> = BTreeSet::new();
        let mut legacy = Vec::new();
        let mut index_entries = Vec::new();
        for (rec, tags) in &images {
            let mut layer_descs = Vec::new();
            for ((blob_desc, diff_id), chain) in
                rec.layers.iter().zip(&rec.diff_ids).zip(&rec.chain_ids)
            {
                let blob = Digest::parse(blob_desc.digest().as_ref())?;
                let meta = self.layers.meta(chain)?;
                if written.insert(diff_id.clone()) {
                    let f = self.blobs.open_blob(&blob)?;
                    let (_, mut r) =
                        unpack::decompressed(f).map_err(|source| StoreError::Layer {
                            digest: blob.to_string(),
                            source,
                        })?;
                    let mut limited = (&mut r).take(meta.tar_size);
                    tar.append(
                        &header(&format!("blobs/sha256/{}", diff_id.hex()), meta.tar_size),
                        &mut limited,
                    )
                    .map_err(tar_err)?;
                    if limited.limit() != 0 {
                        return Err(StoreError::SizeMismatch {
                            digest: diff_id.to_string(),
                            expected: meta.tar_size,
                            actual: meta.tar_size - limited.limit(),
                        });
                    }
                }
                layer_descs.push((diff_id.clone(), meta.tar_size, MediaType::ImageLayer));
            }
            let config = self.blobs.read(&rec.id)?;
            // An OCI manifest over the uncompressed layers (the stored one may point at gzip blobs).
            let manifest_bytes =
                crate::import::manifest_bytes(&rec.id, config.len() as u64, &layer_descs)?;
            let manifest = Digest::of_bytes(&manifest_bytes);
            for (d, bytes) in [(&rec.id, &config), (&manifest, &manifest_bytes)] {
                if written.insert(d.clone()) {
                    tar.append(
                        &header(&format!("blobs/sha256/{}", d.hex()), bytes.len() as u64),
                        bytes.as_slice(),
                    )
                    .map_err(tar_err)?;
                }
            }
            let mut names: Vec<Option<&Reference>> = tags.iter().map(Some).collect();
            if names.is_empty() {
                names.push(None);
            }
            for name in names {
                let mut ann = serde_json::Map::new();
                if let Some(n) = name {
                    ann.insert("io.containerd.image.name".into(), n.to_string().into());
                    ann.insert(REF_NAME.into(), n.tag().unwrap_or("latest").into());
                }
                let mut d = serde_json::json!({
                    "mediaType": MediaType::ImageManifest.to_string(),
                    "digest": manifest.as_str(),
                    "size": manifest_bytes.len(),
                });
                if !ann.is_empty() {
                    d["annotations"] = ann.into();
                }
                index_entries.push(d);
            }
            legacy.push(LegacyManifest {
                config: format!("blobs/sha256/{}", rec.id.hex()),
                repo_tags: (!tags.is_empty())
                    .then(|| tags.iter().map(Reference::familiar).collect()),
                layers: rec
                    .diff_ids
                    .iter()
                    .map(|d| format!("blobs/sha256/{}", d.hex()))
                    .collect(),
            });
        }
        let index = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": MediaType::ImageIndex.to_string(),
            "manifests": index_entries,
        });
        let files: [(&str, Vec<u8>); 3] = [
            ("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#.to_vec()),
            (
                "index.json",
                serde_json::to_vec(&index)
                    .map_err(|e| StoreError::InvalidArchive(e.to_string()))?,
            ),
            (
                "manifest.json",
                serde_json::to_vec(&legacy)
                    .map_err(|e| StoreError::InvalidArchive(e.to_string()))?,
            ),
        ];
        for (name, bytes) in files {
            tar.append(&header(name, bytes.len() as u64), bytes.as_slice())
                .map_err(tar_err)?;
        }
        tar.into_inner()
            .map_err(tar_err)?
            .flush()
            .at("flush", "-")?;
        Ok(())
    }
}
