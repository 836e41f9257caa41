//! Cgroups made ahead of their containers, on cgroup v1: a start's runtime takes one by a
//! rename per hierarchy (`runtime::cgroup::Cgroup::adopt`) instead of making eight
//! directories and inheriting cpuset's values on its critical path (~0.3 ms of every
//! start here). Named `<parent>/.ahead-<daemon pid>-<n>`, beside the containers' own;
//! removed at shutdown, and what a daemon that is gone left is removed by the next.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use runtime::cgroup::{Cgroup, RealCgroupFs, Version};

use super::ahead::Ahead;

const PREFIX: &str = ".ahead-";

#[derive(Debug)]
pub(super) struct CgroupsAhead {
    pool: Arc<Ahead<PathBuf>>,
    parent: PathBuf,
}

impl CgroupsAhead {
    /// A pool under `parent` (relative to `root`); None where cgroups are not v1.
    pub(super) fn new(root: &Path, parent: &str) -> Option<Self> {
        let parent = PathBuf::from(parent.trim_matches('/'));
        let probe = Cgroup::new(&RealCgroupFs, root, Some(&parent), "").ok()?;
        if probe.version != Version::V1 || parent.as_os_str().is_empty() {
            return None;
        }
        sweep(&probe);
        let root = root.to_path_buf();
        let (root2, parent2) = (root.clone(), parent.clone());
        let seq = AtomicU64::new(0);
        let make = move || {
            let n = seq.fetch_add(1, Ordering::Relaxed);
            let rel = parent2.join(format!("{PREFIX}{}-{n}", std::process::id()));
            let cg = Cgroup::new(&RealCgroupFs, &root2, Some(&rel), "")
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            if let Err(e) = cg.create_ahead(&RealCgroupFs) {
                let _ = cg.remove(&RealCgroupFs);
                return Err(std::io::Error::other(e.to_string()));
            }
            Ok(rel)
        };
        let discard = move |rel: PathBuf| discard(&root, &rel);
        Some(CgroupsAhead {
            pool: Ahead::new("cgroups", "cgroups-ahead", make, discard),
            parent,
        })
    }

    /// One for a container whose cgroup is `cgroups_path` (none when that is not in our
    /// parent: a `--cgroup-parent` of its own).
    pub(super) fn take_for(&self, cgroups_path: &str) -> Option<PathBuf> {
        let path = Path::new(cgroups_path.trim_start_matches('/'));
        if path.parent() != Some(self.parent.as_path()) {
            return None;
        }
        self.pool.take()
    }

    /// Remove what waits (at shutdown).
    pub(super) fn close(&self) {
        self.pool.close();
    }
}

/// A cgroup taken from the pool for a start: removed when this goes, unless cleared (the
/// monitor said the container started: its runtime made it the container's).
#[derive(Debug)]
pub(super) struct Taken(pub(super) Option<PathBuf>);

impl Drop for Taken {
    fn drop(&mut self) {
        if let Some(rel) = self.0.take() {
            discard(Path::new(super::CGROUP_ROOT), &rel);
        }
    }
}

/// Remove the cgroup made ahead at `rel` (one not taken: a start that failed before its
/// runtime took it, a pool closing).
fn discard(root: &Path, rel: &Path) {
    if let Ok(cg) = Cgroup::new(&RealCgroupFs, root, Some(rel), "") {
        let _ = cg.remove(&RealCgroupFs);
    }
}

/// Remove what daemons that are gone left under `parent`'s directories.
fn sweep(parent: &Cgroup) {
    for (_, dir) in parent.dirs(&RealCgroupFs) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix(PREFIX))
                .and_then(|rest| rest.split('-').next())
                .and_then(|p| p.parse::<i32>().ok())
            else {
                continue;
            };
            // (ours: a daemon before us had our pid; none made yet. EPERM: alive)
            let gone = pid == std::process::id() as i32
                || rustix::process::Pid::from_raw(pid).is_none_or(|p| {
                    rustix::process::test_kill_process(p) == Err(rustix::io::Errno::SRCH)
                });
            if gone {
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
}
