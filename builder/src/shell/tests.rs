//! Edge cases of expansion that the BuildKit corpus does not pin down.

use super::*;
use expect_test::expect;

fn env() -> Vec<(String, String)> {
    [
        ("FOO", "xxyy"),
        ("EMPTY", ""),
        ("SP", " a  b "),
        ("P", "/tmp/foo.txt"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn word(w: &str) -> String {
    match expand_word(w, &env(), '\\') {
        Ok(s) => s,
        Err(e) => format!("error: {e}"),
    }
}

fn words(w: &str) -> String {
    match expand_words(w, &env(), '\\') {
        Ok(v) => format!("{v:?}"),
        Err(e) => format!("error: {e}"),
    }
}

#[test]
fn modifiers() {
    assert_eq!(word("${FOO-a}${EMPTY-b}${NONE-c}"), "xxyyc");
    assert_eq!(word("${FOO:-a}${EMPTY:-b}${NONE:-c}"), "xxyybc");
    assert_eq!(word("${FOO+a}${EMPTY+b}${NONE+c}"), "ab");
    assert_eq!(word("${FOO:+a}${EMPTY:+b}${NONE:+c}"), "a");
    assert_eq!(word("${FOO?no}${EMPTY?no}"), "xxyy");
    assert_eq!(word("${FOO:?no}"), "xxyy");
}

#[test]
fn mandatory_messages() {
    expect![[r#"error: column 1: NONE: is not allowed to be unset"#]].assert_eq(&word("${NONE?}"));
    expect![[r#"error: column 3: EMPTY: is not allowed to be empty"#]]
        .assert_eq(&word("ab${EMPTY:?}"));
    expect![[r#"error: column 1: NONE: set it with --build-arg xxyy"#]]
        .assert_eq(&word("${NONE:?set it with --build-arg $FOO}"));
}

#[test]
fn patterns() {
    assert_eq!(word("${FOO#x}"), "xyy");
    assert_eq!(word("${FOO##*x}"), "yy");
    assert_eq!(word("${FOO%y}"), "xxy");
    assert_eq!(word("${FOO%%y*}"), "xx");
    assert_eq!(word("${FOO#}"), "xxyy");
    assert_eq!(word("${P/\\//:}"), ":tmp/foo.txt");
    assert_eq!(word("${P//\\//\\/}"), "\\/tmp\\/foo.txt");
    assert_eq!(word("${P/.txt/.md}"), "/tmp/foo.md");
    assert_eq!(word("${NONE/a/b}"), "");
    expect![[r#"error: column 1: invalid pattern "\\x": cannot escape 'x'"#]]
        .assert_eq(&word("${FOO#\\x}"));
    expect![[r#"error: column 1: missing '/' after the pattern of '${name/pattern/replacement}'"#]]
        .assert_eq(&word("${FOO//ww}"));
}

#[test]
fn syntax_errors() {
    expect![[r#"error: column 3: missing '}' to close '${'"#]].assert_eq(&word("ab${FOO"));
    expect![[r#"error: column 1: missing '}' to close '${'"#]].assert_eq(&word("${FOO:-x"));
    expect![[r#"error: column 1: bad substitution, expected a variable name after '${'"#]]
        .assert_eq(&word("${}"));
    expect![[r#"error: column 1: unsupported modifier ":=" in substitution, expected one of :- - :+ + :? ? # ## % %% / //"#]]
        .assert_eq(&word("${FOO:=x}"));
    expect![[r#"error: column 4: unterminated single quote, expected a closing '"#]]
        .assert_eq(&word("ab 'c"));
    expect![[r#"error: column 1: unterminated double quote, expected a closing ""#]]
        .assert_eq(&word("\"ab"));
    expect![[r#"error: column 8: unterminated double quote, expected a closing ""#]]
        .assert_eq(&word("${FOO:-\"x}"));
}

#[test]
fn escapes_and_quotes() {
    assert_eq!(word(r"\$FOO"), "$FOO");
    assert_eq!(word(r#""\$FOO""#), "$FOO");
    assert_eq!(word(r#""a\tb""#), r"a\tb");
    assert_eq!(word(r"a\tb"), "atb");
    assert_eq!(word(r"'$FOO\'"), r"$FOO\");
    assert_eq!(word(r"trailing\"), "trailing");
    assert_eq!(word("$"), "$");
    assert_eq!(word("a$"), "a$");
    assert_eq!(word("$1$@$#x"), "x");
}

#[test]
fn backtick_escape() {
    let e = env();
    assert_eq!(expand_word("`$FOO", &e, '`').unwrap(), "$FOO");
    assert_eq!(
        expand_word(r"C:\dir\$FOO", &e, '`').unwrap(),
        r"C:\dir\xxyy"
    );
    assert_eq!(expand_word(r#""a`"b""#, &e, '`').unwrap(), "a\"b");
    assert_eq!(expand_words("a` b c", &e, '`').unwrap(), ["a b", "c"]);
}

#[test]
fn splitting() {
    expect![[r#"["a", "b"]"#]].assert_eq(&words("$SP"));
    expect![[r#"[" a  b "]"#]].assert_eq(&words("\"$SP\""));
    expect![[r#"["x", "a", "b", "y"]"#]].assert_eq(&words("x${SP}y"));
    expect![[r#"[]"#]].assert_eq(&words("\"\""));
    expect![[r#"["a b", "c"]"#]].assert_eq(&words(r"a\ b c"));
}

#[test]
fn raw_modes() {
    let e = env();
    let lex = Lexer::new('\\').raw_quotes(true).skip_unset(true);
    let out = lex
        .process(r#"'a'"$FOO" $NONE ${NONE:-x} ${NONE}"#, &e)
        .unwrap();
    assert_eq!(out.word, r#"'a'"xxyy" $NONE ${NONE:-x} ${NONE}"#);
    let raw = Lexer::new('\\').raw_escapes(true).raw_quotes(true);
    assert_eq!(
        raw.process(r#"a\ b "c\"d""#, &e).unwrap().word,
        r#"a\ b "c\"d""#
    );
}

#[test]
fn never_panics_on_odd_input() {
    let samples = [
        "${",
        "${:",
        "${a:",
        "${a:-",
        "${a/",
        "${a//",
        "${a/b",
        "${a#",
        "$'",
        "\"$",
        "\\",
        "'",
        "${a:-${b:-${c",
        "${!}",
        "${@:-\u{1F600}}",
        "\u{0}$\u{0}",
    ];
    for s in samples {
        let _ = expand_word(s, &env(), '\\');
        let _ = expand_words(s, &env(), '`');
    }
}
