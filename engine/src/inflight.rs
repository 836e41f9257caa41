//! A count of things in progress, and a wake-up when none is left: the monitor waits on its
//! clients being served before it exits, an auto-removal on the run's attach streams.

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct InFlight {
    n: Mutex<usize>,
    idle: Condvar,
}

/// One thing in progress: dropping it ends it.
#[derive(Debug)]
pub struct Hold(Arc<InFlight>);

impl InFlight {
    pub fn hold(self: &Arc<Self>) -> Hold {
        *self.n.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        Hold(self.clone())
    }

    /// Until nothing is in progress, or `limit` passed.
    pub fn wait_idle(&self, limit: Duration) {
        let n = self.n.lock().unwrap_or_else(|p| p.into_inner());
        let _ = self.idle.wait_timeout_while(n, limit, |n| *n > 0);
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        let mut n = self.0.n.lock().unwrap_or_else(|p| p.into_inner());
        *n = n.saturating_sub(1);
        if *n == 0 {
            self.0.idle.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_until_the_last_hold_is_dropped() {
        let f = Arc::new(InFlight::default());
        let (a, b) = (f.hold(), f.hold());
        let t = std::thread::spawn(move || {
            drop(a);
            std::thread::sleep(Duration::from_millis(50));
            drop(b);
        });
        let t0 = std::time::Instant::now();
        f.wait_idle(Duration::from_secs(10));
        assert!(t0.elapsed() >= Duration::from_millis(40));
        t.join().unwrap();
        // nothing held: at once
        let t0 = std::time::Instant::now();
        f.wait_idle(Duration::from_secs(10));
        assert!(t0.elapsed() < Duration::from_secs(5));
    }
}
