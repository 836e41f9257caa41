//! The container lifecycle the engine and `berth-runtime` call: create (set up and wait
//! on the exec fifo), start, kill, state, delete, and `run` = create + start + wait +
//! delete. State lives in `<root>/<id>/`; a failed create tears down everything it set up
//! and reports every teardown error next to the original one.

use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use crate::cgroup::{self, Cgroup, CgroupError, CgroupFs, RealCgroupFs};
use crate::plan::{self, HostLimits, SpecError};
use crate::process::{self, SpawnError, SpawnOpts, Stdio};
use crate::state::{self, State, StateError, Status};
use oci_spec::runtime::Spec;

/// Everything that can go wrong with a container, by what failed.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid container id {id:?}: {reason}")]
    BadId { id: String, reason: &'static str },
    #[error("container {id} already exists")]
    Exists { id: String },
    #[error("bundle {path}: {source}")]
    Bundle {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config.json: {0}")]
    Spec(#[from] SpecError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    #[error(transparent)]
    State(#[from] StateError),
    #[error("{op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("creating container {id}: {source}{}", cleanup_note(.cleanup))]
    Create {
        id: String,
        source: Box<RuntimeError>,
        /// Teardown failures after the original error.
        cleanup: Vec<String>,
    },
    #[error(transparent)]
    Spawn(#[from] SpawnError),
    #[error(transparent)]
    Seccomp(#[from] crate::seccomp::SeccompError),
    #[error("container {id} is {status}: cannot {action}")]
    WrongStatus {
        id: String,
        status: Status,
        action: &'static str,
    },
    #[error("signalling container {id} (pid {pid}): {source}")]
    Kill {
        id: String,
        pid: i32,
        source: nix::errno::Errno,
    },
    #[error("container {id}: the init process exited before start")]
    InitGone { id: String },
    #[error("waiting for pid {pid}: {source}")]
    Wait { pid: i32, source: nix::errno::Errno },
    #[error("deleting container {id}: {}", .errors.join("; "))]
    Delete { id: String, errors: Vec<String> },
}

fn cleanup_note(c: &[String]) -> String {
    if c.is_empty() {
        String::new()
    } else {
        format!(" (cleanup also failed: {})", c.join("; "))
    }
}

fn io_err<'a>(
    op: &'static str,
    path: &'a Path,
) -> impl FnOnce(std::io::Error) -> RuntimeError + 'a {
    move |source| RuntimeError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

/// Options for [`Container::create`].
#[derive(Debug)]
pub struct CreateOpts {
    /// State directory root, e.g. `/run/berth-runtime`.
    pub root: PathBuf,
    /// The cgroup filesystem root, normally `/sys/fs/cgroup`.
    pub cgroup_root: PathBuf,
    /// runc's `--console-socket`: where to send the pty master when `process.terminal`.
    pub console_socket: Option<PathBuf>,
    /// Write the init's pid here after create.
    pub pid_file: Option<PathBuf>,
    /// The container process's stdio; defaults to the caller's.
    pub stdio: Stdio,
    /// Pass the caller's fds 3 .. 3+N to the container process (runc `--preserve-fds`).
    pub preserve_fds: u32,
    /// A cgroup made ahead (relative to the cgroup root, beside the container's) that the
    /// container's takes over, or removes when it cannot (see `Cgroup::adopt`); a create
    /// that fails before its cgroup is made leaves it to the caller.
    pub cgroup_ahead: Option<PathBuf>,
}

impl CreateOpts {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        CreateOpts {
            root: root.into(),
            cgroup_root: PathBuf::from("/sys/fs/cgroup"),
            console_socket: None,
            pid_file: None,
            stdio: Stdio::default(),
            preserve_fds: 0,
            cgroup_ahead: None,
        }
    }
}

pub const DEFAULT_ROOT: &str = "/run/berth-runtime";

/// Everything computed from the bundle before any process exists.
#[derive(Debug, Clone, Copy)]
struct Prepared<'a> {
    plan: &'a plan::Plan,
    cg: &'a Cgroup,
    writes: &'a [cgroup::Write],
    /// cgroup v2: the device rules, installed as an eBPF program.
    device_rules: Option<&'a [cgroup::devbpf::Rule]>,
    seccomp: Option<&'a crate::seccomp::Program>,
    hooks: Option<&'a oci_spec::runtime::Hooks>,
    /// Wait on the exec fifo for `start` (false: exec right away).
    gate: bool,
}

/// A container known to the runtime, with its state directory.
#[derive(Debug)]
pub struct Container {
    state: State,
    dir: PathBuf,
    /// The init's mount namespace, held from its start until the container is deleted (or
    /// this is dropped): then the namespace's teardown, unmounting its ~30 mounts (an RCU
    /// grace period, each filesystem's shutdown: ~0.4 ms here), comes after the container's
    /// end is known, not in the init's exit, before its parent can reap it.
    mount_ns: Option<std::fs::File>,
}

fn check_id(id: &str) -> Result<(), RuntimeError> {
    let bad = |reason| RuntimeError::BadId {
        id: id.to_string(),
        reason,
    };
    if id.is_empty() || id.len() > 1024 {
        return Err(bad("must be 1 to 1024 characters"));
    }
    if id == "." || id == ".." {
        return Err(bad("must not be . or .."));
    }
    if !id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '+'))
    {
        return Err(bad(
            "only letters, digits, '_', '-', '.' and '+' are allowed",
        ));
    }
    Ok(())
}

impl Container {
    /// Set the container up from `bundle` (its `config.json` and rootfs) and leave its
    /// init waiting for [`start`](Self::start).
    pub fn create(id: &str, bundle: &Path, opts: CreateOpts) -> Result<Container, RuntimeError> {
        Self::create_inner(id, bundle, None, opts, true)
    }

    /// [`create`](Self::create) with the bundle's spec given (its `config.json` as the
    /// caller just wrote it: not read and parsed again).
    pub fn create_from(
        id: &str,
        bundle: &Path,
        spec: Spec,
        opts: CreateOpts,
    ) -> Result<Container, RuntimeError> {
        Self::create_inner(id, bundle, Some(spec), opts, true)
    }

    /// Create and start at once: the init executes its program as soon as it is set up,
    /// with no exec fifo between (one state write and a round trip less than
    /// [`create`](Self::create) + [`start`](Self::start)). Poststart hooks have run when
    /// this returns.
    pub fn create_started(
        id: &str,
        bundle: &Path,
        opts: CreateOpts,
    ) -> Result<Container, RuntimeError> {
        Self::create_inner(id, bundle, None, opts, false)
    }

    /// [`create_started`](Self::create_started) with the bundle's spec given (see
    /// [`create_from`](Self::create_from)).
    pub fn create_started_from(
        id: &str,
        bundle: &Path,
        spec: Spec,
        opts: CreateOpts,
    ) -> Result<Container, RuntimeError> {
        Self::create_inner(id, bundle, Some(spec), opts, false)
    }

    fn create_inner(
        id: &str,
        bundle: &Path,
        spec: Option<Spec>,
        opts: CreateOpts,
        gate: bool,
    ) -> Result<Container, RuntimeError> {
        check_id(id)?;
        let bundle = std::fs::canonicalize(bundle).map_err(|source| RuntimeError::Bundle {
            path: bundle.to_path_buf(),
            source,
        })?;
        let spec = match spec {
            Some(s) => s,
            None => {
                let config = bundle.join("config.json");
                crate::spec::load(&config).map_err(|source| SpecError::Load {
                    path: config.clone(),
                    source,
                })?
            }
        };
        let mut plan = plan::plan(&spec, &bundle, &HostLimits::current())?;
        let fs = RealCgroupFs;
        let linux = spec.linux().as_ref();
        let cg = Cgroup::new(
            &fs,
            &opts.cgroup_root,
            linux.and_then(|l| l.cgroups_path().as_deref()),
            id,
        )?;
        let v1_dirs: Vec<(String, PathBuf)> = cg
            .dirs(&fs)
            .into_iter()
            .filter_map(|(c, d)| c.map(|c| (c.to_string(), d)))
            .collect();
        let v2_dir = (cg.version == cgroup::Version::V2).then(|| cg.root.join(&cg.path));
        plan::expand_cgroup_mounts(&mut plan, v2_dir.as_deref(), &v1_dirs);
        let default_rules = cgroup::node_rules(&plan.devices);
        let writes = match linux.and_then(|l| l.resources().as_ref()) {
            Some(r) => cgroup::writes(r, cg.version, &default_rules)?,
            None => Vec::new(),
        };
        // cgroup v2 has no device files: the rules become an eBPF program
        let device_rules: Option<Vec<cgroup::devbpf::Rule>> = match (
            cg.version,
            linux
                .and_then(|l| l.resources().as_ref())
                .and_then(|r| r.devices().as_ref()),
        ) {
            (cgroup::Version::V2, Some(devs)) if !devs.is_empty() => Some(
                devs.iter()
                    .filter_map(cgroup::devbpf::Rule::from_spec)
                    .chain(
                        default_rules
                            .iter()
                            .filter_map(|r| cgroup::devbpf::Rule::parse(r, true)),
                    )
                    .collect(),
            ),
            _ => None,
        };
        let seccomp = match linux.and_then(|l| l.seccomp().as_ref()) {
            Some(s) => Some(crate::seccomp::compile_cached(
                s,
                Some(&opts.root.join(".seccomp-cache")),
            )?),
            None => None,
        };
        if plan.process.terminal && opts.console_socket.is_none() {
            return Err(SpecError::Invalid {
                field: "process.terminal".into(),
                reason: "a terminal needs --console-socket".into(),
            }
            .into());
        }

        std::fs::create_dir_all(&opts.root).map_err(io_err("mkdir", &opts.root))?;
        let dir = opts.root.join(id);
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(RuntimeError::Exists { id: id.to_string() })
            }
            Err(e) => return Err(io_err("mkdir", &dir)(e)),
        }
        let mut c = Container {
            state: State {
                oci_version: spec.version().clone(),
                id: id.to_string(),
                status: Status::Creating,
                pid: 0,
                bundle: bundle.clone(),
                rootfs: plan.rootfs.clone(),
                created: state::rfc3339(std::time::SystemTime::now()),
                owner: String::new(),
                annotations: spec
                    .annotations()
                    .iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect(),
                init_start_time: 0,
                cgroup: Some(cg.clone()),
            },
            dir,
            mount_ns: None,
        };
        let prepared = Prepared {
            plan: &plan,
            cg: &cg,
            writes: &writes,
            device_rules: device_rules.as_deref(),
            seccomp: seccomp.as_ref(),
            hooks: spec.hooks().as_ref(),
            gate,
        };
        let result = c.spawn(&prepared, opts);
        match result {
            Ok(()) => {
                if !gate {
                    c.poststart(spec.hooks().as_ref());
                }
                Ok(c)
            }
            Err(e) => {
                let cleanup = c.teardown(&fs);
                Err(RuntimeError::Create {
                    id: id.to_string(),
                    source: Box::new(e),
                    cleanup,
                })
            }
        }
    }

    fn spawn(&mut self, p: &Prepared<'_>, opts: CreateOpts) -> Result<(), RuntimeError> {
        let Prepared {
            plan,
            cg,
            writes,
            device_rules,
            seccomp,
            hooks,
            gate,
        } = *p;
        crate::trace::mark("r spawn");
        self.state.save(&self.dir)?;
        let fifo = self.dir.join("exec.fifo");
        if gate {
            nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o622)).map_err(|e| {
                RuntimeError::Io {
                    op: "mkfifo",
                    path: fifo.clone(),
                    source: e.into(),
                }
            })?;
            // mkfifo honours the umask; the init may write as any user once it dropped root.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&fifo, std::fs::Permissions::from_mode(0o622))
                .map_err(io_err("chmod", &fifo))?;
        }
        let fs = RealCgroupFs;
        let mut cgroup_err = None;
        let self_join = cg.self_join_files(&fs);
        let mut join = |pid: i32| {
            let pid = self_join.is_empty().then_some(pid);
            cg.create(&fs, writes, pid, opts.cgroup_ahead.as_deref())
                .and_then(|()| match device_rules {
                    Some(rules) => cg.attach_devices(rules),
                    None => Ok(()),
                })
                .map_err(|e| {
                    let s = e.to_string();
                    cgroup_err = Some(e);
                    s
                })
        };
        let base = self.state.clone();
        let hook_state = move |pid: i32| {
            let mut st = base.clone();
            st.pid = pid;
            serde_json::to_vec(&st.oci()).unwrap_or_default()
        };
        crate::trace::mark("r process spawn");
        let spawned = process::spawn(
            SpawnOpts {
                plan,
                exec_fifo: gate.then_some(fifo.as_path()),
                stdio: opts.stdio,
                seccomp,
                console_socket: opts.console_socket.as_deref(),
                exec: false,
                hooks,
                hook_state: &hook_state,
                preserve_fds: opts.preserve_fds,
                self_join: &self_join,
            },
            &mut join,
        );
        let pid = match spawned {
            Ok(process::Spawned { pid, mount_ns }) => {
                self.mount_ns = mount_ns;
                pid
            }
            Err(SpawnError::Cgroup(_)) if cgroup_err.is_some() => {
                return Err(cgroup_err
                    .take()
                    .map(RuntimeError::Cgroup)
                    .unwrap_or_else(|| RuntimeError::Spawn(SpawnError::Cgroup(String::new()))))
            }
            Err(e) => return Err(e.into()),
        };
        crate::trace::mark("r spawned");
        self.state.pid = pid;
        self.state.init_start_time = state::proc_stat(pid).map_or(0, |(_, t)| t);
        self.state.status = if gate {
            Status::Created
        } else {
            Status::Running
        };
        self.state.save(&self.dir)?;
        if let Some(p) = &opts.pid_file {
            let tmp = p.with_extension("tmp");
            std::fs::write(&tmp, pid.to_string()).map_err(io_err("write", &tmp))?;
            std::fs::rename(&tmp, p).map_err(io_err("rename", p))?;
        }
        Ok(())
    }

    /// Kill whatever runs, remove the cgroup and the state dir; collect every failure.
    fn teardown(&mut self, fs: &dyn CgroupFs) -> Vec<String> {
        let mut errors = Vec::new();
        if self.is_alive() {
            let _ = kill(Pid::from_raw(self.state.pid), Signal::SIGKILL);
        }
        if let Some(cg) = &self.state.cgroup {
            for p in cg.pids(fs) {
                let _ = kill(Pid::from_raw(p), Signal::SIGKILL);
            }
            self.reap_until_dead(Duration::from_secs(5));
            errors.extend(cg.remove(fs).into_iter().map(|e| e.to_string()));
        }
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                errors.push(format!("removing {}: {e}", self.dir.display()));
            }
        }
        errors
    }

    /// Load an existing container's state.
    pub fn load(root: &Path, id: &str) -> Result<Container, RuntimeError> {
        check_id(id)?;
        let dir = root.join(id);
        let state = State::load(&dir, id)?;
        let mut c = Container {
            state,
            dir,
            mount_ns: None,
        };
        c.refresh();
        Ok(c)
    }

    /// All containers under `root`, sorted by id; unreadable entries are skipped.
    pub fn list(root: &Path) -> Result<Vec<Container>, RuntimeError> {
        let entries = match std::fs::read_dir(root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("read", root)(e)),
        };
        let mut out: Vec<Container> = entries
            .flatten()
            .filter_map(|e| e.file_name().to_str().map(str::to_string))
            .filter_map(|id| Container::load(root, &id).ok())
            .collect();
        out.sort_by(|a, b| a.state.id.cmp(&b.state.id));
        Ok(out)
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    pub fn pid(&self) -> i32 {
        self.state.pid
    }

    /// How many of the container's processes the OOM killer has killed (read from its
    /// memory cgroup; call before [`Self::delete`] removes it).
    pub fn oom_kills(&self) -> u64 {
        self.state
            .cgroup
            .as_ref()
            .map_or(0, |cg| cg.oom_kills(&RealCgroupFs))
    }

    /// The state, with the status refreshed from the kernel.
    pub fn state(&mut self) -> &State {
        self.refresh();
        &self.state
    }

    fn is_alive(&self) -> bool {
        match state::proc_stat(self.state.pid) {
            Some((s, start)) => {
                !matches!(s, 'Z' | 'X' | 'x')
                    && (self.state.init_start_time == 0 || start == self.state.init_start_time)
            }
            None => false,
        }
    }

    /// Recompute the status: a dead init means stopped; an existing fifo means created;
    /// a frozen cgroup means paused.
    pub fn refresh(&mut self) {
        let frozen = || {
            self.state
                .cgroup
                .as_ref()
                .is_some_and(|cg| cg.is_frozen(&RealCgroupFs))
        };
        let status = match self.state.status {
            Status::Creating if self.state.pid == 0 => Status::Creating,
            _ if !self.is_alive() => Status::Stopped,
            _ if self.dir.join("exec.fifo").exists() => Status::Created,
            _ if frozen() => Status::Paused,
            _ => Status::Running,
        };
        self.state.status = status;
    }

    /// Freeze every process of the container.
    pub fn pause(&mut self) -> Result<(), RuntimeError> {
        self.guard(|s| s == Status::Running, "pause")?;
        self.freezer(true)
    }

    /// Thaw a paused container.
    pub fn resume(&mut self) -> Result<(), RuntimeError> {
        self.guard(|s| s == Status::Paused, "resume")?;
        self.freezer(false)
    }

    /// Change the resource limits of a created, running or paused container (`update`):
    /// only what `res` sets is written; devices are left as they are.
    pub fn update(&mut self, res: &oci_spec::runtime::LinuxResources) -> Result<(), RuntimeError> {
        self.guard(
            |s| matches!(s, Status::Created | Status::Running | Status::Paused),
            "update",
        )?;
        let Some(cg) = &self.state.cgroup else {
            return Err(RuntimeError::WrongStatus {
                id: self.state.id.clone(),
                status: self.state.status,
                action: "update without a cgroup",
            });
        };
        let mut res = res.clone();
        res.set_devices(None);
        let writes = crate::cgroup::writes(&res, cg.version, &[])?;
        cg.apply(&RealCgroupFs, &writes)?;
        Ok(())
    }

    fn freezer(&mut self, frozen: bool) -> Result<(), RuntimeError> {
        let Some(cg) = &self.state.cgroup else {
            return Err(RuntimeError::WrongStatus {
                id: self.state.id.clone(),
                status: self.state.status,
                action: "pause without a cgroup",
            });
        };
        cg.freeze(&RealCgroupFs, frozen)?;
        self.state.status = if frozen {
            Status::Paused
        } else {
            Status::Running
        };
        self.state.save(&self.dir)?;
        Ok(())
    }

    fn guard(&mut self, ok: fn(Status) -> bool, action: &'static str) -> Result<(), RuntimeError> {
        self.refresh();
        if ok(self.state.status) {
            Ok(())
        } else {
            Err(RuntimeError::WrongStatus {
                id: self.state.id.clone(),
                status: self.state.status,
                action,
            })
        }
    }

    /// Let the init exec the user's program.
    pub fn start(&mut self) -> Result<(), RuntimeError> {
        self.guard(Status::can_start, "start")?;
        let fifo = self.dir.join("exec.fifo");
        let f = nix::fcntl::open(
            &fifo,
            nix::fcntl::OFlag::O_RDONLY
                | nix::fcntl::OFlag::O_NONBLOCK
                | nix::fcntl::OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RuntimeError::Io {
            op: "open",
            path: fifo.clone(),
            source: e.into(),
        })?;
        // The init is blocked opening the write end; it writes one byte and goes on to exec.
        loop {
            let mut fds = [nix::poll::PollFd::new(
                f.as_fd(),
                nix::poll::PollFlags::POLLIN,
            )];
            let _ = nix::poll::poll(&mut fds, nix::poll::PollTimeout::from(100u16));
            let mut buf = [0u8; 1];
            match nix::unistd::read(&f, &mut buf) {
                Ok(1) => break,
                Ok(_) | Err(nix::errno::Errno::EAGAIN) => {
                    if !self.is_alive() {
                        return Err(RuntimeError::InitGone {
                            id: self.state.id.clone(),
                        });
                    }
                }
                Err(e) => {
                    return Err(RuntimeError::Io {
                        op: "read",
                        path: fifo.clone(),
                        source: e.into(),
                    })
                }
            }
        }
        crate::trace::mark("r fifo read");
        std::fs::remove_file(&fifo).map_err(io_err("remove", &fifo))?;
        self.state.status = Status::Running;
        self.state.save(&self.dir)?;
        crate::trace::mark("r saved");
        self.poststart(self.hooks().as_ref());
        Ok(())
    }

    /// A failing poststart hook does not undo the start (runtime-spec: warn only).
    fn poststart(&self, hooks: Option<&oci_spec::runtime::Hooks>) {
        if let Some(list) = hooks.and_then(|h| h.poststart().as_ref()) {
            let st = serde_json::to_vec(&self.state.oci()).unwrap_or_default();
            if let Err(e) = crate::hooks::run("poststart", list, &st) {
                eprintln!("berth-runtime: warning: {e}");
            }
        }
    }

    /// The bundle's hooks, if its config still parses.
    fn hooks(&self) -> Option<oci_spec::runtime::Hooks> {
        crate::spec::load(&self.state.bundle.join("config.json"))
            .ok()
            .and_then(|s| s.hooks().clone())
    }

    /// Send a signal to the init process.
    pub fn kill(&mut self, sig: Signal) -> Result<(), RuntimeError> {
        self.guard(Status::can_kill, "kill")?;
        kill(Pid::from_raw(self.state.pid), sig).map_err(|source| RuntimeError::Kill {
            id: self.state.id.clone(),
            pid: self.state.pid,
            source,
        })
    }

    /// Signal every process in the container's cgroup (for `kill --all`).
    pub fn kill_all(&mut self, sig: Signal) -> Result<(), RuntimeError> {
        self.guard(Status::can_kill, "kill")?;
        for pid in self.pids() {
            let _ = kill(Pid::from_raw(pid), sig);
        }
        Ok(())
    }

    /// The host pids of the container's processes.
    pub fn pids(&self) -> Vec<i32> {
        match &self.state.cgroup {
            Some(cg) => cg.pids(&RealCgroupFs),
            None => vec![self.state.pid],
        }
    }

    /// The init's mount namespace: held from the init's making until the container is
    /// deleted, so it outlives the init's exit.
    pub fn mount_namespace(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        self.mount_ns.as_ref().map(|f| f.as_fd())
    }

    /// Wait for the init to exit; only possible from its parent or a subreaper.
    /// Returns the exit code, or 128 + signal number.
    pub fn wait(&self) -> Result<i32, RuntimeError> {
        wait_pid(self.state.pid)
    }

    /// Forward catchable signals to the init until it exits, then return its exit code.
    /// The calling thread must have blocked these signals before `create`
    /// (see [`block_forwarded_signals`]).
    pub fn wait_forwarding_signals(&self) -> Result<i32, RuntimeError> {
        wait_forwarding_signals(self.state.pid)
    }

    /// Remove the container. A running one needs `force`, which kills it first.
    pub fn delete(mut self, force: bool) -> Result<(), RuntimeError> {
        self.refresh();
        if !force && !self.state.status.can_delete() {
            return Err(RuntimeError::WrongStatus {
                id: self.state.id.clone(),
                status: self.state.status,
                action: "delete (use force)",
            });
        }
        if self.state.status == Status::Paused {
            // Frozen tasks do not die until thawed.
            if let Some(cg) = &self.state.cgroup {
                let _ = cg.freeze(&RealCgroupFs, false);
            }
        }
        let hooks = self.hooks().and_then(|h| h.poststop().clone());
        let mut errors = self.teardown(&RealCgroupFs);
        if let Some(list) = hooks {
            self.state.status = Status::Stopped;
            let st = serde_json::to_vec(&self.state.oci()).unwrap_or_default();
            if let Err(e) = crate::hooks::run("poststop", &list, &st) {
                errors.push(e.to_string());
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(RuntimeError::Delete {
                id: self.state.id.clone(),
                errors,
            })
        }
    }

    /// Reap the init if it is our child; otherwise wait for it to disappear.
    fn reap_until_dead(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let pid = Pid::from_raw(self.state.pid);
        while Instant::now() < deadline {
            if self.state.pid > 0 {
                let _ = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG));
            }
            let cg_empty = self
                .state
                .cgroup
                .as_ref()
                .is_none_or(|cg| cg.pids(&RealCgroupFs).is_empty());
            if !self.is_alive() && cg_empty {
                return;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// create + start + wait + delete, in the calling process (which becomes the init's
    /// parent). Returns the exit code.
    pub fn run(id: &str, bundle: &Path, opts: CreateOpts) -> Result<i32, RuntimeError> {
        let c = Container::create_started(id, bundle, opts)?;
        let code = c.wait();
        let del = c.delete(true);
        let code = code?;
        del?;
        Ok(code)
    }
}

mod exec;
mod wait;

pub use exec::ExecOpts;
pub use wait::{block_forwarded_signals, wait_forwarding_signals, wait_pid};
