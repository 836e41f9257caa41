//! Crash at any point: the daemon is killed with SIGKILL at seeded random moments while it
//! pulls, loads, builds, commits, runs, removes containers and creates networks. After each
//! kill the page cache is dropped and the daemon starts again on the same data root, in the
//! same namespaces (as a restarted daemon finds its host), and it must show: `system check`
//! clean, every container record whole and listed exactly once, every container that ran
//! before the kill (and was not the one being removed) still running, no address given to
//! two containers. At the end the survivors stop, everything is removed, and nothing is left:
//! no mounts, cgroups, veths or port rules.
//!
//! `cargo xtask crash [--points N] [--seed S]` runs it long (120 points by default);
//! `cargo xtask test` runs it short (`BERTH_CRASH_POINTS`, 25 by default). A failure names
//! the seed and the point, so it can be replayed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::registry::TestRegistry;
use support::{ok, Rng, TestDaemon};

fn env_u64(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok())
}

fn lines(s: &str) -> BTreeSet<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

fn running(d: &TestDaemon) -> BTreeSet<String> {
    lines(&ok(d.berth(&["ps", "-q", "--no-trunc"])))
}

/// What one kill point does while the daemon dies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    Run,
    RunRm,
    Rm,
    Load,
    Build,
    Commit,
    NetworkCreate,
    Pull,
}

const OPS: [Op; 8] = [
    Op::Run,
    Op::RunRm,
    Op::Rm,
    Op::Load,
    Op::Build,
    Op::Commit,
    Op::NetworkCreate,
    Op::Pull,
];

impl Op {
    /// The longest delay before the kill worth trying: about how long the operation takes.
    fn window_ms(self) -> u64 {
        match self {
            Op::Run | Op::RunRm => 40,
            Op::Rm => 25,
            Op::Load => 120,
            Op::Build => 400,
            Op::Commit => 60,
            Op::NetworkCreate => 20,
            Op::Pull => 150,
        }
    }
}

/// Every check after a restart; `why` names the seed and point.
fn check_consistent(d: &TestDaemon, must_run: &BTreeSet<String>, why: &str) {
    d.check_store_and_records(why);
    let now = running(d);
    let lost: Vec<_> = must_run.difference(&now).collect();
    assert!(lost.is_empty(), "{why}: no longer running: {lost:?}");
    let mut addresses = BTreeSet::new();
    for id in &now {
        let v: serde_json::Value =
            serde_json::from_str(&ok(d.berth(&["container", "inspect", id]))).unwrap();
        let ip = v[0]["NetworkSettings"]["IPAddress"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if !ip.is_empty() {
            assert!(
                addresses.insert(ip.clone()),
                "{why}: {ip} is given to two running containers"
            );
        }
    }
}

/// Leftovers in the daemon's namespaces and cgroups once every container is gone.
fn check_nothing_left(d: &TestDaemon) {
    let pid = d.holder_pid().expect("a held daemon");
    let roots = [&d.data_root, &d.exec_root].map(|r| r.to_string_lossy().into_owned());
    let mounts: Vec<String> = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))
        .unwrap()
        .lines()
        // the running daemon's own: its binary, and the namespaces its pool made ahead
        .filter(|l| roots.iter().any(|r| l.contains(r.as_str())))
        .filter(|l| !l.contains("berth.exe") && !l.contains("/netns/.pool/"))
        .map(str::to_owned)
        .collect();
    assert!(mounts.is_empty(), "mounts left: {mounts:#?}");
    let links = || -> Vec<String> {
        std::fs::read_to_string(format!("/proc/{pid}/net/dev"))
            .unwrap()
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next())
            .map(|n| n.trim().to_owned())
            .filter(|n| n != "lo" && n != "berth0")
            .collect()
    };
    // a veth goes with its container's netns, which the kernel frees in the background
    let deadline = Instant::now() + Duration::from_secs(10);
    while !links().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let left = links();
    if !left.is_empty() {
        let ip = std::process::Command::new("nsenter")
            .arg(format!("--target={pid}"))
            .args(["--net", "--", "ip", "-d", "link"])
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default();
        let log = d.log();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        panic!(
            "links left: {left:?}\n{ip}\ndaemon log (last lines, newest first):\n{}",
            tail.join("\n")
        );
    }
    let rules = ok(std::process::Command::new("nsenter")
        .arg(format!("--target={pid}"))
        .args(["--net", "--", "nft", "list", "ruleset"]));
    assert!(
        !rules.contains("dnat to") && !rules.contains("dnat ip to"),
        "port rules left:\n{rules}"
    );
    let parent = d.cgroup_parent();
    for root in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
        let dir = root.path().join(&parent);
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        let subdirs: Vec<_> = rd
            .flatten()
            .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
            .map(|e| e.path())
            .collect();
        assert!(subdirs.is_empty(), "cgroups left: {subdirs:?}");
    }
}

#[test]
#[ignore = "privileged: run by cargo xtask test (short) and cargo xtask crash (long) as root"]
fn kill9_at_random_points_loses_nothing() {
    let points = env_u64("BERTH_CRASH_POINTS").unwrap_or(25);
    let seed = env_u64("BERTH_CRASH_SEED").unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|t| t.as_nanos() as u64)
            .unwrap_or(1)
    }) | 1;
    eprintln!("crash: {points} kill points, seed {seed} (BERTH_CRASH_SEED={seed} replays them)");
    let mut rng = Rng(seed);
    let mut d = TestDaemon::unstarted_held(&[]);
    d.spawn();
    d.import_busybox("busybox", &[("etc/crash", b"base\n")]);
    // a saved image to load, a build context, an image in a registry to pull
    d.import_busybox("crash/saved", &[("etc/saved", b"saved\n")]);
    let archive = d.path("saved.tar");
    ok(d.berth(&["save", "-o", archive.to_str().unwrap(), "crash/saved"]));
    let ctx = d.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    let reg = TestRegistry::plain(&d, 5000);
    let remote = format!("{}/crash/pulled:1", reg.host);
    ok(d.berth(&["tag", "crash/saved", &remote]));
    ok(d.berth(&["push", &remote]));
    // one that runs through every kill, logging
    let ticker = ok(d.berth(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "while true; do echo tick; sleep 0.05; done",
    ]))
    .trim()
    .to_owned();

    let started = Instant::now();
    let mut done = std::collections::BTreeMap::<Op, u32>::new();
    for point in 0..points {
        let why = format!("seed {seed}, point {point}");
        let before = running(&d);
        let all = lines(&ok(d.berth(&["ps", "-aq", "--no-trunc"])));
        let others: Vec<&String> = all.iter().filter(|id| **id != ticker).collect();
        // keep the host's load bounded: past 6 containers, remove one
        let op = if others.len() > 6 {
            Op::Rm
        } else {
            OPS[rng.below(OPS.len() as u64) as usize]
        };
        let mut target = None;
        let args: Vec<String> = match op {
            Op::Run => {
                let mut a = vec!["run".to_string(), "-d".into()];
                if rng.below(2) == 0 {
                    a.extend(["-p".into(), "80".into()]); // an ephemeral host port
                }
                a.extend(["busybox".into(), "sleep".into(), "600".into()]);
                a
            }
            Op::RunRm => ["run", "--rm", "busybox", "true"]
                .map(String::from)
                .to_vec(),
            Op::Rm => match others.get(rng.below(others.len() as u64) as usize) {
                Some(id) => {
                    target = Some((*id).clone());
                    vec!["rm".into(), "-f".into(), (*id).clone()]
                }
                None => ["network", "ls"].map(String::from).to_vec(),
            },
            Op::Load => {
                let _ = d.berth(&["rmi", "-f", "crash/saved"]).output();
                vec!["load".into(), "-i".into(), archive.display().to_string()]
            }
            Op::Build => {
                std::fs::write(
                    ctx.join("Dockerfile"),
                    format!("FROM busybox\nRUN echo {point} > /built && cat /etc/crash\n"),
                )
                .unwrap();
                vec![
                    "build".into(),
                    "-q".into(),
                    "-t".into(),
                    format!("crash/build:{point}"),
                    ctx.display().to_string(),
                ]
            }
            Op::Commit => {
                let source = before
                    .iter()
                    .next()
                    .cloned()
                    .unwrap_or_else(|| ticker.clone());
                vec!["commit".into(), source, format!("crash/commit:{point}")]
            }
            Op::NetworkCreate => vec!["network".into(), "create".into(), format!("crash{point}")],
            Op::Pull => {
                let _ = d.berth(&["rmi", "-f", &remote]).output();
                vec!["pull".into(), "-q".into(), remote.clone()]
            }
        };
        *done.entry(op).or_default() += 1;
        let mut client = d
            .berth(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(rng.below(op.window_ms())));
        d.kill9();
        let _ = client.kill(); // a client streaming from a dead daemon ends by itself too
        let _ = client.wait();
        // what was only in the page cache is read back from the disk
        let _ = std::fs::write("/proc/sys/vm/drop_caches", "1");
        d.spawn();
        let mut must_run = before;
        if let Some(t) = &target {
            must_run.remove(t);
        }
        check_consistent(&d, &must_run, &format!("{why} ({op:?} {args:?})"));
    }
    let figures: Vec<String> = done.iter().map(|(op, n)| format!("{op:?} {n}")).collect();
    eprintln!(
        "crash: {points} kill points survived in {:.1} s (seed {seed}): {}",
        started.elapsed().as_secs_f64(),
        figures.join(", ")
    );

    // the survivors keep logging and still stop
    let ticks = ok(d.berth(&["logs", &ticker])).lines().count();
    std::thread::sleep(Duration::from_millis(300));
    assert!(ok(d.berth(&["logs", &ticker])).lines().count() > ticks);
    for id in running(&d) {
        ok(d.berth(&["stop", "-t", "1", &id]));
    }
    assert!(running(&d).is_empty());
    let all = lines(&ok(d.berth(&["ps", "-aq"])));
    if !all.is_empty() {
        let mut rm = d.berth(&["rm", "-f"]);
        rm.args(&all);
        ok(rm);
    }
    ok(d.berth(&["network", "prune", "-f"]));
    check_nothing_left(&d);
    drop(reg);
}
