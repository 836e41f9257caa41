//! End to end: `berth cp` and the real docker CLI's `docker cp` against the archive endpoints,
//! into and out of running and stopped containers. Privileged (mounts, namespaces): run by
//! `cargo xtask test` as root, each daemon in its own namespaces with a scratch data root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use support::{fails, is_root, ok, TestDaemon};

fn daemon_with_busybox() -> TestDaemon {
    assert!(
        is_root(),
        "containers need root: run through `cargo xtask test`"
    );
    let d = TestDaemon::start();
    d.import_busybox("busybox", &[]);
    d
}

fn sh(d: &TestDaemon, c: &str, script: &str) -> String {
    ok(d.berth(&["exec", c, "sh", "-c", script]))
}

fn with_stdin(mut cmd: Command, input: &[u8]) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A local tree: `top.txt`, and `tree/` with `a.txt` and `sub/b.txt`.
fn local_files(d: &TestDaemon) -> std::path::PathBuf {
    let src = d.path("src");
    fs::create_dir_all(src.join("tree/sub")).unwrap();
    fs::write(src.join("top.txt"), "top\n").unwrap();
    fs::write(src.join("tree/a.txt"), "a\n").unwrap();
    fs::write(src.join("tree/sub/b.txt"), "b\n").unwrap();
    src
}

/// Names in a tar, sorted, trailing slashes dropped.
fn tar_names(tar: &[u8]) -> Vec<String> {
    let mut a = tar::Archive::new(tar);
    let mut v: Vec<String> = a
        .entries()
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            String::from_utf8_lossy(&e.path_bytes())
                .trim_end_matches('/')
                .to_owned()
        })
        .collect();
    v.sort();
    v
}

fn tar_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_700_000_000);
        h.set_size(data.len() as u64);
        h.set_entry_type(tar::EntryType::Regular);
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_cksum();
        b.append(&h, *data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn berth_cp_into_and_out_of_a_running_container() {
    let d = daemon_with_busybox();
    let src = local_files(&d);
    ok(d.berth(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"]));

    // a file into a directory, to a new name; a directory to a new name and into a directory
    ok(d.berth(&["cp", s(&src.join("top.txt")), "web:/tmp/"]));
    ok(d.berth(&["cp", s(&src.join("top.txt")), "web:/tmp/renamed.txt"]));
    ok(d.berth(&["cp", s(&src.join("tree")), "web:/tmp/newdir"]));
    ok(d.berth(&["cp", s(&src.join("tree")), "web:/root"]));
    sh(&d, "web", "mkdir /tmp/contents");
    ok(d.berth(&[
        "container",
        "cp",
        &format!("{}/.", s(&src.join("tree"))),
        "web:/tmp/contents",
    ]));
    assert_eq!(
        sh(
            &d,
            "web",
            "cat /tmp/top.txt /tmp/renamed.txt /tmp/newdir/a.txt /tmp/newdir/sub/b.txt \
             /root/tree/sub/b.txt /tmp/contents/a.txt; ls /tmp/contents"
        ),
        "top\ntop\na\nb\nb\na\na.txt\nsub\n"
    );

    // out again: a file into a directory, a directory to a new name, a directory's contents
    let out = d.path("out");
    fs::create_dir_all(out.join("existing")).unwrap();
    ok(d.berth(&["cp", "web:/tmp/top.txt", &format!("{}/", s(&out))]));
    ok(d.berth(&["cp", "web:/tmp/newdir", s(&out.join("copied"))]));
    ok(d.berth(&["cp", "web:/tmp/newdir/.", s(&out.join("existing"))]));
    ok(d.berth(&["cp", "web:/tmp/newdir", s(&out.join("existing"))]));
    assert_eq!(fs::read_to_string(out.join("top.txt")).unwrap(), "top\n");
    assert_eq!(
        fs::read_to_string(out.join("copied/sub/b.txt")).unwrap(),
        "b\n"
    );
    assert_eq!(
        fs::read_to_string(out.join("existing/a.txt")).unwrap(),
        "a\n"
    );
    assert_eq!(
        fs::read_to_string(out.join("existing/newdir/sub/b.txt")).unwrap(),
        "b\n"
    );
    // relative local paths work from the current directory
    let mut rel = d.berth(&["cp", "web:/tmp/renamed.txt", "rel.txt"]);
    rel.current_dir(&out);
    ok(rel);
    assert_eq!(fs::read_to_string(out.join("rel.txt")).unwrap(), "top\n");

    // `-`: a tar on stdout, rooted at the base name (at `.` for `dir/.`); a tar from stdin
    let tar = Command::new(support::BERTH)
        .args(["-H", &d.host(), "cp", "web:/tmp/newdir", "-"])
        .output()
        .unwrap();
    assert!(tar.status.success());
    assert_eq!(
        tar_names(&tar.stdout),
        ["newdir", "newdir/a.txt", "newdir/sub", "newdir/sub/b.txt"]
    );
    let tar = Command::new(support::BERTH)
        .args(["-H", &d.host(), "cp", "web:/tmp/newdir/.", "-"])
        .output()
        .unwrap();
    assert_eq!(
        tar_names(&tar.stdout),
        [".", "./a.txt", "./sub", "./sub/b.txt"]
    );
    let input = tar_of(&[("streamed.txt", b"streamed\n"), ("d/in.txt", b"in\n")]);
    let put = with_stdin(d.berth(&["cp", "-", "web:/tmp"]), &input);
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    assert_eq!(
        sh(&d, "web", "cat /tmp/streamed.txt /tmp/d/in.txt"),
        "streamed\nin\n"
    );

    // ownership: kept as archived, or the container user's with -a
    std::os::unix::fs::chown(src.join("top.txt"), Some(1234), Some(4321)).unwrap();
    ok(d.berth(&[
        "run", "-d", "-u", "nobody", "--name", "nob", "busybox", "sleep", "1000",
    ]));
    ok(d.berth(&["cp", s(&src.join("top.txt")), "nob:/tmp/kept.txt"]));
    ok(d.berth(&["cp", "-a", s(&src.join("top.txt")), "nob:/tmp/user.txt"]));
    assert_eq!(
        sh(
            &d,
            "nob",
            "busybox stat -c '%u:%g' /tmp/kept.txt /tmp/user.txt"
        ),
        "1234:4321\n65534:65534\n"
    );
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn berth_cp_with_created_and_stopped_containers() {
    let d = daemon_with_busybox();
    let src = local_files(&d);
    // a created container: files go into its filesystem before it ever ran
    ok(d.berth(&[
        "create",
        "--name",
        "fresh",
        "busybox",
        "sh",
        "-c",
        "cat /app/top.txt /app/sub/b.txt",
    ]));
    ok(d.berth(&["cp", s(&src.join("tree")), "fresh:/app"]));
    ok(d.berth(&["cp", s(&src.join("top.txt")), "fresh:/app"]));
    let out = d.path("out");
    fs::create_dir_all(&out).unwrap();
    ok(d.berth(&["cp", "fresh:/app", s(&out.join("app"))]));
    assert_eq!(fs::read_to_string(out.join("app/a.txt")).unwrap(), "a\n");
    assert_eq!(
        fs::read_to_string(out.join("app/top.txt")).unwrap(),
        "top\n"
    );
    // ... and the container sees them when it starts
    assert_eq!(ok(d.berth(&["start", "-a", "fresh"])), "top\nb\n");

    // an exited container: what it wrote can be copied out, and more copied in
    ok(d.berth(&[
        "run",
        "--name",
        "done",
        "busybox",
        "sh",
        "-c",
        "echo result > /result.txt",
    ]));
    ok(d.berth(&["cp", "done:/result.txt", s(&out.join("result.txt"))]));
    assert_eq!(
        fs::read_to_string(out.join("result.txt")).unwrap(),
        "result\n"
    );
    ok(d.berth(&["cp", s(&src.join("top.txt")), "done:/result.txt"]));
    ok(d.berth(&["cp", "done:/result.txt", s(&out.join("result2.txt"))]));
    assert_eq!(
        fs::read_to_string(out.join("result2.txt")).unwrap(),
        "top\n"
    );
    // the temporary mount is gone: the container starts again and sees the file
    ok(d.berth(&["start", "done"]));
    ok(d.berth(&["wait", "done"]));
    ok(d.berth(&["rm", "done", "fresh"]));
    // nothing left mounted by the copies
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    assert!(!mounts.contains("cp-root"), "{mounts}");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn berth_cp_errors_are_dockers() {
    let d = daemon_with_busybox();
    let src = local_files(&d);
    ok(d.berth(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"]));
    let out = d.path("out");
    fs::create_dir_all(&out).unwrap();
    let err = fails(d.berth(&["cp", "web:/nope", s(&out)]));
    assert!(
        err.contains("Could not find the file /nope in container web"),
        "{err}"
    );
    let err = fails(d.berth(&["cp", "ghost:/etc/passwd", s(&out)]));
    assert!(err.contains("No such container: ghost"), "{err}");
    let err = fails(d.berth(&["cp", s(&src.join("top.txt")), "ghost:/tmp"]));
    assert!(err.contains("No such container: ghost"), "{err}");
    let err = fails(d.berth(&["cp", s(&src.join("top.txt")), "web:/nonexistent/dir/"]));
    assert!(err.contains("no such directory"), "{err}");
    let err = fails(d.berth(&["cp", s(&src.join("top.txt")), "web:/nonexistent/dir/file"]));
    assert!(
        err.contains("Could not find the file /nonexistent/dir in container web"),
        "{err}"
    );
    let err = fails(d.berth(&["cp", s(&src.join("tree")), "web:/etc/passwd"]));
    assert!(err.contains("cannot copy directory"), "{err}");
    let err = fails(d.berth(&["cp", s(&src.join("missing")), "web:/tmp"]));
    assert!(err.contains("no such file or directory"), "{err}");
    let err = fails(d.berth(&["cp", "web:/etc/passwd", "/nonexistent/x"]));
    assert!(
        err.contains("invalid output path: directory \"/nonexistent\" does not exist"),
        "{err}"
    );
    let err = fails(d.berth(&["cp", "web:/bin", s(&src.join("top.txt"))]));
    assert!(err.contains("cannot copy directory"), "{err}");
    let err = fails(d.berth(&["cp", "a", "b"]));
    assert!(
        err.contains("must specify at least one container source"),
        "{err}"
    );
    let err = fails(d.berth(&["cp", "web:/a", "web:/b"]));
    assert!(
        err.contains("copying between containers is not supported"),
        "{err}"
    );
    let put = with_stdin(d.berth(&["cp", "-", "web:/etc/passwd"]), b"");
    assert!(!put.status.success());
    assert!(String::from_utf8_lossy(&put.stderr).contains("must be a directory"));
    // a directory may not become a file through the CLI's copy (noOverwriteDirNonDir)
    sh(&d, "web", "mkdir -p /tmp/clash/top.txt");
    let err = fails(d.berth(&["cp", s(&src.join("top.txt")), "web:/tmp/clash"]));
    assert!(err.contains("cannot overwrite directory"), "{err}");
    // a read-only root filesystem refuses, as Docker's
    ok(d.berth(&[
        "run",
        "-d",
        "--read-only",
        "--name",
        "ro",
        "busybox",
        "sleep",
        "1000",
    ]));
    let err = fails(d.berth(&["cp", s(&src.join("top.txt")), "ro:/tmp"]));
    assert!(
        err.contains("container rootfs is marked read-only"),
        "{err}"
    );
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn symlinks_in_the_container_never_lead_to_the_host() {
    let d = daemon_with_busybox();
    let src = local_files(&d);
    // on the host: a secret, and a directory a container's relative link would reach
    let host = d.path("host");
    fs::create_dir_all(&host).unwrap();
    fs::write(host.join("secret"), "host secret\n").unwrap();
    let up = "../".repeat(16);
    let rel_link = format!("{up}{}", s(&host).trim_start_matches('/'));
    let links = format!(
        "busybox ln -s {rel_link} /esc && busybox ln -s / /root/up && busybox ln -s /etc /etcl && \
         busybox mkdir -p /{} && echo container secret > /{}/secret",
        s(&host).trim_start_matches('/'),
        s(&host).trim_start_matches('/'),
    );
    ok(d.berth(&["run", "-d", "--name", "run", "busybox", "sleep", "1000"]));
    sh(&d, "run", &links);
    ok(d.berth(&["run", "--name", "stopped", "busybox", "sh", "-c", &links]));
    let out = d.path("out");
    for c in ["run", "stopped"] {
        let dst = out.join(c);
        fs::create_dir_all(&dst).unwrap();
        // out: the links resolve inside the container
        ok(d.berth(&["cp", &format!("{c}:/esc/secret"), s(&dst.join("secret"))]));
        assert_eq!(
            fs::read_to_string(dst.join("secret")).unwrap(),
            "container secret\n"
        );
        ok(d.berth(&["cp", &format!("{c}:/etcl/passwd"), s(&dst.join("passwd"))]));
        assert!(fs::read_to_string(dst.join("passwd"))
            .unwrap()
            .starts_with("root:x:0:0:root:/root:/bin/sh\nnobody"));
        // a link itself is copied as a link unless -L
        ok(d.berth(&["cp", &format!("{c}:/etcl"), s(&dst.join("link"))]));
        assert_eq!(fs::read_link(dst.join("link")).unwrap(), Path::new("/etc"));
        ok(d.berth(&["cp", "-L", &format!("{c}:/etcl"), s(&dst.join("followed"))]));
        assert!(dst.join("followed/group").is_file());
        // in: through the links, into the container
        ok(d.berth(&["cp", s(&src.join("top.txt")), &format!("{c}:/esc/")]));
        ok(d.berth(&[
            "cp",
            s(&src.join("top.txt")),
            &format!("{c}:/root/up/{}/", s(&host).trim_start_matches('/')),
        ]));
        ok(d.berth(&["cp", s(&src.join("tree")), &format!("{c}:/esc/")]));
        ok(d.berth(&[
            "cp",
            &format!("{c}:/{}/top.txt", s(&host).trim_start_matches('/')),
            s(&dst.join("landed.txt")),
        ]));
        assert_eq!(fs::read_to_string(dst.join("landed.txt")).unwrap(), "top\n");
        // a hostile tar: `..` entries refused; a link then a file through it stays inside
        let evil = tar_of(&[(
            &format!("{up}{}/evil", s(&host).trim_start_matches('/')),
            b"x",
        )]);
        let put = with_stdin(d.berth(&["cp", "-", &format!("{c}:/tmp")]), &evil);
        assert!(!put.status.success());
        assert!(
            String::from_utf8_lossy(&put.stderr).contains("leads out"),
            "{}",
            String::from_utf8_lossy(&put.stderr)
        );
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        h.set_mode(0o777);
        b.append_link(&mut h, "hostlink", &host).unwrap();
        let mut h = tar::Header::new_gnu();
        h.set_size(1);
        h.set_mode(0o644);
        b.append_data(&mut h, "hostlink/evil2", &b"x"[..]).unwrap();
        let put = with_stdin(
            d.berth(&["cp", "-", &format!("{c}:/tmp")]),
            &b.into_inner().unwrap(),
        );
        let _ = put; // refused or written inside: either way never on the host
    }
    // the host was never touched
    let mut names: Vec<String> = fs::read_dir(&host)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["secret"]);
    assert_eq!(
        fs::read_to_string(host.join("secret")).unwrap(),
        "host secret\n"
    );
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn cp_through_bind_mounts_of_running_and_stopped_containers_reaches_the_host() {
    let d = daemon_with_busybox();
    let src = local_files(&d);
    let shared = d.path("shared");
    fs::create_dir_all(&shared).unwrap();
    ok(d.berth(&[
        "run",
        "-d",
        "--name",
        "web",
        "-v",
        &format!("{}:/data", s(&shared)),
        "busybox",
        "sleep",
        "1000",
    ]));
    ok(d.berth(&["cp", s(&src.join("top.txt")), "web:/data/"]));
    ok(d.berth(&["cp", s(&src.join("tree")), "web:/data/tree"]));
    assert_eq!(fs::read_to_string(shared.join("top.txt")).unwrap(), "top\n");
    assert_eq!(
        fs::read_to_string(shared.join("tree/sub/b.txt")).unwrap(),
        "b\n"
    );
    // and out of it
    fs::write(shared.join("from-host.txt"), "host side\n").unwrap();
    ok(d.berth(&["cp", "web:/data/from-host.txt", s(&d.path("back.txt"))]));
    assert_eq!(
        fs::read_to_string(d.path("back.txt")).unwrap(),
        "host side\n"
    );
    // a stopped container's binds are mounted for the copy, as the container would see them
    let later = d.path("later");
    fs::create_dir_all(&later).unwrap();
    ok(d.berth(&[
        "run",
        "--name",
        "exited",
        "-v",
        &format!("{}:/data", s(&later)),
        "busybox",
        "true",
    ]));
    ok(d.berth(&["cp", s(&src.join("top.txt")), "exited:/data/"]));
    assert_eq!(fs::read_to_string(later.join("top.txt")).unwrap(), "top\n");
    fs::write(later.join("note.txt"), "note\n").unwrap();
    ok(d.berth(&["cp", "exited:/data/note.txt", s(&d.path("note.txt"))]));
    assert_eq!(fs::read_to_string(d.path("note.txt")).unwrap(), "note\n");
    // a read-only bind refuses
    ok(d.berth(&[
        "run",
        "-d",
        "--name",
        "ro",
        "-v",
        &format!("{}:/data:ro", s(&shared)),
        "busybox",
        "sleep",
        "1000",
    ]));
    let err = fails(d.berth(&["cp", s(&src.join("top.txt")), "ro:/data/"]));
    assert!(err.contains("mounted volume is marked read-only"), "{err}");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn docker_cli_cp_both_ways() {
    let d = daemon_with_busybox();
    let src = local_files(&d);
    ok(d.docker(&["run", "-d", "--name", "web", "busybox", "sleep", "1000"]));
    ok(d.docker(&[
        "create",
        "--name",
        "cold",
        "busybox",
        "sh",
        "-c",
        "cat /app/a.txt /app/top.txt",
    ]));
    // into a running and into a created container
    ok(d.docker(&["cp", s(&src.join("top.txt")), "web:/tmp/"]));
    ok(d.docker(&["cp", s(&src.join("tree")), "web:/tmp/newdir"]));
    ok(d.docker(&["cp", &format!("{}/.", s(&src.join("tree"))), "web:/root"]));
    assert_eq!(
        sh(
            &d,
            "web",
            "cat /tmp/top.txt /tmp/newdir/sub/b.txt /root/a.txt"
        ),
        "top\nb\na\n"
    );
    ok(d.docker(&["cp", s(&src.join("tree")), "cold:/app"]));
    ok(d.docker(&["cp", s(&src.join("top.txt")), "cold:/app/top.txt"]));
    // out of both
    let out = d.path("out");
    fs::create_dir_all(&out).unwrap();
    ok(d.docker(&["cp", "web:/tmp/newdir", s(&out.join("newdir"))]));
    ok(d.docker(&["cp", "web:/tmp/top.txt", s(&out)]));
    ok(d.docker(&["cp", "cold:/app/.", s(&out.join("app"))]));
    assert_eq!(
        fs::read_to_string(out.join("newdir/sub/b.txt")).unwrap(),
        "b\n"
    );
    assert_eq!(fs::read_to_string(out.join("top.txt")).unwrap(), "top\n");
    assert_eq!(
        fs::read_to_string(out.join("app/sub/b.txt")).unwrap(),
        "b\n"
    );
    assert_eq!(ok(d.docker(&["start", "-a", "cold"])), "a\ntop\n");
    // `-` both ways
    let mut c = d.docker(&["cp", "web:/tmp/newdir", "-"]);
    let tar = c.output().unwrap();
    assert!(
        tar.status.success(),
        "{}",
        String::from_utf8_lossy(&tar.stderr)
    );
    assert_eq!(
        tar_names(&tar.stdout),
        ["newdir", "newdir/a.txt", "newdir/sub", "newdir/sub/b.txt"]
    );
    let put = with_stdin(
        d.docker(&["cp", "-", "web:/tmp"]),
        &tar_of(&[("streamed.txt", b"s\n")]),
    );
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    assert_eq!(sh(&d, "web", "cat /tmp/streamed.txt"), "s\n");
    // -L follows a link in the container; errors
    sh(&d, "web", "busybox ln -s /tmp/newdir /tmp/link");
    ok(d.docker(&["cp", "-L", "web:/tmp/link", s(&out.join("followed"))]));
    assert!(out.join("followed/a.txt").is_file());
    let err = fails(d.docker(&["cp", "web:/nope", s(&out)]));
    assert!(
        err.contains("Could not find the file /nope in container web")
            || err.contains("No such container:path"),
        "{err}"
    );
    let err = fails(d.docker(&["cp", s(&src.join("top.txt")), "web:/nonexistent/x"]));
    assert!(
        err.contains("Could not find the file /nonexistent in container web"),
        "{err}"
    );
}
