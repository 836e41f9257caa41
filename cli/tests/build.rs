//! End to end: `build` with the classic cache rules, multi-stage, .dockerignore, build
//! args, whiteouts in RUN layers, failures; `commit` and `history`; the real docker CLI
//! (`DOCKER_BUILDKIT=0 docker build`) against berth.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::path::Path;

use support::{fails, is_root, ok, TestDaemon};

fn daemon() -> TestDaemon {
    assert!(is_root(), "needs root: run through `cargo xtask test`");
    let d = TestDaemon::start_with(&["--bridge", "none"]);
    d.import_busybox("busybox", &[]);
    d
}

const SEED: &str = r#"FROM busybox
WORKDIR /app
ADD . /app
RUN echo built > /app/built.txt && ls -a /app > /app/listing.txt
EXPOSE 80
ENV NAME World
CMD ["sh", "-c", "cat /app/built.txt; echo Hello $NAME"]
"#;

fn seed_context(dir: &Path) {
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(dir.join("Dockerfile"), SEED).unwrap();
    fs::write(dir.join("hello.txt"), "hello\n").unwrap();
    fs::write(dir.join("sub/data.txt"), "data\n").unwrap();
    fs::write(dir.join("secret.txt"), "do not send\n").unwrap();
    fs::write(dir.join("a.log"), "noise\n").unwrap();
    fs::write(dir.join("keep.log"), "kept\n").unwrap();
    fs::write(dir.join(".dockerignore"), "secret.txt\n*.log\n!keep.log\n").unwrap();
}

fn image_id(d: &TestDaemon, name: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&ok(d.berth(&["image", "inspect", name]))).unwrap();
    v[0]["Id"].as_str().unwrap().to_owned()
}

fn count(hay: &str, needle: &str) -> usize {
    hay.matches(needle).count()
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn build_cache_dockerignore_and_layers() {
    let d = daemon();
    let ctx = d.path("seed");
    seed_context(&ctx);
    let out = ok(d.berth(&[
        "build",
        "-t",
        "seed:1",
        "-t",
        "seed:2",
        ctx.to_str().unwrap(),
    ]));
    assert!(out.contains("Step 1/7 : FROM busybox"), "{out}");
    assert!(out.contains("Step 4/7 : RUN echo built"), "{out}");
    assert!(out.contains(" ---> Running in "), "{out}");
    assert!(out.contains("Successfully built "), "{out}");
    assert!(
        out.contains("Successfully tagged seed:1\nSuccessfully tagged seed:2"),
        "{out}"
    );
    let id = image_id(&d, "seed:1");
    assert_eq!(id, image_id(&d, "seed:2"));

    // the container runs the built command with the built files
    let run = ok(d.berth(&["run", "--rm", "seed:1"]));
    assert_eq!(run, "built\nHello World\n");
    // .dockerignore: excluded files never reached the image, `!` brought keep.log back
    let listing = ok(d.berth(&["run", "--rm", "seed:1", "cat", "/app/listing.txt"]));
    for want in ["Dockerfile", "hello.txt", "keep.log", "sub"] {
        assert!(
            listing.lines().any(|l| l == want),
            "{want} missing: {listing}"
        );
    }
    for gone in ["secret.txt", "a.log"] {
        assert!(!listing.contains(gone), "{gone} was sent: {listing}");
    }
    // the config and history Docker keeps
    let cfg = ok(d.berth(&["image", "inspect", "seed:1"]));
    let v: serde_json::Value = serde_json::from_str(&cfg).unwrap();
    let c = &v[0]["Config"];
    assert_eq!(c["WorkingDir"], "/app");
    assert_eq!(c["ExposedPorts"], serde_json::json!({"80/tcp": {}}));
    assert!(
        c["Env"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e == "NAME=World"),
        "{c}"
    );
    assert_eq!(
        c["Cmd"],
        serde_json::json!(["sh", "-c", "cat /app/built.txt; echo Hello $NAME"])
    );
    let hist = ok(d.berth(&["history", "seed:1"]));
    assert!(hist.contains("ENV NAME=World"), "{hist}");
    assert!(hist.contains("echo built"), "{hist}");
    // only ADD and RUN made layers on top of busybox's one
    assert_eq!(
        v[0]["RootFS"]["Layers"].as_array().unwrap().len(),
        3,
        "{cfg}"
    );

    // nothing changed: every step hits, no RUN runs, same image
    let again = ok(d.berth(&["build", "-t", "seed:1", ctx.to_str().unwrap()]));
    assert_eq!(count(&again, " ---> Using cache"), 6, "{again}");
    assert!(!again.contains("Running in"), "{again}");
    assert_eq!(image_id(&d, "seed:1"), id);

    // touching a file (mtime only) still hits
    let t = filetime_touch(&ctx.join("hello.txt"));
    assert!(t, "touch failed");
    let touched = ok(d.berth(&["build", "-t", "seed:1", ctx.to_str().unwrap()]));
    assert!(!touched.contains("Running in"), "{touched}");
    assert_eq!(image_id(&d, "seed:1"), id);

    // a chmod misses at ADD, and everything after it runs again
    ok(std::process::Command::new("chmod").args(["600", ctx.join("hello.txt").to_str().unwrap()]));
    let chmod = ok(d.berth(&["build", "-t", "seed:1", ctx.to_str().unwrap()]));
    assert_eq!(count(&chmod, " ---> Using cache"), 1, "{chmod}");
    assert!(chmod.contains("Running in"), "{chmod}");
    assert_ne!(image_id(&d, "seed:1"), id);

    // --no-cache runs everything; -q prints only the ID
    let q = ok(d.berth(&["build", "-q", "--no-cache", ctx.to_str().unwrap()]));
    assert!(
        q.trim().starts_with("sha256:") && q.lines().count() == 1,
        "{q}"
    );

    // a RUN layer with deletions: a whiteout and an opaque directory
    let ctx2 = d.path("child");
    fs::create_dir_all(&ctx2).unwrap();
    fs::write(
        ctx2.join("Dockerfile"),
        "FROM seed:2\nRUN rm /app/hello.txt && rm -rf /app/sub && mkdir /app/sub && echo new > /app/sub/new\n",
    )
    .unwrap();
    ok(d.berth(&["build", "-t", "child", ctx2.to_str().unwrap()]));
    let ls = ok(d.berth(&["run", "--rm", "child", "ls", "/app", "/app/sub"]));
    assert!(
        !ls.contains("hello.txt") && !ls.contains("data.txt"),
        "{ls}"
    );
    assert!(ls.contains("new") && ls.contains("built.txt"), "{ls}");
    // and the image survives save + load elsewhere with the same content
    let tar = d.path("child.tar");
    ok(d.berth(&["save", "-o", tar.to_str().unwrap(), "child"]));
    ok(d.berth(&["rmi", "child"]));
    ok(d.berth(&["load", "-i", tar.to_str().unwrap()]));
    let ls2 = ok(d.berth(&["run", "--rm", "child", "ls", "/app", "/app/sub"]));
    assert_eq!(ls, ls2);
}

fn filetime_touch(p: &Path) -> bool {
    std::process::Command::new("touch")
        .args(["-d", "2001-02-03 04:05:06", p.to_str().unwrap()])
        .status()
        .unwrap()
        .success()
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn multi_stage_args_errors_and_commit() {
    let d = daemon();
    let ctx = d.path("ms");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("app.tar.src"), "x").unwrap();
    // a tar archive in the context: ADD unpacks it, COPY does not
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(6);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(1_000_000_000);
    h.set_entry_type(tar::EntryType::Regular);
    h.set_cksum();
    b.append_data(&mut h, "inside/file.txt", &b"inner\n"[..])
        .unwrap();
    fs::write(
        ctx.join("bundle.tar.gz"),
        support::gzip(&b.into_inner().unwrap()),
    )
    .unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        r#"ARG BASE=busybox
FROM $BASE AS compile
ARG V=1
RUN echo "compiled $V" > /out
FROM busybox
COPY --from=compile /out /final/out
ADD bundle.tar.gz /unpacked/
COPY bundle.tar.gz /copied/
COPY <<EOF /etc/greeting
hi from a heredoc
EOF
USER 1000:1000
ENTRYPOINT ["cat"]
CMD ["/final/out"]
"#,
    )
    .unwrap();
    let c = ctx.to_str().unwrap();
    let out = ok(d.berth(&["build", "--build-arg", "V=2", "-t", "ms", c]));
    assert!(out.contains("Step 1/11 : FROM $BASE AS compile"), "{out}");
    assert_eq!(ok(d.berth(&["run", "--rm", "ms"])), "compiled 2\n");
    assert_eq!(
        ok(d.berth(&[
            "run",
            "--rm",
            "ms",
            "/unpacked/inside/file.txt",
            "/etc/greeting"
        ])),
        "inner\nhi from a heredoc\n"
    );
    let copied = ok(d.berth(&["run", "--rm", "--entrypoint", "ls", "ms", "/copied"]));
    assert_eq!(copied, "bundle.tar.gz\n");
    let v: serde_json::Value =
        serde_json::from_str(&ok(d.berth(&["image", "inspect", "ms"]))).unwrap();
    assert_eq!(v[0]["Config"]["User"], "1000:1000");
    // a changed build arg misses at the RUN that sees it
    let out = ok(d.berth(&["build", "--build-arg", "V=3", "-t", "ms", c]));
    assert!(out.contains("Running in"), "{out}");
    assert_eq!(ok(d.berth(&["run", "--rm", "ms"])), "compiled 3\n");
    // --target stops at a stage
    ok(d.berth(&["build", "--target", "compile", "-t", "compile-only", c]));
    assert_eq!(
        ok(d.berth(&["run", "--rm", "compile-only", "cat", "/out"])),
        "compiled 1\n"
    );

    // errors: a failing RUN, a bad instruction, a missing source, a missing Dockerfile
    let bad = d.path("bad");
    fs::create_dir_all(&bad).unwrap();
    let b = bad.to_str().unwrap();
    fs::write(bad.join("Dockerfile"), "FROM busybox\nRUN exit 3\n").unwrap();
    let e = fails(d.berth(&["build", b]));
    assert!(
        e.contains("The command '/bin/sh -c exit 3' returned a non-zero code: 3"),
        "{e}"
    );
    fs::write(bad.join("Dockerfile"), "FROM busybox\nFOO bar\n").unwrap();
    let e = fails(d.berth(&["build", b]));
    assert!(
        e.contains("line 2") && e.to_lowercase().contains("unknown instruction"),
        "{e}"
    );
    fs::write(bad.join("Dockerfile"), "FROM busybox\nCOPY nothere /x\n").unwrap();
    let e = fails(d.berth(&["build", b]));
    assert!(e.contains("nothere"), "{e}");
    fs::remove_file(bad.join("Dockerfile")).unwrap();
    let e = fails(d.berth(&["build", b]));
    assert!(e.contains("Dockerfile"), "{e}");
    // as Docker's: only the failed RUN's container stays (for inspection); no mounts stay
    let ps = ok(d.berth(&["ps", "-a"]));
    assert_eq!(ps.lines().count(), 2, "{ps}");
    assert!(ps.contains("Exited (3)"), "{ps}");
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(
        !mounts.contains(&format!("{}/builds", d.data_root.display())),
        "{mounts}"
    );

    // commit: a container's changes, -c changes, message and author
    ok(d.berth(&[
        "run",
        "--name",
        "box",
        "busybox",
        "sh",
        "-c",
        "echo state > /state; rm /bin/top",
    ]));
    let id = ok(d.berth(&[
        "commit",
        "-m",
        "snapshot",
        "-a",
        "tester",
        "-c",
        "CMD [\"cat\", \"/state\"]",
        "-c",
        "ENV MODE=committed",
        "box",
        "snap:1",
    ]));
    assert!(id.trim().starts_with("sha256:"), "{id}");
    assert_eq!(ok(d.berth(&["run", "--rm", "snap:1"])), "state\n");
    let env = ok(d.berth(&[
        "run",
        "--rm",
        "snap:1",
        "sh",
        "-c",
        "echo $MODE; ls /bin/top || echo gone",
    ]));
    assert!(
        env.starts_with("committed\n") && env.contains("gone"),
        "{env}"
    );
    let hist = ok(d.berth(&["history", "snap:1"]));
    assert!(hist.contains("snapshot"), "{hist}");
    let e = fails(d.berth(&["commit", "-c", "RUN true", "box", "snap:2"]));
    assert!(e.contains("run is not a valid change command"), "{e}");
    // diff lists what commit took; rename keeps the container, under its new name
    let diff = ok(d.berth(&["diff", "box"]));
    for want in ["C /bin\n", "D /bin/top\n", "A /state\n"] {
        assert!(diff.contains(want), "{want:?} missing: {diff}");
    }
    // not the files berth binds in (as dockerd's diff)
    assert!(
        !diff.contains("/etc/hostname") && !diff.contains("C /etc\n"),
        "{diff}"
    );
    ok(d.berth(&["rename", "box", "box2"]));
    assert!(ok(d.berth(&["ps", "-a"])).contains("box2"));
    let e = fails(d.berth(&["rename", "box2", "box2"]));
    assert!(e.contains("same name"), "{e}");
    let e = fails(d.berth(&["commit", "nosuch"]));
    assert!(e.contains("No such container"), "{e}");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn docker_cli_classic_build_and_commit() {
    let d = daemon();
    let ctx = d.path("seed");
    seed_context(&ctx);
    let c = ctx.to_str().unwrap();
    let out = ok(d
        .docker(&["build", "-t", "dseed", c])
        .env("DOCKER_BUILDKIT", "0"));
    assert!(out.contains("Successfully tagged dseed:latest"), "{out}");
    assert!(out.contains("Step 7/7 : CMD"), "{out}");
    assert_eq!(
        ok(d.docker(&["run", "--rm", "dseed"])),
        "built\nHello World\n"
    );
    let again = ok(d
        .docker(&["build", "-t", "dseed", c])
        .env("DOCKER_BUILDKIT", "0"));
    assert!(
        again.contains("Using cache") && !again.contains("Running in"),
        "{again}"
    );
    // -q and --iidfile give the ID
    let iid = d.path("iid");
    let q = ok(d
        .docker(&["build", "-q", "--iidfile", iid.to_str().unwrap(), c])
        .env("DOCKER_BUILDKIT", "0"));
    assert_eq!(q.trim(), fs::read_to_string(&iid).unwrap().trim());
    let hist = ok(d.docker(&["history", "--no-trunc", "dseed"]));
    assert!(hist.contains("#(nop)  ENV NAME=World"), "{hist}");
    ok(d.docker(&["run", "--name", "w", "dseed", "sh", "-c", "echo x > /app/x"]));
    ok(d.docker(&[
        "commit",
        "--change",
        "CMD [\"cat\", \"/app/x\"]",
        "w",
        "dseed:committed",
    ]));
    assert_eq!(ok(d.docker(&["run", "--rm", "dseed:committed"])), "x\n");
}

const APP: &str = r#"import os
import socket
from http.server import BaseHTTPRequestHandler, HTTPServer

import flask  # installed from Debian's python3-flask in the base image


class Hello(BaseHTTPRequestHandler):
    def do_GET(self):
        body = "<h3>Hello {}!</h3><b>Hostname:</b> {}<br/><b>Flask:</b> {}".format(
            os.getenv("NAME", "world"), socket.gethostname(), flask.__name__
        )
        self.send_response(200)
        self.end_headers()
        self.wfile.write(body.encode())


HTTPServer(("0.0.0.0", 80), Hello).serve_forever()
"#;

/// The seed's Dockerfile on a python3 base made from Debian's packages: builds, and the
/// container serves its page on a published port.
#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn seed_dockerfile_on_debian_python_serves_its_page() {
    assert!(is_root(), "needs root: run through `cargo xtask test`");
    let base = std::env::var("BERTH_FIXTURE_PYTHON_TAR").expect(
        "BERTH_FIXTURE_PYTHON_TAR is unset: run through `cargo xtask test`, which builds it",
    );
    let d = TestDaemon::start();
    ok(d.in_netns("ip").args(["link", "set", "lo", "up"]));
    ok(d.berth(&[
        "import",
        "-c",
        "CMD [\"python3\"]",
        &base,
        "python:3-debian",
    ]));
    let ctx = d.path("friendlyhello");
    fs::create_dir_all(&ctx).unwrap();
    fs::write(ctx.join("app.py"), APP).unwrap();
    fs::write(ctx.join("requirements.txt"), "Flask\n").unwrap();
    fs::write(
        ctx.join("Dockerfile"),
        "FROM python:3-debian\nWORKDIR /app\nADD . /app\nRUN python3 -c 'import flask' && cat requirements.txt\nEXPOSE 80\nENV NAME World\nCMD [\"python3\", \"app.py\"]\n",
    )
    .unwrap();
    let out = ok(d.berth(&["build", "-t", "friendlyhello", ctx.to_str().unwrap()]));
    assert!(
        out.contains("Flask\n") && out.contains("Successfully tagged friendlyhello:latest"),
        "{out}"
    );
    ok(d.berth(&[
        "run",
        "-d",
        "--name",
        "web",
        "-p",
        "4000:80",
        "friendlyhello",
    ]));
    let url = "http://127.0.0.1:4000/";
    let mut page = String::new();
    for _ in 0..100 {
        let o = support::run(d.in_netns("python3").args([
            "-c",
            &format!("import urllib.request; print(urllib.request.urlopen('{url}', timeout=2).read().decode())"),
        ]));
        if o.status.success() {
            page = String::from_utf8_lossy(&o.stdout).into_owned();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let hostname = ok(d.berth(&["exec", "web", "hostname"]));
    assert!(
        page.contains("Hello World!"),
        "{page}\n{}",
        ok(d.berth(&["logs", "web"]))
    );
    assert!(page.contains(hostname.trim()), "{page}");
    assert!(page.contains("Flask:</b> flask"), "{page}");
    ok(d.berth(&["rm", "-f", "web"]));
    // a rebuild with nothing changed runs no RUN step
    let again = ok(d.berth(&["build", "-t", "friendlyhello", ctx.to_str().unwrap()]));
    assert!(!again.contains("Running in"), "{again}");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn onbuild_url_labels_outside_dockerfile_and_pause() {
    let d = daemon();
    ok(d.in_netns("ip").args(["link", "set", "lo", "up"]));
    // a file server on the daemon's loopback, for ADD <url>
    let www = d.path("www");
    fs::create_dir_all(&www).unwrap();
    fs::write(www.join("remote.txt"), "from the web\n").unwrap();
    let mut server = d
        .in_netns("python3")
        .args([
            "-m",
            "http.server",
            "18765",
            "--bind",
            "127.0.0.1",
            "--directory",
        ])
        .arg(&www)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let parent = d.path("parent");
    fs::create_dir_all(&parent).unwrap();
    fs::write(
        parent.join("Dockerfile"),
        "FROM busybox\nONBUILD RUN echo triggered > /trigger\nONBUILD ENV FROM_TRIGGER=yes\n",
    )
    .unwrap();
    ok(d.berth(&["build", "-t", "parent", parent.to_str().unwrap()]));
    let v: serde_json::Value =
        serde_json::from_str(&ok(d.berth(&["image", "inspect", "parent"]))).unwrap();
    assert_eq!(
        v[0]["Config"]["OnBuild"],
        serde_json::json!(["RUN echo triggered > /trigger", "ENV FROM_TRIGGER=yes"])
    );
    // the Dockerfile lives outside the context; ADD fetches a URL; COPY --from an image
    let ctx = d.path("kid");
    fs::create_dir_all(&ctx).unwrap();
    let outside = d.path("Kidfile");
    fs::write(
        &outside,
        "FROM parent\nADD http://127.0.0.1:18765/remote.txt /remote/\nCOPY --from=busybox /bin/busybox /bb\nCMD [\"sh\", \"-c\", \"cat /trigger /remote/remote.txt; echo $FROM_TRIGGER; ls -l /remote/remote.txt\"]\n",
    )
    .unwrap();
    let mut built = String::new();
    for _ in 0..50 {
        let o = support::run(&mut d.berth(&[
            "build",
            "-f",
            outside.to_str().unwrap(),
            "--label",
            "org.example.team=builders",
            "-t",
            "kid",
            ctx.to_str().unwrap(),
        ]));
        built =
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        if o.status.success() || !built.contains("Connection refused") {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(built.contains("# Executing 2 build triggers"), "{built}");
    assert!(built.contains("Successfully tagged kid:latest"), "{built}");
    let out = ok(d.berth(&["run", "--rm", "kid"]));
    assert!(out.starts_with("triggered\nfrom the web\nyes\n"), "{out}");
    assert!(
        out.contains("-rw-------"),
        "ADD of a URL is mode 0600: {out}"
    );
    let v: serde_json::Value =
        serde_json::from_str(&ok(d.berth(&["image", "inspect", "kid"]))).unwrap();
    assert_eq!(v[0]["Config"]["Labels"]["org.example.team"], "builders");
    assert!(
        v[0]["Config"]["OnBuild"].is_null(),
        "triggers are not inherited: {v}"
    );

    // pause, unpause, and commit pausing a running container
    ok(d.berth(&[
        "run",
        "-d",
        "--name",
        "ticker",
        "busybox",
        "sh",
        "-c",
        "while true; do date >> /ticks; sleep 0.05; done",
    ]));
    ok(d.berth(&["pause", "ticker"]));
    let ps = ok(d.berth(&["ps"]));
    assert!(ps.contains("(Paused)"), "{ps}");
    let v: serde_json::Value =
        serde_json::from_str(&ok(d.berth(&["container", "inspect", "ticker"]))).unwrap();
    let id = v[0]["Id"].as_str().unwrap().to_owned();
    let ticks = || {
        fs::read_to_string(d.data_root.join("containers").join(&id).join("upper/ticks"))
            .unwrap_or_default()
            .lines()
            .count()
    };
    let a = ticks();
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert_eq!(a, ticks(), "a paused container runs nothing");
    let e = fails(d.berth(&["pause", "ticker"]));
    assert!(e.contains("already paused"), "{e}");
    let e = fails(d.berth(&["exec", "ticker", "true"]));
    assert!(
        e.contains("is paused, unpause the container before exec"),
        "{e}"
    );
    ok(d.berth(&["unpause", "ticker"]));
    std::thread::sleep(std::time::Duration::from_millis(400));
    assert!(ticks() > a, "unpaused, it runs again");
    ok(d.berth(&["commit", "ticker", "ticks"]));
    let ps = ok(d.berth(&["ps"]));
    assert!(
        ps.contains("ticker") && !ps.contains("Paused"),
        "commit unpauses: {ps}"
    );
    let n = ok(d.berth(&["run", "--rm", "ticks", "cat", "/ticks"]));
    assert!(n.lines().count() > a, "{n}");
    ok(d.berth(&["pause", "ticker"]));
    ok(d.berth(&["rm", "-f", "ticker"]));
}
