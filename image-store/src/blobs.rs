//! The content-addressed blob store under `<root>/blobs/sha256/`.
//!
//! A blob is written to `<root>/ingest/` while its sha256 is computed, fsynced, verified
//! against the expected digest when one is given, and only then renamed into place: a blob
//! that exists under its name always hashes to it. Nothing here knows what a blob means.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::digest::{Digest, HashingReader, HashingWriter};
use crate::error::{IoContext, Result, StoreError};

/// Blobs of one data root.
#[derive(Debug)]
pub struct BlobStore {
    dir: PathBuf,
    ingest: PathBuf,
}

static INGEST_SEQ: AtomicU64 = AtomicU64::new(0);

impl BlobStore {
    pub(crate) fn open(root: &Path) -> Result<Self> {
        let dir = root.join("blobs/sha256");
        let ingest = root.join("ingest");
        fs::create_dir_all(&dir).at("create", &dir)?;
        // Leftovers from a crash: an ingest file is never referenced by anything.
        let _ = fs::remove_dir_all(&ingest);
        fs::create_dir_all(&ingest).at("create", &ingest)?;
        Ok(Self { dir, ingest })
    }

    pub fn path(&self, digest: &Digest) -> PathBuf {
        self.dir.join(digest.hex())
    }

    pub fn exists(&self, digest: &Digest) -> bool {
        self.path(digest).is_file()
    }

    pub fn size(&self, digest: &Digest) -> Result<u64> {
        let p = self.path(digest);
        match fs::metadata(&p) {
            Ok(m) => Ok(m.len()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(StoreError::BlobNotFound(digest.to_string()))
            }
            Err(e) => Err(e).at("stat", p),
        }
    }

    pub fn open_blob(&self, digest: &Digest) -> Result<File> {
        let p = self.path(digest);
        File::open(&p).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                StoreError::BlobNotFound(digest.to_string())
            } else {
                StoreError::Io {
                    op: "open",
                    path: p,
                    source: e,
                }
            }
        })
    }

    pub fn read(&self, digest: &Digest) -> Result<Vec<u8>> {
        let mut buf = Vec::new();
        self.open_blob(digest)?
            .read_to_end(&mut buf)
            .at("read", self.path(digest))?;
        Ok(buf)
    }

    /// Start writing a new blob; commit it with [`BlobWriter::commit`].
    pub fn writer(&self) -> Result<BlobWriter<'_>> {
        let seq = INGEST_SEQ.fetch_add(1, Ordering::Relaxed);
        let tmp = self.ingest.join(format!("{}-{seq}", std::process::id()));
        let file = File::create(&tmp).at("create", &tmp)?;
        Ok(BlobWriter {
            store: self,
            inner: Some(HashingWriter::new(BufWriter::with_capacity(1 << 20, file))),
            tmp,
        })
    }

    /// Store `bytes`, returning their digest. Storing existing content is a no-op.
    pub fn put(&self, bytes: &[u8]) -> Result<Digest> {
        let digest = Digest::of_bytes(bytes);
        if self.exists(&digest) {
            return Ok(digest);
        }
        let mut w = self.writer()?;
        w.write_all(bytes).at("write", &w.tmp)?;
        w.commit(Some(&digest))
    }

    /// Copy a stream into the store, verifying it against `expected` when given.
    pub fn put_reader(
        &self,
        reader: impl Read,
        expected: Option<&Digest>,
    ) -> Result<(Digest, u64)> {
        let mut w = self.writer()?;
        let mut r = reader;
        io::copy(&mut r, &mut w).at("write", &w.tmp)?;
        let size = w.written();
        let d = w.commit(expected)?;
        Ok((d, size))
    }

    /// Re-hash a stored blob; `Ok(false)` when its content does not match its name.
    pub fn verify(&self, digest: &Digest) -> Result<bool> {
        let f = self.open_blob(digest)?;
        let (actual, _, _) = HashingReader::new(io::BufReader::with_capacity(1 << 20, f))
            .finish()
            .at("read", self.path(digest))?;
        Ok(&actual == digest)
    }

    /// Every blob name in the store (names that are not digests are reported as errors by `check`).
    pub fn list(&self) -> Result<Vec<Result<Digest, String>>> {
        let mut out = Vec::new();
        for entry in fs::read_dir(&self.dir).at("read", &self.dir)? {
            let entry = entry.at("read", &self.dir)?;
            let name = entry.file_name().to_string_lossy().into_owned();
            out.push(Digest::from_hex(&name).map_err(|_| name));
        }
        Ok(out)
    }

    pub fn remove(&self, digest: &Digest) -> Result<()> {
        let p = self.path(digest);
        match fs::remove_file(&p) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).at("remove", p),
            _ => Ok(()),
        }
    }

    /// Flush the directory entry of renamed blobs (one fsync for a batch of commits).
    pub fn sync_dir(&self) -> Result<()> {
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .at("fsync", &self.dir)
    }
}

/// A blob being written. Dropped without commit, it leaves nothing behind.
pub struct BlobWriter<'a> {
    store: &'a BlobStore,
    inner: Option<HashingWriter<BufWriter<File>>>,
    tmp: PathBuf,
}

impl BlobWriter<'_> {
    pub fn written(&self) -> u64 {
        self.inner.as_ref().map_or(0, |w| w.count())
    }

    /// fsync, verify against `expected`, and rename into place.
    pub fn commit(mut self, expected: Option<&Digest>) -> Result<Digest> {
        let Some(w) = self.inner.take() else {
            return Err(StoreError::InvalidArchive(
                "blob writer used after commit".into(),
            ));
        };
        let (digest, _, buf) = w.finish();
        let file = buf
            .into_inner()
            .map_err(|e| e.into_error())
            .at("write", &self.tmp)?;
        if let Some(exp) = expected {
            if exp != &digest {
                return Err(StoreError::DigestMismatch {
                    expected: exp.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        let dst = self.store.path(&digest);
        if dst.exists() {
            return Ok(digest); // same content already stored; Drop removes the temp file
        }
        file.sync_all().at("fsync", &self.tmp)?;
        fs::rename(&self.tmp, &dst).at("rename", &dst)?;
        Ok(digest)
    }
}

impl Write for BlobWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.inner.as_mut() {
            Some(w) => w.write(buf),
            None => Err(io::Error::other("blob writer already committed")),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.inner.as_mut() {
            Some(w) => w.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for BlobWriter<'_> {
    fn drop(&mut self) {
        // After a successful rename the temp name is gone and this is a no-op.
        let _ = fs::remove_file(&self.tmp);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn put_verify_and_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path()).unwrap();
        let d = store.put(b"hello").unwrap();
        assert!(store.exists(&d));
        assert!(store.verify(&d).unwrap());
        assert_eq!(store.read(&d).unwrap(), b"hello");

        let wrong = Digest::of_bytes(b"other");
        let err = store.put_reader(&b"hello!"[..], Some(&wrong)).unwrap_err();
        assert!(matches!(err, StoreError::DigestMismatch { .. }), "{err}");
        assert!(!store.exists(&wrong));
        // nothing left in ingest
        assert_eq!(fs::read_dir(dir.path().join("ingest")).unwrap().count(), 0);

        // corruption is detected
        fs::write(store.path(&d), b"tampered").unwrap();
        assert!(!store.verify(&d).unwrap());
    }
}
