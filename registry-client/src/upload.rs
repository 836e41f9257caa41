//! Push: blob existence checks, cross-repository mounts, monolithic and chunked uploads, and
//! manifest PUT. Chunked uploads track the offset on the client (distribution 2.8.2 does not
//! check `Content-Range`) and always continue at the newest `Location`, which carries the
//! registry's upload state.

use std::path::PathBuf;

use bytes::Bytes;
use hyper::header::{HeaderName, CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION, RANGE};
use hyper::{Method, Response, StatusCode};
use image_store::Digest;

use crate::auth::{pull_scope, push_scope};
use crate::client::{Client, Repository};
use crate::error::{RegistryError, Result};
use crate::manifest::DOCKER_CONTENT_DIGEST;
use crate::progress::{report, Progress, Status};
use crate::session::{Req, Session};
use crate::transport::{self, BodySpec};

const CHUNK_MIN_LENGTH: HeaderName = HeaderName::from_static("oci-chunk-min-length");

/// Where the bytes of a blob to push come from. A file is streamed, never read whole.
#[derive(Clone, Debug)]
pub enum BlobSource {
    Bytes(Bytes),
    File(PathBuf),
}

/// What pushing a blob amounted to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PushedBlob {
    /// The repository already had it.
    Exists,
    /// Mounted from the named repository, no bytes sent.
    Mounted,
    Uploaded,
}

impl BlobSource {
    async fn size(&self, digest: &Digest) -> Result<u64> {
        match self {
            BlobSource::Bytes(b) => Ok(b.len() as u64),
            BlobSource::File(p) => {
                tokio::fs::metadata(p)
                    .await
                    .map(|m| m.len())
                    .map_err(|source| RegistryError::Source {
                        digest: digest.to_string(),
                        source,
                    })
            }
        }
    }

    fn slice(&self, offset: u64, len: u64) -> BodySpec {
        match self {
            BlobSource::Bytes(b) => {
                BodySpec::Bytes(b.slice(offset as usize..(offset + len) as usize))
            }
            BlobSource::File(p) => BodySpec::File {
                path: p.clone(),
                offset,
                len,
            },
        }
    }
}

fn header(resp: &Response<hyper::body::Incoming>, name: HeaderName) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

impl Client {
    /// `HEAD` a blob: its size when the repository has it.
    pub async fn blob_exists(&self, repo: &Repository, digest: &Digest) -> Result<Option<u64>> {
        self.retrying("head blob", || async {
            let session = self.session(&repo.registry);
            let what = format!("HEAD blob {digest}");
            let req = Req::new(
                Method::HEAD,
                format!("/v2/{}/blobs/{digest}", repo.name),
                &what,
            );
            let resp = session.send(req, &[pull_scope(&repo.name)]).await?;
            match resp.status() {
                StatusCode::NOT_FOUND => Ok(None),
                s if s.is_success() => Ok(Some(
                    header(&resp, CONTENT_LENGTH)
                        .and_then(|l| l.parse().ok())
                        .unwrap_or(0),
                )),
                _ => Err(session.fail(resp, &what).await),
            }
        })
        .await
    }

    /// Push one blob unless the repository has it: mount it from `mount_from` (another
    /// repository on the same registry) when given, else upload it. Transient failures start
    /// a new upload session.
    pub async fn push_blob(
        &self,
        repo: &Repository,
        digest: &Digest,
        source: &BlobSource,
        mount_from: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<PushedBlob> {
        let id = digest.short().to_owned();
        if self.blob_exists(repo, digest).await?.is_some() {
            report(progress, &id, Status::Exists, 0, None);
            return Ok(PushedBlob::Exists);
        }
        let size = source.size(digest).await?;
        let out = self
            .retrying("push blob", || {
                self.push_blob_once(repo, digest, source, size, mount_from, progress)
            })
            .await?;
        match (&out, mount_from) {
            (PushedBlob::Mounted, Some(from)) => report(
                progress,
                &id,
                Status::Mounted {
                    from: from.to_owned(),
                },
                size,
                Some(size),
            ),
            _ => report(progress, &id, Status::Pushed, size, Some(size)),
        }
        Ok(out)
    }

    async fn push_blob_once(
        &self,
        repo: &Repository,
        digest: &Digest,
        source: &BlobSource,
        size: u64,
        mount_from: Option<&str>,
        progress: &dyn Progress,
    ) -> Result<PushedBlob> {
        let session = self.session(&repo.registry);
        let mut scopes = vec![push_scope(&repo.name)];
        let mut url = format!("/v2/{}/blobs/uploads/", repo.name);
        if let Some(from) = mount_from {
            scopes.push(pull_scope(from));
            url = transport::with_query(&url, "mount", digest.as_str());
            url = transport::with_query(&url, "from", from);
        }
        let what = format!("start upload of {digest}");
        let resp = session
            .send(Req::new(Method::POST, url, &what), &scopes)
            .await?;
        match resp.status() {
            // A mount that worked; 202 below means the registry fell back to an upload.
            StatusCode::CREATED if mount_from.is_some() => return Ok(PushedBlob::Mounted),
            StatusCode::ACCEPTED => {}
            _ => return Err(session.fail(resp, &what).await),
        }
        let mut location = self.location(&session, &resp, &what)?;
        let min_chunk: u64 = header(&resp, CHUNK_MIN_LENGTH)
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let id = digest.short().to_owned();
        report(progress, &id, Status::Pushing, 0, Some(size));
        let scopes = [push_scope(&repo.name)];

        if size > self.inner.config.chunk_threshold {
            let chunk = self.inner.config.chunk_size.max(min_chunk).max(1);
            let mut offset = 0u64;
            while offset < size {
                let len = chunk.min(size - offset);
                let end = offset + len - 1;
                let what = format!("upload chunk {offset}-{end} of {digest}");
                let req = Req::new(Method::PATCH, location.clone(), &what)
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_RANGE, format!("{offset}-{end}"))
                    .body(source.slice(offset, len));
                let resp = session.send(req, &scopes).await?;
                if resp.status() != StatusCode::ACCEPTED {
                    return Err(session.fail(resp, &what).await);
                }
                // The registry's Range says how much it holds; if it disagrees with our count
                // the upload is broken and only a new session can fix it.
                if let Some(r) = header(&resp, RANGE) {
                    let held = r
                        .rsplit('-')
                        .next()
                        .and_then(|e| e.trim().parse::<u64>().ok());
                    if held != Some(end) {
                        return Err(RegistryError::InvalidResponse {
                            registry: repo.registry.clone(),
                            reason: format!("{what}: registry reports Range {r}, expected 0-{end}"),
                        });
                    }
                }
                location = self.location(&session, &resp, &what)?;
                offset = end + 1;
                report(progress, &id, Status::Pushing, offset, Some(size));
            }
            self.finish_upload(&session, repo, digest, location, BodySpec::Empty)
                .await
        } else {
            self.finish_upload(&session, repo, digest, location, source.slice(0, size))
                .await
        }
    }

    /// `PUT <location>&digest=` with the last (or only) bytes.
    async fn finish_upload(
        &self,
        session: &Session,
        repo: &Repository,
        digest: &Digest,
        location: String,
        body: BodySpec,
    ) -> Result<PushedBlob> {
        let what = format!("upload of {digest}");
        let req = Req::new(
            Method::PUT,
            transport::with_query(&location, "digest", digest.as_str()),
            &what,
        )
        .header(CONTENT_TYPE, "application/octet-stream")
        .body(body);
        let resp = session.send(req, &[push_scope(&repo.name)]).await?;
        if resp.status() != StatusCode::CREATED {
            return Err(session.fail(resp, &what).await);
        }
        Ok(PushedBlob::Uploaded)
    }

    fn location(
        &self,
        session: &Session,
        resp: &Response<hyper::body::Incoming>,
        what: &str,
    ) -> Result<String> {
        header(resp, LOCATION).ok_or_else(|| RegistryError::InvalidResponse {
            registry: session.registry.clone(),
            reason: format!("{what}: {} without Location", resp.status()),
        })
    }

    /// `PUT` a manifest under `reference` (a tag or its digest) with its media type as
    /// `Content-Type`. Returns the digest of the bytes, checked against the registry's.
    pub async fn push_manifest(
        &self,
        repo: &Repository,
        reference: &str,
        media_type: &str,
        bytes: Bytes,
    ) -> Result<Digest> {
        let digest = Digest::of_bytes(&bytes);
        self.retrying("push manifest", || async {
            let session = self.session(&repo.registry);
            let what = format!("PUT manifest {}:{reference}", repo.name);
            let req = Req::new(
                Method::PUT,
                format!("/v2/{}/manifests/{reference}", repo.name),
                &what,
            )
            .header(CONTENT_TYPE, media_type)
            .body(BodySpec::Bytes(bytes.clone()));
            let resp = session.send(req, &[push_scope(&repo.name)]).await?;
            if resp.status() != StatusCode::CREATED {
                return Err(session.fail(resp, &what).await);
            }
            if let Some(d) = header(&resp, DOCKER_CONTENT_DIGEST) {
                if d != digest.as_str() {
                    return Err(RegistryError::DigestMismatch {
                        registry: repo.registry.clone(),
                        repository: repo.name.clone(),
                        expected: digest.to_string(),
                        actual: d,
                    });
                }
            }
            Ok(digest.clone())
        })
        .await
    }
}
