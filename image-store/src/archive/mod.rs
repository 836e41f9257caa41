//! `save` and `load`: docker-archive tarballs (legacy `manifest.json`, and Docker 25+'s
//! OCI layout with `manifest.json` beside it) and OCI archives (`index.json` only).

pub(crate) mod load;
mod save;

pub use load::LoadedImage;

use std::path::{Component, Path, PathBuf};

/// Normalize a path inside an archive (`./a/../b` → `b`); `None` if it leaves the archive.
pub(crate) fn archive_path(p: &Path) -> Option<PathBuf> {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::CurDir | Component::RootDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    return None;
                }
            }
            Component::Prefix(_) => return None,
        }
    }
    Some(out)
}
