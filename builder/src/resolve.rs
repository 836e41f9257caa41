//! ARG and ENV scoping: given a parsed Dockerfile and the build args, what each stage is
//! built from and what every instruction means once its variables are substituted.
//!
//! Owns Docker's variable rules: meta ARGs (before the first FROM) serve FROM lines only; an
//! ARG is in scope from its line to the end of its stage; `--build-arg` values override
//! defaults; ENV beats ARG; the proxy args need no declaration; a stage built FROM another
//! inherits its ARGs and ENV. It only computes values: it never runs or fetches anything,
//! and asks the caller for a base image's environment.

use std::collections::BTreeMap;

use crate::dockerfile::{ArgDecl, Copy, Dockerfile, Instruction, KeyValue, Source};
use crate::shell::{ExpandError, Lexer};

/// Args that every build accepts without an ARG line (Docker's predefined proxy args).
pub const PROXY_ARGS: [&str; 10] = [
    "HTTP_PROXY",
    "http_proxy",
    "HTTPS_PROXY",
    "https_proxy",
    "FTP_PROXY",
    "ftp_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
];

/// BuildKit's automatic platform args: when the caller passes them, FROM lines may use them
/// without an ARG line; inside a stage they still need `ARG NAME` (without a value).
pub const PLATFORM_ARGS: [&str; 8] = [
    "BUILDPLATFORM",
    "BUILDOS",
    "BUILDARCH",
    "BUILDVARIANT",
    "TARGETPLATFORM",
    "TARGETOS",
    "TARGETARCH",
    "TARGETVARIANT",
];

/// A variable list in order of definition; later entries win on lookup.
pub type Vars = Vec<(String, String)>;

/// Why a Dockerfile could not be resolved with the given args.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    #[error("line {line}: {instruction} {word:?}: {source}")]
    Expand {
        line: usize,
        instruction: &'static str,
        word: String,
        source: ExpandError,
    },
    #[error("line {line}: VOLUME path {index} expands to an empty string, expected a path")]
    EmptyVolume { line: usize, index: usize },
    #[error("line {line}: FROM {written:?} expands to an empty image name, expected an image")]
    EmptyBase { line: usize, written: String },
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    /// `FROM scratch`: an empty filesystem.
    Scratch,
    /// An earlier stage, by index.
    Stage(usize),
    /// An image reference, expanded.
    Image(String),
}

/// One stage with its variables worked out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedStage {
    pub name: Option<String>,
    pub line: usize,
    pub base: Base,
    /// `--platform`, expanded.
    pub platform: Option<String>,
    pub steps: Vec<ResolvedStep>,
}

/// One instruction after substitution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedStep {
    pub line: usize,
    pub end_line: usize,
    /// The instruction with variables substituted where Docker substitutes them (ADD, COPY,
    /// ENV, EXPOSE, LABEL, STOPSIGNAL, USER, VOLUME, WORKDIR, ARG defaults). RUN, CMD,
    /// ENTRYPOINT, SHELL, HEALTHCHECK and ONBUILD stay as written: a shell or a later build
    /// expands them.
    pub instruction: Instruction,
    /// The image environment after this step (base image's, inherited, then ENV lines).
    pub env: Vars,
    /// Build args in scope after this step, with values: they join `env` (which wins) in a
    /// RUN's environment but are not stored in the image.
    pub args: Vars,
}

/// The whole build as values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Meta ARGs with their final values (declared ones without a value are absent).
    pub meta_args: Vars,
    pub stages: Vec<ResolvedStage>,
    /// Build args that no ARG declared and that are neither proxy nor platform args; Docker
    /// warns about them.
    pub unused_build_args: Vec<String>,
}

/// Resolves every stage of `dockerfile` for `build_args`. `image_env` returns the `Env` of
/// a base image (the engine looks it up; pass `&|_| Vec::new()` when unknown).
pub fn resolve(
    dockerfile: &Dockerfile,
    build_args: &BTreeMap<String, String>,
    image_env: &dyn Fn(&str) -> Vars,
) -> Result<Resolved, ResolveError> {
    let lex = Lexer::new(dockerfile.directives.escape);
    let mut declared: Vec<&str> = Vec::new();

    let mut meta: Vars = PLATFORM_ARGS
        .iter()
        .filter_map(|k| build_args.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();
    for decls in &dockerfile.meta_args {
        for decl in &decls.value {
            declared.push(&decl.name);
            let value = arg_value(&lex, decl, build_args, &meta, &[])
                .map_err(|source| expand_error(decls.line, "ARG", source))?;
            if let Some(v) = value {
                set(&mut meta, &decl.name, v);
            }
        }
    }

    let proxies: Vars = PROXY_ARGS
        .iter()
        .filter_map(|k| build_args.get(*k).map(|v| (k.to_string(), v.clone())))
        .collect();

    let mut stages: Vec<ResolvedStage> = Vec::new();
    for stage in &dockerfile.stages {
        let from = &stage.from;
        let image = word(&lex, &from.value.image, &meta)
            .map_err(|source| expand_error(from.line, "FROM", source))?;
        if image.is_empty() {
            return Err(ResolveError::EmptyBase {
                line: from.line,
                written: from.value.image.clone(),
            });
        }
        let platform = match &from.value.platform {
            Some(p) => Some(
                word(&lex, p, &meta).map_err(|source| expand_error(from.line, "FROM", source))?,
            ),
            None => None,
        };
        let parent = stages
            .iter()
            .rposition(|s| s.name.as_deref() == Some(image.to_ascii_lowercase().as_str()));
        let (base, mut env, mut args) = match parent {
            Some(i) => {
                let last =
                    |s: &ResolvedStage| s.steps.last().map(|st| (st.env.clone(), st.args.clone()));
                let (env, args) = last(&stages[i])
                    .unwrap_or_else(|| (stage_start_env(&stages, i, image_env), proxies.clone()));
                (Base::Stage(i), env, args)
            }
            None if image.eq_ignore_ascii_case("scratch") => {
                (Base::Scratch, Vars::new(), proxies.clone())
            }
            None => {
                let env = image_env(&image);
                (Base::Image(image), env, proxies.clone())
            }
        };

        let mut steps = Vec::with_capacity(stage.instructions.len());
        for step in &stage.instructions {
            let line = step.line;
            let scope: Vars = args.iter().chain(env.iter()).cloned().collect();
            let err = |kw: &'static str| move |source| expand_error(line, kw, source);
            let instruction = match &step.value {
                Instruction::Arg(decls) => {
                    let mut out = Vec::with_capacity(decls.len());
                    for decl in decls {
                        declared.push(&decl.name);
                        let v = arg_value(&lex, decl, build_args, &scope, &[&args, &meta])
                            .map_err(err("ARG"))?;
                        if let Some(v) = &v {
                            set(&mut args, &decl.name, v.clone());
                        }
                        out.push(ArgDecl {
                            name: decl.name.clone(),
                            default: v,
                        });
                    }
                    Instruction::Arg(out)
                }
                Instruction::Env(kvs) => {
                    let kvs = key_values(&lex, kvs, &scope).map_err(err("ENV"))?;
                    for kv in &kvs {
                        set(&mut env, &kv.key, kv.value.clone());
                    }
                    Instruction::Env(kvs)
                }
                Instruction::Label(kvs) => {
                    Instruction::Label(key_values(&lex, kvs, &scope).map_err(err("LABEL"))?)
                }
                Instruction::Expose(ports) => {
                    let mut out = Vec::new();
                    for p in ports {
                        out.extend(words(&lex, p, &scope).map_err(err("EXPOSE"))?);
                    }
                    Instruction::Expose(out)
                }
                Instruction::Volume(paths) => {
                    let mut out = Vec::with_capacity(paths.len());
                    for (i, p) in paths.iter().enumerate() {
                        let v = word(&lex, p, &scope).map_err(err("VOLUME"))?;
                        if v.is_empty() {
                            return Err(ResolveError::EmptyVolume { line, index: i + 1 });
                        }
                        out.push(v);
                    }
                    Instruction::Volume(out)
                }
                Instruction::User(u) => {
                    Instruction::User(word(&lex, u, &scope).map_err(err("USER"))?)
                }
                Instruction::Workdir(w) => {
                    Instruction::Workdir(word(&lex, w, &scope).map_err(err("WORKDIR"))?)
                }
                Instruction::StopSignal(s) => {
                    Instruction::StopSignal(word(&lex, s, &scope).map_err(err("STOPSIGNAL"))?)
                }
                Instruction::Add(c) => Instruction::Add(copy(&lex, c, &scope).map_err(err("ADD"))?),
                Instruction::Copy(c) => {
                    Instruction::Copy(copy(&lex, c, &scope).map_err(err("COPY"))?)
                }
                other => other.clone(),
            };
            steps.push(ResolvedStep {
                line,
                end_line: step.end_line,
                instruction,
                env: env.clone(),
                args: args.clone(),
            });
        }
        stages.push(ResolvedStage {
            name: from.value.name.clone(),
            line: from.line,
            base,
            platform,
            steps,
        });
    }

    let unused_build_args = build_args
        .keys()
        .filter(|k| {
            let k = k.as_str();
            !declared.contains(&k) && !PROXY_ARGS.contains(&k) && !PLATFORM_ARGS.contains(&k)
        })
        .cloned()
        .collect();
    Ok(Resolved {
        meta_args: meta,
        stages,
        unused_build_args,
    })
}

/// The environment a stage with no steps hands on: its own base's.
fn stage_start_env(stages: &[ResolvedStage], i: usize, image_env: &dyn Fn(&str) -> Vars) -> Vars {
    match &stages[i].base {
        Base::Scratch => Vars::new(),
        Base::Image(img) => image_env(img),
        Base::Stage(j) if *j < i => stages[*j]
            .steps
            .last()
            .map(|s| s.env.clone())
            .unwrap_or_else(|| stage_start_env(stages, *j, image_env)),
        Base::Stage(_) => Vars::new(),
    }
}

/// An expansion failure on one word.
#[derive(Debug)]
struct WordError {
    word: String,
    source: ExpandError,
}

fn expand_error(line: usize, instruction: &'static str, e: WordError) -> ResolveError {
    ResolveError::Expand {
        line,
        instruction,
        word: e.word,
        source: e.source,
    }
}

/// Sets `name`, keeping the position of an earlier definition (as Docker's `Env` does).
fn set(vars: &mut Vars, name: &str, value: String) {
    match vars.iter_mut().find(|(k, _)| k == name) {
        Some(slot) => slot.1 = value,
        None => vars.push((name.to_string(), value)),
    }
}

fn word(lex: &Lexer, w: &str, scope: &Vars) -> Result<String, WordError> {
    lex.process(w, scope)
        .map(|e| e.word)
        .map_err(|source| WordError {
            word: w.to_string(),
            source,
        })
}

fn words(lex: &Lexer, w: &str, scope: &Vars) -> Result<Vec<String>, WordError> {
    lex.process(w, scope)
        .map(|e| e.words)
        .map_err(|source| WordError {
            word: w.to_string(),
            source,
        })
}

/// The value an ARG gets: the build arg, else its default (expanded against `scope`), else
/// the first of `fallbacks` that has one (inside a stage: the value the arg already has, then
/// the meta ARG of that name). `None`: declared without a value.
fn arg_value(
    lex: &Lexer,
    decl: &ArgDecl,
    build_args: &BTreeMap<String, String>,
    scope: &Vars,
    fallbacks: &[&Vars],
) -> Result<Option<String>, WordError> {
    if let Some(v) = build_args.get(&decl.name) {
        return Ok(Some(v.clone()));
    }
    if let Some(d) = &decl.default {
        return word(lex, d, scope).map(Some);
    }
    Ok(fallbacks.iter().find_map(|vars| {
        vars.iter()
            .rev()
            .find(|(k, _)| *k == decl.name)
            .map(|(_, v)| v.clone())
    }))
}

/// ENV and LABEL pairs, expanded against one snapshot: `ENV a=b c=$a` sees the old `a`.
fn key_values(lex: &Lexer, kvs: &[KeyValue], scope: &Vars) -> Result<Vec<KeyValue>, WordError> {
    kvs.iter()
        .map(|kv| {
            Ok(KeyValue {
                key: word(lex, &kv.key, scope)?,
                value: word(lex, &kv.value, scope)?,
                legacy: kv.legacy,
            })
        })
        .collect()
}

fn copy(lex: &Lexer, c: &Copy, scope: &Vars) -> Result<Copy, WordError> {
    let opt = |v: &Option<String>| v.as_ref().map(|v| word(lex, v, scope)).transpose();
    let mut sources = Vec::with_capacity(c.sources.len());
    for s in &c.sources {
        sources.push(match s {
            Source::Path(p) => Source::Path(word(lex, p, scope)?),
            Source::Heredoc(doc) if doc.expand => {
                // The body is file content: its quotes are text, only `$` forms expand.
                let mut doc = doc.clone();
                // BuildKit expands bodies with the default escape, whatever the directive says.
                doc.content = word(&Lexer::new('\\').skip_quotes(true), &doc.content, scope)?;
                Source::Heredoc(doc)
            }
            Source::Heredoc(doc) => Source::Heredoc(doc.clone()),
        });
    }
    Ok(Copy {
        sources,
        dest: word(lex, &c.dest, scope)?,
        from: opt(&c.from)?,
        chown: opt(&c.chown)?,
        chmod: opt(&c.chmod)?,
        exclude: c
            .exclude
            .iter()
            .map(|e| word(lex, e, scope))
            .collect::<Result<_, _>>()?,
        ..c.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::parse;

    fn run(src: &str, args: &[(&str, &str)]) -> Resolved {
        let df = parse(src).unwrap();
        let args = args
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        resolve(&df, &args, &|_| vec![("HOME".into(), "/root".into())]).unwrap()
    }

    fn step(r: &Resolved, stage: usize, step: usize) -> &ResolvedStep {
        &r.stages[stage].steps[step]
    }

    #[test]
    fn meta_args_serve_from_lines_and_build_args_override_them() {
        let r = run(
            "ARG V=1\nFROM img:$V\nFROM img:${V}-b AS two\n",
            &[("V", "2")],
        );
        assert_eq!(r.stages[0].base, Base::Image("img:2".into()));
        assert_eq!(r.stages[1].base, Base::Image("img:2-b".into()));
    }

    #[test]
    fn undeclared_build_args_do_not_reach_from_but_platform_args_do() {
        let src = "FROM --platform=$BUILDPLATFORM img:${V:-none}\n";
        let r = run(src, &[("V", "2"), ("BUILDPLATFORM", "linux/amd64")]);
        assert_eq!(r.stages[0].base, Base::Image("img:none".into()));
        assert_eq!(r.stages[0].platform.as_deref(), Some("linux/amd64"));
        assert_eq!(r.unused_build_args, ["V"]);
    }

    #[test]
    fn arg_scope_starts_at_its_line_and_ends_with_the_stage() {
        let src = "ARG A=meta\nFROM x\nUSER u$A\nARG A\nUSER u$A\nFROM y\nUSER u$A\n";
        let r = run(src, &[]);
        assert_eq!(step(&r, 0, 0).instruction, Instruction::User("u".into()));
        assert_eq!(
            step(&r, 0, 2).instruction,
            Instruction::User("umeta".into())
        );
        assert_eq!(step(&r, 1, 0).instruction, Instruction::User("u".into()));
    }

    #[test]
    fn env_beats_arg_and_sees_one_snapshot() {
        let src = "FROM x\nARG A=arg\nENV A=env B=$A\nWORKDIR /$A/$B/$HOME\n";
        let r = run(src, &[]);
        assert_eq!(
            step(&r, 0, 2).instruction,
            Instruction::Workdir("/env/arg//root".into())
        );
        assert_eq!(step(&r, 0, 2).args, [("A".to_string(), "arg".to_string())]);
    }

    #[test]
    fn proxy_args_need_no_declaration() {
        let r = run("FROM x\nUSER $http_proxy\n", &[("http_proxy", "p:1")]);
        assert_eq!(step(&r, 0, 0).instruction, Instruction::User("p:1".into()));
        assert!(r.unused_build_args.is_empty());
    }

    #[test]
    fn stages_inherit_from_their_base_stage() {
        let src = "FROM x AS a\nARG A=1\nENV E=2\nFROM a\nUSER $A$E\nFROM x\nUSER $A$E\n";
        let r = run(src, &[]);
        assert_eq!(r.stages[1].base, Base::Stage(0));
        assert_eq!(step(&r, 1, 0).instruction, Instruction::User("12".into()));
        assert_eq!(step(&r, 2, 0).instruction, Instruction::User("".into()));
    }

    #[test]
    fn expansion_errors_name_line_instruction_and_word() {
        let df = parse("FROM x\n\nUSER ${NOPE:?is required}\n").unwrap();
        let e = resolve(&df, &BTreeMap::new(), &|_| Vec::new()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 3: USER \"${NOPE:?is required}\": column 1: NOPE: is required"
        );
    }
}
