//! Resource exhaustion: a data root that fills up during load, build and commit (a small
//! loop-mounted filesystem, inside the daemon's own mount namespace), and a container that
//! floods its stdout. (The memory limit's OOM kill with `OOMKilled` and the fork bomb held by
//! `--pids-limit` are in kernel.rs, which also runs on cgroup v2 in the VM.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use support::{fails, noise, ok, TestDaemon};

fn rss_kib(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{}/status", pid.trim()))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn a_full_data_root_fails_cleanly_and_keeps_the_store_whole() {
    let mut d = TestDaemon::unstarted_held(&["--bridge", "none"]);
    // a 96 MiB ext4 for the data root, mounted in the daemon's namespace only
    let img = d.path("disk.img");
    std::fs::File::create(&img)
        .unwrap()
        .set_len(96 << 20)
        .unwrap();
    ok(Command::new("mkfs.ext4").args(["-q", "-F"]).arg(&img));
    std::fs::create_dir_all(&d.data_root).unwrap();
    let holder = d.holder_pid().expect("root");
    ok(Command::new("nsenter")
        .arg(format!("--target={holder}"))
        .args(["--mount", "--", "mount", "-o", "loop"])
        .arg(&img)
        .arg(&d.data_root));
    d.spawn();
    d.import_busybox("busybox", &[]);

    // load: an archive bigger than the disk, saved by a daemon on the host's disk
    let archive = d.path("big.tar");
    {
        let other = TestDaemon::start_with(&["--bridge", "none"]);
        other.import_busybox("big", &[("big.bin", &noise(120 << 20, 7))]);
        ok(other.berth(&["save", "-o", archive.to_str().unwrap(), "big"]));
    }
    let err = fails(d.berth(&["load", "-i", archive.to_str().unwrap()]));
    assert!(
        err.to_lowercase().contains("no space left"),
        "load on a full disk: {err}"
    );
    let check = ok(d.berth(&["system", "check"]));
    assert!(check.contains("no problems found"), "{check}");

    // build: a step that writes more than fits
    let ctx = d.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN busybox dd if=/dev/urandom of=/big bs=1M count=200\n",
    )
    .unwrap();
    let err = fails(d.berth(&["build", "-t", "full", ctx.to_str().unwrap()]));
    assert!(
        err.to_lowercase().contains("no space left") || err.contains("returned a non-zero code"),
        "build on a full disk: {err}"
    );
    assert!(ok(d.berth(&["images", "-q", "full"])).trim().is_empty());
    let check = ok(d.berth(&["system", "check"]));
    assert!(check.contains("no problems found"), "{check}");

    // commit: a container's changes that do not fit twice (once written, once as a layer)
    ok(d.berth(&[
        "run",
        "--name",
        "writer",
        "busybox",
        "sh",
        "-c",
        "busybox dd if=/dev/urandom of=/data bs=1M count=40 2>/dev/null; true",
    ]));
    let out = Command::new(support::BERTH)
        .args(["-H", &d.host(), "commit", "writer", "committed"])
        .output()
        .unwrap();
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.to_lowercase().contains("no space left"),
            "commit on a full disk: {err}"
        );
        assert!(ok(d.berth(&["images", "-q", "committed"]))
            .trim()
            .is_empty());
    }
    let check = ok(d.berth(&["system", "check"]));
    assert!(check.contains("no problems found"), "{check}");

    // room again: everything works
    ok(d.berth(&["rm", "-f", "writer"]));
    let _ = d.berth(&["rmi", "-f", "committed"]).output();
    let _ = d.berth(&["rmi", "-f", "big"]).output();
    ok(d.berth(&["image", "prune", "-f"]));
    assert_eq!(
        ok(d.berth(&["run", "--rm", "busybox", "echo", "still here"])),
        "still here\n"
    );
    let check = ok(d.berth(&["system", "check"]));
    assert!(check.contains("no problems found"), "{check}");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn a_flooding_container_does_not_grow_the_daemon() {
    let d = TestDaemon::start_with(&["--bridge", "none"]);
    d.import_busybox("busybox", &[]);
    let daemon_pid = std::fs::read_to_string(d.data_root.join("daemon.pid")).unwrap();
    let before = rss_kib(&daemon_pid);
    let id = ok(d.berth(&[
        "run",
        "-d",
        "--log-opt",
        "max-size=1m",
        "--log-opt",
        "max-file=2",
        "busybox",
        "busybox",
        "yes",
        "a line the container writes as fast as it can",
    ]))
    .trim()
    .to_owned();
    // a client attached too, reading slowly: the monitor must not buffer for it
    let mut slow = d
        .berth(&["attach", "--no-stdin", &id])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let log = d.data_root.join(format!("containers/{id}/{id}-json.log"));
    let t0 = Instant::now();
    let mut written = 0u64;
    while t0.elapsed() < Duration::from_secs(3) {
        std::thread::sleep(Duration::from_millis(200));
        written = written.max(std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0));
    }
    let monitor_pid = {
        let v: serde_json::Value =
            serde_json::from_str(&ok(d.berth(&["container", "inspect", &id]))).unwrap();
        let pid = v[0]["State"]["Pid"].as_u64().unwrap();
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap()
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned()
    };
    let comm = std::fs::read_to_string(format!("/proc/{monitor_pid}/comm")).unwrap_or_default();
    assert!(
        comm.starts_with("berth"),
        "the init's parent is {comm:?}, not the monitor"
    );
    let daemon_after = rss_kib(&daemon_pid);
    let monitor = rss_kib(&monitor_pid);
    ok(d.berth(&["rm", "-f", &id]));
    let _ = slow.kill();
    let _ = slow.wait();
    eprintln!(
        "flood: daemon RSS {before} -> {daemon_after} KiB, monitor {monitor} KiB, log file up to {written} bytes"
    );
    assert!(written > 0, "the container wrote nothing");
    assert!(
        daemon_after < before + 8 * 1024,
        "the daemon grew from {before} to {daemon_after} KiB"
    );
    assert!(monitor < 32 * 1024, "the monitor holds {monitor} KiB");
    assert!(
        written <= (1 << 20) + 64 * 1024,
        "rotation keeps the log file under max-size: {written}"
    );
}
