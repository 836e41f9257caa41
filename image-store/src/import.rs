//! `import`: a plain rootfs tarball becomes a one-layer image.

use std::io::Read;
use std::sync::Arc;

use oci_spec::image::{
    Arch, Config, ConfigBuilder, HistoryBuilder, ImageConfigurationBuilder, MediaType, Os,
    RootFsBuilder,
};

use crate::digest::Digest;
use crate::error::{Result, StoreError};
use crate::reference::Reference;
use crate::store::{ImageRecord, Store};
use crate::tee::LayerIngest;
use crate::unpack::UnpackOptions;

/// What `docker import` lets the user set.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    pub config: Option<Config>,
    /// History comment; Docker writes "Imported from <source>".
    pub comment: Option<String>,
    pub refs: Vec<Reference>,
}

fn spec_err(e: impl std::fmt::Display) -> StoreError {
    StoreError::InvalidArchive(e.to_string())
}

/// Go's `time.RFC3339Nano` (trailing zeros of the fraction dropped). Tools written in Go
/// re-encode configs this way: writing the same form keeps image IDs stable through them.
pub fn go_rfc3339_nano(t: chrono::DateTime<chrono::Utc>) -> String {
    let s = t.format("%Y-%m-%dT%H:%M:%S%.9f").to_string();
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}Z")
}

pub(crate) fn host_arch() -> Arch {
    match std::env::consts::ARCH {
        "x86_64" => Arch::Amd64,
        "aarch64" => Arch::ARM64,
        other => Arch::Other(other.to_owned()),
    }
}

impl Store {
    /// Import a rootfs tarball (tar, tar+gzip or tar+zstd) as a new single-layer image.
    pub fn import(&self, reader: impl Read, opts: ImportOptions) -> Result<Arc<ImageRecord>> {
        let _writer = self.leases.writer();
        let layer = LayerIngest::run(self, reader, UnpackOptions::for_overlay())?;
        // Imported layers are kept uncompressed: the blob *is* the diff.
        let diff_id = layer.diff_id.clone();
        let meta =
            self.layers
                .commit(layer.staged, &diff_id, &diff_id, layer.size, layer.tar_size)?;
        let now = go_rfc3339_nano(chrono::Utc::now());
        let history = HistoryBuilder::default()
            .created(now.clone())
            .comment(opts.comment.unwrap_or_else(|| "Imported from -".to_owned()))
            .build()
            .map_err(spec_err)?;
        let config = ImageConfigurationBuilder::default()
            .created(now)
            .architecture(host_arch())
            .os(Os::Linux)
            .config(
                opts.config
                    .unwrap_or(ConfigBuilder::default().build().map_err(spec_err)?),
            )
            .rootfs(
                RootFsBuilder::default()
                    .typ("layers")
                    .diff_ids(vec![meta.diff_id.to_string()])
                    .build()
                    .map_err(spec_err)?,
            )
            .history(vec![history])
            .build()
            .map_err(spec_err)?;
        let config_bytes = serde_json::to_vec(&config).map_err(spec_err)?;
        let manifest = self.write_manifest(
            &config_bytes,
            &[(layer.blob, layer.blob_size, layer.media_type)],
        )?;
        self.commit_image(&manifest, MediaType::ImageManifest, &opts.refs)
    }

    /// Store a config and an OCI manifest over already-stored layer blobs; returns the manifest digest.
    pub(crate) fn write_manifest(
        &self,
        config: &[u8],
        layers: &[(Digest, u64, MediaType)],
    ) -> Result<Digest> {
        let config_digest = self.blobs.put(config)?;
        let bytes = manifest_bytes(&config_digest, config.len() as u64, layers)?;
        self.blobs.put(&bytes)
    }
}

/// The OCI manifest JSON for a config and layers.
pub(crate) fn manifest_bytes(
    config: &Digest,
    config_len: u64,
    layers: &[(Digest, u64, MediaType)],
) -> Result<Vec<u8>> {
    use oci_spec::image::{DescriptorBuilder, ImageManifestBuilder};
    let desc = |mt: MediaType, d: &Digest, size: u64| {
        DescriptorBuilder::default()
            .media_type(mt)
            .digest(crate::store::oci_digest(d)?)
            .size(size)
            .build()
            .map_err(spec_err)
    };
    let manifest = ImageManifestBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageManifest)
        .config(desc(MediaType::ImageConfig, config, config_len)?)
        .layers(
            layers
                .iter()
                .map(|(d, s, mt)| desc(mt.clone(), d, *s))
                .collect::<Result<Vec<_>>>()?,
        )
        .build()
        .map_err(spec_err)?;
    serde_json::to_vec(&manifest).map_err(spec_err)
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    #[test]
    fn timestamps_match_go() {
        let t = chrono::Utc
            .timestamp_opt(1_700_000_000, 120_000_000)
            .unwrap();
        assert_eq!(super::go_rfc3339_nano(t), "2023-11-14T22:13:20.12Z");
        let t = chrono::Utc.timestamp_opt(1_700_000_000, 0).unwrap();
        assert_eq!(super::go_rfc3339_nano(t), "2023-11-14T22:13:20Z");
    }
}
