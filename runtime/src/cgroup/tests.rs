use std::path::Path;

use super::fake::FakeCgroupFs;
use super::*;

fn resources(json: &str) -> LinuxResources {
    serde_json::from_str(json).unwrap()
}

const RES: &str = r#"{
  "memory": {"limit": 67108864, "reservation": 33554432, "swap": 134217728},
  "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0", "mems": "0"},
  "pids": {"limit": 64},
  "devices": [{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"}]
}"#;

fn show(ws: &[Write]) -> String {
    ws.iter()
        .map(|w| format!("{}/{} = {}\n", w.controller.unwrap_or("-"), w.file, w.value))
        .collect()
}

#[test]
fn v1_writes() {
    let ws = writes(&resources(RES), Version::V1, &["c 1:5 rwm".into()]).unwrap();
    expect_test::expect![[r#"
        memory/memory.limit_in_bytes = 67108864
        memory/memory.soft_limit_in_bytes = 33554432
        memory/memory.memsw.limit_in_bytes = 134217728
        cpu/cpu.shares = 512
        cpu/cpu.cfs_period_us = 100000
        cpu/cpu.cfs_quota_us = 50000
        cpuset/cpuset.cpus = 0
        cpuset/cpuset.mems = 0
        pids/pids.max = 64
        devices/devices.deny = a *:* rwm
        devices/devices.allow = c 1:3 rwm
        devices/devices.allow = c 1:5 rwm
    "#]]
    .assert_eq(&show(&ws));
}

#[test]
fn v2_writes() {
    let ws = writes(&resources(RES), Version::V2, &[]).unwrap();
    expect_test::expect![[r#"
        -/memory.low = 33554432
        -/memory.max = 67108864
        -/memory.swap.max = 67108864
        -/cpu.weight = 20
        -/cpu.max = 50000 100000
        -/cpuset.cpus = 0
        -/cpuset.mems = 0
        -/pids.max = 64
    "#]]
    .assert_eq(&show(&ws));
}

#[test]
fn unified_on_v1_names_field() {
    let e = writes(
        &resources(r#"{"unified": {"memory.high": "1M"}}"#),
        Version::V1,
        &[],
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "linux.resources.unified: needs cgroup v2; this host uses v1"
    );
}

#[test]
fn v2_create_enables_controllers_and_joins() {
    let root = Path::new("/sys/fs/cgroup");
    let fs = FakeCgroupFs::v2(root, "cpuset cpu io memory pids");
    let cg = Cgroup::new(&fs, root, Some(Path::new("/machine/c1")), "c1").unwrap();
    assert_eq!(cg.version, Version::V2);
    fs.files.borrow_mut().insert(
        root.join("machine/cgroup.controllers"),
        "cpuset cpu memory pids".into(),
    );
    let ws = writes(&resources(RES), Version::V2, &[]).unwrap();
    cg.create(&fs, &ws, Some(4242), None).unwrap();
    expect_test::expect![[r#"
        write /sys/fs/cgroup/cgroup.subtree_control "+cpu +cpuset +memory +pids"
        mkdir /sys/fs/cgroup/machine
        write /sys/fs/cgroup/machine/cgroup.subtree_control "+cpu +cpuset +memory +pids"
        mkdir /sys/fs/cgroup/machine/c1
        write /sys/fs/cgroup/machine/c1/memory.low "33554432"
        write /sys/fs/cgroup/machine/c1/memory.max "67108864"
        write /sys/fs/cgroup/machine/c1/memory.swap.max "67108864"
        write /sys/fs/cgroup/machine/c1/cpu.weight "20"
        write /sys/fs/cgroup/machine/c1/cpu.max "50000 100000"
        write /sys/fs/cgroup/machine/c1/cpuset.cpus "0"
        write /sys/fs/cgroup/machine/c1/cpuset.mems "0"
        write /sys/fs/cgroup/machine/c1/pids.max "64"
        write /sys/fs/cgroup/machine/c1/cgroup.procs "4242"
    "#]]
    .assert_eq(&fs.log());
    assert!(cg.remove(&fs).is_empty());
    assert!(fs.log().ends_with("rmdir /sys/fs/cgroup/machine/c1\n"));
}

#[test]
fn v1_create_inherits_cpuset_and_joins_every_hierarchy() {
    let root = Path::new("/sys/fs/cgroup");
    let fs = FakeCgroupFs::v1(root, &["memory", "cpuset", "pids"]);
    let cg = Cgroup::new(&fs, root, None, "c1").unwrap();
    assert_eq!(cg.version, Version::V1);
    assert_eq!(cg.path, Path::new("berth/c1"));
    let ws = writes(
        &resources(r#"{"memory": {"limit": 1048576}, "pids": {"limit": 10}}"#),
        Version::V1,
        &[],
    )
    .unwrap();
    cg.create(&fs, &ws, Some(7), None).unwrap();
    expect_test::expect![[r#"
        mkdir /sys/fs/cgroup/memory/berth/c1
        mkdir /sys/fs/cgroup/cpuset/berth/c1
        write /sys/fs/cgroup/cpuset/berth/cpuset.cpus "0-1"
        write /sys/fs/cgroup/cpuset/berth/cpuset.mems "0"
        write /sys/fs/cgroup/cpuset/berth/c1/cpuset.cpus "0-1"
        write /sys/fs/cgroup/cpuset/berth/c1/cpuset.mems "0"
        mkdir /sys/fs/cgroup/pids/berth/c1
        write /sys/fs/cgroup/memory/berth/c1/memory.limit_in_bytes "1048576"
        write /sys/fs/cgroup/pids/berth/c1/pids.max "10"
        write /sys/fs/cgroup/memory/berth/c1/cgroup.procs "7"
        write /sys/fs/cgroup/cpuset/berth/c1/cgroup.procs "7"
        write /sys/fs/cgroup/pids/berth/c1/cgroup.procs "7"
    "#]]
    .assert_eq(&fs.log());
}

#[test]
fn v1_a_cgroup_made_ahead_is_taken_by_renames() {
    let root = Path::new("/sys/fs/cgroup");
    let fs = FakeCgroupFs::v1(root, &["memory", "cpuset"]);
    let ahead = Cgroup::new(&fs, root, Some(Path::new("berth/.ahead-1")), "x").unwrap();
    ahead.create_ahead(&fs).unwrap();
    let cg = Cgroup::new(&fs, root, None, "c1").unwrap();
    let ws = writes(
        &resources(r#"{"memory": {"limit": 1048576}}"#),
        Version::V1,
        &[],
    )
    .unwrap();
    let before = fs.log().len();
    cg.create(&fs, &ws, None, Some(Path::new("berth/.ahead-1")))
        .unwrap();
    expect_test::expect![[r#"
        rename /sys/fs/cgroup/memory/berth/.ahead-1 /sys/fs/cgroup/memory/berth/c1
        rename /sys/fs/cgroup/cpuset/berth/.ahead-1 /sys/fs/cgroup/cpuset/berth/c1
        write /sys/fs/cgroup/memory/berth/c1/memory.limit_in_bytes "1048576"
    "#]]
    .assert_eq(&fs.log()[before..]);
    // what cpuset inherited came along
    assert_eq!(
        fs.read(&root.join("cpuset/berth/c1/cpuset.mems")).unwrap(),
        "0"
    );
    assert!(!fs.exists(&root.join("memory/berth/.ahead-1")));

    // a hierarchy mounted under two names (cpu and cpuacct on systemd hosts): the second
    // rename finds it moved already
    let fs2 = FakeCgroupFs::v1(root, &["cpu", "cpuacct", "memory"]);
    Cgroup::new(&fs2, root, Some(Path::new("berth/.ahead-1")), "x")
        .unwrap()
        .create_ahead(&fs2)
        .unwrap();
    // (as the kernel would: the cpu rename moved cpuacct's too)
    let alias = Cgroup::new(&fs2, root, None, "c1").unwrap();
    fs2.rename(
        &root.join("cpuacct/berth/.ahead-1"),
        &root.join("cpuacct/berth/c1"),
    )
    .unwrap();
    assert!(alias.adopt(&fs2, Path::new("berth/.ahead-1")));
    assert!(fs2.exists(&root.join("memory/berth/c1")));

    // one made under another parent is not taken, and goes; the cgroup is made as usual
    let other = Cgroup::new(&fs, root, Some(Path::new("elsewhere/.ahead-2")), "x").unwrap();
    other.create_ahead(&fs).unwrap();
    let cg2 = Cgroup::new(&fs, root, None, "c2").unwrap();
    let before = fs.log().len();
    cg2.create(&fs, &[], None, Some(Path::new("elsewhere/.ahead-2")))
        .unwrap();
    let log = &fs.log()[before..];
    assert!(log.starts_with("rmdir /sys/fs/cgroup/memory/elsewhere/.ahead-2\nrmdir /sys/fs/cgroup/cpuset/elsewhere/.ahead-2\nmkdir /sys/fs/cgroup/memory/berth/c2\n"), "{log}");
    // none there to take: made as usual
    let cg3 = Cgroup::new(&fs, root, None, "c3").unwrap();
    cg3.create(&fs, &[], None, Some(Path::new("berth/.ahead-9")))
        .unwrap();
    assert!(fs.exists(&root.join("cpuset/berth/c3")));
    // and v2 makes none ahead
    let v2 = FakeCgroupFs::v2(root, "memory pids");
    let a2 = Cgroup::new(&v2, root, Some(Path::new("berth/.ahead-1")), "x").unwrap();
    assert!(a2.create_ahead(&v2).is_err());
}

/// What a default container's spec (Docker's: deny all) asks for is what a cgroup made
/// ahead has: those writes are made ahead and not again; a list that starts over ("a")
/// is written; one that does not (none at all) gets a new cgroup.
#[test]
fn v1_a_cgroup_made_ahead_has_the_default_device_rules() {
    let root = Path::new("/sys/fs/cgroup");
    let default_writes = |res: &str| {
        writes(
            &resources(res),
            Version::V1,
            &node_rules(&crate::plan::default_devices()),
        )
        .unwrap()
    };
    let docker = default_writes(r#"{"devices": [{"allow": false, "access": "rwm"}]}"#);
    assert_eq!(docker, preset_device_writes());
    let fs = FakeCgroupFs::v1(root, &["memory", "devices"]);
    let ahead = |n: &str| {
        let a = Path::new("berth").join(n);
        Cgroup::new(&fs, root, Some(&a), "x")
            .unwrap()
            .create_ahead(&fs)
            .unwrap();
        a
    };
    let a1 = ahead(".ahead-1");
    expect_test::expect![[r#"
        mkdir /sys/fs/cgroup/memory/berth/.ahead-1
        mkdir /sys/fs/cgroup/devices/berth/.ahead-1
        write /sys/fs/cgroup/devices/berth/.ahead-1/devices.deny "a *:* rwm"
        write /sys/fs/cgroup/devices/berth/.ahead-1/devices.allow "c 1:3 rwm"
        write /sys/fs/cgroup/devices/berth/.ahead-1/devices.allow "c 1:5 rwm"
        write /sys/fs/cgroup/devices/berth/.ahead-1/devices.allow "c 1:7 rwm"
        write /sys/fs/cgroup/devices/berth/.ahead-1/devices.allow "c 1:8 rwm"
        write /sys/fs/cgroup/devices/berth/.ahead-1/devices.allow "c 1:9 rwm"
        write /sys/fs/cgroup/devices/berth/.ahead-1/devices.allow "c 5:0 rwm"
        write /sys/fs/cgroup/devices/berth/.ahead-1/devices.allow "c 136:* rwm"
        write /sys/fs/cgroup/devices/berth/.ahead-1/devices.allow "c 5:2 rwm"
    "#]]
    .assert_eq(&fs.log());
    let mut ws = default_writes(
        r#"{"memory": {"limit": 1048576}, "devices": [{"allow": false, "access": "rwm"}]}"#,
    );
    let before = fs.log().len();
    Cgroup::new(&fs, root, None, "c1")
        .unwrap()
        .create(&fs, &ws, None, Some(&a1))
        .unwrap();
    expect_test::expect![[r#"
        rename /sys/fs/cgroup/memory/berth/.ahead-1 /sys/fs/cgroup/memory/berth/c1
        rename /sys/fs/cgroup/devices/berth/.ahead-1 /sys/fs/cgroup/devices/berth/c1
        write /sys/fs/cgroup/memory/berth/c1/memory.limit_in_bytes "1048576"
    "#]]
    .assert_eq(&fs.log()[before..]);

    // privileged: allow all, written over the preset
    let a2 = ahead(".ahead-2");
    let privileged = default_writes(r#"{"devices": [{"allow": true, "access": "rwm"}]}"#);
    let before = fs.log().len();
    Cgroup::new(&fs, root, None, "c2")
        .unwrap()
        .create(&fs, &privileged, None, Some(&a2))
        .unwrap();
    let log = &fs.log()[before..];
    assert!(
        log.starts_with(
            "rename /sys/fs/cgroup/memory/berth/.ahead-2 /sys/fs/cgroup/memory/berth/c2
rename /sys/fs/cgroup/devices/berth/.ahead-2 /sys/fs/cgroup/devices/berth/c2
write /sys/fs/cgroup/devices/berth/c2/devices.allow \"a *:* rwm\"\n"
        ),
        "{log}"
    );
    assert_eq!(log.matches("devices.allow").count(), 9, "{log}");

    // an extra device: the whole list, after its deny all
    let a3 = ahead(".ahead-3");
    ws.push(w("devices", "devices.allow", "c 10:229 rwm", Version::V1));
    let before = fs.log().len();
    Cgroup::new(&fs, root, None, "c3")
        .unwrap()
        .create(&fs, &ws, None, Some(&a3))
        .unwrap();
    let log = &fs.log()[before..];
    assert!(
        log.contains(
            "rename /sys/fs/cgroup/devices/berth/.ahead-3 /sys/fs/cgroup/devices/berth/c3
"
        ),
        "{log}"
    );
    assert!(
        log.contains("devices.deny \"a *:* rwm\"")
            && log.ends_with("devices.allow \"c 10:229 rwm\"\n"),
        "{log}"
    );

    // no device rules (the parent's apply): not the preset one, a new cgroup
    let a4 = ahead(".ahead-4");
    let before = fs.log().len();
    Cgroup::new(&fs, root, None, "c4")
        .unwrap()
        .create(&fs, &[], None, Some(&a4))
        .unwrap();
    expect_test::expect![[r#"
        rmdir /sys/fs/cgroup/memory/berth/.ahead-4
        rmdir /sys/fs/cgroup/devices/berth/.ahead-4
        mkdir /sys/fs/cgroup/memory/berth/c4
        mkdir /sys/fs/cgroup/devices/berth/c4
    "#]]
    .assert_eq(&fs.log()[before..]);
}

#[test]
fn v1_missing_controller_is_an_error() {
    let root = Path::new("/sys/fs/cgroup");
    let fs = FakeCgroupFs::v1(root, &["memory"]);
    let cg = Cgroup::new(&fs, root, None, "c1").unwrap();
    let ws = writes(&resources(r#"{"pids": {"limit": 10}}"#), Version::V1, &[]).unwrap();
    let e = cg.create(&fs, &ws, Some(7), None).unwrap_err().to_string();
    assert_eq!(e, "linux.resources: the host has no pids cgroup controller");
}

#[test]
fn systemd_paths_and_dotdot_rejected() {
    let root = Path::new("/sys/fs/cgroup");
    let fs = FakeCgroupFs::v2(root, "");
    let e = Cgroup::new(&fs, root, Some(Path::new("system.slice:berth:c1")), "c1").unwrap_err();
    assert!(e.to_string().starts_with("linux.cgroupsPath:"), "{e}");
    let e = Cgroup::new(&fs, root, Some(Path::new("/a/../../etc")), "c1").unwrap_err();
    assert!(e.to_string().contains("'..'"), "{e}");
}

#[test]
fn shares_to_weight_matches_kernel_doc() {
    assert_eq!(shares_to_weight(2), 1);
    assert_eq!(shares_to_weight(1024), 39);
    assert_eq!(shares_to_weight(262_144), 10_000);
}

#[test]
fn freeze_writes_per_version() {
    let root = Path::new("/sys/fs/cgroup");
    let fs = FakeCgroupFs::v2(root, "");
    let cg = Cgroup::new(&fs, root, None, "c1").unwrap();
    cg.freeze(&fs, true).unwrap();
    assert!(cg.is_frozen(&fs));
    cg.freeze(&fs, false).unwrap();
    assert!(!cg.is_frozen(&fs));
    let fs1 = FakeCgroupFs::v1(root, &["freezer"]);
    let cg1 = Cgroup::new(&fs1, root, None, "c1").unwrap();
    cg1.freeze(&fs1, true).unwrap();
    assert!(cg1.is_frozen(&fs1));
    expect_test::expect![[r#"
        write /sys/fs/cgroup/berth/c1/cgroup.freeze "1"
        write /sys/fs/cgroup/berth/c1/cgroup.freeze "0"
    "#]]
    .assert_eq(&fs.log());
    expect_test::expect![[r#"
        write /sys/fs/cgroup/freezer/berth/c1/freezer.state "FROZEN"
    "#]]
    .assert_eq(&fs1.log());
}

#[test]
fn stats_read_v1_and_v2_counters() {
    let root = Path::new("/sys/fs/cgroup");
    let fs = FakeCgroupFs::v2(root, "memory pids cpu");
    let cg = Cgroup::new(&fs, root, Some(Path::new("/p/c1")), "c1").unwrap();
    for (f, v) in [
        ("memory.current", "4096\n"),
        ("memory.max", "max\n"),
        ("cpu.stat", "usage_usec 1500\nuser_usec 1000\n"),
        ("pids.current", "3\n"),
        ("pids.max", "64\n"),
    ] {
        fs.files
            .borrow_mut()
            .insert(root.join("p/c1").join(f), v.into());
    }
    let s = cg.stats(&fs);
    assert_eq!(
        (
            s.memory_usage,
            s.memory_limit,
            s.cpu_ns,
            s.pids,
            s.pids_limit
        ),
        (4096, u64::MAX, 1_500_000, 3, 64)
    );
    let fs = FakeCgroupFs::v1(root, &["memory", "cpuacct", "pids"]);
    let cg = Cgroup::new(&fs, root, Some(Path::new("p/c2")), "c2").unwrap();
    for (f, v) in [
        ("memory/p/c2/memory.usage_in_bytes", "100\n"),
        ("memory/p/c2/memory.limit_in_bytes", "9223372036854771712\n"),
        ("cpuacct/p/c2/cpuacct.usage", "77\n"),
        ("pids/p/c2/pids.current", "1\n"),
    ] {
        fs.files.borrow_mut().insert(root.join(f), v.into());
    }
    let s = cg.stats(&fs);
    assert_eq!(
        (
            s.memory_usage,
            s.memory_limit,
            s.cpu_ns,
            s.pids,
            s.pids_limit
        ),
        (100, u64::MAX, 77, 1, u64::MAX)
    );
}

#[test]
fn oom_kills_counted_on_v1_and_v2() {
    let root = Path::new("/sys/fs/cgroup");
    let fs = FakeCgroupFs::v2(root, "memory pids");
    let cg = Cgroup::new(&fs, root, Some(Path::new("/p/c1")), "c1").unwrap();
    assert_eq!(cg.oom_kills(&fs), 0, "no memory.events yet");
    fs.files.borrow_mut().insert(
        root.join("p/c1/memory.events"),
        "low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n".into(),
    );
    assert_eq!(cg.oom_kills(&fs), 1);
    let fs = FakeCgroupFs::v1(root, &["memory"]);
    let cg = Cgroup::new(&fs, root, Some(Path::new("p/c2")), "c2").unwrap();
    fs.files.borrow_mut().insert(
        root.join("memory/p/c2/memory.oom_control"),
        "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n".into(),
    );
    assert_eq!(cg.oom_kills(&fs), 2);
}
