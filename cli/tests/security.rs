//! End to end: what a container started with default settings must not be able to do, and
//! what `--privileged` lifts (exactly what Docker lifts). Each attempt runs through `berth run`
//! or `berth exec` against a daemon in its own mount and network namespaces on a scratch data
//! root; the image is busybox-static plus `secprobe` (support/secprobe.c, built with `cc
//! -static`), whose attempts are harmless even where they succeed. Privileged: run by `cargo
//! xtask test` as root. (Seccomp's denial of unshare and mount, the capability sets and
//! `--security-opt` are in containers.rs; the runtime's own checks in runtime/tests.)
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use support::{busybox_rootfs_tar_modes, fails, is_root, ok, require, run, TestDaemon};

/// A daemon with the image `probe`: busybox and /bin/secprobe.
fn daemon_with_probe() -> TestDaemon {
    assert!(
        is_root(),
        "containers need root: run through `cargo xtask test`"
    );
    let d = TestDaemon::start();
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/secprobe.c");
    let exe = d.path("secprobe");
    ok(Command::new(require("cc"))
        .args(["-static", "-O1", "-o"])
        .arg(&exe)
        .arg(&src));
    let probe = std::fs::read(&exe).unwrap();
    d.import_rootfs(
        "probe",
        &busybox_rootfs_tar_modes(&[("bin/secprobe", &probe, 0o755)]),
    );
    d
}

/// `berth run --rm [flags] probe sh -c script`: stdout and stderr together.
fn sh(d: &TestDaemon, flags: &[&str], script: &str) -> String {
    let mut c = d.berth(&["run", "--rm"]);
    c.args(flags).args(["probe", "sh", "-c", script]);
    let out = run(&mut c);
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn lines_with<'a>(out: &'a str, prefix: &str) -> Vec<&'a str> {
    out.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn host_processes_are_invisible_and_out_of_reach() {
    let d = daemon_with_probe();
    let daemon_pid = std::fs::read_to_string(d.data_root.join("daemon.pid")).unwrap();
    let daemon_pid = daemon_pid.trim();
    for flags in [&[][..], &["--privileged"][..]] {
        let out = sh(
            &d,
            flags,
            &format!(
                "echo pids $(ls /proc | grep '^[0-9]*$'); \
                 echo init $(cat /proc/1/comm); \
                 kill -0 {daemon_pid} 2>/dev/null && echo signalled || echo no-signal; \
                 secprobe ptrace {daemon_pid}"
            ),
        );
        // only this container's handful of processes, numbered from 1
        let pids = lines_with(&out, "pids ")
            .first()
            .copied()
            .unwrap_or_else(|| panic!("{flags:?}: {out}"));
        let pids: Vec<u32> = pids
            .split_whitespace()
            .skip(1)
            .map(|p| p.parse().unwrap())
            .collect();
        assert!(pids.contains(&1) && pids.len() <= 4, "{flags:?}: {out}");
        assert!(pids.iter().all(|&p| p < 100), "{flags:?}: {out}");
        assert!(out.contains("init sh\n"), "{flags:?}: {out}");
        // the daemon's pid names nothing in here (it is far beyond the container's pids)
        assert!(out.contains("no-signal\n"), "{flags:?}: {out}");
        assert!(
            out.contains("ptrace: No such process\n"),
            "{flags:?}: {out}"
        );
    }
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn proc_and_sys_are_masked_or_read_only() {
    let d = daemon_with_probe();
    // Reads take at most 64 bytes; writes open the file and write nothing: harmless on a hole.
    let script = r#"
        for f in /proc/kcore /proc/keys /proc/timer_list /proc/timer_stats /proc/sched_debug \
                 /proc/latency_stats; do
            [ -e $f ] && echo "masked-file $f $(head -c 64 $f 2>/dev/null | wc -c)"
        done
        for f in /proc/acpi /proc/scsi /proc/asound /sys/firmware /sys/devices/virtual/powercap; do
            [ -e $f ] && echo "masked-dir $f $(ls -A $f | wc -l)"
        done
        for f in /proc/sysrq-trigger /proc/sys/kernel/core_pattern /proc/sys/vm/drop_caches \
                 /proc/irq/default_smp_affinity /sys/kernel/uevent_helper \
                 /sys/kernel/mm/transparent_hugepage/enabled /sys/kernel/mm/ksm/run; do
            [ -e $f ] && { (: > $f) 2>/dev/null && echo "writable $f" || echo "refused $f"; }
        done
        busybox awk '$2 ~ /^\/(sys|proc\/(bus|fs|irq|sys|sysrq-trigger))$/ {
            split($4, o, ","); print "mount", $2, o[1] }' /proc/self/mounts
        for m in /proc/sys /proc/sysrq-trigger /sys; do
            mount -o remount,rw $m 2>/dev/null && echo "remounted $m" || echo "kept $m"
        done
        umount /proc/kcore 2>/dev/null && echo "unmasked" || echo "still masked"
        umount -l /proc/sys 2>/dev/null && echo "unmounted" || echo "still mounted"
    "#;
    let out = sh(&d, &[], script);
    let files = lines_with(&out, "masked-file ");
    assert!(
        files.iter().any(|l| l.contains("/proc/keys")),
        "the host has /proc/keys: {out}"
    );
    for l in &files {
        assert!(l.ends_with(" 0"), "readable: {l}\n{out}");
    }
    let dirs = lines_with(&out, "masked-dir ");
    assert!(
        dirs.iter().any(|l| l.contains("/sys/firmware")),
        "the host has /sys/firmware: {out}"
    );
    for l in &dirs {
        assert!(l.ends_with(" 0"), "listable: {l}\n{out}");
    }
    assert!(
        out.contains("refused /proc/sys/kernel/core_pattern\n"),
        "{out}"
    );
    assert!(lines_with(&out, "writable ").is_empty(), "{out}");
    // /sys and moby's read-only paths are read-only mounts
    let ro: Vec<&str> = lines_with(&out, "mount ");
    for m in ["/sys", "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys"] {
        assert!(ro.contains(&format!("mount {m} ro").as_str()), "{m}: {out}");
    }
    assert!(ro.iter().all(|l| l.ends_with(" ro")), "{out}");
    assert!(lines_with(&out, "remounted ").is_empty(), "{out}");
    assert!(
        out.contains("still masked\n") && out.contains("still mounted\n"),
        "{out}"
    );

    // --privileged: no masks and no read-only paths (Docker's), namespaces stay
    let out = sh(&d, &["--privileged"], script);
    for l in lines_with(&out, "masked-file ") {
        // /proc/keys and /proc/timer_list have content on every kernel
        if l.contains("/proc/keys") || l.contains("/proc/timer_list") {
            assert!(!l.ends_with(" 0"), "still masked: {l}\n{out}");
        }
    }
    for l in lines_with(&out, "masked-dir ") {
        if l.contains("/sys/firmware") {
            assert!(!l.ends_with(" 0"), "still masked: {l}\n{out}");
        }
    }
    assert!(
        out.contains("writable /proc/sys/kernel/core_pattern\n"),
        "{out}"
    );
    assert!(lines_with(&out, "refused ").is_empty(), "{out}");
    assert_eq!(lines_with(&out, "mount "), ["mount /sys rw"], "{out}");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn no_kernel_modules_keyrings_mounts_or_raw_devices() {
    let d = daemon_with_probe();
    let script = "insmod /bin/busybox 2>&1 | tail -1; secprobe finit-module /bin/busybox; \
                  secprobe keyctl; secprobe ptrace-child; \
                  mkdir -p /mnt; for t in proc sysfs cgroup cgroup2 devpts mqueue; do \
                    mount -t $t none /mnt 2>/dev/null && echo mounted $t && umount /mnt; done; \
                  mount --bind /bin /mnt 2>/dev/null && echo mounted bind; \
                  mknod /tmp/sda b 8 0 2>/dev/null && (head -c 1 /tmp/sda >/dev/null 2>&1 \
                    && echo read-disk || echo node-only); \
                  ls /dev; grep CapEff /proc/self/status";
    let out = sh(&d, &[], script);
    for what in [
        "finit_module",
        "init_module",
        "keyctl",
        "add_key",
        "request_key",
    ] {
        assert!(
            out.contains(&format!("{what}: Operation not permitted\n")),
            "{what}: {out}"
        );
    }
    assert!(out.contains("Operation not permitted"), "insmod: {out}");
    assert!(!out.contains("mounted "), "{out}");
    assert!(!out.contains("read-disk"), "{out}");
    // Docker's profile allows ptrace from kernel 4.8 on (the kernel then checks it as for any
    // process): a container may trace its own children, never the host's (above)
    assert!(out.contains("ptrace-child: ok\n"), "{out}");
    for dev in [
        "kmsg",
        "loop-control",
        "mem",
        "kvm",
        "fuse",
        "btrfs-control",
    ] {
        assert!(
            !out.lines().any(|l| l == dev),
            "/dev/{dev} in a container: {out}"
        );
    }
    let cap_eff = lines_with(&out, "CapEff:")
        .first()
        .copied()
        .unwrap_or_else(|| panic!("{out}"));
    let caps = u64::from_str_radix(cap_eff.split_whitespace().nth(1).unwrap(), 16).unwrap();
    // CAP_SYS_MODULE 16, CAP_SYS_RAWIO 17, CAP_SYS_PTRACE 19, CAP_SYS_ADMIN 21, CAP_SYS_BOOT 22
    for bit in [16, 17, 19, 21, 22] {
        assert_eq!(caps & (1 << bit), 0, "capability {bit} in {cap_eff}");
    }

    // --privileged: the host's devices are there, keyrings and mounts work; no module is
    // loaded (none is offered)
    let out = sh(
        &d,
        &["--privileged"],
        "secprobe keyctl; mkdir -p /mnt; mount -t tmpfs none /mnt && echo mounted tmpfs; \
         ls /dev",
    );
    assert!(out.contains("keyctl: ok\n"), "{out}");
    assert!(out.contains("mounted tmpfs\n"), "{out}");
    for dev in std::fs::read_dir("/dev").unwrap().flatten() {
        let name = dev.file_name().to_string_lossy().into_owned();
        let ft = dev.file_type().unwrap();
        use std::os::unix::fs::FileTypeExt;
        if (ft.is_char_device() || ft.is_block_device()) && name != "console" {
            assert!(
                out.lines().any(|l| l == name),
                "/dev/{name} missing under --privileged: {out}"
            );
        }
    }
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn exec_cannot_overwrite_the_runtime_binary() {
    // CVE-2019-5736: a process in the container grabs /proc/PID/exe of every process that
    // appears (exec'd ones, and the runtime itself when /bin/evil makes the kernel run
    // /proc/self/exe as an interpreter), then reopens it for writing once it is free.
    let d = daemon_with_probe();
    let berth = std::fs::read(support::BERTH).unwrap();
    ok(d.berth(&[
        "run",
        "-d",
        "--name",
        "c",
        "probe",
        "sh",
        "-c",
        "printf '#!/proc/self/exe\\n' > /bin/evil && chmod 755 /bin/evil && \
         exec secprobe exe-watch 8",
    ]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ok(d.berth(&["logs", "c"])).contains("watching") {
        assert!(Instant::now() < deadline, "the probe did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..5 {
        ok(d.berth(&["exec", "c", "true"]));
        let _ = run(&mut d.berth(&["exec", "c", "/bin/evil"]));
        let _ = run(&mut d.docker(&["exec", "c", "/bin/evil"]));
    }
    // bounded: a container whose pid 1 cannot finish exiting must fail the test, not hang it
    let deadline = Instant::now() + Duration::from_secs(30);
    while ok(d.docker(&["inspect", "-f", "{{.State.Running}}", "c"])).trim() == "true" {
        assert!(
            Instant::now() < deadline,
            "the container did not exit; the daemon's zombies: {:?}",
            d.zombies()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let logs = ok(d.berth(&["logs", "c"]));
    eprintln!("{logs}");
    assert!(!logs.contains("HOLE"), "{logs}");
    assert!(logs.contains(", written: 0\n"), "{logs}");
    assert!(
        std::fs::read(support::BERTH).unwrap() == berth,
        "the berth binary changed"
    );
    // the probe does catch a writable executable: a copy of busybox run once
    let out = sh(
        &d,
        &[],
        // (named busybox, so that it runs the applet its first argument names)
        "mkdir -p /tmp/w && cp /bin/busybox /tmp/w/busybox && secprobe exe-watch 3 & \
         sleep 1; /tmp/w/busybox sleep 1; wait",
    );
    assert!(
        out.contains("HOLE") && out.contains("written: 1\n"),
        "{out}"
    );
    // the daemon's runtime copy is intact too: a container still runs
    assert_eq!(
        ok(d.berth(&["run", "--rm", "probe", "echo", "fine"])),
        "fine\n"
    );
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn the_daemon_socket_is_out_of_reach_unless_bind_mounted() {
    let d = daemon_with_probe();
    let sock = d.socket.display().to_string();
    let script = format!(
        "secprobe connect {sock}; secprobe connect /run/berth.sock; \
         secprobe connect /var/run/docker.sock; ls -l /proc/self/fd /proc/1/fd | grep -c socket"
    );
    let out = sh(&d, &[], &script);
    assert_eq!(
        lines_with(&out, "connect: ").len(),
        3,
        "three attempts: {out}"
    );
    assert!(!out.contains("connect: ok"), "{out}");
    assert!(!out.contains("reply:"), "{out}");
    // with the socket bind-mounted (the user's explicit choice) it answers
    let bind = format!("{sock}:/berth.sock");
    let out = sh(&d, &["-v", &bind], "secprobe connect /berth.sock");
    assert!(out.contains("connect: ok\n"), "{out}");
    assert!(
        out.contains("reply: HTTP/1.") && out.contains(" 200 "),
        "{out}"
    );
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn symlinked_volume_paths_do_not_expose_the_host() {
    let d = daemon_with_probe();
    // host files a container must not reach
    let outside = d.path("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("secret"), "host secret\n").unwrap();
    let src = d.path("src");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join("f"), "from src\n").unwrap();
    let o = outside.display().to_string();
    let ups = "../".repeat(outside.components().count() + 2);
    // an image whose mount targets go through symlinks that point outside the root, and
    // whose volume path holds a link to the host directory
    ok(d.berth(&[
        "run",
        "--name",
        "mk",
        "probe",
        "sh",
        "-c",
        &format!(
            "ln -s {o} /abs && ln -s {ups}{rel} /rel && mkdir /data && ln -s {o} /data/link",
            rel = o.trim_start_matches('/')
        ),
    ]));
    ok(d.berth(&["commit", "mk", "links"]));
    ok(d.berth(&["rm", "mk"]));

    let out = ok(d.berth(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/abs/bind", src.display()),
        "-v",
        "vol1:/rel/vol",
        "-v",
        "vol2:/data",
        "links",
        "sh",
        "-c",
        "cat /abs/bind/f; echo x > /rel/vol/y; ls /abs /rel; ls -l /data; \
         cat /data/link/secret 2>&1; cat /abs/secret 2>&1; true",
    ]));
    assert!(out.contains("from src\n"), "{out}");
    assert!(!out.contains("host secret"), "{out}");
    // nothing landed in, or was mounted on, the host directory
    let entries: Vec<String> = std::fs::read_dir(&outside)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(entries, ["secret"], "{out}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    assert!(!mounts.contains(&o), "{mounts}");
    // the volume got the image's link as a link (copy-up does not follow it)
    let vol2 = d.data_root.join("volumes/vol2/_data/link");
    let meta = std::fs::symlink_metadata(&vol2).unwrap();
    assert!(meta.file_type().is_symlink(), "{}", vol2.display());

    // a link written into a volume by a container resolves inside containers only, and
    // removing the volume removes the link, not what it names on the host
    ok(d.berth(&[
        "run",
        "--rm",
        "-v",
        "vol3:/v",
        "probe",
        "sh",
        "-c",
        &format!("ln -s {o} /v/host && ln -s {o}/secret /v/file && mkdir /v/d && ln -s {o} /v/d/x"),
    ]));
    let out = sh(
        &d,
        &["-v", "vol3:/v"],
        "cat /v/file /v/host/secret 2>&1; true",
    );
    assert!(!out.contains("host secret"), "{out}");
    ok(d.berth(&["volume", "rm", "vol1", "vol2", "vol3"]));
    assert_eq!(
        std::fs::read_to_string(outside.join("secret")).unwrap(),
        "host secret\n"
    );
    // `cp` out of a container does not follow the link to the host either
    ok(d.berth(&["create", "--name", "cpy", "links", "true"]));
    let dst = d.path("copied");
    let e = run(&mut d.berth(&["cp", "cpy:/data/link/secret", dst.to_str().unwrap()]));
    assert!(
        !std::fs::read_to_string(&dst).is_ok_and(|s| s.contains("host secret")),
        "{}",
        String::from_utf8_lossy(&e.stderr)
    );
    let _ = fails(d.berth(&["volume", "inspect", "vol3"]));
}
