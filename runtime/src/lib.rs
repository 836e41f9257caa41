//! berth's OCI runtime: from a bundle (`config.json` + rootfs) to a running, isolated
//! process. The engine calls [`Container`] in-process; `berth-runtime` wraps the same API
//! in runc's command line and state layout.
//!
//! This crate knows the kernel (namespaces, mounts, cgroups, capabilities) and nothing of
//! images, networks or the engine's bookkeeping. Kernel access goes through two seams,
//! [`syscall::Syscall`] and [`cgroup::CgroupFs`], so setup logic is tested without root.

pub mod cgroup;
pub mod channel;
pub mod container;
pub mod exeseal;
pub mod hooks;
pub mod init;
pub mod pid1;
pub mod plan;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod sys;
pub mod syscall;
pub mod trace;
pub mod tty;

pub use container::{
    block_forwarded_signals, wait_forwarding_signals, wait_pid, Container, CreateOpts, ExecOpts,
    RuntimeError, DEFAULT_ROOT,
};
pub use nix::sys::signal::Signal;
pub use oci_spec;
pub use process::Stdio;
pub use state::{State, Status};
