//! The same docker CLI session against berth and against dockerd 20.10 (Debian's docker.io),
//! compared line by line after normalizing what must differ (image IDs, ages). Each daemon
//! also loads the other's `docker save` archive.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::{busybox_rootfs_tar, is_root, ok, require, run, TestDaemon};

/// dockerd in its own pid, mount and network namespaces: when it dies, its containerd dies too.
struct Dockerd {
    dir: tempfile::TempDir,
    socket: PathBuf,
    child: Child,
}

impl Dockerd {
    fn start() -> Self {
        let dockerd = require("dockerd");
        let dir = tempfile::Builder::new()
            .prefix("berth-dockerd-")
            .tempdir()
            .unwrap();
        let socket = dir.path().join("docker.sock");
        let log = std::fs::File::create(dir.path().join("dockerd.log")).unwrap();
        let child = Command::new("unshare")
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
            ])
            .arg(dockerd)
            .arg("-H")
            .arg(format!("unix://{}", socket.display()))
            .arg("--data-root")
            .arg(dir.path().join("data"))
            .arg("--exec-root")
            .arg(dir.path().join("exec"))
            .arg("--pidfile")
            .arg(dir.path().join("dockerd.pid"))
            .args(["--iptables=false", "--ip-masq=false", "--bridge=none"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let d = Self { dir, socket, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let pong = Command::new(require("docker"))
                .env("DOCKER_HOST", format!("unix://{}", d.socket.display()))
                .args(["version", "--format", "{{.Server.APIVersion}}"])
                .output()
                .unwrap();
            if pong.status.success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "dockerd did not start: {}",
                std::fs::read_to_string(d.dir.path().join("dockerd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        d
    }

    fn docker(&self, args: &[&str]) -> Command {
        let mut c = Command::new(require("docker"));
        c.env("DOCKER_HOST", format!("unix://{}", self.socket.display()))
            .env("DOCKER_CONFIG", self.dir.path().join("docker-config"))
            .args(args);
        c
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replace image IDs (full and short) by placeholders in order of first appearance.
fn normalize(text: &str, ids: &[String]) -> String {
    let mut out = text.to_owned();
    for id in ids.iter().enumerate() {
        out = out.replace(id.1.as_str(), &format!("<id{}>", id.0));
        out = out.replace(&id.1[..12], &format!("<short{}>", id.0));
    }
    out
}

struct Both<'a> {
    berth: &'a TestDaemon,
    dockerd: &'a Dockerd,
    berth_ids: Vec<String>,
    docker_ids: Vec<String>,
}

impl Both<'_> {
    /// Run the same docker command against both daemons; compare exit status and output.
    #[track_caller]
    fn same(&mut self, args: &[&str]) -> String {
        let a = run(&mut self.berth.docker(args));
        let b = run(&mut self.dockerd.docker(args));
        let mut na = normalize(&String::from_utf8_lossy(&a.stdout), &self.berth_ids);
        let mut nb = normalize(&String::from_utf8_lossy(&b.stdout), &self.docker_ids);
        if args[0] == "images" {
            // The CLI groups an image's tags through a Go map: their order is random by design.
            for t in [&mut na, &mut nb] {
                let mut lines: Vec<&str> = t.lines().collect();
                lines.sort();
                *t = lines.join("\n");
            }
        }
        let ea = normalize(&String::from_utf8_lossy(&a.stderr), &self.berth_ids);
        let eb = normalize(&String::from_utf8_lossy(&b.stderr), &self.docker_ids);
        assert_eq!(
            a.status.code(),
            b.status.code(),
            "docker {args:?}: exit codes differ\nberth: {ea}\ndockerd: {eb}"
        );
        assert_eq!(
            na, nb,
            "docker {args:?}: stdout differs (left berth, right dockerd)"
        );
        assert_eq!(
            ea, eb,
            "docker {args:?}: stderr differs (left berth, right dockerd)"
        );
        na
    }

    fn import(&mut self, file: &Path, name: &str) {
        let a = ok(self.berth.docker(&[
            "import",
            "--change",
            r#"CMD ["/bin/sh"]"#,
            "--change",
            "ENV PATH=/bin",
            file.to_str().unwrap(),
            name,
        ]));
        let b = ok(self.dockerd.docker(&[
            "import",
            "--change",
            r#"CMD ["/bin/sh"]"#,
            "--change",
            "ENV PATH=/bin",
            file.to_str().unwrap(),
            name,
        ]));
        self.berth_ids
            .push(a.trim().trim_start_matches("sha256:").to_owned());
        self.docker_ids
            .push(b.trim().trim_start_matches("sha256:").to_owned());
    }
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn docker_cli_sees_berth_as_it_sees_dockerd() {
    assert!(is_root(), "this test needs root (dockerd)");
    let berth = TestDaemon::start();
    let dockerd = Dockerd::start();
    let mut both = Both {
        berth: &berth,
        dockerd: &dockerd,
        berth_ids: vec![],
        docker_ids: vec![],
    };
    let rootfs = berth.path("rootfs.tar");
    std::fs::write(&rootfs, busybox_rootfs_tar(&[])).unwrap();

    both.same(&[
        "version",
        "--format",
        "{{.Server.APIVersion}} {{.Server.Os}} {{.Server.Arch}}",
    ]);
    both.same(&[
        "info",
        "--format",
        "{{.Images}} {{.Driver}} {{.OSType}} {{.Architecture}} {{.IndexServerAddress}}",
    ]);
    both.import(&rootfs, "localbusybox");
    both.same(&[
        "images",
        "--format",
        "{{.Repository}} {{.Tag}} {{.ID}} {{.Size}}",
    ]);
    both.same(&["tag", "localbusybox", "localbusybox:2"]);
    both.same(&["tag", "localbusybox", "127.0.0.1:5000/team/app:v1"]);
    both.same(&["images", "--format", "{{.Repository}} {{.Tag}} {{.ID}}"]);
    both.same(&["images", "-q"]);
    both.same(&[
        "images",
        "--filter",
        "reference=localbusybox",
        "--format",
        "{{.Repository}}:{{.Tag}}",
    ]);
    both.same(&["image", "inspect", "--format", "{{.ID}} {{json .RepoTags}} {{json .Config.Cmd}} {{json .Config.Env}} {{.Os}} {{.Architecture}} {{json .RootFS}}", "localbusybox:2"]);
    both.same(&["image", "inspect", "nosuch"]);
    both.same(&["rmi", "nosuch"]);
    both.same(&["tag", "nosuch", "x"]);
    both.same(&["tag", "localbusybox", "Bad/Name"]);
    both.same(&["rmi", "127.0.0.1:5000/team/app:v1"]);

    // Each daemon's archive loads into the other.
    let from_berth = berth.path("from-berth.tar");
    let from_dockerd = berth.path("from-dockerd.tar");
    ok(berth.docker(&["save", "-o", from_berth.to_str().unwrap(), "localbusybox:2"]));
    ok(dockerd.docker(&[
        "save",
        "-o",
        from_dockerd.to_str().unwrap(),
        "localbusybox:2",
    ]));
    both.same(&["rmi", "localbusybox:2"]);
    both.same(&["rmi", "localbusybox"]);
    both.same(&["images", "-q"]);
    let a = ok(berth.docker(&["load", "-i", from_dockerd.to_str().unwrap()]));
    let b = ok(dockerd.docker(&["load", "-i", from_berth.to_str().unwrap()]));
    assert_eq!(a, "Loaded image: localbusybox:2\n");
    assert_eq!(b, "Loaded image: localbusybox:2\n");
    // berth now holds dockerd's image and vice versa: swap the ID lists to compare
    std::mem::swap(&mut both.berth_ids, &mut both.docker_ids);
    both.same(&[
        "images",
        "--format",
        "{{.Repository}} {{.Tag}} {{.ID}} {{.Size}}",
    ]);
    both.same(&[
        "image",
        "inspect",
        "--format",
        "{{.ID}} {{json .Config.Cmd}} {{json .RootFS}}",
        "localbusybox:2",
    ]);
    assert!(ok(berth.berth(&["system", "check"])).contains("no problems found"));
}
