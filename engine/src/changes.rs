//! `--change` instructions for `import` (and later `commit`): `CMD ["sh"]`, `ENV K=V`, ...
//! parsed by the builder's Dockerfile parser and applied to an image config.

use builder::dockerfile::{self, Command, Instruction};
use oci_spec::image::Config;

use crate::error::ApiError;

fn exec_form(c: &Command) -> Vec<String> {
    match c {
        Command::Exec(v) => v.clone(),
        Command::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
    }
}

/// Apply Dockerfile-style `changes` to `base` (or to an empty config).
pub fn apply_to(base: Option<Config>, changes: &[String]) -> Result<Config, ApiError> {
    let mut cfg = base.unwrap_or_default();
    if changes.is_empty() {
        return Ok(cfg);
    }
    let mut text = String::from("FROM scratch\n");
    for c in changes {
        text.push_str(c.trim());
        text.push('\n');
    }
    let parsed = dockerfile::parse(&text)
        .map_err(|e| ApiError::bad_request(format!("invalid change: {e}")))?;
    let Some(stage) = parsed.stages.first() else {
        return Ok(cfg);
    };
    for ins in &stage.instructions {
        match &ins.value {
            Instruction::Cmd(c) => {
                cfg.set_cmd(Some(exec_form(c)));
            }
            Instruction::Entrypoint(c) => {
                cfg.set_entrypoint(Some(exec_form(c)));
            }
            Instruction::Env(kvs) => {
                let mut env = cfg.env().clone().unwrap_or_default();
                for kv in kvs {
                    let prefix = format!("{}=", kv.key);
                    env.retain(|e| !e.starts_with(&prefix));
                    env.push(format!("{}={}", kv.key, unquote(&kv.value)));
                }
                cfg.set_env(Some(env));
            }
            Instruction::Label(kvs) => {
                let mut labels = cfg.labels().clone().unwrap_or_default();
                for kv in kvs {
                    labels.insert(unquote(&kv.key), unquote(&kv.value));
                }
                cfg.set_labels(Some(labels));
            }
            Instruction::Expose(ports) => {
                let mut exposed = cfg.exposed_ports().clone().unwrap_or_default();
                for p in ports {
                    let p = if p.contains('/') {
                        p.clone()
                    } else {
                        format!("{p}/tcp")
                    };
                    if !exposed.contains(&p) {
                        exposed.push(p);
                    }
                }
                cfg.set_exposed_ports(Some(exposed));
            }
            Instruction::User(u) => {
                cfg.set_user(Some(u.clone()));
            }
            Instruction::Workdir(w) => {
                cfg.set_working_dir(Some(w.clone()));
            }
            Instruction::Volume(vs) => {
                let mut vols = cfg.volumes().clone().unwrap_or_default();
                vols.extend(vs.iter().cloned());
                cfg.set_volumes(Some(vols));
            }
            Instruction::StopSignal(s) => {
                cfg.set_stop_signal(Some(s.clone()));
            }
            other => {
                return Err(ApiError::bad_request(format!(
                    "{} is not a valid change command",
                    other.keyword()
                )))
            }
        }
    }
    Ok(cfg)
}

/// Strip one level of matching quotes, as Docker does for ENV/LABEL values.
fn unquote(s: &str) -> String {
    let b = s.as_bytes();
    if b.len() >= 2 && (b[0] == b'"' || b[0] == b'\'') && b[b.len() - 1] == b[0] {
        s[1..s.len() - 1].to_owned()
    } else {
        s.to_owned()
    }
}

/// Apply changes to an empty config (import).
pub fn apply(changes: &[String]) -> Result<Config, ApiError> {
    apply_to(None, changes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applies_docker_import_changes() {
        let c = apply(&[
            r#"CMD ["/bin/sh"]"#.into(),
            "ENV PATH=/bin".into(),
            "ENV A=1 B=2".into(),
            "EXPOSE 80".into(),
            "WORKDIR /app".into(),
            "LABEL x=y".into(),
            "ENTRYPOINT echo hi".into(),
        ])
        .unwrap();
        assert_eq!(c.cmd().as_deref(), Some(&["/bin/sh".to_owned()][..]));
        assert_eq!(c.env().clone().unwrap(), vec!["PATH=/bin", "A=1", "B=2"]);
        assert_eq!(c.exposed_ports().clone().unwrap(), vec!["80/tcp"]);
        assert_eq!(c.working_dir().as_deref(), Some("/app"));
        assert_eq!(
            c.entrypoint().clone().unwrap(),
            vec!["/bin/sh", "-c", "echo hi"]
        );
        let err = apply(&["RUN rm -rf /".into()]).unwrap_err();
        assert_eq!(err.message, "RUN is not a valid change command");
        assert!(apply(&["BOGUS x".into()]).is_err());
    }
}
