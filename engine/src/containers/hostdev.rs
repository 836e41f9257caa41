//! The host's devices, for `--privileged` (Docker gives a privileged container every device
//! node under the host's /dev, as containerd's `HostDevices`). Reading only; the runtime makes
//! the nodes.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// One device node of the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostDevice {
    /// Path in the container: the host's path with `dev_root` replaced by `/dev`.
    pub path: PathBuf,
    /// `c` or `b`
    pub kind: char,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Directories under /dev that are not devices of the host's (the container gets its own).
const SKIP_DIRS: [&str; 7] = ["pts", "shm", "fd", "mqueue", ".lxc", ".lxd-mounts", ".udev"];

/// Every character and block device under `dev_root` (the host's `/dev`), depth first, in name
/// order; `console` is left out (the container's console is its own terminal). Unreadable
/// directories are skipped.
pub fn host_devices(dev_root: &Path) -> Vec<HostDevice> {
    let mut out = Vec::new();
    walk(dev_root, dev_root, &mut out);
    out
}

fn walk(dev_root: &Path, dir: &Path, out: &mut Vec<HostDevice>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = rd.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let name = e.file_name();
        let Ok(md) = std::fs::symlink_metadata(e.path()) else {
            continue;
        };
        let ft = md.file_type();
        if ft.is_dir() {
            if !SKIP_DIRS.iter().any(|s| name == *s) {
                walk(dev_root, &e.path(), out);
            }
            continue;
        }
        let kind = if ft.is_char_device() {
            'c'
        } else if ft.is_block_device() {
            'b'
        } else {
            continue;
        };
        if dir == dev_root && name == "console" {
            continue;
        }
        let Ok(rel) = e.path().strip_prefix(dev_root).map(Path::to_owned) else {
            continue;
        };
        out.push(HostDevice {
            path: Path::new("/dev").join(rel),
            kind,
            major: u64::from(rustix::fs::major(md.rdev())),
            minor: u64::from(rustix::fs::minor(md.rdev())),
            mode: md.mode() & 0o7777,
            uid: md.uid(),
            gid: md.gid(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_links_and_skipped_dirs_are_not_devices() {
        let Ok(dir) = tempfile::tempdir() else { return };
        let d = dir.path();
        let _ = std::fs::create_dir_all(d.join("pts"));
        let _ = std::fs::create_dir_all(d.join("sub"));
        let _ = std::fs::write(d.join("sub/file"), "");
        let _ = std::os::unix::fs::symlink("/dev/null", d.join("link"));
        assert!(host_devices(d).is_empty());
        assert!(host_devices(&d.join("missing")).is_empty());
    }

    #[test]
    fn the_hosts_null_device_is_found_with_its_numbers() {
        // every Linux host has /dev/null (1, 3), whoever runs the test
        let devs = host_devices(Path::new("/dev"));
        let null = devs.iter().find(|d| d.path == Path::new("/dev/null"));
        assert_eq!(
            null.map(|d| (d.kind, d.major, d.minor)),
            Some(('c', 1, 3)),
            "{devs:?}"
        );
        assert!(devs.iter().all(|d| d.path != Path::new("/dev/console")));
        assert!(devs.iter().all(|d| !d.path.starts_with("/dev/pts")));
    }
}
