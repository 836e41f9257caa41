//! Blob download: streamed into a caller's sink while hashed, resumed with `Range` after a
//! dropped connection, retried with backoff on 5xx and timeouts, and handed to the sink for
//! commit only when the digest matches. The sink is told to discard otherwise, so no corrupt
//! blob is ever committed.

use std::io::{self, Write};

use futures_util::{StreamExt, TryStreamExt};
use http_body_util::BodyExt;
use hyper::header::{CONTENT_RANGE, RANGE};
use hyper::{Method, StatusCode};
use image_store::Digest;
use sha2::{Digest as _, Sha256};

use crate::auth::pull_scope;
use crate::client::{Client, Repository};
use crate::error::{RegistryError, Result};
use crate::progress::{report, Progress, Status, REPORT_EVERY};
use crate::session::Req;

/// Where a downloaded blob goes. The image store's blob writer is the real one: it writes to
/// a temporary file and renames on commit.
///
/// `write` is called from the download task; buffered writes to the page cache are fine,
/// anything slower belongs on a thread behind a channel. Dropping a sink without `commit`
/// must leave nothing behind (a failed parallel pull drops the sinks it did not finish).
pub trait BlobSink: Send {
    type Committed: Send;
    fn write(&mut self, chunk: &[u8]) -> io::Result<()>;
    /// Called once, after the content hashed to `digest`.
    fn commit(self, digest: &Digest) -> io::Result<Self::Committed>;
    /// Called instead of `commit` when the download failed or the digest did not match.
    fn discard(self);
}

/// Collects a blob in memory (configs, tests).
impl BlobSink for Vec<u8> {
    type Committed = Vec<u8>;
    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.extend_from_slice(chunk);
        Ok(())
    }
    fn commit(self, _: &Digest) -> io::Result<Vec<u8>> {
        Ok(self)
    }
    fn discard(self) {}
}

/// Adapts any `Write`; `commit` flushes and returns it, `discard` drops it. Only for writers
/// whose partial content the caller throws away itself.
#[derive(Debug)]
pub struct WriteSink<W>(pub W);

impl<W: Write + Send> BlobSink for WriteSink<W> {
    type Committed = W;
    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        self.0.write_all(chunk)
    }
    fn commit(mut self, _: &Digest) -> io::Result<W> {
        self.0.flush()?;
        Ok(self.0)
    }
    fn discard(self) {}
}

/// A blob to fetch: its digest and, when a manifest said so, its size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlobRef {
    pub digest: Digest,
    pub size: Option<u64>,
}

/// The state of one download across attempts: bytes already in the sink and their hash.
struct Progressing<'a> {
    repo: &'a Repository,
    blob: &'a BlobRef,
    hasher: Sha256,
    written: u64,
    reported: u64,
    progress: &'a dyn Progress,
}

impl Client {
    /// Download one blob into `sink`, resuming and retrying as needed. Returns what the sink's
    /// `commit` returned.
    pub async fn pull_blob<S: BlobSink>(
        &self,
        repo: &Repository,
        blob: &BlobRef,
        mut sink: S,
        progress: &dyn Progress,
    ) -> Result<S::Committed> {
        let mut st = Progressing {
            repo,
            blob,
            hasher: Sha256::new(),
            written: 0,
            reported: 0,
            progress,
        };
        let id = blob.digest.short().to_owned();
        let mut attempt = 0;
        loop {
            match self.fetch_once(&mut st, &mut sink).await {
                Ok(()) => break,
                Err(e) if e.is_transient() && attempt < self.inner.config.retries => {
                    attempt += 1;
                    tracing::info!(digest = %blob.digest, error = %e, resume_at = st.written, attempt, "blob download interrupted");
                    report(
                        progress,
                        &id,
                        Status::Retrying { attempt },
                        st.written,
                        blob.size,
                    );
                    tokio::time::sleep(self.backoff(attempt)).await;
                }
                Err(e) => {
                    sink.discard();
                    return Err(e);
                }
            }
        }
        let actual = Digest::from_hex(&hex::encode(st.hasher.finalize())).map_err(|e| {
            RegistryError::InvalidResponse {
                registry: repo.registry.clone(),
                reason: e.to_string(),
            }
        })?;
        if actual != blob.digest {
            sink.discard();
            return Err(RegistryError::DigestMismatch {
                registry: repo.registry.clone(),
                repository: repo.name.clone(),
                expected: blob.digest.to_string(),
                actual: actual.to_string(),
            });
        }
        if let Some(size) = blob.size.filter(|s| *s != st.written) {
            sink.discard();
            return Err(self.size_mismatch(repo, blob, size, st.written));
        }
        report(
            progress,
            &id,
            Status::DownloadComplete,
            st.written,
            blob.size,
        );
        sink.commit(&blob.digest)
            .map_err(|source| RegistryError::Sink {
                digest: blob.digest.to_string(),
                source,
            })
    }

    /// Download several blobs, at most `parallel` at a time, in the order given. The first
    /// failure stops the rest; unfinished sinks are dropped.
    pub async fn pull_blobs<S: BlobSink>(
        &self,
        repo: &Repository,
        blobs: Vec<(BlobRef, S)>,
        parallel: usize,
        progress: &dyn Progress,
    ) -> Result<Vec<S::Committed>> {
        for (b, _) in &blobs {
            report(progress, b.digest.short(), Status::Waiting, 0, b.size);
        }
        futures_util::stream::iter(blobs)
            .map(|(b, sink)| async move { self.pull_blob(repo, &b, sink, progress).await })
            .buffered(parallel.max(1))
            .try_collect()
            .await
    }

    fn size_mismatch(
        &self,
        repo: &Repository,
        blob: &BlobRef,
        expected: u64,
        actual: u64,
    ) -> RegistryError {
        RegistryError::SizeMismatch {
            registry: repo.registry.clone(),
            repository: repo.name.clone(),
            digest: blob.digest.to_string(),
            expected,
            actual,
        }
    }

    /// One GET from where the sink stands. A registry that ignores `Range` and sends 200 has
    /// its first bytes skipped: they are the ones we hold.
    async fn fetch_once<S: BlobSink>(&self, st: &mut Progressing<'_>, sink: &mut S) -> Result<()> {
        let repo = st.repo;
        let digest = &st.blob.digest;
        let session = self.session(&repo.registry);
        let what = format!("GET blob {digest}");
        let mut req = Req::new(
            Method::GET,
            format!("/v2/{}/blobs/{digest}", repo.name),
            &what,
        );
        if st.written > 0 {
            if st.blob.size == Some(st.written) {
                return Ok(()); // everything arrived; only the connection close failed
            }
            req = req.header(RANGE, format!("bytes={}-", st.written));
        }
        let resp = session.send(req, &[pull_scope(&repo.name)]).await?;
        let mut skip = match resp.status() {
            StatusCode::OK => st.written,
            StatusCode::PARTIAL_CONTENT => {
                let start = resp
                    .headers()
                    .get(CONTENT_RANGE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(content_range_start);
                match start {
                    Some(s) if s <= st.written => st.written - s,
                    _ => {
                        return Err(RegistryError::InvalidResponse {
                            registry: repo.registry.clone(),
                            reason: format!(
                                "{what}: 206 with an unusable Content-Range after {} bytes",
                                st.written
                            ),
                        })
                    }
                }
            }
            StatusCode::NOT_FOUND => {
                return Err(RegistryError::BlobUnknown {
                    registry: repo.registry.clone(),
                    repository: repo.name.clone(),
                    digest: digest.to_string(),
                })
            }
            _ => return Err(session.fail(resp, &what).await),
        };
        if st.written == 0 {
            report(
                st.progress,
                digest.short(),
                Status::Downloading,
                0,
                st.blob.size,
            );
        }
        let mut body = resp.into_body();
        let idle = self.inner.config.idle_timeout;
        loop {
            let frame = match tokio::time::timeout(idle, body.frame()).await {
                Err(_) => {
                    return Err(RegistryError::Timeout {
                        host: session.api_host.clone(),
                        what: what.clone(),
                    })
                }
                Ok(None) => return Ok(()),
                Ok(Some(Err(e))) => {
                    return Err(RegistryError::Transport {
                        host: session.api_host.clone(),
                        what: what.clone(),
                        source: Box::new(e),
                    })
                }
                Ok(Some(Ok(f))) => f,
            };
            let Ok(mut data) = frame.into_data() else {
                continue; // trailers
            };
            if skip > 0 {
                let n = skip.min(data.len() as u64);
                let _ = data.split_to(n as usize);
                skip -= n;
            }
            if data.is_empty() {
                continue;
            }
            let total = st.written + data.len() as u64;
            if let Some(size) = st.blob.size.filter(|s| total > *s) {
                return Err(self.size_mismatch(repo, st.blob, size, total));
            }
            sink.write(&data).map_err(|source| RegistryError::Sink {
                digest: digest.to_string(),
                source,
            })?;
            st.hasher.update(&data);
            st.written = total;
            if st.written - st.reported >= REPORT_EVERY {
                st.reported = st.written;
                report(
                    st.progress,
                    digest.short(),
                    Status::Downloading,
                    st.written,
                    st.blob.size,
                );
            }
        }
    }
}

/// The first byte of `bytes <start>-<end>/<total>`.
fn content_range_start(v: &str) -> Option<u64> {
    v.trim()
        .strip_prefix("bytes ")?
        .split('-')
        .next()?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range() {
        assert_eq!(content_range_start("bytes 0-9/3000000"), Some(0));
        assert_eq!(content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(content_range_start("items 1-2/3"), None);
    }
}
