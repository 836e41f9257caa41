//! The image store's error type: every variant names what it failed on.

use std::path::PathBuf;

/// Errors from the image store. Messages are lowercase and name the object involved.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid digest {0:?}: expected sha256:<64 hex digits>")]
    InvalidDigest(String),
    #[error("digest mismatch: expected {expected}, content hashes to {actual}")]
    DigestMismatch { expected: String, actual: String },
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch {
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("blob {0} not found in the store")]
    BlobNotFound(String),
    #[error("invalid reference format: {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("No such image: {0}")]
    ImageNotFound(String),
    #[error("ambiguous image id prefix {0:?}: matches more than one image")]
    AmbiguousId(String),
    #[error("invalid {what} {digest}: {reason}")]
    InvalidJson {
        what: &'static str,
        digest: String,
        reason: String,
    },
    #[error("unsupported media type {0:?}")]
    UnsupportedMediaType(String),
    #[error("layer {digest}: {source}")]
    Layer {
        digest: String,
        #[source]
        source: crate::unpack::UnpackError,
    },
    #[error("invalid archive: {0}")]
    InvalidArchive(String),
    #[error("conflict: unable to delete {id} (must be forced) - image is referenced in multiple repositories")]
    MultipleRefs { id: String },
    #[error("conflict: unable to delete {id} (must be forced) - image is being used by {users}")]
    InUse { id: String, users: String },
    #[error("unsupported compression {0}: layers must be tar, tar+gzip or tar+zstd")]
    UnsupportedCompression(&'static str),
    #[error("image has {layers} layers: the overlay mount options would be {len} bytes, over the kernel's limit of {max} even with short links")]
    TooManyLayers {
        layers: usize,
        len: usize,
        max: usize,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Attach the operation and path to an io::Error.
pub(crate) trait IoContext<T> {
    fn at(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, op: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| StoreError::Io {
            op,
            path: path.into(),
            source,
        })
    }
}
