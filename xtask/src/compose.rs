//! docker-compose v1 for the end-to-end tests: `ensure()` returns the path of a
//! `docker-compose` 1.29.2 executable in a virtualenv cached next to the rootfs fixtures,
//! made once with Debian's python3 and pip from PyPI and reused after.
//!
//! It publishes no virtualenv that has not run `docker-compose version` (see `venv`).

use std::path::PathBuf;
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::sys::output;
use crate::venv;

pub const VERSION: &str = "1.29.2";

/// pip runs in order: PyYAML 5.4.1 (docker-compose pins it below 6) does not build with
/// Cython 3 nor in pip's build isolation on Python 3.11; docker 7 and requests 2.32 dropped
/// what docker-compose 1.x relies on.
const STEPS: &[&[&str]] = &[
    &["cython<3", "wheel", "setuptools"],
    &["--no-build-isolation", "pyyaml==5.4.1"],
    &[
        "docker-compose==1.29.2",
        "docker==6.1.3",
        "requests<2.32",
        "urllib3<2",
    ],
];

pub fn dir_name() -> String {
    let hash = hex::encode(Sha256::digest(venv::key(STEPS).as_bytes()));
    format!("compose-venv-{VERSION}-{}", &hash[..12])
}

/// `cargo xtask compose`: print the executable's path (progress goes to stderr).
pub fn run_task(args: &[String]) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: cargo xtask compose");
    }
    println!("{}", ensure()?.display());
    Ok(())
}

/// The path of the cached `docker-compose` executable, built first if missing.
pub fn ensure() -> Result<PathBuf> {
    let exe = "bin/docker-compose";
    let dir = venv::ensure_cached(
        &dir_name(),
        &format!("docker-compose {VERSION}"),
        exe,
        |work, fin| {
            venv::create(work, fin, STEPS)?;
            let version = output(
                Command::new(work.join("bin/python3"))
                    .arg(work.join(exe))
                    .arg("version")
                    .stdin(Stdio::null()),
            )
            .context("the new docker-compose does not run")?;
            if !version.contains(&format!("docker-compose version {VERSION}")) {
                bail!("the new docker-compose says it is another version:\n{version}");
            }
            Ok(())
        },
    )?;
    Ok(dir.join(exe))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_is_stable() {
        let n = dir_name();
        assert!(
            n.starts_with("compose-venv-1.29.2-") && n.len() == 32,
            "{n}"
        );
        assert_eq!(n, dir_name());
    }
}
