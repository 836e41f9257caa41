//! `/containers/{id}/archive`, what `docker cp` uses: stat a path (`HEAD`), read it as a tar
//! (`GET`), extract a tar into a directory (`PUT`), in running and stopped containers alike.
//!
//! A running container is reached through `/proc/<pid>/root`: its own view, bind mounts
//! included. A stopped one has its overlay mounted for the one operation, in a mount
//! namespace of the thread doing it (`files::with_overlay`), while `Entry::fs_busy` makes a
//! start wait. Every path is then resolved by a thread chrooted into that root
//! (`files::in_root`), so a symlink in the container never leads a copy out to the host.
//! This module never follows a path on the host side of that root.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use hyper::body::Incoming;
use hyper::header::HeaderValue;
use hyper::StatusCode;
use serde::{Deserialize, Serialize};

use crate::build::files::{self, Owner};
use crate::containers::Entry;
use crate::daemon::Daemon;
use crate::error::ApiError;
use crate::http::{blocking_reader, channel_body, status, Query, Reply};

/// The reply header that carries a [`PathStat`] (base64 of its JSON).
pub const STAT_HEADER: &str = "X-Docker-Container-Path-Stat";

/// Go's `os.FileMode` type bits, which Docker's stat carries instead of `st_mode`'s.
pub mod go_mode {
    pub const DIR: u32 = 1 << 31;
    pub const SYMLINK: u32 = 1 << 27;
    pub const DEVICE: u32 = 1 << 26;
    pub const NAMED_PIPE: u32 = 1 << 25;
    pub const SOCKET: u32 = 1 << 24;
    pub const SETUID: u32 = 1 << 23;
    pub const SETGID: u32 = 1 << 22;
    pub const CHAR_DEVICE: u32 = 1 << 21;
    pub const STICKY: u32 = 1 << 20;
    pub const IRREGULAR: u32 = 1 << 19;
}

/// A path's stat as Docker reports it (`types.ContainerPathStat`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PathStat {
    pub name: String,
    pub size: i64,
    /// Go's `os.FileMode`: permission bits plus [`go_mode`] bits.
    pub mode: u32,
    /// RFC 3339 with nanoseconds, as Go writes a `time.Time`.
    pub mtime: String,
    /// For a symlink: where it leads inside the container, every link followed.
    #[serde(rename = "linkTarget")]
    pub link_target: String,
}

impl PathStat {
    /// The value of [`STAT_HEADER`].
    pub fn header_value(&self) -> String {
        base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(self).unwrap_or_default())
    }

    /// Read [`STAT_HEADER`]'s value.
    pub fn from_header(v: &str) -> Option<Self> {
        let json = base64::engine::general_purpose::STANDARD
            .decode(v.trim())
            .ok()?;
        serde_json::from_slice(&json).ok()
    }

    pub fn is_dir(&self) -> bool {
        self.mode & go_mode::DIR != 0
    }

    pub fn is_symlink(&self) -> bool {
        self.mode & go_mode::SYMLINK != 0
    }

    /// A regular file: no type bit at all.
    pub fn is_regular(&self) -> bool {
        const TYPE: u32 = go_mode::DIR
            | go_mode::SYMLINK
            | go_mode::DEVICE
            | go_mode::NAMED_PIPE
            | go_mode::SOCKET
            | go_mode::CHAR_DEVICE
            | go_mode::IRREGULAR;
        self.mode & TYPE == 0
    }
}

/// `st_mode` as Go's `os.FileMode`.
pub fn go_file_mode(st_mode: u32) -> u32 {
    let mut m = st_mode & 0o777;
    m |= match st_mode & 0o170000 {
        0o040000 => go_mode::DIR,
        0o120000 => go_mode::SYMLINK,
        0o060000 => go_mode::DEVICE,
        0o020000 => go_mode::DEVICE | go_mode::CHAR_DEVICE,
        0o010000 => go_mode::NAMED_PIPE,
        0o140000 => go_mode::SOCKET,
        0o100000 => 0,
        _ => go_mode::IRREGULAR,
    };
    for (bit, go) in [
        (0o4000, go_mode::SETUID),
        (0o2000, go_mode::SETGID),
        (0o1000, go_mode::STICKY),
    ] {
        if st_mode & bit != 0 {
            m |= go;
        }
    }
    m
}

/// A time as Go's `time.Time` marshals to JSON (RFC 3339, trailing zeros of the fraction cut).
pub fn go_time(secs: i64, nanos: i64) -> String {
    let nanos = u32::try_from(nanos).unwrap_or(0).min(999_999_999);
    let Some(t) = chrono::DateTime::from_timestamp(secs, nanos) else {
        return "0001-01-01T00:00:00Z".into();
    };
    let mut s = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    if nanos > 0 {
        let frac = format!("{nanos:09}");
        s.push('.');
        s.push_str(frac.trim_end_matches('0'));
    }
    s.push('Z');
    s
}

/// Go's `filepath.Base`: the last element, trailing slashes ignored; `/` for the root.
pub fn go_base(p: &str) -> &str {
    if p.is_empty() {
        return ".";
    }
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return "/";
    }
    t.rsplit('/').next().unwrap_or(t)
}

/// A path the client named, made absolute in the container and cleaned, keeping what a
/// trailing `/` or `/.` says (Docker's `PreserveTrailingDotOrSeparator`): `dir/.` means the
/// directory's contents, and a trailing `/` follows a last symlink.
pub fn container_path(path: &str) -> String {
    let mut out = builder::config::clean_path(path);
    if go_base(path) == "." && !out.ends_with("/.") {
        if !out.ends_with('/') {
            out.push('/');
        }
        out.push('.');
    } else if path.ends_with('/') && !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// What went wrong in a copy; Docker's words where Docker has them.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("extraction point is not a directory")]
    NotADirectory,
    #[error("container rootfs is marked read-only")]
    ReadOnlyRootfs,
    #[error("mounted volume is marked read-only")]
    ReadOnlyVolume,
    #[error("cannot overwrite directory {path:?} with non-directory {dest:?}")]
    DirWithNonDir { path: String, dest: String },
    #[error("cannot overwrite non-directory {path:?} with directory {dest:?}")]
    NonDirWithDir { path: String, dest: String },
    #[error("invalid tar entry {0:?}: it leads out of the extraction directory")]
    Breakout(String),
    #[error("{}", files::chain(.0))]
    Io(#[from] io::Error),
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl CopyError {
    /// The API error, naming `path` and `container` as the client gave them.
    fn into_api(self, path: &str, container: &str) -> ApiError {
        match self {
            CopyError::Io(e) if e.kind() == io::ErrorKind::NotFound => ApiError::not_found(
                format!("Could not find the file {path} in container {container}"),
            ),
            CopyError::Io(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::InvalidData | io::ErrorKind::InvalidInput
                ) =>
            {
                ApiError::bad_request(files::chain(&e))
            }
            CopyError::Io(e) => ApiError::internal(files::chain(&e)),
            CopyError::Api(e) => e,
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

/// The `path` parameter: required, and a path the kernel can take.
fn path_param(q: &Query) -> Result<String, ApiError> {
    match q.get("path") {
        None | Some("") => Err(ApiError::bad_request("bad parameter: path cannot be empty")),
        Some(p) if p.contains('\0') => Err(ApiError::bad_request(format!(
            "invalid path {p:?}: it contains a NUL byte"
        ))),
        Some(p) => Ok(p.to_owned()),
    }
}

/// Run `f` with a path to the root of the container's filesystem: its init's
/// `/proc/<pid>/root` while it runs, otherwise its overlay mounted for the call.
fn with_root<T: Send>(
    d: &Daemon,
    e: &Entry,
    f: impl FnOnce(&Path) -> Result<T, CopyError> + Send,
) -> Result<T, CopyError> {
    let busy = e.fs_busy.lock().unwrap_or_else(|p| p.into_inner());
    let c = e.snapshot();
    if c.state.status.is_live() && c.state.pid > 0 {
        drop(busy); // the container keeps its own root mounted
        return f(Path::new(&format!("/proc/{}/root", c.state.pid)));
    }
    let overlay = super::containers::rootfs_overlay(d, &c)?;
    let target = d.containers.dir_of(&c.id).join("cp-root");
    let mut host_binds: Vec<(String, String)> = binds(&c)
        .into_iter()
        .filter(|(src, _, _)| src.starts_with('/'))
        .map(|(src, dst, _)| (src, dst))
        .collect();
    host_binds.sort_by_key(|(_, dst)| dst.len()); // a mount inside another goes after it
    let out = files::with_overlay(&overlay, &target, |root| {
        mount_binds(root, &host_binds)?;
        f(root)
    })
    .map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("mounting the container's filesystem: {e}"),
        )
    })?;
    drop(busy);
    out
}

/// The container's bind and volume mounts: (host source, destination, read-only).
fn binds(c: &crate::containers::Container) -> Vec<(String, String, bool)> {
    c.mounts
        .iter()
        .filter(|m| m.kind != "tmpfs")
        .map(|m| (m.source.clone(), m.destination.clone(), !m.rw))
        .collect()
}

/// Mount a stopped container's bind mounts over its root (mounted at `root` in this thread's
/// own namespace), so that a copy sees what the container would. Each destination is opened
/// (made first when missing, as the runtime would at start) by a thread chrooted into the
/// root, and the mount goes onto that file descriptor: a symlink in the container cannot
/// send a mount to the host.
fn mount_binds(root: &Path, binds: &[(String, String)]) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    for (src, dst) in binds {
        let dst2 = dst.clone();
        let src_is_dir = fs::metadata(src).map_or(true, |m| m.is_dir());
        let opened = files::in_root(root, move || {
            // the mount point is made as the runtime would at start (a volume's dir)
            if fs::symlink_metadata(&dst2).is_err() {
                if src_is_dir {
                    fs::create_dir_all(&dst2)?;
                } else {
                    if let Some(parent) = Path::new(&dst2).parent() {
                        fs::create_dir_all(parent)?;
                    }
                    fs::File::create(&dst2)?;
                }
            }
            Ok(rustix::fs::open(
                dst2.as_str(),
                rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )?)
        });
        let Ok(fd) = opened else { continue };
        let at = format!("/proc/self/fd/{}", fd.as_raw_fd());
        rustix::mount::mount_bind_recursive(src.as_str(), at.as_str()).map_err(|e| {
            io::Error::new(
                io::Error::from(e).kind(),
                format!("mounting {src} at {dst}: {e}"),
            )
        })?;
    }
    Ok(())
}

/// Stat `abs` (inside the current root).
fn stat_in(abs: &str) -> io::Result<PathStat> {
    let md = fs::symlink_metadata(abs)?;
    let link_target = if md.file_type().is_symlink() {
        eval_symlinks(abs)
    } else {
        String::new()
    };
    Ok(PathStat {
        name: go_base(abs).to_owned(),
        size: md.size().try_into().unwrap_or(i64::MAX),
        mode: go_file_mode(md.mode()),
        mtime: go_time(md.mtime(), md.mtime_nsec()),
        link_target,
    })
}

/// Where `p` leads with every symlink followed, as far as the path exists (Docker's
/// `FollowSymlinkInScope` with `/` as the scope). Runs inside the container's root.
fn eval_symlinks(p: &str) -> String {
    let mut done: Vec<String> = Vec::new();
    let mut todo: Vec<String> = p.split('/').rev().map(str::to_owned).collect();
    let mut hops = 0;
    while let Some(c) = todo.pop() {
        match c.as_str() {
            "" | "." => {}
            ".." => {
                done.pop();
            }
            _ => {
                let here = format!(
                    "/{}",
                    done.iter()
                        .chain([&c])
                        .cloned()
                        .collect::<Vec<_>>()
                        .join("/")
                );
                match fs::read_link(&here) {
                    Ok(t) if hops < 255 => {
                        hops += 1;
                        let t = t.to_string_lossy().into_owned();
                        if t.starts_with('/') {
                            done.clear();
                        }
                        todo.extend(t.split('/').rev().map(str::to_owned));
                    }
                    _ => done.push(c),
                }
            }
        }
    }
    format!("/{}", done.join("/"))
}

/// Write `abs` (inside the current root) as a tar whose entries start at its base name, as
/// Docker's do (`.` for `dir/.` and for `/`).
fn tar_path(abs: &str, out: impl Write) -> io::Result<()> {
    let name = match go_base(abs) {
        "/" => ".",
        b => b,
    };
    let mut b = tar::Builder::new(out);
    files::append_one(&mut b, Path::new(abs), Path::new(name), None)?;
    if fs::symlink_metadata(abs)?.is_dir() {
        files::append_tree(&mut b, Path::new(abs), Path::new(name), None)?;
    }
    b.into_inner()?.flush()
}

/// `HEAD /containers/{id}/archive?path=`: the path's stat, in the header only.
pub async fn stat(d: &Arc<Daemon>, name: &str, q: &Query) -> Result<Reply, ApiError> {
    let path = path_param(q)?;
    let e = d.containers.get(name)?;
    let abs = container_path(&path);
    let d2 = d.clone();
    let st = tokio::task::spawn_blocking(move || {
        with_root(&d2, &e, |root| Ok(files::in_root(root, || stat_in(&abs))?))
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| e.into_api(&path, name))?;
    Ok(with_stat(status(StatusCode::OK), &st))
}

fn with_stat(mut r: Reply, st: &PathStat) -> Reply {
    if let Ok(v) = HeaderValue::from_str(&st.header_value()) {
        r.headers_mut().insert(STAT_HEADER, v);
    }
    r
}

/// `GET /containers/{id}/archive?path=`: a tar of the path, its stat in the header.
pub async fn get(d: &Arc<Daemon>, name: &str, q: &Query) -> Result<Reply, ApiError> {
    let path = path_param(q)?;
    let e = d.containers.get(name)?;
    let abs = container_path(&path);
    let path_log = abs.clone();
    let (w, reply) = channel_body("application/x-tar");
    let (tx, rx) = tokio::sync::oneshot::channel::<Result<PathStat, CopyError>>();
    let d2 = d.clone();
    tokio::task::spawn_blocking(move || {
        let mut tx = Some(tx);
        let sent = &mut tx;
        let r = with_root(&d2, &e, move |root| {
            Ok(files::in_root(root, move || {
                let st = match stat_in(&abs) {
                    Ok(st) => st,
                    Err(err) => {
                        if let Some(tx) = sent.take() {
                            let _ = tx.send(Err(err.into()));
                        }
                        return Ok(());
                    }
                };
                if let Some(tx) = sent.take() {
                    let _ = tx.send(Ok(st));
                }
                tar_path(&abs, BufWriter::with_capacity(256 << 10, w))
            })?)
        });
        match (tx, r) {
            (Some(tx), Err(err)) => {
                let _ = tx.send(Err(err));
            }
            (None, Err(err)) => tracing::warn!("archive of {path_log} failed mid-stream: {err}"),
            _ => {}
        }
    });
    match rx.await {
        Ok(Ok(st)) => Ok(with_stat(reply, &st)),
        Ok(Err(err)) => Err(err.into_api(&path, name)),
        Err(_) => Err(ApiError::internal(
            "the archive thread ended without a word",
        )),
    }
}

/// How `PUT` extracts.
#[derive(Debug, Clone, Default)]
struct PutOptions {
    no_overwrite_dir_non_dir: bool,
    /// Every entry owned by this (`copyUIDGID` with a container user); else the tar's ids.
    owner: Option<Owner>,
    readonly_rootfs: bool,
    /// Bind mounts: (destination, read-only).
    binds: Vec<(String, bool)>,
}

/// `PUT /containers/{id}/archive?path=DIR`: extract the body (a tar, maybe compressed) into
/// the directory `DIR`, which must exist.
pub async fn put(
    d: &Arc<Daemon>,
    name: &str,
    q: &Query,
    body: Incoming,
) -> Result<Reply, ApiError> {
    let path = path_param(q)?;
    let e = d.containers.get(name)?;
    let c = e.snapshot();
    let mut opts = PutOptions {
        no_overwrite_dir_non_dir: q.flag("noOverwriteDirNonDir"),
        readonly_rootfs: c.host_config["ReadonlyRootfs"].as_bool().unwrap_or(false),
        binds: binds(&c)
            .into_iter()
            .map(|(_, dst, ro)| (dst, ro))
            .collect(),
        owner: None,
    };
    let user = c.config["User"].as_str().unwrap_or("").to_owned();
    let copy_ids = q.flag("copyUIDGID") && !user.is_empty();
    let reader = blocking_reader(body);
    let d2 = d.clone();
    let dest = path.clone();
    tokio::task::spawn_blocking(move || {
        with_root(&d2, &e, move |root| {
            if copy_ids {
                let (uid, gid, _) =
                    crate::containers::user::resolve(root, &user).map_err(ApiError::bad_request)?;
                opts.owner = Some(Owner {
                    uid: uid.into(),
                    gid: gid.into(),
                });
            }
            files::in_root(root, move || {
                let mut reader = reader;
                let done = extract_in(&dest, &mut reader, &opts);
                if done.is_err() {
                    // the client may still be sending: read it all, so that it gets our
                    // error and not a broken pipe
                    let _ = io::copy(&mut reader, &mut io::sink());
                }
                Ok(done)
            })?
        })
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))?
    .map_err(|e| e.into_api(&path, name))?;
    Ok(status(StatusCode::OK))
}

/// Extract `reader` into the directory `path` (inside the current root), as Docker's
/// `archive.Untar`: `..` never leads out, a `.` entry is the directory itself and is
/// skipped, an entry replaces what is in its way unless `no_overwrite_dir_non_dir` forbids a
/// directory to become a file or the reverse. Directories get their mtimes last.
fn extract_in(path: &str, reader: impl io::Read, opts: &PutOptions) -> Result<(), CopyError> {
    let dir = fs::canonicalize(container_path(path))?;
    if !fs::symlink_metadata(&dir)?.is_dir() {
        return Err(CopyError::NotADirectory);
    }
    let dir_s = dir.display().to_string();
    let volume = opts
        .binds
        .iter()
        .filter(|(dst, _)| {
            dir_s == *dst || dir_s.starts_with(&format!("{}/", dst.trim_end_matches('/')))
        })
        .max_by_key(|(dst, _)| dst.len());
    match volume {
        Some((_, true)) => return Err(CopyError::ReadOnlyVolume),
        None if opts.readonly_rootfs => return Err(CopyError::ReadOnlyRootfs),
        _ => {}
    }
    let (_, dec) = image_store::unpack::decompressed(reader)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    let mut a = tar::Archive::new(dec);
    a.set_preserve_permissions(true);
    a.set_preserve_mtime(true);
    a.set_preserve_ownerships(opts.owner.is_none());
    a.set_overwrite(true);
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
    for entry in a.entries()? {
        let mut entry = entry?;
        let raw = entry.path()?.into_owned();
        let mut target = dir.clone();
        for part in raw.components() {
            match part {
                Component::Normal(p) => target.push(p),
                Component::ParentDir => return Err(CopyError::Breakout(raw.display().to_string())),
                _ => {}
            }
        }
        if target == dir {
            continue;
        }
        let is_dir = entry.header().entry_type().is_dir();
        if let Ok(md) = fs::symlink_metadata(&target) {
            let (path, dest) = (target.display().to_string(), dir_s.clone());
            match (md.is_dir(), is_dir) {
                (true, false) if opts.no_overwrite_dir_non_dir => {
                    return Err(CopyError::DirWithNonDir { path, dest })
                }
                (false, true) if opts.no_overwrite_dir_non_dir => {
                    return Err(CopyError::NonDirWithDir { path, dest })
                }
                (true, false) => fs::remove_dir_all(&target)?,
                (false, true) => fs::remove_file(&target)?,
                _ => {}
            }
        }
        entry.unpack_in(&dir)?;
        if let Some(o) = opts.owner {
            std::os::unix::fs::lchown(
                &target,
                u32::try_from(o.uid).ok(),
                u32::try_from(o.gid).ok(),
            )?;
        }
        if is_dir {
            dir_times.push((target, entry.header().mtime().unwrap_or(0)));
        }
    }
    for (p, mtime) in dir_times.iter().rev() {
        let t = rustix::fs::Timespec {
            tv_sec: i64::try_from(*mtime).unwrap_or(0),
            tv_nsec: 0,
        };
        let _ = rustix::fs::utimensat(
            rustix::fs::CWD,
            p,
            &rustix::fs::Timestamps {
                last_access: t,
                last_modification: t,
            },
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_header_is_base64_json_with_go_modes() {
        let st = PathStat {
            name: "hostname".into(),
            size: 13,
            mode: go_file_mode(0o100644),
            mtime: go_time(1_700_000_000, 120_000_000),
            link_target: String::new(),
        };
        assert_eq!(st.mode, 0o644);
        let json = String::from_utf8(
            base64::engine::general_purpose::STANDARD
                .decode(st.header_value())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(
            json,
            r#"{"name":"hostname","size":13,"mode":420,"mtime":"2023-11-14T22:13:20.12Z","linkTarget":""}"#
        );
        assert_eq!(PathStat::from_header(&st.header_value()), Some(st));
        assert_eq!(PathStat::from_header("not base64!"), None);
    }

    #[test]
    fn modes_as_go_has_them() {
        // what docker's CLI decodes: os.ModeDir|0755 = 2147484141
        assert_eq!(go_file_mode(0o040755), 2_147_484_141);
        assert_eq!(go_file_mode(0o120777), (1 << 27) | 0o777);
        assert_eq!(go_file_mode(0o020666), (1 << 26) | (1 << 21) | 0o666);
        assert_eq!(go_file_mode(0o104755), (1 << 23) | 0o755);
        assert_eq!(go_file_mode(0o041777), (1 << 31) | (1 << 20) | 0o777);
        let dir = PathStat {
            name: "d".into(),
            size: 0,
            mode: go_file_mode(0o040755),
            mtime: go_time(0, 0),
            link_target: String::new(),
        };
        assert!(dir.is_dir() && !dir.is_regular() && !dir.is_symlink());
        assert_eq!(dir.mtime, "1970-01-01T00:00:00Z");
    }

    #[test]
    fn paths_keep_trailing_dot_and_slash() {
        assert_eq!(container_path("etc/hostname"), "/etc/hostname");
        assert_eq!(container_path("/a/../../etc"), "/etc");
        assert_eq!(container_path("/dir/."), "/dir/.");
        assert_eq!(container_path("/dir/./"), "/dir/.");
        assert_eq!(container_path("/dir/"), "/dir/");
        assert_eq!(container_path("/"), "/");
        assert_eq!(container_path("."), "/.");
        assert_eq!(go_base("/dir/."), ".");
        assert_eq!(go_base("/dir/"), "dir");
        assert_eq!(go_base("/"), "/");
    }

    #[test]
    fn errors_in_dockers_words() {
        let e = CopyError::Io(io::Error::from(io::ErrorKind::NotFound)).into_api("/x", "c");
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.message, "Could not find the file /x in container c");
        let e = CopyError::NotADirectory.into_api("/x", "c");
        assert_eq!(
            (e.status, e.message.as_str()),
            (
                StatusCode::BAD_REQUEST,
                "extraction point is not a directory"
            )
        );
        assert!(path_param(&Query::parse(Some("path="))).is_err());
        assert_eq!(path_param(&Query::parse(Some("path=%2Fa"))).unwrap(), "/a");
    }
}
