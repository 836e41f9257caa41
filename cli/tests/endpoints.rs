//! End to end: who may reach the daemon. The unix socket is 0660 root:berth (the group created
//! when missing, here in a private copy of /etc); TCP needs TLS with a client certificate from
//! the daemon's CA, checked with the real docker CLI and berth's own client; plain TCP only with
//! `--insecure-tcp`. Privileged: run by `cargo xtask test` as root; each daemon in its own mount
//! and network namespaces with a scratch data root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{fails, is_root, ok, require, run, TestDaemon, BERTH};

/// A CA, a server certificate for 127.0.0.1 and a client certificate from it; a second CA and
/// a client certificate from that one ("rogue"), all made with the openssl CLI in `dir`.
fn make_certs(dir: &Path) {
    let openssl = require("openssl");
    let sh = |script: &str| {
        ok(Command::new("sh")
            .arg("-ec")
            .arg(script)
            .current_dir(dir)
            .env("OPENSSL", &openssl));
    };
    sh(r#"
ca() {
  "$OPENSSL" req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
    -subj "/CN=$1" -keyout "$1-key.pem" -out "$1.pem" \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
    2>/dev/null
}
leaf() {
  "$OPENSSL" req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
    -keyout "$2-key.pem" -out "$2.csr" 2>/dev/null
  printf '%s\n' "$3" > "$2.ext"
  "$OPENSSL" x509 -req -in "$2.csr" -CA "$1.pem" -CAkey "$1-key.pem" -CAcreateserial -days 2 \
    -out "$2.pem" -extfile "$2.ext" 2>/dev/null
}
ca ca
ca other
leaf ca server "subjectAltName=IP:127.0.0.1,DNS:localhost
extendedKeyUsage=serverAuth"
leaf ca client "extendedKeyUsage=clientAuth"
leaf other rogue "extendedKeyUsage=clientAuth"
"#);
}

fn tls_daemon() -> TestDaemon {
    assert!(
        is_root(),
        "the daemon's namespaces need root: run through `cargo xtask test`"
    );
    let mut d = TestDaemon::unstarted(&[
        "--bridge",
        "none",
        "-H",
        "tcp://127.0.0.1:2376",
        "--tlsverify",
        "--tlscacert",
        "{dir}/ca.pem",
        "--tlscert",
        "{dir}/server.pem",
        "--tlskey",
        "{dir}/server-key.pem",
    ]);
    make_certs(d.dir.path());
    d.spawn();
    // the daemon's network namespace is new: bring its loopback up
    ok(d.in_netns("ip").args(["link", "set", "lo", "up"]));
    d
}

/// The docker CLI in the daemon's network namespace, with `tls` flags (file names in the
/// test's directory) and no certificates of its own (an empty DOCKER_CERT_PATH).
fn docker_tcp(d: &TestDaemon, port: u16, tls: &[&str], args: &[&str]) -> Command {
    let mut c = d.in_netns("docker");
    c.current_dir(d.dir.path())
        .env("DOCKER_CONFIG", d.path("docker-config"))
        .env("DOCKER_CERT_PATH", d.path("no-certs"))
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .args(tls)
        .args(["-H", &format!("tcp://127.0.0.1:{port}")])
        .args(args);
    c
}

const CLIENT: &[&str] = &[
    "--tlsverify",
    "--tlscacert",
    "ca.pem",
    "--tlscert",
    "client.pem",
    "--tlskey",
    "client-key.pem",
];

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn tcp_with_tls_serves_the_docker_cli_and_refuses_other_clients() {
    let d = tls_daemon();
    // unix and TCP at once, one daemon
    ok(d.berth(&["version"]));
    d.import_busybox("busybox", &[]);

    let v = ok(docker_tcp(
        &d,
        2376,
        CLIENT,
        &["version", "--format", "{{.Server.Version}}"],
    ));
    assert_eq!(v.trim(), engine::version::VERSION);
    // a container over TLS: attach (hijacked) with stdin, ps, exec, logs
    let out = ok(docker_tcp(
        &d,
        2376,
        CLIENT,
        &["run", "--rm", "busybox", "echo", "over tls"],
    ));
    assert_eq!(out, "over tls\n");
    let mut c = docker_tcp(&d, 2376, CLIENT, &["run", "-i", "--rm", "busybox", "cat"]);
    let child = c
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.as_ref().unwrap();
        stdin.write_all(b"stdin through tls\n").unwrap();
    }
    let mut child = child;
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "stdin through tls\n");
    ok(docker_tcp(
        &d,
        2376,
        CLIENT,
        &["run", "-d", "--name", "box", "busybox", "sleep", "60"],
    ));
    let ps = ok(docker_tcp(
        &d,
        2376,
        CLIENT,
        &["ps", "--format", "{{.Names}}"],
    ));
    assert_eq!(ps.trim(), "box");
    let out = ok(docker_tcp(
        &d,
        2376,
        CLIENT,
        &["exec", "box", "echo", "exec over tls"],
    ));
    assert_eq!(out, "exec over tls\n");
    ok(docker_tcp(&d, 2376, CLIENT, &["rm", "-f", "box"]));

    // berth's own client speaks the same flags, and DOCKER_CERT_PATH as docker does
    let mut b = d.in_netns(BERTH);
    b.current_dir(d.dir.path())
        .env_remove("BERTH_HOST")
        .env_remove("DOCKER_HOST")
        .args(["-H", "tcp://127.0.0.1:2376"])
        .args(CLIENT)
        .args(["run", "--rm", "busybox", "echo", "berth over tls"]);
    assert_eq!(ok(b), "berth over tls\n");
    let certs = d.path("certs");
    std::fs::create_dir_all(&certs).unwrap();
    for (from, to) in [
        ("ca.pem", "ca.pem"),
        ("client.pem", "cert.pem"),
        ("client-key.pem", "key.pem"),
    ] {
        std::fs::copy(d.path(from), certs.join(to)).unwrap();
    }
    let mut b = d.in_netns(BERTH);
    b.env("DOCKER_HOST", "tcp://127.0.0.1:2376")
        .env("DOCKER_TLS_VERIFY", "1")
        .env("DOCKER_CERT_PATH", &certs)
        .env_remove("BERTH_HOST")
        .args(["ps", "-a"]);
    ok(b);

    // refused: no certificate, a certificate from another CA, plain HTTP
    let e = fails(docker_tcp(
        &d,
        2376,
        &["--tlsverify", "--tlscacert", "ca.pem"],
        &["version"],
    ));
    assert!(e.contains("certificate required"), "{e}");
    let rogue = [
        "--tlsverify",
        "--tlscacert",
        "ca.pem",
        "--tlscert",
        "rogue.pem",
        "--tlskey",
        "rogue-key.pem",
    ];
    let e = fails(docker_tcp(&d, 2376, &rogue, &["ps"]));
    assert!(e.contains("tls: certificate required"), "{e}");
    // berth's client sends its certificate whatever CA the daemon names: it is checked
    let mut b = d.in_netns(BERTH);
    b.current_dir(d.dir.path())
        .args(["-H", "tcp://127.0.0.1:2376"])
        .args(rogue)
        .arg("ps");
    let e = fails(b);
    assert!(e.contains("UnknownCA"), "{e}");
    let e = fails(docker_tcp(&d, 2376, &[], &["version"]));
    assert!(e.contains("TLS-enabled daemon"), "{e}");
    let log = d.log();
    assert!(
        log.contains("refused") && log.contains("UnknownIssuer"),
        "{log}"
    );
    // no container was made by a refused client
    assert_eq!(ok(d.berth(&["ps", "-aq"])).trim(), "");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn plain_tcp_is_refused_unless_insecure_tcp_and_then_loud() {
    assert!(
        is_root(),
        "the daemon's namespaces need root: run through `cargo xtask test`"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = run(Command::new(BERTH).args([
        "daemon",
        "--data-root",
        dir.path().join("data").to_str().unwrap(),
        "-H",
        "tcp://127.0.0.1:2375",
    ]));
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(
        e.contains("refusing to listen on tcp://127.0.0.1:2375 without TLS"),
        "{e}"
    );
    assert!(
        e.contains("--tlsverify") && e.contains("--insecure-tcp"),
        "{e}"
    );
    assert!(
        !dir.path().join("data").exists(),
        "nothing written before refusing"
    );
    // half a TLS configuration is refused too
    let out = run(Command::new(BERTH).args([
        "daemon",
        "--data-root",
        dir.path().join("data").to_str().unwrap(),
        "-H",
        "tcp://127.0.0.1:2376",
        "--tlscert",
        "x.pem",
    ]));
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("need --tlsverify"), "{e}");
    // missing certificate files are named
    let out = run(Command::new(BERTH).args([
        "daemon",
        "--data-root",
        dir.path().join("data").to_str().unwrap(),
        "-H",
        "tcp://127.0.0.1:2376",
        "--tlsverify",
        "--tlscacert",
        "/nonexistent/ca.pem",
    ]));
    assert!(!out.status.success());
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(e.contains("/nonexistent/ca.pem"), "{e}");

    let d = TestDaemon::start_with(&[
        "--bridge",
        "none",
        "-H",
        "tcp://127.0.0.1:2375",
        "--insecure-tcp",
    ]);
    ok(d.in_netns("ip").args(["link", "set", "lo", "up"]));
    let log = d.log();
    assert!(
        log.contains("WARNING") && log.contains("WITHOUT TLS"),
        "{log}"
    );
    let v = ok(docker_tcp(
        &d,
        2375,
        &[],
        &["version", "--format", "{{.Server.Version}}"],
    ));
    assert_eq!(v.trim(), engine::version::VERSION);
}

/// A daemon in fresh mount and network namespaces whose /etc is a private copy (so creating
/// the socket group leaves the host's group database alone). Killed on drop.
struct PrivateEtcDaemon {
    child: Child,
    socket: std::path::PathBuf,
}

impl PrivateEtcDaemon {
    fn spawn(dir: &Path, flags: &[&str]) -> Child {
        let etc = dir.join("etc");
        let script = format!(
            "cp -a /etc/. {etc}/ && mount --bind {etc} /etc && exec \"$@\"",
            etc = etc.display()
        );
        std::fs::create_dir_all(&etc).unwrap();
        let log = std::fs::File::create(dir.join("daemon.log")).unwrap();
        Command::new("unshare")
            .args([
                "--mount",
                "--net",
                "--propagation",
                "private",
                "--fork",
                "--kill-child=SIGTERM",
            ])
            .args([
                "--", "sh", "-ec", &script, "sh", BERTH, "daemon", "--bridge", "none",
            ])
            .arg("--data-root")
            .arg(dir.join("data"))
            .arg("-H")
            .arg(format!("unix://{}", dir.join("berth.sock").display()))
            .args(flags)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap()
    }

    fn start(dir: &Path) -> Self {
        let mut child = Self::spawn(dir, &[]);
        let socket = dir.join("berth.sock");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::os::unix::net::UnixStream::connect(&socket).is_err() {
            if let Some(st) = child.try_wait().unwrap() {
                panic!("daemon exited with {st}: {}", daemon_log(dir));
            }
            assert!(Instant::now() < deadline, "daemon did not start");
            std::thread::sleep(Duration::from_millis(10));
        }
        Self { child, socket }
    }
}

fn daemon_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("daemon.log")).unwrap_or_default()
}

impl Drop for PrivateEtcDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn unix_socket_is_0660_root_and_the_berth_group_created_if_missing() {
    assert!(
        is_root(),
        "the daemon's namespaces need root: run through `cargo xtask test`"
    );
    let dir = tempfile::tempdir().unwrap();
    // others must be able to reach the socket's directory, so that only its mode stops them
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let host_group = std::fs::read_to_string("/etc/group").unwrap();
    let d = PrivateEtcDaemon::start(dir.path());
    let private_group = std::fs::read_to_string(dir.path().join("etc/group")).unwrap();
    let gid = private_group
        .lines()
        .find_map(|l| l.strip_prefix("berth:x:"))
        .and_then(|r| r.split(':').next())
        .and_then(|g| g.parse::<u32>().ok())
        .unwrap_or_else(|| panic!("no berth group in the daemon's /etc/group:\n{private_group}"));
    assert_eq!(
        std::fs::read_to_string("/etc/group").unwrap(),
        host_group,
        "the host's group database is untouched"
    );
    let meta = std::fs::metadata(&d.socket).unwrap();
    assert_eq!(meta.mode() & 0o7777, 0o660);
    assert_eq!((meta.uid(), meta.gid()), (0, gid));

    let host = format!("unix://{}", d.socket.display());
    let as_user = |groups: &str| {
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534"]);
        if groups.is_empty() {
            c.arg("--clear-groups");
        } else {
            c.arg(format!("--groups={groups}"));
        }
        c.args(["--", BERTH, "-H", &host, "version"]);
        c
    };
    let e = fails(as_user(""));
    assert!(e.contains("ermission denied"), "{e}");
    ok(as_user(&gid.to_string()));
    drop(d);
    let deadline = Instant::now() + Duration::from_secs(5);
    while dir.path().join("berth.sock").exists() {
        assert!(
            Instant::now() < deadline,
            "socket removed at exit (SIGTERM)"
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // a group that cannot be created is a clear error, and nothing listens
    let st = PrivateEtcDaemon::spawn(dir.path(), &["--group", "no such group"])
        .wait()
        .unwrap();
    assert!(!st.success());
    let e = daemon_log(dir.path());
    assert!(
        e.contains("socket group \"no such group\"") && e.contains("groupadd"),
        "{e}"
    );
    assert!(!dir.path().join("berth.sock").exists());
}
