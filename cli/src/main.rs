//! `berth`: the command-line client of the berth daemon, and the daemon's entry point.
//! Only this crate knows clap or the terminal; everything it does goes through the Engine API.

mod client;
mod commands;
mod connect;
mod format;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    /// Daemon socket to connect to (unix:///path)
    #[arg(short = 'H', long = "host", env = "BERTH_HOST", global = true)]
    host: Option<String>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand, Debug)]
enum Cmd {
    /// Run the berth daemon
    Daemon {
        /// Root of persistent state (images, containers)
        #[arg(long, env = "BERTH_DATA_ROOT", default_value = DEFAULT_DATA_ROOT)]
        data_root: PathBuf,
    },
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
    /// Remove one or more images
    Rmi(commands::images::RmiArgs),
    /// Import the contents from a tarball to create a filesystem image
    Import(commands::images::ImportArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default)
    Save(commands::images::SaveArgs),
    /// Load an image from a tar archive or STDIN
    Load(commands::images::LoadArgs),
    /// Manage berth
    #[command(subcommand)]
    System(commands::system::SystemCmd),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Daemon { data_root } => commands::system::daemon(cli.host.as_deref(), data_root),
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
            rt.block_on(run(cli.host, cmd))
        }
    };
    if let Err(e) = result {
        eprintln!("Error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(host: Option<String>, cmd: Cmd) -> anyhow::Result<()> {
    use commands::{images, system};
    let c = connect::client(host.as_deref()).await?;
    match cmd {
        Cmd::Daemon { .. } => unreachable_daemon(),
        Cmd::Version => system::version(&c).await,
        Cmd::Info => system::info(&c).await,
        Cmd::Images(a) => images::list(&c, a).await,
        Cmd::Image(i) => images::image(&c, i).await,
        Cmd::Tag { source, target } => images::tag(&c, &source, &target).await,
        Cmd::History { image } => images::image(&c, images::ImageCmd::History { image }).await,
        Cmd::Rmi(a) => images::rmi(&c, a).await,
        Cmd::Import(a) => images::import(&c, a).await,
        Cmd::Save(a) => images::save(&c, a).await,
        Cmd::Load(a) => images::load(&c, a).await,
        Cmd::System(s) => system::system(&c, s).await,
    }
}

fn unreachable_daemon() -> anyhow::Result<()> {
    anyhow::bail!("the daemon command is handled before connecting")
}
