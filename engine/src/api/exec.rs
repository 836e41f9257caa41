//! `exec`: another process in a running container. The daemon starts it through the
//! runtime (it is the daemon's child), relays its stdio over the hijacked connection and
//! records its exit code for `GET /exec/{id}/json`.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use hyper::body::Incoming;
use hyper::{Request, StatusCode};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::containers::spec;
use crate::daemon::Daemon;
use crate::error::ApiError;
use crate::http::{json as reply_json, status, strings, Reply};
use crate::monitor;

/// One exec instance (kept in memory, as dockerd does).
#[derive(Debug, Clone)]
pub struct Exec {
    pub id: String,
    pub container: String,
    pub config: Value,
    pub running: bool,
    pub exit_code: Option<i32>,
    pub pid: i32,
    /// The pty master of a `Tty` exec while it runs (for resize).
    pub tty: Option<Arc<OwnedFd>>,
}

#[derive(Debug, Default)]
pub struct Execs(Mutex<HashMap<String, Exec>>);

impl Execs {
    fn get(&self, id: &str) -> Result<Exec, ApiError> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| ApiError::not_found(format!("No such exec instance: {id}")))
    }
    fn update(&self, id: &str, f: impl FnOnce(&mut Exec)) {
        if let Some(e) = self.0.lock().unwrap_or_else(|p| p.into_inner()).get_mut(id) {
            f(e);
        }
    }
}

pub async fn create(d: &Arc<Daemon>, name: &str, body: Incoming) -> Result<Reply, ApiError> {
    // Read the body before answering: a client still writing it would get a broken pipe.
    let bytes = crate::http::read_body(body).await?;
    let e = d.containers.get(name)?;
    let c = e.snapshot();
    if c.state.status == crate::containers::Status::Restarting {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "Container {} is restarting, wait until the container is running",
                c.id
            ),
        ));
    }
    if !c.state.status.is_live() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("Container {} is not running", c.id),
        ));
    }
    if c.state.status == crate::containers::Status::Paused {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "Container {} is paused, unpause the container before exec",
                c.id
            ),
        ));
    }
    let mut config: Value = serde_json::from_slice(&bytes)?;
    if strings(&config["Cmd"]).is_empty() {
        return Err(ApiError::bad_request("No exec command specified"));
    }
    // Go decodes JSON keys without regard to case: docker-py sends `detachKeys`
    if let Some(o) = config.as_object_mut() {
        if let Some(k) = o.remove("detachKeys") {
            o.entry("DetachKeys").or_insert(k);
        }
    }
    crate::detach::from_query(config["DetachKeys"].as_str()).map_err(ApiError::bad_request)?;
    let id = image_store::Digest::of_bytes(
        format!(
            "{}{:?}{}",
            c.id,
            std::time::SystemTime::now(),
            std::process::id()
        )
        .as_bytes(),
    )
    .hex()
    .to_owned();
    let x = Exec {
        id: id.clone(),
        container: c.id.clone(),
        config,
        running: false,
        exit_code: None,
        pid: 0,
        tty: None,
    };
    event(d, &x, "exec_create", None);
    d.execs
        .0
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id.clone(), x);
    Ok(reply_json(StatusCode::CREATED, &json!({"Id": id})))
}

/// An exec's event on its container: `exec_create: CMD`, `exec_start: CMD`, `exec_die`.
fn event(d: &Daemon, x: &Exec, action: &str, code: Option<i32>) {
    let Ok(e) = d.containers.get(&x.container) else {
        return;
    };
    let action = if action == "exec_die" {
        action.to_owned()
    } else {
        format!("{action}: {}", strings(&x.config["Cmd"]).join(" "))
    };
    let code = code.map(|c| c.to_string());
    let mut extra = vec![("execID", x.id.as_str())];
    if let Some(c) = &code {
        extra.push(("exitCode", c.as_str()));
    }
    d.events.container(&e.snapshot(), &action, &extra);
}

fn pipe() -> Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd), ApiError> {
    rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
        .map_err(|e| ApiError::internal(format!("pipe: {e}")))
}

/// A started exec process and our ends of its stdio (with a TTY: the pty master as stdout
/// and stdin, no stderr).
struct Spawned {
    pid: i32,
    stdin: Option<File>,
    out: File,
    err: Option<File>,
    tty: Option<Arc<OwnedFd>>,
}

/// Start the process.
fn spawn(d: &Daemon, x: &Exec) -> Result<Spawned, ApiError> {
    let e = d.containers.get(&x.container)?;
    let c = e.snapshot();
    let dir = d.containers.run_dir_of(&c.id);
    let user = x.config["User"]
        .as_str()
        .filter(|u| !u.is_empty())
        .or(c.config["User"].as_str())
        .unwrap_or("");
    let root = monitor::rootfs(&dir);
    let (uid, gid, mut groups) =
        crate::containers::user::resolve(&root, user).map_err(ApiError::internal)?;
    crate::containers::user::add_groups(&root, &strings(&c.host_config["GroupAdd"]), &mut groups)
        .map_err(ApiError::internal)?;
    let mut env = strings(&c.config["Env"]);
    env.extend(strings(&x.config["Env"]));
    let caps = spec::capabilities(
        &strings(&c.host_config["CapAdd"]),
        &strings(&c.host_config["CapDrop"]),
    );
    let cwd = x.config["WorkingDir"]
        .as_str()
        .filter(|w| !w.is_empty())
        .or(c.config["WorkingDir"].as_str())
        .filter(|w| !w.is_empty())
        .unwrap_or("/");
    let tty = x.config["Tty"].as_bool().unwrap_or(false);
    let process: runtime::oci_spec::runtime::Process = serde_json::from_value(json!({
        "terminal": tty,
        "user": {"uid": uid, "gid": gid, "additionalGids": groups},
        "args": strings(&x.config["Cmd"]),
        "env": env,
        "cwd": cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": false,
    }))
    .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut process = process;
    if let (true, Some((h, w))) = (
        tty,
        super::containers::console_size(&x.config["ConsoleSize"]),
    ) {
        process.set_console_size(Some(
            runtime::oci_spec::runtime::BoxBuilder::default()
                .height(u64::from(h))
                .width(u64::from(w))
                .build()
                .map_err(|e| ApiError::internal(e.to_string()))?,
        ));
    }
    let attach_stdin = x.config["AttachStdin"].as_bool().unwrap_or(false);
    let null =
        || crate::tty::dev_null().map_err(|e| ApiError::internal(format!("open /dev/null: {e}")));
    let mut rc = runtime::Container::load(&d.containers.runtime_root, &c.id)
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let mut opts = runtime::ExecOpts::default();
    let mut ours = None;
    let console = if tty {
        let (sock, stdio) = crate::tty::ConsoleSocket::bind_for_runtime()
            .map_err(|e| ApiError::internal(format!("console socket: {e}")))?;
        opts.console_socket = Some(sock.path.clone());
        opts.stdio = stdio;
        Some(sock)
    } else {
        let (out_r, out_w) = pipe()?;
        let (err_r, err_w) = pipe()?;
        let (in_r, in_w) = if attach_stdin {
            let (r, w) = pipe()?;
            (r, Some(w))
        } else {
            (null()?, None)
        };
        opts.stdio = runtime::Stdio {
            stdin: Some(in_r),
            stdout: Some(out_w),
            stderr: Some(err_w),
        };
        ours = Some((in_w, out_r, err_r));
        None
    };
    let pid = rc.exec(&process, opts).map_err(|e| {
        let m = e.to_string();
        if m.contains("not found in the container's PATH") {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("OCI runtime exec failed: exec failed: unable to start container process: exec: \"{}\": executable file not found in $PATH: unknown", strings(&x.config["Cmd"])[0]),
            )
        } else {
            ApiError::internal(m)
        }
    })?;
    if let Some((in_w, out_r, err_r)) = ours {
        return Ok(Spawned {
            pid,
            stdin: in_w.map(File::from),
            out: File::from(out_r),
            err: Some(File::from(err_r)),
            tty: None,
        });
    }
    let master = console
        .ok_or_else(|| ApiError::internal("internal: no stdio for the exec"))?
        .receive(std::time::Duration::from_secs(5))
        .map_err(|e| ApiError::internal(format!("receiving the exec's terminal: {e}")))?;
    let dup = |m: &OwnedFd| {
        m.try_clone()
            .map(File::from)
            .map_err(|e| ApiError::internal(e.to_string()))
    };
    Ok(Spawned {
        pid,
        stdin: if attach_stdin {
            Some(dup(&master)?)
        } else {
            None
        },
        out: dup(&master)?,
        err: None,
        tty: Some(Arc::new(master)),
    })
}

/// `POST /exec/{id}/start`: hijacked unless `Detach`.
pub async fn start(d: &Arc<Daemon>, id: &str, req: Request<Incoming>) -> Result<Reply, ApiError> {
    let x = d.execs.get(id)?;
    if x.running || x.exit_code.is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("Error: Exec command {id} has already run"),
        ));
    }
    let (parts, body) = req.into_parts();
    let bytes = crate::http::read_body(body).await?;
    let opts: Value = serde_json::from_slice(&bytes).unwrap_or(json!({}));
    let detach = opts["Detach"].as_bool().unwrap_or(false);
    // As dockerd: the start request's `Tty`, not the exec's, says whether the stream is raw
    // or framed (docker-py starts a TTY exec without it and reads frames).
    let raw = opts["Tty"].as_bool().unwrap_or(false);
    if detach {
        let (d2, x2) = (d.clone(), x.clone());
        let sp = tokio::task::spawn_blocking(move || spawn(&d2, &x2))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))??;
        let (pid, mut out, err) = (sp.pid, sp.out, sp.err);
        drop(sp.stdin);
        d.execs.update(id, |e| {
            e.running = true;
            e.pid = pid;
            e.tty = sp.tty;
        });
        event(d, &x, "exec_start", None);
        std::thread::spawn(move || {
            let mut sink = std::io::sink();
            let _ = std::io::copy(&mut out, &mut sink);
            if let Some(mut err) = err {
                let _ = std::io::copy(&mut err, &mut sink);
            }
        });
        let (d, id) = (d.clone(), id.to_owned());
        std::thread::spawn(move || {
            let code = d.reaper.wait(pid);
            d.execs.update(&id, |e| {
                e.running = false;
                e.exit_code = Some(code);
                e.tty = None;
            });
            event(&d, &x, "exec_die", Some(code));
        });
        return Ok(status(StatusCode::OK));
    }
    let req = Request::from_parts(parts, http_body_util::Empty::<bytes::Bytes>::new());
    let upgrade = hyper::upgrade::on(req);
    let d = d.clone();
    let id = id.to_owned();
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let io = hyper_util::rt::TokioIo::new(upgraded);
        let (mut cr, mut cw) = tokio::io::split(io);
        let (d2, x2) = (d.clone(), x.clone());
        let spawned = tokio::task::spawn_blocking(move || spawn(&d2, &x2)).await;
        let sp = match spawned {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                // As dockerd: the error goes down the stream and the exit code to inspect.
                let code = if e.message.contains("executable file not found") {
                    127
                } else {
                    126
                };
                d.execs.update(&id, |x| x.exit_code = Some(code));
                let msg = format!("{}\r\n", e.message);
                let _ = cw.write_all(&monitor::frame(1, msg.as_bytes())).await;
                let _ = cw.shutdown().await;
                return;
            }
            Err(_) => return,
        };
        let (pid, stdin) = (sp.pid, sp.stdin);
        d.execs.update(&id, |e| {
            e.running = true;
            e.pid = pid;
            e.tty = sp.tty;
        });
        event(&d, &x, "exec_start", None);
        // Pump the output into one channel from blocking threads: frames, or raw bytes from
        // a terminal.
        let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(32);
        for (mut f, stream) in std::iter::once((sp.out, 1u8)).chain(sp.err.map(|e| (e, 2u8))) {
            let tx = tx.clone();
            std::thread::spawn(move || {
                let mut buf = vec![0u8; 32 << 10];
                while let Ok(n) = f.read(&mut buf) {
                    let data = if raw {
                        buf[..n].to_vec()
                    } else {
                        monitor::frame(stream, &buf[..n])
                    };
                    if n == 0 || tx.blocking_send(data).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        // As dockerd: a terminal's input is watched for the detach keys, which end the
        // stream and leave the process running.
        let detached = Arc::new(tokio::sync::Notify::new());
        if let Some(mut stdin) = stdin {
            let mut scanner = x.config["Tty"].as_bool().unwrap_or(false).then(|| {
                crate::detach::Scanner::new(
                    crate::detach::from_query(x.config["DetachKeys"].as_str()).unwrap_or_default(),
                )
            });
            let detached = detached.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 32 << 10];
                loop {
                    let n = match cr.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    let (data, detach) = match scanner.as_mut() {
                        Some(s) => s.feed(&buf[..n]),
                        None => (buf[..n].to_vec(), false),
                    };
                    if stdin.write_all(&data).is_err() {
                        break;
                    }
                    if detach {
                        detached.notify_one();
                        break;
                    }
                }
            });
        }
        loop {
            tokio::select! {
                f = rx.recv() => match f {
                    Some(f) => {
                        if cw.write_all(&f).await.is_err() {
                            break;
                        }
                    }
                    None => break,
                },
                _ = detached.notified() => {
                    let _ = cw.shutdown().await;
                    // the process goes on: its output is read and dropped
                    while rx.recv().await.is_some() {}
                    break;
                }
            }
        }
        let d2 = d.clone();
        let code = tokio::task::spawn_blocking(move || d2.reaper.wait(pid))
            .await
            .unwrap_or(137);
        d.execs.update(&id, |e| {
            e.running = false;
            e.exit_code = Some(code);
            e.tty = None;
        });
        event(&d, &x, "exec_die", Some(code));
        let _ = cw.shutdown().await;
    });
    Ok(crate::http::upgraded())
}

pub async fn inspect(d: &Arc<Daemon>, id: &str) -> Result<Reply, ApiError> {
    let x = d.execs.get(id)?;
    let cmd = strings(&x.config["Cmd"]);
    Ok(reply_json(
        StatusCode::OK,
        &json!({
            "ID": x.id, "Running": x.running, "ExitCode": x.exit_code, "ContainerID": x.container, "Pid": x.pid,
            "OpenStdin": x.config["AttachStdin"], "OpenStdout": x.config["AttachStdout"], "OpenStderr": x.config["AttachStderr"],
            "CanRemove": false, "DetachKeys": "",
            "ProcessConfig": {"tty": x.config["Tty"].as_bool().unwrap_or(false), "entrypoint": cmd.first(), "arguments": cmd.get(1..).unwrap_or_default(),
                "privileged": x.config["Privileged"].as_bool().unwrap_or(false), "user": x.config["User"]},
        }),
    ))
}

/// `POST /exec/{id}/resize?h=&w=`.
pub async fn resize(d: &Arc<Daemon>, id: &str, q: &crate::http::Query) -> Result<Reply, ApiError> {
    let x = d.execs.get(id)?;
    let (rows, cols) = super::containers::resize_args(q)?;
    match &x.tty {
        Some(m) => crate::tty::resize(m.as_ref(), rows, cols)
            .map_err(|e| ApiError::internal(format!("resizing the terminal: {e}")))?,
        // Not started yet: an error makes the docker CLI try again shortly.
        None if x.config["Tty"].as_bool().unwrap_or(false) && x.exit_code.is_none() => {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                format!("exec {id} is not running yet"),
            ))
        }
        None => {}
    }
    Ok(status(StatusCode::OK))
}
