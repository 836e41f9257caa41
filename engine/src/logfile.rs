//! The json-file log of a container, as Docker's driver writes it: one JSON object a line
//! (`{"log": ..., "stream": ..., "time": ...}`), rotated at `max-size` into `LOG.1` ..
//! `LOG.(max-file - 1)`, the oldest dropped. The monitor writes it; the daemon reads it for
//! `logs` (rotated files first) and follows it across rotations.

use std::fs::File;
use std::io::{BufRead, BufReader, Seek, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// `--log-driver` and `--log-opt` as the monitor applies them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogOpts {
    /// `--log-driver none`: nothing is written.
    #[serde(default)]
    pub none: bool,
    /// Rotate when the file reaches this many bytes; 0: never.
    #[serde(default)]
    pub max_size: u64,
    /// Files kept, the live one included (at least 1).
    #[serde(default = "one")]
    pub max_file: u32,
}

fn one() -> u32 {
    1
}

impl Default for LogOpts {
    fn default() -> Self {
        Self {
            none: false,
            max_size: 0,
            max_file: 1,
        }
    }
}

/// Docker's sizes for `max-size`: a number with an optional k/m/g (binary multiples).
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let lower = s.to_ascii_lowercase();
    let t = lower.trim_end_matches('b').trim_end_matches('i');
    let (num, mult) = match t.chars().last()? {
        'k' => (&t[..t.len() - 1], 1u64 << 10),
        'm' => (&t[..t.len() - 1], 1 << 20),
        'g' => (&t[..t.len() - 1], 1 << 30),
        c if c.is_ascii_digit() => (t, 1),
        _ => return None,
    };
    let n: f64 = num.trim().parse().ok()?;
    (n >= 0.0 && n.is_finite()).then_some((n * mult as f64) as u64)
}

impl LogOpts {
    /// From `HostConfig.LogConfig`; errors in Docker's words.
    pub fn from_host_config(hc: &Value) -> Result<Self, String> {
        let lc = &hc["LogConfig"];
        let driver = lc["Type"].as_str().unwrap_or("");
        let mut o = Self::default();
        match driver {
            "" | "json-file" => {}
            "none" => o.none = true,
            // dockerd's words (docker-py checks them); berth has json-file and none
            other => {
                return Err(format!(
                    "logger: no log driver named '{other}' is registered"
                ))
            }
        }
        for (k, v) in lc["Config"].as_object().into_iter().flatten() {
            let v = v.as_str().unwrap_or("");
            match (driver, k.as_str()) {
                ("none", _) => return Err(format!("unknown log opt '{k}' for log driver none")),
                (_, "max-size") => {
                    o.max_size = parse_size(v)
                        .ok_or_else(|| format!("invalid value for max-size: {v:?}"))?;
                }
                (_, "max-file") => {
                    o.max_file = v.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        format!("invalid value for max-file: {v:?}: must be a number of at least 1")
                    })?;
                }
                // accepted and ignored, as they change nothing here
                (_, "compress" | "labels" | "env" | "env-regex" | "tag") => {}
                (_, other) => {
                    return Err(format!(
                        "unknown log opt '{other}' for json-file log driver"
                    ))
                }
            }
        }
        // max-file without max-size is taken, as by dockerd 20.10: nothing ever rotates
        Ok(o)
    }
}

/// `LOG.n`: the n-th newest rotated file.
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{n}"));
    PathBuf::from(s)
}

/// The monitor's side: appends entries, rotates by size.
pub struct LogWriter {
    path: PathBuf,
    file: Option<File>,
    size: u64,
    opts: LogOpts,
}

impl LogWriter {
    pub fn open(path: &Path, opts: LogOpts) -> std::io::Result<Self> {
        let file = if opts.none {
            None
        } else {
            Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)?,
            )
        };
        let size = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
        Ok(Self {
            path: path.to_owned(),
            file,
            size,
            opts,
        })
    }

    /// Append one entry for `line` of `stream` (`stdout`/`stderr`).
    pub fn write_entry(&mut self, line: &[u8], stream: &str) {
        let Some(f) = self.file.as_mut() else { return };
        let entry = serde_json::json!({
            "log": String::from_utf8_lossy(line),
            "stream": stream,
            "time": crate::monitor::now(),
        });
        let mut b = serde_json::to_vec(&entry).unwrap_or_default();
        b.push(b'\n');
        if f.write_all(&b).is_ok() {
            self.size += b.len() as u64;
        }
        if self.opts.max_size > 0 && self.size >= self.opts.max_size {
            self.rotate();
        }
    }

    /// Shift `LOG.k` to `LOG.k+1` (the oldest falls off), `LOG` to `LOG.1`, start afresh.
    /// With `max-file 1` the log is just emptied, as Docker's.
    fn rotate(&mut self) {
        let keep = self.opts.max_file.saturating_sub(1);
        if keep == 0 {
            if let Some(f) = &self.file {
                let _ = f.set_len(0);
            }
            self.size = 0;
            return;
        }
        let _ = std::fs::remove_file(rotated(&self.path, keep));
        for k in (1..keep).rev() {
            let _ = std::fs::rename(rotated(&self.path, k), rotated(&self.path, k + 1));
        }
        let _ = std::fs::rename(&self.path, rotated(&self.path, 1));
        match std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
        {
            Ok(f) => {
                self.file = Some(f);
                self.size = 0;
            }
            // keep writing where we were rather than lose output
            Err(_) => {
                let _ = std::fs::rename(rotated(&self.path, 1), &self.path);
            }
        }
    }
}

/// One log entry: (stream 1|2, time, bytes).
pub type Entry = (u8, String, Vec<u8>);

/// Entries of one log file from byte `from`; returns them and the offset after the last
/// whole line (a partial last line is left for the next read).
pub fn read_from(path: &Path, from: u64) -> (Vec<Entry>, u64) {
    match File::open(path) {
        Ok(f) => read_file(&f, from),
        Err(_) => (Vec::new(), from),
    }
}

/// [`read_from`] an open file.
fn read_file(f: &File, from: u64) -> (Vec<Entry>, u64) {
    let mut out = Vec::new();
    let Ok(mut f) = f.try_clone() else {
        return (out, from);
    };
    if f.seek(std::io::SeekFrom::Start(from)).is_err() {
        return (out, from);
    }
    let mut pos = from;
    let mut r = BufReader::new(f);
    let mut line = String::new();
    loop {
        line.clear();
        match r.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if !line.ends_with('\n') => break,
            Ok(n) => {
                pos += n as u64;
                if let Ok(v) = serde_json::from_str::<Value>(&line) {
                    let stream = if v["stream"] == "stderr" { 2 } else { 1 };
                    out.push((
                        stream,
                        v["time"].as_str().unwrap_or("").to_owned(),
                        v["log"].as_str().unwrap_or("").as_bytes().to_vec(),
                    ));
                }
            }
        }
    }
    (out, pos)
}

/// A reader that follows a log across rotations: everything kept first (oldest rotated
/// file to the live one), then what is appended, also after the live file was rotated away.
/// It reads files it holds open: what they held stays readable when the container (and
/// its directory) is removed meanwhile (`docker-py`'s `run` reads its follow stream after
/// its `remove`).
pub struct Follower {
    path: PathBuf,
    /// Rotated files, oldest first, until `read_all` reads them.
    rotated: Vec<File>,
    file: Option<File>,
    ino: u64,
    pos: u64,
}

fn ino(p: &Path) -> u64 {
    std::fs::metadata(p).map_or(0, |m| m.ino())
}

impl Follower {
    /// Open the log at `path`: its rotated files and the live one.
    pub fn open(path: &Path) -> Self {
        let mut k = 1;
        while rotated(path, k).exists() {
            k += 1;
        }
        let rotated_files: Vec<File> = (1..k)
            .rev()
            .filter_map(|n| File::open(rotated(path, n)).ok())
            .collect();
        let file = File::open(path).ok();
        // (the newest file read: the live one, or, caught between a rotation's rename and
        // its new file, the one rotated last, which `poll` must not read again)
        let ino = file
            .as_ref()
            .or(rotated_files.last())
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.ino());
        Self {
            path: path.to_owned(),
            rotated: rotated_files,
            file,
            ino,
            pos: 0,
        }
    }

    /// All entries kept when it was opened; then it is positioned after them.
    pub fn read_all(&mut self) -> Vec<Entry> {
        let mut out = Vec::new();
        for f in std::mem::take(&mut self.rotated) {
            out.extend(read_file(&f, 0).0);
        }
        if let Some(f) = &self.file {
            let (live, pos) = read_file(f, 0);
            out.extend(live);
            self.pos = pos;
        }
        out
    }

    /// What was appended since the last call.
    pub fn poll(&mut self) -> Vec<Entry> {
        let now = ino(&self.path);
        let mut out = Vec::new();
        if now != self.ino && now != 0 {
            // rotated (or made since): finish the file we hold, then the files rotated after
            // it that we never held (rotations quicker than our polls), then the new one
            if let Some(f) = &self.file {
                out.extend(read_file(f, self.pos).0);
            }
            let mut missed = Vec::new();
            for k in 1.. {
                let Ok(f) = File::open(rotated(&self.path, k)) else {
                    break;
                };
                if f.metadata().map_or(true, |m| m.ino() == self.ino) {
                    break;
                }
                missed.push(f);
            }
            for f in missed.iter().rev() {
                out.extend(read_file(f, 0).0);
            }
            self.file = File::open(&self.path).ok();
            self.ino = now;
            self.pos = 0;
        } else if self
            .file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .is_some_and(|m| m.len() < self.pos)
        {
            self.pos = 0; // emptied (max-file 1)
        }
        if let Some(f) = &self.file {
            let (more, pos) = read_file(f, self.pos);
            self.pos = pos;
            out.extend(more);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn options_like_docker() {
        let o = |c: Value| LogOpts::from_host_config(&json!({"LogConfig": c}));
        assert_eq!(o(json!(null)).unwrap(), LogOpts::default());
        let x = o(json!({"Type": "json-file", "Config": {"max-size": "10k", "max-file": "3"}}))
            .unwrap();
        assert_eq!((x.max_size, x.max_file), (10240, 3));
        assert_eq!(
            o(json!({"Config": {"max-size": "1m"}})).unwrap().max_size,
            1 << 20
        );
        assert_eq!(
            o(json!({"Config": {"max-size": "512"}})).unwrap().max_size,
            512
        );
        assert!(o(json!({"Type": "none"})).unwrap().none);
        for (bad, msg) in [
            (json!({"Type": "syslog"}), "no log driver named 'syslog'"),
            (
                json!({"Config": {"max-size": "ten"}}),
                "invalid value for max-size",
            ),
            (
                json!({"Config": {"max-size": "1k", "max-file": "0"}}),
                "max-file",
            ),
            (json!({"Config": {"bogus": "1"}}), "unknown log opt 'bogus'"),
            (
                json!({"Type": "none", "Config": {"max-size": "1k"}}),
                "log driver none",
            ),
        ] {
            let e = o(bad.clone()).unwrap_err();
            assert!(e.contains(msg), "{bad}: {e}");
        }
    }

    /// What the log held, and what was written after the follower opened it, still comes
    /// when the container's directory was removed before the follower read it.
    #[test]
    fn a_follower_reads_a_log_removed_under_it() {
        let dir = tempfile::tempdir().unwrap();
        let cdir = dir.path().join("c");
        std::fs::create_dir(&cdir).unwrap();
        let path = cdir.join("c-json.log");
        let mut w = LogWriter::open(&path, LogOpts::default()).unwrap();
        w.write_entry(b"before\n", "stdout");
        let mut f = Follower::open(&path);
        w.write_entry(b"after\n", "stderr");
        drop(w);
        std::fs::rename(&cdir, dir.path().join("trash")).unwrap();
        std::fs::remove_dir_all(dir.path().join("trash")).unwrap();
        let got: Vec<(u8, Vec<u8>)> = f
            .read_all()
            .into_iter()
            .chain(f.poll())
            .map(|(s, _, d)| (s, d))
            .collect();
        assert_eq!(
            got,
            vec![(1, b"before\n".to_vec()), (2, b"after\n".to_vec())]
        );
        assert!(f.poll().is_empty());
    }

    /// The container wrote faster than the follower polled: a whole file was rotated out
    /// of the live place between two polls; the follower still reads it, in order.
    #[test]
    fn a_follower_reads_files_rotated_between_its_polls() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let opts = LogOpts {
            none: false,
            max_size: 100,
            max_file: 3,
        };
        let mut w = LogWriter::open(&path, opts).unwrap();
        let mut f = Follower::open(&path);
        let mut seen = f.read_all();
        // each entry is over 100 bytes: every write rotates, three times before the poll
        let lines: Vec<String> = (0..3)
            .map(|i| format!("{i} {}\n", "x".repeat(90)))
            .collect();
        for l in &lines {
            w.write_entry(l.as_bytes(), "stdout");
        }
        seen.extend(f.poll());
        let text: Vec<String> = seen
            .iter()
            .map(|e| String::from_utf8_lossy(&e.2).into_owned())
            .collect();
        assert_eq!(text, lines);
        assert!(f.poll().is_empty());
    }

    /// Opened between a rotation's rename and its new file: the rotated file is read once.
    #[test]
    fn a_follower_opened_mid_rotation_reads_each_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let mut w = LogWriter::open(&path, LogOpts::default()).unwrap();
        w.write_entry(b"old\n", "stdout");
        drop(w);
        std::fs::rename(&path, rotated(&path, 1)).unwrap();
        let mut f = Follower::open(&path);
        let mut seen = f.read_all();
        let mut w = LogWriter::open(&path, LogOpts::default()).unwrap();
        w.write_entry(b"new\n", "stdout");
        seen.extend(f.poll());
        let text: Vec<&[u8]> = seen.iter().map(|e| e.2.as_slice()).collect();
        assert_eq!(text, [b"old\n".as_slice(), b"new\n".as_slice()]);
    }

    #[test]
    fn rotates_and_follows_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c-json.log");
        let opts = LogOpts {
            none: false,
            max_size: 200,
            max_file: 3,
        };
        let mut w = LogWriter::open(&path, opts).unwrap();
        let mut f = Follower::open(&path);
        let first = f.read_all();
        assert!(first.is_empty());
        let mut seen = Vec::new();
        for i in 0..40 {
            w.write_entry(format!("line {i}\n").as_bytes(), "stdout");
            // a follower polling now and then sees every line once, in order
            if i % 3 == 0 {
                seen.extend(f.poll());
            }
        }
        seen.extend(f.poll());
        let text: Vec<String> = seen
            .iter()
            .map(|e| String::from_utf8_lossy(&e.2).into_owned())
            .collect();
        let want: Vec<String> = (0..40).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, want);
        // at most 3 files, each under max-size plus one entry; the oldest lines are gone
        assert!(rotated(&path, 2).exists());
        assert!(!rotated(&path, 3).exists());
        for p in [path.clone(), rotated(&path, 1), rotated(&path, 2)] {
            assert!(std::fs::metadata(&p).unwrap().len() < 200 + 80, "{p:?}");
        }
        let kept = Follower::open(&path).read_all();
        let last: Vec<String> = kept
            .iter()
            .map(|e| String::from_utf8_lossy(&e.2).into_owned())
            .collect();
        assert!(last.len() < 40 && last.len() > 6, "{}", last.len());
        assert_eq!(last.last().unwrap(), "line 39\n");
        let n = last.len();
        assert_eq!(
            last,
            want[40 - n..].to_vec(),
            "what is kept is the newest, in order"
        );
    }

    #[test]
    fn max_file_one_truncates_and_none_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l");
        let mut w = LogWriter::open(
            &path,
            LogOpts {
                none: false,
                max_size: 100,
                max_file: 1,
            },
        )
        .unwrap();
        for _ in 0..20 {
            w.write_entry(b"0123456789\n", "stderr");
        }
        assert!(std::fs::metadata(&path).unwrap().len() < 100);
        assert!(!rotated(&path, 1).exists());
        let p2 = dir.path().join("none");
        let mut w = LogWriter::open(
            &p2,
            LogOpts {
                none: true,
                ..LogOpts::default()
            },
        )
        .unwrap();
        w.write_entry(b"x\n", "stdout");
        assert!(!p2.exists());
    }
}
