//! Shared by the privileged test files: a busybox bundle in a temp dir with a guard that
//! deletes the container, its cgroup and checks nothing is left mounted.

#![allow(dead_code)] // each test file uses its own part of this module

use std::io::Read;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use runtime::{Container, CreateOpts};
use serde_json::{json, Value};

pub const APPLETS: &[&str] = &[
    "sh", "echo", "cat", "true", "false", "hostname", "id", "ls", "sleep", "grep", "wc", "pwd",
    "test", "touch", "unshare", "mount", "readlink", "mknod", "head", "mkdir", "rm", "kill",
];

static SEQ: AtomicUsize = AtomicUsize::new(0);

/// Copy busybox in a separate `cp` process: a file open for writing in a test thread
/// would leak into children forked by other tests and make their exec fail with ETXTBSY.
pub fn copy_busybox(dest: &Path) {
    let st = std::process::Command::new("cp")
        .arg("/bin/busybox")
        .arg(dest)
        .status()
        .unwrap();
    assert!(st.success());
}

/// A bundle in a temp dir, a state root beside it, and a guard that deletes what's left.
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub id: String,
    pub config: Value,
}

impl Bundle {
    pub fn new(args: &[&str]) -> Bundle {
        let dir = tempfile::tempdir().unwrap();
        let rootfs = dir.path().join("rootfs");
        std::fs::create_dir_all(rootfs.join("bin")).unwrap();
        for d in ["proc", "sys", "dev", "tmp", "etc", "work"] {
            std::fs::create_dir_all(rootfs.join(d)).unwrap();
        }
        copy_busybox(&rootfs.join("bin/busybox"));
        for a in APPLETS {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(a)).unwrap();
        }
        let id = format!(
            "berth-test-{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        let mut config = serde_json::to_value(runtime::spec::example()).unwrap();
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        config["linux"]["cgroupsPath"] = json!(format!("/{id}"));
        Bundle { dir, id, config }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn write(&self) {
        std::fs::write(
            self.dir.path().join("config.json"),
            serde_json::to_vec_pretty(&self.config).unwrap(),
        )
        .unwrap();
    }

    pub fn opts(&self) -> CreateOpts {
        CreateOpts::new(self.root())
    }

    pub fn cgroup_dirs(&self) -> Vec<PathBuf> {
        [
            "memory", "pids", "cpu", "cpuset", "devices", "freezer", "blkio", "cpuacct", "",
        ]
        .iter()
        .map(|c| Path::new("/sys/fs/cgroup").join(c).join(&self.id))
        .collect()
    }

    /// Run to completion with stdout+stderr captured: (exit code, output).
    pub fn run(&self) -> (i32, String) {
        self.write();
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).unwrap();
        let mut opts = self.opts();
        let w2: OwnedFd = w.try_clone().unwrap();
        opts.stdio.stdout = Some(w);
        opts.stdio.stderr = Some(w2);
        let code = Container::run(&self.id, self.dir.path(), opts).unwrap();
        let mut out = String::new();
        std::fs::File::from(r).read_to_string(&mut out).unwrap();
        (code, out)
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        if let Ok(c) = Container::load(&self.root(), &self.id) {
            let _ = c.delete(true);
        }
        for d in self.cgroup_dirs() {
            let _ = std::fs::remove_dir(d);
        }
        if !std::thread::panicking() {
            assert!(
                !self.root().join(&self.id).exists(),
                "state dir left behind"
            );
            for d in self.cgroup_dirs() {
                assert!(!d.exists(), "cgroup {} left behind", d.display());
            }
            let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
            let p = self.dir.path().to_string_lossy().into_owned();
            assert!(!mounts.contains(&p), "mounts left behind under {p}");
        }
    }
}
