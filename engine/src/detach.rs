//! Docker's detach sequence: typed into an attached terminal (`ctrl-p,ctrl-q` unless
//! `--detach-keys` / `detachKeys` names another), it ends the attachment and leaves the
//! container running. The keys never reach the container.

/// Docker's default sequence.
pub const DEFAULT: &str = "ctrl-p,ctrl-q";

/// The bytes of a sequence written as Docker writes it: comma-separated keys, each one
/// character, `ctrl-@`, `ctrl-a`…`ctrl-z`, `ctrl-[`, `ctrl-\`, `ctrl-]`, `ctrl-^`,
/// `ctrl-_` or `DEL`.
pub fn parse(spec: &str) -> Result<Vec<u8>, String> {
    const CTRL: &[u8] = b"@abcdefghijklmnopqrstuvwxyz[\\]^_";
    let mut out = Vec::new();
    for key in spec.split(',') {
        let code = match key.as_bytes() {
            [c] => Some(*c),
            _ if key == "DEL" => Some(127),
            _ => key.strip_prefix("ctrl-").and_then(|k| match k.as_bytes() {
                [c] => CTRL.iter().position(|x| x == c).map(|i| i as u8),
                _ => None,
            }),
        };
        match code {
            Some(c) => out.push(c),
            None => return Err(format!("Unknown character: '{key}'")),
        }
    }
    Ok(out)
}

/// `detachKeys` of an attach or exec request: Docker's default when absent or empty, a
/// 400-worthy message when it does not parse.
pub fn from_query(value: Option<&str>) -> Result<Vec<u8>, String> {
    match value.filter(|v| !v.is_empty()) {
        None => parse(DEFAULT),
        Some(v) => parse(v).map_err(|_| format!("Invalid detach keys ({v}) provided")),
    }
}

/// Watches input for the sequence. Bytes that may begin it are held back until the next
/// byte shows whether they do; then they are forwarded after all, or swallowed with the
/// rest of the sequence.
#[derive(Debug, Clone)]
pub struct Scanner {
    keys: Vec<u8>,
    matched: usize,
}

impl Scanner {
    pub fn new(keys: Vec<u8>) -> Scanner {
        Scanner { keys, matched: 0 }
    }

    /// Feed `input`: the bytes to forward now, and whether the sequence is complete (then
    /// whatever followed it in `input` is dropped, as Docker does).
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        if self.keys.is_empty() {
            out.extend_from_slice(input);
            return (out, false);
        }
        for &b in input {
            if b == self.keys[self.matched] {
                self.matched += 1;
                if self.matched == self.keys.len() {
                    self.matched = 0;
                    return (out, true);
                }
                continue;
            }
            // not the sequence after all: what was held goes through
            out.extend_from_slice(&self.keys[..self.matched]);
            self.matched = 0;
            if b == self.keys[0] {
                self.matched = if self.keys.len() == 1 {
                    return (out, true);
                } else {
                    1
                };
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

/// Copy a terminal's input until it ends (false) or the detach keys come (true; they are
/// kept back). The daemon's attach and exec and the CLI's attachments all copy so.
pub async fn copy_until_detach(
    from: &mut (impl tokio::io::AsyncRead + Unpin),
    to: &mut (impl tokio::io::AsyncWrite + Unpin),
    keys: Vec<u8>,
) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut scanner = Scanner::new(keys);
    let mut buf = vec![0u8; 32 << 10];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => n,
        };
        let (data, detached) = scanner.feed(&buf[..n]);
        if !data.is_empty() && to.write_all(&data).await.is_err() {
            return false;
        }
        if detached {
            return true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_notation() {
        assert_eq!(parse(DEFAULT).unwrap(), vec![16, 17]);
        assert_eq!(
            parse("ctrl-@,a,ctrl-_,DEL").unwrap(),
            vec![0, b'a', 31, 127]
        );
        assert_eq!(parse("ctrl-\\").unwrap(), vec![28]);
        assert_eq!(parse("ctrl-").unwrap_err(), "Unknown character: 'ctrl-'");
        assert!(parse("ctrl-P").is_err());
        assert!(parse("ab").is_err());
        assert!(parse("").is_err());
        assert_eq!(from_query(None).unwrap(), vec![16, 17]);
        assert_eq!(from_query(Some("")).unwrap(), vec![16, 17]);
        assert_eq!(
            from_query(Some("ctrl-x,")).unwrap_err(),
            "Invalid detach keys (ctrl-x,) provided"
        );
    }

    #[test]
    fn swallows_the_sequence_and_forwards_the_rest() {
        let mut s = Scanner::new(parse(DEFAULT).unwrap());
        assert_eq!(s.feed(b"ls\r"), (b"ls\r".to_vec(), false));
        // split across reads
        assert_eq!(s.feed(b"x\x10"), (b"x".to_vec(), false));
        assert_eq!(s.feed(b"\x11after"), (Vec::new(), true));
        // a held ctrl-p that is not followed by ctrl-q goes through
        let mut s = Scanner::new(parse(DEFAULT).unwrap());
        assert_eq!(s.feed(b"\x10"), (Vec::new(), false));
        assert_eq!(s.feed(b"a"), (b"\x10a".to_vec(), false));
        // ctrl-p ctrl-p ctrl-q: the first goes through, the pair detaches
        let mut s = Scanner::new(parse(DEFAULT).unwrap());
        assert_eq!(s.feed(b"\x10\x10\x11"), (b"\x10".to_vec(), true));
        // one key
        let mut s = Scanner::new(parse("ctrl-x").unwrap());
        assert_eq!(s.feed(b"ab\x18cd"), (b"ab".to_vec(), true));
    }
}
