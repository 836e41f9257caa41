//! The daemon is a child subreaper: monitors re-parent to it, and `exec` processes are its
//! children. One place reaps them all (on SIGCHLD) and keeps the exit codes that someone
//! is waiting for, so that no waiter loses its status to the reaper.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

#[derive(Debug, Default)]
pub struct Reaper {
    state: Mutex<State>,
    cv: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Exit codes of reaped children, oldest first; a child can exit (and be reaped)
    /// before its waiter asks, so every status is kept for a while.
    exited: HashMap<i32, i32>,
    order: std::collections::VecDeque<i32>,
}

const KEEP: usize = 4096;

impl Reaper {
    /// Reap every exited child and keep its code.
    pub fn reap(&self) {
        while let Ok(Some((pid, status))) =
            rustix::process::wait(rustix::process::WaitOptions::NOHANG)
        {
            let code = status
                .exit_status()
                .or_else(|| status.terminating_signal().map(|s| 128 + s))
                .unwrap_or(0);
            let pid = pid.as_raw_nonzero().get();
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.exited.insert(pid, code);
            st.order.push_back(pid);
            while st.order.len() > KEEP {
                if let Some(old) = st.order.pop_front() {
                    st.exited.remove(&old);
                }
            }
            self.cv.notify_all();
        }
    }

    /// Block until the child `pid` has exited; returns its exit code.
    pub fn wait(&self, pid: i32) -> i32 {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(code) = st.exited.remove(&pid) {
                return code;
            }
            let (g, _) = self
                .cv
                .wait_timeout(st, std::time::Duration::from_millis(200))
                .unwrap_or_else(|p| p.into_inner());
            st = g;
            // a SIGCHLD can be missed between fork and `want`: look again now and then
            drop(st);
            self.reap();
            st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        }
    }
}
