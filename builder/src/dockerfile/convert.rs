//! From raw nodes to typed instructions and stages: argument counts, flags, FROM syntax,
//! ONBUILD and HEALTHCHECK rules.
//!
//! Owns validation that needs no variable values; anything that depends on build args is
//! checked when resolving.

use std::time::Duration;

use super::error::{ParseError, ParseErrorKind};
use super::instruction::{
    ArgDecl, Command, Copy, Dockerfile, From, Healthcheck, Instruction, KeyValue, Located, Onbuild,
    Run, Source, Stage,
};
use super::node::{Node, Pos};
use super::syntax::{heredoc_marker, Ast};

/// Types and validates a raw parse.
pub fn convert(ast: Ast) -> Result<Dockerfile, ParseError> {
    let mut meta_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for node in &ast.nodes {
        if node.keyword.eq_ignore_ascii_case("from") {
            let from = from(node)?;
            if let Some(name) = &from.name {
                if stages
                    .iter()
                    .any(|s| s.from.value.name.as_ref() == Some(name))
                {
                    return Err(node
                        .args_pos
                        .error(ParseErrorKind::DuplicateStage(name.clone())));
                }
            }
            stages.push(Stage {
                from: located(node, from),
                instructions: Vec::new(),
            });
            continue;
        }
        let instruction = instruction(node)?;
        match (stages.last_mut(), instruction) {
            (Some(stage), i) => stage.instructions.push(located(node, i)),
            (None, Instruction::Arg(decls)) => meta_args.push(located(node, decls)),
            (None, i) => {
                return Err(node
                    .keyword_pos
                    .error(ParseErrorKind::BeforeFrom(i.keyword().to_string())))
            }
        }
    }
    Ok(Dockerfile {
        directives: ast.directives.clone(),
        warnings: ast.warnings.clone(),
        meta_args,
        stages,
        ast,
    })
}

fn located<T>(node: &Node, value: T) -> Located<T> {
    Located {
        line: node.start_line,
        end_line: node.end_line,
        value,
    }
}

fn upper(node: &Node) -> String {
    node.keyword.to_ascii_uppercase()
}

fn requires(node: &Node, what: &'static str) -> ParseError {
    node.args_pos.error(ParseErrorKind::Requires {
        instruction: upper(node),
        what,
    })
}

fn invalid(node: &Node, message: impl Into<String>) -> ParseError {
    node.args_pos.error(ParseErrorKind::Invalid {
        instruction: upper(node),
        message: message.into(),
    })
}

fn from(node: &Node) -> Result<From, ParseError> {
    let mut flags = Flags::new(node, &["platform"])?;
    let platform = flags.string("platform")?;
    let name = match node.args.as_slice() {
        [] => return Err(requires(node, "an image name")),
        [_] => None,
        [_, as_kw, name] if as_kw.eq_ignore_ascii_case("as") => {
            let name = name.to_ascii_lowercase();
            let valid = name.starts_with(|c: char| c.is_ascii_lowercase())
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !valid {
                return Err(node.args_pos.error(ParseErrorKind::StageName(name)));
            }
            Some(name)
        }
        args => {
            return Err(invalid(
                node,
                format!(
                    "expects IMAGE or IMAGE AS NAME, found {} words: {:?}",
                    args.len(),
                    args
                ),
            ))
        }
    };
    Ok(From {
        image: node.args[0].clone(),
        name,
        platform,
    })
}

fn command(node: &Node) -> Result<Command, ParseError> {
    if node.json {
        return Ok(Command::Exec(node.args.clone()));
    }
    match node.args.first() {
        Some(s) => Ok(Command::Shell(s.clone())),
        None => Err(requires(node, "a command")),
    }
}

fn one_string(node: &Node, what: &'static str) -> Result<String, ParseError> {
    Flags::new(node, &[])?;
    node.args
        .first()
        .cloned()
        .ok_or_else(|| requires(node, what))
}

fn key_values(node: &Node) -> Result<Vec<KeyValue>, ParseError> {
    Flags::new(node, &[])?;
    if node.args.is_empty() {
        return Err(requires(node, "at least one name=value pair"));
    }
    Ok(node
        .args
        .chunks(3)
        .map(|c| KeyValue {
            key: c[0].clone(),
            value: c.get(1).cloned().unwrap_or_default(),
            legacy: c.get(2).is_some_and(String::is_empty),
        })
        .collect())
}

/// Types one non-FROM node.
fn instruction(node: &Node) -> Result<Instruction, ParseError> {
    let kw = node.keyword.to_ascii_lowercase();
    Ok(match kw.as_str() {
        "run" => {
            let mut flags = Flags::new(node, &["mount", "network", "security"])?;
            Instruction::Run(Run {
                mounts: flags.strings("mount"),
                network: flags.string("network")?,
                security: flags.string("security")?,
                command: command(node)?,
                heredocs: node.heredocs.clone(),
            })
        }
        "cmd" | "entrypoint" => {
            Flags::new(node, &[])?;
            let c = command(node)?;
            if kw == "cmd" {
                Instruction::Cmd(c)
            } else {
                Instruction::Entrypoint(c)
            }
        }
        "shell" => {
            Flags::new(node, &[])?;
            if !node.json {
                return Err(invalid(
                    node,
                    "requires the arguments to be in JSON form, e.g. [\"/bin/sh\", \"-c\"]",
                ));
            }
            if node.args.is_empty() {
                return Err(requires(node, "at least one argument"));
            }
            Instruction::Shell(node.args.clone())
        }
        "label" => Instruction::Label(key_values(node)?),
        "env" => Instruction::Env(key_values(node)?),
        "maintainer" => Instruction::Maintainer(one_string(node, "a name")?),
        "user" => Instruction::User(one_string(node, "a user name or uid")?),
        "workdir" => Instruction::Workdir(one_string(node, "a path")?),
        "stopsignal" => Instruction::StopSignal(one_string(node, "a signal name or number")?),
        "expose" => {
            Flags::new(node, &[])?;
            if node.args.is_empty() {
                return Err(requires(node, "at least one port"));
            }
            Instruction::Expose(node.args.clone())
        }
        "volume" => {
            Flags::new(node, &[])?;
            if node.args.is_empty() {
                return Err(requires(node, "at least one path"));
            }
            Instruction::Volume(node.args.clone())
        }
        "add" | "copy" => copy(node, kw == "add")?,
        "arg" => Instruction::Arg(arg(node)?),
        "onbuild" => {
            Flags::new(node, &[])?;
            let Some(child) = &node.child else {
                return Err(requires(node, "an instruction to run downstream"));
            };
            let child_kw = child.keyword.to_ascii_uppercase();
            if matches!(child_kw.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                return Err(child
                    .keyword_pos
                    .error(ParseErrorKind::OnbuildTrigger(child_kw)));
            }
            Instruction::Onbuild(Onbuild {
                expression: child.original.trim().to_string(),
                trigger: Box::new(instruction(child)?),
            })
        }
        "healthcheck" => Instruction::Healthcheck(healthcheck(node)?),
        _ => {
            return Err(node
                .keyword_pos
                .error(ParseErrorKind::UnknownInstruction(node.keyword.clone())))
        }
    })
}

fn arg(node: &Node) -> Result<Vec<ArgDecl>, ParseError> {
    Flags::new(node, &[])?;
    if node.args.is_empty() {
        return Err(requires(node, "at least one name"));
    }
    node.args
        .iter()
        .map(|word| {
            let (name, default) = match word.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (word.as_str(), None),
            };
            if name.is_empty() {
                return Err(invalid(node, format!("has no name before '=' in {word:?}")));
            }
            Ok(ArgDecl {
                name: name.to_string(),
                default,
            })
        })
        .collect()
}

fn copy(node: &Node, add: bool) -> Result<Instruction, ParseError> {
    let allowed: &[&str] = if add {
        &[
            "chown",
            "chmod",
            "link",
            "exclude",
            "checksum",
            "keep-git-dir",
        ]
    } else {
        &["from", "chown", "chmod", "link", "exclude", "parents"]
    };
    let mut flags = Flags::new(node, allowed)?;
    let Some((dest, sources)) = node.args.split_last().filter(|(_, s)| !s.is_empty()) else {
        return Err(requires(
            node,
            "at least two arguments: one or more sources and a destination",
        ));
    };
    let mut heredocs = node.heredocs.iter();
    let mut typed = Vec::with_capacity(sources.len());
    for s in sources {
        // Heredoc words were recognised when the line was read; pair them up in order.
        let is_marker = !node.json && matches!(heredoc_marker(s), Ok(Some(_)));
        match heredocs.next().filter(|_| is_marker) {
            Some(doc) => typed.push(Source::Heredoc(doc.clone())),
            None => typed.push(Source::Path(s.clone())),
        }
    }
    let c = Copy {
        sources: typed,
        dest: dest.clone(),
        from: if add { None } else { flags.string("from")? },
        chown: flags.string("chown")?,
        chmod: flags.string("chmod")?,
        link: flags.bool("link")?,
        parents: !add && flags.bool("parents")?,
        exclude: flags.strings("exclude"),
        checksum: if add { flags.string("checksum")? } else { None },
        keep_git_dir: add && flags.bool("keep-git-dir")?,
        json: node.json,
    };
    Ok(if add {
        Instruction::Add(c)
    } else {
        Instruction::Copy(c)
    })
}

fn healthcheck(node: &Node) -> Result<Healthcheck, ParseError> {
    let mut flags = Flags::new(
        node,
        &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
    )?;
    let Some(kind) = node.args.first() else {
        return Err(requires(node, "a type: CMD or NONE"));
    };
    match kind.to_ascii_uppercase().as_str() {
        "NONE" if node.args.len() == 1 => Ok(Healthcheck::None),
        "NONE" => Err(invalid(node, "NONE takes no arguments")),
        "CMD" => {
            let test = match node.args.get(1) {
                _ if node.json => Command::Exec(node.args[1..].to_vec()),
                Some(s) => Command::Shell(s.clone()),
                None => return Err(requires(node, "a command after CMD")),
            };
            if matches!(&test, Command::Exec(v) if v.is_empty()) {
                return Err(requires(node, "a command after CMD"));
            }
            Ok(Healthcheck::Check {
                test,
                interval: flags.duration("interval")?,
                timeout: flags.duration("timeout")?,
                start_period: flags.duration("start-period")?,
                start_interval: flags.duration("start-interval")?,
                retries: flags
                    .string("retries")?
                    .map(|v| {
                        v.parse::<u32>()
                            .map_err(|_| flags.bad("retries", &v, "a non-negative integer"))
                    })
                    .transpose()?,
            })
        }
        other => Err(invalid(
            node,
            format!("has unknown type {other:?}, expected CMD or NONE"),
        )),
    }
}

/// The `--flags` of one node, checked against what the instruction accepts.
struct Flags<'a> {
    node: &'a Node,
    /// (name, value, position); `None` value for a bare `--name`.
    flags: Vec<(String, Option<String>, Pos)>,
}

impl<'a> Flags<'a> {
    fn new(node: &'a Node, allowed: &[&str]) -> Result<Flags<'a>, ParseError> {
        let mut flags = Vec::new();
        for (i, raw) in node.flags.iter().enumerate() {
            let pos = node.flag_pos.get(i).copied().unwrap_or(node.args_pos);
            let body = raw.trim_start_matches('-');
            let (name, value) = match body.split_once('=') {
                Some((n, v)) => (n.to_ascii_lowercase(), Some(v.to_string())),
                None => (body.to_ascii_lowercase(), None),
            };
            if allowed.is_empty() {
                return Err(pos.error(ParseErrorKind::NoFlags {
                    instruction: upper(node),
                    flag: raw.clone(),
                }));
            }
            if !allowed.contains(&name.as_str()) {
                return Err(pos.error(ParseErrorKind::UnknownFlag {
                    instruction: upper(node),
                    flag: raw.clone(),
                    expected: allowed
                        .iter()
                        .map(|a| format!("--{a}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                }));
            }
            flags.push((name, value, pos));
        }
        Ok(Flags { node, flags })
    }

    fn pos(&self, name: &str) -> Pos {
        self.flags
            .iter()
            .find(|f| f.0 == name)
            .map_or(self.node.args_pos, |f| f.2)
    }

    fn bad(&self, name: &str, value: &str, expected: &'static str) -> ParseError {
        self.pos(name).error(ParseErrorKind::FlagValue {
            flag: format!("--{name}"),
            value: value.to_string(),
            expected,
        })
    }

    /// A flag given at most once, with a value.
    fn string(&mut self, name: &str) -> Result<Option<String>, ParseError> {
        let mut found = self.flags.iter().filter(|f| f.0 == name);
        let Some(first) = found.next() else {
            return Ok(None);
        };
        if let Some(dup) = found.next() {
            return Err(dup
                .2
                .error(ParseErrorKind::DuplicateFlag(format!("--{name}"))));
        }
        match &first.1 {
            Some(v) => Ok(Some(v.clone())),
            None => Err(self.bad(name, "", "--NAME=VALUE")),
        }
    }

    /// A flag that may repeat.
    fn strings(&mut self, name: &str) -> Vec<String> {
        self.flags
            .iter()
            .filter(|f| f.0 == name)
            .map(|f| f.1.clone().unwrap_or_default())
            .collect()
    }

    /// `--name`, `--name=true` or `--name=false`.
    fn bool(&mut self, name: &str) -> Result<bool, ParseError> {
        let Some(f) = self.flags.iter().find(|f| f.0 == name) else {
            return Ok(false);
        };
        match f.1.as_deref() {
            None | Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(v) => Err(self.bad(name, v, "true or false")),
        }
    }

    /// A Go-style duration (`30s`, `1m30s`, `1.5h`) of zero or at least a millisecond.
    fn duration(&mut self, name: &str) -> Result<Option<Duration>, ParseError> {
        let Some(v) = self.string(name)? else {
            return Ok(None);
        };
        let d = go_duration(&v)
            .ok_or_else(|| self.bad(name, &v, "a duration such as 30s, 1m30s or 500ms"))?;
        if !d.is_zero() && d < Duration::from_millis(1) {
            return Err(self.bad(name, &v, "zero or at least 1ms"));
        }
        Ok(Some(d))
    }
}

/// Parses Go's `time.ParseDuration` syntax for non-negative durations.
fn go_duration(s: &str) -> Option<Duration> {
    if s == "0" {
        return Some(Duration::ZERO);
    }
    let mut rest = s.strip_prefix('+').unwrap_or(s);
    if rest.is_empty() {
        return None;
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let num_end = rest
            .find(|c: char| !c.is_ascii_digit() && c != '.')
            .unwrap_or(rest.len());
        let number: f64 = rest[..num_end].parse().ok()?;
        rest = &rest[num_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos = match &rest[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        rest = &rest[unit_end..];
        total += number * nanos;
    }
    // Go's limit is about 292 years; anything beyond is an error there too.
    (total.is_finite() && total < 9.2e18).then(|| Duration::from_nanos(total as u64))
}

#[cfg(test)]
mod tests {
    use super::go_duration;
    use std::time::Duration;

    #[test]
    fn durations() {
        assert_eq!(go_duration("0"), Some(Duration::ZERO));
        assert_eq!(go_duration("0s"), Some(Duration::ZERO));
        assert_eq!(go_duration("1m30s"), Some(Duration::from_secs(90)));
        assert_eq!(go_duration("1.5h"), Some(Duration::from_secs(5400)));
        assert_eq!(go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(go_duration("5"), None);
        assert_eq!(go_duration("5x"), None);
        assert_eq!(go_duration(""), None);
        assert_eq!(go_duration("-5s"), None);
        assert_eq!(go_duration("."), None);
    }
}
