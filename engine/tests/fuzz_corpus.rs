//! The fuzz targets' short version, on stable: every input of `fuzz/corpus/<target>` (the
//! committed seeds and whatever a local `cargo xtask fuzz` kept) and of
//! `fuzz/regressions/<target>` (inputs that once crashed) goes through the same entry
//! function the fuzz target calls.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

type Entry = fn(&[u8]);

fn image_json(data: &[u8]) {
    image_store::fuzzing::image_json(data);
    registry_client::fuzzing::registry_json(data);
}

const TARGETS: &[(&str, Entry)] = &[
    ("unpack_layer", image_store::fuzzing::unpack_layer),
    ("dockerfile", builder::fuzzing::dockerfile),
    ("image_json", image_json),
    ("reference", image_store::fuzzing::reference),
    ("api_request", engine::fuzzing::api_request),
    ("attach_frames", engine::fuzzing::attach_frames),
];

/// Past this much time per target the rest of a (locally grown) corpus is skipped, so that
/// the test stays quick; committed seeds and regressions always run.
const BUDGET: Duration = Duration::from_secs(2);

fn is_seed(p: &Path) -> bool {
    p.file_name()
        .is_some_and(|n| n.to_string_lossy().starts_with("seed-"))
}

/// Files of `dir`: seeds first, then the rest, each in name order.
fn inputs(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    v.retain(|p| p.is_file());
    v.sort_by_key(|p| (!is_seed(p), p.clone()));
    v
}

#[test]
fn corpora_and_regressions_replay_clean() {
    let fuzz = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz");
    for (name, entry) in TARGETS {
        let regressions = inputs(&fuzz.join("regressions").join(name));
        let corpus = inputs(&fuzz.join("corpus").join(name));
        assert!(
            corpus.iter().any(|p| is_seed(p)),
            "fuzz/corpus/{name} has no seed-* input"
        );
        let start = Instant::now();
        let mut ran = 0;
        for (i, p) in regressions.iter().chain(&corpus).enumerate() {
            let must = i < regressions.len() || is_seed(p);
            if !must && start.elapsed() > BUDGET {
                break;
            }
            // a running fuzzer may have just replaced this corpus file
            let Ok(data) = std::fs::read(p) else {
                assert!(!must, "cannot read {}", p.display());
                continue;
            };
            let run = std::panic::catch_unwind(|| entry(&data));
            assert!(run.is_ok(), "fuzz target {name} fails on {}", p.display());
            ran += 1;
        }
        eprintln!("fuzz {name}: {ran} inputs in {:?}", start.elapsed());
    }
}
