//! The file side of a build: the context, root filesystems of steps, and ADD/COPY.
//!
//! Every path a Dockerfile names is resolved by a thread that has its own filesystem
//! context (`unshare(CLONE_FS)`) and has `chroot`ed into the tree it reads or writes, so a
//! symlink in the context or in a base image can never lead a copy out of that tree: the
//! classic builder's "chrootarchive", without re-executing ourselves.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use image_store::layers::OverlayMount;
use sha2::{Digest as _, Sha256};

/// Give this thread its own root and working directory. (Only `FILES` makes `unshare`
/// unsafe, which is why rustix deprecated the safe form; `FS` shares nothing.)
#[allow(deprecated)]
fn unshare_fs() -> io::Result<()> {
    Ok(rustix::thread::unshare(rustix::thread::UnshareFlags::FS)?)
}

/// Run `f` on a fresh thread whose root directory is `root`.
pub fn in_root<T: Send>(root: &Path, f: impl FnOnce() -> io::Result<T> + Send) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            unshare_fs()?;
            rustix::process::chroot(root)?;
            rustix::process::chdir("/")?;
            f()
        })
        .join()
        .map_err(|_| io::Error::other("a build file thread panicked"))?
    })
}

/// An error with its causes (the tar crate wraps the reason an entry failed).
pub fn chain(e: &io::Error) -> String {
    let mut out = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        out.push_str(": ");
        out.push_str(&s.to_string());
        src = s.source();
    }
    out
}

/// Mount `m` at `target` (read-write when it has an upper dir).
pub fn mount_overlay(m: &OverlayMount, target: &Path) -> io::Result<()> {
    fs::create_dir_all(target)?;
    let data = std::ffi::CString::new(m.options()).map_err(io::Error::other)?;
    let chdir = m.chdir.clone();
    let target = target.to_owned();
    std::thread::scope(|s| {
        s.spawn(move || -> io::Result<()> {
            if let Some(dir) = &chdir {
                // relative lowerdirs: resolve them from the short-link dir, on this thread only
                unshare_fs()?;
                rustix::process::chdir(dir)?;
            }
            rustix::mount::mount(
                "overlay",
                &target,
                "overlay",
                rustix::mount::MountFlags::empty(),
                data.as_c_str(),
            )?;
            Ok(())
        })
        .join()
        .map_err(|_| io::Error::other("mount thread panicked"))?
    })
}

pub fn unmount(target: &Path) {
    let _ = rustix::mount::unmount(target, rustix::mount::UnmountFlags::DETACH);
}

/// Run `f` with `m` mounted at `target`, on a thread in a mount namespace of its own with
/// private propagation: no one else sees the mount and it cannot outlive the call, not even
/// when the daemon dies mid-way. Threads that `f` starts share the namespace.
pub fn with_overlay<T: Send>(
    m: &OverlayMount,
    target: &Path,
    f: impl FnOnce(&Path) -> T + Send,
) -> io::Result<T> {
    std::thread::scope(|s| {
        s.spawn(|| {
            unshare_mount_ns()?;
            rustix::mount::mount_change(
                "/",
                rustix::mount::MountPropagationFlags::PRIVATE
                    | rustix::mount::MountPropagationFlags::REC,
            )?;
            mount_overlay(m, target)?;
            let out = f(target);
            unmount(target);
            Ok(out)
        })
        .join()
        .map_err(|_| io::Error::other("a mount thread panicked"))?
    })
}

/// Give this thread its own mount namespace (and so its own root and working directory).
#[allow(deprecated)]
fn unshare_mount_ns() -> io::Result<()> {
    Ok(rustix::thread::unshare(
        rustix::thread::UnshareFlags::NEWNS,
    )?)
}

/// Unpack a build context tar (plain, gzip or zstd) into `dir`.
pub fn unpack_context(reader: impl Read + Send, dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    in_root(dir, move || {
        let (_, dec) = image_store::unpack::decompressed(reader)
            .map_err(|e| io::Error::other(e.to_string()))?;
        let mut a = tar::Archive::new(dec);
        a.set_preserve_permissions(true);
        a.set_preserve_mtime(true);
        a.set_overwrite(true);
        a.unpack("/")
    })
}

/// Clean a path named in a Dockerfile to an absolute path inside its root (`..` stops at `/`).
pub fn clean_abs(p: &str) -> String {
    builder::config::clean_path(&format!("/{p}"))
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// Go's `filepath.Match` for one path component.
pub fn glob_match(pat: &[u8], name: &[u8]) -> bool {
    match (pat.first(), name.first()) {
        (None, None) => true,
        (Some(b'*'), _) => (0..=name.len()).any(|i| glob_match(&pat[1..], &name[i..])),
        (Some(b'?'), Some(_)) => glob_match(&pat[1..], &name[1..]),
        (Some(b'['), Some(&c)) => {
            let Some(end) = pat.iter().skip(1).position(|&b| b == b']').map(|i| i + 1) else {
                return false;
            };
            let class = &pat[1..end];
            let (neg, class) = match class.first() {
                Some(b'^') => (true, &class[1..]),
                _ => (false, class),
            };
            let mut hit = false;
            let mut i = 0;
            while i < class.len() {
                if i + 2 < class.len() && class[i + 1] == b'-' {
                    hit |= class[i] <= c && c <= class[i + 2];
                    i += 3;
                } else {
                    hit |= class[i] == c;
                    i += 1;
                }
            }
            hit != neg && glob_match(&pat[end + 1..], &name[1..])
        }
        (Some(b'\\'), Some(&c)) if pat.len() > 1 => {
            pat[1] == c && glob_match(&pat[2..], &name[1..])
        }
        (Some(&p), Some(&c)) => p == c && glob_match(&pat[1..], &name[1..]),
        _ => false,
    }
}

/// One source of an ADD/COPY after globbing: an absolute path in its root.
#[derive(Debug, Clone)]
pub struct Matched {
    pub path: String,
    pub is_dir: bool,
}

/// Expand the sources (globs in the last component) inside the current root. Errors name
/// what was not found, as Docker does.
fn expand_sources(sources: &[String]) -> io::Result<Vec<Matched>> {
    let mut out = Vec::new();
    for s in sources {
        let abs = clean_abs(s);
        let (parent, last) = match abs.rsplit_once('/') {
            Some((p, l)) => (if p.is_empty() { "/" } else { p }, l),
            None => ("/", abs.as_str()),
        };
        if has_glob(last) && !has_glob(parent) {
            let mut names: Vec<String> = match fs::read_dir(parent) {
                Ok(rd) => rd
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| glob_match(last.as_bytes(), n.as_bytes()))
                    .collect(),
                Err(_) => Vec::new(),
            };
            names.sort();
            if names.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no source files were specified ({s} matched nothing)"),
                ));
            }
            for n in names {
                let path = builder::config::clean_path(&format!("{parent}/{n}"));
                let is_dir = fs::metadata(&path).map(|m| m.is_dir()).unwrap_or(false);
                out.push(Matched { path, is_dir });
            }
        } else {
            match fs::metadata(&abs) {
                Ok(md) => out.push(Matched {
                    path: abs,
                    is_dir: md.is_dir(),
                }),
                Err(_) => {
                    return Err(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("COPY failed: file not found in build context or excluded by .dockerignore: stat {s}: file does not exist"),
                    ))
                }
            }
        }
    }
    Ok(out)
}

/// What the sources hold, hashed as Docker's tarsum does it: names, modes, owners, sizes,
/// link targets and content — never mtimes, so `touch` keeps the cache and `chmod` does not.
fn hash_tree(path: &Path, rel: &str, h: &mut Sha256) -> io::Result<()> {
    let md = fs::symlink_metadata(path)?;
    let ft = md.file_type();
    let kind = if ft.is_dir() {
        '5'
    } else if ft.is_symlink() {
        '2'
    } else {
        '0'
    };
    let link = if ft.is_symlink() {
        fs::read_link(path)?.display().to_string()
    } else {
        String::new()
    };
    let size = if ft.is_file() { md.len() } else { 0 };
    h.update(
        format!(
            "name={rel}\0mode={:o}\0uid={}\0gid={}\0size={size}\0type={kind}\0link={link}\0",
            md.mode() & 0o7777,
            md.uid(),
            md.gid()
        )
        .as_bytes(),
    );
    if ft.is_file() {
        let mut f = fs::File::open(path)?;
        io::copy(&mut f, h)?;
    } else if ft.is_dir() {
        let mut names: Vec<_> = fs::read_dir(path)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        names.sort();
        for n in names {
            let child = format!("{rel}/{}", n.to_string_lossy());
            hash_tree(&path.join(&n), &child, h)?;
        }
    }
    Ok(())
}

/// Hash the sources of an ADD/COPY inside `root`: Docker's `file:`/`dir:`/`multi:` form.
pub fn hash_sources(root: &Path, sources: &[String]) -> io::Result<(String, Vec<Matched>)> {
    let sources = sources.to_vec();
    in_root(root, move || {
        let matched = expand_sources(&sources)?;
        let mut each = Vec::new();
        for m in &matched {
            let mut h = Sha256::new();
            // a source itself is followed (it may be a symlink), what is inside is not
            let real = fs::canonicalize(&m.path)?;
            hash_tree(&real, "", &mut h)?;
            each.push(hex::encode(h.finalize()));
        }
        let text = match (matched.as_slice(), each.as_slice()) {
            ([m], [one]) if m.is_dir => format!("dir:{one}"),
            ([_], [one]) => format!("file:{one}"),
            _ => {
                let mut h = Sha256::new();
                for e in &each {
                    h.update(e.as_bytes());
                }
                format!("multi:{}", hex::encode(h.finalize()))
            }
        };
        Ok((text, matched))
    })
}

/// How copied files are owned.
#[derive(Debug, Clone, Copy, Default)]
pub struct Owner {
    pub uid: u64,
    pub gid: u64,
}

/// Write `matched` (inside the current root) as a tar whose names are relative to the
/// destination: a directory's contents, or a file under `file_name` (its own name when
/// `None`).
fn tar_sources(
    matched: &[Matched],
    file_name: Option<&str>,
    owner: Option<Owner>,
    out: impl Write,
) -> io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    for m in matched {
        let real = fs::canonicalize(&m.path)?;
        if m.is_dir {
            append_tree(&mut b, &real, Path::new(""), owner)?;
        } else {
            let name = match file_name {
                Some(n) => n.to_owned(),
                None => Path::new(&m.path)
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            };
            append_one(&mut b, &real, Path::new(&name), owner)?;
        }
    }
    b.finish()
}

/// Append `path` (not followed) as `name`, owned by `owner` or, when `None`, by its own
/// uid and gid. A file is read for the size it had when stat'ed (a file that grows or shrinks
/// meanwhile cannot break the archive).
pub(crate) fn append_one<W: Write>(
    b: &mut tar::Builder<W>,
    path: &Path,
    name: &Path,
    owner: Option<Owner>,
) -> io::Result<()> {
    let md = fs::symlink_metadata(path)?;
    let mut h = tar::Header::new_gnu();
    h.set_mode(md.mode() & 0o7777);
    let o = owner.unwrap_or(Owner {
        uid: md.uid().into(),
        gid: md.gid().into(),
    });
    h.set_uid(o.uid);
    h.set_gid(o.gid);
    h.set_mtime(u64::try_from(md.mtime()).unwrap_or(0));
    let ft = md.file_type();
    if ft.is_dir() {
        h.set_entry_type(tar::EntryType::Directory);
        h.set_size(0);
        let mut dir_name = name.as_os_str().to_owned();
        if !dir_name.as_encoded_bytes().ends_with(b"/") {
            dir_name.push("/");
        }
        append_named(b, &mut h, Path::new(&dir_name), None, io::empty())
    } else if ft.is_symlink() {
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        append_named(b, &mut h, name, Some(&fs::read_link(path)?), io::empty())
    } else if ft.is_file() {
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(md.len());
        let data = fs::File::open(path)?
            .take(md.len())
            .chain(io::repeat(0))
            .take(md.len());
        append_named(b, &mut h, name, None, data)
    } else {
        Ok(()) // devices, fifos and sockets are not copied
    }
}

/// Append an entry under `name` exactly as given (`./x` stays `./x`, as in Docker's archive
/// of `dir/.`; the tar crate would drop the `./`), with GNU long-name records for names and
/// link targets past 100 bytes.
fn append_named<W: Write>(
    b: &mut tar::Builder<W>,
    h: &mut tar::Header,
    name: &Path,
    link: Option<&Path>,
    data: impl Read,
) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    fn field(
        b: &mut tar::Builder<impl Write>,
        kind: tar::EntryType,
        value: &[u8],
        dst: &mut [u8; 100],
    ) -> io::Result<()> {
        if value.contains(&0) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a path in the archive contains a NUL byte",
            ));
        }
        if value.len() > dst.len() {
            let mut long = tar::Header::new_gnu();
            long.as_old_mut().name[..13].copy_from_slice(b"././@LongLink");
            long.set_mode(0o644);
            long.set_entry_type(kind);
            long.set_size(value.len() as u64 + 1);
            long.set_cksum();
            b.append(&long, value.chain(&[0u8][..]))?;
        }
        let n = value.len().min(dst.len());
        dst.fill(0);
        dst[..n].copy_from_slice(&value[..n]);
        Ok(())
    }
    let mut name_field = [0u8; 100];
    field(
        b,
        tar::EntryType::GNULongName,
        name.as_os_str().as_bytes(),
        &mut name_field,
    )?;
    h.as_old_mut().name = name_field;
    if let Some(l) = link {
        let mut link_field = [0u8; 100];
        field(
            b,
            tar::EntryType::GNULongLink,
            l.as_os_str().as_bytes(),
            &mut link_field,
        )?;
        h.as_old_mut().linkname = link_field;
    }
    h.set_cksum();
    b.append(h, data)
}

/// Append what is inside `dir`, named under `rel`, in sorted order, symlinks not followed.
pub(crate) fn append_tree<W: Write>(
    b: &mut tar::Builder<W>,
    dir: &Path,
    rel: &Path,
    o: Option<Owner>,
) -> io::Result<()> {
    let mut names: Vec<_> = fs::read_dir(dir)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<io::Result<_>>()?;
    names.sort();
    for n in names {
        let path = dir.join(&n);
        let name = rel.join(&n);
        append_one(b, &path, &name, o)?;
        if fs::symlink_metadata(&path)?.is_dir() {
            append_tree(b, &path, &name, o)?;
        }
    }
    Ok(())
}

/// Unpack a tar stream into `dir` (absolute, inside the current root), creating it.
fn untar_into(reader: impl Read, dir: &str, owner: Option<Owner>) -> io::Result<()> {
    mkdir_all(dir, owner)?;
    let mut a = tar::Archive::new(reader);
    a.set_preserve_permissions(true);
    a.set_preserve_mtime(true);
    a.set_preserve_ownerships(true);
    a.set_overwrite(true);
    a.unpack(dir)
}

fn mkdir_all(dir: &str, owner: Option<Owner>) -> io::Result<()> {
    let mut cur = PathBuf::from("/");
    for part in dir.split('/').filter(|p| !p.is_empty()) {
        cur.push(part);
        match fs::metadata(&cur) {
            Ok(md) if md.is_dir() => continue,
            Ok(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} is not a directory", cur.display()),
                ))
            }
            Err(_) => {
                fs::create_dir(&cur)?;
                fs::set_permissions(&cur, fs::Permissions::from_mode(0o755))?;
                if let Some(o) = owner {
                    std::os::unix::fs::lchown(
                        &cur,
                        u32::try_from(o.uid).ok(),
                        u32::try_from(o.gid).ok(),
                    )?;
                }
            }
        }
    }
    Ok(())
}

/// Whether `path` (inside `root`) is an existing directory, following symlinks in the root.
pub fn is_dir_in(root: &Path, path: &str) -> bool {
    let path = path.to_owned();
    in_root(root, move || {
        Ok(fs::metadata(&path).is_ok_and(|m| m.is_dir()))
    })
    .unwrap_or(false)
}

/// Where an ADD/COPY writes, worked out as Docker does: several sources, a directory
/// source, a trailing `/` or an existing directory make `dest` a directory.
#[derive(Debug, Clone)]
pub struct Target {
    pub dir: String,
    pub file_name: Option<String>,
}

pub fn target(dest: &str, dest_is_dir: bool, matched: &[Matched]) -> Result<Target, String> {
    let many = matched.len() > 1;
    let as_dir = dest.ends_with('/') || dest_is_dir || matched.iter().any(|m| m.is_dir);
    if many && !dest.ends_with('/') && !dest_is_dir {
        return Err(
            "When using COPY with more than one source file, the destination must be a directory and end with a /".to_owned()
        );
    }
    let clean = builder::config::clean_path(dest);
    if as_dir {
        return Ok(Target {
            dir: clean,
            file_name: None,
        });
    }
    let (parent, name) = clean.rsplit_once('/').unwrap_or(("", &clean));
    Ok(Target {
        dir: if parent.is_empty() {
            "/".into()
        } else {
            parent.into()
        },
        file_name: Some(name.into()),
    })
}

/// Copy `matched` (inside `src_root`) into `dst_root` at `target`, owned by `owner`.
pub fn copy(
    src_root: &Path,
    matched: &[Matched],
    dst_root: &Path,
    t: &Target,
    owner: Owner,
    chowned: bool,
) -> io::Result<()> {
    let (reader, writer) = io::pipe()?;
    let matched = matched.to_vec();
    let file_name = t.file_name.clone();
    let dir = t.dir.clone();
    std::thread::scope(|s| {
        let producer = s.spawn(move || {
            in_root(src_root, move || {
                tar_sources(&matched, file_name.as_deref(), Some(owner), writer)
            })
        });
        let consumed = in_root(dst_root, move || {
            untar_into(reader, &dir, chowned.then_some(owner))
        });
        let produced = producer
            .join()
            .map_err(|_| io::Error::other("copy thread panicked"))?;
        consumed.and(produced)
    })
}

/// Copy the tree under `src_dir` (inside `src_root`) into the directory `dst` on the host,
/// keeping owners and modes, and give `dst` the owner and mode of `src_dir`: how an empty
/// volume is filled from the image. Nothing happens when `src_dir` is not a directory.
pub fn copy_tree(src_root: &Path, src_dir: &str, dst: &Path) -> io::Result<()> {
    let (reader, writer) = io::pipe()?;
    let src_dir = src_dir.to_owned();
    std::thread::scope(|s| {
        let producer = s.spawn(move || {
            in_root(src_root, move || {
                let md = match fs::metadata(&src_dir) {
                    Ok(md) if md.is_dir() => md,
                    _ => return Ok(None),
                };
                let m = Matched {
                    path: src_dir,
                    is_dir: true,
                };
                tar_sources(&[m], None, None, writer)?;
                Ok(Some(md))
            })
        });
        let consumed = in_root(dst, move || untar_into(reader, "/", None));
        let produced = producer
            .join()
            .map_err(|_| io::Error::other("copy thread panicked"))?;
        match produced? {
            Some(md) => {
                consumed?;
                fs::set_permissions(dst, fs::Permissions::from_mode(md.mode() & 0o7777))?;
                std::os::unix::fs::lchown(dst, Some(md.uid()), Some(md.gid()))
            }
            None => Ok(()),
        }
    })
}

/// Whether the file at `path` (in the current root) starts like an archive ADD unpacks.
fn looks_like_archive(path: &str) -> bool {
    let mut head = [0u8; 512];
    let Ok(mut f) = fs::File::open(path) else {
        return false;
    };
    let mut n = 0;
    while n < head.len() {
        match f.read(&mut head[n..]) {
            Ok(0) | Err(_) => break,
            Ok(k) => n += k,
        }
    }
    let h = &head[..n];
    h.starts_with(&[0x1f, 0x8b])
        || h.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || (n >= 262 && &h[257..262] == b"ustar")
}

/// ADD's local archives: which of `matched` (in `root`) are tar archives to unpack.
pub fn archives(root: &Path, matched: &[Matched]) -> io::Result<Vec<bool>> {
    let matched = matched.to_vec();
    in_root(root, move || {
        Ok(matched
            .iter()
            .map(|m| !m.is_dir && looks_like_archive(&m.path))
            .collect())
    })
}

/// Unpack the archive `src` (in `src_root`) into `dir` (in `dst_root`), as ADD does.
pub fn extract_archive(src_root: &Path, src: &str, dst_root: &Path, dir: &str) -> io::Result<()> {
    let (reader, mut writer) = io::pipe()?;
    let src = src.to_owned();
    let dir = dir.to_owned();
    std::thread::scope(|s| {
        let producer = s.spawn(move || {
            in_root(src_root, move || {
                let mut f = fs::File::open(&src)?;
                io::copy(&mut f, &mut writer).map(|_| ())
            })
        });
        let consumed = in_root(dst_root, move || {
            let (_, dec) = image_store::unpack::decompressed(reader)
                .map_err(|e| io::Error::other(e.to_string()))?;
            untar_into(dec, &dir, None)
        });
        let produced = producer
            .join()
            .map_err(|_| io::Error::other("copy thread panicked"))?;
        // the unpacker may stop reading at the archive's end marker: a broken pipe then is fine
        consumed?;
        match produced {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    })
}

/// Write `content` as `dir/name` (in `root`), for heredoc sources and downloads.
pub fn write_file(
    root: &Path,
    dir: &str,
    name: &str,
    content: &[u8],
    mode: u32,
    owner: Owner,
) -> io::Result<()> {
    let dir = dir.to_owned();
    let name = name.to_owned();
    let content = content.to_vec();
    in_root(root, move || {
        mkdir_all(&dir, None)?;
        let p = Path::new(&dir).join(&name);
        let mut f = fs::File::create(&p)?;
        f.write_all(&content)?;
        f.set_permissions(fs::Permissions::from_mode(mode))?;
        std::os::unix::fs::lchown(
            &p,
            u32::try_from(owner.uid).ok(),
            u32::try_from(owner.gid).ok(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_like_go() {
        assert!(glob_match(b"*.txt", b"a.txt"));
        assert!(!glob_match(b"*.txt", b"a.md"));
        assert!(glob_match(b"a?c", b"abc"));
        assert!(glob_match(b"[a-c]x", b"bx"));
        assert!(!glob_match(b"[^a-c]x", b"bx"));
        assert!(glob_match(b"\\*", b"*"));
    }

    #[test]
    fn targets_follow_dockers_rules() {
        let f = |p: &str| Matched {
            path: p.into(),
            is_dir: false,
        };
        let t = target("/app/x.txt", false, &[f("/a")]).unwrap();
        assert_eq!(
            (t.dir.as_str(), t.file_name.as_deref()),
            ("/app", Some("x.txt"))
        );
        let t = target("/app/", false, &[f("/a")]).unwrap();
        assert_eq!((t.dir.as_str(), t.file_name), ("/app", None));
        let t = target("/app", true, &[f("/a")]).unwrap();
        assert_eq!(t.file_name, None);
        assert!(target("/app", false, &[f("/a"), f("/b")]).is_err());
        assert!(target("/app/", false, &[f("/a"), f("/b")]).is_ok());
        assert_eq!(clean_abs("../../etc"), "/etc");
    }
}
