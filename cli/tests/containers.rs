//! End to end: containers through the berth CLI and the real docker CLI. Privileged (mounts,
//! namespaces, cgroups): run by `cargo xtask test` as root; each daemon in its own mount and
//! network namespaces with a scratch data root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{fails, is_root, ok, run, TestDaemon};

fn daemon_with_busybox() -> TestDaemon {
    assert!(
        is_root(),
        "containers need root: run through `cargo xtask test`"
    );
    let d = TestDaemon::start();
    d.import_busybox("busybox", &[]);
    d
}

/// Spare monitors (`berth monitor --spare` still waiting) whose parent is `daemon_pid`.
fn spare_monitors(daemon_pid: &str) -> usize {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| {
            let cmd = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            let ppid = stat
                .rsplit_once(')')
                .and_then(|(_, r)| r.split_whitespace().nth(1))
                .unwrap_or("");
            // still waiting: its stdin is the pipe from the daemon (a monitor at work has
            // /dev/null there)
            let waiting = std::fs::read_link(e.path().join("fd/0"))
                .is_ok_and(|l| l.to_string_lossy().starts_with("pipe:"));
            cmd.windows(16).any(|w| w == b"monitor\0--spare\0") && ppid == daemon_pid && waiting
        })
        .count()
}

fn wait_until(mut f: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn run_attached_exit_codes_and_streams() {
    let d = daemon_with_busybox();
    let out = run(&mut d.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo out; echo err >&2; exit 3",
    ]));
    assert_eq!(out.status.code(), Some(3));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "out\n");
    assert_eq!(String::from_utf8_lossy(&out.stderr), "err\n");
    // --rm removed it; the exit code survived the removal
    assert_eq!(ok(d.berth(&["ps", "-a", "-q"])), "");

    let out = ok(d.berth(&[
        "run",
        "--rm",
        "-e",
        "A=1",
        "-w",
        "/tmp",
        "-u",
        "nobody",
        "--hostname",
        "box",
        "busybox",
        "sh",
        "-c",
        "echo $A $(pwd) $(id -u) $(hostname)",
    ]));
    assert_eq!(out, "1 /tmp 65534 box\n");
    // isolation: own pid namespace, default capabilities only
    let out = ok(d.berth(&[
        "run",
        "--rm",
        "busybox",
        "sh",
        "-c",
        "echo $$; ls /proc | grep -c '^[0-9]'; grep CapEff /proc/self/status",
    ]));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "1", "the command is PID 1: {out}");
    assert_eq!(
        lines[2], "CapEff:\t00000000a80425fb",
        "Docker's 14 default capabilities: {out}"
    );

    let mut child = d
        .berth(&["run", "-i", "--rm", "busybox", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"through stdin\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "through stdin\n");

    // as the docker CLI: 127 for a missing command, 125 for the engine's other errors
    let out = run(&mut d.berth(&["run", "--rm", "busybox", "nosuchcmd"]));
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stderr).contains("executable file not found in $PATH"));
    assert_eq!(
        ok(d.berth(&["ps", "-a", "-q"])),
        "",
        "a --rm container that cannot start is removed"
    );
    // The daemon reaps every monitor that has finished.
    wait_until(|| d.zombies().is_empty(), "the daemon to reap its children");
    let out = run(&mut d.berth(&["run", "--pull", "never", "nosuchimage"]));
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No such image: nosuchimage:latest"), "{err}");
    // A missing image is pulled first (from a registry that is not there: loopback only).
    let err = fails(d.berth(&["run", "127.0.0.1:1/nosuchimage"]));
    assert!(
        err.contains("Unable to find image '127.0.0.1:1/nosuchimage' locally"),
        "{err}"
    );
    assert!(err.contains("127.0.0.1:1"), "{err}");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn detached_lifecycle_ps_logs_stop_rm() {
    let d = daemon_with_busybox();
    let id = ok(d.berth(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "trap 'echo bye; exit 0' TERM; while true; do echo tick; sleep 0.1; done",
    ]));
    let id = id.trim().to_owned();
    // a spare monitor waits for the next container, a child of the daemon
    let daemon_pid = std::fs::read_to_string(d.data_root.join("daemon.pid")).unwrap();
    wait_until(
        || spare_monitors(daemon_pid.trim()) == 1,
        "one spare monitor under the daemon",
    );
    assert_eq!(id.len(), 64);
    let ps = ok(d.berth(&["ps"]));
    assert!(ps.starts_with("CONTAINER ID   IMAGE     COMMAND"), "{ps}");
    assert!(
        ps.contains(&id[..12]) && ps.contains("Up ") && ps.contains("ticker"),
        "{ps}"
    );
    wait_until(
        || ok(d.berth(&["logs", "ticker"])).lines().count() >= 2,
        "log lines",
    );
    let err = fails(d.berth(&["run", "-d", "--name", "ticker", "busybox", "true"]));
    assert!(err.contains("is already in use"), "{err}");
    let err = fails(d.berth(&["rm", "ticker"]));
    assert!(
        err.contains("You cannot remove a running container"),
        "{err}"
    );

    // prefix lookup, then a graceful stop: the trap runs
    assert_eq!(ok(d.berth(&["stop", &id[..6]])), format!("{}\n", &id[..6]));
    let logs = ok(d.berth(&["logs", "ticker"]));
    assert!(logs.ends_with("bye\n"), "{logs}");
    let ps = ok(d.berth(&["ps", "-a"]));
    assert!(ps.contains("Exited (0)"), "{ps}");
    assert_eq!(ok(d.berth(&["wait", "ticker"])), "0\n");
    let v: serde_json::Value =
        serde_json::from_str(&ok(d.berth(&["container", "inspect", "ticker"]))).unwrap();
    assert_eq!(v[0]["State"]["Status"], "exited");
    assert_eq!(v[0]["Name"], "/ticker");

    // start again, then kill: 137
    ok(d.berth(&["start", "ticker"]));
    ok(d.berth(&["kill", "ticker"]));
    assert_eq!(ok(d.berth(&["wait", "ticker"])), "137\n");
    ok(d.berth(&["rm", "ticker"]));
    assert_eq!(ok(d.berth(&["ps", "-a", "-q"])), "");
    assert!(
        !d.data_root.join("containers").join(&id).exists(),
        "rm leaves nothing behind"
    );
}

/// The image's init layer holds what the runtime mounts over and the image lacks (this
/// busybox has /etc but no /etc/hosts, and no /proc, /sys or /dev): a container's start
/// makes none of them in its upper dir, and it still sees its own /etc files.
#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn mount_targets_come_from_the_init_layer() {
    let d = daemon_with_busybox();
    let id = ok(d.berth(&[
        "run",
        "-d",
        "--hostname",
        "box1",
        "busybox",
        "sh",
        "-c",
        "cat /etc/hostname /etc/hosts && ls -d /proc/self /sys/kernel /dev/null",
    ]))
    .trim()
    .to_owned();
    assert_eq!(ok(d.berth(&["wait", &id])), "0\n");
    let logs = ok(d.berth(&["logs", &id]));
    assert!(logs.starts_with("box1\n"), "{logs}");
    assert!(
        logs.contains("localhost") && logs.contains("/dev/null"),
        "{logs}"
    );
    let upper = d.data_root.join("containers").join(&id).join("upper");
    let made: Vec<_> = std::fs::read_dir(&upper)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(made.is_empty(), "the start made {made:?} in its upper dir");
    let inits: Vec<_> = std::fs::read_dir(d.data_root.join("layers"))
        .unwrap()
        .flatten()
        .map(|e| e.path().join("init-v1"))
        .filter(|p| p.is_dir())
        .collect();
    assert_eq!(inits.len(), 1, "{inits:?}");
    for p in [
        "etc/hosts",
        "etc/hostname",
        "etc/resolv.conf",
        "proc",
        "sys",
        "dev",
    ] {
        assert!(inits[0].join(p).exists(), "{p} not in the init layer");
    }
    assert!(
        !inits[0].join("etc/passwd").exists(),
        "the image's own files stay its own"
    );
    assert_eq!(ok(d.berth(&["diff", &id])), "");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn containers_outlive_a_killed_daemon() {
    let mut d = daemon_with_busybox();
    let id = ok(d.berth(&[
        "run",
        "-d",
        "busybox",
        "sh",
        "-c",
        "i=0; while true; do echo line $i; i=$((i+1)); sleep 0.05; done",
    ]));
    let id = id.trim().to_owned();
    let quick = ok(d.berth(&["run", "-d", "busybox", "sh", "-c", "sleep 0.3; exit 7"]))
        .trim()
        .to_owned();
    // `--rm`: one that ends while the daemon is away, one never started, and one whose
    // removal a crash interrupted (its record says it exited)
    let gone = ok(d.berth(&["run", "-d", "--rm", "busybox", "sh", "-c", "sleep 0.3"]))
        .trim()
        .to_owned();
    let kept = ok(d.berth(&["create", "--rm", "busybox", "true"]))
        .trim()
        .to_owned();
    let interrupted = ok(d.berth(&["create", "--rm", "busybox", "true"]))
        .trim()
        .to_owned();
    wait_until(
        || ok(d.berth(&["logs", &id])).lines().count() >= 3,
        "first lines",
    );
    // The daemon dies; the containers keep running and logging.
    d.kill9();
    let record = d
        .data_root
        .join("containers")
        .join(&interrupted)
        .join("container.json");
    let mut rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    rec["state"]["status"] = "exited".into();
    std::fs::write(&record, serde_json::to_vec(&rec).unwrap()).unwrap();
    std::thread::sleep(Duration::from_millis(600));
    d.spawn();
    wait_until(
        || {
            let all = ok(d.berth(&["ps", "-a", "-q", "--no-trunc"]));
            !all.contains(&gone) && !all.contains(&interrupted)
        },
        "the --rm containers that ended are removed",
    );
    assert!(ok(d.berth(&["ps", "-a", "-q", "--no-trunc"])).contains(&kept));
    ok(d.berth(&["rm", &kept]));
    let ps = ok(d.berth(&["ps"]));
    assert!(
        ps.contains(&id[..12]) && ps.contains("Up "),
        "the survivor is still up: {ps}"
    );
    // the one that exited while the daemon was away is marked with its real exit code
    wait_until(
        || ok(d.berth(&["ps", "-a"])).contains("Exited (7)"),
        "Exited (7)",
    );
    // exec reaches a survivor through the state the runtime kept
    assert_eq!(ok(d.berth(&["exec", &id, "echo", "alive"])), "alive\n");
    let before = ok(d.berth(&["logs", &id])).lines().count();
    wait_until(
        || ok(d.berth(&["logs", &id])).lines().count() > before + 3,
        "logging goes on",
    );
    ok(d.berth(&["stop", "-t", "1", &id]));
    assert!(ok(d.berth(&["ps", "-a"])).contains("Exited (137)"));
    ok(d.berth(&["rm", &id, &quick]));
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn real_docker_cli_runs_containers() {
    let d = daemon_with_busybox();
    let out = run(&mut d.docker(&["run", "--rm", "busybox", "sh", "-c", "echo hi; exit 5"]));
    assert_eq!(out.status.code(), Some(5));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "hi\n");
    let out = run(&mut d.docker(&["run", "--rm", "busybox", "nosuchcmd"]));
    assert_eq!(
        out.status.code(),
        Some(127),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let id = ok(d.docker(&[
        "run",
        "-d",
        "--name",
        "web",
        "busybox",
        "sh",
        "-c",
        "echo started; sleep 30",
    ]));
    assert_eq!(id.trim().len(), 64);
    let out = ok(d.docker(&["ps", "--format", "{{.Names}} {{.Image}} {{.Status}}"]));
    assert!(out.starts_with("web busybox Up "), "{out}");
    wait_until(
        || ok(d.docker(&["logs", "web"])) == "started\n",
        "docker logs",
    );
    let out = ok(d.docker(&[
        "inspect",
        "--format",
        "{{.State.Status}} {{.State.Running}} {{.Name}}",
        "web",
    ]));
    assert_eq!(out.trim(), "running true /web");
    ok(d.docker(&["stop", "-t", "1", "web"]));
    let out = ok(d.docker(&["ps", "-a", "--format", "{{.Status}}"]));
    assert!(out.starts_with("Exited (137)"), "{out}");
    ok(d.docker(&["start", "web"]));
    ok(d.docker(&["restart", "-t", "0", "web"]));
    ok(d.docker(&["rm", "-f", "web"]));
    assert_eq!(ok(d.docker(&["ps", "-aq"])), "");

    let mut child = d
        .docker(&[
            "run",
            "-i",
            "--rm",
            "busybox",
            "sh",
            "-c",
            "read x; echo got $x",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"value\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "got value\n");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn exec_into_a_running_container() {
    let d = daemon_with_busybox();
    ok(d.berth(&[
        "run",
        "-d",
        "--name",
        "box",
        "-e",
        "FROM_RUN=1",
        "busybox",
        "sleep",
        "600",
    ]));
    let out = run(&mut d.berth(&[
        "exec",
        "-e",
        "X=2",
        "-w",
        "/tmp",
        "box",
        "sh",
        "-c",
        "echo $FROM_RUN $X $(pwd) $$; exit 4",
    ]));
    assert_eq!(out.status.code(), Some(4));
    let text = String::from_utf8_lossy(&out.stdout);
    let f: Vec<&str> = text.split_whitespace().collect();
    assert_eq!(
        &f[..3],
        ["1", "2", "/tmp"],
        "env of the container plus the exec's own: {text}"
    );
    assert_ne!(f[3], "1", "not the container's init");
    let mut child = d
        .berth(&["exec", "-i", "box", "cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"via exec\n")
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout),
        "via exec\n"
    );
    // the same through the docker CLI, with its exit codes
    let out = run(&mut d.docker(&["exec", "box", "sh", "-c", "echo hi; exit 6"]));
    assert_eq!(
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned()
        ),
        (Some(6), "hi\n".into())
    );
    let out = run(&mut d.docker(&["exec", "box", "nosuch"]));
    assert_eq!(out.status.code(), Some(127));
    assert!(String::from_utf8_lossy(&out.stdout).contains("executable file not found in $PATH"));
    // finished exec processes are reaped: the container sees only its init and `ps`
    let ps = ok(d.docker(&["exec", "box", "ps", "-o", "pid,stat,comm"]));
    assert!(!ps.contains(" Z "), "no zombies: {ps}");
    assert_eq!(ps.lines().count(), 3, "{ps}");
    ok(d.docker(&["stop", "-t", "0", "box"]));
    let err = fails(d.docker(&["exec", "box", "true"]));
    assert!(err.contains("is not running"), "{err}");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn default_seccomp_profile_denies_namespaces_and_mounts() {
    let d = daemon_with_busybox();
    let script = "busybox grep '^Seccomp:' /proc/self/status; \
                  busybox unshare -U true && echo userns ok; \
                  busybox mkdir -p /m && busybox mount -t tmpfs none /m && echo mounted; \
                  echo hi > /tmp/f && cat /tmp/f";
    let out = run(&mut d.berth(&["run", "--rm", "busybox", "sh", "-c", script]));
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(
        stdout.starts_with("Seccomp:\t2\n"),
        "moby's filter is on: {stdout}{stderr}"
    );
    assert!(
        stderr.contains("unshare(0x10000000): Operation not permitted"),
        "{stderr}"
    );
    assert!(stderr.contains("Operation not permitted"), "{stderr}");
    assert!(
        !stdout.contains("userns ok") && !stdout.contains("mounted"),
        "{stdout}"
    );
    assert!(
        stdout.ends_with("hi\n"),
        "ordinary work goes on: {stdout}{stderr}"
    );
    // The profile follows the capabilities: CAP_SYS_ADMIN opens mount (and the cap allows it).
    let out = ok(d.berth(&[
        "run",
        "--rm",
        "--cap-add",
        "SYS_ADMIN",
        "busybox",
        "sh",
        "-c",
        "busybox mkdir -p /m && busybox mount -t tmpfs none /m && echo mounted",
    ]));
    assert_eq!(out, "mounted\n");
}

/// Run `cmd` under `script`, which gives it a terminal of 33 rows and 77 columns.
fn in_terminal(d: &TestDaemon, cmd: &str) -> String {
    let line = format!("stty rows 33 cols 77; {cmd}");
    let mut c = std::process::Command::new("script");
    c.args(["-qefc", &line, "/dev/null"])
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.path("docker-config"));
    let out = run(&mut c);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{cmd}: {}\n{text}", out.status);
    text
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn tty_run_and_exec_with_resize_through_berth_and_docker() {
    let d = daemon_with_busybox();
    let berth = format!("{} -H {}", support::BERTH, d.host());
    // -t alone: a terminal, output in one raw stream (\r\n from the line discipline)
    let out = ok(d.berth(&[
        "run",
        "--rm",
        "-t",
        "busybox",
        "sh",
        "-c",
        "tty; echo out; echo err >&2",
    ]));
    assert!(out.contains("/dev/pts/0\r\n"), "{out:?}");
    assert!(
        out.contains("out\r\n") && out.contains("err\r\n"),
        "{out:?}"
    );
    // -it from a terminal: the container's terminal takes our size, input reaches it
    let out = in_terminal(
        &d,
        &format!("{berth} run -it --rm busybox sh -c 'stty size; tty'"),
    );
    assert!(out.contains("33 77"), "{out:?}");
    let out = in_terminal(&d, &format!("echo typed | {berth} run -i --rm busybox cat"));
    assert!(out.contains("typed"), "{out:?}");
    // -it without a terminal is refused, as docker does
    let err = fails(d.berth(&["run", "-it", "--rm", "busybox", "true"]));
    assert!(err.contains("the input device is not a TTY"), "{err}");

    // exec -t / -it into a running container
    let id = ok(d.berth(&["run", "-d", "busybox", "sleep", "60"]));
    let id = id.trim();
    let out = ok(d.berth(&["exec", "-t", id, "sh", "-c", "tty"]));
    assert!(out.starts_with("/dev/pts/"), "{out:?}");
    let out = in_terminal(&d, &format!("{berth} exec -it {id} sh -c 'stty size'"));
    assert!(out.contains("33 77"), "{out:?}");
    // the docker CLI, both ways
    let docker = support::require("docker");
    // (the docker CLI sends no ConsoleSize at API 1.41: it resizes right after the start)
    let out = in_terminal(
        &d,
        &format!(
            "{} exec -it {id} sh -c 'sleep 0.5; stty size'",
            docker.display()
        ),
    );
    assert!(out.contains("33 77"), "{out:?}");
    let out = in_terminal(
        &d,
        &format!(
            "{} run -it --rm busybox sh -c 'sleep 0.5; stty size'",
            docker.display()
        ),
    );
    assert!(out.contains("33 77"), "{out:?}");
    // logs of a TTY container are raw
    let id2 = ok(d.berth(&["run", "-d", "-t", "busybox", "echo", "logged"]));
    let id2 = id2.trim();
    wait_until(
        || ok(d.berth(&["logs", id2])).contains("logged"),
        "the TTY container's log",
    );
    let out = ok(d.docker(&["logs", id2]));
    assert_eq!(out, "logged\r\n");
}

/// Run `cmd` in a terminal (of `script`) while `input` (a shell pipeline's commands,
/// e.g. with sleeps) types into it; returns what the terminal showed, and fails unless
/// `cmd` exits 0.
fn typed_in_terminal(d: &TestDaemon, input: &str, cmd: &str) -> String {
    let line = format!("({input}) | script -qefc 'stty rows 33 cols 77; {cmd}' /dev/null");
    let mut c = std::process::Command::new("sh");
    c.args(["-c", &line])
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.path("docker-config"));
    let out = run(&mut c);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{cmd}: {}\n{text}", out.status);
    text
}

fn running(d: &TestDaemon, c: &str) -> bool {
    ok(d.docker(&["inspect", "-f", "{{.State.Running}}", c])).trim() == "true"
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn detach_keys_leave_the_container_running() {
    let d = daemon_with_busybox();
    let berth = format!("{} -H {}", support::BERTH, d.host());
    // run -it, then ctrl-p ctrl-q: the CLI returns 0 and the shell goes on
    let out = typed_in_terminal(
        &d,
        r"sleep 1; printf 'echo hel''lo\r'; sleep 1; printf '\020\021'; sleep 3",
        &format!("{berth} run -it --name dk busybox sh"),
    );
    assert!(out.contains("hello"), "{out:?}");
    assert!(
        running(&d, "dk"),
        "the shell should still run after detaching"
    );
    // attach again: input reaches the same shell; custom keys detach
    let out = typed_in_terminal(
        &d,
        r"sleep 1; printf 'echo ag''ain\r'; sleep 1; printf '\030'; sleep 3",
        &format!("{berth} attach --detach-keys ctrl-x dk"),
    );
    assert!(out.contains("again"), "{out:?}");
    assert!(running(&d, "dk"));
    // the docker CLI's attach and exec -it, with its own handling of the keys
    let docker = support::require("docker").display().to_string();
    // (it says so and exits 1 when the keys come, whatever the daemon)
    let out = typed_in_terminal(
        &d,
        r"sleep 1; printf 'echo thi''rd\r'; sleep 1; printf '\020\021'; sleep 3",
        &format!("{docker} attach dk; echo docker=$?"),
    );
    assert!(out.contains("third"), "{out:?}");
    assert!(
        out.contains("read escape sequence") && out.contains("docker=1"),
        "{out:?}"
    );
    // attaching to a running container shows only what comes after (no logs=1)
    assert!(!out.contains("BusyBox v"), "{out:?}");
    assert!(running(&d, "dk"));
    let out = typed_in_terminal(
        &d,
        r"sleep 1; printf 'echo $$ > /tmp/execsh\r'; sleep 1; printf '\020\021'; sleep 3",
        &format!("{berth} exec -it dk sh"),
    );
    assert!(!out.contains("rror"), "{out:?}");
    // the exec'd shell outlives its detached client
    let pid = ok(d.berth(&["exec", "dk", "cat", "/tmp/execsh"]));
    let ps = ok(d.berth(&["exec", "dk", "ps", "-o", "pid"]));
    assert!(
        ps.lines().any(|l| l.trim() == pid.trim()),
        "exec shell {pid} gone: {ps}"
    );
    // a key sequence that does not parse is refused before anything is made
    let before = ok(d.berth(&["ps", "-aq"]));
    let err = fails(d.berth(&["run", "--detach-keys", "ctrl-P", "busybox", "true"]));
    assert!(
        err.contains("Invalid detach keys (ctrl-P) provided"),
        "{err}"
    );
    assert_eq!(ok(d.berth(&["ps", "-aq"])), before);
    // and by the API (the docker CLI shows only the status of a refused upgrade)
    let err = fails(d.docker(&["attach", "--no-stdin", "--detach-keys", "ctrl-", "dk"]));
    assert!(err.contains("received 400"), "{err}");
    let sock = d.host().trim_start_matches("unix://").to_owned();
    let out = ok(std::process::Command::new("curl").args([
        "-s",
        "--unix-socket",
        &sock,
        "-X",
        "POST",
        "http://b/v1.41/containers/dk/attach?stream=1&stdin=1&detachKeys=ctrl-",
    ]));
    assert!(
        out.contains("Invalid detach keys (ctrl-) provided"),
        "{out}"
    );
    ok(d.berth(&["rm", "-f", "dk"]));
}

fn restart_count(d: &TestDaemon, c: &str) -> (u64, String) {
    let v: serde_json::Value =
        serde_json::from_str(&ok(d.berth(&["container", "inspect", c]))).unwrap();
    (
        v[0]["RestartCount"].as_u64().unwrap(),
        v[0]["State"]["Status"].as_str().unwrap().to_owned(),
    )
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn restart_policies_and_backoff() {
    let d = daemon_with_busybox();
    // on-failure:2 restarts a failing container twice, then leaves it exited
    ok(d.berth(&[
        "run",
        "-d",
        "--name",
        "flaky",
        "--restart",
        "on-failure:2",
        "busybox",
        "sh",
        "-c",
        "echo attempt; exit 3",
    ]));
    wait_until(
        || restart_count(&d, "flaky") == (2, "exited".to_owned()),
        "two restarts of flaky",
    );
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(restart_count(&d, "flaky"), (2, "exited".to_owned()));
    let logs = ok(d.berth(&["logs", "flaky"]));
    assert_eq!(logs.matches("attempt").count(), 3, "{logs}");
    // on-failure does not restart a clean exit
    ok(d.berth(&[
        "run",
        "-d",
        "--name",
        "clean",
        "--restart",
        "on-failure",
        "busybox",
        "true",
    ]));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(restart_count(&d, "clean").0, 0);
    // always restarts even a clean exit, until `stop`; `start` re-arms it
    ok(d.berth(&[
        "run",
        "-d",
        "--name",
        "loop",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "sleep 0.2",
    ]));
    wait_until(|| restart_count(&d, "loop").0 >= 2, "always restarts");
    ok(d.berth(&["stop", "-t", "1", "loop"]));
    let (n, _) = restart_count(&d, "loop");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        restart_count(&d, "loop"),
        (n, "exited".to_owned()),
        "stopped stays stopped"
    );
    ok(d.berth(&["start", "loop"]));
    wait_until(|| restart_count(&d, "loop").0 > n, "start re-arms always");
    ok(d.berth(&["rm", "-f", "loop", "flaky", "clean"]));

    // between a failure and the next start the container is "restarting": no exec, no
    // kill, no rm without -f; stop ends it there; ps says so
    ok(d.berth(&[
        "run",
        "-d",
        "--name",
        "crashy",
        "--restart",
        "always",
        "busybox",
        "sh",
        "-c",
        "exit 1",
    ]));
    // after five restarts the next waits 3.2 s: long enough to look at it. (The count
    // goes up as a start begins, so "restarting" twice, 0.5 s apart, is the backoff, not
    // the start.)
    let backoff = || restart_count(&d, "crashy") == (5, "restarting".to_owned());
    wait_until(
        || {
            backoff() && {
                std::thread::sleep(Duration::from_millis(500));
                backoff()
            }
        },
        "crashy's fifth restart, restarting",
    );
    let out = run(&mut d.berth(&["exec", "crashy", "true"]));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("is restarting"),
        "{out:?} {:?}",
        restart_count(&d, "crashy")
    );
    let err = fails(d.berth(&["rm", "crashy"]));
    assert!(err.contains("You cannot remove a"), "{err}");
    ok(d.berth(&["stop", "crashy"]));
    let (n, state) = restart_count(&d, "crashy");
    assert_eq!(state, "exited");
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        restart_count(&d, "crashy"),
        (n, "exited".to_owned()),
        "stop ends the backoff"
    );
    ok(d.berth(&["rm", "crashy"]));
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn top_and_container_prune() {
    let d = daemon_with_busybox();
    ok(d.berth(&[
        "run",
        "-d",
        "--name",
        "sleeper",
        "busybox",
        "sh",
        "-c",
        "sleep 61 & sleep 62",
    ]));
    wait_until(
        || ok(d.berth(&["top", "sleeper"])).contains("sleep 61"),
        "top to list the background sleep",
    );
    let top = ok(d.berth(&["top", "sleeper"]));
    assert!(top.starts_with("UID") && top.contains("sleep 62"), "{top}");
    // only this container's processes: the host's own are not listed
    assert!(!top.contains("berth daemon"), "{top}");
    let dtop = ok(d.docker(&["top", "sleeper", "-o", "pid,args"]));
    assert!(dtop.contains("PID") && dtop.contains("sleep 61"), "{dtop}");
    ok(d.berth(&[
        "run",
        "--name",
        "done1",
        "busybox",
        "sh",
        "-c",
        "echo 0123456789 > /ten",
    ]));
    ok(d.berth(&["create", "--name", "fresh", "busybox", "true"]));
    let pruned = ok(d.berth(&["container", "prune", "-f"]));
    assert!(pruned.contains("Deleted Containers:"), "{pruned}");
    // the written layer's bytes (11 in /ten, plus the placeholders berth binds over)
    let reclaimed = pruned.lines().last().unwrap_or("");
    assert!(
        reclaimed.starts_with("Total reclaimed space: ") && !reclaimed.ends_with(" 0B"),
        "{pruned}"
    );
    let ps = ok(d.berth(&["ps", "-a"]));
    assert!(
        ps.contains("sleeper") && !ps.contains("done1") && !ps.contains("fresh"),
        "{ps}"
    );
    let e = fails(d.berth(&["top", "nosuch"]));
    assert!(e.contains("No such container"), "{e}");
    ok(d.berth(&["rm", "-f", "sleeper"]));
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn logs_since_and_until() {
    let d = daemon_with_busybox();
    ok(d.berth(&[
        "run",
        "--name",
        "talker",
        "busybox",
        "sh",
        "-c",
        "echo early; sleep 1.5; echo late",
    ]));
    let ts = ok(d.berth(&["logs", "-t", "talker"]));
    let late_time = ts
        .lines()
        .find(|l| l.ends_with(" late"))
        .and_then(|l| l.split(' ').next())
        .unwrap()
        .to_owned();
    let t = chrono::DateTime::parse_from_rfc3339(&late_time).unwrap();
    let cut = (t - chrono::Duration::milliseconds(500)).to_rfc3339();
    assert_eq!(ok(d.berth(&["logs", "--since", &cut, "talker"])), "late\n");
    assert_eq!(ok(d.berth(&["logs", "--until", &cut, "talker"])), "early\n");
    assert_eq!(
        ok(d.berth(&["logs", "--since", "1h", "talker"])),
        "early\nlate\n"
    );
    assert_eq!(ok(d.docker(&["logs", "--since", &cut, "talker"])), "late\n");
    let e = fails(d.berth(&["logs", "--since", "yesterday", "talker"]));
    assert!(e.contains("invalid time"), "{e}");
}

/// Output a running container sent before an attach came, whose line is not finished (so
/// not yet in the log), still reaches that attach's replay (`logs=1`, as `docker run`'s
/// attach gets, which may come after the program's first write).
#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn an_unfinished_line_reaches_a_late_attach() {
    use std::io::{Read, Write};
    let d = daemon_with_busybox();
    ok(d.berth(&[
        "run",
        "-d",
        "--name",
        "partial",
        "busybox",
        "sh",
        "-c",
        "printf abc; sleep 2; echo def",
    ]));
    std::thread::sleep(std::time::Duration::from_millis(700));
    let sock = d.host().trim_start_matches("unix://").to_owned();
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    write!(
        s,
        "POST /v1.41/containers/partial/attach?stream=1&logs=1&stdout=1 HTTP/1.1\r\n\
         Host: berth\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n"
    )
    .unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).unwrap();
    let got = String::from_utf8_lossy(&got);
    assert!(got.starts_with("HTTP/1.1 101"), "{got}");
    let body = &got[got.find("\r\n\r\n").unwrap() + 4..];
    // frames: an 8-byte header, then the bytes
    assert!(body.contains("abc") && body.contains("def\n"), "{body:?}");
    assert!(body.find("abc") < body.find("def"), "{body:?}");
    ok(d.berth(&["rm", "-f", "partial"]));
}

fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim().to_owned())
        .unwrap_or_default()
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn tmpfs_ulimit_privileged_and_security_opts() {
    let d = daemon_with_busybox();
    let mounts = ok(d.berth(&[
        "run",
        "--rm",
        "--tmpfs",
        "/scratch:size=1m",
        "busybox",
        "cat",
        "/proc/self/mounts",
    ]));
    let line = mounts
        .lines()
        .find(|l| l.contains(" /scratch "))
        .unwrap_or("");
    assert!(
        line.starts_with("tmpfs /scratch tmpfs") && line.contains("size=1024k"),
        "{mounts}"
    );
    assert!(
        line.contains("nosuid") && line.contains("nodev") && line.contains("noexec"),
        "{line}"
    );

    let lim = ok(d.berth(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=100:200",
        "busybox",
        "sh",
        "-c",
        "ulimit -n; ulimit -Hn",
    ]));
    assert_eq!(lim, "100\n200\n");
    let e = fails(d.berth(&[
        "run",
        "--rm",
        "--ulimit",
        "nofile=30000:30000",
        "busybox",
        "true",
    ]));
    assert!(
        e.to_lowercase().contains("nofile") || e.contains("RLIMIT_NOFILE"),
        "{e}"
    );
    let e = fails(d.berth(&["run", "--rm", "--ulimit", "bogus=1", "busybox", "true"]));
    assert!(e.contains("invalid ulimit type: bogus"), "{e}");

    let default = ok(d.berth(&["run", "--rm", "busybox", "cat", "/proc/self/status"]));
    assert_eq!(status_field(&default, "Seccomp:"), "2");
    assert_eq!(status_field(&default, "NoNewPrivs:"), "0");
    let privileged = ok(d.berth(&[
        "run",
        "--rm",
        "--privileged",
        "busybox",
        "cat",
        "/proc/self/status",
    ]));
    assert_eq!(status_field(&privileged, "Seccomp:"), "0");
    // every capability this host lets us have
    let ours = std::fs::read_to_string("/proc/self/status").unwrap();
    assert_eq!(
        status_field(&privileged, "CapEff:"),
        status_field(&ours, "CapBnd:")
    );
    assert_ne!(
        status_field(&default, "CapEff:"),
        status_field(&privileged, "CapEff:")
    );
    let nnp = ok(d.berth(&[
        "run",
        "--rm",
        "--security-opt",
        "no-new-privileges",
        "busybox",
        "cat",
        "/proc/self/status",
    ]));
    assert_eq!(status_field(&nnp, "NoNewPrivs:"), "1");
    let unconfined = ok(d.berth(&[
        "run",
        "--rm",
        "--security-opt",
        "seccomp=unconfined",
        "busybox",
        "cat",
        "/proc/self/status",
    ]));
    assert_eq!(status_field(&unconfined, "Seccomp:"), "0");
    // a profile file in moby's format, sent by content as the docker CLI does
    let profile = d.path("no-mkdir.json");
    std::fs::write(
        &profile,
        r#"{"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}"#,
    )
    .unwrap();
    let opt = format!("seccomp={}", profile.display());
    let e = fails(d.berth(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox",
        "mkdir",
        "/x",
    ]));
    assert!(e.contains("Operation not permitted"), "{e}");
    let e = fails(d.docker(&[
        "run",
        "--rm",
        "--security-opt",
        &opt,
        "busybox",
        "mkdir",
        "/x",
    ]));
    assert!(e.contains("Operation not permitted"), "{e}");
    let e = fails(d.berth(&["run", "--rm", "--security-opt", "bogus", "busybox", "true"]));
    assert!(e.contains("Invalid --security-opt"), "{e}");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn stats_from_cgroups() {
    let d = daemon_with_busybox();
    ok(d.berth(&[
        "run",
        "-d",
        "--name",
        "busy",
        "-m",
        "64m",
        "busybox",
        "sh",
        "-c",
        "while true; do :; done",
    ]));
    std::thread::sleep(Duration::from_millis(300));
    let out = ok(d.berth(&["stats", "--no-stream", "busy"]));
    let row = out.lines().nth(1).unwrap_or("");
    assert!(row.contains("busy") && row.contains("/ 64MiB"), "{out}");
    let cpu: f64 = row
        .split_whitespace()
        .find(|f| f.ends_with('%'))
        .unwrap()
        .trim_end_matches('%')
        .parse()
        .unwrap();
    assert!(cpu > 20.0, "a busy loop uses CPU: {out}");
    let v: serde_json::Value = serde_json::from_str(&ok(d.docker(&[
        "stats",
        "--no-stream",
        "--format",
        "{{json .}}",
        "busy",
    ])))
    .unwrap();
    assert_eq!(v["Name"], "busy");
    assert!(v["MemUsage"].as_str().unwrap().ends_with("64MiB"), "{v}");
    ok(d.berth(&["rm", "-f", "busy"]));
}

/// On cgroup v1, the daemon makes a container's cgroup ahead (`<parent>/.ahead-*` in every
/// hierarchy), the next start takes it over with its limits applied, and a clean stop
/// removes what waits.
#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn cgroups_are_made_ahead_and_removed_at_shutdown() {
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        return; // cgroup v2: a cgroup directory cannot be renamed, none are made ahead
    }
    let mut d = daemon_with_busybox();
    let memory = Path::new("/sys/fs/cgroup/memory").join(d.cgroup_parent());
    let ahead = |dir: &Path| -> Vec<String> {
        std::fs::read_dir(dir)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.starts_with(".ahead-"))
                    .collect()
            })
            .unwrap_or_default()
    };
    ok(d.berth(&["run", "--rm", "busybox", "true"]));
    // made, and ready: the devices rules are applied last (a default container's: deny
    // all but the default nodes), then it waits for a start
    let devices = Path::new("/sys/fs/cgroup/devices").join(d.cgroup_parent());
    let ready = || {
        let made = ahead(&memory);
        !made.is_empty()
            && (!devices.exists()
                || made.iter().any(|a| {
                    std::fs::read_to_string(devices.join(a).join("devices.list"))
                        .is_ok_and(|l| l.contains("c 1:3 rwm") && !l.contains("a *:* rwm"))
                }))
    };
    wait_until(ready, "a cgroup made ahead");
    std::thread::sleep(std::time::Duration::from_millis(100));
    let waiting = ahead(&memory);
    let id = ok(d.berth(&["run", "-d", "-m", "32m", "busybox", "sleep", "60"]))
        .trim()
        .to_owned();
    // the start took one of those: it is the container's now, with its limit
    let after = ahead(&memory);
    assert!(
        waiting.iter().any(|w| !after.contains(w)),
        "none taken: {waiting:?} then {after:?}"
    );
    let limit = std::fs::read_to_string(memory.join(&id).join("memory.limit_in_bytes")).unwrap();
    assert_eq!(limit.trim(), (32u64 << 20).to_string());
    for h in ["cpu", "cpuset", "pids", "devices", "freezer", "blkio"] {
        let dir = Path::new("/sys/fs/cgroup").join(h).join(d.cgroup_parent());
        if dir.exists() {
            assert!(dir.join(&id).is_dir(), "{h}");
        }
    }
    // with the default device rules in force (applied ahead, not written again)
    if devices.exists() {
        let list = std::fs::read_to_string(devices.join(&id).join("devices.list")).unwrap();
        assert!(
            list.contains("c 1:3 rwm") && list.contains("c 136:* rwm") && !list.contains("a *:*"),
            "{list}"
        );
    }
    let procs = std::fs::read_to_string(memory.join(&id).join("cgroup.procs")).unwrap();
    assert!(!procs.trim().is_empty(), "the container runs in it");
    ok(d.berth(&["rm", "-f", &id]));
    wait_until(|| !ahead(&memory).is_empty(), "the next made ahead");
    d.terminate();
    for h in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let left = ahead(&h.path().join(d.cgroup_parent()));
        assert!(left.is_empty(), "{}: {left:?}", h.path().display());
    }
}

/// Zombie processes in container `c`, from its /proc.
fn zombies_in(d: &TestDaemon, c: &str) -> usize {
    ok(d.berth(&["exec", c, "sh", "-c", "cat /proc/[0-9]*/stat"]))
        .lines()
        .filter(|l| l.contains(") Z "))
        .count()
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn init_reaps_orphans_and_forwards_signals() {
    let d = daemon_with_busybox();
    // the program is PID 2 under the reaper; exit codes pass through, signals as 128+N
    assert_eq!(
        ok(d.berth(&["run", "--rm", "--init", "busybox", "sh", "-c", "echo $$"])),
        "2\n"
    );
    assert_eq!(
        ok(d.berth(&["run", "--rm", "busybox", "sh", "-c", "echo $$"])),
        "1\n"
    );
    // --group-add: numbers and names from the image's /etc/group, for the process and exec
    assert_eq!(
        ok(d.berth(&[
            "run",
            "--rm",
            "--group-add",
            "1001",
            "--group-add",
            "root",
            "-u",
            "nobody",
            "busybox",
            "id",
            "-G"
        ])),
        "65534 0 1001\n"
    );
    let err = fails(d.berth(&["run", "--rm", "--group-add", "nosuch", "busybox", "true"]));
    assert!(err.contains("Unable to find group nosuch"), "{err}");
    let out = run(&mut d.berth(&["run", "--rm", "--init", "busybox", "sh", "-c", "exit 5"]));
    assert_eq!(out.status.code(), Some(5));
    let out = run(&mut d.berth(&["run", "--rm", "--init", "busybox", "sh", "-c", "kill -9 $$"]));
    assert_eq!(out.status.code(), Some(137));
    let out = run(&mut d.berth(&["run", "--rm", "--init", "busybox", "no-such-program"]));
    assert_eq!(out.status.code(), Some(127));

    // an orphan is reaped by the reaper; without it, PID 1 (`sleep`) leaves a zombie
    for (name, init, zombies) in [("with", true, 0), ("without", false, 1)] {
        let mut args = vec!["run", "-d", "--name", name];
        if init {
            args.push("--init");
        }
        args.extend(["busybox", "sh", "-c", "(sleep 0.1 &); exec sleep 60"]);
        ok(d.berth(&args));
        std::thread::sleep(Duration::from_millis(600));
        assert_eq!(zombies_in(&d, name), zombies, "{name} --init");
    }
    // SIGTERM reaches `sleep` through the reaper (exit 143); as PID 1 itself, sleep
    // ignores it and stop has to kill (137)
    ok(d.berth(&["stop", "-t", "2", "with", "without"]));
    let code = |c: &str| ok(d.berth(&["wait", c])).trim().to_owned();
    assert_eq!(code("with"), "143");
    assert_eq!(code("without"), "137");
    let v: serde_json::Value = serde_json::from_str(&ok(d.docker(&["inspect", "with"]))).unwrap();
    assert_eq!(v[0]["HostConfig"]["Init"], true);
    // the docker CLI's --init
    assert_eq!(
        ok(d.docker(&["run", "--rm", "--init", "busybox", "sh", "-c", "echo $$"])),
        "2\n"
    );
    ok(d.berth(&["rm", "with", "without"]));
}

/// The numbers of `line N` entries in `out`.
fn line_numbers(out: &str) -> Vec<u32> {
    out.lines()
        .filter_map(|l| l.strip_prefix("line ").and_then(|n| n.parse().ok()))
        .collect()
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn log_rotation_and_drivers() {
    let d = daemon_with_busybox();
    let script = "i=0; while [ $i -lt 3000 ]; do echo line $i; i=$((i+1)); done";
    ok(d.berth(&[
        "run",
        "--name",
        "rot",
        "--log-opt",
        "max-size=10k",
        "--log-opt",
        "max-file=3",
        "busybox",
        "sh",
        "-c",
        script,
    ]));
    let id = ok(d.berth(&["inspect", "--type", "container", "rot"]));
    let v: serde_json::Value = serde_json::from_str(&id).unwrap();
    let id = v[0]["Id"].as_str().unwrap();
    assert_eq!(v[0]["HostConfig"]["LogConfig"]["Type"], "json-file");
    let log = d.data_root.join(format!("containers/{id}/{id}-json.log"));
    let file = |n: u32| std::path::PathBuf::from(format!("{}.{n}", log.display()));
    assert!(file(1).exists() && file(2).exists(), "rotated files");
    assert!(!file(3).exists(), "max-file=3 keeps three files");
    for p in [log.clone(), file(1), file(2)] {
        let len = std::fs::metadata(&p).unwrap().len();
        assert!(len <= 10 * 1024 + 200, "{p:?} is {len} bytes");
    }
    // logs reads the rotated files, oldest first: the newest lines, contiguous, in order
    let nums = line_numbers(&ok(d.berth(&["logs", "rot"])));
    assert!(
        nums.len() > 200 && nums.len() < 3000,
        "{} lines kept",
        nums.len()
    );
    assert_eq!(*nums.last().unwrap(), 2999);
    assert!(nums.windows(2).all(|w| w[1] == w[0] + 1), "contiguous");
    let tail = line_numbers(&ok(d.berth(&["logs", "-n", "5", "rot"])));
    assert_eq!(tail, [2995, 2996, 2997, 2998, 2999]);

    // following across rotations: in order, through to the end
    ok(d.berth(&[
        "run",
        "-d",
        "--name",
        "live",
        "--log-opt",
        "max-size=4k",
        "--log-opt",
        "max-file=2",
        "busybox",
        "sh",
        "-c",
        &format!("sleep 0.3; {script}"),
    ]));
    let nums = line_numbers(&ok(d.berth(&["logs", "-f", "live"])));
    assert_eq!(*nums.last().unwrap(), 2999);
    assert!(nums.windows(2).all(|w| w[1] > w[0]), "in order");

    // --log-driver none: nothing written, and logs says so; bad options are refused
    ok(d.docker(&[
        "run",
        "--name",
        "quiet",
        "--log-driver",
        "none",
        "busybox",
        "echo",
        "hi",
    ]));
    let err = fails(d.docker(&["logs", "quiet"]));
    assert!(
        err.contains("configured logging driver does not support reading"),
        "{err}"
    );
    for (opt, msg) in [
        ("max-size=lots", "invalid value for max-size"),
        ("max-file=0", "invalid value for max-file"),
        ("colour=red", "unknown log opt 'colour'"),
    ] {
        let err = fails(d.docker(&["run", "--rm", "--log-opt", opt, "busybox", "true"]));
        assert!(err.contains(msg), "{opt}: {err}");
    }
    let err = fails(d.berth(&["run", "--rm", "--log-driver", "syslog", "busybox", "true"]));
    assert!(err.contains("no log driver named 'syslog'"), "{err}");
    assert_eq!(ok(d.berth(&["ps", "-a", "-q"])).lines().count(), 3);
    ok(d.berth(&["rm", "-f", "rot", "live", "quiet"]));
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn update_limits_of_running_and_stopped_containers() {
    let d = daemon_with_busybox();
    let id = ok(d.berth(&[
        "run", "-d", "--name", "u", "-m", "64m", "busybox", "sleep", "60",
    ]))
    .trim()
    .to_owned();
    let cg = |ctl: &str, file: &str| {
        std::fs::read_to_string(format!(
            "/sys/fs/cgroup/{ctl}/{}/{id}/{file}",
            d.cgroup_parent()
        ))
        .unwrap()
        .trim()
        .to_owned()
    };
    assert_eq!(
        cg("memory", "memory.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    ok(d.berth(&[
        "update",
        "-m",
        "128m",
        "--pids-limit",
        "50",
        "--cpus",
        "0.5",
        "--restart",
        "on-failure:3",
        "u",
    ]));
    assert_eq!(
        cg("memory", "memory.limit_in_bytes"),
        (128u64 << 20).to_string()
    );
    assert_eq!(cg("pids", "pids.max"), "50");
    assert_eq!(cg("cpu", "cpu.cfs_quota_us"), "50000");
    let v: serde_json::Value = serde_json::from_str(&ok(d.berth(&["inspect", "u"]))).unwrap();
    let hc = &v[0]["HostConfig"];
    assert_eq!(hc["Memory"], 128 << 20);
    assert_eq!(hc["PidsLimit"], 50);
    assert_eq!(hc["RestartPolicy"]["Name"], "on-failure");
    assert_eq!(hc["RestartPolicy"]["MaximumRetryCount"], 3);
    // the docker CLI's update, and Docker's refusals
    ok(d.docker(&["update", "--memory", "96m", "u"]));
    assert_eq!(
        cg("memory", "memory.limit_in_bytes"),
        (96u64 << 20).to_string()
    );
    let err = fails(d.docker(&["update", "--memory", "1m", "u"]));
    assert!(err.contains("Minimum memory limit allowed is 6MB"), "{err}");
    let err = fails(d.berth(&["update", "u"]));
    assert!(err.contains("one or more flags"), "{err}");
    let err = fails(d.berth(&["update", "-m", "10m", "nosuch"]));
    assert!(err.contains("No such container"), "{err}");
    // a stopped container gets the new limit at its next start
    ok(d.berth(&["stop", "-t", "0", "u"]));
    ok(d.berth(&["update", "-m", "80m", "u"]));
    ok(d.berth(&["start", "u"]));
    assert_eq!(
        cg("memory", "memory.limit_in_bytes"),
        (80u64 << 20).to_string()
    );
    ok(d.berth(&["rm", "-f", "u"]));
}

/// A small tmpfs mounted (in the test's mount namespace) at `path`, unmounted when dropped.
struct SmallDisk(std::path::PathBuf);

impl SmallDisk {
    fn mount(path: &std::path::Path, size: &str) -> Self {
        std::fs::create_dir_all(path).unwrap();
        ok(std::process::Command::new("mount").args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size}"),
            "berth-test-disk",
            path.to_str().unwrap(),
        ]));
        Self(path.to_owned())
    }

    /// Take every free byte.
    fn fill(&self) {
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        let buf = vec![7u8; 1 << 16];
        while f.write_all(&buf).is_ok() {}
    }

    fn free(&self) {
        let _ = std::fs::remove_file(self.0.join("filler"));
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn a_full_disk_is_a_clear_error_and_leaves_nothing_behind() {
    assert!(
        is_root(),
        "containers need root: run through `cargo xtask test`"
    );
    let mut d = TestDaemon::unstarted(&[]);
    let disk = SmallDisk::mount(&d.data_root, "48m");
    d.spawn();
    d.import_busybox("busybox", &[]);
    ok(d.berth(&["create", "--name", "later", "busybox", "echo", "ran"]));
    disk.fill();

    // create: refused, no record left
    let out = run(&mut d.berth(&["create", "--name", "nope", "busybox", "true"]));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("No space left on device"), "{err}");
    // start: refused with the reason; no monitor, mount or cgroup is left
    let err = fails(d.berth(&["start", "later"]));
    assert!(err.contains("No space left on device"), "{err}");
    let err = fails(d.berth(&["run", "--rm", "busybox", "true"]));
    assert!(err.contains("No space left on device"), "{err}");
    let pid = std::fs::read_to_string(d.data_root.join("daemon.pid")).unwrap();
    let mounts = std::fs::read_to_string(format!("/proc/{}/mountinfo", pid.trim())).unwrap();
    assert!(
        !mounts.lines().any(|l| l.contains("/containers/")),
        "a container mount was left: {mounts}"
    );
    let cg = format!("/sys/fs/cgroup/memory/{}", d.cgroup_parent());
    let left: Vec<_> = std::fs::read_dir(&cg)
        .map(|r| r.flatten().filter(|e| e.path().is_dir()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "cgroups left: {left:?}");
    let monitors = run(std::process::Command::new("pgrep")
        .args(["-f", &format!("monitor.*{}", d.exec_root.display())]));
    assert_eq!(
        String::from_utf8_lossy(&monitors.stdout),
        "",
        "a monitor was left"
    );
    assert_eq!(
        ok(d.berth(&["ps", "-a", "--format", "json"]))
            .lines()
            .count(),
        1
    );

    // with room again, the same container starts
    disk.free();
    ok(d.berth(&["start", "later"]));
    assert_eq!(ok(d.berth(&["wait", "later"])).trim(), "0");
    assert_eq!(ok(d.berth(&["logs", "later"])), "ran\n");
    ok(d.berth(&["system", "check"]));
    // the disk first: the scratch directory under it can only go once it is unmounted (the
    // daemon's namespace keeps its own copy of the mount until the daemon is gone)
    drop(disk);
    drop(d);
}
