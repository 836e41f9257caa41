//! Mount options to flags, one OCI mount to a [`MountStep`], and the expansion of
//! `cgroup` mounts for the host's cgroup version.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use super::{check_abs, invalid, unsupported, MountStep, Plan, SpecError};

pub(super) fn propagation_flag(p: &str) -> Option<MsFlags> {
    Some(match p {
        "shared" => MsFlags::MS_SHARED,
        "rshared" => MsFlags::MS_SHARED | MsFlags::MS_REC,
        "slave" => MsFlags::MS_SLAVE,
        "rslave" => MsFlags::MS_SLAVE | MsFlags::MS_REC,
        "private" => MsFlags::MS_PRIVATE,
        "rprivate" => MsFlags::MS_PRIVATE | MsFlags::MS_REC,
        "unbindable" => MsFlags::MS_UNBINDABLE,
        "runbindable" => MsFlags::MS_UNBINDABLE | MsFlags::MS_REC,
        _ => return None,
    })
}

/// (set, clear) flags for a mount option, or None for options passed as data.
fn option_flag(o: &str) -> Option<(MsFlags, MsFlags)> {
    let e = MsFlags::empty();
    Some(match o {
        "ro" => (MsFlags::MS_RDONLY, e),
        "rw" => (e, MsFlags::MS_RDONLY),
        "nosuid" => (MsFlags::MS_NOSUID, e),
        "suid" => (e, MsFlags::MS_NOSUID),
        "nodev" => (MsFlags::MS_NODEV, e),
        "dev" => (e, MsFlags::MS_NODEV),
        "noexec" => (MsFlags::MS_NOEXEC, e),
        "exec" => (e, MsFlags::MS_NOEXEC),
        "sync" => (MsFlags::MS_SYNCHRONOUS, e),
        "async" => (e, MsFlags::MS_SYNCHRONOUS),
        "dirsync" => (MsFlags::MS_DIRSYNC, e),
        "remount" => (MsFlags::MS_REMOUNT, e),
        "mand" => (MsFlags::MS_MANDLOCK, e),
        "nomand" => (e, MsFlags::MS_MANDLOCK),
        "atime" => (e, MsFlags::MS_NOATIME),
        "noatime" => (MsFlags::MS_NOATIME, e),
        "diratime" => (e, MsFlags::MS_NODIRATIME),
        "nodiratime" => (MsFlags::MS_NODIRATIME, e),
        "relatime" => (MsFlags::MS_RELATIME, e),
        "norelatime" => (e, MsFlags::MS_RELATIME),
        "strictatime" => (MsFlags::MS_STRICTATIME, e),
        "nostrictatime" => (e, MsFlags::MS_STRICTATIME),
        "bind" => (MsFlags::MS_BIND, e),
        "rbind" => (MsFlags::MS_BIND | MsFlags::MS_REC, e),
        "silent" => (MsFlags::MS_SILENT, e),
        "loud" => (e, MsFlags::MS_SILENT),
        _ => return None,
    })
}

pub(super) fn plan_mount(i: usize, m: &oci_spec::runtime::Mount) -> Result<MountStep, SpecError> {
    let field = format!("mounts[{i}]");
    let destination = m.destination().clone();
    check_abs(&destination, &format!("{field}.destination"))?;
    if destination == Path::new("/") {
        return Err(invalid(
            format!("{field}.destination"),
            "cannot mount over /",
        ));
    }
    if m.uid_mappings().is_some() || m.gid_mappings().is_some() {
        return Err(unsupported(
            format!("{field}.uidMappings"),
            "id-mapped mounts",
        ));
    }
    let mut flags = MsFlags::empty();
    let mut data = Vec::new();
    let mut propagation = None;
    for (j, o) in m.options().iter().flatten().enumerate() {
        if let Some(p) = propagation_flag(o) {
            propagation = Some(p);
        } else if let Some((set, clear)) = option_flag(o) {
            flags.insert(set);
            flags.remove(clear);
        } else if o.is_empty() {
            return Err(invalid(format!("{field}.options[{j}]"), "empty option"));
        } else {
            data.push(o.clone());
        }
    }
    let fstype = m.typ().clone().filter(|t| !t.is_empty());
    if fstype.as_deref() == Some("bind") {
        flags.insert(MsFlags::MS_BIND);
    }
    let is_bind = flags.contains(MsFlags::MS_BIND);
    if is_bind && m.source().is_none() {
        return Err(invalid(
            format!("{field}.source"),
            "a bind mount needs a source",
        ));
    }
    if !is_bind && fstype.is_none() {
        return Err(invalid(
            format!("{field}.type"),
            "missing (and not a bind mount)",
        ));
    }
    // A bind mount ignores all flags but MS_REC on the first call: the rest go to a remount.
    let bind_remount = if is_bind {
        let rest = flags - (MsFlags::MS_BIND | MsFlags::MS_REC | MsFlags::MS_REMOUNT);
        if rest.is_empty() {
            None
        } else {
            flags -= rest;
            Some(rest | MsFlags::MS_BIND | MsFlags::MS_REMOUNT)
        }
    } else {
        None
    };
    Ok(MountStep {
        destination,
        source: m.source().clone(),
        fstype: if is_bind { None } else { fstype },
        flags,
        data: if data.is_empty() {
            None
        } else {
            Some(data.join(","))
        },
        bind_remount,
        propagation,
    })
}

/// Replace `cgroup` mounts by what the host's cgroup version needs, as runc does: on v2 a
/// `cgroup2` mount; on v1 a tmpfs with the container's own cgroup directory of each
/// hierarchy bound below it, so the container sees its cgroup as the root.
/// `v2_dir` is the host directory of the container's cgroup when the host is on v2;
/// `v1_dirs` is (controller, host directory of the container's cgroup) on v1.
pub fn expand_cgroup_mounts(plan: &mut Plan, v2_dir: Option<&Path>, v1_dirs: &[(String, PathBuf)]) {
    let mut out: Vec<MountStep> = Vec::new();
    for m in std::mem::take(&mut plan.mounts) {
        if m.fstype.as_deref() != Some("cgroup") {
            out.push(m);
            continue;
        }
        let ro = m.flags & MsFlags::MS_RDONLY;
        let base = m.flags & (MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC);
        if let Some(dir) = v2_dir {
            if stacks_on_cgroup2(&out, &m.destination, dir) {
                // The kernel refuses a second mount of the same cgroup2 root on the same
                // place (EBUSY): bind the container's cgroup there instead, as runc falls
                // back to, with this mount's own flags.
                out.push(MountStep {
                    source: Some(dir.to_path_buf()),
                    fstype: None,
                    flags: MsFlags::MS_BIND,
                    data: None,
                    bind_remount: Some(MsFlags::MS_BIND | MsFlags::MS_REMOUNT | base | ro),
                    ..m
                });
                continue;
            }
            out.push(MountStep {
                source: Some("cgroup".into()),
                fstype: Some("cgroup2".into()),
                data: None,
                ..m
            });
            continue;
        }
        out.push(MountStep {
            destination: m.destination.clone(),
            source: Some("tmpfs".into()),
            fstype: Some("tmpfs".into()),
            flags: base,
            data: Some("mode=755".into()),
            bind_remount: None,
            propagation: None,
        });
        for (name, host) in v1_dirs {
            out.push(MountStep {
                destination: m.destination.join(name),
                source: Some(host.clone()),
                fstype: None,
                flags: MsFlags::MS_BIND,
                data: None,
                bind_remount: Some(MsFlags::MS_BIND | MsFlags::MS_REMOUNT | base | ro),
                propagation: None,
            });
        }
        if !ro.is_empty() {
            // The tmpfs itself becomes read-only once everything is bound under it.
            out.push(MountStep {
                destination: m.destination.clone(),
                source: None,
                fstype: None,
                flags: MsFlags::MS_REMOUNT | base | ro,
                data: None,
                bind_remount: None,
                propagation: None,
            });
        }
    }
    plan.mounts = out;
}

/// Whether the last mount planned at `dest` or above it is the container's cgroup2 root
/// right at `dest` (a cgroup2 mount or a bind of `dir`), which a new cgroup2 mount would
/// duplicate. Remounts of an earlier step change nothing.
fn stacks_on_cgroup2(planned: &[MountStep], dest: &Path, dir: &Path) -> bool {
    planned
        .iter()
        .rev()
        .filter(|p| p.is_bind() || !p.flags.contains(MsFlags::MS_REMOUNT))
        .find(|p| dest.starts_with(&p.destination))
        .is_some_and(|p| {
            p.destination == dest
                && (p.fstype.as_deref() == Some("cgroup2") || p.source.as_deref() == Some(dir))
        })
}
