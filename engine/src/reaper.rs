//! The daemon is a child subreaper: monitors re-parent to it, and `exec` processes are its
//! children. One place reaps them all (on SIGCHLD) and keeps the exit codes that someone
//! is waiting for, so that no waiter loses its status to the reaper.

use std::collections::HashMap;
use std::sync::{Condvar, Mutex};

#[derive(Debug, Default)]
pub struct Reaper {
    state: Mutex<State>,
    cv: Condvar,
    /// One reap at a time: a second waitpid on a pid just reaped would fail and record a
    /// wrong status.
    reaping: Mutex<()>,
}

#[derive(Debug, Default)]
struct State {
    /// Children we reap: monitors and exec processes. Other children (an `nft` that
    /// netbridge runs, a monitor's first stage) are waited for by whoever spawned them, so
    /// the reaper never waits for "any child".
    ours: std::collections::HashSet<i32>,
    /// Exit codes of reaped children, oldest first; a child can exit (and be reaped)
    /// before its waiter asks, so every status is kept for a while.
    exited: HashMap<i32, i32>,
    order: std::collections::VecDeque<i32>,
}

const KEEP: usize = 4096;

impl Reaper {
    /// Reap `pid` when it exits (a monitor that re-parented to us, an exec process).
    pub fn adopt(&self, pid: i32) {
        if pid > 0 {
            self.state
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .ours
                .insert(pid);
        }
    }

    /// Monitors that exited without telling us their pid (a start that failed) are zombie
    /// children named `berthd` (or `berth.exe`, the sealed copy): adopt them. Other
    /// programs' children are left to their waiters.
    fn adopt_exited_monitors(&self) {
        let me = std::process::id().to_string();
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return;
        };
        for e in dir.flatten() {
            let name = e.file_name();
            let Some(pid) = name.to_str().and_then(|n| n.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                continue;
            };
            // pid (comm) state ppid ...
            let Some((head, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let mut f = rest.split_whitespace();
            let (state, ppid) = (f.next(), f.next());
            if state == Some("Z")
                && ppid == Some(me.as_str())
                && (head.ends_with("(berthd") || head.ends_with("(berth.exe"))
            {
                self.adopt(pid);
            }
        }
    }

    /// Reap every adopted child that has exited and keep its code.
    /// `reap`, after looking through /proc for exited monitors nobody adopted (a start
    /// that broke before its monitor said its pid). Reading every process's stat costs
    /// milliseconds: the daemon runs this at most once a second, and only after a SIGCHLD.
    pub fn sweep(&self) {
        {
            let _one = self.reaping.lock().unwrap_or_else(|p| p.into_inner());
            self.adopt_exited_monitors();
        }
        self.reap();
    }

    pub fn reap(&self) {
        let _one = self.reaping.lock().unwrap_or_else(|p| p.into_inner());
        let pids: Vec<i32> = self
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .ours
            .iter()
            .copied()
            .collect();
        for raw in pids {
            let Some(pid) = rustix::process::Pid::from_raw(raw) else {
                continue;
            };
            let code =
                match rustix::process::waitpid(Some(pid), rustix::process::WaitOptions::NOHANG) {
                    Ok(Some((_, status))) => status
                        .exit_status()
                        .or_else(|| status.terminating_signal().map(|s| 128 + s))
                        .unwrap_or(0),
                    Ok(None) => continue,
                    // Not our child (any more): nothing to wait for.
                    Err(_) => 137,
                };
            let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
            st.ours.remove(&raw);
            st.exited.insert(raw, code);
            st.order.push_back(raw);
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
        self.adopt(pid);
        self.reap();
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
