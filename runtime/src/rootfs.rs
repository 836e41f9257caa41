//! Applying the filesystem part of a [`Plan`] from inside the new mount namespace:
//! propagation, the mounts, device nodes and symlinks, `pivot_root`, then masked and
//! read-only paths. Knows nothing of processes; every call goes through [`Syscall`].

use std::path::Path;

use nix::mount::MsFlags;

use crate::plan::{MountStep, Plan};
use crate::syscall::{Create, SysError, Syscall};

/// Everything up to `pivot_root`: propagation, mounts, devices, symlinks.
pub fn prepare(sys: &dyn Syscall, plan: &Plan) -> Result<(), SysError> {
    let root = plan.rootfs.as_path();
    // Nothing we mount may leak to the host, whatever the host's propagation is.
    sys.mount(None, Path::new("/"), None, plan.rootfs_propagation, None)?;
    // pivot_root needs the new root to be a mount point.
    sys.mount(
        Some(root),
        root,
        None,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None,
    )?;
    for m in &plan.mounts {
        mount_one(sys, root, m)?;
    }
    for d in &plan.devices {
        sys.mknod_in_root(root, d)?;
    }
    for s in &plan.symlinks {
        sys.symlink_in_root(root, &s.target, &s.link)?;
    }
    // As runc: a missing working directory is created (a WORKDIR no step made yet).
    if plan.process.cwd != Path::new("/") {
        sys.resolve_in_root(root, &plan.process.cwd, Create::Dir)?;
    }
    Ok(())
}

fn mount_one(sys: &dyn Syscall, root: &Path, m: &MountStep) -> Result<(), SysError> {
    let create = if m.is_bind() {
        let src = m.source.as_deref().unwrap_or(Path::new("/"));
        if sys.is_dir(src)? {
            Create::Dir
        } else {
            Create::File
        }
    } else {
        Create::Dir
    };
    let target = sys.resolve_in_root(root, &m.destination, create)?;
    if m.flags.contains(MsFlags::MS_REMOUNT) && !m.is_bind() {
        // A follow-up remount of an earlier mount (e.g. a read-only cgroup tmpfs).
        return sys.mount(None, &target.mount_path(), None, m.flags, None);
    }
    if matches!(m.fstype.as_deref(), Some("proc" | "sysfs")) && !target.is_dir {
        return Err(SysError::errno(
            "mount",
            format!(
                "{} (proc and sysfs need a real directory)",
                m.destination.display()
            ),
            nix::errno::Errno::ENOTDIR,
        ));
    }
    let path = target.mount_path();
    let source = m
        .source
        .as_deref()
        .or_else(|| m.fstype.as_deref().map(Path::new));
    sys.mount(
        source,
        &path,
        m.fstype.as_deref(),
        m.flags,
        m.data.as_deref(),
    )?;
    if m.bind_remount.is_none() && m.propagation.is_none() {
        return Ok(());
    }
    // The fd still names the directory under the new mount: resolve again to reach it.
    let mounted = sys.resolve_in_root(root, &m.destination, Create::Nothing)?;
    let path = mounted.mount_path();
    if let Some(flags) = m.bind_remount {
        sys.mount(None, &path, None, flags, None)?;
    }
    if let Some(p) = m.propagation {
        sys.mount(None, &path, None, p, None)?;
    }
    Ok(())
}

/// After `pivot_root`: masked paths (a `/dev/null` bind over files, an empty read-only
/// tmpfs over directories), read-only paths, then a read-only root if asked. Paths that
/// do not exist are skipped, as runc does.
pub fn finish(sys: &dyn Syscall, plan: &Plan) -> Result<(), SysError> {
    let root = Path::new("/");
    // Mask files with the container's /dev/null, checked to be the real null device and
    // bound from the checked fd: an image can make /dev/null a symlink or a regular file
    // (CVE-2025-31133).
    let mut null: Option<crate::syscall::Resolved> = None;
    for p in &plan.masked_paths {
        let Ok(target) = sys.resolve_in_root(root, p, Create::Nothing) else {
            continue;
        };
        let path = target.mount_path();
        if target.is_dir {
            sys.mount(
                Some(Path::new("tmpfs")),
                &path,
                Some("tmpfs"),
                MsFlags::MS_RDONLY,
                Some("size=0k"),
            )?;
        } else {
            if null.is_none() {
                let n = sys.resolve_in_root(root, Path::new("/dev/null"), Create::Nothing)?;
                if n.char_dev != Some((1, 3)) {
                    return Err(SysError::errno(
                        "mask",
                        format!("{} (/dev/null is not the null device)", p.display()),
                        nix::errno::Errno::EPERM,
                    ));
                }
                null = Some(n);
            }
            let src = null.as_ref().map(|n| n.mount_path());
            sys.mount(src.as_deref(), &path, None, MsFlags::MS_BIND, None)?;
        }
    }
    for p in &plan.readonly_paths {
        let Ok(target) = sys.resolve_in_root(root, p, Create::Nothing) else {
            continue;
        };
        let path = target.mount_path();
        sys.mount(
            Some(&path),
            &path,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        let mounted = sys.resolve_in_root(root, p, Create::Nothing)?;
        sys.mount(
            None,
            &mounted.mount_path(),
            None,
            MsFlags::MS_BIND
                | MsFlags::MS_REMOUNT
                | MsFlags::MS_RDONLY
                | MsFlags::MS_NOSUID
                | MsFlags::MS_NODEV
                | MsFlags::MS_NOEXEC,
            None,
        )?;
    }
    if plan.rootfs_readonly {
        sys.mount(
            None,
            root,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
            None,
        )?;
    }
    Ok(())
}
