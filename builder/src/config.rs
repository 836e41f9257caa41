//! What each instruction does to an image config, and the history line it leaves.
//!
//! Works on the image config as JSON (Docker's field names), so that fields outside the OCI
//! spec that Docker keeps (`Healthcheck`, `OnBuild`, `Shell`) survive a build. Pure: the
//! engine applies the results and runs the steps that need a container.

use std::time::Duration;

use serde_json::{json, Map, Value};

use crate::dockerfile::{Command, Healthcheck, Instruction};

/// The shell Docker uses when no `SHELL` was given.
pub fn default_shell() -> Vec<String> {
    vec!["/bin/sh".into(), "-c".into()]
}

/// Why an instruction cannot apply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid containerPort: {0}")]
    Port(String),
    #[error("invalid signal: {0}")]
    Signal(String),
    #[error("{0}")]
    Other(String),
}

/// The stage's running state that is not part of the config.
#[derive(Debug, Clone, Default)]
pub struct StageState {
    /// `CMD` was written in this stage (then `ENTRYPOINT` keeps it).
    pub cmd_set: bool,
}

/// The config's `config` object, created when missing.
pub fn run_config(image: &mut Value) -> &mut Map<String, Value> {
    if !image["config"].is_object() {
        image["config"] = json!({});
    }
    match image["config"].as_object_mut() {
        Some(m) => m,
        None => unreachable!("set to an object above"),
    }
}

/// The shell in effect for `image`.
pub fn shell_of(image: &Value) -> Vec<String> {
    let s = strings(&image["config"]["Shell"]);
    if s.is_empty() {
        default_shell()
    } else {
        s
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|x| x.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Go's `%q` of a string slice: `["a" "b"]`.
pub fn go_quote_list(items: &[String]) -> String {
    let mut out = String::from("[");
    for (i, s) in items.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        crate::dockerfile::go_quote(s, &mut out);
    }
    out.push(']');
    out
}

/// A command as the config stores it: exec form as is, shell form through the shell.
pub fn command_vec(c: &Command, shell: &[String]) -> Vec<String> {
    match c {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => shell.iter().cloned().chain([s.clone()]).collect(),
    }
}

/// Set `K=V` in an `Env` list, keeping the position of an earlier `K`.
pub fn set_env(env: &mut Vec<Value>, key: &str, value: &str) {
    let entry = Value::String(format!("{key}={value}"));
    let slot = env
        .iter()
        .position(|e| e.as_str().is_some_and(|s| s.split('=').next() == Some(key)));
    match slot {
        Some(i) => env[i] = entry,
        None => env.push(entry),
    }
}

/// Clean an absolute path the way Go's `path.Clean` does.
pub fn clean_path(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// `WORKDIR w` after `current`: relative paths join the current one.
pub fn join_workdir(current: &str, w: &str) -> String {
    if w.starts_with('/') {
        clean_path(w)
    } else {
        let base = if current.is_empty() { "/" } else { current };
        clean_path(&format!("{base}/{w}"))
    }
}

/// `EXPOSE` words to `port/proto` keys, ranges expanded.
pub fn expose_keys(words: &[String]) -> Result<Vec<String>, ConfigError> {
    let mut out = Vec::new();
    for w in words {
        let (port, proto) = match w.split_once('/') {
            Some((p, proto)) => (p, proto.to_ascii_lowercase()),
            None => (w.as_str(), "tcp".to_owned()),
        };
        if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
            return Err(ConfigError::Port(w.clone()));
        }
        let num = |s: &str| s.parse::<u16>().ok().filter(|n| *n > 0);
        let (lo, hi) = match port.split_once('-') {
            Some((a, b)) => (num(a), num(b)),
            None => (num(port), num(port)),
        };
        match (lo, hi) {
            (Some(lo), Some(hi)) if lo <= hi => {
                out.extend((lo..=hi).map(|p| format!("{p}/{proto}")));
            }
            _ => return Err(ConfigError::Port(w.clone())),
        }
    }
    Ok(out)
}

const SIGNALS: [&str; 31] = [
    "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2",
    "PIPE", "ALRM", "TERM", "STKFLT", "CHLD", "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG",
    "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "PWR", "SYS",
];

/// Docker's `signal.ParseSignal`: a number, or a name with or without `SIG`.
pub fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    SIGNALS.contains(&name) || name.starts_with("RTMIN") || name.starts_with("RTMAX")
}

fn nanos(d: Option<Duration>) -> Value {
    match d {
        Some(d) => json!(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
        None => Value::Null,
    }
}

/// Applies a config-only instruction (already resolved: variables substituted) to the
/// image config and returns its history comment (`ENV NAME=World`), or `None` for
/// instructions that are not config-only (RUN, ADD, COPY).
pub fn apply(
    image: &mut Value,
    instruction: &Instruction,
    state: &mut StageState,
) -> Result<Option<String>, ConfigError> {
    let shell = shell_of(image);
    let comment = match instruction {
        Instruction::Run(_) | Instruction::Add(_) | Instruction::Copy(_) => return Ok(None),
        Instruction::Env(kvs) => {
            let cfg = run_config(image);
            let mut env = cfg
                .get("Env")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            let mut words = Vec::new();
            for kv in kvs {
                set_env(&mut env, &kv.key, &kv.value);
                words.push(format!("{}={}", kv.key, kv.value));
            }
            cfg.insert("Env".into(), Value::Array(env));
            format!("ENV {}", words.join(" "))
        }
        Instruction::Label(kvs) => {
            let cfg = run_config(image);
            let mut labels = cfg
                .get("Labels")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let mut words = Vec::new();
            for kv in kvs {
                labels.insert(kv.key.clone(), Value::String(kv.value.clone()));
                words.push(format!("{}={}", kv.key, kv.value));
            }
            cfg.insert("Labels".into(), Value::Object(labels));
            format!("LABEL {}", words.join(" "))
        }
        Instruction::Maintainer(m) => {
            image["author"] = json!(m);
            format!("MAINTAINER {m}")
        }
        Instruction::Expose(words) => {
            let keys = expose_keys(words)?;
            let cfg = run_config(image);
            let mut ports = cfg
                .get("ExposedPorts")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for k in &keys {
                ports.insert(k.clone(), json!({}));
            }
            cfg.insert("ExposedPorts".into(), Value::Object(ports));
            format!("EXPOSE {}", keys.join(" "))
        }
        Instruction::Volume(paths) => {
            let cfg = run_config(image);
            let mut vols = cfg
                .get("Volumes")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            for p in paths {
                vols.insert(p.clone(), json!({}));
            }
            cfg.insert("Volumes".into(), Value::Object(vols));
            format!("VOLUME {}", go_quote_list(paths).replace('"', ""))
        }
        Instruction::User(u) => {
            run_config(image).insert("User".into(), json!(u));
            format!("USER {u}")
        }
        Instruction::Workdir(w) => {
            let cfg = run_config(image);
            let current = cfg.get("WorkingDir").and_then(Value::as_str).unwrap_or("");
            let dir = join_workdir(current, w);
            cfg.insert("WorkingDir".into(), json!(dir));
            format!("WORKDIR {dir}")
        }
        Instruction::StopSignal(s) => {
            if !valid_signal(s) {
                return Err(ConfigError::Signal(s.clone()));
            }
            run_config(image).insert("StopSignal".into(), json!(s));
            format!("STOPSIGNAL {s}")
        }
        Instruction::Healthcheck(h) => {
            let (value, text) = match h {
                Healthcheck::None => (json!({"Test": ["NONE"]}), "NONE".to_owned()),
                Healthcheck::Check {
                    test,
                    interval,
                    timeout,
                    start_period,
                    start_interval,
                    retries,
                } => {
                    let test: Vec<String> = match test {
                        Command::Exec(v) => std::iter::once("CMD".to_owned())
                            .chain(v.iter().cloned())
                            .collect(),
                        Command::Shell(s) => vec!["CMD-SHELL".into(), s.clone()],
                    };
                    let mut v = json!({"Test": test});
                    for (k, d) in [
                        ("Interval", interval),
                        ("Timeout", timeout),
                        ("StartPeriod", start_period),
                        ("StartInterval", start_interval),
                    ] {
                        if d.is_some() {
                            v[k] = nanos(*d);
                        }
                    }
                    if let Some(r) = retries {
                        v["Retries"] = json!(r);
                    }
                    let text = go_quote_list(&test);
                    (v, text)
                }
            };
            run_config(image).insert("Healthcheck".into(), value);
            format!("HEALTHCHECK {text}")
        }
        Instruction::Onbuild(o) => {
            let cfg = run_config(image);
            let mut list = cfg
                .get("OnBuild")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            list.push(json!(o.expression));
            cfg.insert("OnBuild".into(), Value::Array(list));
            format!("ONBUILD {}", o.expression)
        }
        Instruction::Shell(s) => {
            run_config(image).insert("Shell".into(), json!(s));
            format!("SHELL {}", go_quote_list(s))
        }
        Instruction::Cmd(c) => {
            let v = command_vec(c, &shell);
            run_config(image).insert("Cmd".into(), json!(v));
            state.cmd_set = true;
            format!("CMD {}", go_quote_list(&v))
        }
        Instruction::Entrypoint(c) => {
            let v = command_vec(c, &shell);
            let cfg = run_config(image);
            cfg.insert("Entrypoint".into(), json!(v));
            if !state.cmd_set {
                // Docker: a new ENTRYPOINT drops an inherited CMD
                cfg.insert("Cmd".into(), Value::Null);
            }
            format!("ENTRYPOINT {}", go_quote_list(&v))
        }
        Instruction::Arg(decls) => {
            let words: Vec<String> = decls
                .iter()
                .map(|d| match &d.default {
                    Some(v) => format!("{}={}", d.name, v),
                    None => d.name.clone(),
                })
                .collect();
            format!("ARG {}", words.join(" "))
        }
    };
    Ok(Some(comment))
}

/// The history line of a config-only step: `/bin/sh -c #(nop)  ENV NAME=World`.
pub fn nop_created_by(shell: &[String], comment: &str) -> String {
    let mut parts = shell.to_vec();
    parts.push("#(nop) ".into());
    parts.push(comment.into());
    parts.join(" ")
}

/// The command a RUN step runs, and its history line: build args in effect prefix it as
/// `|N K=v…` (which is how a changed `--build-arg` misses the cache at the first RUN).
pub fn run_command(
    command: &Command,
    shell: &[String],
    args: &[(String, String)],
) -> (Vec<String>, String) {
    let argv = command_vec(command, shell);
    let mut line = Vec::new();
    if !args.is_empty() {
        let mut kv: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
        kv.sort();
        line.push(format!("|{}", kv.len()));
        line.extend(kv);
    }
    line.extend(argv.iter().cloned());
    (argv, line.join(" "))
}

/// One `history` entry as Docker writes it.
pub fn history_entry(created: &str, created_by: &str, empty_layer: bool) -> Value {
    let mut h = json!({"created": created, "created_by": created_by});
    if empty_layer {
        h["empty_layer"] = json!(true);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::{parse, Instruction};

    fn apply_all(src: &str) -> (Value, Vec<String>) {
        let df = parse(src).unwrap();
        let mut image = json!({"config": {"Env": ["PATH=/bin"]}});
        let mut state = StageState::default();
        let mut comments = Vec::new();
        for st in &df.stages[0].instructions {
            if let Some(c) = apply(&mut image, &st.value, &mut state).unwrap() {
                comments.push(c);
            }
        }
        (image, comments)
    }

    #[test]
    fn seed_dockerfile_config_and_history() {
        let (image, comments) = apply_all(
            "FROM x\nWORKDIR /app\nADD . /app\nRUN true\nEXPOSE 80\nENV NAME World\nCMD [\"python\", \"app.py\"]\n",
        );
        assert_eq!(
            image["config"],
            json!({
                "Env": ["PATH=/bin", "NAME=World"],
                "WorkingDir": "/app",
                "ExposedPorts": {"80/tcp": {}},
                "Cmd": ["python", "app.py"],
            })
        );
        assert_eq!(
            comments,
            [
                "WORKDIR /app",
                "EXPOSE 80/tcp",
                "ENV NAME=World",
                "CMD [\"python\" \"app.py\"]"
            ]
        );
        assert_eq!(
            nop_created_by(&default_shell(), "ENV NAME=World"),
            "/bin/sh -c #(nop)  ENV NAME=World"
        );
    }

    #[test]
    fn entrypoint_resets_inherited_cmd_but_not_this_stages() {
        let df = parse("FROM x\nENTRYPOINT [\"a\"]\n").unwrap();
        let mut image = json!({"config": {"Cmd": ["old"]}});
        let mut st = StageState::default();
        apply(&mut image, &df.stages[0].instructions[0].value, &mut st).unwrap();
        assert_eq!(image["config"]["Cmd"], Value::Null);
        let (image, _) = apply_all("FROM x\nCMD [\"c\"]\nENTRYPOINT e\n");
        assert_eq!(image["config"]["Cmd"], json!(["c"]));
        assert_eq!(image["config"]["Entrypoint"], json!(["/bin/sh", "-c", "e"]));
    }

    #[test]
    fn shell_workdir_env_label_expose_and_errors() {
        let (image, _) = apply_all(
            "FROM x\nSHELL [\"/bin/bash\", \"-ec\"]\nCMD echo hi\nWORKDIR a\nWORKDIR b/../c\nENV PATH=/usr/bin A=1\nLABEL k=v\nEXPOSE 53/udp 8000-8002\nHEALTHCHECK --retries=2 CMD true\nONBUILD RUN x\nSTOPSIGNAL SIGKILL\nVOLUME /data\nUSER app\n",
        );
        let c = &image["config"];
        assert_eq!(c["Cmd"], json!(["/bin/bash", "-ec", "echo hi"]));
        assert_eq!(c["WorkingDir"], json!("/a/c"));
        assert_eq!(c["Env"], json!(["PATH=/usr/bin", "A=1"]));
        assert_eq!(c["Labels"], json!({"k": "v"}));
        assert_eq!(
            c["ExposedPorts"],
            json!({"53/udp": {}, "8000/tcp": {}, "8001/tcp": {}, "8002/tcp": {}})
        );
        assert_eq!(
            c["Healthcheck"],
            json!({"Test": ["CMD-SHELL", "true"], "Retries": 2})
        );
        assert_eq!(c["OnBuild"], json!(["RUN x"]));
        assert_eq!(c["Volumes"], json!({"/data": {}}));
        assert_eq!(c["User"], json!("app"));
        let mut image = json!({});
        let mut st = StageState::default();
        let bad = Instruction::Expose(vec!["http".into()]);
        assert_eq!(
            apply(&mut image, &bad, &mut st).unwrap_err().to_string(),
            "invalid containerPort: http"
        );
        let bad = Instruction::StopSignal("SIGNOPE".into());
        assert!(apply(&mut image, &bad, &mut st).is_err());
    }

    #[test]
    fn run_lines_carry_build_args() {
        let cmd = Command::Shell("echo $A".into());
        let (argv, line) = run_command(
            &cmd,
            &default_shell(),
            &[("B".into(), "2".into()), ("A".into(), "1".into())],
        );
        assert_eq!(argv, ["/bin/sh", "-c", "echo $A"]);
        assert_eq!(line, "|2 A=1 B=2 /bin/sh -c echo $A");
        let (_, line) = run_command(&Command::Exec(vec!["true".into()]), &default_shell(), &[]);
        assert_eq!(line, "true");
    }
}
