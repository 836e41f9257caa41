//! `cp`: copy files and directories between a container and the local filesystem, or stream
//! a tar (`-`), through `/containers/{id}/archive`. The daemon stats, tars and extracts
//! paths in the container; which directory to extract into and how the top entry is named
//! is worked out here from both ends' stats, as the docker CLI does (see `crate::copy`).

use std::io::IsTerminal;

use anyhow::{bail, Context, Result};
use clap::Args;
use engine::api::archive::{PathStat, STAT_HEADER};
use futures_util::StreamExt;
use http_body_util::BodyStream;
use hyper::{Method, StatusCode};
use tokio::io::AsyncWriteExt;

use crate::client::{Client, Payload};
use crate::copy::{self, CopyInfo, Rebase};
use crate::format::human_size;

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information)
    #[arg(short, long)]
    archive: bool,
    /// Always follow symbol link in SRC_PATH
    #[arg(short = 'L', long)]
    follow_link: bool,
    /// Suppress progress output during copy (automatic when stderr is not a terminal)
    #[arg(short, long)]
    quiet: bool,
    /// CONTAINER:SRC_PATH, a local SRC_PATH, or - (a tar on stdin)
    #[arg(allow_hyphen_values = true)]
    source: String,
    /// CONTAINER:DEST_PATH, a local DEST_PATH, or - (a tar on stdout)
    #[arg(allow_hyphen_values = true)]
    destination: String,
}

/// One copy, its ends split.
struct Job<'a> {
    container: &'a str,
    src: &'a str,
    dst: &'a str,
    a: &'a CpArgs,
}

pub async fn cp(c: &Client, a: CpArgs) -> Result<()> {
    if a.source.is_empty() {
        bail!("source can not be empty");
    }
    if a.destination.is_empty() {
        bail!("destination can not be empty");
    }
    let (src_c, src) = copy::split_cp_arg(&a.source);
    let (dst_c, dst) = copy::split_cp_arg(&a.destination);
    match (src_c, dst_c) {
        (Some(container), None) => {
            from_container(
                c,
                Job {
                    container,
                    src,
                    dst,
                    a: &a,
                },
            )
            .await
        }
        (None, Some(container)) => {
            to_container(
                c,
                Job {
                    container,
                    src,
                    dst,
                    a: &a,
                },
            )
            .await
        }
        (Some(_), Some(_)) => bail!("copying between containers is not supported"),
        (None, None) => bail!("must specify at least one container source"),
    }
}

fn archive_path(container: &str, path: &str, extra: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("path", path);
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    format!("/containers/{container}/archive?{}", q.finish())
}

/// `HEAD` the path: its stat, or the daemon's error.
async fn stat(c: &Client, container: &str, path: &str) -> Result<PathStat> {
    let resp = c
        .request(
            Method::HEAD,
            &archive_path(container, path, &[]),
            Payload::None,
        )
        .await?;
    match resp.status() {
        s if s.is_success() => {}
        StatusCode::NOT_FOUND => {
            // a HEAD reply has no body: tell a missing container from a missing path
            c.json(
                Method::GET,
                &format!("/containers/{container}/json"),
                Payload::None,
            )
            .await?;
            bail!("Could not find the file {path} in container {container}");
        }
        s => bail!("the daemon answered {s} to a stat of {container}:{path}"),
    }
    stat_of(&resp)
}

fn stat_of<B>(resp: &hyper::Response<B>) -> Result<PathStat> {
    resp.headers()
        .get(STAT_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(PathStat::from_header)
        .context("the daemon sent no usable path stat")
}

fn progress(a: &CpArgs, bytes: u64, to: &str) {
    if !a.quiet && std::io::stderr().is_terminal() {
        eprintln!("Successfully copied {} to {to}", human_size(bytes));
    }
}

async fn from_container(c: &Client, j: Job<'_>) -> Result<()> {
    let dst = if j.dst == "-" {
        "-".to_owned()
    } else {
        let d = copy::resolve_local_path(j.dst)?;
        copy::validate_output_path(&d)?;
        d
    };
    let mut src = j.src.to_owned();
    let mut rebase_name = String::new();
    if j.a.follow_link {
        if let Ok(st) = stat(c, j.container, &src).await {
            if st.is_symlink() {
                let mut target = st.link_target.clone();
                if !target.starts_with('/') {
                    let parent = copy::split_path_dir_entry(&src).0;
                    target = copy::clean(&format!("{parent}/{target}"));
                }
                (src, rebase_name) = copy::rebase_name(&src, &target);
            }
        }
    }
    let resp = Client::ok(
        c.request(
            Method::GET,
            &archive_path(j.container, &src, &[]),
            Payload::None,
        )
        .await?,
    )
    .await?;
    let st = stat_of(&resp)?;
    let mut body = BodyStream::new(resp.into_body());
    if dst == "-" {
        let mut out = tokio::io::stdout();
        while let Some(frame) = body.next().await {
            if let Ok(data) = frame
                .context("the daemon stopped sending the archive")?
                .into_data()
            {
                out.write_all(&data).await?;
            }
        }
        return Ok(out.flush().await?);
    }
    let src_info = CopyInfo {
        path: src.clone(),
        exists: true,
        is_dir: st.is_dir(),
        rebase_name: rebase_name.clone(),
    };
    let dst_info = copy::destination_info(&dst)?;
    let mut rebases: Vec<Rebase> = Vec::new();
    if !rebase_name.is_empty() {
        rebases.push((copy::split_path_dir_entry(&src).1, rebase_name));
    }
    let (dir, r) = copy::prepare_archive_copy(&src_info, &dst_info)?;
    rebases.extend(r);
    let stream = body.map(|f| match f {
        Ok(f) => Ok(f.into_data().unwrap_or_default()),
        Err(e) => Err(std::io::Error::other(e)),
    });
    let reader = tokio_util::io::SyncIoBridge::new(tokio_util::io::StreamReader::new(stream));
    let bytes = tokio::task::spawn_blocking(move || {
        copy::extract(reader, std::path::Path::new(&dir), &rebases)
    })
    .await??;
    progress(j.a, bytes, j.dst);
    Ok(())
}

async fn to_container(c: &Client, j: Job<'_>) -> Result<()> {
    let src = if j.src == "-" {
        "-".to_owned()
    } else {
        copy::resolve_local_path(j.src)?
    };
    let shown = format!("{}:{}", j.container, j.dst);
    // What the destination is; a missing one is fine when its parent exists (the daemon
    // then says so if not).
    let mut dst_info = CopyInfo {
        path: j.dst.to_owned(),
        ..Default::default()
    };
    let mut st = stat(c, j.container, j.dst).await;
    if let Ok(s) = &st {
        if s.is_symlink() {
            let mut target = s.link_target.clone();
            if !target.starts_with('/') {
                let parent = copy::split_path_dir_entry(j.dst).0;
                target = copy::clean(&format!("{parent}/{target}"));
            }
            dst_info.path = target.clone();
            st = stat(c, j.container, &target).await;
        }
    }
    if let Err(e) = &st {
        // only "not there" lets the copy go on: a missing container ends it here
        if !e.to_string().starts_with("Could not find the file") {
            return Err(anyhow::anyhow!("{e:#}"));
        }
    }
    if let Ok(s) = &st {
        if !s.is_dir() && !s.is_regular() {
            let what = if s.mode & engine::api::archive::go_mode::DEVICE != 0 {
                "got a device"
            } else {
                "got an irregular file"
            };
            bail!("destination \"{shown}\" must be a directory or a regular file: {what}");
        }
        dst_info.exists = true;
        dst_info.is_dir = s.is_dir();
    }
    let query = [
        ("noOverwriteDirNonDir", "true"),
        ("copyUIDGID", if j.a.archive { "true" } else { "false" }),
    ];
    if src == "-" {
        if !dst_info.is_dir {
            bail!("destination \"{shown}\" must be a directory");
        }
        let resp = c
            .request(
                Method::PUT,
                &archive_path(j.container, &dst_info.path, &query),
                Payload::Reader(Box::new(tokio::io::stdin()), "application/x-tar"),
            )
            .await?;
        Client::ok(resp).await?;
        return Ok(());
    }
    let src_info = copy::source_info(&src, j.a.follow_link)?;
    let (dir, r) = copy::prepare_archive_copy(&src_info, &dst_info)?;
    let mut top = copy::split_path_dir_entry(&src_info.path).1;
    if !src_info.rebase_name.is_empty() {
        top = src_info.rebase_name.clone();
    }
    if let Some(r) = &r {
        top = copy::rebase(&top, r);
    }
    let (rx, tx) = tokio::io::duplex(256 << 10);
    let writer = tokio_util::io::SyncIoBridge::new(tx);
    let path = src_info.path.clone();
    let producer = tokio::task::spawn_blocking(move || {
        let mut counted = Counted {
            inner: writer,
            bytes: 0,
        };
        copy::write_tar(std::path::Path::new(&path), &top, &mut counted)
            .map_err(|e| copy::os_error("archive", &path, &e))?;
        drop(counted.inner);
        Ok::<u64, anyhow::Error>(counted.bytes)
    });
    let resp = c
        .request(
            Method::PUT,
            &archive_path(j.container, &dir, &query),
            Payload::Reader(Box::new(rx), "application/x-tar"),
        )
        .await?;
    if !resp.status().is_success() && producer.is_finished() {
        // a local read error cut the archive short: that, not what the daemon made of it
        producer.await??;
        Client::ok(resp).await?;
        return Ok(());
    }
    // a refusal says more than the broken pipe the archive then meets
    let resp = Client::ok(resp).await?;
    let bytes = producer.await??;
    drop(resp);
    progress(j.a, bytes, &shown);
    Ok(())
}

/// A writer that counts what goes through.
struct Counted<W> {
    inner: W,
    bytes: u64,
}

impl<W: std::io::Write> std::io::Write for Counted<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
