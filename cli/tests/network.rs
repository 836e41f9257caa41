//! End to end: bridge networks through the berth CLI and the docker CLI — addresses, names
//! that resolve on user networks, published ports from the test host and from containers,
//! and cleanup. Everything runs in the daemon's private network namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{fails, is_root, ok, TestDaemon};

fn daemon_with_busybox() -> TestDaemon {
    assert!(is_root(), "needs root: run through `cargo xtask test`");
    let d = TestDaemon::start();
    d.import_busybox("busybox", &[("www/index.html", b"hello from web\n")]);
    ok(d.in_netns("ip").args(["link", "set", "lo", "up"]));
    d
}

fn inspect_field(d: &TestDaemon, c: &str, path: &str) -> String {
    let out = ok(d.berth(&["container", "inspect", c]));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let mut cur = &v[0];
    for k in path.split('.') {
        cur = &cur[k];
    }
    cur.as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| cur.to_string())
}

const HTTPD: &str = "httpd -f -p 80 -h /www";

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn user_network_names_published_ports_and_cleanup() {
    let d = daemon_with_busybox();
    // the default bridge: an address in 172.17.0.0/16 and a route out through the gateway
    ok(d.berth(&["run", "-d", "--name", "plain", "busybox", "sleep", "60"]));
    let ip = inspect_field(&d, "plain", "NetworkSettings.IPAddress");
    assert!(ip.starts_with("172.17."), "{ip}");
    let addrs = ok(d.berth(&["exec", "plain", "sh", "-c", "ip addr show eth0; ip route"]));
    assert!(
        addrs.contains(&ip) && addrs.contains("default via 172.17.0.1"),
        "{addrs}"
    );

    // a user network: containers reach each other by name and alias
    ok(d.berth(&["network", "create", "appnet"]));
    let ls = ok(d.berth(&["network", "ls"]));
    assert!(ls.contains("appnet") && ls.contains("bridge"), "{ls}");
    ok(d.berth(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        "appnet",
        "--network-alias",
        "frontend",
        "busybox",
        "sh",
        "-c",
        HTTPD,
    ]));
    for name in ["web", "frontend"] {
        let out = ok(d.berth(&[
            "run",
            "--rm",
            "--network",
            "appnet",
            "busybox",
            "sh",
            "-c",
            &format!("nslookup {name} && wget -qO- http://{name}/"),
        ]));
        assert!(out.contains("hello from web"), "{name}: {out}");
    }
    // the default bridge cannot reach the user network
    let web_ip = inspect_field(&d, "web", "NetworkSettings.Networks.appnet.IPAddress");
    let err = fails(d.berth(&[
        "exec",
        "plain",
        "sh",
        "-c",
        &format!("wget -T 2 -qO- http://{web_ip}/"),
    ]));
    assert!(!err.contains("hello"), "{err}");

    // a published port: from the test host's 127.0.0.1, its bridge address, and a container
    ok(d.berth(&[
        "run", "-d", "--name", "pub", "-p", "8080:80", "busybox", "sh", "-c", HTTPD,
    ]));
    let port = ok(d.docker(&["port", "pub"]));
    assert!(port.contains("80/tcp -> 0.0.0.0:8080"), "{port}");
    assert_eq!(ok(d.berth(&["port", "pub"])), "80/tcp -> 0.0.0.0:8080\n");
    assert_eq!(ok(d.berth(&["port", "pub", "80"])), "0.0.0.0:8080\n");
    let err = fails(d.berth(&["port", "pub", "81/udp"]));
    assert!(
        err.contains("No public port '81/udp' published for pub"),
        "{err}"
    );
    let ps = ok(d.berth(&["ps"]));
    assert!(ps.contains("0.0.0.0:8080->80/tcp"), "{ps}");
    let from_host = ok(d
        .in_netns("busybox")
        .args(["wget", "-qO-", "http://127.0.0.1:8080/"]));
    assert!(from_host.contains("hello from web"), "{from_host}");
    let from_bridge = ok(d
        .in_netns("busybox")
        .args(["wget", "-qO-", "http://172.17.0.1:8080/"]));
    assert!(from_bridge.contains("hello from web"), "{from_bridge}");
    let hairpin = ok(d.berth(&[
        "exec",
        "pub",
        "sh",
        "-c",
        "wget -qO- http://172.17.0.1:8080/",
    ]));
    assert!(hairpin.contains("hello from web"), "{hairpin}");
    // the port is taken: a clear error, and the container is not left half-started
    let err = fails(d.berth(&[
        "run", "-d", "--name", "clash", "-p", "8080:80", "busybox", "sleep", "5",
    ]));
    assert!(err.contains("8080") && err.contains("in use"), "{err}");

    // the docker CLI sees the same networks
    let ls = ok(d.docker(&["network", "ls"]));
    assert!(ls.contains("appnet"), "{ls}");
    let err = fails(d.berth(&["network", "rm", "appnet"]));
    assert!(!err.is_empty());

    // cleanup: no veth, netns or address left behind
    ok(d.berth(&["rm", "-f", "plain", "web", "pub", "clash"]));
    ok(d.berth(&["network", "rm", "appnet"]));
    let links = ok(d.in_netns("ip").args(["-o", "link"]));
    assert!(!links.contains("veth"), "{links}");
    let left: Vec<_> = std::fs::read_dir(d.data_root.join("netns"))
        .map(|r| r.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "netns files left: {left:?}");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn mac_address_of_a_container() {
    let d = daemon_with_busybox();
    // berth and the docker CLI: the interface has the address asked for, and inspect says so
    ok(d.berth(&[
        "run",
        "-d",
        "--name",
        "m1",
        "--mac-address",
        "92:D0:C6:0A:29:33",
        "busybox",
        "sleep",
        "60",
    ]));
    let inside = ok(d.berth(&["exec", "m1", "cat", "/sys/class/net/eth0/address"]));
    assert_eq!(inside.trim(), "92:d0:c6:0a:29:33");
    assert_eq!(
        inspect_field(&d, "m1", "NetworkSettings.MacAddress"),
        "92:d0:c6:0a:29:33"
    );
    assert_eq!(
        inspect_field(&d, "m1", "Config.MacAddress"),
        "92:d0:c6:0a:29:33"
    );
    // newer clients put it on the endpoint (the docker CLI 28 does so only at API 1.44, and
    // refuses the flag against 1.41 daemons, dockerd 20.10's and ours alike)
    let sock = d.host().trim_start_matches("unix://").to_owned();
    let created = ok(std::process::Command::new("curl").args([
        "-sf",
        "--unix-socket",
        &sock,
        "-H",
        "Content-Type: application/json",
        "-d",
        r#"{"Image":"busybox","Cmd":["sleep","60"],"NetworkingConfig":{"EndpointsConfig":{"bridge":{"MacAddress":"02:42:ac:11:00:99"}}}}"#,
        "http://b/v1.41/containers/create?name=m3",
    ]));
    assert!(created.contains("\"Id\""), "{created}");
    ok(d.berth(&["start", "m3"]));
    let inside = ok(d.berth(&["exec", "m3", "cat", "/sys/class/net/eth0/address"]));
    assert_eq!(inside.trim(), "02:42:ac:11:00:99");
    // without one: Docker's 02:42 followed by the address
    ok(d.berth(&["run", "-d", "--name", "m2", "busybox", "sleep", "60"]));
    let ip: std::net::Ipv4Addr = inspect_field(&d, "m2", "NetworkSettings.IPAddress")
        .parse()
        .unwrap();
    let o = ip.octets();
    assert_eq!(
        inspect_field(&d, "m2", "NetworkSettings.MacAddress"),
        format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
    );
    // bad addresses and a host network are refused, and nothing is left behind
    let before = ok(d.berth(&["ps", "-aq"]));
    for (mac, net, msg) in [
        ("92:d0:c6:0a:29", "bridge", "invalid MAC address"),
        ("01:00:5e:00:00:01", "bridge", "multicast"),
        (
            "92:d0:c6:0a:29:34",
            "host",
            "conflicting options: mac-address",
        ),
    ] {
        let err = fails(d.berth(&[
            "run",
            "--rm",
            "--network",
            net,
            "--mac-address",
            mac,
            "busybox",
            "true",
        ]));
        assert!(err.contains(msg), "{mac}: {err}");
    }
    assert_eq!(ok(d.berth(&["ps", "-aq"])), before);
    ok(d.berth(&["rm", "-f", "m1", "m2", "m3"]));
}
