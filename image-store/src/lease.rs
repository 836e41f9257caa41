//! Writers versus garbage collection: a writer (load, import, pull, commit) stores blobs and
//! layers before an image names them, so GC must not run while any writer does. A lease is
//! an owned, `Send` token, so an async pull can hold one across awaits; GC waits until no
//! lease is out and keeps new ones waiting while it runs.

use std::sync::{Arc, Condvar, Mutex};

#[derive(Debug, Default)]
struct Counts {
    writers: usize,
    collecting: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Leases {
    counts: Mutex<Counts>,
    changed: Condvar,
}

/// Held by a writer; dropping it lets GC run.
#[derive(Debug)]
pub struct WriteLease(Arc<Leases>);

/// Held by GC while it deletes.
pub(crate) struct Exclusive<'a>(&'a Leases);

impl Leases {
    fn counts(&self) -> std::sync::MutexGuard<'_, Counts> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn wait<'a>(&self, g: std::sync::MutexGuard<'a, Counts>) -> std::sync::MutexGuard<'a, Counts> {
        self.changed.wait(g).unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn writer(self: &Arc<Self>) -> WriteLease {
        let mut c = self.counts();
        while c.collecting {
            c = self.wait(c);
        }
        c.writers += 1;
        WriteLease(self.clone())
    }

    pub(crate) fn exclusive(&self) -> Exclusive<'_> {
        let mut c = self.counts();
        while c.collecting {
            c = self.wait(c);
        }
        // Claim first so that no new writer starts, then wait for the running ones.
        c.collecting = true;
        while c.writers > 0 {
            c = self.wait(c);
        }
        Exclusive(self)
    }
}

impl Drop for WriteLease {
    fn drop(&mut self) {
        self.0.counts().writers -= 1;
        self.0.changed.notify_all();
    }
}

impl Drop for Exclusive<'_> {
    fn drop(&mut self) {
        self.0.counts().collecting = false;
        self.0.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    #[test]
    fn collection_waits_for_writers_and_blocks_new_ones() {
        let l = Arc::new(Leases::default());
        let w = l.writer();
        let done = Arc::new(AtomicBool::new(false));
        let (l2, d2) = (l.clone(), done.clone());
        let gc = std::thread::spawn(move || {
            let _x = l2.exclusive();
            d2.store(true, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(50));
        });
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !done.load(Ordering::SeqCst),
            "GC ran while a writer held a lease"
        );
        drop(w);
        // A new writer waits for the collection to finish.
        while !done.load(Ordering::SeqCst) {
            std::thread::yield_now();
        }
        let w = l.writer();
        assert!(gc.is_finished(), "a writer started during a collection");
        drop(w);
        gc.join().unwrap();
    }
}
