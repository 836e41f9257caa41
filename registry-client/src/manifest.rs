//! Manifest GET/HEAD and image resolution: fetch with the full `Accept` list, cap the size,
//! verify the digest, and walk an index to the manifest for one platform.

use bytes::Bytes;
use hyper::header::{HeaderName, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE};
use hyper::{Method, StatusCode};
use image_store::Digest;
use oci_spec::image::{ImageIndex, ImageManifest};

use crate::auth::pull_scope;
use crate::client::{Client, Repository};
use crate::error::{RegistryError, Result};
use crate::media::{self, ManifestBody, ManifestKind, ParseError};
use crate::platform::{self, Platform};
use crate::session::Req;
use crate::transport;

/// The spec's advice: expect manifests of at least 4 MB, refuse beyond that.
pub const MANIFEST_SIZE_LIMIT: usize = 4 << 20;

pub(crate) const DOCKER_CONTENT_DIGEST: HeaderName =
    HeaderName::from_static("docker-content-digest");

/// A manifest as received: its bytes (exactly, so its digest holds), kind and parse.
#[derive(Clone, Debug)]
pub struct PulledManifest {
    pub kind: ManifestKind,
    pub digest: Digest,
    pub bytes: Bytes,
    pub body: ManifestBody,
}

impl PulledManifest {
    pub fn image(&self) -> Option<&ImageManifest> {
        match &self.body {
            ManifestBody::Image(m) => Some(m),
            ManifestBody::Index(_) => None,
        }
    }

    pub fn index(&self) -> Option<&ImageIndex> {
        match &self.body {
            ManifestBody::Index(i) => Some(i),
            ManifestBody::Image(_) => None,
        }
    }
}

/// What `HEAD` on a manifest tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestHead {
    pub digest: Option<Digest>,
    pub media_type: Option<String>,
    pub size: Option<u64>,
}

/// An image resolved for one platform: the index it came through, if any, and its manifest.
#[derive(Clone, Debug)]
pub struct ResolvedImage {
    pub index: Option<PulledManifest>,
    pub manifest: PulledManifest,
    /// The parse of `manifest`, which resolution checked to be an image manifest.
    pub image: ImageManifest,
}

fn digest_of(bytes: &[u8]) -> Digest {
    Digest::of_bytes(bytes)
}

impl Client {
    /// `GET` a manifest by tag or digest. The bytes are verified against the digest when the
    /// reference is one, else against `Docker-Content-Digest` when the registry sends it.
    pub async fn get_manifest(&self, repo: &Repository, reference: &str) -> Result<PulledManifest> {
        self.retrying("get manifest", || self.get_manifest_once(repo, reference))
            .await
    }

    async fn get_manifest_once(
        &self,
        repo: &Repository,
        reference: &str,
    ) -> Result<PulledManifest> {
        let session = self.session(&repo.registry);
        let what = format!("GET manifest {}:{reference}", repo.name);
        let req = Req::new(
            Method::GET,
            format!("/v2/{}/manifests/{reference}", repo.name),
            &what,
        )
        .header(ACCEPT, media::ACCEPT);
        let resp = session.send(req, &[pull_scope(&repo.name)]).await?;
        if !resp.status().is_success() {
            let e = session.fail(resp, &what).await;
            return Err(self.refine_not_found(e, repo, reference));
        }
        let too_large = || RegistryError::ManifestTooLarge {
            registry: repo.registry.clone(),
            repository: repo.name.clone(),
            reference: reference.to_owned(),
            limit: MANIFEST_SIZE_LIMIT,
        };
        let header = |name: HeaderName| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        if header(CONTENT_LENGTH)
            .and_then(|l| l.parse::<usize>().ok())
            .is_some_and(|l| l > MANIFEST_SIZE_LIMIT)
        {
            return Err(too_large());
        }
        let content_type = header(CONTENT_TYPE);
        let announced = header(DOCKER_CONTENT_DIGEST);
        let bytes = transport::read_body(
            resp.into_body(),
            MANIFEST_SIZE_LIMIT,
            &session.api_host,
            &what,
        )
        .await?
        .ok_or_else(too_large)?;
        let actual = digest_of(&bytes);
        let expected = if reference.starts_with("sha256:") {
            Some(reference.to_owned())
        } else {
            announced.filter(|d| d.starts_with("sha256:"))
        };
        if let Some(exp) = expected {
            if exp != actual.as_str() {
                return Err(RegistryError::DigestMismatch {
                    registry: repo.registry.clone(),
                    repository: repo.name.clone(),
                    expected: exp,
                    actual: actual.to_string(),
                });
            }
        }
        let (kind, body) =
            media::parse_manifest(content_type.as_deref(), &bytes).map_err(|e| match e {
                ParseError::Schema1(mt) => RegistryError::Schema1 {
                    registry: repo.registry.clone(),
                    repository: repo.name.clone(),
                    reference: reference.to_owned(),
                    media_type: mt,
                },
                ParseError::Unsupported(mt) => RegistryError::UnsupportedMediaType {
                    registry: repo.registry.clone(),
                    repository: repo.name.clone(),
                    reference: reference.to_owned(),
                    media_type: mt,
                },
                ParseError::Invalid(reason) => RegistryError::InvalidManifest {
                    registry: repo.registry.clone(),
                    repository: repo.name.clone(),
                    reference: reference.to_owned(),
                    reason,
                },
            })?;
        Ok(PulledManifest {
            kind,
            digest: actual,
            bytes,
            body,
        })
    }

    /// `HEAD` a manifest: its digest without downloading it (and, on Docker Hub, without
    /// counting as a pull). `Ok(None)` when the manifest does not exist.
    pub async fn head_manifest(
        &self,
        repo: &Repository,
        reference: &str,
    ) -> Result<Option<ManifestHead>> {
        self.retrying("head manifest", || async {
            let session = self.session(&repo.registry);
            let what = format!("HEAD manifest {}:{reference}", repo.name);
            let req = Req::new(
                Method::HEAD,
                format!("/v2/{}/manifests/{reference}", repo.name),
                &what,
            )
            .header(ACCEPT, media::ACCEPT);
            let resp = session.send(req, &[pull_scope(&repo.name)]).await?;
            if resp.status() == StatusCode::NOT_FOUND {
                return Ok(None);
            }
            if !resp.status().is_success() {
                return Err(session.fail(resp, &what).await);
            }
            let h = |n: HeaderName| {
                resp.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            Ok(Some(ManifestHead {
                digest: h(DOCKER_CONTENT_DIGEST).and_then(|d| Digest::parse(&d).ok()),
                media_type: h(CONTENT_TYPE).map(|c| media::essence(&c).to_owned()),
                size: h(CONTENT_LENGTH).and_then(|l| l.parse().ok()),
            }))
        })
        .await
    }

    /// Resolve `reference` (tag or digest) to the image manifest for `platform`: through an
    /// index when the reference names one, checking the child's digest and size against the
    /// index entry.
    pub async fn resolve_image(
        &self,
        repo: &Repository,
        reference: &str,
        platform: &Platform,
    ) -> Result<ResolvedImage> {
        let top = self.get_manifest(repo, reference).await?;
        let Some(index) = top.index() else {
            let image = top
                .image()
                .cloned()
                .ok_or_else(|| RegistryError::InvalidManifest {
                    registry: repo.registry.clone(),
                    repository: repo.name.clone(),
                    reference: reference.to_owned(),
                    reason: "neither an image manifest nor an index".into(),
                })?;
            return Ok(ResolvedImage {
                index: None,
                manifest: top,
                image,
            });
        };
        let name = format!("{repo}:{reference}");
        let entry = platform::select(index, platform, &name)?;
        let child_ref = entry.digest().to_string();
        let child = self.get_manifest(repo, &child_ref).await?;
        if child.bytes.len() as u64 != entry.size() {
            return Err(RegistryError::InvalidManifest {
                registry: repo.registry.clone(),
                repository: repo.name.clone(),
                reference: child_ref,
                reason: format!(
                    "index says {} bytes, received {}",
                    entry.size(),
                    child.bytes.len()
                ),
            });
        }
        let Some(image) = child.image().cloned() else {
            return Err(RegistryError::InvalidManifest {
                registry: repo.registry.clone(),
                repository: repo.name.clone(),
                reference: child_ref,
                reason: "an index entry for a platform points at another index".into(),
            });
        };
        Ok(ResolvedImage {
            index: Some(top),
            manifest: child,
            image,
        })
    }

    /// 404s become the specific not-found errors.
    fn refine_not_found(
        &self,
        e: RegistryError,
        repo: &Repository,
        reference: &str,
    ) -> RegistryError {
        match e {
            RegistryError::Status {
                status: 404,
                ref errors,
                ..
            } if errors.has_code("NAME_UNKNOWN") => RegistryError::NameUnknown {
                registry: repo.registry.clone(),
                repository: repo.name.clone(),
            },
            RegistryError::Status { status: 404, .. } => RegistryError::ManifestUnknown {
                registry: repo.registry.clone(),
                repository: repo.name.clone(),
                reference: reference.to_owned(),
            },
            e => e,
        }
    }
}
