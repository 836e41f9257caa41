//! The daemon: open the store, listen on the unix socket, serve until SIGTERM/SIGINT.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use image_store::Store;
use tokio::net::UnixListener;
use tokio::signal::unix::{signal, SignalKind};

/// How the daemon was started.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub data_root: PathBuf,
    /// Path of the unix socket to listen on.
    pub socket: PathBuf,
    /// Parent cgroup of the containers (relative to each hierarchy's root).
    pub cgroup_parent: String,
    /// Registries (`host[:port]`) that may be reached over plain HTTP besides loopback.
    pub insecure_registries: Vec<String>,
    /// Docker's certs.d: CA certificates for registries in `<dir>/<host[:port]>/*.crt`.
    pub certs_dir: Option<PathBuf>,
    /// `false` (`--bridge none`): no bridge networks; containers get `--network none`.
    pub bridge: bool,
}

impl DaemonConfig {
    /// A daemon on `data_root` listening on `socket`, with the defaults for everything else.
    pub fn new(data_root: impl Into<PathBuf>, socket: impl Into<PathBuf>) -> Self {
        Self {
            data_root: data_root.into(),
            socket: socket.into(),
            cgroup_parent: "berth".to_owned(),
            insecure_registries: Vec::new(),
            certs_dir: Some(PathBuf::from("/etc/docker/certs.d")),
            bridge: true,
        }
    }
}

/// Errors that stop the daemon from starting.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("opening the image store at {path}: {source}")]
    Store {
        path: PathBuf,
        #[source]
        source: image_store::StoreError,
    },
    #[error("another daemon is already listening on {0}")]
    AlreadyRunning(PathBuf),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Shared daemon state, handed to every request.
#[derive(Debug)]
pub struct Daemon {
    pub config: DaemonConfig,
    pub store: Arc<Store>,
    pub containers: crate::containers::Containers,
    pub volumes: crate::volumes::Volumes,
    pub events: crate::events::Events,
    pub execs: crate::api::exec::Execs,
    pub reaper: crate::reaper::Reaper,
    /// Connections to registries, shared by all requests (each brings its own credentials).
    pub registry: registry_client::Client,
    /// Bridge networks (`None` when the daemon cannot manage them, e.g. not root).
    pub networks: Option<Arc<netbridge::Networks>>,
    pub id: String,
}

fn io_err<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> DaemonError + 'p {
    move |source| DaemonError::Io {
        op,
        path: path.to_owned(),
        source,
    }
}

impl Daemon {
    pub fn open(config: DaemonConfig) -> Result<Self, DaemonError> {
        let store = Store::open(&config.data_root).map_err(|source| DaemonError::Store {
            path: config.data_root.clone(),
            source,
        })?;
        let id_path = config.data_root.join("engine-id");
        let id = match std::fs::read_to_string(&id_path) {
            Ok(s) if !s.trim().is_empty() => s.trim().to_owned(),
            _ => {
                let id = image_store::Digest::of_bytes(
                    format!("{:?}{}", std::time::SystemTime::now(), std::process::id()).as_bytes(),
                )
                .hex()[..32]
                    .to_owned();
                std::fs::write(&id_path, &id).map_err(io_err("write", &id_path))?;
                id
            }
        };
        let containers = crate::containers::Containers::open(&config.data_root)
            .map_err(io_err("opening containers in", &config.data_root))?;
        let volumes = crate::volumes::Volumes::open(&config.data_root)
            .map_err(io_err("opening volumes in", &config.data_root))?;
        let registry = registry_client::Client::new(registry_client::ClientConfig {
            insecure_registries: config.insecure_registries.clone(),
            certs_dir: config.certs_dir.clone(),
            ..Default::default()
        });
        let networks = if config.bridge {
            crate::network::open(&config.data_root)
        } else {
            None
        };
        Ok(Self {
            networks,
            registry,
            execs: Default::default(),
            reaper: Default::default(),
            containers,
            volumes,
            events: Default::default(),
            config,
            store: Arc::new(store),
            id,
        })
    }

    /// Bind the socket (mode 0660) and serve until SIGTERM or SIGINT; then remove the socket.
    pub async fn serve(self) -> Result<(), DaemonError> {
        let sock = self.config.socket.clone();
        if sock.exists() {
            if std::os::unix::net::UnixStream::connect(&sock).is_ok() {
                return Err(DaemonError::AlreadyRunning(sock));
            }
            std::fs::remove_file(&sock).map_err(io_err("remove stale socket", &sock))?;
        }
        if let Some(dir) = sock.parent() {
            std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
        }
        // The pid file first: whoever sees the socket answer can rely on it.
        let pidfile = self.config.data_root.join("daemon.pid");
        std::fs::write(&pidfile, format!("{}\n", std::process::id()))
            .map_err(io_err("write", &pidfile))?;
        let listener = UnixListener::bind(&sock).map_err(io_err("listen on", &sock))?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&sock, std::fs::Permissions::from_mode(0o660))
                .map_err(io_err("chmod", &sock))?;
        }
        tracing::info!(
            "berth daemon {} listening on unix://{}",
            crate::version::VERSION,
            sock.display()
        );
        // Monitors re-parent to us when their first stage exits: reap them.
        let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
        let daemon = Arc::new(self);
        // Live restore: follow the containers that were running when the daemon stopped.
        for e in daemon.containers.all() {
            crate::api::containers::adopt_if_running(&daemon, &e);
            crate::api::containers::resume_commit_pause(&daemon, &e);
            let status = e.snapshot().state.status;
            if status.is_live() {
                crate::api::containers::spawn_watch(daemon.clone(), e);
            } else if status == crate::containers::Status::Restarting {
                crate::api::containers::resume_restart(daemon.clone(), e);
            } else if matches!(
                status,
                crate::containers::Status::Exited | crate::containers::Status::Dead
            ) && e.snapshot().auto_remove()
            {
                // `--rm` whose removal a crash interrupted: finish it, as dockerd does
                let d = daemon.clone();
                tokio::task::spawn_blocking(move || {
                    if let Err(err) = crate::api::volumes::remove_container(&d, &e, true) {
                        tracing::warn!("auto-remove of {}: {}", e.snapshot().id, err.message);
                    }
                });
            }
        }
        // Networks: drop what dead containers held, re-apply bridges, ports and rules.
        if let Some(nets) = daemon.networks.clone() {
            let running: std::collections::HashSet<String> = daemon
                .containers
                .all()
                .iter()
                .map(|e| e.snapshot())
                .filter(|c| c.state.status.is_running())
                .map(|c| c.id)
                .collect();
            let done = tokio::task::spawn_blocking(move || {
                let alive = |id: &str| running.contains(id);
                let reconciled = nets.reconcile(&alive);
                reconciled.and(nets.release_orphan_netns(&alive))
            })
            .await;
            if let Ok(Err(e)) = done {
                tracing::warn!("network reconcile: {e}");
            }
        }
        {
            // a monitor waiting for the first container
            let d = daemon.clone();
            tokio::task::spawn_blocking(move || d.containers.prepare_spare());
        }
        let mut chld = signal(SignalKind::child()).map_err(io_err("signal", &sock))?;
        // Reap through the one reaper (it keeps the statuses exec waiters need), on SIGCHLD
        // and once a second in case a signal was coalesced away.
        let reaping = daemon.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tokio::select! {
                    got = chld.recv() => {
                        if got.is_none() { return }
                        reaping.reaper.reap();
                    }
                    _ = tick.tick() => reaping.reaper.sweep(),
                }
            }
        });
        let mut term = signal(SignalKind::terminate()).map_err(io_err("signal", &sock))?;
        let mut int = signal(SignalKind::interrupt()).map_err(io_err("signal", &sock))?;
        loop {
            tokio::select! {
                accepted = listener.accept() => {
                    let (stream, _) = match accepted {
                        Ok(s) => s,
                        Err(e) => { tracing::warn!("accept: {e}"); continue; }
                    };
                    let d = daemon.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |req| crate::api::handle(d.clone(), req));
                        let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc).with_upgrades();
                        if let Err(e) = conn.await {
                            tracing::debug!("connection: {e}");
                        }
                    });
                }
                _ = term.recv() => break,
                _ = int.recv() => break,
            }
        }
        tracing::info!("shutting down");
        let _ = std::fs::remove_file(&sock);
        let _ = std::fs::remove_file(&pidfile);
        Ok(())
    }
}
