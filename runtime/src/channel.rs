//! The message channel between the runtime's main process, the intermediate and the
//! container's init: one `SOCK_SEQPACKET` socket pair, one JSON message per packet, so
//! message boundaries are kept and EOF tells that every child end has gone.

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;

use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

/// What the processes tell each other while a container is being created.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Msg {
    /// main → intermediate: the cgroup (and id maps, when asked) are in place.
    Proceed,
    /// intermediate → main: a user namespace exists, write its id maps for this pid.
    MapIds(i32),
    /// intermediate → main: the init process's pid, as the host sees it.
    InitPid(i32),
    /// init → main: namespaces and mounts exist; run createRuntime/prestart hooks, then
    /// answer `Proceed`.
    Hooks,
    /// main → init: hooks done; the OCI state JSON for the init's own hooks.
    HookState(String),
    /// init → main: set up and waiting for `start`.
    Ready,
    /// intermediate or init → main: setup failed.
    Error(String),
}

#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("creating the setup channel: {0}")]
    Create(nix::errno::Errno),
    #[error("setup channel: {0}")]
    Io(#[from] std::io::Error),
    #[error("setup channel: bad message: {0}")]
    Decode(#[from] serde_json::Error),
    #[error("the container process exited during setup without a report")]
    Closed,
}

#[derive(Debug)]
pub struct Channel {
    sock: UnixStream,
}

/// A connected pair: (main end, child end). Both ends are close-on-exec.
pub fn pair() -> Result<(Channel, Channel), ChannelError> {
    let (a, b) = socketpair(
        AddressFamily::Unix,
        SockType::SeqPacket,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(ChannelError::Create)?;
    Ok((Channel::from_fd(a), Channel::from_fd(b)))
}

impl std::os::fd::AsRawFd for Channel {
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.sock.as_raw_fd()
    }
}

impl Channel {
    fn from_fd(fd: OwnedFd) -> Self {
        Channel {
            sock: UnixStream::from(fd),
        }
    }

    pub fn send(&mut self, msg: &Msg) -> Result<(), ChannelError> {
        let buf = serde_json::to_vec(msg)?;
        self.sock.write_all(&buf)?;
        Ok(())
    }

    pub fn recv(&mut self) -> Result<Msg, ChannelError> {
        let mut buf = vec![0u8; 64 * 1024];
        let mut reset = None;
        let n = loop {
            match self.sock.read(&mut buf) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // The peer closed with a message of ours unread: the kernel reports that
                // first, what it sent before it closed (its error) may still wait behind.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && reset.is_none() => {
                    reset = Some(e);
                    continue;
                }
                Err(e) => return Err(reset.unwrap_or(e).into()),
                Ok(0) if reset.is_some() => {
                    return Err(reset.map_or(ChannelError::Closed, ChannelError::Io))
                }
                Ok(n) => break n,
            }
        };
        if n == 0 {
            return Err(ChannelError::Closed);
        }
        Ok(serde_json::from_slice(&buf[..n])?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The intermediate may fail and go while our message to it is unread: its report is
    /// still read (the kernel's "connection reset" comes first), then the channel is closed.
    #[test]
    fn a_peer_that_left_our_message_unread_is_still_heard() {
        let (mut main, mut child) = pair().unwrap();
        child
            .send(&Msg::Error("open namespace /x: ENOENT".into()))
            .unwrap();
        main.send(&Msg::Proceed).unwrap();
        drop(child);
        match main.recv() {
            Ok(Msg::Error(e)) => assert_eq!(e, "open namespace /x: ENOENT"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(main.recv(), Err(ChannelError::Closed)));
    }
}
