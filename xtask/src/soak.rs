//! `cargo xtask soak [--clients N] [--seconds S] [--containers M]`: the load harness of
//! cli/tests/soak.rs, long: 200 concurrent API clients for 60 s (run, ps, logs, exec, inspect,
//! rm), then 500 containers alive at once, whose `ps` must take under 50 ms. `cargo xtask
//! test` runs the same harness short.

use anyhow::{bail, Result};

use crate::sys::{number_flags, run_harness};

pub fn run_task(args: &[String]) -> Result<()> {
    let flags = number_flags(
        args,
        &["clients", "seconds", "containers"],
        "soak [--clients N] [--seconds S] [--containers M]",
    )?;
    let get = |name: &str, default: u64| -> Result<u64> {
        match flags.get(name).copied().unwrap_or(default) {
            0 => bail!("soak: --{name} must be at least 1"),
            n => Ok(n),
        }
    };
    run_harness(
        "soak",
        true,
        &[
            ("BERTH_SOAK_CLIENTS", get("clients", 200)?.to_string()),
            ("BERTH_SOAK_SECONDS", get("seconds", 60)?.to_string()),
            ("BERTH_SOAK_CONTAINERS", get("containers", 500)?.to_string()),
            ("BERTH_SOAK_PS_GOAL_MS", "50".to_string()),
        ],
    )
}
