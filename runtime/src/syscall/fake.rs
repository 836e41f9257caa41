//! A recording [`Syscall`] for unit tests: remembers every call as a line of text, and
//! answers queries from a small table of what is a directory.

use std::cell::RefCell;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

use super::{Create, Resolved, SysError, Syscall};
use crate::plan::{CapsPlan, DeviceNode, Rlimit};

#[derive(Debug, Default)]
pub struct RecordingSyscall {
    calls: RefCell<Vec<String>>,
    /// Host paths that `is_dir` reports as directories.
    pub dirs: BTreeSet<PathBuf>,
    /// A call whose text starts with this fails with EPERM.
    pub fail_on: Option<String>,
    /// Make `/dev/null` resolve to a regular file (a hostile image).
    pub null_is_file: bool,
}

impl RecordingSyscall {
    pub fn new() -> Self {
        Self::default()
    }

    /// The calls made so far, one per line.
    pub fn calls(&self) -> String {
        let mut s = self.calls.borrow().join("\n");
        s.push('\n');
        s
    }

    fn record(&self, call: String) -> Result<(), SysError> {
        let fail = self.fail_on.as_deref().is_some_and(|f| call.starts_with(f));
        self.calls.borrow_mut().push(call.clone());
        if fail {
            return Err(SysError::errno("fake", call, nix::errno::Errno::EPERM));
        }
        Ok(())
    }
}

fn flags_str(f: MsFlags) -> String {
    format!("{f:?}")
        .trim_start_matches("MsFlags(")
        .trim_end_matches(')')
        .to_string()
}

impl Syscall for RecordingSyscall {
    fn unshare(&self, flags: CloneFlags) -> Result<(), SysError> {
        self.record(format!("unshare {flags:?}"))
    }
    fn setns(&self, path: &Path, flags: CloneFlags) -> Result<(), SysError> {
        self.record(format!("setns {} {flags:?}", path.display()))
    }
    fn sethostname(&self, name: &str) -> Result<(), SysError> {
        self.record(format!("sethostname {name}"))
    }
    fn setdomainname(&self, name: &str) -> Result<(), SysError> {
        self.record(format!("setdomainname {name}"))
    }
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), SysError> {
        self.record(format!(
            "mount {} {} type={} flags={} data={}",
            source.map_or("-".into(), |s| s.display().to_string()),
            target.display(),
            fstype.unwrap_or("-"),
            flags_str(flags),
            data.unwrap_or("-"),
        ))
    }
    fn umount(&self, target: &Path, flags: MntFlags) -> Result<(), SysError> {
        self.record(format!("umount {} {flags:?}", target.display()))
    }
    fn resolve_in_root(
        &self,
        root: &Path,
        path: &Path,
        create: Create,
    ) -> Result<Resolved, SysError> {
        let shown = root.join(path.strip_prefix("/").unwrap_or(path));
        let is_dir = match create {
            Create::Dir => true,
            Create::File => false,
            Create::Nothing => self.dirs.contains(path),
        };
        self.record(format!("resolve {} create={create:?}", shown.display()))?;
        Ok(Resolved {
            shown,
            fd: None,
            is_dir,
            char_dev: (path == Path::new("/dev/null") && !self.null_is_file).then_some((1, 3)),
        })
    }
    fn is_dir(&self, path: &Path) -> Result<bool, SysError> {
        Ok(self.dirs.contains(path))
    }
    fn mknod_in_root(&self, root: &Path, dev: &DeviceNode) -> Result<(), SysError> {
        self.record(format!(
            "mknod {}{} {:?} {}:{} mode={:o}",
            root.display(),
            dev.path.display(),
            dev.kind,
            dev.major,
            dev.minor,
            dev.mode
        ))
    }
    fn symlink_in_root(&self, root: &Path, target: &Path, link: &Path) -> Result<(), SysError> {
        self.record(format!(
            "symlink {}{} -> {}",
            root.display(),
            link.display(),
            target.display()
        ))
    }
    fn pivot_root(&self, new_root: &Path) -> Result<(), SysError> {
        self.record(format!("pivot_root {}", new_root.display()))
    }
    fn write_file(&self, path: &Path, content: &str) -> Result<(), SysError> {
        self.record(format!("write {} {content:?}", path.display()))
    }
    fn setrlimit(&self, r: &Rlimit) -> Result<(), SysError> {
        self.record(format!(
            "setrlimit {} {} {}",
            crate::plan::rlimit_name(r.resource),
            r.soft,
            r.hard
        ))
    }
    fn umask(&self, mask: u32) {
        let _ = self.record(format!("umask {mask:o}"));
    }
    fn set_identity(&self, uid: u32, gid: u32, groups: &[u32]) -> Result<(), SysError> {
        self.record(format!(
            "set_identity uid={uid} gid={gid} groups={groups:?}"
        ))
    }
    fn set_capabilities(&self, caps: &CapsPlan) -> Result<(), SysError> {
        self.record(format!(
            "set_capabilities bounding={} effective={} ambient={}",
            caps.bounding.len(),
            caps.effective.len(),
            caps.ambient.len()
        ))
    }
    fn set_no_new_privileges(&self) -> Result<(), SysError> {
        self.record("no_new_privs".into())
    }
    fn load_seccomp(&self, prog: &crate::seccomp::Program) -> Result<(), SysError> {
        self.record(format!("seccomp {} instructions", prog.bpf.len() / 8))
    }
    fn chdir(&self, path: &Path) -> Result<(), SysError> {
        self.record(format!("chdir {}", path.display()))
    }
    fn getcwd(&self) -> Result<PathBuf, SysError> {
        Ok(PathBuf::from("/"))
    }
}
