//! `cargo xtask bench build`: the seed-shaped 7-step Dockerfile on a busybox base, cold
//! (`--no-cache`) and fully cached, and `commit` of a container that wrote 1 MiB: berth vs
//! podman (buildah) in the same run, interleaved, medians and ratios.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result};

use crate::bench::{configure_podman, median, timed, wait_for_socket};
use crate::sys::{build_release, busybox_rootfs, ensure_packages, workspace_root};

const RUNS: usize = 7;

fn context(dir: &Path, base: &str) -> Result<()> {
    std::fs::create_dir_all(dir.join("src"))?;
    std::fs::write(
        dir.join("Dockerfile"),
        format!(
            "FROM {base}\nWORKDIR /app\nADD . /app\nENV NAME World\nRUN echo built > /app/built.txt\nEXPOSE 80\nCMD [\"sh\", \"-c\", \"cat /app/built.txt\"]\n"
        ),
    )?;
    std::fs::write(dir.join("hello.txt"), "hello\n")?;
    let numbers: String = (0..2000).map(|i| format!("{i}\n")).collect();
    std::fs::write(dir.join("src/numbers.txt"), numbers)?;
    std::fs::write(dir.join("src/blob.txt"), "x".repeat(5500))?;
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

pub fn run() -> Result<()> {
    ensure_packages(&["podman", "runc", "busybox-static", "util-linux"])?;
    configure_podman()?;
    let berth = build_release()?;
    let dir = workspace_root().join("target/bench-build");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let rootfs = busybox_rootfs(&dir)?;
    let (bctx, pctx) = (dir.join("ctx-berth"), dir.join("ctx-podman"));
    context(&bctx, "busybox")?;
    context(&pctx, "localhost/busybox")?;
    let sock = dir.join("berth.sock");
    let h = format!("unix://{}", sock.display());
    let mut daemon = Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "--fork",
            "--kill-child=SIGKILL",
            "--",
        ])
        .arg(&berth)
        .args(["daemon", "--bridge", "none", "--data-root"])
        .arg(dir.join("berth-data"))
        .args(["-H", &h])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("daemon.log"))?)
        .spawn()
        .context("starting the berth daemon")?;
    let podman = |args: &[&str]| {
        let mut c = Command::new("podman");
        c.arg("--root")
            .arg(dir.join("podman-root"))
            .arg("--runroot")
            .arg(dir.join("podman-run"))
            .args(["--storage-driver", "overlay"]);
        match args.split_first() {
            // RUN steps without a network, as berth's (its daemon runs with --bridge none);
            // podman would otherwise set up netavark rules in the host's namespace
            Some((&"build", rest)) => c.args(["build", "--network", "none"]).args(rest),
            _ => c.args(args),
        };
        c
    };
    let result = (|| -> Result<()> {
        wait_for_socket(&sock, "berth daemon")?;
        let b = |args: &[&str]| {
            let mut c = Command::new(&berth);
            c.args(["-H", &h]).args(args);
            c
        };
        let rootfs = rootfs.to_str().unwrap_or_default();
        timed(&mut b(&["import", rootfs, "busybox"]))?;
        timed(&mut podman(&["import", rootfs, "localhost/busybox"]))?;
        let (bc, pc) = (
            bctx.to_str().unwrap_or_default(),
            pctx.to_str().unwrap_or_default(),
        );
        // warm both (first builds pay one-off costs)
        timed(&mut b(&["build", "-q", "-t", "seed", bc]))?;
        timed(&mut podman(&["build", "-q", "--layers", "-t", "seed", pc]))?;
        let (mut bcold, mut pcold, mut bhot, mut phot) = (vec![], vec![], vec![], vec![]);
        let (mut bcommit, mut pcommit) = (vec![], vec![]);
        for i in 0..RUNS {
            bcold.push(timed(&mut b(&[
                "build",
                "-q",
                "--no-cache",
                "-t",
                "seed",
                bc,
            ]))?);
            pcold.push(timed(&mut podman(&[
                "build",
                "-q",
                "--layers",
                "--no-cache",
                "-t",
                "seed",
                pc,
            ]))?);
            bhot.push(timed(&mut b(&["build", "-q", "-t", "seed", bc]))?);
            phot.push(timed(&mut podman(&[
                "build", "-q", "--layers", "-t", "seed", pc,
            ]))?);
            let write = "head -c 1048576 /dev/urandom > /data; sleep 600";
            let name = format!("c{i}");
            timed(&mut b(&[
                "run", "-d", "--name", &name, "busybox", "sh", "-c", write,
            ]))?;
            timed(&mut podman(&[
                "run",
                "-d",
                "--net",
                "none",
                "--name",
                &name,
                "localhost/busybox",
                "sh",
                "-c",
                write,
            ]))?;
            std::thread::sleep(Duration::from_millis(300));
            bcommit.push(timed(&mut b(&["commit", &name, &format!("snap:{i}")]))?);
            pcommit.push(timed(&mut podman(&[
                "commit",
                "-q",
                "--pause=false",
                &name,
                &format!("snap:{i}"),
            ]))?);
            let _ = b(&["rm", "-f", &name]).output();
            let _ = podman(&["rm", "-f", "-t", "0", &name]).output();
            println!(
                "run {}/{RUNS}: cold berth {:.0} ms podman {:.0} ms; cached berth {:.1} ms podman {:.0} ms; commit berth {:.1} ms podman {:.0} ms",
                i + 1,
                ms(bcold[i]),
                ms(pcold[i]),
                ms(bhot[i]),
                ms(phot[i]),
                ms(bcommit[i]),
                ms(pcommit[i])
            );
        }
        let row = |what: &str, b: Vec<Duration>, p: Vec<Duration>, goal: &str| {
            let (b, p) = (median(b), median(p));
            println!(
                "  {what:<22} berth {:>8.1} ms   podman {:>8.1} ms   podman/berth = {:.1}x ({goal})",
                ms(b),
                ms(p),
                p.as_secs_f64() / b.as_secs_f64()
            );
        };
        println!("build bench, medians of {RUNS} (7-step seed-shaped Dockerfile, busybox base):");
        row("cold (--no-cache)", bcold, pcold, "goal >= 3x");
        row("fully cached", bhot, phot, "goal >= 10x and berth <= 50 ms");
        row("commit (1 MiB diff)", bcommit, pcommit, "");
        Ok(())
    })();
    let _ = podman(&["rm", "-a", "-f", "-t", "0"]).output();
    let _ = podman(&["system", "reset", "-f"]).output();
    let _ = daemon.kill();
    let _ = daemon.wait();
    result
}
