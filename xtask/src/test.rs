//! `cargo xtask test` and `cargo xtask lint`.

use anyhow::Result;

use crate::sys::{self, cargo, ensure_packages, is_root};

/// What the end-to-end suite drives besides berth itself.
pub const TEST_PACKAGES: &[&str] = &[
    "busybox-static",
    "skopeo",
    "umoci",
    "curl",
    "util-linux",
    "tar",
];

pub fn lint() -> Result<()> {
    sys::run(cargo().args(["fmt", "--all", "--check"]))?;
    sys::run(cargo().args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]))
}

/// Lint, then every test: unprivileged first, then (as root) the privileged ones, which
/// each make their own namespaces and scratch data roots.
pub fn run(extra: &[String]) -> Result<()> {
    ensure_packages(TEST_PACKAGES)?;
    lint()?;
    run_tests(&[], extra)?;
    if is_root() {
        run_tests(&["--ignored"], extra)?;
    } else {
        eprintln!("xtask: SKIPPED the privileged tests (marked #[ignore]): they need root");
    }
    Ok(())
}

fn run_tests(mode: &[&str], extra: &[String]) -> Result<()> {
    let mut c = cargo();
    c.args(["test", "--workspace", "--"]).args(mode).args(extra);
    sys::run(&mut c)
}
