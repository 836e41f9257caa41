//! The test files that run in the guest, one after the other in the same boot: the CLI's
//! kernel-dependent scenarios, then the runtime's OCI conformance walk and its privileged
//! tests. Here: building their executables (and the binaries they run, which keep their host
//! paths in the guest), selecting tests by `--filter`, the guest's script, and reading each
//! suite's outcome back from the console.
//!
//! Every test of these files runs in the guest (`Suite::skip` is empty for each: all of
//! privileged.rs works there). `runtime/tests/podman.rs` is not among them: it drives podman
//! (and conmon, and podman's storage), which the guest lacks and does not need to show
//! anything about the kernel: the same runtime paths run in privileged.rs.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{anyhow, bail, Result};

use super::qemu::Outcome;
use crate::sys::{self, cargo};

/// One integration test file run in the guest.
#[derive(Debug)]
pub struct Suite {
    /// The test target's name, also the suite's name in the console lines.
    pub name: &'static str,
    pub package: &'static str,
    /// Its source, relative to the workspace: it tells apart test targets of the same name.
    pub src: &'static str,
    /// The binaries its tests run through `env!("CARGO_BIN_EXE_..")`.
    pub bins: &'static [&'static str],
    /// The runtime's tests are independent containers: two threads halve their time on the
    /// guest's two CPUs. The CLI's scenarios start daemons and bridges: one at a time.
    pub threads: u32,
    /// Tests left out in the guest (`--skip`: every test whose name contains one), with the
    /// reason.
    pub skip: &'static [(&'static str, &'static str)],
}

pub const SUITES: &[Suite] = &[
    Suite {
        name: "kernel",
        package: "cli",
        src: "cli/tests/kernel.rs",
        bins: &["berth", "berthd"],
        threads: 1,
        skip: &[],
    },
    Suite {
        name: "conformance",
        package: "runtime",
        src: "runtime/tests/conformance.rs",
        bins: &["berth-runtime"],
        threads: 2,
        skip: &[],
    },
    Suite {
        name: "privileged",
        package: "runtime",
        src: "runtime/tests/privileged.rs",
        bins: &["berth-runtime"],
        threads: 2,
        skip: &[],
    },
];

/// The binaries the suites run, by name, with their paths.
pub type Bins = Vec<(&'static str, PathBuf)>;

/// A suite's test executable, as built.
#[derive(Debug)]
pub struct Built {
    pub suite: &'static Suite,
    pub exe: PathBuf,
}

/// Build every suite's test executable and the binaries they run, in release (or, with
/// `dev`, exactly as `cargo xtask test` builds every test, so that after it nothing is
/// rebuilt); the executables, and each binary by name with its path.
pub fn build(dev: bool) -> Result<(Vec<Built>, Bins)> {
    let mut c = cargo();
    c.arg("test");
    if dev {
        c.args(["--workspace", "--no-fail-fast"]);
    } else {
        c.arg("--release");
        for s in SUITES {
            c.args(["-p", s.package, "--test", s.name]);
        }
    }
    c.args(["--no-run", "--message-format=json-render-diagnostics"]);
    eprintln!("$ {}", sys::show(&c));
    let out = c.stderr(Stdio::inherit()).output()?;
    if !out.status.success() {
        bail!("building the suites failed: {}", out.status);
    }
    let root = sys::workspace_root();
    let mut built = Vec::new();
    let mut bins: Bins = Vec::new();
    let wanted_bins: Vec<&'static str> = SUITES.iter().flat_map(|s| s.bins).copied().collect();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let (Some(name), Some(exe), Some(src)) = (
            v["target"]["name"].as_str(),
            v["executable"].as_str(),
            v["target"]["src_path"].as_str(),
        ) else {
            continue;
        };
        let kinds = v["target"]["kind"].to_string();
        if kinds.contains("\"test\"") {
            if let Some(s) = SUITES
                .iter()
                .find(|s| s.name == name && Path::new(src) == root.join(s.src))
            {
                built.push(Built {
                    suite: s,
                    exe: PathBuf::from(exe),
                });
            }
        } else if kinds.contains("\"bin\"") && v["profile"]["test"] == false {
            if let Some(b) = wanted_bins.iter().find(|b| **b == name) {
                bins.push((b, PathBuf::from(exe)));
            }
        }
    }
    // the test executables run env!("CARGO_BIN_EXE_..."): the same paths in the guest; cargo
    // names no executable it did not have to rebuild, so fall back on the profile's dir
    let profile = if dev { "debug" } else { "release" };
    for b in wanted_bins {
        if !bins.iter().any(|(n, _)| *n == b) {
            bins.push((b, sys::target_dir().join(profile).join(b)));
        }
    }
    bins.dedup_by(|a, b| a.0 == b.0);
    for s in SUITES {
        if !built.iter().any(|b| b.suite.src == s.src) {
            bail!("cargo named no test executable for {}", s.src);
        }
    }
    built.sort_by_key(|b| SUITES.iter().position(|s| s.src == b.suite.src));
    Ok((built, bins))
}

/// The arguments after the executable: every test, privileged ones included, less the skips.
fn test_args(s: &Suite, filter: Option<&str>) -> Vec<String> {
    let mut a = vec!["--include-ignored".to_owned()];
    if let Some(f) = filter {
        a.push(f.to_owned());
    }
    for (name, _) in s.skip {
        a.extend(["--skip".to_owned(), (*name).to_owned()]);
    }
    a
}

/// How many of the suite's tests the guest will run, asked of the executable on the host.
pub fn count(b: &Built, filter: Option<&str>) -> Result<usize> {
    let list = sys::output(
        Command::new(&b.exe)
            .arg("--list")
            .args(test_args(b.suite, filter)),
    )?;
    Ok(list.lines().filter(|l| l.ends_with(": test")).count())
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The guest's script: each suite between `berth-vm: suite NAME start|exit N` lines; its own
/// exit code is the first failing suite's, after every suite has run.
pub fn script(suites: &[&Built], filter: Option<&str>) -> String {
    let mut s = String::from(
        "#!/bin/sh\ncd /tmp\nexport RUST_BACKTRACE=1\nrc=0\n\
         suite() {\n    name=$1; shift\n    echo \"berth-vm: suite $name start\"\n    \"$@\"\n    \
         r=$?\n    echo \"berth-vm: suite $name exit $r\"\n    [ $rc -ne 0 ] || rc=$r\n}\n",
    );
    for b in suites {
        let mut args = vec![
            b.suite.name.to_owned(),
            b.exe.to_string_lossy().into_owned(),
            format!("--test-threads={}", b.suite.threads),
        ];
        args.extend(test_args(b.suite, filter));
        let quoted: Vec<String> = args.iter().map(|a| shell_quote(a)).collect();
        s.push_str(&format!("suite {}\n", quoted.join(" ")));
    }
    s.push_str("exit $rc\n");
    s
}

/// One suite's outcome as the console showed it.
#[derive(Debug)]
pub struct Report {
    pub name: &'static str,
    /// libtest's counts (`ok. 9 passed; 0 failed; 0 ignored; 2 filtered out`), when it
    /// printed them.
    pub result: Option<String>,
    pub time: Option<Duration>,
    /// None when the guest never reported it (it died or timed out first).
    pub exit: Option<i32>,
}

pub fn reports(out: &Outcome, suites: &[&Built]) -> Vec<Report> {
    suites
        .iter()
        .map(|b| {
            let name = b.suite.name;
            let start = format!("berth-vm: suite {name} start");
            let end = format!("berth-vm: suite {name} exit ");
            let from = out.lines.iter().position(|(_, l)| *l == start);
            let to = out.lines.iter().position(|(_, l)| l.starts_with(&end));
            // the counts only: the time is measured from the console
            let result = from.and_then(|f| {
                out.lines[f..to.unwrap_or(out.lines.len())]
                    .iter()
                    .rev()
                    .find_map(|(_, l)| l.strip_prefix("test result: "))
                    .map(|r| {
                        r.split(';')
                            .filter(|p| !p.contains("measured") && !p.contains("finished"))
                            .collect::<Vec<_>>()
                            .join(";")
                    })
            });
            let time = from
                .zip(to)
                .map(|(f, t)| out.lines[t].0.saturating_sub(out.lines[f].0));
            let exit = to.and_then(|t| out.lines[t].1[end.len()..].trim().parse().ok());
            Report {
                name,
                result,
                time,
                exit,
            }
        })
        .collect()
}

/// The binary `name` among those built.
pub fn bin<'a>(bins: &'a [(&'static str, PathBuf)], name: &str) -> Result<&'a Path> {
    bins.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| p.as_path())
        .ok_or_else(|| anyhow!("no {name} binary was built"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(i: usize, exe: &str) -> Built {
        Built {
            suite: &SUITES[i],
            exe: PathBuf::from(exe),
        }
    }

    #[test]
    fn script_runs_each_suite_and_keeps_the_first_failure() {
        let (a, b) = (built(0, "/t/kernel-1"), built(2, "/t/it's"));
        let s = script(&[&a, &b], Some("limits"));
        assert!(
            s.contains(
                "suite 'kernel' '/t/kernel-1' '--test-threads=1' '--include-ignored' 'limits'\n"
            ),
            "{s}"
        );
        assert!(
            s.contains("suite 'privileged' '/t/it'\\''s' '--test-threads=2' '--include-ignored' 'limits'\n"),
            "{s}"
        );
        assert!(s.contains("[ $rc -ne 0 ] || rc=$r"), "{s}");
        assert!(s.ends_with("exit $rc\n"), "{s}");
    }

    #[test]
    fn reports_read_counts_time_and_exit_code_per_suite() {
        let at = |s: u64, l: &str| (Duration::from_secs(s), l.to_owned());
        let out = Outcome {
            lines: vec![
                at(10, "berth-vm: suite kernel start"),
                at(40, "test result: ok. 4 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 29.9s"),
                at(41, "berth-vm: suite kernel exit 0"),
                at(41, "berth-vm: suite privileged start"),
                at(50, "test result: FAILED. 24 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 9.0s"),
                at(50, "berth-vm: suite privileged exit 101"),
            ],
            timed_out: false,
            qemu_status: None,
        };
        let (a, b, c) = (built(0, "/k"), built(2, "/p"), built(1, "/c"));
        let r = reports(&out, &[&a, &b, &c]);
        assert_eq!(
            r[0].result.as_deref(),
            Some("ok. 4 passed; 0 failed; 0 ignored; 0 filtered out")
        );
        assert_eq!(r[0].time, Some(Duration::from_secs(31)));
        assert_eq!(r[0].exit, Some(0));
        assert_eq!(r[1].exit, Some(101));
        assert_eq!(
            r[1].result.as_deref(),
            Some("FAILED. 24 passed; 1 failed; 0 ignored; 0 filtered out")
        );
        // never started (the guest died first): nothing is made up
        assert_eq!(
            (r[2].result.as_deref(), r[2].time, r[2].exit),
            (None, None, None)
        );
    }
}
