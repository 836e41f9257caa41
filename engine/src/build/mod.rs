//! `POST /build`: Docker's classic builder over the `builder` crate's parse, and `commit`.
//!
//! Each step makes an image: config-only steps write a new config, RUN runs a container on
//! the parent's layers and stores its upper directory as a layer, ADD/COPY write into an
//! overlay of the parent and store the upper directory the same way. Every step image is
//! pinned in the store under its cache key — the parent image, the step's history line
//! (with the content hash of ADD/COPY sources and the build args a RUN sees) and the
//! resulting config — so a rebuild that changes nothing runs nothing, and the first miss
//! makes every later step of the stage run.

pub mod commit;
pub mod files;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use builder::config::{self as cfg, StageState};
use builder::dockerfile::{Command, Copy, Instruction, Source};
use builder::resolve::{Base, ResolvedStage, Vars};
use image_store::{Digest, NewLayer, Reference};
use oci_spec::image::MediaType;
use serde_json::{json, Value};
use tokio::io::AsyncReadExt;

use crate::containers::{Container, RunState};
use crate::daemon::Daemon;
use crate::error::ApiError;
use crate::http::{strings, Query};
use crate::monitor::{self, AttachRequest};
use crate::registry::{AuthConfig, Lines};

/// The query of `POST /build`, as the docker CLI sends it.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub dockerfile: String,
    pub tags: Vec<Reference>,
    pub build_args: BTreeMap<String, String>,
    pub labels: BTreeMap<String, String>,
    pub no_cache: bool,
    pub pull: bool,
    pub rm: bool,
    pub force_rm: bool,
    pub quiet: bool,
    pub target: Option<String>,
    pub network_mode: String,
    /// `X-Registry-Config`: credentials per registry for pulling bases.
    pub auths: HashMap<String, Value>,
}

fn json_map(q: &Query, key: &str) -> Result<BTreeMap<String, String>, ApiError> {
    match q.get(key).filter(|s| !s.is_empty()) {
        None => Ok(BTreeMap::new()),
        Some(s) => {
            let v: BTreeMap<String, Option<String>> = serde_json::from_str(s)
                .map_err(|e| ApiError::bad_request(format!("invalid {key}: {e}")))?;
            // a null value means "take it from the client's environment": nothing here
            Ok(v.into_iter()
                .filter_map(|(k, v)| v.map(|v| (k, v)))
                .collect())
        }
    }
}

impl Options {
    pub fn from_query(q: &Query, registry_config: &str) -> Result<Self, ApiError> {
        let mut tags = Vec::new();
        for t in q.all("t") {
            let bad = |e: image_store::StoreError| {
                ApiError::bad_request(format!("invalid reference format: {t:?}: {e}"))
            };
            let r = Reference::parse_named(&t).map_err(bad)?;
            let r = if r.tag().is_none() && r.digest().is_none() {
                r.with_tag("latest").map_err(bad)?
            } else {
                r
            };
            tags.push(r);
        }
        let auths = if registry_config.is_empty() {
            HashMap::new()
        } else {
            use base64::Engine as _;
            let bytes = base64::engine::general_purpose::URL_SAFE
                .decode(registry_config)
                .or_else(|_| base64::engine::general_purpose::STANDARD.decode(registry_config))
                .map_err(|e| ApiError::bad_request(format!("invalid X-Registry-Config: {e}")))?;
            serde_json::from_slice(&bytes).unwrap_or_default()
        };
        let flag = |k: &str, default: bool| match q.get(k) {
            None | Some("") => default,
            Some(v) => matches!(v, "1" | "true" | "True"),
        };
        Ok(Self {
            dockerfile: q
                .get("dockerfile")
                .filter(|s| !s.is_empty())
                .unwrap_or("Dockerfile")
                .to_owned(),
            tags,
            build_args: json_map(q, "buildargs")?,
            labels: json_map(q, "labels")?,
            no_cache: flag("nocache", false),
            pull: flag("pull", false),
            rm: flag("rm", true),
            force_rm: flag("forcerm", false),
            quiet: flag("q", false),
            target: q.get("target").filter(|s| !s.is_empty()).map(str::to_owned),
            network_mode: q
                .get("networkmode")
                .filter(|s| !s.is_empty())
                .unwrap_or("default")
                .to_owned(),
            auths,
        })
    }
}

/// An image as a build step sees it.
#[derive(Debug, Clone)]
pub struct Img {
    /// The whole image config, as JSON.
    pub config: Value,
    pub layers: Vec<(Digest, u64, MediaType)>,
    pub chains: Vec<Digest>,
    /// Config digest; `None` for `scratch` before any step.
    pub id: Option<Digest>,
    pub manifest: Option<(Digest, MediaType)>,
}

impl Img {
    pub fn scratch() -> Result<Self, ApiError> {
        Ok(Self {
            config: image_store::diff::empty_config()?,
            layers: Vec::new(),
            chains: Vec::new(),
            id: None,
            manifest: None,
        })
    }

    pub fn of_record(d: &Daemon, rec: &image_store::ImageRecord) -> Result<Self, ApiError> {
        let config: Value = serde_json::from_slice(&d.store.config_bytes(&rec.id)?)?;
        let layers = rec
            .layers
            .iter()
            .map(|l| {
                Ok((
                    Digest::parse(l.digest().as_ref())?,
                    l.size(),
                    l.media_type().clone(),
                ))
            })
            .collect::<Result<Vec<_>, image_store::StoreError>>()?;
        Ok(Self {
            config,
            layers,
            chains: rec.chain_ids.clone(),
            id: Some(rec.id.clone()),
            manifest: Some((rec.manifest.clone(), rec.manifest_media_type.clone())),
        })
    }

    fn short_id(&self) -> String {
        self.id
            .as_ref()
            .map_or_else(|| "scratch".to_owned(), |d| d.short().to_owned())
    }

    /// Append a history entry (and the layer, if any), then store config and manifest.
    pub fn commit(
        &mut self,
        d: &Daemon,
        created_by: &str,
        layer: Option<NewLayer>,
        extra: impl FnOnce(&mut Value),
    ) -> Result<(), ApiError> {
        let now = image_store::import::go_rfc3339_nano(chrono::Utc::now());
        self.config["created"] = json!(now);
        let mut h = cfg::history_entry(&now, created_by, layer.is_none());
        extra(&mut h);
        match self.config["history"].as_array_mut() {
            Some(a) => a.push(h),
            None => self.config["history"] = json!([h]),
        }
        if let Some(l) = layer {
            if !self.config["rootfs"]["diff_ids"].is_array() {
                self.config["rootfs"] = json!({"type": "layers", "diff_ids": []});
            }
            if let Some(a) = self.config["rootfs"]["diff_ids"].as_array_mut() {
                a.push(json!(l.diff_id.as_str()));
            }
            self.layers.push((l.blob, l.blob_size, l.media_type));
            self.chains.push(l.chain_id);
        }
        let bytes = serde_json::to_vec(&self.config)
            .map_err(|e| ApiError::internal(format!("encoding the image config: {e}")))?;
        let manifest = d.store.write_image(&bytes, &self.layers)?;
        self.id = Some(Digest::of_bytes(&bytes));
        self.manifest = Some((manifest, MediaType::ImageManifest));
        Ok(())
    }
}

/// The cache key of a step: parent, history line, and the config it leaves.
fn cache_key(parent: &Img, created_by: &str, config: &Value) -> Digest {
    let parent = parent
        .id
        .as_ref()
        .map_or_else(|| "scratch".to_owned(), |d| d.to_string());
    Digest::of_bytes(
        format!(
            "berth-build-v1\n{parent}\n{created_by}\n{}\n{}",
            config["config"], config["author"]
        )
        .as_bytes(),
    )
}

/// The text Docker prints for a step: the instruction as written, continuations joined.
fn step_text(lines: &[&str], line: usize, escape: char) -> String {
    let mut out = String::new();
    for l in lines.iter().skip(line.saturating_sub(1)) {
        let t = l.trim_end();
        match t.strip_suffix(escape) {
            Some(head) => out.push_str(head.trim_start()),
            None => {
                out.push_str(t.trim_start());
                break;
            }
        }
    }
    out
}

fn env_value(env: &[String], key: &str) -> Option<String> {
    env.iter().rev().find_map(|e| {
        e.split_once('=')
            .filter(|(k, _)| *k == key)
            .map(|(_, v)| v.to_owned())
    })
}

/// One build in progress.
pub struct Build {
    pub d: Arc<Daemon>,
    pub opts: Options,
    /// `builds/<id>` under the data root: the context and the steps' scratch space.
    pub dir: PathBuf,
    pub out: Lines,
    seq: usize,
    stage_names: Vec<Option<String>>,
}

impl Build {
    pub fn new(d: Arc<Daemon>, opts: Options, dir: PathBuf, out: Lines) -> Self {
        Self {
            d,
            opts,
            dir,
            out,
            seq: 0,
            stage_names: Vec::new(),
        }
    }

    fn context(&self) -> PathBuf {
        self.dir.join("context")
    }

    fn say(&self, text: impl Into<String>) {
        if !self.opts.quiet {
            self.out.send(json!({ "stream": text.into() }));
        }
    }

    fn scratch_dir(&mut self) -> PathBuf {
        self.seq += 1;
        self.dir.join(format!("step-{}", self.seq))
    }

    /// The image `name`, pulled first when missing or when `--pull` asks.
    async fn base_image(&self, name: &str) -> Result<Img, ApiError> {
        let have = self.d.store.resolve(name);
        if let (Ok(rec), false) = (&have, self.opts.pull) {
            return Img::of_record(&self.d, rec);
        }
        let r = Reference::parse(name)
            .map_err(|e| ApiError::bad_request(format!("invalid reference format: {e}")))?;
        let host = crate::registry::registry_host(r.domain());
        let auth: AuthConfig = self
            .opts
            .auths
            .iter()
            .find(|(k, _)| crate::registry::registry_host(k) == host)
            .and_then(|(_, v)| serde_json::from_value(v.clone()).ok())
            .unwrap_or_default();
        let client = crate::registry::client_for(&self.d.registry, r.domain(), &auth);
        let platform = registry_client::Platform::host();
        let pulled = async {
            let plan = crate::registry::plan(&client, &self.d.store, &r, &platform).await?;
            crate::registry::pull(&client, &self.d.store, &r, plan, &self.out).await
        }
        .await;
        match (pulled, have) {
            (Ok(p), _) => Img::of_record(&self.d, &p.image),
            // --pull with the registry unreachable: use what we have, as Docker does
            (Err(_), Ok(rec)) => Img::of_record(&self.d, &rec),
            (Err(e), Err(_)) => Err(ApiError::new(
                e.status,
                format!(
                    "pull access denied or image not found for {name}: {}",
                    e.message
                ),
            )),
        }
    }

    /// Run the whole build; returns the final image's ID.
    pub async fn run(&mut self, text: &str) -> Result<Digest, ApiError> {
        let dockerfile = builder::dockerfile::parse(text)
            .map_err(|e| ApiError::bad_request(format!("dockerfile parse error {e}")))?;
        let escape = dockerfile.directives.escape;
        // First pass: which images the stages start from (their env feeds the second pass).
        let bases = builder::resolve::resolve(&dockerfile, &self.opts.build_args, &|_| Vec::new())
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        let last = match &self.opts.target {
            None => bases.stages.len().saturating_sub(1),
            Some(t) => bases
                .stages
                .iter()
                .position(|s| s.name.as_deref() == Some(t.to_ascii_lowercase().as_str()))
                .ok_or_else(|| {
                    ApiError::bad_request(format!("failed to reach build target {t} in Dockerfile"))
                })?,
        };
        let mut base_images: HashMap<String, Img> = HashMap::new();
        let mut envs: HashMap<String, Vars> = HashMap::new();
        for st in &bases.stages[..=last] {
            if let Base::Image(name) = &st.base {
                if !base_images.contains_key(name) {
                    let img = self.base_image(name).await?;
                    let env = strings(&img.config["config"]["Env"])
                        .into_iter()
                        .filter_map(|e| {
                            e.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned()))
                        })
                        .collect();
                    envs.insert(name.clone(), env);
                    base_images.insert(name.clone(), img);
                }
            }
        }
        let resolved = builder::resolve::resolve(&dockerfile, &self.opts.build_args, &|n| {
            envs.get(n).cloned().unwrap_or_default()
        })
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
        for a in &resolved.unused_build_args {
            self.say(format!(
                "[Warning] One or more build-args [{a}] were not consumed\n"
            ));
        }
        self.stage_names = resolved.stages.iter().map(|s| s.name.clone()).collect();
        let lines: Vec<&str> = text.lines().collect();
        let total: usize = resolved.stages[..=last]
            .iter()
            .map(|s| s.steps.len() + 1)
            .sum();
        let mut n = 0;
        let mut done: Vec<Img> = Vec::new();
        for stage in &resolved.stages[..=last] {
            n += 1;
            self.say(format!(
                "Step {n}/{total} : {}\n",
                step_text(&lines, stage.line, escape)
            ));
            let img = match &stage.base {
                Base::Scratch => Img::scratch()?,
                Base::Stage(j) => done[*j].clone(),
                Base::Image(name) => base_images
                    .get(name)
                    .cloned()
                    .ok_or_else(|| ApiError::internal(format!("base image {name} not loaded")))?,
            };
            self.say(format!(" ---> {}\n", img.short_id()));
            let img = self
                .run_stage(stage, img, &done, &lines, escape, &mut n, total)
                .await?;
            done.push(img);
        }
        let mut fin = done
            .pop()
            .ok_or_else(|| ApiError::bad_request("no stages to build"))?;
        if !self.opts.labels.is_empty() {
            let kvs = self
                .opts
                .labels
                .iter()
                .map(|(k, v)| builder::dockerfile::KeyValue {
                    key: k.clone(),
                    value: v.clone(),
                    legacy: false,
                })
                .collect();
            let ins = Instruction::Label(kvs);
            let comment = cfg::apply(&mut fin.config, &ins, &mut StageState::default())
                .map_err(|e| ApiError::bad_request(e.to_string()))?
                .unwrap_or_default();
            let by = cfg::nop_created_by(&cfg::shell_of(&fin.config), &comment);
            fin.commit(&self.d, &by, None, |_| {})?;
        }
        let id = fin.id.clone().ok_or_else(|| {
            ApiError::bad_request("the build produced no image (FROM scratch with no steps)")
        })?;
        match &fin.manifest {
            Some((m, mt)) if *mt == MediaType::ImageManifest => {
                self.d.store.name_image(m, &self.opts.tags)?;
            }
            _ => {
                for t in &self.opts.tags {
                    self.d.store.tag(id.as_str(), t)?;
                }
            }
        }
        self.out.send(json!({"aux": {"ID": id.as_str()}}));
        if self.opts.quiet {
            // as dockerd: a quiet build's only output is the ID (the docker CLI prints it)
            self.out.send(json!({"stream": format!("{id}\n")}));
        }
        self.say(format!("Successfully built {}\n", id.short()));
        for t in &self.opts.tags {
            self.say(format!("Successfully tagged {}\n", t.familiar()));
        }
        Ok(id)
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_stage(
        &mut self,
        stage: &ResolvedStage,
        mut img: Img,
        done: &[Img],
        lines: &[&str],
        escape: char,
        n: &mut usize,
        total: usize,
    ) -> Result<Img, ApiError> {
        let mut state = StageState::default();
        let mut use_cache = !self.opts.no_cache;
        let triggers = self.triggers(&mut img, escape)?;
        if !triggers.is_empty() {
            let k = triggers.len();
            self.say(format!(
                "# Executing {k} build trigger{}\n",
                if k == 1 { "" } else { "s" }
            ));
        }
        let own = stage.steps.iter().map(|s| (false, s));
        for (is_trigger, step) in triggers.iter().map(|s| (true, s)).chain(own) {
            if !is_trigger {
                *n += 1;
                self.say(format!(
                    "Step {}/{total} : {}\n",
                    *n,
                    step_text(lines, step.line, escape)
                ));
            }
            let fail = |e: String| {
                if is_trigger {
                    ApiError::bad_request(format!("ONBUILD trigger: {e}"))
                } else {
                    ApiError::bad_request(format!("Dockerfile line {}: {e}", step.line))
                }
            };
            match &step.instruction {
                Instruction::Run(run) => {
                    let shell = cfg::shell_of(&img.config);
                    let command = with_heredocs(&run.command, &run.heredocs);
                    let env = strings(&img.config["config"]["Env"]);
                    let args: Vec<(String, String)> = step
                        .args
                        .iter()
                        .filter(|(k, _)| env_value(&env, k).is_none())
                        .cloned()
                        .collect();
                    let (argv, created_by) = cfg::run_command(&command, &shell, &args);
                    let key = cache_key(&img, &created_by, &img.config);
                    if self.cached(&mut img, &key, use_cache)? {
                        continue;
                    }
                    use_cache = false;
                    let layer = self.run_container(&img, &argv, &args).await?;
                    img.commit(&self.d, &created_by, layer, |_| {})?;
                    self.pin(&key, &img)?;
                    self.say(format!(" ---> {}\n", img.short_id()));
                }
                Instruction::Add(c) | Instruction::Copy(c) => {
                    let add = matches!(step.instruction, Instruction::Add(_));
                    self.copy_step(&mut img, c, add, done, &mut use_cache)
                        .await
                        .map_err(|e| {
                            if e.status.is_server_error() {
                                e
                            } else {
                                fail(e.message)
                            }
                        })?;
                }
                other => {
                    let mut next = img.config.clone();
                    let comment = cfg::apply(&mut next, other, &mut state)
                        .map_err(|e| fail(e.to_string()))?
                        .unwrap_or_default();
                    let created_by = cfg::nop_created_by(&cfg::shell_of(&img.config), &comment);
                    let key = cache_key(&img, &created_by, &next);
                    if self.cached(&mut img, &key, use_cache)? {
                        continue;
                    }
                    use_cache = false;
                    img.config = next;
                    img.commit(&self.d, &created_by, None, |_| {})?;
                    self.pin(&key, &img)?;
                    self.say(format!(" ---> {}\n", img.short_id()));
                }
            }
        }
        Ok(img)
    }

    /// The base's ONBUILD triggers, as steps to run first. They are not handed on: the
    /// stage's image starts without them, as Docker's.
    fn triggers(
        &self,
        img: &mut Img,
        escape: char,
    ) -> Result<Vec<builder::resolve::ResolvedStep>, ApiError> {
        let list = strings(&img.config["config"]["OnBuild"]);
        if list.is_empty() {
            return Ok(Vec::new());
        }
        cfg::run_config(&mut img.config).remove("OnBuild");
        let text = format!("# escape={escape}\nFROM scratch\n{}\n", list.join("\n"));
        let bad = |e: String| ApiError::bad_request(format!("invalid ONBUILD trigger: {e}"));
        let df = builder::dockerfile::parse(&text).map_err(|e| bad(e.to_string()))?;
        let env: Vars = strings(&img.config["config"]["Env"])
            .into_iter()
            .filter_map(|e| e.split_once('=').map(|(k, v)| (k.to_owned(), v.to_owned())))
            .collect();
        let resolved = builder::resolve::resolve(&df, &self.opts.build_args, &|_| env.clone())
            .map_err(|e| bad(e.to_string()))?;
        let mut steps = Vec::new();
        for st in resolved.stages {
            for mut step in st.steps {
                // "scratch" gave no env: the base's env is what triggers see
                let mut e = env.clone();
                e.extend(step.env);
                step.env = e;
                steps.push(step);
            }
        }
        Ok(steps)
    }

    fn pin(&self, key: &Digest, img: &Img) -> Result<(), ApiError> {
        if let Some((m, _)) = &img.manifest {
            self.d.store.pin(key, m)?;
        }
        Ok(())
    }

    /// A cache hit replaces `img` with the stored step image and says so.
    fn cached(&self, img: &mut Img, key: &Digest, use_cache: bool) -> Result<bool, ApiError> {
        if !use_cache {
            return Ok(false);
        }
        let Some(rec) = self.d.store.pinned(key) else {
            return Ok(false);
        };
        *img = Img::of_record(&self.d, &rec)?;
        self.say(format!(" ---> Using cache\n ---> {}\n", img.short_id()));
        Ok(true)
    }

    /// Root filesystem of an image, mounted read-only-in-practice under a scratch dir.
    fn mount_image(&mut self, img: &Img) -> Result<(PathBuf, PathBuf), ApiError> {
        let work = self.scratch_dir();
        let m = self.d.store.layers().overlay(&img.chains, &work)?;
        let merged = work.join("merged");
        files::mount_overlay(&m, &merged)
            .map_err(|e| ApiError::internal(format!("mounting the build rootfs: {e}")))?;
        Ok((work, merged))
    }

    async fn copy_step(
        &mut self,
        img: &mut Img,
        c: &Copy,
        add: bool,
        done: &[Img],
        use_cache: &mut bool,
    ) -> Result<(), ApiError> {
        let kw = if add { "ADD" } else { "COPY" };
        // where the sources come from: the context, a stage, or an image
        let mut mounted: Vec<PathBuf> = Vec::new();
        let result = self
            .copy_step_inner(img, c, kw, done, use_cache, &mut mounted)
            .await;
        for w in mounted {
            files::unmount(&w.join("merged"));
            let _ = std::fs::remove_dir_all(&w);
        }
        result
    }

    async fn copy_step_inner(
        &mut self,
        img: &mut Img,
        c: &Copy,
        kw: &str,
        done: &[Img],
        use_cache: &mut bool,
        mounted: &mut Vec<PathBuf>,
    ) -> Result<(), ApiError> {
        let src_root = match &c.from {
            None => self.context(),
            Some(from) => {
                let src = match from.parse::<usize>() {
                    Ok(i) if i < done.len() => done[i].clone(),
                    _ => match self.stage_named(from, done) {
                        Some(img) => img,
                        None => self.base_image(from).await?,
                    },
                };
                let (work, merged) = self.mount_image(&src)?;
                mounted.push(work);
                merged
            }
        };
        let mut paths = Vec::new();
        let mut heredocs = Vec::new();
        let mut urls = Vec::new();
        for s in &c.sources {
            match s {
                Source::Path(p)
                    if kw == "ADD" && (p.starts_with("http://") || p.starts_with("https://")) =>
                {
                    urls.push(p.clone())
                }
                Source::Path(p) => paths.push(p.clone()),
                Source::Heredoc(h) => heredocs.push(h.clone()),
            }
        }
        let (hash, matched) = if paths.is_empty() {
            (String::new(), Vec::new())
        } else {
            let root = src_root.clone();
            let p = paths.clone();
            tokio::task::spawn_blocking(move || files::hash_sources(&root, &p))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
                .map_err(|e| ApiError::bad_request(e.to_string()))?
        };
        let mut downloads = Vec::new();
        for u in &urls {
            downloads.push((u.clone(), download(u).await?));
        }
        let mut parts = Vec::new();
        if !hash.is_empty() {
            parts.push(hash);
        }
        for h in &heredocs {
            parts.push(format!(
                "heredoc:{}",
                Digest::of_bytes(h.content.as_bytes()).hex()
            ));
        }
        for (_, body) in &downloads {
            parts.push(format!("file:{}", Digest::of_bytes(body).hex()));
        }
        let workdir = img.config["config"]["WorkingDir"]
            .as_str()
            .unwrap_or("/")
            .to_owned();
        let dest = if c.dest.starts_with('/') {
            c.dest.clone()
        } else {
            let base = if workdir.is_empty() { "/" } else { &workdir };
            let joined = format!("{base}/{}", c.dest);
            if c.dest.ends_with('/') || c.dest == "." {
                format!("{}/", cfg::clean_path(&joined))
            } else {
                joined
            }
        };
        let chown = c.chown.clone().unwrap_or_default();
        let created_by = format!(
            "{} #(nop) {kw} {}{} in {dest} ",
            cfg::shell_of(&img.config).join(" "),
            if chown.is_empty() {
                String::new()
            } else {
                format!("--chown={chown} ")
            },
            parts.join(",")
        );
        let key = cache_key(img, &created_by, &img.config);
        if self.cached(img, &key, *use_cache)? {
            return Ok(());
        }
        *use_cache = false;
        if c.chmod.is_some() {
            return Err(ApiError::bad_request(
                "the --chmod option requires BuildKit. Refer to https://docs.docker.com/go/buildkit/ to learn how to build images with BuildKit enabled",
            ));
        }
        let (work, merged) = self.mount_image(img)?;
        mounted.push(work.clone());
        let owner = if chown.is_empty() {
            files::Owner::default()
        } else {
            let (u, g, _) = crate::containers::user::resolve(&merged, &chown).map_err(|e| {
                ApiError::bad_request(format!(
                    "unable to convert uid/gid chown string to host mapping: {e}"
                ))
            })?;
            files::Owner {
                uid: u.into(),
                gid: g.into(),
            }
        };
        let dest_is_dir = files::is_dir_in(&merged, &cfg::clean_path(&dest));
        let many = matched.len() + heredocs.len() + downloads.len() > 1;
        if many && !dest.ends_with('/') && !dest_is_dir {
            return Err(ApiError::bad_request(format!(
                "When using {kw} with more than one source file, the destination must be a directory and end with a /"
            )));
        }
        let archives = if kw == "ADD" {
            files::archives(&src_root, &matched)
                .map_err(|e| ApiError::bad_request(e.to_string()))?
        } else {
            vec![false; matched.len()]
        };
        let io =
            |e: std::io::Error| ApiError::bad_request(format!("{kw} failed: {}", files::chain(&e)));
        {
            let plain: Vec<files::Matched> = matched
                .iter()
                .zip(&archives)
                .filter(|(_, a)| !**a)
                .map(|(m, _)| m.clone())
                .collect();
            if !plain.is_empty() {
                let t = files::target(&dest, dest_is_dir, &plain).map_err(ApiError::bad_request)?;
                let (sr, mr) = (src_root.clone(), merged.clone());
                let chowned = !chown.is_empty();
                tokio::task::spawn_blocking(move || {
                    files::copy(&sr, &plain, &mr, &t, owner, chowned)
                })
                .await
                .map_err(|e| ApiError::internal(e.to_string()))?
                .map_err(io)?;
            }
            for (m, _) in matched.iter().zip(&archives).filter(|(_, a)| **a) {
                let (sr, mr, src) = (src_root.clone(), merged.clone(), m.path.clone());
                let dir = cfg::clean_path(&dest);
                tokio::task::spawn_blocking(move || files::extract_archive(&sr, &src, &mr, &dir))
                    .await
                    .map_err(|e| ApiError::internal(e.to_string()))?
                    .map_err(io)?;
            }
            for h in &heredocs {
                let (dir, name) = file_target(&dest, dest_is_dir, &h.name);
                files::write_file(&merged, &dir, &name, h.content.as_bytes(), 0o644, owner)
                    .map_err(io)?;
            }
            for (u, body) in &downloads {
                let base = u
                    .rsplit('/')
                    .next()
                    .filter(|s| !s.is_empty())
                    .unwrap_or("download");
                let (dir, name) = file_target(&dest, dest_is_dir, base);
                files::write_file(&merged, &dir, &name, body, 0o600, owner).map_err(io)?;
            }
        }
        files::unmount(&merged);
        let store = self.d.store.clone();
        let parent = img.chains.last().cloned();
        let upper = work.join("upper");
        let layer =
            tokio::task::spawn_blocking(move || store.layer_from_dir(&upper, parent.as_ref()))
                .await
                .map_err(|e| ApiError::internal(e.to_string()))??;
        img.commit(&self.d, &created_by, layer, |_| {})?;
        self.pin(&key, img)?;
        self.say(format!(" ---> {}\n", img.short_id()));
        Ok(())
    }

    fn stage_named(&self, name: &str, done: &[Img]) -> Option<Img> {
        let name = name.to_ascii_lowercase();
        self.stage_names
            .iter()
            .take(done.len())
            .rposition(|n| n.as_deref() == Some(name.as_str()))
            .map(|i| done[i].clone())
    }

    /// RUN: a container on the parent's layers; its changes become the step's layer.
    async fn run_container(
        &mut self,
        img: &Img,
        argv: &[String],
        args: &[(String, String)],
    ) -> Result<Option<NewLayer>, ApiError> {
        let d = self.d.clone();
        let mut env = strings(&img.config["config"]["Env"]);
        for (k, v) in args {
            env.push(format!("{k}={v}"));
        }
        let rc = &img.config["config"];
        let config = json!({
            "Image": img.id.as_ref().map(|i| i.to_string()).unwrap_or_default(),
            "Cmd": argv,
            "Env": env,
            "WorkingDir": rc["WorkingDir"],
            "User": rc["User"],
            "Tty": false,
            "OpenStdin": false,
            "AttachStdout": true,
            "AttachStderr": true,
        });
        let c = Container {
            id: String::new(),
            name: String::new(),
            created: monitor::now(),
            image: img.id.as_ref().map(|i| i.to_string()).unwrap_or_default(),
            image_id: img.id.as_ref().map(|i| i.to_string()).unwrap_or_default(),
            path: argv.first().cloned().unwrap_or_default(),
            args: argv.iter().skip(1).cloned().collect(),
            config,
            host_config: json!({"NetworkMode": self.opts.network_mode}),
            state: RunState::default(),
            restart_count: 0,
            removed: false,
            network_settings: Value::Null,
            rootfs_layers: Some(img.chains.iter().map(|c| c.to_string()).collect()),
            mounts: Vec::new(),
            extra_networks: Vec::new(),
            off_primary: false,
            links: Vec::new(),
        };
        let e = d.containers.insert(c, None)?;
        let c = e.snapshot();
        crate::api::containers::write_etc_files(&d, &c)?;
        self.say(format!(" ---> Running in {}\n", c.short_id()));
        let start_exits = c.state.exits;
        if let Err(err) = crate::api::containers::start_entry(&d, &e).await {
            let (d2, e2) = (d.clone(), e.clone());
            let _ = tokio::task::spawn_blocking(move || d2.containers.remove_files(&e2)).await;
            return Err(err);
        }
        self.relay_output(&e, start_exits).await;
        let s = crate::api::containers::wait_for(&e, |s| s.exits > start_exits).await;
        let ok = s.exit_code == 0;
        let remove = (ok && self.opts.rm) || self.opts.force_rm;
        let layer = if ok {
            let store = d.store.clone();
            let parent = img.chains.last().cloned();
            let upper = d.containers.dir_of(&c.id).join("upper");
            Some(
                tokio::task::spawn_blocking(move || store.layer_from_dir(&upper, parent.as_ref()))
                    .await
                    .map_err(|e| ApiError::internal(e.to_string())),
            )
        } else {
            None
        };
        if remove {
            let (d2, e2) = (d.clone(), e.clone());
            let _ = tokio::task::spawn_blocking(move || d2.containers.remove_files(&e2)).await;
            self.say(format!(
                "Removing intermediate container {}\n",
                c.short_id()
            ));
        }
        match layer {
            Some(l) => Ok(l??),
            None => Err(ApiError::bad_request(format!(
                "The command '{}' returned a non-zero code: {}",
                argv.join(" "),
                s.exit_code
            ))),
        }
    }

    /// Send what the step's container prints to the build output, as it comes.
    async fn relay_output(&self, e: &Arc<crate::containers::Entry>, start_exits: u64) {
        let s = crate::api::containers::wait_for(e, |s| {
            s.status.is_live() || s.exits > start_exits || s.removed
        })
        .await;
        let dir = self.d.containers.run_dir_of(&e.snapshot().id);
        let req = AttachRequest {
            replay_from: Some(s.log_offset),
            stdin: false,
            stdout: true,
            stderr: true,
            resize: None,
        };
        match monitor::attach(&dir, &req).await {
            Ok(mut mon) => {
                let mut frames = crate::frames::FrameDecoder::new();
                let mut buf = vec![0u8; 64 << 10];
                while let Ok(n @ 1..) = mon.read(&mut buf).await {
                    frames.push(&buf[..n]);
                    while let Some(f) = frames.next_frame() {
                        self.say(String::from_utf8_lossy(&f.data).into_owned());
                    }
                }
            }
            Err(_) => {
                let log = self.d.containers.log_path(&e.snapshot().id);
                let (entries, _) = crate::api::containers::read_log(&log, s.log_offset);
                for (_, _, data) in entries {
                    self.say(String::from_utf8_lossy(&data).into_owned());
                }
            }
        }
    }
}

/// A RUN's command with its heredocs: the shell reads them itself; a bare `RUN <<EOF` runs
/// the body as a script, as BuildKit does.
fn with_heredocs(c: &Command, heredocs: &[builder::dockerfile::Heredoc]) -> Command {
    match c {
        Command::Shell(s) if !heredocs.is_empty() => {
            let trimmed = s.trim();
            if heredocs.len() == 1 && trimmed.starts_with("<<") && !trimmed.contains(' ') {
                return Command::Shell(heredocs[0].content.clone());
            }
            let mut text = s.clone();
            for h in heredocs {
                text.push('\n');
                text.push_str(&h.content);
                text.push_str(&h.name);
            }
            Command::Shell(text)
        }
        other => other.clone(),
    }
}

/// Directory and name a single file source lands at.
fn file_target(dest: &str, dest_is_dir: bool, name: &str) -> (String, String) {
    let clean = cfg::clean_path(dest);
    if dest.ends_with('/') || dest_is_dir {
        return (clean, name.to_owned());
    }
    match clean.rsplit_once('/') {
        Some((p, n)) => (if p.is_empty() { "/".into() } else { p.into() }, n.into()),
        None => ("/".into(), clean),
    }
}

/// ADD's URL sources: plain HTTP only (the machine has no other network; tests serve on
/// loopback).
async fn download(url: &str) -> Result<Vec<u8>, ApiError> {
    use http_body_util::BodyExt;
    let bad = |m: String| ApiError::bad_request(format!("failed to download {url}: {m}"));
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| bad(e.to_string()))?;
    if uri.scheme_str() != Some("http") {
        return Err(bad("only http:// URLs are supported".into()));
    }
    let host = uri.host().ok_or_else(|| bad("no host".into()))?.to_owned();
    let port = uri.port_u16().unwrap_or(80);
    let stream = tokio::net::TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| bad(e.to_string()))?;
    let (mut send, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| bad(e.to_string()))?;
    tokio::spawn(conn);
    let req = hyper::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| bad(e.to_string()))?;
    let resp = send
        .send_request(req)
        .await
        .map_err(|e| bad(e.to_string()))?;
    if !resp.status().is_success() {
        return Err(bad(format!("HTTP {}", resp.status())));
    }
    Ok(resp
        .into_body()
        .collect()
        .await
        .map_err(|e| bad(e.to_string()))?
        .to_bytes()
        .to_vec())
}

/// Remove a build's scratch directory, unmounting anything left mounted in it.
pub fn cleanup(dir: &Path) {
    if let Ok(mounts) = std::fs::read_to_string("/proc/self/mounts") {
        let prefix = dir.display().to_string();
        for line in mounts.lines() {
            if let Some(target) = line.split(' ').nth(1) {
                if target.starts_with(&prefix) {
                    files::unmount(Path::new(target));
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn step_text_joins_continuations() {
        let lines = ["FROM x", "RUN a \\", "  && b", "CMD c"];
        assert_eq!(step_text(&lines, 2, '\\'), "RUN a && b");
        assert_eq!(step_text(&lines, 4, '\\'), "CMD c");
    }

    #[test]
    fn heredoc_runs() {
        let h = builder::dockerfile::Heredoc {
            name: "EOF".into(),
            content: "echo hi\n".into(),
            expand: true,
            chomp: false,
            fd: 0,
        };
        assert_eq!(
            with_heredocs(&Command::Shell("<<EOF".into()), std::slice::from_ref(&h)),
            Command::Shell("echo hi\n".into())
        );
        assert_eq!(
            with_heredocs(&Command::Shell("cat <<EOF".into()), &[h]),
            Command::Shell("cat <<EOF\necho hi\nEOF".into())
        );
    }

    #[test]
    fn build_options_from_docker_cli_query() {
        let q = Query::parse(Some(
            "t=a%3A1&t=b&buildargs=%7B%22X%22%3A%221%22%2C%22Y%22%3Anull%7D&nocache=1&rm=0&q=1",
        ));
        let o = Options::from_query(&q, "").unwrap();
        assert_eq!(o.tags.len(), 2);
        assert_eq!(o.build_args.get("X").map(String::as_str), Some("1"));
        assert!(!o.build_args.contains_key("Y"));
        assert!(o.no_cache && !o.rm && o.quiet);
        assert!(Options::from_query(&Query::parse(Some("t=UPPER")), "").is_err());
    }
}
