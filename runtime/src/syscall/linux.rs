//! The real [`Syscall`]: nix calls plus `sys` for what nix lacks. Paths under the root are
//! resolved with `openat2(RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)` and used through their
//! `O_PATH` fds.

use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;
use nix::sys::stat::{Mode, SFlag};

use super::{Create, Resolved, SysError, Syscall};
use crate::plan::{CapsPlan, DeviceKind, DeviceNode, Rlimit};

#[derive(Debug, Default, Clone, Copy)]
pub struct LinuxSyscall;

const RESOLVE: u64 = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;

fn open_dir(path: &Path) -> Result<OwnedFd, SysError> {
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| SysError::errno("open", path.display(), e))
}

/// What `fd`, found for the container's `shown` path, is.
fn resolved(shown: &Path, fd: OwnedFd) -> Result<Resolved, SysError> {
    let st = nix::sys::stat::fstat(&fd).map_err(|e| SysError::errno("stat", shown.display(), e))?;
    let kind = SFlag::from_bits_truncate(st.st_mode & SFlag::S_IFMT.bits());
    Ok(Resolved {
        shown: shown.to_path_buf(),
        fd: Some(fd),
        is_dir: kind == SFlag::S_IFDIR,
        char_dev: (kind == SFlag::S_IFCHR).then(|| {
            (
                nix::sys::stat::major(st.st_rdev),
                nix::sys::stat::minor(st.st_rdev),
            )
        }),
    })
}

/// The parts of an absolute in-container path, refusing `..`.
fn parts(path: &Path) -> Result<Vec<&std::ffi::OsStr>, SysError> {
    let mut out = Vec::new();
    for c in path.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            _ => {
                return Err(SysError::errno("resolve", path.display(), Errno::EINVAL));
            }
        }
    }
    Ok(out)
}

impl LinuxSyscall {
    /// Resolve the parent directory of `path` inside `root` (creating it) and return it
    /// with the last component's name.
    fn parent_in_root(&self, root: &Path, path: &Path) -> Result<(OwnedFd, PathBuf), SysError> {
        let p = parts(path)?;
        let Some((name, dirs)) = p.split_last() else {
            return Err(SysError::errno("resolve", path.display(), Errno::EINVAL));
        };
        let parent: PathBuf = std::iter::once(std::ffi::OsStr::new("/"))
            .chain(dirs.iter().copied())
            .collect();
        let r = self.resolve_in_root(root, &parent, Create::Dir)?;
        let fd =
            r.fd.ok_or_else(|| SysError::errno("resolve", parent.display(), Errno::ENOENT))?;
        Ok((fd, PathBuf::from(name)))
    }
}

impl Syscall for LinuxSyscall {
    fn unshare(&self, flags: CloneFlags) -> Result<(), SysError> {
        nix::sched::unshare(flags).map_err(|e| SysError::errno("unshare", format!("{flags:?}"), e))
    }

    fn setns(&self, path: &Path, flags: CloneFlags) -> Result<(), SysError> {
        let fd = nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(|e| SysError::errno("open namespace", path.display(), e))?;
        nix::sched::setns(fd, flags).map_err(|e| SysError::errno("setns", path.display(), e))
    }

    fn sethostname(&self, name: &str) -> Result<(), SysError> {
        nix::unistd::sethostname(name).map_err(|e| SysError::errno("sethostname", name, e))
    }

    fn setdomainname(&self, name: &str) -> Result<(), SysError> {
        crate::sys::setdomainname(name).map_err(|e| SysError::errno("setdomainname", name, e))
    }

    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> Result<(), SysError> {
        nix::mount::mount(source, target, fstype, flags, data).map_err(|e| {
            SysError::errno(
                "mount",
                format!(
                    "{} on {} (type {}, {flags:?})",
                    source.map_or("none".into(), |s| s.display().to_string()),
                    target.display(),
                    fstype.unwrap_or("none")
                ),
                e,
            )
        })
    }

    fn umount(&self, target: &Path, flags: MntFlags) -> Result<(), SysError> {
        nix::mount::umount2(target, flags)
            .map_err(|e| SysError::errno("umount", target.display(), e))
    }

    fn resolve_in_root(
        &self,
        root: &Path,
        path: &Path,
        create: Create,
    ) -> Result<Resolved, SysError> {
        let names = parts(path)?;
        let root_fd = open_dir(root)?;
        // Most paths are there whole (the image's directories, the mounts' own): one lookup,
        // as the walk below would end with, instead of one per component.
        let whole: PathBuf = std::iter::once(std::ffi::OsStr::new("/"))
            .chain(names.iter().copied())
            .collect();
        if let Ok(fd) = crate::sys::openat2(root_fd.as_fd(), &whole, libc::O_PATH, RESOLVE) {
            return resolved(path, fd);
        }
        let dup = |fd: &OwnedFd| {
            fd.try_clone()
                .map_err(|e| SysError::new("dup", root.display(), e))
        };
        // Components still to walk, last one first; a dangling symlink pushes its target.
        let mut todo: Vec<std::ffi::OsString> = names.into_iter().rev().map(Into::into).collect();
        let mut done = PathBuf::from("/");
        let mut cur = dup(&root_fd)?;
        let mut links = 0;
        while let Some(name) = todo.pop() {
            if name == ".." {
                // As RESOLVE_IN_ROOT does: ".." never climbs above the root.
                done.pop();
                cur = crate::sys::openat2(root_fd.as_fd(), &done, libc::O_PATH, RESOLVE)
                    .map_err(|e| SysError::errno("resolve", done.display(), e))?;
                continue;
            }
            if name == "." || name.is_empty() {
                continue;
            }
            let last = todo.is_empty();
            let next = done.join(&name);
            let open = || crate::sys::openat2(root_fd.as_fd(), &next, libc::O_PATH, RESOLVE);
            let fd = match open() {
                Ok(fd) => fd,
                Err(Errno::ENOENT) => {
                    if let Ok(target) = nix::fcntl::readlinkat(&cur, name.as_os_str()) {
                        // A dangling symlink: create what it points to, inside the root.
                        links += 1;
                        if links > 40 {
                            return Err(SysError::errno("resolve", path.display(), Errno::ELOOP));
                        }
                        let target = PathBuf::from(target);
                        if target.is_absolute() {
                            done = PathBuf::from("/");
                            cur = dup(&root_fd)?;
                        }
                        for c in target.components().rev() {
                            match c {
                                Component::Normal(n) => todo.push(n.into()),
                                Component::ParentDir => todo.push("..".into()),
                                _ => {}
                            }
                        }
                        continue;
                    }
                    let kind = if last { create } else { Create::Dir };
                    match kind {
                        Create::Nothing => {
                            return Err(SysError::errno("resolve", path.display(), Errno::ENOENT))
                        }
                        Create::Dir => match nix::sys::stat::mkdirat(
                            &cur,
                            name.as_os_str(),
                            Mode::from_bits_truncate(0o755),
                        ) {
                            Ok(()) | Err(Errno::EEXIST) => {}
                            Err(e) => return Err(SysError::errno("mkdir", next.display(), e)),
                        },
                        Create::File => {
                            let f = nix::fcntl::openat(
                                &cur,
                                name.as_os_str(),
                                OFlag::O_CREAT
                                    | OFlag::O_EXCL
                                    | OFlag::O_NOFOLLOW
                                    | OFlag::O_WRONLY
                                    | OFlag::O_CLOEXEC,
                                Mode::from_bits_truncate(0o644),
                            );
                            match f {
                                Ok(_) | Err(Errno::EEXIST) => {}
                                Err(e) => return Err(SysError::errno("create", next.display(), e)),
                            }
                        }
                    }
                    open().map_err(|e| SysError::errno("resolve", next.display(), e))?
                }
                Err(e) => return Err(SysError::errno("resolve", next.display(), e)),
            };
            cur = fd;
            done = next;
        }
        resolved(path, cur)
    }

    fn is_dir(&self, path: &Path) -> Result<bool, SysError> {
        std::fs::metadata(path)
            .map(|m| m.is_dir())
            .map_err(|e| SysError::new("stat", path.display(), e))
    }

    fn mknod_in_root(&self, root: &Path, dev: &DeviceNode) -> Result<(), SysError> {
        let (parent, name) = self.parent_in_root(root, &dev.path)?;
        let kind = match dev.kind {
            DeviceKind::Char => SFlag::S_IFCHR,
            DeviceKind::Block => SFlag::S_IFBLK,
            DeviceKind::Fifo => SFlag::S_IFIFO,
        };
        let devno = nix::sys::stat::makedev(dev.major, dev.minor);
        match nix::sys::stat::mknodat(
            &parent,
            &name,
            kind,
            Mode::from_bits_truncate(dev.mode),
            devno,
        ) {
            Ok(()) => {}
            Err(Errno::EEXIST) => return Ok(()),
            Err(Errno::EPERM) => {
                // In a user namespace mknod is refused: bind the host's node instead.
                let target = self.resolve_in_root(root, &dev.path, Create::File)?;
                return self.mount(
                    Some(&dev.path),
                    &target.mount_path(),
                    None,
                    MsFlags::MS_BIND,
                    None,
                );
            }
            Err(e) => return Err(SysError::errno("mknod", dev.path.display(), e)),
        }
        // mknod is subject to the umask: set the mode and owner exactly.
        let fd = nix::fcntl::openat(
            &parent,
            &name,
            OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| SysError::errno("open", dev.path.display(), e))?;
        let proc_path = PathBuf::from(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&fd)
        ));
        nix::sys::stat::fchmodat(
            nix::fcntl::AT_FDCWD,
            &proc_path,
            Mode::from_bits_truncate(dev.mode),
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| SysError::errno("chmod", dev.path.display(), e))?;
        nix::unistd::fchownat(
            &parent,
            &name,
            Some(nix::unistd::Uid::from_raw(dev.uid)),
            Some(nix::unistd::Gid::from_raw(dev.gid)),
            nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
        )
        .map_err(|e| SysError::errno("chown", dev.path.display(), e))
    }

    fn symlink_in_root(&self, root: &Path, target: &Path, link: &Path) -> Result<(), SysError> {
        let (parent, name) = self.parent_in_root(root, link)?;
        match nix::unistd::symlinkat(target, &parent, &name) {
            Ok(()) | Err(Errno::EEXIST) => Ok(()),
            Err(e) => Err(SysError::errno("symlink", link.display(), e)),
        }
    }

    fn pivot_root(&self, new_root: &Path) -> Result<(), SysError> {
        nix::unistd::chdir(new_root)
            .map_err(|e| SysError::errno("chdir", new_root.display(), e))?;
        // pivot_root(".", ".") stacks the old root under the new one; detach it right away.
        nix::unistd::pivot_root(".", ".")
            .map_err(|e| SysError::errno("pivot_root", new_root.display(), e))?;
        // Keep the unmount of the old root from propagating to the host.
        self.mount(
            None,
            Path::new("."),
            None,
            MsFlags::MS_SLAVE | MsFlags::MS_REC,
            None,
        )?;
        self.umount(Path::new("."), MntFlags::MNT_DETACH)?;
        nix::unistd::chdir("/").map_err(|e| SysError::errno("chdir", "/", e))
    }

    fn write_file(&self, path: &Path, content: &str) -> Result<(), SysError> {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| SysError::new("open", path.display(), e))?;
        f.write_all(content.as_bytes())
            .map_err(|e| SysError::new("write", path.display(), e))
    }

    fn setrlimit(&self, r: &Rlimit) -> Result<(), SysError> {
        crate::sys::setrlimit(crate::plan::rlimit_resource(r.resource), r.soft, r.hard)
            .map_err(|e| SysError::errno("setrlimit", crate::plan::rlimit_name(r.resource), e))
    }

    fn umask(&self, mask: u32) {
        nix::sys::stat::umask(Mode::from_bits_truncate(mask));
    }

    fn set_identity(&self, uid: u32, gid: u32, groups: &[u32]) -> Result<(), SysError> {
        use nix::unistd::{Gid, Uid};
        nix::sys::prctl::set_keepcaps(true)
            .map_err(|e| SysError::errno("prctl", "PR_SET_KEEPCAPS", e))?;
        let gids: Vec<Gid> = groups.iter().map(|g| Gid::from_raw(*g)).collect();
        nix::unistd::setgroups(&gids)
            .map_err(|e| SysError::errno("setgroups", format!("{groups:?}"), e))?;
        let g = Gid::from_raw(gid);
        nix::unistd::setresgid(g, g, g).map_err(|e| SysError::errno("setresgid", gid, e))?;
        let u = Uid::from_raw(uid);
        nix::unistd::setresuid(u, u, u).map_err(|e| SysError::errno("setresuid", uid, e))
    }

    fn set_capabilities(&self, plan: &CapsPlan) -> Result<(), SysError> {
        use caps::{CapSet, CapsHashSet};
        let err = |what: &'static str| {
            move |e: caps::errors::CapsError| {
                SysError::new("capset", what, std::io::Error::other(e.to_string()))
            }
        };
        // After setuid the effective set is empty: raise it to the permitted set to drop
        // the bounding set (needs CAP_SETPCAP), then lower everything to the plan.
        let permitted = caps::read(None, CapSet::Permitted).map_err(err("permitted"))?;
        caps::set(None, CapSet::Effective, &permitted).map_err(err("effective"))?;
        let bounding: CapsHashSet = plan.bounding.iter().copied().collect();
        for c in caps::all() {
            if !bounding.contains(&c) {
                match caps::drop(None, CapSet::Bounding, c) {
                    Ok(()) => {}
                    // Capabilities unknown to this kernel are not in the bounding set.
                    Err(_) if !caps::has_cap(None, CapSet::Bounding, c).unwrap_or(false) => {}
                    Err(e) => return Err(err("bounding")(e)),
                }
            }
        }
        let set = |list: &[caps::Capability]| -> CapsHashSet { list.iter().copied().collect() };
        caps::set(None, CapSet::Effective, &set(&plan.effective)).map_err(err("effective"))?;
        caps::set(None, CapSet::Inheritable, &set(&plan.inheritable))
            .map_err(err("inheritable"))?;
        caps::set(None, CapSet::Permitted, &set(&plan.permitted)).map_err(err("permitted"))?;
        caps::clear(None, CapSet::Ambient).map_err(err("ambient"))?;
        for c in &plan.ambient {
            caps::raise(None, CapSet::Ambient, *c).map_err(err("ambient"))?;
        }
        nix::sys::prctl::set_keepcaps(false)
            .map_err(|e| SysError::errno("prctl", "PR_SET_KEEPCAPS", e))
    }

    fn set_no_new_privileges(&self) -> Result<(), SysError> {
        nix::sys::prctl::set_no_new_privs()
            .map_err(|e| SysError::errno("prctl", "PR_SET_NO_NEW_PRIVS", e))
    }

    fn load_seccomp(&self, prog: &crate::seccomp::Program) -> Result<(), SysError> {
        crate::sys::seccomp_load(&prog.bpf, prog.flags)
            .map_err(|e| SysError::errno("seccomp", &prog.digest, e))
    }

    fn chdir(&self, path: &Path) -> Result<(), SysError> {
        nix::unistd::chdir(path).map_err(|e| SysError::errno("chdir", path.display(), e))
    }

    fn getcwd(&self) -> Result<PathBuf, SysError> {
        nix::unistd::getcwd().map_err(|e| SysError::errno("getcwd", "process.cwd", e))
    }
}
