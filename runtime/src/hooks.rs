//! OCI hooks: programs run at lifecycle points with the container's state JSON on stdin.
//! Where each kind runs: `createRuntime` and `prestart` in the runtime's main process
//! while the init waits before `pivot_root`; `createContainer` in the init (container
//! namespaces, host filesystem still visible) right after; `startContainer` in the init
//! after `start`, before exec; `poststart` after `start`; `poststop` on delete.
//! The spawn of the few external programs the runtime runs lives here.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("hooks.{stage}[{index}] {path}: {reason}")]
    Failed {
        stage: &'static str,
        index: usize,
        path: PathBuf,
        reason: String,
    },
}

/// Run `hooks` in order, each with `state` on stdin; stop at the first failure.
pub fn run(stage: &'static str, hooks: &[Hook], state: &[u8]) -> Result<(), HookError> {
    for (index, h) in hooks.iter().enumerate() {
        let fail = |reason: String| HookError::Failed {
            stage,
            index,
            path: h.path().clone(),
            reason,
        };
        let mut cmd = Command::new(h.path());
        let args = h.args().clone().unwrap_or_default();
        if let Some((arg0, rest)) = args.split_first() {
            cmd.arg0(arg0).args(rest);
        }
        cmd.env_clear();
        for e in h.env().iter().flatten() {
            if let Some((k, v)) = e.split_once('=') {
                cmd.env(k, v);
            }
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().map_err(|e| fail(format!("cannot run: {e}")))?;
        if let Some(mut stdin) = child.stdin.take() {
            // A hook that ignores its stdin may close it early: not an error.
            let _ = stdin.write_all(state);
        }
        let deadline = h
            .timeout()
            .filter(|t| *t > 0)
            .map(|t| Instant::now() + Duration::from_secs(t.unsigned_abs()));
        let status = loop {
            match child.try_wait() {
                Ok(Some(s)) => break s,
                Ok(None) => {}
                Err(e) => return Err(fail(format!("waiting: {e}"))),
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(format!(
                    "timed out after {}s",
                    h.timeout().unwrap_or(0)
                )));
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        if !status.success() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                use std::io::Read;
                let _ = e.read_to_string(&mut err);
            }
            return Err(fail(format!("{status}: {}", err.trim())));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(json: &str) -> Hook {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn hook_gets_state_on_stdin_and_env() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        let h = hook(&format!(
            r#"{{"path": "/bin/sh", "args": ["sh", "-c", "cat > {0}; echo \"$X\" >> {0}"], "env": ["X=y"]}}"#,
            out.display()
        ));
        run("poststart", &[h], b"{\"id\":\"c\"}").unwrap();
        assert_eq!(std::fs::read_to_string(out).unwrap(), "{\"id\":\"c\"}y\n");
    }

    #[test]
    fn failure_and_timeout_name_the_hook() {
        let h = hook(r#"{"path": "/bin/sh", "args": ["sh", "-c", "echo boom >&2; exit 3"]}"#);
        let e = run("prestart", &[h], b"{}").unwrap_err().to_string();
        assert_eq!(e, "hooks.prestart[0] /bin/sh: exit status: 3: boom");
        let h = hook(r#"{"path": "/bin/sleep", "args": ["sleep", "5"], "timeout": 1}"#);
        let e = run("poststop", &[h], b"{}").unwrap_err().to_string();
        assert_eq!(e, "hooks.poststop[0] /bin/sleep: timed out after 1s");
    }
}
