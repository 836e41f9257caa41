//! End to end: images through the berth CLI, the real docker CLI and skopeo, against a daemon
//! on a scratch data root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::process::Stdio;

use support::{busybox_rootfs_tar, fails, gzip, ok, require, TestDaemon};

#[test]
fn berth_cli_image_lifecycle() {
    let d = TestDaemon::start();
    let id = d.import_busybox("busybox", &[]);
    assert!(id.starts_with("sha256:") && id.len() == 71, "{id}");

    let out = ok(d.berth(&["images"]));
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("REPOSITORY   TAG       IMAGE ID       CREATED"),
        "{out}"
    );
    assert!(lines[0].ends_with("SIZE"), "{out}");
    assert!(
        lines[1].starts_with("busybox      latest    ") && lines[1].contains(&id[7..19]),
        "{out}"
    );

    // import from stdin, gzip-compressed, with a message
    let mut child = d
        .berth(&["import", "-m", "from stdin", "-", "me/gz:1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(&gzip(&busybox_rootfs_tar(&[("etc/motd", b"hi")])))
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());

    ok(d.berth(&["tag", "busybox", "127.0.0.1:5000/team/bb:v1"]));
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(d.berth(&["image", "inspect", "busybox"]))).unwrap();
    assert_eq!(inspect[0]["Id"], id.as_str());
    assert_eq!(inspect[0]["Config"]["Cmd"][0], "/bin/sh");
    assert_eq!(inspect[0]["Config"]["Env"][0], "PATH=/bin");
    assert_eq!(
        inspect[0]["RepoTags"],
        serde_json::json!(["127.0.0.1:5000/team/bb:v1", "busybox:latest"])
    );
    let hist = ok(d.berth(&["history", "me/gz:1"]));
    assert!(
        hist.starts_with("IMAGE          CREATED") && hist.contains("from stdin"),
        "{hist}"
    );

    // save → rmi → load restores the same image ID and tags
    let archive = d.path("bb.tar");
    ok(d.berth(&[
        "save",
        "-o",
        archive.to_str().unwrap(),
        "busybox",
        "127.0.0.1:5000/team/bb:v1",
    ]));
    let out = ok(d.berth(&["rmi", "busybox", "127.0.0.1:5000/team/bb:v1"]));
    assert!(
        out.starts_with(&format!("Untagged: busybox:latest\nUntagged: 127.0.0.1:5000/team/bb:v1\nDeleted: {id}\nDeleted: sha256:")),
        "{out}"
    );
    assert_eq!(
        out.lines().count(),
        4,
        "one layer goes with the image: {out}"
    );
    let out = ok(d.berth(&["load", "-i", archive.to_str().unwrap()]));
    assert_eq!(
        out,
        "Loaded image: busybox:latest\nLoaded image: 127.0.0.1:5000/team/bb:v1\n"
    );
    assert!(ok(d.berth(&["images", "-q"])).contains(&id[7..19]));

    // errors are clear and lose nothing
    let err = fails(d.berth(&["rmi", "nosuch"]));
    assert!(err.contains("No such image: nosuch"), "{err}");
    let err = fails(d.berth(&["tag", "busybox", "Bad:Name"]));
    assert!(err.contains("invalid reference format"), "{err}");
    let err = fails(d.berth(&["rmi", &id[7..19]]));
    assert!(err.contains("referenced in multiple repositories"), "{err}");
    let junk = d.path("junk.tar");
    std::fs::write(&junk, b"this is not a tarball at all, not even close, and it is longer than five hundred and twelve bytes. ".repeat(8)).unwrap();
    let err = fails(d.berth(&["load", "-i", junk.to_str().unwrap()]));
    assert!(!err.is_empty());
    let err = fails(d.berth(&["import", junk.to_str().unwrap(), "junk"]));
    assert!(err.contains("Error"), "{err}");
    assert!(!ok(d.berth(&["images"])).contains("junk"));

    // prune removes only the dangling image that the re-import left behind
    d.import_busybox("me/gz:1", &[]);
    let out = ok(d.berth(&["image", "prune", "-f"]));
    assert!(
        out.contains("Deleted Images:") && out.contains("Total reclaimed space:"),
        "{out}"
    );
    let out = ok(d.berth(&["system", "df"]));
    // busybox and the re-imported me/gz:1 share their one layer: it is stored (and counted) once
    assert!(out.starts_with("TYPE            TOTAL     ACTIVE    SIZE      RECLAIMABLE\nImages          2         0         1.98MB "), "{out}");
    let out = ok(d.berth(&["system", "check"]));
    assert!(out.contains("no problems found"), "{out}");
}

#[test]
fn real_docker_cli_against_berth() {
    let d = TestDaemon::start();
    let out = ok(d.docker(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.Os}}",
    ]));
    assert_eq!(out.trim(), "1.41 linux");
    let out = ok(d.docker(&["info", "--format", "{{.Driver}} {{.Images}} {{.OSType}}"]));
    assert_eq!(out.trim(), "overlay2 0 linux");

    let tar = d.path("rootfs.tar");
    std::fs::write(&tar, busybox_rootfs_tar(&[])).unwrap();
    let id = ok(d.docker(&[
        "import",
        "--change",
        r#"CMD ["/bin/sh"]"#,
        tar.to_str().unwrap(),
        "localbusybox",
    ]));
    assert!(id.trim().starts_with("sha256:"), "{id}");
    ok(d.docker(&["tag", "localbusybox", "localbusybox:2"]));
    let out = ok(d.docker(&["images", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}"]));
    let short = &id.trim()[7..19];
    assert_eq!(
        out,
        format!("localbusybox:2 {short}\nlocalbusybox:latest {short}\n")
    );
    let out = ok(d.docker(&[
        "image",
        "inspect",
        "--format",
        "{{json .Config.Cmd}} {{.Os}}",
        "localbusybox:2",
    ]));
    assert_eq!(out.trim(), r#"["/bin/sh"] linux"#);

    let archive = d.path("docker-save.tar");
    ok(d.docker(&["save", "-o", archive.to_str().unwrap(), "localbusybox:2"]));
    let out = ok(d.docker(&["rmi", "localbusybox:2"]));
    assert_eq!(out, "Untagged: localbusybox:2\n");
    let out = ok(d.docker(&["rmi", "localbusybox"]));
    assert!(
        out.starts_with(&format!(
            "Untagged: localbusybox:latest\nDeleted: {}\nDeleted: sha256:",
            id.trim()
        )),
        "{out}"
    );
    let out = ok(d.docker(&["load", "-i", archive.to_str().unwrap()]));
    assert_eq!(out, "Loaded image: localbusybox:2\n");
    let err = fails(d.docker(&["rmi", "nosuch"]));
    assert!(err.contains("No such image: nosuch"), "{err}");
    // a client newer than us is told so with Docker's message
    let out = ok(std::process::Command::new("curl").args([
        "-s",
        "--unix-socket",
        d.socket.to_str().unwrap(),
        "http://x/v1.99/version",
    ]));
    assert_eq!(
        out,
        r#"{"message":"client version 1.99 is too new. Maximum supported API version is 1.41"}"#
    );
}

#[test]
fn skopeo_reads_our_archives_and_we_read_skopeos() {
    let skopeo = require("skopeo");
    let d = TestDaemon::start();
    let id = d.import_busybox("busybox", &[]);
    let ours = d.path("ours.tar");
    ok(d.berth(&["save", "-o", ours.to_str().unwrap(), "busybox"]));

    let out = ok(std::process::Command::new(&skopeo)
        .args(["inspect", &format!("docker-archive:{}", ours.display())]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["Os"], "linux");
    assert_eq!(v["Layers"].as_array().unwrap().len(), 1);
    let layout = d.path("layout");
    ok(std::process::Command::new(&skopeo).args([
        "copy",
        &format!("docker-archive:{}", ours.display()),
        &format!("oci:{}:bb", layout.display()),
    ]));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    assert_eq!(
        index["manifests"][0]["annotations"]["org.opencontainers.image.ref.name"],
        "bb"
    );

    // skopeo writes a docker-archive and an (gzip-layer) OCI archive; both load into berth
    let sk_docker = d.path("sk-docker.tar");
    let sk_oci = d.path("sk-oci.tar");
    ok(std::process::Command::new(&skopeo).args([
        "copy",
        &format!("oci:{}:bb", layout.display()),
        &format!("docker-archive:{}:skopeo/docker:1", sk_docker.display()),
    ]));
    ok(std::process::Command::new(&skopeo).args([
        "copy",
        "--dest-compress-format",
        "gzip",
        "--dest-compress",
        &format!("oci:{}:bb", layout.display()),
        &format!("oci-archive:{}:skopeo/oci:2", sk_oci.display()),
    ]));
    ok(d.berth(&["rmi", "busybox"]));
    assert_eq!(
        ok(d.berth(&["load", "-i", sk_docker.to_str().unwrap()])),
        "Loaded image: skopeo/docker:1\n"
    );
    assert_eq!(
        ok(d.berth(&["load", "-i", sk_oci.to_str().unwrap()])),
        "Loaded image: skopeo/oci:2\n"
    );
    let out = ok(d.berth(&["images", "--format", "json"]));
    let ids: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "both archives hold the same image: {out}");
    assert_eq!(ids[0]["Id"], id.as_str());
    assert_eq!(
        ids[0]["RepoTags"],
        serde_json::json!(["skopeo/docker:1", "skopeo/oci:2"])
    );
    assert!(ok(d.berth(&["system", "check"])).contains("no problems found"));
}

#[test]
fn kill9_during_load_leaves_the_store_consistent() {
    let mut d = TestDaemon::start();
    // A ~64 MB incompressible layer, so that the load takes a while.
    let big = support::noise(64 << 20, 0x9e37_79b9_7f4a_7c15);
    let tar = busybox_rootfs_tar(&[("big.bin", &big)]);
    std::fs::write(d.path("big-rootfs.tar"), &tar).unwrap();
    ok(d.berth(&["import", d.path("big-rootfs.tar").to_str().unwrap(), "big"]));
    let archive = d.path("big.tar");
    ok(d.berth(&["save", "-o", archive.to_str().unwrap(), "big"]));
    ok(d.berth(&["rmi", "big"]));
    for delay_ms in [5u64, 40, 150] {
        let loader = d
            .berth(&["load", "-i", archive.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        d.kill9();
        let _ = loader.wait_with_output();
        d.spawn();
        let out = ok(d.berth(&["system", "check"]));
        assert!(
            out.contains("no problems found"),
            "after kill at {delay_ms} ms: {out}"
        );
        let images = ok(d.berth(&["images", "-q"]));
        // Either the load finished before the kill (image complete) or nothing is visible.
        if !images.is_empty() {
            ok(d.berth(&["rmi", "big"]));
        }
    }
    assert_eq!(
        ok(d.berth(&["load", "-i", archive.to_str().unwrap()])),
        "Loaded image: big:latest\n"
    );
    assert!(ok(d.berth(&["system", "check"])).contains("no problems found"));
}

#[test]
fn client_starts_a_daemon_when_none_is_running() {
    let dir = tempfile::tempdir().unwrap();
    let sock = dir.path().join("auto.sock");
    let root = dir.path().join("root");
    // As root the client (and the daemon it starts) run in fresh namespaces: the daemon
    // sets up its bridge there, never on the host.
    let mut cmd = if support::is_root() {
        let mut c = std::process::Command::new("unshare");
        c.args([
            "--net",
            "--mount",
            "--propagation",
            "private",
            "--fork",
            "--",
        ])
        .arg(support::BERTH);
        c
    } else {
        std::process::Command::new(support::BERTH)
    };
    let out = cmd
        .arg("images")
        .env_remove("BERTH_HOST")
        .env("BERTH_DEFAULT_SOCKET", &sock)
        .env("BERTH_DATA_ROOT", &root)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("starting one"), "{stderr}");
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("REPOSITORY"));
    assert!(root.join("daemon.log").exists());
    // stop it: SIGTERM removes the socket
    let pid = std::fs::read_to_string(root.join("daemon.pid")).unwrap();
    let pid: i32 = pid.trim().parse().unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while sock.exists() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(
        !sock.exists(),
        "SIGTERM should stop the daemon and remove its socket"
    );
}
