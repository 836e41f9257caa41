//! `system check`, `image prune` and `system df`: reading the whole store and judging it.

use std::collections::BTreeSet;

use crate::digest::Digest;
use crate::error::Result;
use crate::store::{Removed, Store, REF_NAME};

/// What `system check` found. An empty `problems` means the store is consistent.
#[derive(Debug, Default, Clone)]
pub struct CheckReport {
    pub blobs: usize,
    pub layers: usize,
    pub images: usize,
    pub refs: usize,
    pub problems: Vec<String>,
}

/// Disk use of images, as `system df` shows it.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ImageUsage {
    pub images: usize,
    pub active: usize,
    /// Unique layer bytes.
    pub size: u64,
    /// Bytes that removing every unused image would free.
    pub reclaimable: u64,
}

impl Store {
    /// Verify every blob digest, every ref, and every layer an image needs.
    pub fn check(&self) -> Result<CheckReport> {
        let mut rep = CheckReport::default();
        for b in self.blobs.list()? {
            rep.blobs += 1;
            match b {
                Err(name) => rep.problems.push(format!(
                    "blob file {name:?} is not named by a sha256 digest"
                )),
                Ok(d) => match self.blobs.verify(&d) {
                    Ok(true) => {}
                    Ok(false) => rep
                        .problems
                        .push(format!("blob {d} does not match its digest")),
                    Err(e) => rep.problems.push(format!("blob {d}: {e}")),
                },
            }
        }
        let index = match self.read_index() {
            Ok(i) => i,
            Err(e) => {
                rep.problems.push(e.to_string());
                return Ok(rep);
            }
        };
        let mut seen = BTreeSet::new();
        for desc in index.manifests() {
            rep.refs += 1;
            let name = desc
                .annotations()
                .as_ref()
                .and_then(|a| a.get(REF_NAME))
                .cloned();
            let what = name.clone().unwrap_or_else(|| desc.digest().to_string());
            if let Some(n) = &name {
                if let Err(e) = crate::Reference::parse(n) {
                    rep.problems.push(format!("ref {n:?}: {e}"));
                }
            }
            let d = match Digest::parse(desc.digest().as_ref()) {
                Ok(d) => d,
                Err(e) => {
                    rep.problems.push(format!("ref {what}: {e}"));
                    continue;
                }
            };
            if !seen.insert(d.clone()) {
                continue;
            }
            match self.record_for_manifest(&d, desc.media_type().clone()) {
                Err(e) => rep.problems.push(format!("ref {what}: {e}")),
                Ok(rec) => {
                    rep.images += 1;
                    for l in &rec.layers {
                        match Digest::parse(l.digest().as_ref()) {
                            Ok(b) if self.blobs.exists(&b) => {}
                            Ok(b) => rep
                                .problems
                                .push(format!("ref {what}: layer blob {b} is missing")),
                            Err(e) => rep.problems.push(format!("ref {what}: {e}")),
                        }
                    }
                    for (chain, diff) in rec.chain_ids.iter().zip(&rec.diff_ids) {
                        match self.layers.meta(chain) {
                            Ok(m) if &m.diff_id == diff && self.layers.diff_dir(chain).is_dir() => {
                            }
                            Ok(_) => rep.problems.push(format!(
                                "ref {what}: layer {chain} does not match diff {diff}"
                            )),
                            Err(e) => rep
                                .problems
                                .push(format!("ref {what}: layer {chain} is missing: {e}")),
                        }
                    }
                }
            }
        }
        rep.layers = self.layers.list()?.len();
        for leftover in ["index.json.tmp", "ingest"] {
            let p = self.root().join(leftover);
            if p.is_file() {
                rep.problems
                    .push(format!("half-written file {}", p.display()));
            }
        }
        Ok(rep)
    }

    /// `image prune`: remove untagged images (all unused ones with `all`), then collect garbage.
    pub fn prune(
        &self,
        all: bool,
        in_use: &dyn Fn(&Digest) -> bool,
    ) -> Result<(Vec<Removed>, u64)> {
        let victims: Vec<_> = self
            .list()
            .into_iter()
            .filter(|r| (all || r.refs.is_empty()) && !in_use(&r.id))
            .collect();
        let mut removed = Vec::new();
        for v in victims {
            removed.extend(self.remove_refs(v.id.as_str(), true, &|_| None)?);
        }
        let reclaimed = self.gc()?;
        Ok((removed, reclaimed))
    }

    pub fn usage(&self, in_use: &dyn Fn(&Digest) -> bool) -> Result<ImageUsage> {
        let imgs = self.list();
        let mut all_layers = BTreeSet::new();
        let mut used_layers = BTreeSet::new();
        let mut u = ImageUsage {
            images: imgs.len(),
            ..Default::default()
        };
        for r in &imgs {
            let used = in_use(&r.id);
            if used {
                u.active += 1;
            }
            for c in &r.chain_ids {
                all_layers.insert(c.clone());
                if used {
                    used_layers.insert(c.clone());
                }
            }
        }
        let size = |c: &Digest| self.layers.meta(c).map(|m| m.size).unwrap_or(0);
        u.size = all_layers.iter().map(size).sum();
        u.reclaimable = all_layers.difference(&used_layers).map(size).sum();
        Ok(u)
    }
}
