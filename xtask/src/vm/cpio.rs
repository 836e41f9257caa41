//! A writer of cpio "newc" archives, the format the kernel unpacks as an initramfs. Written
//! here rather than run through cpio(1) so that device nodes (`/dev/console`) need no root and
//! paths in the archive need not mirror a directory on disk.

use std::fs::File;
use std::io::{self, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use anyhow::{Context, Result};

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

#[derive(Debug)]
pub struct Cpio<W: Write> {
    out: W,
    written: u64,
    ino: u32,
}

impl<W: Write> Cpio<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            written: 0,
            ino: 1,
        }
    }

    fn put(&mut self, b: &[u8]) -> io::Result<()> {
        self.out.write_all(b)?;
        self.written += b.len() as u64;
        Ok(())
    }

    fn pad(&mut self) -> io::Result<()> {
        let n = (4 - self.written % 4) % 4;
        self.put(&[0u8; 3][..n as usize])
    }

    fn header(&mut self, name: &str, mode: u32, size: u64, rdev: (u32, u32)) -> io::Result<()> {
        let name = name.trim_start_matches('/');
        let fields = [
            self.ino,
            mode,
            0, // uid
            0, // gid
            if mode & S_IFDIR != 0 { 2 } else { 1 },
            0, // mtime: archives of the same content are the same bytes
            u32::try_from(size).map_err(|_| io::Error::other(format!("{name}: too large")))?,
            0,
            0,
            rdev.0,
            rdev.1,
            u32::try_from(name.len() + 1).unwrap_or(u32::MAX),
            0,
        ];
        self.ino += 1;
        let mut h = String::from("070701");
        for f in fields {
            h.push_str(&format!("{f:08x}"));
        }
        self.put(h.as_bytes())?;
        self.put(name.as_bytes())?;
        self.put(&[0])?;
        self.pad()
    }

    pub fn dir(&mut self, name: &str) -> io::Result<()> {
        self.header(name, S_IFDIR | 0o755, 0, (0, 0))
    }

    pub fn file(&mut self, name: &str, mode: u32, data: &[u8]) -> io::Result<()> {
        self.header(name, S_IFREG | (mode & 0o7777), data.len() as u64, (0, 0))?;
        self.put(data)?;
        self.pad()
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> io::Result<()> {
        self.header(name, S_IFLNK | 0o777, target.len() as u64, (0, 0))?;
        self.put(target.as_bytes())?;
        self.pad()
    }

    pub fn char_device(&mut self, name: &str, mode: u32, major: u32, minor: u32) -> io::Result<()> {
        self.header(name, S_IFCHR | (mode & 0o7777), 0, (major, minor))
    }

    /// A file copied from disk, streamed.
    pub fn copy_file(&mut self, name: &str, src: &Path) -> Result<()> {
        let mut f = File::open(src).with_context(|| format!("opening {}", src.display()))?;
        let meta = f.metadata()?;
        self.header(
            name,
            S_IFREG | (meta.permissions().mode() & 0o7777),
            meta.len(),
            (0, 0),
        )?;
        let n = io::copy(&mut f, &mut self.out)?;
        anyhow::ensure!(n == meta.len(), "{} changed while archived", src.display());
        self.written += n;
        self.pad()?;
        Ok(())
    }

    /// Everything under `src` (directories, files, symlinks), as `prefix/...`.
    pub fn tree(&mut self, prefix: &str, src: &Path) -> Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(src)
            .with_context(|| format!("reading {}", src.display()))?
            .collect::<io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = format!("{prefix}/{}", e.file_name().to_string_lossy());
            let meta = std::fs::symlink_metadata(e.path())?;
            let ft = meta.file_type();
            if ft.is_symlink() {
                let target = std::fs::read_link(e.path())?;
                self.symlink(&name, &target.to_string_lossy())?;
            } else if ft.is_dir() {
                self.header(&name, S_IFDIR | (meta.mode() & 0o7777), 0, (0, 0))?;
                self.tree(&name, &e.path())?;
            } else if ft.is_file() {
                self.copy_file(&name, &e.path())?;
            }
        }
        Ok(())
    }

    /// The trailer; returns the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.header("TRAILER!!!", 0, 0, (0, 0))?;
        self.out.flush()?;
        Ok(self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_newc_and_aligned() {
        let mut c = Cpio::new(Vec::new());
        c.dir("bin").unwrap();
        c.file("bin/x", 0o755, b"hello").unwrap();
        c.symlink("bin/y", "x").unwrap();
        let out = c.finish().unwrap();
        assert!(out.starts_with(b"070701"));
        assert_eq!(out.len() % 4, 0);
        let text = String::from_utf8_lossy(&out);
        assert!(text.contains("bin/x\0") && text.contains("hello") && text.contains("TRAILER!!!"));
        // 110-byte header + "bin\0" = 114, padded: the next header starts at 116
        assert_eq!(&out[116..122], b"070701");
    }
}
