//! Creating the container's processes, youki-style: the caller (main) forks an
//! **intermediate** that joins the cgroup, enters or creates the namespaces, and clones the
//! **init** with `CLONE_PARENT`, so init is main's child (main can wait for it) and is pid 1
//! of a new pid namespace. Init sets the container up and reports `Ready`; it then waits on
//! the exec fifo for `start` and execs. All three talk over one [`channel`](crate::channel).

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::channel::{self, Channel, ChannelError, Msg};
use crate::plan::{IdMap, NsKind, NsStep, Plan};
use crate::syscall::linux::LinuxSyscall;
use crate::syscall::Syscall;

/// File descriptors to install as the container process's stdin, stdout and stderr.
/// `None` keeps the caller's.
#[derive(Debug, Default)]
pub struct Stdio {
    pub stdin: Option<OwnedFd>,
    pub stdout: Option<OwnedFd>,
    pub stderr: Option<OwnedFd>,
}

#[derive(Debug, thiserror::Error)]
pub enum SpawnError {
    #[error(transparent)]
    Channel(#[from] ChannelError),
    #[error("fork: {0}")]
    Fork(nix::errno::Errno),
    #[error("opening the exec fifo {path}: {source}")]
    Fifo {
        path: std::path::PathBuf,
        source: nix::errno::Errno,
    },
    #[error("joining the cgroup: {0}")]
    Cgroup(String),
    #[error("writing the id map of pid {pid}: {source}")]
    IdMap { pid: i32, source: std::io::Error },
    #[error("container setup failed: {0}")]
    Setup(String),
    #[error("unexpected message during setup: {0:?}")]
    Protocol(Msg),
}

/// What init needs besides the plan.
pub struct SpawnOpts<'a> {
    pub plan: &'a Plan,
    /// The fifo `start` opens; `None` execs without waiting (used by `run`).
    pub exec_fifo: Option<&'a Path>,
    pub stdio: Stdio,
    pub seccomp: Option<&'a crate::seccomp::Program>,
    pub console_socket: Option<&'a Path>,
    /// `exec` into a running container: only join namespaces and set the process up.
    pub exec: bool,
    pub hooks: Option<&'a oci_spec::runtime::Hooks>,
    /// Pass fds 3 .. 3+N of the caller on to the container process (runc --preserve-fds).
    pub preserve_fds: u32,
    /// The OCI state JSON given to hooks, for an init pid.
    pub hook_state: &'a dyn Fn(i32) -> Vec<u8>,
    /// Files the intermediate writes "0" into to join the cgroup itself (v1 `tasks`,
    /// see `Cgroup::self_join_files`), before any namespace exists.
    pub self_join: &'a [std::path::PathBuf],
}

impl std::fmt::Debug for SpawnOpts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpawnOpts")
            .field("exec_fifo", &self.exec_fifo)
            .field("console_socket", &self.console_socket)
            .field("exec", &self.exec)
            .finish_non_exhaustive()
    }
}

impl SpawnOpts<'_> {
    fn init_hooks(&self) -> bool {
        self.hooks.is_some_and(|h| {
            [
                h.create_runtime(),
                h.prestart(),
                h.create_container(),
                h.start_container(),
            ]
            .iter()
            .any(|l| l.as_ref().is_some_and(|l| !l.is_empty()))
        })
    }
}

/// Create the container's init process and return its pid once it is set up and waiting.
/// `join_cgroup` is called with the intermediate's pid before any namespace exists (then
/// the intermediate writes `opts.self_join`).
pub fn spawn(
    opts: SpawnOpts<'_>,
    join_cgroup: &mut dyn FnMut(i32) -> Result<(), String>,
) -> Result<Spawned, SpawnError> {
    let (mut main_ch, child_ch) = channel::pair()?;
    let fifo = match opts.exec_fifo {
        Some(p) => Some(
            nix::fcntl::open(p, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).map_err(
                |source| SpawnError::Fifo {
                    path: p.to_path_buf(),
                    source,
                },
            )?,
        ),
        None => None,
    };
    // Connect to the console socket here, in the caller's mount namespace: an exec's init
    // has entered the container's by the time it needs the socket.
    let console = match opts.console_socket {
        Some(p) => Some(crate::tty::connect(p).map_err(|e| SpawnError::Setup(e.to_string()))?),
        None => None,
    };
    let mut keep: Vec<i32> = [&opts.stdio.stdin, &opts.stdio.stdout, &opts.stdio.stderr]
        .into_iter()
        .flatten()
        .map(|f| f.as_raw_fd())
        .chain(fifo.as_ref().map(|f| f.as_raw_fd()))
        .chain(console.as_ref().map(|c| c.as_raw_fd()))
        .chain(Some(child_ch.as_raw_fd()))
        .collect();
    keep.extend((0..opts.preserve_fds).map(|i| 3 + i as i32));
    keep.extend(crate::trace::raw_fd());
    let pid = crate::sys::fork().map_err(SpawnError::Fork)?;
    if pid == 0 {
        drop(main_ch);
        if let Err(e) = crate::sys::close_all_except(&keep) {
            let mut ch = child_ch;
            let _ = ch.send(&Msg::Error(format!("close_range: {e}")));
            crate::sys::exit_now(1);
        }
        let mut ch = child_ch;
        let err = match intermediate(&mut ch, opts, fifo, console) {
            Ok(never) => match never {},
            Err(e) => e,
        };
        let _ = ch.send(&Msg::Error(err));
        crate::sys::exit_now(1);
    }
    drop(child_ch);
    drop(fifo);
    let inter = Pid::from_raw(pid);
    let mut init_pid = None;
    let mut mount_ns = None;
    let result = drive(
        &mut main_ch,
        pid,
        &opts,
        join_cgroup,
        &mut init_pid,
        &mut mount_ns,
    );
    if result.is_err() {
        let _ = nix::sys::signal::kill(inter, nix::sys::signal::Signal::SIGKILL);
        if let Some(p) = init_pid {
            let _ = nix::sys::signal::kill(Pid::from_raw(p), nix::sys::signal::Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(p), None);
        }
    }
    let _ = waitpid(inter, None);
    result.map(|pid| Spawned { pid, mount_ns })
}

/// A spawned init.
#[derive(Debug)]
pub struct Spawned {
    pub pid: i32,
    /// Its mount namespace, opened as soon as its pid was known (before it could have run
    /// its program and ended): none for an exec (it joined the container's).
    pub mount_ns: Option<std::fs::File>,
}

/// The intermediate said the init's pid: keep it, and (but for an exec) hold its mount
/// namespace while it is surely alive, setting up (see `Container::mount_namespace`).
fn init_known(
    pid: i32,
    opts: &SpawnOpts<'_>,
    init_pid: &mut Option<i32>,
    mount_ns: &mut Option<std::fs::File>,
) {
    *init_pid = Some(pid);
    if !opts.exec {
        *mount_ns = std::fs::File::open(format!("/proc/{pid}/ns/mnt")).ok();
    }
}

fn drive(
    ch: &mut Channel,
    inter: i32,
    opts: &SpawnOpts<'_>,
    join_cgroup: &mut dyn FnMut(i32) -> Result<(), String>,
    init_pid: &mut Option<i32>,
    mount_ns: &mut Option<std::fs::File>,
) -> Result<i32, SpawnError> {
    crate::trace::mark("r forked");
    join_cgroup(inter).map_err(SpawnError::Cgroup)?;
    crate::trace::mark("r cgroup joined");
    if let Err(e) = ch.send(&Msg::Proceed) {
        // It failed meanwhile (a namespace it opens or makes before the cgroup): its
        // reason waits in the channel.
        return Err(match ch.recv() {
            Ok(Msg::Error(reason)) => SpawnError::Setup(reason),
            _ => e.into(),
        });
    }
    loop {
        match ch.recv()? {
            Msg::MapIds(pid) => {
                write_id_maps(pid, &opts.plan.uid_map, &opts.plan.gid_map)?;
                ch.send(&Msg::Proceed)?;
            }
            Msg::InitPid(pid) => init_known(pid, opts, init_pid, mount_ns),
            Msg::Hooks => {
                // The init may ask before the intermediate reported its pid.
                let pid = match *init_pid {
                    Some(p) => p,
                    None => match ch.recv()? {
                        Msg::InitPid(p) => {
                            init_known(p, opts, init_pid, mount_ns);
                            p
                        }
                        Msg::Error(e) => return Err(SpawnError::Setup(e)),
                        other => return Err(SpawnError::Protocol(other)),
                    },
                };
                let state = (opts.hook_state)(pid);
                if let Some(h) = opts.hooks {
                    for (stage, list) in [
                        ("createRuntime", h.create_runtime()),
                        ("prestart", h.prestart()),
                    ] {
                        if let Some(list) = list {
                            if let Err(e) = crate::hooks::run(stage, list, &state) {
                                let _ = ch.send(&Msg::Error(e.to_string()));
                                return Err(SpawnError::Setup(e.to_string()));
                            }
                        }
                    }
                }
                ch.send(&Msg::HookState(
                    String::from_utf8_lossy(&state).into_owned(),
                ))?;
            }
            Msg::Ready => {
                // The init (our child: CLONE_PARENT) can get this far before the intermediate
                // has reported its pid.
                if init_pid.is_none() {
                    match ch.recv()? {
                        Msg::InitPid(p) => init_known(p, opts, init_pid, mount_ns),
                        other => return Err(SpawnError::Protocol(other)),
                    }
                }
                return init_pid.ok_or(SpawnError::Protocol(Msg::Ready));
            }
            Msg::Error(e) => {
                // From the init, whose pid is still on its way (learn it, so that `spawn`
                // reaps it: it is our child, and a zombie left in the container's pid
                // namespace keeps that namespace's pid 1 from ever finishing its exit), or
                // from the intermediate, which then exits and the channel closes.
                if init_pid.is_none() {
                    if let Ok(Msg::InitPid(p)) = ch.recv() {
                        *init_pid = Some(p);
                    }
                }
                return Err(SpawnError::Setup(e));
            }
            other => return Err(SpawnError::Protocol(other)),
        }
    }
}

fn map_text(maps: &[IdMap]) -> String {
    maps.iter()
        .map(|m| format!("{} {} {}\n", m.container_id, m.host_id, m.size))
        .collect()
}

fn write_id_maps(pid: i32, uid: &[IdMap], gid: &[IdMap]) -> Result<(), SpawnError> {
    let w = |file: &str, text: String| {
        std::fs::write(format!("/proc/{pid}/{file}"), text)
            .map_err(|source| SpawnError::IdMap { pid, source })
    };
    w("uid_map", map_text(uid))?;
    w("gid_map", map_text(gid))
}

/// When the intermediate takes each namespace step: before the cgroup is joined (while the
/// caller still moves the cgroup into place, so the two overlap) or after.
#[derive(Debug, PartialEq)]
struct NsOrder {
    /// Indexes into `plan.namespaces` of the namespaces joined early.
    early_joins: Vec<usize>,
    early_unshare: nix::sched::CloneFlags,
    /// The rest, in the plan's order, after the cgroup is joined.
    late_joins: Vec<usize>,
    late_unshare: nix::sched::CloneFlags,
}

/// Early go only the steps that cannot change how the cgroup is joined: net, ipc, uts
/// and pid (created, or joined). A mount namespace joined could hide the cgroup files; a
/// cgroup namespace is rooted where it is made, so it waits for the join; a user namespace
/// needs the caller's id maps, so with one everything keeps the plain order.
fn ns_order(plan: &Plan) -> NsOrder {
    let mut o = NsOrder {
        early_joins: Vec::new(),
        early_unshare: nix::sched::CloneFlags::empty(),
        late_joins: Vec::new(),
        late_unshare: nix::sched::CloneFlags::empty(),
    };
    let with_user = plan.has_ns(NsKind::User);
    let early = |k: NsKind| {
        !with_user && matches!(k, NsKind::Net | NsKind::Ipc | NsKind::Uts | NsKind::Pid)
    };
    for (i, step) in plan.namespaces.iter().enumerate() {
        match step {
            NsStep::Join(k, _) if early(*k) => o.early_joins.push(i),
            NsStep::Join(..) => o.late_joins.push(i),
            NsStep::Create(NsKind::User) => {}
            NsStep::Create(k) if early(*k) => o.early_unshare |= k.clone_flag(),
            NsStep::Create(k) => o.late_unshare |= k.clone_flag(),
        }
    }
    o
}

/// The intermediate process: namespaces it can make before the cgroup exists, the cgroup
/// (it joins, or main did), the other namespaces, then clone init.
fn intermediate(
    ch: &mut Channel,
    opts: SpawnOpts<'_>,
    fifo: Option<OwnedFd>,
    console: Option<std::os::unix::net::UnixStream>,
) -> Result<std::convert::Infallible, String> {
    let s = |e: &dyn std::fmt::Display| e.to_string();
    // Until exec, nothing in the container may ptrace us or read our /proc entries (which
    // hold host fds and the runtime binary); execve resets this.
    nix::sys::prctl::set_dumpable(false).map_err(|e| format!("prctl PR_SET_DUMPABLE: {e}"))?;
    let sys = LinuxSyscall;
    let plan = opts.plan;
    let order = ns_order(plan);
    // Open every namespace before entering any: after the mount namespace, /proc is
    // theirs. Joins come first, while we still have the privileges of the caller's
    // namespaces.
    let mut fds = std::collections::HashMap::new();
    for &i in order.early_joins.iter().chain(&order.late_joins) {
        if let NsStep::Join(_, path) = &plan.namespaces[i] {
            let fd = nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(|e| format!("open namespace {}: {e}", path.display()))?;
            fds.insert(i, fd);
        }
    }
    let join = |which: &[usize], fds: &mut std::collections::HashMap<usize, OwnedFd>| {
        for i in which {
            if let (Some(fd), NsStep::Join(kind, path)) = (fds.remove(i), &plan.namespaces[*i]) {
                nix::sched::setns(fd, kind.clone_flag())
                    .map_err(|e| format!("setns {}: {e}", path.display()))?;
            }
        }
        Ok::<(), String>(())
    };
    join(&order.early_joins, &mut fds)?;
    if !order.early_unshare.is_empty() {
        sys.unshare(order.early_unshare).map_err(|e| s(&e))?;
    }
    match ch.recv().map_err(|e| s(&e))? {
        Msg::Proceed => {}
        other => return Err(format!("unexpected message {other:?}")),
    }
    for f in opts.self_join {
        std::fs::write(f, "0").map_err(|e| format!("joining the cgroup: {}: {e}", f.display()))?;
    }
    join(&order.late_joins, &mut fds)?;
    if plan.creates(NsKind::User) {
        sys.unshare(NsKind::User.clone_flag()).map_err(|e| s(&e))?;
        ch.send(&Msg::MapIds(nix::unistd::getpid().as_raw()))
            .map_err(|e| s(&e))?;
        match ch.recv().map_err(|e| s(&e))? {
            Msg::Proceed => {}
            other => return Err(format!("unexpected message {other:?}")),
        }
        let root_u = nix::unistd::Uid::from_raw(0);
        let root_g = nix::unistd::Gid::from_raw(0);
        nix::unistd::setresgid(root_g, root_g, root_g)
            .map_err(|e| format!("setresgid 0 in the user namespace: {e}"))?;
        nix::unistd::setresuid(root_u, root_u, root_u)
            .map_err(|e| format!("setresuid 0 in the user namespace: {e}"))?;
    }
    crate::trace::mark("r unshare");
    if !order.late_unshare.is_empty() {
        sys.unshare(order.late_unshare).map_err(|e| s(&e))?;
    }
    crate::trace::mark("r clone init");
    let pid = crate::sys::clone_parent().map_err(|e| format!("clone init: {e}"))?;
    if pid == 0 {
        let err = match init(ch, &opts, fifo, console) {
            Ok(never) => match never {},
            Err(e) => e,
        };
        let _ = ch.send(&Msg::Error(err));
        crate::sys::exit_now(1);
    }
    ch.send(&Msg::InitPid(pid)).map_err(|e| s(&e))?;
    crate::sys::exit_now(0);
}

fn init(
    ch: &mut Channel,
    opts: &SpawnOpts<'_>,
    fifo: Option<OwnedFd>,
    console: Option<std::os::unix::net::UnixStream>,
) -> Result<std::convert::Infallible, String> {
    let s = |e: &dyn std::fmt::Display| e.to_string();
    crate::trace::mark("i init");
    nix::unistd::setsid().map_err(|e| format!("setsid: {e}"))?;
    if let Some(fd) = &opts.stdio.stdin {
        nix::unistd::dup2_stdin(fd).map_err(|e| format!("dup2 stdin: {e}"))?;
    }
    if let Some(fd) = &opts.stdio.stdout {
        nix::unistd::dup2_stdout(fd).map_err(|e| format!("dup2 stdout: {e}"))?;
    }
    if let Some(fd) = &opts.stdio.stderr {
        nix::unistd::dup2_stderr(fd).map_err(|e| format!("dup2 stderr: {e}"))?;
    }
    let mut hook_state: Option<String> = None;
    if !opts.exec {
        let mut before_pivot = || -> Result<(), crate::init::InitError> {
            if !opts.init_hooks() {
                return Ok(());
            }
            let sync = |e: ChannelError| crate::init::InitError::HookSync(e.to_string());
            ch.send(&Msg::Hooks).map_err(sync)?;
            let state = match ch.recv().map_err(sync)? {
                Msg::HookState(st) => st,
                Msg::Error(e) => return Err(crate::init::InitError::HookSync(e)),
                other => {
                    return Err(crate::init::InitError::HookSync(format!(
                        "unexpected {other:?}"
                    )))
                }
            };
            if let Some(list) = opts.hooks.and_then(|h| h.create_container().as_ref()) {
                crate::hooks::run("createContainer", list, state.as_bytes())?;
            }
            hook_state = Some(state);
            Ok(())
        };
        crate::trace::mark("i setup container");
        crate::init::setup_container(&LinuxSyscall, opts.plan, &mut before_pivot)
            .map_err(|e| s(&e))?;
    }
    crate::trace::mark("i setup process");
    // The pty comes from the container's devpts, and binding /dev/console still needs
    // the privileges setup_process drops.
    if let Some(sock) = console {
        crate::tty::setup_console(sock, !opts.exec, opts.plan.process.console_size)
            .map_err(|e| s(&e))?;
    }
    let program =
        crate::init::setup_process(&LinuxSyscall, opts.plan, opts.seccomp).map_err(|e| s(&e))?;
    // Nothing the runtime holds may survive into the container (CVE-2024-21626).
    crate::sys::cloexec_from(3 + opts.preserve_fds).map_err(|e| format!("close_range: {e}"))?;
    crate::trace::mark("i ready");
    ch.send(&Msg::Ready).map_err(|e| s(&e))?;
    // Nobody listens on the channel any more: report on the container's stderr.
    let start_hooks = match (
        opts.hooks.and_then(|h| h.start_container().as_deref()),
        &hook_state,
    ) {
        (Some(list), Some(st)) => Some((list, st.as_bytes())),
        _ => None,
    };
    let err = match crate::init::exec(opts.plan, &program, fifo, opts.seccomp, start_hooks) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    eprintln!("berth-runtime: {err}");
    crate::sys::exit_now(127);
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sched::CloneFlags as F;

    fn plan_with(namespaces: serde_json::Value, user: bool) -> Plan {
        let mut v: serde_json::Value = serde_json::from_str(crate::plan::tests::SAMPLE).unwrap();
        v["linux"]["namespaces"] = namespaces;
        v.as_object_mut().unwrap().remove("hostname");
        v["linux"].as_object_mut().unwrap().remove("sysctl");
        if user {
            let map = serde_json::json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
            v["linux"]["uidMappings"] = map.clone();
            v["linux"]["gidMappings"] = map;
        }
        let spec = serde_json::from_value(v).unwrap();
        crate::plan::plan(
            &spec,
            Path::new("/b"),
            &crate::plan::HostLimits::unlimited(),
        )
        .unwrap()
    }

    /// The sample's namespaces: pid, a joined network, ipc, uts, mount, cgroup.
    #[test]
    fn net_ipc_uts_pid_go_before_the_cgroup_join_mount_and_cgroup_after() {
        let p = plan_with(
            serde_json::json!([
                {"type": "pid"}, {"type": "network", "path": "/run/netns/n1"}, {"type": "ipc"},
                {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}
            ]),
            false,
        );
        let o = ns_order(&p);
        let net = p
            .namespaces
            .iter()
            .position(|s| s.kind() == NsKind::Net)
            .unwrap();
        assert_eq!(o.early_joins, vec![net]);
        assert_eq!(
            o.early_unshare,
            F::CLONE_NEWPID | F::CLONE_NEWIPC | F::CLONE_NEWUTS
        );
        assert!(o.late_joins.is_empty());
        assert_eq!(o.late_unshare, F::CLONE_NEWNS | F::CLONE_NEWCGROUP);
    }

    /// `exec`-like joins: a mount or cgroup namespace joined could change the cgroup files
    /// the intermediate writes, so they wait; the others do not.
    #[test]
    fn joined_mount_and_cgroup_namespaces_wait_for_the_cgroup() {
        let p = plan_with(
            serde_json::json!([
                {"type": "mount", "path": "/proc/1/ns/mnt"},
                {"type": "pid", "path": "/proc/1/ns/pid"},
                {"type": "cgroup", "path": "/proc/1/ns/cgroup"},
                {"type": "ipc", "path": "/proc/1/ns/ipc"}
            ]),
            false,
        );
        let o = ns_order(&p);
        let kinds = |ix: &[usize]| {
            ix.iter()
                .map(|&i| p.namespaces[i].kind())
                .collect::<Vec<_>>()
        };
        assert_eq!(kinds(&o.early_joins), vec![NsKind::Ipc, NsKind::Pid]);
        assert_eq!(kinds(&o.late_joins), vec![NsKind::Mount, NsKind::Cgroup]);
        assert!(o.early_unshare.is_empty() && o.late_unshare.is_empty());
    }

    /// With a user namespace the id maps come from the caller: nothing goes early.
    #[test]
    fn with_a_user_namespace_everything_waits() {
        let p = plan_with(
            serde_json::json!([
                {"type": "user"}, {"type": "pid"}, {"type": "network", "path": "/run/netns/n1"},
                {"type": "mount"}
            ]),
            true,
        );
        let o = ns_order(&p);
        assert!(o.early_joins.is_empty());
        assert!(o.early_unshare.is_empty());
        assert_eq!(o.late_joins.len(), 1);
        assert_eq!(o.late_unshare, F::CLONE_NEWPID | F::CLONE_NEWNS);
    }
}
