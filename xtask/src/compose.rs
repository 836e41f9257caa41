//! docker-compose v1 for the end-to-end tests: `ensure()` returns the path of a
//! `docker-compose` 1.29.2 executable in a virtualenv cached next to the rootfs fixtures,
//! made once with Debian's python3 and pip from PyPI and reused after.
//!
//! It publishes no virtualenv that has not run `docker-compose version`: the venv is built in
//! a work dir of the cache and renamed into place (so a killed build leaves only a work dir,
//! which the next build under the cache lock sweeps).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::rootfs::{self, CACHE_DIR};
use crate::sys::{ensure_packages, is_root, output, run};

pub const VERSION: &str = "1.29.2";

/// Debian's python3 (not whatever `python3` is first on PATH): the venv keeps its path.
const PYTHON: &str = "/usr/bin/python3";
const HOST_PACKAGES: &[&str] = &["python3", "python3-venv", "python3-dev", "gcc"];

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

/// Everything that decides the venv's contents: part of its directory name.
fn key() -> String {
    let steps: Vec<String> = STEPS.iter().map(|s| s.join(" ")).collect();
    format!("python {PYTHON}\npip\n{}\n", steps.join("\n"))
}

pub fn dir_name() -> String {
    let hash = hex::encode(Sha256::digest(key().as_bytes()));
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
    let venv = Path::new(CACHE_DIR).join(dir_name());
    let exe = venv.join("bin/docker-compose");
    if exe.is_file() {
        return Ok(exe);
    }
    if !is_root() {
        bail!(
            "docker-compose {VERSION} is not built yet ({}), and building it needs root \
             (Debian packages, the shared cache): run `cargo xtask test` as root",
            exe.display()
        );
    }
    fs::create_dir_all(CACHE_DIR).with_context(|| format!("creating {CACHE_DIR}"))?;
    let cache = fs::canonicalize(CACHE_DIR)?;
    let venv = cache.join(dir_name());
    let exe = venv.join("bin/docker-compose");
    let lock = fs::File::create(cache.join(".lock"))?;
    lock.lock().context("locking the fixture cache")?;
    if exe.is_file() {
        return Ok(exe);
    }
    rootfs::sweep(&cache)?;
    ensure_packages(HOST_PACKAGES)?;

    let started = Instant::now();
    let work = cache.join(format!(".work-compose-{}", std::process::id()));
    let built = build(&work, &venv);
    if work.exists() {
        if let Err(c) = fs::remove_dir_all(&work) {
            eprintln!("xtask: could not remove {}: {c}", work.display());
        }
    }
    built?;
    eprintln!(
        "xtask: docker-compose {VERSION}: built in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        exe.display()
    );
    Ok(exe)
}

fn build(work: &Path, venv: &Path) -> Result<()> {
    run(Command::new(PYTHON).args(["-m", "venv"]).arg(work))?;
    let pip = work.join("bin/pip");
    for step in STEPS {
        // stdout stays free for callers that print a path
        run(Command::new(&pip)
            .args(["install", "--quiet", "--no-input"])
            .args(*step)
            .stdin(Stdio::null())
            .stdout(std::io::stderr()))?;
    }
    // A venv's scripts name their interpreter by absolute path: point them at the final place
    // (the activate scripts, which name the venv too, are not used).
    for script in fs::read_dir(work.join("bin"))? {
        let script = script?.path();
        if fs::symlink_metadata(&script)?.is_file() {
            relocate_shebang(&script, work, venv)?;
        }
    }
    let version = output(
        Command::new(work.join("bin/python3"))
            .arg(work.join("bin/docker-compose"))
            .arg("version")
            .stdin(Stdio::null()),
    )
    .context("the new docker-compose does not run")?;
    if !version.contains(&format!("docker-compose version {VERSION}")) {
        bail!("the new docker-compose says it is another version:\n{version}");
    }
    // pyvenv.cfg names the base interpreter only: the tree itself moves as it is
    fs::rename(work, venv)
        .with_context(|| format!("renaming {} to {}", work.display(), venv.display()))?;
    if let Some(dir) = venv.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Rewrite a `#!FROM/...` first line to `#!TO/...`; leave other files alone.
fn relocate_shebang(script: &Path, from: &Path, to: &Path) -> Result<()> {
    let data = fs::read(script).with_context(|| format!("reading {}", script.display()))?;
    let old = format!("#!{}/", from.display());
    let Some(rest) = data.strip_prefix(old.as_bytes()) else {
        return Ok(());
    };
    let mut new = format!("#!{}/", to.display()).into_bytes();
    new.extend_from_slice(rest);
    fs::write(script, new).with_context(|| format!("writing {}", script.display()))
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

    #[test]
    fn shebangs_move_with_the_venv() {
        let d = std::env::temp_dir().join(format!("xtask-shebang-{}", std::process::id()));
        fs::create_dir_all(&d).expect("temp dir");
        let (from, to) = (Path::new("/c/.work-1"), Path::new("/c/v"));
        let script = d.join("docker-compose");
        fs::write(&script, "#!/c/.work-1/bin/python3\nimport x\n").expect("write");
        relocate_shebang(&script, from, to).expect("relocate");
        let other = d.join("other");
        fs::write(&other, "#!/c/.work-10/bin/python3\nimport x\n").expect("write");
        relocate_shebang(&other, from, to).expect("relocate");
        let moved = fs::read_to_string(&script).expect("read");
        let kept = fs::read_to_string(&other).expect("read");
        fs::remove_dir_all(&d).expect("cleanup");
        assert_eq!(moved, "#!/c/v/bin/python3\nimport x\n");
        assert_eq!(kept, "#!/c/.work-10/bin/python3\nimport x\n");
    }
}
