//! End to end: pull, push, login, logout, search through berth's CLI and the real docker CLI,
//! against Debian's docker-registry running on loopback inside the daemon's own network
//! namespace, with skopeo as the third party that checks what berth pushed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::registry::TestRegistry;
use support::{busybox_rootfs_tar, fails, is_root, ok, require, TestDaemon};

fn image_id(d: &TestDaemon, name: &str) -> String {
    ok(d.berth(&["image", "inspect", name]))
        .split("\"Id\": \"")
        .nth(1)
        .and_then(|s| s.split('"').next())
        .unwrap()
        .to_owned()
}

fn check_clean(d: &TestDaemon) {
    let out = ok(d.berth(&["system", "check"]));
    assert!(!out.to_lowercase().contains("corrupt"), "{out}");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn push_and_pull_round_trips_with_skopeo_and_run_pulls_missing_images() {
    assert!(is_root(), "needs root: run through `cargo xtask test`");
    require("skopeo");
    let d = TestDaemon::start();
    let reg = TestRegistry::plain(&d, 5000);
    let id = d.import_busybox("busybox", &[]);
    let remote = format!("{}/e2e/busybox:v1", reg.host);

    // push with berth; skopeo sees the same manifest digest berth reported
    ok(d.berth(&["tag", "busybox", &remote]));
    let out = ok(d.berth(&["push", &remote]));
    assert!(
        out.contains(&format!(
            "The push refers to repository [{}/e2e/busybox]",
            reg.host
        )),
        "{out}"
    );
    let pushed = out
        .lines()
        .find_map(|l| l.strip_prefix("v1: digest: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no digest line in {out}"))
        .to_owned();
    let inspect = ok(d.in_netns("skopeo").args([
        "inspect",
        "--tls-verify=false",
        &format!("docker://{remote}"),
    ]));
    assert!(
        inspect.contains(&pushed),
        "skopeo sees another digest: {inspect}"
    );
    // skopeo pulls it whole (every blob digest-checked) into an OCI layout
    let oci = d.path("skopeo-pulled");
    ok(d.in_netns("skopeo").args([
        "copy",
        "--src-tls-verify=false",
        &format!("docker://{remote}"),
        &format!("oci:{}:v1", oci.display()),
    ]));
    assert!(oci.join("index.json").exists());
    // a second push finds every layer there
    let out = ok(d.berth(&["push", &remote]));
    assert!(out.contains("Layer already exists"), "{out}");
    // podman pulls what berth pushed, to the same digest
    let proot = d.path("podman");
    let podman = |args: &[&str]| {
        let mut c = d.in_netns("podman");
        c.arg("--root")
            .arg(proot.join("root"))
            .arg("--runroot")
            .arg(proot.join("run"))
            .args(["--storage-driver", "vfs"])
            .args(args);
        c
    };
    ok(podman(&["pull", "-q", "--tls-verify=false", &remote]));
    let pd = ok(podman(&[
        "image",
        "inspect",
        "--format",
        "{{.Digest}}",
        &remote,
    ]));
    assert_eq!(pd.trim(), pushed, "podman pulled another digest");
    let _ = ok(podman(&["system", "reset", "-f"]));

    // pull back into an empty store: same image ID, the digest as RepoDigest
    ok(d.berth(&["rmi", &remote, "busybox"]));
    fails(d.berth(&["image", "inspect", &remote]));
    let out = ok(d.berth(&["pull", &remote]));
    assert!(out.contains("Pull complete"), "{out}");
    assert!(out.contains(&format!("Digest: {pushed}")), "{out}");
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {remote}")),
        "{out}"
    );
    assert_eq!(image_id(&d, &remote), id);
    let insp = ok(d.berth(&["image", "inspect", &remote]));
    assert!(
        insp.contains(&format!("{}/e2e/busybox@{pushed}", reg.host)),
        "{insp}"
    );
    // by digest too
    ok(d.berth(&[
        "image",
        "inspect",
        &format!("{}/e2e/busybox@{pushed}", reg.host),
    ]));
    // a second pull is only a manifest check
    let out = ok(d.berth(&["pull", &remote]));
    assert!(out.contains("Already exists"), "{out}");
    assert!(
        out.contains(&format!("Status: Image is up to date for {remote}")),
        "{out}"
    );

    // skopeo pushes an image (our save archive, re-tagged); berth pulls it and runs it
    ok(d.berth(&["tag", &remote, "other:1"]));
    let archive = d.path("other.tar");
    ok(d.berth(&["save", "-o", archive.to_str().unwrap(), "other:1"]));
    let sk = format!("{}/e2e/from-skopeo:latest", reg.host);
    ok(d.in_netns("skopeo").args([
        "copy",
        "--dest-tls-verify=false",
        &format!("docker-archive:{}", archive.display()),
        &format!("docker://{sk}"),
    ]));
    let out = ok(d.berth(&["run", "--rm", &sk, "echo", "pulled and ran"]));
    assert!(out.contains("pulled and ran"), "{out}");
    ok(d.berth(&["image", "inspect", &sk]));

    // errors: unknown tag, unknown repository, an unreachable registry
    let err = fails(d.berth(&["pull", &format!("{}/e2e/busybox:nope", reg.host)]));
    assert!(
        err.contains("not found") || err.contains("unknown"),
        "{err}"
    );
    let err = fails(d.berth(&["pull", "127.0.0.1:5999/none:1"]));
    assert!(err.contains("127.0.0.1:5999"), "{err}");
    let err = fails(d.berth(&["push", "never-tagged:1"]));
    assert!(err.contains("does not exist locally"), "{err}");

    // search a v2 registry by catalog
    let out = ok(d.berth(&["search", &format!("{}/e2e", reg.host)]));
    assert!(out.contains(&format!("{}/e2e/busybox", reg.host)), "{out}");
    assert!(
        out.contains(&format!("{}/e2e/from-skopeo", reg.host)),
        "{out}"
    );
    check_clean(&d);
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn tls_registry_with_login_through_berth_and_the_docker_cli() {
    assert!(is_root(), "needs root: run through `cargo xtask test`");
    let d = TestDaemon::start_with(&["--certs-dir", "{dir}/certs.d"]);
    let reg = TestRegistry::tls(&d, 5443, &[("alice", "s3cret")]);
    reg.certs_d(&d.path("certs.d"));
    d.import_busybox("busybox", &[]);
    let remote = format!("{}/alice/app:part2", reg.host);
    let docker_config = d.path("berth-config");
    let berth = |args: &[&str]| {
        let mut c = d.berth(args);
        c.env("DOCKER_CONFIG", &docker_config);
        c
    };
    ok(berth(&["tag", "busybox", &remote]));

    // not logged in: the push is refused with a clear message
    let err = fails(berth(&["push", &remote]));
    assert!(
        err.contains("authentication required") || err.contains("unauthorized"),
        "{err}"
    );
    // wrong password: clear error, nothing stored
    let err = fails(berth(&["login", "-u", "alice", "-p", "wrong", &reg.host]));
    assert!(err.contains("incorrect username or password"), "{err}");
    assert!(!docker_config.join("config.json").exists());
    // right password from stdin
    let mut login = berth(&["login", "-u", "alice", "--password-stdin", &reg.host]);
    login.stdin(std::process::Stdio::piped());
    login.stdout(std::process::Stdio::piped());
    login.stderr(std::process::Stdio::piped());
    let mut child = login.spawn().unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), b"s3cret\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Login Succeeded"));
    let cfg = std::fs::read_to_string(docker_config.join("config.json")).unwrap();
    assert!(cfg.contains(&reg.host), "{cfg}");

    ok(berth(&["push", &remote]));
    ok(berth(&["rmi", &remote]));
    let out = ok(berth(&["pull", &remote]));
    assert!(out.contains("Downloaded newer image"), "{out}");

    // the docker CLI: login (through POST /auth), push, pull, search, against berth
    let docker = |args: &[&str]| d.docker(args);
    let err = fails(docker(&["login", "-u", "alice", "-p", "nope", &reg.host]));
    assert!(err.contains("incorrect username or password"), "{err}");
    ok(docker(&["login", "-u", "alice", "-p", "s3cret", &reg.host]));
    let other = format!("{}/alice/app:docker-cli", reg.host);
    ok(docker(&["tag", "busybox", &other]));
    let out = ok(docker(&["push", &other]));
    assert!(out.contains("docker-cli: digest: sha256:"), "{out}");
    ok(docker(&["rmi", &other]));
    let out = ok(docker(&["pull", &other]));
    assert!(
        out.contains(&format!("Status: Downloaded newer image for {other}")),
        "{out}"
    );
    let out = ok(docker(&["search", &format!("{}/alice", reg.host)]));
    assert!(out.contains(&format!("{}/alice/app", reg.host)), "{out}");

    // logout removes the stored credentials; pulls then need them again
    let out = ok(berth(&["logout", &reg.host]));
    assert!(out.contains("Removing login credentials"), "{out}");
    ok(berth(&["rmi", &remote]));
    let err = fails(berth(&["pull", &remote]));
    assert!(
        err.contains("authentication required") || err.contains("unauthorized"),
        "{err}"
    );
    check_clean(&d);
}

/// Write `bytes` as a blob of the OCI layout at `dir`; returns (digest, size).
fn blob(dir: &std::path::Path, bytes: &[u8]) -> (String, usize) {
    use sha2::Digest as _;
    let hex = hex::encode(sha2::Sha256::digest(bytes));
    std::fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
    std::fs::write(dir.join("blobs/sha256").join(&hex), bytes).unwrap();
    (format!("sha256:{hex}"), bytes.len())
}

/// An OCI layout whose index holds an amd64 and an arm64 image, each busybox plus `/arch`.
fn multi_arch_layout(dir: &std::path::Path) -> String {
    std::fs::write(dir.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
    let mut entries = Vec::new();
    for arch in ["arm64", "amd64"] {
        let tar = busybox_rootfs_tar(&[("arch", arch.as_bytes())]);
        let (diff_id, _) = blob(dir, &tar);
        let gz = support::gzip(&tar);
        let (layer, lsize) = blob(dir, &gz);
        let config = serde_json::json!({
            "architecture": arch, "os": "linux", "config": { "Cmd": ["/bin/cat", "/arch"] },
            "rootfs": { "type": "layers", "diff_ids": [diff_id] },
        });
        let (cfg, csize) = blob(dir, &serde_json::to_vec(&config).unwrap());
        let manifest = serde_json::json!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": csize },
            "layers": [{ "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": lsize }],
        });
        let (m, msize) = blob(dir, &serde_json::to_vec(&manifest).unwrap());
        entries.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": m, "size": msize,
            "platform": { "architecture": arch, "os": "linux" },
        }));
    }
    let index = serde_json::json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    });
    let bytes = serde_json::to_vec(&index).unwrap();
    let (digest, size) = blob(dir, &bytes);
    std::fs::write(
        dir.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.index.v1+json", "digest": digest, "size": size,
                "annotations": { "org.opencontainers.image.ref.name": "multi" },
            }],
        }))
        .unwrap(),
    )
    .unwrap();
    digest
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn multi_arch_index_pushed_by_skopeo_pulls_the_host_platform() {
    assert!(is_root(), "needs root: run through `cargo xtask test`");
    require("skopeo");
    let d = TestDaemon::start();
    let reg = TestRegistry::plain(&d, 5000);
    let layout = d.path("multi-oci");
    std::fs::create_dir_all(&layout).unwrap();
    let index_digest = multi_arch_layout(&layout);
    let remote = format!("{}/e2e/multi:1", reg.host);
    ok(d.in_netns("skopeo").args([
        "copy",
        "--all",
        "--dest-tls-verify=false",
        &format!("oci:{}:multi", layout.display()),
        &format!("docker://{remote}"),
    ]));
    let out = ok(d.berth(&["pull", &remote]));
    assert!(out.contains(&format!("Digest: {index_digest}")), "{out}");
    let insp = ok(d.berth(&["image", "inspect", &remote]));
    assert!(insp.contains(r#""Architecture": "amd64""#), "{insp}");
    assert!(
        insp.contains(&format!("{}/e2e/multi@{index_digest}", reg.host)),
        "{insp}"
    );
    let out = ok(d.berth(&["run", "--rm", &remote]));
    assert_eq!(out.trim(), "amd64");
    // another platform on request
    ok(d.berth(&["pull", "--platform", "linux/arm64", &remote]));
    let insp = ok(d.berth(&["image", "inspect", &remote]));
    assert!(insp.contains(r#""Architecture": "arm64""#), "{insp}");
    let err = fails(d.berth(&["pull", "--platform", "linux/s390x", &remote]));
    assert!(
        err.contains("no matching manifest for linux/s390x"),
        "{err}"
    );
    check_clean(&d);
}

/// A TCP proxy in front of the registry (inside the daemon's netns, run by `busybox`-free
/// means: a thread of this test that enters the netns). Once, after `at` bytes from the
/// registry, it either drops the connection or flips one byte.
struct FaultProxy {
    port: u16,
}

#[derive(Clone, Copy)]
enum Fault {
    Drop,
    Corrupt,
}

impl FaultProxy {
    fn start(d: &TestDaemon, upstream: u16, port: u16, fault: Fault, at: usize) -> Self {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let netns = std::fs::File::open(format!(
            "/proc/{}/ns/net",
            std::fs::read_to_string(d.data_root.join("daemon.pid"))
                .unwrap()
                .trim()
        ))
        .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // This thread (and the ones it starts) live in the daemon's netns.
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&netns),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .unwrap();
            let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
            tx.send(()).unwrap();
            let fired = Arc::new(AtomicBool::new(false));
            for client in l.incoming().flatten() {
                let Ok(up) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (mut c_r, mut u_w) = (client.try_clone().unwrap(), up.try_clone().unwrap());
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut c_r, &mut u_w);
                    let _ = u_w.shutdown(std::net::Shutdown::Write);
                });
                let fired = fired.clone();
                let (mut u_r, mut c_w) = (up, client);
                std::thread::spawn(move || {
                    let mut buf = vec![0u8; 16 << 10];
                    let mut seen = 0usize;
                    loop {
                        let n = match u_r.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let chunk = &mut buf[..n];
                        if seen + n > at && !fired.load(Ordering::SeqCst) {
                            fired.store(true, Ordering::SeqCst);
                            match fault {
                                Fault::Drop => {
                                    let _ = c_w.write_all(&chunk[..at - seen]);
                                    let _ = c_w.shutdown(std::net::Shutdown::Both);
                                    return;
                                }
                                Fault::Corrupt => chunk[at - seen] ^= 0xff,
                            }
                        }
                        seen += n;
                        if c_w.write_all(chunk).is_err() {
                            break;
                        }
                    }
                    let _ = c_w.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        rx.recv().unwrap();
        Self { port }
    }
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn pulls_through_faults_resume_or_fail_cleanly() {
    assert!(is_root(), "needs root: run through `cargo xtask test`");
    let d = TestDaemon::start();
    let reg = TestRegistry::plain(&d, 5000);
    d.import_busybox("busybox", &[]);
    let remote = format!("{}/e2e/faults:1", reg.host);
    ok(d.berth(&["tag", "busybox", &remote]));
    ok(d.berth(&["push", &remote]));
    ok(d.berth(&["rmi", &remote, "busybox"]));

    // The connection drops 600 KB into the layer: the pull resumes with Range and succeeds.
    let drop = FaultProxy::start(&d, 5000, 5001, Fault::Drop, 600 << 10);
    let via = format!("127.0.0.1:{}/e2e/faults:1", drop.port);
    let out = ok(d.berth(&["pull", &via]));
    assert!(out.contains("Pull complete"), "{out}");
    let ran = ok(d.berth(&["run", "--rm", &via, "echo", "resumed"]));
    assert_eq!(ran.trim(), "resumed");
    check_clean(&d);
    ok(d.berth(&["rmi", &via]));

    // One byte flipped inside the layer: the digest check refuses it, nothing is stored.
    let bad = FaultProxy::start(&d, 5000, 5002, Fault::Corrupt, 600 << 10);
    let via = format!("127.0.0.1:{}/e2e/faults:1", bad.port);
    let err = fails(d.berth(&["pull", &via]));
    assert!(err.contains("digest mismatch"), "{err}");
    fails(d.berth(&["image", "inspect", &via]));
    check_clean(&d);
    let images = ok(d.berth(&["images", "-q"]));
    assert_eq!(images.trim(), "", "a failed pull left an image: {images}");
}
