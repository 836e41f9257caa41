//! Finding the daemon: `-H`, then `BERTH_HOST`, then `DOCKER_HOST`, then the default socket;
//! when the default socket has no daemon, start one in the background (logging to
//! `<data-root>/daemon.log`). TCP endpoints speak TLS with the docker CLI's flags and files.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::client::Client;
use crate::{DEFAULT_DATA_ROOT, DEFAULT_SOCKET};

/// TLS flags, as the docker CLI and dockerd take them (the same for both).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsArgs {
    /// Use TLS and verify the other side: the daemon's certificate, or (daemon) every client's
    #[arg(long, global = true, env = "DOCKER_TLS_VERIFY",
          value_parser = clap::builder::FalseyValueParser::new())]
    pub tlsverify: bool,
    /// Trust certs signed only by this CA [default: $DOCKER_CERT_PATH/ca.pem or ~/.docker/ca.pem]
    #[arg(long, global = true, value_name = "FILE")]
    pub tlscacert: Option<PathBuf>,
    /// Path to TLS certificate file [default: cert.pem beside the CA]
    #[arg(long, global = true, value_name = "FILE")]
    pub tlscert: Option<PathBuf>,
    /// Path to TLS key file [default: key.pem beside the CA]
    #[arg(long, global = true, value_name = "FILE")]
    pub tlskey: Option<PathBuf>,
}

impl TlsArgs {
    /// The three files, defaults filled in from `DOCKER_CERT_PATH` or `~/.docker`.
    pub fn files(&self) -> engine::listen::TlsFiles {
        let dir = std::env::var_os("DOCKER_CERT_PATH")
            .filter(|d| !d.is_empty())
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".docker")))
            .unwrap_or_else(|| PathBuf::from(".docker"));
        let or = |p: &Option<PathBuf>, name| p.clone().unwrap_or_else(|| dir.join(name));
        engine::listen::TlsFiles {
            ca: or(&self.tlscacert, "ca.pem"),
            cert: or(&self.tlscert, "cert.pem"),
            key: or(&self.tlskey, "key.pem"),
        }
    }

    /// Any of the certificate flags given.
    pub fn any_file(&self) -> bool {
        self.tlscacert.is_some() || self.tlscert.is_some() || self.tlskey.is_some()
    }
}

/// The client's TLS: trust only the CA; present the client certificate when there is one.
fn client_tls(files: &engine::listen::TlsFiles) -> Result<Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    let ca = &files.ca;
    for c in CertificateDer::pem_file_iter(ca)
        .with_context(|| format!("reading the CA certificate {}", ca.display()))?
    {
        roots
            .add(c.with_context(|| format!("reading {}", ca.display()))?)
            .with_context(|| format!("using {} as CA", ca.display()))?;
    }
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots);
    if !files.cert.exists() && !files.key.exists() {
        return Ok(Arc::new(builder.with_no_client_auth()));
    }
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading the certificate {}", files.cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("reading the key {}", files.key.display()))?;
    Ok(Arc::new(
        builder
            .with_client_auth_cert(certs, key)
            .context("using the client certificate and key")?,
    ))
}

pub async fn client(host: Option<&str>, tls: &TlsArgs) -> Result<Client> {
    let docker_host = std::env::var("DOCKER_HOST").ok().filter(|h| !h.is_empty());
    if let Some(h) = host.or(docker_host.as_deref()) {
        return match engine::listen::parse_host(h, tls.tlsverify)? {
            engine::listen::Endpoint::Unix(p) => Ok(Client::new(p)),
            engine::listen::Endpoint::Tcp(addr) => {
                let config = if tls.tlsverify {
                    Some(client_tls(&tls.files())?)
                } else {
                    None
                };
                Client::tcp(&addr, config)
            }
        };
    }
    // The defaults can be moved (tests, unprivileged users) without naming a host.
    let sock = std::env::var_os("BERTH_DEFAULT_SOCKET")
        .map_or_else(|| PathBuf::from(DEFAULT_SOCKET), PathBuf::from);
    if Client::connect(&sock).await.is_ok() {
        return Ok(Client::new(sock));
    }
    let root = std::env::var_os("BERTH_DATA_ROOT")
        .map_or_else(|| PathBuf::from(DEFAULT_DATA_ROOT), PathBuf::from);
    start_daemon(&sock, &root).await?;
    Ok(Client::new(sock))
}

async fn start_daemon(sock: &Path, data_root: &Path) -> Result<()> {
    std::fs::create_dir_all(data_root)
        .with_context(|| format!("creating {}", data_root.display()))?;
    let log_path = data_root.join("daemon.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let exe = crate::daemon_binary()?;
    eprintln!(
        "berth: no daemon at unix://{}; starting one (log: {})",
        sock.display(),
        log_path.display()
    );
    use std::os::unix::process::CommandExt;
    std::process::Command::new(exe)
        .arg("daemon")
        .arg("--data-root")
        .arg(data_root)
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0)
        .spawn()
        .context("starting the daemon")?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if Client::connect(sock).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!(
        "the daemon did not come up within 10 s; see {}",
        log_path.display()
    )
}
