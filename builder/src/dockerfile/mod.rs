//! Dockerfile parsing: source text to a typed, validated list of stages and instructions.
//!
//! Owns the syntax of Dockerfiles (directives, continuations, heredocs, each instruction's
//! arguments and flags). It never expands variables (that is [`crate::resolve`]'s job, at
//! build time, with the build args in hand) and never reads files.
//!
//! Parsing has two layers, as in BuildKit: [`parse_ast`] gives Docker's raw view (what
//! [`dump`] prints and the BuildKit goldens check), and [`parse`] types and validates it.

mod convert;
mod dump;
mod error;
mod instruction;
mod node;
mod syntax;

pub use dump::{dump_ast, go_quote};
pub use error::{ParseError, ParseErrorKind};
pub use instruction::{
    ArgDecl, Command, Copy, Dockerfile, From, Healthcheck, Instruction, KeyValue, Located, Onbuild,
    Run, Source, Stage,
};
pub use node::{Heredoc, Node, Pos};
pub use syntax::{parse_ast, Ast, Directives, Warning};

/// Parses and validates a Dockerfile.
pub fn parse(src: &str) -> Result<Dockerfile, ParseError> {
    convert::convert(parse_ast(src)?)
}

/// Docker's parse-tree dump of `dockerfile`: one `(instruction "arg"...)` line each.
pub fn dump(dockerfile: &Dockerfile) -> String {
    dump_ast(&dockerfile.ast)
}
