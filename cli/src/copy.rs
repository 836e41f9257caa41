//! The local side of `cp`, with the docker CLI's rules (its `pkg/archive` copy helpers): how
//! paths are split and resolved, which directory an archive is extracted into and what its
//! top entry is renamed to, and the tars themselves — written from local files, and extracted
//! into a local directory without ever writing outside it. It knows nothing of HTTP.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};
use engine::api::archive::go_base;

/// What is known of one end of a copy (docker's `archive.CopyInfo`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyInfo {
    pub path: String,
    pub exists: bool,
    pub is_dir: bool,
    /// The name the top entry takes when a followed symlink changed the last element.
    pub rebase_name: String,
}

/// A renaming of the archive's top entry: `old` (and what is under it) becomes `new`.
pub type Rebase = (String, String);

/// `CONTAINER:PATH` or a local path (absolute, `./x:y`, or without a `:`).
pub fn split_cp_arg(arg: &str) -> (Option<&str>, &str) {
    if arg.starts_with('/') {
        return (None, arg);
    }
    match arg.split_once(':') {
        Some((c, p)) if !c.starts_with('.') => (Some(c), p),
        _ => (None, arg),
    }
}

/// Go's `filepath.Clean`.
pub fn clean(p: &str) -> String {
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let body = parts.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

/// Go's `filepath.Dir`.
fn go_dir(p: &str) -> String {
    match p.rfind('/') {
        Some(i) => clean(&p[..=i]),
        None => ".".into(),
    }
}

fn specifies_current_dir(p: &str) -> bool {
    go_base(p) == "."
}

/// A path's directory and the entry in it; `dir/.` stays `(dir, ".")`.
pub fn split_path_dir_entry(p: &str) -> (String, String) {
    let mut cleaned = clean(p);
    if specifies_current_dir(p) {
        cleaned.push_str("/.");
    }
    let base = match go_base(&cleaned) {
        "/" => ".", // the root's entries are named as `/.`'s
        b => b,
    };
    (go_dir(&cleaned), base.to_owned())
}

/// `cleaned` with the trailing `/.` or `/` that `original` had.
pub fn preserve_trailing(cleaned: &str, original: &str) -> String {
    let mut out = cleaned.to_owned();
    if !specifies_current_dir(&out) && specifies_current_dir(original) {
        if !out.ends_with('/') {
            out.push('/');
        }
        out.push('.');
    }
    if !out.ends_with('/') && original.ends_with('/') {
        out.push('/');
    }
    out
}

/// A local path made absolute (keeping a trailing `/` or `/.`).
pub fn resolve_local_path(p: &str) -> Result<String> {
    let abs = if p.starts_with('/') {
        clean(p)
    } else {
        let cwd = std::env::current_dir().context("finding the current directory")?;
        clean(&format!("{}/{p}", cwd.display()))
    };
    Ok(preserve_trailing(&abs, p))
}

/// After following a symlink from `path` to `resolved`: the resolved path with `path`'s
/// trailing `/.` or `/`, and the name the top entry must take (empty when unchanged).
pub fn rebase_name(path: &str, resolved: &str) -> (String, String) {
    let mut resolved = resolved.to_owned();
    if specifies_current_dir(path) && !specifies_current_dir(&resolved) {
        resolved.push_str("/.");
    }
    if path.ends_with('/') && !resolved.ends_with('/') {
        resolved.push('/');
    }
    let name = if go_base(path) != go_base(&resolved) {
        go_base(path).to_owned()
    } else {
        String::new()
    };
    (resolved, name)
}

/// Where to extract and how to rename, from what the source and destination are (docker's
/// `PrepareArchiveCopy`). Errors are docker's.
pub fn prepare_archive_copy(src: &CopyInfo, dst: &CopyInfo) -> Result<(String, Option<Rebase>)> {
    let (dst_dir, dst_base) = split_path_dir_entry(&dst.path);
    let (_, mut src_base) = split_path_dir_entry(&src.path);
    if !src.rebase_name.is_empty() {
        src_base = src.rebase_name.clone();
    }
    let rename = || Ok((dst_dir.clone(), Some((src_base.clone(), dst_base.clone()))));
    if dst.exists && dst.is_dir {
        // extracted as it is into the existing directory
        return Ok((dst.path.clone(), None));
    }
    if dst.exists && src.is_dir {
        bail!("cannot copy directory");
    }
    if !dst.exists && !src.is_dir && (dst.path.ends_with('/') || specifies_current_dir(&dst.path)) {
        bail!("no such directory");
    }
    rename()
}

/// `name` with its top element `old` renamed `new`; other names unchanged.
pub fn rebase(name: &str, r: &Rebase) -> String {
    let (old, new) = r;
    let trimmed = name
        .strip_prefix("./")
        .filter(|_| old != ".")
        .unwrap_or(name);
    if trimmed == old || trimmed.trim_end_matches('/') == old {
        let slash = if trimmed.ends_with('/') { "/" } else { "" };
        return format!("{new}{slash}");
    }
    match trimmed.strip_prefix(old.as_str()) {
        Some(rest) if rest.starts_with('/') => format!("{new}{rest}"),
        _ => name.to_owned(),
    }
}

/// An OS error as Go words it: `lstat /x: no such file or directory`.
pub fn os_error(op: &str, path: &str, e: &io::Error) -> anyhow::Error {
    let what = match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_owned(),
        io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        io::ErrorKind::NotADirectory => "not a directory".to_owned(),
        _ => e.to_string(),
    };
    anyhow::anyhow!("{op} {path}: {what}")
}

/// The local source of a copy into a container (docker's `CopyInfoSourcePath`): the last
/// element is followed only with `-L`.
pub fn source_info(path: &str, follow: bool) -> Result<CopyInfo> {
    let (resolved, rebase_name) = if follow {
        let r = fs::canonicalize(path).map_err(|e| os_error("lstat", path, &e))?;
        rebase_name(path, &r.display().to_string())
    } else {
        let (dir, base) = match path.rfind('/') {
            Some(i) => (&path[..=i], &path[i + 1..]),
            None => (".", path),
        };
        let rdir = fs::canonicalize(dir).map_err(|e| os_error("lstat", dir, &e))?;
        let rdir = rdir.display().to_string();
        let resolved = if rdir == "/" {
            format!("/{base}")
        } else {
            format!("{rdir}/{base}")
        };
        let name = if path.ends_with('/') && go_base(path) != go_base(&resolved) {
            go_base(path).to_owned()
        } else {
            String::new()
        };
        (resolved, name)
    };
    let md = fs::symlink_metadata(&resolved).map_err(|e| os_error("lstat", &resolved, &e))?;
    Ok(CopyInfo {
        path: resolved,
        exists: true,
        is_dir: md.is_dir(),
        rebase_name,
    })
}

/// The local destination of a copy out of a container (docker's `CopyInfoDestinationPath`):
/// symlinks are followed, even the last element; a missing path needs its parent directory.
pub fn destination_info(path: &str) -> Result<CopyInfo> {
    let mut path = path.to_owned();
    let mut md = fs::symlink_metadata(&path);
    let mut hops = 0;
    while let Ok(m) = &md {
        if !m.file_type().is_symlink() {
            break;
        }
        hops += 1;
        if hops > 10 {
            bail!("too many symlinks in {path}");
        }
        let target = fs::read_link(&path).map_err(|e| os_error("readlink", &path, &e))?;
        let target = target.display().to_string();
        path = if target.starts_with('/') {
            target
        } else {
            clean(&format!("{}/{target}", split_path_dir_entry(&path).0))
        };
        md = fs::symlink_metadata(&path);
    }
    match md {
        Ok(m) => Ok(CopyInfo {
            path,
            exists: true,
            is_dir: m.is_dir(),
            rebase_name: String::new(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            let parent = split_path_dir_entry(&path).0;
            let pm = fs::metadata(&parent).map_err(|e| os_error("stat", &parent, &e))?;
            if !pm.is_dir() {
                bail!("not a directory");
            }
            Ok(CopyInfo {
                path,
                ..Default::default()
            })
        }
        Err(e) => Err(os_error("lstat", &path, &e)),
    }
}

/// docker's `ValidateOutputPath` for a local destination.
pub fn validate_output_path(path: &str) -> Result<()> {
    let dir = go_dir(&clean(path));
    if dir != "." && !Path::new(&dir).exists() {
        bail!("invalid output path: directory {dir:?} does not exist");
    }
    if let Ok(m) = fs::metadata(path) {
        if !m.is_dir() && !m.is_file() {
            bail!("invalid output path: {path:?}: not a directory or a regular file");
        }
    }
    Ok(())
}

/// Write the local `src` (not followed) as a tar whose top entry is `name` (`.`: only what
/// is inside the directory), with modes, owners and mtimes kept.
pub fn write_tar(src: &Path, name: &str, out: impl Write) -> io::Result<()> {
    let mut b = tar::Builder::new(out);
    b.follow_symlinks(false);
    let md = fs::symlink_metadata(src)?;
    if md.is_dir() && name == "." {
        let mut children: Vec<_> = fs::read_dir(src)?
            .map(|e| e.map(|e| e.file_name()))
            .collect::<io::Result<_>>()?;
        children.sort();
        for c in children {
            append(&mut b, &src.join(&c), Path::new(&c))?;
        }
    } else {
        append(&mut b, src, Path::new(name))?;
    }
    b.into_inner()?.flush()
}

fn append<W: Write>(b: &mut tar::Builder<W>, path: &Path, name: &Path) -> io::Result<()> {
    if fs::symlink_metadata(path)?.is_dir() {
        b.append_dir_all(name, path)
    } else {
        b.append_path_with_name(path, name)
    }
}

/// Extract `reader` into the local directory `dir`, renaming by `rebases` in order (docker's
/// `Untar` with `NoLchown` and `NoOverwriteDirNonDir`): no entry is written outside `dir`,
/// not through `..` and not through a symlink; files belong to whoever runs the copy.
/// Returns the bytes of file content written.
pub fn extract(reader: impl Read, dir: &Path, rebases: &[Rebase]) -> Result<u64> {
    let root =
        fs::canonicalize(dir).map_err(|e| os_error("stat", &dir.display().to_string(), &e))?;
    let mut a = tar::Archive::new(reader);
    a.set_preserve_permissions(true);
    a.set_preserve_mtime(true);
    a.set_overwrite(true);
    let mut dir_times: Vec<(PathBuf, u64)> = Vec::new();
    let mut copied = 0;
    for entry in a.entries().context("reading the archive")? {
        let mut entry = entry.context("reading the archive")?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = rebases.iter().fold(raw.clone(), |n, r| rebase(&n, r));
        let target = inside(&root, &name)?;
        if target == root {
            continue;
        }
        let kind = entry.header().entry_type();
        let parent = target.parent().unwrap_or(&root);
        ensure_dirs(&root, parent)?;
        if let Ok(md) = fs::symlink_metadata(&target) {
            let (p, d) = (target.display(), root.display());
            match (md.is_dir(), kind.is_dir()) {
                (true, false) => {
                    bail!("cannot overwrite directory \"{p}\" with non-directory \"{d}\"")
                }
                (false, true) => {
                    bail!("cannot overwrite non-directory \"{p}\" with directory \"{d}\"")
                }
                _ => {}
            }
        }
        if kind.is_hard_link() {
            let link = entry
                .link_name_bytes()
                .map(|l| String::from_utf8_lossy(&l).into_owned())
                .unwrap_or_default();
            let link = rebases.iter().fold(link, |n, r| rebase(&n, r));
            let src = inside(&root, &link)?;
            let _ = fs::remove_file(&target);
            fs::hard_link(&src, &target)
                .map_err(|e| os_error("link", &target.display().to_string(), &e))?;
            continue;
        }
        copied += entry.header().size().unwrap_or(0);
        entry
            .unpack(&target)
            .with_context(|| format!("extracting {}", target.display()))?;
        if kind.is_dir() {
            dir_times.push((target, entry.header().mtime().unwrap_or(0)));
        }
    }
    for (p, mtime) in dir_times.iter().rev() {
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(*mtime);
        if let Ok(f) = fs::File::open(p) {
            let _ = f.set_modified(t);
        }
    }
    Ok(copied)
}

/// `root` joined with the archive name `name`, which may not climb out with `..`.
fn inside(root: &Path, name: &str) -> Result<PathBuf> {
    let mut out = root.to_path_buf();
    for c in Path::new(name).components() {
        match c {
            Component::Normal(p) => out.push(p),
            Component::ParentDir => {
                bail!(
                    "invalid archive entry {name:?}: it leads out of {}",
                    root.display()
                )
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Create the directories from `root` down to `dir`; an existing symlink on the way may only
/// lead somewhere inside `root`.
fn ensure_dirs(root: &Path, dir: &Path) -> Result<()> {
    let rel = dir.strip_prefix(root).unwrap_or(Path::new(""));
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(m) if m.file_type().is_symlink() => {
                let real = fs::canonicalize(&cur)
                    .map_err(|e| os_error("stat", &cur.display().to_string(), &e))?;
                if !real.starts_with(root) || !real.is_dir() {
                    bail!(
                        "invalid archive entry under {}: the symlink leads out of {}",
                        cur.display(),
                        root.display()
                    );
                }
            }
            Ok(_) => bail!("{}: not a directory", cur.display()),
            Err(_) => {
                fs::create_dir(&cur)
                    .map_err(|e| os_error("mkdir", &cur.display().to_string(), &e))?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(path: &str, exists: bool, is_dir: bool) -> CopyInfo {
        CopyInfo {
            path: path.into(),
            exists,
            is_dir,
            rebase_name: String::new(),
        }
    }

    #[test]
    fn args_split_like_docker() {
        assert_eq!(split_cp_arg("c:/etc"), (Some("c"), "/etc"));
        assert_eq!(split_cp_arg("/tmp/a:b"), (None, "/tmp/a:b"));
        assert_eq!(split_cp_arg("./a:b"), (None, "./a:b"));
        assert_eq!(split_cp_arg("file"), (None, "file"));
        assert_eq!(split_cp_arg("-"), (None, "-"));
        assert_eq!(split_cp_arg("c:"), (Some("c"), ""));
    }

    #[test]
    fn paths_split_and_clean_like_go() {
        assert_eq!(clean("/a/../../b/./c/"), "/b/c");
        assert_eq!(clean("../a/.."), "..");
        assert_eq!(clean(""), ".");
        assert_eq!(split_path_dir_entry("/a/b"), ("/a".into(), "b".into()));
        assert_eq!(split_path_dir_entry("/a/b/"), ("/a".into(), "b".into()));
        assert_eq!(split_path_dir_entry("/a/b/."), ("/a/b".into(), ".".into()));
        assert_eq!(split_path_dir_entry("/a"), ("/".into(), "a".into()));
        assert_eq!(split_path_dir_entry("/"), ("/".into(), ".".into()));
        assert_eq!(preserve_trailing("/x/d", "d/."), "/x/d/.");
        assert_eq!(preserve_trailing("/x/d", "d/"), "/x/d/");
        assert_eq!(
            rebase_name("/a/link", "/a/target"),
            ("/a/target".into(), "link".into())
        );
        assert_eq!(rebase_name("/a/l/.", "/t"), ("/t/.".into(), String::new()));
    }

    #[test]
    fn archive_copy_decisions_are_dockers() {
        // a file into an existing directory: as it is
        let (dir, r) =
            prepare_archive_copy(&info("/src/f", true, false), &info("/dst", true, true)).unwrap();
        assert_eq!((dir.as_str(), r), ("/dst", None));
        // a file to a new name
        let (dir, r) =
            prepare_archive_copy(&info("/src/f", true, false), &info("/dst/g", false, false))
                .unwrap();
        assert_eq!(dir, "/dst");
        assert_eq!(r, Some(("f".into(), "g".into())));
        // a directory to a new name; its contents (`/.`) likewise
        let (_, r) =
            prepare_archive_copy(&info("/src/d/.", true, true), &info("/n", false, false)).unwrap();
        assert_eq!(r, Some((".".into(), "n".into())));
        // errors
        let e = prepare_archive_copy(&info("/d", true, true), &info("/f", true, false));
        assert_eq!(e.unwrap_err().to_string(), "cannot copy directory");
        let e = prepare_archive_copy(&info("/f", true, false), &info("/nope/", false, false));
        assert_eq!(e.unwrap_err().to_string(), "no such directory");
    }

    #[test]
    fn rebase_renames_only_the_top_entry() {
        let r = ("d".to_owned(), "n".to_owned());
        assert_eq!(rebase("d", &r), "n");
        assert_eq!(rebase("d/", &r), "n/");
        assert_eq!(rebase("d/x.txt", &r), "n/x.txt");
        assert_eq!(rebase("dd/x", &r), "dd/x");
        let dot = (".".to_owned(), "n".to_owned());
        assert_eq!(rebase("./", &dot), "n/");
        assert_eq!(rebase("./x.txt", &dot), "n/x.txt");
        assert_eq!(rebase("x.txt", &dot), "x.txt");
    }

    #[test]
    fn extraction_stays_inside_the_directory() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), tmp.path().join("link")).unwrap();
        let tar_with = |name: &str| {
            let mut b = tar::Builder::new(Vec::new());
            let mut h = tar::Header::new_gnu();
            h.set_size(2);
            h.set_mode(0o644);
            h.set_entry_type(tar::EntryType::Regular);
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
            h.set_cksum();
            b.append(&h, &b"hi"[..]).unwrap();
            b.into_inner().unwrap()
        };
        for bad in ["../escape", "link/escape"] {
            let err = extract(&tar_with(bad)[..], tmp.path(), &[]).unwrap_err();
            assert!(err.to_string().contains("leads out"), "{bad}: {err}");
        }
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
        // renamed on the way in
        let n = extract(
            &tar_with("f")[..],
            tmp.path(),
            &[("f".to_owned(), "g".to_owned())],
        )
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(fs::read(tmp.path().join("g")).unwrap(), b"hi");
    }

    #[test]
    fn written_tars_name_the_top_entry() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path().join("d");
        fs::create_dir_all(d.join("sub")).unwrap();
        fs::write(d.join("sub/x"), "x").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", d.join("l")).unwrap();
        let names = |name: &str| {
            let mut out = Vec::new();
            write_tar(&d, name, &mut out).unwrap();
            let mut a = tar::Archive::new(&out[..]);
            let mut v: Vec<String> = a
                .entries()
                .unwrap()
                .map(|e| {
                    let p = e.unwrap().path().unwrap().display().to_string();
                    p.trim_end_matches('/').to_owned()
                })
                .collect();
            v.sort();
            v
        };
        assert_eq!(names("new"), ["new", "new/l", "new/sub", "new/sub/x"]);
        assert_eq!(names("."), ["l", "sub", "sub/x"]);
    }
}
