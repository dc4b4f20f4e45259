//! Docs that name files which no longer exist mislead: every repository path
//! in backticks, and every relative link, in README.md, ARCHITECTURE.md,
//! docs/ and bench/README.md must exist.

use std::path::Path;

fn paths_in(doc: &str) -> Vec<String> {
    let roots = [
        "compiler/",
        "runtime/",
        "macros/",
        "examples/",
        "tests/",
        ".ci/",
        "docs/",
        "bench/",
    ];
    doc.split('`')
        .skip(1)
        .step_by(2)
        .map(|s| s.trim_end_matches(['/', ',', '.']).to_string())
        // bench/out/ is what bench/run.py writes, not part of a checkout.
        .filter(|s| roots.iter().any(|r| s.starts_with(r)) && !s.starts_with("bench/out"))
        .filter(|s| !s.contains([' ', '*', '<']))
        .collect()
}

/// The targets of relative Markdown links, `[text](target)`, resolved
/// against the document's folder.
fn links_in(doc: &str, dir: &Path) -> Vec<String> {
    doc.split("](")
        .skip(1)
        .filter_map(|s| s.split(')').next())
        .filter(|t| !t.contains("://") && !t.starts_with('#') && !t.is_empty())
        .map(|t| {
            let t = t.split('#').next().unwrap_or(t);
            dir.join(t).to_string_lossy().into_owned()
        })
        .collect()
}

#[test]
fn every_path_named_in_the_docs_exists() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut missing = Vec::new();
    let mut checked = 0;
    let mut docs: Vec<String> = ["README.md", "ARCHITECTURE.md", "bench/README.md"]
        .map(String::from)
        .into();
    for e in std::fs::read_dir(root.join("docs")).unwrap() {
        let name = e.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".md") {
            docs.push(format!("docs/{name}"));
        }
    }
    for doc in &docs {
        let text = std::fs::read_to_string(root.join(doc)).unwrap();
        for p in paths_in(&text) {
            checked += 1;
            if !root.join(&p).exists() {
                missing.push(format!("{doc}: `{p}`"));
            }
        }
        let dir = Path::new(doc).parent().unwrap_or(Path::new(""));
        for p in links_in(&text, dir) {
            checked += 1;
            if !root.join(&p).exists() {
                missing.push(format!("{doc}: link to `{p}`"));
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
