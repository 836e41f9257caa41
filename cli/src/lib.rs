//! `berth`, the command-line client of the berth daemon, and `berthd`, the daemon and the
//! per-container monitor. Only this crate knows clap or the terminal; everything the client
//! does goes through the Engine API.
//!
//! Two binaries share this command line: `berth` (src/main.rs) links only the client, so the
//! command that scripts run in loops starts fast, and hands `berth daemon` over to `berthd`
//! (src/bin/berthd.rs), which links the engine and the runtime.

mod client;
pub mod commands;
pub mod connect;
mod context;
mod copy;
mod format;

use std::path::PathBuf;

use clap::{Args, FromArgMatches, Parser, Subcommand};

pub const DEFAULT_SOCKET: &str = "/run/berth.sock";
pub const DEFAULT_DATA_ROOT: &str = "/var/lib/berth";

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "A fast, Docker-compatible container engine",
    propagate_version = true
)]
pub struct Cli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: Cmd,
}

/// The options every command takes.
#[derive(Args, Debug)]
struct Globals {
    /// Daemon socket to connect to: unix:///path or tcp://host:port (the daemon: where to
    /// listen, repeatable)
    #[arg(short = 'H', long = "host", env = "BERTH_HOST", global = true)]
    host: Vec<String>,
    #[command(flatten)]
    tls: connect::TlsArgs,
}

impl Cli {
    /// The arguments of a command that scripts run in loops (`run`, `exec`, `ps`, …),
    /// parsed against that command's own arguments only: clap builds the whole command
    /// tree, every subcommand's arguments, for any parse (0.8 ms of a `run`). Whatever
    /// this does not accept (help, a typo, an unknown flag) goes to the full parser, so
    /// that what the user sees stays the same.
    fn parse_fast(args: &[std::ffi::OsString]) -> Option<Self> {
        fn one<A: Args + FromArgMatches>(
            args: &[std::ffi::OsString],
            name: &'static str,
            wrap: fn(A) -> Cmd,
        ) -> Option<Cli> {
            let cmd = Globals::augment_args(clap::Command::new("berth"))
                .subcommand(A::augment_args(clap::Command::new(name)));
            let mut m = cmd.try_get_matches_from(args).ok()?;
            let globals = Globals::from_arg_matches_mut(&mut m).ok()?;
            let (_, mut sub) = m.remove_subcommand()?;
            let a = A::from_arg_matches_mut(&mut sub).ok()?;
            Some(Cli {
                globals,
                command: wrap(a),
            })
        }
        // the first word that is not a global option (nor its value) names the command
        let mut words = args.iter().skip(1).map(|a| a.to_str());
        let name = loop {
            match words.next()?? {
                "-H" | "--host" | "--tlscacert" | "--tlscert" | "--tlskey" => {
                    words.next()?;
                }
                "--tlsverify" => {}
                w if w.starts_with("--host=")
                    || w.starts_with("--tls")
                    || (w.starts_with("-H") && w.len() > 2) => {}
                w => break w,
            }
        };
        use commands::containers as ct;
        match name {
            "run" => one::<ct::RunArgs>(args, "run", Cmd::Run),
            "exec" => one::<ct::ExecArgs>(args, "exec", Cmd::Exec),
            "create" => one::<ct::CreateArgs>(args, "create", Cmd::Create),
            "ps" => one::<ct::PsArgs>(args, "ps", Cmd::Ps),
            "logs" => one::<ct::LogsArgs>(args, "logs", Cmd::Logs),
            _ => None,
        }
    }
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the berth daemon
    Daemon(commands::system::DaemonArgs),
    /// Show the client and daemon versions
    Version,
    /// Display system-wide information
    Info,
    /// List images
    Images(commands::images::ListArgs),
    /// Manage images
    #[command(subcommand)]
    Image(commands::images::ImageCmd),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE
    Tag { source: String, target: String },
    /// Show the history of an image
    History { image: String },
    /// Build an image from a Dockerfile
    Build(commands::build::BuildArgs),
    /// Create a new image from a container's changes
    Commit(commands::build::CommitArgs),
    /// Manage builds
    #[command(subcommand)]
    Builder(BuilderCmd),
    /// Remove one or more images
    Rmi(commands::images::RmiArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(commands::images::ImportArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(commands::images::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(commands::images::LoadArgs),
    /// Download an image from a registry
    Pull(commands::registry::PullArgs),
    /// Upload an image to a registry
    Push(commands::registry::PushArgs),
    /// Log in to a registry
    Login(commands::registry::LoginArgs),
    /// Log out from a registry
    Logout(commands::registry::LogoutArgs),
    /// Search a registry for images
    Search(commands::registry::SearchArgs),
    /// Manage networks
    #[command(subcommand)]
    Network(commands::network::NetworkCmd),
    /// Return low-level information on containers, images, volumes or networks
    Inspect {
        /// Only this type of object
        #[arg(long = "type", value_enum)]
        kind: Option<commands::containers::Kind>,
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Get real time events from the server
    Events(commands::system::EventsArgs),
    /// Manage volumes
    #[command(subcommand)]
    Volume(commands::volume::VolumeCmd),
    /// Manage berth
    #[command(subcommand)]
    System(commands::system::SystemCmd),
    /// Create and run a new container from an image
    Run(commands::containers::RunArgs),
    /// Execute a command in a running container
    Exec(commands::containers::ExecArgs),
    /// Attach local standard input, output, and error streams to a running container
    Attach(commands::containers::AttachArgs),
    /// Create a new container
    Create(commands::containers::CreateArgs),
    /// Start one or more stopped containers
    Start {
        /// Attach STDOUT/STDERR and forward signals
        #[arg(short, long)]
        attach: bool,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// List containers
    Ps(commands::containers::PsArgs),
    /// Fetch the logs of a container
    Logs(commands::containers::LogsArgs),
    /// Stop one or more running containers
    Stop(commands::containers::StopArgs),
    /// Kill one or more running containers
    Kill {
        /// Signal to send to the container
        #[arg(short, long, default_value = "KILL")]
        signal: String,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Restart one or more containers
    Restart {
        /// Seconds to wait before killing the container
        #[arg(short, long)]
        time: Option<u64>,
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Remove one or more containers
    Rm(commands::containers::RmArgs),
    /// Display the running processes of a container
    Top {
        container: String,
        /// ps options (default -ef)
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// Display a snapshot of containers' resource usage (--no-stream)
    Stats {
        /// Show all containers (default shows just running)
        #[arg(short, long)]
        all: bool,
        /// Disable streaming stats and only pull the first result
        #[arg(long)]
        no_stream: bool,
        containers: Vec<String>,
    },
    /// Update configuration of one or more containers
    Update(commands::containers::UpdateArgs),
    /// List port mappings or a specific mapping for the container
    Port {
        container: String,
        /// PRIVATE_PORT[/PROTO]
        private: Option<String>,
    },
    /// Rename a container
    Rename { container: String, new_name: String },
    /// Inspect changes to files or directories on a container's filesystem
    Diff { container: String },
    /// Copy files/folders between a container and the local filesystem
    Cp(commands::cp::CpArgs),
    /// Pause all processes within one or more containers
    Pause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Unpause all processes within one or more containers
    Unpause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Block until one or more containers stop, then print their exit codes
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Manage containers
    #[command(subcommand)]
    Container(ContainerCmd),
    /// The per-container monitor (started by the daemon)
    #[command(hide = true)]
    Monitor {
        #[arg(long)]
        stage2: bool,
        dir: PathBuf,
    },
}

#[derive(Subcommand, Debug)]
enum BuilderCmd {
    /// Remove the build cache
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(Subcommand, Debug)]
enum ContainerCmd {
    /// List containers
    #[command(alias = "list", alias = "ps")]
    Ls(commands::containers::PsArgs),
    /// Display detailed information on one or more containers
    Inspect {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Create and run a new container from an image
    Run(Box<commands::containers::RunArgs>),
    /// Stop one or more running containers
    Stop(commands::containers::StopArgs),
    /// Remove one or more containers
    Rm(commands::containers::RmArgs),
    /// Fetch the logs of a container
    Logs(commands::containers::LogsArgs),
    /// Copy files/folders between a container and the local filesystem
    Cp(commands::cp::CpArgs),
    /// Remove all stopped containers
    Prune {
        /// Do not prompt for confirmation
        #[arg(short, long)]
        force: bool,
    },
}

/// `berthd`, the daemon's binary: the one beside this one (the two are installed together,
/// so that a client never starts a daemon of another version).
pub fn daemon_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()
        .map_err(|e| anyhow::anyhow!("finding the berth binary (berthd is beside it): {e}"))?;
    let beside = exe.with_file_name("berthd");
    if !beside.is_file() {
        anyhow::bail!(
            "berthd, the daemon, is not beside {}: install the two binaries together",
            exe.display()
        );
    }
    Ok(beside)
}

/// What runs `berth daemon`: the daemon itself in `berthd`, a hand-over to `berthd` in the
/// client. Given the whole command line, and its `-H` and TLS options.
pub type DaemonMain = fn(
    args: &[std::ffi::OsString],
    hosts: &[String],
    tls: &connect::TlsArgs,
    a: commands::system::DaemonArgs,
) -> anyhow::Result<()>;

/// Parse the command line and run its command; `daemon` runs `berth daemon`.
pub fn main(args: Vec<std::ffi::OsString>, daemon: DaemonMain) -> ! {
    runtime::trace::mark("cli main");
    let cli = Cli::parse_fast(&args).unwrap_or_else(|| Cli::parse_from(&args));
    runtime::trace::mark("cli parsed");
    let result = match cli.command {
        Cmd::Monitor { dir, .. } => Err(anyhow::anyhow!(
            "the monitor is started by the daemon as `berthd monitor --stage2 {}`",
            dir.display()
        )),
        Cmd::Daemon(a) => daemon(&args, &cli.globals.host, &cli.globals.tls, a).map(|()| 0),
        cmd => {
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("berth: cannot start: {e}");
                    std::process::exit(1);
                }
            };
            let r = rt.block_on(run(cli.globals.host, cli.globals.tls, cmd));
            // A read of stdin may still block a runtime thread (nothing more was typed):
            // do not wait for it.
            rt.shutdown_background();
            r
        }
    };
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("Error: {e:#}");
            std::process::exit(1);
        }
    }
}

async fn run(host: Vec<String>, tls: connect::TlsArgs, cmd: Cmd) -> anyhow::Result<i32> {
    use commands::containers as ct;
    use hyper::Method;
    // Logging out only edits the credentials file: no daemon needed.
    let cmd = match cmd {
        Cmd::Logout(a) => return commands::registry::logout(a).await.map(|()| 0),
        other => other,
    };
    if host.len() > 1 {
        anyhow::bail!("a client talks to one daemon: give -H once");
    }
    let c = connect::client(host.first().map(String::as_str), &tls).await?;
    let t = |time: Option<u64>| time.map(|t| format!("?t={t}")).unwrap_or_default();
    let done = |r: anyhow::Result<()>| r.map(|()| 0);
    match cmd {
        Cmd::Run(a) => ct::run(&c, a).await,
        Cmd::Create(a) => done(ct::create(&c, a).await),
        Cmd::Exec(a) => ct::exec(&c, a).await,
        Cmd::Start { attach, containers } => ct::start(&c, &containers, attach).await,
        Cmd::Attach(a) => ct::attach(&c, a).await,
        Cmd::Ps(a) => done(ct::ps(&c, a).await),
        Cmd::Logs(a) => done(ct::logs(&c, a).await),
        Cmd::Stop(a) => done(ct::stop(&c, a).await),
        Cmd::Kill { signal, containers } => done(
            ct::each(
                &c,
                Method::POST,
                &containers,
                &format!("kill?signal={signal}"),
            )
            .await,
        ),
        Cmd::Restart { time, containers } => done(
            ct::each(
                &c,
                Method::POST,
                &containers,
                &format!("restart{}", t(time)),
            )
            .await,
        ),
        Cmd::Rm(a) => done(ct::rm(&c, a).await),
        Cmd::Wait { containers } => ct::wait(&c, &containers).await,
        Cmd::Update(a) => done(ct::update(&c, a).await),
        Cmd::Port { container, private } => {
            done(ct::port(&c, &container, private.as_deref()).await)
        }
        Cmd::Inspect { kind, names } => {
            use commands::containers::Kind;
            let kinds = match kind {
                Some(k) => vec![k],
                None => vec![Kind::Container, Kind::Image, Kind::Volume, Kind::Network],
            };
            done(ct::inspect_objects(&c, &names, &kinds).await)
        }
        Cmd::Rename {
            container,
            new_name,
        } => done(ct::rename(&c, &container, &new_name).await),
        Cmd::Diff { container } => done(ct::diff(&c, &container).await),
        Cmd::Cp(a) => done(commands::cp::cp(&c, a).await),
        Cmd::Stats {
            all,
            no_stream,
            containers,
        } => done(ct::stats(&c, all, no_stream, &containers).await),
        Cmd::Top { container, ps_args } => done(ct::top(&c, &container, &ps_args).await),
        Cmd::Pause { containers } => done(ct::each(&c, Method::POST, &containers, "pause").await),
        Cmd::Unpause { containers } => {
            done(ct::each(&c, Method::POST, &containers, "unpause").await)
        }
        Cmd::Container(cc) => match cc {
            ContainerCmd::Ls(a) => done(ct::ps(&c, a).await),
            ContainerCmd::Inspect { containers } => done(ct::inspect(&c, &containers).await),
            ContainerCmd::Run(a) => ct::run(&c, *a).await,
            ContainerCmd::Stop(a) => done(ct::stop(&c, a).await),
            ContainerCmd::Rm(a) => done(ct::rm(&c, a).await),
            ContainerCmd::Logs(a) => done(ct::logs(&c, a).await),
            ContainerCmd::Cp(a) => done(commands::cp::cp(&c, a).await),
            ContainerCmd::Prune { .. } => done(ct::prune(&c).await),
        },
        Cmd::Monitor { .. } => unreachable_daemon().map(|()| 0),
        other => done(run_images(&c, other).await),
    }
}

async fn run_images(c: &client::Client, cmd: Cmd) -> anyhow::Result<()> {
    use commands::{images, registry, system};
    match cmd {
        Cmd::Daemon(_) => unreachable_daemon(),
        Cmd::Version => system::version(c).await,
        Cmd::Info => system::info(c).await,
        Cmd::Images(a) => images::list(c, a).await,
        Cmd::Image(i) => images::image(c, i).await,
        Cmd::Tag { source, target } => images::tag(c, &source, &target).await,
        Cmd::History { image } => images::image(c, images::ImageCmd::History { image }).await,
        Cmd::Rmi(a) => images::rmi(c, a).await,
        Cmd::Build(a) => commands::build::build(c, a).await,
        Cmd::Commit(a) => commands::build::commit(c, a).await,
        Cmd::Builder(BuilderCmd::Prune { .. }) => commands::build::builder_prune(c).await,
        Cmd::Import(a) => images::import(c, a).await,
        Cmd::Save(a) => images::save(c, a).await,
        Cmd::Load(a) => images::load(c, a).await,
        Cmd::System(s) => system::system(c, s).await,
        Cmd::Pull(a) => registry::pull(c, a).await,
        Cmd::Network(n) => commands::network::network(c, n).await,
        Cmd::Volume(v) => commands::volume::volume(c, v).await,
        Cmd::Events(a) => system::events(c, a).await,
        Cmd::Push(a) => registry::push(c, a).await,
        Cmd::Login(a) => registry::login(c, a).await,
        Cmd::Search(a) => registry::search(c, a).await,
        _ => unreachable_daemon(),
    }
}

/// `DELETE /containers/{id}`'s query for `rm [-f] [-v]`.
fn unreachable_daemon() -> anyhow::Result<()> {
    anyhow::bail!("the daemon command is handled before connecting")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<std::ffi::OsString> {
        s.split_whitespace().map(Into::into).collect()
    }

    #[test]
    fn the_fast_parse_agrees_with_the_full_one() {
        for line in [
            "berth run --rm busybox true",
            "berth -H unix:///tmp/s run -it --name x -e A=1 -p 80:80 img sh -c 'echo hi'",
            "berth --host=unix:///tmp/s run -d img",
            "berth run -H unix:///tmp/s img ls -l",
            "berth -Hunix:///tmp/s exec -it c sh",
            "berth create --name n img",
            "berth ps -a -q --filter status=exited",
            "berth logs -f --tail 5 c",
            "berth --tlsverify --tlscacert ca.pem -H tcp://127.0.0.1:2376 run --rm img",
            "berth -H unix:///a -H tcp://b:1 ps -a",
        ] {
            let args = argv(line);
            let fast = Cli::parse_fast(&args).unwrap_or_else(|| panic!("no fast parse: {line}"));
            let full = Cli::try_parse_from(&args).unwrap();
            assert_eq!(format!("{fast:?}"), format!("{full:?}"), "{line}");
        }
    }

    #[test]
    fn the_fast_parse_leaves_the_rest_to_the_full_one() {
        for line in [
            "berth run",
            "berth run --help",
            "berth run --no-such-flag img",
            "berth --version",
            "berth images",
            "berth -H",
            "berth",
        ] {
            assert!(Cli::parse_fast(&argv(line)).is_none(), "{line}");
        }
    }

    #[test]
    fn the_command_tree_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
