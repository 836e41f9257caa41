//! Platform selection in an index: the host's `os/arch[/variant]` unless the caller names
//! another, the first matching entry winning (image-spec index.md), attestation entries
//! (`unknown/unknown`) and non-manifest entries skipped.

use std::fmt;

use oci_spec::image::{Descriptor, ImageIndex};

use crate::error::{RegistryError, Result};
use crate::media::ManifestKind;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    pub variant: Option<String>,
}

impl Platform {
    /// Parse `os/arch[/variant]` (`linux/arm64/v8`, `linux/amd64`).
    pub fn parse(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b'.' || c == b'-')
        };
        match parts.as_slice() {
            [os, arch] if ok(os) && ok(arch) => Ok(Self::new(os, arch, None)),
            [os, arch, v] if ok(os) && ok(arch) && ok(v) => Ok(Self::new(os, arch, Some(v))),
            _ => Err(RegistryError::InvalidPlatform(s.to_owned())),
        }
    }

    fn new(os: &str, arch: &str, variant: Option<&str>) -> Self {
        let (architecture, variant) = normalize_arch(
            &arch.to_ascii_lowercase(),
            variant.map(str::to_ascii_lowercase),
        );
        Self {
            os: os.to_ascii_lowercase(),
            architecture,
            variant,
        }
    }

    /// The platform this process runs on, in Go's GOARCH spelling.
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "x86" => "386",
            "aarch64" => "arm64",
            "arm" => "arm",
            "powerpc64" => "ppc64le",
            "s390x" => "s390x",
            "riscv64" => "riscv64",
            "mips64" => "mips64le",
            other => other,
        };
        let variant = (arch == "arm").then_some("v7");
        Self::new(std::env::consts::OS, arch, variant)
    }

    /// Whether an index entry's platform suits us. A missing wanted variant accepts any.
    pub fn matches(&self, os: &str, arch: &str, variant: Option<&str>) -> bool {
        let other = Self::new(os, arch, variant);
        other.os == self.os
            && other.architecture == self.architecture
            && (self.variant.is_none() || other.variant == self.variant)
    }
}

/// containerd's normalisation: `aarch64` is `arm64`, whose default variant is `v8`;
/// `x86_64` is `amd64` without a variant.
fn normalize_arch(arch: &str, variant: Option<String>) -> (String, Option<String>) {
    match arch {
        "x86_64" | "x86-64" | "amd64" => ("amd64".into(), variant.filter(|v| v != "v1")),
        "aarch64" | "arm64" => ("arm64".into(), Some(variant.unwrap_or_else(|| "v8".into()))),
        "armhf" => ("arm".into(), Some("v7".into())),
        "armel" => ("arm".into(), Some("v6".into())),
        "i386" | "i686" => ("386".into(), variant),
        a => (a.to_owned(), variant),
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

fn entry_platform(d: &Descriptor) -> Option<(String, String, Option<String>)> {
    let p = d.platform().as_ref()?;
    Some((
        p.os().to_string(),
        p.architecture().to_string(),
        p.variant().clone(),
    ))
}

/// The first manifest entry of `index` matching `want`. `reference` names the image in errors.
pub fn select<'a>(
    index: &'a ImageIndex,
    want: &Platform,
    reference: &str,
) -> Result<&'a Descriptor> {
    let mut available = Vec::new();
    for d in index.manifests() {
        let is_manifest =
            ManifestKind::from_media_type(d.media_type().as_ref()).is_some_and(|k| !k.is_index());
        let Some((os, arch, variant)) = entry_platform(d) else {
            continue;
        };
        if !is_manifest || (os == "unknown" && arch == "unknown") {
            continue; // attestations and foreign artifacts must not be errors (index.md)
        }
        if want.matches(&os, &arch, variant.as_deref()) {
            return Ok(d);
        }
        available.push(Platform::new(&os, &arch, variant.as_deref()).to_string());
    }
    Err(RegistryError::NoMatchingPlatform {
        reference: reference.to_owned(),
        wanted: want.to_string(),
        available: if available.is_empty() {
            "none".into()
        } else {
            available.join(", ")
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn index(entries: &[(&str, &str, &str, Option<&str>, char)]) -> ImageIndex {
        let manifests: Vec<String> = entries
            .iter()
            .map(|(mt, os, arch, v, hexc)| {
                let v = v.map(|v| format!(r#","variant":"{v}""#)).unwrap_or_default();
                let hex: String = std::iter::repeat_n(*hexc, 64).collect();
                format!(
                    r#"{{"mediaType":"{mt}","digest":"sha256:{hex}","size":1,"platform":{{"os":"{os}","architecture":"{arch}"{v}}}}}"#
                )
            })
            .collect();
        serde_json::from_str(&format!(
            r#"{{"schemaVersion":2,"manifests":[{}]}}"#,
            manifests.join(",")
        ))
        .unwrap()
    }

    const M: &str = crate::media::OCI_MANIFEST;

    #[test]
    fn parses_platforms() {
        assert_eq!(
            Platform::parse("linux/arm64").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            Platform::parse("linux/aarch64").unwrap().to_string(),
            "linux/arm64/v8"
        );
        assert_eq!(
            Platform::parse("linux/arm/v6").unwrap().to_string(),
            "linux/arm/v6"
        );
        assert_eq!(
            Platform::parse("linux/x86_64").unwrap().to_string(),
            "linux/amd64"
        );
        for bad in ["linux", "linux/", "/amd64", "a/b/c/d", "linux/am d64"] {
            assert!(Platform::parse(bad).is_err(), "{bad}");
        }
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            assert_eq!(Platform::host().to_string(), "linux/amd64");
        }
    }

    #[test]
    fn picks_first_match_and_skips_attestations() {
        let idx = index(&[
            (
                "application/vnd.oci.image.manifest.v1+json",
                "unknown",
                "unknown",
                None,
                'a',
            ),
            (M, "linux", "arm", Some("v7"), 'b'),
            (M, "linux", "arm64", Some("v8"), 'c'),
            (M, "linux", "amd64", None, 'd'),
            (M, "linux", "amd64", None, 'e'),
            (
                "application/vnd.example.sbom",
                "linux",
                "riscv64",
                None,
                'f',
            ),
        ]);
        let pick = |p: &str| {
            select(&idx, &Platform::parse(p).unwrap(), "x").map(|d| d.digest().to_string())
        };
        assert!(pick("linux/amd64").unwrap().ends_with(&"d".repeat(64)));
        assert!(pick("linux/arm64").unwrap().ends_with(&"c".repeat(64)));
        assert!(pick("linux/arm/v7").unwrap().ends_with(&"b".repeat(64)));
        let err = pick("linux/riscv64").unwrap_err().to_string();
        assert_eq!(
            err,
            "no matching manifest for linux/riscv64 in the manifest list entries of x (available: linux/arm/v7, linux/arm64/v8, linux/amd64, linux/amd64)"
        );
        // arm64 without a variant in the index still matches arm64/v8
        let idx = index(&[(M, "linux", "arm64", None, 'c')]);
        assert!(select(&idx, &Platform::parse("linux/arm64/v8").unwrap(), "x").is_ok());
        assert!(select(&idx, &Platform::parse("linux/arm/v7").unwrap(), "x").is_err());
    }
}
