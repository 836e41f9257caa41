//! The few raw system calls nix does not wrap (openat2, close_range, clone with
//! CLONE_PARENT, setdomainname, signal dispositions). The only module besides
//! `process` allowed to use `unsafe`; each block says why it is sound.
#![allow(unsafe_code)]

use std::ffi::CString;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use nix::errno::Errno;

/// `getrlimit(2)`; false on failure.
pub fn getrlimit(resource: libc::__rlimit_resource_t, out: &mut libc::rlimit) -> bool {
    // SAFETY: `out` is a valid, exclusive pointer to an rlimit for the duration of the call.
    unsafe { libc::getrlimit(resource, out) == 0 }
}

pub fn setrlimit(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> Result<(), Errno> {
    let rl = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: `rl` is a valid rlimit that outlives the call; the kernel only reads it.
    Errno::result(unsafe { libc::setrlimit(resource, &rl) }).map(drop)
}

/// Mark every fd from `first` on close-on-exec, so nothing the runtime holds leaks into
/// the container (CVE-2024-21626).
pub fn cloexec_from(first: u32) -> Result<(), Errno> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only changes fd flags; no memory is passed.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    Errno::result(r).map(drop)
}

/// Close every fd except those in `keep` (0, 1 and 2 are always kept): right after
/// fork, so fds other threads of the caller had open (files being written, sockets)
/// do not live on in the container's processes until exec.
pub fn close_all_except(keep: &[i32]) -> Result<(), Errno> {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter_map(|f| u32::try_from(*f).ok())
        .chain([0, 1, 2])
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut next = 0u32;
    for k in keep.into_iter().chain([u32::MAX]) {
        if k > next {
            let last = if k == u32::MAX { u32::MAX } else { k - 1 };
            // SAFETY: close_range only closes fds; none of those in the range are used
            // again by this process (the caller keeps what it needs in `keep`).
            let r = unsafe { libc::syscall(libc::SYS_close_range, next, last, 0u32) };
            Errno::result(r)?;
        }
        next = k.saturating_add(1);
    }
    Ok(())
}

/// `openat2(dirfd, path, flags, resolve)`.
pub fn openat2(
    dirfd: BorrowedFd<'_>,
    path: &Path,
    flags: i32,
    resolve: u64,
) -> Result<OwnedFd, Errno> {
    let c = CString::new(path.as_os_str().as_bytes()).map_err(|_| Errno::EINVAL)?;
    let mut how: libc::open_how = open_how_zeroed();
    how.flags = (flags | libc::O_CLOEXEC) as u64;
    how.resolve = resolve;
    // With RESOLVE_IN_ROOT the kernel answers EAGAIN when a rename or mount elsewhere on
    // the system raced with the lookup; the lookup is safe to repeat.
    let mut tries = 0;
    let fd = loop {
        // SAFETY: `c` is a NUL-terminated string and `how` a valid open_how; both outlive the
        // call and the size passed is the size of the struct.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                dirfd.as_raw_fd(),
                c.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        match Errno::result(fd) {
            Err(Errno::EAGAIN) if tries < 64 => tries += 1,
            other => break other?,
        }
    };
    let fd = i32::try_from(fd).map_err(|_| Errno::EBADF)?;
    // SAFETY: the kernel just returned this fd to us; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn open_how_zeroed() -> libc::open_how {
    // SAFETY: open_how is a plain C struct of integers, for which all-zero is valid.
    unsafe { std::mem::zeroed() }
}

pub fn setdomainname(name: &str) -> Result<(), Errno> {
    // SAFETY: the pointer and length describe `name`'s bytes, which outlive the call.
    Errno::result(unsafe { libc::setdomainname(name.as_ptr().cast(), name.len()) }).map(drop)
}

/// Fork a child whose parent is our parent (`CLONE_PARENT`), so the container's init is
/// a child of the runtime's main process rather than of the short-lived intermediate.
///
/// Returns 0 in the child. Must only be called from a single-threaded process (the
/// intermediate), because it bypasses glibc's fork handlers.
pub fn clone_parent() -> Result<libc::pid_t, Errno> {
    // SAFETY: raw clone with a NULL stack behaves like fork: the child gets a copy of the
    // address space. The caller is single-threaded, so no lock can be held by another
    // thread at this point.
    let r = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (libc::CLONE_PARENT | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    let pid = Errno::result(r)?;
    libc::pid_t::try_from(pid).map_err(|_| Errno::EINVAL)
}

/// Reset every catchable signal to its default disposition and unblock all signals,
/// so the container's process does not inherit the runtime's signal setup.
pub fn reset_signals() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: SIG_DFL is always a valid disposition; errors for invalid numbers are
        // ignored on purpose.
        unsafe {
            libc::signal(sig, libc::SIG_DFL);
        }
    }
    let _ = nix::sys::signal::sigprocmask(
        nix::sys::signal::SigmaskHow::SIG_SETMASK,
        Some(&nix::sys::signal::SigSet::empty()),
        None,
    );
}

/// Fork (through glibc, so its atfork handlers run). Returns 0 in the child.
pub fn fork() -> Result<libc::pid_t, Errno> {
    // SAFETY: the child only runs the runtime's own setup code and then execs or exits
    // with `_exit`; it never returns into the caller's stack frames.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => Ok(0),
        nix::unistd::ForkResult::Parent { child } => Ok(child.as_raw()),
    }
}

/// Leave the process now, without running destructors or atexit handlers that belong to
/// the parent's copy of the state.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it never returns.
    unsafe { libc::_exit(code) }
}

/// Become a child subreaper, so orphaned container processes are reparented to us.
pub fn set_child_subreaper() -> Result<(), Errno> {
    nix::sys::prctl::set_child_subreaper(true)
}

/// Make `tty` the controlling terminal of this (session leader) process.
pub fn set_controlling_tty(tty: &impl std::os::fd::AsFd) -> Result<(), Errno> {
    // SAFETY: TIOCSCTTY takes an integer argument; the fd is valid for the call.
    Errno::result(unsafe { libc::ioctl(tty.as_fd().as_raw_fd(), libc::TIOCSCTTY, 0) }).map(drop)
}

/// Set a terminal's window size (TIOCSWINSZ).
pub fn set_winsize(tty: &impl std::os::fd::AsFd, ws: &libc::winsize) -> Result<(), Errno> {
    // SAFETY: TIOCSWINSZ reads one winsize from the pointer, which outlives the call.
    Errno::result(unsafe { libc::ioctl(tty.as_fd().as_raw_fd(), libc::TIOCSWINSZ, ws) }).map(drop)
}

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, prog)` with `bpf` as raw `sock_filter`s.
pub fn seccomp_load(bpf: &[u8], flags: u32) -> Result<(), Errno> {
    if bpf.is_empty()
        || !bpf
            .len()
            .is_multiple_of(std::mem::size_of::<libc::sock_filter>())
    {
        return Err(Errno::EINVAL);
    }
    // Copy into properly aligned instructions.
    let insns: Vec<libc::sock_filter> = bpf
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    let len = u16::try_from(insns.len()).map_err(|_| Errno::E2BIG)?;
    let prog = libc::sock_fprog {
        len,
        filter: insns.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `insns`, which outlives the call; the kernel copies the
    // program and does not keep the pointer.
    let r = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            flags,
            &prog as *const libc::sock_fprog,
        )
    };
    Errno::result(r).map(drop)
}

/// Limit glibc's malloc to `n` arenas (`M_ARENA_MAX`); call before threads start.
pub fn malloc_arena_max(n: i32) {
    // SAFETY: mallopt only sets a parameter of the allocator.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, n);
    }
}

/// Which pages of the running binary a monitor's start touched: kept beside the binary
/// (`<exe>.pages`, keyed by the binary's identity) by the first monitor that started a
/// container without one, so that the next spare monitors fault in just those ahead.
/// All of the binary would do as well for the start, but would show in every monitor's
/// RSS (19 MB instead of 7 here), shared code though it is.
#[derive(Debug, Clone)]
pub struct PageRecord {
    path: std::path::PathBuf,
    exe: std::path::PathBuf,
    key: String,
}

impl PageRecord {
    /// The record for the running binary; none when it is no file of a filesystem (a
    /// sealed memfd copy).
    pub fn for_exe() -> Option<PageRecord> {
        use std::os::unix::fs::MetadataExt;
        let exe = std::fs::read_link("/proc/self/exe").ok()?;
        let m = std::fs::metadata("/proc/self/exe").ok()?;
        if !exe.is_absolute() || !m.is_file() || exe.to_string_lossy().contains("(deleted)") {
            return None;
        }
        let key = format!("{} {} {} {}", m.dev(), m.ino(), m.len(), m.mtime());
        let mut path = exe.clone().into_os_string();
        path.push(".pages");
        Some(PageRecord {
            path: path.into(),
            exe,
            key,
        })
    }

    /// The runs (file offset, length) recorded for this binary, if any.
    fn load(&self) -> Option<Vec<(u64, u64)>> {
        let text = std::fs::read_to_string(&self.path).ok()?;
        let mut lines = text.lines();
        if lines.next()? != self.key {
            return None; // another binary's (an upgrade)
        }
        Some(
            lines
                .filter_map(|l| {
                    let (a, b) = l.split_once(' ')?;
                    Some((a.parse().ok()?, b.parse().ok()?))
                })
                .collect(),
        )
    }

    /// Record the pages of the binary this process has in its page tables now.
    pub fn save(&self) -> std::io::Result<()> {
        use std::io::{Read, Seek};
        let maps = std::fs::read_to_string("/proc/self/maps")?;
        let mut pagemap = std::fs::File::open("/proc/self/pagemap")?;
        let page = page_size();
        let mut out = format!("{}\n", self.key);
        for m in readonly_file_mappings(&maps) {
            if Path::new(m.path) != self.exe {
                continue;
            }
            let pages = m.len / page;
            let mut entries = vec![0u8; pages * 8];
            pagemap.seek(std::io::SeekFrom::Start((m.start / page * 8) as u64))?;
            pagemap.read_exact(&mut entries)?;
            let present: Vec<u8> = entries
                .chunks_exact(8)
                .map(|e| u8::from(e[7] & 0x80 != 0)) // bit 63: present
                .collect();
            for (first, n) in runs(&present) {
                out.push_str(&format!(
                    "{} {}\n",
                    m.offset + (first * page) as u64,
                    (n * page) as u64
                ));
            }
        }
        let tmp = self.path.with_extension("pages.tmp");
        std::fs::write(&tmp, out)?;
        std::fs::rename(&tmp, &self.path)
    }
}

fn page_size() -> usize {
    nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE)
        .ok()
        .flatten()
        .unwrap_or(4096) as usize
}

/// Fault in now what a process that waits to create a container (a spare monitor) will
/// touch then, so that the start does not pay for it: the pages of the binary `record`
/// lists (see [`PageRecord`]), `heap` bytes of malloc's heap (kept: not trimmed back when
/// freed, until [`prefault_done`]) and `stack` bytes of the main thread's stack. Page by
/// page, the start took ~140 faults at ~3 us each here; this costs well under a
/// millisecond of CPU, while nothing waits for it. Returns whether there was a record to
/// follow. Best effort: a kernel without MADV_POPULATE_READ (< 5.14) faults as before.
pub fn prefault(heap: usize, stack: usize, record: Option<&PageRecord>) -> bool {
    let runs = record.and_then(PageRecord::load);
    if let (Some(runs), Some(record), Ok(maps)) =
        (&runs, record, std::fs::read_to_string("/proc/self/maps"))
    {
        for m in readonly_file_mappings(&maps) {
            if Path::new(m.path) != record.exe {
                continue;
            }
            let end = m.offset + m.len as u64;
            for &(off, len) in runs {
                let (a, b) = (off.max(m.offset), (off + len).min(end));
                if a >= b {
                    continue;
                }
                let addr = m.start + (a - m.offset) as usize;
                // SAFETY: advice on pages of a mapping of ours (clamped to it);
                // POPULATE_READ only maps them.
                unsafe {
                    libc::madvise(
                        addr as *mut libc::c_void,
                        (b - a) as usize,
                        libc::MADV_POPULATE_READ,
                    );
                }
            }
        }
    }
    // SAFETY: mallopt only sets a parameter of the allocator.
    unsafe {
        libc::mallopt(
            libc::M_TRIM_THRESHOLD,
            (heap * 2).min(i32::MAX as usize) as i32,
        );
    }
    // Blocks under the mmap threshold come from the heap, and go back to it when freed.
    let blocks: Vec<Vec<u8>> = (0..heap / 4096).map(|_| vec![1u8; 4000]).collect();
    drop(std::hint::black_box(blocks));
    touch_stack(stack);
    runs.is_some()
}

/// After the start [`prefault`] served: malloc's heap trimmed as usual again, and what it
/// kept given back.
pub fn prefault_done() {
    // SAFETY: mallopt sets a parameter of the allocator; malloc_trim only returns free
    // memory to the kernel.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 128 << 10);
        libc::malloc_trim(0);
    }
}

/// The runs of set entries: (first index, how many).
fn runs(present: &[u8]) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for (i, r) in present.iter().enumerate() {
        if r & 1 == 0 {
            continue;
        }
        match out.last_mut() {
            Some((first, n)) if *first + *n == i => *n += 1,
            _ => out.push((i, 1)),
        }
    }
    out
}

/// A mapping of /proc/self/maps backed by a file and not writable.
#[derive(Debug, PartialEq)]
struct Mapping<'a> {
    start: usize,
    len: usize,
    offset: u64,
    path: &'a str,
}

fn readonly_file_mappings(maps: &str) -> Vec<Mapping<'_>> {
    maps.lines()
        .filter_map(|line| {
            let mut f = line.split_ascii_whitespace();
            let (range, perms, offset) = (f.next()?, f.next()?, f.next()?);
            let inode = f.nth(1)?;
            let path = f.next()?;
            if inode == "0" || !perms.starts_with('r') || perms.as_bytes().get(1) == Some(&b'w') {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            let (start, end) = (
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            );
            (end > start).then_some(Mapping {
                start,
                len: end - start,
                offset: u64::from_str_radix(offset, 16).ok()?,
                path,
            })
        })
        .collect()
}

/// Touch `bytes` of stack below the caller (at most 256 KiB).
#[inline(never)]
fn touch_stack(bytes: usize) {
    let mut buf = [0u8; 256 << 10];
    let n = bytes.min(buf.len());
    for i in (0..n).step_by(4096) {
        // SAFETY: in bounds; volatile so that each page is really written.
        unsafe { std::ptr::write_volatile(buf.as_mut_ptr().add(i), 1) };
    }
    std::hint::black_box(&mut buf);
}

/// Go on as a grandchild of our parent, in a session of our own: fork, and the parent
/// exits at once (the double fork of a process that must outlive whoever started it). Done
/// first thing in a process just started, where a fork copies almost nothing, rather than
/// between fork and exec in the starter (the daemon), whose every page table it would copy,
/// and whose spawn can then be a vfork.
pub fn detach_self() -> Result<(), Errno> {
    if fork()? != 0 {
        exit_now(0);
    }
    nix::unistd::setsid()?;
    Ok(())
}

/// `union bpf_attr` for `BPF_PROG_LOAD`, up to `expected_attach_type`.
#[repr(C)]
#[derive(Default)]
struct BpfProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// `union bpf_attr` for `BPF_PROG_ATTACH`.
#[repr(C)]
#[derive(Default)]
struct BpfProgAttach {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;
const BPF_F_ALLOW_MULTI: u32 = 2;

/// Load a `BPF_PROG_TYPE_CGROUP_DEVICE` program (`insns`: 8-byte instructions). On a
/// verifier error the message carries the verifier's log.
pub fn bpf_load_device_program(insns: &[u8]) -> Result<std::os::fd::OwnedFd, String> {
    use std::os::fd::FromRawFd;
    let license = b"Apache-2.0\0";
    let mut log = vec![0u8; 64 << 10];
    let mut attr = BpfProgLoad {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: (insns.len() / 8) as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: 1,
        log_size: log.len() as u32,
        log_buf: log.as_mut_ptr() as u64,
        ..Default::default()
    };
    attr.prog_name[..12].copy_from_slice(b"berth_devcg\0"); // alnum, _ and . only
                                                            // SAFETY: `attr` is a valid bpf_attr prefix whose pointers (insns, license, log) live
                                                            // until the call returns; the kernel reads at most size_of::<BpfProgLoad>() bytes.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_LOAD,
            &mut attr as *mut BpfProgLoad,
            std::mem::size_of::<BpfProgLoad>(),
        )
    };
    if fd < 0 {
        let err = Errno::last();
        let text = String::from_utf8_lossy(&log);
        let text = text.trim_end_matches('\0').trim();
        return Err(if text.is_empty() {
            format!("bpf(BPF_PROG_LOAD): {err}")
        } else {
            format!("bpf(BPF_PROG_LOAD): {err}: {text}")
        });
    }
    // SAFETY: the kernel returned a new file descriptor that nothing else owns.
    Ok(unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as i32) })
}

/// Attach a device program to the cgroup whose directory is open as `cgroup`.
pub fn bpf_attach_device_program(
    cgroup: &impl std::os::fd::AsRawFd,
    prog: &impl std::os::fd::AsRawFd,
) -> Result<(), Errno> {
    let mut attr = BpfProgAttach {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        replace_bpf_fd: 0,
    };
    // SAFETY: `attr` is a valid bpf_attr for BPF_PROG_ATTACH, alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_PROG_ATTACH,
            &mut attr as *mut BpfProgAttach,
            std::mem::size_of::<BpfProgAttach>(),
        )
    };
    Errno::result(r).map(drop)
}

#[cfg(test)]
mod prefault_tests {
    use super::*;

    #[test]
    fn only_readonly_file_mappings_count() {
        let maps = "\
55d0c0000000-55d0c0100000 r--p 00000000 08:01 1234 /usr/bin/berthd
55d0c0100000-55d0c0800000 r-xp 00100000 08:01 1234 /usr/bin/berthd
55d0c0800000-55d0c0900000 rw-p 00800000 08:01 1234 /usr/bin/berthd
55d0c1000000-55d0c1021000 rw-p 00000000 00:00 0 [heap]
7f0000000000-7f0000001000 ---p 00000000 08:01 99 /usr/lib/libc.so.6
7f0000001000-7f0000002000 r-xp 00001000 08:01 99 /usr/lib/libc.so.6
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
7ffd00100000-7ffd00102000 r-xp 00000000 00:00 0 [vdso]
garbage line
";
        let m = readonly_file_mappings(maps);
        let got: Vec<_> = m
            .iter()
            .map(|m| (m.start, m.len, m.offset, m.path))
            .collect();
        assert_eq!(
            got,
            vec![
                (0x55d0c0000000, 0x100000, 0, "/usr/bin/berthd"),
                (0x55d0c0100000, 0x700000, 0x100000, "/usr/bin/berthd"),
                (0x7f0000001000, 0x1000, 0x1000, "/usr/lib/libc.so.6")
            ]
        );
    }

    #[test]
    fn runs_of_set_entries() {
        assert_eq!(runs(&[]), vec![]);
        assert_eq!(
            runs(&[1, 1, 0, 1, 0, 0, 3, 1]),
            vec![(0, 2), (3, 1), (6, 2)]
        );
        assert_eq!(runs(&[0, 0]), vec![]);
    }

    /// The present pages of this test binary's code, in bytes.
    fn code_rss_kib() -> u64 {
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut lines = smaps.lines();
        let mut rss = 0;
        while let Some(l) = lines.next() {
            if l.contains(" r-xp ") && l.ends_with(exe.to_str().unwrap()) {
                rss += lines
                    .find(|l| l.starts_with("Rss:"))
                    .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                    .unwrap();
            }
        }
        rss
    }

    /// A record of the pages a process has mapped, made in one place and followed in
    /// another (here the same process, after those pages were dropped from its tables):
    /// what it lists is mapped in again, and the heap and stack work on.
    #[test]
    fn a_page_record_is_saved_then_followed() {
        let dir = tempfile::tempdir().unwrap();
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        // our code's pages out of our page tables (r-xp: never written, so no private
        // copies to lose; they fault back in from the page cache)
        let drop_code = || {
            let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
            for l in maps.lines().filter(|l| l.contains(" r-xp ")) {
                if !l.ends_with(exe.to_str().unwrap()) {
                    continue;
                }
                let (a, b) = l
                    .split_whitespace()
                    .next()
                    .unwrap()
                    .split_once('-')
                    .unwrap();
                let (a, b) = (
                    usize::from_str_radix(a, 16).unwrap(),
                    usize::from_str_radix(b, 16).unwrap(),
                );
                // SAFETY: see above; this test's code faults back in as it runs.
                unsafe { libc::madvise(a as *mut libc::c_void, b - a, libc::MADV_DONTNEED) };
            }
        };
        // a record for another binary is not followed
        let mut rec = PageRecord::for_exe().unwrap();
        rec.path = dir.path().join("exe.pages");
        std::fs::write(&rec.path, "0 0 0 0\n0 4096\n").unwrap();
        assert!(!prefault(64 << 10, 64 << 10, Some(&rec)));
        // ours: saved, then followed
        rec.save().unwrap();
        let text = std::fs::read_to_string(&rec.path).unwrap();
        let mut lines = text.lines();
        assert_eq!(lines.next(), Some(rec.key.as_str()));
        assert!(lines.count() > 0, "{text}");
        let recorded = code_rss_kib();
        drop_code();
        let dropped = code_rss_kib();
        assert!(prefault(64 << 10, 64 << 10, Some(&rec)));
        let followed = code_rss_kib();
        assert!(
            dropped < recorded && followed >= recorded,
            "code RSS {recorded} KiB recorded, {dropped} dropped, {followed} followed"
        );
        prefault_done();
        let v = vec![8u8; 10_000];
        assert_eq!(v.iter().map(|&b| b as usize).sum::<usize>(), 80_000);
        // no record: nothing to follow, the rest still done
        let none = PageRecord {
            path: dir.path().join("missing.pages"),
            ..rec.clone()
        };
        assert!(!prefault(64 << 10, 64 << 10, Some(&none)));
        assert!(!prefault(64 << 10, 64 << 10, None));
    }
}
