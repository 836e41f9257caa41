//! The one error type of Dockerfile parsing: where it happened and what was expected.

/// A Dockerfile that cannot be parsed. `line` and `column` count from 1; the column counts
/// characters in that physical line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {kind}")]
pub struct ParseError {
    pub line: usize,
    pub column: usize,
    pub kind: ParseErrorKind,
}

/// What went wrong, without the position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseErrorKind {
    #[error("file with no instructions, expected at least a FROM")]
    NoInstructions,
    #[error("only one {0} parser directive can be used")]
    DuplicateDirective(String),
    #[error("invalid escape token {0:?}, expected ` or \\")]
    InvalidEscape(String),
    #[error("{0} must have two arguments, expected a name and a value")]
    MissingValue(String),
    #[error("can't find = in {word:?}, {instruction} expects name=value")]
    MissingEquals { instruction: String, word: String },
    #[error("{0}: when using JSON array syntax, arrays must be comprised of strings only")]
    NotStringArray(String),
    #[error("unterminated heredoc {0:?}, expected a line with only {0}")]
    UnterminatedHeredoc(String),
    #[error("invalid heredoc {word:?}: {reason}")]
    InvalidHeredoc { word: String, reason: String },
    #[error("unknown instruction: {0}")]
    UnknownInstruction(String),
    #[error("{instruction} requires {what}")]
    Requires {
        instruction: String,
        what: &'static str,
    },
    #[error("{instruction} {message}")]
    Invalid {
        instruction: String,
        message: String,
    },
    #[error("unknown flag {flag:?} for {instruction}, expected one of: {expected}")]
    UnknownFlag {
        instruction: String,
        flag: String,
        expected: String,
    },
    #[error("{instruction} takes no flags, found {flag:?}")]
    NoFlags { instruction: String, flag: String },
    #[error("invalid value {value:?} for {flag}: expected {expected}")]
    FlagValue {
        flag: String,
        value: String,
        expected: &'static str,
    },
    #[error("duplicate flag {0}")]
    DuplicateFlag(String),
    #[error("{0} is not allowed as an ONBUILD trigger")]
    OnbuildTrigger(String),
    #[error("{0} is not allowed before the first FROM, expected FROM or ARG")]
    BeforeFrom(String),
    #[error(
        "invalid stage name {0:?}, expected a letter followed by letters, digits, '-', '_' or '.'"
    )]
    StageName(String),
    #[error("duplicate stage name {0:?}")]
    DuplicateStage(String),
}
