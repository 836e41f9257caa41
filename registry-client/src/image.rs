//! Whole-image helpers over the single-object calls: what a pull needs (as data, for the
//! caller to fetch into its store), and a push of blobs then manifests in the order a registry
//! accepts them.

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use image_store::Digest;

use crate::blob::BlobRef;
use crate::client::{Client, Repository};
use crate::error::{RegistryError, Result};
use crate::manifest::ResolvedImage;
use crate::platform::Platform;
use crate::progress::Progress;
use crate::upload::{BlobSource, PushedBlob};

/// What pulling one image takes: the resolved manifests and the blobs (config first, then
/// layers in order) split by whether the caller already has them.
#[derive(Clone, Debug)]
pub struct PullPlan {
    pub resolved: ResolvedImage,
    pub missing: Vec<BlobRef>,
    pub present: Vec<BlobRef>,
}

/// A manifest to push: under `reference` (tag or digest), with its media type.
#[derive(Clone, Debug)]
pub struct ManifestUpload {
    pub reference: String,
    pub media_type: String,
    pub bytes: Bytes,
}

fn blob_ref(repo: &Repository, d: &oci_spec::image::Descriptor) -> Result<BlobRef> {
    let digest =
        Digest::parse(d.digest().as_ref()).map_err(|e| RegistryError::InvalidManifest {
            registry: repo.registry.clone(),
            repository: repo.name.clone(),
            reference: d.digest().to_string(),
            reason: e.to_string(),
        })?;
    Ok(BlobRef {
        digest,
        size: Some(d.size()),
    })
}

impl Client {
    /// Resolve `reference` for `platform` and list its blobs, asking `have` which the caller
    /// already stores. Foreign layers (with `urls`) are listed like the others: the registry
    /// usually has them too, and a 404 names them.
    pub async fn plan_pull(
        &self,
        repo: &Repository,
        reference: &str,
        platform: &Platform,
        have: impl Fn(&Digest) -> bool,
    ) -> Result<PullPlan> {
        let resolved = self.resolve_image(repo, reference, platform).await?;
        let mut missing = Vec::new();
        let mut present = Vec::new();
        let descs = std::iter::once(resolved.image.config()).chain(resolved.image.layers().iter());
        for d in descs {
            let b = blob_ref(repo, d)?;
            if have(&b.digest) {
                present.push(b);
            } else if !missing.contains(&b) {
                missing.push(b);
            }
        }
        Ok(PullPlan {
            resolved,
            missing,
            present,
        })
    }

    /// Push blobs (at most `parallel` at a time, each mounted from `mount_from` when given),
    /// then the manifests in the order given: image manifests before the index naming them.
    /// Returns the digest of the last manifest.
    pub async fn push_image(
        &self,
        repo: &Repository,
        blobs: Vec<(Digest, BlobSource)>,
        manifests: Vec<ManifestUpload>,
        mount_from: Option<&str>,
        parallel: usize,
        progress: &dyn Progress,
    ) -> Result<(Vec<PushedBlob>, Option<Digest>)> {
        let pushed: Vec<PushedBlob> =
            futures_util::stream::iter(blobs)
                .map(|(d, src)| async move {
                    self.push_blob(repo, &d, &src, mount_from, progress).await
                })
                .buffered(parallel.max(1))
                .try_collect()
                .await?;
        let mut last = None;
        for m in manifests {
            last = Some(
                self.push_manifest(repo, &m.reference, &m.media_type, m.bytes)
                    .await?,
            );
        }
        Ok((pushed, last))
    }
}
