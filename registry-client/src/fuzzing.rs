//! Entry points of the fuzz targets (`fuzz/`), also replayed over the corpora by a plain
//! test. Not an API: they may panic, which is what a fuzzer looks for.

use bytes::Bytes;

use crate::media::{self, parse_manifest, ManifestBody};
use crate::platform::{self, Platform};

/// What a registry sends that this crate reads: a manifest or index under some
/// `Content-Type` (the first byte picks it), platform selection in an index, an error
/// body, and the text as a `WWW-Authenticate` challenge and a `Link` header.
pub fn registry_json(data: &[u8]) {
    let Some((&pick, body)) = data.split_first() else {
        return;
    };
    let content_type = match pick % 8 {
        0 => None,
        1 => Some(media::OCI_INDEX),
        2 => Some(media::OCI_MANIFEST),
        3 => Some(media::DOCKER_LIST),
        4 => Some(media::DOCKER_MANIFEST),
        5 => Some(media::DOCKER_SCHEMA1),
        6 => Some("application/json; charset=utf-8"),
        _ => Some("text/html"),
    };
    let bytes = Bytes::copy_from_slice(body);
    if let Ok((_, ManifestBody::Index(index))) = parse_manifest(content_type, &bytes) {
        for want in ["linux/amd64", "linux/arm/v7", "windows/amd64"] {
            if let Ok(p) = Platform::parse(want) {
                let _ = platform::select(&index, &p, "fuzz");
            }
        }
    }
    let _ = crate::ApiErrors::parse(body).to_string();
    if let Ok(s) = std::str::from_utf8(body) {
        let _ = crate::auth::challenge::parse(s);
        let _ = crate::next_link(s);
        let _ = Platform::parse(s);
    }
}
