//! Finding the daemon: `-H`, then `BERTH_HOST`, then the default socket; when the default
//! socket has no daemon, start one in the background (logging to `<data-root>/daemon.log`).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::client::Client;
use crate::{DEFAULT_DATA_ROOT, DEFAULT_SOCKET};

/// `unix:///run/x.sock` or a bare path → the socket path.
pub fn socket_path(host: &str) -> Result<PathBuf> {
    if let Some(p) = host.strip_prefix("unix://") {
        return Ok(PathBuf::from(p));
    }
    if host.starts_with('/') {
        return Ok(PathBuf::from(host));
    }
    bail!("unsupported host {host:?}: berth listens on unix sockets (unix:///path/to.sock)")
}

pub async fn client(host: Option<&str>) -> Result<Client> {
    if let Some(h) = host {
        return Ok(Client::new(socket_path(h)?));
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
    let exe = std::env::current_exe().context("finding the berth binary")?;
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
