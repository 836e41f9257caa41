//! One daemon under docker-py's tests, in namespaces of its own: `run_outside` starts
//! `unshare --net --mount --pid --fork` with this xtask as the first process of the new pid
//! namespace (`run_inside`), which brings up lo, points /etc/resolv.conf at 127.0.0.1 in its
//! mount namespace, starts the daemon, imports the stand-in image and runs pytest.
//!
//! No traffic can leave: the network namespace has lo and whatever bridge the daemon makes,
//! no route out; dockerd's docker0 and iptables rules exist only there. When the first process
//! exits, however it exits, the kernel kills everything left in its pid namespace and the
//! mount and network namespaces go with them. What outlives them is the scratch dir and the
//! daemon's cgroups, which `run_outside` removes.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::{source_dir, Args, Fixture, API_VERSION, IMAGE_CHANGES, IMAGE_NAMES, VENV_PYTHON};
use crate::sys::{output, run};

/// Longest a whole pytest run may take, whatever the per-test timeout.
const RUN_TIMEOUT_SECS: u32 = 45 * 60;

pub enum Target {
    /// The berth binary to run as `berth daemon`.
    Berth(PathBuf),
    /// Debian's dockerd 20.10 with its own containerd.
    Dockerd,
}

impl Target {
    pub fn name(&self) -> &'static str {
        match self {
            Target::Berth(_) => "berth",
            Target::Dockerd => "dockerd",
        }
    }

    pub fn label(&self) -> String {
        match self {
            Target::Berth(_) => "berth".into(),
            Target::Dockerd => "dockerd 20.10".into(),
        }
    }
}

/// The cgroup under which a run's containers live, in every hierarchy (unique per run).
fn cgroup_parent(target: &str) -> String {
    format!("berth-dockerpy-{target}-{}", std::process::id())
}

/// Run `target` under the tests in fresh namespaces; pytest's output ends up in
/// `dir/pytest.log`, the daemon's in `dir/daemon.log`. Test failures are not errors here.
pub fn run_outside(target: &Target, dir: &Path, fixture: &Fixture, args: &Args) -> Result<()> {
    let exe = std::env::current_exe().context("finding the xtask binary")?;
    let cgroup = cgroup_parent(target.name());
    let binary = match target {
        Target::Berth(b) => b.clone(),
        Target::Dockerd => PathBuf::from("/usr/sbin/dockerd"),
    };
    let mut c = Command::new("unshare");
    c.args(["--net", "--mount", "--pid", "--fork", "--mount-proc"])
        .args(["--propagation", "private", "--kill-child=SIGKILL", "--"])
        .arg(exe)
        .arg("dockerpy-inner")
        .arg(target.name())
        .arg(&binary)
        .arg(dir)
        .arg(&fixture.dir)
        .arg(&fixture.image)
        .arg(&cgroup)
        .arg(args.timeout.to_string())
        .arg(args.keyword.as_deref().unwrap_or(""))
        .args(&args.files)
        .stdin(Stdio::null());
    let ran = run(&mut c);
    let cleaned = remove_cgroups(&cgroup);
    match (ran, cleaned) {
        (Ok(()), Ok(())) => Ok(()),
        (Err(e), Ok(())) => Err(e),
        (Ok(()), Err(c)) => Err(c),
        (Err(e), Err(c)) => bail!("{e:#}\nthen removing cgroup {cgroup} failed too: {c:#}"),
    }
}

/// The namespaces' first process: see the module comment.
pub fn run_inside(args: &[String]) -> Result<()> {
    let [target, binary, dir, cached, image, cgroup, timeout, keyword, files @ ..] = args else {
        bail!(
            "usage: xtask dockerpy-inner TARGET BINARY DIR TESTS IMAGE CGROUP TIMEOUT KEYWORD FILE..."
        );
    };
    if std::process::id() != 1 {
        bail!("dockerpy-inner runs as the first process of its own pid namespace only");
    }
    let (dir, cached) = (Path::new(dir), Path::new(cached));
    run(Command::new("ip").args(["link", "set", "lo", "up"]))?;
    let resolv = dir.join("resolv.conf");
    fs::write(&resolv, "nameserver 127.0.0.1\n")?;
    run(Command::new("mount")
        .arg("--bind")
        .arg(&resolv)
        .arg("/etc/resolv.conf"))?;
    let socket = dir.join("daemon.sock");
    let host = format!("unix://{}", socket.display());
    let (mut daemon, client) = match target.as_str() {
        "berth" => (start_berth(binary, dir, &host, cgroup)?, binary.clone()),
        "dockerd" => (
            start_dockerd(binary, dir, &host, cgroup)?,
            "docker".to_owned(),
        ),
        other => bail!("unknown target {other:?}"),
    };
    let tested = wait_for_socket(&mut daemon, &socket, dir)
        .and_then(|()| import_image(&client, &host, Path::new(image)))
        .and_then(|()| pytest(dir, cached, &host, timeout, keyword, files));
    stop(&mut daemon);
    tested
}

fn daemon_log(dir: &Path) -> Result<(Stdio, Stdio)> {
    let log = fs::File::create(dir.join("daemon.log"))?;
    Ok((log.try_clone()?.into(), log.into()))
}

fn start_berth(binary: &str, dir: &Path, host: &str, cgroup: &str) -> Result<Child> {
    let (out, err) = daemon_log(dir)?;
    Command::new(binary)
        .arg("daemon")
        .arg("--data-root")
        .arg(dir.join("data"))
        .args(["-H", host, "--cgroup-parent", cgroup])
        .env("BERTH_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("starting {binary} daemon"))
}

fn start_dockerd(binary: &str, dir: &Path, host: &str, cgroup: &str) -> Result<Child> {
    // dockerd writes /etc/docker/key.json and would use a containerd it finds in
    // /run/containerd: give it empty ones in this mount namespace.
    for d in ["/etc/docker", "/run/containerd", "/run/docker"] {
        fs::create_dir_all(d)?;
        run(Command::new("mount").args(["-t", "tmpfs", "-o", "mode=755,size=16m", "tmpfs", d]))?;
    }
    let config = dir.join("daemon.json");
    fs::write(&config, "{}\n")?;
    let (out, err) = daemon_log(dir)?;
    Command::new(binary)
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("dockerd.pid"))
        .arg("--config-file")
        .arg(&config)
        .args(["-H", host, "--cgroup-parent", &format!("/{cgroup}")])
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .with_context(|| format!("starting {binary}"))
}

fn wait_for_socket(daemon: &mut Child, socket: &Path, dir: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while UnixStream::connect(socket).is_err() {
        let tail = || {
            let log = fs::read_to_string(dir.join("daemon.log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            lines[lines.len().saturating_sub(20)..].join("\n")
        };
        if let Some(st) = daemon.try_wait()? {
            bail!(
                "the daemon exited with {st} before listening; its log ends:\n{}",
                tail()
            );
        }
        if Instant::now() > deadline {
            bail!(
                "the daemon did not listen on {} in 60 s; its log ends:\n{}",
                socket.display(),
                tail()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}

/// The stand-in under every name the tests use (`client` is `berth` or `docker`: their
/// `import` and `tag` take the same arguments).
fn import_image(client: &str, host: &str, image: &Path) -> Result<()> {
    let mut c = Command::new(client);
    c.args(["-H", host, "import"]);
    for change in IMAGE_CHANGES {
        c.args(["-c", change]);
    }
    c.arg(image).arg(IMAGE_NAMES[0]);
    let id = output(c.stdin(Stdio::null()))?;
    for name in &IMAGE_NAMES[1..] {
        run(Command::new(client).args(["-H", host, "tag", IMAGE_NAMES[0], name]))?;
    }
    eprintln!(
        "xtask: imported the stand-in as {}: {}",
        IMAGE_NAMES.join(", "),
        id.trim()
    );
    Ok(())
}

/// pytest in the sdist's dir, its output echoed and kept in `dir/pytest.log`; pytest's own
/// exit status (tests failed) is not an error, a run killed by the overall timeout is.
fn pytest(
    dir: &Path,
    cached: &Path,
    host: &str,
    timeout: &str,
    keyword: &str,
    files: &[String],
) -> Result<()> {
    let mut c = Command::new("timeout");
    c.args(["--kill-after=10", &RUN_TIMEOUT_SECS.to_string()])
        .arg(cached.join(VENV_PYTHON))
        .args([
            "-m",
            "pytest",
            "-rA",
            "-p",
            "no:cacheprovider",
            "--color=no",
        ])
        .arg(format!("--timeout={timeout}"));
    if !keyword.is_empty() {
        c.args(["-k", keyword]);
    }
    c.args(files)
        .current_dir(source_dir(cached))
        .env("DOCKER_HOST", host)
        .env("DOCKER_TEST_API_VERSION", API_VERSION)
        .env("DOCKER_CONFIG", dir.join("docker-config"))
        // the sdist is in the shared cache: no __pycache__ nor pytest's rewrite cache there
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    eprintln!("$ {}", crate::sys::show(&c));
    let mut child = c.spawn().context("starting pytest")?;
    let mut log = fs::File::create(dir.join("pytest.log"))?;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines() {
            let line = line?;
            eprintln!("{line}");
            writeln!(log, "{line}")?;
        }
    }
    let st = child.wait()?;
    // timeout(1) exits 124 when it had to stop the run
    if st.code() == Some(124) || st.code() == Some(137) {
        bail!("pytest did not finish in {RUN_TIMEOUT_SECS} s");
    }
    Ok(())
}

/// SIGTERM, a grace period, then SIGKILL; whatever the daemon leaves dies with the pid
/// namespace when this process exits.
fn stop(daemon: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &daemon.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = daemon.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = daemon.kill();
    let _ = daemon.wait();
}

/// Remove `parent` and everything below it in every cgroup hierarchy; its processes were in
/// the dead pid namespace, so the directories are empty of tasks.
pub fn remove_cgroups(parent: &str) -> Result<()> {
    let mut dirs = Vec::new();
    if let Ok(rd) = fs::read_dir("/sys/fs/cgroup") {
        for e in rd.flatten() {
            dirs.push(e.path().join(parent));
        }
    }
    dirs.push(Path::new("/sys/fs/cgroup").join(parent));
    let mut failed = Vec::new();
    for d in dirs.iter().filter(|d| d.is_dir()) {
        let mut all = Vec::new();
        collect_dirs(d, &mut all);
        // deepest first
        all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
        for c in all {
            let mut removed = false;
            for _ in 0..50 {
                if fs::remove_dir(&c).is_ok() || !c.exists() {
                    removed = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            if !removed {
                failed.push(c.display().to_string());
            }
        }
    }
    if !failed.is_empty() {
        bail!("could not remove cgroups {}", failed.join(", "));
    }
    Ok(())
}

fn collect_dirs(d: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(rd) = fs::read_dir(d) {
        for e in rd.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                collect_dirs(&e.path(), out);
            }
        }
    }
    out.push(d.to_owned());
}
