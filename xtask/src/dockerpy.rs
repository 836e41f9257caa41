//! `cargo xtask dockerpy [--peer] [-k EXPR] [--keep] [FILE...]`: docker-py's own integration
//! tests (tests/integration of the docker==6.1.3 sdist, which later sdists no longer ship)
//! against a scratch berth daemon and, with `--peer`, against a scratch dockerd 20.10 on the
//! same tests, with one summary per test file.
//!
//! Each daemon and pytest run in fresh pid, mount and network namespaces (see `ns`): nothing
//! they do reaches the host's network, mounts or processes, and all of it ends with the
//! namespace's first process. The tests' image, alpine:3.10, cannot be pulled here: a
//! stand-in made from Debian's busybox-static is imported under the names the tests use.
//!
//! `ensure()` caches the venv (pytest, pytest-timeout, docker-py and its test deps) with the
//! unpacked sdist, and the stand-in's tarball; `cargo xtask test` hands them to the e2e test
//! cli/tests/dockerpy.rs as `BERTH_DOCKERPY` and `BERTH_DOCKERPY_IMAGE`.

mod ns;
mod report;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::sys::{self, cargo, ensure_packages, output, run};
use crate::venv;

pub const VERSION: &str = "6.1.3";
/// The API version the tests ask for: dockerd 20.10's and berth's.
pub const API_VERSION: &str = "1.41";
/// The image docker-py's tests run (tests/integration/base.py) and the plain name
/// models_containers_test.py uses.
pub const IMAGE_NAMES: &[&str] = &["alpine:3.10", "alpine:latest"];
/// The stand-in's config, as alpine's.
pub const IMAGE_CHANGES: &[&str] = &[
    r#"CMD ["/bin/sh"]"#,
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
];
/// Where things are inside the cached directories.
pub const VENV_PYTHON: &str = "venv/bin/python3";
pub const IMAGE_TAR: &str = "alpine-standin.tar";
pub fn source_dir(cached: &Path) -> PathBuf {
    cached.join(format!("src/docker-{VERSION}"))
}

/// The container and exec tests (the brief of issue 4) and the models' container tests.
const DEFAULT_FILES: &[&str] = &[
    "tests/integration/api_container_test.py",
    "tests/integration/api_exec_test.py",
    "tests/integration/models_containers_test.py",
];
/// pytest 7.4 rather than the sdist's 7.1.2: Debian's Python is 3.11. paramiko: helpers.py
/// imports it; requests 2.32 and urllib3 2 broke docker-py 6's unix-socket adapter.
const STEPS: &[&[&str]] = &[&[
    "pytest==7.4.4",
    "pytest-timeout==2.1.0",
    "docker==6.1.3",
    "paramiko==2.11.0",
    "websocket-client==1.3.3",
    "requests<2.32",
    "urllib3<2",
]];
/// Bump when the stand-in image's layout changes: part of the cache key.
const IMAGE_FORMAT: u32 = 2;
const HOST_PACKAGES: &[&str] = &[
    "busybox-static",
    "util-linux",
    "iproute2",
    "tar",
    "coreutils",
];
/// The peer: dockerd 20.10 with its own containerd and the docker CLI to import the image.
const PEER_PACKAGES: &[&str] = &["docker.io"];

/// alpine 3.10's accounts (exec tests run `whoami` as `postgres`); the shells are busybox's.
const PASSWD: &str = "root:x:0:0:root:/root:/bin/ash
bin:x:1:1:bin:/bin:/sbin/nologin
daemon:x:2:2:daemon:/sbin:/sbin/nologin
adm:x:3:4:adm:/var/adm:/sbin/nologin
lp:x:4:7:lp:/var/spool/lpd:/sbin/nologin
sync:x:5:0:sync:/sbin:/bin/sync
mail:x:8:12:mail:/var/spool/mail:/sbin/nologin
operator:x:11:0:operator:/root:/sbin/nologin
postgres:x:70:70::/var/lib/postgresql:/bin/sh
guest:x:405:100:guest:/dev/null:/sbin/nologin
nobody:x:65534:65534:nobody:/:/sbin/nologin
";
const GROUP: &str = "root:x:0:root
bin:x:1:root,bin,daemon
daemon:x:2:root,bin,daemon
sys:x:3:root,bin,adm
adm:x:4:root,adm,daemon
wheel:x:10:root
mail:x:12:mail
postgres:x:70:
users:x:100:games
nogroup:x:65533:
nobody:x:65534:
";

struct Args {
    peer: bool,
    keep: bool,
    keyword: Option<String>,
    timeout: u32,
    files: Vec<String>,
}

const USAGE: &str =
    "usage: cargo xtask dockerpy [--peer] [-k EXPR] [--timeout SECS] [--keep] [FILE...]
  --peer          run the same tests against dockerd 20.10 too and compare
  -k EXPR         pytest's -k: only tests matching EXPR
  --timeout SECS  per-test timeout (pytest-timeout), default 60
  --keep          keep the scratch dir (daemon logs, pytest output, outcomes)
  FILE            test files under the sdist, default:";

fn parse_args(args: &[String]) -> Result<Args> {
    let mut a = Args {
        peer: false,
        keep: false,
        keyword: None,
        timeout: 60,
        files: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--peer" => a.peer = true,
            "--keep" => a.keep = true,
            "-k" => a.keyword = Some(it.next().context("-k needs an expression")?.clone()),
            "--timeout" => {
                let t = it.next().context("--timeout needs seconds")?;
                a.timeout = t
                    .parse()
                    .ok()
                    .filter(|t| *t > 0)
                    .with_context(|| format!("--timeout {t:?}: not a positive number"))?;
            }
            "-h" | "--help" => bail!("{USAGE} {}", DEFAULT_FILES.join(" ")),
            f if f.starts_with('-') => bail!("unknown option {f:?}\n{USAGE}"),
            f => a.files.push(f.to_owned()),
        }
    }
    if a.files.is_empty() {
        a.files = DEFAULT_FILES.iter().map(|f| f.to_string()).collect();
    }
    Ok(a)
}

/// `cargo xtask dockerpy ...`
pub fn run_task(args: &[String]) -> Result<()> {
    let args = parse_args(args)?;
    if !sys::is_root() {
        bail!("cargo xtask dockerpy needs root (namespaces, daemons, Debian packages)");
    }
    ensure_packages(HOST_PACKAGES)?;
    if args.peer {
        ensure_packages(PEER_PACKAGES)?;
    }
    ensure_packages(sys::BUILD_PACKAGES)?;
    run(cargo().args(["build", "-p", "cli"]))?;
    let berth = sys::target_dir().join("debug/berth");
    let fixture = ensure()?;
    for f in &args.files {
        if !source_dir(&fixture.dir).join(f).is_file() {
            bail!("{f}: no such test file in docker-py {VERSION}'s sdist");
        }
    }

    let scratch = std::env::temp_dir().join(format!("berth-dockerpy-{}", std::process::id()));
    fs::create_dir(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let mut targets = vec![ns::Target::Berth(berth)];
    if args.peer {
        targets.push(ns::Target::Dockerd);
    }
    let mut results = Vec::new();
    let mut failure = None;
    for target in &targets {
        let dir = scratch.join(target.name());
        let ran = fs::create_dir(&dir)
            .map_err(anyhow::Error::from)
            .and_then(|()| ns::run_outside(target, &dir, &fixture, &args));
        match ran.and_then(|()| fs::read_to_string(dir.join("pytest.log")).map_err(Into::into)) {
            Ok(log) => {
                let outcomes = report::parse(&log);
                if let Err(e) = report::write_outcomes(&outcomes, &dir.join("outcomes.txt")) {
                    eprintln!("xtask: {e:#}");
                }
                results.push((target.label(), outcomes));
            }
            Err(e) => {
                failure = Some(e.context(format!("running docker-py against {}", target.label())));
                break;
            }
        }
    }
    if !results.is_empty() {
        print!("{}", report::summary(&args.files, &results));
    }
    if args.keep || failure.is_some() {
        eprintln!(
            "xtask: kept {} (daemon.log, pytest.log, outcomes.txt per daemon)",
            scratch.display()
        );
    } else if let Err(e) = crate::rootfs::remove_work(&scratch) {
        eprintln!("xtask: could not remove {}: {e}", scratch.display());
    }
    match failure {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// The hidden task the namespaces' first process runs (see `ns`).
pub fn run_inner(args: &[String]) -> Result<()> {
    ns::run_inside(args)
}

/// The two cached parts: the tests (venv + sdist) and the stand-in image, each under a key of
/// what decides its contents, so that changing one does not rebuild the other.
pub struct Fixture {
    /// `venv/` with pytest and docker-py, `src/docker-6.1.3/` (the sdist: pytest runs there)
    pub dir: PathBuf,
    /// the stand-in's rootfs tarball
    pub image: PathBuf,
}

fn tests_key() -> String {
    format!("docker sdist {VERSION}\n{}", venv::key(STEPS))
}

fn image_key(busybox: &str) -> String {
    format!("image format {IMAGE_FORMAT}\nbusybox-static {busybox}\n{PASSWD}{GROUP}")
}

fn hashed(prefix: &str, key: &str) -> String {
    let hash = hex::encode(Sha256::digest(key.as_bytes()));
    format!("{prefix}-{}", &hash[..12])
}

fn busybox_version() -> Result<String> {
    ensure_packages(&["busybox-static"])?;
    output(Command::new("dpkg-query").args(["-W", "-f=${Version}", "busybox-static"]))
}

/// `cargo xtask dockerpy-cache`: build once, then print, the cached tests dir and image.
pub fn run_cache_task(args: &[String]) -> Result<()> {
    if !args.is_empty() {
        bail!("usage: cargo xtask dockerpy-cache");
    }
    let f = ensure()?;
    println!("{}\n{}", f.dir.display(), f.image.display());
    Ok(())
}

/// The cached tests and image, built first if missing.
pub fn ensure() -> Result<Fixture> {
    let what = format!("docker-py {VERSION} integration tests");
    let name = hashed(&format!("dockerpy-{VERSION}"), &tests_key());
    let dir = venv::ensure_cached(&name, &what, VENV_PYTHON, |work, fin| {
        venv::create(&work.join("venv"), &fin.join("venv"), STEPS)?;
        fetch_sdist(work)?;
        let got = output(Command::new(work.join(VENV_PYTHON)).args([
            "-c",
            "import docker, pytest, pytest_timeout, paramiko; print(docker.__version__)",
        ]))
        .context("the new venv does not import docker-py and pytest")?;
        if got.trim() != VERSION {
            bail!("the venv's docker-py is {got:?}, not {VERSION}");
        }
        Ok(())
    })?;
    let name = hashed("dockerpy-image", &image_key(&busybox_version()?));
    let image = venv::ensure_cached(&name, "the alpine:3.10 stand-in", IMAGE_TAR, |work, _| {
        fs::create_dir(work)?;
        standin_tar(&work.join("rootfs"), &work.join(IMAGE_TAR))?;
        Ok(fs::remove_dir_all(work.join("rootfs"))?)
    })?;
    Ok(Fixture {
        dir,
        image: image.join(IMAGE_TAR),
    })
}

/// The sdist from PyPI (source only: the wheel has no tests), unpacked under `work/src`.
fn fetch_sdist(work: &Path) -> Result<()> {
    let dl = work.join("sdist");
    // the venv's scripts already name its final place: pip through its python
    run(Command::new(work.join(VENV_PYTHON))
        .args([
            "-m",
            "pip",
            "download",
            "--quiet",
            "--no-input",
            // source for docker only: `:all:` builds pip's build deps from source too
            "--no-binary",
            "docker",
        ])
        .args(["--no-deps", "--dest"])
        .arg(&dl)
        .arg(format!("docker=={VERSION}"))
        .stdin(Stdio::null())
        .stdout(std::io::stderr()))?;
    let tarball = dl.join(format!("docker-{VERSION}.tar.gz"));
    let src = work.join("src");
    fs::create_dir_all(&src)?;
    run(Command::new("tar")
        .arg("-C")
        .arg(&src)
        .args(["--no-same-owner", "-xzf"])
        .arg(&tarball))?;
    fs::remove_dir_all(&dl)?;
    let tests = source_dir(work).join("tests/integration");
    for f in DEFAULT_FILES {
        let f = source_dir(work).join(f);
        if !f.is_file() {
            bail!(
                "the docker {VERSION} sdist has no {} ({} holds no integration tests?)",
                f.display(),
                tests.display()
            );
        }
    }
    Ok(())
}

/// alpine:3.10's stand-in: Debian's static busybox with every applet linked in /bin, alpine's
/// accounts and directories (an exec test's workdir is /var/opt); tarred with numeric root ownership.
fn standin_tar(root: &Path, tarball: &Path) -> Result<()> {
    let _ = fs::remove_dir_all(root);
    for d in [
        "bin",
        "sbin",
        "etc",
        "root",
        "home",
        "proc",
        "sys",
        "dev",
        "usr/bin",
        "usr/sbin",
        "usr/local/bin",
        "usr/local/sbin",
        "usr/share",
        "lib",
        "media",
        "mnt",
        "opt",
        "run",
        "srv",
        "var/cache",
        "var/empty",
        "var/lib/postgresql",
        "var/local",
        "var/lock",
        "var/log",
        "var/mail",
        "var/opt",
        "var/spool",
        "var/tmp",
    ] {
        fs::create_dir_all(root.join(d))?;
    }
    fs::create_dir_all(root.join("tmp"))?;
    run(Command::new("chmod").arg("1777").arg(root.join("tmp")))?;
    fs::copy("/bin/busybox", root.join("bin/busybox")).context("copying /bin/busybox")?;
    let applets = output(Command::new("/bin/busybox").arg("--list"))?;
    let mut linked = 0;
    for applet in applets.lines().map(str::trim) {
        if applet.is_empty() || applet == "busybox" || applet.contains('/') {
            continue;
        }
        std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))
            .with_context(|| format!("linking applet {applet}"))?;
        linked += 1;
    }
    // what the three test files run in the image
    for needed in [
        "sh", "top", "cat", "echo", "sleep", "env", "whoami", "printf", "mkdir",
    ] {
        if !root.join("bin").join(needed).exists() {
            bail!("busybox-static has no {needed} applet, which docker-py's tests run");
        }
    }
    fs::write(root.join("etc/passwd"), PASSWD)?;
    fs::write(root.join("etc/group"), GROUP)?;
    fs::write(root.join("etc/shells"), "/bin/sh\n/bin/ash\n")?;
    run(Command::new("tar")
        .arg("-C")
        .arg(root)
        .args([
            "--sort=name",
            "--numeric-owner",
            "--owner=0",
            "--group=0",
            "-cf",
        ])
        .arg(tarball)
        .arg("."))?;
    eprintln!("xtask: stand-in image: busybox with {linked} applets");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn args_default_to_the_three_files() {
        let a = parse_args(&[]).expect("parse");
        assert!(!a.peer && a.keyword.is_none() && a.timeout == 60);
        assert_eq!(a.files, strings(DEFAULT_FILES));
        let a = parse_args(&strings(&["--peer", "-k", "exec and not tty", "x.py"])).expect("p");
        assert!(a.peer);
        assert_eq!(a.keyword.as_deref(), Some("exec and not tty"));
        assert_eq!(a.files, ["x.py"]);
        assert!(parse_args(&strings(&["-k"])).is_err());
        assert!(parse_args(&strings(&["--timeout", "0"])).is_err());
        assert!(parse_args(&strings(&["--bogus"])).is_err());
    }

    #[test]
    fn keys_name_what_decides_the_contents() {
        let (a, b) = (image_key("1:1.35.0-4"), image_key("1:1.36.1-1"));
        assert_ne!(hashed("x", &a), hashed("x", &b));
        assert!(a.contains("postgres:x:70"), "{a}");
        assert!(tests_key().contains("docker==6.1.3"));
        let n = hashed("dockerpy-6.1.3", &tests_key());
        assert!(n.starts_with("dockerpy-6.1.3-") && n.len() == 27, "{n}");
    }
}
