//! Raw instruction nodes: one logical line split into keyword, `--flags` and arguments, with
//! each instruction's argument rules (JSON or shell form, name=value pairs, plain strings).
//!
//! This is BuildKit's "Layer A": nothing is expanded and quotes stay where they were, so the
//! nodes dump exactly like Docker's parser. Typing and validation happen in `convert`.

use super::error::{ParseError, ParseErrorKind};

/// A position in the source: 1-based line, 1-based character column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    pub(crate) fn error(self, kind: ParseErrorKind) -> ParseError {
        ParseError {
            line: self.line,
            column: self.column,
            kind,
        }
    }
}

/// A here-document attached to a RUN, COPY or ADD line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word, quotes removed.
    pub name: String,
    /// The body, each line with its line ending; with `<<-` leading tabs are already removed.
    pub content: String,
    /// False when any part of the delimiter was quoted (`<<'EOF'`, `<<"EOF"`): the body is
    /// then taken literally, with no variable expansion.
    pub expand: bool,
    /// `<<-`: leading tabs were stripped from the body and the terminator.
    pub chomp: bool,
    /// The file descriptor written before `<<` (`3<<EOF`), 0 when none was.
    pub fd: u32,
}

/// One instruction as Docker's parser sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The instruction word as written (any case).
    pub keyword: String,
    /// Leading `--name[=value]` words, quotes removed.
    pub flags: Vec<String>,
    /// The arguments, raw (see the module documentation).
    pub args: Vec<String>,
    /// The wrapped instruction of an ONBUILD.
    pub child: Option<Box<Node>>,
    /// The arguments were a JSON array (exec form).
    pub json: bool,
    pub heredocs: Vec<Heredoc>,
    /// The logical line after continuations were joined, without the heredoc bodies.
    pub original: String,
    pub start_line: usize,
    pub end_line: usize,
    pub keyword_pos: Pos,
    /// Where the arguments start (after the flags); just past the keyword when there are none.
    pub args_pos: Pos,
    /// Where each flag starts.
    pub flag_pos: Vec<Pos>,
}

/// Maps byte offsets in a logical line (continuations joined) back to source positions.
pub(crate) struct LineMap {
    /// (offset in the logical line, source line, column of that offset).
    segments: Vec<(usize, usize, usize)>,
    logical: String,
}

impl LineMap {
    pub(crate) fn new() -> LineMap {
        LineMap {
            segments: Vec::new(),
            logical: String::new(),
        }
    }

    pub(crate) fn push(&mut self, text: &str, line: usize, column: usize) {
        self.segments.push((self.logical.len(), line, column));
        self.logical.push_str(text);
    }

    pub(crate) fn logical(&self) -> &str {
        &self.logical
    }

    pub(crate) fn pos(&self, offset: usize) -> Pos {
        let seg = self
            .segments
            .iter()
            .rev()
            .find(|s| s.0 <= offset)
            .or(self.segments.first());
        let Some(&(start, line, column)) = seg else {
            return Pos { line: 1, column: 1 };
        };
        let end = offset.min(self.logical.len());
        let chars = self
            .logical
            .get(start..end)
            .map_or(0, |s| s.chars().count());
        Pos {
            line,
            column: column + chars,
        }
    }
}

/// Whitespace as Docker's splitting regex `[\t\v\f\r ]+` knows it.
pub(crate) fn is_ws(c: char) -> bool {
    matches!(c, '\t' | '\u{b}' | '\u{c}' | '\r' | ' ')
}

/// How many ONBUILDs deep the raw parse follows (Docker only allows one).
const MAX_ONBUILD_NESTING: usize = 8;

/// Splits `line` (which starts at `base` in the logical line, `depth` ONBUILDs deep) into a
/// node. Line numbers and heredocs are filled in by the caller.
pub(crate) fn node_from_line(
    line: &str,
    base: usize,
    map: &LineMap,
    escape: char,
    depth: usize,
) -> Result<Node, ParseError> {
    let lead = line.len() - line.trim_start().len();
    let trimmed = line.trim();
    let kw_end = trimmed.find(is_ws).unwrap_or(trimmed.len());
    let keyword = &trimmed[..kw_end];
    let after_kw = &trimmed[kw_end..];
    let rest_start = kw_end + (after_kw.len() - after_kw.trim_start_matches(is_ws).len());
    let (flags, args_off) = extract_flags(&trimmed[rest_start..]);
    let args_start = rest_start + args_off;
    let args_untrimmed = &trimmed[args_start..];
    let args_start = args_start + (args_untrimmed.len() - args_untrimmed.trim_start().len());
    let rest = args_untrimmed.trim();
    let abs = |off: usize| map.pos(base + lead + off);
    let args_pos = if rest.is_empty() && flags.is_empty() {
        // Nothing follows the keyword: point where the arguments should have started.
        let p = abs(kw_end);
        Pos {
            column: p.column + 1,
            ..p
        }
    } else {
        abs(args_start)
    };
    let flag_pos = flags.iter().map(|(off, _)| abs(rest_start + off)).collect();
    let mut node = Node {
        keyword: keyword.to_string(),
        flags: flags.into_iter().map(|(_, f)| f).collect(),
        args: Vec::new(),
        child: None,
        json: false,
        heredocs: Vec::new(),
        original: line.to_string(),
        start_line: 0,
        end_line: 0,
        keyword_pos: abs(0),
        args_pos,
        flag_pos,
    };
    let err = |kind| args_pos.error(kind);
    let err_at = |(off, kind): (usize, ParseErrorKind)| abs(args_start + off).error(kind);
    match keyword.to_ascii_lowercase().as_str() {
        "run" | "cmd" | "entrypoint" | "shell" => maybe_json(&mut node, rest).map_err(err)?,
        "add" | "copy" | "volume" => {
            if !json_args(&mut node, rest).map_err(err)? {
                node.args = split_ws(rest);
            }
        }
        "from" | "expose" => node.args = split_ws(rest),
        "arg" => node.args = parse_words(rest, escape).into_iter().map(|w| w.1).collect(),
        "env" | "label" => node.args = name_values(keyword, rest, escape).map_err(err_at)?,
        "user" | "workdir" | "maintainer" | "stopsignal" => {
            if !rest.is_empty() {
                node.args = vec![rest.to_string()];
            }
        }
        "healthcheck" => {
            let type_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            if type_end > 0 {
                node.args.push(rest[..type_end].to_string());
                let cmd = rest[type_end..].trim_start();
                maybe_json(&mut node, cmd).map_err(err)?;
            }
        }
        "onbuild" => {
            // `ONBUILD ONBUILD ...` is rejected later; stop nesting early so a hostile line
            // of thousands of ONBUILDs cannot recurse deeply.
            if !rest.is_empty() && depth < MAX_ONBUILD_NESTING {
                let child = node_from_line(rest, base + lead + args_start, map, escape, depth + 1)?;
                node.child = Some(Box::new(child));
            }
        }
        // Unknown words still make a node (with one empty argument, as Docker's dump shows);
        // `convert` rejects them with a position.
        _ => node.args = vec![String::new()],
    }
    Ok(node)
}

/// Leading `--flag[=value]` words of `line`: quotes and `\` escapes removed; a bare `--`
/// ends them. Returns the flags with their byte offsets and where the rest begins.
fn extract_flags(line: &str) -> (Vec<(usize, String)>, usize) {
    let mut flags = Vec::new();
    let mut chars = line.char_indices().peekable();
    loop {
        while chars.next_if(|(_, c)| c.is_whitespace()).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            return (flags, line.len());
        };
        if !line[start..].starts_with("--") {
            return (flags, start);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut end = line.len();
        while let Some((i, c)) = chars.next() {
            match quote {
                None if c.is_whitespace() => {
                    end = i;
                    break;
                }
                None if c == '\'' || c == '"' => quote = Some(c),
                Some(q) if c == q => quote = None,
                _ if c == '\\' => {
                    if let Some((_, n)) = chars.next() {
                        word.push(n);
                    }
                }
                _ => word.push(c),
            }
        }
        if word == "--" {
            return (flags, end);
        }
        flags.push((start, word));
    }
}

/// Splits on Docker's whitespace, keeping nothing empty.
fn split_ws(rest: &str) -> Vec<String> {
    rest.split(is_ws)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// Tries the JSON array form; `Ok(false)` when `rest` is not a JSON array at all.
fn json_args(node: &mut Node, rest: &str) -> Result<bool, ParseErrorKind> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Ok(false);
    }
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(rest)
    else {
        // Not valid JSON: Docker silently falls back to the shell form.
        return Ok(false);
    };
    let mut args = Vec::with_capacity(items.len());
    for item in items {
        match item {
            serde_json::Value::String(s) => args.push(s),
            _ => {
                return Err(ParseErrorKind::NotStringArray(
                    node.keyword.to_ascii_uppercase(),
                ))
            }
        }
    }
    node.args.extend(args);
    node.json = true;
    Ok(true)
}

/// Exec form when `rest` is a JSON string array, else the whole text as one shell string.
fn maybe_json(node: &mut Node, rest: &str) -> Result<(), ParseErrorKind> {
    if !rest.is_empty() && !json_args(node, rest)? {
        node.args.push(rest.to_string());
    }
    Ok(())
}

/// Words separated by whitespace, where quotes group and the escape character protects the
/// next character; quotes and escapes are kept in the words. Each word comes with the byte
/// offset where it starts.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<(usize, String)> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut start = 0;
    let mut blank_ok = false;
    let mut quote: Option<char> = None;
    let mut chars = rest.char_indices();
    while let Some((i, c)) = chars.next() {
        match quote {
            None if c.is_whitespace() => {
                if blank_ok || !word.is_empty() {
                    words.push((start, std::mem::take(&mut word)));
                }
                blank_ok = false;
            }
            None => {
                if word.is_empty() && !blank_ok {
                    start = i;
                }
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    blank_ok = true;
                }
                if c == escape {
                    // An escape at the very end escapes nothing and is dropped.
                    let Some((_, n)) = chars.next() else { break };
                    word.push(c);
                    word.push(n);
                } else {
                    word.push(c);
                }
            }
            Some(q) => {
                if c == q {
                    quote = None;
                }
                if c == escape && q != '\'' {
                    let Some((_, n)) = chars.next() else {
                        quote = None;
                        continue;
                    };
                    word.push(c);
                    word.push(n);
                } else {
                    word.push(c);
                }
            }
        }
    }
    if blank_ok || !word.is_empty() {
        words.push((start, word));
    }
    words
}

/// ENV and LABEL: `name value...` (legacy, one pair, separator "") or `name=value ...`
/// (separator "="), as `[name, value, separator]` triples. Errors carry the offset of the
/// offending word.
fn name_values(
    keyword: &str,
    rest: &str,
    escape: char,
) -> Result<Vec<String>, (usize, ParseErrorKind)> {
    let words = parse_words(rest, escape);
    let Some((_, first)) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let Some((name, value)) = rest.split_once(is_ws) else {
            return Err((
                0,
                ParseErrorKind::MissingValue(keyword.to_ascii_uppercase()),
            ));
        };
        let value = value.trim_start_matches(is_ws);
        return Ok(vec![name.to_string(), value.to_string(), String::new()]);
    }
    let mut out = Vec::with_capacity(words.len() * 3);
    for (offset, word) in words {
        let Some((name, value)) = word.split_once('=') else {
            return Err((
                offset,
                ParseErrorKind::MissingEquals {
                    instruction: keyword.to_ascii_uppercase(),
                    word,
                },
            ));
        };
        out.extend([name.to_string(), value.to_string(), "=".to_string()]);
    }
    Ok(out)
}
