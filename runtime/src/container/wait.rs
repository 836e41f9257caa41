//! Waiting for container processes and forwarding signals to them.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::RuntimeError;

pub(super) fn exit_code(s: nix::sys::wait::WaitStatus) -> Option<i32> {
    match s {
        nix::sys::wait::WaitStatus::Exited(_, code) => Some(code),
        nix::sys::wait::WaitStatus::Signaled(_, sig, _) => Some(128 + sig as i32),
        _ => None,
    }
}

/// Wait for a child process (an init or an `exec`ed process) and return its exit code,
/// or 128 + the signal that killed it.
pub fn wait_pid(pid: i32) -> Result<i32, RuntimeError> {
    loop {
        match nix::sys::wait::waitpid(Pid::from_raw(pid), None) {
            Ok(s) => {
                if let Some(c) = exit_code(s) {
                    return Ok(c);
                }
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(source) => return Err(RuntimeError::Wait { pid, source }),
        }
    }
}

/// Forward catchable signals to `pid` (our child) until it exits; return its exit code.
/// The calling thread must have blocked them first ([`block_forwarded_signals`]).
pub fn wait_forwarding_signals(child: i32) -> Result<i32, RuntimeError> {
    let set = forwarded_signals();
    let pid = Pid::from_raw(child);
    loop {
        match nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::WNOHANG)) {
            Ok(nix::sys::wait::WaitStatus::StillAlive) => {}
            Ok(s) => {
                if let Some(code) = exit_code(s) {
                    return Ok(code);
                }
            }
            Err(source) => return Err(RuntimeError::Wait { pid: child, source }),
        }
        match set.wait() {
            Ok(Signal::SIGCHLD) | Err(_) => {}
            Ok(sig) => {
                let _ = kill(pid, sig);
            }
        }
    }
}

fn forwarded_signals() -> nix::sys::signal::SigSet {
    let mut set = nix::sys::signal::SigSet::empty();
    for s in Signal::iterator() {
        if !matches!(
            s,
            Signal::SIGKILL
                | Signal::SIGSTOP
                | Signal::SIGSEGV
                | Signal::SIGBUS
                | Signal::SIGILL
                | Signal::SIGFPE
                | Signal::SIGTRAP
        ) {
            set.add(s);
        }
    }
    set
}

/// Block the signals [`Container::wait_forwarding_signals`] forwards, in the calling
/// thread. Call before `create`, so none is lost between create and wait.
pub fn block_forwarded_signals() -> Result<(), nix::errno::Errno> {
    forwarded_signals().thread_block()
}
