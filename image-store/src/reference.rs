//! Docker image references: parsing and normalization as the docker CLI and daemon do it
//! (`busybox` = `docker.io/library/busybox:latest`), and the familiar short form for display.

use std::fmt;

use crate::digest::Digest;
use crate::error::{Result, StoreError};

pub const DEFAULT_DOMAIN: &str = "docker.io";
pub const DEFAULT_TAG: &str = "latest";

/// A fully normalized reference: `domain/path[:tag][@digest]`.
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

fn invalid(reference: &str, reason: &str) -> StoreError {
    StoreError::InvalidReference {
        reference: reference.to_owned(),
        reason: reason.to_owned(),
    }
}

/// A path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn valid_component(c: &str) -> bool {
    let b = c.as_bytes();
    if b.is_empty() || !is_alnum(b[0]) || !is_alnum(b[b.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < b.len() {
        if is_alnum(b[i]) {
            i += 1;
            continue;
        }
        // a separator run: ".", "_", "__", or one or more "-"
        let start = i;
        while i < b.len() && !is_alnum(b[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|x| x == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn is_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

fn valid_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && (b[0].is_ascii_alphanumeric() || b[0] == b'_')
        && b.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

fn valid_domain(d: &str) -> bool {
    let (host, port) = match d.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || d.starts_with('[') => (h, Some(p)),
        _ => (d, None),
    };
    if let Some(p) = port {
        if p.is_empty() || !p.bytes().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    if host.starts_with('[') && host.ends_with(']') {
        return host.len() > 2;
    }
    !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

impl Reference {
    /// Parse a reference as the docker CLI does (`ParseNormalizedNamed`), filling in
    /// `docker.io`, `library/` and, when neither tag nor digest is given, `latest`.
    pub fn parse(s: &str) -> Result<Self> {
        let mut r = Self::parse_named(s)?;
        if r.tag.is_none() && r.digest.is_none() {
            r.tag = Some(DEFAULT_TAG.to_owned());
        }
        Ok(r)
    }

    /// Parse without defaulting the tag (a repository name, possibly with tag or digest).
    pub fn parse_named(s: &str) -> Result<Self> {
        if s.is_empty() {
            return Err(invalid(
                s,
                "repository name must have at least one component",
            ));
        }
        if s.len() > 255 + 128 + 72 {
            return Err(invalid(s, "reference is too long"));
        }
        let (rest, digest) = match s.split_once('@') {
            Some((r, d)) => (
                r,
                Some(Digest::parse(d).map_err(|_| invalid(s, "invalid digest"))?),
            ),
            None => (s, None),
        };
        // A tag is after the last ':' that comes after the last '/'.
        let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let i = last_slash + i;
                (&rest[..i], Some(rest[i + 1..].to_owned()))
            }
            None => (rest, None),
        };
        if let Some(t) = &tag {
            if !valid_tag(t) {
                return Err(invalid(s, "invalid tag"));
            }
        }
        let (domain, path) = match name.split_once('/') {
            Some((first, rest))
                if first.contains('.')
                    || first.contains(':')
                    || first == "localhost"
                    || first.bytes().any(|c| c.is_ascii_uppercase()) =>
            {
                (first.to_owned(), rest.to_owned())
            }
            _ => (DEFAULT_DOMAIN.to_owned(), name.to_owned()),
        };
        if !valid_domain(&domain) {
            return Err(invalid(s, "invalid registry host"));
        }
        if path.bytes().any(|c| c.is_ascii_uppercase()) {
            return Err(invalid(s, "repository name must be lowercase"));
        }
        if !path.split('/').all(valid_component) {
            return Err(invalid(s, "invalid repository name"));
        }
        let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        if domain.len() + 1 + path.len() > 255 {
            return Err(invalid(
                s,
                "repository name must not be more than 255 characters",
            ));
        }
        Ok(Self {
            domain,
            path,
            tag,
            digest,
        })
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }
    pub fn path(&self) -> &str {
        &self.path
    }
    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }
    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// `domain/path`.
    pub fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The short form the docker CLI prints: `busybox`, `user/app`, `127.0.0.1:5000/app`.
    pub fn familiar_repository(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            self.path
                .strip_prefix("library/")
                .filter(|p| !p.contains('/'))
                .unwrap_or(&self.path)
                .to_owned()
        } else {
            self.repository()
        }
    }

    /// `busybox:latest` style: familiar repository with tag or digest.
    pub fn familiar(&self) -> String {
        let mut s = self.familiar_repository();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d.as_str());
        }
        s
    }

    /// `repository@digest`, without the tag.
    pub fn with_digest(&self, digest: &Digest) -> Self {
        Self {
            tag: None,
            digest: Some(digest.clone()),
            ..self.clone()
        }
    }

    pub fn with_tag(&self, tag: &str) -> Result<Self> {
        if !valid_tag(tag) {
            return Err(invalid(tag, "invalid tag"));
        }
        Ok(Self {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_like_docker() {
        let cases = [
            (
                "busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "busybox:1.36",
                "docker.io/library/busybox:1.36",
                "busybox:1.36",
            ),
            ("user/app", "docker.io/user/app:latest", "user/app:latest"),
            (
                "docker.io/busybox",
                "docker.io/library/busybox:latest",
                "busybox:latest",
            ),
            (
                "localhost/busybox",
                "localhost/busybox:latest",
                "localhost/busybox:latest",
            ),
            (
                "127.0.0.1:5000/a/b:v1",
                "127.0.0.1:5000/a/b:v1",
                "127.0.0.1:5000/a/b:v1",
            ),
            (
                "a.b-c__d",
                "docker.io/library/a.b-c__d:latest",
                "a.b-c__d:latest",
            ),
        ];
        for (input, full, familiar) in cases {
            let r = Reference::parse(input).unwrap();
            assert_eq!(r.to_string(), full, "{input}");
            assert_eq!(r.familiar(), familiar, "{input}");
        }
        let d = Digest::of_bytes(b"x");
        let r = Reference::parse(&format!("busybox@{d}")).unwrap();
        assert_eq!(r.tag(), None);
        assert_eq!(r.digest(), Some(&d));
    }

    #[test]
    fn rejects_bad_names() {
        for bad in [
            "",
            "Busybox",
            "busy box",
            "a//b",
            "-a",
            "a-",
            "a:",
            "a:-x",
            "a@sha256:zz",
            "a/B",
            "a..b",
            "a___b",
            &"x".repeat(300),
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
