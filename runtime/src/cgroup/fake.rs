//! A recording in-memory [`CgroupFs`] for unit tests: files are a map, every mutation is
//! logged in order.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::CgroupFs;

#[derive(Debug, Default)]
pub struct FakeCgroupFs {
    pub files: RefCell<BTreeMap<PathBuf, String>>,
    pub dirs: RefCell<BTreeSet<PathBuf>>,
    log: RefCell<Vec<String>>,
}

impl FakeCgroupFs {
    pub fn new() -> Self {
        Self::default()
    }

    /// A pure v2 host offering `controllers` at the root.
    pub fn v2(root: &Path, controllers: &str) -> Self {
        let fs = Self::new();
        fs.dirs.borrow_mut().insert(root.to_path_buf());
        fs.files
            .borrow_mut()
            .insert(root.join("cgroup.controllers"), controllers.to_string());
        fs
    }

    /// A v1 host with these controller hierarchies mounted.
    pub fn v1(root: &Path, controllers: &[&str]) -> Self {
        let fs = Self::new();
        for c in controllers {
            fs.dirs.borrow_mut().insert(root.join(c));
        }
        fs.files
            .borrow_mut()
            .insert(root.join("cpuset/cpuset.cpus"), "0-1\n".into());
        fs.files
            .borrow_mut()
            .insert(root.join("cpuset/cpuset.mems"), "0\n".into());
        fs
    }

    pub fn log(&self) -> String {
        let mut s = self.log.borrow().join("\n");
        s.push('\n');
        s
    }
}

impl CgroupFs for FakeCgroupFs {
    fn exists(&self, path: &Path) -> bool {
        self.dirs.borrow().contains(path) || self.files.borrow().contains_key(path)
    }
    fn read(&self, path: &Path) -> std::io::Result<String> {
        self.files
            .borrow()
            .get(path)
            .cloned()
            .ok_or_else(|| std::io::Error::from(std::io::ErrorKind::NotFound))
    }
    fn write(&self, path: &Path, value: &str) -> std::io::Result<()> {
        self.log
            .borrow_mut()
            .push(format!("write {} {value:?}", path.display()));
        self.files
            .borrow_mut()
            .insert(path.to_path_buf(), value.to_string());
        Ok(())
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        self.log
            .borrow_mut()
            .push(format!("mkdir {}", path.display()));
        self.dirs.borrow_mut().insert(path.to_path_buf());
        Ok(())
    }
    fn remove_dir(&self, path: &Path) -> std::io::Result<()> {
        self.log
            .borrow_mut()
            .push(format!("rmdir {}", path.display()));
        self.dirs.borrow_mut().remove(path);
        Ok(())
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        if !self.dirs.borrow().contains(from) || self.exists(to) {
            return Err(std::io::ErrorKind::NotFound.into());
        }
        self.log
            .borrow_mut()
            .push(format!("rename {} {}", from.display(), to.display()));
        let moved = |p: &Path| p.strip_prefix(from).ok().map(|rest| to.join(rest));
        let dirs: BTreeSet<PathBuf> = std::mem::take(&mut *self.dirs.borrow_mut());
        *self.dirs.borrow_mut() = dirs.into_iter().map(|d| moved(&d).unwrap_or(d)).collect();
        let files = std::mem::take(&mut *self.files.borrow_mut());
        *self.files.borrow_mut() = files
            .into_iter()
            .map(|(p, v)| (moved(&p).unwrap_or(p), v))
            .collect();
        Ok(())
    }
}
