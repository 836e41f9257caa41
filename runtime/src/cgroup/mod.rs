//! Cgroups v1 and v2 for one container: which directories, which file writes (computed as
//! data by [`writes`] and snapshot-tested), then applied through the [`CgroupFs`] seam.
//! The cgroup root (`/sys/fs/cgroup`) is a parameter. Knows nothing of namespaces.

pub mod devbpf;
pub mod fake;
pub mod fs;

use std::path::{Component, Path, PathBuf};

use oci_spec::runtime::LinuxResources;

pub use fs::RealCgroupFs;

/// The file operations cgroups need.
pub trait CgroupFs {
    fn exists(&self, path: &Path) -> bool;
    fn read(&self, path: &Path) -> std::io::Result<String>;
    fn write(&self, path: &Path, value: &str) -> std::io::Result<()>;
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()>;
    fn remove_dir(&self, path: &Path) -> std::io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()>;
    /// Whether the v1 hierarchy of `controller` is mounted under `root`.
    fn hierarchy(&self, root: &Path, controller: &'static str) -> bool {
        self.exists(&root.join(controller))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("{field}: {reason}")]
    Spec { field: String, reason: String },
    #[error("cgroup {op} {path}: {source}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("removing cgroup {path}: still busy after killing its processes")]
    Busy { path: PathBuf },
}

fn io<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Version {
    /// Controllers each mounted at `<root>/<controller>` (also "hybrid" hosts).
    V1,
    /// One unified hierarchy at `<root>`.
    V2,
}

/// v1 controllers berth puts a container in (when the host has them).
pub const V1_CONTROLLERS: [&str; 8] = [
    "memory", "cpu", "cpuacct", "cpuset", "pids", "devices", "freezer", "blkio",
];

/// v2 controllers berth enables along the path (when the parent offers them).
pub const V2_CONTROLLERS: [&str; 4] = ["cpu", "cpuset", "memory", "pids"];

pub fn detect(fs: &dyn CgroupFs, root: &Path) -> Version {
    if fs.exists(&root.join("cgroup.controllers")) {
        Version::V2
    } else {
        Version::V1
    }
}

/// One write: `controller` is the v1 hierarchy (`None` on v2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub controller: Option<&'static str>,
    pub file: String,
    pub value: String,
}

fn w(controller: &'static str, file: &str, value: impl ToString, v: Version) -> Write {
    Write {
        controller: (v == Version::V1).then_some(controller),
        file: file.to_string(),
        value: value.to_string(),
    }
}

/// Shares (v1, 2..262144) to weight (v2, 1..10000), the kernel's documented mapping.
pub fn shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    1 + (shares.clamp(2, 262_144) - 2) * 9999 / 262_142
}

fn max_or(v: i64) -> String {
    if v < 0 {
        "max".to_string()
    } else {
        v.to_string()
    }
}

/// The v1 device rules that let a container use its device nodes (the plan's `devices`)
/// and make ptys (`c 136:*`, `/dev/ptmx`): what [`writes`] appends to a devices list.
pub fn node_rules(devices: &[crate::plan::DeviceNode]) -> Vec<String> {
    devices
        .iter()
        .map(|d| {
            let t = match d.kind {
                crate::plan::DeviceKind::Char => 'c',
                crate::plan::DeviceKind::Block => 'b',
                crate::plan::DeviceKind::Fifo => 'p',
            };
            format!("{t} {}:{} rwm", d.major, d.minor)
        })
        .chain(["c 136:* rwm".to_string(), "c 5:2 rwm".to_string()])
        .collect()
}

/// The v1 device writes of a container that names no device of its own (Docker's: deny
/// all, then the default nodes and ptys). A cgroup made ahead has them applied already.
fn preset_device_writes() -> Vec<Write> {
    let deny_all = w("devices", "devices.deny", "a *:* rwm", Version::V1);
    std::iter::once(deny_all)
        .chain(
            node_rules(&crate::plan::default_devices())
                .into_iter()
                .map(|r| w("devices", "devices.allow", r, Version::V1)),
        )
        .collect()
}

/// The writes that apply `res`, in order. Extra default device rules are appended to
/// the v1 devices list so the init can create the default nodes.
pub fn writes(
    res: &LinuxResources,
    version: Version,
    default_devices: &[String],
) -> Result<Vec<Write>, CgroupError> {
    let v = version;
    let mut out = Vec::new();
    if let Some(m) = res.memory() {
        match v {
            Version::V1 => {
                if let Some(l) = m.limit() {
                    out.push(w("memory", "memory.limit_in_bytes", l, v));
                }
                if let Some(r) = m.reservation() {
                    out.push(w("memory", "memory.soft_limit_in_bytes", r, v));
                }
                if let Some(s) = m.swap() {
                    out.push(w("memory", "memory.memsw.limit_in_bytes", s, v));
                }
                if let Some(s) = m.swappiness() {
                    if s > 100 {
                        return Err(CgroupError::Spec {
                            field: "linux.resources.memory.swappiness".into(),
                            reason: format!("{s} is above 100"),
                        });
                    }
                    out.push(w("memory", "memory.swappiness", s, v));
                }
                if m.disable_oom_killer() == Some(true) {
                    out.push(w("memory", "memory.oom_control", 1, v));
                }
            }
            Version::V2 => {
                if let Some(r) = m.reservation() {
                    out.push(w("memory", "memory.low", max_or(r), v));
                }
                if let Some(l) = m.limit() {
                    out.push(w("memory", "memory.max", max_or(l), v));
                }
                if let Some(s) = m.swap() {
                    // OCI's swap is memory+swap; v2 limits swap alone.
                    let swap = match (s, m.limit()) {
                        (s, _) if s < 0 => "max".to_string(),
                        (s, Some(l)) if l >= 0 => {
                            if s < l {
                                return Err(CgroupError::Spec {
                                    field: "linux.resources.memory.swap".into(),
                                    reason: format!("{s} is below memory.limit {l}"),
                                });
                            }
                            (s - l).to_string()
                        }
                        (s, _) => s.to_string(),
                    };
                    out.push(w("memory", "memory.swap.max", swap, v));
                }
                if m.swappiness().is_some() {
                    return Err(CgroupError::Spec {
                        field: "linux.resources.memory.swappiness".into(),
                        reason: "not available with cgroup v2".into(),
                    });
                }
            }
        }
    }
    if let Some(c) = res.cpu() {
        match v {
            Version::V1 => {
                if let Some(s) = c.shares() {
                    out.push(w("cpu", "cpu.shares", s, v));
                }
                if let Some(p) = c.period() {
                    out.push(w("cpu", "cpu.cfs_period_us", p, v));
                }
                if let Some(q) = c.quota() {
                    out.push(w("cpu", "cpu.cfs_quota_us", q, v));
                }
            }
            Version::V2 => {
                if let Some(s) = c.shares() {
                    out.push(w("cpu", "cpu.weight", shares_to_weight(s), v));
                }
                if c.quota().is_some() || c.period().is_some() {
                    let quota = c.quota().map_or("max".to_string(), max_or);
                    let period = c.period().unwrap_or(100_000);
                    out.push(w("cpu", "cpu.max", format!("{quota} {period}"), v));
                }
            }
        }
        if let Some(cpus) = c.cpus().as_deref().filter(|s| !s.is_empty()) {
            out.push(w("cpuset", "cpuset.cpus", cpus, v));
        }
        if let Some(mems) = c.mems().as_deref().filter(|s| !s.is_empty()) {
            out.push(w("cpuset", "cpuset.mems", mems, v));
        }
    }
    if let Some(p) = res.pids() {
        let limit = if p.limit() <= 0 {
            "max".to_string()
        } else {
            p.limit().to_string()
        };
        out.push(w("pids", "pids.max", limit, v));
    }
    if let Some(devs) = res.devices() {
        if v == Version::V1 {
            for d in devs {
                let file = if d.allow() {
                    "devices.allow"
                } else {
                    "devices.deny"
                };
                out.push(w("devices", file, d, v));
            }
            if !devs.is_empty() {
                for d in default_devices {
                    out.push(w("devices", "devices.allow", d, v));
                }
            }
        }
        // v2 device control needs an eBPF program: not implemented, the rules are ignored.
    }
    if let Some(u) = res.unified() {
        if !u.is_empty() {
            if v == Version::V1 {
                return Err(CgroupError::Spec {
                    field: "linux.resources.unified".into(),
                    reason: "needs cgroup v2; this host uses v1".into(),
                });
            }
            let mut keys: Vec<_> = u.iter().collect();
            keys.sort();
            for (k, val) in keys {
                if k.contains('/') || k.starts_with('.') {
                    return Err(CgroupError::Spec {
                        field: format!("linux.resources.unified.{k}"),
                        reason: "not a cgroup file name".into(),
                    });
                }
                out.push(Write {
                    controller: None,
                    file: k.clone(),
                    value: val.clone(),
                });
            }
        }
    }
    Ok(out)
}

/// A container's cgroup: where it is, and how to create, fill and remove it.
/// A cgroup's usage counters; `u64::MAX` for "no limit".
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Stats {
    pub memory_usage: u64,
    pub memory_limit: u64,
    pub cpu_ns: u64,
    pub pids: u64,
    pub pids_limit: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Cgroup {
    pub version: Version,
    /// Usually `/sys/fs/cgroup`.
    pub root: PathBuf,
    /// Relative to the root of each hierarchy.
    pub path: PathBuf,
}

impl Cgroup {
    /// `cgroups_path` from the spec (`linux.cgroupsPath`), defaulting to `berth/<id>`.
    pub fn new(
        fs: &dyn CgroupFs,
        root: &Path,
        cgroups_path: Option<&Path>,
        id: &str,
    ) -> Result<Cgroup, CgroupError> {
        let rel: PathBuf = match cgroups_path {
            Some(p) if !p.as_os_str().is_empty() => {
                let s = p.to_string_lossy();
                if s.contains(':') {
                    return Err(CgroupError::Spec {
                        field: "linux.cgroupsPath".into(),
                        reason: format!("{s:?} is a systemd slice:prefix:name path; berth-runtime manages cgroupfs paths only"),
                    });
                }
                p.components()
                    .filter_map(|c| match c {
                        Component::Normal(n) => Some(Ok(n)),
                        Component::RootDir | Component::CurDir => None,
                        _ => Some(Err(())),
                    })
                    .collect::<Result<PathBuf, ()>>()
                    .map_err(|()| CgroupError::Spec {
                        field: "linux.cgroupsPath".into(),
                        reason: format!("{s:?} contains '..'"),
                    })?
            }
            _ => PathBuf::from("berth").join(id),
        };
        if rel.as_os_str().is_empty() {
            return Err(CgroupError::Spec {
                field: "linux.cgroupsPath".into(),
                reason: "must not be the root cgroup".into(),
            });
        }
        Ok(Cgroup {
            version: detect(fs, root),
            root: root.to_path_buf(),
            path: rel,
        })
    }

    /// The directories of this cgroup: one per present v1 controller, or one on v2.
    pub fn dirs(&self, fs: &dyn CgroupFs) -> Vec<(Option<&'static str>, PathBuf)> {
        match self.version {
            Version::V2 => vec![(None, self.root.join(&self.path))],
            Version::V1 => V1_CONTROLLERS
                .iter()
                .filter(|c| fs.hierarchy(&self.root, c))
                .map(|c| (Some(*c), self.root.join(c).join(&self.path)))
                .collect(),
        }
    }

    fn dir_of(&self, controller: Option<&'static str>) -> PathBuf {
        match controller {
            Some(c) => self.root.join(c).join(&self.path),
            None => self.root.join(&self.path),
        }
    }

    /// Create the cgroup (by taking over the one made `ahead` when given, see
    /// [`Cgroup::adopt`]), apply the writes, and move `pid` into it (when given; on v1 the
    /// process joins itself instead, see [`Cgroup::self_join_files`]).
    pub fn create(
        &self,
        fs: &dyn CgroupFs,
        writes: &[Write],
        pid: Option<i32>,
        ahead: Option<&Path>,
    ) -> Result<(), CgroupError> {
        // The one made ahead has the preset device rules: fine when the container wants
        // them (not written again) or resets the list itself (its first rule is "a");
        // otherwise (no rules: the parent's, say) a new cgroup is made.
        let preset = self.preset_devices(fs);
        let devices: Vec<&Write> = writes
            .iter()
            .filter(|w| w.controller == Some("devices"))
            .collect();
        let wants_preset =
            devices.len() == preset.len() && devices.iter().zip(&preset).all(|(a, b)| *a == b);
        let resets = devices.first().is_some_and(|w| w.value.starts_with("a "));
        let adopted = match ahead {
            Some(a) if wants_preset || resets => self.adopt(fs, a),
            Some(a) => {
                self.discard_ahead(fs, a);
                false
            }
            None => false,
        };
        match self.version {
            Version::V1 if adopted => {}
            Version::V1 => self.create_v1(fs)?,
            Version::V2 => self.create_v2(fs)?,
        }
        let skip_devices = adopted && wants_preset;
        self.apply_each(
            fs,
            writes
                .iter()
                .filter(|w| !(skip_devices && w.controller == Some("devices"))),
        )?;
        if let Some(pid) = pid {
            self.join(fs, pid)?;
        }
        Ok(())
    }

    /// Apply `writes` to the cgroup (at create, and for `update` of a live container).
    pub fn apply(&self, fs: &dyn CgroupFs, writes: &[Write]) -> Result<(), CgroupError> {
        self.apply_each(fs, writes.iter())
    }

    fn apply_each<'w>(
        &self,
        fs: &dyn CgroupFs,
        writes: impl Iterator<Item = &'w Write>,
    ) -> Result<(), CgroupError> {
        let dirs = self.dirs(fs);
        for wr in writes {
            if self.version == Version::V1 && !dirs.iter().any(|(c, _)| *c == wr.controller) {
                return Err(CgroupError::Spec {
                    field: "linux.resources".into(),
                    reason: format!(
                        "the host has no {} cgroup controller",
                        wr.controller.unwrap_or("?")
                    ),
                });
            }
            let path = self.dir_of(wr.controller).join(&wr.file);
            fs.write(&path, &wr.value).map_err(io("write", &path))?;
        }
        Ok(())
    }

    /// On v1, the files a single-threaded process writes "0" into to move itself: the
    /// `tasks` file of each hierarchy. Moving a whole process through `cgroup.procs` takes
    /// the kernel's process-wide cgroup lock (an RCU grace period, 5-13 ms measured here);
    /// a thread moving itself skips it (0.6 ms). Empty on v2, where the caller joins.
    pub fn self_join_files(&self, fs: &dyn CgroupFs) -> Vec<PathBuf> {
        match self.version {
            Version::V1 => self
                .dirs(fs)
                .into_iter()
                .map(|(_, d)| d.join("tasks"))
                .collect(),
            Version::V2 => Vec::new(),
        }
    }

    /// Make this cgroup before its container, to be taken over by another's [`Cgroup::adopt`]
    /// at the container's start: v1 only, where making one costs a mkdir per hierarchy
    /// (~0.04 ms each here, 8 of them) plus cpuset's inherited values, and a rename takes it.
    /// A cgroup v2 directory cannot be renamed.
    pub fn create_ahead(&self, fs: &dyn CgroupFs) -> Result<(), CgroupError> {
        if self.version != Version::V1 {
            return Err(CgroupError::Spec {
                field: "cgroup".into(),
                reason: "only cgroup v1 directories can be made ahead".into(),
            });
        }
        self.create_v1(fs)?;
        self.apply(fs, &self.preset_devices(fs))
    }

    /// The device writes a cgroup made ahead has applied (none without a devices hierarchy).
    fn preset_devices(&self, fs: &dyn CgroupFs) -> Vec<Write> {
        if self.version == Version::V1 && fs.hierarchy(&self.root, "devices") {
            preset_device_writes()
        } else {
            Vec::new()
        }
    }

    /// Remove the cgroup made ahead at `ahead` (relative), unused.
    fn discard_ahead(&self, fs: &dyn CgroupFs, ahead: &Path) {
        for (c, _) in self.dirs(fs) {
            let _ = fs.remove_dir(&match c {
                Some(c) => self.root.join(c).join(ahead),
                None => self.root.join(ahead),
            });
        }
    }

    /// Take over the cgroup made ahead at `ahead` (relative, in the same parent): renamed
    /// to this one in every hierarchy. False, and nothing left of `ahead`, when that is not
    /// possible: not v1, another parent, or not all there to take (this cgroup is then made
    /// as any other, and what was taken stays in use).
    pub fn adopt(&self, fs: &dyn CgroupFs, ahead: &Path) -> bool {
        let usable = self.version == Version::V1
            && ahead.parent().is_some()
            && ahead.parent() == self.path.parent()
            && ahead != self.path;
        let dirs = self.dirs(fs);
        let taken = usable
            && !dirs.is_empty()
            && dirs.iter().all(|(c, d)| {
                let from = match c {
                    Some(c) => self.root.join(c).join(ahead),
                    None => self.root.join(ahead),
                };
                // one hierarchy under two names (cpu and cpuacct, links to cpu,cpuacct on
                // systemd hosts): moved already
                fs.rename(&from, d).is_ok() || (!fs.exists(&from) && fs.exists(d))
            });
        if !taken {
            // (what was renamed already is gone from `ahead`)
            self.discard_ahead(fs, ahead);
        }
        taken
    }

    fn create_v1(&self, fs: &dyn CgroupFs) -> Result<(), CgroupError> {
        for (c, d) in self.dirs(fs) {
            fs.create_dir_all(&d).map_err(io("mkdir", &d))?;
            if c == Some("cpuset") {
                // A v1 cpuset refuses tasks until cpus and mems are set: inherit them
                // downwards from the first ancestor that has them.
                let base = self.root.join("cpuset");
                let mut cur = base.clone();
                let mut inherited: Option<(String, String)> = None;
                for part in self.path.iter() {
                    let parent = cur.clone();
                    cur.push(part);
                    for f in ["cpuset.cpus", "cpuset.mems"] {
                        let v = fs.read(&cur.join(f)).unwrap_or_default();
                        if v.trim().is_empty() {
                            let pv = match (&inherited, f) {
                                (Some((c, _)), "cpuset.cpus") => c.clone(),
                                (Some((_, m)), _) => m.clone(),
                                (None, _) => fs
                                    .read(&parent.join(f))
                                    .unwrap_or_default()
                                    .trim()
                                    .to_string(),
                            };
                            let p = cur.join(f);
                            fs.write(&p, &pv).map_err(io("write", &p))?;
                        }
                    }
                    inherited = Some((
                        fs.read(&cur.join("cpuset.cpus"))
                            .unwrap_or_default()
                            .trim()
                            .to_string(),
                        fs.read(&cur.join("cpuset.mems"))
                            .unwrap_or_default()
                            .trim()
                            .to_string(),
                    ));
                }
            }
        }
        Ok(())
    }

    fn create_v2(&self, fs: &dyn CgroupFs) -> Result<(), CgroupError> {
        // Enable our controllers in every ancestor's subtree_control, top down.
        let mut cur = self.root.clone();
        for part in self.path.iter() {
            let available = fs.read(&cur.join("cgroup.controllers")).unwrap_or_default();
            let enable: Vec<String> = V2_CONTROLLERS
                .iter()
                .filter(|c| available.split_whitespace().any(|a| a == **c))
                .map(|c| format!("+{c}"))
                .collect();
            if !enable.is_empty() {
                let p = cur.join("cgroup.subtree_control");
                fs.write(&p, &enable.join(" ")).map_err(io("write", &p))?;
            }
            cur.push(part);
            if !fs.exists(&cur) {
                fs.create_dir_all(&cur).map_err(io("mkdir", &cur))?;
            }
        }
        Ok(())
    }

    /// What the cgroup's processes use now (`stats`, `events --stats`). Missing files
    /// read as zero (and a missing limit as none).
    pub fn stats(&self, fs: &dyn CgroupFs) -> Stats {
        let num = |p: PathBuf| -> Option<u64> {
            let t = fs.read(&p).ok()?;
            match t.trim() {
                "max" => Some(u64::MAX),
                v => v.parse().ok(),
            }
        };
        match self.version {
            Version::V2 => {
                let dir = self.root.join(&self.path);
                let cpu_us = fs
                    .read(&dir.join("cpu.stat"))
                    .ok()
                    .and_then(|s| {
                        s.lines()
                            .find_map(|l| l.strip_prefix("usage_usec "))
                            .and_then(|v| v.trim().parse::<u64>().ok())
                    })
                    .unwrap_or(0);
                Stats {
                    memory_usage: num(dir.join("memory.current")).unwrap_or(0),
                    memory_limit: num(dir.join("memory.max")).unwrap_or(u64::MAX),
                    cpu_ns: cpu_us * 1000,
                    pids: num(dir.join("pids.current")).unwrap_or(0),
                    pids_limit: num(dir.join("pids.max")).unwrap_or(u64::MAX),
                }
            }
            Version::V1 => {
                let at =
                    |ctl: &str, file: &str| num(self.root.join(ctl).join(&self.path).join(file));
                Stats {
                    memory_usage: at("memory", "memory.usage_in_bytes").unwrap_or(0),
                    // v1 says "no limit" with a huge page-aligned number
                    memory_limit: at("memory", "memory.limit_in_bytes")
                        .filter(|l| *l < 1 << 60)
                        .unwrap_or(u64::MAX),
                    cpu_ns: at("cpuacct", "cpuacct.usage").unwrap_or(0),
                    pids: at("pids", "pids.current").unwrap_or(0),
                    pids_limit: at("pids", "pids.max").unwrap_or(u64::MAX),
                }
            }
        }
    }

    /// How many processes the OOM killer killed in the cgroup: `oom_kill` of v2's
    /// `memory.events` or of v1's `memory.oom_control` (0 when the kernel does not say).
    pub fn oom_kills(&self, fs: &dyn CgroupFs) -> u64 {
        let file = match self.version {
            Version::V2 => self.root.join(&self.path).join("memory.events"),
            Version::V1 => self
                .root
                .join("memory")
                .join(&self.path)
                .join("memory.oom_control"),
        };
        fs.read(&file)
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("oom_kill "))
                    .and_then(|n| n.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// cgroup v2: install `rules` as an eBPF device program on the cgroup (v1 has
    /// `devices.allow` files instead, written by [`writes`]). Real syscalls: not behind
    /// the `CgroupFs` seam.
    pub fn attach_devices(&self, rules: &[devbpf::Rule]) -> Result<(), CgroupError> {
        let dir = self.root.join(&self.path);
        let fd = std::fs::File::open(&dir).map_err(io("open", &dir))?;
        let prog = crate::sys::bpf_load_device_program(&devbpf::encode(&devbpf::program(rules)))
            .map_err(|reason| CgroupError::Spec {
                field: "linux.resources.devices".into(),
                reason,
            })?;
        crate::sys::bpf_attach_device_program(&fd, &prog).map_err(|e| CgroupError::Spec {
            field: "linux.resources.devices".into(),
            reason: format!("attaching the device program to {}: {e}", dir.display()),
        })
    }

    /// Freeze or thaw every process in the cgroup (pause / resume).
    pub fn freeze(&self, fs: &dyn CgroupFs, frozen: bool) -> Result<(), CgroupError> {
        let (path, value) = match self.version {
            Version::V1 => (
                self.root
                    .join("freezer")
                    .join(&self.path)
                    .join("freezer.state"),
                if frozen { "FROZEN" } else { "THAWED" },
            ),
            Version::V2 => (
                self.root.join(&self.path).join("cgroup.freeze"),
                if frozen { "1" } else { "0" },
            ),
        };
        fs.write(&path, value).map_err(io("write", &path))
    }

    /// Whether the cgroup is frozen (or freezing).
    pub fn is_frozen(&self, fs: &dyn CgroupFs) -> bool {
        match self.version {
            Version::V1 => fs
                .read(
                    &self
                        .root
                        .join("freezer")
                        .join(&self.path)
                        .join("freezer.state"),
                )
                .is_ok_and(|s| matches!(s.trim(), "FROZEN" | "FREEZING")),
            Version::V2 => fs
                .read(&self.root.join(&self.path).join("cgroup.freeze"))
                .is_ok_and(|s| s.trim() == "1"),
        }
    }

    /// Move `pid` into the existing cgroup (for `exec`).
    pub fn join(&self, fs: &dyn CgroupFs, pid: i32) -> Result<(), CgroupError> {
        for (_, d) in self.dirs(fs) {
            let procs = d.join("cgroup.procs");
            fs.write(&procs, &pid.to_string())
                .map_err(io("join", &procs))?;
        }
        Ok(())
    }

    /// The pids in the cgroup (from the first hierarchy).
    pub fn pids(&self, fs: &dyn CgroupFs) -> Vec<i32> {
        let Some((_, d)) = self.dirs(fs).into_iter().next() else {
            return Vec::new();
        };
        fs.read(&d.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Remove the cgroup's directories; every failure is reported, none stops the rest.
    /// `rmdir` fails with EBUSY until the last task has exited, so retry a little.
    pub fn remove(&self, fs: &dyn CgroupFs) -> Vec<CgroupError> {
        let mut errors = Vec::new();
        for (_, d) in self.dirs(fs) {
            if !fs.exists(&d) {
                continue;
            }
            let mut tries = 0;
            loop {
                match fs.remove_dir(&d) {
                    Ok(()) => break,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => break,
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) && tries < 100 => {
                        tries += 1;
                        std::thread::sleep(std::time::Duration::from_millis(10));
                    }
                    Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                        errors.push(CgroupError::Busy { path: d.clone() });
                        break;
                    }
                    Err(e) => {
                        errors.push(CgroupError::Io {
                            op: "rmdir",
                            path: d.clone(),
                            source: e,
                        });
                        break;
                    }
                }
            }
        }
        errors
    }
}

#[cfg(test)]
mod tests;
