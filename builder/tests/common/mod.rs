//! Finding the shared BuildKit corpus from a test, and reporting many failures at once.

use std::path::PathBuf;

/// `<repo>/../shared/corpus/buildkit-dockerfile`: the repository is checked out beside
/// `shared/` (as `main/` or a clone under another name), so look two levels up from the
/// crate first, then one. A missing corpus fails the test: a silent pass would hide it.
pub fn corpus() -> PathBuf {
    let manifest = env!("CARGO_MANIFEST_DIR");
    let candidates = [
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/corpus/buildkit-dockerfile"
        )),
        PathBuf::from(manifest).join("../shared/corpus/buildkit-dockerfile"),
    ];
    for c in &candidates {
        if c.is_dir() {
            return c.clone();
        }
    }
    panic!(
        "BuildKit corpus not found; looked in {:?}. The repository must be checked out next \
         to the project's shared/ folder",
        candidates
    );
}

/// Fails with every collected failure, not just the first.
pub fn report(what: &str, total: usize, failures: &[String]) {
    assert!(total > 0, "{what}: no cases found, the corpus looks empty");
    if !failures.is_empty() {
        panic!(
            "{what}: {} of {total} cases failed:\n\n{}",
            failures.len(),
            failures.join("\n\n")
        );
    }
    eprintln!("{what}: {total} of {total} cases passed");
}
