//! The registry client's error type. Every variant names the registry and, where there is one,
//! the repository and digest, so a user sees what failed against what.

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// One entry of a registry's `{"errors":[{"code","message","detail"}]}` body.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct ApiError {
    pub code: String,
    #[serde(default)]
    pub message: String,
}

/// The `errors` list a registry sends with a failure status, rendered `CODE: message; ...`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApiErrors(pub Vec<ApiError>);

impl ApiErrors {
    /// Parse an error body; anything that is not the spec's JSON gives an empty list.
    pub fn parse(body: &[u8]) -> Self {
        #[derive(Deserialize)]
        struct Body {
            #[serde(default)]
            errors: Vec<ApiError>,
        }
        Self(
            serde_json::from_slice::<Body>(body)
                .map(|b| b.errors)
                .unwrap_or_default(),
        )
    }

    pub fn has_code(&self, code: &str) -> bool {
        self.0.iter().any(|e| e.code == code)
    }
}

impl fmt::Display for ApiErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("no error details");
        }
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.code, e.message)?;
        }
        Ok(())
    }
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Errors from talking to a registry. Messages are lowercase and say what to do when there is
/// something to do.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    #[error("{registry}: {status} on {what}: {errors}")]
    Status {
        registry: String,
        what: String,
        status: u16,
        errors: ApiErrors,
    },
    #[error("{registry}: unauthorized: incorrect username or password")]
    WrongCredentials { registry: String },
    #[error("{registry}: authentication required for {what}: {errors} (log in first)")]
    AuthRequired {
        registry: String,
        what: String,
        errors: ApiErrors,
    },
    #[error("{registry}: token server {realm}: {reason}")]
    Token {
        registry: String,
        realm: String,
        reason: String,
    },
    #[error("manifest unknown: {registry}/{repository}:{reference} not found")]
    ManifestUnknown {
        registry: String,
        repository: String,
        reference: String,
    },
    #[error("{registry}/{repository}: blob {digest} not found")]
    BlobUnknown {
        registry: String,
        repository: String,
        digest: String,
    },
    #[error("{registry}: repository {repository} not found")]
    NameUnknown {
        registry: String,
        repository: String,
    },
    #[error("{registry}/{repository}: digest mismatch: expected {expected}, received content hashes to {actual}")]
    DigestMismatch {
        registry: String,
        repository: String,
        expected: String,
        actual: String,
    },
    #[error(
        "{registry}/{repository}: blob {digest}: expected {expected} bytes, received {actual}"
    )]
    SizeMismatch {
        registry: String,
        repository: String,
        digest: String,
        expected: u64,
        actual: u64,
    },
    #[error("{registry}/{repository}: manifest {reference} is larger than the {limit}-byte limit")]
    ManifestTooLarge {
        registry: String,
        repository: String,
        reference: String,
        limit: usize,
    },
    #[error("{registry}/{repository}:{reference}: schema 1 manifests ({media_type}) are not supported; push the image again with a current client")]
    Schema1 {
        registry: String,
        repository: String,
        reference: String,
        media_type: String,
    },
    #[error("{registry}/{repository}:{reference}: unsupported manifest media type {media_type:?}")]
    UnsupportedMediaType {
        registry: String,
        repository: String,
        reference: String,
        media_type: String,
    },
    #[error("{registry}/{repository}:{reference}: invalid manifest: {reason}")]
    InvalidManifest {
        registry: String,
        repository: String,
        reference: String,
        reason: String,
    },
    #[error("no matching manifest for {wanted} in the manifest list entries of {reference} (available: {available})")]
    NoMatchingPlatform {
        reference: String,
        wanted: String,
        available: String,
    },
    #[error("invalid platform {0:?}: expected os/arch[/variant]")]
    InvalidPlatform(String),
    #[error("{registry}: {reason}")]
    InvalidResponse { registry: String, reason: String },
    #[error("{registry}: plain http is refused: the registry is not loopback and not in the insecure registries list")]
    InsecureRefused { registry: String },
    #[error("{host}: tls setup: {reason}")]
    Tls { host: String, reason: String },
    #[error("{host}: {what}: {source}")]
    Transport {
        host: String,
        what: String,
        #[source]
        source: BoxError,
    },
    #[error("{host}: {what}: timed out")]
    Timeout { host: String, what: String },
    #[error("{registry}: too many redirects on {what}")]
    TooManyRedirects { registry: String, what: String },
    #[error("blob {digest}: writing to the local store: {source}")]
    Sink {
        digest: String,
        #[source]
        source: std::io::Error,
    },
    #[error("blob {digest}: reading local content: {source}")]
    Source {
        digest: String,
        #[source]
        source: std::io::Error,
    },
    #[error("credentials file {path}: {reason}")]
    Credentials { path: PathBuf, reason: String },
}

impl RegistryError {
    /// Whether trying the same request again may succeed (5xx, 429, dropped connections, timeouts).
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Status { status, .. } => *status >= 500 || *status == 429 || *status == 408,
            Self::Transport { .. } | Self::Timeout { .. } => true,
            _ => false,
        }
    }
}

pub type Result<T, E = RegistryError> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_error_bodies() {
        let e = ApiErrors::parse(
            br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{"Tag":"x"}}]}"#,
        );
        assert!(e.has_code("MANIFEST_UNKNOWN"));
        assert_eq!(e.to_string(), "MANIFEST_UNKNOWN: manifest unknown");
        assert_eq!(ApiErrors::parse(b"<html>").0, vec![]);
    }
}
