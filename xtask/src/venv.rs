//! Python tools cached next to the rootfs fixtures: a directory built once per key under the
//! cache lock, in a work dir renamed into place only when its build and check passed (so a
//! killed build leaves only a work dir, which the next build under the lock sweeps), plus
//! the virtualenv steps the tools share (Debian's python3, pip from PyPI, relocated scripts).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::rootfs::{self, CACHE_DIR};
use crate::sys::{ensure_packages, is_root, run};

/// Debian's python3 (not whatever `python3` is first on PATH): the venv keeps its path.
pub const PYTHON: &str = "/usr/bin/python3";
pub const HOST_PACKAGES: &[&str] = &["python3", "python3-venv", "python3-dev", "gcc"];

/// The cached directory `dir_name` under the fixture cache, made by `build(work, final)`
/// first if `product` (a path inside it) is missing. `build` fills `work`; paths it writes
/// into files must name `final`, where `work` is renamed to after `build` succeeds.
pub fn ensure_cached(
    dir_name: &str,
    what: &str,
    product: &str,
    build: impl FnOnce(&Path, &Path) -> Result<()>,
) -> Result<PathBuf> {
    let dir = Path::new(CACHE_DIR).join(dir_name);
    if dir.join(product).exists() {
        return Ok(dir);
    }
    if !is_root() {
        bail!(
            "{what} is not built yet ({}), and building it needs root (Debian packages, the \
             shared cache): run `cargo xtask test` as root",
            dir.display()
        );
    }
    fs::create_dir_all(CACHE_DIR).with_context(|| format!("creating {CACHE_DIR}"))?;
    let cache = fs::canonicalize(CACHE_DIR)?;
    let dir = cache.join(dir_name);
    // One build at a time; whoever waited finds the directory made.
    let lock = fs::File::create(cache.join(".lock"))?;
    lock.lock().context("locking the fixture cache")?;
    if dir.join(product).exists() {
        return Ok(dir);
    }
    rootfs::sweep(&cache)?;
    ensure_packages(HOST_PACKAGES)?;

    let started = Instant::now();
    let work = cache.join(format!(".work-{dir_name}-{}", std::process::id()));
    let built = build(&work, &dir).and_then(|()| {
        // the tree itself moves as it is (pyvenv.cfg names the base interpreter only)
        fs::rename(&work, &dir)
            .with_context(|| format!("renaming {} to {}", work.display(), dir.display()))?;
        fs::File::open(&cache)?.sync_all()?;
        Ok(())
    });
    if work.exists() {
        if let Err(c) = fs::remove_dir_all(&work) {
            eprintln!("xtask: could not remove {}: {c}", work.display());
        }
    }
    built.with_context(|| format!("building {what}"))?;
    eprintln!(
        "xtask: {what}: built in {:.1} s: {}",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    Ok(dir)
}

/// Make a virtualenv at `work` and pip-install `steps` into it, one pip run per step, in
/// order; then point its scripts at `fin`, where it will live.
pub fn create(work: &Path, fin: &Path, steps: &[&[&str]]) -> Result<()> {
    run(Command::new(PYTHON).args(["-m", "venv"]).arg(work))?;
    let pip = work.join("bin/pip");
    for step in steps {
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
            relocate_shebang(&script, work, fin)?;
        }
    }
    Ok(())
}

/// Everything in `steps` that decides a venv's contents, for a cache key.
pub fn key(steps: &[&[&str]]) -> String {
    let steps: Vec<String> = steps.iter().map(|s| s.join(" ")).collect();
    format!("python {PYTHON}\npip\n{}\n", steps.join("\n"))
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
