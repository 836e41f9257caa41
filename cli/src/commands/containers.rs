//! run, create, start, ps, logs, stop, kill, restart, rm, wait, container inspect.

use std::io::{IsTerminal, Write};

use anyhow::{bail, Context, Result};
use clap::Args;
use hyper::Method;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::client::{Client, Payload};
use crate::format::{ago, table};

/// Flags shared by `run` and `create` (docker's names).
#[derive(Args, Debug, Clone)]
#[command(disable_help_flag = true)]
pub struct CreateArgs {
    /// Print help
    #[arg(long, action = clap::ArgAction::Help)]
    help: Option<bool>,
    /// Assign a name to the container
    #[arg(long)]
    name: Option<String>,
    /// Set environment variables
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Read in a file of environment variables
    #[arg(long)]
    env_file: Vec<std::path::PathBuf>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    user: Option<String>,
    /// Overwrite the default ENTRYPOINT of the image
    #[arg(long)]
    entrypoint: Option<String>,
    /// Container host name
    #[arg(short = 'h', long)]
    hostname: Option<String>,
    /// Bind mount a host path or a named volume (SRC:DST[:ro]), or an anonymous volume (DST)
    #[arg(short, long)]
    volume: Vec<String>,
    /// Attach a filesystem mount (type=bind|volume|tmpfs,source=...,target=...[,readonly])
    #[arg(long)]
    mount: Vec<String>,
    /// Connect a container to a network (bridge, none, host, or a network's name)
    #[arg(long, default_value = "default")]
    network: String,
    /// Publish a container's port(s) to the host ([ip:][hostPort:]containerPort[/proto])
    #[arg(short = 'p', long = "publish")]
    publish: Vec<String>,
    /// Publish all exposed ports to random host ports
    #[arg(short = 'P', long)]
    publish_all: bool,
    /// Expose a port or a range of ports
    #[arg(long)]
    expose: Vec<String>,
    /// Add network-scoped alias for the container
    #[arg(long)]
    network_alias: Vec<String>,
    /// IPv4 address (e.g., 172.30.100.104)
    #[arg(long)]
    ip: Option<String>,
    /// Container MAC address (e.g., 92:d0:c6:0a:29:33)
    #[arg(long)]
    mac_address: Option<String>,
    /// Add link to another container (NAME[:ALIAS])
    #[arg(long)]
    link: Vec<String>,
    /// Memory limit (e.g. 64m, 1g)
    #[arg(short, long)]
    memory: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    cpus: Option<f64>,
    /// Tune container pids limit
    #[arg(long)]
    pids_limit: Option<i64>,
    /// Add Linux capabilities
    #[arg(long)]
    cap_add: Vec<String>,
    /// Drop Linux capabilities
    #[arg(long)]
    cap_drop: Vec<String>,
    /// Set meta data on a container
    #[arg(short, long)]
    label: Vec<String>,
    /// Mount the container's root filesystem as read only
    #[arg(long)]
    read_only: bool,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Automatically remove the container when it exits
    #[arg(long)]
    rm: bool,
    /// Restart policy (no, on-failure[:N], always, unless-stopped)
    #[arg(long, default_value = "no")]
    restart: String,
    /// Mount a tmpfs directory (DEST[:OPTIONS])
    #[arg(long)]
    tmpfs: Vec<String>,
    /// Ulimit options (NAME=SOFT[:HARD])
    #[arg(long)]
    ulimit: Vec<String>,
    /// Give extended privileges to this container
    #[arg(long)]
    privileged: bool,
    /// Run an init inside the container that forwards signals and reaps processes
    #[arg(long)]
    init: bool,
    /// Add additional groups to join
    #[arg(long)]
    group_add: Vec<String>,
    /// Logging driver for the container (json-file, none)
    #[arg(long)]
    log_driver: Option<String>,
    /// Log driver options (max-size=10m, max-file=3)
    #[arg(long)]
    log_opt: Vec<String>,
    /// Security options (no-new-privileges, seccomp=unconfined|PROFILE.json)
    #[arg(long)]
    security_opt: Vec<String>,
    /// Pull image before running ("always", "missing", "never")
    #[arg(long, default_value = "missing")]
    pull: String,
    /// Set platform if server is multi-platform capable
    #[arg(long)]
    platform: Option<String>,
    image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Run container in background and print container ID
    #[arg(short, long)]
    detach: bool,
    /// Override the key sequence for detaching a container
    #[arg(long)]
    detach_keys: Option<String>,
    #[command(flatten)]
    create: CreateArgs,
}

/// `--detach-keys` checked before anything is made: its bytes, Docker's default if absent.
fn detach_keys(flag: Option<&str>) -> Result<Vec<u8>> {
    engine::detach::from_query(flag).map_err(|e| anyhow::anyhow!(e))
}

/// `&detachKeys=…` for the daemon, when the user named keys.
fn detach_query(flag: Option<&str>) -> String {
    flag.map(|k| {
        format!(
            "&detachKeys={}",
            form_urlencoded::byte_serialize(k.as_bytes()).collect::<String>()
        )
    })
    .unwrap_or_default()
}

/// Copy our stdin into the attachment. With a terminal, the detach keys stop it (they are
/// kept back, as the docker CLI does): the receiver then resolves.
fn forward_stdin(
    mut wr: impl tokio::io::AsyncWrite + Unpin + Send + 'static,
    keys: Option<Vec<u8>>,
) -> tokio::sync::oneshot::Receiver<()> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let Some(keys) = keys else {
            let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut wr).await;
            let _ = wr.shutdown().await;
            return;
        };
        if engine::detach::copy_until_detach(&mut tokio::io::stdin(), &mut wr, keys).await {
            let _ = tx.send(());
            return;
        }
        let _ = wr.shutdown().await;
    });
    rx
}

/// Be attached through `conn` (run, exec, attach): our terminal raw while we type into a
/// container's, its size followed through `resize_path`, our stdin forwarded when `stdin`,
/// the output shown until it ends (`Some`) or the user detaches (`None`).
async fn attached(
    c: &Client,
    conn: impl tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + 'static,
    tty: bool,
    stdin: bool,
    keys: Vec<u8>,
    resize_path: String,
) -> Option<Result<()>> {
    let raw = RawMode::enable(tty && stdin);
    if tty {
        follow_size(c, resize_path);
    }
    let (rd, wr) = tokio::io::split(conn);
    let shown = match stdin.then(|| forward_stdin(wr, tty.then_some(keys))) {
        None => Some(output(rd, tty).await),
        Some(rx) => {
            let detach = async {
                if rx.await.is_err() {
                    // input ended without the keys: only the output decides now
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                r = output(rd, tty) => Some(r),
                () = detach => None,
            }
        }
    };
    drop(raw);
    shown
}

fn parse_memory(s: &str) -> Result<i64> {
    let s = s.trim().to_ascii_lowercase();
    let (num, mult) = match s.chars().last() {
        Some('k') => (&s[..s.len() - 1], 1i64 << 10),
        Some('m') => (&s[..s.len() - 1], 1 << 20),
        Some('g') => (&s[..s.len() - 1], 1 << 30),
        Some('b') => (&s[..s.len() - 1], 1),
        _ => (s.as_str(), 1),
    };
    let n: f64 = num
        .parse()
        .with_context(|| format!("invalid size: '{s}'"))?;
    Ok((n * mult as f64) as i64)
}

fn create_body(a: &CreateArgs, attach_stdin: bool) -> Result<Value> {
    check_tty(a.tty, attach_stdin)?;
    let mut env = Vec::new();
    for f in &a.env_file {
        let text = std::fs::read_to_string(f).with_context(|| format!("open {}", f.display()))?;
        env.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with('#'))
                .map(str::to_owned),
        );
    }
    for e in &a.env {
        // `-e NAME` takes the value from our environment, as docker does
        if e.contains('=') {
            env.push(e.clone());
        } else if let Ok(v) = std::env::var(e) {
            env.push(format!("{e}={v}"));
        }
    }
    let labels: serde_json::Map<String, Value> = a
        .label
        .iter()
        .map(|l| match l.split_once('=') {
            Some((k, v)) => (k.to_owned(), json!(v)),
            None => (l.clone(), json!("")),
        })
        .collect();
    let (policy, retries) = match a.restart.split_once(':') {
        Some((p, n)) => (
            p.to_owned(),
            n.parse::<i64>()
                .with_context(|| format!("invalid restart policy {}", a.restart))?,
        ),
        None => (a.restart.clone(), 0),
    };
    if !matches!(
        policy.as_str(),
        "no" | "always" | "on-failure" | "unless-stopped"
    ) {
        bail!("invalid restart policy {}", a.restart);
    }
    // as the docker CLI: `-v DST` alone is an anonymous volume, sent in Config.Volumes
    let (binds, anonymous): (Vec<String>, Vec<String>) =
        a.volume.iter().cloned().partition(|v| v.contains(':'));
    let mounts = a
        .mount
        .iter()
        .map(|m| parse_mount_flag(m))
        .collect::<Result<Vec<_>>>()?;
    let mut hc = json!({
        "Binds": binds, "NetworkMode": a.network, "AutoRemove": a.rm, "ReadonlyRootfs": a.read_only,
        "CapAdd": a.cap_add, "CapDrop": a.cap_drop, "RestartPolicy": {"Name": policy, "MaximumRetryCount": retries},
    });
    if let Some(m) = &a.memory {
        hc["Memory"] = json!(parse_memory(m)?);
    }
    if let Some(c) = a.cpus {
        hc["NanoCpus"] = json!((c * 1e9) as i64);
    }
    if let Some(p) = a.pids_limit {
        hc["PidsLimit"] = json!(p);
    }
    if !a.tmpfs.is_empty() {
        let m: serde_json::Map<String, Value> = a
            .tmpfs
            .iter()
            .map(|t| match t.split_once(':') {
                Some((d, o)) => (d.to_owned(), json!(o)),
                None => (t.clone(), json!("")),
            })
            .collect();
        hc["Tmpfs"] = Value::Object(m);
    }
    let mut ulimits = Vec::new();
    for u in &a.ulimit {
        let (name, limits) = u
            .split_once('=')
            .with_context(|| format!("invalid ulimit argument: {u}"))?;
        let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
        let num = |x: &str| {
            x.parse::<i64>()
                .with_context(|| format!("invalid ulimit argument: {u}"))
        };
        ulimits.push(json!({"Name": name, "Soft": num(soft)?, "Hard": num(hard)?}));
    }
    if !ulimits.is_empty() {
        hc["Ulimits"] = json!(ulimits);
    }
    if a.privileged {
        hc["Privileged"] = json!(true);
    }
    if a.init {
        hc["Init"] = json!(true);
    }
    if !a.group_add.is_empty() {
        hc["GroupAdd"] = json!(a.group_add);
    }
    if a.log_driver.is_some() || !a.log_opt.is_empty() {
        let mut opts = serde_json::Map::new();
        for o in &a.log_opt {
            let (k, v) = o
                .split_once('=')
                .with_context(|| format!("invalid log opt {o:?}: expected KEY=VALUE"))?;
            opts.insert(k.to_owned(), json!(v));
        }
        hc["LogConfig"] = json!({"Type": a.log_driver.clone().unwrap_or_default(), "Config": opts});
    }
    let mut security = Vec::new();
    for o in &a.security_opt {
        // as the docker CLI: a seccomp profile is sent as its content
        match o.split_once(['=', ':']) {
            Some(("seccomp", path)) if path != "unconfined" => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("opening seccomp profile ({path}) failed"))?;
                security.push(format!("seccomp={text}"));
            }
            _ => security.push(o.clone()),
        }
    }
    if !security.is_empty() {
        hc["SecurityOpt"] = json!(security);
    }
    if let Some((h, w)) = a.tty.then(term_size).flatten() {
        hc["ConsoleSize"] = json!([h, w]);
    }
    let mut bindings = serde_json::Map::new();
    let mut exposed = serde_json::Map::new();
    for spec in &a.publish {
        for m in engine::network::parse_port_spec(spec)? {
            let key = format!("{}/{}", m.container_port, m.proto);
            exposed.insert(key.clone(), json!({}));
            let list = bindings.entry(key).or_insert_with(|| json!([]));
            if let Some(l) = list.as_array_mut() {
                l.push(json!({
                    "HostIp": m.host_ip.map(|i| i.to_string()).unwrap_or_default(),
                    "HostPort": m.host_port.map(|p| p.to_string()).unwrap_or_default(),
                }));
            }
        }
    }
    for e in &a.expose {
        let (port, proto) = e.split_once('/').unwrap_or((e, "tcp"));
        exposed.insert(format!("{port}/{proto}"), json!({}));
    }
    if !bindings.is_empty() {
        hc["PortBindings"] = Value::Object(bindings);
    }
    if a.publish_all {
        hc["PublishAllPorts"] = json!(true);
    }
    let mut body = json!({
        "Image": a.image, "Env": env, "Labels": labels, "Tty": a.tty,
        "OpenStdin": a.interactive, "StdinOnce": a.interactive && attach_stdin,
        "AttachStdin": attach_stdin, "AttachStdout": true, "AttachStderr": true,
        "HostConfig": hc,
    });
    if !a.command.is_empty() {
        body["Cmd"] = json!(a.command);
    }
    if !exposed.is_empty() {
        body["ExposedPorts"] = Value::Object(exposed);
    }
    if !anonymous.is_empty() {
        body["Volumes"] = anonymous.iter().map(|v| (v.clone(), json!({}))).collect();
    }
    if !mounts.is_empty() {
        body["HostConfig"]["Mounts"] = json!(mounts);
    }
    if !a.link.is_empty() {
        // as the docker CLI sends them: NAME:ALIAS
        let links: Vec<String> = a
            .link
            .iter()
            .map(|l| match l.split_once(':') {
                Some(_) => l.clone(),
                None => format!("{l}:{l}"),
            })
            .collect();
        body["HostConfig"]["Links"] = json!(links);
    }
    if !a.network_alias.is_empty() || a.ip.is_some() {
        let net = match a.network.as_str() {
            "" | "default" => "bridge",
            n => n,
        };
        let mut ep = json!({"Aliases": a.network_alias});
        if let Some(ip) = &a.ip {
            ep["IPAMConfig"] = json!({"IPv4Address": ip});
        }
        body["NetworkingConfig"] = json!({"EndpointsConfig": {net: ep}});
    }
    if let Some(e) = &a.entrypoint {
        body["Entrypoint"] = if e.is_empty() {
            json!([""])
        } else {
            json!([e])
        };
    }
    for (k, v) in [
        ("WorkingDir", &a.workdir),
        ("User", &a.user),
        ("Hostname", &a.hostname),
        ("MacAddress", &a.mac_address),
    ] {
        if let Some(v) = v {
            body[k] = json!(v);
        }
    }
    Ok(body)
}

async fn create_container(c: &Client, a: &CreateArgs, attach_stdin: bool) -> Result<String> {
    let body = create_body(a, attach_stdin)?;
    let q = match &a.name {
        Some(n) => format!(
            "?{}",
            form_urlencoded::Serializer::new(String::new())
                .append_pair("name", n)
                .finish()
        ),
        None => String::new(),
    };
    match a.pull.as_str() {
        "always" => {
            super::registry::pull_image(c, &a.image, a.platform.as_deref(), false, true).await?;
        }
        "missing" | "never" => {}
        other => bail!(
            "invalid pull option: '{other}': must be one of \"always\", \"missing\", \"never\""
        ),
    }
    let v = match c
        .json(
            Method::POST,
            &format!("/containers/create{q}"),
            Payload::Json(body.clone()),
        )
        .await
    {
        Ok(v) => v,
        Err(e) if e.to_string().starts_with("No such image") && a.pull != "never" => {
            // As docker: pull the missing image, then create again.
            eprintln!("Unable to find image '{}' locally", a.image);
            super::registry::pull_image(c, &a.image, a.platform.as_deref(), false, true).await?;
            c.json(
                Method::POST,
                &format!("/containers/create{q}"),
                Payload::Json(body),
            )
            .await?
        }
        Err(e) => return Err(e),
    };
    for w in v["Warnings"].as_array().into_iter().flatten() {
        eprintln!("WARNING: {}", w.as_str().unwrap_or(""));
    }
    Ok(v["Id"].as_str().unwrap_or("").to_owned())
}

pub async fn create(c: &Client, a: CreateArgs) -> Result<()> {
    println!("{}", create_container(c, &a, false).await?);
    Ok(())
}

/// docker's rule: `-it` needs a terminal on stdin.
fn check_tty(tty: bool, stdin: bool) -> Result<()> {
    if tty && stdin && !std::io::stdin().is_terminal() {
        bail!("the input device is not a TTY");
    }
    Ok(())
}

/// The local terminal in raw mode while attached to a container's TTY; restored on drop.
struct RawMode(Option<rustix::termios::Termios>);

impl RawMode {
    fn enable(on: bool) -> Self {
        let fd = rustix::stdio::stdin();
        if !on || !std::io::stdin().is_terminal() {
            return Self(None);
        }
        let Ok(saved) = rustix::termios::tcgetattr(fd) else {
            return Self(None);
        };
        let mut raw = saved.clone();
        raw.make_raw();
        let _ = rustix::termios::tcsetattr(fd, rustix::termios::OptionalActions::Now, &raw);
        Self(Some(saved))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            let _ = rustix::termios::tcsetattr(
                rustix::stdio::stdin(),
                rustix::termios::OptionalActions::Now,
                t,
            );
        }
    }
}

/// Our terminal's size (rows, columns), when stdout is one.
fn term_size() -> Option<(u16, u16)> {
    rustix::termios::tcgetwinsize(rustix::stdio::stdout())
        .ok()
        .filter(|w| w.ws_row > 0 && w.ws_col > 0)
        .map(|w| (w.ws_row, w.ws_col))
}

/// Keep the container's (or exec's) terminal the size of ours: now and on every SIGWINCH.
fn follow_size(c: &Client, resize_path: String) {
    let size = term_size;
    let c = c.clone();
    tokio::spawn(async move {
        let Ok(mut winch) =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change())
        else {
            return;
        };
        loop {
            if let Some((h, w)) = size() {
                let _ = c
                    .json(
                        Method::POST,
                        &format!("{resize_path}?h={h}&w={w}"),
                        Payload::None,
                    )
                    .await;
            }
            if winch.recv().await.is_none() {
                return;
            }
        }
    });
}

/// Copy the attached output to our stdout: raw from a TTY, else demultiplexed.
async fn output(r: impl tokio::io::AsyncRead + Unpin, tty: bool) -> Result<()> {
    if !tty {
        return demux(r).await;
    }
    let mut r = r;
    let mut buf = vec![0u8; 32 << 10];
    let mut o = std::io::stdout();
    loop {
        let n = match r.read(&mut buf).await {
            Ok(n) => n,
            // the daemon closed the attachment with our last keys unread: the output
            // before it is all shown
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Ok(());
        }
        o.write_all(&buf[..n])?;
        o.flush()?;
    }
}

/// Copy multiplexed frames from the daemon to our stdout/stderr until the stream ends.
async fn demux(mut r: impl tokio::io::AsyncRead + Unpin) -> Result<()> {
    let mut frames = engine::frames::FrameDecoder::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = match r.read(&mut buf).await {
            Ok(n) => n,
            // the daemon closed the attachment with our last keys unread: the frames
            // before it are all shown
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Err(e) => return Err(e.into()),
        };
        if n == 0 {
            return Ok(());
        }
        frames.push(&buf[..n]);
        while let Some(f) = frames.next_frame() {
            if f.stream == 2 {
                let mut e = std::io::stderr();
                e.write_all(&f.data)?;
                e.flush()?;
            } else {
                let mut o = std::io::stdout();
                o.write_all(&f.data)?;
                o.flush()?;
            }
        }
    }
}

/// The docker CLI's exit code for a `run` that failed before the program ran: 127 when
/// the command cannot be found, 126 when it cannot be run, 125 for any other error.
pub fn run_failure_code(msg: &str) -> i32 {
    if msg.contains("executable file not found") || msg.contains("no such file or directory") {
        127
    } else if msg.contains("permission denied") {
        126
    } else {
        125
    }
}

/// `run`: errors of the engine before the program ran exit as the docker CLI's do.
pub async fn run(c: &Client, a: RunArgs) -> Result<i32> {
    match run_inner(c, a).await {
        Err(e) => {
            let msg = format!("{e:#}");
            eprintln!("Error: {msg}");
            Ok(run_failure_code(&msg))
        }
        ok => ok,
    }
}

async fn run_inner(c: &Client, a: RunArgs) -> Result<i32> {
    let attach_stdin = a.create.interactive && !a.detach;
    let keys = detach_keys(a.detach_keys.as_deref())?;
    let id = create_container(c, &a.create, attach_stdin).await?;
    runtime::trace::mark("cli created");
    if a.detach {
        c.json(
            Method::POST,
            &format!("/containers/{id}/start"),
            Payload::None,
        )
        .await?;
        println!("{id}");
        return Ok(0);
    }
    let stdin = if attach_stdin { "1" } else { "0" };
    let conn = c
        .hijack(&format!(
            "/containers/{id}/attach?stream=1&stdout=1&stderr=1&stdin={stdin}{}",
            detach_query(a.detach_keys.as_deref())
        ))
        .await?;
    runtime::trace::mark("cli attached");
    let cond = if a.create.rm { "removed" } else { "next-exit" };
    let wait_client = c.clone();
    let wait_path = format!("/containers/{id}/wait?condition={cond}");
    let waiter = tokio::spawn(async move {
        wait_client
            .json(Method::POST, &wait_path, Payload::None)
            .await
    });
    if let Err(e) = c
        .json(
            Method::POST,
            &format!("/containers/{id}/start"),
            Payload::None,
        )
        .await
    {
        if a.create.rm {
            let _ = c
                .json(
                    Method::DELETE,
                    &format!("/containers/{id}?force=1"),
                    Payload::None,
                )
                .await;
        }
        return Err(e);
    }
    runtime::trace::mark("cli started");
    let resize = format!("/containers/{id}/resize");
    let shown = attached(c, conn, a.create.tty, attach_stdin, keys, resize).await;
    let Some(shown) = shown else {
        // detached: the container goes on
        return Ok(0);
    };
    shown?;
    runtime::trace::mark("cli output done");
    let v = waiter.await.context("waiting for the container")??;
    runtime::trace::mark("cli wait done");
    if let Some(m) = v["Error"]["Message"].as_str() {
        eprintln!("{m}");
    }
    Ok(v["StatusCode"].as_i64().unwrap_or(0) as i32)
}

pub async fn start(c: &Client, containers: &[String], attach: bool) -> Result<i32> {
    let mut failed = Vec::new();
    let mut code = 0;
    for id in containers {
        if attach {
            let tty = has_tty(c, id).await?;
            let conn = c
                .hijack(&format!(
                    "/containers/{id}/attach?stream=1&stdout=1&stderr=1"
                ))
                .await?;
            let wait_client = c.clone();
            let wait_path = format!("/containers/{id}/wait?condition=next-exit");
            let waiter = tokio::spawn(async move {
                wait_client
                    .json(Method::POST, &wait_path, Payload::None)
                    .await
            });
            c.json(
                Method::POST,
                &format!("/containers/{id}/start"),
                Payload::None,
            )
            .await?;
            output(conn, tty).await?;
            code = waiter.await??["StatusCode"].as_i64().unwrap_or(0) as i32;
            continue;
        }
        match c
            .json(
                Method::POST,
                &format!("/containers/{id}/start"),
                Payload::None,
            )
            .await
        {
            Ok(_) => println!("{id}"),
            Err(e) => failed.push(e.to_string()),
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("\n"));
    }
    Ok(code)
}

/// `stop` and `container stop`.
#[derive(Args, Debug)]
pub struct StopArgs {
    /// Seconds to wait before killing the container
    #[arg(short, long)]
    pub time: Option<u64>,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub async fn stop(c: &Client, a: StopArgs) -> Result<()> {
    let t = a.time.map(|t| format!("?t={t}")).unwrap_or_default();
    each(c, Method::POST, &a.containers, &format!("stop{t}")).await
}

/// `rm` and `container rm`.
#[derive(Args, Debug)]
pub struct RmArgs {
    /// Force the removal of a running container (uses SIGKILL)
    #[arg(short, long)]
    pub force: bool,
    /// Remove anonymous volumes associated with the container
    #[arg(short, long)]
    pub volumes: bool,
    #[arg(required = true)]
    pub containers: Vec<String>,
}

pub async fn rm(c: &Client, a: RmArgs) -> Result<()> {
    let q = format!("?force={}&v={}", u8::from(a.force), u8::from(a.volumes));
    each(c, Method::DELETE, &a.containers, &q).await
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running)
    #[arg(short, long)]
    all: bool,
    /// Only display container IDs
    #[arg(short, long)]
    quiet: bool,
    /// Don't truncate output
    #[arg(long)]
    no_trunc: bool,
    /// Filter output based on conditions provided
    #[arg(short, long)]
    filter: Vec<String>,
    /// Output format: "table" or "json"
    #[arg(long, default_value = "table")]
    format: String,
}

pub async fn ps(c: &Client, a: PsArgs) -> Result<()> {
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("all", if a.all { "1" } else { "0" })
        .append_pair("filters", &crate::format::filters(&a.filter)?)
        .finish();
    let v = c
        .json(Method::GET, &format!("/containers/json?{q}"), Payload::None)
        .await?;
    let list = v.as_array().cloned().unwrap_or_default();
    if a.format == "json" {
        for i in &list {
            println!("{i}");
        }
        return Ok(());
    }
    let mut rows = Vec::new();
    for i in &list {
        let id = i["Id"].as_str().unwrap_or("");
        let id = if a.no_trunc {
            id.to_owned()
        } else {
            id.chars().take(12).collect()
        };
        if a.quiet {
            println!("{id}");
            continue;
        }
        let mut cmd = format!("\"{}\"", i["Command"].as_str().unwrap_or(""));
        if !a.no_trunc && cmd.chars().count() > 22 {
            cmd = format!("{}…\"", cmd.chars().take(20).collect::<String>());
        }
        let mut names: Vec<String> = i["Names"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|n| n.as_str().map(|s| s.trim_start_matches('/').to_owned()))
            .collect();
        // as the docker CLI: names a link gave (`web/db`) only with --no-trunc
        if !a.no_trunc {
            if let Some(own) = names.iter().find(|n| !n.contains('/')).cloned() {
                names = vec![own];
            }
        }
        rows.push(vec![
            id,
            i["Image"].as_str().unwrap_or("").to_owned(),
            cmd,
            ago(i["Created"].as_i64().unwrap_or(0)),
            i["Status"].as_str().unwrap_or("").to_owned(),
            ports_column(&i["Ports"]),
            names.join(","),
        ]);
    }
    if !a.quiet {
        print!(
            "{}",
            table(
                &[
                    "CONTAINER ID",
                    "IMAGE",
                    "COMMAND",
                    "CREATED",
                    "STATUS",
                    "PORTS",
                    "NAMES"
                ],
                &rows
            )
        );
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output
    #[arg(short, long)]
    follow: bool,
    /// Show timestamps
    #[arg(short, long)]
    timestamps: bool,
    /// Number of lines to show from the end of the logs
    #[arg(short = 'n', long, default_value = "all")]
    tail: String,
    /// Show logs since a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m")
    #[arg(long)]
    since: Option<String>,
    /// Show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m")
    #[arg(long)]
    until: Option<String>,
    container: String,
}

/// The docker CLI's time arguments as UNIX seconds: RFC 3339, a UNIX time, or a duration
/// before now (`10m`, `1h30m`, `45s`).
pub fn unix_time(s: &str) -> Result<String> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Ok(format!(
            "{}.{:09}",
            t.timestamp(),
            t.timestamp_subsec_nanos()
        ));
    }
    if s.parse::<f64>().is_ok() {
        return Ok(s.to_owned());
    }
    let mut total = 0f64;
    let mut num = String::new();
    for ch in s.chars() {
        if ch.is_ascii_digit() || ch == '.' {
            num.push(ch);
            continue;
        }
        let n: f64 = num
            .parse()
            .with_context(|| format!("invalid time {s:?}: use RFC 3339, UNIX seconds or 10m"))?;
        num.clear();
        total += n * match ch {
            'h' => 3600.0,
            'm' => 60.0,
            's' => 1.0,
            _ => bail!("invalid time {s:?}: use RFC 3339, UNIX seconds or a duration like 10m"),
        };
    }
    if !num.is_empty() {
        bail!("invalid time {s:?}: a duration needs a unit (h, m, s)");
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0);
    Ok(format!("{:.9}", now - total))
}

/// Whether a container has a TTY (its output then comes as one raw stream).
async fn has_tty(c: &Client, container: &str) -> Result<bool> {
    let v = c
        .json(
            Method::GET,
            &format!("/containers/{container}/json"),
            Payload::None,
        )
        .await?;
    Ok(v["Config"]["Tty"].as_bool().unwrap_or(false))
}

pub async fn logs(c: &Client, a: LogsArgs) -> Result<()> {
    let tty = has_tty(c, &a.container).await?;
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("stdout", "1")
        .append_pair("stderr", "1")
        .append_pair("follow", if a.follow { "1" } else { "0" })
        .append_pair("timestamps", if a.timestamps { "1" } else { "0" })
        .append_pair("tail", &a.tail)
        .append_pair(
            "since",
            &a.since
                .as_deref()
                .map(unix_time)
                .transpose()?
                .unwrap_or_default(),
        )
        .append_pair(
            "until",
            &a.until
                .as_deref()
                .map(unix_time)
                .transpose()?
                .unwrap_or_default(),
        )
        .finish();
    let resp = Client::ok(
        c.request(
            Method::GET,
            &format!("/containers/{}/logs?{q}", a.container),
            Payload::None,
        )
        .await?,
    )
    .await?;
    let stream = http_body_util::BodyStream::new(resp.into_body());
    use futures_util::TryStreamExt;
    let reader = tokio_util::io::StreamReader::new(
        stream
            .map_ok(|f| f.into_data().unwrap_or_default())
            .map_err(std::io::Error::other),
    );
    output(reader, tty).await
}

/// stop, kill, restart, rm: one call per container, errors collected.
pub async fn each(c: &Client, method: Method, containers: &[String], suffix: &str) -> Result<()> {
    let mut failed = Vec::new();
    for id in containers {
        let path = if suffix.starts_with('?') {
            format!("/containers/{id}{suffix}")
        } else {
            format!("/containers/{id}/{suffix}")
        };
        match c.json(method.clone(), &path, Payload::None).await {
            Ok(_) => println!("{id}"),
            Err(e) => failed.push(e.to_string()),
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("\n"));
    }
    Ok(())
}

/// Prints each exit code; like docker, its own status is 0 unless a wait failed.
pub async fn wait(c: &Client, containers: &[String]) -> Result<i32> {
    for id in containers {
        let path = format!("/containers/{id}/wait?condition=not-running");
        let v = c.json(Method::POST, &path, Payload::None).await?;
        println!("{}", v["StatusCode"].as_i64().unwrap_or(0));
    }
    Ok(0)
}

pub async fn inspect(c: &Client, names: &[String]) -> Result<()> {
    inspect_objects(c, names, &[Kind::Container]).await
}

/// An object `inspect` can show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Container,
    Image,
    Volume,
    Network,
}

impl Kind {
    fn path(self, name: &str) -> String {
        match self {
            Kind::Container => format!("/containers/{name}/json"),
            Kind::Image => format!("/images/{name}/json"),
            Kind::Volume => format!("/volumes/{name}"),
            Kind::Network => format!("/networks/{name}"),
        }
    }
}

/// Show each of `names` as the first of `kinds` that has it, as a JSON array; the ones
/// found by none are errors (Docker's "No such object" when several kinds were tried).
pub async fn inspect_objects(c: &Client, names: &[String], kinds: &[Kind]) -> Result<()> {
    let mut out = Vec::new();
    let mut failed = Vec::new();
    'names: for n in names {
        let mut last = None;
        for k in kinds {
            match c.json(Method::GET, &k.path(n), Payload::None).await {
                Ok(v) => {
                    out.push(v);
                    continue 'names;
                }
                Err(e) => last = Some(e.to_string()),
            }
        }
        match (kinds.len(), last) {
            (1, Some(e)) => failed.push(e),
            _ => failed.push(format!("Error: No such object: {n}")),
        }
    }
    super::images::print_pretty(&Value::Array(out))?;
    if !failed.is_empty() {
        bail!("{}", failed.join("\n"));
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run command in the background
    #[arg(short, long)]
    detach: bool,
    /// Keep STDIN open even if not attached
    #[arg(short, long)]
    interactive: bool,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    tty: bool,
    /// Set environment variables
    #[arg(short, long = "env")]
    env: Vec<String>,
    /// Username or UID (format: <name|uid>[:<group|gid>])
    #[arg(short, long)]
    user: Option<String>,
    /// Working directory inside the container
    #[arg(short, long)]
    workdir: Option<String>,
    /// Override the key sequence for detaching a container
    #[arg(long)]
    detach_keys: Option<String>,
    container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    /// Do not attach STDIN
    #[arg(long)]
    no_stdin: bool,
    /// Override the key sequence for detaching a container
    #[arg(long)]
    detach_keys: Option<String>,
    container: String,
}

/// `berth attach`: the container's output (and our input, when it keeps stdin open) until
/// it exits (its exit code) or the user detaches (0).
pub async fn attach(c: &Client, a: AttachArgs) -> Result<i32> {
    let keys = detach_keys(a.detach_keys.as_deref())?;
    let v = c
        .json(
            Method::GET,
            &format!("/containers/{}/json", a.container),
            Payload::None,
        )
        .await?;
    let id = v["Id"].as_str().unwrap_or("").to_owned();
    if !v["State"]["Running"].as_bool().unwrap_or(false) {
        bail!("You cannot attach to a stopped container, start it first");
    }
    let tty = v["Config"]["Tty"].as_bool().unwrap_or(false);
    let stdin = v["Config"]["OpenStdin"].as_bool().unwrap_or(false) && !a.no_stdin;
    check_tty(tty, stdin)?;
    let conn = c
        .hijack(&format!(
            "/containers/{id}/attach?stream=1&stdout=1&stderr=1&stdin={}{}",
            u8::from(stdin),
            detach_query(a.detach_keys.as_deref())
        ))
        .await?;
    let resize = format!("/containers/{id}/resize");
    let Some(shown) = attached(c, conn, tty, stdin, keys, resize).await else {
        return Ok(0);
    };
    shown?;
    let v = c
        .json(
            Method::GET,
            &format!("/containers/{id}/json"),
            Payload::None,
        )
        .await?;
    Ok(if v["State"]["Running"].as_bool().unwrap_or(false) {
        0
    } else {
        v["State"]["ExitCode"].as_i64().unwrap_or(0) as i32
    })
}

pub async fn exec(c: &Client, a: ExecArgs) -> Result<i32> {
    let attach = !a.detach;
    check_tty(a.tty, a.interactive && attach)?;
    let keys = detach_keys(a.detach_keys.as_deref())?;
    let body = json!({
        "AttachStdin": a.interactive && attach, "AttachStdout": attach, "AttachStderr": attach,
        "DetachKeys": a.detach_keys.clone().unwrap_or_default(),
        "Tty": a.tty, "Env": a.env, "Cmd": a.command, "ConsoleSize": a.tty.then(term_size).flatten().map(|(h, w)| [h, w]),
        "User": a.user.clone().unwrap_or_default(), "WorkingDir": a.workdir.clone().unwrap_or_default(),
    });
    let v = c
        .json(
            Method::POST,
            &format!("/containers/{}/exec", a.container),
            Payload::Json(body),
        )
        .await?;
    let id = v["Id"].as_str().unwrap_or("").to_owned();
    if a.detach {
        c.json(
            Method::POST,
            &format!("/exec/{id}/start"),
            Payload::Json(json!({"Detach": true, "Tty": a.tty})),
        )
        .await?;
        return Ok(0);
    }
    let conn = c
        .hijack_with(
            &format!("/exec/{id}/start"),
            Some(json!({"Detach": false, "Tty": a.tty})),
        )
        .await?;
    let resize = format!("/exec/{id}/resize");
    let Some(shown) = attached(c, conn, a.tty, a.interactive, keys, resize).await else {
        return Ok(0);
    };
    shown?;
    let v = c
        .json(Method::GET, &format!("/exec/{id}/json"), Payload::None)
        .await?;
    Ok(v["ExitCode"].as_i64().unwrap_or(0) as i32)
}

/// docker's PORTS column: `0.0.0.0:8080->80/tcp`, or `80/tcp` when not published.
fn ports_column(ports: &Value) -> String {
    let mut out: Vec<String> = ports
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            let private = p["PrivatePort"].as_u64().unwrap_or(0);
            let proto = p["Type"].as_str().unwrap_or("tcp");
            match p["PublicPort"].as_u64() {
                Some(public) => format!(
                    "{}:{public}->{private}/{proto}",
                    p["IP"].as_str().unwrap_or("0.0.0.0")
                ),
                None => format!("{private}/{proto}"),
            }
        })
        .collect();
    out.sort();
    out.join(", ")
}

pub async fn rename(c: &Client, container: &str, new_name: &str) -> Result<()> {
    let q = form_urlencoded::Serializer::new(String::new())
        .append_pair("name", new_name)
        .finish();
    c.json(
        Method::POST,
        &format!("/containers/{container}/rename?{q}"),
        Payload::None,
    )
    .await?;
    Ok(())
}

/// `diff`: `A`dded, `C`hanged and `D`eleted paths, as docker prints them.
pub async fn diff(c: &Client, container: &str) -> Result<()> {
    let v = c
        .json(
            Method::GET,
            &format!("/containers/{container}/changes"),
            Payload::None,
        )
        .await?;
    for ch in v.as_array().into_iter().flatten() {
        let kind = match ch["Kind"].as_u64() {
            Some(0) => "C",
            Some(1) => "A",
            _ => "D",
        };
        println!("{kind} {}", ch["Path"].as_str().unwrap_or(""));
    }
    Ok(())
}

/// `top`: the daemon runs `ps` and keeps the container's rows.
pub async fn top(c: &Client, container: &str, ps_args: &[String]) -> Result<()> {
    let mut path = format!("/containers/{container}/top");
    if !ps_args.is_empty() {
        let q = form_urlencoded::Serializer::new(String::new())
            .append_pair("ps_args", &ps_args.join(" "))
            .finish();
        path = format!("{path}?{q}");
    }
    let v = c.json(Method::GET, &path, Payload::None).await?;
    let titles: Vec<&str> = v["Titles"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|t| t.as_str())
        .collect();
    let rows: Vec<Vec<String>> = v["Processes"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            r.as_array()
                .into_iter()
                .flatten()
                .map(|x| x.as_str().unwrap_or("").to_owned())
                .collect()
        })
        .collect();
    print!("{}", table(&titles, &rows));
    Ok(())
}

/// `container prune`.
pub async fn prune(c: &Client) -> Result<()> {
    let v = c
        .json(Method::POST, "/containers/prune", Payload::None)
        .await?;
    let ids: Vec<&str> = v["ContainersDeleted"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|x| x.as_str())
        .collect();
    if !ids.is_empty() {
        println!("Deleted Containers:");
        for id in ids {
            println!("{id}");
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        crate::format::human_size(v["SpaceReclaimed"].as_u64().unwrap_or(0))
    );
    Ok(())
}

/// `stats --no-stream`: one row per container, computed as the docker CLI does.
/// `stats`: one table (`--no-stream`), or one a second, redrawn in place, until interrupted.
pub async fn stats(c: &Client, all: bool, no_stream: bool, containers: &[String]) -> Result<()> {
    if no_stream {
        return stats_once(c, all, containers).await;
    }
    loop {
        print!("\x1b[2J\x1b[H");
        stats_once(c, all, containers).await?;
        tokio::time::sleep(std::time::Duration::from_millis(750)).await;
    }
}

async fn stats_once(c: &Client, all: bool, containers: &[String]) -> Result<()> {
    let names: Vec<String> = if containers.is_empty() {
        let q = if all { "?all=1" } else { "" };
        let v = c
            .json(Method::GET, &format!("/containers/json{q}"), Payload::None)
            .await?;
        v.as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x["Id"].as_str().map(str::to_owned))
            .collect()
    } else {
        containers.to_vec()
    };
    let mut rows = Vec::new();
    for n in &names {
        let s = c
            .json(
                Method::GET,
                &format!("/containers/{n}/stats?stream=false"),
                Payload::None,
            )
            .await?;
        let u = |v: &Value| v.as_u64().unwrap_or(0) as f64;
        let cpu_delta = u(&s["cpu_stats"]["cpu_usage"]["total_usage"])
            - u(&s["precpu_stats"]["cpu_usage"]["total_usage"]);
        let sys_delta =
            u(&s["cpu_stats"]["system_cpu_usage"]) - u(&s["precpu_stats"]["system_cpu_usage"]);
        let cpus = u(&s["cpu_stats"]["online_cpus"]).max(1.0);
        let cpu = if sys_delta > 0.0 && cpu_delta > 0.0 {
            cpu_delta / sys_delta * cpus * 100.0
        } else {
            0.0
        };
        let (mem, limit) = (
            u(&s["memory_stats"]["usage"]),
            u(&s["memory_stats"]["limit"]),
        );
        let limit = limit.max(1.0);
        let id = s["id"].as_str().unwrap_or("");
        rows.push(vec![
            id.chars().take(12).collect(),
            s["name"]
                .as_str()
                .unwrap_or("")
                .trim_start_matches('/')
                .to_owned(),
            format!("{cpu:.2}%"),
            format!("{} / {}", binary_size(mem), binary_size(limit)),
            format!("{:.2}%", mem / limit * 100.0),
            s["pids_stats"]["current"].as_u64().unwrap_or(0).to_string(),
        ]);
    }
    print!(
        "{}",
        table(
            &[
                "CONTAINER ID",
                "NAME",
                "CPU %",
                "MEM USAGE / LIMIT",
                "MEM %",
                "PIDS"
            ],
            &rows
        )
    );
    Ok(())
}

/// Docker's `units.BytesSize`: binary units, as `stats` shows memory (`64MiB`).
fn binary_size(b: f64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut i = 0;
    while v >= 1024.0 && i + 1 < units.len() {
        v /= 1024.0;
        i += 1;
    }
    let s = format!("{v:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    format!("{s}{}", units[i])
}

/// `--mount type=volume,source=data,target=/data,readonly` as the docker CLI sends it.
fn parse_mount_flag(spec: &str) -> Result<Value> {
    let mut m = json!({"Type": "volume"});
    for field in spec.split(',').filter(|f| !f.is_empty()) {
        let (k, v) = field.split_once('=').unwrap_or((field, ""));
        let flag = || -> Result<bool> {
            match v {
                "" | "true" | "1" => Ok(true),
                "false" | "0" => Ok(false),
                _ => bail!("invalid value for {k}: {v}"),
            }
        };
        match k {
            "type" => m["Type"] = json!(v),
            "source" | "src" => m["Source"] = json!(v),
            "target" | "destination" | "dst" => m["Target"] = json!(v),
            "readonly" | "ro" => m["ReadOnly"] = json!(flag()?),
            "volume-nocopy" => m["VolumeOptions"]["NoCopy"] = json!(flag()?),
            "tmpfs-size" => {
                m["TmpfsOptions"]["SizeBytes"] = json!(parse_memory(v)?);
            }
            "tmpfs-mode" => {
                let mode = u32::from_str_radix(v, 8)
                    .with_context(|| format!("invalid value for tmpfs-mode: {v}"))?;
                m["TmpfsOptions"]["Mode"] = json!(mode);
            }
            "bind-propagation" | "consistency" => {}
            _ => bail!("unexpected key '{k}' in '{field}'"),
        }
    }
    if m["Target"].is_null() {
        bail!("target is required");
    }
    Ok(m)
}

#[derive(Args, Debug)]
pub struct UpdateArgs {
    /// Memory limit
    #[arg(short, long)]
    memory: Option<String>,
    /// Swap limit equal to memory plus swap: -1 to enable unlimited swap
    #[arg(long)]
    memory_swap: Option<String>,
    /// Number of CPUs
    #[arg(long)]
    cpus: Option<f64>,
    /// CPU shares (relative weight)
    #[arg(short = 'c', long)]
    cpu_shares: Option<i64>,
    /// Tune container pids limit (set -1 for unlimited)
    #[arg(long)]
    pids_limit: Option<i64>,
    /// Restart policy to apply when a container exits
    #[arg(long)]
    restart: Option<String>,
    #[arg(required = true)]
    containers: Vec<String>,
}

/// `update`: new limits and restart policy for running or stopped containers.
pub async fn update(c: &Client, a: UpdateArgs) -> Result<()> {
    let mut body = json!({});
    if let Some(m) = &a.memory {
        body["Memory"] = json!(parse_memory(m)?);
    }
    if let Some(m) = &a.memory_swap {
        body["MemorySwap"] = json!(if m == "-1" { -1 } else { parse_memory(m)? });
    }
    if let Some(n) = a.cpus {
        body["NanoCpus"] = json!((n * 1e9) as i64);
    }
    if let Some(s) = a.cpu_shares {
        body["CpuShares"] = json!(s);
    }
    if let Some(p) = a.pids_limit {
        body["PidsLimit"] = json!(p);
    }
    if let Some(r) = &a.restart {
        let (name, n) = match r.split_once(':') {
            Some((p, n)) => (
                p,
                n.parse::<i64>()
                    .with_context(|| format!("invalid restart policy {r}"))?,
            ),
            None => (r.as_str(), 0),
        };
        body["RestartPolicy"] = json!({"Name": name, "MaximumRetryCount": n});
    }
    if body.as_object().is_some_and(|o| o.is_empty()) {
        bail!("you must provide one or more flags when using this command");
    }
    let mut failed = Vec::new();
    for id in &a.containers {
        match c
            .json(
                Method::POST,
                &format!("/containers/{id}/update"),
                Payload::Json(body.clone()),
            )
            .await
        {
            Ok(_) => println!("{id}"),
            Err(e) => failed.push(e.to_string()),
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("\n"));
    }
    Ok(())
}

/// `port CONTAINER [PRIVATE_PORT[/PROTO]]`: the published ports, as `80/tcp -> 0.0.0.0:4000`.
pub async fn port(c: &Client, container: &str, private: Option<&str>) -> Result<()> {
    let v = c
        .json(
            Method::GET,
            &format!("/containers/{container}/json"),
            Payload::None,
        )
        .await?;
    let want = private.map(|p| {
        if p.contains('/') {
            p.to_owned()
        } else {
            format!("{p}/tcp")
        }
    });
    let mut lines = Vec::new();
    let ports = v["NetworkSettings"]["Ports"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for (key, bindings) in &ports {
        if want.as_deref().is_some_and(|w| w != key) {
            continue;
        }
        for b in bindings.as_array().into_iter().flatten() {
            let ip = b["HostIp"]
                .as_str()
                .filter(|i| !i.is_empty())
                .unwrap_or("0.0.0.0");
            let port = b["HostPort"].as_str().unwrap_or("");
            let addr = if ip.contains(':') {
                format!("[{ip}]:{port}")
            } else {
                format!("{ip}:{port}")
            };
            lines.push(if want.is_some() {
                addr
            } else {
                format!("{key} -> {addr}")
            });
        }
    }
    if lines.is_empty() {
        if let Some(w) = want {
            bail!("No public port '{w}' published for {container}");
        }
    }
    for l in lines {
        println!("{l}");
    }
    Ok(())
}
