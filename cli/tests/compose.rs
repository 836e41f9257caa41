//! End to end: docker-compose 1.29.2 (docker-py underneath) drives berth through the
//! friendlyhello example — classic build, a project network, published port, DNS between
//! services, and `down` leaving nothing behind. Everything runs in the daemon's private
//! network namespace; containers resolve names only through berth's responder on their
//! network's gateway.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use support::{is_root, ok, TestDaemon};

const PROJECT: &str = "fhello";

fn env_path(var: &str, what: &str) -> String {
    let v = std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is unset: run through `cargo xtask test`, which provides {what}")
    });
    assert!(Path::new(&v).is_file(), "{var}={v} is not a file ({what})");
    v
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap().flatten() {
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// `docker-compose -p PROJECT args` in `dir`, against the test daemon, classic builder.
fn compose(d: &TestDaemon, exe: &str, dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(exe);
    c.current_dir(dir)
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_CONFIG", d.path("docker-config"))
        .env("COMPOSE_DOCKER_CLI_BUILD", "0")
        .env("DOCKER_BUILDKIT", "0")
        .env("COMPOSE_INTERACTIVE_NO_CLI", "1")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("DOCKER_CONTEXT")
        .args(["--ansi", "never", "-p", PROJECT])
        .args(args);
    c
}

/// The page at `url` from the test host's side of the daemon's netns, or why not.
fn fetch(d: &TestDaemon, url: &str) -> Result<String, String> {
    let o = support::run(d.in_netns("python3").args([
        "-c",
        &format!(
            "import urllib.request; print(urllib.request.urlopen('{url}', timeout=3).read().decode())"
        ),
    ]));
    if o.status.success() {
        Ok(String::from_utf8_lossy(&o.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&o.stderr).into_owned())
    }
}

/// The visit count on a page, when Redis answered.
fn visits(page: &str) -> Option<u64> {
    let rest = page.split("<b>Visits:</b>").nth(1)?;
    rest.trim().parse().ok()
}

/// `docker-compose build` and `up -d` of the example (twice: the second changes nothing),
/// three visits counted by its Redis, then `docker-compose down` removes its containers and
/// network.
#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn compose_runs_friendlyhello_with_redis() {
    assert!(is_root(), "needs root: run through `cargo xtask test`");
    let python = env_path("BERTH_FIXTURE_PYTHON_TAR", "the python rootfs fixture");
    let redis = env_path("BERTH_FIXTURE_REDIS_TAR", "the redis rootfs fixture");
    let exe = env_path(
        "BERTH_DOCKER_COMPOSE",
        "docker-compose 1.29.2 in a virtualenv",
    );
    let started = Instant::now();
    let d = TestDaemon::start();
    ok(d.in_netns("ip").args(["link", "set", "lo", "up"]));
    let t = Instant::now();
    ok(d.berth(&[
        "import",
        "-c",
        r#"CMD ["python3"]"#,
        &python,
        "berth.local/python:3-debian",
    ]));
    ok(d.berth(&[
        "import",
        "-c",
        r#"CMD ["redis-server"]"#,
        &redis,
        "berth.local/redis:7-debian",
    ]));
    let import_time = t.elapsed();
    let example: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "..",
        "examples",
        "friendlyhello",
    ]
    .iter()
    .collect();
    let dir = d.path("friendlyhello");
    copy_dir(&example, &dir);

    let t = Instant::now();
    let built = ok(compose(&d, &exe, &dir, &["build"]));
    let build_time = t.elapsed();
    assert!(
        built.contains("Successfully built")
            && built.contains(&format!("Successfully tagged {PROJECT}_web:latest")),
        "{built}"
    );
    let t = Instant::now();
    ok(compose(&d, &exe, &dir, &["up", "-d"]));
    let up_time = t.elapsed();
    // a second `up` finds the project as it left it: nothing recreated
    let again = support::run(&mut compose(&d, &exe, &dir, &["up", "-d"]));
    let said = String::from_utf8_lossy(&again.stderr);
    assert!(
        again.status.success() && said.contains(&format!("{PROJECT}_web_1 is up-to-date")),
        "{said}"
    );
    let web = ok(compose(&d, &exe, &dir, &["ps", "-q", "web"]))
        .trim()
        .to_owned();
    assert!(!web.is_empty(), "no web container");

    // the first page with a count: web answers, and Redis (started alongside) too
    let url = "http://127.0.0.1:4000/";
    let t = Instant::now();
    let deadline = t + Duration::from_secs(30);
    let first = loop {
        let got = fetch(&d, url);
        if let Ok(page) = &got {
            if visits(page).is_some() {
                break page.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no counted page from {url} in 30 s: {got:?}\nweb: {}\nredis: {}",
            ok(compose(&d, &exe, &dir, &["logs", "--no-color", "web"])),
            ok(compose(&d, &exe, &dir, &["logs", "--no-color", "redis"])),
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let page_time = t.elapsed();
    let hostname = ok(d.berth(&["exec", &web, "hostname"]));
    assert!(first.contains("Hello World!"), "{first}");
    assert!(first.contains(hostname.trim()), "{hostname}: {first}");
    let mut counts = vec![visits(&first).unwrap()];
    for _ in 0..2 {
        let page = fetch(&d, url).unwrap();
        counts.push(visits(&page).unwrap_or_else(|| panic!("no count: {page}")));
    }
    assert!(counts.windows(2).all(|w| w[1] > w[0]), "{counts:?}");

    // names resolve only through berth's responder on the project network's gateway
    let net = format!("{PROJECT}_default");
    let gateway = ok(d.docker(&[
        "network",
        "inspect",
        "-f",
        "{{(index .IPAM.Config 0).Gateway}}",
        &net,
    ]));
    let resolv = ok(d.berth(&["exec", &web, "cat", "/etc/resolv.conf"]));
    let servers: Vec<&str> = resolv
        .lines()
        .filter_map(|l| l.strip_prefix("nameserver "))
        .collect();
    assert_eq!(servers, [gateway.trim()], "{resolv}");

    let t = Instant::now();
    ok(compose(&d, &exe, &dir, &["down"]));
    let down_time = t.elapsed();
    let label = format!("label=com.docker.compose.project={PROJECT}");
    let left = ok(d.docker(&["ps", "-aq", "--filter", &label]));
    assert!(left.trim().is_empty(), "containers left: {left}");
    let nets = ok(d.docker(&["network", "ls", "--format", "{{.Name}}"]));
    assert!(!nets.lines().any(|n| n == net), "{nets}");
    let left = ok(d.berth(&["ps", "-aq"]));
    assert!(left.trim().is_empty(), "containers left: {left}");
    eprintln!(
        "compose: imports {import_time:.2?}, build {build_time:.2?}, up -d {up_time:.2?}, first counted page {page_time:.2?}, down {down_time:.2?}, all {:.2?}",
        started.elapsed()
    );
}
