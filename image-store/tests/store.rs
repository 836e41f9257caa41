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
    assert_eq!(
        out,
        vec![Removed::Untagged("two:latest".into()), Removed::Deleted(id)]
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
