//! The daemon: open the store, listen on its endpoints (see `listen`), serve every connection
//! the same way until SIGTERM/SIGINT.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use image_store::Store;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::signal::unix::{signal, SignalKind};

/// How the daemon was started.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    pub data_root: PathBuf,
    /// State that means nothing after a reboot (as dockerd's `--exec-root`): monitors' files,
    /// the runtime's state, containers' root mounts. See [`exec_root_for`].
    pub exec_root: PathBuf,
    /// Where to listen (`-H`, repeatable): unix sockets and TCP addresses.
    pub hosts: Vec<crate::listen::Endpoint>,
    /// Certificates for the TCP endpoints; clients must present one issued by the CA.
    pub tls: Option<crate::listen::TlsFiles>,
    /// Allow TCP endpoints without TLS (`--insecure-tcp`): anyone who reaches them is root.
    pub insecure_tcp: bool,
    /// Group of the unix sockets; `None`: `berth` as root, the daemon's own group otherwise.
    pub socket_group: Option<String>,
    /// The group database consulted (and extended) for `socket_group`.
    pub group_file: PathBuf,
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
        let data_root = data_root.into();
        Self {
            exec_root: exec_root_for(&data_root),
            data_root,
            hosts: vec![crate::listen::Endpoint::Unix(socket.into())],
            tls: None,
            insecure_tcp: false,
            socket_group: None,
            group_file: PathBuf::from("/etc/group"),
            cgroup_parent: "berth".to_owned(),
            insecure_registries: Vec::new(),
            certs_dir: Some(PathBuf::from("/etc/docker/certs.d")),
            bridge: true,
        }
    }
}

const TMPFS_MAGIC: i64 = 0x0102_1994;

/// One malloc arena for the whole daemon, to be called before it starts threads. glibc
/// gives each thread that allocates an arena of its own; the daemon's threads (tokio's
/// workers and blocking pool) mostly wait, and their arenas held ~0.7 MiB of its idle
/// resident memory (measured after 18 `run --rm`: 15.3 -> 14.6 MiB). Small allocations
/// still come from per-thread caches without a lock.
pub fn one_malloc_arena() {
    runtime::sys::malloc_arena_max(1);
}

/// The exec-root of a daemon on `data_root` when none is given: its own directory on a tmpfs,
/// named after the data root so that daemons on different data roots never share one —
/// `/run/berth/<hash>`, or `/dev/shm/berth/<hash>` where /run is no tmpfs (as on this
/// project's test machines). On the data root's disk the dozen files each start writes and
/// each removal deletes cost milliseconds: on an ext4 without a journal every new inode is
/// found by skipping the ones deleted in the last minutes.
pub fn exec_root_for(data_root: &Path) -> PathBuf {
    use sha2::Digest;
    let abs = std::path::absolute(data_root).unwrap_or_else(|_| data_root.to_path_buf());
    let hash = sha2::Sha256::digest(abs.as_os_str().as_encoded_bytes());
    let on_tmpfs = |p: &str| rustix::fs::statfs(p).is_ok_and(|s| s.f_type == TMPFS_MAGIC);
    let base = if on_tmpfs("/run") || !on_tmpfs("/dev/shm") {
        "/run/berth"
    } else {
        "/dev/shm/berth"
    };
    Path::new(base).join(hex::encode(&hash[..6]))
}

/// Create `exec_root` for our use only. Its parent may sit in a world-writable directory
/// (/dev/shm): a parent somebody else made, or a symlink, is refused, and then the state
/// goes to `<data-root>/run` (on disk) instead.
fn prepare_exec_root(exec_root: &Path, data_root: &Path) -> PathBuf {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let ours = |p: &Path| {
        std::fs::symlink_metadata(p).is_ok_and(|m| {
            m.is_dir() && m.uid() == rustix::process::geteuid().as_raw() && m.mode() & 0o022 == 0
        })
    };
    let made = exec_root.parent().is_none_or(|parent| {
        let _ = std::fs::DirBuilder::new().mode(0o700).create(parent);
        ours(parent)
    }) && {
        let _ = std::fs::DirBuilder::new().mode(0o700).create(exec_root);
        ours(exec_root)
    };
    if made {
        return exec_root.to_path_buf();
    }
    let fallback = data_root.join("run");
    tracing::warn!(
        "exec-root {} is not a directory of ours: using {} instead",
        exec_root.display(),
        fallback.display()
    );
    fallback
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
    #[error(transparent)]
    Listen(#[from] crate::listen::ListenError),
    #[error("no -H endpoint to listen on")]
    NoEndpoint,
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
        // Refuse a bad endpoint before touching the data root.
        if config.hosts.is_empty() {
            return Err(DaemonError::NoEndpoint);
        }
        if config.tls.is_none() && !config.insecure_tcp {
            if let Some(crate::listen::Endpoint::Tcp(a)) = config
                .hosts
                .iter()
                .find(|h| matches!(h, crate::listen::Endpoint::Tcp(_)))
            {
                return Err(crate::listen::ListenError::PlainTcp(a.clone()).into());
            }
        }
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
        let exec_root = prepare_exec_root(&config.exec_root, &config.data_root);
        let containers = crate::containers::Containers::open(
            &config.data_root,
            &exec_root,
            &config.cgroup_parent,
        )
        .map_err(io_err("opening containers in", &config.data_root))?;
        let volumes = crate::volumes::Volumes::open(&config.data_root)
            .map_err(io_err("opening volumes in", &config.data_root))?;
        let registry = registry_client::Client::new(registry_client::ClientConfig {
            insecure_registries: config.insecure_registries.clone(),
            certs_dir: config.certs_dir.clone(),
            ..Default::default()
        });
        let networks = if config.bridge {
            crate::network::open(&config.data_root, &exec_root.join("net"))
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

    /// Bind every endpoint (unix sockets 0660 root:group, TCP with TLS) and serve until
    /// SIGTERM or SIGINT; then remove the unix sockets.
    pub async fn serve(self) -> Result<(), DaemonError> {
        let bound = match self.bind().await {
            Ok(b) => b,
            Err(e) => {
                self.containers.release_exec_root();
                return Err(e);
            }
        };
        let sockets: Vec<PathBuf> = bound
            .iter()
            .filter_map(|b| match b {
                Bound::Unix(_, p) => Some(p.clone()),
                Bound::Tcp(..) => None,
            })
            .collect();
        let pidfile = self.config.data_root.join("daemon.pid");
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
                let released = nets.release_orphan_netns(&alive);
                // containers' starts take namespaces made ahead of time from now on
                nets.enable_netns_pool();
                reconciled.and(released)
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
        let mut chld = signal(SignalKind::child())
            .map_err(io_err("install a handler for", Path::new("signals")))?;
        // Reap through the one reaper (it keeps the statuses exec waiters need), on SIGCHLD,
        // and sweep for exited monitors nobody adopted once a second after one came (not
        // when no child exited: the sweep reads every process's stat, CPU an idle daemon
        // need not spend, nor one whose next container is starting).
        let reaping = daemon.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            let mut exited = true;
            loop {
                tokio::select! {
                    got = chld.recv() => {
                        if got.is_none() { return }
                        reaping.reaper.reap();
                        exited = true;
                    }
                    _ = tick.tick() => if std::mem::take(&mut exited) {
                        reaping.reaper.sweep()
                    },
                }
            }
        });
        let mut term = signal(SignalKind::terminate())
            .map_err(io_err("install a handler for", Path::new("signals")))?;
        let mut int = signal(SignalKind::interrupt())
            .map_err(io_err("install a handler for", Path::new("signals")))?;
        let mut accepting = tokio::task::JoinSet::new();
        for b in bound {
            accepting.spawn(accept_loop(daemon.clone(), b));
        }
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        accepting.abort_all();
        tracing::info!("shutting down");
        for s in &sockets {
            let _ = std::fs::remove_file(s);
        }
        // the pool's namespaces are pinned under the exec-root: unpinned first
        if let Some(nets) = &daemon.networks {
            nets.release_netns_pool();
        }
        daemon.containers.close_pools();
        daemon.containers.release_exec_root();
        let _ = std::fs::remove_file(&pidfile);
        Ok(())
    }

    /// Check the endpoints, write the pid file, then bind them all: nothing listens unless
    /// everything can.
    async fn bind(&self) -> Result<Vec<Bound>, DaemonError> {
        use crate::listen::{Endpoint, ListenError};
        let c = &self.config;
        if c.hosts.is_empty() {
            return Err(DaemonError::NoEndpoint);
        }
        let any_tcp = c.hosts.iter().any(|h| matches!(h, Endpoint::Tcp(_)));
        let tls = match &c.tls {
            Some(files) if any_tcp => Some(tokio_rustls::TlsAcceptor::from(
                crate::listen::server_config(files)?,
            )),
            _ => None,
        };
        let root = rustix::process::geteuid().is_root();
        let mut gid = None;
        for h in &c.hosts {
            match h {
                Endpoint::Tcp(a) if tls.is_none() && !c.insecure_tcp => {
                    return Err(ListenError::PlainTcp(a.clone()).into())
                }
                Endpoint::Unix(sock) => {
                    if sock.exists() {
                        if std::os::unix::net::UnixStream::connect(sock).is_ok() {
                            return Err(DaemonError::AlreadyRunning(sock.clone()));
                        }
                        std::fs::remove_file(sock).map_err(io_err("remove stale socket", sock))?;
                    }
                    if let Some(dir) = sock.parent() {
                        std::fs::create_dir_all(dir).map_err(io_err("create", dir))?;
                    }
                    if gid.is_none() {
                        gid = match (&c.socket_group, root) {
                            (Some(g), _) => Some(crate::listen::ensure_group(g, &c.group_file)?),
                            (None, true) => Some(crate::listen::ensure_group(
                                crate::listen::DEFAULT_SOCKET_GROUP,
                                &c.group_file,
                            )?),
                            // an unprivileged daemon keeps its own group
                            (None, false) => None,
                        };
                    }
                }
                Endpoint::Tcp(_) => {}
            }
        }
        // The pid file first: whoever sees a socket answer can rely on it.
        let pidfile = c.data_root.join("daemon.pid");
        std::fs::write(&pidfile, format!("{}\n", std::process::id()))
            .map_err(io_err("write", &pidfile))?;
        let mut bound = Vec::new();
        for h in &c.hosts {
            match h {
                Endpoint::Unix(sock) => {
                    bound.push(Bound::Unix(bind_unix(sock, gid)?, sock.clone()));
                    tracing::info!(
                        "berth daemon {} listening on unix://{}",
                        crate::version::VERSION,
                        sock.display()
                    );
                }
                Endpoint::Tcp(addr) => {
                    let l = TcpListener::bind(addr.as_str())
                        .await
                        .map_err(io_err("listen on", Path::new(addr)))?;
                    let local = l
                        .local_addr()
                        .map_err(io_err("listen on", Path::new(addr)))?;
                    if tls.is_some() {
                        tracing::info!(
                            "berth daemon {} listening on tcp://{local} (TLS, client certificates verified)",
                            crate::version::VERSION
                        );
                    } else {
                        let reach = if crate::listen::is_loopback(&local) {
                            "every local user and process"
                        } else {
                            "anyone on the network"
                        };
                        let banner = format!(
                            "listening on tcp://{local} WITHOUT TLS (--insecure-tcp): {reach} can \
                             control this daemon and, through it, the host as root"
                        );
                        tracing::warn!("{banner}");
                        eprintln!("\n!!! WARNING !!! {banner}\n");
                    }
                    bound.push(Bound::Tcp(l, tls.clone()));
                }
            }
        }
        Ok(bound)
    }
}

/// A listening endpoint.
enum Bound {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener, Option<tokio_rustls::TlsAcceptor>),
}

/// Bind a unix socket that is never, even for a moment, open to others: created 0600 (umask),
/// then given to `gid` and opened to the group.
fn bind_unix(sock: &Path, gid: Option<u32>) -> Result<UnixListener, DaemonError> {
    use rustix::fs::Mode;
    let old = rustix::process::umask(Mode::from_raw_mode(0o177));
    let listener = UnixListener::bind(sock);
    rustix::process::umask(old);
    let listener = listener.map_err(io_err("listen on", sock))?;
    if let Some(gid) = gid {
        rustix::fs::chown(sock, None, Some(rustix::fs::Gid::from_raw(gid))).map_err(|e| {
            DaemonError::Io {
                op: "chown",
                path: sock.to_owned(),
                source: e.into(),
            }
        })?;
    }
    rustix::fs::chmod(sock, Mode::from_raw_mode(0o660)).map_err(|e| DaemonError::Io {
        op: "chmod",
        path: sock.to_owned(),
        source: e.into(),
    })?;
    Ok(listener)
}

/// How long a TCP client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Accept on one endpoint forever; every connection is served by `serve_connection`.
async fn accept_loop(daemon: Arc<Daemon>, bound: Bound) {
    match bound {
        Bound::Unix(l, _) => loop {
            match l.accept().await {
                Ok((s, _)) => {
                    tokio::spawn(serve_connection(daemon.clone(), s));
                }
                Err(e) => accept_failed(e).await,
            }
        },
        Bound::Tcp(l, tls) => loop {
            let (s, peer) = match l.accept().await {
                Ok(a) => a,
                Err(e) => {
                    accept_failed(e).await;
                    continue;
                }
            };
            let _ = s.set_nodelay(true);
            let d = daemon.clone();
            match tls.clone() {
                None => {
                    tokio::spawn(serve_connection(d, s));
                }
                Some(acceptor) => {
                    tokio::spawn(async move {
                        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(s)).await {
                            Ok(Ok(s)) => serve_connection(d, s).await,
                            Ok(Err(e)) => tracing::warn!("refused {peer}: TLS handshake: {e}"),
                            Err(_) => tracing::warn!("refused {peer}: TLS handshake timed out"),
                        }
                    });
                }
            }
        },
    }
}

/// Out of fds and the like: say so, and give the system a moment instead of spinning.
async fn accept_failed(e: std::io::Error) {
    tracing::warn!("accept: {e}");
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
}

/// The one serving path of every endpoint: HTTP/1.1 with upgrades (attach, exec).
async fn serve_connection<S>(daemon: Arc<Daemon>, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let svc = service_fn(move |req| crate::api::handle(daemon.clone(), req));
    let conn = http1::Builder::new()
        .serve_connection(TokioIo::new(stream), svc)
        .with_upgrades();
    if let Err(e) = conn.await {
        tracing::debug!("connection: {e}");
    }
}
