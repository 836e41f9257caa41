//! Word expansion with Docker's rules: quotes, escapes, `$var` and `${var...}` forms, and
//! splitting the result into words.
//!
//! This module owns the semantics of BuildKit's `shell/lex.go` (the reference for what a
//! Dockerfile word means); it never runs a shell and never reads the process environment:
//! every variable comes from the [`Lookup`] the caller passes.

mod pattern;

use std::collections::{BTreeMap, HashMap};

use pattern::Pattern;

/// Where a word's variables come from.
pub trait Lookup {
    /// The value of `name`, or `None` when it is unset (set-but-empty is `Some("")`).
    fn lookup(&self, name: &str) -> Option<&str>;
}

impl Lookup for HashMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

impl Lookup for BTreeMap<String, String> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.get(name).map(String::as_str)
    }
}

/// An ordered list of `(name, value)`; the last entry for a name wins, as in an image's `Env`.
impl Lookup for [(String, String)] {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Lookup for Vec<(String, String)> {
    fn lookup(&self, name: &str) -> Option<&str> {
        self.as_slice().lookup(name)
    }
}

impl<T: Lookup + ?Sized> Lookup for &T {
    fn lookup(&self, name: &str) -> Option<&str> {
        (**self).lookup(name)
    }
}

/// Why a word could not be expanded. `column` counts characters from 1 within the word and
/// points at the construct that failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExpandError {
    #[error("column {column}: unterminated single quote, expected a closing '")]
    UnterminatedSingleQuote { column: usize },
    #[error("column {column}: unterminated double quote, expected a closing \"")]
    UnterminatedDoubleQuote { column: usize },
    #[error("column {column}: missing '}}' to close '${{'")]
    MissingBrace { column: usize },
    #[error("column {column}: missing '/' after the pattern of '${{name/pattern/replacement}}'")]
    MissingSlash { column: usize },
    #[error("column {column}: bad substitution, expected a variable name after '${{'")]
    BadSubstitution { column: usize },
    #[error(
        "column {column}: unsupported modifier {modifier:?} in substitution, \
         expected one of :- - :+ + :? ? # ## % %% / //"
    )]
    UnsupportedModifier { column: usize, modifier: String },
    #[error("column {column}: {name}: {message}")]
    Required {
        column: usize,
        name: String,
        message: String,
    },
    #[error("column {column}: substitutions nested more than {MAX_DEPTH} deep")]
    TooDeep { column: usize },
    #[error("column {column}: invalid pattern {pattern:?}: cannot escape {escaped:?}")]
    InvalidPattern {
        column: usize,
        pattern: String,
        escaped: char,
    },
}

/// How deep `${a:-${b:-...}}` may nest: far beyond real use, well within any thread's stack.
pub const MAX_DEPTH: usize = 64;

/// The result of expanding one word.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Expansion {
    /// The word with quotes removed and variables substituted, inner spacing kept.
    pub word: String,
    /// The same text split into words the way a shell would: unquoted whitespace, including
    /// whitespace that came out of a variable, separates words; quoted text never splits.
    pub words: Vec<String>,
}

/// A configured expander. The defaults match how Dockerfile instructions are expanded; the
/// switches exist for the special passes BuildKit makes (heredoc detection, partial
/// expansion that leaves unknown variables for a later stage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_unset: bool,
    skip_quotes: bool,
}

impl Lexer {
    /// A lexer whose escape character is `escape` (`\` by default, `` ` `` after
    /// `# escape=`` ` ``).
    pub fn new(escape: char) -> Lexer {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset: false,
            skip_quotes: false,
        }
    }

    /// Treat quote characters as ordinary text (for heredoc bodies, where quotes belong to
    /// the file being written, not to the Dockerfile).
    pub fn skip_quotes(mut self, on: bool) -> Lexer {
        self.skip_quotes = on;
        self
    }

    /// Keep quote characters in the output instead of removing them.
    pub fn raw_quotes(mut self, on: bool) -> Lexer {
        self.raw_quotes = on;
        self
    }

    /// Keep escape characters in the output instead of removing them.
    pub fn raw_escapes(mut self, on: bool) -> Lexer {
        self.raw_escapes = on;
        self
    }

    /// Leave references to unset variables as written (`$X`, `${X:-y}`) instead of
    /// substituting.
    pub fn skip_unset(mut self, on: bool) -> Lexer {
        self.skip_unset = on;
        self
    }

    /// Expands `word` against `env`.
    pub fn process(&self, word: &str, env: &dyn Lookup) -> Result<Expansion, ExpandError> {
        let mut st = State {
            lex: self,
            env,
            chars: word.chars().collect(),
            pos: 0,
            raw_escapes: self.raw_escapes,
            depth: 0,
        };
        let (word, words) = st.until(None, self.raw_escapes)?;
        Ok(Expansion { word, words })
    }
}

/// Expands one word: quotes removed, variables substituted, spacing kept.
pub fn expand_word(word: &str, env: &dyn Lookup, escape: char) -> Result<String, ExpandError> {
    Lexer::new(escape).process(word, env).map(|e| e.word)
}

/// Expands one word and splits the result into words (see [`Expansion::words`]).
pub fn expand_words(
    word: &str,
    env: &dyn Lookup,
    escape: char,
) -> Result<Vec<String>, ExpandError> {
    Lexer::new(escape).process(word, env).map(|e| e.words)
}

/// Word splitting as characters arrive: plain characters split on whitespace, quoted or
/// escaped ones never do.
#[derive(Default)]
struct Words {
    current: String,
    done: Vec<String>,
}

impl Words {
    fn plain(&mut self, c: char) {
        if c.is_whitespace() {
            self.flush();
        } else {
            self.current.push(c);
        }
    }

    fn plain_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.plain(c));
    }

    fn raw(&mut self, c: char) {
        self.current.push(c);
    }

    fn raw_str(&mut self, s: &str) {
        self.current.push_str(s);
    }

    fn flush(&mut self) {
        // An empty quoted string ("") makes no word, as in BuildKit.
        if !self.current.is_empty() {
            self.done.push(std::mem::take(&mut self.current));
        }
    }

    fn finish(mut self) -> Vec<String> {
        self.flush();
        self.done
    }
}

struct State<'a> {
    lex: &'a Lexer,
    env: &'a dyn Lookup,
    chars: Vec<char>,
    pos: usize,
    raw_escapes: bool,
    depth: usize,
}

impl State<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// 1-based column of the character at `pos`.
    fn column(pos: usize) -> usize {
        pos + 1
    }

    /// Reads up to `stop` (consumed) or the end of the word when `stop` is `None`.
    fn until(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), ExpandError> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.until_inner(stop);
        self.raw_escapes = saved;
        r
    }

    fn until_inner(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), ExpandError> {
        let mut out = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok((out, words.finish()));
            }
            match c {
                '$' => {
                    let v = self.dollar()?;
                    words.plain_str(&v);
                    out.push_str(&v);
                }
                '\'' if !self.lex.skip_quotes => {
                    let v = self.single_quote()?;
                    words.raw_str(&v);
                    out.push_str(&v);
                }
                '"' if !self.lex.skip_quotes => {
                    let v = self.double_quote()?;
                    words.raw_str(&v);
                    out.push_str(&v);
                }
                c if c == self.lex.escape => {
                    self.pos += 1;
                    if self.raw_escapes {
                        words.raw(c);
                        out.push(c);
                    }
                    // An escape at the very end of the word escapes nothing and is dropped.
                    let Some(n) = self.next() else { break };
                    words.raw(n);
                    out.push(n);
                }
                c => {
                    self.pos += 1;
                    words.plain(c);
                    out.push(c);
                }
            }
        }
        match stop {
            None => Ok((out, words.finish())),
            // Callers turn this into the error that names what was open.
            Some(_) => Err(ExpandError::MissingBrace {
                column: Self::column(self.pos),
            }),
        }
    }

    fn single_quote(&mut self) -> Result<String, ExpandError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        if self.lex.raw_quotes {
            out.push('\'');
        }
        loop {
            match self.next() {
                None => {
                    return Err(ExpandError::UnterminatedSingleQuote {
                        column: Self::column(start),
                    })
                }
                Some('\'') => {
                    if self.lex.raw_quotes {
                        out.push('\'');
                    }
                    return Ok(out);
                }
                Some(c) => out.push(c),
            }
        }
    }

    fn double_quote(&mut self) -> Result<String, ExpandError> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::new();
        if self.lex.raw_quotes {
            out.push('"');
        }
        loop {
            match self.peek() {
                None => {
                    return Err(ExpandError::UnterminatedDoubleQuote {
                        column: Self::column(start),
                    })
                }
                Some('"') => {
                    self.pos += 1;
                    if self.lex.raw_quotes {
                        out.push('"');
                    }
                    return Ok(out);
                }
                Some('$') => out.push_str(&self.dollar()?),
                Some(c) if c == self.lex.escape => {
                    self.pos += 1;
                    if self.raw_escapes {
                        out.push(c);
                    }
                    // Inside double quotes the escape only quotes `"`, `$` and itself;
                    // before anything else it is an ordinary character (`"a\tb"` stays).
                    match self.peek() {
                        Some(n) if n == '"' || n == '$' || n == self.lex.escape => {
                            self.pos += 1;
                            out.push(n);
                        }
                        Some(_) if !self.raw_escapes => out.push(c),
                        _ => {}
                    }
                }
                Some(c) => {
                    self.pos += 1;
                    out.push(c);
                }
            }
        }
    }

    /// A variable name: a run of letters, digits and `_`; or a run of digits (positional
    /// parameter); or one special parameter character. Empty when none follows.
    fn name(&mut self) -> String {
        let mut name = String::new();
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            Some(c @ ('@' | '*' | '#' | '?' | '-' | '$' | '!')) => {
                self.pos += 1;
                name.push(c);
                return name;
            }
            _ => {}
        }
        while let Some(c) = self.peek().filter(|c| c.is_alphanumeric() || *c == '_') {
            name.push(c);
            self.pos += 1;
        }
        name
    }

    fn dollar(&mut self) -> Result<String, ExpandError> {
        if self.depth >= MAX_DEPTH {
            return Err(ExpandError::TooDeep {
                column: Self::column(self.pos),
            });
        }
        self.depth += 1;
        let r = self.dollar_inner();
        self.depth -= 1;
        r
    }

    fn dollar_inner(&mut self) -> Result<String, ExpandError> {
        let start = self.pos;
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(match self.env.lookup(&name) {
                Some(v) => v.to_string(),
                None if self.lex.skip_unset => format!("${name}"),
                None => String::new(),
            });
        }
        self.pos += 1;
        let column = Self::column(start);
        match self.peek() {
            None => return Err(ExpandError::MissingBrace { column }),
            Some('{' | '}' | ':') => return Err(ExpandError::BadSubstitution { column }),
            Some(_) => {}
        }
        let name = self.name();
        let value = self.env.lookup(&name).map(str::to_string);
        let Some(op) = self.next() else {
            return Err(ExpandError::MissingBrace { column });
        };
        match op {
            '}' => Ok(match value {
                Some(v) => v,
                None if self.lex.skip_unset => format!("${{{name}}}"),
                None => String::new(),
            }),
            '/' => self.substitute(name, value, column),
            _ => {
                let mut modifier = op.to_string();
                let (null_is_unset, op) = if op == ':' {
                    let Some(op2) = self.next() else {
                        return Err(ExpandError::MissingBrace { column });
                    };
                    modifier.push(op2);
                    (true, op2)
                } else {
                    (false, op)
                };
                if !matches!(op, '-' | '+' | '?' | '#' | '%') {
                    // Read to the closing brace first so a missing one is reported as such.
                    self.until(Some('}'), false)
                        .map_err(|e| missing_brace_or(e, column))?;
                    return Err(ExpandError::UnsupportedModifier { column, modifier });
                }
                // Patterns keep their escapes: the pattern compiler needs them.
                let raw = matches!(op, '#' | '%');
                let (word, _) = self
                    .until(Some('}'), raw)
                    .map_err(|e| missing_brace_or(e, column))?;
                let Some(v) = value else {
                    if self.lex.skip_unset {
                        return Ok(format!("${{{name}{modifier}{word}}}"));
                    }
                    return match op {
                        '-' => Ok(word),
                        '?' => Err(required(column, name, word, "is not allowed to be unset")),
                        _ => Ok(String::new()),
                    };
                };
                let empty = null_is_unset && v.is_empty();
                match op {
                    '-' => Ok(if empty { word } else { v }),
                    '+' => Ok(if empty { String::new() } else { word }),
                    '?' if empty => Err(required(column, name, word, "is not allowed to be empty")),
                    '?' => Ok(v),
                    // BuildKit accepts `${v:#p}` as `${v#p}`; so do we.
                    _ => {
                        // `##` / `%%`: the second character asks for the longest match.
                        let (longest, pat) = match word.strip_prefix(op) {
                            Some(rest) => (true, rest.to_string()),
                            None => (false, word),
                        };
                        let p = self.compile(&pat, column)?;
                        Ok(if op == '#' {
                            p.trim_prefix(&v, longest)
                        } else {
                            p.trim_suffix(&v, longest)
                        })
                    }
                }
            }
        }
    }

    /// `${name/pattern/replacement}` and `${name//pattern/replacement}`, after the first `/`.
    fn substitute(
        &mut self,
        name: String,
        value: Option<String>,
        column: usize,
    ) -> Result<String, ExpandError> {
        let all = self.peek() == Some('/');
        if all {
            self.pos += 1;
        }
        let (pat, _) = self.until(Some('/'), true).map_err(|e| match e {
            ExpandError::MissingBrace { .. } => ExpandError::MissingSlash { column },
            other => other,
        })?;
        let (replacement, _) = self
            .until(Some('}'), true)
            .map_err(|e| missing_brace_or(e, column))?;
        let Some(v) = value else {
            if self.lex.skip_unset {
                let slashes = if all { "//" } else { "/" };
                return Ok(format!("${{{name}{slashes}{pat}/{replacement}}}"));
            }
            return Ok(String::new());
        };
        Ok(self.compile(&pat, column)?.replace(&v, &replacement, all))
    }

    fn compile(&self, pat: &str, column: usize) -> Result<Pattern, ExpandError> {
        Pattern::compile(pat, self.lex.escape).map_err(|e| ExpandError::InvalidPattern {
            column,
            pattern: pat.to_string(),
            escaped: e.0,
        })
    }
}

/// Running out of input inside `${...}` is reported against the `${`; other errors (an
/// unterminated quote inside) keep their own position.
fn missing_brace_or(e: ExpandError, column: usize) -> ExpandError {
    match e {
        ExpandError::MissingBrace { .. } => ExpandError::MissingBrace { column },
        other => other,
    }
}

fn required(column: usize, name: String, word: String, default: &str) -> ExpandError {
    let message = if word.is_empty() {
        default.to_string()
    } else {
        word
    };
    ExpandError::Required {
        column,
        name,
        message,
    }
}

#[cfg(test)]
mod tests;
