//! Terminals: receiving the pty master the runtime sends over a console socket (runc's
//! protocol: one `SCM_RIGHTS` message), and resizing it.

use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A console socket to hand the runtime; removed when dropped. Its path is short (under the
/// temp dir) because a socket path holds at most 107 bytes.
pub struct ConsoleSocket {
    pub path: PathBuf,
    listener: UnixListener,
}

impl ConsoleSocket {
    pub fn bind() -> std::io::Result<Self> {
        static N: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "berth-console-{}-{}.sock",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        Ok(Self { path, listener })
    }

    /// The pty master, once the runtime has sent it (it has, when create or exec returned).
    pub fn receive(&self, timeout: Duration) -> std::io::Result<OwnedFd> {
        use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
        self.listener.set_nonblocking(true)?;
        let deadline = Instant::now() + timeout;
        let conn = loop {
            match self.listener.accept() {
                Ok((c, _)) => break c,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if Instant::now() > deadline {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "the runtime sent no terminal",
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(e),
            }
        };
        conn.set_nonblocking(false)?;
        conn.set_read_timeout(Some(timeout))?;
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut anc = RecvAncillaryBuffer::new(&mut space);
        let mut buf = [0u8; 4096];
        rustix::net::recvmsg(
            &conn,
            &mut [std::io::IoSliceMut::new(&mut buf)],
            &mut anc,
            RecvFlags::CMSG_CLOEXEC,
        )?;
        for msg in anc.drain() {
            if let RecvAncillaryMessage::ScmRights(mut fds) = msg {
                if let Some(fd) = fds.next() {
                    return Ok(fd);
                }
            }
        }
        Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            "the console socket message carried no descriptor",
        ))
    }
}

impl ConsoleSocket {
    /// Bind one, with the stdio to give the runtime beside it: /dev/null everywhere, since
    /// the runtime puts the pty on 0, 1 and 2.
    pub fn bind_for_runtime() -> std::io::Result<(Self, runtime::Stdio)> {
        let sock = Self::bind()?;
        let stdio = runtime::Stdio {
            stdin: Some(dev_null()?),
            stdout: Some(dev_null()?),
            stderr: Some(dev_null()?),
        };
        Ok((sock, stdio))
    }
}

/// /dev/null, for a stdio slot the container process does not use.
pub fn dev_null() -> std::io::Result<OwnedFd> {
    Ok(std::fs::File::open("/dev/null")?.into())
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Set a terminal's size (rows, columns).
pub fn resize(fd: &impl std::os::fd::AsFd, rows: u16, cols: u16) -> std::io::Result<()> {
    rustix::termios::tcsetwinsize(
        fd,
        rustix::termios::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?;
    Ok(())
}
