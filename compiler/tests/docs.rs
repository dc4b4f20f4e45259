//! Docs that name files which no longer exist mislead: every repository path
//! in backticks in README.md and ARCHITECTURE.md must exist.

use std::path::Path;

fn paths_in(doc: &str) -> Vec<String> {
    let roots = ["compiler/", "runtime/", "macros/", "examples/", "tests/", ".ci/"];
    doc.split('`')
        .skip(1)
        .step_by(2)
        .map(|s| s.trim_end_matches(['/', ',', '.']).to_string())
        .filter(|s| roots.iter().any(|r| s.starts_with(r)) && !s.contains(' ') && !s.contains('*'))
        .collect()
}

#[test]
fn every_path_named_in_the_docs_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut missing = Vec::new();
    let mut checked = 0;
    for doc in ["README.md", "ARCHITECTURE.md"] {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for p in paths_in(&text) {
            checked += 1;
            if !root.join(&p).exists() {
                missing.push(format!("{doc}: `{p}`"));
            }
        }
    }
    assert!(checked > 20, "found only {checked} paths: is the parser broken?");
    assert!(
        missing.is_empty(),
        "paths named in the docs that do not exist:\n{}",
        missing.join("\n")
    );
}
