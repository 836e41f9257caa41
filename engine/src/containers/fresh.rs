//! Container directories made ahead of their containers: a create takes one by a rename.
//!
//! A container's directory holds its record, log and /etc files, and the upper and work
//! directories of its root's overlay. Making those three directories on the data root's
//! ext4 costs ~0.12 ms each here (inode and block allocation, journal), ~0.35 ms of every
//! `run`; a rename of one made ahead costs ~0.04 ms. The pool makes the next one a moment
//! after a create took one (as the netns pool does: not during the start that follows),
//! in `containers/.fresh/`; a create that finds none makes its own, as before. What a
//! daemon left there is discarded when the next one opens the store.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The pool's directory, under `containers/`.
pub(super) const FRESH: &str = ".fresh";
/// How many wait ready: a burst of creates (compose, a loop of `run -d`) outruns any
/// number, and a lone `run` needs one.
const READY: usize = 2;
/// A create's start comes right after it: leave it the CPU.
const REFILL_DELAY: Duration = Duration::from_millis(50);

#[derive(Debug)]
pub(super) struct FreshDirs {
    dir: PathBuf,
    ready: Mutex<Vec<PathBuf>>,
    /// Wakes the refilling thread (none when it could not start: creates make their own).
    refill: Option<std::sync::mpsc::Sender<()>>,
    seq: AtomicU64,
}

impl FreshDirs {
    pub(super) fn new(containers_dir: &Path) -> Arc<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        Arc::new_cyclic(|me: &std::sync::Weak<Self>| {
            // the thread holds the pool weakly: it ends with the pool (its sender goes)
            let me = me.clone();
            let spawned = std::thread::Builder::new()
                .name("fresh-dirs".into())
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
                tracing::warn!("starting the container directory pool: {e}");
            }
            Self {
                dir: containers_dir.join(FRESH),
                ready: Mutex::new(Vec::new()),
                refill: spawned.ok().map(|_| tx),
                seq: AtomicU64::new(0),
            }
        })
    }

    /// Make `dst` (not there yet) a container directory: one made ahead when there is one.
    /// Either way, make the next one a moment later.
    pub(super) fn take_into(&self, dst: &Path) -> std::io::Result<()> {
        let taken = self.ready.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let done = match taken {
            Some(p) => std::fs::rename(&p, dst).or_else(|_| {
                // (dst is taken, or the data root is not what it was): kept for the next
                self.ready.lock().unwrap_or_else(|p| p.into_inner()).push(p);
                make(dst)
            }),
            None => make(dst),
        };
        if let Some(tx) = &self.refill {
            let _ = tx.send(());
        }
        done
    }

    /// Make directories until [`READY`] wait.
    fn fill(&self) {
        while self.ready.lock().unwrap_or_else(|p| p.into_inner()).len() < READY {
            match self.make_one() {
                Ok(p) => self.ready.lock().unwrap_or_else(|p| p.into_inner()).push(p),
                Err(e) => {
                    tracing::debug!("making a container directory ahead: {e}");
                    break;
                }
            }
        }
    }

    /// One complete directory in the pool: made under a temporary name, then renamed.
    fn make_one(&self) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let tmp = self.dir.join(format!("{n}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        make(&tmp)?;
        let done = self.dir.join(n.to_string());
        std::fs::rename(&tmp, &done)?;
        Ok(done)
    }
}

/// A container directory with its overlay's upper and work directories.
fn make(dir: &Path) -> std::io::Result<()> {
    std::fs::create_dir(dir)?;
    for sub in image_store::layers::CONTAINER_SUBDIRS {
        std::fs::create_dir(dir.join(sub))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A create takes a directory made ahead (its upper and work are there); the pool
    /// makes the next ones after its delay; with none ready a create makes its own.
    #[test]
    fn creates_take_directories_made_ahead() {
        let root = tempfile::tempdir().unwrap();
        let pool = FreshDirs::new(root.path());
        pool.take_into(&root.path().join("c1")).unwrap();
        for sub in image_store::layers::CONTAINER_SUBDIRS {
            assert!(root.path().join("c1").join(sub).is_dir());
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while pool.ready.lock().unwrap().len() < READY {
            assert!(std::time::Instant::now() < deadline, "no refill");
            std::thread::sleep(Duration::from_millis(10));
        }
        let next = pool.ready.lock().unwrap().last().cloned().unwrap();
        pool.take_into(&root.path().join("c2")).unwrap();
        assert!(!next.exists(), "c2 is the one made ahead");
        assert!(root.path().join("c2/upper").is_dir());
        // a name that is taken is an error, and the pool's directories stay for the next
        assert!(pool.take_into(&root.path().join("c2")).is_err());
        let ready = pool.ready.lock().unwrap().clone();
        assert!(!ready.is_empty());
        assert!(ready.iter().all(|p| p.join("work").is_dir()), "{ready:?}");
    }
}
