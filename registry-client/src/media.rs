//! Manifest media types: the `Accept` list a pull sends, the type a response declares, and the
//! parse of the bytes into an image manifest or an index. Schema 1 is recognised only to refuse
//! it with a clear message.

use bytes::Bytes;
use oci_spec::image::{ImageIndex, ImageManifest};
use serde::Deserialize;

pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// Every manifest type we can use, in one header: distribution 2.8.2 answers 404 to an OCI
/// manifest when OCI types are missing here, and old registries fall back to schema 1 when
/// the header is empty.
pub const ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// The four manifest kinds a pull understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ManifestKind {
    OciIndex,
    OciManifest,
    DockerList,
    DockerManifest,
}

impl ManifestKind {
    pub fn from_media_type(mt: &str) -> Option<Self> {
        match essence(mt) {
            OCI_INDEX => Some(Self::OciIndex),
            OCI_MANIFEST => Some(Self::OciManifest),
            DOCKER_LIST => Some(Self::DockerList),
            DOCKER_MANIFEST => Some(Self::DockerManifest),
            _ => None,
        }
    }

    pub fn media_type(self) -> &'static str {
        match self {
            Self::OciIndex => OCI_INDEX,
            Self::OciManifest => OCI_MANIFEST,
            Self::DockerList => DOCKER_LIST,
            Self::DockerManifest => DOCKER_MANIFEST,
        }
    }

    pub fn is_index(self) -> bool {
        matches!(self, Self::OciIndex | Self::DockerList)
    }
}

/// `type/subtype` without parameters, lowercased (`; charset=utf-8` is common).
pub fn essence(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// A parsed manifest body.
#[derive(Clone, Debug)]
pub enum ManifestBody {
    Image(Box<ImageManifest>),
    Index(Box<ImageIndex>),
}

/// Why bytes are not a usable manifest.
#[derive(Debug, PartialEq, Eq)]
pub enum ParseError {
    Schema1(String),
    Unsupported(String),
    Invalid(String),
}

#[derive(Deserialize)]
struct Peek {
    #[serde(default, rename = "schemaVersion")]
    schema_version: Option<u32>,
    #[serde(default, rename = "mediaType")]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
}

/// Decide the kind from `Content-Type` (the registry's word), falling back to the body's
/// `mediaType` when the header is generic, then parse. A body whose `mediaType` contradicts
/// the header is refused: the digest would vouch for a document read as something else.
pub fn parse_manifest(
    content_type: Option<&str>,
    bytes: &Bytes,
) -> Result<(ManifestKind, ManifestBody), ParseError> {
    let peek: Peek =
        serde_json::from_slice(bytes).map_err(|e| ParseError::Invalid(e.to_string()))?;
    let header = content_type.map(essence).filter(|c| !c.is_empty());
    for mt in [header, peek.media_type.as_deref()].into_iter().flatten() {
        if mt == DOCKER_SCHEMA1 || mt == DOCKER_SCHEMA1_SIGNED {
            return Err(ParseError::Schema1(mt.to_owned()));
        }
    }
    if peek.schema_version == Some(1) {
        return Err(ParseError::Schema1(
            header.unwrap_or("schemaVersion 1").to_owned(),
        ));
    }
    let from_header = header.and_then(ManifestKind::from_media_type);
    let from_body = peek
        .media_type
        .as_deref()
        .and_then(ManifestKind::from_media_type);
    let kind = match (from_header, from_body) {
        (Some(h), Some(b)) if h != b => {
            return Err(ParseError::Invalid(format!(
                "Content-Type {} but the manifest says mediaType {}",
                h.media_type(),
                b.media_type()
            )))
        }
        (Some(h), _) => h,
        (None, Some(b)) => b,
        // OCI allows mediaType to be absent; a `manifests` array marks an index.
        (None, None) if peek.manifests.is_some() => ManifestKind::OciIndex,
        (None, None) => match header {
            Some(h)
                if h != "application/json"
                    && h != "text/plain"
                    && h != "application/octet-stream" =>
            {
                return Err(ParseError::Unsupported(h.to_owned()))
            }
            _ => ManifestKind::OciManifest,
        },
    };
    let body = if kind.is_index() {
        ManifestBody::Index(Box::new(
            serde_json::from_slice(bytes).map_err(|e| ParseError::Invalid(e.to_string()))?,
        ))
    } else {
        ManifestBody::Image(Box::new(
            serde_json::from_slice(bytes).map_err(|e| ParseError::Invalid(e.to_string()))?,
        ))
    };
    Ok((kind, body))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn image(mt: Option<&str>) -> Bytes {
        let mt = mt
            .map(|m| format!(r#""mediaType":"{m}","#))
            .unwrap_or_default();
        Bytes::from(format!(
            r#"{{"schemaVersion":2,{mt}"config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{DIGEST}","size":0}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{DIGEST}","size":0}}]}}"#
        ))
    }

    #[test]
    fn accept_lists_all_four_types() {
        for t in [OCI_INDEX, OCI_MANIFEST, DOCKER_LIST, DOCKER_MANIFEST] {
            assert!(ACCEPT.contains(t));
        }
        assert!(!ACCEPT.contains("distribution.manifest.v1"));
    }

    #[test]
    fn kind_comes_from_content_type() {
        let b = image(Some(DOCKER_MANIFEST));
        let (k, body) = parse_manifest(
            Some("application/vnd.docker.distribution.manifest.v2+json; charset=utf-8"),
            &b,
        )
        .unwrap();
        assert_eq!(k, ManifestKind::DockerManifest);
        assert!(matches!(body, ManifestBody::Image(_)));
        // generic header: the body decides; no mediaType at all: OCI manifest
        assert_eq!(
            parse_manifest(Some("application/json"), &b).unwrap().0,
            ManifestKind::DockerManifest
        );
        assert_eq!(
            parse_manifest(None, &image(None)).unwrap().0,
            ManifestKind::OciManifest
        );
        assert_eq!(
            parse_manifest(Some(OCI_MANIFEST), &image(None)).unwrap().0,
            ManifestKind::OciManifest
        );
    }

    #[test]
    fn contradictions_and_schema1_are_refused() {
        let b = image(Some(DOCKER_MANIFEST));
        assert!(matches!(
            parse_manifest(Some(OCI_MANIFEST), &b),
            Err(ParseError::Invalid(_))
        ));
        let s1 = Bytes::from_static(br#"{"schemaVersion":1,"name":"x","tag":"y","fsLayers":[]}"#);
        assert_eq!(
            parse_manifest(Some(DOCKER_SCHEMA1_SIGNED), &s1).err(),
            Some(ParseError::Schema1(DOCKER_SCHEMA1_SIGNED.into()))
        );
        assert!(matches!(
            parse_manifest(Some("application/json"), &s1),
            Err(ParseError::Schema1(_))
        ));
        assert_eq!(
            parse_manifest(Some("application/vnd.example+json"), &image(None)).err(),
            Some(ParseError::Unsupported(
                "application/vnd.example+json".into()
            ))
        );
        assert!(matches!(
            parse_manifest(Some(OCI_MANIFEST), &Bytes::from_static(b"{")),
            Err(ParseError::Invalid(_))
        ));
    }

    #[test]
    fn indexes_parse() {
        let idx = Bytes::from(format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{DIGEST}","size":1,"platform":{{"os":"linux","architecture":"amd64"}}}}]}}"#
        ));
        let (k, body) = parse_manifest(Some(OCI_INDEX), &idx).unwrap();
        assert_eq!(k, ManifestKind::OciIndex);
        assert!(matches!(body, ManifestBody::Index(_)));
        assert_eq!(
            parse_manifest(None, &idx).unwrap().0,
            ManifestKind::OciIndex
        );
    }
}
