//! Dockerfile parsing: source text to a typed, validated list of stages and instructions.
//!
//! Owns the syntax of Dockerfiles (directives, continuations, heredocs, each instruction's
//! arguments and flags). It never expands variables (that is `resolve`'s job, at build
//! time, with the build args in hand) and never reads files.

mod dump;
mod error;
mod node;
mod syntax;

pub use dump::dump_ast;
pub use error::{ParseError, ParseErrorKind};
pub use node::{Heredoc, Node, Pos};
pub use syntax::{parse_ast, Ast, Directives, Warning};
