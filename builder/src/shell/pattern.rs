//! Shell glob patterns for `${v#p}`, `${v%p}` and `${v/p/r}`: `*`, `?` and escaped literals.
//!
//! Owns only matching of one pattern against one string; it never expands variables (the
//! lexer hands it an already-expanded pattern that still carries its escape characters).

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Star,
    Any,
    Lit(char),
}

/// A compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    toks: Vec<Tok>,
}

/// Why a pattern could not be compiled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BadEscape(pub char);

impl Pattern {
    /// Compiles `src`, in which `escape` quotes the next character. An escape before `}` or
    /// `/` only protected that character from ending the `${...}` form and is dropped; before
    /// anything but `*`, `?` or the escape itself it is an error, as in BuildKit.
    pub(crate) fn compile(src: &str, escape: char) -> Result<Pattern, BadEscape> {
        let mut toks = Vec::new();
        let mut chars = src.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '*' => toks.push(Tok::Star),
                '?' => toks.push(Tok::Any),
                c if c == escape => match chars.peek().copied() {
                    Some('}') | Some('/') => {}
                    Some(n) if n == '*' || n == '?' || n == escape => {
                        chars.next();
                        toks.push(Tok::Lit(n));
                    }
                    Some(n) => return Err(BadEscape(n)),
                    None => return Err(BadEscape(escape)),
                },
                c => toks.push(Tok::Lit(c)),
            }
        }
        Ok(Pattern { toks })
    }

    /// Whether the whole of `s` matches.
    pub(crate) fn matches(&self, s: &[char]) -> bool {
        // Classic two-pointer glob match with backtracking to the last star: linear in
        // practice and never recursive, so hostile input cannot blow the stack.
        let (mut p, mut i) = (0usize, 0usize);
        let mut star: Option<(usize, usize)> = None;
        while i < s.len() {
            match self.toks.get(p) {
                Some(Tok::Any) => {
                    p += 1;
                    i += 1;
                }
                Some(Tok::Lit(c)) if *c == s[i] => {
                    p += 1;
                    i += 1;
                }
                Some(Tok::Star) => {
                    star = Some((p, i));
                    p += 1;
                }
                _ => match star {
                    Some((sp, si)) => {
                        p = sp + 1;
                        i = si + 1;
                        star = Some((sp, si + 1));
                    }
                    None => return false,
                },
            }
        }
        self.toks[p.min(self.toks.len())..]
            .iter()
            .all(|t| *t == Tok::Star)
    }

    /// `${v#p}` / `${v##p}`: `value` without its shortest (or longest) matching prefix.
    pub(crate) fn trim_prefix(&self, value: &str, longest: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let ends: Box<dyn Iterator<Item = usize>> = if longest {
            Box::new((0..=chars.len()).rev())
        } else {
            Box::new(0..=chars.len())
        };
        for end in ends {
            if self.matches(&chars[..end]) {
                return chars[end..].iter().collect();
            }
        }
        value.to_string()
    }

    /// `${v%p}` / `${v%%p}`: `value` without its shortest (or longest) matching suffix.
    pub(crate) fn trim_suffix(&self, value: &str, longest: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let starts: Box<dyn Iterator<Item = usize>> = if longest {
            Box::new(0..=chars.len())
        } else {
            Box::new((0..=chars.len()).rev())
        };
        for start in starts {
            if self.matches(&chars[start..]) {
                return chars[..start].iter().collect();
            }
        }
        value.to_string()
    }

    /// The leftmost, then longest, match at or after `from`: `(start, end)` in chars.
    fn find(&self, s: &[char], from: usize) -> Option<(usize, usize)> {
        (from..=s.len()).find_map(|start| {
            (start..=s.len())
                .rev()
                .find(|&end| self.matches(&s[start..end]))
                .map(|end| (start, end))
        })
    }

    /// `${v/p/r}` (first match) and `${v//p/r}` (every match).
    pub(crate) fn replace(&self, value: &str, replacement: &str, all: bool) -> String {
        let chars: Vec<char> = value.chars().collect();
        let mut out = String::new();
        let mut pos = 0;
        while let Some((start, end)) = self.find(&chars, pos) {
            out.extend(&chars[pos..start]);
            out.push_str(replacement);
            if end == start {
                // An empty match would repeat forever: keep one character and go on.
                if let Some(c) = chars.get(start) {
                    out.push(*c);
                }
                pos = start + 1;
            } else {
                pos = end;
            }
            if !all || pos > chars.len() {
                break;
            }
        }
        if pos <= chars.len() {
            out.extend(&chars[pos..]);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(s: &str) -> Pattern {
        Pattern::compile(s, '\\').unwrap()
    }

    #[test]
    fn matching() {
        let m = |p: &str, s: &str| pat(p).matches(&s.chars().collect::<Vec<_>>());
        assert!(m("*", ""));
        assert!(m("a*c", "abbbc"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m(r"\*", "*"));
        assert!(!m(r"\*", "x"));
        assert!(m("*x*y", "xxyy"));
    }

    #[test]
    fn bad_escapes() {
        assert_eq!(Pattern::compile(r"\x", '\\'), Err(BadEscape('x')));
        assert_eq!(Pattern::compile("\\", '\\'), Err(BadEscape('\\')));
        assert!(Pattern::compile(r"\}\/", '\\').is_ok());
    }

    #[test]
    fn trims() {
        assert_eq!(pat("*x").trim_prefix("xxyy", false), "xyy");
        assert_eq!(pat("*x").trim_prefix("xxyy", true), "yy");
        assert_eq!(pat("y*").trim_suffix("xxyy", false), "xxy");
        assert_eq!(pat("y*").trim_suffix("xxyy", true), "xx");
        assert_eq!(pat("z").trim_suffix("xxyy", true), "xxyy");
    }

    #[test]
    fn replaces() {
        assert_eq!(pat("/tmp").replace("/tmp/tmp/bar", "", false), "/tmp/bar");
        assert_eq!(pat("/tmp").replace("/tmp/tmp/bar", "", true), "/bar");
        assert_eq!(pat("").replace("xxyy", "ww", false), "wwxxyy");
        assert_eq!(pat("").replace("xxyy", "", true), "xxyy");
        assert_eq!(
            pat(r"\*/").replace("/foo*/*/*.txt", ".", true),
            "/foo..*.txt"
        );
    }
}
