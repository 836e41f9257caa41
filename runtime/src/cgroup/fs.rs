//! The real [`CgroupFs`]: plain file operations on the cgroup filesystem.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::CgroupFs;

#[derive(Debug, Default, Clone, Copy)]
pub struct RealCgroupFs;

impl CgroupFs for RealCgroupFs {
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn read(&self, path: &Path) -> std::io::Result<String> {
        std::fs::read_to_string(path)
    }
    fn write(&self, path: &Path, value: &str) -> std::io::Result<()> {
        // cgroup files take one value per write(2); no truncation or creation.
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        f.write_all(value.as_bytes())
    }
    fn create_dir_all(&self, path: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(path)
    }
    fn remove_dir(&self, path: &Path) -> std::io::Result<()> {
        std::fs::remove_dir(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> std::io::Result<()> {
        std::fs::rename(from, to)
    }
    fn hierarchy(&self, root: &Path, controller: &'static str) -> bool {
        // asked three or four times a container start (a stat each): the hierarchies
        // mounted are remembered, for the life of this process
        static SEEN: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
        let path = root.join(controller);
        let mut seen = SEEN.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(&path) {
            return true;
        }
        let there = path.exists();
        if there {
            seen.push(path);
        }
        there
    }
}
