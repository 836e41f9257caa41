//! `cargo xtask crash [--points N] [--seed S]`: the crash-at-any-point harness, long: the
//! daemon killed with SIGKILL at N seeded random moments (120 by default) during pull, load,
//! build, commit, run, rm and network create, each followed by the consistency checks of
//! cli/tests/crash.rs. `cargo xtask test` runs the same harness short (25 points).

use anyhow::{bail, Result};

use crate::sys::{number_flags, run_harness};

pub fn run_task(args: &[String]) -> Result<()> {
    let flags = number_flags(args, &["points", "seed"], "crash [--points N] [--seed S]")?;
    let points = flags.get("points").copied().unwrap_or(120);
    if points == 0 {
        bail!("crash: --points must be at least 1");
    }
    let mut env = vec![("BERTH_CRASH_POINTS", points.to_string())];
    if let Some(s) = flags.get("seed") {
        env.push(("BERTH_CRASH_SEED", s.to_string()));
    }
    // a failure prints its seed above
    run_harness("crash", false, &env)
}
