//! Booting the guest with qemu-system-x86_64: no network device at all (`-nic none` on top of
//! `-nodefaults`), the serial console on qemu's stdout, streamed line by line, and a deadline
//! after which qemu is killed. qemu runs under `setpriv --pdeathsig KILL`, so it also dies
//! with xtask, whatever ends xtask.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::sys::show;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accel {
    Kvm,
    Tcg,
}

impl Accel {
    pub fn name(self) -> &'static str {
        match self {
            Accel::Kvm => "kvm",
            Accel::Tcg => "tcg",
        }
    }
}

#[derive(Debug)]
pub struct Boot<'a> {
    pub kernel: &'a Path,
    pub initrd: &'a Path,
    pub accel: Accel,
    pub memory_mib: u32,
    pub cpus: u32,
    /// Every console line is also written here.
    pub console_log: Option<PathBuf>,
}

/// What a boot printed and how it ended.
#[derive(Debug)]
pub struct Outcome {
    pub lines: Vec<(Duration, String)>,
    pub timed_out: bool,
    /// qemu's own exit status (None when it was killed).
    pub qemu_status: Option<std::process::ExitStatus>,
}

impl Outcome {
    /// When the first line starting with `prefix` came, and the rest of it.
    pub fn find(&self, prefix: &str) -> Option<(Duration, &str)> {
        self.lines
            .iter()
            .find_map(|(t, l)| l.strip_prefix(prefix).map(|r| (*t, r.trim())))
    }
}

/// Kills and reaps qemu when dropped, so no path out of `boot` leaves it running.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

fn command(b: &Boot) -> Command {
    let mut c = Command::new("setpriv");
    c.args(["--pdeathsig", "KILL", "--", "qemu-system-x86_64"]);
    c.args([
        "-nodefaults",
        "-nic",
        "none",
        "-display",
        "none",
        "-no-reboot",
    ]);
    c.args(["-serial", "stdio"]);
    match b.accel {
        Accel::Kvm => c.args(["-accel", "kvm", "-cpu", "host"]),
        Accel::Tcg => c.args(["-accel", "tcg", "-cpu", "max"]),
    };
    c.arg("-m").arg(b.memory_mib.to_string());
    c.arg("-smp").arg(b.cpus.to_string());
    c.arg("-kernel").arg(b.kernel);
    c.arg("-initrd").arg(b.initrd);
    // quiet: the kernel's warnings and errors still show; panic=-1 + -no-reboot: a dead init
    // ends qemu instead of hanging it; no cgroup v1 hierarchy can be mounted at all
    c.args([
        "-append",
        "console=ttyS0 quiet panic=-1 oops=panic cgroup_no_v1=all rdinit=/init",
    ]);
    c.stdin(Stdio::null()).stdout(Stdio::piped());
    c
}

/// Boot and stream the console (to stdout, each line as it comes) until qemu exits, `until`
/// returns true for a line (then qemu gets `grace` to power off), or `timeout` passes.
pub fn boot(
    b: &Boot,
    timeout: Duration,
    grace: Duration,
    echo: bool,
    until: impl Fn(&str) -> bool,
) -> Result<Outcome> {
    let mut cmd = command(b);
    if echo {
        eprintln!("$ {}", show(&cmd));
    }
    let start = Instant::now();
    let mut qemu = Reaper(cmd.spawn().context("starting qemu-system-x86_64")?);
    let stdout = qemu.0.stdout.take().context("qemu's stdout")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut r = BufReader::new(stdout);
        let mut buf = Vec::new();
        while matches!(r.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            let line = String::from_utf8_lossy(&buf)
                .trim_end_matches(['\r', '\n'])
                .to_owned();
            buf.clear();
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut log = match &b.console_log {
        Some(p) => Some(std::fs::File::create(p)?),
        None => None,
    };
    let mut out = Outcome {
        lines: Vec::new(),
        timed_out: false,
        qemu_status: None,
    };
    let mut deadline = start + timeout;
    let mut done = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if echo {
                    println!("{line}");
                }
                if let Some(f) = log.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(f, "{line}");
                }
                if !done && until(&line) {
                    done = true;
                    deadline = Instant::now() + grace;
                }
                out.lines.push((start.elapsed(), line));
            }
            // qemu closed its stdout: it has exited
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                out.timed_out = !done;
                break;
            }
        }
    }
    // a clean poweroff exits qemu at once; anything still running now is killed by Reaper
    let wait_until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < wait_until {
        if let Some(st) = qemu.0.try_wait()? {
            out.qemu_status = Some(st);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(qemu);
    Ok(out)
}

/// Does KVM really run a guest here? Boot `probe_initrd` (which prints `marker` and powers
/// off) with KVM, giving it `within`; on a nested setup where KVM hangs, it does not.
pub fn kvm_works(kernel: &Path, probe_initrd: &Path, marker: &str, within: Duration) -> bool {
    let Ok(f) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    else {
        return false;
    };
    drop(f);
    let b = Boot {
        kernel,
        initrd: probe_initrd,
        accel: Accel::Kvm,
        memory_mib: 256,
        cpus: 1,
        console_log: None,
    };
    boot(&b, within, Duration::from_secs(2), false, |l| {
        l.contains(marker)
    })
    .map(|o| o.lines.iter().any(|(_, l)| l.contains(marker)))
    .unwrap_or(false)
}
