//! `cargo xtask bench <name>`: berth next to its peers, measured in the same run, interleaved,
//! reported as medians and ratios.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::sys::{build_release, busybox_rootfs, ensure_packages, output, workspace_root};

pub fn run(args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("store") => store(),
        Some("run") => run_bench(),
        Some("pull") => crate::bench_pull::run(),
        Some("build") => crate::bench_build::run(),
        Some("walkthrough") => crate::demo::bench(),
        Some("net") => crate::bench_net::run(&args[1..]),
        Some("runtime") => crate::bench_runtime::run_bench(&args[1..]),
        Some(other) => {
            bail!("unknown bench {other:?}: available: store, run, pull, build, walkthrough, net, runtime")
        }
        None => bail!("usage: cargo xtask bench <store|run|pull|build|walkthrough|net|runtime>"),
    }
}

pub(crate) fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

pub(crate) fn timed(cmd: &mut Command) -> Result<Duration> {
    let t = Instant::now();
    let out = cmd.stdout(Stdio::null()).stderr(Stdio::piped()).output()?;
    let d = t.elapsed();
    if !out.status.success() {
        bail!(
            "{} failed: {}",
            crate::sys::show(cmd),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(d)
}

/// The floor of unpacking `layers`: `sha256sum` each, then run `extract` (its `{l}` is the
/// layer file, `-C DIR` is appended: it must end in a tar extraction).
pub(crate) fn floor(out: &Path, layers: &[PathBuf], extract: &str) -> Result<Duration> {
    let _ = std::fs::remove_dir_all(out);
    std::fs::create_dir_all(out)?;
    let mut script = String::new();
    for (n, l) in layers.iter().enumerate() {
        let l = l.display().to_string();
        script.push_str(&format!(
            "sha256sum {l} >/dev/null && mkdir -p {o}/{n} && {x} -C {o}/{n} && ",
            o = out.display(),
            x = extract.replace("{l}", &l),
        ));
    }
    script.push_str("true");
    timed(Command::new("sh").arg("-c").arg(&script))
}

/// xorshift: fast incompressible filler, reproducible.
pub(crate) fn fill(buf: &mut [u8], seed: u64) {
    let mut x = seed | 1;
    for chunk in buf.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let b = x.to_le_bytes();
        chunk.copy_from_slice(&b[..chunk.len()]);
    }
}

fn layer_tar(seed: u64, files: usize, size: usize) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut data = vec![0u8; size];
    for i in 0..files {
        fill(&mut data, seed * 1_000_003 + i as u64);
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(size as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(
            &mut h,
            format!("data{seed}/dir{}/file{i}", i % 16),
            &data[..],
        )?;
    }
    Ok(b.into_inner()?)
}

fn hex_sha(b: &[u8]) -> String {
    hex::encode(Sha256::digest(b))
}

/// A 5-layer docker-archive of about 200 MB: busybox plus four layers of 50 MB in 200 files.
fn make_archive(dir: &Path) -> Result<(PathBuf, Vec<PathBuf>)> {
    let base = std::fs::read(busybox_rootfs(dir)?)?;
    let mut layers = vec![base];
    for seed in 1..=4 {
        layers.push(layer_tar(seed, 200, 256 << 10)?);
    }
    let mut files = Vec::new();
    let mut ar = tar::Builder::new(std::fs::File::create(dir.join("bench.tar"))?);
    let mut diff_ids = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let hex = hex_sha(l);
        let p = dir.join(format!("layer{i}.tar"));
        std::fs::write(&p, l)?;
        files.push(p);
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(l.len() as u64);
        ar.append_data(&mut h, format!("{hex}.tar"), &l[..])?;
        diff_ids.push(format!("sha256:{hex}"));
    }
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
        "config": { "Cmd": ["/bin/sh"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    });
    let config = serde_json::to_vec(&config)?;
    let chex = hex_sha(&config);
    let manifest = serde_json::json!([{
        "Config": format!("{chex}.json"),
        "RepoTags": ["bench/store:latest"],
        "Layers": diff_ids.iter().map(|d| format!("{}.tar", &d[7..])).collect::<Vec<_>>(),
    }]);
    let manifest = serde_json::to_vec(&manifest)?;
    for (name, bytes) in [
        (format!("{chex}.json"), config),
        ("manifest.json".to_owned(), manifest),
    ] {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(bytes.len() as u64);
        ar.append_data(&mut h, name, &bytes[..])?;
    }
    ar.into_inner()?;
    Ok((dir.join("bench.tar"), files))
}

fn store() -> Result<()> {
    ensure_packages(&["podman", "busybox-static", "coreutils", "tar"])?;
    let berth = build_release()?;
    let dir = workspace_root().join("target/bench-store");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let (archive, layer_files) = make_archive(&dir)?;
    let size = std::fs::metadata(&archive)?.len();
    println!(
        "archive: {} ({:.0} MB, 5 layers)",
        archive.display(),
        size as f64 / 1e6
    );

    let socket = dir.join("berth.sock");
    let host = format!("unix://{}", socket.display());
    let mut daemon = Command::new(&berth)
        .args(["daemon", "--bridge", "none", "--data-root"])
        .arg(dir.join("berth-data"))
        .args(["-H", &host])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("daemon.log"))?)
        .spawn()
        .context("starting the berth daemon")?;
    let t0 = Instant::now();
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        if t0.elapsed() > Duration::from_secs(10) {
            let _ = daemon.kill();
            bail!("berth daemon did not start");
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let result = (|| -> Result<()> {
        let (mut b, mut p, mut f) = (Vec::new(), Vec::new(), Vec::new());
        let runs = 5;
        for i in 0..runs {
            // berth: load into an empty store (previous image removed and collected)
            let _ = output(Command::new(&berth).args(["-H", &host, "rmi", "bench/store"]));
            b.push(timed(
                Command::new(&berth)
                    .args(["-H", &host, "load", "-i"])
                    .arg(&archive),
            )?);

            let proot = dir.join("podman-root");
            let _ = std::fs::remove_dir_all(&proot);
            p.push(timed(
                Command::new("podman")
                    .arg("--root")
                    .arg(&proot)
                    .arg("--runroot")
                    .arg(dir.join("podman-run"))
                    .args(["--storage-driver", "overlay", "load", "-i"])
                    .arg(&archive),
            )?);

            // floor: hash and extract every layer with coreutils and GNU tar
            f.push(floor(&dir.join("floor"), &layer_files, "tar -xf {l}")?);
            eprintln!(
                "run {}/{runs}: berth {:?}, podman {:?}, floor {:?}",
                i + 1,
                b[i],
                p[i],
                f[i]
            );
        }
        let (mb, mp, mf) = (median(b), median(p), median(f));
        println!(
            "\nbench store: load of a {:.0} MB, 5-layer docker-archive (median of {runs})",
            size as f64 / 1e6
        );
        println!("  berth load         {:>8.1} ms", mb.as_secs_f64() * 1e3);
        println!("  podman load        {:>8.1} ms", mp.as_secs_f64() * 1e3);
        println!(
            "  sha256sum + tar -x {:>8.1} ms (floor)",
            mf.as_secs_f64() * 1e3
        );
        println!(
            "  podman / berth = {:.2}x faster (goal >= 2x)",
            mp.as_secs_f64() / mb.as_secs_f64()
        );
        println!(
            "  berth / floor  = {:.2}x (goal <= 1.3x)",
            mb.as_secs_f64() / mf.as_secs_f64()
        );
        Ok(())
    })();
    let _ = Command::new("kill").arg(daemon.id().to_string()).status();
    let _ = daemon.wait();
    let _ = std::fs::remove_dir_all(dir.join("podman-root"));
    result
}

pub(crate) fn wait_for_socket(p: &Path, what: &str) -> Result<()> {
    let t0 = Instant::now();
    while std::os::unix::net::UnixStream::connect(p).is_err() {
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("{what} did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// podman as DEVELOPERS.md configures it on this machine.
pub(crate) fn configure_podman() -> Result<()> {
    std::fs::create_dir_all("/etc/containers")?;
    // podman may not raise a hard limit here: give it the host's own (nofile and nproc).
    let limits = std::fs::read_to_string("/proc/self/limits")?;
    let hard = |name: &str| {
        limits
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().rev().nth(1).map(str::to_owned))
            .unwrap_or_else(|| "1024".into())
    };
    // podman 4.3 lowers its own RLIMIT_NPROC to 32768 before starting conmon: asking for
    // more fails in the runtime (runc: "error setting rlimit type 6").
    let nofile = hard("Max open files");
    let nproc = hard("Max processes")
        .parse::<u64>()
        .map_or(32768, |n| n.min(32768));
    std::fs::write(
        "/etc/containers/containers.conf",
        format!(
            "[containers]\ndefault_ulimits = [\"nofile={nofile}:{nofile}\", \"nproc={nproc}:{nproc}\"]\n[engine]\ncgroup_manager = \"cgroupfs\"\nruntime = \"runc\"\n"
        ),
    )?;
    Ok(())
}

/// `run --rm busybox true`: berth vs podman (--net=none) vs dockerd 20.10 (--net=none), interleaved.
/// VmRSS (KiB) of the process whose pid is in `pidfile`.
fn daemon_rss(pidfile: &Path) -> Result<u64> {
    let pid = std::fs::read_to_string(pidfile)
        .with_context(|| format!("reading {}", pidfile.display()))?;
    rss_of(pid.trim()).with_context(|| format!("no VmRSS for pid {}", pid.trim()))
}

fn rss_of(pid: &str) -> Option<u64> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The largest VmRSS (KiB) of the processes called `name` (dockerd's managed containerd).
fn process_rss_by_name(name: &str) -> Option<u64> {
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .filter(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim() == name))
        .filter_map(|e| rss_of(&e.file_name().to_string_lossy()))
        .max()
}

/// Start `many` containers one after another, then remove them all with one command:
/// (seconds to start them, seconds to remove them).
fn fleet(
    name: &str,
    many: u32,
    start: impl Fn() -> Command,
    rm: impl Fn(&[String]) -> Command,
) -> Result<(f64, f64)> {
    let t0 = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..many {
        ids.push(output(&mut start())?.trim().to_owned());
    }
    let up = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    output(&mut rm(&ids))?;
    let down = t1.elapsed().as_secs_f64();
    eprintln!("{name}: {many} started in {up:.2} s, removed in {down:.2} s");
    Ok((up, down))
}

fn run_bench() -> Result<()> {
    ensure_packages(&[
        "podman",
        "runc",
        "docker.io",
        "busybox-static",
        "util-linux",
    ])?;
    let berth = build_release()?;
    let dir = workspace_root().join("target/bench-run");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let rootfs = busybox_rootfs(&dir)?;
    configure_podman()?;
    let sock = dir.join("berth.sock");
    let dsock = dir.join("docker.sock");
    // berth as it is installed (bridge networking on), in a network namespace of its own so
    // that its bridge and rules stay off the host; its containers run `--network none`, as
    // the peers' do
    let mut berthd = Command::new("unshare")
        .args([
            "--mount",
            "--net",
            "--propagation",
            "private",
            "--fork",
            // a clean shutdown, which removes its exec-root
            "--kill-child=SIGTERM",
            "--",
        ])
        .arg(&berth)
        .args(["daemon", "--cgroup-parent", "berth-bench", "--data-root"])
        .arg(dir.join("berth-data"))
        .arg("-H")
        .arg(format!("unix://{}", sock.display()))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("berth.log"))?)
        .spawn()?;
    let mut dockerd = Command::new("unshare")
        .args([
            "--pid",
            "--mount",
            "--net",
            "--mount-proc",
            "--propagation",
            "private",
            "--fork",
            "--kill-child=SIGKILL",
            "--",
            "dockerd",
        ])
        .arg("-H")
        .arg(format!("unix://{}", dsock.display()))
        .arg("--data-root")
        .arg(dir.join("docker-data"))
        .arg("--exec-root")
        .arg(dir.join("docker-exec"))
        .arg("--pidfile")
        .arg(dir.join("docker.pid"))
        .args(["--iptables=false", "--ip-masq=false", "--bridge=none"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("dockerd.log"))?)
        .spawn()?;
    let result = (|| -> Result<()> {
        wait_for_socket(&sock, "berth daemon")?;
        wait_for_socket(&dsock, "dockerd")?;
        let host = format!("unix://{}", sock.display());
        let dhost = format!("unix://{}", dsock.display());
        output(
            Command::new(&berth)
                .args(["-H", &host, "import", "-c", "CMD [\"/bin/sh\"]"])
                .arg(&rootfs)
                .arg("bench/busybox"),
        )?;
        output(
            Command::new("docker")
                .env("DOCKER_HOST", &dhost)
                .args(["import", "-c", "CMD [\"/bin/sh\"]"])
                .arg(&rootfs)
                .arg("bench/busybox"),
        )?;
        let proot = dir.join("podman-root");
        let prun = dir.join("podman-run");
        let podman = |args: &[&str]| {
            let mut c = Command::new("podman");
            c.arg("--root")
                .arg(&proot)
                .arg("--runroot")
                .arg(&prun)
                .args(args);
            c
        };
        output(
            podman(&[
                "import",
                "-c",
                "CMD [\"/bin/sh\"]",
                &rootfs.display().to_string(),
                "bench/busybox",
            ])
            .stdin(Stdio::null()),
        )?;
        // podman 4.3 + runc may refuse to start here (it asks for an RLIMIT_NPROC above the
        // host's hard limit): then it is reported as failing and the bench goes on with docker.
        let podman_run = || {
            podman(&[
                "run",
                "--rm",
                "--net=none",
                "localhost/bench/busybox",
                "true",
            ])
        };
        let mut podman_error = timed(&mut podman_run()).err();
        let (mut b, mut p, mut d) = (Vec::new(), Vec::new(), Vec::new());
        let runs = 15;
        let berth_run = || {
            let mut c = Command::new(&berth);
            c.args([
                "-H",
                &host,
                "run",
                "--rm",
                "--network",
                "none",
                "bench/busybox",
                "true",
            ]);
            c
        };
        for _ in 0..3 {
            timed(&mut berth_run())?;
        }
        // Each run starts on a settled machine: what the one before left running in the
        // background (podman's cleanup process, dockerd's, berth's next spare monitor) would
        // otherwise land on the next one's clock, whoever's it is.
        let settle = || std::thread::sleep(Duration::from_millis(250));
        for i in 0..runs {
            settle();
            b.push(timed(&mut berth_run())?);
            settle();
            if podman_error.is_none() {
                match timed(&mut podman_run()) {
                    Ok(t) => p.push(t),
                    Err(e) => podman_error = Some(e),
                }
            }
            let mut dr = Command::new("docker");
            dr.env("DOCKER_HOST", &dhost).args([
                "run",
                "--rm",
                "--net=none",
                "bench/busybox",
                "true",
            ]);
            settle();
            d.push(timed(&mut dr)?);
            eprintln!(
                "run {}/{runs}: berth {:?}, podman {:?}, docker {:?}",
                i + 1,
                b[i],
                p.get(i),
                d[i]
            );
        }
        let (mb, md) = (median(b), median(d));
        println!("\nbench run: `run --rm busybox true`, client to exit code (median of {runs}, interleaved)");
        println!("  berth          {:>7.1} ms", mb.as_secs_f64() * 1e3);
        match &podman_error {
            None => {
                let mp = median(p);
                println!(
                    "  podman (runc)  {:>7.1} ms  --net=none",
                    mp.as_secs_f64() * 1e3
                );
                println!(
                    "  podman / berth = {:.1}x (goal >= 20x)",
                    mp.as_secs_f64() / mb.as_secs_f64()
                );
            }
            Some(e) => println!(
                "  podman (runc)  failed on this machine: {}",
                e.to_string().lines().last().unwrap_or("")
            ),
        }
        println!(
            "  dockerd 20.10  {:>7.1} ms  --net=none",
            md.as_secs_f64() * 1e3
        );
        println!(
            "  docker / berth = {:.1}x; goal for berth: <= 15 ms",
            md.as_secs_f64() / mb.as_secs_f64()
        );

        // 100 containers started detached, then removed: throughput
        let many = 100;
        let rss_idle = daemon_rss(&dir.join("berth-data/daemon.pid"))?;
        let bf = fleet(
            "berth",
            many,
            || {
                let mut c = Command::new(&berth);
                c.args([
                    "-H",
                    &host,
                    "run",
                    "-d",
                    "--network",
                    "none",
                    "bench/busybox",
                    "sleep",
                    "600",
                ]);
                c
            },
            |ids: &[String]| {
                let mut c = Command::new(&berth);
                c.args(["-H", &host, "rm", "-f"]).args(ids);
                c
            },
        )?;
        let rss_busy = daemon_rss(&dir.join("berth-data/daemon.pid"))?;
        let df = fleet(
            "docker",
            many,
            || {
                let mut c = Command::new("docker");
                c.env("DOCKER_HOST", &dhost).args([
                    "run",
                    "-d",
                    "--net=none",
                    "bench/busybox",
                    "sleep",
                    "600",
                ]);
                c
            },
            |ids: &[String]| {
                let mut c = Command::new("docker");
                c.env("DOCKER_HOST", &dhost).args(["rm", "-f"]).args(ids);
                c
            },
        )?;
        let pf = if podman_error.is_none() {
            Some(fleet(
                "podman",
                many,
                || {
                    let mut c = podman(&[
                        "run",
                        "-d",
                        "--net=none",
                        "localhost/bench/busybox",
                        "sleep",
                        "600",
                    ]);
                    c.stdin(Stdio::null());
                    c
                },
                |ids: &[String]| {
                    let mut c = podman(&["rm", "-f", "-t", "0"]);
                    c.args(ids).stdin(Stdio::null());
                    c
                },
            )?)
        } else {
            None
        };
        let per_s = |t: f64| f64::from(many) / t;
        println!("\nbench run: {many} containers `run -d ... sleep 600` one after another, then one `rm -f` of all");
        println!(
            "  berth          {:>6.1} starts/s, rm -f of {many}: {:>6.2} s",
            per_s(bf.0),
            bf.1
        );
        println!(
            "  dockerd 20.10  {:>6.1} starts/s, rm -f of {many}: {:>6.2} s  (berth {:.1}x, {:.1}x)",
            per_s(df.0),
            df.1,
            df.0 / bf.0,
            df.1 / bf.1
        );
        if let Some(pf) = pf {
            println!("  podman (runc)  {:>6.1} starts/s, rm -f of {many}: {:>6.2} s  (berth {:.1}x, {:.1}x)", per_s(pf.0), pf.1, pf.0 / bf.0, pf.1 / bf.1);
        }
        let rss_after = daemon_rss(&dir.join("berth-data/daemon.pid"))?;
        // dockerd runs in a PID namespace of its own: its pidfile holds a pid of that
        // namespace, so find it by name
        let dockerd_rss = process_rss_by_name("dockerd").context("no dockerd process")?;
        let containerd_rss = process_rss_by_name("containerd").unwrap_or(0);
        let mib = |k: u64| k as f64 / 1024.0;
        println!("\nbench run: daemon resident memory (VmRSS)");
        println!(
            "  berth daemon   idle {:>6.1} MiB, with {many} containers {:>6.1} MiB, idle after {:>6.1} MiB (goal idle <= 15 MiB)",
            mib(rss_idle), mib(rss_busy), mib(rss_after)
        );
        println!(
            "  dockerd 20.10  idle {:>6.1} MiB (+ containerd {:>6.1} MiB) = {:.1}x berth's",
            mib(dockerd_rss),
            mib(containerd_rss),
            (dockerd_rss + containerd_rss) as f64 / rss_after.max(1) as f64
        );
        Ok(())
    })();
    let _ = berthd.kill();
    let _ = berthd.wait();
    // the daemon (SIGTERM) removes its socket last but one: wait for that
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while sock.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let _ = dockerd.kill();
    let _ = dockerd.wait();
    let _ = Command::new("podman")
        .arg("--root")
        .arg(dir.join("podman-root"))
        .arg("--runroot")
        .arg(dir.join("podman-run"))
        .args(["system", "reset", "-f"])
        .output();
    for c in std::fs::read_dir("/sys/fs/cgroup")
        .map(|r| {
            r.flatten()
                .map(|e| e.path().join("berth-bench"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
    {
        let _ = std::fs::remove_dir(c);
    }
    result
}

#[cfg(test)]
mod floor_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn floor_hashes_and_extracts_every_layer() {
        let dir = std::env::temp_dir().join(format!("berth-floor-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let layer = dir.join("l.tar");
        std::fs::write(&layer, layer_tar(1, 2, 1024).unwrap()).unwrap();
        floor(&dir.join("out"), &[layer], "tar -xf {l}").unwrap();
        assert!(dir.join("out/0/data1/dir1/file1").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
