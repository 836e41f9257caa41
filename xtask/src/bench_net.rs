//! `cargo xtask bench net [N]`: per-container network setup and teardown, berth's
//! netbridge next to netavark 1.4 (driven the way podman drives it: `netavark --config DIR
//! setup NETNS` with the network options on stdin) and next to the raw netlink floor
//! (netns + veth + address + route, no state, no IPAM). Interleaved, medians and ratios.
//!
//! Everything runs inside a private network and mount namespace: xtask re-executes itself
//! under `unshare --net --mount`, so no bridge, rule or address reaches the host.

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use netbridge::netlink::{BridgeSpec, VethSpec};
use netbridge::{parse_port_spec, Config, ConnectRequest, LinuxNetlink, Netlink, Networks, Nft};

use crate::sys::{ensure_packages, is_root};

const INSIDE: &str = "BERTH_BENCH_NET_INSIDE";
const NETAVARK: &str = "/usr/lib/podman/netavark";

pub fn run(args: &[String]) -> Result<()> {
    let n: usize = match args.first() {
        Some(a) => a.parse().context("bench net [ITERATIONS]")?,
        None => 30,
    };
    if std::env::var_os(INSIDE).is_some() {
        return inside(n);
    }
    if !is_root() {
        bail!("bench net needs root (it makes namespaces, bridges and nft tables)");
    }
    ensure_packages(&["netavark", "nftables", "iptables", "util-linux"])?;
    let st = Command::new("unshare")
        .args(["--net", "--mount", "--propagation", "private", "--"])
        .arg(std::env::current_exe()?)
        .args(["bench", "net", &n.to_string()])
        .env(INSIDE, "1")
        .status()?;
    if !st.success() {
        bail!("bench net failed inside its namespace");
    }
    Ok(())
}

fn median(v: &mut [Duration]) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}

#[derive(Default)]
struct Series {
    setup: Vec<Duration>,
    teardown: Vec<Duration>,
}

fn inside(n: usize) -> Result<()> {
    let dir = tempfile_dir()?;
    let measured = measure(&dir, n);
    // also when the bench failed half-way: nothing of it stays in /tmp (its mounts and
    // namespaces go with the bench's own mount and network namespaces)
    let _ = Command::new("umount").arg(dir.join("run")).status();
    let _ = std::fs::remove_dir_all(&dir);
    measured
}

fn measure(dir: &std::path::Path, n: usize) -> Result<()> {
    // The netns pins live on a tmpfs, as under the daemon's exec-root (and /run/netns on a
    // usual host); berth's saved state on the disk, as on its data root. This mount dies with
    // the bench's mount namespace.
    let run = dir.join("run");
    std::fs::create_dir_all(&run)?;
    let st = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "mode=0700", "bench-net-run"])
        .arg(&run)
        .status()?;
    if !st.success() {
        bail!("mounting a tmpfs on {}", run.display());
    }
    let nl = Arc::new(LinuxNetlink::default());

    // berth
    let nets = Networks::open(
        Config::under(&dir.join("berth"), &run.join("berth")),
        nl.clone(),
        Arc::new(Nft::default()),
    )?;
    nets.reconcile(&|_| true)?;
    // as the daemon does: starts take namespaces made ahead of time
    nets.enable_netns_pool();
    // the floor: its own bridge, only the kernel calls
    let floor_br = BridgeSpec {
        name: "floor0".into(),
        gateway: "10.77.0.1".parse()?,
        prefix: 16,
        mtu: 1500,
        mac: [0x02, 0x42, 10, 77, 0, 1],
    };
    nl.ensure_bridge(&floor_br)?;
    // netavark's config dir and options
    let nv_dir = dir.join("netavark");
    std::fs::create_dir_all(&nv_dir)?;

    let (mut berth, mut berth_p, mut ahead, mut floor, mut nv) = (
        Series::default(),
        Series::default(),
        Series::default(),
        Series::default(),
        Series::default(),
    );
    for i in 0..n {
        // berth, no published port: netns + veth + state, no nft process
        let id = format!("bench{i:04}");
        let t = Instant::now();
        let ns = nets.create_netns(&id)?;
        nets.connect(&ConnectRequest {
            network: "bridge".into(),
            container_id: id.clone(),
            container_name: id.clone(),
            aliases: vec![],
            netns: ns.clone(),
            ip: None,
            mac: None,
            ports: vec![],
            links: vec![],
        })?;
        berth.setup.push(t.elapsed());
        let t = Instant::now();
        nets.release(&id)?;
        berth.teardown.push(t.elapsed());

        // berth with one published port: adds the one nft batch
        let id = format!("benchp{i:04}");
        let t = Instant::now();
        let ns = nets.create_netns(&id)?;
        nets.connect(&ConnectRequest {
            network: "bridge".into(),
            container_id: id.clone(),
            container_name: id.clone(),
            aliases: vec![],
            netns: ns,
            ip: None,
            mac: None,
            ports: parse_port_spec("80")?,
            links: vec![],
        })?;
        berth_p.setup.push(t.elapsed());
        let t = Instant::now();
        nets.release(&id)?;
        berth_p.teardown.push(t.elapsed());
        // the rule removal runs in the background: let it finish outside the clock, so it
        // does not load the next measurement; so does the pool's refill
        nets.flush_firewall()?;
        std::thread::sleep(std::time::Duration::from_millis(20));

        // what the pool does in the background for each start: one netns made ahead
        let ns = run.join("ahead-ns").join(format!("{i}"));
        let t = Instant::now();
        nl.create_netns(&ns)?;
        ahead.setup.push(t.elapsed());
        let t = Instant::now();
        nl.release_netns(&ns)?;
        ahead.teardown.push(t.elapsed());

        // the floor
        let ns = run.join("floor-ns").join(format!("{i}"));
        let t = Instant::now();
        nl.create_netns(&ns)?;
        nl.add_veth(&VethSpec {
            host_name: format!("vfl{i}"),
            bridge: floor_br.name.clone(),
            netns: ns.clone(),
            ifname: "eth0".into(),
            mac: [0x02, 0x42, 10, 77, 0, 2],
            ip: "10.77.0.2".parse()?,
            prefix: 16,
            gateway: floor_br.gateway,
            default_route: true,
            mtu: 1500,
        })?;
        floor.setup.push(t.elapsed());
        let t = Instant::now();
        nl.release_netns(&ns)?;
        floor.teardown.push(t.elapsed());

        // netavark, given a netns file like podman does
        let ns = run.join("nv-ns").join(format!("{i}"));
        nl.create_netns(&ns)?;
        let opts = netavark_options(i);
        let t = Instant::now();
        netavark(&nv_dir, "setup", &ns, &opts)?;
        nv.setup.push(t.elapsed());
        let t = Instant::now();
        netavark(&nv_dir, "teardown", &ns, &opts)?;
        nv.teardown.push(t.elapsed());
        nl.release_netns(&ns)?;
    }
    nets.teardown()?;
    nl.delete_bridge(&floor_br.name)?;

    let rows = [
        ("netlink floor (netns+veth+addr+route)", &mut floor),
        ("berth netbridge", &mut berth),
        ("berth netbridge, -p 80 (one nft batch)", &mut berth_p),
        ("(berth, off the start: a netns made ahead)", &mut ahead),
        ("netavark 1.4 (podman's way)", &mut nv),
    ];
    println!("\nbench net: per-container network setup / teardown, median of {n}, interleaved");
    println!("{:<42} {:>10} {:>10}", "", "setup", "teardown");
    let mut med = Vec::new();
    for (name, s) in rows {
        let (a, b) = (median(&mut s.setup), median(&mut s.teardown));
        println!("{name:<42} {:>10} {:>10}", ms(a), ms(b));
        med.push((a, b));
    }
    let ratio = |x: Duration, y: Duration| x.as_secs_f64() / y.as_secs_f64().max(1e-9);
    println!(
        "netavark / berth: setup {:.0}x, teardown {:.0}x; berth / floor: setup {:.2}x \
         (berth's start takes a netns its pool made ahead; making one costs the time above)",
        ratio(med[4].0, med[1].0),
        ratio(med[4].1, med[1].1),
        ratio(med[1].0, med[0].0)
    );
    Ok(())
}

fn tempfile_dir() -> Result<std::path::PathBuf> {
    let d = std::env::temp_dir().join(format!("berth-bench-net-{}", std::process::id()));
    std::fs::create_dir_all(&d)?;
    Ok(d)
}

/// Network options as podman 4 hands them to netavark 1.4: one bridge network, a static IP.
fn netavark_options(i: usize) -> String {
    serde_json::json!({
        "container_id": format!("{:064x}", i + 1),
        "container_name": format!("bench{i}"),
        "networks": { "nvbench": { "interface_name": "eth0", "static_ips": ["10.88.0.2"] } },
        "network_info": { "nvbench": {
            "dns_enabled": false,
            "driver": "bridge",
            "id": format!("{:064x}", 0xbe7u32),
            "internal": false,
            "ipv6_enabled": false,
            "name": "nvbench",
            "network_interface": "nvbench0",
            "subnets": [ { "gateway": "10.88.0.1", "subnet": "10.88.0.0/16" } ]
        } },
        "port_mappings": []
    })
    .to_string()
}

fn netavark(config: &Path, verb: &str, ns: &Path, opts: &str) -> Result<()> {
    use std::io::Write;
    let mut child = Command::new(NETAVARK)
        .arg("--config")
        .arg(config)
        .arg(verb)
        .arg(ns)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("run {NETAVARK}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(opts.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "netavark {verb} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
