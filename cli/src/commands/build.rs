//! `build` (the context as a tar, Docker's classic protocol), `commit`, `builder prune`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::Args;
use hyper::Method;

use crate::client::{print_json_stream, Client, Payload};

#[derive(Args, Debug)]
pub struct BuildArgs {
    /// Name and optionally a tag in the 'name:tag' format
    #[arg(short = 't', long = "tag")]
    pub tags: Vec<String>,
    /// Name of the Dockerfile (default: 'PATH/Dockerfile')
    #[arg(short = 'f', long = "file")]
    pub file: Option<PathBuf>,
    /// Set build-time variables
    #[arg(long = "build-arg")]
    pub build_args: Vec<String>,
    /// Set metadata for an image
    #[arg(long = "label")]
    pub labels: Vec<String>,
    /// Do not use cache when building the image
    #[arg(long)]
    pub no_cache: bool,
    /// Always attempt to pull a newer version of the image
    #[arg(long)]
    pub pull: bool,
    /// Suppress the build output and print image ID on success
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the image ID to the file
    #[arg(long)]
    pub iidfile: Option<PathBuf>,
    /// Set the target build stage to build
    #[arg(long)]
    pub target: Option<String>,
    /// Set the networking mode for the RUN instructions during build
    #[arg(long)]
    pub network: Option<String>,
    /// Remove intermediate containers after a successful build
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub rm: bool,
    /// Always remove intermediate containers
    #[arg(long)]
    pub force_rm: bool,
    /// Build context directory
    pub path: PathBuf,
}

/// `K=V` pairs; a bare `K` takes its value from our environment, as the docker CLI does.
fn pairs(items: &[String], from_env: bool) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for i in items {
        match i.split_once('=') {
            Some((k, v)) => {
                out.insert(k.to_owned(), v.to_owned());
            }
            None if from_env => {
                if let Ok(v) = std::env::var(i) {
                    out.insert(i.clone(), v);
                }
            }
            None => {
                out.insert(i.clone(), String::new());
            }
        }
    }
    Ok(out)
}

pub async fn build(c: &Client, a: BuildArgs) -> Result<()> {
    if a.path.as_os_str() == "-" {
        bail!("building from STDIN is not supported yet: give a context directory");
    }
    if !a.path.is_dir() {
        bail!(
            "unable to prepare context: path {:?} not found",
            a.path.display().to_string()
        );
    }
    let (dir, file) = (a.path.clone(), a.file.clone());
    let (tar, dockerfile) = tokio::task::spawn_blocking(move || -> Result<(Vec<u8>, String)> {
        let mut buf = Vec::new();
        let name = crate::context::context_tar(&dir, file.as_deref(), &mut buf)?;
        Ok((buf, name))
    })
    .await??;
    let mut q = form_urlencoded::Serializer::new(String::new());
    for t in &a.tags {
        q.append_pair("t", t);
    }
    q.append_pair("dockerfile", &dockerfile);
    q.append_pair(
        "buildargs",
        &serde_json::to_string(&pairs(&a.build_args, true)?)?,
    );
    q.append_pair("labels", &serde_json::to_string(&pairs(&a.labels, false)?)?);
    for (k, on) in [
        ("nocache", a.no_cache),
        ("pull", a.pull),
        ("q", a.quiet),
        ("rm", a.rm),
        ("forcerm", a.force_rm),
    ] {
        q.append_pair(k, if on { "1" } else { "0" });
    }
    if let Some(t) = &a.target {
        q.append_pair("target", t);
    }
    if let Some(n) = &a.network {
        q.append_pair("networkmode", n);
    }
    let resp = c
        .request(
            Method::POST,
            &format!("/build?{}", q.finish()),
            Payload::Reader(Box::new(std::io::Cursor::new(tar)), "application/x-tar"),
        )
        .await?;
    let mut id = String::new();
    let quiet = a.quiet;
    print_json_stream(resp, |v| {
        if let Some(s) = v["stream"].as_str() {
            if !quiet {
                print!("{s}");
            }
        } else if let Some(s) = v["status"].as_str() {
            if !quiet {
                println!("{s}");
            }
        }
        if let Some(i) = v["aux"]["ID"].as_str() {
            id = i.to_owned();
        }
    })
    .await?;
    if id.is_empty() {
        bail!("the daemon did not report the built image's ID");
    }
    if quiet {
        println!("{id}");
    }
    if let Some(f) = &a.iidfile {
        std::fs::write(f, &id).with_context(|| format!("writing {}", f.display()))?;
    }
    Ok(())
}

#[derive(Args, Debug)]
pub struct CommitArgs {
    /// Author (e.g., "John Hannibal Smith <hannibal@a-team.com>")
    #[arg(short, long)]
    pub author: Option<String>,
    /// Apply Dockerfile instruction to the created image
    #[arg(short, long = "change")]
    pub changes: Vec<String>,
    /// Commit message
    #[arg(short, long)]
    pub message: Option<String>,
    /// Pause container during commit
    #[arg(short, long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub pause: bool,
    pub container: String,
    /// REPOSITORY[:TAG]
    pub repository: Option<String>,
}

pub async fn commit(c: &Client, a: CommitArgs) -> Result<()> {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("container", &a.container);
    if let Some(r) = &a.repository {
        let (repo, tag) = super::images::split_repo_tag(r);
        q.append_pair("repo", repo);
        if !tag.is_empty() {
            q.append_pair("tag", tag);
        }
    }
    for ch in &a.changes {
        q.append_pair("changes", ch);
    }
    q.append_pair("comment", a.message.as_deref().unwrap_or(""));
    q.append_pair("author", a.author.as_deref().unwrap_or(""));
    q.append_pair("pause", if a.pause { "1" } else { "0" });
    let v = c
        .json(
            Method::POST,
            &format!("/commit?{}", q.finish()),
            Payload::None,
        )
        .await?;
    println!("{}", v["Id"].as_str().unwrap_or(""));
    Ok(())
}

pub async fn builder_prune(c: &Client) -> Result<()> {
    let v = c.json(Method::POST, "/build/prune", Payload::None).await?;
    println!(
        "Total reclaimed space: {}",
        crate::format::human_size(v["SpaceReclaimed"].as_u64().unwrap_or(0))
    );
    Ok(())
}
