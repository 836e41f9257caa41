//! Network namespaces made ahead of time. Making one costs the kernel about a millisecond,
//! and several when the CPUs are busy (it waits for RCU grace periods): a container's start
//! takes a ready one instead (one bind mount) and a background thread makes the next, and
//! unpins the taken one's old place (an unmount waits for an RCU grace period, which waits
//! for the other CPU: ~0.5 ms here when the start mounts its root filesystem meanwhile).
//! Like the spare monitor the engine keeps, this moves work off the start, not away.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::error::NetError;
use crate::netlink::Netlink;

/// How many namespaces wait: a burst of starts (compose's) takes them all, then the rest
/// make their own.
const READY: usize = 2;

/// How long a refill waits after a start took a namespace. Making one holds the kernel's
/// network locks (and a CPU) for about a millisecond: at once, it would slow the start that
/// took one, whose veth and addresses need the same locks (measured: its connect took 1.1
/// instead of 0.8 ms).
const REFILL_DELAY: Duration = Duration::from_millis(50);

/// The directory under the netns directory where the waiting namespaces are pinned.
pub const POOL_DIR: &str = ".pool";

pub struct NetnsPool {
    dir: PathBuf,
    netlink: Arc<dyn Netlink>,
    ready: Mutex<Vec<PathBuf>>,
    /// Where taken namespaces were pinned in the pool, and those of containers gone: unpinned
    /// by the refilling thread.
    taken: Mutex<Vec<PathBuf>>,
    filling: AtomicBool,
    /// Shut down: no more are made (a refill waiting out its delay would otherwise pin one
    /// after the daemon released them all, and leave it behind).
    closed: AtomicBool,
    /// Wakes the one thread that refills, with how long to wait first (none when it could
    /// not start: starts make their own). A thread of its own per refill cost each start
    /// that took a namespace ~0.05-0.1 ms here.
    wake: Option<std::sync::mpsc::Sender<Duration>>,
}

impl NetnsPool {
    /// A pool pinning its namespaces under `netns_dir/.pool`; what an earlier daemon left
    /// there is released first.
    pub fn new(netns_dir: &Path, netlink: Arc<dyn Netlink>) -> Arc<NetnsPool> {
        let pool = Arc::new_cyclic(|me: &std::sync::Weak<NetnsPool>| {
            // the thread holds the pool weakly: it ends with the pool (its sender goes)
            let me = me.clone();
            let (tx, rx) = std::sync::mpsc::channel::<Duration>();
            let spawned = std::thread::Builder::new()
                .name("netns-pool".into())
                .spawn(move || {
                    while let Ok(delay) = rx.recv() {
                        std::thread::sleep(delay);
                        let Some(pool) = me.upgrade() else {
                            return;
                        };
                        pool.fill();
                        pool.filling.store(false, Ordering::Release);
                    }
                });
            NetnsPool {
                dir: netns_dir.join(POOL_DIR),
                netlink,
                ready: Mutex::default(),
                taken: Mutex::default(),
                filling: AtomicBool::new(false),
                closed: AtomicBool::new(false),
                wake: spawned.ok().map(|_| tx),
            }
        });
        pool.release_all();
        pool
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Make the namespace at `path`: a waiting one pinned there too, else a new one. Either
    /// way the pool is refilled (and the taken one unpinned from it) in the background.
    pub fn take(self: &Arc<Self>, path: &Path) -> Result<(), NetError> {
        let waiting = self.lock().pop();
        let made = match waiting {
            Some(p) => {
                let pinned = self.netlink.pin_netns(&p, path);
                if self.wake.is_some() && !self.closed.load(Ordering::Acquire) {
                    self.taken.lock().unwrap_or_else(|e| e.into_inner()).push(p);
                } else {
                    let _ = self.netlink.release_netns(&p);
                }
                match pinned {
                    Ok(()) => Ok(()),
                    Err(_) => self.netlink.create_netns(path),
                }
            }
            None => self.netlink.create_netns(path),
        };
        self.refill_after(REFILL_DELAY);
        made
    }

    /// Unpin the namespace pinned at `path` soon, on the refilling thread (at once when
    /// there is none, or the pool is closed).
    pub fn release_later(&self, path: PathBuf) {
        let queued = !self.closed.load(Ordering::Acquire)
            && self.wake.as_ref().is_some_and(|tx| {
                self.taken
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push(path.clone());
                tx.send(Duration::ZERO).is_ok()
            });
        if !queued {
            let _ = self.netlink.release_netns(&path);
        }
    }

    /// Unpin what starts took from the pool.
    fn release_taken(&self) {
        let taken = std::mem::take(&mut *self.taken.lock().unwrap_or_else(|e| e.into_inner()));
        for p in taken {
            let _ = self.netlink.release_netns(&p);
        }
    }

    /// Have the refilling thread make namespaces until `READY` wait (unless it is at it).
    pub fn refill(self: &Arc<Self>) {
        self.refill_after(Duration::ZERO);
    }

    /// [`refill`](Self::refill), the first namespace after `delay`.
    fn refill_after(self: &Arc<Self>, delay: Duration) {
        if self.closed.load(Ordering::Acquire)
            || self.lock().len() >= READY
            || self.filling.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let woken = self.wake.as_ref().is_some_and(|tx| tx.send(delay).is_ok());
        if !woken {
            self.filling.store(false, Ordering::Release);
        }
    }

    /// Make namespaces until `READY` wait (on the refilling thread).
    fn fill(&self) {
        self.release_taken();
        while !self.closed.load(Ordering::Acquire) && self.lock().len() < READY {
            let p = self.dir.join(crate::id::random_hex(16));
            if self.netlink.create_netns(&p).is_err() {
                break; // the next take makes its own, and tries again
            }
            let mut ready = self.lock();
            if self.closed.load(Ordering::Acquire) {
                // closed while it was being made: it goes too
                drop(ready);
                let _ = self.netlink.release_netns(&p);
                break;
            }
            ready.push(p);
        }
        self.release_taken(); // what a start took meanwhile
    }

    /// Shut down: release every waiting namespace, and make no more.
    pub fn close(&self) {
        {
            let _ready = self.lock();
            self.closed.store(true, Ordering::Release);
        }
        self.release_all();
    }

    /// Release every waiting namespace (and what an earlier daemon left pinned).
    pub fn release_all(&self) {
        self.lock().clear();
        self.release_taken();
        if let Ok(rd) = std::fs::read_dir(&self.dir) {
            for e in rd.flatten() {
                let _ = self.netlink.release_netns(&e.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::netlink::fake::RecordingNetlink;

    fn waiting(pool: &NetnsPool) -> usize {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while pool.filling.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        pool.lock().len()
    }

    #[test]
    fn a_start_takes_a_namespace_made_ahead_and_the_pool_refills() {
        let nl = Arc::new(RecordingNetlink::default());
        let dir = tempfile::tempdir().unwrap();
        let pool = NetnsPool::new(dir.path(), nl.clone());
        // nothing made yet: the first start makes its own
        pool.filling.store(true, Ordering::Release); // no refill for this step
        pool.take(&dir.path().join("c1")).unwrap();
        assert_eq!(nl.take(), "create_netns c1");
        pool.filling.store(false, Ordering::Release);
        pool.refill();
        assert_eq!(waiting(&pool), READY);
        assert_eq!(
            nl.take()
                .lines()
                .filter(|l| l.starts_with("create_netns "))
                .count(),
            READY
        );
        // the next start moves one made ahead into place; the pool makes another
        let next = pool.lock().last().cloned().unwrap();
        pool.take(&dir.path().join("c2")).unwrap();
        assert_eq!(waiting(&pool), READY);
        let calls = nl.take();
        let name = next.file_name().unwrap().to_string_lossy();
        assert!(
            calls.starts_with(&format!("pin_netns {name} c2\n")),
            "{calls}"
        );
        // its place in the pool is released by the refill, before it makes another
        assert!(
            calls.contains(&format!("\nrelease_netns {name}\ncreate_netns ")),
            "{calls}"
        );
        // shutdown: the waiting ones are released, and a refill that comes later (one
        // waiting out its delay) makes none
        pool.close();
        assert_eq!(pool.lock().len(), 0);
        nl.take();
        pool.refill();
        assert_eq!(waiting(&pool), 0);
        pool.take(&dir.path().join("c3")).unwrap();
        std::thread::sleep(REFILL_DELAY * 2);
        assert_eq!(waiting(&pool), 0);
        assert_eq!(nl.take(), "create_netns c3");
    }
}
