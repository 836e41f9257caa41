//! The store end to end, in process: import, tag, save, load, rmi, prune, check.

#![allow(clippy::unwrap_used)]

mod common;

use std::fs;

use common::{gzip, RawTar};
use image_store::{Reference, Removed, Store, StoreError};

fn rootfs() -> Vec<u8> {
    RawTar::new()
        .dir("bin")
        .file_mode("bin/sh", b"not really a shell", 0o755)
        .dir("etc")
        .file("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")
        .finish()
}

fn import(store: &Store, data: &[u8], name: &str) -> image_store::Digest {
    let opts = image_store::ImportOptions {
        refs: vec![Reference::parse(name).unwrap()],
        ..Default::default()
    };
    store.import(data, opts).unwrap().id.clone()
}

#[test]
fn import_tag_save_load_roundtrip() {
    let a = tempfile::tempdir().unwrap();
    let store = Store::open(a.path()).unwrap();
    let id = import(&store, &gzip(&rootfs()), "busybox");
    let rec = store.resolve("busybox").unwrap();
    assert_eq!(rec.id, id);
    assert_eq!(rec.repo_tags(), vec!["busybox:latest"]);
    assert_eq!(rec.size, 18 + 26);
    assert!(store.resolve("docker.io/library/busybox:latest").is_ok());
    assert!(store.resolve(&id.hex()[..6]).is_ok());
    assert!(store.resolve(id.as_str()).is_ok());
    store
        .tag("busybox", &Reference::parse("me/box:v1").unwrap())
        .unwrap();
    assert_eq!(
        store.resolve("busybox").unwrap().repo_tags(),
        vec!["busybox:latest", "me/box:v1"]
    );

    // The data root is an OCI layout naming both tags.
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(a.path().join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"].as_array().unwrap().len(), 2);
    assert!(a.path().join("oci-layout").is_file());

    let mut archive = Vec::new();
    store.save(&["me/box:v1".to_owned()], &mut archive).unwrap();

    // Reopen: state survives.
    drop(store);
    let store = Store::open(a.path()).unwrap();
    assert_eq!(store.list().len(), 1);

    let b = tempfile::tempdir().unwrap();
    let other = Store::open(b.path()).unwrap();
    let loaded = other.load(&archive[..]).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id, id, "image ID survives save/load");
    assert_eq!(
        other.resolve("me/box:v1").unwrap().repo_tags(),
        vec!["me/box:v1"]
    );
    assert!(other.resolve("busybox").is_err());
    let rep = other.check().unwrap();
    assert!(rep.problems.is_empty(), "{:?}", rep.problems);
    // Loading twice is a no-op that keeps one image.
    other.load(&archive[..]).unwrap();
    assert_eq!(other.list().len(), 1);
}

#[test]
fn rmi_untags_then_deletes_and_gc_frees_blobs() {
    let a = tempfile::tempdir().unwrap();
    let store = Store::open(a.path()).unwrap();
    let id = import(&store, &rootfs(), "one");
    store.tag("one", &Reference::parse("two").unwrap()).unwrap();
    let err = store.remove(id.as_str(), false, &|_| None).unwrap_err();
    assert!(matches!(err, StoreError::MultipleRefs { .. }), "{err}");
    assert_eq!(
        store.remove("one", false, &|_| None).unwrap(),
        vec![Removed::Untagged("one:latest".into())]
    );
    let err = store
        .remove("two", false, &|_| Some("container abc".into()))
        .unwrap_err();
    assert!(err.to_string().contains("container abc"), "{err}");
    let out = store.remove("two", false, &|_| None).unwrap();
    let layer = image_store::Digest::of_bytes(&rootfs());
    assert_eq!(
        out,
        vec![
            Removed::Untagged("two:latest".into()),
            Removed::Deleted(id),
            Removed::Deleted(layer)
        ]
    );
    assert_eq!(
        fs::read_dir(a.path().join("blobs/sha256")).unwrap().count(),
        0
    );
    assert_eq!(fs::read_dir(a.path().join("layers")).unwrap().count(), 0);
    assert!(matches!(
        store.remove("two", false, &|_| None),
        Err(StoreError::ImageNotFound(_))
    ));
}

#[test]
fn prune_removes_dangling_only() {
    let a = tempfile::tempdir().unwrap();
    let store = Store::open(a.path()).unwrap();
    import(&store, &rootfs(), "keep");
    let other = RawTar::new().file("x", b"other").finish();
    import(&store, &other, "gone");
    import(&store, &RawTar::new().file("y", b"y").finish(), "gone"); // "gone" moves: first becomes dangling
    assert_eq!(store.list().len(), 3);
    let (removed, reclaimed) = store.prune(false, &|_| false).unwrap();
    assert_eq!(removed.len(), 1, "{removed:?}");
    assert_eq!(reclaimed, 5);
    assert_eq!(store.list().len(), 2);
    let usage = store.usage(&|_| false).unwrap();
    assert_eq!(usage.images, 2);
    assert_eq!(usage.reclaimable, usage.size);
}

#[test]
fn bad_archives_leave_nothing_visible() {
    let a = tempfile::tempdir().unwrap();
    let store = Store::open(a.path()).unwrap();
    import(&store, &rootfs(), "src");
    let mut archive = Vec::new();
    store.save(&["src".into()], &mut archive).unwrap();
    store.remove("src", false, &|_| None).unwrap();

    // Flip a byte inside the layer data: the diff ID no longer matches the config.
    let pos = archive
        .windows(18)
        .position(|w| w == b"not really a shell")
        .unwrap();
    let mut corrupt = archive.clone();
    corrupt[pos] = b'N';
    let err = store.load(&corrupt[..]).unwrap_err();
    assert!(err.to_string().contains("digest mismatch"), "{err}");
    // Truncated in the middle.
    let err = store.load(&archive[..archive.len() / 2]).unwrap_err();
    assert!(!err.to_string().is_empty());
    // Not an archive at all.
    assert!(store.load(&b"hello"[..]).is_err());
    assert!(store.list().is_empty());
    let rep = store.check().unwrap();
    assert!(rep.problems.is_empty(), "{:?}", rep.problems);
    assert_eq!(rep.images, 0);
}

#[test]
fn check_finds_corruption() {
    let a = tempfile::tempdir().unwrap();
    let store = Store::open(a.path()).unwrap();
    let id = import(&store, &rootfs(), "x");
    assert!(store.check().unwrap().problems.is_empty());
    fs::write(a.path().join("blobs/sha256").join(id.hex()), b"{}").unwrap();
    let rep = store.check().unwrap();
    assert!(
        rep.problems
            .iter()
            .any(|p| p.contains("does not match its digest")),
        "{:?}",
        rep.problems
    );
}

/// Build a docker-archive in memory from layer tarballs (bottom-most first).
fn archive_of(layers: &[Vec<u8>], tag: &str) -> Vec<u8> {
    let mut diff_ids = Vec::new();
    let mut b = tar::Builder::new(Vec::new());
    let add = |b: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        b.append_data(&mut h, name, data).unwrap();
    };
    for l in layers {
        let d = image_store::Digest::of_bytes(l);
        add(&mut b, &format!("{}.tar", d.hex()), l);
        diff_ids.push(d.to_string());
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    }))
    .unwrap();
    let cfg = image_store::Digest::of_bytes(&config);
    add(&mut b, &format!("{}.json", cfg.hex()), &config);
    let layers: Vec<String> = diff_ids
        .iter()
        .map(|d| format!("{}.tar", &d[7..]))
        .collect();
    let manifest = serde_json::json!([{"Config": format!("{}.json", cfg.hex()), "RepoTags": [tag], "Layers": layers}]);
    add(
        &mut b,
        "manifest.json",
        &serde_json::to_vec(&manifest).unwrap(),
    );
    b.into_inner().unwrap()
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn overlay_mount_of_many_layers_with_whiteouts() {
    assert!(common::is_root(), "this test needs root");
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("root")).unwrap();
    // 70 layers: the plain lowerdir list is too long and the short links must be used.
    let mut layers = vec![RawTar::new()
        .file("gone", b"deleted by a whiteout")
        .dir("opaque")
        .file("opaque/old", b"hidden by the opaque dir")
        .finish()];
    for i in 1..69 {
        layers.push(
            RawTar::new()
                .file(&format!("f{i}"), format!("{i}").as_bytes())
                .finish(),
        );
    }
    layers.push(
        RawTar::new()
            .file(".wh.gone", b"")
            .dir("opaque")
            .file("opaque/.wh..wh..opq", b"")
            .file("opaque/new", b"n")
            .finish(),
    );
    let loaded = store.load(&archive_of(&layers, "many:1")[..]).unwrap();
    let cdir = dir.path().join("c1");
    let m = store.overlay(&loaded[0].id, &cdir).unwrap();
    assert!(
        m.chdir.is_some(),
        "70 layers should need short links: {} bytes",
        m.options().len()
    );
    let target = cdir.join("merged");
    std::fs::create_dir_all(&target).unwrap();
    // Mount in a throwaway mount namespace: nothing is left mounted on the host.
    let script = format!(
        "cd {} && mount -t overlay overlay -o {} {} && ls {t} && cat {t}/f1 {t}/f68 && echo && ls {t}/opaque",
        m.chdir.as_ref().unwrap().display(),
        m.options(),
        target.display(),
        t = target.display()
    );
    let out = std::process::Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = text.lines().collect();
    assert!(
        !names.contains(&"gone"),
        "the whiteout hides the lower file: {text}"
    );
    assert!(names.contains(&"f1") && names.contains(&"f68"));
    assert!(text.contains("168"), "{text}");
    assert_eq!(
        names.last(),
        Some(&"new"),
        "the opaque dir hides opaque/old: {text}"
    );
    assert!(!text.contains("old"));
}

#[test]
fn pax_xattrs_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = tar::Builder::new(Vec::new());
    b.append_pax_extensions([("SCHILY.xattr.user.berth", &b"yes"[..])])
        .unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_mode(0o644);
    h.set_size(1);
    b.append_data(&mut h, "x", &b"x"[..]).unwrap();
    let tar = b.into_inner().unwrap();
    let opts = image_store::unpack::UnpackOptions {
        whiteouts: image_store::unpack::WhiteoutStyle::Keep,
        allow_devices: false,
        preserve_owner: false,
    };
    image_store::unpack::unpack(&tar[..], dir.path(), opts).unwrap();
    let mut buf = [0u8; 8];
    let n = rustix::fs::getxattr(dir.path().join("x"), "user.berth", &mut buf).unwrap();
    assert_eq!(&buf[..n], b"yes");
}
