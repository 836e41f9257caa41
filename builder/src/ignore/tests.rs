use expect_test::expect;

use super::*;

fn pattern(text: &str) -> Pattern {
    match Pattern::parse(text, 1) {
        Ok(Some(p)) => p,
        other => panic!("pattern {text:?}: {other:?}"),
    }
}

fn matcher(patterns: &[&str]) -> Matcher {
    let text = patterns.join("\n");
    match parse_ignore_file(&text) {
        Ok(parsed) => Matcher::new(parsed),
        Err(e) => panic!("patterns {patterns:?}: {e}"),
    }
}

/// How a path fares against a single pattern in patternmatcher's `TestMatches`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// The pattern matches the path itself.
    Exact,
    /// The pattern matches only a parent directory of the path.
    Parent,
    No,
}
use Expect::{Exact, No, Parent};

/// patternmatcher's `TestMatches` table (the Unix rows).
const MATCHES: &[(&str, &str, Expect)] = &[
    ("**", "file", Exact),
    ("**", "file/", Exact),
    ("**/", "file", Exact),
    ("**/", "file/", Exact),
    ("**", "/", Exact),
    ("**/", "/", Exact),
    ("**", "dir/file", Exact),
    ("**/", "dir/file", Exact),
    ("**", "dir/file/", Exact),
    ("**/", "dir/file/", Exact),
    ("**/**", "dir/file", Exact),
    ("**/**", "dir/file/", Exact),
    ("dir/**", "dir/file", Exact),
    ("dir/**", "dir/file/", Exact),
    ("dir/**", "dir/dir2/file", Exact),
    ("dir/**", "dir/dir2/file/", Exact),
    ("**/dir", "dir", Exact),
    ("**/dir", "dir/file", Parent),
    ("**/dir2/*", "dir/dir2/file", Exact),
    ("**/dir2/*", "dir/dir2/file/", Parent),
    ("**/dir2/**", "dir/dir2/dir3/file", Exact),
    ("**/dir2/**", "dir/dir2/dir3/file/", Exact),
    ("**file", "file", Exact),
    ("**file", "dir/file", Exact),
    ("**/file", "dir/file", Exact),
    ("**file", "dir/dir/file", Exact),
    ("**/file", "dir/dir/file", Exact),
    ("**/file*", "dir/dir/file", Exact),
    ("**/file*", "dir/dir/file.txt", Exact),
    ("**/file*txt", "dir/dir/file.txt", Exact),
    ("**/file*.txt", "dir/dir/file.txt", Exact),
    ("**/file*.txt*", "dir/dir/file.txt", Exact),
    ("**/**/*.txt", "dir/dir/file.txt", Exact),
    ("**/**/*.txt2", "dir/dir/file.txt", No),
    ("**/*.txt", "file.txt", Exact),
    ("**/**/*.txt", "file.txt", Exact),
    ("a**/*.txt", "a/file.txt", Exact),
    ("a**/*.txt", "a/dir/file.txt", Exact),
    ("a**/*.txt", "a/dir/dir/file.txt", Exact),
    ("a/*.txt", "a/dir/file.txt", No),
    ("a/*.txt", "a/file.txt", Exact),
    ("a/*.txt**", "a/file.txt", Exact),
    ("a[b-d]e", "ae", No),
    ("a[b-d]e", "ace", Exact),
    ("a[b-d]e", "aae", No),
    ("a[^b-d]e", "aze", Exact),
    (".*", ".foo", Exact),
    (".*", "foo", No),
    ("abc.def", "abcdef", No),
    ("abc.def", "abc.def", Exact),
    ("abc.def", "abcZdef", No),
    ("abc?def", "abcZdef", Exact),
    ("abc?def", "abcdef", No),
    ("**/foo/bar", "foo/bar", Exact),
    ("**/foo/bar", "dir/foo/bar", Exact),
    ("**/foo/bar", "dir/dir2/foo/bar", Exact),
    ("abc/**", "abc", No),
    ("abc/**", "abc/def", Exact),
    ("abc/**", "abc/def/ghi", Exact),
    ("**/.foo", ".foo", Exact),
    ("**/.foo", "bar.foo", No),
    ("a(b)c/def", "a(b)c/def", Exact),
    ("a(b)c/def", "a(b)c/xyz", No),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", Exact),
    (
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        Exact,
    ),
    (
        "dist/*.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        Exact,
    ),
    (r"a\\", r"a\", Exact),
    (r"a\*b", "a*b", Exact),
    // Quirks of the kinds patternmatcher picks, kept on purpose.
    ("**file", "dir/myfile", Exact),
    ("**/dir", "mydir", No),
    ("dir**", "dir2/x", Exact),
    ("/abs/path", "abs/path", Exact),
    ("./rel/", "rel/x", Parent),
];

#[test]
fn patternmatcher_matches_table() {
    for &(text, path, expect) in MATCHES {
        let p = pattern(text);
        assert_eq!(
            p.matches(path),
            expect == Exact,
            "exact: {text:?} on {path:?}"
        );
        let m = Matcher::new(vec![p]);
        assert_eq!(
            m.excludes(path),
            expect != No,
            "excludes: {text:?} on {path:?}"
        );
    }
}

#[test]
fn patternmatcher_multi_pattern_table() {
    let whl = "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl";
    let cases: &[(&[&str], &str, bool)] = &[
        (&["**", "!util/docker/web"], "util/docker/web/foo", false),
        (
            &["**", "!util/docker/web", "util/docker/web/foo"],
            "util/docker/web/foo",
            true,
        ),
        (&["**", &format!("!{whl}")], whl, false),
        (&["**", "!dist/*.whl"], whl, false),
        // patternmatcher's single-case tests.
        (&["*"], "fileutils.go", true),
        (&["*.go"], "fileutils.go", true),
        (&["!fileutils.go", "*.go"], "fileutils.go", true),
        (&["*.go", "!fileutils.go"], "fileutils.go", false),
        (&["docs", "!docs/README.md"], "docs/README.md", false),
        (&["docs/", "!docs/README.md"], "docs/README.md", false),
        (&["docs/*", "!docs/README.md"], "docs/README.md", false),
        (&["*.go"], ".", false),
        (&[], "any/path/there", false),
    ];
    for &(patterns, path, excluded) in cases {
        assert_eq!(
            matcher(patterns).excludes(path),
            excluded,
            "{patterns:?} on {path:?}"
        );
    }
}

/// Go's `filepath.Match` table as patternmatcher runs it (Unix rows): `Some(matches)`, or
/// `None` where the pattern is malformed.
const GO_MATCH: &[(&str, &str, Option<bool>)] = &[
    ("abc", "abc", Some(true)),
    ("*", "abc", Some(true)),
    ("*c", "abc", Some(true)),
    ("a*", "a", Some(true)),
    ("a*", "abc", Some(true)),
    ("a*", "ab/c", Some(true)),
    ("a*/b", "abc/b", Some(true)),
    ("a*/b", "a/c/b", Some(false)),
    ("a*b*c*d*e*/f", "axbxcxdxe/f", Some(true)),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Some(true)),
    ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Some(false)),
    ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Some(false)),
    ("a*b?c*x", "abxbbxdbxebxczzx", Some(true)),
    ("a*b?c*x", "abxbbxdbxebxczzy", Some(false)),
    ("ab[c]", "abc", Some(true)),
    ("ab[b-d]", "abc", Some(true)),
    ("ab[e-g]", "abc", Some(false)),
    ("ab[^c]", "abc", Some(false)),
    ("ab[^b-d]", "abc", Some(false)),
    ("ab[^e-g]", "abc", Some(true)),
    (r"a\*b", "a*b", Some(true)),
    (r"a\*b", "ab", Some(false)),
    ("a?b", "a☺b", Some(true)),
    ("a[^a]b", "a☺b", Some(true)),
    ("a???b", "a☺b", Some(false)),
    ("a[^a][^a][^a]b", "a☺b", Some(false)),
    ("[a-ζ]*", "α", Some(true)),
    ("*[a-ζ]", "A", Some(false)),
    ("a?b", "a/b", Some(false)),
    ("a*b", "a/b", Some(false)),
    (r"[\]a]", "]", Some(true)),
    (r"[\-]", "-", Some(true)),
    (r"[x\-]", "x", Some(true)),
    (r"[x\-]", "-", Some(true)),
    (r"[x\-]", "z", Some(false)),
    (r"[\-x]", "x", Some(true)),
    (r"[\-x]", "-", Some(true)),
    (r"[\-x]", "a", Some(false)),
    ("[]a]", "]", None),
    ("[-]", "-", None),
    ("[x-]", "x", None),
    ("[x-]", "-", None),
    ("[x-]", "z", None),
    ("[-x]", "x", None),
    ("[-x]", "-", None),
    ("[-x]", "a", None),
    (r"\", "a", None),
    ("[a-b-c]", "a", None),
    ("[", "a", None),
    ("[^", "a", None),
    ("[^bc", "a", None),
    ("a[", "a", None),
    ("a[", "ab", None),
    ("*x", "xxx", Some(true)),
    // patternmatcher accepts this one and fails when matching (moby/moby#52203).
    ("[Local-Only]/", "x", None),
];

#[test]
fn go_filepath_match_table() {
    for &(text, path, expect) in GO_MATCH {
        match (parse_ignore_file(text), expect) {
            (Ok(patterns), Some(excluded)) => {
                let m = Matcher::new(patterns);
                assert_eq!(m.excludes(path), excluded, "{text:?} on {path:?}");
            }
            (Err(IgnoreError::InvalidPattern { pattern, .. }), None) => {
                assert_eq!(pattern, text)
            }
            (got, _) => panic!("{text:?}: got {got:?}, want {expect:?}"),
        }
    }
}

fn describe(p: &Pattern) -> String {
    match &p.kind {
        Kind::Exact => "exact".to_string(),
        Kind::Prefix(s) => format!("prefix {s:?}"),
        Kind::Suffix(s) => format!("suffix {s:?}"),
        Kind::Regex(re) => format!("regex {re}"),
    }
}

/// patternmatcher's `TestCompile` patterns: the kind each one gets (and its regex).
#[test]
fn compiled_kinds() {
    let patterns = [
        "*",
        "file*",
        "*file",
        "a*/b",
        "**",
        "**/**",
        "dir/**",
        "**/dir",
        "**/dir2/*",
        "**/dir2/**",
        "**file",
        "**/file*txt",
        "**/**/*.txt",
        "a[b-d]e",
        ".*",
        "abc.def",
        "abc?def",
        "**/foo/bar",
        "a(b)c/def",
        "a.|)$(}+{bc",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        r"a\*b",
        r"[^\]&~\-^[]x",
    ];
    let out: String = patterns
        .iter()
        .map(|t| format!("{t} => {}\n", describe(&pattern(t))))
        .collect();
    expect![[r#"
        * => regex ^[^/]*$
        file* => regex ^file[^/]*$
        *file => regex ^[^/]*file$
        a*/b => regex ^a[^/]*/b$
        ** => suffix ""
        **/** => regex ^(.*/)?.*$
        dir/** => prefix "dir/"
        **/dir => suffix "/dir"
        **/dir2/* => regex ^(.*/)?dir2/[^/]*$
        **/dir2/** => regex ^(.*/)?dir2/.*$
        **file => suffix "file"
        **/file*txt => regex ^(.*/)?file[^/]*txt$
        **/**/*.txt => regex ^(.*/)?(.*/)?[^/]*\.txt$
        a[b-d]e => regex ^a[b-d]e$
        .* => regex ^\.[^/]*$
        abc.def => exact
        abc?def => regex ^abc[^/]def$
        **/foo/bar => suffix "/foo/bar"
        a(b)c/def => exact
        a.|)$(}+{bc => exact
        dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl => exact
        a\*b => regex ^a\*b$
        [^\]&~\-^[]x => regex ^[^\]\&\~\-\^\[]x$
    "#]]
    .assert_eq(&out);
}

#[test]
fn parse_file() {
    let text = "\u{feff}test1\n/test2\n/a/file/here\n\n  lastfile  \r\n# this is a comment\n \
                # not a comment\n! /inverted/abs/path\n./dot/./slash/\n.\n!./\nfoo/../bar\n";
    let patterns = parse_ignore_file(text).expect("parses");
    let shown: Vec<String> = patterns.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "test1",
            "test2",
            "a/file/here",
            "lastfile",
            "# not a comment",
            "!inverted/abs/path",
            "dot/slash",
            "bar"
        ]
    );
    assert!(patterns[5].is_exclusion());
    assert_eq!(patterns[5].as_str(), "inverted/abs/path");
    assert!(!patterns[0].is_exclusion());
}

#[test]
fn leading_slash_and_dot_are_the_same_pattern() {
    for text in ["foo", "/foo", "./foo", "foo/", "/foo/", "foo//"] {
        let m = matcher(&[text]);
        assert!(m.excludes("foo"), "{text}");
        assert!(m.excludes("foo/bar"), "{text}");
        assert!(!m.excludes("foobar"), "{text}");
        assert!(!m.excludes("x/foo"), "{text}");
    }
}

#[test]
fn bare_exclamation_is_an_error() {
    for text in ["a\n!\n", "a\nb\n!   \n"] {
        let err = parse_ignore_file(text).expect_err(text);
        assert!(matches!(err, IgnoreError::BareExclusion { .. }), "{err}");
    }
    expect![[r#"line 2: illegal exclusion pattern "!""#]]
        .assert_eq(&parse_ignore_file("a\n!").unwrap_err().to_string());
    expect![[r#"line 3: invalid pattern "!src/[": unclosed character class"#]]
        .assert_eq(&parse_ignore_file("a\n\n!src/[").unwrap_err().to_string());
}

#[test]
fn last_match_wins() {
    let m = matcher(&["*.md", "!README*.md", "README-secret.md"]);
    assert!(m.has_exclusions());
    assert!(m.excludes("CHANGES.md"));
    assert!(!m.excludes("README.md"));
    assert!(!m.excludes("README-dev.md"));
    assert!(m.excludes("README-secret.md"));
    // `*` does not cross `/`, and the patterns only see the top level.
    assert!(!m.excludes("docs/CHANGES.md"));
    assert!(!matcher(&["*.md"]).has_exclusions());
}

#[test]
fn excluded_directories_and_reinclusion() {
    let m = matcher(&[
        "node_modules",
        "build",
        "!build/keep/**",
        "**/*.log",
        "!important.log",
    ]);
    assert!(m.excludes("node_modules"));
    assert!(m.excludes("node_modules/a/b.js"));
    assert!(m.excludes("build/out.o"));
    assert!(!m.excludes("build/keep/x"));
    assert!(m.excludes("a/b/c.log"));
    assert!(!m.excludes("important.log"));
    assert!(m.excludes("sub/important.log"));
    // A walker must look inside `build` but may skip `node_modules`.
    assert!(m.may_reinclude_below("build"));
    assert!(!m.may_reinclude_below("node_modules"));
    // `!**/x` could reach anywhere.
    assert!(matcher(&["a", "!**/x"]).may_reinclude_below("a"));
    assert!(!matcher(&["a"]).may_reinclude_below("a"));
}

#[test]
fn clean_is_go_path_clean() {
    for (input, want) in [
        ("", "."),
        (".", "."),
        ("./", "."),
        ("a/./b/", "a/b"),
        ("a//b", "a/b"),
        ("a/../..", ".."),
        ("../a/../../b", "../../b"),
        ("/..", "/"),
        ("/../a", "/a"),
        ("/", "/"),
    ] {
        assert_eq!(clean(input), want, "{input:?}");
    }
}
