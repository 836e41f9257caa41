//! Building tarballs for tests, including ones no well-behaved tool would write.
#![allow(dead_code, clippy::unwrap_used)]

use tar::{EntryType, Header};

/// A tar builder that writes names and link targets verbatim (`..`, absolute paths).
pub struct RawTar {
    pub buf: Vec<u8>,
}

impl RawTar {
    pub fn new() -> Self {
        Self { buf: Vec::new() }
    }

    fn push(&mut self, name: &str, kind: EntryType, data: &[u8], link: &str, mode: u32) {
        let mut h = Header::new_gnu();
        if name.len() > 99 {
            // GNU long name entry
            let mut l = Header::new_gnu();
            l.as_gnu_mut().unwrap().name[..13].copy_from_slice(b"././@LongLink");
            l.set_entry_type(EntryType::GNULongName);
            let mut n = name.as_bytes().to_vec();
            n.push(0);
            l.set_size(n.len() as u64);
            l.set_cksum();
            self.buf.extend_from_slice(l.as_bytes());
            self.buf.extend_from_slice(&n);
            pad(&mut self.buf);
        } else {
            h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        }
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        h.set_entry_type(kind);
        let (maj, min) = if kind == EntryType::Char {
            (1, 3)
        } else {
            (0, 0)
        };
        h.set_device_major(maj).unwrap();
        h.set_device_minor(min).unwrap();
        h.set_size(data.len() as u64);
        h.set_mode(mode);
        h.set_mtime(1_600_000_000);
        h.set_uid(0);
        h.set_gid(0);
        h.set_cksum();
        self.buf.extend_from_slice(h.as_bytes());
        self.buf.extend_from_slice(data);
        pad(&mut self.buf);
    }

    pub fn file(mut self, name: &str, data: &[u8]) -> Self {
        self.push(name, EntryType::Regular, data, "", 0o644);
        self
    }
    pub fn file_mode(mut self, name: &str, data: &[u8], mode: u32) -> Self {
        self.push(name, EntryType::Regular, data, "", mode);
        self
    }
    pub fn dir(mut self, name: &str) -> Self {
        self.push(name, EntryType::Directory, b"", "", 0o755);
        self
    }
    pub fn dir_mode(mut self, name: &str, mode: u32) -> Self {
        self.push(name, EntryType::Directory, b"", "", mode);
        self
    }
    pub fn symlink(mut self, name: &str, target: &str) -> Self {
        self.push(name, EntryType::Symlink, b"", target, 0o777);
        self
    }
    pub fn hardlink(mut self, name: &str, target: &str) -> Self {
        self.push(name, EntryType::Link, b"", target, 0o644);
        self
    }
    pub fn chardev(mut self, name: &str) -> Self {
        self.push(name, EntryType::Char, b"", "", 0o666);
        self
    }
    pub fn fifo(mut self, name: &str) -> Self {
        self.push(name, EntryType::Fifo, b"", "", 0o644);
        self
    }
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&[0u8; 1024]);
        self.buf
    }
}

fn pad(buf: &mut Vec<u8>) {
    let rem = buf.len() % 512;
    if rem != 0 {
        buf.extend(std::iter::repeat_n(0u8, 512 - rem));
    }
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::encode_all(data, 1).unwrap()
}

pub fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
