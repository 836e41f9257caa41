//! The Docker "get started" walkthrough (examples/walkthrough.sh, what `cargo xtask demo`
//! runs with the berth CLI) driven by the real docker CLI against berth, in the test
//! daemon's private network namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{is_root, ok, TestDaemon};

fn fixture(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is unset: run through `cargo xtask test`, which builds it")
    })
}

/// Run examples/walkthrough.sh with `cli` (`docker` or `berth`) against a fresh daemon.
fn walkthrough(cli: &str) {
    assert!(is_root(), "needs root: run through `cargo xtask test`");
    let (python, redis) = (
        fixture("BERTH_FIXTURE_PYTHON_TAR"),
        fixture("BERTH_FIXTURE_REDIS_TAR"),
    );
    let d = TestDaemon::start_with(&["--certs-dir", "{dir}/certs.d"]);
    ok(d.in_netns("ip").args(["link", "set", "lo", "up"]));
    let busybox = d.path("busybox.tar");
    std::fs::write(&busybox, support::busybox_rootfs_tar(&[])).unwrap();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = ok(d
        .in_netns("bash")
        .arg(root.join("examples/walkthrough.sh"))
        .env(
            "CLI",
            if cli == "docker" {
                "docker".to_owned()
            } else {
                format!("{} -H {}", support::BERTH, d.host())
            },
        )
        .env("DOCKER_HOST", d.host())
        .env("WORK", d.path("work"))
        .env("CERTS_D", d.path("certs.d"))
        .env("EXAMPLES", root.join("examples/friendlyhello"))
        .env("PYTHON_TAR", python)
        .env("REDIS_TAR", redis)
        .env("BUSYBOX_TAR", &busybox));
    assert!(out.contains("walkthrough: all steps passed"), "{out}");
    assert!(
        out.contains(&format!("$ {cli} build -t friendlyhello .")),
        "{out}"
    );
    assert!(
        out.contains("Successfully tagged friendlyhello:latest"),
        "{out}"
    );
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn docker_cli_walkthrough() {
    walkthrough("docker");
}

/// What `cargo xtask demo` runs, as a test.
#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn berth_cli_walkthrough() {
    walkthrough("berth");
}
