//! `WWW-Authenticate` parsing (RFC 7235): a scheme followed by `key=value` or
//! `key="quoted value"` parameters. One header may carry several challenges.

use std::collections::BTreeMap;

/// One challenge: the scheme, lowercased, and its parameters with lowercased keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

impl Challenge {
    pub fn param(&self, key: &str) -> Option<&str> {
        self.params.get(key).map(String::as_str)
    }

    /// The scopes a Bearer challenge names (space-separated in one `scope` parameter).
    pub fn scopes(&self) -> Vec<String> {
        self.param("scope")
            .map(|s| s.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default()
    }
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
}

impl Lexer<'_> {
    fn skip_ws(&mut self) {
        while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t') {
            self.i += 1;
        }
    }

    fn skip_commas(&mut self) {
        loop {
            self.skip_ws();
            if self.peek() == Some(b',') {
                self.i += 1;
            } else {
                break;
            }
        }
    }

    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn token(&mut self) -> String {
        let start = self.i;
        while let Some(c) = self.peek() {
            if matches!(c, b' ' | b'\t' | b',' | b'=' | b'"') {
                break;
            }
            self.i += 1;
        }
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }

    fn quoted(&mut self) -> String {
        // Called on the opening quote; backslash escapes the next byte.
        self.i += 1;
        let mut out = Vec::new();
        while let Some(c) = self.peek() {
            self.i += 1;
            match c {
                b'"' => break,
                b'\\' => {
                    if let Some(n) = self.peek() {
                        out.push(n);
                        self.i += 1;
                    }
                }
                _ => out.push(c),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// Parse every challenge in a header value. Unparseable trailing garbage is dropped.
pub fn parse(header: &str) -> Vec<Challenge> {
    let mut lx = Lexer {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out: Vec<Challenge> = Vec::new();
    loop {
        lx.skip_commas();
        if lx.peek().is_none() {
            break;
        }
        let word = lx.token();
        if word.is_empty() {
            lx.i += 1; // a stray '=' or quote: skip it rather than loop forever
            continue;
        }
        lx.skip_ws();
        if lx.peek() == Some(b'=') {
            lx.i += 1;
            lx.skip_ws();
            let value = if lx.peek() == Some(b'"') {
                lx.quoted()
            } else {
                lx.token()
            };
            if let Some(c) = out.last_mut() {
                c.params.insert(word.to_ascii_lowercase(), value);
            }
        } else {
            out.push(Challenge {
                scheme: word.to_ascii_lowercase(),
                params: BTreeMap::new(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_with_scope() {
        let c = parse(
            r#"Bearer realm="http://127.0.0.1:5002/token",service="test-registry",scope="repository:foo/bar:pull,push repository:other/repo:pull""#,
        );
        assert_eq!(c.len(), 1);
        assert_eq!(c[0].scheme, "bearer");
        assert_eq!(c[0].param("realm"), Some("http://127.0.0.1:5002/token"));
        assert_eq!(c[0].param("service"), Some("test-registry"));
        assert_eq!(
            c[0].scopes(),
            ["repository:foo/bar:pull,push", "repository:other/repo:pull"]
        );
    }

    #[test]
    fn basic_and_several_challenges() {
        let c = parse(r#"Basic realm="basic-realm""#);
        assert_eq!(c[0].scheme, "basic");
        assert_eq!(c[0].param("realm"), Some("basic-realm"));

        let c = parse(
            r#"Basic realm="a, b", Bearer realm=https://auth.example/token, service = "svc", error="invalid_token""#,
        );
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].param("realm"), Some("a, b"));
        assert_eq!(c[1].scheme, "bearer");
        assert_eq!(c[1].param("realm"), Some("https://auth.example/token"));
        assert_eq!(c[1].param("service"), Some("svc"));
        assert_eq!(c[1].param("error"), Some("invalid_token"));
    }

    #[test]
    fn escapes_and_garbage() {
        let c = parse(r#"Bearer realm="x\"y", ="#);
        assert_eq!(c[0].param("realm"), Some("x\"y"));
        assert!(parse("").is_empty());
        assert!(parse(" , ,").is_empty());
    }
}
