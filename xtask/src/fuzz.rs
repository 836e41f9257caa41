//! `cargo xtask fuzz [--time SECS] [TARGET...]`: run the cargo-fuzz targets of `fuzz/` one
//! after the other (one libFuzzer process at a time), print what each did, keep the
//! cumulative time per target in `fuzz/HOURS.md`, and fail when a target crashed, with the
//! input copied to `fuzz/regressions/<target>/` (which the stable replay test then runs).
//!
//! The short version that CI runs needs no nightly: `engine/tests/fuzz_corpus.rs` replays
//! every corpus and regression input through the same entry functions.

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::sys::{self, workspace_root};

/// Every target, with the longest input libFuzzer may make for it (a layer needs room for
/// several 512-byte tar headers; the rest are small documents).
pub const TARGETS: &[(&str, usize)] = &[
    ("unpack_layer", 64 << 10),
    ("dockerfile", 8 << 10),
    ("image_json", 8 << 10),
    ("reference", 1 << 10),
    ("api_request", 8 << 10),
    ("attach_frames", 4 << 10),
];

const USAGE: &str = "usage: cargo xtask fuzz [--time SECS] [TARGET...]";

fn fuzz_dir() -> PathBuf {
    workspace_root().join("fuzz")
}

/// One run of one target, as recorded in `fuzz/runs.tsv`.
#[derive(Debug, Default, Clone, PartialEq)]
struct RunStats {
    execs: u64,
    secs: f64,
    crashed: bool,
}

pub fn run_task(args: &[String]) -> Result<()> {
    let mut secs = 300u64;
    let mut names = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--time" => {
                let v = it.next().context(USAGE)?;
                secs = v
                    .parse()
                    .with_context(|| format!("--time {v:?}: {USAGE}"))?;
            }
            t if TARGETS.iter().any(|(n, _)| *n == t) => names.push(t.to_owned()),
            other => bail!(
                "unknown target or option {other:?}; targets: {}\n{USAGE}",
                TARGETS.iter().map(|t| t.0).collect::<Vec<_>>().join(", ")
            ),
        }
    }
    if names.is_empty() {
        names = TARGETS.iter().map(|t| t.0.to_owned()).collect();
    }
    ensure_cargo_fuzz()?;
    sys::run(fuzz_cargo().args(["fuzz", "build", "--sanitizer", "none"]))?;
    let mut crashed = Vec::new();
    let mut rows = Vec::new();
    for name in &names {
        let max_len = TARGETS
            .iter()
            .find(|t| t.0 == name)
            .map(|t| t.1)
            .unwrap_or(4096);
        let (stats, saved) = run_one(name, secs, max_len)?;
        record(name, &stats)?;
        let corpus = dir_size(&fuzz_dir().join("corpus").join(name));
        println!(
            "fuzz {name}: {} executions in {:.0} s ({:.0}/s), corpus {} inputs / {} KiB, {}",
            stats.execs,
            stats.secs,
            stats.execs as f64 / stats.secs.max(1e-3),
            corpus.0,
            corpus.1 / 1024,
            if stats.crashed { "CRASHED" } else { "no crash" }
        );
        for s in &saved {
            println!("  crash input saved as {}", s.display());
        }
        if stats.crashed {
            crashed.push(name.clone());
        }
        rows.push((name.clone(), stats));
    }
    write_hours()?;
    println!(
        "\n{:<14} {:>12} {:>8}  result",
        "target", "executions", "seconds"
    );
    for (name, s) in &rows {
        println!(
            "{name:<14} {:>12} {:>8.0}  {}",
            s.execs,
            s.secs,
            if s.crashed { "crash" } else { "ok" }
        );
    }
    println!("cumulative totals: fuzz/HOURS.md");
    if !crashed.is_empty() {
        bail!(
            "fuzz targets crashed: {} (inputs in fuzz/regressions/)",
            crashed.join(", ")
        );
    }
    Ok(())
}

/// `cargo +nightly` from the rustup proxy, whatever toolchain runs xtask itself.
fn fuzz_cargo() -> Command {
    let mut c = Command::new("cargo");
    c.arg("+nightly")
        .current_dir(fuzz_dir())
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTC")
        .env_remove("RUSTDOC")
        .env_remove("CARGO");
    c
}

fn ensure_cargo_fuzz() -> Result<()> {
    let have = Command::new("cargo")
        .args(["fuzz", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        sys::run(Command::new("cargo").args(["+stable", "install", "--locked", "cargo-fuzz"]))?;
    }
    let nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !nightly {
        sys::run(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    Ok(())
}

/// Run one target for `secs`; its libFuzzer output goes to `fuzz/logs/<target>.log`.
fn run_one(name: &str, secs: u64, max_len: usize) -> Result<(RunStats, Vec<PathBuf>)> {
    let fuzz = fuzz_dir();
    let corpus = fuzz.join("corpus").join(name);
    let artifacts = fuzz.join("artifacts").join(name);
    let logs = fuzz.join("logs");
    fs::create_dir_all(&corpus)?;
    fs::create_dir_all(&artifacts)?;
    fs::create_dir_all(&logs)?;
    let before = listing(&artifacts);
    let log_path = logs.join(format!("{name}.log"));
    let log = fs::File::create(&log_path).with_context(|| format!("create {log_path:?}"))?;
    let mut c = fuzz_cargo();
    c.args(["fuzz", "run", "--sanitizer", "none", name])
        .arg(&corpus)
        .arg("--")
        .arg(format!("-max_total_time={secs}"))
        .arg(format!("-max_len={max_len}"))
        .args(["-timeout=10", "-rss_limit_mb=2048", "-print_final_stats=1"])
        .stdout(log.try_clone()?)
        .stderr(log);
    eprintln!("$ {}  (log: {})", sys::show(&c), log_path.display());
    let start = Instant::now();
    let status = c.status().context("spawning cargo fuzz run")?;
    let wall = start.elapsed().as_secs_f64();
    let text = fs::read_to_string(&log_path).unwrap_or_default();
    let mut stats = parse_stats(&text);
    if stats.secs == 0.0 {
        stats.secs = wall;
    }
    let new: Vec<PathBuf> = listing(&artifacts)
        .into_iter()
        .filter(|p| !before.contains(p))
        .collect();
    stats.crashed = !status.success() || !new.is_empty();
    let mut saved = Vec::new();
    if stats.crashed {
        let dest = fuzz.join("regressions").join(name);
        fs::create_dir_all(&dest)?;
        for p in &new {
            if let Some(file) = p.file_name() {
                let to = dest.join(file);
                fs::copy(p, &to).with_context(|| format!("copy {p:?} to {to:?}"))?;
                saved.push(to);
            }
        }
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        for l in tail.into_iter().rev() {
            eprintln!("  | {l}");
        }
    }
    Ok((stats, saved))
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// Files and bytes in `dir`.
fn dir_size(dir: &Path) -> (usize, u64) {
    let files: Vec<u64> = listing(dir)
        .iter()
        .filter_map(|p| fs::metadata(p).ok())
        .filter(|m| m.is_file())
        .map(|m| m.len())
        .collect();
    (files.len(), files.iter().sum())
}

/// libFuzzer's final figures: `stat::number_of_executed_units: N` and `Done N runs in S
/// second(s)` (absent after a crash, when the last `#N ...` status line counts instead).
fn parse_stats(log: &str) -> RunStats {
    let mut s = RunStats::default();
    for line in log.lines() {
        if let Some(n) = line.strip_prefix("stat::number_of_executed_units:") {
            s.execs = n.trim().parse().unwrap_or(s.execs);
        } else if let Some(rest) = line.strip_prefix("Done ") {
            let mut w = rest.split_whitespace();
            if let (Some(n), Some("runs"), Some("in"), Some(t)) =
                (w.next(), w.next(), w.next(), w.next())
            {
                s.execs = n.parse().unwrap_or(s.execs);
                s.secs = t.parse().unwrap_or(s.secs);
            }
        } else if let Some(rest) = line.strip_prefix('#') {
            if s.secs == 0.0 {
                if let Some(n) = rest.split_whitespace().next().and_then(|n| n.parse().ok()) {
                    s.execs = s.execs.max(n);
                }
            }
        }
    }
    s
}

/// Append a run to `fuzz/runs.tsv` (date, target, seconds, executions, crashed).
fn record(name: &str, s: &RunStats) -> Result<()> {
    let path = fuzz_dir().join("runs.tsv");
    let mut text = fs::read_to_string(&path).unwrap_or_default();
    if text.is_empty() {
        text.push_str("# date\ttarget\tseconds\texecutions\tcrashed\n");
    }
    let date =
        sys::output(Command::new("date").args(["-u", "+%Y-%m-%dT%H:%M:%SZ"])).unwrap_or_default();
    writeln!(
        text,
        "{}\t{name}\t{:.0}\t{}\t{}",
        date.trim(),
        s.secs,
        s.execs,
        s.crashed
    )?;
    fs::write(&path, text).with_context(|| format!("write {path:?}"))
}

/// Totals per target from `fuzz/runs.tsv`: (target, seconds, executions, runs, crashes).
fn totals(tsv: &str) -> Vec<(String, f64, u64, u32, u32)> {
    let mut out: Vec<(String, f64, u64, u32, u32)> = TARGETS
        .iter()
        .map(|t| (t.0.to_owned(), 0.0, 0, 0, 0))
        .collect();
    for line in tsv.lines().filter(|l| !l.starts_with('#')) {
        let f: Vec<&str> = line.split('\t').collect();
        if let [_, name, secs, execs, crashed] = f[..] {
            if let Some(t) = out.iter_mut().find(|t| t.0 == name) {
                t.1 += secs.parse::<f64>().unwrap_or(0.0);
                t.2 += execs.parse::<u64>().unwrap_or(0);
                t.3 += 1;
                t.4 += u32::from(crashed == "true");
            }
        }
    }
    out
}

/// Rewrite `fuzz/HOURS.md` from `fuzz/runs.tsv`.
fn write_hours() -> Result<()> {
    let tsv = fs::read_to_string(fuzz_dir().join("runs.tsv")).unwrap_or_default();
    let mut md = String::from(
        "# Fuzzing time so far\n\nWritten by `cargo xtask fuzz` from `runs.tsv` (one line per \
         run); the goal of issue 10 is at least 30 minutes per target.\n\n\
         | target | minutes | executions | runs | crashing runs |\n|---|---:|---:|---:|---:|\n",
    );
    for (name, secs, execs, runs, crashes) in totals(&tsv) {
        writeln!(
            md,
            "| {name} | {:.1} | {execs} | {runs} | {crashes} |",
            secs / 60.0
        )?;
    }
    let path = fuzz_dir().join("HOURS.md");
    fs::write(&path, md).with_context(|| format!("write {path:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_libfuzzer_final_figures() {
        let log = "#2\tINITED cov: 10\n#512\tpulse  cov: 20\nDone 1234 runs in 61 second(s)\n\
                   stat::number_of_executed_units: 1235\n";
        let s = parse_stats(log);
        assert_eq!((s.execs, s.secs), (1235, 61.0));
    }

    #[test]
    fn after_a_crash_the_last_status_line_counts() {
        let log = "#2\tINITED cov: 10\n#4096\tNEW cov: 20\n==1== ERROR: libFuzzer: deadly signal\n";
        assert_eq!(parse_stats(log).execs, 4096);
    }

    #[test]
    fn totals_add_up_per_target() {
        let tsv = "# header\nd\treference\t60\t100\tfalse\nd\treference\t30\t50\ttrue\n";
        let t = totals(tsv);
        let r = t.iter().find(|t| t.0 == "reference").cloned();
        assert_eq!(r, Some(("reference".into(), 90.0, 150, 2, 1)));
    }
}
