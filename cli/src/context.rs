//! The build context `berth build` sends: an uncompressed tar of a directory, made the way the
//! docker CLI makes it, so the engine sees what dockerd would.
//!
//! `.dockerignore` decides what is left out, but the Dockerfile and `.dockerignore` always go.
//! Names are relative (no `./`), entries are owned by 0:0 with no user or group names, modes
//! and mtimes are kept, symlinks stay symlinks, and directories are read in sorted order so
//! the same tree gives the same tar. A Dockerfile from outside the directory travels under a
//! random `.dockerfile.*` name that `.dockerignore` then lists, as docker does, so `COPY .`
//! does not pick it up. This module only reads the directory; it never interprets the
//! Dockerfile.

// `berth build` is the caller; until it lands only the tests use this module.
#![cfg_attr(not(test), allow(dead_code))]

use std::fs::{self, File, Metadata};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context};
use builder::ignore::{parse_ignore_file, Matcher};

const DOCKERIGNORE: &str = ".dockerignore";
const DEFAULT_DOCKERFILE: &str = "Dockerfile";

/// Writes the build context of `dir` to `out` as a tar and returns the Dockerfile's name in
/// it (the `dockerfile` parameter of the build API). `dockerfile` is the `-f` path, relative
/// to the current directory like docker's; `None` means `Dockerfile` (or `dockerfile`) in
/// `dir`.
pub fn context_tar(
    dir: &Path,
    dockerfile: Option<&Path>,
    out: impl Write,
) -> anyhow::Result<String> {
    let root = context_root(dir)?;
    let dockerfile = locate_dockerfile(&root, dockerfile)?;
    let ignore_file = match fs::read(root.join(DOCKERIGNORE)) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => {
            return Err(e).context("unable to prepare context: cannot read .dockerignore");
        }
    };
    let patterns = match &ignore_file {
        Some(bytes) => parse_ignore_file(&String::from_utf8_lossy(bytes))
            .context("unable to prepare context: bad .dockerignore")?,
        None => Vec::new(),
    };

    let mut keep = vec![DOCKERIGNORE.to_string()];
    let (name, extra) = match dockerfile {
        Dockerfile::Inside(rel) => {
            keep.push(rel.clone());
            (rel, None)
        }
        Dockerfile::Outside(content) => {
            let name = format!(".dockerfile.{}", random_hex(6)?);
            // docker appends the name to `.dockerignore` (starting one if there is none) so
            // that the daemon leaves the file out of `COPY .`.
            let mut ignore = ignore_file.unwrap_or_else(|| DOCKERIGNORE.as_bytes().to_vec());
            ignore.extend_from_slice(format!("\n{name}\n").as_bytes());
            (name, Some((content, ignore)))
        }
    };

    let mut walker = Walker {
        tar: tar::Builder::new(out),
        matcher: Matcher::new(patterns),
        keep,
        ignore_override: extra.as_ref().map(|(_, ignore)| ignore.as_slice()),
        ignore_written: false,
    };
    walker.walk(&root, Path::new(""), "")?;

    if let Some((content, ignore)) = &extra {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if !walker.ignore_written {
            append_generated(&mut walker.tar, DOCKERIGNORE, ignore, now)?;
        }
        append_generated(&mut walker.tar, &name, content, now)?;
    }
    walker
        .tar
        .into_inner()
        .and_then(|mut out| out.flush())
        .context("writing the build context")?;
    Ok(name)
}

fn context_root(dir: &Path) -> anyhow::Result<PathBuf> {
    let root = fs::canonicalize(dir).with_context(|| {
        format!(
            "unable to prepare context: path {:?} not found",
            dir.display().to_string()
        )
    })?;
    if !root.is_dir() {
        bail!(
            "unable to prepare context: context must be a directory: {}",
            dir.display()
        );
    }
    Ok(root)
}

enum Dockerfile {
    /// Its slash-separated path inside the context.
    Inside(String),
    /// Its content, read from outside the context.
    Outside(Vec<u8>),
}

/// Finds the Dockerfile as docker does: symlinks resolved, then either a path inside the
/// context or content to add to it.
fn locate_dockerfile(root: &Path, given: Option<&Path>) -> anyhow::Result<Dockerfile> {
    let path = match given {
        Some(path) => path.to_path_buf(),
        None => {
            let default = root.join(DEFAULT_DOCKERFILE);
            let lower = root.join(DEFAULT_DOCKERFILE.to_lowercase());
            if fs::symlink_metadata(&default).is_err() && fs::symlink_metadata(&lower).is_ok() {
                lower
            } else {
                default
            }
        }
    };
    let unreadable = || {
        format!(
            "unable to prepare context: cannot read Dockerfile {}",
            path.display()
        )
    };
    let resolved = fs::canonicalize(&path).with_context(unreadable)?;
    // Reading it now turns a missing or unreadable Dockerfile into an error before any of the
    // context is written.
    let content = fs::read(&resolved).with_context(unreadable)?;
    match resolved.strip_prefix(root) {
        Ok(rel) if !rel.as_os_str().is_empty() => match rel.to_str() {
            Some(rel) => Ok(Dockerfile::Inside(rel.to_string())),
            None => bail!(
                "unable to prepare context: Dockerfile path {} is not UTF-8",
                rel.display()
            ),
        },
        _ => Ok(Dockerfile::Outside(content)),
    }
}

struct Walker<'a, W: Write> {
    tar: tar::Builder<W>,
    matcher: Matcher,
    /// Paths sent even when `.dockerignore` excludes them.
    keep: Vec<String>,
    /// Content that replaces `.dockerignore`'s in the tar.
    ignore_override: Option<&'a [u8]>,
    ignore_written: bool,
}

impl<W: Write> Walker<'_, W> {
    /// Adds the entries below `abs` (which is `rel` in the tar, `rel_str` for matching),
    /// each directory before its contents.
    fn walk(&mut self, abs: &Path, rel: &Path, rel_str: &str) -> anyhow::Result<()> {
        let mut names = Vec::new();
        for entry in fs::read_dir(abs).with_context(|| cannot_read(abs))? {
            names.push(entry.with_context(|| cannot_read(abs))?.file_name());
        }
        names.sort();
        for name in names {
            let abs = abs.join(&name);
            let rel = rel.join(&name);
            let rel_str = match rel_str {
                "" => name.to_string_lossy().into_owned(),
                parent => format!("{parent}/{}", name.to_string_lossy()),
            };
            let meta = fs::symlink_metadata(&abs).with_context(|| cannot_read(&abs))?;
            if self.matcher.excludes(&rel_str) && !self.keep.contains(&rel_str) {
                // An excluded directory is entered only if something below it may still go.
                if meta.is_dir() && self.may_send_below(&rel_str) {
                    self.walk(&abs, &rel, &rel_str)?;
                }
                continue;
            }
            self.append(&abs, &rel, &rel_str, &meta)?;
            if meta.is_dir() {
                self.walk(&abs, &rel, &rel_str)?;
            }
        }
        Ok(())
    }

    fn may_send_below(&self, dir: &str) -> bool {
        let prefix = format!("{dir}/");
        self.matcher.may_reinclude_below(dir) || self.keep.iter().any(|k| k.starts_with(&prefix))
    }

    fn append(
        &mut self,
        abs: &Path,
        rel: &Path,
        rel_str: &str,
        meta: &Metadata,
    ) -> anyhow::Result<()> {
        let mut header = tar::Header::new_gnu();
        header.set_mode(meta.mode() & 0o7777);
        header.set_mtime(u64::try_from(meta.mtime()).unwrap_or(0));
        header.set_uid(0);
        header.set_gid(0);
        let file_type = meta.file_type();
        let written = if file_type.is_dir() {
            header.set_entry_type(tar::EntryType::Directory);
            header.set_size(0);
            // Directory names end in `/`, as in docker's tars.
            let mut name = rel.as_os_str().to_owned();
            name.push("/");
            self.tar
                .append_data(&mut header, Path::new(&name), io::empty())
        } else if file_type.is_symlink() {
            let target = fs::read_link(abs).with_context(|| cannot_read(abs))?;
            header.set_entry_type(tar::EntryType::Symlink);
            header.set_size(0);
            self.tar.append_link(&mut header, rel, target)
        } else if file_type.is_file() {
            header.set_entry_type(tar::EntryType::Regular);
            match self.ignore_override.filter(|_| rel_str == DOCKERIGNORE) {
                Some(content) => {
                    self.ignore_written = true;
                    header.set_size(content.len() as u64);
                    self.tar.append_data(&mut header, rel, content)
                }
                None => {
                    let file = File::open(abs).with_context(|| cannot_read(abs))?;
                    header.set_size(meta.len());
                    let data = ExactReader {
                        inner: file.take(meta.len()),
                        left: meta.len(),
                    };
                    self.tar.append_data(&mut header, rel, data)
                }
            }
        } else {
            // Sockets, fifos and device nodes have no place in an image build; docker sends
            // fifos and devices as bare headers, which no build step can use.
            return Ok(());
        };
        written.with_context(|| format!("adding {} to the build context", abs.display()))
    }
}

fn cannot_read(path: &Path) -> String {
    format!("unable to prepare context: cannot read {}", path.display())
}

/// A file entry docker generates: mode 0600, owned by 0:0, stamped now.
fn append_generated<W: Write>(
    tar: &mut tar::Builder<W>,
    name: &str,
    content: &[u8],
    mtime: u64,
) -> anyhow::Result<()> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_mode(0o600);
    header.set_mtime(mtime);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(content.len() as u64);
    tar.append_data(&mut header, name, content)
        .with_context(|| format!("adding {name} to the build context"))
}

/// Reads exactly `left` bytes: a file that shrinks while it is archived must fail the tar,
/// not leave an entry shorter than its header says.
struct ExactReader<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for ExactReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && self.left > 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shrank while it was being archived",
            ));
        }
        self.left -= n as u64;
        Ok(n)
    }
}

/// `2 * bytes` lowercase hex characters from the kernel's random source.
fn random_hex(bytes: usize) -> anyhow::Result<String> {
    let mut buf = vec![0u8; bytes];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("reading /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests;
