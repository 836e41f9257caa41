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

/// What `examples/walkthrough.sh` and its namespace need on the host.
const WALK_PACKAGES: [&str; 7] = [
    "busybox-static",
    "docker-registry",
    "apache2-utils",
    "openssl",
    "util-linux",
    "iproute2",
    "nftables",
];

pub fn run() -> Result<()> {
    crate::sys::ensure_packages(&WALK_PACKAGES)?;
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
/// registry, localhost:4000 — all gone with the namespace. `client` is `berth`, `docker`
/// (against a berth daemon) or `podman` (no daemon; for `bench walkthrough`). Whatever is in
/// `dir` from an earlier run (images, build cache) is kept: a second run is the warm one.
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
    let cli = match client {
        "docker" => "docker".to_owned(),
        "podman" => format!(
            "podman --root {} --runroot {}",
            dir.join("podman-root").display(),
            "/tmp/berth-walk-podman-run"
        ),
        _ => format!("{} -H {host}", berth.display()),
    };
    let _ = std::fs::remove_file(&socket);
    // berth: the daemon lives as long as the inner shell; containers are removed before it
    // stops (they would outlive it by design). podman: its config is a private copy with the
    // registry's CA, so the host's /etc/containers is left as it was.
    let inner = r#"set -e
ip link set lo up
if [ "$CLIENT" = podman ]; then
    rm -rf "$DIR/etc-containers"
    mkdir -p "$DIR/etc-containers" "$CERTS_D"
    cp -a /etc/containers/. "$DIR/etc-containers/"
    rm -rf "$DIR/etc-containers/certs.d"
    ln -s "$CERTS_D" "$DIR/etc-containers/certs.d"
    mount --bind "$DIR/etc-containers" /etc/containers
    stop() { $CLI rm -a -f -t 0 >/dev/null 2>&1 || true; $CLI network rm -f friendly >/dev/null 2>&1 || true; }
else
    "$BERTH" daemon --data-root "$DIR/data" -H "$HOST" --certs-dir "$CERTS_D" >"$DIR/daemon.log" 2>&1 &
    DAEMON=$!
    stop() {
        ids=$("$BERTH" -H "$HOST" ps -aq 2>/dev/null || true)
        [ -z "$ids" ] || "$BERTH" -H "$HOST" rm -f $ids >/dev/null 2>&1 || true
        kill $DAEMON 2>/dev/null || true
        wait $DAEMON 2>/dev/null || true
    }
    for _ in $(seq 200); do [ -S "$SOCKET" ] && break; sleep 0.05; done
    [ -S "$SOCKET" ] || { echo "the daemon did not start; see $DIR/daemon.log" >&2; exit 1; }
    echo "$ berth daemon -H $HOST &   (in a private network namespace)"
fi
trap stop EXIT
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
        .env("CLIENT", client)
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
            "the walkthrough with {client} failed ({status}); daemon log: {}",
            dir.join("daemon.log").display()
        );
    }
    Ok(())
}

/// `cargo xtask bench walkthrough`: the whole walkthrough with berth and with podman, cold
/// (nothing stored) and warm (a second run on the same storage), wall time of each.
pub fn bench() -> Result<()> {
    crate::sys::ensure_packages(&WALK_PACKAGES)?;
    crate::sys::ensure_packages(&["podman", "runc"])?;
    crate::bench::configure_podman()?;
    let berth = build_release()?;
    let root = workspace_root().join("target/bench-walkthrough");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root)?;
    let python = crate::rootfs::ensure("python")?;
    let redis = crate::rootfs::ensure("redis")?;
    let busybox = busybox_rootfs(&root)?;
    let mut rows = Vec::new();
    for client in ["berth", "podman"] {
        let dir = root.join(client);
        std::fs::create_dir_all(&dir)?;
        let mut times = Vec::new();
        for _ in ["cold", "warm"] {
            let t = std::time::Instant::now();
            walkthrough(&berth, &dir, client, &python, &redis, &busybox)?;
            times.push(t.elapsed());
        }
        if client == "podman" {
            let _ = Command::new("podman")
                .arg("--root")
                .arg(dir.join("podman-root"))
                .arg("--runroot")
                .arg("/tmp/berth-walk-podman-run")
                .args(["system", "reset", "-f"])
                .output();
            let _ = std::fs::remove_dir_all("/tmp/berth-walk-podman-run");
        }
        rows.push((client, times));
    }
    println!(
        "\nwalkthrough, wall time (includes `container stop` waiting 10 s for python as PID 1):"
    );
    for (client, t) in &rows {
        println!(
            "  {client:<7} cold {:>7.1} s   warm {:>7.1} s",
            t[0].as_secs_f64(),
            t[1].as_secs_f64()
        );
    }
    if let [(_, b), (_, p)] = rows.as_slice() {
        println!(
            "  podman/berth: cold {:.2}x, warm {:.2}x",
            p[0].as_secs_f64() / b[0].as_secs_f64(),
            p[1].as_secs_f64() / b[1].as_secs_f64()
        );
    }
    Ok(())
}
