//! Interoperability with skopeo: what we push, skopeo copies out byte for byte; what skopeo
//! pushes from an OCI layout (including a multi-arch index with `--all`), we pull.

use std::path::Path;

use bytes::Bytes;
use image_store::Digest;
use registry_client::{BlobRef, Client, NoProgress, Platform, Repository};
use serde_json::json;

use crate::harness::{image, require, run, Auth, Registry, TestImage, OCI_INDEX, OCI_MANIFEST};
use crate::{config, push_image};

fn skopeo(args: &[&str]) {
    require("skopeo");
    let mut all = vec![
        "--insecure-policy",
        "copy",
        "--src-tls-verify=false",
        "--dest-tls-verify=false",
    ];
    all.extend(args);
    run("skopeo", &all);
}

fn read_blob(layout: &Path, d: &Digest) -> Vec<u8> {
    std::fs::read(layout.join("blobs/sha256").join(d.hex())).unwrap()
}

/// Write an OCI layout holding `blobs` and one tagged top manifest.
fn write_layout(dir: &Path, blobs: &[(Digest, Bytes)], top: &Bytes, top_type: &str, tag: &str) {
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    for (d, b) in blobs {
        std::fs::write(dir.join("blobs/sha256").join(d.hex()), b).unwrap();
    }
    let top_digest = Digest::of_bytes(top);
    std::fs::write(dir.join("blobs/sha256").join(top_digest.hex()), top).unwrap();
    let index = json!({
        "schemaVersion": 2,
        "manifests": [{"mediaType": top_type, "digest": top_digest.to_string(), "size": top.len(),
                       "annotations": {"org.opencontainers.image.ref.name": tag}}],
    });
    std::fs::write(dir.join("index.json"), serde_json::to_vec(&index).unwrap()).unwrap();
}

fn all_blobs(img: &TestImage) -> Vec<(Digest, Bytes)> {
    let mut v = img.blobs();
    v.push((img.manifest_digest.clone(), img.manifest.clone()));
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_copies_what_we_push() {
    let reg = Registry::start(Auth::None);
    let client = Client::new(config());
    let repo = Repository::new(&reg.host, "interop/ours");
    let img = image("amd64", b"pushed by berth");
    push_image(&client, &repo, "v1", &img).await;

    let out = tempfile::tempdir().unwrap();
    let layout = out.path().join("layout");
    let src = format!("docker://{}/interop/ours:v1", reg.host);
    let dst = format!("oci:{}:v1", layout.display());
    tokio::task::spawn_blocking(move || skopeo(&[&src, &dst]))
        .await
        .unwrap();

    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["digest"],
        img.manifest_digest.to_string()
    );
    for (d, b) in all_blobs(&img) {
        assert_eq!(read_blob(&layout, &d), b.to_vec(), "{d}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn we_pull_what_skopeo_pushes_including_a_multi_arch_index() {
    let reg = Registry::start(Auth::None);
    let client = Client::new(config());
    let amd = image("amd64", b"skopeo amd64");
    let arm = image("arm64", b"skopeo arm64");
    let entry = |img: &TestImage, arch: &str| {
        json!({"mediaType": OCI_MANIFEST, "digest": img.manifest_digest.to_string(), "size": img.manifest.len(),
               "platform": {"os": "linux", "architecture": arch}})
    };
    let index = Bytes::from(
        serde_json::to_vec(&json!({"schemaVersion": 2, "mediaType": OCI_INDEX,
            "manifests": [entry(&arm, "arm64"), entry(&amd, "amd64")]}))
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let layout = dir.path().join("layout");
    let mut blobs = all_blobs(&amd);
    blobs.extend(all_blobs(&arm));
    write_layout(&layout, &blobs, &index, OCI_INDEX, "multi");
    let single = dir.path().join("single");
    write_layout(&single, &amd.blobs(), &amd.manifest, OCI_MANIFEST, "one");

    let host = reg.host.clone();
    let (l, s) = (layout.clone(), single.clone());
    tokio::task::spawn_blocking(move || {
        skopeo(&[
            "--all",
            &format!("oci:{}:multi", l.display()),
            &format!("docker://{host}/interop/multi:latest"),
        ]);
        skopeo(&[
            &format!("oci:{}:one", s.display()),
            &format!("docker://{host}/interop/single:v1"),
        ]);
    })
    .await
    .unwrap();

    let single_repo = Repository::new(&reg.host, "interop/single");
    let got = client
        .resolve_image(&single_repo, "v1", &Platform::host())
        .await
        .unwrap();
    assert_eq!(got.manifest.digest, amd.manifest_digest);
    for (d, b) in amd.blobs() {
        let blob = BlobRef {
            digest: d,
            size: Some(b.len() as u64),
        };
        let pulled = client
            .pull_blob(&single_repo, &blob, Vec::new(), &NoProgress)
            .await
            .unwrap();
        assert_eq!(pulled, b.to_vec());
    }

    let multi = Repository::new(&reg.host, "interop/multi");
    let arm_pick = client
        .resolve_image(
            &multi,
            "latest",
            &Platform::parse("linux/arm64/v8").unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(
        arm_pick.index.as_ref().unwrap().digest,
        Digest::of_bytes(&index)
    );
    assert_eq!(arm_pick.manifest.digest, arm.manifest_digest);
    let amd_pick = client
        .resolve_image(&multi, "latest", &Platform::parse("linux/amd64").unwrap())
        .await
        .unwrap();
    assert_eq!(amd_pick.manifest.digest, amd.manifest_digest);
    assert_eq!(
        amd_pick.image.config().digest().to_string(),
        amd.config_digest.to_string()
    );
}
