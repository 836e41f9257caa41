//! Applying a layer tarball to a directory, safely.
//!
//! Every path is resolved inside the target with `openat2(RESOLVE_IN_ROOT)`, and the last
//! component is never followed: a hostile archive (`..`, absolute names, a symlink and then
//! a write through it, a hard link out, symlink loops) can only ever touch the target.
//! OCI whiteouts become overlayfs whiteouts (char device 0/0) and opaque directories
//! (`trusted.overlay.opaque=y`). This module never follows a link the archive made.

mod apply;
mod compression;

pub use apply::{retry_eagain, unpack, UnpackOptions, UnpackStats, WhiteoutStyle};
pub use compression::{decompressed, Compression};

use std::path::PathBuf;

/// What went wrong while applying one layer.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("reading the archive: {0}")]
    Read(#[source] std::io::Error),
    #[error("{op} {path:?}: {source}")]
    Fs {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("entry {path:?} is truncated: header says {expected} bytes, archive has {actual}")]
    Truncated {
        path: PathBuf,
        expected: u64,
        actual: u64,
    },
    #[error("entry {0:?} would replace the root of the layer")]
    ReplacesRoot(PathBuf),
    #[error("entry {path:?}: invalid whiteout {name:?}")]
    InvalidWhiteout { path: PathBuf, name: String },
    #[error("entry {path:?}: hard link target {target:?} is not inside the layer")]
    LinkOutside { path: PathBuf, target: PathBuf },
    #[error("entry {path:?}: unsupported tar entry type {kind}")]
    UnsupportedEntry { path: PathBuf, kind: String },
    #[error("unsupported compression {0}: layers must be tar, tar+gzip or tar+zstd")]
    UnsupportedCompression(&'static str),
}
