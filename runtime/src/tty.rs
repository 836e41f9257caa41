//! Console sockets, runc's protocol: init allocates a pty inside the container, sends the
//! master over the caller's unix socket with `SCM_RIGHTS` (the payload is the pty's name),
//! and makes the slave its controlling terminal and stdio.

use std::io::IoSlice;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use nix::fcntl::OFlag;
use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags, UnixAddr};

#[derive(Debug, thiserror::Error)]
pub enum TtyError {
    #[error("connecting to the console socket {path}: {source}")]
    Connect {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("allocating a pty: {0}")]
    Pty(nix::errno::Errno),
    #[error("sending the pty master over the console socket: {0}")]
    Send(nix::errno::Errno),
    #[error("binding the pty to /dev/console: {0}")]
    Console(String),
    #[error("opening the pty slave {path}: {source}")]
    Slave {
        path: String,
        source: nix::errno::Errno,
    },
}

/// Connect before `pivot_root`, while the socket's path is still reachable.
pub fn connect(path: &Path) -> Result<UnixStream, TtyError> {
    UnixStream::connect(path).map_err(|source| TtyError::Connect {
        path: path.to_path_buf(),
        source,
    })
}

/// After `pivot_root`: the pty comes from the container's devpts.
/// `bind_console`: make /dev/console the pty too (the container's init only: an exec shares
/// the container's /dev).
pub fn setup_console(
    sock: UnixStream,
    bind_console: bool,
    size: Option<(u16, u16)>,
) -> Result<(), TtyError> {
    let master = nix::pty::posix_openpt(OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC)
        .map_err(TtyError::Pty)?;
    if let Some((rows, cols)) = size {
        // Before the program starts, so its first look at the size is right.
        let ws = nix::pty::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        crate::sys::set_winsize(&master, &ws).map_err(TtyError::Pty)?;
    }
    nix::pty::grantpt(&master).map_err(TtyError::Pty)?;
    nix::pty::unlockpt(&master).map_err(TtyError::Pty)?;
    let name = nix::pty::ptsname_r(&master).map_err(TtyError::Pty)?;
    let slave: OwnedFd = nix::fcntl::open(
        name.as_str(),
        OFlag::O_RDWR | OFlag::O_NOCTTY,
        nix::sys::stat::Mode::empty(),
    )
    .map_err(|source| TtyError::Slave {
        path: name.clone(),
        source,
    })?;
    // The slave must really be a pty (CVE-2025-52565: a symlinked /dev/pts entry).
    let st = nix::sys::stat::fstat(&slave).map_err(|source| TtyError::Slave {
        path: name.clone(),
        source,
    })?;
    let major = nix::sys::stat::major(st.st_rdev);
    let is_chr = st.st_mode & libc::S_IFMT == libc::S_IFCHR;
    if !is_chr || !(136..=143).contains(&major) {
        return Err(TtyError::Slave {
            path: name.clone(),
            source: nix::errno::Errno::ENOTTY,
        });
    }
    // /dev/console is the pty too.
    use crate::syscall::{linux::LinuxSyscall, Create, Syscall};
    let sys = LinuxSyscall;
    let console = if bind_console {
        sys.resolve_in_root(Path::new("/"), Path::new("/dev/console"), Create::File)
            .ok()
    } else {
        None
    };
    if let Some(target) = console {
        sys.mount(
            Some(Path::new(&name)),
            &target.mount_path(),
            None,
            nix::mount::MsFlags::MS_BIND,
            None,
        )
        .map_err(|e| TtyError::Console(e.to_string()))?;
    }
    let fds = [master.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [IoSlice::new(name.as_bytes())];
    sendmsg::<UnixAddr>(sock.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)
        .map_err(TtyError::Send)?;
    drop(master);
    drop(sock);
    crate::sys::set_controlling_tty(&slave).map_err(|source| TtyError::Slave {
        path: name.clone(),
        source,
    })?;
    for dup in [
        nix::unistd::dup2_stdin,
        nix::unistd::dup2_stdout,
        nix::unistd::dup2_stderr,
    ] {
        dup(&slave).map_err(|source| TtyError::Slave {
            path: name.clone(),
            source,
        })?;
    }
    Ok(())
}
