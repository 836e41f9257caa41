//! A proxy between client and registry that breaks blob downloads: a dropped connection is
//! resumed with Range, a 500 is retried, a wrong digest is a clean error and nothing is
//! committed.

use std::sync::{Arc, Mutex};

use image_store::Digest;
use registry_client::{
    BlobRef, BlobSink, BlobSource, Client, NoProgress, ProgressEvent, RegistryError, Repository,
    Status,
};

use crate::config;
use crate::harness::{noise, Auth, Registry};
use crate::servers::{Fault, FaultProxy};

/// A sink that records what became of it.
#[derive(Default, Clone)]
struct Recorder {
    outcome: Arc<Mutex<Option<&'static str>>>,
    bytes: Arc<Mutex<Vec<u8>>>,
}

impl BlobSink for Recorder {
    type Committed = Vec<u8>;
    fn write(&mut self, chunk: &[u8]) -> std::io::Result<()> {
        self.bytes.lock().unwrap().extend_from_slice(chunk);
        Ok(())
    }
    fn commit(self, _: &Digest) -> std::io::Result<Vec<u8>> {
        *self.outcome.lock().unwrap() = Some("committed");
        Ok(self.bytes.lock().unwrap().clone())
    }
    fn discard(self) {
        *self.outcome.lock().unwrap() = Some("discarded");
    }
}

async fn seeded(reg: &Registry, len: usize) -> (Repository, BlobRef, bytes::Bytes) {
    let data = noise(len, 42);
    let digest = Digest::of_bytes(&data);
    let repo = Repository::new(&reg.host, "faults/blob");
    Client::new(config())
        .push_blob(
            &repo,
            &digest,
            &BlobSource::Bytes(data.clone()),
            None,
            &NoProgress,
        )
        .await
        .unwrap();
    let blob = BlobRef {
        digest,
        size: Some(len as u64),
    };
    (repo, blob, data)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_connection_resumes_with_range() {
    let reg = Registry::start(Auth::None);
    let (repo, blob, data) = seeded(&reg, 3 << 20).await;
    let proxy = FaultProxy::start(
        &reg.host,
        Fault::DropAfter {
            bytes: 1 << 20,
            times: 2,
        },
    )
    .await;
    let via = Repository::new(&proxy.host, &repo.name);
    let events = Mutex::new(Vec::new());
    let progress = |e: &ProgressEvent| events.lock().unwrap().push(e.status.clone());
    let sink = Recorder::default();
    let got = Client::new(config())
        .pull_blob(&via, &blob, sink.clone(), &progress)
        .await
        .unwrap();
    assert!(got == data, "resumed download differs");
    assert_eq!(*sink.outcome.lock().unwrap(), Some("committed"));
    // Each retry resumes where the client's data stopped: at most where the proxy cut the
    // connection (bytes in flight at the cut may be lost), and always further than before.
    let ranges = proxy.ranges.lock().unwrap().clone();
    assert_eq!(ranges.len(), 3, "{ranges:?}");
    assert_eq!(ranges[0], None);
    let mut last = 0u64;
    for (k, r) in ranges[1..].iter().enumerate() {
        let start: u64 = r
            .as_deref()
            .and_then(|r| r.strip_prefix("bytes="))
            .and_then(|r| r.strip_suffix('-'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("retry {k} did not resume with a Range: {ranges:?}"));
        assert!(
            start > last && start <= ((k as u64 + 1) << 20),
            "{ranges:?}"
        );
        last = start;
    }
    let events = events.into_inner().unwrap();
    assert!(
        events.contains(&Status::Retrying { attempt: 2 }),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_is_retried() {
    let reg = Registry::start(Auth::None);
    let (repo, blob, data) = seeded(&reg, 100_000).await;
    let proxy = FaultProxy::start(&reg.host, Fault::ServerError { times: 1 }).await;
    let via = Repository::new(&proxy.host, &repo.name);
    let got = Client::new(config())
        .pull_blob(&via, &blob, Vec::new(), &NoProgress)
        .await
        .unwrap();
    assert!(got == data);
    assert_eq!(proxy.ranges.lock().unwrap().len(), 2);

    // Past the retry budget the 500 is the error.
    let proxy = FaultProxy::start(&reg.host, Fault::ServerError { times: 100 }).await;
    let via = Repository::new(&proxy.host, &repo.name);
    let client = Client::new(registry_client::ClientConfig {
        retries: 2,
        ..config()
    });
    let err = client
        .pull_blob(&via, &blob, Vec::new(), &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Status { status: 500, .. }),
        "{err:?}"
    );
    assert_eq!(proxy.ranges.lock().unwrap().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_digest_is_an_error_and_the_sink_is_discarded() {
    let reg = Registry::start(Auth::None);
    let (repo, blob, _) = seeded(&reg, 200_000).await;
    let proxy = FaultProxy::start(&reg.host, Fault::Corrupt).await;
    let via = Repository::new(&proxy.host, &repo.name);
    let sink = Recorder::default();
    let err = Client::new(config())
        .pull_blob(&via, &blob, sink.clone(), &NoProgress)
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::DigestMismatch { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains(blob.digest.as_str()), "{err}");
    assert_eq!(*sink.outcome.lock().unwrap(), Some("discarded"));
}
