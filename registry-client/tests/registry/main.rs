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

use registry_client::{BlobSource, Client, ClientConfig, ManifestUpload, NoProgress, Repository};

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
    let blobs = img
        .blobs()
        .into_iter()
        .map(|(d, b)| (d, BlobSource::Bytes(b)))
        .collect();
    let manifest = ManifestUpload {
        reference: tag.to_owned(),
        media_type: harness::OCI_MANIFEST.to_owned(),
        bytes: img.manifest.clone(),
    };
    let (_, d) = client
        .push_image(repo, blobs, vec![manifest], None, 3, &NoProgress)
        .await
        .unwrap();
    assert_eq!(d.as_ref(), Some(&img.manifest_digest));
}
