//! `.dockerignore`: parsing the file and deciding which context paths it excludes, with the
//! semantics of Docker's patternmatcher (`MatchesOrParentMatches`).
//!
//! Pure string logic over slash-separated paths relative to the context root. It never reads
//! the file or walks a directory: the CLI's context walker does both and asks a [`Matcher`].
//!
//! Docker's quirks are kept on purpose, because a context must contain exactly what docker
//! would send: a pattern is cleaned like Go's `filepath.Clean` (`/foo`, `./foo` and `foo/` are
//! one pattern), a pattern that starts with `**` and is otherwise literal matches by suffix
//! (`**file` excludes `dir/myfile`), and a path is excluded when a pattern matches it or any
//! of its parent directories, the last matching pattern winning.

use std::fmt;

use regex::Regex;

#[cfg(test)]
mod tests;

/// A `.dockerignore` line that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IgnoreError {
    #[error("line {line}: illegal exclusion pattern \"!\"")]
    BareExclusion { line: usize },
    #[error("line {line}: invalid pattern {pattern:?}: {reason}")]
    InvalidPattern {
        line: usize,
        pattern: String,
        reason: String,
    },
}

/// Parses a `.dockerignore` file into its patterns, in file order.
///
/// A UTF-8 BOM is skipped; lines starting with `#` in column 1 are comments; lines are
/// trimmed and blank ones dropped; `!` marks an exclusion; the pattern `.` (which Docker
/// never matches against anything) is dropped.
pub fn parse_ignore_file(text: &str) -> Result<Vec<Pattern>, IgnoreError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut patterns = Vec::new();
    for (index, line) in text.lines().enumerate() {
        // Docker tests for a comment before trimming: "  # x" is a pattern.
        if line.starts_with('#') {
            continue;
        }
        if let Some(pattern) = Pattern::parse(line, index + 1)? {
            patterns.push(pattern);
        }
    }
    Ok(patterns)
}

/// One compiled `.dockerignore` pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// The cleaned pattern, without its `!`.
    text: String,
    exclusion: bool,
    kind: Kind,
    /// The literal text every path this pattern matches must start with; a walker uses it to
    /// know which excluded directories an exclusion could reach into.
    literal_prefix: String,
}

/// How a pattern matches, chosen as patternmatcher chooses it (the choice shows: a suffix
/// match does not stop at a `/`).
#[derive(Debug, Clone)]
enum Kind {
    /// No wildcard: the path must equal the pattern.
    Exact,
    /// Literal text then a trailing `**`: the path must start with the text.
    Prefix(String),
    /// A leading `**`, then literal text (which keeps the `/` after `**`, if any).
    Suffix(String),
    Regex(Regex),
}

impl Pattern {
    /// Parses one line (not a comment); `None` for a blank line or `.`.
    fn parse(line: &str, line_no: usize) -> Result<Option<Pattern>, IgnoreError> {
        let line = line.trim();
        if line.is_empty() {
            return Ok(None);
        }
        let (exclusion, body) = match line.strip_prefix('!') {
            Some(rest) => (true, rest.trim()),
            None => (false, line),
        };
        if body.is_empty() {
            return Err(IgnoreError::BareExclusion { line: line_no });
        }
        let mut text = clean(body);
        if text.len() > 1 && text.starts_with('/') {
            text.remove(0);
        }
        if text == "." {
            return Ok(None);
        }
        let tokens = tokenize(&text).map_err(|reason| IgnoreError::InvalidPattern {
            line: line_no,
            pattern: line.to_string(),
            reason,
        })?;
        let (kind, literal_prefix) = compile(&tokens).map_err(|e| IgnoreError::InvalidPattern {
            line: line_no,
            pattern: line.to_string(),
            reason: e.to_string(),
        })?;
        Ok(Some(Pattern {
            text,
            exclusion,
            kind,
            literal_prefix,
        }))
    }

    /// The cleaned pattern, without the `!` of an exclusion.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether this is a `!` pattern, which re-includes what it matches.
    pub fn is_exclusion(&self) -> bool {
        self.exclusion
    }

    /// Whether the pattern matches `path` itself (patternmatcher's `MatchesExact` for one
    /// pattern); parent directories are the [`Matcher`]'s business.
    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            Kind::Exact => path == self.text,
            Kind::Prefix(prefix) => path.starts_with(prefix.as_str()),
            Kind::Suffix(suffix) => {
                path.ends_with(suffix.as_str())
                    // `**/foo` also matches `foo` itself.
                    || suffix.strip_prefix('/') == Some(path)
            }
            Kind::Regex(re) => re.is_match(path),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.exclusion {
            f.write_str("!")?;
        }
        f.write_str(&self.text)
    }
}

/// Decides which paths a list of patterns excludes.
#[derive(Debug, Clone, Default)]
pub struct Matcher {
    patterns: Vec<Pattern>,
}

impl Matcher {
    pub fn new(patterns: Vec<Pattern>) -> Matcher {
        Matcher { patterns }
    }

    pub fn patterns(&self) -> &[Pattern] {
        &self.patterns
    }

    /// True when any `!` pattern exists: an excluded directory may then hold paths that are
    /// sent, so a walker cannot simply skip it.
    pub fn has_exclusions(&self) -> bool {
        self.patterns.iter().any(|p| p.exclusion)
    }

    /// Whether `rel_path` (slash-separated, relative to the context root) is left out: the
    /// last pattern that matches the path or one of its parent directories decides, and a `!`
    /// pattern re-includes. The context root itself is never excluded.
    pub fn excludes(&self, rel_path: &str) -> bool {
        let path = clean(rel_path);
        if path == "." {
            return false;
        }
        let parents = parent_dirs(&path);
        let mut excluded = false;
        for pattern in &self.patterns {
            // A pattern that could only confirm the current verdict need not be tried.
            if pattern.exclusion != excluded {
                continue;
            }
            if pattern.matches(&path) || parents.iter().any(|dir| pattern.matches(dir)) {
                excluded = !pattern.exclusion;
            }
        }
        excluded
    }

    /// Whether some path below the excluded directory `dir` could still be re-included, so a
    /// walker must descend into it. Conservative (it may say yes in vain), never wrong: a path
    /// below an excluded directory comes back only through a `!` pattern matching it or a
    /// directory between, and such a pattern's literal start must agree with `dir/`.
    pub fn may_reinclude_below(&self, dir: &str) -> bool {
        let dir = format!("{}/", clean(dir));
        self.patterns.iter().filter(|p| p.exclusion).any(|p| {
            p.literal_prefix.starts_with(dir.as_str()) || dir.starts_with(p.literal_prefix.as_str())
        })
    }
}

/// Go's `filepath.Dir(path)` split into every ancestor: `a/b/c` gives `a`, `a/b`. Empty for a
/// path without a `/`.
fn parent_dirs(path: &str) -> Vec<&str> {
    let Some(last) = path.rfind('/') else {
        return Vec::new();
    };
    let dir = if last == 0 { "/" } else { &path[..last] };
    let mut parents: Vec<&str> = dir.match_indices('/').map(|(i, _)| &dir[..i]).collect();
    parents.push(dir);
    parents
}

/// Go's `path.Clean`: drops empty and `.` elements, folds `..`, and gives `.` for nothing.
pub(crate) fn clean(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            _ => parts.push(part),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".to_string(),
        (false, false) => joined,
    }
}

/// A pattern element.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(char),
    /// `\c`: a literal, but (as in patternmatcher) it makes the pattern a regex.
    Escaped(char),
    /// `*`: any run of non-`/` characters.
    Star,
    /// `?`: one non-`/` character.
    Question,
    /// `**`, with the `/` right after it (if any) consumed: any number of path segments.
    DoubleStar {
        slash: bool,
    },
    /// `[...]`, already a regex class.
    Class(String),
}

/// Splits a cleaned pattern into tokens, rejecting what Go's `filepath.Match` rejects.
fn tokenize(pattern: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        let token = match c {
            '*' if chars.peek() == Some(&'*') => {
                chars.next();
                Token::DoubleStar {
                    slash: chars.next_if_eq(&'/').is_some(),
                }
            }
            '*' => Token::Star,
            '?' => Token::Question,
            '\\' => match chars.next() {
                Some(escaped) => Token::Escaped(escaped),
                None => return Err("trailing backslash".to_string()),
            },
            '[' => Token::Class(class(&mut chars)?),
            _ => Token::Literal(c),
        };
        tokens.push(token);
    }
    Ok(tokens)
}

/// Reads a character class after its `[` and returns it as a regex class. Go's rules: `^`
/// negates, `-` and `]` must be escaped unless they end a range or the class, no empty class.
fn class(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String, String> {
    let mut out = String::from("[");
    if chars.next_if_eq(&'^').is_some() {
        out.push('^');
    }
    let mut ranges = 0;
    loop {
        if ranges > 0 && chars.next_if_eq(&']').is_some() {
            out.push(']');
            return Ok(out);
        }
        let lo = class_char(chars)?;
        let hi = if chars.next_if_eq(&'-').is_some() {
            class_char(chars)?
        } else {
            lo
        };
        if lo > hi {
            return Err(format!("character range {lo}-{hi} is out of order"));
        }
        out.push_str(&regex::escape(&lo.to_string()));
        if hi != lo {
            out.push('-');
            out.push_str(&regex::escape(&hi.to_string()));
        }
        ranges += 1;
    }
}

fn class_char(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<char, String> {
    match chars.next() {
        None => Err("unclosed character class".to_string()),
        Some('-') | Some(']') => Err("unescaped '-' or ']' in character class".to_string()),
        Some('\\') => chars
            .next()
            .ok_or_else(|| "unclosed character class".to_string()),
        Some(c) => Ok(c),
    }
}

/// Picks the match kind as patternmatcher does and returns it with the pattern's literal
/// start.
fn compile(tokens: &[Token]) -> Result<(Kind, String), regex::Error> {
    let literal = |t: &Token| match t {
        Token::Literal(c) => Some(*c),
        _ => None,
    };
    let literals = |ts: &[Token]| ts.iter().map(literal).collect::<Option<String>>();
    let literal_prefix: String = tokens
        .iter()
        .map_while(|t| match t {
            Token::Literal(c) | Token::Escaped(c) => Some(*c),
            _ => None,
        })
        .collect();

    if literals(tokens).is_some() {
        return Ok((Kind::Exact, literal_prefix));
    }
    if let [Token::DoubleStar { slash }, rest @ ..] = tokens {
        if let Some(text) = literals(rest) {
            let suffix = if *slash { format!("/{text}") } else { text };
            return Ok((Kind::Suffix(suffix), String::new()));
        }
    }
    if let [rest @ .., Token::DoubleStar { .. }] = tokens {
        if let Some(prefix) = literals(rest) {
            return Ok((Kind::Prefix(prefix), literal_prefix));
        }
    }

    let mut re = String::from("^");
    for (i, token) in tokens.iter().enumerate() {
        match token {
            Token::Literal(c) | Token::Escaped(c) => re.push_str(&regex::escape(&c.to_string())),
            Token::Star => re.push_str("[^/]*"),
            Token::Question => re.push_str("[^/]"),
            // A trailing `**` takes everything below; elsewhere zero or more whole segments.
            Token::DoubleStar { .. } if i + 1 == tokens.len() => re.push_str(".*"),
            Token::DoubleStar { .. } => re.push_str("(.*/)?"),
            Token::Class(class) => re.push_str(class),
        }
    }
    re.push('$');
    Ok((Kind::Regex(Regex::new(&re)?), literal_prefix))
}
