//! Protection against overwriting the runtime binary through `/proc/<pid>/exe` from inside
//! a container (CVE-2019-5736): the `berth-runtime` binary re-executes itself from a
//! sealed, read-only memfd copy before doing anything else. The engine, which calls the
//! library in-process, should do the same in its monitor binary.

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

/// Whether this process already runs from a sealed memfd.
pub fn is_sealed() -> bool {
    let Ok(fd) = nix::fcntl::open(
        "/proc/self/exe",
        OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) else {
        return false;
    };
    matches!(fcntl(&fd, FcntlArg::F_GET_SEALS), Ok(s) if SealFlag::from_bits_truncate(s).contains(SEALS))
}

/// Re-exec from a sealed copy unless already sealed. Returns only if already sealed.
pub fn ensure_sealed() -> Result<(), SealError> {
    if is_sealed() {
        return Ok(());
    }
    let mfd = memfd_create(
        "berth-runtime",
        MFdFlags::MFD_CLOEXEC | MFdFlags::MFD_ALLOW_SEALING,
    )?;
    let mut exe = std::fs::File::open("/proc/self/exe")?;
    let mut copy = std::fs::File::from(mfd.try_clone()?);
    std::io::copy(&mut exe, &mut copy)?;
    drop(copy);
    fcntl(&mfd, FcntlArg::F_ADD_SEALS(SEALS))?;
    let args: Vec<CString> = std::env::args_os()
        .map(|a| CString::new(a.as_bytes()).map_err(|e| std::io::Error::other(e.to_string())))
        .collect::<Result<_, _>>()?;
    let env: Vec<CString> = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k.as_bytes().to_vec();
            kv.push(b'=');
            kv.extend_from_slice(v.as_bytes());
            CString::new(kv).map_err(|e| std::io::Error::other(e.to_string()))
        })
        .collect::<Result<_, _>>()?;
    let e = nix::unistd::fexecve(&mfd, &args, &env).unwrap_err();
    Err(e.into())
}
