//! The container plan: everything the init process will do, computed from an OCI
//! `config.json` as plain data before any process exists.
//!
//! This module owns validation of the spec (every error names the offending field) and the
//! translation into namespaces, mounts, devices, symlinks and process settings. It never
//! touches the kernel: `rootfs::apply` and `init` apply the plan through the `Syscall` seam.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use nix::mount::MsFlags;
use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, PosixRlimitType, Spec};

/// An invalid or unsupported `config.json`. `field` is the JSON path of the culprit.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    #[error("{field}: {reason}")]
    Invalid { field: String, reason: String },
    #[error("{field}: not supported by berth-runtime: {reason}")]
    Unsupported { field: String, reason: String },
    #[error("reading {path}: {source}")]
    Load {
        path: PathBuf,
        #[source]
        source: oci_spec::OciSpecError,
    },
}

fn invalid(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError::Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

fn unsupported(field: impl Into<String>, reason: impl Into<String>) -> SpecError {
    SpecError::Unsupported {
        field: field.into(),
        reason: reason.into(),
    }
}

/// A kernel namespace kind the runtime knows how to create or join.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub enum NsKind {
    User,
    Mount,
    Uts,
    Ipc,
    Net,
    Pid,
    Cgroup,
}

impl NsKind {
    pub fn clone_flag(self) -> CloneFlags {
        match self {
            NsKind::User => CloneFlags::CLONE_NEWUSER,
            NsKind::Mount => CloneFlags::CLONE_NEWNS,
            NsKind::Uts => CloneFlags::CLONE_NEWUTS,
            NsKind::Ipc => CloneFlags::CLONE_NEWIPC,
            NsKind::Net => CloneFlags::CLONE_NEWNET,
            NsKind::Pid => CloneFlags::CLONE_NEWPID,
            NsKind::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        }
    }

    /// The name under `/proc/<pid>/ns/`.
    pub fn proc_name(self) -> &'static str {
        match self {
            NsKind::User => "user",
            NsKind::Mount => "mnt",
            NsKind::Uts => "uts",
            NsKind::Ipc => "ipc",
            NsKind::Net => "net",
            NsKind::Pid => "pid",
            NsKind::Cgroup => "cgroup",
        }
    }

    pub const ALL: [NsKind; 7] = [
        NsKind::User,
        NsKind::Mount,
        NsKind::Uts,
        NsKind::Ipc,
        NsKind::Net,
        NsKind::Pid,
        NsKind::Cgroup,
    ];
}

/// Create a namespace, or join an existing one by path.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum NsStep {
    Create(NsKind),
    Join(NsKind, PathBuf),
}

impl NsStep {
    pub fn kind(&self) -> NsKind {
        match self {
            NsStep::Create(k) | NsStep::Join(k, _) => *k,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IdMap {
    pub container_id: u32,
    pub host_id: u32,
    pub size: u32,
}

/// One mount, already split into the flags of the first `mount(2)` and the follow-ups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountStep {
    /// Absolute path inside the container.
    pub destination: PathBuf,
    pub source: Option<PathBuf>,
    pub fstype: Option<String>,
    pub flags: MsFlags,
    pub data: Option<String>,
    /// A bind mount whose flags (ro, nosuid, ...) need a second, remounting call.
    pub bind_remount: Option<MsFlags>,
    pub propagation: Option<MsFlags>,
}

impl MountStep {
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Char,
    Block,
    Fifo,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceNode {
    pub path: PathBuf,
    pub kind: DeviceKind,
    pub major: u64,
    pub minor: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Symlink {
    pub target: PathBuf,
    pub link: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    pub resource: PosixRlimitType,
    pub soft: u64,
    pub hard: u64,
}

/// Capability sets as `CAP_*` names, sorted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CapsPlan {
    pub bounding: Vec<caps::Capability>,
    pub effective: Vec<caps::Capability>,
    pub inheritable: Vec<caps::Capability>,
    pub permitted: Vec<caps::Capability>,
    pub ambient: Vec<caps::Capability>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessPlan {
    pub args: Vec<String>,
    pub env: Vec<String>,
    pub cwd: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub additional_gids: Vec<u32>,
    pub umask: Option<u32>,
    pub rlimits: Vec<Rlimit>,
    /// `None` leaves the capability sets untouched.
    pub caps: Option<CapsPlan>,
    pub no_new_privileges: bool,
    pub terminal: bool,
    /// `process.consoleSize`: the terminal's (rows, columns) before the program starts.
    pub console_size: Option<(u16, u16)>,
    pub oom_score_adj: Option<i32>,
    /// Run a reaper as PID 1 in front of the program (`--init`; the spec's annotation
    /// `org.berth.init: "true"`). Never for `exec`.
    pub init: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Absolute host path of the root filesystem.
    pub rootfs: PathBuf,
    pub rootfs_readonly: bool,
    /// Propagation applied to `/` before anything is mounted (default rslave like runc).
    pub rootfs_propagation: MsFlags,
    /// Ordered: user first, so the other namespaces are owned by it.
    pub namespaces: Vec<NsStep>,
    pub uid_map: Vec<IdMap>,
    pub gid_map: Vec<IdMap>,
    pub mounts: Vec<MountStep>,
    pub devices: Vec<DeviceNode>,
    pub symlinks: Vec<Symlink>,
    pub masked_paths: Vec<PathBuf>,
    pub readonly_paths: Vec<PathBuf>,
    pub hostname: Option<String>,
    pub domainname: Option<String>,
    pub sysctl: BTreeMap<String, String>,
    pub process: ProcessPlan,
}

impl Plan {
    pub fn creates(&self, kind: NsKind) -> bool {
        self.namespaces.contains(&NsStep::Create(kind))
    }

    pub fn has_ns(&self, kind: NsKind) -> bool {
        self.namespaces.iter().any(|s| s.kind() == kind)
    }
}

mod mounts;
mod rlimits;

pub use mounts::expand_cgroup_mounts;
use mounts::{plan_mount, propagation_flag};
pub use rlimits::{
    rlimit_key, rlimit_name, rlimit_resource, HostLimits, PosixRlimitTypeKey, ALL_RLIMITS,
};

/// Validate a spec and compute its plan. `bundle` resolves a relative `root.path`.
pub fn plan(spec: &Spec, bundle: &Path, host: &HostLimits) -> Result<Plan, SpecError> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| invalid("root", "missing"))?;
    let rootfs = if root.path().is_absolute() {
        root.path().clone()
    } else {
        bundle.join(root.path())
    };
    let linux = spec
        .linux()
        .as_ref()
        .ok_or_else(|| invalid("linux", "missing: berth-runtime only runs Linux containers"))?;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| invalid("process", "missing"))?;

    let namespaces = plan_namespaces(linux)?;
    let creates_user = namespaces.contains(&NsStep::Create(NsKind::User));
    let uid_map = id_maps(linux.uid_mappings().as_deref(), "linux.uidMappings")?;
    let gid_map = id_maps(linux.gid_mappings().as_deref(), "linux.gidMappings")?;
    if creates_user && (uid_map.is_empty() || gid_map.is_empty()) {
        return Err(invalid(
            "linux.uidMappings",
            "a new user namespace needs uidMappings and gidMappings",
        ));
    }
    if !creates_user && (!uid_map.is_empty() || !gid_map.is_empty()) {
        return Err(invalid(
            "linux.uidMappings",
            "id mappings given without creating a user namespace",
        ));
    }

    let rootfs_propagation = match linux.rootfs_propagation().as_deref() {
        None | Some("") => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        Some(p) => propagation_flag(p).ok_or_else(|| {
            invalid(
                "linux.rootfsPropagation",
                format!("unknown propagation {p:?}"),
            )
        })?,
    };

    let mut mounts = Vec::new();
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        mounts.push(plan_mount(i, m)?);
    }

    let mut devices = default_devices();
    for (i, d) in linux.devices().iter().flatten().enumerate() {
        let field = format!("linux.devices[{i}]");
        let kind = match d.typ() {
            oci_spec::runtime::LinuxDeviceType::C | oci_spec::runtime::LinuxDeviceType::U => {
                DeviceKind::Char
            }
            oci_spec::runtime::LinuxDeviceType::B => DeviceKind::Block,
            oci_spec::runtime::LinuxDeviceType::P => DeviceKind::Fifo,
            other => {
                return Err(invalid(
                    format!("{field}.type"),
                    format!("{other:?} cannot be created"),
                ))
            }
        };
        let path = d.path().clone();
        check_abs(&path, &format!("{field}.path"))?;
        if !path.starts_with("/dev") {
            return Err(invalid(
                format!("{field}.path"),
                "devices must live under /dev",
            ));
        }
        let node = DeviceNode {
            path: path.clone(),
            kind,
            major: u64::try_from(d.major())
                .map_err(|_| invalid(format!("{field}.major"), "negative"))?,
            minor: u64::try_from(d.minor())
                .map_err(|_| invalid(format!("{field}.minor"), "negative"))?,
            mode: d.file_mode().unwrap_or(0o666),
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        };
        devices.retain(|x| x.path != path);
        devices.push(node);
    }

    let mut symlinks = vec![
        Symlink {
            target: "/proc/self/fd".into(),
            link: "/dev/fd".into(),
        },
        Symlink {
            target: "/proc/self/fd/0".into(),
            link: "/dev/stdin".into(),
        },
        Symlink {
            target: "/proc/self/fd/1".into(),
            link: "/dev/stdout".into(),
        },
        Symlink {
            target: "/proc/self/fd/2".into(),
            link: "/dev/stderr".into(),
        },
    ];
    if mounts
        .iter()
        .any(|m| m.destination == Path::new("/dev/pts"))
    {
        symlinks.push(Symlink {
            target: "pts/ptmx".into(),
            link: "/dev/ptmx".into(),
        });
    }

    let masked_paths = abs_paths(linux.masked_paths().as_deref(), "linux.maskedPaths")?;
    let readonly_paths = abs_paths(linux.readonly_paths().as_deref(), "linux.readonlyPaths")?;

    let has_uts = namespaces.iter().any(|s| s.kind() == NsKind::Uts);
    if let Some(h) = spec.hostname() {
        if !h.is_empty() && !has_uts {
            return Err(invalid(
                "hostname",
                "setting a hostname needs a uts namespace",
            ));
        }
    }

    let mut sysctl = BTreeMap::new();
    for (k, v) in linux.sysctl().iter().flatten() {
        if k.is_empty() || k.contains("..") || k.starts_with('/') || k.starts_with('.') {
            return Err(invalid(format!("linux.sysctl.{k}"), "not a sysctl name"));
        }
        sysctl.insert(k.clone(), v.clone());
    }

    if linux.seccomp().is_some() {
        // Parsed and compiled by `seccomp`; validated here so create fails early.
        crate::seccomp::check(linux.seccomp().as_ref())?;
    }
    if linux.time_offsets().is_some() {
        return Err(unsupported("linux.timeOffsets", "time namespaces"));
    }
    if linux.intel_rdt().is_some() {
        return Err(unsupported("linux.intelRdt", "intel RDT"));
    }
    if process
        .apparmor_profile()
        .as_deref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(unsupported("process.apparmorProfile", "AppArmor"));
    }
    if process
        .selinux_label()
        .as_deref()
        .is_some_and(|p| !p.is_empty())
    {
        return Err(unsupported("process.selinuxLabel", "SELinux"));
    }

    Ok(Plan {
        rootfs,
        rootfs_readonly: root.readonly().unwrap_or(false),
        rootfs_propagation,
        namespaces,
        uid_map,
        gid_map,
        mounts,
        devices,
        symlinks,
        masked_paths,
        readonly_paths,
        hostname: spec.hostname().clone().filter(|h| !h.is_empty()),
        domainname: spec.domainname().clone().filter(|h| !h.is_empty()),
        sysctl,
        process: ProcessPlan {
            init: spec
                .annotations()
                .as_ref()
                .and_then(|a| a.get(crate::pid1::ANNOTATION))
                .is_some_and(|v| v == "true"),
            ..plan_process(process, host)?
        },
    })
}

/// The plan of a process `exec`ed into a running container: join `namespaces`, then only
/// the per-process settings. The fields of `process` are validated as for create.
pub fn plan_exec(
    process: &oci_spec::runtime::Process,
    namespaces: Vec<NsStep>,
    rootfs: PathBuf,
    host: &HostLimits,
) -> Result<Plan, SpecError> {
    Ok(Plan {
        rootfs,
        rootfs_readonly: false,
        rootfs_propagation: MsFlags::empty(),
        namespaces,
        uid_map: Vec::new(),
        gid_map: Vec::new(),
        mounts: Vec::new(),
        devices: Vec::new(),
        symlinks: Vec::new(),
        masked_paths: Vec::new(),
        readonly_paths: Vec::new(),
        hostname: None,
        domainname: None,
        sysctl: BTreeMap::new(),
        process: plan_process(process, host)?,
    })
}

fn check_abs(p: &Path, field: &str) -> Result<(), SpecError> {
    if !p.is_absolute() {
        return Err(invalid(field, format!("{} is not absolute", p.display())));
    }
    if p.components().any(|c| c == Component::ParentDir) {
        return Err(invalid(field, format!("{} contains '..'", p.display())));
    }
    Ok(())
}

fn abs_paths(list: Option<&[String]>, field: &str) -> Result<Vec<PathBuf>, SpecError> {
    let mut out = Vec::new();
    for (i, p) in list.unwrap_or_default().iter().enumerate() {
        let p = PathBuf::from(p);
        check_abs(&p, &format!("{field}[{i}]"))?;
        out.push(p);
    }
    Ok(out)
}

fn id_maps(
    maps: Option<&[oci_spec::runtime::LinuxIdMapping]>,
    field: &str,
) -> Result<Vec<IdMap>, SpecError> {
    let mut out = Vec::new();
    for (i, m) in maps.unwrap_or_default().iter().enumerate() {
        if m.size() == 0 {
            return Err(invalid(format!("{field}[{i}].size"), "must be positive"));
        }
        out.push(IdMap {
            container_id: m.container_id(),
            host_id: m.host_id(),
            size: m.size(),
        });
    }
    Ok(out)
}

fn plan_namespaces(linux: &oci_spec::runtime::Linux) -> Result<Vec<NsStep>, SpecError> {
    let mut steps: Vec<NsStep> = Vec::new();
    for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
        let field = format!("linux.namespaces[{i}]");
        let kind = match ns.typ() {
            LinuxNamespaceType::Mount => NsKind::Mount,
            LinuxNamespaceType::Cgroup => NsKind::Cgroup,
            LinuxNamespaceType::Uts => NsKind::Uts,
            LinuxNamespaceType::Ipc => NsKind::Ipc,
            LinuxNamespaceType::User => NsKind::User,
            LinuxNamespaceType::Pid => NsKind::Pid,
            LinuxNamespaceType::Network => NsKind::Net,
            LinuxNamespaceType::Time => {
                return Err(unsupported(format!("{field}.type"), "time namespaces"))
            }
        };
        if steps.iter().any(|s| s.kind() == kind) {
            return Err(invalid(
                format!("{field}.type"),
                format!("namespace {} listed twice", kind.proc_name()),
            ));
        }
        steps.push(match ns.path() {
            Some(p) if !p.as_os_str().is_empty() => {
                check_abs(p, &format!("{field}.path"))?;
                NsStep::Join(kind, p.clone())
            }
            _ => NsStep::Create(kind),
        });
    }
    if !steps.iter().any(|s| s.kind() == NsKind::Mount) {
        return Err(unsupported(
            "linux.namespaces",
            "a mount namespace is required (add {\"type\": \"mount\"})",
        ));
    }
    // User first so that it owns the namespaces created after it; the rest in a fixed order.
    steps.sort_by_key(|s| s.kind());
    Ok(steps)
}

/// The device nodes every container gets (runc's list).
pub(crate) fn default_devices() -> Vec<DeviceNode> {
    [
        ("/dev/null", 1, 3),
        ("/dev/zero", 1, 5),
        ("/dev/full", 1, 7),
        ("/dev/random", 1, 8),
        ("/dev/urandom", 1, 9),
        ("/dev/tty", 5, 0),
    ]
    .into_iter()
    .map(|(p, major, minor)| DeviceNode {
        path: p.into(),
        kind: DeviceKind::Char,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    })
    .collect()
}

fn cap_list(
    set: Option<&oci_spec::runtime::Capabilities>,
    field: &str,
) -> Result<Vec<caps::Capability>, SpecError> {
    let mut out = Vec::new();
    for c in set.into_iter().flatten() {
        let name = format!("CAP_{c}");
        let cap: caps::Capability = name
            .parse()
            .map_err(|_| unsupported(field, format!("unknown capability {name}")))?;
        out.push(cap);
    }
    out.sort_by_key(|c| c.index());
    Ok(out)
}

fn plan_process(
    p: &oci_spec::runtime::Process,
    host: &HostLimits,
) -> Result<ProcessPlan, SpecError> {
    let args = p.args().clone().unwrap_or_default();
    if args.is_empty() || args[0].is_empty() {
        return Err(invalid("process.args", "must name a program"));
    }
    if p.command_line().is_some() {
        return Err(unsupported("process.commandLine", "windows only"));
    }
    let env = p.env().clone().unwrap_or_default();
    for (i, e) in env.iter().enumerate() {
        if !e.contains('=') || e.starts_with('=') {
            return Err(invalid(
                format!("process.env[{i}]"),
                format!("{e:?} is not KEY=VALUE"),
            ));
        }
    }
    let cwd = p.cwd().clone();
    check_abs(&cwd, "process.cwd")?;

    let mut rlimits: Vec<Rlimit> = Vec::new();
    for (i, r) in p.rlimits().iter().flatten().enumerate() {
        let name = rlimit_name(r.typ());
        let field = format!("process.rlimits[{i}] ({name})");
        if rlimits.iter().any(|x| x.resource == r.typ()) {
            return Err(invalid(field, "listed twice"));
        }
        if r.soft() > r.hard() {
            return Err(invalid(
                format!("{field}.soft"),
                format!(
                    "soft limit {} is above the hard limit {}",
                    r.soft(),
                    r.hard()
                ),
            ));
        }
        if let Some(max) = host.hard.get(&rlimit_key(r.typ())) {
            if r.hard() > *max {
                return Err(invalid(
                    format!("{field}.hard"),
                    format!(
                        "{} is above the host's hard limit {max}; raising it needs CAP_SYS_RESOURCE, lower it to at most {max}",
                        r.hard()
                    ),
                ));
            }
        }
        rlimits.push(Rlimit {
            resource: r.typ(),
            soft: r.soft(),
            hard: r.hard(),
        });
    }

    let caps = match p.capabilities() {
        None => None,
        Some(c) => Some(CapsPlan {
            bounding: cap_list(c.bounding().as_ref(), "process.capabilities.bounding")?,
            effective: cap_list(c.effective().as_ref(), "process.capabilities.effective")?,
            inheritable: cap_list(c.inheritable().as_ref(), "process.capabilities.inheritable")?,
            permitted: cap_list(c.permitted().as_ref(), "process.capabilities.permitted")?,
            ambient: cap_list(c.ambient().as_ref(), "process.capabilities.ambient")?,
        }),
    };
    if let Some(adj) = p.oom_score_adj() {
        if !(-1000..=1000).contains(&adj) {
            return Err(invalid(
                "process.oomScoreAdj",
                format!("{adj} is outside -1000..=1000"),
            ));
        }
    }
    let user = p.user();
    if user.username().as_deref().is_some_and(|u| !u.is_empty()) {
        return Err(unsupported("process.user.username", "windows only"));
    }
    Ok(ProcessPlan {
        args,
        env,
        cwd,
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask(),
        rlimits,
        caps,
        no_new_privileges: p.no_new_privileges().unwrap_or(false),
        terminal: p.terminal().unwrap_or(false),
        console_size: p.console_size().as_ref().and_then(|b| {
            Some((
                u16::try_from(b.height()).ok()?,
                u16::try_from(b.width()).ok()?,
            ))
        }),
        oom_score_adj: p.oom_score_adj(),
        init: false,
    })
}

#[cfg(test)]
pub(crate) mod tests;
