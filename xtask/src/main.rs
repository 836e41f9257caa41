//! Development automation for berth: `cargo xtask <task>`. Not shipped.
//!
//! Every task installs the Debian packages it needs itself (we run as root on CI), so a
//! fresh machine needs nothing but `cargo xtask demo` and `cargo xtask test`.

mod bench;
mod bench_build;
mod bench_net;
mod bench_pull;
mod bench_runtime;
mod compose;
mod crash;
mod demo;
mod dockerfile;
mod dockerpy;
mod fuzz;
mod rootfs;
mod soak;
mod sys;
mod test;
mod venv;
mod vm;

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  demo                 build berth and run its main job against a scratch daemon
  test                 lint, unit tests, end-to-end tests (privileged ones when root)
  lint                 cargo fmt --check and cargo clippy -D warnings
  vm-test [--filter PATTERN] [--keep] [--dev] [--timeout SECS] [--accel kvm|tcg]
                       the kernel-dependent end-to-end scenarios in a VM on Debian's cloud
                       kernel with only cgroup v2 (qemu, KVM when it works, else TCG)
  crash [--points N] [--seed S]
                       kill -9 the daemon at N seeded random points (120) during pull, load,
                       build, commit, run, rm, network create; check that nothing is lost
  soak [--clients N] [--seconds S] [--containers M]
                       N concurrent API clients (200) for S seconds (60), then M containers
                       alive (500): zero 5xx, nothing corrupt, p50/p99, ps under 50 ms
  bench <name>         benchmarks against the peers: store, run, pull, net, runtime
  rootfs <name>        build once, then print, a cached Debian rootfs tarball: python, redis
  compose              build once, then print, the cached docker-compose 1.29.2 the tests use
  dockerpy [--peer] [-k EXPR] [FILE...]
                       docker-py 6.1.3's container and exec integration tests against berth
                       (and, with --peer, dockerd 20.10), each in private namespaces
  dockerpy-cache       build once, then print, the cached docker-py tests dir the e2e test uses
  dockerfile dump PATH | expand [--env K=V]... WORD
  fuzz [--time SECS] [TARGET...]
                       run the cargo-fuzz targets (nightly; installs cargo-fuzz) one at a time,
                       SECS each (300); totals in fuzz/HOURS.md, crashes kept in fuzz/regressions";

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("demo") => demo::run(),
        Some("test") => test::run(&args[1..]),
        Some("lint") => test::lint(),
        Some("vm-test") => vm::run_task(&args[1..]),
        Some("bench") => bench::run(&args[1..]),
        Some("crash") => crash::run_task(&args[1..]),
        Some("soak") => soak::run_task(&args[1..]),
        Some("fuzz") => fuzz::run_task(&args[1..]),
        Some("dockerfile") => dockerfile::run(&args[1..]),
        Some("rootfs") => rootfs::run_task(&args[1..]),
        Some("compose") => compose::run_task(&args[1..]),
        Some("dockerpy") => dockerpy::run_task(&args[1..]),
        Some("dockerpy-cache") => dockerpy::run_cache_task(&args[1..]),
        Some("dockerpy-inner") => dockerpy::run_inner(&args[1..]),
        Some(other) => anyhow::bail!("unknown task {other:?}\n{USAGE}"),
        None => anyhow::bail!("{USAGE}"),
    }
}
