//! Containers in the daemon: records persisted per container, lookup by ID, prefix or name,
//! and the lifecycle (create, start through a monitor, watch for exit, stop, remove).

mod ahead;
mod cgroups;
mod fresh;
pub mod hostdev;
pub mod model;
pub mod spec;
pub mod user;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hyper::StatusCode;
use tokio::sync::watch;

use crate::error::ApiError;
use crate::monitor::{self, AttachRequest, ExitStatus, MonitorConfig};
pub use model::{Container, RunState, Status};

/// One container known to the daemon.
#[derive(Debug)]
pub struct Entry {
    pub rec: Mutex<Container>,
    /// Broadcasts the state after every change (waiters subscribe).
    pub changes: watch::Sender<RunState>,
    /// Held while something other than the container uses its root filesystem (`cp` into a
    /// stopped container mounts it): a start or a removal waits for it.
    pub fs_busy: Mutex<()>,
    /// Attach streams of the current run still being sent: an auto-removal waits for them,
    /// or output a fast `run --rm` wrote would go with its log before it reached the client.
    pub streams: Arc<crate::inflight::InFlight>,
}

impl Entry {
    pub fn snapshot(&self) -> Container {
        self.rec.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

#[derive(Debug)]
pub struct Containers {
    dir: PathBuf,
    /// Per container, what a run needs and a reboot voids (monitor's config and log, the
    /// runtime's bundle, the root mount, the attach socket, the exit status): on the
    /// exec-root's tmpfs.
    run: PathBuf,
    pub runtime_root: PathBuf,
    map: Mutex<HashMap<String, Arc<Entry>>>,
    /// The binary monitors run from (see [`monitor::readonly_exe`]), made at the first start.
    monitor_exe: std::sync::OnceLock<Option<PathBuf>>,
    /// A monitor already started, waiting for the next container (see [`monitor::spare`]).
    spare: Mutex<Option<monitor::Spare>>,
    /// When the last start was: see [`Self::spare_delay`].
    last_start: Mutex<Option<std::time::Instant>>,
    syncer: Syncer,
    trash: Trash,
    /// Container directories made ahead (see [`fresh`]).
    fresh: fresh::FreshDirs,
    /// Cgroups made ahead (see [`cgroups`]); none where cgroups are v2.
    cgroups: Option<cgroups::CgroupsAhead>,
}

/// Makes written state files durable off the request path. A state file is replaced by
/// rename, so readers and a daemon killed at any point see the old or the new record,
/// never a torn one (ext4 flushes a file renamed over another before the rename commits);
/// the fsync that makes the new record survive a power cut follows [`SYNC_DELAY`] later,
/// on this thread, instead of costing each start, stop and removal a disk flush: not at
/// once, because a journal commit under way slows the ext4 work of the start that follows
/// a create (an overlay mount with a flush beside it: ~0.16 -> ~0.27 ms here), and a
/// `run --rm` container's record is gone before it is due.
#[derive(Debug)]
struct Syncer(std::sync::mpsc::Sender<PathBuf>);

/// Where the runtime finds the cgroup hierarchies (its default).
const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// How long a written state file waits for its flush (see [`Syncer`]).
const SYNC_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

impl Syncer {
    fn start() -> Syncer {
        let (tx, rx) = std::sync::mpsc::channel::<PathBuf>();
        let spawned = std::thread::Builder::new()
            .name("state-sync".into())
            .spawn(move || {
                while let Ok(first) = rx.recv() {
                    std::thread::sleep(SYNC_DELAY);
                    // what queued up meanwhile is flushed once
                    let mut batch = std::collections::BTreeSet::from([first]);
                    batch.extend(rx.try_iter());
                    for path in batch {
                        // gone meanwhile (a removal): nothing to keep
                        if let Ok(f) = std::fs::File::open(&path) {
                            let _ = f.sync_all();
                        }
                        if let Some(dir) = path.parent() {
                            if let Ok(d) = std::fs::File::open(dir) {
                                let _ = d.sync_all();
                            }
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("starting the state flusher: {e}");
        }
        Syncer(tx)
    }

    /// Flush `path` soon (at once, on this thread, if the flusher is gone).
    fn queue(&self, path: PathBuf) -> std::io::Result<()> {
        match self.0.send(path) {
            Ok(()) => Ok(()),
            Err(std::sync::mpsc::SendError(path)) => std::fs::File::open(path)?.sync_all(),
        }
    }
}

/// Deletes removed containers' directories (in `.trash`), on one thread, each when it is
/// due: not at once, because a removal's waiter (`run --rm`'s client) answers and exits in
/// the next moments and deleting the files takes about as much CPU; nor on a thread of the
/// removal's own, whose start would cost the removal itself.
#[derive(Debug)]
struct Trash(Option<std::sync::mpsc::Sender<(std::time::Instant, PathBuf)>>);

impl Trash {
    fn start() -> Trash {
        let (tx, rx) = std::sync::mpsc::channel::<(std::time::Instant, PathBuf)>();
        let spawned = std::thread::Builder::new()
            .name("trash".into())
            .spawn(move || {
                for (due, p) in rx {
                    std::thread::sleep(due.saturating_duration_since(std::time::Instant::now()));
                    remove_trashed(&p);
                }
            });
        match spawned {
            Ok(_) => Trash(Some(tx)),
            Err(e) => {
                tracing::warn!("starting the trash emptier: {e}");
                Trash(None)
            }
        }
    }

    /// Delete `path` `delay` from now (at once, on this thread, if the emptier is gone).
    fn delete_after(&self, path: PathBuf, delay: std::time::Duration) {
        let due = std::time::Instant::now() + delay;
        let unsent = match &self.0 {
            Some(tx) => tx.send((due, path)).err().map(|e| e.0 .1),
            None => Some(path),
        };
        if let Some(p) = unsent {
            remove_trashed(&p);
        }
    }
}

fn remove_trashed(p: &Path) {
    match std::fs::remove_dir_all(p) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!("removing {}: {e}", p.display());
        }
        _ => {}
    }
}

/// Where removed containers' directories wait to be deleted (under `containers/`).
const TRASH: &str = ".trash";
/// How long a removed container's directory waits there: see [`Trash`].
const TRASH_DELAY: std::time::Duration = std::time::Duration::from_millis(100);

pub fn no_such(name: &str) -> ApiError {
    ApiError::not_found(format!("No such container: {name}"))
}

fn io_err(what: &str) -> impl FnOnce(std::io::Error) -> ApiError + '_ {
    move |e| ApiError::internal(format!("{what}: {e}"))
}

pub(crate) fn random_id() -> String {
    let mut b = [0u8; 32];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        let _ = std::io::Read::read_exact(&mut f, &mut b);
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Docker's generated names: adjective_surname.
fn random_name(id: &str) -> String {
    const ADJ: [&str; 12] = [
        "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lucid", "nifty",
        "quirky", "zen",
    ];
    const NOUN: [&str; 12] = [
        "babbage", "curie", "darwin", "euler", "fermat", "galois", "hopper", "lovelace", "noether",
        "pascal", "turing", "wiles",
    ];
    let n = u64::from_str_radix(&id[..12], 16).unwrap_or(0);
    format!(
        "{}_{}",
        ADJ[(n % 12) as usize],
        NOUN[((n / 12) % 12) as usize]
    )
}

pub fn valid_name(n: &str) -> bool {
    let b = n.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'-'))
}

impl Containers {
    /// The containers in `data_root`, run under `exec_root`, their cgroups under
    /// `cgroup_parent` unless one asks for another.
    pub fn open(
        data_root: &Path,
        exec_root: &Path,
        cgroup_parent: &str,
    ) -> Result<Self, std::io::Error> {
        let dir = data_root.join("containers");
        std::fs::create_dir_all(&dir)?;
        let run = exec_root.join("containers");
        std::fs::create_dir_all(&run)?;
        let runtime_root = exec_root.join("runtime");
        std::fs::create_dir_all(&runtime_root)?;
        let mut map = HashMap::new();
        let trash = Trash::start();
        // directories an earlier daemon made ahead: deleted with the trash, below
        let pool = dir.join(fresh::FRESH);
        if pool.exists() {
            let trash = dir.join(TRASH);
            std::fs::create_dir_all(&trash)?;
            std::fs::rename(&pool, trash.join(format!("fresh.{}", std::process::id())))?;
        }
        for e in std::fs::read_dir(&dir)?.flatten() {
            if e.file_name() == TRASH {
                // what earlier removals left to delete
                trash.delete_after(e.path(), std::time::Duration::ZERO);
                continue;
            }
            let p = e.path().join("container.json");
            let bytes = match std::fs::read(&p) {
                Ok(b) => b,
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                    // a create the daemon died in, before the record was written: nothing
                    // refers to it
                    tracing::info!(
                        "removing {}: no record (an interrupted create)",
                        e.path().display()
                    );
                    let _ = std::fs::remove_dir_all(e.path());
                    continue;
                }
                Err(err) => {
                    tracing::warn!("skipping {}: {err}", p.display());
                    continue;
                }
            };
            match serde_json::from_slice::<Container>(&bytes) {
                Ok(c) if !c.removed => {
                    let (tx, _) = watch::channel(c.state.clone());
                    map.insert(
                        c.id.clone(),
                        Arc::new(Entry {
                            rec: Mutex::new(c),
                            changes: tx,
                            fs_busy: Mutex::new(()),
                            streams: Arc::default(),
                        }),
                    );
                }
                Ok(c) => {
                    // a removal was interrupted: finish it
                    let _ = std::fs::remove_dir_all(dir.join(&c.id));
                }
                Err(err) => tracing::warn!("skipping {}: {err}", p.display()),
            }
        }
        // run directories of containers that are gone (a removal a crash interrupted)
        for e in std::fs::read_dir(&run)?.flatten() {
            if !e
                .file_name()
                .to_str()
                .is_some_and(|id| map.contains_key(id))
            {
                let _ = rustix::mount::unmount(
                    monitor::rootfs(&e.path()),
                    rustix::mount::UnmountFlags::DETACH,
                );
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let fresh = fresh::FreshDirs::new(&dir);
        let cgroups = cgroups::CgroupsAhead::new(Path::new(CGROUP_ROOT), cgroup_parent);
        Ok(Self {
            dir,
            run,
            monitor_exe: std::sync::OnceLock::new(),
            spare: Mutex::new(None),
            last_start: Mutex::new(None),
            syncer: Syncer::start(),
            trash,
            fresh,
            cgroups,
            runtime_root,
            map: Mutex::new(map),
        })
    }

    /// The container's lasting files: record, log, /etc files, upper and work directories.
    pub fn dir_of(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// The container's files of this run (see [`Containers::run`]): the monitor's directory.
    pub fn run_dir_of(&self, id: &str) -> PathBuf {
        self.run.join(id)
    }

    /// At shutdown: remove the cgroups made ahead.
    pub fn close_pools(&self) {
        if let Some(c) = &self.cgroups {
            c.close();
        }
    }

    /// At a clean shutdown with no container running: the exec-root goes, so that a daemon on
    /// a scratch data root leaves nothing behind (the next start makes it again).
    pub fn release_exec_root(&self) {
        let live = std::fs::read_dir(&self.run).map_or(true, |mut d| d.next().is_some());
        if live {
            return;
        }
        let exe = self.runtime_root.join("berth.exe");
        while rustix::mount::unmount(&exe, rustix::mount::UnmountFlags::DETACH).is_ok() {}
        if let Some(exec_root) = self.run.parent() {
            let _ = std::fs::remove_dir_all(exec_root);
            // the shared parent (`/run/berth`), when this was the last daemon in it
            if let Some(parent) = exec_root.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }

    pub fn log_path(&self, id: &str) -> PathBuf {
        self.dir_of(id).join(format!("{id}-json.log"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Entry>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn all(&self) -> Vec<Arc<Entry>> {
        self.lock().values().cloned().collect()
    }

    /// By full ID, name (with or without `/`), or unique ID prefix.
    pub fn get(&self, name: &str) -> Result<Arc<Entry>, ApiError> {
        let map = self.lock();
        if let Some(e) = map.get(name) {
            return Ok(e.clone());
        }
        let bare = name.strip_prefix('/').unwrap_or(name);
        if let Some(e) = map
            .values()
            .find(|e| e.rec.lock().unwrap_or_else(|p| p.into_inner()).name == bare)
        {
            return Ok(e.clone());
        }
        if !name.is_empty() && name.bytes().all(|b| b.is_ascii_hexdigit()) {
            let mut it = map.iter().filter(|(id, _)| id.starts_with(name));
            if let Some((_, e)) = it.next() {
                if it.next().is_some() {
                    return Err(ApiError::bad_request(format!(
                        "multiple IDs found with provided prefix: {name}"
                    )));
                }
                return Ok(e.clone());
            }
        }
        Err(no_such(name))
    }

    pub fn uses_image(&self, image_id: &str) -> Option<String> {
        self.lock().values().find_map(|e| {
            let c = e.rec.lock().unwrap_or_else(|p| p.into_inner());
            (c.image_id == image_id)
                .then(|| format!("{} container {}", c.state.status.as_str(), c.short_id()))
        })
    }

    /// A name the user asked for, valid and free (`/` prefix dropped).
    fn free_name(map: &HashMap<String, Arc<Entry>>, n: &str) -> Result<String, ApiError> {
        let n = n.strip_prefix('/').unwrap_or(n);
        if !valid_name(n) {
            return Err(ApiError::bad_request(format!(
                "Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed"
            )));
        }
        if let Some(other) = map
            .values()
            .find(|e| e.rec.lock().unwrap_or_else(|p| p.into_inner()).name == n)
        {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!(
                    "Conflict. The container name \"/{n}\" is already in use by container \"{}\". You have to remove (or rename) that container to be able to reuse that name.",
                    other.rec.lock().unwrap_or_else(|p| p.into_inner()).id
                ),
            ));
        }
        Ok(n.to_owned())
    }

    /// `rename`: a new, free name for `e`.
    pub fn rename(&self, e: &Entry, name: &str) -> Result<(), ApiError> {
        let map = self.lock();
        let old = e.snapshot().name;
        if name.strip_prefix('/').unwrap_or(name) == old {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "Renaming a container with the same name as its current name",
            ));
        }
        let n = Self::free_name(&map, name)?;
        // still holding the map: nobody takes the name in between
        self.update(e, |c| c.name = n)?;
        drop(map);
        Ok(())
    }

    /// Register a new container (not started). Fails on a name conflict.
    pub fn insert(&self, mut c: Container, name: Option<&str>) -> Result<Arc<Entry>, ApiError> {
        c.id = random_id();
        let mut map = self.lock();
        let name = match name {
            Some(n) => Self::free_name(&map, n)?,
            None => random_name(&c.id),
        };
        c.name = name;
        let dir = self.dir_of(&c.id);
        self.fresh
            .take_into(&dir)
            .map_err(io_err("creating the container directory"))?;
        self.persist(&c)?;
        let (tx, _) = watch::channel(c.state.clone());
        let e = Arc::new(Entry {
            rec: Mutex::new(c.clone()),
            changes: tx,
            fs_busy: Mutex::new(()),
            streams: Arc::default(),
        });
        map.insert(c.id.clone(), e.clone());
        Ok(e)
    }

    /// Write `container.json` atomically (flushed to disk by the [`Syncer`]).
    pub fn persist(&self, c: &Container) -> Result<(), ApiError> {
        let dir = self.dir_of(&c.id);
        let tmp = dir.join("container.json.tmp");
        let bytes = serde_json::to_vec_pretty(c).map_err(|e| ApiError::internal(e.to_string()))?;
        let mut f = std::fs::File::create(&tmp).map_err(io_err("writing container state"))?;
        f.write_all(&bytes)
            .map_err(io_err("writing container state"))?;
        let path = dir.join("container.json");
        std::fs::rename(&tmp, &path).map_err(io_err("writing container state"))?;
        self.syncer
            .queue(path)
            .map_err(io_err("writing container state"))
    }

    /// Apply `f` to the record, persist it, and tell waiters.
    pub fn update(&self, e: &Entry, f: impl FnOnce(&mut Container)) -> Result<Container, ApiError> {
        self.update_with(e, true, f)
    }

    /// [`Self::update`], written to disk only when `persist`.
    fn update_with(
        &self,
        e: &Entry,
        persist: bool,
        f: impl FnOnce(&mut Container),
    ) -> Result<Container, ApiError> {
        let snapshot = {
            let mut c = e.rec.lock().unwrap_or_else(|p| p.into_inner());
            let before = c.clone();
            f(&mut c);
            let snapshot = c.clone();
            // Written under the record's lock: concurrent updates (a restart policy and a
            // `stop`) neither race on the temporary file nor land out of order.
            if persist && !snapshot.removed && snapshot != before {
                self.persist(&snapshot)?;
            }
            snapshot
        };
        e.changes.send_replace(snapshot.state.clone());
        Ok(snapshot)
    }

    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }

    /// The berth binary monitors run from, and whether it is already unwritable.
    fn monitor_exe(&self) -> Result<(PathBuf, bool), ApiError> {
        match self
            .monitor_exe
            .get_or_init(|| monitor::readonly_exe(&self.runtime_root))
        {
            Some(p) => Ok((p.clone(), true)),
            None => Ok((
                std::env::current_exe().map_err(io_err("finding the berth binary"))?,
                false,
            )),
        }
    }

    /// How long after a start to make the next spare monitor. A lone start (`docker run`)
    /// is best served by waiting a moment: the new monitor's exec costs a few milliseconds
    /// of CPU that would slow this container's own run and exit on a small machine
    /// (measured here, two CPUs: `run --rm` 16.4 -> 15.1 ms). In a burst of starts (compose,
    /// a loop of `run -d`) the next one needs it now.
    pub fn spare_delay(&self) -> std::time::Duration {
        let now = std::time::Instant::now();
        let last = self
            .last_start
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(now);
        spare_delay_after(last.map(|l| now.duration_since(l)))
    }

    /// Start a spare monitor for the next container, unless one waits already.
    pub fn prepare_spare(&self) {
        if self
            .spare
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some()
        {
            return;
        }
        let Ok((exe, sealed)) = self.monitor_exe() else {
            return;
        };
        match monitor::Spare::spawn(&exe, sealed) {
            Ok(s) => {
                let old = self
                    .spare
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .replace(s);
                drop(old); // a second one raced us: closing its stdin ends it
            }
            Err(e) => tracing::warn!("starting a spare monitor: {e}"),
        }
    }

    /// Run the monitor of the container in `dir`: the spare one when there is one, else a
    /// new process. Returns its status line and its pid.
    fn launch_monitor(&self, dir: &Path) -> Result<(String, i32), ApiError> {
        let spare = self.spare.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(s) = spare {
            let pid = s.pid;
            match s.take(dir) {
                Ok(line) => return Ok((line, pid)),
                // it died waiting (killed by someone): start one the slow way
                Err(e) => tracing::warn!("the spare monitor {pid} is gone: {e}"),
            }
        }
        let (exe, sealed) = self.monitor_exe()?;
        let log = std::fs::File::create(dir.join("monitor.log"))
            .map_err(io_err("creating monitor.log"))?;
        let mut cmd = std::process::Command::new(exe);
        cmd.arg("monitor")
            .arg("--stage2")
            .arg(dir)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(log);
        if sealed {
            // already unwritable: the monitor need not re-execute itself from a copy
            cmd.env(runtime::exeseal::MARK, "1");
        }
        let mut child = cmd
            .spawn()
            .map_err(io_err("starting the container monitor"))?;
        let mut monitor_pid = 0;
        let status = child
            .stdout
            .take()
            .map(|o| {
                let mut r = BufReader::new(o);
                let mut line = String::new();
                let _ = r.read_line(&mut line);
                if let Some(pid) = line.trim().strip_prefix("pid ") {
                    monitor_pid = pid.parse().unwrap_or(0);
                    line.clear();
                    let _ = r.read_line(&mut line);
                }
                line
            })
            .unwrap_or_default();
        let _ = child.wait();
        Ok((status, monitor_pid))
    }

    /// Mount the root filesystem of `e` ahead of its start, on a thread of its own while
    /// the start makes the network and the monitor's config (the overlay's mount is
    /// ~0.3-0.5 ms of the kernel's here); its monitor is told (`premounted`) and unmounts
    /// it as its own. Not for a live container, nor where the mount needs a working
    /// directory (a process-wide one: the monitor does those), nor over a mount still
    /// there (the last run's monitor still ending). True when this call mounted it. Errors
    /// are left to the monitor, which mounts (and reports) as before.
    pub fn premount(&self, e: &Entry, overlay: &image_store::layers::OverlayMount) -> bool {
        if overlay.chdir.is_some() {
            return false;
        }
        let _fs = e.fs_busy.lock().unwrap_or_else(|p| p.into_inner());
        let c = e.snapshot();
        if c.state.status.is_live() || c.removed {
            return false;
        }
        let target = monitor::rootfs(&self.run_dir_of(&c.id));
        if monitor::is_mounted(&target) {
            return false;
        }
        let mounted = monitor::RootOverlay {
            overlay,
            volatile: c.auto_remove(),
        }
        .mount(&target);
        if let Err(err) = &mounted {
            tracing::debug!("mounting the root filesystem of {} ahead: {err}", c.id);
        }
        mounted.is_ok()
    }

    /// Undo a [`Containers::premount`] whose start did not reach its monitor.
    pub fn unmount_premounted(&self, e: &Entry) {
        let _fs = e.fs_busy.lock().unwrap_or_else(|p| p.into_inner());
        let c = e.snapshot();
        if !c.state.status.is_live() {
            let target = monitor::rootfs(&self.run_dir_of(&c.id));
            let _ = rustix::mount::unmount(&target, rustix::mount::UnmountFlags::DETACH);
        }
    }

    /// Start the container through a new monitor. Returns once the process runs (or failed).
    pub fn start(&self, e: &Arc<Entry>, mut cfg: MonitorConfig) -> Result<(), ApiError> {
        let _fs = e.fs_busy.lock().unwrap_or_else(|p| p.into_inner());
        let c = e.snapshot();
        if c.state.status.is_live() {
            return Err(ApiError::new(
                StatusCode::NOT_MODIFIED,
                "container already started",
            ));
        }
        let dir = self.run_dir_of(&c.id);
        std::fs::create_dir_all(&dir).map_err(io_err("creating the run directory"))?;
        let _ = std::fs::remove_file(monitor::exit_file(&dir));
        cfg.cgroup_ahead = self
            .cgroups
            .as_ref()
            .and_then(|c| c.take_for(cfg.spec["linux"]["cgroupsPath"].as_str().unwrap_or("")));
        // removed unless the monitor says the container started (its runtime took it)
        let mut taken = cgroups::Taken(cfg.cgroup_ahead.clone());
        std::fs::write(
            dir.join("monitor.json"),
            serde_json::to_vec(&cfg).map_err(|e| ApiError::internal(e.to_string()))?,
        )
        .map_err(io_err("writing monitor.json"))?;
        let log_offset = std::fs::metadata(&cfg.log_path)
            .map(|m| m.len())
            .unwrap_or(0);
        runtime::trace::mark("d launch monitor");
        let (status, monitor_pid) = self.launch_monitor(&dir)?;
        runtime::trace::mark("d monitor said");
        let status = status.trim();
        if let Some(pids) = status.strip_prefix("ok ") {
            taken.0 = None;
            let mut it = pids
                .split_whitespace()
                .map(|p| p.parse::<i32>().unwrap_or(0));
            let (pid, monitor_pid) = (it.next().unwrap_or(0), it.next().unwrap_or(0));
            // An auto-removed container's start is not written (its exit is not either): a
            // daemon that dies meanwhile finds the monitor answering, or its exit status,
            // at its next start (`adopt_if_running`).
            self.update_with(e, !c.auto_remove(), |c| {
                c.state.status = Status::Running;
                c.state.pid = pid;
                c.state.monitor_pid = monitor_pid;
                c.state.exit_code = 0;
                c.state.error.clear();
                c.state.oom_killed = false;
                c.state.started_at = monitor::now();
                c.state.finished_at = model::ZERO_TIME.into();
                c.state.log_offset = log_offset;
            })?;
            Ok(())
        } else {
            let msg = status.strip_prefix("err ").unwrap_or(if status.is_empty() {
                "the container monitor died during start"
            } else {
                status
            });
            let msg = friendly_start_error(msg, &c);
            let _ = self.update(e, |c| {
                // the monitor that failed: the daemon reaps it by this pid
                c.state.monitor_pid = monitor_pid;
                c.state.error = msg.clone();
                c.state.exit_code = 127;
                c.state.status = if c.state.status == Status::Created {
                    Status::Created
                } else {
                    Status::Exited
                };
            });
            Err(ApiError::new(
                if msg.contains("executable file not found") {
                    StatusCode::BAD_REQUEST
                } else {
                    StatusCode::INTERNAL_SERVER_ERROR
                },
                msg,
            ))
        }
    }

    /// Block until the monitor of `e` goes away; then record the exit. Returns the final state.
    /// `restarts` says whether the restart policy starts it again: then it is recorded as
    /// restarting in the same change, so that nobody (a removal) sees it exited in between.
    pub fn watch_blocking(
        &self,
        e: &Arc<Entry>,
        before_exit: &dyn Fn(&str),
        restarts: &dyn Fn(&Container) -> bool,
    ) -> Result<Container, ApiError> {
        let c = e.snapshot();
        let dir = self.run_dir_of(&c.id);
        if let Ok(mut s) = monitor::connect(&dir) {
            let req = serde_json::to_string(&AttachRequest::default()).unwrap_or_default();
            let _ = writeln!(s, "{req}");
            let _ = std::io::copy(&mut s, &mut std::io::sink());
        }
        runtime::trace::mark("d watch eof");
        // The monitor writes exit.json before it closes its clients.
        let exit = self.exit_status(&c.id);
        before_exit(&c.id);
        // An auto-removed container's exit is not written: its removal follows at once (a
        // crash in between finds it running, its monitor gone: it is watched, then removed).
        let persist = !c.auto_remove();
        self.update_with(e, persist, |c| {
            c.state.status = Status::Exited;
            c.state.pid = 0;
            c.state.exits += 1;
            match &exit {
                Some(x) => {
                    c.state.exit_code = x.code;
                    c.state.finished_at = x.finished_at.clone();
                    c.state.oom_killed = x.oom_killed;
                }
                None => {
                    c.state.exit_code = 137;
                    c.state.finished_at = monitor::now();
                    c.state.error = "the container's monitor died".into();
                }
            }
            if !c.state.manually_stopped && !c.removed && restarts(c) {
                c.state.status = Status::Restarting;
            }
        })
    }

    /// What the container's monitor wrote when the container exited, if it did.
    pub fn exit_status(&self, id: &str) -> Option<ExitStatus> {
        std::fs::read(monitor::exit_file(&self.run_dir_of(id)))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
    }

    /// Remove the container's files and forget it.
    /// Take a container's directory out of the way at once (a rename into `.trash`) and
    /// delete it in the background: a removal (`rm`, `--rm`) does not wait for its files.
    fn discard_dir(&self, dir: &Path, id: &str) -> Result<(), ApiError> {
        let trash = self.dir.join(TRASH);
        let _ = std::fs::create_dir_all(&trash);
        let target = trash.join(format!("{id}.{}", std::process::id()));
        match std::fs::rename(dir, &target) {
            Ok(()) => {
                self.trash.delete_after(target, TRASH_DELAY);
                Ok(())
            }
            Err(_) => {
                std::fs::remove_dir_all(dir).map_err(io_err("removing the container directory"))
            }
        }
    }

    pub fn remove_files(&self, e: &Arc<Entry>) -> Result<(), ApiError> {
        // `state.removed` (what waiters see) is set only once the record is gone, so that
        // `wait?condition=removed` returns when nothing holds the image any more. Nothing
        // is written first: the rename into `.trash` is what removes the record, and a
        // crash before it leaves the container as it was.
        // The run directory (the root filesystem's mount point, the monitor's files) goes
        // after the waiters are told: nothing of the container is reachable by then, and
        // its unmount may wait for an RCU grace period (~0.2 ms of a `run --rm` here).
        let _fs = e.fs_busy.lock().unwrap_or_else(|p| p.into_inner());
        let c = self.update(e, |c| c.removed = true)?;
        let run = self.run_dir_of(&c.id);
        let removed = self.discard_dir(&self.dir_of(&c.id), &c.id);
        runtime::trace::mark("d rm discarded");
        if removed.is_ok() {
            self.forget(&c.id);
        }
        let state = {
            let mut rec = e.rec.lock().unwrap_or_else(|p| p.into_inner());
            rec.state.removed = true;
            rec.state.clone()
        };
        e.changes.send_replace(state);
        let _ = rustix::mount::unmount(monitor::rootfs(&run), rustix::mount::UnmountFlags::DETACH);
        let _ = std::fs::remove_dir_all(&run);
        runtime::trace::mark("d rm unmounted");
        removed
    }
}

/// [`Containers::spare_delay`] for a start that came `since_last` after the one before.
fn spare_delay_after(since_last: Option<std::time::Duration>) -> std::time::Duration {
    const BURST: std::time::Duration = std::time::Duration::from_millis(250);
    match since_last {
        Some(gap) if gap < BURST => std::time::Duration::ZERO,
        _ => std::time::Duration::from_millis(40),
    }
}

/// Docker's wording for a missing entrypoint.
fn friendly_start_error(msg: &str, c: &Container) -> String {
    if msg.contains("No such file or directory")
        || msg.contains("ENOENT")
        || msg.contains("not found in the container's PATH")
    {
        format!(
            "failed to create shim task: OCI runtime create failed: runc create failed: unable to start container process: exec: \"{}\": executable file not found in $PATH: unknown",
            c.path
        )
    } else {
        msg.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A discarded directory stays a moment (the removal's waiter answers first), then goes;
    /// one thread empties the trash for every removal.
    #[test]
    fn the_trash_is_emptied_a_moment_later() {
        let trash = Trash::start();
        let root = tempfile::tempdir().unwrap();
        let dirs: Vec<PathBuf> = (0..3).map(|i| root.path().join(format!("c{i}"))).collect();
        for d in &dirs {
            std::fs::create_dir_all(d.join("upper/etc")).unwrap();
            std::fs::write(d.join("container.json"), "{}").unwrap();
            trash.delete_after(d.clone(), TRASH_DELAY);
        }
        assert!(dirs.iter().all(|d| d.exists()), "deleted at once");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while dirs.iter().any(|d| d.exists()) {
            assert!(std::time::Instant::now() < deadline, "never deleted");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    use std::time::Duration;

    #[test]
    fn the_spare_monitor_waits_after_a_lone_start_not_in_a_burst() {
        assert_eq!(spare_delay_after(None), Duration::from_millis(40));
        assert_eq!(
            spare_delay_after(Some(Duration::from_secs(3))),
            Duration::from_millis(40)
        );
        assert_eq!(
            spare_delay_after(Some(Duration::from_millis(12))),
            Duration::ZERO
        );
    }
}
