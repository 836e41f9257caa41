//! The text dump of raw nodes that BuildKit's parser tests compare against: one
//! S-expression per instruction, strings quoted like Go's `strconv.Quote`.

use std::fmt::Write;

use super::node::Node;
use super::syntax::Ast;

/// Dumps every instruction on its own line, each line ending in a newline.
pub fn dump_ast(ast: &Ast) -> String {
    let mut out = String::new();
    for node in &ast.nodes {
        out.push('(');
        node_sexp(node, &mut out);
        out.push_str(")\n");
    }
    out
}

fn node_sexp(node: &Node, out: &mut String) {
    out.push_str(&node.keyword.to_lowercase());
    if !node.flags.is_empty() {
        out.push_str(" [");
        for (i, f) in node.flags.iter().enumerate() {
            if i > 0 {
                out.push(' ');
            }
            go_quote(f, out);
        }
        out.push(']');
    }
    if let Some(child) = &node.child {
        out.push_str(" (");
        node_sexp(child, out);
        out.push(')');
    }
    for arg in &node.args {
        out.push(' ');
        go_quote(arg, out);
    }
}

/// Quotes `s` as Go's `strconv.Quote` does: `\"`, `\\`, the C escapes, `\xNN` for other
/// ASCII controls, `\uNNNN`/`\UNNNNNNNN` for non-printable characters, the rest as is.
pub fn go_quote(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if !is_go_printable(c) => {
                let _ = if (c as u32) < 0x10000 {
                    write!(out, "\\u{:04x}", c as u32)
                } else {
                    write!(out, "\\U{:08x}", c as u32)
                };
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// An approximation of Go's `unicode.IsPrint` without Unicode tables: controls, whitespace
/// other than the space, format characters, private use and non-characters are not
/// printable. (Unassigned code points are treated as printable; Go would escape them.)
fn is_go_printable(c: char) -> bool {
    let u = c as u32;
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    let format = matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF
        | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3
        | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F);
    let private = matches!(u, 0xE000..=0xF8FF | 0xF0000..=0xFFFFD | 0x100000..=0x10FFFD);
    let nonchar = matches!(u, 0xFDD0..=0xFDEF) || (u & 0xFFFE) == 0xFFFE;
    !(format || private || nonchar)
}

#[cfg(test)]
mod tests {
    use super::go_quote;

    fn q(s: &str) -> String {
        let mut out = String::new();
        go_quote(s, &mut out);
        out
    }

    #[test]
    fn quotes_like_go() {
        assert_eq!(q("a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(q("\u{0}\u{7f}\u{1b}"), r#""\x00\x7f\x1b""#);
        assert_eq!(q("\u{7}\u{8}\u{b}\u{c}\n\r\t"), r#""\a\b\v\f\n\r\t""#);
        assert_eq!(q("♥☃한국어"), "\"♥☃한국어\"");
        assert_eq!(q("\u{a0}\u{200b}\u{feff}"), r#""\u00a0\u200b\ufeff""#);
        assert_eq!(q("\u{e0001}"), r#""\U000e0001""#);
        assert_eq!(q("\u{80}"), r#""\u0080""#);
    }
}
