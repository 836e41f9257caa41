//! End to end: named and anonymous volumes, `--mount`, `rm -v`, through the berth CLI and
//! the real docker CLI. Privileged: run by `cargo xtask test` as root, each daemon in its own
//! namespaces with a scratch data root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::{fails, is_root, ok, TestDaemon};

fn daemon() -> TestDaemon {
    assert!(
        is_root(),
        "volumes need root: run through `cargo xtask test`"
    );
    let d = TestDaemon::start();
    d.import_busybox("busybox", &[]);
    d
}

fn volumes(d: &TestDaemon) -> Vec<String> {
    ok(d.berth(&["volume", "ls", "-q"]))
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn named_volumes_share_data_and_outlive_containers() {
    let d = daemon();
    assert_eq!(
        ok(d.berth(&["volume", "create", "--label", "k=v", "data"])),
        "data\n"
    );
    // creating it again returns the same volume
    assert_eq!(ok(d.berth(&["volume", "create", "data"])), "data\n");
    let ls = ok(d.berth(&["volume", "ls"]));
    assert!(
        ls.starts_with("DRIVER") && ls.contains("local") && ls.contains("data"),
        "{ls}"
    );
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(d.berth(&["volume", "inspect", "data"]))).unwrap();
    let mp = inspect[0]["Mountpoint"].as_str().unwrap().to_owned();
    assert!(mp.starts_with(d.data_root.to_str().unwrap()), "{mp}");
    assert_eq!(inspect[0]["Labels"]["k"], "v");
    assert_eq!(inspect[0]["Driver"], "local");

    ok(d.berth(&[
        "run",
        "--name",
        "w",
        "-v",
        "data:/d",
        "busybox",
        "sh",
        "-c",
        "echo hi > /d/f",
    ]));
    assert_eq!(std::fs::read_to_string(format!("{mp}/f")).unwrap(), "hi\n");
    assert_eq!(
        ok(d.berth(&["run", "--rm", "-v", "data:/d:ro", "busybox", "cat", "/d/f"])),
        "hi\n"
    );
    let err = fails(d.berth(&[
        "run",
        "--rm",
        "-v",
        "data:/d:ro",
        "busybox",
        "touch",
        "/d/g",
    ]));
    assert!(err.contains("Read-only file system"), "{err}");

    // inspect shows the mount
    let c: serde_json::Value = serde_json::from_str(&ok(d.berth(&["inspect", "w"]))).unwrap();
    let m = &c[0]["Mounts"][0];
    assert_eq!(
        (
            m["Type"].as_str(),
            m["Name"].as_str(),
            m["Destination"].as_str()
        ),
        (Some("volume"), Some("data"), Some("/d"))
    );
    assert_eq!(m["Source"].as_str(), Some(mp.as_str()));
    assert_eq!(m["RW"], true);

    // cp reaches the volume of a stopped container
    let src = d.path("copied.txt");
    std::fs::write(&src, "by cp\n").unwrap();
    ok(d.berth(&["cp", src.to_str().unwrap(), "w:/d/"]));
    assert_eq!(
        std::fs::read_to_string(format!("{mp}/copied.txt")).unwrap(),
        "by cp\n"
    );

    // in use: neither rm nor prune takes it
    let err = fails(d.berth(&["volume", "rm", "data"]));
    assert!(err.contains("volume is in use"), "{err}");
    ok(d.berth(&["volume", "prune", "-f"]));
    assert_eq!(volumes(&d), ["data"]);
    // a filter for dangling ones
    assert_eq!(
        ok(d.berth(&["volume", "ls", "-q", "-f", "dangling=true"])),
        ""
    );

    // rm -v keeps named volumes; the data survives a daemon crash and restart
    ok(d.berth(&["rm", "-v", "w"]));
    assert_eq!(volumes(&d), ["data"]);
    let mut d = d;
    d.kill9();
    d.spawn();
    assert_eq!(
        ok(d.berth(&["run", "--rm", "-v", "data:/d", "busybox", "cat", "/d/f"])),
        "hi\n"
    );
    assert_eq!(
        ok(d.berth(&["volume", "ls", "-q", "-f", "dangling=true"])),
        "data\n"
    );
    assert_eq!(ok(d.berth(&["volume", "rm", "data"])), "data\n");
    assert!(!std::path::Path::new(&mp).exists());
    let err = fails(d.berth(&["volume", "rm", "data"]));
    assert!(err.contains("no such volume"), "{err}");
    ok(d.berth(&["volume", "rm", "-f", "data"]));
    let err = fails(d.berth(&["volume", "inspect", "nope"]));
    assert!(err.contains("no such volume"), "{err}");
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn volumes_are_filled_from_the_image_and_anonymous_ones_go_with_rm_v() {
    let d = daemon();
    let ctx = d.path("ctx");
    std::fs::create_dir_all(&ctx).unwrap();
    std::fs::write(
        ctx.join("Dockerfile"),
        "FROM busybox\nRUN mkdir -p /app/sub && echo seeded > /app/sub/f && ln -s sub/f /app/link && chown -R 1000:2000 /app && chmod 0750 /app\nVOLUME /app\n",
    )
    .unwrap();
    ok(d.berth(&["build", "-q", "-t", "vol", ctx.to_str().unwrap()]));

    // an image's VOLUME: an anonymous volume, filled with the image's content and owners
    let out = ok(d.berth(&[
        "run",
        "--name",
        "a",
        "vol",
        "sh",
        "-c",
        "cat /app/sub/f; cat /app/link; stat -c '%u:%g %a' /app /app/sub/f; echo more > /app/new",
    ]));
    assert_eq!(out, "seeded\nseeded\n1000:2000 750\n1000:2000 644\n");
    let anon = volumes(&d);
    assert_eq!(anon.len(), 1);
    assert_eq!(anon[0].len(), 64, "{anon:?}");
    let c: serde_json::Value = serde_json::from_str(&ok(d.berth(&["inspect", "a"]))).unwrap();
    assert_eq!(c[0]["Mounts"][0]["Name"].as_str(), Some(anon[0].as_str()));
    // restarting the container keeps its volume's content
    assert!(ok(d.berth(&["start", "-a", "a"])).contains("seeded"));
    let mp = format!("{}/volumes/{}/_data", d.data_root.display(), anon[0]);
    assert_eq!(
        std::fs::read_to_string(format!("{mp}/new")).unwrap(),
        "more\n"
    );
    ok(d.berth(&["rm", "-v", "a"]));
    assert!(volumes(&d).is_empty());

    // a named volume is filled once, when empty; nocopy leaves it empty
    assert_eq!(
        ok(d.berth(&[
            "run",
            "--rm",
            "-v",
            "cfg:/app",
            "vol",
            "sh",
            "-c",
            "cat /app/sub/f; rm /app/sub/f"
        ])),
        "seeded\n"
    );
    assert_eq!(
        ok(d.berth(&["run", "--rm", "-v", "cfg:/app", "vol", "ls", "/app/sub"])),
        ""
    );
    assert_eq!(
        ok(d.berth(&[
            "run",
            "--rm",
            "-v",
            "bare:/app:nocopy",
            "vol",
            "ls",
            "-A",
            "/app"
        ])),
        ""
    );
    // --rm takes the anonymous volumes along, not the named ones
    ok(d.berth(&[
        "run",
        "--rm",
        "-v",
        "/scratch",
        "busybox",
        "touch",
        "/scratch/x",
    ]));
    let mut left = volumes(&d);
    left.sort();
    assert_eq!(left, ["bare", "cfg"]);
    ok(d.berth(&["volume", "prune", "-f"]));
    assert!(volumes(&d).is_empty());
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn mount_flag_and_bad_volume_specs() {
    let d = daemon();
    let host = d.path("hostdir");
    std::fs::create_dir_all(&host).unwrap();
    std::fs::write(host.join("h"), "from host\n").unwrap();
    let out = ok(d.berth(&[
        "run", "--rm",
        "--mount", &format!("type=bind,source={},target=/h,readonly", host.display()),
        "--mount", "type=tmpfs,target=/t,tmpfs-size=1m",
        "--mount", "source=m1,target=/m",
        "busybox", "sh", "-c",
        "cat /h/h; touch /h/x 2>/dev/null || echo ro; grep ' /t ' /proc/mounts | cut -d' ' -f3; touch /m/ok && echo m",
    ]));
    assert_eq!(out, "from host\nro\ntmpfs\nm\n");
    assert_eq!(volumes(&d), ["m1"]);

    // a -v bind makes a missing host directory, as Docker's; --mount does not
    let made = d.path("made/here");
    ok(d.berth(&[
        "run",
        "--rm",
        "-v",
        &format!("{}:/x", made.display()),
        "busybox",
        "true",
    ]));
    assert!(made.is_dir());
    for (args, msg) in [
        (vec!["-v", "bad/name:/x"], "includes invalid characters"),
        (vec!["-v", "v1:relative"], "must be absolute"),
        (vec!["-v", "v1:/x:bogus"], "invalid mode"),
        (vec!["-v", "v1:/x", "-v", "v2:/x"], "Duplicate mount point"),
        (
            vec!["--mount", "type=bind,source=/no/such/dir,target=/x"],
            "bind source path does not exist",
        ),
        (vec!["--mount", "type=nfs,target=/x"], "mount type unknown"),
    ] {
        let mut all = vec!["run", "--rm"];
        all.extend(args);
        all.extend(["busybox", "true"]);
        let err = fails(d.berth(&all));
        assert!(err.contains(msg), "{all:?}: {err}");
    }
    // nothing was left behind by the refused runs
    assert_eq!(ok(d.berth(&["ps", "-a", "-q"])), "");
    assert_eq!(volumes(&d), ["m1"]);
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn real_docker_cli_drives_volumes() {
    let d = daemon();
    assert_eq!(ok(d.docker(&["volume", "create", "dv"])), "dv\n");
    ok(d.docker(&[
        "run",
        "--rm",
        "-v",
        "dv:/d",
        "busybox",
        "sh",
        "-c",
        "echo x > /d/f",
    ]));
    assert_eq!(
        ok(d.docker(&[
            "run",
            "--rm",
            "--mount",
            "source=dv,target=/d",
            "busybox",
            "cat",
            "/d/f"
        ])),
        "x\n"
    );
    ok(d.docker(&["run", "--name", "anon", "-v", "/anon", "busybox", "true"]));
    let ls = ok(d.docker(&["volume", "ls", "--format", "{{.Name}}"]));
    assert_eq!(ls.lines().count(), 2, "{ls}");
    let fmt = ok(d.docker(&["volume", "inspect", "-f", "{{.Driver}} {{.Scope}}", "dv"]));
    assert_eq!(fmt, "local local\n");
    let mounts = ok(d.docker(&[
        "inspect",
        "-f",
        "{{range .Mounts}}{{.Type}} {{.Destination}}{{end}}",
        "anon",
    ]));
    assert_eq!(mounts, "volume /anon\n");
    ok(d.docker(&["rm", "-v", "anon"]));
    assert_eq!(ok(d.docker(&["volume", "ls", "-q"])), "dv\n");
    let err = fails(d.docker(&["volume", "rm", "nosuch"]));
    assert!(err.contains("no such volume"), "{err}");
    let pruned = ok(d.docker(&["volume", "prune", "-f"]));
    assert!(pruned.contains("Total reclaimed space"), "{pruned}");
    assert_eq!(ok(d.docker(&["volume", "ls", "-q"])), "");
}
