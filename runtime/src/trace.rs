//! Timing marks along the start path, for profiling: with `BERTH_TRACE=FILE` in the
//! environment, [`mark`] appends `<monotonic µs> <pid> <label> #<minor faults>` to FILE (the
//! process's page faults so far: each costs microseconds in a VM); without it a mark
//! costs one cached lookup. The clock is shared by every process, so the marks of the CLI,
//! the daemon, a monitor and a container's init sort into one timeline. The file stays
//! open (and is kept across the runtime's fd cleanup), so a container's init can mark
//! after pivot_root until it executes its program.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsRawFd;
use std::sync::OnceLock;

static FILE: OnceLock<Option<File>> = OnceLock::new();

fn file() -> Option<&'static File> {
    FILE.get_or_init(|| {
        let path = std::env::var_os("BERTH_TRACE")?;
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .ok()
    })
    .as_ref()
}

/// The trace file's descriptor, when tracing (call before forking: children then share it).
pub fn raw_fd() -> Option<i32> {
    file().map(|f| f.as_raw_fd())
}

pub fn mark(label: &str) {
    let Some(mut f) = file() else {
        return;
    };
    let Ok(t) = nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) else {
        return;
    };
    let us = t.tv_sec() * 1_000_000 + t.tv_nsec() / 1000;
    let faults = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF)
        .map(|u| u.minor_page_faults())
        .unwrap_or(0);
    let _ = f.write_all(format!("{us} {} {label} #{faults}\n", std::process::id()).as_bytes());
}
