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

/// The sending half of the blob writer thread: copies of what the unpacker reads.
struct ChunkSender(std::sync::mpsc::SyncSender<Vec<u8>>);

impl Write for ChunkSender {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .send(buf.to_vec())
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "blob writer stopped"))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl LayerIngest {
    /// Store `reader` as a blob and unpack it, on two threads: one hashes and writes the raw
    /// bytes (then fsyncs and renames the blob), the other decompresses and unpacks.
    pub(crate) fn run(store: &Store, reader: impl Read, opts: UnpackOptions) -> Result<Self> {
        let staged = store.layers.stage()?;
        let abort = std::sync::atomic::AtomicBool::new(false);
        let writer_failed = std::sync::atomic::AtomicBool::new(false);
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<u8>>(16);
        std::thread::scope(|scope| {
            let writer = scope.spawn(|| -> Result<(Digest, u64)> {
                let mut blob: BlobWriter<'_> = store.blobs.writer()?;
                for chunk in rx {
                    if let Err(e) = blob.write_all(&chunk) {
                        writer_failed.store(true, std::sync::atomic::Ordering::SeqCst);
                        return Err(layer_err(UnpackError::Read(e)));
                    }
                }
                if abort.load(std::sync::atomic::Ordering::SeqCst) {
                    return Err(StoreError::InvalidArchive("layer ingest aborted".into()));
                }
                let size = blob.written();
                Ok((blob.commit(None)?, size))
            });
            let unpacked = (|| -> Result<_> {
                let mut tee = TeeReader {
                    inner: reader,
                    out: ChunkSender(tx),
                };
                let (kind, stats, hashed) = {
                    let (kind, dec) = unpack::decompressed(&mut tee).map_err(layer_err)?;
                    if kind == Compression::None {
                        // The blob *is* the tar: its digest (computed by the writer) is the diff ID.
                        let stats = unpack::unpack(dec, &staged.diff(), opts).map_err(layer_err)?;
                        (kind, stats, None)
                    } else {
                        let mut hashing = HashingReader::new(dec);
                        let stats = unpack::unpack(&mut hashing, &staged.diff(), opts)
                            .map_err(layer_err)?;
                        let (diff_id, tar_size, _) = hashing
                            .finish()
                            .map_err(|e| layer_err(UnpackError::Read(e)))?;
                        (kind, stats, Some((diff_id, tar_size)))
                    }
                };
                // Whatever follows the tar or compressed stream still belongs to the blob.
                io::copy(&mut tee, &mut io::sink()).map_err(|e| layer_err(UnpackError::Read(e)))?;
                Ok((kind, stats, hashed))
            })();
            if unpacked.is_err() {
                abort.store(true, std::sync::atomic::Ordering::SeqCst);
            }
            // The sender was moved into the tee, dropped above: the writer sees the end.
            let written = writer
                .join()
                .map_err(|_| StoreError::InvalidArchive("blob writer thread panicked".into()))?;
            // A writer that stopped (a full disk) fails the unpacker too, with "blob writer
            // stopped": report the cause.
            let written = match written {
                Err(e) if writer_failed.load(std::sync::atomic::Ordering::SeqCst) => return Err(e),
                w => w,
            };
            let (kind, stats, hashed) = unpacked?;
            let (blob, blob_size) = written?;
            let (diff_id, tar_size) = hashed.unwrap_or_else(|| (blob.clone(), blob_size));
            let media_type = match kind {
                Compression::None => MediaType::ImageLayer,
                Compression::Gzip => MediaType::ImageLayerGzip,
                Compression::Zstd => MediaType::ImageLayerZstd,
            };
            Ok(Self {
                blob,
                blob_size,
                media_type,
                diff_id,
                size: stats.bytes,
                tar_size,
                staged,
            })
        })
    }
}
