//! Entry points of the fuzz targets (`fuzz/`), also replayed over the corpora by a plain
//! test. Not an API: they panic when an invariant breaks, which is what a fuzzer looks for.
//! Only pure decoders are reached: no daemon, no socket, no container.

use serde_json::{json, Value};

use crate::api::containers::{
    console_size, decode_create_body, prepare_create, signal_number, ulimits,
};
use crate::api::{images, update};
use crate::containers::Container;
use crate::detach;
use crate::frames::{frame, FrameDecoder};
use crate::http::{strings, Query};

/// The Engine API target: the first byte picks a decoder, the rest is its input.
pub fn api_request(data: &[u8]) {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    match pick % 4 {
        0 => create_body(rest),
        1 => {
            if let Ok(s) = std::str::from_utf8(rest) {
                query(s);
            }
        }
        2 => {
            if let Ok(body) = serde_json::from_slice::<Value>(rest) {
                let _ = update::changes(&body, pick & 0x10 != 0);
            }
        }
        _ => {
            if let Ok(s) = std::str::from_utf8(rest) {
                let _ = netbridge::parse_port_spec(s);
                let _ = netbridge::ipam::parse_mac(s);
                let _ = crate::api::archive::container_path(s);
                let _ = crate::api::archive::go_base(s);
                let _ = crate::containers::spec::seccomp_profile(s, &[]);
            }
        }
    }
}

/// `POST /containers/create`: everything `create` checks before it touches the daemon,
/// then what `start` reads of the result (ports, ulimits, console size, capabilities).
fn create_body(bytes: &[u8]) {
    let image_cfg = json!({"config": {
        "Env": ["PATH=/usr/bin:/bin", "LANG=C"],
        "Cmd": ["sh"],
        "ExposedPorts": {"80/tcp": {}},
        "Volumes": {"/data": {}},
    }});
    let Ok((body, image)) = decode_create_body(bytes) else {
        return;
    };
    let Ok(req) = prepare_create(body, &image_cfg) else {
        return;
    };
    assert!(!req.command.is_empty(), "a container without a command");
    let _ = ulimits(&req.host_config["Ulimits"]);
    let _ = console_size(&req.host_config["ConsoleSize"]);
    let _ = crate::containers::spec::capabilities(
        &strings(&req.host_config["CapAdd"]),
        &strings(&req.host_config["CapDrop"]),
    );
    let c = Container::new(
        image,
        String::new(),
        &req.command,
        req.config,
        req.host_config,
        Vec::new(),
    );
    let _ = crate::network::port_mappings(&c);
}

/// A query string as the handlers read it: filters (and the image reference filter's
/// glob), flags, resize, detach keys, a signal.
fn query(s: &str) {
    let q = Query::parse(Some(s));
    let _ = q.flag("all");
    let _ = crate::api::containers::resize_args(&q);
    let _ = detach::from_query(q.get("detachKeys"));
    if let Some(sig) = q.get("signal") {
        let _ = signal_number(sig);
    }
    if let Ok(filters) = q.filters() {
        let r = image_store::Reference::parse("docker.io/library/busybox:1.36").ok();
        for pat in filters.get("reference").into_iter().flatten() {
            if let Some(r) = &r {
                let _ = images::reference_matches(pat, r);
            }
            let _ = images::glob(pat, s);
        }
    }
}

/// The attach target: a daemon's multiplexed stream, received in pieces whose sizes the
/// input picks, must decode to frames found at their places in the bytes received; and
/// the detach-key scanner over the same bytes never forwards more than it was given.
pub fn attach_frames(data: &[u8]) {
    let Some((&split, wire)) = data.split_first() else {
        return;
    };
    let piece = usize::from(split).max(1);
    // Each frame is the stream byte and the payload at its place in what was received (the
    // three reserved header bytes are ignored, as Docker's stdcopy does); what is left over
    // is the tail.
    let mut d = FrameDecoder::new();
    let mut off = 0;
    for chunk in wire.chunks(piece) {
        d.push(chunk);
        while let Some(f) = d.next_frame() {
            let end = off + 8 + f.data.len();
            assert_eq!(wire[off], f.stream, "stream byte of the frame at {off}");
            assert_eq!(
                wire[off + 8..end],
                f.data[..],
                "payload of the frame at {off}"
            );
            assert_eq!(frame(f.stream, &f.data).len(), end - off);
            off = end;
        }
    }
    assert_eq!(d.pending(), &wire[off..], "the undecoded tail");

    let keys = match std::str::from_utf8(wire.get(..8).unwrap_or(wire)) {
        Ok(s) => detach::parse(s).unwrap_or_else(|_| vec![16, 17]),
        Err(_) => vec![16, 17],
    };
    let mut scanner = detach::Scanner::new(keys);
    let mut forwarded = 0;
    let mut fed = 0;
    for chunk in wire.chunks(piece) {
        let (out, done) = scanner.feed(chunk);
        fed += chunk.len();
        forwarded += out.len();
        assert!(
            forwarded <= fed,
            "the detach scanner forwarded bytes it never got"
        );
        if done {
            break;
        }
    }
}
