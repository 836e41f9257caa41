//! berth's OCI distribution client: ping, auth (Basic and the Bearer token flow), manifests
//! with platform selection, blob download into a caller's sink with digest checks, resume and
//! retries, uploads (monolithic, chunked, cross-repository mount), tags, catalog, search, and
//! credentials in the docker CLI's `config.json` format.
//!
//! It speaks HTTP and nothing else: it never knows where or how the caller stores images
//! (blobs go to a [`BlobSink`], come from a [`BlobSource`]), and it sends plain HTTP only to
//! loopback or to registries the caller lists as insecure.

pub mod auth;
mod blob;
mod client;
pub mod credentials;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod image;
mod list;
mod manifest;
pub mod media;
pub mod platform;
pub mod progress;
mod session;
pub mod tls;
mod transport;
mod upload;

pub use auth::Credentials;
pub use blob::{BlobRef, BlobSink, WriteSink};
pub use client::{api_host, Client, ClientConfig, Repository, DOCKER_HUB_API_HOST};
pub use error::{ApiError, ApiErrors, RegistryError, Result};
pub use image::{ManifestUpload, PullPlan};
pub use list::{hub_search_url, next_link, SearchResult};
pub use manifest::{ManifestHead, PulledManifest, ResolvedImage, MANIFEST_SIZE_LIMIT};
pub use media::{ManifestBody, ManifestKind};
pub use platform::Platform;
pub use progress::{NoProgress, Progress, ProgressEvent, Status};
pub use transport::http_allowed;
pub use upload::{BlobSource, PushedBlob};

/// The oci-spec types that appear in this API, re-exported so callers use the same version.
pub use oci_spec;
