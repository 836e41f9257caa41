//! Plain HTTP registry: round trips, HEAD, chunked uploads, mounts, listing, platforms.

use std::sync::Mutex;

use bytes::Bytes;
use image_store::Digest;
use registry_client::{
    BlobRef, BlobSource, Client, ManifestKind, NoProgress, Platform, ProgressEvent, PushedBlob,
    RegistryError, Repository, Status,
};
use serde_json::json;

use crate::harness::{self, image, noise, Auth, Registry};
use crate::{config, push_image};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_then_pull_gives_identical_digests() {
    let reg = Registry::start(Auth::None);
    let client = Client::new(config());
    let repo = Repository::new(&reg.host, "berth/hello");
    let img = image("amd64", b"hello from berth\n");
    push_image(&client, &repo, "v1", &img).await;

    let resolved = client
        .resolve_image(&repo, "v1", &Platform::host())
        .await
        .unwrap();
    assert!(resolved.index.is_none());
    assert_eq!(resolved.manifest.kind, ManifestKind::OciManifest);
    assert_eq!(resolved.manifest.digest, img.manifest_digest);
    assert_eq!(resolved.manifest.bytes, img.manifest);
    assert_eq!(resolved.image.layers().len(), 1);

    // the plan for a caller that already has the config: only the layer is missing
    let plan = client
        .plan_pull(&repo, "v1", &Platform::host(), |d| d == &img.config_digest)
        .await
        .unwrap();
    assert_eq!(plan.present.len(), 1);
    assert_eq!(plan.present[0].digest, img.config_digest);
    assert_eq!(plan.missing.len(), 1);
    assert_eq!(plan.missing[0].digest, img.layers[0].0);
    assert_eq!(plan.missing[0].size, Some(img.layers[0].1.len() as u64));

    let head = client.head_manifest(&repo, "v1").await.unwrap().unwrap();
    assert_eq!(head.digest.as_ref(), Some(&img.manifest_digest));
    assert_eq!(head.media_type.as_deref(), Some(harness::OCI_MANIFEST));
    assert!(client.head_manifest(&repo, "nope").await.unwrap().is_none());

    // by digest, and every blob back byte for byte, in parallel, with progress
    let by_digest = client
        .get_manifest(&repo, img.manifest_digest.as_str())
        .await
        .unwrap();
    assert_eq!(by_digest.digest, img.manifest_digest);
    let events = Mutex::new(Vec::<ProgressEvent>::new());
    let progress = |e: &ProgressEvent| events.lock().unwrap().push(e.clone());
    let wanted: Vec<(BlobRef, Vec<u8>)> = img
        .blobs()
        .iter()
        .map(|(d, b)| {
            (
                BlobRef {
                    digest: d.clone(),
                    size: Some(b.len() as u64),
                },
                Vec::new(),
            )
        })
        .collect();
    let got = client
        .pull_blobs(&repo, wanted, 3, &progress)
        .await
        .unwrap();
    for ((d, b), g) in img.blobs().iter().zip(&got) {
        assert_eq!(&Digest::of_bytes(g), d);
        assert_eq!(g.as_slice(), b.as_ref());
    }
    let events = events.into_inner().unwrap();
    let layer_id = img.layers[0].0.short().to_owned();
    assert!(events
        .iter()
        .any(|e| e.id == layer_id && e.status == Status::DownloadComplete));

    // a second push finds everything in place
    let again = client
        .push_blob(
            &repo,
            &img.layers[0].0,
            &BlobSource::Bytes(img.layers[0].1.clone()),
            None,
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(again, PushedBlob::Exists);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_found_errors_name_what_is_missing() {
    let reg = Registry::start(Auth::None);
    let client = Client::new(config());
    let repo = Repository::new(&reg.host, "berth/none");
    let err = client.get_manifest(&repo, "latest").await.unwrap_err();
    assert!(
        matches!(
            err,
            RegistryError::ManifestUnknown { .. } | RegistryError::NameUnknown { .. }
        ),
        "{err:?}"
    );
    let d = Digest::of_bytes(b"missing");
    let err = client
        .pull_blob(
            &repo,
            &BlobRef {
                digest: d.clone(),
                size: None,
            },
            Vec::new(),
            &NoProgress,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::BlobUnknown { .. }), "{err:?}");
    assert!(err.to_string().contains(d.as_str()), "{err}");
    assert!(client.blob_exists(&repo, &d).await.unwrap().is_none());
    // a manifest that names a blob the registry lacks
    let img = image("amd64", b"x");
    let err = client
        .push_manifest(&repo, "v1", harness::OCI_MANIFEST, img.manifest.clone())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("MANIFEST_BLOB_UNKNOWN"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_upload_from_a_file_and_cross_repo_mount() {
    let reg = Registry::start(Auth::None);
    let client = Client::new(registry_client::ClientConfig {
        chunk_threshold: 256 << 10,
        chunk_size: 100 << 10,
        ..config()
    });
    let data = noise((1 << 20) + 12345, 7);
    let digest = Digest::of_bytes(&data);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("blob");
    std::fs::write(&file, &data).unwrap();

    let a = Repository::new(&reg.host, "team/a");
    let events = Mutex::new(0usize);
    let progress = |e: &ProgressEvent| {
        if e.status == Status::Pushing {
            *events.lock().unwrap() += 1;
        }
    };
    let out = client
        .push_blob(
            &a,
            &digest,
            &BlobSource::File(file.clone()),
            None,
            &progress,
        )
        .await
        .unwrap();
    assert_eq!(out, PushedBlob::Uploaded);
    // 11 chunks of 100 KiB: one Pushing event at the start and one per chunk
    assert_eq!(*events.lock().unwrap(), 12);
    assert_eq!(
        client.blob_exists(&a, &digest).await.unwrap(),
        Some(data.len() as u64)
    );
    let back = client
        .pull_blob(
            &a,
            &BlobRef {
                digest: digest.clone(),
                size: Some(data.len() as u64),
            },
            Vec::new(),
            &NoProgress,
        )
        .await
        .unwrap();
    assert!(back == data, "chunked upload changed the content");

    // mount into b: 201, no bytes sent
    let b = Repository::new(&reg.host, "team/b");
    let out = client
        .push_blob(
            &b,
            &digest,
            &BlobSource::File(file.clone()),
            Some("team/a"),
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(out, PushedBlob::Mounted);
    assert!(client.blob_exists(&b, &digest).await.unwrap().is_some());
    // mount from a repository without the blob: 202, the client uploads instead
    let small = Bytes::from_static(b"small blob");
    let small_digest = Digest::of_bytes(&small);
    let out = client
        .push_blob(
            &b,
            &small_digest,
            &BlobSource::Bytes(small),
            Some("team/none"),
            &NoProgress,
        )
        .await
        .unwrap();
    assert_eq!(out, PushedBlob::Uploaded);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tags_and_catalog_follow_links_and_search_matches_names() {
    let reg = Registry::start(Auth::None);
    let client = Client::new(config());
    let img = image("amd64", b"tags");
    for name in ["lib/alpha", "lib/beta", "other/gamma"] {
        let repo = Repository::new(&reg.host, name);
        push_image(&client, &repo, "v1", &img).await;
        if name == "lib/alpha" {
            push_image(&client, &repo, "v2", &img).await;
        }
    }
    let mut tags = client
        .tags(&Repository::new(&reg.host, "lib/alpha"))
        .await
        .unwrap();
    tags.sort();
    assert_eq!(tags, ["v1", "v2"]);
    let err = client
        .tags(&Repository::new(&reg.host, "lib/none"))
        .await
        .unwrap_err();
    assert!(matches!(err, RegistryError::NameUnknown { .. }), "{err:?}");

    // page size 1: three pages through Link headers
    let all = client.catalog(&reg.host, 1).await.unwrap();
    assert_eq!(all, ["lib/alpha", "lib/beta", "other/gamma"]);
    let hits = client.search(&reg.host, "lib/", 10).await.unwrap();
    let names: Vec<_> = hits.iter().map(|h| h.name.clone()).collect();
    assert_eq!(
        names,
        [
            format!("{}/lib/alpha", reg.host),
            format!("{}/lib/beta", reg.host)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_arch_index_resolves_to_the_wanted_platform() {
    let reg = Registry::start(Auth::None);
    let client = Client::new(config());
    let repo = Repository::new(&reg.host, "multi/arch");
    let amd = image("amd64", b"amd64 content");
    let arm = image("arm64", b"arm64 content");
    push_image(&client, &repo, amd.manifest_digest.as_str(), &amd).await;
    push_image(&client, &repo, arm.manifest_digest.as_str(), &arm).await;
    // An attestation-like entry first: unknown/unknown must be skipped, not chosen.
    let entry = |img: &harness::TestImage, os: &str, arch: &str, variant: Option<&str>| {
        let mut p = json!({"os": os, "architecture": arch});
        if let Some(v) = variant {
            p["variant"] = json!(v);
        }
        json!({"mediaType": harness::OCI_MANIFEST, "digest": img.manifest_digest.to_string(), "size": img.manifest.len(), "platform": p})
    };
    let index = Bytes::from(
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": harness::OCI_INDEX,
            "manifests": [entry(&arm, "unknown", "unknown", None), entry(&arm, "linux", "arm64", Some("v8")), entry(&amd, "linux", "amd64", None)],
        }))
        .unwrap(),
    );
    client
        .push_manifest(&repo, "latest", harness::OCI_INDEX, index.clone())
        .await
        .unwrap();

    let amd_pick = client
        .resolve_image(&repo, "latest", &Platform::parse("linux/amd64").unwrap())
        .await
        .unwrap();
    assert_eq!(amd_pick.manifest.digest, amd.manifest_digest);
    assert_eq!(
        amd_pick.index.as_ref().unwrap().kind,
        ManifestKind::OciIndex
    );
    assert_eq!(amd_pick.index.as_ref().unwrap().bytes, index);
    let arm_pick = client
        .resolve_image(&repo, "latest", &Platform::parse("linux/arm64").unwrap())
        .await
        .unwrap();
    assert_eq!(arm_pick.manifest.digest, arm.manifest_digest);
    if cfg!(target_arch = "x86_64") {
        let host = client
            .resolve_image(&repo, "latest", &Platform::host())
            .await
            .unwrap();
        assert_eq!(host.manifest.digest, amd.manifest_digest);
    }
    let err = client
        .resolve_image(&repo, "latest", &Platform::parse("linux/s390x").unwrap())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("available: linux/arm64/v8, linux/amd64"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_schema2_manifests_round_trip() {
    let reg = Registry::start(Auth::None);
    let client = Client::new(config());
    let repo = Repository::new(&reg.host, "docker/schema2");
    let img = image("amd64", b"schema2");
    for (d, b) in img.blobs() {
        client
            .push_blob(&repo, &d, &BlobSource::Bytes(b), None, &NoProgress)
            .await
            .unwrap();
    }
    let manifest = Bytes::from(
        serde_json::to_vec(&json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
            "config": {"mediaType": "application/vnd.docker.container.image.v1+json", "digest": img.config_digest.to_string(), "size": img.config.len()},
            "layers": [{"mediaType": "application/vnd.docker.image.rootfs.diff.tar.gzip", "digest": img.layers[0].0.to_string(), "size": img.layers[0].1.len()}],
        }))
        .unwrap(),
    );
    client
        .push_manifest(
            &repo,
            "v1",
            "application/vnd.docker.distribution.manifest.v2+json",
            manifest.clone(),
        )
        .await
        .unwrap();
    let got = client.get_manifest(&repo, "v1").await.unwrap();
    assert_eq!(got.kind, ManifestKind::DockerManifest);
    assert_eq!(got.bytes, manifest);
}
