//! The CI/CD example (examples/cicd/post-receive) on a local bare git repository: a push
//! builds, pushes to a registry and redeploys; a second push changes what is served.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;

use support::registry::TestRegistry;
use support::{is_root, ok, TestDaemon};

fn git(dir: &Path, args: &[&str]) -> String {
    ok(Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=CI", "-c", "user.email=ci@example.invalid"])
        .args(args))
}

fn page(d: &TestDaemon, want: &str) -> String {
    let mut last = String::new();
    for _ in 0..100 {
        let o = support::run(d.in_netns("python3").args([
            "-c",
            "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/', timeout=2).read().decode(), end='')",
        ]));
        last = String::from_utf8_lossy(&o.stdout).into_owned();
        if last.contains(want) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    last
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn git_push_builds_pushes_and_redeploys() {
    assert!(is_root(), "needs root: run through `cargo xtask test`");
    let d = TestDaemon::start();
    ok(d.in_netns("ip").args(["link", "set", "lo", "up"]));
    d.import_busybox("busybox", &[]);
    let reg = TestRegistry::plain(&d, 5000);

    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let bare = d.path("app.git");
    ok(Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(&bare));
    fs::copy(
        root.join("examples/cicd/post-receive"),
        bare.join("hooks/post-receive"),
    )
    .unwrap();
    fs::write(
        bare.join("hooks/deploy.env"),
        format!(
            "BERTH=\"{} -H {}\"\nREGISTRY={}\nAPP=hello\nPUBLISH=8080:80\nBRANCH=main\n",
            env!("CARGO_BIN_EXE_berth"),
            d.host(),
            reg.host
        ),
    )
    .unwrap();

    let work = d.path("work");
    ok(Command::new("git")
        .args(["init", "-q", "-b", "main"])
        .arg(&work));
    fs::write(
        work.join("Dockerfile"),
        "FROM busybox\nCOPY index.html /www/index.html\nCMD [\"httpd\", \"-f\", \"-p\", \"80\", \"-h\", \"/www\"]\n",
    )
    .unwrap();
    fs::write(work.join("index.html"), "version one\n").unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "first"]);
    git(&work, &["remote", "add", "deploy", bare.to_str().unwrap()]);
    let pushed = Command::new("git")
        .arg("-C")
        .arg(&work)
        .args(["push", "deploy", "main"])
        .output()
        .unwrap();
    let hook = String::from_utf8_lossy(&pushed.stderr).into_owned();
    assert!(pushed.status.success(), "{hook}");
    assert!(hook.contains("deploy: hello runs"), "{hook}");
    assert_eq!(
        page(&d, "version one"),
        "version one\n",
        "{hook}\n{}",
        ok(d.berth(&["ps", "-a"])),
    );
    let first = git(&work, &["rev-parse", "--short=12", "HEAD"])
        .trim()
        .to_owned();
    let ps = ok(d.berth(&["ps"]));
    assert!(ps.contains(&format!("{}/hello:{first}", reg.host)), "{ps}");

    fs::write(work.join("index.html"), "version two\n").unwrap();
    git(&work, &["commit", "-q", "-am", "second"]);
    git(&work, &["push", "-q", "deploy", "main"]);
    assert_eq!(page(&d, "version two"), "version two\n");
    let second = git(&work, &["rev-parse", "--short=12", "HEAD"])
        .trim()
        .to_owned();
    let ps = ok(d.berth(&["ps"]));
    assert!(ps.contains(&format!("{}/hello:{second}", reg.host)), "{ps}");
    assert_eq!(ps.lines().count(), 2, "one app container: {ps}");
    // both builds are in the registry
    let tags = ok(d.in_netns("busybox").args([
        "wget",
        "-qO-",
        &format!("http://{}/v2/hello/tags/list", reg.host),
    ]));
    assert!(
        tags.contains(&first) && tags.contains(&second) && tags.contains("latest"),
        "{tags}"
    );
}
