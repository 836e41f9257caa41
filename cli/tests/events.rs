//! End to end: `events` from the berth CLI and the real docker CLI, replayed with
//! `--since/--until` and followed live. Privileged: run by `cargo xtask test` as root.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use support::{fails, is_root, ok, TestDaemon};

fn now() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    format!("{}.{:09}", t.as_secs(), t.subsec_nanos())
}

/// (Type, Action, name or ID) of each JSON event line.
fn parse(out: &str) -> Vec<(String, String, String)> {
    out.lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let who = v["Actor"]["Attributes"]["name"]
                .as_str()
                .unwrap_or(v["Actor"]["ID"].as_str().unwrap())
                .to_owned();
            (
                v["Type"].as_str().unwrap().to_owned(),
                v["Action"].as_str().unwrap().to_owned(),
                who,
            )
        })
        .collect()
}

fn actions_of(events: &[(String, String, String)], who: &str) -> Vec<String> {
    events
        .iter()
        .filter(|e| e.2 == who)
        .map(|e| e.1.clone())
        .collect()
}

#[test]
#[ignore = "privileged: run by cargo xtask test as root"]
fn events_replay_filter_and_follow() {
    assert!(
        is_root(),
        "containers need root: run through `cargo xtask test`"
    );
    let d = TestDaemon::start();
    let since = now();
    d.import_busybox("busybox", &[]);
    ok(d.berth(&["volume", "create", "ev1"]));
    let out =
        support::run(&mut d.berth(&["run", "--name", "one", "busybox", "sh", "-c", "exit 3"]));
    assert_eq!(out.status.code(), Some(3));
    ok(d.berth(&["rm", "one"]));
    ok(d.berth(&["run", "-d", "--name", "two", "busybox", "sleep", "60"]));
    ok(d.berth(&["exec", "two", "true"]));
    ok(d.berth(&["pause", "two"]));
    ok(d.berth(&["unpause", "two"]));
    ok(d.berth(&["kill", "-s", "KILL", "two"]));
    ok(d.berth(&["wait", "two"]));
    ok(d.berth(&["tag", "busybox", "bb:2"]));
    ok(d.berth(&["rmi", "bb:2"]));
    ok(d.berth(&["volume", "rm", "ev1"]));
    let until = now();

    let all = parse(&ok(d.berth(&[
        "events", "--since", &since, "--until", &until, "--format", "json",
    ])));
    assert_eq!(
        actions_of(&all, "one"),
        ["create", "attach", "start", "die", "destroy"],
        "{all:?}"
    );
    let two = actions_of(&all, "two");
    assert_eq!(
        two,
        [
            "create",
            "start",
            "exec_create: true",
            "exec_start: true",
            "exec_die",
            "pause",
            "unpause",
            "kill",
            "die"
        ],
        "{all:?}"
    );
    assert_eq!(actions_of(&all, "ev1"), ["create", "destroy"]);
    assert!(
        all.iter()
            .any(|e| e.0 == "image" && e.1 == "tag" && e.2 == "bb:2"),
        "{all:?}"
    );
    assert!(
        all.iter().any(|e| e.0 == "image" && e.1 == "untag"),
        "{all:?}"
    );

    // the die event carries the exit code; filters narrow by type, event and container
    let dies = ok(d.docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "event=die",
        "--filter",
        "container=one",
        "--format",
        "{{json .}}",
    ]));
    let v: serde_json::Value = serde_json::from_str(dies.trim()).unwrap();
    assert_eq!(v["Actor"]["Attributes"]["exitCode"], "3");
    assert_eq!(v["status"], "die");
    assert_eq!(v["from"], "busybox");
    let vols = parse(&ok(d.docker(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "--filter",
        "type=volume",
        "--format",
        "{{json .}}",
    ])));
    assert!(
        vols.iter().all(|e| e.0 == "volume") && vols.len() == 2,
        "{vols:?}"
    );
    // the default format: time type action id (attributes)
    let text = ok(d.berth(&[
        "events",
        "--since",
        &since,
        "--until",
        &until,
        "-f",
        "container=one",
        "-f",
        "event=start",
    ]));
    assert!(
        text.contains(" container start ") && text.contains("name=one"),
        "{text}"
    );
    let err = fails(d.berth(&["events", "--since", "soon"]));
    assert!(err.contains("invalid time"), "{err}");
    let err = fails(d.berth(&["events", "--until", &until, "-f", "colour=red"]));
    assert!(err.contains("invalid filter"), "{err}");

    // live: the docker CLI follows, and sees a container start as it happens
    let mut follow = d
        .docker(&[
            "events",
            "--filter",
            "type=container",
            "--filter",
            "event=start",
            "--format",
            "{{json .}}",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(follow.stdout.take().unwrap()).lines();
    std::thread::sleep(std::time::Duration::from_millis(300));
    ok(d.berth(&["start", "two"]));
    let line = lines.next().unwrap().unwrap();
    let _ = follow.kill();
    let _ = follow.wait();
    assert_eq!(
        parse(&line),
        [("container".into(), "start".into(), "two".into())]
    );
    ok(d.berth(&["rm", "-f", "two"]));
}
