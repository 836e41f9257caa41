//! `berth`: the client. It links no engine and no runtime (a smaller binary that the kernel
//! maps and the loader relocates in less time, for every command a script runs); `berth
//! daemon` becomes `berthd`, the binary beside it.

use std::ffi::OsString;

fn main() {
    cli::main(std::env::args_os().collect(), hand_over)
}

/// `berth daemon ...` is `berthd daemon ...`: the same process (its pid is the daemon's), the
/// same arguments.
fn hand_over(
    args: &[OsString],
    _hosts: &[String],
    _tls: &cli::connect::TlsArgs,
    _a: cli::commands::system::DaemonArgs,
) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    let daemon = cli::daemon_binary()?;
    let err = std::process::Command::new(&daemon)
        .args(args.iter().skip(1))
        .exec();
    anyhow::bail!("running the daemon {}: {err}", daemon.display())
}
