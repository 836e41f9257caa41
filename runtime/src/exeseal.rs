//! Protection against overwriting the runtime binary through `/proc/<pid>/exe` from inside
//! a container (CVE-2019-5736): the `berth-runtime` binary re-executes itself, before doing
//! anything else, from a file nobody can write. First choice (as crun does): a read-only
//! bind mount of the binary, detached right after it is opened, so no path reaches it and
//! it cannot be remounted writable (~0.3 ms). Without the privilege to mount: a sealed
//! memfd copy (~1 ms per MB). The engine, which calls the library in-process, should do
//! the same in its monitor binary.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;

use nix::fcntl::{fcntl, FcntlArg, OFlag, SealFlag};
use nix::sys::memfd::{memfd_create, MFdFlags};
use nix::sys::stat::Mode;

#[derive(Debug, thiserror::Error)]
pub enum SealError {
    #[error("sealing the runtime binary: {0}")]
    Io(#[from] std::io::Error),
    #[error("sealing the runtime binary: {0}")]
    Errno(#[from] nix::errno::Errno),
}

const SEALS: SealFlag = SealFlag::F_SEAL_SEAL
    .union(SealFlag::F_SEAL_SHRINK)
    .union(SealFlag::F_SEAL_GROW)
    .union(SealFlag::F_SEAL_WRITE);

/// Set in the environment of the re-executed process (and removed by it), so a binary that
/// merely lives on a read-only mount is not taken for one we put on a detached mount.
pub const MARK: &str = "_BERTH_RUNTIME_RO_EXE";

/// Whether this process already runs from a sealed memfd or a read-only re-exec.
pub fn is_sealed() -> bool {
    let Ok(fd) = nix::fcntl::open(
        "/proc/self/exe",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    if matches!(fcntl(&fd, FcntlArg::F_GET_SEALS), Ok(s) if SealFlag::from_bits_truncate(s).contains(SEALS))
    {
        return true;
    }
    std::env::var_os(MARK).is_some()
        && nix::sys::statvfs::fstatvfs(&fd)
            .is_ok_and(|v| v.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
}

/// A read-only bind mount of `/proc/self/exe` on a fresh file in the temp dir, opened
/// `O_PATH`, then detached and the file removed. `None` when we may not mount.
fn read_only_exe() -> Option<std::os::fd::OwnedFd> {
    use nix::mount::{mount, umount2, MntFlags, MsFlags};
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let path = std::env::temp_dir().join(format!("berth-runtime.{}.{nanos}", std::process::id()));
    // O_EXCL: never a file (or symlink) someone else put there.
    let target = nix::fcntl::open(
        &path,
        OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_WRONLY | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .ok()?;
    let at = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&target));
    let none: Option<&str> = None;
    let fd = mount(
        Some("/proc/self/exe"),
        at.as_str(),
        none,
        MsFlags::MS_BIND,
        none,
    )
    .and_then(|()| {
        let ro = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV;
        let r = mount(none, &path, none, ro, none).and_then(|()| {
            nix::fcntl::open(&path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
        });
        let _ = umount2(&path, MntFlags::MNT_DETACH);
        r
    })
    .ok();
    drop(target);
    let _ = std::fs::remove_file(&path);
    // Only trust it if the kernel says read-only.
    fd.filter(|fd| {
        nix::sys::statvfs::fstatvfs(fd)
            .is_ok_and(|v| v.flags().contains(nix::sys::statvfs::FsFlags::ST_RDONLY))
    })
}

/// Re-exec from a read-only or sealed copy unless already done. Returns only if so.
pub fn ensure_sealed() -> Result<(), SealError> {
    if is_sealed() {
        // The mark is ours: the container's process must not inherit it.
        std::env::remove_var(MARK);
        return Ok(());
    }
    let (exe_fd, mark) = match read_only_exe() {
        Some(fd) => (fd, true),
        None => (sealed_copy()?, false),
    };
    exec_self(&exe_fd, mark)
}

/// A sealed memfd copy of the running binary.
fn sealed_copy() -> Result<std::os::fd::OwnedFd, SealError> {
    let mfd = memfd_create(
        "berth-runtime",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )?;
    let mut exe = std::fs::File::open("/proc/self/exe")?;
    let mut copy = std::fs::File::from(mfd.try_clone()?);
    std::io::copy(&mut exe, &mut copy)?;
    drop(copy);
    fcntl(&mfd, FcntlArg::F_ADD_SEALS(SEALS))?;
    Ok(mfd)
}

fn exec_self(mfd: &std::os::fd::OwnedFd, mark: bool) -> Result<(), SealError> {
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()).map_err(|e| std::io::Error::other(e.to_string())))
        .collect::<Result<_, _>>()?;
    let env: Vec<CString> = std::env::vars_os()
        .filter(|(k, _)| k != MARK)
        .chain(mark.then(|| (MARK.into(), "1".into())))
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).map_err(|e| std::io::Error::other(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let e = nix::unistd::fexecve(mfd, &args, &env).unwrap_err();
    Err(e.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fallback for callers without mount privilege (not reached by root's tests).
    #[test]
    fn sealed_copy_is_complete_and_sealed() {
        let fd = sealed_copy().unwrap();
        let seals = SealFlag::from_bits_truncate(fcntl(&fd, FcntlArg::F_GET_SEALS).unwrap());
        assert!(seals.contains(SEALS), "{seals:?}");
        let copy = std::fs::File::from(fd);
        assert_eq!(
            copy.metadata().unwrap().len(),
            std::fs::metadata("/proc/self/exe").unwrap().len()
        );
        use std::io::Write;
        assert!((&copy).write_all(b"x").is_err(), "sealed against writes");
    }
}
