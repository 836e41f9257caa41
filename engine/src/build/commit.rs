//! `commit`: a container's changes become a layer over its image, with its config.

use builder::config::{self as cfg, StageState};
use builder::dockerfile::Instruction;
use image_store::{Digest, Reference};
use serde_json::{json, Value};

use super::Img;
use crate::containers::Container;
use crate::daemon::Daemon;
use crate::error::ApiError;

/// What `docker commit` asks for.
#[derive(Debug, Clone, Default)]
pub struct CommitOptions {
    pub reference: Option<Reference>,
    pub comment: String,
    pub author: String,
    /// Dockerfile instructions (`-c`): CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD,
    /// STOPSIGNAL, USER, VOLUME, WORKDIR, HEALTHCHECK.
    pub changes: Vec<String>,
    /// A config from the request body, over the container's.
    pub config: Option<Value>,
}

const CONFIG_KEYS: [&str; 12] = [
    "Cmd",
    "Entrypoint",
    "Env",
    "WorkingDir",
    "User",
    "ExposedPorts",
    "Volumes",
    "Labels",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
];

/// Apply `-c` changes to an image config, as Docker validates them.
pub fn apply_changes(image: &mut Value, changes: &[String]) -> Result<(), ApiError> {
    let mut state = StageState {
        cmd_set: true, // a commit's ENTRYPOINT keeps the container's CMD
    };
    for change in changes {
        let text = format!("FROM scratch\n{change}\n");
        let df = builder::dockerfile::parse(&text)
            .map_err(|e| ApiError::bad_request(format!("invalid change {change:?}: {e}")))?;
        let resolved = builder::resolve::resolve(&df, &Default::default(), &|_| Vec::new())
            .map_err(|e| ApiError::bad_request(format!("invalid change {change:?}: {e}")))?;
        for step in resolved.stages.iter().flat_map(|s| &s.steps) {
            let allowed = matches!(
                step.instruction,
                Instruction::Cmd(_)
                    | Instruction::Entrypoint(_)
                    | Instruction::Env(_)
                    | Instruction::Expose(_)
                    | Instruction::Label(_)
                    | Instruction::Onbuild(_)
                    | Instruction::StopSignal(_)
                    | Instruction::User(_)
                    | Instruction::Volume(_)
                    | Instruction::Workdir(_)
                    | Instruction::Healthcheck(_)
            );
            if !allowed {
                return Err(ApiError::bad_request(format!(
                    "{} is not a valid change command",
                    step.instruction.keyword().to_ascii_lowercase()
                )));
            }
            cfg::apply(image, &step.instruction, &mut state)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
        }
    }
    Ok(())
}

/// Commit `c` (running or not): its upper directory over its image's layers.
pub async fn commit(d: &Daemon, c: &Container, opts: CommitOptions) -> Result<Digest, ApiError> {
    let base_id = Digest::parse(&c.image_id)?;
    let base = d.store.resolve(base_id.as_str())?;
    let mut img = Img::of_record(d, &base)?;
    // the container's config (what it was created with, image defaults merged in)
    let rc = cfg::run_config(&mut img.config);
    for k in CONFIG_KEYS {
        let v = opts
            .config
            .as_ref()
            .and_then(|b| b.get(k))
            .filter(|v| !v.is_null())
            .or_else(|| c.config.get(k))
            .cloned()
            .unwrap_or(Value::Null);
        if v.is_null() {
            rc.remove(k);
        } else {
            rc.insert(k.into(), v);
        }
    }
    apply_changes(&mut img.config, &opts.changes)?;
    if !opts.author.is_empty() {
        img.config["author"] = json!(opts.author);
    }
    img.config["container"] = json!(c.id);
    let upper = d.containers.dir_of(&c.id).join("upper");
    let store = d.store.clone();
    let parent = img.chains.last().cloned();
    let layer = tokio::task::spawn_blocking(move || {
        if upper.is_dir() {
            store.layer_from_dir(&upper, parent.as_ref())
        } else {
            Ok(None)
        }
    })
    .await
    .map_err(|e| ApiError::internal(e.to_string()))??;
    let created_by = std::iter::once(c.path.clone())
        .chain(c.args.iter().cloned())
        .collect::<Vec<_>>()
        .join(" ");
    let (comment, author) = (opts.comment.clone(), opts.author.clone());
    img.commit(d, &created_by, layer, |h| {
        if !comment.is_empty() {
            h["comment"] = json!(comment);
        }
        if !author.is_empty() {
            h["author"] = json!(author);
        }
    })?;
    let (manifest, _) = img
        .manifest
        .clone()
        .ok_or_else(|| ApiError::internal("commit stored no manifest"))?;
    let refs: Vec<Reference> = opts.reference.into_iter().collect();
    let rec = d.store.name_image(&manifest, &refs)?;
    Ok(rec.id.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_apply_and_bad_ones_are_named() {
        let mut image = json!({"config": {"Cmd": ["sh"]}});
        apply_changes(
            &mut image,
            &[
                "ENV A=1".into(),
                "EXPOSE 80".into(),
                "ENTRYPOINT [\"/e\"]".into(),
            ],
        )
        .unwrap();
        assert_eq!(image["config"]["Env"], json!(["A=1"]));
        assert_eq!(image["config"]["Cmd"], json!(["sh"]));
        assert_eq!(image["config"]["Entrypoint"], json!(["/e"]));
        let e = apply_changes(&mut image, &["RUN true".into()]).unwrap_err();
        assert_eq!(e.message, "run is not a valid change command");
        assert!(apply_changes(&mut image, &["EXPOSE http".into()]).is_err());
    }
}
