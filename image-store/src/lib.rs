//! berth's image store: content-addressed blobs, image refs, unpacked layers and archives.
//!
//! The data root is itself a valid OCI image layout (`oci-layout`, `index.json`,
//! `blobs/sha256/`); refs are the `index.json` entries, named by the
//! `org.opencontainers.image.ref.name` annotation. Unpacked layers live in
//! `layers/<chain-id>/diff`, each created once. This crate does no network I/O and
//! knows nothing of containers beyond handing out overlay mount specs.

pub mod archive;
pub mod blobs;
pub mod diff;
pub mod digest;
pub mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod layers;
mod lease;
mod maintenance;
pub mod reference;
pub mod unpack;

pub use digest::Digest;
pub use error::{Result, StoreError};
pub use reference::Reference;
pub mod import;
mod ingest;
pub mod store;
mod tee;
pub use archive::LoadedImage;
pub use diff::NewLayer;
pub use import::ImportOptions;
pub use ingest::{LayerWriter, PendingLayer, PulledLayer, StagedLayer};
pub use lease::WriteLease;
pub use maintenance::{CheckReport, ImageUsage};
pub use store::{ImageRecord, Removed, Store};
