//! The real [`CgroupFs`]: plain file operations on the cgroup filesystem.

use std::path::Path;

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
}
