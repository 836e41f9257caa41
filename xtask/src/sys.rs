//! The one place where xtask runs external programs, plus Debian package installation.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

pub fn is_root() -> bool {
    // xtask keeps to std: the effective uid is in /proc/self/status.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Uid:")).map(str::to_owned))
        .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        .unwrap_or(false)
}

/// Run a command, echoing it; fail with its exit status.
pub fn run(cmd: &mut Command) -> Result<()> {
    eprintln!("$ {}", show(cmd));
    let st = cmd
        .status()
        .with_context(|| format!("spawning {}", show(cmd)))?;
    if !st.success() {
        bail!("{} failed: {st}", show(cmd));
    }
    Ok(())
}

/// Run quietly and return stdout.
pub fn output(cmd: &mut Command) -> Result<String> {
    let out = cmd
        .output()
        .with_context(|| format!("spawning {}", show(cmd)))?;
    if !out.status.success() {
        bail!(
            "{} failed: {}\n{}",
            show(cmd),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn installed(pkg: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", pkg])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("install ok installed"))
        .unwrap_or(false)
}

/// Install missing Debian packages (as root); otherwise say what is missing.
pub fn ensure_packages(pkgs: &[&str]) -> Result<()> {
    let missing: Vec<&str> = pkgs.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if !is_root() {
        bail!("missing Debian packages {missing:?}: run as root so xtask can install them, or apt-get install them");
    }
    eprintln!("xtask: installing {missing:?}");
    // apt's progress goes to stderr: some tasks print their result on stdout
    run(Command::new("apt-get")
        .args(["update", "-qq"])
        .stdout(std::io::stderr()))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .stdout(std::io::stderr()))
}

pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Where cargo puts its output: `$CARGO_TARGET_DIR`, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|p| {
            if p.is_absolute() {
                p
            } else {
                workspace_root().join(p)
            }
        })
        .unwrap_or_else(|| workspace_root().join("target"))
}

pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(workspace_root());
    c
}

/// What the workspace needs to compile (libseccomp for the runtime's seccomp filters).
pub const BUILD_PACKAGES: &[&str] = &["libseccomp-dev", "pkg-config", "gcc"];

/// Build the release binaries and return the path of `berth`.
pub fn build_release() -> Result<PathBuf> {
    ensure_packages(BUILD_PACKAGES)?;
    run(cargo().args(["build", "--release", "-p", "cli"]))?;
    Ok(target_dir().join("release/berth"))
}

/// Lay out a busybox root filesystem (Debian's busybox-static + applet links) and tar it.
pub fn busybox_rootfs(dir: &Path) -> Result<PathBuf> {
    ensure_packages(&["busybox-static"])?;
    let root = dir.join("rootfs");
    let _ = std::fs::remove_dir_all(&root);
    for d in ["bin", "etc", "tmp", "root", "proc", "sys", "dev"] {
        std::fs::create_dir_all(root.join(d))?;
    }
    std::fs::copy("/bin/busybox", root.join("bin/busybox")).context("copying /bin/busybox")?;
    for applet in output(Command::new("/bin/busybox").arg("--list"))?.lines() {
        if applet != "busybox" && !applet.is_empty() {
            let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(applet));
        }
    }
    std::fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n",
    )?;
    std::fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    let tarball = dir.join("busybox-rootfs.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .arg("-cf")
        .arg(&tarball)
        .arg("."))?;
    Ok(tarball)
}

/// The `--NAME N` flags of a task (every one a whole number), by name; anything else is an
/// error that shows `usage`.
pub fn number_flags(
    args: &[String],
    names: &[&str],
    usage: &str,
) -> Result<std::collections::BTreeMap<String, u64>> {
    let mut out = std::collections::BTreeMap::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let Some(name) = names.iter().find(|n| a.as_str() == format!("--{n}")) else {
            bail!("unknown argument {a:?} (usage: {usage})");
        };
        let v = it.next().with_context(|| format!("{a} needs a number"))?;
        let n = v
            .parse()
            .with_context(|| format!("{a} {v:?}: not a whole number"))?;
        out.insert((*name).to_owned(), n);
    }
    Ok(out)
}

/// Run the privileged end-to-end test file `cli/tests/<test>.rs` as a long harness, as root,
/// its settings in `env`, its output shown as it comes.
pub fn run_harness(test: &str, release: bool, env: &[(&str, String)]) -> Result<()> {
    if !is_root() {
        bail!("{test}: the harness runs daemons in namespaces: run it as root");
    }
    ensure_packages(crate::test::TEST_PACKAGES)?;
    let mut c = cargo();
    c.arg("test");
    if release {
        c.arg("--release");
    }
    c.args([
        "-p",
        "cli",
        "--test",
        test,
        "--",
        "--include-ignored",
        "--nocapture",
    ]);
    c.envs(env.iter().map(|(k, v)| (k, v)));
    eprintln!("$ {}", show(&c));
    let st = c.status()?;
    if !st.success() {
        bail!("{test}: the harness failed ({st})");
    }
    Ok(())
}

#[cfg(test)]
mod number_flag_tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn known_flags_with_whole_numbers_only() {
        let got = number_flags(
            &args(&["--points", "7", "--seed", "0"]),
            &["points", "seed"],
            "u",
        );
        let got = got.unwrap();
        assert_eq!(got["points"], 7);
        assert_eq!(got["seed"], 0);
        let err = |a: &[&str]| {
            format!(
                "{:#}",
                number_flags(&args(a), &["points"], "crash [--points N]").unwrap_err()
            )
        };
        assert!(err(&["--seeds", "1"])
            .contains("unknown argument \"--seeds\" (usage: crash [--points N])"));
        assert!(err(&["--points"]).contains("--points needs a number"));
        assert!(err(&["--points", "x1"]).contains("--points \"x1\": not a whole number"));
        assert!(err(&["--points", "-3"]).contains("not a whole number"));
    }
}
