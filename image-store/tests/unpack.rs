//! Hostile and ordinary layer tarballs against the applier. Each escape attempt points at a
//! canary in a scratch directory beside the target, never at real host files.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use common::{gzip, is_root, zstd, RawTar};
use image_store::unpack::{
    decompressed, unpack, UnpackError, UnpackOptions, UnpackStats, WhiteoutStyle,
};

fn opts() -> UnpackOptions {
    UnpackOptions {
        whiteouts: WhiteoutStyle::Keep,
        allow_devices: false,
        preserve_owner: false,
    }
}

struct Scratch {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    outside: std::path::PathBuf,
}

fn scratch() -> Scratch {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let outside = dir.path().join("outside");
    fs::create_dir(&root).unwrap();
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("canary"), b"original").unwrap();
    Scratch {
        _dir: dir,
        root,
        outside,
    }
}

fn apply(s: &Scratch, tar: Vec<u8>) -> Result<UnpackStats, UnpackError> {
    unpack(&tar[..], &s.root, opts())
}

fn assert_outside_untouched(s: &Scratch) {
    assert_eq!(fs::read(s.outside.join("canary")).unwrap(), b"original");
    let names: Vec<_> = fs::read_dir(&s.outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        names,
        vec![std::ffi::OsString::from("canary")],
        "something was written outside the target"
    );
}

#[test]
fn ordinary_layer() {
    let s = scratch();
    let tar = RawTar::new()
        .dir("bin")
        .file_mode("bin/tool", b"#!/bin/sh\n", 0o755)
        .symlink("bin/alias", "tool")
        .hardlink("bin/hard", "bin/tool")
        .dir_mode("ro", 0o555)
        .file("ro/inside", b"x")
        .fifo("pipe")
        .chardev("dev-null-copy")
        .finish();
    let stats = apply(&s, tar).unwrap();
    assert_eq!(stats.skipped_devices, 1);
    assert_eq!(stats.bytes, 11);
    let r = &s.root;
    assert_eq!(fs::read(r.join("bin/tool")).unwrap(), b"#!/bin/sh\n");
    assert_eq!(
        fs::metadata(r.join("bin/tool"))
            .unwrap()
            .permissions()
            .mode()
            & 0o7777,
        0o755
    );
    assert_eq!(
        fs::read_link(r.join("bin/alias")).unwrap(),
        Path::new("tool")
    );
    assert_eq!(
        fs::metadata(r.join("bin/hard")).unwrap().ino(),
        fs::metadata(r.join("bin/tool")).unwrap().ino()
    );
    assert_eq!(
        fs::metadata(r.join("ro")).unwrap().permissions().mode() & 0o7777,
        0o555
    );
    assert_eq!(fs::read(r.join("ro/inside")).unwrap(), b"x");
    assert_eq!(
        fs::metadata(r.join("bin/tool")).unwrap().mtime(),
        1_600_000_000
    );
    assert!(fs::symlink_metadata(r.join("pipe"))
        .unwrap()
        .file_type()
        .is_fifo());
    assert!(
        !r.join("dev-null-copy").exists(),
        "devices are skipped unless allowed"
    );
}

#[test]
fn compressed_layers_are_detected_by_content() {
    let tar = RawTar::new().file("a", b"hello").finish();
    for data in [tar.clone(), gzip(&tar), zstd(&tar)] {
        let s = scratch();
        let (_, r) = decompressed(&data[..]).unwrap();
        unpack(r, &s.root, opts()).unwrap();
        assert_eq!(fs::read(s.root.join("a")).unwrap(), b"hello");
    }
    let err = decompressed(&b"BZh91AY&SY"[..]).err().unwrap();
    assert!(err.to_string().contains("bzip2"), "{err}");
}

#[test]
fn dotdot_and_absolute_names_stay_inside() {
    let s = scratch();
    let tar = RawTar::new()
        .file("../outside/canary", b"pwned")
        .file("../../../../../../outside/new", b"pwned")
        .file("/abs/file", b"abs")
        .file("a/../../b", b"b")
        .finish();
    apply(&s, tar).unwrap();
    assert_outside_untouched(&s);
    assert_eq!(fs::read(s.root.join("outside/canary")).unwrap(), b"pwned");
    assert_eq!(fs::read(s.root.join("abs/file")).unwrap(), b"abs");
    assert_eq!(fs::read(s.root.join("b")).unwrap(), b"b");
}

#[test]
fn symlink_then_write_through_stays_inside() {
    let s = scratch();
    let abs_outside = s.outside.to_str().unwrap().to_owned();
    // A dangling link: the write fails, nothing leaks.
    let err = apply(
        &s,
        RawTar::new()
            .symlink("dangling", &abs_outside)
            .file("dangling/canary", b"pwned")
            .finish(),
    )
    .unwrap_err();
    assert!(err.to_string().contains("dangling"), "{err}");
    assert_outside_untouched(&s);
    let s = scratch();
    let tar = RawTar::new()
        .dir(&format!(".{abs_outside}"))
        .symlink("evil", &abs_outside)
        .file("evil/canary", b"pwned")
        .symlink("rel", "../../../../../../../../..")
        .file(&format!("rel{abs_outside}/new"), b"pwned")
        .symlink("to-canary", &format!("{abs_outside}/canary"))
        .file("to-canary", b"replaced the link, not the target")
        .finish();
    apply(&s, tar).unwrap();
    assert_outside_untouched(&s);
    // the writes landed inside, under the link targets resolved against the layer root
    assert_eq!(
        fs::read(s.root.join(format!(".{abs_outside}/canary"))).unwrap(),
        b"pwned"
    );
    assert!(fs::symlink_metadata(s.root.join("to-canary"))
        .unwrap()
        .is_file());
}

#[test]
fn hardlinks_cannot_reach_outside() {
    let s = scratch();
    let canary = s.outside.join("canary");
    let before = fs::metadata(&canary).unwrap().nlink();
    let abs = canary.to_str().unwrap().to_owned();
    for tar in [
        RawTar::new().hardlink("h", &abs).finish(),
        RawTar::new().hardlink("h", "../outside/canary").finish(),
        RawTar::new()
            .symlink("s", s.outside.to_str().unwrap())
            .hardlink("h", "s/canary")
            .finish(),
    ] {
        let s2 = Scratch {
            _dir: tempfile::tempdir().unwrap(),
            root: s.root.clone(),
            outside: s.outside.clone(),
        };
        let err = apply(&s2, tar).unwrap_err();
        assert!(
            matches!(
                err,
                UnpackError::LinkOutside { .. } | UnpackError::Fs { op: "link", .. }
            ),
            "{err}"
        );
    }
    assert_eq!(fs::metadata(&canary).unwrap().nlink(), before);
    assert_outside_untouched(&s);
}

#[test]
fn symlink_loops_fail_clearly() {
    let s = scratch();
    let tar = RawTar::new()
        .symlink("a", "b")
        .symlink("b", "a")
        .file("a/x", b"x")
        .finish();
    let err = apply(&s, tar).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("\"a\"") && (msg.contains("symbolic links") || msg.contains("os error 40")),
        "{msg}"
    );
}

#[test]
fn long_names() {
    let s = scratch();
    let deep = format!("{}/{}", "d".repeat(120), "f".repeat(150));
    apply(&s, RawTar::new().file(&deep, b"deep").finish()).unwrap();
    assert_eq!(fs::read(s.root.join(&deep)).unwrap(), b"deep");
    let too_long = "x".repeat(300);
    let err = apply(&s, RawTar::new().file(&too_long, b"x").finish()).unwrap_err();
    assert!(
        err.to_string().contains("name too long") || err.to_string().contains("os error 36"),
        "{err}"
    );
}

#[test]
fn root_replacement_is_refused() {
    let s = scratch();
    let err = apply(&s, RawTar::new().symlink(".", "/").finish()).unwrap_err();
    assert!(matches!(err, UnpackError::ReplacesRoot(_)), "{err}");
    let err = apply(
        &s,
        RawTar::new()
            .symlink("/", s.outside.to_str().unwrap())
            .finish(),
    )
    .unwrap_err();
    assert!(matches!(err, UnpackError::ReplacesRoot(_)), "{err}");
    assert_outside_untouched(&s);
}

#[test]
fn truncated_and_corrupt_archives_fail() {
    let s = scratch();
    let tar = RawTar::new().file("big", &vec![7u8; 100_000]).finish();
    let err = apply(&s, tar[..50_000].to_vec()).unwrap_err();
    assert!(
        matches!(
            err,
            UnpackError::Truncated { .. } | UnpackError::Read(_) | UnpackError::Fs { .. }
        ),
        "{err}"
    );
    let mut gz = gzip(&tar);
    let mid = gz.len() / 2;
    gz[mid] ^= 0xff;
    gz.truncate(gz.len() - 4);
    let s = scratch();
    let (_, r) = decompressed(&gz[..]).unwrap();
    assert!(unpack(r, &s.root, opts()).is_err());
}

#[test]
fn whiteouts_kept_as_files_in_keep_mode() {
    let s = scratch();
    apply(
        &s,
        RawTar::new()
            .file("etc/.wh.passwd", b"")
            .file("var/.wh..wh..opq", b"")
            .finish(),
    )
    .unwrap();
    assert!(s.root.join("etc/.wh.passwd").is_file());
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn overlay_whiteouts_owners_and_devices_as_root() {
    assert!(is_root(), "this test needs root");
    let s = scratch();
    let mut t = RawTar::new()
        .file("etc/.wh.passwd", b"")
        .dir("var")
        .file("var/.wh..wh..opq", b"")
        .file("bad/.wh..wh.plnk", b"");
    t = t.file_mode("suid", b"x", 0o4755);
    let mut tar = t.chardev("null").finish();
    // give "suid" owner 1234:5678 by patching its header (third-to-last entry is fine to rebuild instead)
    let owned = RawTar::new().file_mode("owned", b"o", 0o640).finish();
    let mut hdr = tar::Header::from_byte_slice(&owned[..512]).clone();
    hdr.set_uid(1234);
    hdr.set_gid(5678);
    hdr.set_cksum();
    let mut prefix = hdr.as_bytes().to_vec();
    prefix.extend_from_slice(&owned[512..1024]);
    prefix.extend_from_slice(&tar);
    tar = prefix;
    let o = UnpackOptions {
        whiteouts: WhiteoutStyle::Overlay,
        allow_devices: true,
        preserve_owner: true,
    };
    unpack(&tar[..], &s.root, o).unwrap();
    let wh = fs::symlink_metadata(s.root.join("etc/passwd")).unwrap();
    assert!(wh.file_type().is_char_device());
    assert_eq!(wh.rdev(), 0);
    let opq = xattr_get(&s.root.join("var"), "trusted.overlay.opaque");
    assert_eq!(opq.as_deref(), Some(&b"y"[..]));
    assert!(!s.root.join("bad/.wh..wh.plnk").exists());
    assert_eq!(
        fs::metadata(s.root.join("suid")).unwrap().mode() & 0o7777,
        0o4755
    );
    let m = fs::metadata(s.root.join("owned")).unwrap();
    assert_eq!((m.uid(), m.gid()), (1234, 5678));
    assert!(fs::symlink_metadata(s.root.join("null"))
        .unwrap()
        .file_type()
        .is_char_device());
}

fn xattr_get(p: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 64];
    let n = rustix::fs::getxattr(p, name, &mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}
