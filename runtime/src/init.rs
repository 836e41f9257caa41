//! The container's init process, from "inside all namespaces" to `execve`: the rootfs,
//! hostname, sysctls, masked paths, then the process's limits, identity and capabilities,
//! the start gate and the exec. [`setup`] goes only through the [`Syscall`] seam and is
//! unit-tested with the fake; [`exec`] is the thin, real tail.

use std::ffi::CString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use crate::plan::{NsKind, Plan};
use crate::syscall::{SysError, Syscall};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error("process.cwd {cwd}: the current directory is not inside the container ({reason})")]
    CwdOutside { cwd: PathBuf, reason: String },
    #[error("process.args[0] {program:?}: {reason}")]
    Program { program: String, reason: String },
    #[error("waiting for start on the exec fifo: {0}")]
    Fifo(std::io::Error),
    #[error(transparent)]
    Hook(#[from] crate::hooks::HookError),
    #[error("hooks: {0}")]
    HookSync(String),
    #[error("seccomp: {0}")]
    Seccomp(#[from] crate::seccomp::SeccompError),
}

/// Everything between "the namespaces exist" and "ready for start". Returns the program
/// to exec, resolved in the container's PATH.
/// Without no_new_privileges the seccomp filter is loaded here, before capabilities are
/// dropped (installing it then needs CAP_SYS_ADMIN); with it, [`exec`] loads it last.
pub fn setup(
    sys: &dyn Syscall,
    plan: &Plan,
    seccomp: Option<&crate::seccomp::Program>,
) -> Result<PathBuf, InitError> {
    setup_container(sys, plan, &mut || Ok(()))?;
    setup_process(sys, plan, seccomp)
}

/// The container-wide part: rootfs, pivot_root, hostname, sysctls, masked paths.
/// `before_pivot` runs once the mounts exist, just before `pivot_root` (for hooks).
pub fn setup_container(
    sys: &dyn Syscall,
    plan: &Plan,
    before_pivot: &mut dyn FnMut() -> Result<(), InitError>,
) -> Result<(), InitError> {
    if plan.creates(NsKind::Mount) {
        crate::rootfs::prepare(sys, plan)?;
        crate::trace::mark("i prepared");
        before_pivot()?;
        sys.pivot_root(&plan.rootfs)?;
        crate::trace::mark("i pivoted");
    } else {
        before_pivot()?;
    }
    if let Some(h) = &plan.hostname {
        sys.sethostname(h)?;
    }
    if let Some(d) = &plan.domainname {
        sys.setdomainname(d)?;
    }
    for (k, v) in &plan.sysctl {
        let path = PathBuf::from("/proc/sys").join(k.replace('.', "/"));
        sys.write_file(&path, v)?;
    }
    crate::rootfs::finish(sys, plan)?;
    crate::trace::mark("i finished");
    Ok(())
}

/// The per-process part, shared by a container's init and `exec`: limits, seccomp,
/// identity, capabilities, cwd. Returns the program to exec.
pub fn setup_process(
    sys: &dyn Syscall,
    plan: &Plan,
    seccomp: Option<&crate::seccomp::Program>,
) -> Result<PathBuf, InitError> {
    let p = &plan.process;
    if let Some(adj) = p.oom_score_adj {
        sys.write_file(Path::new("/proc/self/oom_score_adj"), &adj.to_string())?;
    }
    for r in &p.rlimits {
        sys.setrlimit(r)?;
    }
    if let Some(mask) = p.umask {
        sys.umask(mask);
    }
    crate::trace::mark("i limits");
    if let (Some(prog), false) = (seccomp, p.no_new_privileges) {
        sys.load_seccomp(prog)?;
    }
    crate::trace::mark("i seccomp");
    sys.set_identity(p.uid, p.gid, &p.additional_gids)?;
    if let Some(caps) = &p.caps {
        sys.set_capabilities(caps)?;
    }
    crate::trace::mark("i caps");
    if p.no_new_privileges {
        sys.set_no_new_privileges()?;
    }
    sys.chdir(&p.cwd)?;
    // getcwd fails (ENOENT) or returns "(unreachable)…" when the cwd is outside our root.
    match sys.getcwd() {
        Ok(c) if c.is_absolute() => {}
        Ok(c) => {
            return Err(InitError::CwdOutside {
                cwd: p.cwd.clone(),
                reason: format!("getcwd returned {}", c.display()),
            })
        }
        Err(e) => {
            return Err(InitError::CwdOutside {
                cwd: p.cwd.clone(),
                reason: e.to_string(),
            })
        }
    }
    find_program(&p.args[0], &p.env)
}

/// Resolve `program` like execvp does, in the container's PATH (from its env).
pub fn find_program(program: &str, env: &[String]) -> Result<PathBuf, InitError> {
    let err = |reason: &str| InitError::Program {
        program: program.to_string(),
        reason: reason.to_string(),
    };
    let executable =
        |p: &Path| nix::unistd::access(p, nix::unistd::AccessFlags::X_OK).is_ok() && !p.is_dir();
    if program.contains('/') {
        let p = PathBuf::from(program);
        return if executable(&p) {
            Ok(p)
        } else {
            Err(err("not found or not executable"))
        };
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(program))
        .find(|p| executable(p))
        .ok_or_else(|| err("not found in the container's PATH"))
}

/// Block until `start` opens the exec fifo, then exec the program. `fifo` is an `O_PATH`
/// fd opened before `pivot_root`; `None` (for `run`) execs right away.
pub fn exec(
    plan: &Plan,
    program: &Path,
    fifo: Option<OwnedFd>,
    seccomp: Option<&crate::seccomp::Program>,
    start_hooks: Option<(&[oci_spec::runtime::Hook], &[u8])>,
) -> Result<std::convert::Infallible, InitError> {
    let argv: Vec<CString> = plan
        .process
        .args
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| InitError::Program {
            program: plan.process.args[0].clone(),
            reason: "argument contains a NUL byte".into(),
        })?;
    let envp: Vec<CString> = plan
        .process
        .env
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<_, _>>()
        .map_err(|_| InitError::Program {
            program: plan.process.args[0].clone(),
            reason: "environment contains a NUL byte".into(),
        })?;
    let prog = CString::new(program.as_os_str().as_bytes()).map_err(|_| InitError::Program {
        program: plan.process.args[0].clone(),
        reason: "path contains a NUL byte".into(),
    })?;
    if let Some(fifo) = fifo {
        use std::io::Write;
        // Opening for write blocks until `start` opens the read end.
        let path = format!("/proc/self/fd/{}", fifo.as_raw_fd());
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .map_err(InitError::Fifo)?;
        f.write_all(b"0").map_err(InitError::Fifo)?;
        drop(f);
        drop(fifo);
    }
    if let Some((hooks, state)) = start_hooks {
        crate::hooks::run("startContainer", hooks, state)?;
    }
    if plan.process.init {
        crate::pid1::block_signals().map_err(|e| InitError::Program {
            program: plan.process.args[0].clone(),
            reason: format!("blocking signals for the init reaper: {e}"),
        })?;
        let child = crate::sys::fork().map_err(|e| InitError::Program {
            program: plan.process.args[0].clone(),
            reason: format!("fork for the init reaper: {e}"),
        })?;
        if child != 0 {
            crate::pid1::run(nix::unistd::Pid::from_raw(child));
        }
        crate::pid1::prepare_child();
    }
    if let (Some(prog), true) = (seccomp, plan.process.no_new_privileges) {
        // As late as possible, so the filter constrains only the user's program.
        crate::seccomp::load(prog)?;
    }
    crate::sys::reset_signals();
    let e = nix::unistd::execve(&prog, &argv, &envp).unwrap_err();
    Err(InitError::Program {
        program: plan.process.args[0].clone(),
        reason: format!("exec failed: {e}"),
    })
}

#[cfg(test)]
mod tests;
