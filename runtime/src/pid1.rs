//! `--init`: a small reaper as the container's PID 1, Docker's `docker-init` (tini) done
//! in-process. The container's init forks right before `execve`: the child runs the user's
//! program in its own process group (the terminal's foreground group with a TTY); the
//! parent stays as PID 1, forwards every signal it gets to the child, reaps every orphan
//! that is reparented to it, and exits with the child's status (128+N for a signal N, as
//! tini). No binary is bound into the container, so it works on any image.

use nix::sys::signal::{kill, SigSet, SigmaskHow, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

/// The annotation the engine sets on a container's spec to ask for the reaper.
pub const ANNOTATION: &str = "org.berth.init";

/// Every signal that can be blocked and waited for.
fn forwardable() -> SigSet {
    let mut set = SigSet::all();
    set.remove(Signal::SIGKILL);
    set.remove(Signal::SIGSTOP);
    set
}

/// Block every signal: called before the fork, so none sent to PID 1 in between is lost.
pub fn block_signals() -> Result<(), nix::Error> {
    nix::sys::signal::sigprocmask(SigmaskHow::SIG_BLOCK, Some(&forwardable()), None)
}

/// In the child, before `execve`: its own process group, in the foreground of the
/// terminal when stdin is one (still with SIGTTOU blocked, so `tcsetpgrp` cannot stop us).
pub fn prepare_child() {
    let _ = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0));
    let stdin = std::io::stdin();
    if nix::unistd::isatty(&stdin).unwrap_or(false) {
        let _ = nix::unistd::tcsetpgrp(&stdin, nix::unistd::getpgrp());
    }
}

/// What PID 1 exits with when `status` ends the child, or `None` when it is not the child.
pub fn exit_code(child: Pid, status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(p, code) if p == child => Some(code),
        WaitStatus::Signaled(p, sig, _) if p == child => Some(128 + sig as i32),
        _ => None,
    }
}

/// PID 1's loop: forward signals to `child`, reap everything, exit as the child did.
pub fn run(child: Pid) -> ! {
    // without a PID namespace of its own, orphans still come to us rather than to the host
    let _ = crate::sys::set_child_subreaper();
    let set = forwardable();
    loop {
        match set.wait() {
            Ok(Signal::SIGCHLD) => loop {
                match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                    Ok(WaitStatus::StillAlive) | Err(_) => break,
                    Ok(st) => {
                        if let Some(code) = exit_code(child, st) {
                            crate::sys::exit_now(code);
                        }
                    }
                }
            },
            Ok(sig) => {
                // to the child only, as Docker's `docker-init --` (tini without -g)
                let _ = kill(child, sig);
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_like_tini() {
        let c = Pid::from_raw(7);
        assert_eq!(exit_code(c, WaitStatus::Exited(c, 3)), Some(3));
        assert_eq!(
            exit_code(c, WaitStatus::Signaled(c, Signal::SIGKILL, false)),
            Some(137)
        );
        assert_eq!(
            exit_code(c, WaitStatus::Exited(Pid::from_raw(8), 0)),
            None,
            "an orphan's exit is only reaped"
        );
        assert!(!forwardable().contains(Signal::SIGKILL));
        assert!(forwardable().contains(Signal::SIGTERM));
    }
}
