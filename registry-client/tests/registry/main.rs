//! Tests against Debian's docker-registry (CNCF distribution 2.8.2) on 127.0.0.1. They need
//! the `docker-registry` package and fail, naming it, when it is missing.
#![allow(clippy::unwrap_used)]

mod fake;
mod faults;
mod harness;
mod plain;
mod servers;
mod skopeo;
mod tls;
mod token;

use std::time::Duration;

use registry_client::{BlobSource, Client, ClientConfig, NoProgress, Repository};

use harness::TestImage;

pub fn config() -> ClientConfig {
    ClientConfig {
        retry_delay: Duration::from_millis(20),
        request_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    }
}

pub async fn push_image(client: &Client, repo: &Repository, tag: &str, img: &TestImage) {
    for (d, b) in img.blobs() {
        client
            .push_blob(repo, &d, &BlobSource::Bytes(b), None, &NoProgress)
            .await
            .unwrap();
    }
    let d = client
        .push_manifest(repo, tag, harness::OCI_MANIFEST, img.manifest.clone())
        .await
        .unwrap();
    assert_eq!(d, img.manifest_digest);
}
