//! The OCI runtime spec for a container, computed as data from Docker's Config/HostConfig.

use serde_json::{json, Value};

/// Docker's default capabilities.
pub use runtime::seccomp::moby::DEFAULT_CAPS;

/// moby's masked and read-only paths.
const MASKED: [&str; 12] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
    "/proc/interrupts",
];
const READONLY: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Which seccomp filter a container gets (Docker's `--security-opt seccomp=`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Seccomp {
    /// moby's default profile, resolved for the container's capabilities and the host.
    #[default]
    Default,
    /// No filter (`seccomp=unconfined`).
    Unconfined,
    /// A profile in moby's format (`seccomp=<profile JSON>`, which the docker CLI reads from
    /// the file named on its command line).
    Profile(Value),
}

/// What the spec is made of: resolved values, no I/O.
#[derive(Debug, Clone, Default)]
pub struct SpecInput {
    pub id: String,
    pub hostname: String,
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub tty: bool,
    pub rootfs: String,
    /// Files the engine writes per container and binds in: (destination, host source).
    pub etc_files: Vec<(String, String)>,
    pub host_network: bool,
    /// Join this network namespace (made by netbridge) instead of a new one.
    pub netns_path: Option<String>,
    pub readonly_rootfs: bool,
    pub memory: i64,
    pub nano_cpus: i64,
    pub cpu_shares: i64,
    pub pids_limit: i64,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// (source, destination, read-only)
    pub binds: Vec<(String, String, bool)>,
    pub cgroup_parent: String,
    pub seccomp: Seccomp,
    /// `--tmpfs DEST[:OPTIONS]`: (destination, extra mount options).
    pub tmpfs: Vec<(String, String)>,
    /// `--ulimit NAME=SOFT[:HARD]`: (`RLIMIT_*`, soft, hard).
    pub ulimits: Vec<(String, u64, u64)>,
    /// `--privileged`: every capability (of `bounding`) and device, no seccomp, no masked paths.
    pub privileged: bool,
    /// Device nodes to create (`--privileged`: all of the host's).
    pub devices: Vec<super::hostdev::HostDevice>,
    /// The daemon's own capability bounding set (`CapBnd`): what `--privileged` can give.
    pub bounding: u64,
    /// `--security-opt no-new-privileges`.
    pub no_new_privileges: bool,
    /// `--init`: the runtime's reaper as PID 1.
    pub init: bool,
}

fn cap_name(c: &str) -> String {
    let up = c.to_ascii_uppercase();
    if up.starts_with("CAP_") {
        up
    } else {
        format!("CAP_{up}")
    }
}

/// Docker's capability arithmetic: defaults, minus drops, plus adds (`ALL` allowed in both).
pub fn capabilities(add: &[String], drop: &[String]) -> Vec<String> {
    let mut caps: Vec<String> = if drop.iter().any(|d| d.eq_ignore_ascii_case("all")) {
        vec![]
    } else {
        DEFAULT_CAPS
            .iter()
            .map(|c| (*c).to_owned())
            .filter(|c| !drop.iter().any(|d| &cap_name(d) == c))
            .collect()
    };
    for a in add {
        let n = cap_name(a);
        if a.eq_ignore_ascii_case("all") {
            continue;
        }
        if !caps.contains(&n) {
            caps.push(n);
        }
    }
    caps
}

/// The capabilities the kernel knows, by number (a privileged container gets those the
/// daemon has).
const ALL_CAPS: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

pub fn build(i: &SpecInput) -> Value {
    let caps = if i.privileged {
        ALL_CAPS
            .iter()
            .enumerate()
            .filter(|(n, _)| i.bounding & (1u64 << n) != 0)
            .map(|(_, c)| (*c).to_owned())
            .collect()
    } else {
        capabilities(&i.cap_add, &i.cap_drop)
    };
    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
    ];
    for (dst, src) in &i.etc_files {
        mounts.push(json!({"destination": dst, "type": "bind", "source": src, "options": ["rbind", "rprivate"]}));
    }
    for (dst, opts) in &i.tmpfs {
        let mut o: Vec<String> = ["nosuid", "nodev", "noexec"].map(String::from).to_vec();
        o.extend(opts.split(',').filter(|x| !x.is_empty()).map(str::to_owned));
        mounts.push(json!({"destination": dst, "type": "tmpfs", "source": "tmpfs", "options": o}));
    }
    for (src, dst, ro) in &i.binds {
        let mut opts = vec!["rbind", "rprivate"];
        if *ro {
            opts.push("ro");
        }
        mounts.push(json!({"destination": dst, "type": "bind", "source": src, "options": opts}));
    }
    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    match (&i.netns_path, i.host_network) {
        (Some(p), _) => namespaces.push(json!({"type": "network", "path": p})),
        (None, false) => namespaces.push(json!({"type": "network"})),
        (None, true) => {}
    }
    let mut resources = json!({"devices": [{"allow": i.privileged, "access": "rwm"}]});
    if i.memory > 0 {
        resources["memory"] = json!({"limit": i.memory});
    }
    if i.nano_cpus > 0 {
        let period = 100_000i64;
        resources["cpu"] = json!({"quota": i.nano_cpus * period / 1_000_000_000, "period": period});
    }
    if i.cpu_shares > 0 {
        resources["cpu"]["shares"] = json!(i.cpu_shares);
    }
    if i.pids_limit > 0 {
        resources["pids"] = json!({"limit": i.pids_limit});
    }
    let parent = if i.cgroup_parent.is_empty() {
        "berth"
    } else {
        i.cgroup_parent.trim_matches('/')
    };
    let mut user = json!({"uid": i.uid, "gid": i.gid});
    if !i.additional_gids.is_empty() {
        user["additionalGids"] = json!(i.additional_gids);
    }
    let mut spec = json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": i.tty,
            "user": user,
            "args": i.args,
            "env": i.env,
            "cwd": if i.cwd.is_empty() { "/" } else { i.cwd.as_str() },
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": i.no_new_privileges,
            "rlimits": i.ulimits.iter().map(|(t, soft, hard)| json!({"type": t, "soft": soft, "hard": hard})).collect::<Vec<_>>(),
        },
        "root": {"path": i.rootfs, "readonly": i.readonly_rootfs},
        "hostname": i.hostname,
        "mounts": mounts,
        "linux": {
            "namespaces": namespaces,
            "resources": resources,
            "cgroupsPath": format!("{parent}/{}", i.id),
            "maskedPaths": MASKED,
            "readonlyPaths": READONLY,
        },
    });
    if i.init {
        spec["annotations"] = json!({ runtime::pid1::ANNOTATION: "true" });
    }
    if !i.devices.is_empty() {
        spec["linux"]["devices"] = i
            .devices
            .iter()
            .map(|d| {
                json!({"path": d.path, "type": d.kind.to_string(), "major": d.major,
                       "minor": d.minor, "fileMode": d.mode, "uid": d.uid, "gid": d.gid})
            })
            .collect();
    }
    if i.privileged {
        // as Docker: /sys writable, nothing masked, every device (above)
        spec["linux"]["maskedPaths"] = json!([]);
        spec["linux"]["readonlyPaths"] = json!([]);
        if let Some(m) = spec["mounts"].as_array_mut() {
            for mount in m.iter_mut().filter(|m| m["destination"] == "/sys") {
                mount["options"] = json!(["nosuid", "noexec", "nodev"]);
            }
        }
        return spec;
    }
    match &i.seccomp {
        Seccomp::Default => {
            spec["linux"]["seccomp"] = default_seccomp(&caps);
        }
        Seccomp::Profile(p) => {
            spec["linux"]["seccomp"] = p.clone();
        }
        Seccomp::Unconfined => {}
    }
    spec
}

/// moby's default profile resolved for `caps`, as JSON. Resolving it costs ~0.2 ms and nearly
/// every container has the same capabilities: the results of the last few sets are kept.
fn default_seccomp(caps: &[String]) -> Value {
    use std::collections::HashMap;
    use std::sync::{Mutex, OnceLock};
    static KEPT: OnceLock<Mutex<HashMap<Vec<String>, Value>>> = OnceLock::new();
    let kept = KEPT.get_or_init(Mutex::default);
    let mut key = caps.to_vec();
    key.sort();
    if let Some(v) = kept.lock().unwrap_or_else(|p| p.into_inner()).get(&key) {
        return v.clone();
    }
    let v = json!(runtime::seccomp::moby::default_for(caps));
    let mut map = kept.lock().unwrap_or_else(|p| p.into_inner());
    if map.len() >= 16 {
        map.clear(); // unusual capability sets, one after another: start again
    }
    map.insert(key, v.clone());
    v
}

/// A `seccomp=<profile>` value in moby's format, resolved for `caps` on this host.
pub fn seccomp_profile(json: &str, caps: &[String]) -> Result<Value, String> {
    let p: runtime::seccomp::moby::Profile =
        serde_json::from_str(json).map_err(|e| format!("decoding seccomp profile failed: {e}"))?;
    let resolved = p.resolve(caps, &runtime::seccomp::moby::Target::host());
    serde_json::to_value(&resolved).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_arithmetic() {
        let c = capabilities(&["net_admin".into()], &["CHOWN".into(), "cap_kill".into()]);
        assert_eq!(c.len(), 13);
        assert!(c.contains(&"CAP_NET_ADMIN".to_owned()) && !c.contains(&"CAP_CHOWN".to_owned()));
        assert_eq!(
            capabilities(&["SYS_ADMIN".into()], &["ALL".into()]),
            vec!["CAP_SYS_ADMIN"]
        );
    }

    #[test]
    fn privileged_gets_the_devices_unmasked_and_unfiltered() {
        let s = build(&SpecInput {
            privileged: true,
            devices: vec![super::super::hostdev::HostDevice {
                path: "/dev/net/tun".into(),
                kind: 'c',
                major: 10,
                minor: 200,
                mode: 0o666,
                uid: 0,
                gid: 0,
            }],
            ..Default::default()
        });
        let spec: oci_spec::runtime::Spec = serde_json::from_value(s.clone()).unwrap();
        let linux = spec.linux().clone().unwrap();
        let dev = &linux.devices().clone().unwrap()[0];
        assert_eq!((dev.major(), dev.minor()), (10, 200));
        assert_eq!(s["linux"]["devices"][0]["type"], "c");
        assert_eq!(s["linux"]["resources"]["devices"][0]["allow"], true);
        assert_eq!(s["linux"]["maskedPaths"], json!([]));
        assert!(s["linux"]["seccomp"].is_null());
    }

    #[test]
    fn spec_snapshot() {
        let s = build(&SpecInput {
            id: "abc".into(),
            hostname: "abc".into(),
            args: vec!["sh".into(), "-c".into(), "echo hi".into()],
            env: vec!["PATH=/bin".into()],
            rootfs: "/data/containers/abc/rootfs".into(),
            etc_files: vec![("/etc/hosts".into(), "/data/containers/abc/hosts".into())],
            memory: 64 << 20,
            nano_cpus: 500_000_000,
            pids_limit: 100,
            binds: vec![("/srv".into(), "/data".into(), true)],
            ..Default::default()
        });
        // Valid for the runtime's parser, and the pieces Docker users rely on are there.
        let spec: oci_spec::runtime::Spec = serde_json::from_value(s.clone()).unwrap();
        assert_eq!(spec.hostname().as_deref(), Some("abc"));
        assert_eq!(s["linux"]["resources"]["cpu"]["quota"], 50_000);
        assert_eq!(s["linux"]["resources"]["memory"]["limit"], 64 << 20);
        assert_eq!(s["linux"]["cgroupsPath"], "berth/abc");
        assert_eq!(
            s["process"]["capabilities"]["bounding"]
                .as_array()
                .unwrap()
                .len(),
            14
        );
        assert_eq!(
            s["mounts"].as_array().unwrap().last().unwrap()["options"],
            json!(["rbind", "rprivate", "ro"])
        );
        assert!(s["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .contains(&json!({"type": "network"})));
        // moby's default seccomp profile, resolved for the default capabilities
        assert_eq!(s["linux"]["seccomp"]["defaultAction"], "SCMP_ACT_ERRNO");
        assert_eq!(s["linux"]["seccomp"]["defaultErrnoRet"], 1);
        let names = |s: &Value| -> Vec<String> {
            s["linux"]["seccomp"]["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| r["names"].as_array().unwrap().clone())
                .map(|n| n.as_str().unwrap().to_owned())
                .collect()
        };
        assert!(!names(&s).contains(&"mount".to_owned()));
    }

    #[test]
    fn seccomp_follows_capabilities_and_can_be_off() {
        let s = build(&SpecInput {
            cap_add: vec!["SYS_ADMIN".into()],
            ..Default::default()
        });
        let allows_mount = |s: &Value| {
            s["linux"]["seccomp"]["syscalls"]
                .as_array()
                .unwrap()
                .iter()
                .any(|r| r["names"].as_array().unwrap().contains(&json!("mount")))
        };
        assert!(allows_mount(&s));
        // profiles are kept per capability set: each container still gets its own
        assert!(!allows_mount(&build(&SpecInput::default())));
        let again = build(&SpecInput {
            cap_add: vec!["SYS_ADMIN".into()],
            ..Default::default()
        });
        assert!(allows_mount(&again));
        assert_eq!(again["linux"]["seccomp"], s["linux"]["seccomp"]);
        let s = build(&SpecInput {
            seccomp: Seccomp::Unconfined,
            ..Default::default()
        });
        assert!(s["linux"].get("seccomp").is_none());
    }
}
