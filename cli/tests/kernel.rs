//! End to end: the scenarios whose outcome depends on the kernel and its cgroup version —
//! start/stop/exec, memory and pids limits (read back from the container's own cgroup files,
//! v1 or v2, and enforced), the bridge with a published port, and an overlay of many layers.
//! `cargo xtask test` runs them on the host; `cargo xtask vm-test` runs them again in a VM on
//! Debian's cloud kernel with only cgroup v2. Privileged: run as root, each daemon in fresh
//! namespaces with a scratch data root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use support::{busybox_rootfs_tar, fails, is_root, ok, run, TestDaemon};

fn daemon_with_busybox() -> TestDaemon {
    assert!(is_root(), "needs root: run through `cargo xtask test`");
    let d = TestDaemon::start();
    d.import_busybox("busybox", &[("www/index.html", b"hello from web\n")]);
    d
}

fn inspect(d: &TestDaemon, c: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&ok(d.berth(&["container", "inspect", c]))).unwrap();
    v[0].clone()
}

/// Retry `f` until it gives a value (the guest under TCG is slow to start a server); the
/// last error shows when it never does.
fn eventually(what: &str, mut f: impl FnMut() -> Result<String, String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match f() {
            Ok(v) => return v,
            Err(e) if Instant::now() > deadline => panic!("timed out waiting for {what}: {e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The cgroup file of a container's init process: `v2` in the unified hierarchy when the
/// host has only cgroup v2, else `v1` in the `controller` hierarchy.
fn cgroup_file(pid: u64, controller: &str, v1: &str, v2: &str) -> PathBuf {
    let pure_v2 = std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (_, ctls, path) = (parts.next(), parts.next().unwrap(), parts.next().unwrap());
        let path = path.trim_start_matches('/');
        if pure_v2 && ctls.is_empty() {
            return PathBuf::from("/sys/fs/cgroup").join(path).join(v2);
        }
        if !pure_v2 && ctls.split(',').any(|c| c == controller) {
            return PathBuf::from("/sys/fs/cgroup")
                .join(controller)
                .join(path)
                .join(v1);
        }
    }
    panic!("no {controller} cgroup for pid {pid}:\n{cgroups}");
}

fn read_trimmed(p: &std::path::Path) -> String {
    std::fs::read_to_string(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .trim()
        .to_owned()
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn kernel_start_stop_exec() {
    let d = daemon_with_busybox();
    let out = run(&mut d.berth(&["run", "--rm", "busybox", "sh", "-c", "echo out; exit 3"]));
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");

    ok(d.berth(&["run", "-d", "--name", "s", "busybox", "sleep", "600"]));
    assert_eq!(ok(d.berth(&["exec", "s", "echo", "hi"])), "hi\n");
    let ps = ok(d.berth(&["exec", "s", "ps"]));
    assert!(ps.contains("sleep 600"), "{ps}");
    ok(d.berth(&["stop", "-t", "1", "s"]));
    let st = &inspect(&d, "s")["State"];
    assert_eq!(st["Running"], false, "{st}");
    ok(d.berth(&["start", "s"]));
    assert_eq!(inspect(&d, "s")["State"]["Running"], true);
    assert_eq!(ok(d.berth(&["exec", "s", "echo", "again"])), "again\n");
    ok(d.berth(&["rm", "-f", "s"]));
    let ps = ok(d.berth(&["ps", "-aq"]));
    assert!(ps.trim().is_empty(), "{ps}");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn kernel_memory_and_pids_limits() {
    let d = daemon_with_busybox();
    ok(d.berth(&[
        "run",
        "-d",
        "--name",
        "lim",
        "-m",
        "64m",
        "--pids-limit",
        "20",
        "busybox",
        "sleep",
        "600",
    ]));
    let pid = inspect(&d, "lim")["State"]["Pid"].as_u64().unwrap();
    let mem = cgroup_file(pid, "memory", "memory.limit_in_bytes", "memory.max");
    assert_eq!(read_trimmed(&mem), (64u64 << 20).to_string(), "{mem:?}");
    let pids = cgroup_file(pid, "pids", "pids.max", "pids.max");
    assert_eq!(read_trimmed(&pids), "20", "{pids:?}");

    // enforced: 100 MB in one buffer is killed by the OOM killer, the 21st process not forked
    let out = run(&mut d.berth(&[
        "exec",
        "lim",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=100M",
        "count=1",
    ]));
    assert_eq!(
        out.status.code(),
        Some(137),
        "dd under a 64m limit: {out:?}"
    );
    let err = fails(d.berth(&[
        "exec",
        "lim",
        "sh",
        "-c",
        // the sleeps let go of exec's output, or exec would wait for them to end
        "n=0; while [ $n -lt 40 ]; do sleep 60 >/dev/null 2>&1 & n=$((n+1)); done; echo all forked",
    ]));
    assert!(err.contains("fork"), "{err}");
    let current = cgroup_file(pid, "pids", "pids.current", "pids.current");
    let n: u64 = read_trimmed(&current).parse().unwrap();
    assert!(n <= 20, "pids.current {n} over the limit");

    // a live update reaches the same files
    ok(d.berth(&["update", "-m", "96m", "--pids-limit", "30", "lim"]));
    assert_eq!(read_trimmed(&mem), (96u64 << 20).to_string());
    assert_eq!(read_trimmed(&pids), "30");
    ok(d.berth(&["rm", "-f", "lim"]));

    // a container whose program the OOM killer ends: 137, and inspect says why
    let out = run(&mut d.berth(&[
        "run",
        "--name",
        "oom",
        "-m",
        "32m",
        "busybox",
        "busybox",
        "dd",
        "if=/dev/zero",
        "of=/dev/null",
        "bs=64M",
        "count=1",
    ]));
    assert_eq!(out.status.code(), Some(137), "{out:?}");
    let state = &inspect(&d, "oom")["State"];
    assert_eq!(state["OOMKilled"], true, "{state}");
    assert_eq!(state["ExitCode"], 137, "{state}");
    ok(d.berth(&["run", "--name", "fine", "-m", "32m", "busybox", "true"]));
    assert_eq!(inspect(&d, "fine")["State"]["OOMKilled"], false);
    ok(d.berth(&["rm", "oom", "fine"]));
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn kernel_bridge_and_published_port() {
    let d = daemon_with_busybox();
    ok(d.in_netns("busybox")
        .args(["ip", "link", "set", "lo", "up"]));
    ok(d.berth(&[
        "run", "-d", "--name", "web", "-p", "8080:80", "busybox", "httpd", "-f", "-p", "80", "-h",
        "/www",
    ]));
    let ip = inspect(&d, "web")["NetworkSettings"]["IPAddress"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(ip.starts_with("172.17."), "{ip}");
    // from the daemon's host side: the container itself, and the published port on loopback
    // and on the bridge (no `wget -T`: Debian's busybox 1.35 crashes with it)
    for url in [
        format!("http://{ip}/"),
        "http://127.0.0.1:8080/".into(),
        "http://172.17.0.1:8080/".into(),
    ] {
        let page = eventually(&url, || {
            let out = run(d.in_netns("busybox").args(["wget", "-qO-", &url]));
            if out.status.success() {
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            } else {
                Err(format!("{out:?}"))
            }
        });
        assert_eq!(page, "hello from web\n", "{url}");
    }
    // from another container on the bridge, directly and through the published port
    let out = ok(d.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        &format!("wget -qO- http://{ip}/ && wget -qO- http://172.17.0.1:8080/"),
    ]));
    assert_eq!(out, "hello from web\nhello from web\n");
    ok(d.berth(&["rm", "-f", "web"]));
    // the kernel reaps a veth pair some time after its container's netns is released
    eventually("the veths to go", || {
        let links = ok(d.in_netns("busybox").args(["ip", "-o", "link"]));
        if links.contains("veth") {
            Err(links)
        } else {
            Ok(links)
        }
    });
}

/// A docker-archive of `layers` (tarballs, bottom first) named `name`, with `CMD /bin/sh`.
fn docker_archive(name: &str, layers: &[Vec<u8>]) -> Vec<u8> {
    let hex = |b: &[u8]| hex::encode(Sha256::digest(b));
    let diff_ids: Vec<String> = layers
        .iter()
        .map(|l| format!("sha256:{}", hex(l)))
        .collect();
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": { "Cmd": ["/bin/sh"], "Env": ["PATH=/bin"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    })
    .to_string();
    let config_name = format!("{}.json", hex(config.as_bytes()));
    let layer_names: Vec<String> = layers
        .iter()
        .map(|l| format!("{}/layer.tar", hex(l)))
        .collect();
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [name],
        "Layers": layer_names,
    }])
    .to_string();
    let mut b = tar::Builder::new(Vec::new());
    let mut add = |path: &str, data: &[u8]| {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, path, data).unwrap();
    };
    add(&config_name, config.as_bytes());
    for (n, l) in layer_names.iter().zip(layers) {
        add(n, l);
    }
    add("manifest.json", manifest.as_bytes());
    b.into_inner().unwrap()
}

/// One small layer: `files` as (path, content); a content of `None` is a whiteout.
fn layer(files: &[(String, Option<String>)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (path, content) in files {
        let (path, data) = match content {
            Some(c) => (path.clone(), c.as_bytes()),
            None => {
                let (dir, base) = path.rsplit_once('/').unwrap();
                (format!("{dir}/.wh.{base}"), &b""[..])
            }
        };
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, &path, data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn kernel_overlay_of_many_layers() {
    const LAYERS: usize = 80;
    assert!(is_root(), "needs root: run through `cargo xtask test`");
    let d = TestDaemon::start();
    let mut layers = vec![busybox_rootfs_tar(&[])];
    for i in 1..=LAYERS {
        let mut files = vec![(format!("layers/{i:03}"), Some(format!("{i}\n")))];
        if i == 60 {
            // a later layer replaces one file and deletes another
            files.push(("layers/010".into(), Some("ten\n".into())));
            files.push(("layers/020".into(), None));
        }
        layers.push(layer(&files));
    }
    let archive = d.path("many.tar");
    std::fs::write(&archive, docker_archive("many:layers", &layers)).unwrap();
    ok(d.berth(&["load", "-i", archive.to_str().unwrap()]));
    let history = ok(d.berth(&["image", "inspect", "many:layers"]));
    let v: serde_json::Value = serde_json::from_str(&history).unwrap();
    assert_eq!(
        v[0]["RootFS"]["Layers"].as_array().map(Vec::len),
        Some(LAYERS + 1)
    );

    let out = ok(d.berth(&[
        "run",
        "--rm",
        "many:layers",
        "sh",
        "-c",
        "cat /layers/* | busybox wc -l; cat /layers/010; ls /layers/020 2>&1; \
         echo new > /layers/new && cat /layers/new",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0].trim(), (LAYERS - 1).to_string(), "{out}");
    assert_eq!(lines[1], "ten", "{out}");
    assert!(lines[2].contains("No such file"), "{out}");
    assert_eq!(lines[3], "new", "{out}");
}
