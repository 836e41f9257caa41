//! `cargo xtask demo`: berth's main job, end to end — the Docker "get started" walkthrough
//! (`examples/walkthrough.sh`) on a scratch daemon in a private network namespace: version,
//! info, hello-world, build of the Flask + Redis app, run with a published port and a visit
//! counter, stop, login/tag/push to a TLS registry with a password, run pulling it back by
//! digest, exec -it, commit, search, rmi. Each step is printed as the tutorial shows it and
//! its result is checked.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::sys::{build_release, busybox_rootfs, workspace_root};

pub fn run() -> Result<()> {
    crate::sys::ensure_packages(&[
        "busybox-static",
        "docker-registry",
        "apache2-utils",
        "openssl",
        "util-linux",
        "iproute2",
        "nftables",
    ])?;
    let berth = build_release()?;
    let dir = workspace_root().join("target/demo");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    println!("(preparing: Debian-based base images, built once and cached)");
    let python = crate::rootfs::ensure("python")?;
    let redis = crate::rootfs::ensure("redis")?;
    let busybox = busybox_rootfs(&dir)?;
    walkthrough(&berth, &dir, "berth", &python, &redis, &busybox)
}

/// The walkthrough in a private network and mount namespace: a daemon of its own, the
/// registry, localhost:4000 — all gone with the namespace. `client` is `berth` or `docker`.
pub fn walkthrough(
    berth: &Path,
    dir: &Path,
    client: &str,
    python: &Path,
    redis: &Path,
    busybox: &Path,
) -> Result<()> {
    let socket = dir.join("berth.sock");
    let host = format!("unix://{}", socket.display());
    let cli = if client == "docker" {
        "docker".to_owned()
    } else {
        format!("{} -H {host}", berth.display())
    };
    // The daemon lives as long as the inner shell; containers are removed before it stops
    // (they would outlive it by design).
    let inner = r#"set -e
ip link set lo up
"$BERTH" daemon --data-root "$DIR/data" -H "$HOST" --certs-dir "$CERTS_D" >"$DIR/daemon.log" 2>&1 &
DAEMON=$!
stop() {
    ids=$("$BERTH" -H "$HOST" ps -aq 2>/dev/null || true)
    [ -z "$ids" ] || "$BERTH" -H "$HOST" rm -f $ids >/dev/null 2>&1 || true
    kill $DAEMON 2>/dev/null || true
    wait $DAEMON 2>/dev/null || true
}
trap stop EXIT
for _ in $(seq 200); do [ -S "$SOCKET" ] && break; sleep 0.05; done
[ -S "$SOCKET" ] || { echo "the daemon did not start; see $DIR/daemon.log" >&2; exit 1; }
echo "$ berth daemon -H $HOST &   (in a private network namespace)"
bash "$WALK"
"#;
    let status = Command::new("unshare")
        .args([
            "--net",
            "--mount",
            "--propagation",
            "private",
            "--fork",
            "--kill-child=SIGKILL",
            "--",
            "bash",
            "-c",
            inner,
        ])
        .env("BERTH", berth)
        .env("DIR", dir)
        .env("HOST", &host)
        .env("SOCKET", &socket)
        .env("CLI", &cli)
        .env("DOCKER_HOST", &host)
        .env("WORK", dir.join("work"))
        .env("CERTS_D", dir.join("certs.d"))
        .env("EXAMPLES", workspace_root().join("examples/friendlyhello"))
        .env("WALK", workspace_root().join("examples/walkthrough.sh"))
        .env("PYTHON_TAR", python)
        .env("REDIS_TAR", redis)
        .env("BUSYBOX_TAR", busybox)
        .stdin(Stdio::null())
        .status()
        .context("running the walkthrough")?;
    if !status.success() {
        bail!(
            "the walkthrough failed ({status}); daemon log: {}",
            dir.join("daemon.log").display()
        );
    }
    Ok(())
}
