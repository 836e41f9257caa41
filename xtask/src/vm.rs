//! `cargo xtask vm-test [--filter PATTERN] [--keep] [--dev] [--timeout SECS] [--accel
//! kvm|tcg]`: the kernel-dependent end-to-end scenarios (`cli/tests/kernel.rs`) and the
//! runtime's OCI conformance walk and privileged tests (`runtime/tests/conformance.rs`,
//! `privileged.rs`) run again, in one boot, inside a throwaway VM on Debian's cloud kernel
//! with only cgroup v2, which the host's `cargo xtask test` cannot show (this host is a v1+v2
//! hybrid on another kernel). `--filter` applies to every suite; one it leaves empty is not
//! run, and a filter that matches nothing is an error.
//!
//! Everything it fetches or builds is cached under `<target>/vm/`: the kernel package, the
//! guest's Debian packages, the base initramfs, KVM's verdict for this boot of the host. The
//! VM has no network device; what the suite networks stays inside the guest. The run's own
//! files (initramfs, console log) are removed afterwards unless `--keep`, and qemu is killed
//! on the timeout and whenever xtask ends.

mod cpio;
mod guest;
mod kernel;
mod qemu;
mod suite;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::sys::{self, ensure_packages};
use qemu::Accel;

/// Host packages: qemu itself, setpriv (util-linux) to tie qemu's life to ours, dpkg-deb
/// and apt for the guest's packages, ldd (libc-bin) to check the binaries' libraries,
/// objcopy (binutils) to strip them.
const HOST_PACKAGES: &[&str] = &[
    "qemu-system-x86",
    "util-linux",
    "dpkg",
    "apt",
    "libc-bin",
    "binutils",
];

const MEMORY_MIB: u32 = 3072;
const CPUS: u32 = 2;
/// How long a hung KVM gets before we fall back to TCG (a working KVM boots in ~1 s).
const KVM_PROBE: Duration = Duration::from_secs(8);

#[derive(Debug)]
struct Opts {
    filter: Option<String>,
    keep: bool,
    /// Use the dev profile's binaries, which `cargo xtask test` has just built (CI).
    dev: bool,
    timeout: Duration,
    accel: Option<Accel>,
}

fn parse(args: &[String]) -> Result<Opts> {
    let mut o = Opts {
        filter: None,
        keep: false,
        dev: false,
        // the suites take one and a half minutes under TCG here
        timeout: Duration::from_secs(10 * 60),
        accel: None,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| anyhow!("{a} needs a value"));
        match a.as_str() {
            "--filter" => o.filter = Some(value()?.clone()),
            "--keep" => o.keep = true,
            "--dev" => o.dev = true,
            "--timeout" => {
                o.timeout = Duration::from_secs(value()?.parse().context("--timeout SECS")?)
            }
            "--accel" => {
                o.accel = Some(match value()?.as_str() {
                    "kvm" => Accel::Kvm,
                    "tcg" => Accel::Tcg,
                    other => bail!("--accel {other:?}: kvm or tcg"),
                })
            }
            other => bail!(
                "unknown vm-test argument {other:?}\nusage: cargo xtask vm-test [--filter PATTERN] [--keep] [--dev] [--timeout SECS] [--accel kvm|tcg]"
            ),
        }
    }
    Ok(o)
}

/// `vm-test --dev`, as `cargo xtask test` ends: the suites' exit code.
pub fn run_dev() -> Result<i32> {
    run(&parse(&["--dev".to_owned()])?)
}

pub fn run_task(args: &[String]) -> Result<()> {
    let opts = parse(args)?;
    let rc = run(&opts)?;
    if rc != 0 {
        // the suites' own exit code, after every guard above has cleaned up
        std::process::exit(rc);
    }
    Ok(())
}

/// The run's scratch directory, removed when dropped unless kept.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("xtask: kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

fn run(opts: &Opts) -> Result<i32> {
    let t0 = Instant::now();
    ensure_packages(HOST_PACKAGES)?;
    ensure_packages(sys::BUILD_PACKAGES)?;
    let cache = sys::target_dir().join("vm");
    std::fs::create_dir_all(&cache)?;
    let (built, bins) = suite::build(opts.dev)?;
    // a suite the filter leaves empty is not even copied into the guest
    let filter = opts.filter.as_deref();
    let mut selected = Vec::new();
    for b in &built {
        let n = suite::count(b, filter)?;
        eprintln!("xtask: suite {}: {n} tests", b.suite.name);
        if n > 0 {
            selected.push(b);
        }
    }
    if selected.is_empty() {
        bail!(
            "--filter {:?} matches no test of {}",
            filter.unwrap_or_default(),
            suite::SUITES
                .iter()
                .map(|s| s.src)
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut files: Vec<PathBuf> = selected.iter().map(|b| b.exe.clone()).collect();
    for b in &selected {
        for name in b.suite.bins {
            let p = suite::bin(&bins, name)?.to_path_buf();
            if !files.contains(&p) {
                files.push(p);
            }
        }
    }
    let kernel = kernel::ensure(&cache)?;
    let base = guest::ensure_base(&cache, &kernel)?;
    for bin in &files {
        let missing = guest::missing_libraries(&base.root, bin)?;
        if !missing.is_empty() {
            bail!(
                "the guest lacks {missing:?}, needed by {}: add their Debian packages to vm::guest::PACKAGES",
                bin.display()
            );
        }
    }
    let accel = match opts.accel {
        Some(a) => a,
        None => pick_accel(&cache, &kernel, &base)?,
    };

    remove_stale_runs(&cache);
    let work = WorkDir {
        path: cache.join(format!("run-{}", std::process::id())),
        keep: opts.keep,
    };
    std::fs::create_dir_all(&work.path)?;
    // debug info is most of the binaries' size (berth: 111 MB of 20), and the guest copies
    // every byte twice under TCG; each keeps its own path, which the suites rely on
    let mut stripped = Vec::new();
    for (i, bin) in files.iter().enumerate() {
        let s = work.path.join(format!("stripped-{i}"));
        sys::output(
            Command::new("objcopy")
                .arg("--strip-debug")
                .arg(bin)
                .arg(&s),
        )?;
        stripped.push((s, bin.clone()));
    }
    let run_cpio = work.path.join("run.cpio");
    guest::run_archive(&run_cpio, &stripped, &suite::script(&selected, filter))?;
    let initrd = work.path.join("initrd");
    concat(&initrd, &[&base.archive, &run_cpio])?;
    std::fs::remove_file(&run_cpio)?;
    for (s, _) in &stripped {
        std::fs::remove_file(s)?;
    }
    let prepared = t0.elapsed();

    eprintln!(
        "xtask: booting {} under {} ({} MiB, {CPUS} CPUs, no network device)",
        kernel.release,
        accel.name(),
        MEMORY_MIB
    );
    let b = qemu::Boot {
        kernel: &kernel.vmlinuz,
        initrd: &initrd,
        accel,
        memory_mib: MEMORY_MIB,
        cpus: CPUS,
        console_log: Some(work.path.join("console.log")),
    };
    let out = qemu::boot(&b, opts.timeout, Duration::from_secs(30), true, |l| {
        l.starts_with("berth-vm: exit ")
    })?;

    let guest_kernel = out.find("berth-vm: kernel ").map(|(_, k)| k.to_owned());
    let cgroup = out.find("berth-vm: cgroup ").map(|(_, c)| c.to_owned());
    let started = out.find("berth-vm: suite start").map(|(t, _)| t);
    let exit = out.find("berth-vm: exit ");
    let total = out.lines.last().map(|(t, _)| *t).unwrap_or_default();
    println!();
    println!(
        "xtask vm-test: guest kernel {}, cgroup {}, accelerator {}",
        guest_kernel.as_deref().unwrap_or("?"),
        cgroup.as_deref().unwrap_or("?"),
        accel.name()
    );
    let secs = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    for r in suite::reports(&out, &selected) {
        println!(
            "xtask vm-test: suite {}: {} in {}, exit code {}",
            r.name,
            r.result.as_deref().unwrap_or("no result"),
            r.time.map_or("?".to_owned(), secs),
            r.exit.map_or("?".to_owned(), |c| c.to_string())
        );
    }
    if let (Some(s), Some((e, _))) = (started, exit) {
        println!(
            "xtask vm-test: prepare {} (build, caches), boot {}, suites {}, VM total {}",
            secs(prepared),
            secs(s),
            secs(e.saturating_sub(s)),
            secs(total)
        );
    }
    if out.timed_out {
        bail!(
            "the VM did not finish within {}: qemu was killed",
            secs(opts.timeout)
        );
    }
    let Some((_, code)) = exit else {
        bail!(
            "the guest ended without reporting the suites' exit code (qemu: {:?}); see the console above",
            out.qemu_status
        );
    };
    let rc: i32 = code
        .parse()
        .with_context(|| format!("exit code {code:?}"))?;
    println!(
        "xtask vm-test: {} (exit code {rc})",
        if rc == 0 { "passed" } else { "FAILED" }
    );
    drop(work);
    Ok(rc)
}

/// Work dirs of runs whose xtask died before it could remove them (killed by a signal).
fn remove_stale_runs(cache: &Path) {
    let Ok(rd) = std::fs::read_dir(cache) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("run-") {
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
}

/// The archives one after the other, each starting 4-aligned as the kernel requires (it
/// skips the zeros in between).
fn concat(dst: &Path, parts: &[&Path]) -> Result<()> {
    use std::io::Write;
    let mut out = std::fs::File::create(dst)?;
    for p in parts {
        let mut f = std::fs::File::open(p).with_context(|| format!("opening {}", p.display()))?;
        let n = std::io::copy(&mut f, &mut out)?;
        out.write_all(&[0u8; 3][..((4 - n % 4) % 4) as usize])?;
    }
    Ok(())
}

/// KVM if it really boots a guest here, else TCG; the verdict is kept for this boot of the
/// host (a hung KVM costs the probe's seconds once).
fn pick_accel(cache: &Path, kernel: &kernel::Kernel, base: &guest::Base) -> Result<Accel> {
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap_or_default();
    let verdict_file = cache.join("kvm-verdict");
    if let Ok(v) = std::fs::read_to_string(&verdict_file) {
        if let Some((id, accel)) = v.split_once(' ') {
            if id == boot_id.trim() {
                return Ok(if accel.trim() == "kvm" {
                    Accel::Kvm
                } else {
                    Accel::Tcg
                });
            }
        }
    }
    let accel = if Path::new("/dev/kvm").exists() {
        let probe = guest::ensure_probe(base)?;
        eprintln!("xtask: probing KVM (a guest must print within {KVM_PROBE:?})");
        let t = Instant::now();
        let ok = qemu::kvm_works(&kernel.vmlinuz, &probe, guest::PROBE_MARKER, KVM_PROBE);
        eprintln!(
            "xtask: KVM {} after {:.1} s",
            if ok {
                "works"
            } else {
                "does not answer: using TCG"
            },
            t.elapsed().as_secs_f64()
        );
        if ok {
            Accel::Kvm
        } else {
            Accel::Tcg
        }
    } else {
        Accel::Tcg
    };
    std::fs::write(
        &verdict_file,
        format!("{} {}\n", boot_id.trim(), accel.name()),
    )?;
    Ok(accel)
}
