//! Pull and push: the registry client fetches and sends, the image store keeps; this module
//! joins them and turns the client's progress events into Docker's JSON progress lines.

use std::collections::HashSet;
use std::io;
use std::sync::Arc;

use base64::Engine as _;
use hyper::StatusCode;
use image_store::{Digest, ImageRecord, LayerWriter, PendingLayer, PulledLayer, Reference, Store};
use registry_client::{
    BlobRef, BlobSink, BlobSource, Client, ManifestUpload, Platform, ProgressEvent, PullPlan,
    RegistryError, Repository, Status,
};
use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::error::ApiError;

pub use registry_client::Credentials;

/// How many layers download or upload at once (Docker's default is 3 and 5).
const PULL_PARALLEL: usize = 3;
const PUSH_PARALLEL: usize = 5;

impl From<RegistryError> for ApiError {
    fn from(e: RegistryError) -> Self {
        let status = match &e {
            RegistryError::ManifestUnknown { .. }
            | RegistryError::NameUnknown { .. }
            | RegistryError::BlobUnknown { .. } => StatusCode::NOT_FOUND,
            RegistryError::WrongCredentials { .. } | RegistryError::AuthRequired { .. } => {
                StatusCode::UNAUTHORIZED
            }
            RegistryError::InvalidReference { .. }
            | RegistryError::InvalidPlatform(_)
            | RegistryError::NoMatchingPlatform { .. } => StatusCode::BAD_REQUEST,
            RegistryError::Status { status, .. } if *status == 404 => StatusCode::NOT_FOUND,
            RegistryError::Status { status, .. } if *status == 401 || *status == 403 => {
                StatusCode::UNAUTHORIZED
            }
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        // The transport's causes say what really failed (a refused connection, an unknown
        // certificate authority): keep them in the message.
        let mut message = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            let text = s.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = s.source();
        }
        ApiError::new(status, message)
    }
}

/// The JSON in `X-Registry-Auth` and the body of `POST /auth`.
#[derive(Debug, Default, Deserialize)]
pub struct AuthConfig {
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    #[serde(default, alias = "serveraddress")]
    pub serveraddress: String,
    #[serde(default, alias = "identitytoken")]
    pub identitytoken: String,
}

impl AuthConfig {
    /// Decode `X-Registry-Auth`: base64url (padded or not) of the JSON. An empty or `{}`
    /// header means anonymous.
    pub fn from_header(v: &str) -> Result<Self, ApiError> {
        let v = v.trim();
        if v.is_empty() {
            return Ok(Self::default());
        }
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(v.trim_end_matches('='))
            .or_else(|_| base64::engine::general_purpose::STANDARD.decode(v))
            .map_err(|e| ApiError::bad_request(format!("invalid X-Registry-Auth header: {e}")))?;
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request(format!("invalid X-Registry-Auth header: {e}")))
    }

    pub fn credentials(&self) -> Option<Credentials> {
        if !self.identitytoken.is_empty() {
            // An identity token stands in for the password (docker's OAuth refresh token).
            return Some(Credentials::new("<token>", self.identitytoken.clone()));
        }
        (!self.username.is_empty()).then(|| Credentials::new(&self.username, &self.password))
    }
}

/// `host[:port]` of a server address as the docker CLI sends it
/// (`https://index.docker.io/v1/`, `127.0.0.1:5000`, `https://127.0.0.1:5000`).
pub fn registry_host(server: &str) -> String {
    let rest = server
        .strip_prefix("https://")
        .or_else(|| server.strip_prefix("http://"))
        .unwrap_or(server);
    let host = rest.split('/').next().unwrap_or(rest);
    match host {
        "" | "index.docker.io" | "registry-1.docker.io" => "docker.io".to_owned(),
        h => h.to_owned(),
    }
}

/// A client for one request: the daemon's connections, the caller's credentials.
pub fn client_for(base: &Client, registry: &str, auth: &AuthConfig) -> Client {
    let c = base.scoped();
    if let Some(creds) = auth.credentials() {
        c.set_credentials(registry, Some(creds));
    }
    c
}

/// Docker's JSON progress lines, sent as they happen.
#[derive(Clone)]
pub struct Lines(pub mpsc::UnboundedSender<Value>);

impl Lines {
    pub fn status(&self, status: impl Into<String>) {
        let _ = self.0.send(json!({ "status": status.into() }));
    }
    pub fn layer(&self, id: &str, status: &str) {
        let _ = self
            .0
            .send(json!({ "status": status, "progressDetail": {}, "id": id }));
    }
    pub fn error(&self, message: &str) {
        let _ = self
            .0
            .send(json!({ "errorDetail": { "message": message }, "error": message }));
    }
    pub fn send(&self, v: Value) {
        let _ = self.0.send(v);
    }
}

/// Registry progress → Docker's lines. `Downloading`/`Pushing` carry `progressDetail`,
/// which the docker CLI draws as a bar on a terminal.
fn progress_line(e: &ProgressEvent) -> Option<Value> {
    let text = e.status.docker_text();
    match e.status {
        Status::Downloading | Status::Pushing => Some(json!({
            "status": text,
            "progressDetail": { "current": e.current, "total": e.total.unwrap_or(0) },
            "id": e.id,
        })),
        // The first Waiting comes before any transfer; Docker says "Pulling fs layer" then.
        Status::Waiting => None,
        _ => Some(json!({ "status": text, "progressDetail": {}, "id": e.id })),
    }
}

/// Sends progress lines, dropping repeats of a byte count that did not move.
struct ProgressLines(Lines);

impl registry_client::Progress for ProgressLines {
    fn event(&self, e: &ProgressEvent) {
        if let Some(v) = progress_line(e) {
            self.0.send(v);
        }
    }
}

/// What a pull ended with.
pub struct Pulled {
    pub image: Arc<ImageRecord>,
    /// The digest the reference resolved to (an index's when there was one).
    pub digest: Digest,
    /// Whether the reference already named this image before the pull.
    pub up_to_date: bool,
}

/// Parse `fromImage` and `tag` as the docker CLI sends them (`tag` may be a digest).
pub fn pull_reference(from_image: &str, tag: &str) -> Result<Reference, ApiError> {
    let named = Reference::parse_named(from_image)?;
    if tag.is_empty() {
        return Ok(if named.tag().is_none() && named.digest().is_none() {
            named.with_tag("latest")?
        } else {
            named
        });
    }
    if tag.starts_with("sha256:") {
        let d = Digest::parse(tag)?;
        return Ok(named.with_digest(&d));
    }
    Ok(named.with_tag(tag)?)
}

/// The reference as a registry request names it: the tag, or the digest.
fn reference_part(r: &Reference) -> String {
    match (r.digest(), r.tag()) {
        (Some(d), _) => d.to_string(),
        (None, Some(t)) => t.to_owned(),
        (None, None) => "latest".to_owned(),
    }
}

/// Resolve the manifest (errors here become HTTP errors, before any line is sent).
pub async fn plan(
    client: &Client,
    store: &Store,
    r: &Reference,
    platform: &Platform,
) -> Result<PullPlan, ApiError> {
    let repo = Repository::of(r);
    Ok(client
        .plan_pull(&repo, &reference_part(r), platform, |d| {
            store.blobs().exists(d)
        })
        .await?)
}

/// Download what the plan lacks into the store and name the image.
pub async fn pull(
    client: &Client,
    store: &Arc<Store>,
    r: &Reference,
    plan: PullPlan,
    lines: &Lines,
) -> Result<Pulled, ApiError> {
    let repo = Repository::of(r);
    let _lease = store.write_lease();
    lines.send(json!({
        "status": format!("Pulling from {}", r.familiar_repository()),
        "id": reference_part(r),
    }));
    let resolved = &plan.resolved;
    let config_digest = Digest::parse(resolved.image.config().digest().as_ref())?;
    let missing: HashSet<Digest> = plan.missing.iter().map(|b| b.digest.clone()).collect();
    let layer_refs: Vec<BlobRef> = resolved
        .image
        .layers()
        .iter()
        .map(|l| {
            Ok(BlobRef {
                digest: Digest::parse(l.digest().as_ref())?,
                size: Some(l.size()),
            })
        })
        .collect::<Result<_, ApiError>>()?;
    for l in &layer_refs {
        let status = if missing.contains(&l.digest) {
            "Pulling fs layer"
        } else {
            "Already exists"
        };
        lines.layer(l.digest.short(), status);
    }
    let progress = ProgressLines(lines.clone());
    // The config is small: fetch it whole (or read the stored copy).
    let config = if missing.contains(&config_digest) {
        let b = BlobRef {
            digest: config_digest.clone(),
            size: Some(resolved.image.config().size()),
        };
        client
            .pull_blob(&repo, &b, Vec::new(), &registry_client::NoProgress)
            .await?
    } else {
        store.blobs().read(&config_digest)?
    };
    // Layers: each missing one streams into the store while it downloads.
    let mut fetch = Vec::new();
    let mut seen = HashSet::new();
    for l in &layer_refs {
        if missing.contains(&l.digest) && seen.insert(l.digest.clone()) {
            fetch.push((l.clone(), LayerStream(Some(store.layer_writer()?))));
        }
    }
    let pending = client
        .pull_blobs(&repo, fetch, PULL_PARALLEL, &progress)
        .await?;
    // Wait for the unpackers, in layer order, and tell as each finishes.
    let store2 = store.clone();
    let lines2 = lines.clone();
    let staged = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for p in pending {
            let s = p.wait()?;
            lines2.layer(s.blob().short(), "Pull complete");
            out.push(s);
        }
        drop(store2);
        Ok::<_, ApiError>(out)
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    let mut by_blob: std::collections::HashMap<Digest, image_store::StagedLayer> =
        staged.into_iter().map(|s| (s.blob().clone(), s)).collect();
    let layers: Vec<PulledLayer> = layer_refs
        .iter()
        .map(|l| match by_blob.remove(&l.digest) {
            Some(s) => PulledLayer::Staged(s),
            None => PulledLayer::Stored(l.digest.clone()),
        })
        .collect();
    let top = resolved.index.as_ref().unwrap_or(&resolved.manifest);
    let digest = top.digest.clone();
    let tag_ref = r.tag().is_some().then(|| r.clone());
    let before = tag_ref
        .as_ref()
        .and_then(|t| store.resolve(&t.to_string()).ok())
        .map(|rec| rec.id.clone());
    let manifest = resolved.manifest.bytes.clone();
    let media_type = resolved.manifest.kind.media_type();
    let repo_digest = r.with_digest(&digest);
    let store2 = store.clone();
    let image = tokio::task::spawn_blocking(move || {
        store2.commit_pulled(
            &manifest,
            registry_client::oci_spec::image::MediaType::from(media_type),
            &config,
            layers,
            tag_ref.as_slice(),
            std::slice::from_ref(&repo_digest),
        )
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    let up_to_date = before.as_ref() == Some(&image.id);
    Ok(Pulled {
        image,
        digest,
        up_to_date,
    })
}

/// A missing layer's sink: the store's writer, finished with the digest on commit.
struct LayerStream(Option<LayerWriter>);

impl BlobSink for LayerStream {
    type Committed = PendingLayer;

    fn write(&mut self, chunk: &[u8]) -> io::Result<()> {
        let w = self
            .0
            .as_mut()
            .ok_or_else(|| io::Error::other("layer writer already finished"))?;
        if w.try_write(chunk)? {
            return Ok(());
        }
        // The unpacker is behind: wait for it without holding up other tasks on this worker.
        match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(tokio::runtime::RuntimeFlavor::MultiThread) => {
                tokio::task::block_in_place(|| w.write(chunk))
            }
            _ => w.write(chunk),
        }
    }

    fn commit(mut self, digest: &Digest) -> io::Result<PendingLayer> {
        let w = self
            .0
            .take()
            .ok_or_else(|| io::Error::other("layer writer already finished"))?;
        Ok(w.finish(digest))
    }

    fn discard(mut self) {
        if let Some(w) = self.0.take() {
            w.abandon();
        }
    }
}

/// Push one tag of a local image to its repository.
pub async fn push(
    client: &Client,
    store: &Store,
    local: &Reference,
    lines: &Lines,
) -> Result<(), ApiError> {
    let rec = store.resolve(&local.to_string())?;
    let repo = Repository::of(local);
    let tag = local.tag().unwrap_or("latest").to_owned();
    let mut blobs = Vec::new();
    // Docker lists the layers top first.
    for l in rec.layers.iter().rev() {
        let d = Digest::parse(l.digest().as_ref())?;
        lines.layer(d.short(), "Preparing");
        blobs.push((d.clone(), BlobSource::File(store.blobs().path(&d))));
    }
    blobs.push((
        rec.id.clone(),
        BlobSource::File(store.blobs().path(&rec.id)),
    ));
    let manifest = store.blobs().read(&rec.manifest)?;
    let size = manifest.len();
    let upload = ManifestUpload {
        reference: tag.clone(),
        media_type: rec.manifest_media_type.to_string(),
        bytes: manifest.into(),
    };
    let progress = PushLines {
        lines: lines.clone(),
        config: rec.id.short().to_owned(),
    };
    // Blobs pulled from another repository of the same registry are mounted, not sent again.
    let mount_from = rec
        .repo_digests
        .iter()
        .find(|r| r.domain() == local.domain() && r.path() != local.path())
        .map(|r| r.path().to_owned());
    let (_, digest) = client
        .push_image(
            &repo,
            blobs,
            vec![upload],
            mount_from.as_deref(),
            PUSH_PARALLEL,
            &progress,
        )
        .await?;
    let digest = digest.unwrap_or_else(|| rec.manifest.clone());
    lines.status(format!("{tag}: digest: {digest} size: {size}"));
    lines.send(json!({
        "progressDetail": {},
        "aux": { "Tag": tag, "Digest": digest.as_str(), "Size": size },
    }));
    let _ = store.add_repo_digest(&rec.id, &local.with_digest(&digest));
    Ok(())
}

/// Push progress: the config blob is not a layer, Docker shows no line for it.
struct PushLines {
    lines: Lines,
    config: String,
}

impl registry_client::Progress for PushLines {
    fn event(&self, e: &ProgressEvent) {
        if e.id == self.config {
            return;
        }
        if let Some(v) = progress_line(e) {
            self.lines.send(v);
        }
    }
}

/// Split a search term into registry and term: `127.0.0.1:5000/app` searches that registry
/// for `app`; a bare term searches Docker Hub.
pub fn search_target(term: &str) -> (String, String) {
    if let Some((first, rest)) = term.split_once('/') {
        if first.contains('.') || first.contains(':') || first == "localhost" {
            return (first.to_owned(), rest.to_owned());
        }
    }
    ("docker.io".to_owned(), term.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_header_decodes_both_base64_flavours() {
        let json = r#"{"username":"u","password":"p?>","serveraddress":"127.0.0.1:5000"}"#;
        let url = base64::engine::general_purpose::URL_SAFE.encode(json);
        let a = AuthConfig::from_header(&url).unwrap();
        assert_eq!(a.username, "u");
        assert_eq!(a.password, "p?>");
        let std = base64::engine::general_purpose::STANDARD.encode(json);
        assert_eq!(
            AuthConfig::from_header(&std).unwrap().serveraddress,
            "127.0.0.1:5000"
        );
        assert!(AuthConfig::from_header("e30=")
            .unwrap()
            .credentials()
            .is_none());
        assert!(AuthConfig::from_header("!!!").is_err());
    }

    #[test]
    fn server_addresses_and_search_terms() {
        assert_eq!(registry_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_host("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(registry_host("https://localhost:5000/"), "localhost:5000");
        assert_eq!(
            search_target("127.0.0.1:5000/app"),
            ("127.0.0.1:5000".to_owned(), "app".to_owned())
        );
        assert_eq!(
            search_target("redis"),
            ("docker.io".to_owned(), "redis".to_owned())
        );
    }

    #[test]
    fn pull_references_as_the_cli_sends_them() {
        let r = pull_reference("busybox", "latest").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox:latest");
        let r = pull_reference("127.0.0.1:5000/a/b", "").unwrap();
        assert_eq!(r.tag(), Some("latest"));
        let d = format!("sha256:{}", "a".repeat(64));
        let r = pull_reference("busybox", &d).unwrap();
        assert_eq!(r.digest().map(|d| d.as_str().to_owned()), Some(d.clone()));
        assert_eq!(reference_part(&r), d);
        assert!(pull_reference("Bad Name", "x").is_err());
        assert!(pull_reference("busybox", "bad tag!").is_err());
    }
}
