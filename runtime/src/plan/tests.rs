use super::*;

/// A config in the shape the engine writes: runc's defaults plus a bind mount, rlimits,
/// sysctls, a joined network namespace and extra devices.
pub(crate) const SAMPLE: &str = r#"{
  "ociVersion": "1.2.0",
  "root": {"path": "rootfs", "readonly": true},
  "hostname": "box",
  "process": {
    "terminal": false,
    "user": {"uid": 1000, "gid": 1000, "umask": 18, "additionalGids": [10, 20]},
    "args": ["sh", "-c", "true"],
    "env": ["PATH=/bin", "HOME=/home/u"],
    "cwd": "/work",
    "capabilities": {
      "bounding": ["CAP_KILL", "CAP_CHOWN"],
      "effective": ["CAP_KILL"],
      "permitted": ["CAP_KILL", "CAP_CHOWN"]
    },
    "rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024, "hard": 4096}],
    "noNewPrivileges": true,
    "oomScoreAdj": 100
  },
  "mounts": [
    {"destination": "/proc", "type": "proc", "source": "proc"},
    {"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
    {"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
    {"destination": "/data", "type": "bind", "source": "/srv/data", "options": ["rbind", "ro", "nosuid", "nodev", "noexec", "rprivate"]},
    {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
  ],
  "linux": {
    "namespaces": [
      {"type": "pid"}, {"type": "network", "path": "/run/netns/n1"}, {"type": "ipc"},
      {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
    ],
    "devices": [{"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229, "fileMode": 438}],
    "sysctl": {"net.ipv4.ip_forward": "1", "kernel.msgmax": "8192"},
    "maskedPaths": ["/proc/kcore", "/sys/firmware"],
    "readonlyPaths": ["/proc/sys"],
    "rootfsPropagation": "rprivate"
  }
}"#;

fn spec(json: &str) -> Spec {
    serde_json::from_str(json).unwrap()
}

fn sample_with(edit: impl FnOnce(&mut serde_json::Value)) -> Spec {
    let mut v: serde_json::Value = serde_json::from_str(SAMPLE).unwrap();
    edit(&mut v);
    serde_json::from_value(v).unwrap()
}

fn err_of(s: &Spec) -> String {
    plan(s, Path::new("/bundle"), &HostLimits::unlimited())
        .unwrap_err()
        .to_string()
}

#[test]
fn sample_plan_snapshot() {
    let p = plan(
        &spec(SAMPLE),
        Path::new("/bundle"),
        &HostLimits::unlimited(),
    )
    .unwrap();
    expect_test::expect_file!["../../tests/data/sample_plan.txt"].assert_eq(&format!("{p:#?}\n"));
}

#[test]
fn cgroup_mount_expands_per_version() {
    let mut p = plan(
        &spec(SAMPLE),
        Path::new("/bundle"),
        &HostLimits::unlimited(),
    )
    .unwrap();
    let mut p2 = p.clone();
    expand_cgroup_mounts(
        &mut p,
        None,
        &[
            ("memory".into(), "/sys/fs/cgroup/memory/berth/c1".into()),
            ("pids".into(), "/sys/fs/cgroup/pids/berth/c1".into()),
        ],
    );
    let show = |p: &Plan| {
        p.mounts
            .iter()
            .filter(|m| m.destination.starts_with("/sys/fs/cgroup"))
            .map(|m| {
                format!(
                    "{} {:?} {:?} {:?} remount={:?}",
                    m.destination.display(),
                    m.fstype,
                    m.source,
                    m.flags,
                    m.bind_remount
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    expect_test::expect![[r#"
        /sys/fs/cgroup Some("tmpfs") Some("tmpfs") MsFlags(MS_NOSUID | MS_NODEV | MS_NOEXEC) remount=None
        /sys/fs/cgroup/memory None Some("/sys/fs/cgroup/memory/berth/c1") MsFlags(MS_BIND) remount=Some(MsFlags(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_REMOUNT | MS_BIND))
        /sys/fs/cgroup/pids None Some("/sys/fs/cgroup/pids/berth/c1") MsFlags(MS_BIND) remount=Some(MsFlags(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_REMOUNT | MS_BIND))
        /sys/fs/cgroup None None MsFlags(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_REMOUNT) remount=None"#]]
    .assert_eq(&show(&p));
    expand_cgroup_mounts(&mut p2, Some(Path::new("/sys/fs/cgroup/berth/c1")), &[]);
    expect_test::expect![[r#"/sys/fs/cgroup Some("cgroup2") Some("cgroup") MsFlags(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME) remount=None"#]]
        .assert_eq(&show(&p2));
}

/// Found by the conformance walk on a pure v2 guest: a second `cgroup` mount at the same
/// place (runc's default spec has one, the walk adds its own) made a second cgroup2 mount
/// of the same root there, which the kernel refuses with EBUSY.
#[test]
fn cgroup2_mount_repeated_at_one_place_becomes_a_bind() {
    let mut v: serde_json::Value = serde_json::from_str(SAMPLE).unwrap();
    let mounts = v["mounts"].as_array_mut().unwrap();
    mounts.push(
        serde_json::json!({"destination": "/sys/fs/cgroup/", "type": "cgroup",
        "source": "cgroup", "options": ["rw", "nosuid"]}),
    );
    // below a new mount of a parent, a cgroup2 mount is new again
    mounts.push(serde_json::json!({"destination": "/sys", "type": "sysfs", "source": "sysfs"}));
    mounts.push(
        serde_json::json!({"destination": "/sys/fs/cgroup", "type": "cgroup",
        "source": "cgroup", "options": ["ro"]}),
    );
    let mut p = plan(
        &serde_json::from_value(v).unwrap(),
        Path::new("/bundle"),
        &HostLimits::unlimited(),
    )
    .unwrap();
    expand_cgroup_mounts(&mut p, Some(Path::new("/sys/fs/cgroup/berth/c1")), &[]);
    let show: Vec<String> = p
        .mounts
        .iter()
        .filter(|m| m.destination.starts_with("/sys"))
        .map(|m| {
            format!(
                "{} {:?} {:?} {:?} remount={:?}",
                m.destination.display(),
                m.fstype,
                m.source,
                m.flags,
                m.bind_remount
            )
        })
        .collect();
    expect_test::expect![[r#"
        /sys/fs/cgroup Some("cgroup2") Some("cgroup") MsFlags(MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RELATIME) remount=None
        /sys/fs/cgroup/ None Some("/sys/fs/cgroup/berth/c1") MsFlags(MS_BIND) remount=Some(MsFlags(MS_NOSUID | MS_REMOUNT | MS_BIND))
        /sys Some("sysfs") Some("sysfs") MsFlags(0x0) remount=None
        /sys/fs/cgroup Some("cgroup2") Some("cgroup") MsFlags(MS_RDONLY) remount=None"#]].assert_eq(&show.join("\n"));
}

#[test]
fn rlimit_above_host_hard_limit_names_field() {
    let mut host = HostLimits::unlimited();
    host.hard
        .insert(rlimit_key(PosixRlimitType::RlimitNofile), 2000);
    let e = plan(&spec(SAMPLE), Path::new("/b"), &host)
        .unwrap_err()
        .to_string();
    expect_test::expect![[r#"process.rlimits[0] (RLIMIT_NOFILE).hard: 4096 is above the host's hard limit 2000; raising it needs CAP_SYS_RESOURCE, lower it to at most 2000"#]]
        .assert_eq(&e);
}

#[test]
fn bad_inputs_name_their_field() {
    type Edit = Box<dyn FnOnce(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "soft above hard",
            Box::new(|v| v["process"]["rlimits"][0]["soft"] = 9999.into()),
        ),
        (
            "relative cwd",
            Box::new(|v| v["process"]["cwd"] = "work".into()),
        ),
        (
            "bad env",
            Box::new(|v| v["process"]["env"][1] = "NOEQUALS".into()),
        ),
        (
            "no args",
            Box::new(|v| v["process"]["args"] = serde_json::json!([])),
        ),
        (
            "dup ns",
            Box::new(|v| v["linux"]["namespaces"][2]["type"] = "pid".into()),
        ),
        (
            "no mount ns",
            Box::new(|v| v["linux"]["namespaces"][4]["type"] = "user".into()),
        ),
        (
            "relative mount",
            Box::new(|v| v["mounts"][3]["destination"] = "data".into()),
        ),
        (
            "dotdot mount",
            Box::new(|v| v["mounts"][3]["destination"] = "/a/../etc".into()),
        ),
        (
            "bind without source",
            Box::new(|v| {
                v["mounts"][3]
                    .as_object_mut()
                    .unwrap()
                    .remove("source")
                    .map(drop)
                    .unwrap_or(())
            }),
        ),
        (
            "propagation",
            Box::new(|v| v["linux"]["rootfsPropagation"] = "sideways".into()),
        ),
        (
            "hostname without uts",
            Box::new(|v| drop(v["linux"]["namespaces"].as_array_mut().unwrap().remove(3))),
        ),
        (
            "time ns",
            Box::new(|v| v["linux"]["namespaces"][5]["type"] = "time".into()),
        ),
        (
            "device outside dev",
            Box::new(|v| v["linux"]["devices"][0]["path"] = "/etc/fuse".into()),
        ),
        (
            "oom",
            Box::new(|v| v["process"]["oomScoreAdj"] = 5000.into()),
        ),
        (
            "sysctl",
            Box::new(|v| v["linux"]["sysctl"]["../x"] = "1".into()),
        ),
    ];
    let mut out = String::new();
    for (name, edit) in cases {
        out.push_str(&format!("{name}: {}\n", err_of(&sample_with(edit))));
    }
    expect_test::expect_file!["../../tests/data/bad_inputs.txt"].assert_eq(&out);
}

#[test]
fn user_namespace_needs_mappings() {
    let s = sample_with(|v| {
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "user"}))
    });
    assert_eq!(
        err_of(&s),
        "linux.uidMappings: a new user namespace needs uidMappings and gidMappings"
    );
    let s = sample_with(|v| {
        v["linux"]["namespaces"]
            .as_array_mut()
            .unwrap()
            .push(serde_json::json!({"type": "user"}));
        v["linux"]["uidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
        v["linux"]["gidMappings"] =
            serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    });
    let p = plan(&s, Path::new("/b"), &HostLimits::unlimited()).unwrap();
    assert_eq!(p.namespaces[0], NsStep::Create(NsKind::User));
    assert_eq!(p.uid_map[0].host_id, 100000);
}

#[test]
fn runc_example_spec_plans() {
    let p = plan(
        &crate::spec::example(),
        Path::new("/b"),
        &HostLimits::unlimited(),
    )
    .unwrap();
    assert!(p.creates(NsKind::Mount));
    assert!(p.process.terminal);
    assert_eq!(p.rootfs, Path::new("/b/rootfs"));
}
