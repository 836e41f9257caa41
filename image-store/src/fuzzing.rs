//! Entry points of the fuzz targets (`fuzz/`), also replayed over the corpora by a plain
//! test. Not an API: they panic when an invariant breaks, which is what a fuzzer looks for.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use oci_spec::image::{ImageIndex, ImageManifest};

use crate::unpack::{decompressed, unpack, UnpackOptions, WhiteoutStyle};
use crate::{Digest, Reference};

/// A scratch directory `<tmp>/berth-fuzz-<pid>-<n>` holding `root/` (the layer's target),
/// removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static N: AtomicU64 = AtomicU64::new(0);
        let base = std::env::temp_dir().join(format!(
            "berth-fuzz-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&base);
        fs::create_dir_all(base.join("root")).expect("create the scratch directory");
        Scratch(base)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The layer target: the first byte picks the options, the rest is a layer blob (plain,
/// gzip or zstd tar) applied to an empty directory. Whatever the archive says, nothing may
/// appear beside the target (`..`, absolute names, symlinks then writes through them, hard
/// links out), and the target itself must still be a directory.
pub fn unpack_layer(data: &[u8]) {
    let Some((&flags, blob)) = data.split_first() else {
        return;
    };
    let scratch = Scratch::new();
    let root = scratch.0.join("root");
    let outside = [std::env::temp_dir(), PathBuf::from("/")];
    let before: Vec<Vec<String>> = outside.iter().map(|d| names(d)).collect();
    let opts = UnpackOptions {
        whiteouts: if flags & 1 == 0 {
            WhiteoutStyle::Overlay
        } else {
            WhiteoutStyle::Keep
        },
        allow_devices: flags & 2 != 0,
        preserve_owner: flags & 4 != 0 && rustix::process::geteuid().is_root(),
    };
    // a decompression bomb must not stall the fuzzer: a few MB make a big enough layer
    const LIMIT: u64 = 16 << 20;
    if let Ok((_, reader)) = decompressed(blob) {
        let _ = unpack(reader.take(LIMIT), &root, opts);
    }
    assert_eq!(
        names(&scratch.0),
        ["root"],
        "the layer wrote beside its target"
    );
    assert!(
        fs::symlink_metadata(&root).is_ok_and(|m| m.is_dir()),
        "the layer replaced its target"
    );
    // An escape through an absolute symlink would land in / or the temp dir under a name
    // the archive holds; other processes' new files there are not the layer's.
    let mut plain = Vec::new();
    if let Ok((_, reader)) = decompressed(blob) {
        let _ = reader.take(LIMIT).read_to_end(&mut plain);
    }
    let mentioned = |name: &str| {
        let n = name.as_bytes();
        !n.is_empty()
            && [blob, &plain[..]]
                .iter()
                .any(|d| d.windows(n.len()).any(|w| w == n))
    };
    for (dir, before) in outside.iter().zip(&before) {
        let new: Vec<String> = names(dir)
            .into_iter()
            .filter(|n| !before.contains(n) && !n.starts_with("berth-fuzz-") && mentioned(n))
            .collect();
        assert!(new.is_empty(), "the layer wrote {new:?} into {dir:?}");
    }
}

/// The reference target: parse as the CLI and the API do, and check that the canonical
/// and familiar forms parse back to the same reference.
pub fn reference(data: &[u8]) {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Digest::parse(s);
    let _ = Reference::parse_named(s);
    if let Ok(r) = Reference::parse(s) {
        let canonical = r.to_string();
        let again = Reference::parse(&canonical)
            .unwrap_or_else(|e| panic!("{canonical:?} (from {s:?}) does not parse: {e}"));
        assert_eq!(again, r, "{canonical:?} parses to another reference");
        // Docker's own ambiguity: `docker.io/a.b/c` is familiar `a.b/c`, which names the
        // registry `a.b` (distribution's familiarizeName does the same), or nothing valid
        // when `a.b` is no host name. Any other familiar form parses back the same.
        let familiar = r.familiar();
        let ambiguous = r.domain() == "docker.io"
            && familiar
                .split_once('/')
                .is_some_and(|(first, _)| first.contains(['.', ':']) || first == "localhost");
        if !ambiguous {
            let again = Reference::parse(&familiar)
                .unwrap_or_else(|e| panic!("{familiar:?} (from {s:?}) does not parse: {e}"));
            assert_eq!(again, r, "{familiar:?} parses to another reference");
        }
        let _ = (
            r.repository(),
            r.familiar_repository(),
            r.domain(),
            r.path(),
        );
    }
}

/// The image JSON this crate reads from archives and its own store: a manifest, an index,
/// an image config with its diff IDs, a docker-archive `manifest.json`.
pub fn image_json(data: &[u8]) {
    let _ = serde_json::from_slice::<ImageManifest>(data);
    let _ = serde_json::from_slice::<ImageIndex>(data);
    let _ = crate::store::parse_config(data, &Digest::of_bytes(data));
    let _ = crate::archive::load::parse_legacy_manifest(data);
}
