//! The guest's userland, as initramfs archives: a base built once from Debian packages
//! (busybox-static for the shell and every other tool it has, util-linux's `unshare`,
//! nftables, the libraries berth links, the kernel's modules) and cached under
//! `<target>/vm/`, and a small archive per run with the freshly built binaries and the suite
//! script. The kernel unpacks the two concatenated.
//!
//! The guest boots in two stages: `/init` copies `/guest` into a tmpfs and switches to it
//! (the runtime's pivot_root refuses the initramfs itself), then `/sbin/berth-vm-init` mounts
//! /proc, /sys, /dev and cgroup2 alone at /sys/fs/cgroup, loads the modules, prints the kernel
//! and the cgroup mode, runs the suite, prints its exit code and powers off.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::cpio::Cpio;
use super::kernel::{self, Kernel};
use crate::sys::{is_root, output, run};

/// Bump when the layout of the base archive changes: it is part of its cache key.
const FORMAT: u32 = 1;

/// The guest's packages, and the only paths taken from each (all but docs when empty).
/// Their dependencies are listed, not resolved: a missing library fails the chroot check.
pub const PACKAGES: &[(&str, &[&str])] = &[
    ("busybox-static", &[]),
    ("libc6", &[]),
    ("libgcc-s1", &[]),
    ("libseccomp2", &[]),
    // the daemon's test host runs `unshare --kill-child`, which busybox's lacks
    ("util-linux", &["usr/bin/unshare"]),
    ("nftables", &["usr/sbin/nft"]),
    ("libnftables1", &[]),
    ("libmnl0", &[]),
    ("libnftnl11", &[]),
    ("libxtables12", &[]),
    ("libjansson4", &[]),
    ("libgmp10", &[]),
    ("libedit2", &[]),
    ("libtinfo6", &[]),
    ("libbsd0", &[]),
    ("libmd0", &[]),
];

/// Stage one, at the initramfs root.
const STAGE1: &str = r#"#!/guest/bin/busybox sh
# the runtime pivots into containers' roots, which the initramfs (rootfs) refuses: run from a tmpfs
bb=/guest/bin/busybox
$bb mkdir -p /newroot
$bb mount -t tmpfs -o mode=0755 tmpfs /newroot
$bb cp -a /guest/. /newroot/
exec $bb switch_root /newroot /sbin/berth-vm-init
"#;

/// Stage two, PID 1 in the tmpfs root. The host reads the `berth-vm:` lines.
const STAGE2: &str = r#"#!/bin/sh
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts /dev/shm /run /tmp /var/lib
mount -t devpts devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t cgroup2 cgroup2 /sys/fs/cgroup
ln -sf /proc/self/fd /dev/fd
ip link set lo up
while read -r m; do
    insmod "/lib/modules/$(uname -r)/$m" || echo "berth-vm: insmod $m failed"
done < /etc/berth-vm/modules
echo "berth-vm: kernel $(uname -r)"
# busybox's stat has no name for cgroup2's magic; v1 is not even mountable (cgroup_no_v1=all)
case "$(stat -fc %t /sys/fs/cgroup)" in
63677270) mode=cgroup2fs ;;
*) mode="not cgroup2 (magic $(stat -fc %t /sys/fs/cgroup))" ;;
esac
grep -q " cgroup " /proc/mounts && mode="$mode, with v1 hierarchies"
echo "berth-vm: cgroup $mode at /sys/fs/cgroup, controllers: $(cat /sys/fs/cgroup/cgroup.controllers)"
echo "berth-vm: suite start"
/etc/berth-vm/suite
echo "berth-vm: exit $?"
sync
poweroff -f
"#;

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\n";

fn key(kernel: &Kernel) -> String {
    let pkgs: Vec<String> = PACKAGES
        .iter()
        .map(|(p, only)| format!("{p}:{}", only.join(",")))
        .collect();
    let k = format!(
        "format {FORMAT}\nkernel {}\npackages {}\nmodules {}\n{STAGE1}\n{STAGE2}",
        kernel.release,
        pkgs.join(" "),
        kernel::MODULES.join(",")
    );
    hex::encode(Sha256::digest(k.as_bytes()))[..12].to_owned()
}

/// The base archive (gzip-compressed cpio) and the guest root it was made from.
#[derive(Debug)]
pub struct Base {
    pub archive: PathBuf,
    pub root: PathBuf,
}

/// Build the base once per key; later runs reuse it.
pub fn ensure_base(cache: &Path, kernel: &Kernel) -> Result<Base> {
    let dir = cache.join(format!("guest-{}", key(kernel)));
    let base = Base {
        archive: dir.join("base.cpio.gz"),
        root: dir.join("root"),
    };
    if base.archive.exists() {
        return Ok(base);
    }
    eprintln!("xtask: building the guest userland in {}", dir.display());
    let tmp = dir.with_extension("tmp");
    let _ = std::fs::remove_dir_all(&tmp);
    let root = tmp.join("root");
    std::fs::create_dir_all(&root)?;
    let names: Vec<&str> = PACKAGES.iter().map(|(p, _)| *p).collect();
    let debs = kernel::download(cache, &names)?;
    for ((pkg, only), deb) in PACKAGES.iter().zip(&debs) {
        let x = tmp.join("x").join(pkg);
        std::fs::create_dir_all(&x)?;
        run(Command::new("dpkg-deb").arg("-x").arg(deb).arg(&x))?;
        if only.is_empty() {
            merge(&x, &root, &x)?;
        } else {
            for p in *only {
                let dst = root.join(p);
                std::fs::create_dir_all(dst.parent().unwrap_or(&root))?;
                std::fs::copy(x.join(p), &dst).with_context(|| format!("{pkg} has no {p}"))?;
            }
        }
    }
    std::fs::remove_dir_all(tmp.join("x"))?;
    layout(&root, kernel)?;
    check(&root)?;
    let archive = tmp.join("base.cpio.gz");
    let gz = flate2::write::GzEncoder::new(
        BufWriter::new(File::create(&archive)?),
        flate2::Compression::fast(),
    );
    let mut c = Cpio::new(gz);
    c.file("init", 0o755, STAGE1.as_bytes())?;
    c.dir("dev")?;
    c.char_device("dev/console", 0o600, 5, 1)?;
    c.dir("guest")?;
    c.tree("guest", &root)?;
    c.finish()?.finish()?.flush()?;
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::rename(&tmp, &dir)?;
    Ok(base)
}

/// Copy `src` into `dst`, keeping symlinks and modes, leaving out documentation and locales.
fn merge(src: &Path, dst: &Path, top: &Path) -> Result<()> {
    std::fs::create_dir_all(dst)?;
    for e in std::fs::read_dir(src)? {
        let e = e?;
        let rel = e.path().strip_prefix(top)?.to_path_buf();
        if rel.starts_with("usr/share") || rel.ends_with("gconv") {
            continue;
        }
        let to = dst.join(e.file_name());
        let ft = e.file_type()?;
        if ft.is_symlink() {
            let _ = std::fs::remove_file(&to);
            std::os::unix::fs::symlink(std::fs::read_link(e.path())?, &to)?;
        } else if ft.is_dir() {
            merge(&e.path(), &to, top)?;
        } else {
            std::fs::copy(e.path(), &to)?;
        }
    }
    Ok(())
}

/// Applet links, accounts, the modules and the init scripts.
fn layout(root: &Path, kernel: &Kernel) -> Result<()> {
    for d in [
        "bin",
        "sbin",
        "usr/bin",
        "usr/sbin",
        "etc/berth-vm",
        "proc",
        "sys",
        "dev",
        "tmp",
        "root",
        "run",
        "var/lib",
    ] {
        std::fs::create_dir_all(root.join(d))?;
    }
    let busybox = root.join("bin/busybox");
    for applet in output(Command::new(&busybox).arg("--list"))?.lines() {
        let taken = ["bin", "sbin", "usr/bin", "usr/sbin"]
            .iter()
            .any(|d| root.join(d).join(applet).symlink_metadata().is_ok());
        if !applet.is_empty() && !taken {
            std::os::unix::fs::symlink("busybox", root.join("bin").join(applet))?;
        }
    }
    std::fs::write(root.join("etc/passwd"), PASSWD)?;
    std::fs::write(root.join("etc/group"), GROUP)?;
    std::fs::write(root.join("etc/hosts"), "127.0.0.1 localhost\n")?;
    std::fs::write(root.join("etc/hostname"), "berth-vm\n")?;
    // nothing listens there, and the guest has no network device anyway
    std::fs::write(root.join("etc/resolv.conf"), "nameserver 127.0.0.1\n")?;
    let mods = kernel.module_closure(kernel::MODULES)?;
    let mod_root = root.join(format!("lib/modules/{}", kernel.release));
    for m in &mods {
        let dst = mod_root.join(m);
        std::fs::create_dir_all(dst.parent().unwrap_or(&mod_root))?;
        std::fs::copy(kernel.modules_dir.join(m), &dst)?;
    }
    std::fs::write(root.join("etc/berth-vm/modules"), mods.join("\n") + "\n")?;
    let init = root.join("sbin/berth-vm-init");
    std::fs::write(&init, STAGE2)?;
    std::fs::set_permissions(&init, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    Ok(())
}

/// Every program the guest relies on starts inside the root, so no library is missing.
fn check(root: &Path) -> Result<()> {
    if !is_root() {
        eprintln!("xtask: not root: the guest's programs are not checked in a chroot");
        return Ok(());
    }
    for prog in [
        &["/usr/sbin/nft", "--version"][..],
        &["/usr/bin/unshare", "--version"],
        &["/bin/sh", "-c", "true"],
    ] {
        output(Command::new("chroot").arg(root).args(prog))
            .with_context(|| format!("the guest's {} does not run", prog[0]))?;
    }
    Ok(())
}

/// The per-run archive (plain cpio): each `(source, path)` file at its absolute `path` in the
/// guest, and the suite script.
pub fn run_archive(path: &Path, files: &[(PathBuf, PathBuf)], suite: &str) -> Result<()> {
    let mut c = Cpio::new(BufWriter::new(File::create(path)?));
    let mut dirs: Vec<PathBuf> = Vec::new();
    for (src, f) in files {
        let mut ancestors: Vec<&Path> = f.ancestors().skip(1).collect();
        ancestors.reverse();
        for a in ancestors {
            if a != Path::new("/") && !dirs.iter().any(|d| d == a) {
                c.dir(&format!("guest{}", a.display()))?;
                dirs.push(a.to_path_buf());
            }
        }
        c.copy_file(&format!("guest{}", f.display()), src)?;
    }
    c.file("guest/etc/berth-vm/suite", 0o755, suite.as_bytes())?;
    c.finish()?.flush()?;
    Ok(())
}

/// The shared libraries `bin` needs that the guest root lacks (asked of the host's ldd: host
/// and guest are the same Debian release).
pub fn missing_libraries(root: &Path, bin: &Path) -> Result<Vec<String>> {
    let out = output(Command::new("ldd").arg(bin))?;
    let mut missing = Vec::new();
    for line in out.lines() {
        let Some((name, _)) = line.trim().split_once(" => ") else {
            continue;
        };
        let found = [
            "lib/x86_64-linux-gnu",
            "usr/lib/x86_64-linux-gnu",
            "lib",
            "usr/lib",
        ]
        .iter()
        .any(|d| root.join(d).join(name).exists());
        if !found {
            missing.push(name.to_owned());
        }
    }
    if out.contains("not found") {
        bail!(
            "{} has unresolved libraries on the host:\n{out}",
            bin.display()
        );
    }
    Ok(missing)
}

/// The line the probe's init prints before it powers off.
pub const PROBE_MARKER: &str = "berth-vm: probe ok";

/// A tiny archive that only proves the guest runs: busybox prints a line and powers off.
pub fn ensure_probe(base: &Base) -> Result<PathBuf> {
    let path = base.root.with_file_name("probe.cpio.gz");
    if path.exists() {
        return Ok(path);
    }
    let tmp = path.with_extension("tmp");
    let gz = flate2::write::GzEncoder::new(
        BufWriter::new(File::create(&tmp)?),
        flate2::Compression::fast(),
    );
    let mut c = Cpio::new(gz);
    let init = format!(
        "#!/bin/busybox sh\n/bin/busybox echo '{PROBE_MARKER}'\n/bin/busybox poweroff -f\n"
    );
    c.file("init", 0o755, init.as_bytes())?;
    c.dir("dev")?;
    c.char_device("dev/console", 0o600, 5, 1)?;
    c.dir("bin")?;
    c.copy_file("bin/busybox", &base.root.join("bin/busybox"))?;
    c.finish()?.finish()?.flush()?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}
