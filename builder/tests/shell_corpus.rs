//! BuildKit's own word-expansion cases (`envVarTest`, `wordsTest`) run against our lexer.

mod common;

use builder::shell::{expand_word, Lexer};

fn env(pairs: &[&str]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (p.to_string(), String::new()),
        })
        .collect()
}

#[test]
fn env_var_test() {
    let path = common::corpus().join("envVarTest");
    let text = std::fs::read_to_string(&path).expect("read envVarTest");
    let env = env(&["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="]);
    let mut total = 0;
    let mut failures = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.trim().split('|').collect();
        let [platform, input, expected] = fields[..] else {
            failures.push(format!("line {}: malformed case {line:?}", n + 1));
            continue;
        };
        let (platform, input, expected) = (platform.trim(), input.trim(), expected.trim());
        if platform == "W" {
            continue;
        }
        total += 1;
        let got = expand_word(input, &env, '\\');
        let ok = match (&got, expected) {
            (Err(_), "error") => true,
            (Ok(w), e) => w == e,
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "envVarTest line {}: {input:?}: expected {expected:?}, got {got:?}",
                n + 1
            ));
        }
    }
    common::report("envVarTest", total, &failures);
}

/// One pass over `wordsTest` with `lex`; returns (cases, `input => words` lines, failures).
fn words_pass(lex: Lexer, check: bool) -> (usize, String, Vec<String>) {
    let path = common::corpus().join("wordsTest");
    let text = std::fs::read_to_string(&path).expect("read wordsTest");
    let mut env: Vec<(String, String)> = Vec::new();
    let (mut total, mut table, mut failures) = (0, String::new(), Vec::new());
    for (n, line) in text.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            env.extend(self::env(&[rest.trim_start_matches(' ')]));
            continue;
        }
        let Some((input, expected)) = line.split_once('|') else {
            failures.push(format!("wordsTest line {}: no '|' in {line:?}", n + 1));
            continue;
        };
        let input = input.trim();
        // Only leading spaces are trimmed: trailing ones are part of the last word.
        let expected: Vec<&str> = expected.trim_start_matches(' ').split(',').collect();
        total += 1;
        let got = match lex.process(input, &env) {
            Ok(e) => e.words,
            Err(_) => vec!["error".to_string()],
        };
        table.push_str(&format!("{input} => {got:?}\n"));
        if check && got != expected {
            failures.push(format!(
                "wordsTest line {}: {input:?}: expected {expected:?}, got {got:?}",
                n + 1
            ));
        }
    }
    (total, table, failures)
}

#[test]
fn words_test_normal() {
    let (total, _, failures) = words_pass(Lexer::new('\\'), true);
    common::report("wordsTest", total, &failures);
}

/// BuildKit's harness also loops over a second mode (quotes kept, unset variables left as
/// written) but reads the already-exhausted file again, so no expectation exists for it;
/// the corpus' expected words only hold for the normal mode. We pin our output instead.
#[test]
fn words_test_raw_quotes_skip_unset() {
    let lex = Lexer::new('\\').raw_quotes(true).skip_unset(true);
    let (total, table, failures) = words_pass(lex, false);
    assert!(failures.is_empty(), "{failures:?}");
    assert!(total > 0);
    expect_test::expect_file!["snapshots/words_raw_mode.txt"].assert_eq(&table);
}
