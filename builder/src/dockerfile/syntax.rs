//! From source text to raw nodes: parser directives, comments, line continuations and
//! here-documents.
//!
//! Owns the line-level rules of Docker's parser; what the words of a line mean is `node`'s
//! business, and nothing here expands a variable.

use super::error::{ParseError, ParseErrorKind};
use super::node::{node_from_line, Heredoc, LineMap, Node, Pos};
use crate::shell::Lexer;

/// The parser directives at the top of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    /// The escape character: `\` unless `# escape=`` ` `` said otherwise.
    pub escape: char,
    /// `# syntax=`: names a BuildKit frontend image. Recorded, otherwise ignored.
    pub syntax: Option<String>,
    /// `# check=`: BuildKit's lint configuration. Recorded, otherwise ignored.
    pub check: Option<String>,
}

impl Default for Directives {
    fn default() -> Directives {
        Directives {
            escape: '\\',
            syntax: None,
            check: None,
        }
    }
}

/// Something accepted but worth telling the user about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub line: usize,
    pub message: String,
}

/// The raw parse: what Docker's own parser produces, before any typing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ast {
    pub directives: Directives,
    pub warnings: Vec<Warning>,
    pub nodes: Vec<Node>,
}

/// Directive scanning state: directives are only recognised before the first line that is
/// not one.
#[derive(Default)]
struct DirectiveScan {
    done: bool,
    seen: Vec<String>,
    directives: Directives,
}

impl DirectiveScan {
    /// Looks at one (left-trimmed) line. Stops scanning at the first line that is not a
    /// well-formed directive with a known key; an unknown key makes that line a comment.
    fn see(&mut self, line: &str, pos: Pos) -> Result<(), ParseError> {
        if self.done {
            return Ok(());
        }
        let Some((key, value)) = directive(line) else {
            self.done = true;
            return Ok(());
        };
        let key = key.to_ascii_lowercase();
        if !matches!(key.as_str(), "escape" | "syntax" | "check") {
            self.done = true;
            return Ok(());
        }
        if self.seen.contains(&key) {
            return Err(pos.error(ParseErrorKind::DuplicateDirective(key)));
        }
        match key.as_str() {
            "escape" => match value {
                "\\" => self.directives.escape = '\\',
                "`" => self.directives.escape = '`',
                _ => return Err(pos.error(ParseErrorKind::InvalidEscape(value.to_string()))),
            },
            "syntax" => self.directives.syntax = Some(value.to_string()),
            _ => self.directives.check = Some(value.to_string()),
        }
        self.seen.push(key);
        Ok(())
    }
}

/// `# key = value`: a letter-led alphanumeric key, `=`, and a non-empty value, with
/// whitespace allowed around each part.
fn directive(line: &str) -> Option<(&str, &str)> {
    let rest = line.strip_prefix('#')?.trim_start();
    let key_end = rest
        .find(|c: char| !c.is_ascii_alphanumeric())
        .unwrap_or(rest.len());
    let key = &rest[..key_end];
    if !key.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return None;
    }
    let value = rest[key_end..].trim_start().strip_prefix('=')?.trim();
    (!value.is_empty()).then_some((key, value))
}

/// Parses `src` into raw nodes (BuildKit's parser layer): directives, comments,
/// continuations and heredocs handled; arguments left raw.
pub fn parse_ast(src: &str) -> Result<Ast, ParseError> {
    let src = src.strip_prefix('\u{feff}').unwrap_or(src);
    let lines: Vec<&str> = src.split_inclusive('\n').collect();
    let mut scan = DirectiveScan::default();
    let mut warnings = Vec::new();
    let mut nodes = Vec::new();
    let mut next = 0;
    while next < lines.len() {
        let start_line = next + 1;
        let raw = trim_newline(lines[next]);
        next += 1;
        let text = raw.trim_start();
        let lead = raw.chars().count() - text.chars().count();
        scan.see(
            text,
            Pos {
                line: start_line,
                column: lead + 1,
            },
        )?;
        let escape = scan.directives.escape;
        let text = if text.starts_with('#') { "" } else { text };
        let (first, mut end) = trim_continuation(text, escape);
        if end && first.is_empty() {
            continue;
        }
        let mut map = LineMap::new();
        map.push(first, start_line, lead + 1);
        let mut empty_continuation = false;
        while !end && next < lines.len() {
            let line_no = next + 1;
            let raw = trim_newline(lines[next]);
            next += 1;
            // Comment lines inside a continuation are dropped without ending it.
            if raw.trim_start().starts_with('#') {
                continue;
            }
            if raw.trim_start().is_empty() {
                empty_continuation = true;
                continue;
            }
            let (part, e) = trim_continuation(raw, escape);
            map.push(part, line_no, 1);
            end = e;
        }
        if empty_continuation {
            warnings.push(Warning {
                line: start_line,
                message: "empty continuation line found; Docker says these will become \
                          errors in a future release"
                    .to_string(),
            });
        }
        let mut node = node_from_line(map.logical(), 0, &map, escape, 0)?;
        node.start_line = start_line;
        if let Some(target) = heredoc_target(&mut node) {
            let pos = target.args_pos;
            for mut doc in heredocs_in(map.logical()).map_err(|k| pos.error(k))? {
                let mut terminated = false;
                while next < lines.len() {
                    let line = lines[next];
                    next += 1;
                    let candidate = trim_newline(line);
                    let candidate = if doc.chomp {
                        candidate.trim_start_matches('\t')
                    } else {
                        candidate
                    };
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    doc.content.push_str(if doc.chomp {
                        line.trim_start_matches('\t')
                    } else {
                        line
                    });
                }
                if !terminated {
                    let name = doc.name;
                    return Err(pos.error(ParseErrorKind::UnterminatedHeredoc(name)));
                }
                target.heredocs.push(doc);
            }
        }
        node.end_line = next;
        nodes.push(node);
    }
    if nodes.is_empty() {
        return Err(ParseError {
            line: lines.len().max(1),
            column: 1,
            kind: ParseErrorKind::NoInstructions,
        });
    }
    if scan.directives.syntax.is_some() {
        warnings.insert(
            0,
            Warning {
                line: 1,
                message: "the syntax directive is ignored: berth has one built-in Dockerfile \
                          frontend"
                    .to_string(),
            },
        );
    }
    Ok(Ast {
        directives: scan.directives,
        warnings,
        nodes,
    })
}

fn trim_newline(line: &str) -> &str {
    line.trim_end_matches(['\r', '\n'])
}

/// An escape character at the end of a line (trailing spaces and tabs allowed) continues the
/// instruction on the next line, unless it is itself escaped. Returns the line without it,
/// and whether the instruction ends here.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let trimmed = line.trim_end_matches([' ', '\t']);
    match trimmed.strip_suffix(escape) {
        // Known BuildKit limitation kept for compatibility: `\\\` at the end (an escaped
        // escape, then a continuation) is not treated as a continuation.
        Some(before) if !before.ends_with(escape) => (before, false),
        _ => (line, true),
    }
}

/// The node that may carry heredocs: a non-JSON RUN, COPY or ADD, possibly under ONBUILD.
fn heredoc_target(node: &mut Node) -> Option<&mut Node> {
    let target = if node.keyword.eq_ignore_ascii_case("onbuild") {
        node.child.as_deref_mut()?
    } else {
        node
    };
    let kw = target.keyword.to_ascii_lowercase();
    (matches!(kw.as_str(), "run" | "copy" | "add") && !target.json).then_some(target)
}

/// The heredocs a line opens, in order. Words are found with quotes and escapes kept, so a
/// quoted `"<<EOF"` is not a heredoc.
fn heredocs_in(line: &str) -> Result<Vec<Heredoc>, ParseErrorKind> {
    let lex = Lexer::new('\\')
        .raw_quotes(true)
        .raw_escapes(true)
        .skip_unset(true);
    let none: Vec<(String, String)> = Vec::new();
    let Ok(words) = lex.process(line, &none).map(|e| e.words) else {
        return Ok(Vec::new());
    };
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = heredoc_marker(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// Recognises `[n]<<[-]NAME` where NAME may be quoted; `Ok(None)` for other words.
pub(crate) fn heredoc_marker(word: &str) -> Result<Option<Heredoc>, ParseErrorKind> {
    let digits = word.len() - word.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    let Some(rest) = word[digits..].strip_prefix("<<") else {
        return Ok(None);
    };
    let (chomp, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return Ok(None);
    }
    let none: Vec<(String, String)> = Vec::new();
    let lex = Lexer::new('\\').skip_unset(true);
    let invalid = |e: crate::shell::ExpandError| ParseErrorKind::InvalidHeredoc {
        word: word.to_string(),
        reason: e.to_string(),
    };
    let words = lex.process(rest, &none).map_err(invalid)?.words;
    let [name] = &words[..] else {
        return Ok(None);
    };
    let raw = lex
        .raw_quotes(true)
        .process(rest, &none)
        .map_err(invalid)?
        .words;
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    // Any quoting in the delimiter means "take the body literally".
    let expand = raw.len() == 1 && quotes(name) == quotes(&raw[0]);
    Ok(Some(Heredoc {
        name: name.clone(),
        content: String::new(),
        expand,
        chomp,
        fd: word[..digits].parse().unwrap_or(0),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heredoc_markers() {
        for w in [
            "<<EOF",
            "<<'EOF'",
            "<<\"EOF\"",
            "<<-EOF",
            "<<-'EOF'",
            "<<-\"EOF\"",
        ] {
            let doc = heredoc_marker(w).unwrap().unwrap();
            assert_eq!(doc.name, "EOF", "{w}");
            assert_eq!(doc.expand, !w.contains(['\'', '"']), "{w}");
            assert_eq!(doc.chomp, w.starts_with("<<-"), "{w}");
        }
        for w in ["<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""] {
            assert!(heredoc_marker(w).is_err(), "{w}");
        }
        for w in ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF", "'<<EOF'"] {
            assert_eq!(heredoc_marker(w), Ok(None), "{w}");
        }
        assert_eq!(heredoc_marker("12<<E").unwrap().unwrap().fd, 12);
        assert!(!heredoc_marker("<<E'O'F").unwrap().unwrap().expand);
    }

    #[test]
    fn heredocs_in_lines() {
        let names = |line: &str| -> Vec<String> {
            heredocs_in(line)
                .unwrap()
                .into_iter()
                .map(|d| d.name)
                .collect()
        };
        assert_eq!(names("RUN <<EOF"), ["EOF"]);
        assert_eq!(names("RUN <<-EOF"), ["EOF"]);
        assert_eq!(names("RUN <<'EOF'"), ["EOF"]);
        assert_eq!(names("RUN 4<<EOF"), ["EOF"]);
        assert_eq!(names("RUN <<EOF <<EOF2"), ["EOF", "EOF2"]);
        assert!(names("RUN '<<EOF'").is_empty());
        assert!(names("RUN \"<<EOF\"").is_empty());
    }

    #[test]
    fn directives() {
        assert_eq!(directive("# escape=`"), Some(("escape", "`")));
        assert_eq!(directive("#escape = \\  "), Some(("escape", "\\")));
        assert_eq!(
            directive("# Syntax=docker/dockerfile:1"),
            Some(("Syntax", "docker/dockerfile:1"))
        );
        assert_eq!(directive("# escape="), None);
        assert_eq!(directive("# 1x=y"), None);
        assert_eq!(directive("# just a comment"), None);
        let ast = parse_ast("# syntax=a\n# escape=`\nFROM x\n").unwrap();
        assert_eq!(ast.directives.escape, '`');
        assert_eq!(ast.directives.syntax.as_deref(), Some("a"));
        assert_eq!(ast.warnings.len(), 1);
        // A directive after an ordinary comment is just a comment.
        let ast = parse_ast("# hi\n# escape=`\nFROM x\n").unwrap();
        assert_eq!(ast.directives.escape, '\\');
    }

    #[test]
    fn continuation_rules() {
        assert_eq!(trim_continuation("a \\", '\\'), ("a ", false));
        assert_eq!(trim_continuation("a \\ \t", '\\'), ("a ", false));
        assert_eq!(trim_continuation("\\", '\\'), ("", false));
        assert_eq!(trim_continuation("a \\\\", '\\'), ("a \\\\", true));
        assert_eq!(trim_continuation("a `", '`'), ("a ", false));
        assert_eq!(trim_continuation("a \\", '`'), ("a \\", true));
    }

    #[test]
    fn line_numbers_cover_continuations_and_heredocs() {
        let ast =
            parse_ast("FROM x\nRUN a \\\n  b\nCOPY <<A <<B /d\n1\nA\n2\nB\nUSER u\n").unwrap();
        let lines: Vec<(usize, usize)> = ast
            .nodes
            .iter()
            .map(|n| (n.start_line, n.end_line))
            .collect();
        assert_eq!(lines, [(1, 1), (2, 3), (4, 8), (9, 9)]);
        assert_eq!(ast.nodes[2].heredocs[1].content, "2\n");
    }
}
