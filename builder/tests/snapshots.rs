//! Snapshot tests over our own Dockerfiles in `tests/dockerfiles/`: for each file, Docker's
//! dump, the typed parse and the resolved stages (with `<name>.build-args` when present).
//! Refresh with `UPDATE_EXPECT=1 cargo test -p builder --test snapshots`.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::Path;

use builder::dockerfile;
use builder::resolve::{resolve, Vars};
use expect_test::{expect_file, ExpectFile};

fn dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dockerfiles"))
}

/// A fake registry: every image has a PATH, so inheritance from images shows.
fn image_env(image: &str) -> Vars {
    vec![(
        "PATH".to_string(),
        format!("/usr/local/bin:/usr/bin:/bin ({image})"),
    )]
}

fn render(name: &str) -> String {
    let src =
        std::fs::read_to_string(dir().join(format!("{name}.Dockerfile"))).expect("read Dockerfile");
    let mut build_args = BTreeMap::new();
    if let Ok(text) = std::fs::read_to_string(dir().join(format!("{name}.build-args"))) {
        for line in text.lines().filter(|l| !l.is_empty()) {
            let (k, v) = line.split_once('=').expect("K=V line");
            build_args.insert(k.to_string(), v.to_string());
        }
    }
    let mut out = String::new();
    let df = match dockerfile::parse(&src) {
        Ok(df) => df,
        Err(e) => {
            let _ = writeln!(out, "# parse error\n{e}");
            if let Ok(ast) = dockerfile::parse_ast(&src) {
                let _ = write!(out, "# dump\n{}", dockerfile::dump_ast(&ast));
            }
            return out;
        }
    };
    let _ = write!(out, "# dump\n{}", dockerfile::dump(&df));
    let _ = writeln!(out, "# directives\n{:?}", df.directives);
    out.push_str("# warnings\n");
    for w in &df.warnings {
        let _ = writeln!(out, "line {}: {}", w.line, w.message);
    }
    out.push_str("# parse\n");
    for m in &df.meta_args {
        let _ = writeln!(out, "meta L{}: {:?}", m.line, m.value);
    }
    for (i, stage) in df.stages.iter().enumerate() {
        let _ = writeln!(
            out,
            "stage {i} L{}: {:?}",
            stage.from.line, stage.from.value
        );
        for step in &stage.instructions {
            let _ = writeln!(out, "  L{}-{}: {:?}", step.line, step.end_line, step.value);
        }
    }
    let _ = writeln!(out, "# resolve with {build_args:?}");
    match resolve(&df, &build_args, &image_env) {
        Err(e) => {
            let _ = writeln!(out, "error: {e}");
        }
        Ok(r) => {
            let _ = writeln!(out, "meta args: {:?}", r.meta_args);
            let _ = writeln!(out, "unused build args: {:?}", r.unused_build_args);
            for (i, stage) in r.stages.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "stage {i} {:?} L{}: base={:?} platform={:?}",
                    stage.name, stage.line, stage.base, stage.platform
                );
                for step in &stage.steps {
                    let _ = writeln!(out, "  L{}: {:?}", step.line, step.instruction);
                    let _ = writeln!(out, "      env={:?}", step.env);
                    let _ = writeln!(out, "      args={:?}", step.args);
                }
            }
        }
    }
    out
}

fn check(name: &str, expect: ExpectFile) {
    expect.assert_eq(&render(name));
}

macro_rules! snapshots {
    ($($test:ident => $name:literal,)*) => {
        $(
            #[test]
            fn $test() {
                check($name, expect_file![concat!("dockerfiles/", $name, ".snap")]);
            }
        )*

        /// Every Dockerfile in the folder has a test above: none is silently skipped.
        #[test]
        fn every_dockerfile_is_snapshotted() {
            let known = [$($name),*];
            let mut missing = Vec::new();
            for entry in std::fs::read_dir(dir()).expect("list tests/dockerfiles") {
                let path = entry.expect("entry").path();
                if path.extension().is_some_and(|e| e == "Dockerfile") {
                    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned());
                    if let Some(stem) = stem.filter(|s| !known.contains(&s.as_str())) {
                        missing.push(stem);
                    }
                }
            }
            assert!(missing.is_empty(), "Dockerfiles without a snapshot test: {missing:?}");
        }
    };
}

snapshots! {
    all_instructions => "all-instructions",
    args => "args",
    bom_crlf => "bom-crlf",
    continuations => "continuations",
    directives => "directives",
    escape_backtick => "escape-backtick",
    heredocs => "heredocs",
    json_forms => "json-forms",
}
