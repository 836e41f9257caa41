//! Authentication: credentials, the challenge a registry sends, Bearer token scopes and the
//! token server's answer. The request flow that uses them lives in `session`.

pub mod challenge;

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde::Deserialize;

/// A username and password (or a registry token used as a password).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            password: password.into(),
        }
    }

    /// The value of an `Authorization: Basic` header.
    pub fn basic_header(&self) -> String {
        let raw = format!("{}:{}", self.username, self.password);
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    }
}

impl fmt::Debug for Credentials {
    // Never print a password, not even in a debug log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Scope for pulling from a repository.
pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

/// Scope for pushing to a repository (a push also reads, to check what exists).
pub fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

pub const CATALOG_SCOPE: &str = "registry:catalog:*";

/// Merge scopes naming the same resource and sort everything, so equal sets give equal keys:
/// `repository:a:pull` + `repository:a:push` = `repository:a:pull,push`.
pub fn normalize_scopes<S: AsRef<str>>(scopes: &[S]) -> Vec<String> {
    let mut merged: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for s in scopes {
        let s = s.as_ref();
        let (resource, actions) = match s.rsplit_once(':') {
            Some((r, a)) if r.contains(':') => (r, a),
            _ => (s, ""),
        };
        let entry = merged.entry(resource.to_owned()).or_default();
        for a in actions.split(',').filter(|a| !a.is_empty()) {
            if !entry.iter().any(|x| x == a) {
                entry.push(a.to_owned());
            }
        }
    }
    merged
        .into_iter()
        .map(|(r, mut a)| {
            a.sort();
            if a.is_empty() {
                r
            } else {
                format!("{r}:{}", a.join(","))
            }
        })
        .collect()
}

/// A Bearer token and when to stop using it.
#[derive(Clone, Debug)]
pub(crate) struct Token {
    pub(crate) value: String,
    pub(crate) refresh_at: Instant,
}

/// The token server's JSON answer (distribution `spec/auth/token.md`).
#[derive(Deserialize, Debug)]
pub(crate) struct TokenResponse {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

/// The spec's default and minimum token lifetime.
const MIN_LIFETIME: u64 = 60;

impl TokenResponse {
    /// The usable token, renewed a little before it expires so a long request started near the
    /// end of the lifetime does not fail half-way.
    pub(crate) fn into_token(self, now: Instant) -> Option<Token> {
        let value = self.token.or(self.access_token).filter(|t| !t.is_empty())?;
        let lifetime = self.expires_in.unwrap_or(MIN_LIFETIME).max(MIN_LIFETIME);
        let margin = (lifetime / 4).min(30);
        Some(Token {
            value,
            refresh_at: now + Duration::from_secs(lifetime - margin),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_merge_and_sort() {
        assert_eq!(
            normalize_scopes(&[
                "repository:b:pull",
                "repository:a:push",
                "repository:a:pull",
                "repository:a:pull",
                "registry:catalog:*",
            ]),
            [
                "registry:catalog:*",
                "repository:a:pull,push",
                "repository:b:pull"
            ]
        );
        assert_eq!(normalize_scopes::<&str>(&[]), Vec::<String>::new());
    }

    #[test]
    fn token_lifetime_defaults_to_60s() {
        let now = Instant::now();
        let t: TokenResponse = serde_json::from_str(r#"{"access_token":"abc"}"#).unwrap();
        let t = t.into_token(now).unwrap();
        assert_eq!(t.value, "abc");
        assert_eq!(t.refresh_at, now + Duration::from_secs(45));
        let t: TokenResponse = serde_json::from_str(r#"{"token":"x","expires_in":3600}"#).unwrap();
        assert_eq!(
            t.into_token(now).unwrap().refresh_at,
            now + Duration::from_secs(3570)
        );
        let t: TokenResponse = serde_json::from_str(r#"{"token":""}"#).unwrap();
        assert!(t.into_token(now).is_none());
    }

    #[test]
    fn credentials_never_debug_print_the_password() {
        let c = Credentials::new("u", "s3cret");
        assert!(!format!("{c:?}").contains("s3cret"));
        assert_eq!(c.basic_header(), "Basic dTpzM2NyZXQ=");
    }
}
