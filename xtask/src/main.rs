//! Development automation for berth: `cargo xtask <task>`. Not shipped.

mod dockerfile;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("dockerfile") => dockerfile::run(&args[1..]),
        Some(other) => anyhow::bail!("unknown task {other:?}"),
        None => anyhow::bail!("usage: cargo xtask <test|lint|bench|demo>"),
    }
}
