//! `cargo xtask bench runtime`: `berth-runtime run` of a busybox bundle running `/bin/true`
//! next to `crun run` and `runc run` of the same bundle, with and without Docker's default
//! seccomp profile, interleaved in one run, reported as medians and ratios.
//!
//! crun refuses this host's cgroup v1 + v2 hybrid, so the whole measurement runs inside a
//! private mount namespace with `/sys/fs/cgroup/unified` unmounted: all three runtimes see
//! the same plain v1 host and nothing changes outside.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::bench::{median, timed};
use crate::sys::{busybox_rootfs, cargo, ensure_packages, output, run, target_dir, BUILD_PACKAGES};

const INNER: &str = "--in-private-mount-ns";
const ROUNDS: usize = 30;

pub fn run_bench(args: &[String]) -> Result<()> {
    if args.first().map(String::as_str) == Some(INNER) {
        return inner(Path::new(&args[1]), Path::new(&args[2]));
    }
    ensure_packages(BUILD_PACKAGES)?;
    ensure_packages(&["runc", "crun", "busybox-static", "util-linux"])?;
    run(cargo().args([
        "build",
        "--release",
        "-p",
        "runtime",
        "--bin",
        "berth-runtime",
    ]))?;
    let berth = target_dir().join("release/berth-runtime");
    let dir = target_dir().join("bench-runtime");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    busybox_rootfs(&dir)?;
    // The same config for all three: berth-runtime's `spec` is runc's example, with
    // `/bin/true` and, for the seccomp cases, moby's default profile for its capabilities.
    for (name, seccomp) in [("bare", false), ("seccomp", true)] {
        let bundle = dir.join(name);
        std::fs::create_dir_all(&bundle)?;
        let mut spec = Command::new(&berth);
        spec.arg("spec").arg("-b").arg(&bundle);
        if seccomp {
            spec.arg("--seccomp-default");
        }
        output(&mut spec)?;
        let path = bundle.join("config.json");
        let mut config: serde_json::Value = serde_json::from_slice(&std::fs::read(&path)?)?;
        config["process"]["terminal"] = false.into();
        config["process"]["args"] = serde_json::json!(["/bin/true"]);
        // runc refuses a rootfs that is a symlink: both bundles name the one rootfs.
        config["root"]["path"] = dir.join("rootfs").display().to_string().into();
        std::fs::write(&path, serde_json::to_vec_pretty(&config)?)?;
    }
    let exe = std::env::current_exe()?;
    run(Command::new("unshare")
        .args(["--mount", "--propagation", "private", "--"])
        .arg(exe)
        .args(["bench", "runtime", INNER])
        .arg(&berth)
        .arg(&dir))
}

struct Case {
    runtime: &'static str,
    seccomp: bool,
    times: Vec<Duration>,
}

fn inner(berth: &Path, dir: &Path) -> Result<()> {
    let unified = Path::new("/sys/fs/cgroup/unified");
    if unified.join("cgroup.controllers").exists() {
        run(Command::new("umount").arg(unified))?;
    }
    let runtimes: [(&str, PathBuf); 3] = [
        ("berth-runtime", berth.to_path_buf()),
        ("crun", PathBuf::from("crun")),
        ("runc", PathBuf::from("runc")),
    ];
    let mut cases: Vec<Case> = Vec::new();
    for seccomp in [false, true] {
        for (name, _) in &runtimes {
            cases.push(Case {
                runtime: name,
                seccomp,
                times: Vec::new(),
            });
        }
    }
    let state = dir.join("state");
    let mut seq = 0usize;
    let mut once = |runtime: &str, exe: &Path, seccomp: bool| -> Result<Duration> {
        seq += 1;
        let bundle = dir.join(if seccomp { "seccomp" } else { "bare" });
        let id = format!("bench-{runtime}-{seq}");
        timed(
            Command::new(exe)
                .arg("--root")
                .arg(state.join(runtime))
                .args(["run", "-b"])
                .arg(&bundle)
                .arg(&id),
        )
        .with_context(|| {
            format!(
                "{runtime} run ({})",
                if seccomp { "seccomp" } else { "bare" }
            )
        })
    };
    // Warm up: page cache, and each runtime's seccomp cache if it keeps one.
    for c in &cases {
        let exe = &runtimes
            .iter()
            .find(|r| r.0 == c.runtime)
            .context("runtime")?
            .1;
        for _ in 0..3 {
            once(c.runtime, exe, c.seccomp)?;
        }
    }
    for round in 0..ROUNDS {
        for c in cases.iter_mut() {
            let exe = &runtimes
                .iter()
                .find(|r| r.0 == c.runtime)
                .context("runtime")?
                .1;
            c.times.push(once(c.runtime, exe, c.seccomp)?);
        }
        if round % 10 == 9 {
            eprintln!("round {}/{ROUNDS}", round + 1);
        }
    }
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    let med = |runtime: &str, seccomp: bool| {
        cases
            .iter()
            .find(|c| c.runtime == runtime && c.seccomp == seccomp)
            .map(|c| median(c.times.clone()))
            .unwrap_or_default()
    };
    println!(
        "\nbench runtime: `run` of a busybox bundle running /bin/true (median of {ROUNDS}, interleaved)"
    );
    println!("  {:<14} {:>9} {:>14}", "", "bare", "moby seccomp");
    for (name, _) in &runtimes {
        println!(
            "  {name:<14} {:>6.1} ms {:>11.1} ms",
            ms(med(name, false)),
            ms(med(name, true))
        );
    }
    for peer in ["crun", "runc"] {
        for seccomp in [false, true] {
            println!(
                "  {peer} / berth-runtime ({}) = {:.2}x",
                if seccomp { "seccomp" } else { "bare" },
                med(peer, seccomp).as_secs_f64() / med("berth-runtime", seccomp).as_secs_f64()
            );
        }
    }
    println!("  goal: berth-runtime faster than crun in both (ratios above 1.0)");
    let leftovers: Vec<String> = std::fs::read_dir(&state)
        .into_iter()
        .flatten()
        .flatten()
        .flat_map(|rt| std::fs::read_dir(rt.path()).into_iter().flatten().flatten())
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !p.ends_with(".seccomp-cache"))
        .map(|p| p.display().to_string())
        .collect();
    // berth-runtime's default cgroup parent, made by the runs above: gone when empty.
    for h in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = std::fs::remove_dir(h.path().join("berth"));
    }
    if !leftovers.is_empty() {
        bail!("containers left behind: {leftovers:?}");
    }
    Ok(())
}
