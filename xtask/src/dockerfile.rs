//! `cargo xtask dockerfile ...`: poke at the builder's Dockerfile parser by hand.
//!
//! `dump PATH` prints Docker's parse-tree dump (the format of BuildKit's parser goldens);
//! `expand [--env K=V]... WORD` prints one word expanded the way a Dockerfile would.

use anyhow::{bail, Context};

const USAGE: &str = "usage: cargo xtask dockerfile dump PATH\n       \
                     cargo xtask dockerfile expand [--env K=V]... WORD";

pub fn run(args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        Some("dump") => dump(&args[1..]),
        Some("expand") => expand(&args[1..]),
        Some(other) => bail!("unknown dockerfile task {other:?}\n{USAGE}"),
        None => bail!("{USAGE}"),
    }
}

fn dump(args: &[String]) -> anyhow::Result<()> {
    let [path] = args else {
        bail!("{USAGE}");
    };
    let src = std::fs::read_to_string(path).with_context(|| format!("reading {path}"))?;
    let ast = builder::dockerfile::parse_ast(&src).with_context(|| format!("parsing {path}"))?;
    for w in &ast.warnings {
        eprintln!("warning: line {}: {}", w.line, w.message);
    }
    print!("{}", builder::dockerfile::dump_ast(&ast));
    Ok(())
}

fn expand(args: &[String]) -> anyhow::Result<()> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut word = None;
    let mut rest = args.iter();
    while let Some(arg) = rest.next() {
        let pair = if arg == "--env" {
            Some(rest.next().context("--env needs K=V")?.as_str())
        } else {
            arg.strip_prefix("--env=")
        };
        match pair {
            Some(kv) => {
                let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                env.push((k.to_string(), v.to_string()));
            }
            None if word.is_none() => word = Some(arg.as_str()),
            None => bail!("more than one WORD given\n{USAGE}"),
        }
    }
    let word = word.context(USAGE)?;
    let expanded = builder::shell::expand_word(word, &env, '\\')
        .with_context(|| format!("expanding {word:?}"))?;
    println!("{expanded}");
    Ok(())
}
