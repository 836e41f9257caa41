//! Docker's multiplexed stream format (attach, logs and exec without a TTY): frames of an
//! 8-byte header — stream (0 stdin, 1 stdout, 2 stderr, 3 system error), three zero bytes,
//! the payload length big-endian — then the payload. Encoding and incremental decoding only;
//! it never reads or writes a socket.

/// A frame in Docker's multiplexed stream format.
pub fn frame(stream: u8, data: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(8 + data.len());
    f.extend_from_slice(&[stream, 0, 0, 0]);
    f.extend_from_slice(&(data.len() as u32).to_be_bytes());
    f.extend_from_slice(data);
    f
}

/// One decoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub stream: u8,
    pub data: Vec<u8>,
}

/// Splits a byte stream into frames as it arrives, in whatever pieces. Memory follows the
/// bytes received, never the length a header claims (a hostile peer could claim 4 GiB).
#[derive(Debug, Default)]
pub struct FrameDecoder {
    buf: Vec<u8>,
}

impl FrameDecoder {
    pub fn new() -> FrameDecoder {
        FrameDecoder::default()
    }

    /// Append received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete frame, if the bytes received so far hold one.
    pub fn next_frame(&mut self) -> Option<Frame> {
        let head: [u8; 8] = self.buf.get(..8)?.try_into().ok()?;
        let len = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let data = self.buf.get(8..8usize.checked_add(len)?)?.to_vec();
        self.buf.drain(..8 + len);
        Some(Frame {
            stream: head[0],
            data,
        })
    }

    /// Bytes received that do not make a whole frame yet (a stream ending with some is
    /// truncated).
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_frames_split_anywhere() {
        let mut wire = frame(1, b"hello\n");
        wire.extend(frame(2, b""));
        wire.extend(frame(2, b"oops"));
        let mut d = FrameDecoder::new();
        let mut got = Vec::new();
        for b in &wire {
            d.push(std::slice::from_ref(b));
            while let Some(f) = d.next_frame() {
                got.push(f);
            }
        }
        assert_eq!(
            got,
            [
                Frame {
                    stream: 1,
                    data: b"hello\n".to_vec()
                },
                Frame {
                    stream: 2,
                    data: Vec::new()
                },
                Frame {
                    stream: 2,
                    data: b"oops".to_vec()
                },
            ]
        );
        assert!(d.pending().is_empty());
    }

    #[test]
    fn a_huge_claimed_length_allocates_nothing() {
        let mut d = FrameDecoder::new();
        d.push(&[1, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, b'x']);
        assert_eq!(d.next_frame(), None);
        assert_eq!(d.pending().len(), 9);
    }
}
