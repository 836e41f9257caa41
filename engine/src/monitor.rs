//! The per-container monitor: the berth binary re-executed (`berth monitor DIR`), detached from
//! the daemon so that containers outlive it. It mounts the rootfs, starts the container through
//! the `runtime` crate, holds its stdio, writes the json-file log, serves attach clients on
//! `DIR/attach.sock` (replaying the log from an offset, then live), and records the exit
//! status in `DIR/exit.json` before unmounting and leaving.
//!
//! Protocol on the attach socket: the client sends one JSON line ([`AttachRequest`]); the
//! monitor answers with Docker's multiplexed frames (8-byte header) and closes the connection
//! when the container has exited. With `stdin`, bytes the client sends go to the container's
//! stdin; the client's half-close closes it (for `StdinOnce` containers).

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

/// What the daemon hands the monitor (`DIR/monitor.json`). The daemon builds the spec as
/// JSON; the monitor reads it as the runtime's type at once (one parse of it per start).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MonitorConfig<S = serde_json::Value> {
    pub id: String,
    pub dir: PathBuf,
    pub lowerdirs: Vec<String>,
    pub upperdir: String,
    pub workdir: String,
    pub mount_chdir: Option<String>,
    /// The OCI spec, with `process.user` still to resolve from `user`.
    pub spec: S,
    pub user: String,
    pub runtime_root: PathBuf,
    pub log_path: PathBuf,
    pub open_stdin: bool,
    pub stdin_once: bool,
    /// A pty for the container (`-t`): one raw output stream, no frames.
    #[serde(default)]
    pub tty: bool,
    /// The terminal's size (rows, columns) before the process starts.
    #[serde(default)]
    pub console_size: Option<(u16, u16)>,
    /// `--log-driver`/`--log-opt`: rotation of the json-file log.
    #[serde(default)]
    pub log_opts: crate::logfile::LogOpts,
    /// `--group-add`: more groups for the container's process (names or numbers).
    #[serde(default)]
    pub group_add: Vec<String>,
    /// Mount the root filesystem `volatile`: no flush of the whole upper filesystem at
    /// unmount (hundreds of milliseconds on a busy disk) and fsync a no-op inside. Only
    /// for containers removed when they exit (`--rm`), whose writes are thrown away.
    #[serde(default)]
    pub volatile_rootfs: bool,
    /// A cgroup made ahead for this container's (relative to the cgroup root), which its
    /// runtime takes over (the daemon removes it when the start does not say ok).
    #[serde(default)]
    pub cgroup_ahead: Option<PathBuf>,
    /// The daemon mounted the root filesystem for this start (`Containers::premount`):
    /// the monitor does not, and unmounts it when it ends as its own.
    #[serde(default)]
    pub premounted: bool,
}

impl<S> MonitorConfig<S> {
    /// The root filesystem's overlay, as the daemon's image store described it.
    pub fn overlay(&self) -> image_store::layers::OverlayMount {
        image_store::layers::OverlayMount {
            lowerdirs: self.lowerdirs.iter().map(PathBuf::from).collect(),
            upperdir: PathBuf::from(&self.upperdir),
            workdir: PathBuf::from(&self.workdir),
            chdir: self.mount_chdir.as_ref().map(PathBuf::from),
        }
    }
}

/// The first line an attach client sends.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AttachRequest {
    /// Replay the log from this byte offset before streaming live output.
    pub replay_from: Option<u64>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Only resize the container's terminal to (rows, columns), then close.
    #[serde(default)]
    pub resize: Option<(u16, u16)>,
}

/// `DIR/exit.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ExitStatus {
    pub code: i32,
    pub finished_at: String,
    #[serde(default)]
    pub error: String,
    /// The OOM killer killed a process of the container (its memory limit was hit).
    #[serde(default)]
    pub oom_killed: bool,
}

pub fn rootfs(dir: &Path) -> PathBuf {
    dir.join("rootfs")
}
pub fn attach_socket(dir: &Path) -> PathBuf {
    dir.join("attach.sock")
}

/// A unix socket path can hold only 107 bytes; a container directory under a deep data root
/// does not fit. Reach the socket through a descriptor of its directory instead:
/// `/proc/self/fd/N/attach.sock` is short whatever the directory's path.
pub struct ShortPath {
    _dir: OwnedFd,
    pub path: PathBuf,
}

pub fn short_socket_path(dir: &Path) -> io::Result<ShortPath> {
    use std::os::fd::AsRawFd;
    let fd = rustix::fs::open(
        dir,
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let path = PathBuf::from(format!("/proc/self/fd/{}/attach.sock", fd.as_raw_fd()));
    Ok(ShortPath { _dir: fd, path })
}

/// Connect to a monitor's attach socket (blocking).
pub fn connect(dir: &Path) -> io::Result<UnixStream> {
    let p = short_socket_path(dir)?;
    UnixStream::connect(&p.path)
}

/// The byte a monitor sends first to an attach request it took on: from then on the client
/// gets the replay and every later output of the run. A connection closed before it (one
/// that came as the monitor was ending) got nothing: the output is in the log.
const ACCEPTED: u8 = b'+';

/// Connect to a container's monitor from async code and send the attach request. Fails
/// unless the monitor took the request on (see [`ACCEPTED`]).
pub async fn attach(dir: &Path, req: &AttachRequest) -> io::Result<tokio::net::UnixStream> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let s = connect(dir)?;
    s.set_nonblocking(true)?;
    let mut mon = tokio::net::UnixStream::from_std(s)?;
    let line = format!(
        "{}\n",
        serde_json::to_string(req).map_err(io::Error::other)?
    );
    mon.write_all(line.as_bytes()).await?;
    let mut ack = [0u8; 1];
    mon.read_exact(&mut ack).await?;
    if ack[0] != ACCEPTED {
        return Err(io::Error::other(
            "the monitor did not take the attach request",
        ));
    }
    Ok(mon)
}
pub fn exit_file(dir: &Path) -> PathBuf {
    dir.join("exit.json")
}

pub fn now() -> String {
    image_store::import::go_rfc3339_nano(chrono::Utc::now())
}

pub use crate::frames::frame;

struct Client {
    sock: UnixStream,
    stdout: bool,
    stderr: bool,
    /// Its entry in [`Cutoff`].
    key: u64,
}

/// The output clients' sockets again, outside [`Shared`] (a pump blocked writing to a client
/// that does not read holds that lock): what cuts them off when they hold up the end.
#[derive(Default)]
struct Cutoff(Mutex<std::collections::HashMap<u64, UnixStream>>);

impl Cutoff {
    fn add(&self, sock: &UnixStream) -> u64 {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let key = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if let Ok(c) = sock.try_clone() {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key, c);
        }
        key
    }

    fn remove(&self, key: u64) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&key);
    }

    fn cut_all(&self) {
        for c in self.0.lock().unwrap_or_else(|p| p.into_inner()).values() {
            let _ = c.shutdown(std::net::Shutdown::Both);
        }
    }
}

/// The log file and the live clients, under one lock so that replay + register is atomic
/// with respect to new output.
struct Shared {
    log: crate::logfile::LogWriter,
    clients: Vec<Client>,
    /// A TTY container: clients get raw bytes, not frames.
    raw: bool,
    /// The container has exited and its output is all out: a client that comes now gets
    /// its replay and the end of the stream at once (not when this process exits).
    ended: bool,
    /// Output sent to the clients but not yet in the log: the start of a line (stdout,
    /// stderr), logged when it ends. A client that comes meanwhile gets it after the log's
    /// replay, or it would miss it (`cat` of a file without a final newline).
    partial: [Vec<u8>; 2],
}

/// Entry point of `berth monitor DIR` (stage 1): start stage 2 detached, report its status
/// line to the daemon on stdout, exit.
/// A monitor process waiting for its container (see [`spare`]).
#[derive(Debug)]
pub struct Spare {
    pub pid: i32,
    stdin: std::process::ChildStdin,
    stdout: BufReader<std::process::ChildStdout>,
}

impl Spare {
    /// Start one from `exe` (`sealed`: `exe` is already unwritable, see [`readonly_exe`]).
    pub fn spawn(exe: &Path, sealed: bool) -> io::Result<Spare> {
        let mut cmd = std::process::Command::new(exe);
        cmd.args(["monitor", "--spare"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null());
        if sealed {
            cmd.env(runtime::exeseal::MARK, "1");
        }
        let mut child = cmd.spawn()?;
        // the pipes first: `wait` would close stdin
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(io::Error::other("no pipes to the spare monitor"));
        };
        let _ = child.wait(); // the intermediate of the double fork
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout.read_line(&mut line)?;
        let pid = line
            .trim()
            .strip_prefix("pid ")
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| io::Error::other(format!("spare monitor said {line:?}")))?;
        Ok(Spare { pid, stdin, stdout })
    }

    /// Hand it the container in `dir`; returns its status line (`ok PID MPID` or `err ...`).
    pub fn take(mut self, dir: &Path) -> io::Result<String> {
        let mut path = dir.as_os_str().as_encoded_bytes().to_vec();
        path.push(b'\n');
        self.stdin.write_all(&path)?;
        let mut line = String::new();
        self.stdout.read_line(&mut line)?;
        Ok(line)
    }
}

/// A read-only bind mount of our own executable at `DIR/berth.exe`, remade at each daemon
/// start (so a new binary is picked up): monitors run from it, so the container's init,
/// forked from a monitor, can never write the binary through `/proc/<pid>/exe`
/// (CVE-2019-5736), and no monitor has to re-execute itself from a copy first (each exec
/// of berth costs milliseconds). `None` where we may not mount: monitors then seal
/// themselves.
pub fn readonly_exe(dir: &Path) -> Option<PathBuf> {
    use rustix::mount::{mount_bind, mount_remount, unmount, MountFlags, UnmountFlags};
    let path = dir.join("berth.exe");
    while unmount(&path, UnmountFlags::DETACH).is_ok() {}
    let _ = std::fs::remove_file(&path);
    std::fs::File::create(&path).ok()?;
    let made = mount_bind("/proc/self/exe", &path).and_then(|()| {
        mount_remount(
            &path,
            MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV,
            "",
        )
    });
    let ro = made.is_ok()
        && rustix::fs::statvfs(&path)
            .is_ok_and(|v| v.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY));
    if !ro {
        let _ = unmount(&path, UnmountFlags::DETACH);
        let _ = std::fs::remove_file(&path);
        return None;
    }
    Some(path)
}

/// The page record this spare found none of: saved once its container started (see
/// [`runtime::sys::PageRecord`]).
static TO_RECORD: std::sync::OnceLock<Option<runtime::sys::PageRecord>> =
    std::sync::OnceLock::new();

/// `berth monitor --spare`: a monitor started before it is needed (one exec of the berth
/// binary costs milliseconds, now out of the container's start). It says its pid, waits for
/// a container directory on stdin, then is that container's monitor, its stderr going to
/// `DIR/monitor.log`. EOF on stdin (the daemon went away): it exits.
pub fn spare() -> i32 {
    if let Err(e) = runtime::sys::detach_self() {
        report(&format!("err detaching the monitor: {e}"));
        return 1;
    }
    report(&format!("pid {}", std::process::id()));
    // While we wait: the code, heap and stack the start will touch (~0.3 ms of its faults);
    // the code as the first monitor of this binary recorded it, or we record it.
    let record = runtime::sys::PageRecord::for_exe();
    if !runtime::sys::prefault(1 << 20, 128 << 10, record.as_ref()) {
        let _ = TO_RECORD.set(record);
    }
    let mut line = String::new();
    match io::stdin().read_line(&mut line) {
        Ok(n) if n > 0 && line.ends_with('\n') => {}
        _ => return 0,
    }
    runtime::trace::mark("m took");
    let dir = PathBuf::from(line.trim_end_matches('\n'));
    let redirected = File::open("/dev/null").and_then(|null| {
        rustix::stdio::dup2_stdin(&null)?;
        let log = File::create(dir.join("monitor.log"))?;
        rustix::stdio::dup2_stderr(&log)?;
        Ok(())
    });
    if let Err(e) = redirected {
        report(&format!("err preparing the monitor: {e}"));
        return 1;
    }
    monitor(&dir)
}

/// Stage 2: the monitor proper.
pub fn stage2(dir: &Path) -> i32 {
    if let Err(e) = runtime::sys::detach_self() {
        report(&format!("err detaching the monitor: {e}"));
        return 1;
    }
    // first our pid, so the daemon can reap us however the start ends
    report(&format!("pid {}", std::process::id()));
    monitor(dir)
}

fn monitor(dir: &Path) -> i32 {
    let cfg: MonitorConfig<Spec> = match std::fs::read(dir.join("monitor.json"))
        .map_err(|e| e.to_string())
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| e.to_string()))
    {
        Ok(c) => c,
        Err(e) => {
            report(&format!("err reading monitor.json: {e}"));
            return 1;
        }
    };
    match run(&cfg) {
        Ok(()) => 0,
        Err(e) => {
            report(&format!("err {e}"));
            eprintln!("monitor {}: {e}", cfg.id);
            1
        }
    }
}

fn report(line: &str) {
    let mut out = io::stdout();
    let _ = writeln!(out, "{}", line.replace('\n', " "));
    let _ = out.flush();
}

fn mount_rootfs(cfg: &MonitorConfig<Spec>) -> Result<PathBuf, String> {
    let target = rootfs(&cfg.dir);
    if !cfg.premounted {
        RootOverlay {
            overlay: &cfg.overlay(),
            volatile: cfg.volatile_rootfs,
        }
        .mount(&target)?;
    }
    let _ = std::env::set_current_dir("/");
    Ok(target)
}

/// The overlay that is a container's root filesystem.
pub struct RootOverlay<'a> {
    /// With `chdir`, the mount is made from that directory (this process's working directory
    /// changes meanwhile: not for a multi-threaded caller).
    pub overlay: &'a image_store::layers::OverlayMount,
    /// See [`MonitorConfig::volatile_rootfs`].
    pub volatile: bool,
}

impl RootOverlay<'_> {
    /// Mount it at `target` (by the monitor, or by the daemon ahead of the monitor: see
    /// `Containers::premount`).
    pub fn mount(&self, target: &Path) -> Result<(), String> {
        std::fs::create_dir_all(target).map_err(|e| format!("create {}: {e}", target.display()))?;
        let opts = self.overlay.options();
        let chdir = self.overlay.chdir.as_deref();
        if let Some(d) = chdir {
            std::env::set_current_dir(d).map_err(|e| format!("chdir {}: {e}", d.display()))?;
        }
        let mount = |opts: String| {
            let data = std::ffi::CString::new(opts).map_err(|e| e.to_string())?;
            rustix::mount::mount(
                "overlay",
                target,
                "overlay",
                rustix::mount::MountFlags::empty(),
                data.as_c_str(),
            )
            .map_err(|e| format!("mounting the container's root filesystem: {e}"))
        };
        if self.volatile {
            // A volatile mount leaves this mark, and overlayfs refuses to mount the upper
            // dir again while it is there (a started again --rm container): its writes are
            // ours to throw away, so the mark goes.
            let _ = std::fs::remove_dir_all(self.overlay.workdir.join("work/incompat"));
        }
        // a kernel before 5.10 knows no `volatile`: then as any other container
        let volatile = self.volatile && mount(format!("{opts},volatile")).is_ok();
        let mounted = if volatile { Ok(()) } else { mount(opts) };
        if chdir.is_some() {
            let _ = std::env::set_current_dir("/");
        }
        mounted
    }
}

/// Whether something is mounted at `path` (its device is not its parent's).
pub fn is_mounted(path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    let parent = path.parent().unwrap_or(Path::new("/"));
    match (std::fs::metadata(path), std::fs::metadata(parent)) {
        (Ok(m), Ok(p)) => m.dev() != p.dev(),
        _ => false,
    }
}

fn unmount(target: &Path) {
    let _ = rustix::mount::unmount(target, rustix::mount::UnmountFlags::DETACH);
}

fn pipe() -> Result<(OwnedFd, OwnedFd), String> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| format!("pipe: {e}"))
}

fn run(cfg: &MonitorConfig<Spec>) -> Result<(), String> {
    runtime::trace::mark("m config read");
    let root = mount_rootfs(cfg)?;
    runtime::trace::mark("m mounted");
    let result = run_mounted(cfg, &root);
    unmount(&root);
    result
}

fn run_mounted(cfg: &MonitorConfig<Spec>, root: &Path) -> Result<(), String> {
    let (uid, gid, mut groups) = crate::containers::user::resolve(root, &cfg.user)?;
    crate::containers::user::add_groups(root, &cfg.group_add, &mut groups)?;
    let mut spec = cfg.spec.clone();
    let process = spec
        .process_mut()
        .as_mut()
        .ok_or("the container's spec has no process")?;
    let mut user = oci_spec::runtime::User::default();
    user.set_uid(uid);
    user.set_gid(gid);
    user.set_additional_gids(Some(groups));
    process.set_user(user);
    if let (true, Some((h, w))) = (cfg.tty, cfg.console_size) {
        let size = oci_spec::runtime::BoxBuilder::default()
            .height(u64::from(h))
            .width(u64::from(w))
            .build()
            .map_err(|e| e.to_string())?;
        process.set_console_size(Some(size));
    }
    spec.root_mut()
        .as_mut()
        .ok_or("the container's spec has no root")?
        .set_path(root.to_path_buf());
    // (for the runtime's later readers: an exec, the hooks at delete)
    let bundle = cfg.dir.join("bundle");
    std::fs::create_dir_all(&bundle).map_err(|e| e.to_string())?;
    std::fs::write(
        bundle.join("config.json"),
        serde_json::to_vec(&spec).map_err(|e| e.to_string())?,
    )
    .map_err(|e| format!("write config.json: {e}"))?;

    let mut opts = runtime::CreateOpts::new(&cfg.runtime_root);
    opts.cgroup_ahead = cfg.cgroup_ahead.clone();
    let null = || crate::tty::dev_null().map_err(|e| format!("open /dev/null: {e}"));
    let console = if cfg.tty {
        let (sock, stdio) = crate::tty::ConsoleSocket::bind_for_runtime()
            .map_err(|e| format!("console socket: {e}"))?;
        opts.console_socket = Some(sock.path.clone());
        opts.stdio = stdio;
        Some(sock)
    } else {
        None
    };
    let mut pipes = None;
    if console.is_none() {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (stdin_child, stdin_ours) = if cfg.open_stdin {
            let (r, w) = pipe()?;
            (r, Some(w))
        } else {
            (null()?, None)
        };
        opts.stdio = runtime::Stdio {
            stdin: Some(stdin_child),
            stdout: Some(out_w),
            stderr: Some(err_w),
        };
        pipes = Some(Pipes {
            out_r,
            err_r: Some(err_r),
            stdin: stdin_ours,
            tty: None,
        });
    }
    let _ = std::fs::remove_dir_all(cfg.runtime_root.join(&cfg.id));
    runtime::trace::mark("m create");
    // Without a terminal it starts at once: the pipes keep what it writes until we pump,
    // even after it exited. A pty does not (its output is gone once the last slave closes):
    // then the program waits on the runtime's start until we hold the master.
    let gated = console.is_some();
    let mut container = if gated {
        runtime::Container::create_from(&cfg.id, &bundle, spec, opts)
    } else {
        runtime::Container::create_started_from(&cfg.id, &bundle, spec, opts)
    }
    .map_err(|e| e.to_string())?;
    if let Some(sock) = &console {
        // The runtime sent the pty master during create.
        let got = sock
            .receive(std::time::Duration::from_secs(5))
            .and_then(|m| Ok((m.try_clone()?, m.try_clone()?, m)));
        match got {
            Ok((out, input, master)) => {
                pipes = Some(Pipes {
                    out_r: out,
                    err_r: None,
                    stdin: cfg.open_stdin.then_some(input),
                    tty: Some(Arc::new(master)),
                })
            }
            Err(e) => {
                let _ = container.delete(true);
                return Err(format!("receiving the container's terminal: {e}"));
            }
        }
    }
    drop(console);
    let Some(pipes) = pipes else {
        let _ = container.delete(true);
        return Err("internal: no stdio for the container".into());
    };
    if gated {
        if let Err(e) = container.start() {
            let _ = container.delete(true);
            return Err(e.to_string());
        }
    }
    runtime::trace::mark("m started");
    let served = serve(cfg, &mut container, pipes);
    if served.is_err() {
        let _ = container.kill_all(runtime::Signal::SIGKILL);
        let _ = container.wait();
    }
    let deleted = container.delete(true).map_err(|e| e.to_string());
    runtime::trace::mark("m deleted");
    served.and(deleted)
}

/// Our ends of the container's stdio: pipes, or the pty master (output on `out_r`, no
/// stderr, input on `stdin`).
struct Pipes {
    out_r: OwnedFd,
    err_r: Option<OwnedFd>,
    stdin: Option<OwnedFd>,
    tty: Option<Arc<OwnedFd>>,
}

/// Log, attach and wait for a started container; returns when it has exited.
fn serve(
    cfg: &MonitorConfig<Spec>,
    container: &mut runtime::Container,
    stdio: Pipes,
) -> Result<(), String> {
    let Pipes {
        out_r,
        err_r,
        stdin: stdin_ours,
        tty,
    } = stdio;
    let raw = tty.is_some();
    let log = crate::logfile::LogWriter::open(&cfg.log_path, cfg.log_opts.clone())
        .map_err(|e| format!("open log {}: {e}", cfg.log_path.display()))?;
    let shared = Arc::new(Mutex::new(Shared {
        log,
        clients: Vec::new(),
        raw,
        ended: false,
        partial: Default::default(),
    }));
    let stdin = Arc::new(Mutex::new(stdin_ours.map(File::from)));

    let sock_path = attach_socket(&cfg.dir);
    let _ = std::fs::remove_file(&sock_path);
    let short =
        short_socket_path(&cfg.dir).map_err(|e| format!("open {}: {e}", cfg.dir.display()))?;
    let listener = UnixListener::bind(&short.path)
        .map_err(|e| format!("bind {}: {e}", sock_path.display()))?;
    report(&format!("ok {} {}", container.pid(), std::process::id()));
    // what the spare faulted in for the start need not stay in a monitor's heap for the
    // container's life; the code a start touches, recorded once per binary
    runtime::sys::prefault_done();
    if let Some(Some(record)) = TO_RECORD.get() {
        let _ = record.save();
    }

    // Clients being served: the monitor does not exit under one (it would lose its replay).
    let serving = Arc::new(crate::inflight::InFlight::default());
    let cutoff = Arc::new(Cutoff::default());
    let backlog = listener.try_clone().ok();
    let serve_conn = {
        let shared = shared.clone();
        let stdin = stdin.clone();
        let log_path = cfg.log_path.clone();
        let stdin_once = cfg.stdin_once;
        let tty = tty.clone();
        let serving = serving.clone();
        let cutoff = cutoff.clone();
        move |conn: UnixStream| {
            let (shared, stdin, log_path, tty) =
                (shared.clone(), stdin.clone(), log_path.clone(), tty.clone());
            let cutoff = cutoff.clone();
            let served = serving.hold();
            std::thread::spawn(move || {
                // a client that sends no request in time is not waited for
                let _ = conn.set_read_timeout(Some(std::time::Duration::from_secs(2)));
                let io = ClientIo {
                    shared: &shared,
                    cutoff: &cutoff,
                    stdin: &stdin,
                };
                serve_client(conn, io, &log_path, stdin_once, tty.as_deref());
                drop(served);
            });
        }
    };
    {
        let serve_conn = serve_conn.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                serve_conn(conn);
            }
        });
    }
    let (pumped, pumps_done) = std::sync::mpsc::channel::<()>();
    let pumps: Vec<_> = std::iter::once((out_r, 1u8))
        .chain(err_r.map(|e| (e, 2u8)))
        .map(|(fd, stream)| {
            let (shared, cutoff, pumped) = (shared.clone(), cutoff.clone(), pumped.clone());
            std::thread::spawn(move || {
                pump(File::from(fd), stream, &shared, &cutoff);
                let _ = pumped.send(());
            })
        })
        .collect();
    drop(pumped);
    let code = container.wait().map_err(|e| e.to_string())?;
    let oom_killed = container.oom_kills() > 0;
    runtime::trace::mark("m reaped");
    // An attached client that reads slowly holds the output back (as with dockerd); one that
    // stopped reading must not keep an ended container from being reported: what the
    // container wrote last gets a while to reach it, then it is cut off.
    let grace = std::time::Instant::now() + std::time::Duration::from_secs(2);
    for _ in 0..pumps.len() {
        let wait = grace.saturating_duration_since(std::time::Instant::now());
        if pumps_done.recv_timeout(wait).is_err() {
            cutoff.cut_all();
            break;
        }
    }
    for p in pumps {
        let _ = p.join();
    }
    let status = ExitStatus {
        code,
        finished_at: now(),
        error: String::new(),
        oom_killed,
    };
    let tmp = cfg.dir.join("exit.json.tmp");
    let _ = std::fs::write(&tmp, serde_json::to_vec(&status).unwrap_or_default());
    let _ = std::fs::rename(&tmp, exit_file(&cfg.dir));
    runtime::trace::mark("m exit written");
    {
        let mut sh = shared.lock().unwrap_or_else(|p| p.into_inner());
        sh.ended = true;
        for c in sh.clients.drain(..) {
            let _ = c.sock.shutdown(std::net::Shutdown::Both);
        }
    }
    let _ = std::fs::remove_file(&sock_path);
    // Nobody can connect any more; whoever did and waits in the backlog still gets this
    // run's output (an attach that came just as the container ended), and so does whoever
    // is being served, before we go.
    if let Some(l) = backlog {
        if l.set_nonblocking(true).is_ok() {
            while let Ok((conn, _)) = l.accept() {
                let _ = conn.set_nonblocking(false);
                serve_conn(conn);
            }
        }
    }
    serving.wait_idle(std::time::Duration::from_secs(3));
    runtime::trace::mark("m clients closed");
    Ok(())
}

/// Copy one output stream of the container into the log and to every attached client.
fn pump(mut src: File, stream: u8, shared: &Mutex<Shared>, cutoff: &Cutoff) {
    let name = if stream == 1 { "stdout" } else { "stderr" };
    let slot = usize::from(stream != 1);
    let mut buf = vec![0u8; 32 << 10];
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let chunk = &buf[..n];
        let mut sh = shared.lock().unwrap_or_else(|p| p.into_inner());
        let sh = &mut *sh;
        // json-file: one entry per line (a long line is cut at 16 KiB, as Docker does)
        let partial = &mut sh.partial[slot];
        partial.extend_from_slice(chunk);
        while let Some(i) = partial
            .iter()
            .position(|&b| b == b'\n')
            .or((partial.len() >= 16 << 10).then_some((16 << 10) - 1))
        {
            let line: Vec<u8> = partial.drain(..=i).collect();
            sh.log.write_entry(&line, name);
        }
        let f = if sh.raw {
            chunk.to_vec()
        } else {
            frame(stream, chunk)
        };
        sh.clients.retain_mut(|c| {
            let wanted = if stream == 1 { c.stdout } else { c.stderr };
            let keep = !wanted || c.sock.write_all(&f).is_ok();
            if !keep {
                cutoff.remove(c.key);
            }
            keep
        });
    }
    runtime::trace::mark("m pump eof");
    let mut sh = shared.lock().unwrap_or_else(|p| p.into_inner());
    let rest = std::mem::take(&mut sh.partial[slot]);
    if !rest.is_empty() {
        sh.log.write_entry(&rest, name);
    }
}

/// What a client's thread shares with the rest of the monitor.
#[derive(Clone, Copy)]
struct ClientIo<'a> {
    shared: &'a Mutex<Shared>,
    cutoff: &'a Cutoff,
    stdin: &'a Mutex<Option<File>>,
}

fn serve_client(
    conn: UnixStream,
    io: ClientIo<'_>,
    log_path: &Path,
    stdin_once: bool,
    tty: Option<&OwnedFd>,
) {
    let mut reader = BufReader::new(match conn.try_clone() {
        Ok(c) => c,
        Err(_) => return,
    });
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    // the request came: input from here on may pause as long as it likes
    let _ = conn.set_read_timeout(None);
    let req: AttachRequest = serde_json::from_str(line.trim()).unwrap_or_default();
    if let Some((rows, cols)) = req.resize {
        let res = match tty {
            Some(m) => crate::tty::resize(m, rows, cols).map_err(|e| e.to_string()),
            None => Err("the container has no terminal".to_owned()),
        };
        let mut conn = conn;
        let _ = writeln!(conn, "{}", res.err().unwrap_or_default());
        return;
    }
    {
        let mut sh = io.shared.lock().unwrap_or_else(|p| p.into_inner());
        let mut sock = match conn.try_clone() {
            Ok(s) => s,
            Err(_) => return,
        };
        if sock.write_all(&[ACCEPTED]).is_err() {
            return;
        }
        if let Some(off) = req.replay_from {
            if replay(log_path, off, &req, &sh, &mut sock).is_err() {
                return;
            }
        }
        if sh.ended {
            let _ = sock.shutdown(std::net::Shutdown::Both);
            return;
        }
        let key = io.cutoff.add(&sock);
        sh.clients.push(Client {
            sock,
            stdout: req.stdout,
            stderr: req.stderr,
            key,
        });
    }
    if req.stdin {
        // Bytes after the request line are the container's stdin.
        let mut buf = vec![0u8; 32 << 10];
        let pending = reader.buffer().to_vec();
        let write = |data: &[u8]| -> bool {
            let mut s = io.stdin.lock().unwrap_or_else(|p| p.into_inner());
            match s.as_mut() {
                Some(f) => f.write_all(data).is_ok(),
                None => false,
            }
        };
        if !pending.is_empty() && !write(&pending) {
            return;
        }
        let mut raw = reader.into_inner();
        loop {
            match raw.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !write(&buf[..n]) {
                        break;
                    }
                }
            }
        }
        // as dockerd: a terminal's input outlives its clients (they detach)
        if stdin_once && tty.is_none() {
            io.stdin.lock().unwrap_or_else(|p| p.into_inner()).take();
        }
    }
}

/// Send what this client missed: the log's entries from byte `off`, then what was sent
/// before it came and the log does not hold yet (each stream's unfinished line).
fn replay(
    log_path: &Path,
    off: u64,
    req: &AttachRequest,
    sh: &Shared,
    sock: &mut UnixStream,
) -> io::Result<()> {
    use std::io::Seek;
    let mut send = |stream: u8, data: &[u8]| -> io::Result<()> {
        let wanted = if stream == 2 { req.stderr } else { req.stdout };
        if !wanted || data.is_empty() {
            return Ok(());
        }
        if sh.raw {
            sock.write_all(data)
        } else {
            sock.write_all(&frame(stream, data))
        }
    };
    let mut f = File::open(log_path)?;
    // rotated since the run began: what is in the live file is all there is to send
    let off = if f.metadata()?.len() < off { 0 } else { off };
    f.seek(io::SeekFrom::Start(off))?;
    for line in BufReader::new(f).lines() {
        let line = line?;
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
            continue;
        };
        let stream = if v["stream"] == "stderr" { 2 } else { 1 };
        send(stream, v["log"].as_str().unwrap_or("").as_bytes())?;
    }
    send(1, &sh.partial[0])?;
    send(2, &sh.partial[1])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A monitor that accepts a connection as it ends and closes it unanswered: the attach
    /// fails (its caller reads the log) instead of relaying an empty stream.
    #[tokio::test]
    async fn an_attach_the_monitor_never_took_fails() {
        let dir = tempfile::tempdir().unwrap();
        let listener = std::os::unix::net::UnixListener::bind(attach_socket(dir.path())).unwrap();
        let closer = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            drop(conn);
        });
        let req = AttachRequest {
            replay_from: Some(0),
            stdout: true,
            ..Default::default()
        };
        assert!(attach(dir.path(), &req).await.is_err());
        closer.join().unwrap();
    }

    /// One it took: the stream follows the acknowledgement.
    #[tokio::test]
    async fn an_attach_the_monitor_took_gets_the_stream() {
        use tokio::io::AsyncReadExt;
        let dir = tempfile::tempdir().unwrap();
        let listener = std::os::unix::net::UnixListener::bind(attach_socket(dir.path())).unwrap();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut line = String::new();
            BufReader::new(conn.try_clone().unwrap())
                .read_line(&mut line)
                .unwrap();
            let req: AttachRequest = serde_json::from_str(line.trim()).unwrap();
            assert!(req.stdout);
            conn.write_all(&[ACCEPTED]).unwrap();
            conn.write_all(&frame(1, b"amd64\n")).unwrap();
        });
        let req = AttachRequest {
            stdout: true,
            ..Default::default()
        };
        let mut mon = attach(dir.path(), &req).await.unwrap();
        let mut got = Vec::new();
        mon.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, frame(1, b"amd64\n"));
        server.join().unwrap();
    }
}
