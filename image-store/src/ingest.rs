//! Images that arrive piece by piece (a registry pull): each layer blob is streamed in as it
//! downloads, stored and unpacked on threads of its own, and only when every piece is in and
//! verified does [`Store::commit_pulled`] name the layers and the image. A pull that fails or
//! is cancelled leaves nothing visible (garbage collection removes stray blobs).

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
use std::sync::Arc;

use oci_spec::image::{ImageManifest, MediaType};

use crate::digest::{chain_ids, Digest};
use crate::error::{Result, StoreError};
use crate::reference::Reference;
use crate::store::{json_err, parse_config, ImageRecord, Store};
use crate::tee::LayerIngest;
use crate::unpack::UnpackOptions;

/// A message to the layer thread: data, or the end (`true`: complete, `false`: abandon).
enum Piece {
    Data(Vec<u8>),
    End(bool),
}

/// Reads what a [`LayerWriter`] sends; an abandoned or dropped stream is an error, so the
/// unpacker never takes a cut-off stream for a complete one.
struct ChannelReader {
    rx: Receiver<Piece>,
    buf: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for ChannelReader {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.buf.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Piece::Data(d)) => {
                    self.buf = d;
                    self.pos = 0;
                }
                Ok(Piece::End(true)) => self.done = true,
                Ok(Piece::End(false)) | Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "layer download abandoned",
                    ))
                }
            }
        }
        let n = out.len().min(self.buf.len() - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// The writing end of one incoming layer blob. `write` hands the bytes to a thread that
/// stores and unpacks them (a bounded queue: a slow disk slows the download, memory stays
/// flat).
pub struct LayerWriter {
    tx: SyncSender<Piece>,
    thread: std::thread::JoinHandle<Result<LayerIngest>>,
}

/// A layer whose bytes have all been sent; [`PendingLayer::wait`] blocks until it is stored
/// and unpacked.
pub struct PendingLayer {
    expected: Digest,
    thread: std::thread::JoinHandle<Result<LayerIngest>>,
}

/// A layer stored as a blob and unpacked into a staging directory, ready for
/// [`Store::commit_pulled`].
#[derive(Debug)]
pub struct StagedLayer(LayerIngest);

impl StagedLayer {
    pub fn blob(&self) -> &Digest {
        &self.0.blob
    }
    pub fn diff_id(&self) -> &Digest {
        &self.0.diff_id
    }
}

/// One layer of a pulled image: newly staged, or a blob the store already had.
#[derive(Debug)]
pub enum PulledLayer {
    Staged(StagedLayer),
    Stored(Digest),
}

impl LayerWriter {
    pub fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.tx
            .send(Piece::Data(chunk.to_vec()))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the layer writer stopped"))
    }

    /// Send without waiting: `Ok(false)` when the queue is full (nothing was sent).
    pub fn try_write(&mut self, chunk: &[u8]) -> io::Result<bool> {
        match self.tx.try_send(Piece::Data(chunk.to_vec())) {
            Ok(()) => Ok(true),
            Err(std::sync::mpsc::TrySendError::Full(_)) => Ok(false),
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "the layer writer stopped",
            )),
        }
    }

    /// All bytes are sent; they should hash to `expected`.
    pub fn finish(self, expected: &Digest) -> PendingLayer {
        let _ = self.tx.send(Piece::End(true));
        PendingLayer {
            expected: expected.clone(),
            thread: self.thread,
        }
    }

    /// Throw the layer away; the thread removes what it wrote.
    pub fn abandon(self) {
        // The thread sees the end, fails its unpack and removes what it wrote; nobody waits.
        let _ = self.tx.try_send(Piece::End(false));
    }
}

impl PendingLayer {
    /// Wait for the layer to be stored and unpacked, and check its blob digest.
    pub fn wait(self) -> Result<StagedLayer> {
        let ingest = self
            .thread
            .join()
            .map_err(|_| StoreError::InvalidArchive("layer thread panicked".into()))??;
        if ingest.blob != self.expected {
            return Err(StoreError::DigestMismatch {
                expected: self.expected.to_string(),
                actual: ingest.blob.to_string(),
            });
        }
        Ok(StagedLayer(ingest))
    }
}

impl Store {
    /// Start receiving one layer blob. The caller should hold a [`Store::write_lease`] from
    /// before the first layer until [`Store::commit_pulled`] returns.
    pub fn layer_writer(self: &Arc<Self>) -> Result<LayerWriter> {
        let (tx, rx) = sync_channel::<Piece>(32);
        let store = self.clone();
        let thread = std::thread::Builder::new()
            .name("layer-ingest".into())
            .spawn(move || {
                let reader = ChannelReader {
                    rx,
                    buf: Vec::new(),
                    pos: 0,
                    done: false,
                };
                LayerIngest::run(&store, reader, UnpackOptions::for_overlay())
            })
            .map_err(|e| StoreError::Io {
                op: "spawn",
                path: "layer-ingest thread".into(),
                source: e,
            })?;
        Ok(LayerWriter { tx, thread })
    }

    /// Name a pulled image: store its config and manifest (the exact bytes the registry sent,
    /// so its digest holds), check every layer's diff ID against the config, move the layers
    /// into place by chain ID, and point `refs` and `repo_digests` at it.
    pub fn commit_pulled(
        &self,
        manifest: &[u8],
        media_type: MediaType,
        config: &[u8],
        layers: Vec<PulledLayer>,
        refs: &[Reference],
        repo_digests: &[Reference],
    ) -> Result<Arc<ImageRecord>> {
        let _writer = self.leases.writer();
        let manifest_digest = Digest::of_bytes(manifest);
        let m: ImageManifest =
            serde_json::from_slice(manifest).map_err(json_err("manifest", &manifest_digest))?;
        let id = Digest::of_bytes(config);
        if m.config().digest().as_ref() != id.as_str() {
            return Err(StoreError::DigestMismatch {
                expected: m.config().digest().to_string(),
                actual: id.to_string(),
            });
        }
        let (_, diff_ids) = parse_config(config, &id)?;
        if diff_ids.len() != layers.len() || layers.len() != m.layers().len() {
            return Err(StoreError::InvalidJson {
                what: "image config",
                digest: id.to_string(),
                reason: format!(
                    "{} diff_ids, {} layers in the manifest, {} layers pulled",
                    diff_ids.len(),
                    m.layers().len(),
                    layers.len()
                ),
            });
        }
        // Check every staged layer before naming any.
        for ((l, want), desc) in layers.iter().zip(&diff_ids).zip(m.layers()) {
            let blob = match l {
                PulledLayer::Staged(s) => {
                    if s.diff_id() != want {
                        return Err(StoreError::DigestMismatch {
                            expected: want.to_string(),
                            actual: s.diff_id().to_string(),
                        });
                    }
                    s.blob()
                }
                PulledLayer::Stored(b) => b,
            };
            if desc.digest().as_ref() != blob.as_str() {
                return Err(StoreError::DigestMismatch {
                    expected: desc.digest().to_string(),
                    actual: blob.to_string(),
                });
            }
        }
        let chains = chain_ids(&diff_ids);
        for ((l, chain), diff_id) in layers.into_iter().zip(&chains).zip(&diff_ids) {
            if self.layers.exists(chain) {
                continue;
            }
            let ingest = match l {
                PulledLayer::Staged(s) => s.0,
                PulledLayer::Stored(blob) => {
                    let f = self.blobs.open_blob(&blob)?;
                    LayerIngest::run(self, f, UnpackOptions::for_overlay())?
                }
            };
            if &ingest.diff_id != diff_id {
                return Err(StoreError::DigestMismatch {
                    expected: diff_id.to_string(),
                    actual: ingest.diff_id.to_string(),
                });
            }
            self.layers
                .commit(ingest.staged, chain, diff_id, ingest.size, ingest.tar_size)?;
        }
        self.blobs.put(config)?;
        let stored = self.blobs.put(manifest)?;
        debug_assert_eq!(stored, manifest_digest);
        self.commit_image_with_digests(&manifest_digest, media_type, refs, repo_digests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_abandoned_stream_is_an_error_not_an_end() {
        let (tx, rx) = sync_channel(4);
        tx.send(Piece::Data(b"abc".to_vec())).unwrap();
        tx.send(Piece::End(false)).unwrap();
        let mut r = ChannelReader {
            rx,
            buf: Vec::new(),
            pos: 0,
            done: false,
        };
        let mut out = Vec::new();
        let err = r.read_to_end(&mut out).unwrap_err();
        assert_eq!(out, b"abc");
        assert_eq!(err.kind(), io::ErrorKind::ConnectionAborted);

        let (tx, rx) = sync_channel(4);
        tx.send(Piece::Data(b"xy".to_vec())).unwrap();
        drop(tx);
        let mut r = ChannelReader {
            rx,
            buf: Vec::new(),
            pos: 0,
            done: false,
        };
        assert!(r.read_to_end(&mut Vec::new()).is_err());
    }
}
