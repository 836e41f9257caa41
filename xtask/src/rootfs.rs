//! `cargo xtask rootfs NAME`: cached Debian root filesystems that tests and the demo import as
//! images (no image can be pulled here). `ensure(name)` returns a plain tarball with relative
//! paths, as `docker import` takes, built once per recipe with debootstrap and reused after.
//!
//! It contacts no host but the mirror apt uses (through apt's proxy), publishes no tarball
//! that has not passed its recipe's check, and leaves no mount behind: debootstrap and the
//! check run in their own mount namespaces, and the work dir is only removed once nothing
//! under it is mounted.

mod mirror;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::sys::{ensure_packages, is_root, output, run};

/// A named root filesystem: Debian minbase plus packages, and how to tell that it works.
#[derive(Debug)]
pub struct Recipe {
    pub name: &'static str,
    /// Packages on top of minbase (their dependencies come along, their recommends do not).
    pub include: &'static [&'static str],
    /// A shell command that must succeed inside the unpacked tarball.
    pub check: &'static str,
}

pub const RECIPES: &[Recipe] = &[
    // a Flask app that counts its visits in Redis
    Recipe {
        name: "python",
        include: &["python3", "python3-flask", "python3-redis"],
        check: "python3 -c 'import flask, redis'",
    },
    Recipe {
        name: "redis",
        include: &["redis-server"],
        check: "redis-server --version",
    },
];

const SUITE: &str = "bookworm";
/// Shared with the other cached test tools (`compose`), under one lock.
pub const CACHE_DIR: &str = "/var/cache/berth-fixtures";
/// Bump when the build or the stripping changes what a tarball holds: it is part of the hash.
const FORMAT: u32 = 1;
const HOST_PACKAGES: &[&str] = &["debootstrap", "debian-archive-keyring", "util-linux", "tar"];

impl Recipe {
    /// Everything that decides the tarball's contents (the mirror does not: it serves the
    /// same suite).
    fn key(&self) -> String {
        format!(
            "format {FORMAT}\nsuite {SUITE}\nvariant minbase\ninclude {}\ncheck {}\n",
            self.include.join(","),
            self.check
        )
    }

    pub fn file_name(&self) -> String {
        let hash = hex::encode(Sha256::digest(self.key().as_bytes()));
        format!("{}-{}.tar", self.name, &hash[..12])
    }
}

pub fn recipe(name: &str) -> Result<&'static Recipe> {
    RECIPES.iter().find(|r| r.name == name).ok_or_else(|| {
        let names: Vec<&str> = RECIPES.iter().map(|r| r.name).collect();
        anyhow!("no rootfs recipe {name:?}; there are: {}", names.join(", "))
    })
}

/// `cargo xtask rootfs NAME`: print the tarball's path (progress goes to stderr).
pub fn run_task(args: &[String]) -> Result<()> {
    let [name] = args else {
        let names: Vec<&str> = RECIPES.iter().map(|r| r.name).collect();
        bail!(
            "usage: cargo xtask rootfs <name>  (one of: {})",
            names.join(", ")
        );
    };
    println!("{}", ensure(name)?.display());
    Ok(())
}

/// The path of `name`'s rootfs tarball, built first if the cache does not hold it yet.
pub fn ensure(name: &str) -> Result<PathBuf> {
    let recipe = recipe(name)?;
    let tarball = Path::new(CACHE_DIR).join(recipe.file_name());
    if tarball.is_file() {
        return Ok(tarball);
    }
    if !is_root() {
        bail!(
            "rootfs {name} is not built yet ({}), and building it needs root (debootstrap, \
             chroot): run `cargo xtask rootfs {name}` as root",
            tarball.display()
        );
    }
    fs::create_dir_all(CACHE_DIR).with_context(|| format!("creating {CACHE_DIR}"))?;
    let cache = fs::canonicalize(CACHE_DIR)?;
    let tarball = cache.join(recipe.file_name());
    // One build at a time; whoever waited finds the tarball made.
    let lock = fs::File::create(cache.join(".lock"))?;
    lock.lock().context("locking the fixture cache")?;
    if tarball.is_file() {
        return Ok(tarball);
    }
    // Under the lock nobody else is building: any work dir is a killed build's.
    sweep(&cache)?;
    ensure_packages(HOST_PACKAGES)?;
    let mirror = mirror::from_apt(Path::new("/etc/apt"), SUITE)?;

    let started = Instant::now();
    let work = cache.join(format!(".work-{name}-{}", std::process::id()));
    fs::create_dir(&work).with_context(|| format!("creating {}", work.display()))?;
    let built = build(recipe, &mirror, &work, &tarball);
    let cleaned = remove_work(&work);
    match (built, cleaned) {
        (Ok(()), Ok(())) => {}
        (Err(e), Ok(())) => return Err(e),
        (Ok(()), Err(c)) => return Err(c.context(format!("built {}", tarball.display()))),
        (Err(e), Err(c)) => bail!("{e:#}\nthen cleaning up failed too: {c:#}"),
    }
    let size = fs::metadata(&tarball)?.len();
    eprintln!(
        "xtask: rootfs {name}: built in {:.1} s, {:.1} MiB: {}",
        started.elapsed().as_secs_f64(),
        size as f64 / 1048576.0,
        tarball.display()
    );
    Ok(tarball)
}

fn build(recipe: &Recipe, mirror: &mirror::Mirror, work: &Path, tarball: &Path) -> Result<()> {
    let root = work.join("rootfs");
    debootstrap(recipe, mirror, &root)?;
    // debootstrap's mounts went with its namespace; this is the backstop before deleting
    unmount_under(work)?;
    strip(&root).context("stripping the rootfs")?;
    let tmp = work.join("rootfs.tar");
    run(Command::new("tar")
        .arg("-C")
        .arg(&root)
        .args(["--sort=name", "--numeric-owner", "--one-file-system", "-cf"])
        .arg(&tmp)
        .arg("."))?;
    check(recipe, &tmp, &work.join("check"))?;
    // same file system as the cache: the rename is atomic
    fs::File::open(&tmp)?.sync_all()?;
    fs::rename(&tmp, tarball)
        .with_context(|| format!("renaming {} to {}", tmp.display(), tarball.display()))?;
    if let Some(dir) = tarball.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

/// Run debootstrap in fresh mount and pid namespaces: whatever it mounts, and any daemon a
/// maintainer script starts, go away when it exits, however it exits.
fn debootstrap(recipe: &Recipe, mirror: &mirror::Mirror, root: &Path) -> Result<()> {
    let mut c = Command::new("unshare");
    c.args(["--mount", "--propagation", "private", "--pid", "--fork"])
        .args(["--kill-child", "debootstrap", "--variant=minbase"])
        .arg(format!("--include={}", recipe.include.join(",")));
    if let Some(k) = &mirror.source.keyring {
        c.arg(format!("--keyring={k}"));
    }
    c.arg(SUITE).arg(root).arg(&mirror.source.uri);
    match &mirror.proxy {
        Some((var, Some(url))) => {
            c.env(var, url);
        }
        Some((var, None)) => {
            c.env_remove(var);
        }
        None => {}
    }
    // stdout is for the tarball's path
    c.env("DEBIAN_FRONTEND", "noninteractive")
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .stdout(std::io::stderr());
    run(&mut c).map_err(|e| {
        let log = fs::read_to_string(root.join("debootstrap/debootstrap.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        anyhow!(
            "{e:#}\ndebootstrap of rootfs {} from {} failed; its log ends:\n{}",
            recipe.name,
            mirror.source.uri,
            tail.join("\n")
        )
    })
}

/// What an image does not need: package lists and caches, docs (copyright notices stay),
/// man pages, translations and locales but C, logs, device nodes (the runtime makes /dev), and
/// the host's identity files debootstrap copied in (the engine mounts its own).
fn strip(root: &Path) -> Result<()> {
    for dir in [
        "var/lib/apt/lists",
        "var/cache/apt",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
        "usr/share/lintian",
        "dev",
        "tmp",
        "var/tmp",
    ] {
        empty_dir(&root.join(dir))?;
    }
    for dir in [
        "var/lib/apt/lists/partial",
        "var/cache/apt/archives/partial",
    ] {
        fs::create_dir_all(root.join(dir))?;
    }
    for pkg in read_dir(&root.join("usr/share/doc"))? {
        if fs::symlink_metadata(&pkg)?.is_dir() {
            for f in read_dir(&pkg)? {
                if f.file_name().is_none_or(|n| n != "copyright") {
                    remove(&f)?;
                }
            }
        }
    }
    for l in read_dir(&root.join("usr/lib/locale"))? {
        let name = l.file_name().unwrap_or_default().to_string_lossy();
        if name != "C" && !name.starts_with("C.") {
            remove(&l)?;
        }
    }
    remove_files(&root.join("var/log"))?;
    for dir in ["var/cache/debconf", "var/lib/dpkg"] {
        for f in read_dir(&root.join(dir))? {
            if f.to_string_lossy().ends_with("-old") {
                remove(&f)?;
            }
        }
    }
    for f in ["etc/resolv.conf", "etc/hostname", "etc/machine-id"] {
        let f = root.join(f);
        if fs::symlink_metadata(&f).is_ok() {
            remove(&f)?;
            fs::write(&f, "")?;
        }
    }
    // so that what a container installs later stays as slim
    fs::create_dir_all(root.join("etc/dpkg/dpkg.cfg.d"))?;
    fs::write(
        root.join("etc/dpkg/dpkg.cfg.d/berth-slim"),
        "path-exclude /usr/share/doc/*\npath-include /usr/share/doc/*/copyright\n\
         path-exclude /usr/share/man/*\npath-exclude /usr/share/info/*\n\
         path-exclude /usr/share/locale/*\npath-exclude /usr/share/lintian/*\n",
    )?;
    Ok(())
}

/// Unpack the tarball and run the recipe's check chrooted into it, in fresh mount and pid
/// namespaces with their own /proc and a /dev of the few nodes programs expect.
fn check(recipe: &Recipe, tarball: &Path, dir: &Path) -> Result<()> {
    fs::create_dir(dir)?;
    run(Command::new("tar")
        .arg("-C")
        .arg(dir)
        .args(["--numeric-owner", "-xf"])
        .arg(tarball))?;
    const SCRIPT: &str = r#"root=$1
mount -t tmpfs -o mode=755,size=1m berth-check "$root/dev"
for n in null zero full random urandom; do
    : >"$root/dev/$n"
    mount --bind "/dev/$n" "$root/dev/$n"
done
exec chroot "$root" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /bin/sh -ec "$2""#;
    let out = output(
        Command::new("unshare")
            .args(["--mount", "--propagation", "private", "--pid", "--fork"])
            .arg("--kill-child")
            .arg(format!("--mount-proc={}", dir.join("proc").display()))
            .args(["sh", "-ec", SCRIPT, "sh"])
            .arg(dir)
            .arg(recipe.check)
            .stdin(Stdio::null()),
    )
    .with_context(|| {
        format!(
            "rootfs {} does not work: `{}` failed inside it",
            recipe.name, recipe.check
        )
    })?;
    eprintln!(
        "xtask: rootfs {}: `{}` ok {}",
        recipe.name,
        recipe.check,
        out.trim()
    );
    Ok(())
}

/// Remove work dirs that killed builds left (the caller holds the cache lock).
pub fn sweep(cache: &Path) -> Result<()> {
    for e in read_dir(cache)? {
        if e.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with(".work-"))
        {
            eprintln!("xtask: removing a killed build's {}", e.display());
            remove_work(&e)?;
        }
    }
    Ok(())
}

/// Unmount whatever is left under `work`, then delete it; never delete through a mount.
pub fn remove_work(work: &Path) -> Result<()> {
    unmount_under(work)?;
    fs::remove_dir_all(work).with_context(|| format!("removing {}", work.display()))
}

fn unmount_under(dir: &Path) -> Result<()> {
    let mounts = || -> Result<Vec<PathBuf>> {
        let table = fs::read_to_string("/proc/self/mounts")?;
        Ok(mounts_under(&table, dir))
    };
    let found = mounts()?;
    if found.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: unmounting what is left under {}", dir.display());
    let mut errors = Vec::new();
    for m in &found {
        if run(Command::new("umount").arg(m)).is_err() {
            if let Err(e) = run(Command::new("umount").arg("--lazy").arg(m)) {
                errors.push(format!("{e:#}"));
            }
        }
    }
    let left = mounts()?;
    if !left.is_empty() {
        bail!(
            "{} stays: still mounted under it: {left:?}; unmount them and remove it ({})",
            dir.display(),
            errors.join("; ")
        );
    }
    Ok(())
}

/// Mount points at or under `dir` in a /proc/mounts table, deepest first.
fn mounts_under(table: &str, dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = table
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .map(|m| PathBuf::from(unescape_octal(m)))
        .filter(|m| m.starts_with(dir))
        .collect();
    found.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    found.dedup();
    found
}

/// /proc/mounts writes space, tab, newline and backslash as `\ooo`.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|o| o.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(o)) => {
                out.push((o[0] - b'0') * 64 + (o[1] - b'0') * 8 + (o[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    match fs::read_dir(dir) {
        Ok(rd) => Ok(rd
            .collect::<std::io::Result<Vec<_>>>()?
            .into_iter()
            .map(|e| e.path())
            .collect()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("reading {}", dir.display())),
    }
}

/// Remove a file, link or whole directory (never following links).
fn remove(p: &Path) -> Result<()> {
    let is_dir = fs::symlink_metadata(p)?.is_dir();
    if is_dir {
        fs::remove_dir_all(p)
    } else {
        fs::remove_file(p)
    }
    .with_context(|| format!("removing {}", p.display()))
}

fn empty_dir(dir: &Path) -> Result<()> {
    read_dir(dir)?.iter().try_for_each(|p| remove(p))
}

/// Remove the files under `dir`, keeping its directories (packages expect /var/log/apt).
fn remove_files(dir: &Path) -> Result<()> {
    for p in read_dir(dir)? {
        if fs::symlink_metadata(&p)?.is_dir() {
            remove_files(&p)?;
        } else {
            remove(&p)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_stable_and_distinct() {
        let py = recipe("python").expect("python recipe").file_name();
        let redis = recipe("redis").expect("redis recipe").file_name();
        assert!(
            py.starts_with("python-") && py.ends_with(".tar") && py.len() == 23,
            "{py}"
        );
        assert!(redis.starts_with("redis-"), "{redis}");
        assert_eq!(py, recipe("python").expect("python recipe").file_name());
        assert!(recipe("nope").is_err());
    }

    #[test]
    fn mounts_under_dir_deepest_first() {
        let table = "\
/dev/vda / ext4 rw 0 0
proc /w/.work-a-1/rootfs/proc proc rw 0 0
sysfs /w/.work-a-1/rootfs/sys sysfs rw 0 0
devpts /w/.work-a-1/rootfs/dev/pts devpts rw 0 0
udev /w/.work-a-1/rootfs/dev devtmpfs rw 0 0
tmpfs /w/.work-a-10 tmpfs rw 0 0
tmpfs /w/.work-a-1/with\\040space tmpfs rw 0 0
";
        let found = mounts_under(table, Path::new("/w/.work-a-1"));
        assert_eq!(found[0], Path::new("/w/.work-a-1/rootfs/dev/pts"));
        assert_eq!(found.len(), 5);
        assert!(found.contains(&PathBuf::from("/w/.work-a-1/with space")));
        assert!(!found.contains(&PathBuf::from("/w/.work-a-10")));
    }

    #[test]
    fn octal_escapes() {
        assert_eq!(unescape_octal(r"a\040b\011c\134d\12"), "a b\tc\\d\\12");
    }
}
