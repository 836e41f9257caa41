//! `cargo xtask bench pull`: pull (and push) of a ~300 MB, 6-layer gzip image through a local
//! docker-registry on 127.0.0.1: berth vs `skopeo copy docker://… oci:` vs `podman pull`, and
//! the floor (sha256 + gunzip + untar of the same blobs from local files). Interleaved runs,
//! medians, ratios.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::bench::{fill, floor, median, timed, wait_for_socket};
use crate::sys::{build_release, busybox_rootfs, ensure_packages, workspace_root};

const RUNS: usize = 5;
const PUSH_RUNS: usize = 3;

struct Blob {
    digest: String,
    size: usize,
}

fn write_blob(layout: &Path, bytes: &[u8]) -> Result<Blob> {
    let hex = hex::encode(Sha256::digest(bytes));
    std::fs::write(layout.join("blobs/sha256").join(&hex), bytes)?;
    Ok(Blob {
        digest: format!("sha256:{hex}"),
        size: bytes.len(),
    })
}

/// A layer of `files` files of 256 KiB, four fifths incompressible: gzip has work to do and
/// the result stays large.
fn layer(seed: u64, files: usize) -> Result<Vec<u8>> {
    let mut b = tar::Builder::new(Vec::new());
    let mut data = vec![0u8; 256 << 10];
    for i in 0..files {
        let cut = data.len() * 4 / 5;
        fill(&mut data[..cut], seed * 1_000_003 + i as u64);
        let mut h = tar::Header::new_gnu();
        h.set_mode(0o644);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        b.append_data(&mut h, format!("pull{seed}/d{}/f{i}", i % 16), &data[..])?;
    }
    Ok(b.into_inner()?)
}

fn gzip(raw: &[u8]) -> Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(raw)?;
    Ok(e.finish()?)
}

/// An OCI layout with one image: busybox plus five ~75 MB layers, all gzip.
fn make_layout(dir: &Path) -> Result<(PathBuf, Vec<PathBuf>, u64)> {
    let layout = dir.join("src-oci");
    std::fs::create_dir_all(layout.join("blobs/sha256"))?;
    std::fs::write(
        layout.join("oci-layout"),
        r#"{"imageLayoutVersion":"1.0.0"}"#,
    )?;
    let mut raws = vec![std::fs::read(busybox_rootfs(dir)?)?];
    for seed in 1..=5 {
        raws.push(layer(seed, 300)?);
    }
    let (mut diff_ids, mut layers, mut files) = (Vec::new(), Vec::new(), Vec::new());
    let mut total = 0u64;
    for raw in &raws {
        diff_ids.push(format!("sha256:{}", hex::encode(Sha256::digest(raw))));
        let gz = gzip(raw)?;
        let b = write_blob(&layout, &gz)?;
        total += b.size as u64;
        files.push(layout.join("blobs/sha256").join(&b.digest[7..]));
        layers.push(serde_json::json!({
            "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
            "digest": b.digest, "size": b.size,
        }));
    }
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64", "os": "linux", "created": "2026-01-01T00:00:00Z",
        "config": { "Cmd": ["/bin/sh"] },
        "rootfs": { "type": "layers", "diff_ids": diff_ids },
    }))?;
    let c = write_blob(&layout, &config)?;
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": { "mediaType": "application/vnd.oci.image.config.v1+json", "digest": c.digest, "size": c.size },
        "layers": layers,
    }))?;
    let m = write_blob(&layout, &manifest)?;
    std::fs::write(
        layout.join("index.json"),
        serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": m.digest, "size": m.size,
                "annotations": { "org.opencontainers.image.ref.name": "latest" },
            }],
        }))?,
    )?;
    Ok((layout, files, total))
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Debian's docker-registry on 127.0.0.1 with its storage under `dir`.
fn start_registry(dir: &Path) -> Result<(Child, String)> {
    let port = free_port()?;
    let host = format!("127.0.0.1:{port}");
    let cfg = dir.join("registry.yml");
    std::fs::write(
        &cfg,
        format!(
            "version: 0.1\nlog: {{level: warn, accesslog: {{disabled: true}}}}\nstorage:\n  filesystem: {{rootdirectory: {}}}\nhttp:\n  addr: {host}\n",
            dir.join("registry").display()
        ),
    )?;
    let child = Command::new("docker-registry")
        .arg("serve")
        .arg(&cfg)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("registry.log"))?)
        .spawn()
        .context("starting docker-registry")?;
    let t0 = Instant::now();
    while std::net::TcpStream::connect(&host).is_err() {
        if t0.elapsed() > Duration::from_secs(10) {
            bail!("docker-registry did not start");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok((child, host))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn run() -> Result<()> {
    ensure_packages(&[
        "podman",
        "skopeo",
        "docker-registry",
        "busybox-static",
        "pigz",
        "tar",
        "coreutils",
    ])?;
    let berth = build_release()?;
    let dir = workspace_root().join("target/bench-pull");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let (layout, blob_files, total) = make_layout(&dir)?;
    println!(
        "image: {:.0} MB of gzip layers (6 layers)",
        total as f64 / 1e6
    );
    let (mut registry, host) = start_registry(&dir)?;
    let socket = dir.join("berth.sock");
    let h = format!("unix://{}", socket.display());
    let mut daemon = Command::new(&berth)
        .args(["daemon", "--bridge", "none", "--data-root"])
        .arg(dir.join("berth-data"))
        .args(["-H", &h])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("daemon.log"))?)
        .spawn()
        .context("starting the berth daemon")?;
    let result = (|| -> Result<()> {
        wait_for_socket(&socket, "berth daemon")?;
        let src = format!("{host}/bench/pull:latest");
        timed(
            Command::new("skopeo")
                .args(["copy", "--dest-tls-verify=false"])
                .arg(format!("oci:{}:latest", layout.display()))
                .arg(format!("docker://{src}")),
        )?;
        let bcmd = |args: &[&str]| {
            let mut c = Command::new(&berth);
            c.args(["-H", &h]).args(args);
            c
        };
        let (mut b, mut s, mut p, mut f) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for i in 0..RUNS {
            let _ = bcmd(&["rmi", &src]).output();
            b.push(timed(&mut bcmd(&["pull", "-q", &src]))?);

            let oci = dir.join("skopeo-oci");
            let _ = std::fs::remove_dir_all(&oci);
            s.push(timed(
                Command::new("skopeo")
                    .args(["copy", "--src-tls-verify=false"])
                    .arg(format!("docker://{src}"))
                    .arg(format!("oci:{}:latest", oci.display())),
            )?);

            let proot = dir.join("podman-root");
            let _ = Command::new("podman")
                .arg("--root")
                .arg(&proot)
                .arg("--runroot")
                .arg(dir.join("podman-run"))
                .args(["system", "reset", "-f"])
                .output();
            let _ = std::fs::remove_dir_all(&proot);
            p.push(timed(
                Command::new("podman")
                    .arg("--root")
                    .arg(&proot)
                    .arg("--runroot")
                    .arg(dir.join("podman-run"))
                    .args([
                        "--storage-driver",
                        "overlay",
                        "pull",
                        "-q",
                        "--tls-verify=false",
                    ])
                    .arg(&src),
            )?);

            f.push(floor(
                &dir.join("floor"),
                &blob_files,
                "pigz -dc {l} | tar -x",
            )?);
            eprintln!(
                "pull run {}/{RUNS}: berth {:?}, skopeo {:?}, podman {:?}, floor {:?}",
                i + 1,
                b[i],
                s[i],
                p[i],
                f[i]
            );
        }
        // Push: to an empty registry each time, so every blob is uploaded (no mounts, no
        // existence hits, for either tool).
        let (mut bp, mut sp) = (Vec::new(), Vec::new());
        let fresh = |n: &str| -> Result<(Child, String, PathBuf)> {
            let d = dir.join(n);
            let _ = std::fs::remove_dir_all(&d);
            std::fs::create_dir_all(&d)?;
            let (c, host) = start_registry(&d)?;
            Ok((c, host, d))
        };
        for i in 0..PUSH_RUNS {
            let (mut reg, host2, d2) = fresh("push-registry")?;
            let dst = format!("{host2}/bench/push:latest");
            let _ = bcmd(&["tag", &src, &dst]).output();
            let t = timed(&mut bcmd(&["push", "-q", &dst]));
            let _ = bcmd(&["rmi", &dst]).output();
            let _ = reg.kill();
            let _ = reg.wait();
            let _ = std::fs::remove_dir_all(&d2);
            bp.push(t?);
            let (mut reg, host2, d2) = fresh("push-registry")?;
            let t = timed(
                Command::new("skopeo")
                    .args(["copy", "--dest-tls-verify=false"])
                    .arg(format!("oci:{}:latest", layout.display()))
                    .arg(format!("docker://{host2}/bench/push:latest")),
            );
            let _ = reg.kill();
            let _ = reg.wait();
            let _ = std::fs::remove_dir_all(&d2);
            sp.push(t?);
            eprintln!(
                "push run {}/{PUSH_RUNS}: berth {:?}, skopeo {:?}",
                i + 1,
                bp[i],
                sp[i]
            );
        }
        let (mb, ms_, mp, mf) = (median(b), median(s), median(p), median(f));
        let (mbp, msp) = (median(bp), median(sp));
        println!(
            "\nbench pull: {:.0} MB, 6 gzip layers from docker-registry on 127.0.0.1 (median of {RUNS})",
            total as f64 / 1e6
        );
        println!("  berth pull                 {:>8.1} ms", ms(mb));
        println!("  skopeo copy docker:// oci: {:>8.1} ms", ms(ms_));
        println!("  podman pull                {:>8.1} ms", ms(mp));
        println!(
            "  sha256sum + pigz -d | tar  {:>8.1} ms (floor, local files)",
            ms(mf)
        );
        println!(
            "  podman / berth = {:.2}x faster (goal >= 2x)",
            ms(mp) / ms(mb)
        );
        println!("  skopeo / berth = {:.2}x faster", ms(ms_) / ms(mb));
        println!("  berth / floor  = {:.2}x (goal <= 1.25x)", ms(mb) / ms(mf));
        println!("\nbench push: same image to an empty registry (median of {PUSH_RUNS})");
        println!("  berth push                 {:>8.1} ms", ms(mbp));
        println!("  skopeo copy oci: docker:// {:>8.1} ms", ms(msp));
        println!("  skopeo / berth = {:.2}x faster", ms(msp) / ms(mbp));
        Ok(())
    })();
    let _ = Command::new("kill").arg(daemon.id().to_string()).status();
    let _ = daemon.wait();
    let _ = registry.kill();
    let _ = registry.wait();
    let _ = std::fs::remove_dir_all(dir.join("podman-root"));
    let _ = std::fs::remove_dir_all(dir.join("registry"));
    result
}
