//! `berth-runtime`: runc's command line and state layout over the `runtime` library, so
//! tools that drive runc (podman `--runtime`, containerd shims) can drive berth.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use clap::{Parser, Subcommand, ValueEnum};
use runtime::{Container, CreateOpts};

#[derive(Parser, Debug)]
#[command(
    name = "berth-runtime",
    version,
    about = "berth's OCI runtime (runc-compatible CLI)"
)]
struct Cli {
    /// Directory for container state.
    #[arg(long, global = true, default_value = runtime::DEFAULT_ROOT)]
    root: PathBuf,
    /// Also write errors to this file.
    #[arg(long, global = true)]
    log: Option<PathBuf>,
    #[arg(long = "log-format", global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Accepted for compatibility; berth-runtime manages cgroupfs directly.
    #[arg(long = "systemd-cgroup", global = true)]
    systemd_cgroup: bool,
    /// Accepted for compatibility.
    #[arg(long, global = true)]
    debug: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum, PartialEq, Eq)]
enum ListFormat {
    Table,
    Json,
}

#[derive(clap::Args, Debug)]
struct CreateArgs {
    /// The bundle directory (config.json + rootfs).
    #[arg(short = 'b', long, default_value = ".")]
    bundle: PathBuf,
    /// Unix socket to receive the pty master when process.terminal is true.
    #[arg(long = "console-socket")]
    console_socket: Option<PathBuf>,
    /// Write the container's init pid to this file.
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    /// Pass fds 3 .. 3+N on to the container process.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    preserve_fds: u32,
    /// Accepted for compatibility (ignored).
    #[arg(long = "no-pivot")]
    no_pivot: bool,
    /// Accepted for compatibility (ignored).
    #[arg(long = "no-new-keyring")]
    no_new_keyring: bool,
    id: String,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Create a container and leave it waiting for `start`.
    Create(CreateArgs),
    /// Run the created container's process.
    Start { id: String },
    /// Print the container's state as JSON.
    State { id: String },
    /// Freeze the container's processes.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Send a signal (default SIGTERM) to the container's init.
    Kill {
        /// Signal every process in the container.
        #[arg(short = 'a', long)]
        all: bool,
        id: String,
        #[arg(default_value = "SIGTERM")]
        signal: String,
    },
    /// Remove a container.
    Delete {
        /// Kill a running container first.
        #[arg(short = 'f', long)]
        force: bool,
        id: String,
    },
    /// Create, start and wait for a container; exit with its status.
    Run {
        #[command(flatten)]
        create: CreateArgs,
        /// Return after start instead of waiting.
        #[arg(short = 'd', long)]
        detach: bool,
    },
    /// List containers.
    List {
        #[arg(short = 'f', long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        /// Only ids.
        #[arg(short = 'q', long)]
        quiet: bool,
    },
    /// Run another process in a running container.
    Exec {
        /// A process.json (OCI `process`) instead of a command line.
        #[arg(short = 'p', long)]
        process: Option<PathBuf>,
        /// Allocate a pty (needs --console-socket).
        #[arg(short = 't', long)]
        tty: bool,
        #[arg(long = "console-socket")]
        console_socket: Option<PathBuf>,
        #[arg(long)]
        cwd: Option<PathBuf>,
        /// Add KEY=VALUE to the environment.
        #[arg(short = 'e', long = "env")]
        env: Vec<String>,
        /// uid[:gid]
        #[arg(short = 'u', long)]
        user: Option<String>,
        #[arg(short = 'd', long)]
        detach: bool,
        #[arg(long = "pid-file")]
        pid_file: Option<PathBuf>,
        id: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Write an example config.json.
    Spec {
        #[arg(short = 'b', long, default_value = ".")]
        bundle: PathBuf,
        #[arg(long)]
        rootless: bool,
        /// Add Docker's default seccomp profile, resolved for the spec's capabilities
        /// and this host (berth's extension; runc has no such flag).
        #[arg(long)]
        seccomp_default: bool,
    },
    /// Print the container's resource usage as events (as runc events).
    Events {
        /// One stats event, then exit.
        #[arg(long)]
        stats: bool,
        /// Seconds between stats events while following.
        #[arg(long, default_value = "5s", value_parser = parse_interval)]
        interval: std::time::Duration,
        id: String,
    },
    /// Change a container's resource limits (as runc update).
    Update {
        /// A JSON file of `linux.resources` ("-" for stdin).
        #[arg(short = 'r', long)]
        resources: Option<PathBuf>,
        /// Memory limit in bytes.
        #[arg(long)]
        memory: Option<i64>,
        /// Memory plus swap limit in bytes.
        #[arg(long = "memory-swap")]
        memory_swap: Option<i64>,
        /// CPU CFS period in microseconds.
        #[arg(long = "cpu-period")]
        cpu_period: Option<u64>,
        /// CPU CFS quota in microseconds.
        #[arg(long = "cpu-quota")]
        cpu_quota: Option<i64>,
        /// CPU shares (relative weight).
        #[arg(long = "cpu-shares")]
        cpu_shares: Option<u64>,
        /// CPUs to use (cpuset).
        #[arg(long = "cpuset-cpus")]
        cpuset_cpus: Option<String>,
        /// Memory nodes to use (cpuset).
        #[arg(long = "cpuset-mems")]
        cpuset_mems: Option<String>,
        /// Maximum number of pids (-1: unlimited).
        #[arg(long = "pids-limit")]
        pids_limit: Option<i64>,
        id: String,
    },
    /// List the container's processes.
    Ps {
        #[arg(short = 'f', long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
        id: String,
    },
}

/// `5s`, `500ms`, `1m` or plain seconds.
fn parse_interval(s: &str) -> Result<std::time::Duration, String> {
    let (num, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let n: f64 = num.parse().map_err(|_| format!("invalid interval {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("invalid interval {s:?}: use ms, s or m")),
    };
    if !(secs > 0.0 && secs.is_finite()) {
        return Err(format!("invalid interval {s:?}: must be positive"));
    }
    Ok(std::time::Duration::from_secs_f64(secs))
}

fn main() {
    let cli = Cli::parse();
    // Commands whose processes enter a container never run from a binary the container
    // could rewrite (CVE-2019-5736). The copy costs ~1 ms per MB, so the others skip it.
    if matches!(cli.cmd, Cmd::Create(_) | Cmd::Run { .. } | Cmd::Exec { .. }) {
        if let Err(e) = runtime::exeseal::ensure_sealed() {
            eprintln!("berth-runtime: {e}");
            std::process::exit(1);
        }
    }
    let log = cli.log.clone();
    let json = cli.log_format == LogFormat::Json;
    match run(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            // Our errors carry their causes in their own message: print the outer one.
            let msg = format!("{e}");
            if let Some(path) = log {
                let line = if json {
                    serde_json::json!({
                        "level": "error",
                        "msg": msg,
                        "time": runtime::state::rfc3339(std::time::SystemTime::now()),
                    })
                    .to_string()
                } else {
                    format!("error: {msg}")
                };
                if let Ok(mut f) = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                {
                    let _ = writeln!(f, "{line}");
                }
            }
            eprintln!("berth-runtime: {msg}");
            std::process::exit(1);
        }
    }
}

fn create_opts(root: &Path, a: &CreateArgs) -> CreateOpts {
    let mut o = CreateOpts::new(root);
    o.console_socket = a.console_socket.clone();
    o.pid_file = a.pid_file.clone();
    o.preserve_fds = a.preserve_fds;
    o
}

fn parse_signal(s: &str) -> anyhow::Result<nix::sys::signal::Signal> {
    use std::str::FromStr;
    if let Ok(n) = s.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n)
            .with_context(|| format!("unknown signal {s}"));
    }
    let name = s.to_ascii_uppercase();
    let name = if name.starts_with("SIG") {
        name
    } else {
        format!("SIG{name}")
    };
    nix::sys::signal::Signal::from_str(&name).with_context(|| format!("unknown signal {s}"))
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    if cli.systemd_cgroup {
        bail!("--systemd-cgroup is not supported: berth-runtime manages cgroupfs paths directly; drop the flag (and use a /path-style linux.cgroupsPath)");
    }
    let root = cli.root.as_path();
    match cli.cmd {
        Cmd::Create(a) => {
            Container::create(&a.id, &a.bundle, create_opts(root, &a))?;
        }
        Cmd::Start { id } => Container::load(root, &id)?.start()?,
        Cmd::Events {
            stats,
            interval,
            id,
        } => loop {
            let mut c = Container::load(root, &id)?;
            let status = c.state().status;
            if !matches!(status, runtime::Status::Running | runtime::Status::Paused) {
                if stats {
                    bail!("container {id} is not running");
                }
                break;
            }
            let Some(cg) = c.state().cgroup.clone() else {
                bail!("container {id} has no cgroup");
            };
            let s = cg.stats(&runtime::cgroup::fs::RealCgroupFs);
            let limit = |v: u64| if v == u64::MAX { 0 } else { v };
            let ev = serde_json::json!({
                "type": "stats",
                "id": id,
                "data": {
                    "cpu": {"usage": {"total": s.cpu_ns}},
                    "memory": {"usage": {"usage": s.memory_usage, "limit": limit(s.memory_limit)}},
                    "pids": {"current": s.pids, "limit": limit(s.pids_limit)},
                },
            });
            println!("{ev}");
            std::io::stdout().flush()?;
            if stats {
                break;
            }
            std::thread::sleep(interval);
        },
        Cmd::Update {
            resources,
            memory,
            memory_swap,
            cpu_period,
            cpu_quota,
            cpu_shares,
            cpuset_cpus,
            cpuset_mems,
            pids_limit,
            id,
        } => {
            let mut res = match resources {
                None => serde_json::json!({}),
                Some(p) => {
                    let text = if p.as_os_str() == "-" {
                        std::io::read_to_string(std::io::stdin())?
                    } else {
                        std::fs::read_to_string(&p)
                            .with_context(|| format!("reading {}", p.display()))?
                    };
                    serde_json::from_str(&text).context("the resources are not valid JSON")?
                }
            };
            let set =
                |v: &mut serde_json::Value, section: &str, key: &str, x: serde_json::Value| {
                    v[section][key] = x;
                };
            if let Some(m) = memory {
                set(&mut res, "memory", "limit", m.into());
            }
            if let Some(m) = memory_swap {
                set(&mut res, "memory", "swap", m.into());
            }
            if let Some(p) = cpu_period {
                set(&mut res, "cpu", "period", p.into());
            }
            if let Some(q) = cpu_quota {
                set(&mut res, "cpu", "quota", q.into());
            }
            if let Some(s) = cpu_shares {
                set(&mut res, "cpu", "shares", s.into());
            }
            if let Some(c) = cpuset_cpus {
                set(&mut res, "cpu", "cpus", c.into());
            }
            if let Some(m) = cpuset_mems {
                set(&mut res, "cpu", "mems", m.into());
            }
            if let Some(p) = pids_limit {
                set(&mut res, "pids", "limit", p.into());
            }
            let res: oci_spec::runtime::LinuxResources =
                serde_json::from_value(res).context("invalid linux.resources")?;
            Container::load(root, &id)?.update(&res)?;
        }
        Cmd::Pause { id } => Container::load(root, &id)?.pause()?,
        Cmd::Resume { id } => Container::load(root, &id)?.resume()?,
        Cmd::State { id } => {
            let mut c = Container::load(root, &id)?;
            println!("{}", serde_json::to_string_pretty(&c.state().oci())?);
        }
        Cmd::Kill { all, id, signal } => {
            let sig = parse_signal(&signal)?;
            let mut c = Container::load(root, &id)?;
            if all {
                c.kill_all(sig)?;
            } else {
                c.kill(sig)?;
            }
        }
        Cmd::Delete { force, id } => {
            match Container::load(root, &id) {
                Ok(c) => c.delete(force)?,
                // `delete --force` of a missing container is not an error, as in runc.
                Err(runtime::RuntimeError::State(runtime::state::StateError::NotFound {
                    ..
                })) if force => {}
                Err(e) => return Err(e.into()),
            }
        }
        Cmd::Run { create, detach } => {
            if !detach {
                runtime::block_forwarded_signals()
                    .map_err(|e| anyhow::anyhow!("blocking signals: {e}"))?;
            }
            let mut c = Container::create(&create.id, &create.bundle, create_opts(root, &create))?;
            if let Err(e) = c.start() {
                let _ = c.delete(true);
                return Err(e.into());
            }
            if detach {
                return Ok(0);
            }
            let code = c.wait_forwarding_signals();
            let del = c.delete(true);
            let code = code?;
            del?;
            return Ok(code);
        }
        Cmd::Exec {
            process,
            tty,
            console_socket,
            cwd,
            env,
            user,
            detach,
            pid_file,
            id,
            command,
        } => {
            let mut c = Container::load(root, &id)?;
            let p = match process {
                Some(path) => {
                    let text = std::fs::read(&path)
                        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
                    serde_json::from_slice(&text)
                        .map_err(|e| anyhow::anyhow!("parsing {}: {e}", path.display()))?
                }
                None => {
                    if command.is_empty() {
                        bail!("exec needs a command or --process");
                    }
                    let bundle = c.state().bundle.clone();
                    let spec = runtime::oci_spec::runtime::Spec::load(bundle.join("config.json"))?;
                    let mut p = spec.process().clone().unwrap_or_default();
                    p.set_args(Some(command));
                    p.set_terminal(Some(tty));
                    if let Some(cwd) = cwd {
                        p.set_cwd(cwd);
                    }
                    let mut all_env = p.env().clone().unwrap_or_default();
                    all_env.extend(env);
                    p.set_env(Some(all_env));
                    if let Some(u) = user {
                        let (uid, gid) = u.split_once(':').unwrap_or((&u, "0"));
                        let mut usr = p.user().clone();
                        usr.set_uid(
                            uid.parse()
                                .map_err(|_| anyhow::anyhow!("--user {u}: not uid[:gid]"))?,
                        );
                        usr.set_gid(
                            gid.parse()
                                .map_err(|_| anyhow::anyhow!("--user {u}: not uid[:gid]"))?,
                        );
                        p.set_user(usr);
                    }
                    p
                }
            };
            if !detach {
                runtime::block_forwarded_signals()
                    .map_err(|e| anyhow::anyhow!("blocking signals: {e}"))?;
            }
            let opts = runtime::ExecOpts {
                console_socket,
                pid_file,
                ..Default::default()
            };
            let pid = c.exec(&p, opts)?;
            if detach {
                return Ok(0);
            }
            return Ok(runtime::wait_forwarding_signals(pid)?);
        }
        Cmd::List { format, quiet } => {
            let mut all = Container::list(root)?;
            if quiet {
                for c in &all {
                    println!("{}", c.id());
                }
            } else if format == ListFormat::Json {
                let states: Vec<_> = all.iter_mut().map(|c| c.state().clone()).collect();
                let oci: Vec<_> = states.iter().map(|s| s.oci()).collect();
                println!("{}", serde_json::to_string(&oci)?);
            } else {
                println!(
                    "{:<20} {:<8} {:<10} {:<40} {:<32} OWNER",
                    "ID", "PID", "STATUS", "BUNDLE", "CREATED"
                );
                for c in &mut all {
                    let s = c.state().oci();
                    println!(
                        "{:<20} {:<8} {:<10} {:<40} {:<32} {}",
                        s.id,
                        s.pid,
                        s.status,
                        s.bundle.display(),
                        s.created,
                        if s.owner.is_empty() { "root" } else { s.owner }
                    );
                }
            }
        }
        Cmd::Spec {
            bundle,
            rootless,
            seccomp_default,
        } => {
            if rootless {
                bail!("spec --rootless is not supported yet");
            }
            let path = bundle.join("config.json");
            if path.exists() {
                bail!("{} already exists; remove it first", path.display());
            }
            let mut spec = runtime::spec::example();
            if seccomp_default {
                runtime::spec::add_default_seccomp(&mut spec);
            }
            let text = serde_json::to_string_pretty(&spec)?;
            std::fs::write(&path, text + "\n")
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        }
        Cmd::Ps { format, id } => {
            let c = Container::load(root, &id)?;
            let pids = c.pids();
            if format == ListFormat::Json {
                println!("{}", serde_json::to_string(&pids)?);
            } else {
                println!("{:<8} CMD", "PID");
                for p in pids {
                    let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
                    let cmd: Vec<String> = cmd
                        .split(|b| *b == 0)
                        .filter(|s| !s.is_empty())
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect();
                    println!("{p:<8} {}", cmd.join(" "));
                }
            }
        }
    }
    Ok(0)
}
