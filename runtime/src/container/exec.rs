//! `exec`: another process in a running container, by joining its namespaces.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::Process;

use super::{io_err, Container, RuntimeError};
use crate::cgroup::RealCgroupFs;
use crate::plan::{self, HostLimits, SpecError};
use crate::process::{self, SpawnOpts, Stdio};
use crate::state::Status;

/// Options for [`Container::exec`].
#[derive(Debug, Default)]
pub struct ExecOpts {
    pub stdio: Stdio,
    pub console_socket: Option<PathBuf>,
    pub pid_file: Option<PathBuf>,
}

impl Container {
    /// Start another process in the running container: join its namespaces and cgroup,
    /// apply `process` (user, caps, env, cwd, rlimits) and the container's seccomp
    /// profile. Returns the new process's host pid; it is the caller's child, so
    /// [`wait_pid`] works on it.
    pub fn exec(&mut self, process: &Process, opts: ExecOpts) -> Result<i32, RuntimeError> {
        self.guard(|s| s == Status::Running, "exec")?;
        let config = self.state.bundle.join("config.json");
        let spec = crate::spec::load(&config).map_err(|source| SpecError::Load {
            path: config.clone(),
            source,
        })?;
        let pid = self.state.pid;
        let mut join = Vec::new();
        for kind in plan::NsKind::ALL {
            let theirs = PathBuf::from(format!("/proc/{pid}/ns/{}", kind.proc_name()));
            let ours = PathBuf::from(format!("/proc/self/ns/{}", kind.proc_name()));
            let ino = |p: &Path| std::fs::metadata(p).map(|m| (m.dev(), m.ino()));
            match (ino(&theirs), ino(&ours)) {
                (Ok(a), Ok(b)) if a == b => {}
                (Ok(_), _) => join.push(plan::NsStep::Join(kind, theirs)),
                (Err(e), _) if e.kind() == std::io::ErrorKind::NotFound => {}
                (Err(e), _) => return Err(io_err("stat", &theirs)(e)),
            }
        }
        let plan = plan::plan_exec(
            process,
            join,
            self.state.rootfs.clone(),
            &HostLimits::current(),
        )?;
        if plan.process.terminal && opts.console_socket.is_none() {
            return Err(SpecError::Invalid {
                field: "process.terminal".into(),
                reason: "a terminal needs --console-socket".into(),
            }
            .into());
        }
        let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            Some(s) => Some(crate::seccomp::compile_cached(
                s,
                self.dir
                    .parent()
                    .map(|r| r.join(".seccomp-cache"))
                    .as_deref(),
            )?),
            None => None,
        };
        let fs = RealCgroupFs;
        let cg = self.state.cgroup.clone();
        let self_join = cg
            .as_ref()
            .map(|c| c.self_join_files(&fs))
            .unwrap_or_default();
        let mut join_cgroup = |p: i32| match &cg {
            Some(cg) if self_join.is_empty() => cg.join(&fs, p).map_err(|e| e.to_string()),
            _ => Ok(()),
        };
        let child = process::spawn(
            SpawnOpts {
                plan: &plan,
                exec_fifo: None,
                stdio: opts.stdio,
                seccomp: seccomp.as_ref(),
                console_socket: opts.console_socket.as_deref(),
                exec: true,
                hooks: None,
                hook_state: &|_| Vec::new(),
                preserve_fds: 0,
                self_join: &self_join,
            },
            &mut join_cgroup,
        )?
        .pid;
        if let Some(p) = &opts.pid_file {
            let tmp = p.with_extension("tmp");
            std::fs::write(&tmp, child.to_string()).map_err(io_err("write", &tmp))?;
            std::fs::rename(&tmp, p).map_err(io_err("rename", p))?;
        }
        Ok(child)
    }
}
