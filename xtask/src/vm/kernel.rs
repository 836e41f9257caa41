//! The guest kernel: Debian's `linux-image-cloud-amd64`, fetched with `apt-get download` and
//! unpacked once under `<target>/vm/`, and the modules the suite needs from it (with their
//! dependencies, read from each module's `.modinfo`, in load order).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{anyhow, bail, Context, Result};

use crate::sys::{output, run};

/// The package whose dependency names the current cloud kernel.
const META_PACKAGE: &str = "linux-image-cloud-amd64";

/// Modules the guest loads at boot (their dependencies come along): overlay for root
/// filesystems, veth + bridge for networks, and the nftables expressions berth's table uses.
pub const MODULES: &[&str] = &[
    "overlay",
    "veth",
    "bridge",
    "nf_tables",
    "nf_conntrack",
    "nf_nat",
    "nft_chain_nat",
    "nft_nat",
    "nft_masq",
    "nft_ct",
    "nft_fib_ipv4",
];

#[derive(Debug)]
pub struct Kernel {
    /// e.g. `6.1.0-48-cloud-amd64`
    pub release: String,
    pub vmlinuz: PathBuf,
    /// `lib/modules/<release>` of the unpacked package.
    pub modules_dir: PathBuf,
}

/// Debian packages fetched into `cache/debs` by `apt-get download` (apt's lists refreshed once
/// when they do not know a package); returns the .deb paths in the order asked.
pub fn download(cache: &Path, pkgs: &[&str]) -> Result<Vec<PathBuf>> {
    let dir = cache.join("debs");
    std::fs::create_dir_all(&dir)?;
    let find = |pkg: &str| -> Option<PathBuf> {
        let prefix = format!("{pkg}_");
        std::fs::read_dir(&dir)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
            })
            .max()
    };
    let missing: Vec<&str> = pkgs.iter().copied().filter(|p| find(p).is_none()).collect();
    if !missing.is_empty() {
        let get = |dir: &Path| {
            // as root apt would hand the download to its _apt user, who may not write here
            run(Command::new("apt-get")
                .args(["-o", "APT::Sandbox::User=root", "download"])
                .args(&missing)
                .current_dir(dir)
                .stdout(std::io::stderr()))
        };
        if get(&dir).is_err() {
            eprintln!("xtask: refreshing apt's package lists and trying again");
            run(Command::new("apt-get")
                .args(["update", "-qq"])
                .stdout(std::io::stderr()))?;
            get(&dir)?;
        }
    }
    pkgs.iter()
        .map(|p| find(p).ok_or_else(|| anyhow!("apt-get download gave no .deb for {p}")))
        .collect()
}

/// The versioned kernel package the cloud meta-package depends on, from apt's local lists.
fn kernel_package() -> Result<String> {
    let ask = || output(Command::new("apt-cache").args(["depends", META_PACKAGE]));
    let deps = match ask() {
        Ok(d) => d,
        Err(_) => {
            run(Command::new("apt-get")
                .args(["update", "-qq"])
                .stdout(std::io::stderr()))?;
            ask()?
        }
    };
    deps.lines()
        .filter_map(|l| l.trim().strip_prefix("Depends: "))
        .find(|p| p.starts_with("linux-image-"))
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("apt-cache depends {META_PACKAGE} names no kernel:\n{deps}"))
}

/// Fetch and unpack the kernel once; later runs find it under `cache/kernel-<package>`.
pub fn ensure(cache: &Path) -> Result<Kernel> {
    let mut pkg = kernel_package()?;
    if !cache.join(format!("kernel-{pkg}/.complete")).exists() {
        let deb = match download(cache, &[&pkg]) {
            Ok(mut debs) => debs.remove(0),
            // stale lists name a kernel the mirror has replaced: download refreshed them
            Err(e) if kernel_package().is_ok_and(|p| p != pkg) => {
                eprintln!("xtask: {pkg}: {e:#}; apt now names a newer kernel");
                pkg = kernel_package()?;
                download(cache, &[&pkg])?.remove(0)
            }
            Err(e) => return Err(e),
        };
        let dir = cache.join(format!("kernel-{pkg}"));
        let tmp = cache.join(format!("kernel-{pkg}.tmp"));
        let _ = std::fs::remove_dir_all(&tmp);
        run(Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&tmp))?;
        std::fs::write(tmp.join(".complete"), &pkg)?;
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::rename(&tmp, &dir)?;
    }
    let dir = cache.join(format!("kernel-{pkg}"));
    let release = pkg.trim_start_matches("linux-image-").to_owned();
    let kernel = Kernel {
        vmlinuz: dir.join(format!("boot/vmlinuz-{release}")),
        modules_dir: dir.join(format!("lib/modules/{release}")),
        release,
    };
    if !kernel.vmlinuz.exists() {
        bail!("{pkg} has no {}", kernel.vmlinuz.display());
    }
    Ok(kernel)
}

impl Kernel {
    /// `names` and every module they depend on, as paths relative to `modules_dir`, each
    /// after its dependencies. Built-in modules are left out.
    pub fn module_closure(&self, names: &[&str]) -> Result<Vec<String>> {
        let mut index = HashMap::new();
        index_modules(&self.modules_dir, &self.modules_dir, &mut index)?;
        let builtin =
            std::fs::read_to_string(self.modules_dir.join("modules.builtin")).unwrap_or_default();
        let builtin: Vec<String> = builtin
            .lines()
            .filter_map(|l| Path::new(l).file_stem())
            .map(|s| normalize(&s.to_string_lossy()))
            .collect();
        let mut order = Vec::new();
        for n in names {
            visit(self, &normalize(n), &index, &builtin, &mut order, 0)?;
        }
        Ok(order)
    }
}

fn normalize(name: &str) -> String {
    name.trim_end_matches(".ko").replace('-', "_")
}

fn index_modules(root: &Path, dir: &Path, out: &mut HashMap<String, String>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            index_modules(root, &p, out)?;
        } else if p.extension().is_some_and(|x| x == "ko") {
            let stem = p.file_stem().map(|s| s.to_string_lossy().into_owned());
            let rel = p.strip_prefix(root)?.to_string_lossy().into_owned();
            out.insert(normalize(&stem.unwrap_or_default()), rel);
        }
    }
    Ok(())
}

fn visit(
    k: &Kernel,
    name: &str,
    index: &HashMap<String, String>,
    builtin: &[String],
    order: &mut Vec<String>,
    depth: usize,
) -> Result<()> {
    if depth > 32 {
        bail!("module dependencies loop at {name}");
    }
    if builtin.iter().any(|b| b == name) {
        return Ok(());
    }
    let rel = index
        .get(name)
        .ok_or_else(|| anyhow!("kernel {} has no module {name}", k.release))?;
    if order.contains(rel) {
        return Ok(());
    }
    let bytes = std::fs::read(k.modules_dir.join(rel))?;
    for dep in modinfo_depends(&bytes) {
        visit(k, &normalize(&dep), index, builtin, order, depth + 1)?;
    }
    order.push(rel.clone());
    Ok(())
}

/// The `depends=` entry of a module's `.modinfo` (NUL-separated `key=value` strings).
fn modinfo_depends(ko: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"\0depends=";
    ko.windows(KEY.len())
        .position(|w| w == KEY)
        .map(|at| {
            let rest = &ko[at + KEY.len()..];
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            String::from_utf8_lossy(&rest[..end])
                .split(',')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depends_are_read_from_modinfo() {
        let ko = b"\x7fELF...\0license=GPL\0depends=nf_tables,nf_nat\0name=nft_nat\0";
        assert_eq!(modinfo_depends(ko), ["nf_tables", "nf_nat"]);
        assert!(modinfo_depends(b"\0depends=\0name=x\0").is_empty());
        assert!(modinfo_depends(b"no modinfo").is_empty());
    }
}
