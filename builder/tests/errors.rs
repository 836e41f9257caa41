//! Every parse error names its line and column and says what was expected.
//! Refresh with `UPDATE_EXPECT=1 cargo test -p builder --test errors`.

use builder::dockerfile::parse;
use expect_test::expect;

/// Parses `src` and shows the error (or that there was none).
fn err(src: &str) -> String {
    match parse(src) {
        Ok(_) => "accepted".to_string(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn file_level() {
    expect!["line 1, column 1: file with no instructions, expected at least a FROM"]
        .assert_eq(&err(""));
    expect!["line 3, column 1: file with no instructions, expected at least a FROM"]
        .assert_eq(&err("# only\n# comments\n\n"));
    expect!["line 2, column 1: only one escape parser directive can be used"]
        .assert_eq(&err("# escape=`\n# escape=\\\nFROM a\n"));
    expect![[r#"line 1, column 1: invalid escape token "x", expected ` or \"#]]
        .assert_eq(&err("# escape=x\nFROM a\n"));
    expect!["line 1, column 1: RUN is not allowed before the first FROM, expected FROM or ARG"]
        .assert_eq(&err("RUN true\nFROM a\n"));
}

#[test]
fn from_lines() {
    expect!["line 3, column 6: FROM requires an image name"].assert_eq(&err("ARG A\n\nFROM\n"));
    expect![[
        r#"line 1, column 6: FROM expects IMAGE or IMAGE AS NAME, found 2 words: ["a", "b"]"#
    ]]
    .assert_eq(&err("FROM a b\n"));
    expect![[r#"line 1, column 6: invalid stage name "1st", expected a letter followed by letters, digits, '-', '_' or '.'"#]]
        .assert_eq(&err("FROM a AS 1st\n"));
    expect![[r#"line 2, column 6: duplicate stage name "x""#]]
        .assert_eq(&err("FROM a AS x\nFROM b AS X\n"));
    expect![[
        r#"line 1, column 6: unknown flag "--plaform=linux" for FROM, expected one of: --platform"#
    ]]
    .assert_eq(&err("FROM --plaform=linux a\n"));
    expect![[r#"line 1, column 6: invalid value "" for --platform: expected --NAME=VALUE"#]]
        .assert_eq(&err("FROM --platform a\n"));
}

#[test]
fn instruction_arguments() {
    expect!["line 3, column 5: ENV must have two arguments, expected a name and a value"]
        .assert_eq(&err("FROM busybox\n\nENV PATH\n"));
    expect![[r#"line 2, column 11: can't find = in "b", LABEL expects name=value"#]]
        .assert_eq(&err("FROM a\nLABEL a=1 b\n"));
    expect!["line 2, column 5: RUN requires a command"].assert_eq(&err("FROM a\nRUN\n"));
    expect!["line 2, column 6: COPY requires at least two arguments: one or more sources and a destination"]
        .assert_eq(&err("FROM a\nCOPY onlyone\n"));
    expect!["line 2, column 9: WORKDIR requires a path"].assert_eq(&err("FROM a\nWORKDIR\n"));
    expect!["line 1, column 5: ARG requires at least one name"].assert_eq(&err("ARG\nFROM a\n"));
    expect!["line 2, column 7: SHELL requires the arguments to be in JSON form, e.g. [\"/bin/sh\", \"-c\"]"]
        .assert_eq(&err("FROM a\nSHELL /bin/bash -c\n"));
    expect!["line 2, column 5: CMD: when using JSON array syntax, arrays must be comprised of strings only"]
        .assert_eq(&err("FROM a\nCMD [\"a\", 1]\n"));
    expect!["line 2, column 1: unknown instruction: FORM"].assert_eq(&err("FROM a\nFORM b\n"));
    expect![[r#"line 2, column 6: USER takes no flags, found "--x""#]]
        .assert_eq(&err("FROM a\nUSER --x me\n"));
    expect!["line 2, column 16: duplicate flag --chown"]
        .assert_eq(&err("FROM a\nCOPY --chown=1 --chown=2 a b\n"));
}

#[test]
fn continuations_report_the_physical_position() {
    // The bad word is on the third physical line of the instruction.
    expect![[r#"line 4, column 3: can't find = in "b", LABEL expects name=value"#]]
        .assert_eq(&err("FROM a\nLABEL \\\n  a=1 \\\n  b\n"));
    expect!["line 3, column 8: FROM requires an image name"].assert_eq(&err("\n\n  FROM\n"));
}

#[test]
fn onbuild_and_healthcheck() {
    expect!["line 2, column 9: ONBUILD is not allowed as an ONBUILD trigger"]
        .assert_eq(&err("FROM a\nONBUILD ONBUILD RUN x\n"));
    expect!["line 2, column 9: FROM is not allowed as an ONBUILD trigger"]
        .assert_eq(&err("FROM a\nONBUILD FROM b\n"));
    expect!["line 2, column 9: ONBUILD requires an instruction to run downstream"]
        .assert_eq(&err("FROM a\nONBUILD\n"));
    expect![[r#"line 2, column 13: HEALTHCHECK has unknown type "CONNECT", expected CMD or NONE"#]]
        .assert_eq(&err("FROM a\nHEALTHCHECK CONNECT TCP 7000\n"));
    expect!["line 2, column 13: HEALTHCHECK requires a command after CMD"]
        .assert_eq(&err("FROM a\nHEALTHCHECK CMD\n"));
    expect!["line 2, column 13: HEALTHCHECK NONE takes no arguments"]
        .assert_eq(&err("FROM a\nHEALTHCHECK NONE x\n"));
    expect![[r#"line 2, column 13: invalid value "5" for --interval: expected a duration such as 30s, 1m30s or 500ms"#]]
        .assert_eq(&err("FROM a\nHEALTHCHECK --interval=5 CMD true\n"));
    expect![[
        r#"line 2, column 27: invalid value "-1" for --retries: expected a non-negative integer"#
    ]]
    .assert_eq(&err(
        "FROM a\nHEALTHCHECK --interval=5s --retries=-1 CMD true\n",
    ));
}

#[test]
fn heredocs() {
    expect![[r#"line 2, column 5: unterminated heredoc "EOF", expected a line with only EOF"#]]
        .assert_eq(&err("FROM a\nRUN <<EOF\necho hi\nEO\n"));
    // As in BuildKit, a line whose quotes do not balance opens no heredoc at all: the shell
    // will complain when the step runs.
    expect!["accepted"].assert_eq(&err("FROM a\nRUN <<'EOF\n"));
    expect!["line 2, column 6: COPY requires at least two arguments: one or more sources and a destination"]
        .assert_eq(&err("FROM a\nCOPY <<EOF\nbody\nEOF\n"));
}
