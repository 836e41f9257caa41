//! One pass over a layer stream: the raw bytes go into a blob while the decompressed tar is
//! hashed (its diff ID) and unpacked into a staging directory.

use std::io::{self, Read, Write};

use oci_spec::image::MediaType;

use crate::blobs::BlobWriter;
use crate::digest::{Digest, HashingReader};
use crate::error::{Result, StoreError};
use crate::layers::Staged;
use crate::store::Store;
use crate::unpack::{self, Compression, UnpackError, UnpackOptions};

/// A reader that copies everything it reads into a writer.
pub(crate) struct TeeReader<R, W> {
    pub inner: R,
    pub out: W,
}

impl<R: Read, W: Write> Read for TeeReader<R, W> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.out.write_all(&buf[..n])?;
        Ok(n)
    }
}

/// A layer that has been stored as a blob and unpacked, not yet named by chain ID.
#[derive(Debug)]
pub(crate) struct LayerIngest {
    pub blob: Digest,
    pub blob_size: u64,
    pub media_type: MediaType,
    pub diff_id: Digest,
    pub size: u64,
    pub tar_size: u64,
    pub staged: Staged,
}

fn layer_err(source: UnpackError) -> StoreError {
    StoreError::Layer {
        digest: "(stream)".into(),
        source,
    }
}

impl LayerIngest {
    pub(crate) fn run(store: &Store, reader: impl Read, opts: UnpackOptions) -> Result<Self> {
        let mut blob: BlobWriter<'_> = store.blobs.writer()?;
        let staged = store.layers.stage()?;
        let mut tee = TeeReader {
            inner: reader,
            out: &mut blob,
        };
        let (kind, stats, diff_id, tar_size) = {
            let (kind, dec) = unpack::decompressed(&mut tee).map_err(layer_err)?;
            let mut hashing = HashingReader::new(dec);
            let stats = unpack::unpack(&mut hashing, &staged.diff(), opts).map_err(layer_err)?;
            let (diff_id, tar_size, _) = hashing
                .finish()
                .map_err(|e| layer_err(UnpackError::Read(e)))?;
            (kind, stats, diff_id, tar_size)
        };
        // Whatever follows the compressed stream still belongs to the blob.
        io::copy(&mut tee, &mut io::sink()).map_err(|e| layer_err(UnpackError::Read(e)))?;
        let blob_size = blob.written();
        let blob_digest = blob.commit(None)?;
        let media_type = match kind {
            Compression::None => MediaType::ImageLayer,
            Compression::Gzip => MediaType::ImageLayerGzip,
            Compression::Zstd => MediaType::ImageLayerZstd,
        };
        Ok(Self {
            blob: blob_digest,
            blob_size,
            media_type,
            diff_id,
            size: stats.bytes,
            tar_size,
            staged,
        })
    }
}
