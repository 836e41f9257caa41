use std::path::Path;

use super::*;
use crate::plan::{plan, HostLimits};
use crate::syscall::fake::RecordingSyscall;

fn sample() -> Plan {
    let spec = serde_json::from_str(crate::plan::tests::SAMPLE).unwrap();
    plan(&spec, Path::new("/bundle"), &HostLimits::unlimited()).unwrap()
}

#[test]
fn setup_calls_in_order() {
    let mut sys = RecordingSyscall::new();
    sys.dirs.insert("/sys/firmware".into());
    sys.dirs.insert("/proc/sys".into());
    // The program lookup runs on the real filesystem; only the calls before it matter.
    let _ = setup(&sys, &sample(), None);
    expect_test::expect_file!["../../tests/data/init_setup_calls.txt"].assert_eq(&sys.calls());
}

#[test]
fn setup_stops_at_first_failure() {
    let mut sys = RecordingSyscall::new();
    sys.fail_on = Some("pivot_root".into());
    let e = setup(&sys, &sample(), None).unwrap_err().to_string();
    assert!(e.contains("pivot_root"), "{e}");
    assert!(sys
        .calls()
        .trim_end()
        .ends_with("pivot_root /bundle/rootfs"));
}

#[test]
fn find_program_uses_container_path() {
    let env = vec!["PATH=/nonexistent:/bin:/usr/bin".to_string()];
    assert!(find_program("sh", &env).unwrap().ends_with("sh"));
    let e = find_program("no-such-program-xyz", &env)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "process.args[0] \"no-such-program-xyz\": not found in the container's PATH"
    );
}

#[test]
fn seccomp_goes_before_identity_without_nnp() {
    let mut plan = sample();
    plan.process.no_new_privileges = false;
    let prog = crate::seccomp::Program {
        bpf: vec![0; 16],
        flags: 0,
        digest: "d".into(),
    };
    let sys = RecordingSyscall::new();
    let _ = setup(&sys, &plan, Some(&prog));
    let calls = sys.calls();
    let seccomp = calls.find("seccomp 2 instructions").unwrap();
    assert!(seccomp < calls.find("set_identity").unwrap());
    // With no_new_privileges it is left to exec.
    plan.process.no_new_privileges = true;
    let sys = RecordingSyscall::new();
    let _ = setup(&sys, &plan, Some(&prog));
    assert!(!sys.calls().contains("seccomp"));
}

#[test]
fn masking_refuses_a_fake_dev_null() {
    let mut sys = RecordingSyscall::new();
    sys.null_is_file = true;
    let e = setup(&sys, &sample(), None).unwrap_err().to_string();
    assert!(e.contains("/dev/null is not the null device"), "{e}");
}
