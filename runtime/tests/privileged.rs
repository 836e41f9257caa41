//! Privileged tests: real containers from a busybox bundle. They need root and are
//! ignored by a plain `cargo test`; run them with
//! `cargo test -p runtime -- --include-ignored` (or `cargo xtask test` as root).
//!
//! Every test works in its own temp dir and cgroup path, and a guard deletes the container
//! (state dir, cgroup) even when the test fails.

#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns

mod support;

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::Path;

use runtime::seccomp::moby::DEFAULT_CAPS as DOCKER_CAPS;
use runtime::{Container, RuntimeError, Status};
use serde_json::{json, Value};
use support::Bundle;

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn run_sets_hostname_user_env_cwd_and_exit_code() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "hostname; id -u; id -g; id -G; echo $GREETING; pwd; exit 3",
    ]);
    b.config["hostname"] = json!("berthbox");
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [10, 20]});
    b.config["process"]["env"] = json!(["PATH=/bin", "GREETING=hello there"]);
    b.config["process"]["cwd"] = json!("/work");
    let (code, out) = b.run();
    assert_eq!(code, 3, "{out}");
    assert_eq!(
        out,
        "berthbox\n1000\n1000\n1000 10 20\nhello there\n/work\n"
    );
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn the_mount_namespace_outlives_the_init_until_delete() {
    let b = Bundle::new(&["sleep", "100"]);
    b.write();
    let mut c = Container::create_started(&b.id, b.dir.path(), b.opts()).unwrap();
    c.kill(nix::sys::signal::Signal::SIGKILL).unwrap();
    assert_eq!(c.wait().unwrap(), 128 + 9);
    // the init is gone; its namespace, with the container's mounts, is still there to enter
    let ns = c.mount_namespace().expect("the mount namespace is held");
    let ns = ns.try_clone_to_owned().unwrap();
    let mounts = std::thread::spawn(move || {
        // (the container's /proc is of its pid namespace: read through the host's)
        let host_proc = std::fs::File::open("/proc/thread-self").unwrap();
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_FS).unwrap();
        nix::sched::setns(ns, nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
        let f = nix::fcntl::openat(
            &host_proc,
            "mountinfo",
            nix::fcntl::OFlag::O_RDONLY | nix::fcntl::OFlag::O_CLOEXEC,
            nix::sys::stat::Mode::empty(),
        )
        .unwrap();
        std::io::read_to_string(std::fs::File::from(f)).unwrap()
    })
    .join()
    .unwrap();
    let kinds: Vec<(&str, &str)> = mounts
        .lines()
        .filter_map(|l| {
            let (fields, fs) = l.split_once(" - ")?;
            Some((fields.split(' ').nth(4)?, fs.split(' ').next()?))
        })
        .collect();
    for want in [("/proc", "proc"), ("/dev/pts", "devpts"), ("/sys", "sysfs")] {
        assert!(kinds.contains(&want), "{want:?} not in {mounts}");
    }
    c.delete(true).unwrap();
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn proc_shows_only_the_containers_pids() {
    let b = Bundle::new(&["ls", "/proc"]);
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    let pids: Vec<&str> = out
        .lines()
        .filter(|l| l.chars().all(|c| c.is_ascii_digit()))
        .collect();
    assert_eq!(pids, ["1"], "{out}");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn masked_and_readonly_paths() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "echo version=$(cat /proc/version | wc -c); ls /sys/firmware | wc -l; echo 1 > /proc/sys/kernel/domainname && echo writable || echo readonly",
    ]);
    // /proc/kcore is missing on some kernels: mask a file every kernel has as well.
    b.config["linux"]["maskedPaths"]
        .as_array_mut()
        .unwrap()
        .push(json!("/proc/version"));
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "version=0");
    assert_eq!(lines[1].trim(), "0");
    assert_eq!(lines.last().copied(), Some("readonly"), "{out}");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn rlimits_apply_and_host_hard_limit_is_enforced() {
    let mut b = Bundle::new(&["sh", "-c", "ulimit -n; ulimit -Hn"]);
    b.config["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 512, "hard": 900}]);
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "512\n900\n");

    let mut b = Bundle::new(&["true"]);
    b.config["process"]["rlimits"] =
        json!([{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": u64::MAX / 2}]);
    b.write();
    let e = Container::create(&b.id, b.dir.path(), b.opts()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("process.rlimits[0] (RLIMIT_NOFILE).hard"),
        "{msg}"
    );
    assert!(msg.contains("host's hard limit"), "{msg}");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn cgroup_memory_limit_visible_inside_and_removed_after() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max; cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max",
    ]);
    b.config["linux"]["resources"] = json!({"memory": {"limit": 67108864}, "pids": {"limit": 32}});
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    assert_eq!(out, "67108864\n32\n");
    for d in b.cgroup_dirs() {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn capabilities_follow_the_spec() {
    // runc's example: AUDIT_WRITE (29), KILL (5), NET_BIND_SERVICE (10).
    let script = "grep -E '^Cap(Eff|Bnd|Prm|Inh|Amb)' /proc/self/status";
    let b = Bundle::new(&["sh", "-c", script]);
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        "CapInh:\t0000000000000000\nCapPrm:\t0000000020000420\nCapEff:\t0000000020000420\nCapBnd:\t0000000020000420\nCapAmb:\t0000000000000000\n"
    );
    // A non-root user keeps capabilities across exec only through the ambient set.
    let mut b = Bundle::new(&["sh", "-c", script]);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let kill = json!(["CAP_KILL"]);
    for set in ["inheritable", "ambient"] {
        b.config["process"]["capabilities"][set] = kill.clone();
    }
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        "CapInh:\t0000000000000020\nCapPrm:\t0000000000000020\nCapEff:\t0000000000000020\nCapBnd:\t0000000020000420\nCapAmb:\t0000000000000020\n"
    );
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn lifecycle_create_start_kill_delete() {
    let b = Bundle::new(&["sleep", "100"]);
    b.write();
    let mut c = Container::create(&b.id, b.dir.path(), b.opts()).unwrap();
    assert_eq!(c.state().status, Status::Created);
    let pid = c.pid();
    assert!(pid > 0);
    // Created: the init is waiting on the fifo, not running the user's program yet.
    let cmd = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(!cmd.starts_with("sleep"), "{cmd}");
    assert!(matches!(c.kill(nix::sys::signal::Signal::SIGCONT), Ok(())));

    let mut again = Container::load(&b.root(), &b.id).unwrap();
    again.start().unwrap();
    assert_eq!(again.state().status, Status::Running);
    let e = again.start().unwrap_err();
    assert!(
        matches!(
            e,
            RuntimeError::WrongStatus {
                status: Status::Running,
                ..
            }
        ),
        "{e}"
    );
    let listed: Vec<String> = Container::list(&b.root())
        .unwrap()
        .iter()
        .map(|c| c.id().to_string())
        .collect();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0], b.id);

    let e = Container::load(&b.root(), &b.id)
        .unwrap()
        .delete(false)
        .unwrap_err();
    assert!(e.to_string().contains("is running"), "{e}");

    again.kill(nix::sys::signal::Signal::SIGKILL).unwrap();
    assert_eq!(again.wait().unwrap(), 128 + 9);
    assert_eq!(again.state().status, Status::Stopped);
    again.delete(false).unwrap();
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn failed_create_tears_down_and_reports() {
    let mut b = Bundle::new(&["true"]);
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": "/nonexistent/berth-test-source", "options": ["rbind"]
    }));
    b.config["linux"]["resources"] = json!({"pids": {"limit": 10}});
    b.write();
    let e = Container::create(&b.id, b.dir.path(), b.opts()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("/nonexistent/berth-test-source"), "{msg}");
    assert!(!b.root().join(&b.id).exists());
}

/// A namespace to join that is not there: the intermediate fails before the cgroup is
/// joined (it opens and enters such namespaces first), and the caller reports its reason,
/// not a broken channel; nothing is left.
#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn a_namespace_to_join_that_is_gone_fails_create_with_its_path() {
    let mut b = Bundle::new(&["true"]);
    let nss = b.config["linux"]["namespaces"].as_array_mut().unwrap();
    nss.retain(|n| n["type"] != "network");
    nss.push(json!({"type": "network", "path": "/nonexistent/berth-test-netns"}));
    b.write();
    let e = Container::create(&b.id, b.dir.path(), b.opts()).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("open namespace /nonexistent/berth-test-netns"),
        "{msg}"
    );
    assert!(!b.root().join(&b.id).exists());
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn missing_program_fails_create_with_field() {
    let b = Bundle::new(&["no-such-program"]);
    b.write();
    let e = Container::create(&b.id, b.dir.path(), b.opts()).unwrap_err();
    let msg = e.to_string();
    assert!(msg.contains("process.args[0] \"no-such-program\""), "{msg}");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn bind_mount_readonly_and_symlink_escape_stays_inside() {
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "cat /data/f; touch /data/g && echo writable || echo ro; ls /escape",
    ]);
    let src = b.dir.path().join("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), "from host\n").unwrap();
    // A symlink in the image pointing outside: the mount must land inside the rootfs.
    let outside = b.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::os::unix::fs::symlink(&outside, b.dir.path().join("rootfs/escape")).unwrap();
    // The same trick with a relative link climbing out.
    let ups = "../".repeat(outside.components().count() + 2);
    let rel_outside = format!("{ups}{}", outside.join("rel").display());
    std::os::unix::fs::symlink(&rel_outside, b.dir.path().join("rootfs/escape2")).unwrap();
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/escape2", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]
    }));
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/data", "type": "bind", "source": src, "options": ["rbind", "ro"]
    }));
    b.config["mounts"].as_array_mut().unwrap().push(json!({
        "destination": "/escape", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]
    }));
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("from host\n"), "{out}");
    assert!(out.contains("ro\n"), "{out}");
    assert!(!b.dir.path().join("src/g").exists());
    // Nothing was mounted on the host directory the symlink named.
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&*outside.to_string_lossy()));
    assert!(
        !outside.join("rel").exists(),
        "created a directory outside the root"
    );
    // The links' targets were created inside the rootfs instead.
    let inside = b
        .dir
        .path()
        .join("rootfs")
        .join(outside.strip_prefix("/").unwrap());
    assert!(inside.is_dir());
    assert!(inside.join("rel").is_dir());
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn cli_create_state_start_delete() {
    runtime::sys::set_child_subreaper().unwrap();
    let b = Bundle::new(&["sleep", "100"]);
    b.write();
    let bin = env!("CARGO_BIN_EXE_berth-runtime");
    let root = b.root();
    // Output goes to files, not pipes: after `create` the container's init holds the
    // caller's stdio (as with runc), so a pipe would not reach EOF.
    let outf = b.dir.path().join("cli.out");
    let errf = b.dir.path().join("cli.err");
    let cli = |args: &[&str]| {
        let status = std::process::Command::new(bin)
            .arg("--root")
            .arg(&root)
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&outf).unwrap())
            .stderr(std::fs::File::create(&errf).unwrap())
            .status()
            .unwrap();
        (
            status.code().unwrap_or(-1),
            std::fs::read_to_string(&outf).unwrap(),
            std::fs::read_to_string(&errf).unwrap(),
        )
    };
    let pidfile = b.dir.path().join("pid");
    let bundle = b.dir.path().to_string_lossy().into_owned();
    let (code, _, err) = cli(&[
        "create",
        "-b",
        &bundle,
        "--pid-file",
        &pidfile.to_string_lossy(),
        &b.id,
    ]);
    assert_eq!(code, 0, "{err}");
    let (_, state, _) = cli(&["state", &b.id]);
    let v: Value = serde_json::from_str(&state).unwrap();
    assert_eq!(v["status"], "created");
    assert_eq!(v["id"], b.id.as_str());
    assert_eq!(
        v["pid"].to_string(),
        std::fs::read_to_string(&pidfile).unwrap()
    );
    assert_eq!(cli(&["start", &b.id]).0, 0);
    let (_, state, _) = cli(&["state", &b.id]);
    assert!(state.contains("\"running\""), "{state}");
    let (_, ps, _) = cli(&["ps", "--format", "json", &b.id]);
    assert_eq!(ps.trim(), format!("[{}]", v["pid"]));
    // update: flags and a resources file, written into the live cgroup: the v1 file in the
    // controller's hierarchy, or the v2 file in the unified one (whichever the runtime uses)
    let v2 = runtime::cgroup::detect(&runtime::cgroup::RealCgroupFs, Path::new("/sys/fs/cgroup"))
        == runtime::cgroup::Version::V2;
    let cg_file = |ctl: &str, v1_file: &str, v2_file: &str| {
        let cg = std::fs::read_to_string(format!("/proc/{}/cgroup", v["pid"])).unwrap();
        let path = cg
            .lines()
            .find_map(|l| {
                let mut parts = l.splitn(3, ':');
                let (_, ctls, path) = (parts.next()?, parts.next()?, parts.next()?);
                let here = if v2 {
                    ctls.is_empty()
                } else {
                    ctls.split(',').any(|x| x == ctl)
                };
                here.then(|| path.to_owned())
            })
            .unwrap_or_else(|| panic!("no {ctl} cgroup (v2: {v2}) in:\n{cg}"));
        let file = if v2 {
            format!("/sys/fs/cgroup{path}/{v2_file}")
        } else {
            format!("/sys/fs/cgroup/{ctl}{path}/{v1_file}")
        };
        std::fs::read_to_string(&file)
            .unwrap_or_else(|e| panic!("{file}: {e}"))
            .trim()
            .to_owned()
    };
    let (code, _, err) = cli(&[
        "update",
        "--memory",
        "33554432",
        "--pids-limit",
        "20",
        &b.id,
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        cg_file("memory", "memory.limit_in_bytes", "memory.max"),
        "33554432"
    );
    assert_eq!(cg_file("pids", "pids.max", "pids.max"), "20");
    let res = b.dir.path().join("res.json");
    std::fs::write(&res, r#"{"pids": {"limit": 30}, "cpu": {"shares": 256}}"#).unwrap();
    let (code, _, err) = cli(&["update", "-r", &res.to_string_lossy(), &b.id]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(cg_file("pids", "pids.max", "pids.max"), "30");
    // v2: shares 256 → weight 1 + ((256 - 2) * 9999) / 262142 = 10
    assert_eq!(
        cg_file("cpu", "cpu.shares", "cpu.weight"),
        if v2 { "10" } else { "256" }
    );
    // events --stats: one sample of the same cgroup
    let (code, out, err) = cli(&["events", "--stats", &b.id]);
    assert_eq!(code, 0, "{err}");
    let ev: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(ev["type"], "stats");
    assert_eq!(ev["data"]["memory"]["usage"]["limit"], 33554432);
    assert_eq!(ev["data"]["pids"]["limit"], 30);
    assert_eq!(ev["data"]["pids"]["current"], 1);
    assert!(ev["data"]["cpu"]["usage"]["total"].as_u64().unwrap() > 0);
    let (code, _, err) = cli(&["events", "--interval", "soon", &b.id]);
    assert_ne!(code, 0);
    assert!(err.contains("invalid interval"), "{err}");
    std::fs::write(&res, "{not json").unwrap();
    let (code, _, err) = cli(&["update", "-r", &res.to_string_lossy(), &b.id]);
    assert_ne!(code, 0);
    assert!(err.contains("not valid JSON"), "{err}");
    let (code, _, err) = cli(&["delete", &b.id]);
    assert_ne!(code, 0);
    assert!(err.contains("running"), "{err}");
    assert_eq!(cli(&["kill", &b.id, "KILL"]).0, 0);
    let (code, _, err) = cli(&["delete", "--force", &b.id]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(&["--systemd-cgroup", "list"]);
    assert_ne!(code, 0);
    assert!(err.contains("--systemd-cgroup is not supported"), "{err}");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn seccomp_profile_applies_and_is_cached() {
    let profile = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]
    });
    for nnp in [true, false] {
        let mut b = Bundle::new(&["sh", "-c", "mkdir /tmp/x 2>&1; echo done"]);
        b.config["linux"]["seccomp"] = profile.clone();
        b.config["process"]["noNewPrivileges"] = json!(nnp);
        let (code, out) = b.run();
        assert_eq!(code, 0, "{out}");
        assert!(out.contains("Permission denied"), "nnp={nnp}: {out}");
        let cache = b.root().join(".seccomp-cache");
        assert_eq!(std::fs::read_dir(&cache).unwrap().count(), 1);
    }
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn moby_default_profile_denies_namespaces_but_not_ordinary_work() {
    // `unshare -U` needs no capability: only the seccomp profile can refuse it.
    let script = "grep '^Seccomp:' /proc/self/status; unshare -U true && echo userns ok; \
                  echo hello > /dev/shm/f && cat /dev/shm/f; ls / | wc -l";
    let caps = json!(DOCKER_CAPS);
    let mut without = Bundle::new(&["sh", "-c", script]);
    without.config["process"]["capabilities"] =
        json!({"bounding": caps, "effective": caps, "permitted": caps});
    let (code, out) = without.run();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("Seccomp:\t0") && out.contains("userns ok"),
        "{out}"
    );

    for nnp in [false, true] {
        let mut b = Bundle::new(&["sh", "-c", script]);
        b.config["process"]["capabilities"] =
            json!({"bounding": caps, "effective": caps, "permitted": caps});
        b.config["process"]["noNewPrivileges"] = json!(nnp);
        b.config["linux"]["seccomp"] = json!(runtime::seccomp::moby::default_for(&DOCKER_CAPS));
        let (code, out) = b.run();
        assert_eq!(code, 0, "nnp={nnp}: {out}");
        assert!(out.contains("Seccomp:\t2"), "a filter is installed: {out}");
        assert!(
            out.contains("unshare: unshare(0x10000000): Operation not permitted"),
            "EPERM, not ENOSYS: {out}"
        );
        assert!(!out.contains("userns ok"), "{out}");
        assert!(out.contains("hello\n"), "{out}");
    }
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn exec_joins_namespaces_and_cgroup() {
    let mut b = Bundle::new(&["sleep", "100"]);
    b.config["hostname"] = json!("execbox");
    b.config["linux"]["resources"] = json!({"pids": {"limit": 20}});
    b.write();
    let mut c = Container::create(&b.id, b.dir.path(), b.opts()).unwrap();
    c.start().unwrap();

    let mut p: runtime::oci_spec::runtime::Process =
        serde_json::from_value(b.config["process"].clone()).unwrap();
    p.set_args(Some(
        [
            "sh",
            "-c",
            "hostname; ls /proc | grep -c '^[0-9]'; id -u; exit 7",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    ));
    let mut user = p.user().clone();
    user.set_uid(1000);
    p.set_user(user);
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
    let opts = runtime::ExecOpts {
        stdio: runtime::Stdio {
            stdout: Some(w),
            ..Default::default()
        },
        ..Default::default()
    };
    let pid = c.exec(&p, opts).unwrap();
    // While it runs, the exec'd process sits in the container's cgroup.
    let code = runtime::wait_pid(pid).unwrap();
    let mut out = String::new();
    std::fs::File::from(r).read_to_string(&mut out).unwrap();
    assert_eq!(code, 7, "{out}");
    // hostname; pids visible: sleep (1), sh, ls, grep; uid.
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "execbox");
    assert!(lines[1].parse::<u32>().unwrap() <= 4, "{out}");
    assert_eq!(lines[2], "1000");
    c.delete(true).unwrap();
}

/// Receive one fd over a unix socket, as runc's recvtty does.
fn recv_fd(sock: &std::os::unix::net::UnixStream) -> (OwnedFd, String) {
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut buf = [0u8; 4096];
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let mut cmsg = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = nix::sys::socket::recvmsg::<()>(
        sock.as_raw_fd(),
        &mut iov,
        Some(&mut cmsg),
        nix::sys::socket::MsgFlags::empty(),
    )
    .unwrap();
    let mut fd = None;
    for c in msg.cmsgs().unwrap() {
        if let nix::sys::socket::ControlMessageOwned::ScmRights(fds) = c {
            // SAFETY: the kernel just installed this fd for us.
            #[allow(unsafe_code)]
            {
                fd = Some(unsafe { OwnedFd::from_raw_fd(fds[0]) });
            }
        }
    }
    let n = msg.bytes;
    (fd.unwrap(), String::from_utf8_lossy(&buf[..n]).into_owned())
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn console_socket_receives_the_pty_master() {
    let mut b = Bundle::new(&["sh", "-c", "tty; echo hi > /dev/console"]);
    b.config["process"]["terminal"] = json!(true);
    b.write();
    let sock_path = b.dir.path().join("console.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock_path).unwrap();
    let receiver = std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        let (master, name) = recv_fd(&conn);
        let mut out = Vec::new();
        // Read until the slave side is closed (EIO once the container exits).
        let mut f = std::fs::File::from(master);
        let mut buf = [0u8; 1024];
        loop {
            match f.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        (name, String::from_utf8_lossy(&out).into_owned())
    });
    let mut opts = b.opts();
    opts.console_socket = Some(sock_path);
    let code = Container::run(&b.id, b.dir.path(), opts).unwrap();
    let (name, out) = receiver.join().unwrap();
    assert_eq!(code, 0, "{out}");
    assert!(name.starts_with("/dev/pts/"), "{name}");
    assert_eq!(out, format!("{name}\r\nhi\r\n"));
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn hooks_run_at_each_stage_with_state() {
    let mut b = Bundle::new(&["true"]);
    let d = b.dir.path().display().to_string();
    let hook = |script: String| json!({"path": "/bin/sh", "args": ["sh", "-c", script]});
    b.config["root"]["readonly"] = json!(false);
    b.config["hooks"] = json!({
        "createRuntime": [hook(format!("cat > {d}/createRuntime"))],
        "createContainer": [hook(format!("cat > {d}/createContainer; readlink /proc/self/ns/uts > {d}/cc-uts"))],
        "startContainer": [hook("cat > /tmp/startContainer".into())],
        "poststart": [hook(format!("cat > {d}/poststart"))],
        "poststop": [hook(format!("cat > {d}/poststop"))],
    });
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    let read = |name: &str| {
        std::fs::read_to_string(b.dir.path().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };
    for stage in [
        "createRuntime",
        "createContainer",
        "rootfs/tmp/startContainer",
        "poststart",
        "poststop",
    ] {
        let st: Value = serde_json::from_str(&read(stage)).unwrap();
        assert_eq!(st["id"], b.id.as_str(), "{stage}");
    }
    let created: Value = serde_json::from_str(&read("createRuntime")).unwrap();
    assert!(created["pid"].as_i64().unwrap() > 0);
    let host_uts = std::fs::read_link("/proc/self/ns/uts").unwrap();
    assert_ne!(
        read("cc-uts").trim(),
        host_uts.to_string_lossy(),
        "createContainer runs in the container's namespaces"
    );
    let stopped: Value = serde_json::from_str(&read("poststop")).unwrap();
    assert_eq!(stopped["status"], "stopped");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn failing_hook_fails_create_and_cleans_up() {
    let mut b = Bundle::new(&["true"]);
    b.config["hooks"] = json!({"createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", "echo nope >&2; exit 1"]}]});
    b.write();
    let e = Container::create(&b.id, b.dir.path(), b.opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("hooks.createRuntime[0] /bin/sh"), "{e}");
    assert!(e.contains("nope"), "{e}");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn user_namespace_maps_ids() {
    use std::os::unix::fs::PermissionsExt;
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; cat /proc/self/gid_map",
    ]);
    // The mapped root must be able to reach the bundle.
    std::fs::set_permissions(b.dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    let words: Vec<&str> = out.split_whitespace().collect();
    assert_eq!(
        words,
        ["0", "0", "100000", "65536", "0", "100000", "65536"],
        "{out}"
    );
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn cli_run_forwards_signals_and_returns_exit_code() {
    let b = Bundle::new(&[
        "sh",
        "-c",
        "trap 'exit 42' TERM; touch /tmp/ready; while true; do sleep 0.05; done",
    ]);
    let mut b = b;
    b.config["root"]["readonly"] = json!(false);
    b.write();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_berth-runtime"))
        .arg("--root")
        .arg(b.root())
        .args(["run", "-b"])
        .arg(b.dir.path())
        .arg(&b.id)
        .stdin(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ready = b.dir.path().join("rootfs/tmp/ready");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !ready.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "container never became ready"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(42));
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn pause_resume_and_delete_paused() {
    let b = Bundle::new(&["sleep", "100"]);
    b.write();
    let mut c = Container::create(&b.id, b.dir.path(), b.opts()).unwrap();
    c.start().unwrap();
    c.pause().unwrap();
    assert_eq!(
        Container::load(&b.root(), &b.id).unwrap().state().status,
        Status::Paused
    );
    let e = c.pause().unwrap_err();
    assert!(
        matches!(
            e,
            RuntimeError::WrongStatus {
                status: Status::Paused,
                ..
            }
        ),
        "{e}"
    );
    c.resume().unwrap();
    assert_eq!(c.state().status, Status::Running);
    c.pause().unwrap();
    // A paused container still deletes with force (thawed first so SIGKILL lands).
    c.delete(true).unwrap();
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn no_runtime_fds_leak_into_the_container() {
    // Hold an fd open in the test process: it must not reach the container.
    let _held = std::fs::File::open("/proc/self/status").unwrap();
    let b = Bundle::new(&["ls", "/proc/self/fd"]);
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    // 0-2 and ls's own directory fd.
    assert_eq!(
        out.split_whitespace().collect::<Vec<_>>(),
        ["0", "1", "2", "3"],
        "{out}"
    );
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn cgroup_v2_hierarchy_create_freeze_remove() {
    // This host is hybrid: its (controller-less) cgroup2 mount is a real v2 hierarchy.
    let v2 = Path::new("/sys/fs/cgroup/unified");
    if !v2.join("cgroup.controllers").exists() {
        // Not a skip in disguise: on a pure v2 host every other test already runs on v2.
        assert!(Path::new("/sys/fs/cgroup/cgroup.controllers").exists());
        return;
    }
    let b = Bundle::new(&["sleep", "100"]);
    b.write();
    let mut opts = b.opts();
    opts.cgroup_root = v2.to_path_buf();
    let mut c = Container::create(&b.id, b.dir.path(), opts).unwrap();
    let dir = v2.join(&b.id);
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap();
    assert_eq!(procs.trim(), c.pid().to_string());
    c.start().unwrap();
    c.pause().unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("cgroup.freeze"))
            .unwrap()
            .trim(),
        "1"
    );
    assert_eq!(c.state().status, Status::Paused);
    c.resume().unwrap();
    assert_eq!(c.state().status, Status::Running);
    c.delete(true).unwrap();
    assert!(!dir.exists());
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn masking_refuses_an_image_dev_null_that_is_not_a_device() {
    let mut b = Bundle::new(&["true"]);
    // No tmpfs on /dev: the image's own /dev/null (a symlink to a regular file) is used.
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| !m["destination"].as_str().unwrap().starts_with("/dev"));
    let rootfs = b.dir.path().join("rootfs");
    std::fs::write(rootfs.join("etc/secret"), "x").unwrap();
    std::os::unix::fs::symlink("/etc/secret", rootfs.join("dev/null")).unwrap();
    b.write();
    let e = Container::create(&b.id, b.dir.path(), b.opts())
        .unwrap_err()
        .to_string();
    assert!(e.contains("/dev/null is not the null device"), "{e}");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn init_runs_from_an_unwritable_runtime_binary() {
    // CVE-2019-5736: until it execs, the container's init is the runtime; what its
    // /proc/<pid>/exe points at must be unwritable: never the binary on a writable mount.
    use nix::fcntl::{fcntl, FcntlArg, SealFlag};
    use std::os::unix::fs::MetadataExt;
    let b = Bundle::new(&["sleep", "100"]);
    b.write();
    let bin = env!("CARGO_BIN_EXE_berth-runtime");
    let out = b.dir.path().join("cli.out");
    let st = std::process::Command::new(bin)
        .arg("--root")
        .arg(b.root())
        .args(["create", "-b"])
        .arg(b.dir.path())
        .arg(&b.id)
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&out).unwrap())
        .stderr(std::fs::File::create(&out).unwrap())
        .status()
        .unwrap();
    assert!(st.success(), "{}", std::fs::read_to_string(&out).unwrap());
    let mut c = Container::load(&b.root(), &b.id).unwrap();
    let pid = c.state().pid;
    let exe = std::fs::File::open(format!("/proc/{pid}/exe")).unwrap();
    // Either a sealed memfd copy, or (with the privilege to mount) the binary on a
    // detached read-only bind mount.
    let sealed = fcntl(&exe, FcntlArg::F_GET_SEALS).is_ok_and(|s| {
        SealFlag::from_bits_truncate(s)
            .contains(SealFlag::F_SEAL_WRITE | SealFlag::F_SEAL_GROW | SealFlag::F_SEAL_SEAL)
    });
    let read_only = nix::sys::statvfs::fstatvfs(&exe)
        .unwrap()
        .flags()
        .contains(nix::sys::statvfs::FsFlags::ST_RDONLY);
    assert!(sealed || read_only, "the init's binary is writable");
    if !sealed {
        let on_disk = std::fs::metadata(bin).unwrap();
        let running = exe.metadata().unwrap();
        assert_eq!(running.ino(), on_disk.ino(), "the same binary, read-only");
        // Detached: no path reaches it (the link reads "/", the root of its own mount).
        let link = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap();
        assert_eq!(link, Path::new("/"));
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        assert!(!mounts.contains("berth-runtime."), "{mounts}");
    }
    // Writing through the link fails (sealed or read-only), and the file on disk is untouched.
    let before = std::fs::read(bin).unwrap();
    let w = std::fs::OpenOptions::new()
        .write(true)
        .open(format!("/proc/{pid}/exe"))
        .and_then(|mut f| std::io::Write::write_all(&mut f, b"overwritten"));
    assert!(w.is_err(), "the runtime binary took a write");
    assert!(std::fs::read(bin).unwrap() == before);
    c.delete(true).unwrap();
}

/// A cgroup directory on the v2 hierarchy, removed (after moving its processes out) on drop.
struct V2Dir(std::path::PathBuf);

impl Drop for V2Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn cgroup_v2_device_program_allows_and_denies() {
    // On a pure v2 host this is /sys/fs/cgroup; on this hybrid one the v2 hierarchy (without
    // controllers, which device programs do not need) is at /sys/fs/cgroup/unified.
    let root = ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .map(Path::new)
        .find(|p| p.join("cgroup.procs").exists() && p.join("cgroup.subtree_control").exists())
        .expect("a cgroup v2 hierarchy");
    let name = format!("berth-devtest-{}", std::process::id());
    let dir = V2Dir(root.join(&name));
    std::fs::create_dir(&dir.0).unwrap();
    let cg = runtime::cgroup::Cgroup {
        version: runtime::cgroup::Version::V2,
        root: root.to_path_buf(),
        path: name.into(),
    };
    use runtime::cgroup::devbpf::Rule;
    let rules = [
        Rule::parse("a", false).unwrap(),
        Rule::parse("c 1:3 rwm", true).unwrap(),
        Rule::parse("c 1:8 r", true).unwrap(),
    ];
    cg.attach_devices(&rules).unwrap();
    // a shell moved into the cgroup: /dev/null works, /dev/zero is denied, /dev/random
    // (1:8) reads but does not write
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo $$ > {}/cgroup.procs || exit 99
             echo x > /dev/null && echo null-ok
             head -c1 /dev/zero >/dev/null 2>&1 && echo zero-ok || echo zero-denied
             head -c1 /dev/random >/dev/null 2>&1 && echo random-read
             (echo x > /dev/random) 2>/dev/null && echo random-write || echo random-write-denied
             echo $$ > {}/cgroup.procs",
            dir.0.display(),
            root.display()
        ))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "null-ok\nzero-denied\nrandom-read\nrandom-write-denied\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
