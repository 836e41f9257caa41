//! podman drives `berth-runtime` (`podman --runtime <path>`): run, `-it`, exec, stop and a
//! `--memory` limit, against a podman storage root of the test's own (vfs driver, no
//! network, its own containers.conf). Privileged: root only, ignored by a plain `cargo test`.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

const BERTH_RUNTIME: &str = env!("CARGO_BIN_EXE_berth-runtime");

fn hard_limit(name: &str) -> String {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits.lines().find(|l| l.starts_with(name)).unwrap();
    line.split_whitespace().rev().nth(1).unwrap().to_string()
}

/// A scratch podman: storage, run and tmp dirs and containers.conf in one temp dir.
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new(ulimits: &[String]) -> Podman {
        assert!(
            nix::unistd::geteuid().is_root(),
            "podman tests need root: run through `cargo xtask test`"
        );
        assert!(
            Path::new("/usr/bin/podman").exists(),
            "podman is not installed (cargo xtask test installs it)"
        );
        let dir = tempfile::tempdir().unwrap();
        let quoted: Vec<String> = ulimits.iter().map(|u| format!("{u:?}")).collect();
        std::fs::write(
            dir.path().join("containers.conf"),
            format!(
                "[containers]\ndefault_ulimits = [{}]\n[engine]\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"none\"\n",
                quoted.join(", ")
            ),
        )
        .unwrap();
        let p = Podman { dir };
        let rootfs = p.path("rootfs");
        for d in ["bin", "etc", "tmp", "proc", "sys", "dev"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        assert!(Command::new("cp")
            .arg("/bin/busybox")
            .arg(rootfs.join("bin/busybox"))
            .status()
            .unwrap()
            .success());
        for a in ["sh", "echo", "cat", "sleep", "tty", "grep", "id", "true"] {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
        }
        let tar = p.path("busybox.tar");
        assert!(Command::new("tar")
            .arg("-C")
            .arg(&rootfs)
            .arg("-cf")
            .arg(&tar)
            .arg(".")
            .status()
            .unwrap()
            .success());
        let out = p.run(&[
            "import",
            "-c",
            "ENV PATH=/bin",
            tar.to_str().unwrap(),
            "localhost/busybox",
        ]);
        assert!(out.status.success(), "{}", text(&out));
        p
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", self.path("containers.conf"))
            .arg("--root")
            .arg(self.path("storage"))
            .arg("--runroot")
            .arg(self.path("run"))
            .arg("--tmpdir")
            .arg(self.path("tmp"))
            .args(["--storage-driver", "vfs", "--cgroup-manager", "cgroupfs"])
            .args(["--events-backend", "none", "--runtime", BERTH_RUNTIME])
            .args(args)
            .stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        let mut c = self.cmd(args);
        let child = c.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn();
        let child = child.unwrap();
        // podman must never hang a test run: a watchdog kills it after a minute.
        let pid = child.id();
        let watchdog = std::thread::spawn(move || {
            for _ in 0..600 {
                std::thread::sleep(std::time::Duration::from_millis(100));
                if !Path::new(&format!("/proc/{pid}")).exists() {
                    return;
                }
            }
            let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
        });
        let out = child.wait_with_output().unwrap();
        let _ = watchdog.join();
        out
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "podman {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.run(&["rm", "-af", "-t", "0"]);
        let _ = self.run(&["rmi", "-af"]);
        // Whatever podman left mounted under the scratch dir (shm, netns) goes too.
        let prefix = self.dir.path().to_string_lossy().into_owned();
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        let mut targets: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(4))
            .filter(|t| t.starts_with(&prefix))
            .collect();
        targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
        for t in targets {
            let _ = nix::mount::umount2(t, nix::mount::MntFlags::MNT_DETACH);
        }
    }
}

fn text(o: &Output) -> String {
    format!(
        "{}\nstdout: {}\nstderr: {}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// podman 4.3 lowers its own RLIMIT_NPROC to 32768 (soft and hard) at start, so conmon and
/// the runtime inherit that hard limit: an nproc above it (podman's default is 1048576)
/// cannot be set. runc then fails with "error setting rlimit type 6"; we refuse it naming
/// the field. containers.conf must ask for at most min(host hard limit, 32768).
fn host_limits() -> Vec<String> {
    let nofile = hard_limit("Max open files");
    let nproc = hard_limit("Max processes")
        .parse::<u64>()
        .map_or(32768, |n| n.min(32768));
    vec![
        format!("nofile={nofile}:{nofile}"),
        format!("nproc={nproc}:{nproc}"),
    ]
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn podman_run_exec_stop_and_memory_limit() {
    let p = Podman::new(&host_limits());
    assert_eq!(
        p.ok(&[
            "run",
            "--rm",
            "--network",
            "none",
            "localhost/busybox",
            "echo",
            "hi"
        ]),
        "hi\n"
    );

    let out = p.ok(&[
        "run",
        "-d",
        "--name",
        "c1",
        "--network",
        "none",
        "--memory",
        "64m",
        "localhost/busybox",
        "sleep",
        "1000",
    ]);
    let id = out.trim().to_string();
    assert_eq!(id.len(), 64, "{out}");
    assert_eq!(p.ok(&["exec", "c1", "echo", "in", "exec"]), "in exec\n");
    assert_eq!(
        p.ok(&["exec", "c1", "sh", "-c", "echo $$ > /tmp/pid; id -u"]),
        "0\n"
    );
    // The memory limit is in the container's cgroup (v1 memory controller here, v2 on CI).
    let pid = p.ok(&["inspect", "--format", "{{.State.Pid}}", "c1"]);
    let cgroups = std::fs::read_to_string(format!("/proc/{}/cgroup", pid.trim())).unwrap();
    let limit_file = cgroups
        .lines()
        .find_map(|l| {
            let mut f = l.splitn(3, ':');
            let (_, ctrl, path) = (f.next()?, f.next()?, f.next()?);
            if ctrl.split(',').any(|c| c == "memory") {
                Some(format!("/sys/fs/cgroup/memory{path}/memory.limit_in_bytes"))
            } else if ctrl.is_empty() && !Path::new("/sys/fs/cgroup/memory").exists() {
                Some(format!("/sys/fs/cgroup{path}/memory.max"))
            } else {
                None
            }
        })
        .unwrap_or_else(|| panic!("no memory cgroup in {cgroups}"));
    assert_eq!(
        std::fs::read_to_string(&limit_file).unwrap().trim(),
        (64u64 << 20).to_string(),
        "{limit_file}"
    );
    assert!(
        limit_file.contains(&id),
        "the container's own cgroup: {limit_file}"
    );

    // stop: SIGTERM is ignored by a PID 1 sleep, so podman escalates to SIGKILL after -t.
    let t = std::time::Instant::now();
    p.ok(&["stop", "-t", "1", "c1"]);
    assert!(t.elapsed() < std::time::Duration::from_secs(20));
    let state = p.ok(&["inspect", "--format", "{{.State.Status}}", "c1"]);
    assert_eq!(state.trim(), "exited");
    p.ok(&["rm", "c1"]);
    assert!(
        !Path::new(&limit_file).exists(),
        "cgroup removed: {limit_file}"
    );
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn podman_run_with_a_tty() {
    let p = Podman::new(&host_limits());
    // `script` gives podman a terminal; podman hands berth-runtime a console socket.
    let podman = p.cmd(&[]);
    let mut line: Vec<String> = vec![podman.get_program().to_string_lossy().into_owned()];
    line.extend(podman.get_args().map(|a| a.to_string_lossy().into_owned()));
    line.extend(
        [
            "run",
            "--rm",
            "-it",
            "--network",
            "none",
            "localhost/busybox",
            "sh",
            "-c",
            // conmon sometimes drops the last output of a process that exits at once
            "tty; echo tty-ok; sleep 0.5",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let quoted: Vec<String> = line
        .iter()
        .map(|a| format!("'{}'", a.replace('\'', r"'\''")))
        .collect();
    let out = Command::new("timeout")
        .args(["60", "script", "-qec"])
        .arg(quoted.join(" "))
        .arg("/dev/null")
        .env("CONTAINERS_CONF", p.path("containers.conf"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", text(&out));
    assert!(stdout.contains("/dev/pts/0"), "{stdout:?}");
    assert!(stdout.contains("tty-ok"), "{stdout:?}");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn podman_rlimit_above_the_hard_limit_is_a_clear_error() {
    // Without an nproc entry podman asks for RLIMIT_NPROC 1048576, above the hard limit of
    // 32768 that podman itself set (see host_limits): refused, naming the field, never clamped.
    let nofile = hard_limit("Max open files");
    let p = Podman::new(&[format!("nofile={nofile}:{nofile}")]);
    let out = p.run(&[
        "run",
        "--rm",
        "--network",
        "none",
        "localhost/busybox",
        "true",
    ]);
    assert!(!out.status.success(), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(
            "process.rlimits[1] (RLIMIT_NPROC).hard: 1048576 is above the host's hard limit 32768"
        ),
        "{err}"
    );
}
