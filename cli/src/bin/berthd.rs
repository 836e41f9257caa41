//! `berthd`: the daemon (`berthd daemon ...`, which `berth daemon ...` runs) and the
//! per-container monitor it starts. It also takes every client command, as `berth` does.

fn main() {
    // The monitor is started for every container: no command-line parser for it.
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if let [_, cmd, flag] = args.as_slice() {
        if cmd == "monitor" && flag == "--spare" {
            if let Err(e) = runtime::exeseal::ensure_sealed() {
                eprintln!("berth monitor: {e}");
                std::process::exit(1);
            }
            std::process::exit(engine::monitor::spare());
        }
    }
    if let [_, cmd, flag, dir] = args.as_slice() {
        if cmd == "monitor" && flag == "--stage2" {
            // The monitor creates the container's init from this binary: run from a
            // read-only or sealed copy so the container cannot rewrite it (CVE-2019-5736).
            if let Err(e) = runtime::exeseal::ensure_sealed() {
                eprintln!("berth monitor: {e}");
                std::process::exit(1);
            }
            std::process::exit(engine::monitor::stage2(std::path::Path::new(dir)));
        }
    }
    cli::main(args, |_, hosts, tls, a| {
        cli::commands::system::daemon(hosts, tls, a)
    })
}
