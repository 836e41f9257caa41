//! Conformance walk: the OCI runtime spec's `config.json` fields one by one, each checked
//! from inside the container through busybox (what runtime-tools' validation suite checks).
//! Privileged: root only, ignored by a plain `cargo test`.
//!
//! | field | where it is checked |
//! |---|---|
//! | root.readonly, hostname, domainname | `process_and_root_fields` |
//! | process.user (uid, gid, additionalGids), umask, cwd, env, args | `process_and_root_fields` |
//! | process.rlimits, noNewPrivileges, oomScoreAdj, capabilities (5 sets) | `process_and_root_fields` |
//! | mounts: tmpfs with options, ro/rw binds, cgroup | `process_and_root_fields` |
//! | linux.namespaces (new ones differ from the host's), sysctl | `process_and_root_fields` |
//! | linux.maskedPaths, readonlyPaths | `process_and_root_fields` (+ privileged.rs) |
//! | linux.resources: memory, pids, cpu (shares, quota, period), v1 or v2 | `process_and_root_fields` |
//! | linux.devices + resources.devices (v1 files, v2 eBPF) | `devices_and_device_rules` |
//! | state, lifecycle (create, start, kill, delete, errors) | `state_and_lifecycle` |
//! | hooks (all six stages, with state on stdin) | privileged.rs `hooks_run_at_each_stage_with_state` |
//! | uid/gid mappings (user namespace) | privileged.rs `user_namespace_maps_ids` |
//! | process.terminal (console socket) | privileged.rs `console_socket_receives_the_pty_master` |
//! | linux.seccomp | privileged.rs `moby_default_profile_denies_namespaces_but_not_ordinary_work` |

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::Bundle;

/// `key=value` lines printed by the container's script.
fn facts(out: &str) -> BTreeMap<String, String> {
    out.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn host_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The cgroup version the runtime uses here, as it decides (`cgroup.controllers` at the root
/// means v2 alone); a host with neither version's files fails the test rather than skip it.
fn host_cgroup() -> &'static str {
    let root = Path::new("/sys/fs/cgroup");
    match runtime::cgroup::detect(&runtime::cgroup::RealCgroupFs, root) {
        runtime::cgroup::Version::V2 => "v2",
        runtime::cgroup::Version::V1 if root.join("memory/memory.limit_in_bytes").exists() => "v1",
        runtime::cgroup::Version::V1 => panic!(
            "{} has neither cgroup v2 (cgroup.controllers) nor a v1 memory hierarchy",
            root.display()
        ),
    }
}

const SCRIPT: &str = r#"
echo "hostname=$(hostname)"
echo "domainname=$(cat /proc/sys/kernel/domainname)"
echo "id=$(id -u):$(id -g):$(id -G)"
echo "umask=$(umask)"
echo "cwd=$(pwd)"
echo "env=$CONF_VAR"
echo "args=$0 $1"
echo "nofile=$(ulimit -Sn):$(ulimit -Hn)"
echo "core=$(ulimit -Sc):$(ulimit -Hc)"
for f in NoNewPrivs CapInh CapPrm CapEff CapBnd CapAmb; do
  echo "$f=$(grep "^$f:" /proc/self/status | cut -f2)"
done
echo "oom=$(cat /proc/self/oom_score_adj)"
touch /rootfile 2>/dev/null && echo "rootro=no" || echo "rootro=yes"
echo "tmpfs=$(grep ' /mnt/tmp ' /proc/self/mountinfo | cut -d' ' -f6,9-)"
echo "robind=$(cat /mnt/ro/data)"
touch /mnt/ro/new 2>/dev/null && echo "robind_write=yes" || echo "robind_write=no"
echo written > /mnt/rw/out && echo "rwbind_write=yes"
for ns in pid net ipc uts mnt; do
  echo "ns_$ns=$(readlink /proc/self/ns/$ns)"
done
echo "ip_forward=$(cat /proc/sys/net/ipv4/ip_forward)"
echo "msgmax=$(cat /proc/sys/kernel/msgmax)"
echo "timer_list=$(wc -c < /proc/timer_list)"
echo "firmware=$(ls /sys/firmware | wc -l)"
echo 1 > /proc/sys/kernel/domainname 2>/dev/null && echo "procsys_write=yes" || echo "procsys_write=no"
# the files of whichever version the runtime used: v1 controllers bound under the cgroup
# mount, or the container's own v2 cgroup as the root of its cgroup namespace
if [ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ]; then
  echo "cgroup=v1"
  echo "memory=$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes)"
  echo "pids=$(cat /sys/fs/cgroup/pids/pids.max)"
  echo "cpu=$(cat /sys/fs/cgroup/cpu/cpu.shares) $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us) $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)"
elif [ -f /sys/fs/cgroup/memory.max ]; then
  echo "cgroup=v2"
  echo "memory=$(cat /sys/fs/cgroup/memory.max)"
  echo "pids=$(cat /sys/fs/cgroup/pids.max)"
  echo "cpu=$(cat /sys/fs/cgroup/cpu.weight) $(cat /sys/fs/cgroup/cpu.max)"
else
  echo "cgroup=neither v1 nor v2 files: $(ls /sys/fs/cgroup | tr '\n' ' ')"
fi
"#;

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn process_and_root_fields() {
    let mut b = Bundle::new(&["sh", "-c", SCRIPT, "zero", "first"]);
    let ro = b.dir.path().join("ro");
    let rw = b.dir.path().join("rw");
    std::fs::create_dir_all(&ro).unwrap();
    std::fs::create_dir_all(&rw).unwrap();
    std::fs::write(ro.join("data"), "from the host").unwrap();
    // uid 1000 writes into the rw bind
    std::fs::set_permissions(&rw, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    let c = &mut b.config;
    c["root"]["readonly"] = json!(true);
    c["hostname"] = json!("conformance");
    c["domainname"] = json!("example.test");
    c["process"]["user"] =
        json!({"uid": 1000, "gid": 1000, "additionalGids": [5, 1001], "umask": 0o027});
    c["process"]["cwd"] = json!("/work");
    c["process"]["env"] = json!(["PATH=/bin", "CONF_VAR=from-env"]);
    c["process"]["rlimits"] = json!([
        {"type": "RLIMIT_NOFILE", "soft": 1000, "hard": 2000},
        {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
    ]);
    c["process"]["noNewPrivileges"] = json!(true);
    c["process"]["oomScoreAdj"] = json!(500);
    // bits: CHOWN 0, KILL 5, NET_BIND_SERVICE 10
    c["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "permitted": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_KILL"],
        "inheritable": ["CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_NET_BIND_SERVICE"],
    });
    let mounts = c["mounts"].as_array_mut().unwrap();
    mounts.push(
        json!({"destination": "/mnt/tmp", "type": "tmpfs", "source": "tmpfs",
        "options": ["nosuid", "nodev", "noexec", "size=1m", "mode=1770"]}),
    );
    mounts.push(
        json!({"destination": "/mnt/ro", "type": "bind", "source": ro, "options": ["rbind", "ro"]}),
    );
    mounts.push(
        json!({"destination": "/mnt/rw", "type": "bind", "source": rw, "options": ["rbind", "rw"]}),
    );
    mounts.push(
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
        "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    );
    c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.msgmax": "4096"});
    // /proc/kcore is absent on some kernels (this host's): a missing path is skipped.
    c["linux"]["maskedPaths"] = json!(["/proc/timer_list", "/proc/kcore", "/sys/firmware"]);
    c["linux"]["readonlyPaths"] = json!(["/proc/sys"]);
    c["linux"]["resources"] = json!({
        "memory": {"limit": 64 << 20},
        "pids": {"limit": 50},
        "cpu": {"shares": 512, "quota": 50000, "period": 100000},
    });
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    let f = facts(&out);
    let get = |k: &str| {
        f.get(k)
            .map(String::as_str)
            .unwrap_or_else(|| panic!("{k} missing from:\n{out}"))
    };
    assert_eq!(get("hostname"), "conformance");
    assert_eq!(get("domainname"), "example.test");
    assert_eq!(get("id"), "1000:1000:1000 5 1001");
    assert_eq!(get("umask"), "0027");
    assert_eq!(get("cwd"), "/work");
    assert_eq!(get("env"), "from-env");
    assert_eq!(get("args"), "zero first");
    assert_eq!(get("nofile"), "1000:2000");
    assert_eq!(get("core"), "0:0");
    assert_eq!(get("NoNewPrivs"), "1");
    // After execve as uid 1000 the kernel keeps only the ambient set in permitted and
    // effective; bounding and inheritable stay as the spec says.
    assert_eq!(get("CapBnd"), "0000000000000421");
    assert_eq!(get("CapInh"), "0000000000000400");
    assert_eq!(get("CapAmb"), "0000000000000400");
    assert_eq!(get("CapPrm"), "0000000000000400");
    assert_eq!(get("CapEff"), "0000000000000400");
    assert_eq!(get("oom"), "500");
    assert_eq!(get("rootro"), "yes");
    let tmpfs = get("tmpfs");
    assert!(
        tmpfs.contains("nosuid") && tmpfs.contains("nodev") && tmpfs.contains("noexec"),
        "{tmpfs}"
    );
    assert!(
        tmpfs.contains("size=1024k") && tmpfs.contains("mode=1770"),
        "{tmpfs}"
    );
    assert_eq!(get("robind"), "from the host");
    assert_eq!(get("robind_write"), "no");
    assert_eq!(get("rwbind_write"), "yes");
    assert_eq!(
        std::fs::read_to_string(rw.join("out")).unwrap(),
        "written\n"
    );
    for ns in ["pid", "net", "ipc", "uts", "mnt"] {
        assert_ne!(
            get(&format!("ns_{ns}")),
            host_ns(ns),
            "a new {ns} namespace"
        );
        assert!(get(&format!("ns_{ns}")).starts_with(&format!("{ns}:[")));
    }
    assert_eq!(get("ip_forward"), "1");
    assert_eq!(get("msgmax"), "4096");
    assert_eq!(
        get("timer_list"),
        "0",
        "masked by /dev/null, readable: {out}"
    );
    assert_eq!(get("firmware"), "0");
    assert_eq!(get("procsys_write"), "no");
    // the limits, read back from the files of the version the runtime uses here
    assert_eq!(get("cgroup"), host_cgroup(), "{out}");
    assert_eq!(get("memory"), (64u64 << 20).to_string());
    assert_eq!(get("pids"), "50");
    match host_cgroup() {
        "v1" => assert_eq!(get("cpu"), "512 50000 100000"),
        // shares → weight as runc converts: 1 + ((512 - 2) * 9999) / 262142 = 20
        _ => assert_eq!(get("cpu"), "20 50000 100000"),
    }
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn devices_and_device_rules() {
    let script = "ls -l /dev/full2 | cut -c1-10; echo x > /dev/full2; \
                  ls /dev; mknod /dev/sda9 b 8 9 && head -c1 /dev/sda9 >/dev/null; echo rc=$?";
    let mut b = Bundle::new(&["sh", "-c", script]);
    let c = &mut b.config;
    c["process"]["capabilities"] = json!({
        "bounding": ["CAP_MKNOD", "CAP_DAC_OVERRIDE"],
        "permitted": ["CAP_MKNOD", "CAP_DAC_OVERRIDE"],
        "effective": ["CAP_MKNOD", "CAP_DAC_OVERRIDE"],
    });
    c["linux"]["devices"] = json!([
        {"path": "/dev/full2", "type": "c", "major": 1, "minor": 7, "fileMode": 0o620, "uid": 0, "gid": 0}
    ]);
    c["linux"]["resources"] = json!({"devices": [
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 7, "access": "rw"},
    ]});
    let (code, out) = b.run();
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("crw--w----\n"), "{out}");
    // the rule allows it: the device itself answers (ENOSPC), not the cgroup (EPERM)
    assert!(out.contains("No space left on device"), "{out}");
    for dev in [
        "null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm",
    ] {
        assert!(out.lines().any(|l| l == dev), "default device {dev}: {out}");
    }
    // A block device the rules do not allow can be neither made nor opened: on v1 the device
    // cgroup's files say so, on v2 the eBPF program the runtime attaches.
    let mode = host_cgroup();
    assert!(
        out.contains("mknod: /dev/sda9: Operation not permitted"),
        "cgroup {mode}: {out}"
    );
    assert!(out.trim_end().ends_with("rc=1"), "cgroup {mode}: {out}");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn state_and_lifecycle() {
    runtime::sys::set_child_subreaper().unwrap();
    let mut b = Bundle::new(&[
        "sh",
        "-c",
        "trap 'exit 7' TERM; touch /dev/trapped; while true; do sleep 0.1; done",
    ]);
    b.config["annotations"] = json!({"org.example.key": "value"});
    b.write();
    let bin = env!("CARGO_BIN_EXE_berth-runtime");
    let root = b.root();
    let outf = b.dir.path().join("cli.out");
    let errf = b.dir.path().join("cli.err");
    // stdout to a file: after `create` the init holds the caller's stdio (as with runc)
    let cli = |args: &[&str]| -> (i32, String, String) {
        let status = Command::new(bin)
            .arg("--root")
            .arg(&root)
            .args(args)
            .stdin(Stdio::null())
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
    let state = |id: &str| -> Value {
        let (code, out, err) = cli(&["state", id]);
        assert_eq!(code, 0, "{err}");
        serde_json::from_str(&out).unwrap()
    };
    let bundle = b.dir.path().to_string_lossy().into_owned();
    let (code, _, err) = cli(&["state", &b.id]);
    assert_ne!(code, 0, "state of an unknown container fails");
    assert!(err.contains(&b.id), "names the container: {err}");

    let (code, _, err) = cli(&["create", "-b", &bundle, &b.id]);
    assert_eq!(code, 0, "{err}");
    let (code, _, err) = cli(&["create", "-b", &bundle, &b.id]);
    assert_ne!(code, 0, "a second create with the same id fails");
    assert!(err.contains("exists"), "{err}");
    let s = state(&b.id);
    assert_eq!(
        s["ociVersion"].as_str().map(|v| v.starts_with("1.")),
        Some(true)
    );
    assert_eq!(s["id"], b.id.as_str());
    assert_eq!(s["status"], "created");
    assert_eq!(s["bundle"], bundle.as_str());
    assert_eq!(s["annotations"]["org.example.key"], "value");
    let pid = s["pid"].as_i64().unwrap();
    assert!(pid > 0 && Path::new(&format!("/proc/{pid}")).exists());
    // created: the user's program has not run yet (the init waits on the exec fifo)
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap();
    assert!(
        !String::from_utf8_lossy(&cmdline).contains("trap"),
        "not exec'd yet"
    );

    assert_eq!(cli(&["start", &b.id]).0, 0);
    assert_eq!(state(&b.id)["status"], "running");
    let (code, _, _) = cli(&["start", &b.id]);
    assert_ne!(code, 0, "start of a running container fails");

    // PID 1 of a pid namespace ignores signals it has no handler for: wait for the trap.
    let trapped = format!("/proc/{pid}/root/dev/trapped");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !Path::new(&trapped).exists() {
        assert!(std::time::Instant::now() < deadline, "no trap");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert_eq!(cli(&["kill", &b.id, "TERM"]).0, 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while state(&b.id)["status"] != "stopped" {
        assert!(
            std::time::Instant::now() < deadline,
            "did not stop: {}",
            std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let (code, _, _) = cli(&["kill", &b.id, "TERM"]);
    assert_ne!(code, 0, "kill of a stopped container fails");
    let (code, _, err) = cli(&["delete", &b.id]);
    assert_eq!(code, 0, "delete of a stopped container: {err}");
    let (code, _, _) = cli(&["state", &b.id]);
    assert_ne!(code, 0, "no state after delete");
    assert!(!root.join(&b.id).exists());
}
