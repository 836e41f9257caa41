//! The seam in front of the kernel for the init process: every privileged call the
//! container setup makes goes through [`Syscall`], so the order and arguments of the whole
//! setup are unit-tested without root through [`fake::RecordingSyscall`].
//!
//! Paths under the root filesystem are always resolved by the implementation, never by
//! string concatenation by callers: the real one resolves with `openat2(RESOLVE_IN_ROOT)` so
//! a symlink in the image cannot send a mount target outside the root.

pub mod fake;
pub mod linux;

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use crate::plan::{CapsPlan, DeviceNode, Rlimit};

/// A failed system call, with what it was applied to.
#[derive(Debug, thiserror::Error)]
#[error("{op} {target}: {source}")]
pub struct SysError {
    pub op: &'static str,
    pub target: String,
    #[source]
    pub source: std::io::Error,
}

impl SysError {
    pub fn new(
        op: &'static str,
        target: impl std::fmt::Display,
        source: impl Into<std::io::Error>,
    ) -> Self {
        SysError {
            op,
            target: target.to_string(),
            source: source.into(),
        }
    }

    pub fn errno(op: &'static str, target: impl std::fmt::Display, e: nix::errno::Errno) -> Self {
        Self::new(op, target, std::io::Error::from(e))
    }
}

/// What to create when a path inside the root does not exist yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Create {
    Nothing,
    Dir,
    File,
}

/// A path resolved inside the root: the real implementation holds an `O_PATH` fd and
/// mounts through `/proc/self/fd/N`, so the target cannot be swapped after resolution.
#[derive(Debug)]
pub struct Resolved {
    /// The path as the container sees it, for messages and fakes.
    pub shown: PathBuf,
    pub fd: Option<OwnedFd>,
    pub is_dir: bool,
    /// (major, minor) when the path is a character device.
    pub char_dev: Option<(u64, u64)>,
}

impl Resolved {
    /// The path to hand to `mount(2)`.
    pub fn mount_path(&self) -> PathBuf {
        match &self.fd {
            Some(fd) => {
                use std::os::fd::AsRawFd;
                PathBuf::from(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            }
            None => self.shown.clone(),
        }
    }
}

/// The kernel operations used to set up a container from inside its namespaces.
pub trait Syscall {
    fn unshare(&self, flags: CloneFlags) -> Result<(), SysError>;
    fn setns(&self, path: &Path, flags: CloneFlags) -> Result<(), SysError>;
    fn sethostname(&self, name: &str) -> Result<(), SysError>;
    fn setdomainname(&self, name: &str) -> Result<(), SysError>;
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), SysError>;
    fn umount(&self, target: &Path, flags: MntFlags) -> Result<(), SysError>;
    /// Resolve `path` (absolute, as seen by the container) under `root` without leaving it,
    /// creating the missing parts as directories and the last part as `create` says.
    fn resolve_in_root(
        &self,
        root: &Path,
        path: &Path,
        create: Create,
    ) -> Result<Resolved, SysError>;
    /// Whether a host path (a bind-mount source) is a directory.
    fn is_dir(&self, path: &Path) -> Result<bool, SysError>;
    fn mknod_in_root(&self, root: &Path, dev: &DeviceNode) -> Result<(), SysError>;
    fn symlink_in_root(&self, root: &Path, target: &Path, link: &Path) -> Result<(), SysError>;
    fn pivot_root(&self, new_root: &Path) -> Result<(), SysError>;
    /// Write a small file that already exists (procfs, sysfs), e.g. a sysctl.
    fn write_file(&self, path: &Path, content: &str) -> Result<(), SysError>;
    fn setrlimit(&self, rlimit: &Rlimit) -> Result<(), SysError>;
    fn umask(&self, mask: u32);
    fn set_identity(&self, uid: u32, gid: u32, groups: &[u32]) -> Result<(), SysError>;
    /// Drop the bounding set, then set the other sets (called after `set_identity`).
    fn set_capabilities(&self, caps: &CapsPlan) -> Result<(), SysError>;
    fn set_no_new_privileges(&self) -> Result<(), SysError>;
    /// Install a seccomp filter (needs no_new_privs or CAP_SYS_ADMIN).
    fn load_seccomp(&self, prog: &crate::seccomp::Program) -> Result<(), SysError>;
    fn chdir(&self, path: &Path) -> Result<(), SysError>;
    /// The current directory, which must be inside the root after `chdir` (CVE-2024-21626).
    fn getcwd(&self) -> Result<PathBuf, SysError>;
}
