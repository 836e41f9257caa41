//! Entry points of the fuzz targets (`fuzz/`), also replayed over the corpora by a plain
//! test. Not an API: they may panic, which is what a fuzzer looks for.

use std::collections::{BTreeMap, HashMap};

use crate::shell::{expand_word, expand_words, Lexer};

/// The Dockerfile target: parse, dump, resolve every stage (ARG/ENV scoping and
/// expansion), and expand each line as a shell word with a few variables set.
pub fn dockerfile(data: &[u8]) {
    let Ok(src) = std::str::from_utf8(data) else {
        return;
    };
    let mut env = HashMap::new();
    env.insert("A".to_owned(), "a b".to_owned());
    env.insert("EMPTY".to_owned(), String::new());
    for line in src.lines().take(64) {
        for escape in ['\\', '`'] {
            let _ = expand_word(line, &env, escape);
            let _ = expand_words(line, &env, escape);
            let _ = Lexer::new(escape)
                .skip_unset(true)
                .raw_quotes(true)
                .process(line, &env);
        }
    }
    if let Ok(df) = crate::dockerfile::parse(src) {
        let _ = crate::dockerfile::dump(&df);
        let mut args = BTreeMap::new();
        args.insert("A".to_owned(), "x".to_owned());
        let _ = crate::resolve::resolve(&df, &args, &|_| Vec::new());
    }
    if let Ok(patterns) = crate::ignore::parse_ignore_file(src) {
        let m = crate::ignore::Matcher::new(patterns);
        for p in ["a", "a/b", ".", "x/y/z.txt"] {
            let _ = m.excludes(p);
            let _ = m.may_reinclude_below(p);
        }
    }
}
