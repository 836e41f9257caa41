//! `cargo xtask crash [--points N] [--seed S]`: the crash-at-any-point harness, long: the
//! daemon killed with SIGKILL at N seeded random moments (120 by default) during pull, load,
//! build, commit, run, rm and network create, each followed by the consistency checks of
//! cli/tests/crash.rs. `cargo xtask test` runs the same harness short (25 points).

use anyhow::{bail, Context, Result};

use crate::sys::{cargo, ensure_packages, is_root, show};

pub fn run_task(args: &[String]) -> Result<()> {
    let mut points = 120u64;
    let mut seed = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> Result<u64> {
            let v = it
                .next()
                .with_context(|| format!("{name} needs a number"))?;
            v.parse()
                .with_context(|| format!("{name} {v:?}: not a whole number"))
        };
        match a.as_str() {
            "--points" => points = value("--points")?,
            "--seed" => seed = Some(value("--seed")?),
            other => {
                bail!("crash: unknown argument {other:?} (usage: crash [--points N] [--seed S])")
            }
        }
    }
    if points == 0 {
        bail!("crash: --points must be at least 1");
    }
    if !is_root() {
        bail!("crash: the harness kills and restarts daemons in namespaces: run it as root");
    }
    ensure_packages(crate::test::TEST_PACKAGES)?;
    let mut c = cargo();
    c.args([
        "test",
        "-p",
        "cli",
        "--test",
        "crash",
        "--",
        "--include-ignored",
        "--nocapture",
    ])
    .env("BERTH_CRASH_POINTS", points.to_string());
    if let Some(s) = seed {
        c.env("BERTH_CRASH_SEED", s.to_string());
    }
    eprintln!("$ {}", show(&c));
    let st = c.status()?;
    if !st.success() {
        bail!("crash: the harness failed ({st}); its seed is printed above");
    }
    Ok(())
}
