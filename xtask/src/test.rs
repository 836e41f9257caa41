//! `cargo xtask test` and `cargo xtask lint`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use anyhow::{bail, Result};

use crate::sys::{self, cargo, ensure_packages, is_root};
use crate::{compose, dockerpy, rootfs, vm};

/// What the end-to-end suite drives besides berth itself.
pub const TEST_PACKAGES: &[&str] = &[
    "busybox-static",
    "skopeo",
    "umoci",
    "curl",
    "util-linux",
    "tar",
    "docker.io",
    "docker-registry",
    "apache2-utils",
    "openssl",
    // cc -static for cli/tests/security.rs's probe
    "gcc",
    "libc6-dev",
    "nftables",
    "podman",
    "iproute2",
    "bsdutils",
    "conmon",
];

/// The Debian rootfs tarballs the end-to-end tests import, and the variables that name them.
pub const FIXTURES: &[(&str, &str)] = &[
    ("BERTH_FIXTURE_PYTHON_TAR", "python"),
    ("BERTH_FIXTURE_REDIS_TAR", "redis"),
];

pub fn lint() -> Result<()> {
    ensure_packages(sys::BUILD_PACKAGES)?;
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

/// Lint, then every test: as root the privileged ones (`#[ignore]`d in a plain `cargo test`)
/// run too, each making its own namespaces and scratch data roots. Ends with one summary line.
pub fn run(extra: &[String]) -> Result<()> {
    ensure_packages(TEST_PACKAGES)?;
    lint()?;
    let mut c = cargo();
    // --no-fail-fast: every test runs, so the summary line counts all of them
    c.args(["test", "--workspace", "--no-fail-fast", "--"]);
    for (var, name) in FIXTURES {
        match rootfs::ensure(name) {
            Ok(tarball) => {
                c.env(var, tarball);
            }
            // building needs root, like the tests that would use it
            Err(e) if !is_root() => eprintln!("xtask: no {var}: {e:#}"),
            Err(e) => return Err(e),
        }
    }
    match compose::ensure() {
        Ok(exe) => {
            c.env("BERTH_DOCKER_COMPOSE", exe);
        }
        Err(e) if !is_root() => eprintln!("xtask: no BERTH_DOCKER_COMPOSE: {e:#}"),
        Err(e) => return Err(e),
    }
    match dockerpy::ensure() {
        Ok(f) => {
            c.env("BERTH_DOCKERPY", f.dir)
                .env("BERTH_DOCKERPY_IMAGE", f.image);
        }
        Err(e) if !is_root() => eprintln!("xtask: no BERTH_DOCKERPY: {e:#}"),
        Err(e) => return Err(e),
    }
    if is_root() {
        c.arg("--include-ignored");
    } else {
        eprintln!("xtask: not root: the privileged tests are SKIPPED (they show as ignored)");
    }
    c.args(extra);
    let roots_before = exec_roots();
    let (passed, failed, ignored, ok) = run_counting(&mut c)?;
    println!("xtask test: {passed} passed, {failed} failed, {ignored} skipped");
    if !ok || failed > 0 {
        bail!("tests failed");
    }
    // every test daemon's exec-root (a tmpfs directory outside its scratch data root) is gone
    let left: Vec<_> = exec_roots().difference(&roots_before).cloned().collect();
    if !left.is_empty() {
        bail!("the tests left daemons' exec-roots behind: {left:?}");
    }
    if is_root() && extra.is_empty() {
        // the kernel-dependent scenarios again, on Debian's kernel with cgroup v2 only, from
        // the binaries just built (about a minute under TCG)
        let rc = vm::run_dev()?;
        println!("xtask test: vm-test exit code {rc}");
        if rc != 0 {
            bail!("vm-test failed");
        }
    }
    Ok(())
}

/// The exec-roots there are now, under both places a daemon puts them by default.
fn exec_roots() -> std::collections::BTreeSet<std::path::PathBuf> {
    ["/run/berth", "/dev/shm/berth"]
        .iter()
        .filter_map(|base| std::fs::read_dir(base).ok())
        .flat_map(|rd| rd.flatten().map(|e| e.path()))
        .collect()
}

/// Run cargo test, echoing its output, and add up its `test result:` lines.
fn run_counting(c: &mut Command) -> Result<(u64, u64, u64, bool)> {
    eprintln!("$ {}", sys::show(c));
    let mut child = c.stdout(Stdio::piped()).spawn()?;
    let mut totals = (0, 0, 0);
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line?;
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                let num = |key: &str| {
                    rest.split(';')
                        .find_map(|part| {
                            part.trim().strip_suffix(key).map(|n| {
                                n.trim()
                                    .trim_start_matches("ok.")
                                    .trim_start_matches("FAILED.")
                                    .trim()
                                    .parse::<u64>()
                                    .unwrap_or(0)
                            })
                        })
                        .unwrap_or(0)
                };
                totals.0 += num(" passed");
                totals.1 += num(" failed");
                totals.2 += num(" ignored");
            }
        }
    }
    let ok = child.wait()?.success();
    Ok((totals.0, totals.1, totals.2, ok))
}
