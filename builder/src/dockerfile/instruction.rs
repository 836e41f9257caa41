//! The typed Dockerfile: stages of instructions with typed payloads.
//!
//! Values here are as written (quotes kept, nothing expanded) except where a field says
//! otherwise; `crate::resolve` produces the expanded form for a given set of build args.

use std::time::Duration;

use super::node::Heredoc;
use super::syntax::{Ast, Directives, Warning};

/// A parsed and validated Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub directives: Directives,
    pub warnings: Vec<Warning>,
    /// `ARG`s before the first `FROM`: usable in `FROM` lines only.
    pub meta_args: Vec<Located<Vec<ArgDecl>>>,
    pub stages: Vec<Stage>,
    /// The raw parse, for [`super::dump`] and tools that want Docker's view.
    pub ast: Ast,
}

/// A value with the source lines it came from (1-based, inclusive; heredoc bodies count).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    pub line: usize,
    pub end_line: usize,
    pub value: T,
}

/// One `FROM` and the instructions up to the next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub from: Located<From>,
    pub instructions: Vec<Located<Instruction>>,
}

/// `FROM [--platform=P] IMAGE [AS NAME]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct From {
    /// Image reference or earlier stage name, unexpanded (may use meta ARGs).
    pub image: String,
    /// The stage name, lower-cased.
    pub name: Option<String>,
    pub platform: Option<String>,
}

/// A command in exec (JSON) or shell form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `["executable", "arg"]`: run as is.
    Exec(Vec<String>),
    /// `text`: run through the stage's SHELL.
    Shell(String),
}

/// A `KEY=value` pair of ENV or LABEL, raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: String,
    /// Written in the legacy `ENV KEY value` form.
    pub legacy: bool,
}

/// One name of an `ARG` line, with its default if one was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    pub default: Option<String>,
}

/// `RUN`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    pub command: Command,
    /// Bodies of `<<EOF` words in a shell-form command, in order.
    pub heredocs: Vec<Heredoc>,
    /// `--mount=...` values (BuildKit only; kept for the executor to accept or refuse).
    pub mounts: Vec<String>,
    pub network: Option<String>,
    pub security: Option<String>,
}

/// Where one ADD/COPY source comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A path, glob or (ADD only) URL, raw.
    Path(String),
    /// An inline file written as a heredoc.
    Heredoc(Heredoc),
}

/// `ADD` and `COPY`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub sources: Vec<Source>,
    pub dest: String,
    /// COPY only: a stage name, stage index or image to copy from.
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    /// COPY only.
    pub parents: bool,
    pub exclude: Vec<String>,
    /// ADD only.
    pub checksum: Option<String>,
    /// ADD only.
    pub keep_git_dir: bool,
    /// The sources were written as a JSON array.
    pub json: bool,
}

/// `HEALTHCHECK`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthcheck {
    /// `HEALTHCHECK NONE`: disable any inherited check.
    None,
    Check {
        test: Command,
        interval: Option<Duration>,
        timeout: Option<Duration>,
        start_period: Option<Duration>,
        start_interval: Option<Duration>,
        retries: Option<u32>,
    },
}

/// `ONBUILD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Onbuild {
    /// The trigger as written after `ONBUILD`: what the image config stores.
    pub expression: String,
    pub trigger: Box<Instruction>,
}

/// One instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    Run(Run),
    Cmd(Command),
    Entrypoint(Command),
    Label(Vec<KeyValue>),
    Maintainer(String),
    Expose(Vec<String>),
    Env(Vec<KeyValue>),
    Add(Copy),
    Copy(Copy),
    Volume(Vec<String>),
    User(String),
    Workdir(String),
    Arg(Vec<ArgDecl>),
    Onbuild(Onbuild),
    StopSignal(String),
    Healthcheck(Healthcheck),
    Shell(Vec<String>),
}

impl Instruction {
    /// The instruction's keyword, upper-case.
    pub fn keyword(&self) -> &'static str {
        match self {
            Instruction::Run(_) => "RUN",
            Instruction::Cmd(_) => "CMD",
            Instruction::Entrypoint(_) => "ENTRYPOINT",
            Instruction::Label(_) => "LABEL",
            Instruction::Maintainer(_) => "MAINTAINER",
            Instruction::Expose(_) => "EXPOSE",
            Instruction::Env(_) => "ENV",
            Instruction::Add(_) => "ADD",
            Instruction::Copy(_) => "COPY",
            Instruction::Volume(_) => "VOLUME",
            Instruction::User(_) => "USER",
            Instruction::Workdir(_) => "WORKDIR",
            Instruction::Arg(_) => "ARG",
            Instruction::Onbuild(_) => "ONBUILD",
            Instruction::StopSignal(_) => "STOPSIGNAL",
            Instruction::Healthcheck(_) => "HEALTHCHECK",
            Instruction::Shell(_) => "SHELL",
        }
    }
}
