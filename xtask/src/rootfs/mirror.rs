//! Which Debian mirror apt uses on this machine, and through which proxy: debootstrap must
//! go exactly the same way, since that mirror may be the only host we can reach.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::sys::output;

/// One `deb` source apt is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    pub uri: String,
    pub suites: Vec<String>,
    /// The keyring file of `Signed-By`, when it names one (it may also hold the key inline).
    pub keyring: Option<String>,
}

/// The mirror for `suite` and the proxy apt would use to reach it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub source: Source,
    /// `(variable, value)` for debootstrap's wget: `http_proxy=...`, or the variable to
    /// unset when apt goes `DIRECT` (value `None`).
    pub proxy: Option<(String, Option<String>)>,
}

/// Find apt's mirror for `suite` in /etc/apt (deb822 `.sources` and one-line `.list` files).
pub fn from_apt(etc_apt: &Path, suite: &str) -> Result<Mirror> {
    let mut sources = Vec::new();
    let mut files = vec![etc_apt.join("sources.list")];
    if let Ok(rd) = std::fs::read_dir(etc_apt.join("sources.list.d")) {
        let mut more: Vec<_> = rd.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        files.extend(more);
    }
    for f in &files {
        let name = f.to_string_lossy();
        let parse = if name.ends_with(".sources") {
            parse_deb822
        } else if name.ends_with(".list") {
            parse_one_line
        } else {
            continue;
        };
        if let Ok(text) = std::fs::read_to_string(f) {
            sources.extend(parse(&text));
        }
    }
    let Some(source) = sources
        .into_iter()
        .find(|s| s.suites.iter().any(|x| x == suite))
    else {
        bail!(
            "apt has no `deb` source for {suite} in {}: add one (debootstrap uses apt's mirror)",
            etc_apt.display()
        );
    };
    let proxy = apt_proxy(&source.uri)?;
    Ok(Mirror { source, proxy })
}

/// deb822 stanzas (`Types:`, `URIs:`, `Suites:`, `Signed-By:`), blank-line separated.
pub fn parse_deb822(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let field = |key: &str| {
            stanza
                .lines()
                .filter(|l| !l.starts_with(['#', ' ', '\t']))
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.trim().eq_ignore_ascii_case(key).then(|| v.trim())
                })
                .map(str::to_owned)
        };
        let types = field("Types").unwrap_or_default();
        let enabled = field("Enabled").is_none_or(|v| v != "no");
        if !enabled || !types.split_whitespace().any(|t| t == "deb") {
            continue;
        }
        let (Some(uris), Some(suites)) = (field("URIs"), field("Suites")) else {
            continue;
        };
        let keyring = field("Signed-By").filter(|k| k.starts_with('/'));
        let suites: Vec<String> = suites.split_whitespace().map(str::to_owned).collect();
        for uri in uris.split_whitespace() {
            out.push(Source {
                uri: uri.to_owned(),
                suites: suites.clone(),
                keyring: keyring.clone(),
            });
        }
    }
    out
}

/// `deb [opt=val ...] URI SUITE COMPONENT...` lines.
pub fn parse_one_line(text: &str) -> Vec<Source> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or_default().trim();
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let mut rest = rest.trim_start();
        let mut keyring = None;
        if let Some(opts) = rest.strip_prefix('[') {
            let Some((opts, after)) = opts.split_once(']') else {
                continue;
            };
            keyring = opts
                .split_whitespace()
                .find_map(|o| o.strip_prefix("signed-by="))
                .filter(|k| k.starts_with('/'))
                .map(str::to_owned);
            rest = after;
        }
        let mut words = rest.split_whitespace();
        let (Some(uri), Some(suite)) = (words.next(), words.next()) else {
            continue;
        };
        out.push(Source {
            uri: uri.to_owned(),
            suites: vec![suite.to_owned()],
            keyring,
        });
    }
    out
}

/// apt's `Acquire::<scheme>::Proxy[::<host>]` for `uri`, as the variable wget reads.
fn apt_proxy(uri: &str) -> Result<Option<(String, Option<String>)>> {
    let (scheme, rest) = uri
        .split_once("://")
        .with_context(|| format!("apt source {uri:?} has no scheme"))?;
    if scheme != "http" && scheme != "https" {
        return Ok(None);
    }
    let host = rest.split(['/', ':']).next().unwrap_or_default();
    let shell = output(Command::new("apt-config").args([
        "shell",
        "P",
        &format!("Acquire::{scheme}::Proxy"),
        "H",
        &format!("Acquire::{scheme}::Proxy::{host}"),
        "A",
        &format!("Acquire::{scheme}::Proxy-Auto-Detect"),
    ]))?;
    Ok(proxy_from_shell(&shell, scheme))
}

/// Read `apt-config shell` output (`P='...'` lines); the per-host setting wins.
pub fn proxy_from_shell(shell: &str, scheme: &str) -> Option<(String, Option<String>)> {
    let get = |var: &str| {
        shell.lines().find_map(|l| {
            l.strip_prefix(var)?
                .strip_prefix('=')
                .map(|v| v.trim_matches('\'').to_owned())
        })
    };
    if get("A").is_some() {
        eprintln!("xtask: apt uses Proxy-Auto-Detect, which debootstrap cannot follow");
    }
    let var = format!("{scheme}_proxy");
    match get("H").or_else(|| get("P")) {
        Some(v) if v.eq_ignore_ascii_case("DIRECT") => Some((var, None)),
        Some(v) if !v.is_empty() => Some((var, Some(v))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST_SOURCES: &str = "Types: deb
# http://snapshot.debian.org/archive/debian/20250520T000000Z
URIs: http://deb.debian.org/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://deb.debian.org/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
";

    #[test]
    fn deb822_as_on_debian_images() {
        let s = parse_deb822(HOST_SOURCES);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].uri, "http://deb.debian.org/debian");
        assert_eq!(s[0].suites, ["bookworm", "bookworm-updates"]);
        assert_eq!(
            s[0].keyring.as_deref(),
            Some("/usr/share/keyrings/debian-archive-keyring.gpg")
        );
        assert_eq!(s[1].suites, ["bookworm-security"]);
    }

    #[test]
    fn deb822_skips_disabled_and_deb_src() {
        let s = parse_deb822(
            "Types: deb-src\nURIs: http://a/\nSuites: bookworm\n\n\
             Types: deb\nEnabled: no\nURIs: http://b/\nSuites: bookworm\n\n\
             Types: deb\nURIs: http://c/\nSuites: bookworm\nSigned-By:\n -----BEGIN PGP",
        );
        assert_eq!(s.len(), 1);
        assert_eq!(s[0].uri, "http://c/");
        assert_eq!(s[0].keyring, None);
    }

    #[test]
    fn one_line_with_options() {
        let s = parse_one_line(
            "# comment\ndeb-src http://x/ bookworm main\n\
             deb [arch=amd64 signed-by=/k.gpg] http://m/debian bookworm main # trailing\n",
        );
        assert_eq!(
            s,
            [Source {
                uri: "http://m/debian".into(),
                suites: vec!["bookworm".into()],
                keyring: Some("/k.gpg".into()),
            }]
        );
    }

    #[test]
    fn proxy_per_host_wins() {
        assert_eq!(proxy_from_shell("", "http"), None);
        assert_eq!(
            proxy_from_shell("P='http://p:3128/'\n", "http"),
            Some(("http_proxy".into(), Some("http://p:3128/".into())))
        );
        assert_eq!(
            proxy_from_shell("P='http://p:3128/'\nH='DIRECT'\n", "http"),
            Some(("http_proxy".into(), None))
        );
    }
}
