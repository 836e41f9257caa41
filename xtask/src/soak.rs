//! `cargo xtask soak [--clients N] [--seconds S] [--containers M]`: the load harness of
//! cli/tests/soak.rs, long: 200 concurrent API clients for 60 s (run, ps, logs, exec, inspect,
//! rm), then 500 containers alive at once, whose `ps` must take under 50 ms. `cargo xtask
//! test` runs the same harness short.

use anyhow::{bail, Context, Result};

use crate::sys::{cargo, ensure_packages, is_root, show};

pub fn run_task(args: &[String]) -> Result<()> {
    let (mut clients, mut seconds, mut containers) = (200u64, 60u64, 500u64);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> Result<u64> {
            let v = it
                .next()
                .with_context(|| format!("{name} needs a number"))?;
            let n: u64 = v
                .parse()
                .with_context(|| format!("{name} {v:?}: not a whole number"))?;
            if n == 0 {
                bail!("{name} must be at least 1");
            }
            Ok(n)
        };
        match a.as_str() {
            "--clients" => clients = value("--clients")?,
            "--seconds" => seconds = value("--seconds")?,
            "--containers" => containers = value("--containers")?,
            other => bail!(
                "soak: unknown argument {other:?} (usage: soak [--clients N] [--seconds S] [--containers M])"
            ),
        }
    }
    if !is_root() {
        bail!("soak: the harness runs a daemon in namespaces: run it as root");
    }
    ensure_packages(crate::test::TEST_PACKAGES)?;
    let mut c = cargo();
    c.args([
        "test",
        "--release",
        "-p",
        "cli",
        "--test",
        "soak",
        "--",
        "--include-ignored",
        "--nocapture",
    ])
    .env("BERTH_SOAK_CLIENTS", clients.to_string())
    .env("BERTH_SOAK_SECONDS", seconds.to_string())
    .env("BERTH_SOAK_CONTAINERS", containers.to_string())
    .env("BERTH_SOAK_PS_GOAL_MS", "50");
    eprintln!("$ {}", show(&c));
    let st = c.status()?;
    if !st.success() {
        bail!("soak: the harness failed ({st})");
    }
    Ok(())
}
