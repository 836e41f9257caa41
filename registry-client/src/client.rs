//! The client: configuration, one `Session` per registry, and the retry policy shared by the
//! operations in `manifest`, `blob`, `upload` and `list`.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use image_store::Reference;

use crate::auth::Credentials;
use crate::error::Result;
use crate::session::Session;
use crate::transport::Transport;

/// Where Docker Hub's API really lives (`docker.io` is only the name in references).
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// How the client behaves; the defaults suit a daemon.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// `host[:port]` (or bare host) names that may be reached over plain HTTP. Loopback
    /// addresses and `localhost` always may.
    pub insecure_registries: Vec<String>,
    /// Docker's certs.d directory: CA certificates in `<dir>/<host[:port]>/*.crt`.
    pub certs_dir: Option<PathBuf>,
    /// Bound on connecting plus receiving a response head.
    pub request_timeout: Duration,
    /// Bound on the gap between two pieces of a response body.
    pub idle_timeout: Duration,
    /// Further attempts after a transient failure (5xx, 429, dropped connection, timeout).
    pub retries: u32,
    /// First backoff delay; doubled each attempt, capped at 8 s.
    pub retry_delay: Duration,
    /// Blobs up to this size are uploaded with one PUT; larger ones in PATCH chunks.
    pub chunk_threshold: u64,
    pub chunk_size: u64,
    pub user_agent: String,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            insecure_registries: Vec::new(),
            certs_dir: None,
            request_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(30),
            retries: 4,
            retry_delay: Duration::from_millis(500),
            chunk_threshold: 512 << 20,
            chunk_size: 64 << 20,
            user_agent: concat!("berth/", env!("CARGO_PKG_VERSION")).to_owned(),
        }
    }
}

/// A repository on a registry, as the API names it: `registry` as in references
/// (`docker.io`, `127.0.0.1:5000`), `name` the path (`library/busybox`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Repository {
    pub registry: String,
    pub name: String,
}

impl Repository {
    pub fn new(registry: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            registry: registry.into(),
            name: name.into(),
        }
    }

    /// The repository of a normalized reference (`busybox` → `docker.io`, `library/busybox`).
    pub fn of(reference: &Reference) -> Self {
        Self::new(reference.domain(), reference.path())
    }
}

impl std::fmt::Display for Repository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.registry, self.name)
    }
}

/// The API host for a registry name: Docker Hub's names map to `registry-1.docker.io`.
pub fn api_host(registry: &str) -> String {
    match registry {
        "docker.io" | "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB_API_HOST.to_owned(),
        other => other.to_owned(),
    }
}

pub(crate) struct Inner {
    pub(crate) config: ClientConfig,
    pub(crate) transport: Arc<Transport>,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    credentials: Mutex<HashMap<String, Credentials>>,
}

/// An OCI distribution client. Cheap to clone; clones share connections, tokens and
/// credentials.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.inner.config)
            .finish()
    }
}

impl Client {
    pub fn new(config: ClientConfig) -> Self {
        let transport = Arc::new(Transport::new(
            config.certs_dir.clone(),
            config.insecure_registries.clone(),
            config.request_timeout,
            config.user_agent.clone(),
        ));
        Self {
            inner: Arc::new(Inner {
                config,
                transport,
                sessions: Mutex::new(HashMap::new()),
                credentials: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// A client sharing this one's connections but with its own credentials and tokens: for a
    /// daemon whose callers each bring their own (`X-Registry-Auth`).
    pub fn scoped(&self) -> Self {
        Self {
            inner: Arc::new(Inner {
                config: self.inner.config.clone(),
                transport: self.inner.transport.clone(),
                sessions: Mutex::new(HashMap::new()),
                credentials: Mutex::new(HashMap::new()),
            }),
        }
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// Use `creds` (or none) for `registry` from now on; cached tokens are dropped.
    pub fn set_credentials(&self, registry: &str, creds: Option<Credentials>) {
        let key = api_host(registry);
        {
            let mut all = self
                .inner
                .credentials
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match creds {
                Some(c) => all.insert(key.clone(), c),
                None => all.remove(&key),
            };
        }
        self.inner
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }

    pub(crate) fn session(&self, registry: &str) -> Arc<Session> {
        let key = api_host(registry);
        let mut sessions = self
            .inner
            .sessions
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(s) = sessions.get(&key) {
            return s.clone();
        }
        let creds = self
            .inner
            .credentials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&key)
            .cloned();
        let s = Arc::new(Session::new(
            registry,
            key.clone(),
            self.inner.transport.clone(),
            creds,
        ));
        sessions.insert(key, s.clone());
        s
    }

    /// `GET /v2/`: the registry is reachable and speaks the v2 API (auth not yet checked).
    pub async fn ping(&self, registry: &str) -> Result<()> {
        self.session(registry).base().await.map(|_| ())
    }

    /// Check `creds` against `registry` (Basic on `/v2/`, or a token request), without keeping
    /// them unless they work. Storing them on disk is `credentials::login`'s job.
    pub async fn login(&self, registry: &str, creds: Credentials) -> Result<()> {
        let probe = Session::new(
            registry,
            api_host(registry),
            self.inner.transport.clone(),
            Some(creds.clone()),
        );
        probe.login().await?;
        self.set_credentials(registry, Some(creds));
        Ok(())
    }

    /// Run `op` again after transient failures, with exponential backoff.
    pub(crate) async fn retrying<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Err(e) if e.is_transient() && attempt < self.inner.config.retries => {
                    attempt += 1;
                    let delay = self.backoff(attempt);
                    tracing::info!(%what, error = %e, ?delay, attempt, "transient failure, retrying");
                    tokio::time::sleep(delay).await;
                }
                other => return other,
            }
        }
    }

    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let d = self
            .inner
            .config
            .retry_delay
            .saturating_mul(1 << attempt.saturating_sub(1).min(6));
        d.min(Duration::from_secs(8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_names_map_to_its_api_host() {
        assert_eq!(api_host("docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("index.docker.io"), "registry-1.docker.io");
        assert_eq!(api_host("127.0.0.1:5000"), "127.0.0.1:5000");
        let r = Repository::of(&Reference::parse("busybox").unwrap());
        assert_eq!(r, Repository::new("docker.io", "library/busybox"));
        let r = Repository::of(&Reference::parse("localhost:5000/a/b:v1").unwrap());
        assert_eq!(r, Repository::new("localhost:5000", "a/b"));
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let c = Client::new(ClientConfig {
            retry_delay: Duration::from_millis(500),
            ..ClientConfig::default()
        });
        assert_eq!(c.backoff(1), Duration::from_millis(500));
        assert_eq!(c.backoff(2), Duration::from_secs(1));
        assert_eq!(c.backoff(4), Duration::from_secs(4));
        assert_eq!(c.backoff(9), Duration::from_secs(8));
    }
}
