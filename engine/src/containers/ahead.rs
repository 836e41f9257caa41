//! Things made ahead of the containers that take them: a start takes one made a moment
//! before instead of making its own on its critical path, and the pool makes the next a
//! moment after a take (not during the start that follows it), on one long-lived thread.
//! Used for container directories ([`super::fresh`]) and cgroups ([`super::cgroups`]).

use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How many wait ready: a burst of creates (compose, a loop of `run -d`) outruns any
/// number, and a lone `run` needs one.
const READY: usize = 2;
/// A take's start comes right after it: leave it the CPU.
const REFILL_DELAY: Duration = Duration::from_millis(50);

pub(super) struct Ahead<T> {
    /// What waits; None once closed.
    ready: Mutex<Option<Vec<T>>>,
    /// Wakes the refilling thread (none when it could not start: takers make their own).
    refill: Option<Sender<()>>,
    make: Box<dyn Fn() -> std::io::Result<T> + Send + Sync>,
    discard: Box<dyn Fn(T) + Send + Sync>,
    /// Held while making: a close waits for what is being made (and discards it).
    making: Mutex<()>,
    what: &'static str,
}

impl<T> std::fmt::Debug for Ahead<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ahead").field("what", &self.what).finish()
    }
}

impl<T: Send + 'static> Ahead<T> {
    /// A pool of what `make` makes and `discard` undoes (`what` names it in logs, `thread`
    /// its thread), empty until the first take.
    pub(super) fn new(
        what: &'static str,
        thread: &str,
        make: impl Fn() -> std::io::Result<T> + Send + Sync + 'static,
        discard: impl Fn(T) + Send + Sync + 'static,
    ) -> Arc<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        Arc::new_cyclic(|me: &std::sync::Weak<Self>| {
            // the thread holds the pool weakly: it ends with the pool (its sender goes)
            let me = me.clone();
            let spawned = std::thread::Builder::new()
                .name(thread.into())
                .spawn(move || {
                    while rx.recv().is_ok() {
                        std::thread::sleep(REFILL_DELAY);
                        while rx.try_recv().is_ok() {}
                        let Some(me) = me.upgrade() else {
                            return;
                        };
                        me.fill();
                    }
                });
            if let Err(e) = &spawned {
                tracing::warn!("starting the pool of {what} made ahead: {e}");
            }
            Self {
                ready: Mutex::new(Some(Vec::new())),
                refill: spawned.ok().map(|_| tx),
                make: Box::new(make),
                discard: Box::new(discard),
                making: Mutex::new(()),
                what,
            }
        })
    }

    /// One made ahead, if one waits; either way, the next is made a moment later.
    pub(super) fn take(&self) -> Option<T> {
        let taken = self.lock().as_mut().and_then(Vec::pop);
        if let Some(tx) = &self.refill {
            let _ = tx.send(());
        }
        taken
    }

    /// Keep `t` for the next taker (one taken that could not be used).
    pub(super) fn put_back(&self, t: T) {
        let mut ready = self.lock();
        match ready.as_mut() {
            Some(v) => v.push(t),
            None => {
                drop(ready);
                (self.discard)(t)
            }
        }
    }

    /// Discard what waits, and what is made from now on (at shutdown).
    pub(super) fn close(&self) {
        let _making = self.making.lock().unwrap_or_else(|p| p.into_inner());
        let left = self.lock().take().unwrap_or_default();
        for t in left {
            (self.discard)(t);
        }
    }

    /// How many wait.
    #[cfg(test)]
    pub(super) fn ready(&self) -> usize {
        self.lock().as_ref().map_or(0, Vec::len)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Vec<T>>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Make until [`READY`] wait.
    fn fill(&self) {
        let _making = self.making.lock().unwrap_or_else(|p| p.into_inner());
        while self.lock().as_ref().is_some_and(|v| v.len() < READY) {
            match (self.make)() {
                Ok(t) => self.put_back(t),
                Err(e) => {
                    tracing::debug!("making {} ahead: {e}", self.what);
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// The first take finds none and starts the refill; a close discards what waits, and
    /// what is made or put back after it.
    #[test]
    fn refills_after_a_take_and_discards_at_close() {
        let made = Arc::new(AtomicU32::new(0));
        let gone = Arc::new(Mutex::new(Vec::new()));
        let (m, g) = (made.clone(), gone.clone());
        let pool = Ahead::new(
            "numbers",
            "test-ahead",
            move || Ok(m.fetch_add(1, Ordering::SeqCst)),
            move |n| g.lock().unwrap().push(n),
        );
        assert_eq!(pool.take(), None);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while pool.ready() < READY {
            assert!(std::time::Instant::now() < deadline, "no refill");
            std::thread::sleep(Duration::from_millis(5));
        }
        let first = pool.take().unwrap();
        pool.close();
        let mut discarded = gone.lock().unwrap().clone();
        discarded.sort_unstable();
        assert_eq!(discarded.len(), READY - 1);
        assert!(!discarded.contains(&first));
        pool.put_back(first);
        assert!(gone.lock().unwrap().contains(&first));
        assert_eq!(pool.take(), None);
        // the refill the last takes asked for makes nothing that stays
        std::thread::sleep(REFILL_DELAY * 3);
        assert_eq!(pool.ready(), 0);
        assert_eq!(
            made.load(Ordering::SeqCst) as usize,
            gone.lock().unwrap().len(),
            "all made were discarded"
        );
    }
}
