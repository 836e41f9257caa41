//! pytest's `-rA` short summary read back into outcomes per test, and the side-by-side
//! summary per test file. Pure functions of text.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Outcome {
    Passed,
    Skipped,
    Failed,
    /// An error in a fixture, setup or teardown (a test can pass and then error).
    Error,
}

impl Outcome {
    fn word(self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Skipped => "skipped",
            Outcome::Failed => "failed",
            Outcome::Error => "error",
        }
    }
}

/// What happened to each test: node ID (or, for skips, which pytest summarises by reason,
/// `FILE:LINE` with a count) → the worst outcome seen.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Outcomes {
    pub tests: BTreeMap<String, Outcome>,
    /// Skips by file, from `SKIPPED [N] FILE:LINE: reason`.
    pub skipped: BTreeMap<String, u32>,
}

/// Read the lines of pytest's short test summary (`-rA`).
pub fn parse(log: &str) -> Outcomes {
    let mut o = Outcomes::default();
    for line in log.lines() {
        let Some((word, rest)) = line.split_once(' ') else {
            continue;
        };
        let outcome = match word {
            "PASSED" | "XPASS" => Outcome::Passed,
            "FAILED" => Outcome::Failed,
            "ERROR" => Outcome::Error,
            "XFAIL" => Outcome::Skipped,
            "SKIPPED" => {
                // SKIPPED [3] tests/integration/x_test.py:123: reason
                if let Some((count, place)) =
                    rest.strip_prefix('[').and_then(|r| r.split_once("] "))
                {
                    let file = place.split(':').next().unwrap_or(place);
                    *o.skipped.entry(file.to_owned()).or_default() += count.parse().unwrap_or(1);
                }
                continue;
            }
            _ => continue,
        };
        // `ID - message`, or `ID reason` after XFAIL and XPASS (these node IDs hold no spaces)
        let id = rest.split(' ').next().unwrap_or(rest);
        if !id.contains("::") {
            continue;
        }
        let e = o.tests.entry(id.to_owned()).or_insert(outcome);
        *e = (*e).max(outcome);
    }
    o
}

fn file_of(id: &str) -> &str {
    id.split("::").next().unwrap_or(id)
}

#[derive(Default, Clone, Copy)]
struct Counts {
    passed: u32,
    failed: u32,
    error: u32,
    skipped: u32,
}

impl Counts {
    fn of(o: &Outcomes, file: &str) -> Counts {
        let mut c = Counts::default();
        for (id, outcome) in &o.tests {
            if file_of(id) == file {
                match outcome {
                    Outcome::Passed => c.passed += 1,
                    Outcome::Failed => c.failed += 1,
                    Outcome::Error => c.error += 1,
                    Outcome::Skipped => c.skipped += 1,
                }
            }
        }
        c.skipped += o.skipped.get(file).copied().unwrap_or(0);
        c
    }

    fn add(&mut self, o: Counts) {
        self.passed += o.passed;
        self.failed += o.failed;
        self.error += o.error;
        self.skipped += o.skipped;
    }

    fn show(self) -> String {
        format!(
            "{}/{}/{}/{}",
            self.passed, self.failed, self.error, self.skipped
        )
    }
}

/// The table: per file, passed/failed/errors/skipped for each daemon, and the first one's
/// passes as a share of the second's; then the tests whose outcome differs.
pub fn summary(files: &[String], results: &[(String, Outcomes)]) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "\ndocker-py {} integration tests, API {}: passed/failed/errors/skipped\n",
        super::VERSION,
        super::API_VERSION
    );
    let _ = write!(s, "{:<44}", "file");
    for (label, _) in results {
        let _ = write!(s, "{label:>18}");
    }
    if results.len() == 2 {
        let _ = write!(s, "{:>14}", "passed ratio");
    }
    s.push('\n');
    let mut totals = vec![Counts::default(); results.len()];
    let mut rows: Vec<(String, Vec<Counts>)> = files
        .iter()
        .map(|f| {
            let counts: Vec<Counts> = results.iter().map(|(_, o)| Counts::of(o, f)).collect();
            (f.rsplit('/').next().unwrap_or(f).to_owned(), counts)
        })
        .collect();
    for (_, counts) in &rows {
        for (t, c) in totals.iter_mut().zip(counts) {
            t.add(*c);
        }
    }
    rows.push(("total".to_owned(), totals));
    for (name, counts) in rows {
        let _ = write!(s, "{name:<44}");
        for c in &counts {
            let _ = write!(s, "{:>18}", c.show());
        }
        if let [a, b] = counts[..] {
            let ratio = if b.passed == 0 {
                "-".to_owned()
            } else {
                format!("{:.0}%", 100.0 * f64::from(a.passed) / f64::from(b.passed))
            };
            let _ = write!(s, "{ratio:>14}");
        }
        s.push('\n');
    }
    if let [(a_label, a), (b_label, b)] = results {
        let mut differ = Vec::new();
        for (id, bo) in &b.tests {
            let ao = a.tests.get(id).copied();
            if ao != Some(*bo) {
                let ao = ao.map_or("not run", Outcome::word);
                differ.push(format!("  {id}: {a_label} {ao}, {b_label} {}", bo.word()));
            }
        }
        for (id, ao) in &a.tests {
            if !b.tests.contains_key(id) {
                differ.push(format!(
                    "  {id}: {a_label} {}, {b_label} not run",
                    ao.word()
                ));
            }
        }
        if !differ.is_empty() {
            let _ = write!(
                s,
                "\ntests whose outcome differs ({}):\n{}\n",
                differ.len(),
                differ.join("\n")
            );
        }
    }
    s
}

/// `OUTCOME NODE-ID` per line, for the list of tests CI requires to pass.
pub fn write_outcomes(o: &Outcomes, path: &Path) -> Result<()> {
    let mut s = String::new();
    for (id, outcome) in &o.tests {
        let _ = writeln!(s, "{} {id}", outcome.word());
    }
    std::fs::write(path, s).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "\
tests/integration/api_exec_test.py ..F.E                                 [100%]
=========================== short test summary info ============================
PASSED tests/integration/api_exec_test.py::ExecTest::test_execute_command
PASSED tests/integration/api_exec_test.py::ExecTest::test_exec_inspect
PASSED tests/integration/api_container_test.py::RestartContainerTest::test_restart
ERROR tests/integration/api_container_test.py::RestartContainerTest::test_restart - docker.errors.APIError: 500
SKIPPED [2] tests/integration/api_container_test.py:1203: Requires API >= 1.42
FAILED tests/integration/api_exec_test.py::ExecTest::test_exec_command_as_user - AssertionError: assert b'' == b'postgres\\n'
XFAIL tests/integration/api_exec_test.py::ExecTest::test_x - reason
XPASS tests/integration/api_exec_test.py::ExecTest::test_y Not supported on most drivers
PASSED tests/integration/api_exec_test.py::ExecTest::test_exec_command_as_user
===== 1 failed, 3 passed, 2 skipped, 1 xfailed, 1 error in 12.34s =====
";

    #[test]
    fn the_worst_outcome_wins_and_skips_count_per_file() {
        let o = parse(LOG);
        let get = |id: &str| o.tests.get(id).copied();
        assert_eq!(
            get("tests/integration/api_exec_test.py::ExecTest::test_execute_command"),
            Some(Outcome::Passed)
        );
        assert_eq!(
            get("tests/integration/api_container_test.py::RestartContainerTest::test_restart"),
            Some(Outcome::Error)
        );
        assert_eq!(
            get("tests/integration/api_exec_test.py::ExecTest::test_exec_command_as_user"),
            Some(Outcome::Failed)
        );
        assert_eq!(
            get("tests/integration/api_exec_test.py::ExecTest::test_x"),
            Some(Outcome::Skipped)
        );
        assert_eq!(
            get("tests/integration/api_exec_test.py::ExecTest::test_y"),
            Some(Outcome::Passed)
        );
        assert_eq!(o.tests.len(), 6);
        assert_eq!(
            o.skipped.get("tests/integration/api_container_test.py"),
            Some(&2)
        );
    }

    #[test]
    fn summary_compares_per_file_and_lists_differences() {
        let a = parse(LOG);
        let b = parse(&LOG.replace("FAILED", "PASSED").replace("ERROR", "PASSED"));
        let files = [
            "tests/integration/api_exec_test.py".to_owned(),
            "tests/integration/api_container_test.py".to_owned(),
        ];
        let s = summary(&files, &[("berth".into(), a), ("dockerd 20.10".into(), b)]);
        let row = |name: &str| {
            s.lines()
                .find(|l| l.starts_with(name))
                .map(|l| l.split_whitespace().collect::<Vec<_>>())
                .unwrap_or_default()
        };
        assert_eq!(
            row("api_exec_test.py"),
            ["api_exec_test.py", "3/1/0/1", "4/0/0/1", "75%"]
        );
        assert_eq!(
            row("api_container_test.py"),
            ["api_container_test.py", "0/0/1/2", "1/0/0/2", "0%"]
        );
        assert_eq!(row("total"), ["total", "3/1/1/3", "5/0/0/3", "60%"]);
        assert!(s.contains("tests whose outcome differs (2)"), "{s}");
        assert!(
            s.contains("test_exec_command_as_user: berth failed, dockerd 20.10 passed"),
            "{s}"
        );
    }
}
