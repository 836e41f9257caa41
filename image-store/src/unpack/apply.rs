//! The applier: tar entries → files under a root directory fd.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path, PathBuf};

use rustix::fs::{
    self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags, Timespec, Timestamps, XattrFlags,
};
use rustix::process::{Gid, Uid};
use tar::EntryType;

use super::UnpackError;

/// How OCI whiteout files are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhiteoutStyle {
    /// overlayfs form: char device 0/0 and `trusted.overlay.opaque=y` (needs root).
    Overlay,
    /// Keep `.wh.*` files as they are in the archive (a plain copy of the tarball's content).
    Keep,
}

#[derive(Debug, Clone, Copy)]
pub struct UnpackOptions {
    pub whiteouts: WhiteoutStyle,
    /// Create block and character devices from the archive (otherwise they are skipped).
    pub allow_devices: bool,
    /// chown entries to their uid/gid from the archive (needs root).
    pub preserve_owner: bool,
}

impl UnpackOptions {
    /// What the daemon uses: overlay whiteouts, owners kept when we are root, no devices.
    pub fn for_overlay() -> Self {
        let root = rustix::process::geteuid().is_root();
        Self {
            whiteouts: WhiteoutStyle::Overlay,
            allow_devices: false,
            preserve_owner: root,
        }
    }
}

/// What an unpack did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UnpackStats {
    pub entries: u64,
    /// Bytes of regular file content written.
    pub bytes: u64,
    pub skipped_devices: u64,
}

const WH_PREFIX: &str = ".wh.";
const WH_OPAQUE: &str = ".wh..wh..opq";
const OPAQUE_XATTR: &str = "trusted.overlay.opaque";

fn fs_err<'p>(
    op: &'static str,
    path: &'p Path,
) -> impl FnOnce(rustix::io::Errno) -> UnpackError + 'p {
    move |e| UnpackError::Fs {
        op,
        path: path.to_owned(),
        source: e.into(),
    }
}

/// Lexically clean an archive path into components under the root (`..` stops at the root,
/// as Docker's `filepath.Join("/", name)` does). An empty result is the root itself.
fn clean(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

struct Applier<'a> {
    root: OwnedFd,
    root_path: &'a Path,
    opts: UnpackOptions,
    cached_parent: Option<(PathBuf, OwnedFd)>,
    /// Directory metadata applied at the end, so that read-only dirs can still be filled.
    dirs: Vec<(PathBuf, u32, Timespec)>,
    stats: UnpackStats,
    /// Copy buffer: big writes are far cheaper than io::copy's 8 KiB ones.
    buf: Vec<u8>,
}

fn copy_buf(r: &mut impl Read, w: &mut impl io::Write, buf: &mut [u8]) -> io::Result<u64> {
    let mut n = 0u64;
    loop {
        let k = match r.read(buf) {
            Ok(0) => return Ok(n),
            Ok(k) => k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        w.write_all(&buf[..k])?;
        n += k as u64;
    }
}

/// openat2 with RESOLVE_IN_ROOT fails with EAGAIN when a rename or mount anywhere on the
/// system raced with the lookup; the lookup is safe to repeat.
pub fn retry_eagain<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> rustix::io::Result<T> {
    let mut tries = 0;
    loop {
        match f() {
            Err(rustix::io::Errno::AGAIN) if tries < 64 => tries += 1,
            other => return other,
        }
    }
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

impl Applier<'_> {
    fn open_in_root(&self, rel: &Path, flags: OFlags) -> rustix::io::Result<OwnedFd> {
        let rel: &Path = if rel.as_os_str().is_empty() {
            Path::new(".")
        } else {
            rel
        };
        retry_eagain(|| {
            rfs::openat2(
                &self.root,
                rel,
                flags | OFlags::CLOEXEC,
                Mode::empty(),
                RESOLVE,
            )
        })
    }

    /// Open (creating as needed) the directory `rel` inside the root.
    fn dir(&mut self, rel: &Path) -> Result<OwnedFd, UnpackError> {
        if let Some((p, fd)) = &self.cached_parent {
            if p == rel {
                return fd.try_clone().map_err(|e| UnpackError::Fs {
                    op: "dup",
                    path: rel.to_owned(),
                    source: e,
                });
            }
        }
        let flags = OFlags::DIRECTORY | OFlags::RDONLY;
        let fd = match self.open_in_root(rel, flags) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::NOENT) => {
                // Create the missing components one by one, each resolved inside the root.
                let mut cur = PathBuf::new();
                for comp in rel.components() {
                    cur.push(comp);
                    match self.open_in_root(&cur, flags) {
                        Ok(_) => continue,
                        Err(rustix::io::Errno::NOENT) => {
                            let parent = self
                                .open_in_root(cur.parent().unwrap_or(Path::new("")), flags)
                                .map_err(fs_err("open", &cur))?;
                            match rfs::mkdirat(
                                &parent,
                                comp.as_os_str(),
                                Mode::from_raw_mode(0o755),
                            ) {
                                Ok(()) | Err(rustix::io::Errno::EXIST) => {}
                                Err(e) => return Err(fs_err("mkdir", &cur)(e)),
                            }
                        }
                        Err(e) => return Err(fs_err("open", &cur)(e)),
                    }
                }
                self.open_in_root(rel, flags).map_err(fs_err("open", rel))?
            }
            Err(e) => return Err(fs_err("open", rel)(e)),
        };
        let dup = fd.try_clone().map_err(|e| UnpackError::Fs {
            op: "dup",
            path: rel.to_owned(),
            source: e,
        })?;
        self.cached_parent = Some((rel.to_owned(), dup));
        Ok(fd)
    }

    /// Remove whatever is at `name` unless it is a directory and a directory is wanted.
    fn make_room(
        &mut self,
        parent: &OwnedFd,
        name: &OsStr,
        want_dir: bool,
        path: &Path,
    ) -> Result<bool, UnpackError> {
        match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => {
                let is_dir = FileType::from_raw_mode(st.st_mode) == FileType::Directory;
                if is_dir && want_dir {
                    return Ok(true);
                }
                let flags = if is_dir {
                    AtFlags::REMOVEDIR
                } else {
                    AtFlags::empty()
                };
                if is_dir {
                    self.cached_parent = None;
                }
                rfs::unlinkat(parent, name, flags).map_err(fs_err("remove", path))?;
                Ok(false)
            }
            Err(rustix::io::Errno::NOENT) => Ok(false),
            Err(e) => Err(fs_err("stat", path)(e)),
        }
    }

    fn chown_at(
        &self,
        parent: &OwnedFd,
        name: &OsStr,
        uid: u64,
        gid: u64,
        path: &Path,
    ) -> Result<(), UnpackError> {
        if !self.opts.preserve_owner {
            return Ok(());
        }
        let (Ok(uid), Ok(gid)) = (u32::try_from(uid), u32::try_from(gid)) else {
            return Ok(()); // out of range ids are not representable: keep ours
        };
        if uid == u32::MAX || gid == u32::MAX {
            return Ok(());
        }
        rfs::chownat(
            parent,
            name,
            Some(Uid::from_raw(uid)),
            Some(Gid::from_raw(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(fs_err("chown", path))
    }

    fn apply(&mut self, entry: &mut tar::Entry<'_, impl Read>) -> Result<(), UnpackError> {
        let raw_path = entry.path().map_err(UnpackError::Read)?.into_owned();
        let rel = clean(&raw_path);
        let kind = entry.header().entry_type();
        let Some(name) = rel.file_name().map(OsStr::to_owned) else {
            if kind.is_dir() {
                return Ok(()); // "./" entries: the root keeps its own metadata
            }
            return Err(UnpackError::ReplacesRoot(raw_path));
        };
        let parent_rel = rel.parent().unwrap_or(Path::new("")).to_owned();
        let name_str = name.to_string_lossy();

        if let Some(target) = name_str.strip_prefix(WH_PREFIX) {
            if self.opts.whiteouts == WhiteoutStyle::Overlay {
                return self.whiteout(&parent_rel, target, &rel);
            }
        }

        let parent = self.dir(&parent_rel)?;
        let xattrs = read_xattrs(entry)?;
        let header = entry.header().clone();
        let header = &header;
        let old = header.as_old();
        let mode = numeric(header.mode().map(u64::from), &old.mode)? as u32 & 0o7777;
        let uid = numeric(header.uid(), &old.uid)?;
        let gid = numeric(header.gid(), &old.gid)?;
        let mtime = Timespec {
            tv_sec: numeric(header.mtime(), &old.mtime)? as i64,
            tv_nsec: 0,
        };
        let times = Timestamps {
            last_access: mtime,
            last_modification: mtime,
        };

        match kind {
            EntryType::Regular | EntryType::Continuous | EntryType::GNUSparse => {
                self.make_room(&parent, &name, false, &rel)?;
                let fd = rfs::openat(
                    &parent,
                    name.as_os_str(),
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::WRONLY
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(fs_err("create", &rel))?;
                let mut file = File::from(fd);
                let expected = entry.size();
                let n = copy_buf(entry, &mut file, &mut self.buf).map_err(|e| UnpackError::Fs {
                    op: "write",
                    path: rel.clone(),
                    source: e,
                })?;
                if n != expected {
                    return Err(UnpackError::Truncated {
                        path: raw_path,
                        expected,
                        actual: n,
                    });
                }
                self.stats.bytes += n;
                self.finish_fd(
                    file.as_fd(),
                    &parent,
                    &name,
                    uid,
                    gid,
                    mode,
                    &times,
                    &xattrs,
                    &rel,
                )?;
            }
            EntryType::Directory => {
                if !self.make_room(&parent, &name, true, &rel)? {
                    rfs::mkdirat(&parent, name.as_os_str(), Mode::from_raw_mode(0o700))
                        .map_err(fs_err("mkdir", &rel))?;
                }
                let fd = rfs::openat(
                    &parent,
                    name.as_os_str(),
                    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(fs_err("open", &rel))?;
                self.chown_at(&parent, &name, uid, gid, &rel)?;
                for (k, v) in &xattrs {
                    rfs::fsetxattr(&fd, k.as_slice(), v, XattrFlags::empty())
                        .map_err(fs_err("setxattr", &rel))?;
                }
                // Mode and times last: a 0555 dir must still take its children.
                self.dirs.push((rel.clone(), mode, mtime));
            }
            EntryType::Symlink => {
                let target = entry
                    .link_name()
                    .map_err(UnpackError::Read)?
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                self.make_room(&parent, &name, false, &rel)?;
                // The target is stored verbatim: it is only ever resolved inside the root.
                rfs::symlinkat(target.as_os_str(), &parent, name.as_os_str())
                    .map_err(fs_err("symlink", &rel))?;
                self.chown_at(&parent, &name, uid, gid, &rel)?;
                rfs::utimensat(&parent, name.as_os_str(), &times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(fs_err("utimes", &rel))?;
            }
            EntryType::Link => {
                let target = entry
                    .link_name()
                    .map_err(UnpackError::Read)?
                    .map(|c| c.into_owned())
                    .unwrap_or_default();
                let target_rel = clean(&target);
                let Some(target_name) = target_rel.file_name().map(OsStr::to_owned) else {
                    return Err(UnpackError::LinkOutside {
                        path: raw_path,
                        target,
                    });
                };
                let target_parent = self
                    .open_in_root(
                        target_rel.parent().unwrap_or(Path::new("")),
                        OFlags::DIRECTORY | OFlags::PATH,
                    )
                    .map_err(|_| UnpackError::LinkOutside {
                        path: raw_path.clone(),
                        target: target.clone(),
                    })?;
                self.make_room(&parent, &name, false, &rel)?;
                // No AT_SYMLINK_FOLLOW: linking a symlink links the symlink, never what it names.
                rfs::linkat(
                    &target_parent,
                    target_name.as_os_str(),
                    &parent,
                    name.as_os_str(),
                    AtFlags::empty(),
                )
                .map_err(fs_err("link", &rel))?;
            }
            EntryType::Char | EntryType::Block | EntryType::Fifo => {
                if kind != EntryType::Fifo && !self.opts.allow_devices {
                    self.stats.skipped_devices += 1;
                    return Ok(());
                }
                let ft = match kind {
                    EntryType::Char => FileType::CharacterDevice,
                    EntryType::Block => FileType::BlockDevice,
                    _ => FileType::Fifo,
                };
                let (major, minor) = if kind == EntryType::Fifo {
                    (0, 0)
                } else {
                    (
                        header
                            .device_major()
                            .map_err(UnpackError::Read)?
                            .unwrap_or(0),
                        header
                            .device_minor()
                            .map_err(UnpackError::Read)?
                            .unwrap_or(0),
                    )
                };
                self.make_room(&parent, &name, false, &rel)?;
                rfs::mknodat(
                    &parent,
                    name.as_os_str(),
                    ft,
                    Mode::from_raw_mode(mode),
                    rfs::makedev(major, minor),
                )
                .map_err(fs_err("mknod", &rel))?;
                self.chown_at(&parent, &name, uid, gid, &rel)?;
                rfs::chmodat(
                    &parent,
                    name.as_os_str(),
                    Mode::from_raw_mode(mode),
                    AtFlags::empty(),
                )
                .map_err(fs_err("chmod", &rel))?;
                rfs::utimensat(&parent, name.as_os_str(), &times, AtFlags::SYMLINK_NOFOLLOW)
                    .map_err(fs_err("utimes", &rel))?;
            }
            // Metadata-only entries are consumed by the tar reader itself.
            EntryType::XGlobalHeader
            | EntryType::XHeader
            | EntryType::GNULongName
            | EntryType::GNULongLink => {}
            other => {
                return Err(UnpackError::UnsupportedEntry {
                    path: raw_path,
                    kind: format!("{other:?}"),
                })
            }
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    fn finish_fd(
        &self,
        fd: std::os::fd::BorrowedFd<'_>,
        parent: &OwnedFd,
        name: &OsStr,
        uid: u64,
        gid: u64,
        mode: u32,
        times: &Timestamps,
        xattrs: &[(Vec<u8>, Vec<u8>)],
        rel: &Path,
    ) -> Result<(), UnpackError> {
        self.chown_at(parent, name, uid, gid, rel)?;
        for (k, v) in xattrs {
            rfs::fsetxattr(fd, k.as_slice(), v, XattrFlags::empty())
                .map_err(fs_err("setxattr", rel))?;
        }
        // chmod after chown: chown clears setuid bits.
        rfs::fchmod(fd, Mode::from_raw_mode(mode)).map_err(fs_err("chmod", rel))?;
        rfs::futimens(fd, times).map_err(fs_err("utimes", rel))
    }

    fn whiteout(&mut self, parent_rel: &Path, target: &str, rel: &Path) -> Result<(), UnpackError> {
        let parent = self.dir(parent_rel)?;
        if format!("{WH_PREFIX}{target}") == WH_OPAQUE {
            return rfs::fsetxattr(&parent, OPAQUE_XATTR, b"y", XattrFlags::empty())
                .map_err(fs_err("setxattr", parent_rel));
        }
        if target.starts_with(WH_PREFIX) {
            return Ok(()); // aufs metadata such as .wh..wh.plnk: not part of the tree
        }
        if target.is_empty() || target == "." || target == ".." || target.contains('/') {
            return Err(UnpackError::InvalidWhiteout {
                path: rel.to_owned(),
                name: target.to_owned(),
            });
        }
        let name = OsStr::new(target);
        self.make_room(&parent, name, false, rel)?;
        rfs::mknodat(
            &parent,
            name,
            FileType::CharacterDevice,
            Mode::empty(),
            rfs::makedev(0, 0),
        )
        .map_err(fs_err("mknod", rel))
    }

    fn finish_dirs(&mut self) -> Result<(), UnpackError> {
        self.cached_parent = None;
        // Deepest first, so that a parent's mtime is set after its children are done.
        let mut dirs = std::mem::take(&mut self.dirs);
        dirs.sort_by_key(|(p, _, _)| std::cmp::Reverse(p.components().count()));
        for (rel, mode, mtime) in dirs {
            let fd = self
                .open_in_root(&rel, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW)
                .map_err(fs_err("open", &rel))?;
            rfs::fchmod(&fd, Mode::from_raw_mode(mode)).map_err(fs_err("chmod", &rel))?;
            let t = Timestamps {
                last_access: mtime,
                last_modification: mtime,
            };
            rfs::futimens(&fd, &t).map_err(fs_err("utimes", &rel))?;
        }
        Ok(())
    }
}

/// A numeric header field; an empty one (all NUL or spaces) reads as 0, as Go's archive/tar does.
fn numeric(parsed: io::Result<u64>, raw: &[u8]) -> Result<u64, UnpackError> {
    match parsed {
        Ok(v) => Ok(v),
        Err(_) if raw.iter().all(|&b| b == 0 || b == b' ') => Ok(0),
        Err(e) => Err(UnpackError::Read(e)),
    }
}

/// Extended attributes of an entry: (name, value).
type Xattrs = Vec<(Vec<u8>, Vec<u8>)>;

fn read_xattrs(entry: &mut tar::Entry<'_, impl Read>) -> Result<Xattrs, UnpackError> {
    let mut out = Vec::new();
    if let Some(exts) = entry.pax_extensions().map_err(UnpackError::Read)? {
        for ext in exts {
            let ext = ext.map_err(UnpackError::Read)?;
            if let Some(name) = ext.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                out.push((name.to_vec(), ext.value_bytes().to_vec()));
            }
        }
    }
    Ok(out)
}

/// Apply the (uncompressed) tar stream `reader` to the existing directory `target`.
/// The caller owns `target`: on error it holds a partial tree that the caller discards.
pub fn unpack(
    reader: impl Read,
    target: &Path,
    opts: UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let root = rfs::open(
        target,
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(fs_err("open", target))?;
    let mut applier = Applier {
        root,
        root_path: target,
        opts,
        cached_parent: None,
        dirs: Vec::new(),
        stats: UnpackStats::default(),
        buf: vec![0u8; 256 << 10],
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(UnpackError::Read)? {
        let mut entry = entry.map_err(UnpackError::Read)?;
        applier.apply(&mut entry)?;
        applier.stats.entries += 1;
    }
    applier.finish_dirs()?;
    let _ = applier.root_path;
    Ok(applier.stats)
}
