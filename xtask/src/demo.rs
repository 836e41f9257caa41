//! `cargo xtask demo`: berth's main job, end to end, on a scratch daemon.
//!
//! Today (the foundation issue): build, start the daemon, make a busybox base image from
//! Debian's busybox-static, list it, save and load it, check the store, stop the daemon.
//! Each step is printed as a user would type it and its result is checked.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::sys::{build_release, busybox_rootfs, output, workspace_root};

struct Daemon {
    child: Child,
    socket: PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM via kill(1): xtask stays free of libc bindings.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.socket.exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn step(berth: &Path, host: &str, args: &[&str]) -> Result<String> {
    let shown: Vec<String> = args
        .iter()
        .map(|a| {
            if a.contains([' ', '"']) {
                format!("'{a}'")
            } else {
                (*a).to_owned()
            }
        })
        .collect();
    println!("\n$ berth {}", shown.join(" "));
    let out = output(Command::new(berth).arg("-H").arg(host).args(args))?;
    print!("{out}");
    Ok(out)
}

pub fn run() -> Result<()> {
    let berth = build_release()?;
    let dir = workspace_root().join("target/demo");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let socket = dir.join("berth.sock");
    let host = format!("unix://{}", socket.display());
    let rootfs = busybox_rootfs(&dir)?;

    println!(
        "$ berth daemon --data-root {} -H {host} &",
        dir.join("data").display()
    );
    let log = std::fs::File::create(dir.join("daemon.log"))?;
    let child = Command::new(&berth)
        .args(["daemon", "--bridge", "none", "--data-root"])
        .arg(dir.join("data"))
        .args(["-H", &host])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting the daemon")?;
    let started = Instant::now();
    let _daemon = Daemon {
        child,
        socket: socket.clone(),
    };
    while std::os::unix::net::UnixStream::connect(&socket).is_err() {
        if started.elapsed() > Duration::from_secs(10) {
            bail!(
                "daemon did not start; see {}",
                dir.join("daemon.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("(daemon up in {} ms)", started.elapsed().as_millis());

    step(&berth, &host, &["version"])?;
    let id = step(
        &berth,
        &host,
        &[
            "import",
            "-c",
            "CMD [\"/bin/sh\"]",
            "-c",
            "ENV PATH=/bin",
            &rootfs.display().to_string(),
            "busybox",
        ],
    )?;
    let images = step(&berth, &host, &["images"])?;
    if !images.contains("busybox") || !images.contains(&id.trim()[7..19]) {
        bail!("busybox is not listed after import");
    }
    let archive = dir.join("busybox.tar").display().to_string();
    step(&berth, &host, &["save", "-o", &archive, "busybox"])?;
    step(&berth, &host, &["rmi", "busybox"])?;
    let loaded = step(&berth, &host, &["load", "-i", &archive])?;
    if loaded.trim() != "Loaded image: busybox:latest" {
        bail!("load did not restore busybox:latest");
    }
    let after = step(&berth, &host, &["images"])?;
    if !after.contains(&id.trim()[7..19]) {
        bail!("the loaded image has another ID than the saved one");
    }
    step(&berth, &host, &["system", "df"])?;
    step(&berth, &host, &["system", "check"])?;
    println!("\ndemo: all steps passed");
    Ok(())
}
