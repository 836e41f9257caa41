//! No input makes the parser, the resolver or the expander panic or overflow the stack.

use std::collections::BTreeMap;

use builder::{dockerfile, resolve, shell};

/// A small deterministic generator (no dependency needed for this).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) as usize
    }
}

const PIECES: &[&str] = &[
    "FROM ",
    "RUN ",
    "COPY ",
    "ADD ",
    "ENV ",
    "LABEL ",
    "ARG ",
    "ONBUILD ",
    "HEALTHCHECK ",
    "CMD ",
    "SHELL ",
    "EXPOSE ",
    "VOLUME ",
    "USER ",
    "WORKDIR ",
    "STOPSIGNAL ",
    "AS ",
    "x",
    "=",
    "$",
    "${",
    "}",
    ":-",
    ":+",
    "?",
    "#",
    "%",
    "/",
    "'",
    "\"",
    "\\",
    "`",
    "[",
    "]",
    ",",
    "<<",
    "<<-",
    "EOF",
    "\n",
    "\r\n",
    "\t",
    " ",
    "--",
    "--from=",
    "--mount=x",
    "# escape=`\n",
    "# syntax=x\n",
    "é",
    "한",
    "\u{0}",
    "\u{feff}",
    "NONE",
    "CMD",
    "0",
    "9",
];

fn random_input(rng: &mut Lcg) -> String {
    let n = rng.next() % 60;
    (0..n).map(|_| PIECES[rng.next() % PIECES.len()]).collect()
}

#[test]
fn random_dockerfiles_never_panic() {
    let mut rng = Lcg(42);
    let mut args = BTreeMap::new();
    args.insert("x".to_string(), "1".to_string());
    for _ in 0..20_000 {
        let src = random_input(&mut rng);
        if let Ok(df) = dockerfile::parse(&src) {
            let _ = dockerfile::dump(&df);
            let _ = resolve::resolve(&df, &args, &|_| Vec::new());
        }
        let _ = dockerfile::parse_ast(&src).map(|a| dockerfile::dump_ast(&a));
        let env = vec![("x".to_string(), "a b".to_string())];
        let _ = shell::expand_words(&src, &env, '\\');
        let _ = shell::expand_word(&src, &env, '`');
    }
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = "${a:-".repeat(50_000) + &"}".repeat(50_000);
    let e = shell::expand_word(&deep, &Vec::<(String, String)>::new(), '\\');
    assert!(
        matches!(e, Err(shell::ExpandError::TooDeep { .. })),
        "{e:?}"
    );
    let onbuilds = format!("FROM a\n{}RUN x\n", "ONBUILD ".repeat(50_000));
    let e = dockerfile::parse(&onbuilds).map(|_| ());
    assert!(e.is_err());
    let long_line = format!("FROM a\nRUN {}\n", "x \\\n".repeat(20_000));
    assert!(dockerfile::parse(&long_line).is_ok());
}
