//! BuildKit's own parser cases: every positive case must dump exactly to its `result`,
//! every negative case must be rejected.

mod common;

use std::path::{Path, PathBuf};

use builder::dockerfile;

fn cases(dir: &Path) -> Vec<PathBuf> {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_dir())
        .collect();
    cases.sort();
    cases
}

fn name(case: &Path) -> String {
    case.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[test]
fn positive_cases_dump_exactly() {
    let dir = common::corpus().join("parser");
    let cases = cases(&dir);
    let mut failures = Vec::new();
    for case in &cases {
        let src = std::fs::read_to_string(case.join("Dockerfile")).expect("read Dockerfile");
        let expected = std::fs::read_to_string(case.join("result")).expect("read result");
        match dockerfile::parse_ast(&src) {
            Ok(ast) => {
                let got = dockerfile::dump_ast(&ast);
                if got != expected {
                    failures.push(format!(
                        "{}: dump differs\n--- expected\n{expected}--- got\n{got}",
                        name(case)
                    ));
                }
            }
            Err(e) => failures.push(format!("{}: rejected: {e}", name(case))),
        }
    }
    common::report("parser", cases.len(), &failures);
}

#[test]
fn negative_cases_are_rejected() {
    let dir = common::corpus().join("parser-negative");
    let cases = cases(&dir);
    let mut failures = Vec::new();
    for case in &cases {
        let src = std::fs::read_to_string(case.join("Dockerfile")).expect("read Dockerfile");
        if dockerfile::parse(&src).is_ok() {
            failures.push(format!("{}: accepted by the typed parse", name(case)));
        }
        if let Ok(ast) = dockerfile::parse_ast(&src) {
            failures.push(format!(
                "{}: accepted, dumped as\n{}",
                name(case),
                dockerfile::dump_ast(&ast)
            ));
        }
    }
    common::report("parser-negative", cases.len(), &failures);
}

/// The typed layer is stricter than Docker's raw parser, as BuildKit's instruction layer is:
/// this pins which golden files it accepts, and why it refuses the others.
#[test]
fn positive_cases_through_the_typed_parse() {
    let dir = common::corpus().join("parser");
    let mut summary = String::new();
    for case in cases(&dir) {
        let src = std::fs::read_to_string(case.join("Dockerfile")).expect("read Dockerfile");
        let verdict = match dockerfile::parse(&src) {
            Ok(df) => format!("ok, {} stage(s)", df.stages.len()),
            Err(e) => format!("rejected: {e}"),
        };
        summary.push_str(&format!("{}: {verdict}\n", name(&case)));
    }
    expect_test::expect_file!["snapshots/corpus_typed.txt"].assert_eq(&summary);
}
