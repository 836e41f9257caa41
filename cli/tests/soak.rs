//! Load: many concurrent API clients doing a mix of run, ps, logs, exec, inspect and rm for a
//! fixed time against one daemon. Every answer must be a success or a 4xx the client caused
//! (a container another client removed meanwhile): zero 5xx, zero connection errors, and
//! afterwards `system check` clean, every record whole and listed once. Then many containers
//! alive at once, listed. Latency percentiles and the `ps` time are printed.
//!
//! `cargo xtask soak [--clients N] [--seconds S] [--containers M]` runs it long (200 clients,
//! 60 s, 500 containers; it fails if `ps` of those takes 50 ms or more); `cargo xtask test`
//! runs it short (`BERTH_SOAK_*`, 16 clients for 8 s, 40 containers).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::{ok, TestDaemon};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// One HTTP/1.1 exchange on a new connection: (status, body).
fn request(
    sock: &Path,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> Result<(u16, Vec<u8>), String> {
    let mut s = UnixStream::connect(sock).map_err(|e| format!("connect: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok();
    let body = body.unwrap_or("");
    let head = format!(
        "{method} /v1.41{path} HTTP/1.1\r\nHost: berth\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(body.as_bytes()))
        .map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| format!("read: {e}"))?;
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("no status line in {:?}", &text[..text.len().min(200)]))?;
    let body = match out.windows(4).position(|w| w == b"\r\n\r\n") {
        Some(i) => out[i + 4..].to_vec(),
        None => Vec::new(),
    };
    Ok((status, body))
}

/// The JSON body of a chunked or plain response (the daemon chunks some).
fn json_of(body: &[u8]) -> serde_json::Value {
    if let Ok(v) = serde_json::from_slice(body) {
        return v;
    }
    // chunked: size line, data, CRLF ...
    let text = String::from_utf8_lossy(body);
    let mut data = String::new();
    let mut rest = text.as_ref();
    while let Some((size, after)) = rest.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || after.len() < n {
            break;
        }
        data.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    serde_json::from_str(&data).unwrap_or(serde_json::Value::Null)
}

#[derive(Default)]
struct Tally {
    latencies: BTreeMap<&'static str, Vec<Duration>>,
    statuses: BTreeMap<u16, u64>,
    failures: Vec<String>,
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    v.sort();
    v[((v.len() - 1) as f64 * p).round() as usize]
}

/// One client's loop: a seeded mix of operations on its own containers and on anyone's.
fn client(sock: PathBuf, seed: u64, until: Instant, tally: Arc<Mutex<Tally>>) {
    let mut rng = support::Rng(seed | 1);
    let mut rnd = move |n: u64| rng.below(n);
    let mut mine: Vec<String> = Vec::new();
    while Instant::now() < until {
        let pick = rnd(100);
        let target = if mine.is_empty() {
            None
        } else {
            Some(mine[rnd(mine.len() as u64) as usize].clone())
        };
        let t0 = Instant::now();
        let (op, result): (&'static str, Result<(u16, Vec<u8>), String>) = match (pick, &target) {
            (0..=19, _) | (_, None) if mine.len() < 4 => {
                // run -d: create + start
                let cmd = if rnd(2) == 0 {
                    r#"["sh","-c","echo hello; sleep 30"]"#
                } else {
                    r#"["true"]"#
                };
                let body = format!(r#"{{"Image":"busybox","Cmd":{cmd}}}"#);
                let created = request(&sock, "POST", "/containers/create", Some(&body));
                match created {
                    Ok((201, b)) => {
                        let id = json_of(&b)["Id"].as_str().unwrap_or("").to_owned();
                        let started =
                            request(&sock, "POST", &format!("/containers/{id}/start"), None);
                        mine.push(id);
                        ("run", started)
                    }
                    other => ("run", other),
                }
            }
            (0..=29, _) => ("ps", request(&sock, "GET", "/containers/json?all=1", None)),
            (30..=49, Some(id)) => (
                "inspect",
                request(&sock, "GET", &format!("/containers/{id}/json"), None),
            ),
            (50..=64, Some(id)) => (
                "logs",
                request(
                    &sock,
                    "GET",
                    &format!("/containers/{id}/logs?stdout=1&stderr=1&tail=10"),
                    None,
                ),
            ),
            (65..=79, Some(id)) => {
                let created = request(
                    &sock,
                    "POST",
                    &format!("/containers/{id}/exec"),
                    Some(r#"{"Cmd":["echo","x"],"AttachStdout":true}"#),
                );
                match created {
                    Ok((201, b)) => {
                        let eid = json_of(&b)["Id"].as_str().unwrap_or("").to_owned();
                        (
                            "exec",
                            request(
                                &sock,
                                "POST",
                                &format!("/exec/{eid}/start"),
                                Some(r#"{"Detach":false,"Tty":false}"#),
                            ),
                        )
                    }
                    other => ("exec", other),
                }
            }
            (_, Some(id)) => {
                let id = id.clone();
                mine.retain(|m| *m != id);
                (
                    "rm",
                    request(&sock, "DELETE", &format!("/containers/{id}?force=1"), None),
                )
            }
            (_, None) => ("ps", request(&sock, "GET", "/containers/json", None)),
        };
        let took = t0.elapsed();
        let mut t = tally.lock().unwrap();
        match result {
            Ok((status, body)) => {
                *t.statuses.entry(status).or_default() += 1;
                // exec into a container that has ended is a 409 the client caused
                let expected = status < 400 || (op == "exec" && status == 409);
                if status >= 500 || (!expected && op != "exec") {
                    t.failures.push(format!(
                        "{op}: {status} {}",
                        String::from_utf8_lossy(&body[..body.len().min(300)])
                    ));
                }
                t.latencies.entry(op).or_default().push(took);
            }
            Err(e) => t.failures.push(format!("{op}: {e}")),
        }
    }
    for id in mine {
        let _ = request(&sock, "DELETE", &format!("/containers/{id}?force=1"), None);
    }
}

#[test]
#[ignore = "privileged: run by cargo xtask test (short) and cargo xtask soak (long) as root"]
fn concurrent_clients_and_many_containers() {
    let clients = env_u64("BERTH_SOAK_CLIENTS", 16);
    let seconds = env_u64("BERTH_SOAK_SECONDS", 8);
    let many = env_u64("BERTH_SOAK_CONTAINERS", 40);
    let ps_goal_ms = std::env::var("BERTH_SOAK_PS_GOAL_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok());
    let d = TestDaemon::start_with(&["--bridge", "none"]);
    d.import_busybox("busybox", &[]);

    let tally = Arc::new(Mutex::new(Tally::default()));
    let until = Instant::now() + Duration::from_secs(seconds);
    let threads: Vec<_> = (0..clients)
        .map(|i| {
            let (sock, tally) = (d.socket.clone(), tally.clone());
            std::thread::spawn(move || client(sock, 0x9e37_79b9 + i * 7919, until, tally))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let mut t = Arc::try_unwrap(tally).ok().unwrap().into_inner().unwrap();
    let total: u64 = t.statuses.values().sum();
    eprintln!(
        "soak: {clients} clients for {seconds} s: {total} requests, statuses {:?}",
        t.statuses
    );
    for (op, v) in t.latencies.iter_mut() {
        eprintln!(
            "soak:   {op:8} n={:6} p50 {:7.2} ms  p99 {:7.2} ms",
            v.len(),
            percentile(v, 0.5).as_secs_f64() * 1e3,
            percentile(v, 0.99).as_secs_f64() * 1e3
        );
    }
    assert!(
        t.failures.is_empty(),
        "{} failed requests, first: {:#?}",
        t.failures.len(),
        &t.failures[..t.failures.len().min(10)]
    );
    assert!(total > clients, "the clients did next to nothing: {total}");
    d.check_store_and_records("after the clients");

    // many containers alive at once
    let started = Instant::now();
    for _ in 0..many {
        let (status, b) = request(
            &d.socket,
            "POST",
            "/containers/create",
            Some(r#"{"Image":"busybox","Cmd":["sleep","600"]}"#),
        )
        .unwrap();
        assert_eq!(status, 201, "{}", String::from_utf8_lossy(&b));
        let id = json_of(&b)["Id"].as_str().unwrap().to_owned();
        let (status, b) =
            request(&d.socket, "POST", &format!("/containers/{id}/start"), None).unwrap();
        assert_eq!(status, 204, "{}", String::from_utf8_lossy(&b));
    }
    let up = started.elapsed();
    let mut ps = Vec::new();
    let mut listed = 0;
    for _ in 0..11 {
        let t0 = Instant::now();
        let (status, b) = request(&d.socket, "GET", "/containers/json", None).unwrap();
        ps.push(t0.elapsed());
        assert_eq!(status, 200);
        listed = json_of(&b).as_array().map_or(0, Vec::len);
    }
    assert_eq!(listed as u64, many, "running containers listed");
    let ps_median = percentile(&mut ps, 0.5);
    eprintln!(
        "soak: {many} containers started in {:.1} s; ps of them: median {:.1} ms",
        up.as_secs_f64(),
        ps_median.as_secs_f64() * 1e3
    );
    if let Some(goal) = ps_goal_ms {
        assert!(
            ps_median < Duration::from_millis(goal),
            "ps of {many} containers took {ps_median:?} (goal under {goal} ms)"
        );
    }
    let all = ok(d.berth(&["ps", "-aq"]));
    let ids: Vec<&str> = all.split_whitespace().collect();
    let t0 = Instant::now();
    let mut rm = d.berth(&["rm", "-f"]);
    rm.args(&ids);
    ok(rm);
    eprintln!(
        "soak: rm -f of {} containers: {:.1} s",
        ids.len(),
        t0.elapsed().as_secs_f64()
    );
    d.check_store_and_records("after the removal");
}
