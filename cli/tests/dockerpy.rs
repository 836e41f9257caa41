//! End to end: docker-py 6.1.3's own integration tests (container, exec and models tests from
//! its sdist) against berth. The tests listed in dockerpy-pass.txt passed when the list was
//! written and must keep passing; `cargo xtask dockerpy --peer` runs them all, next to dockerd.
//! The daemon runs in its private network namespace; pytest talks to it over its socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use support::{is_root, ok, TestDaemon};

const PASS_LIST: &str = "tests/dockerpy-pass.txt";

fn env_path(var: &str, what: &str) -> PathBuf {
    let v = std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is unset: run through `cargo xtask test`, which provides {what}")
    });
    assert!(Path::new(&v).exists(), "{var}={v} does not exist ({what})");
    PathBuf::from(v)
}

/// The node IDs that must pass: one a line, `#` comments.
fn required() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(PASS_LIST);
    let text = std::fs::read_to_string(&path).unwrap();
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `PASSED id` / `FAILED id - why` / `ERROR id - why` lines of pytest's `-rA` summary: the
/// worst per test.
fn outcomes(log: &str) -> BTreeMap<String, &'static str> {
    let mut o = BTreeMap::new();
    for line in log.lines() {
        let (word, rank) = match line.split_once(' ').map(|(w, _)| w) {
            Some("PASSED") => ("passed", 0),
            Some("FAILED") => ("failed", 1),
            Some("ERROR") => ("error", 2),
            _ => continue,
        };
        let id = line[line.find(' ').unwrap() + 1..]
            .split(" - ")
            .next()
            .unwrap();
        let e = o.entry(id.trim().to_owned()).or_insert(word);
        let old = ["passed", "failed", "error"]
            .iter()
            .position(|w| w == e)
            .unwrap();
        if rank > old {
            *e = word;
        }
    }
    o
}

#[test]
fn outcomes_take_the_worst_per_test() {
    let o = outcomes(
        "PASSED t.py::A::a\nERROR t.py::A::a - teardown\nFAILED t.py::A::b - assert 1\n\
         PASSED t.py::A::c\nt.py::A::d PASSED\n",
    );
    assert_eq!(o.get("t.py::A::a"), Some(&"error"));
    assert_eq!(o.get("t.py::A::b"), Some(&"failed"));
    assert_eq!(o.get("t.py::A::c"), Some(&"passed"));
    assert_eq!(o.len(), 3);
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn dockerpy_integration_tests_that_passed_still_pass() {
    assert!(is_root(), "needs root: run through `cargo xtask test`");
    let dir = env_path(
        "BERTH_DOCKERPY",
        "docker-py 6.1.3's venv and sdist (cargo xtask dockerpy-cache)",
    );
    let image = env_path(
        "BERTH_DOCKERPY_IMAGE",
        "the alpine:3.10 stand-in's rootfs tarball",
    );
    let ids = required();
    assert!(
        ids.len() >= 20,
        "{PASS_LIST} lists only {} tests",
        ids.len()
    );
    let started = Instant::now();
    let d = TestDaemon::start();
    ok(d.in_netns("ip").args(["link", "set", "lo", "up"]));
    // as xtask/src/dockerpy.rs IMAGE_CHANGES and IMAGE_NAMES
    ok(d.berth(&[
        "import",
        "-c",
        r#"CMD ["/bin/sh"]"#,
        "-c",
        "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        image.to_str().unwrap(),
        "alpine:3.10",
    ]));
    ok(d.berth(&["tag", "alpine:3.10", "alpine:latest"]));

    // pytest-timeout bounds each test, timeout(1) the run
    let out = Command::new("timeout")
        .args(["--kill-after=10", "240"])
        .arg(dir.join("venv/bin/python3"))
        .args([
            "-m",
            "pytest",
            "-rA",
            "-p",
            "no:cacheprovider",
            "--color=no",
        ])
        .arg("--timeout=60")
        .args(&ids)
        .current_dir(dir.join("src/docker-6.1.3"))
        .env("DOCKER_HOST", d.host())
        .env("DOCKER_TEST_API_VERSION", "1.41")
        .env("DOCKER_CONFIG", d.path("docker-config"))
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .env_remove("DOCKER_CONTEXT")
        .stdin(Stdio::null())
        .output()
        .expect("run pytest");
    let log = String::from_utf8_lossy(&out.stdout);
    let got = outcomes(&log);
    let bad: Vec<String> = ids
        .iter()
        .filter(|id| got.get(*id) != Some(&"passed"))
        .map(|id| format!("  {id}: {}", got.get(id).copied().unwrap_or("did not run")))
        .collect();
    assert!(
        bad.is_empty(),
        "{} of {} docker-py tests that passed before do not now ({}):\n{}\n\
         pytest's output:\n{log}\n{}\ndaemon log ends:\n{}",
        bad.len(),
        ids.len(),
        out.status,
        bad.join("\n"),
        String::from_utf8_lossy(&out.stderr),
        tail(&d.log(), 40)
    );
    eprintln!(
        "docker-py: {} tests passed in {:.1} s",
        ids.len(),
        started.elapsed().as_secs_f64()
    );
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}
