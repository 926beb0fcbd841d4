//! The shape docs/architecture.md promises, checked on the sources: no module of a crate
//! imports (through `use crate::…`) a module that imports it back, at file granularity, and
//! no source file is longer than [`MAX_FILE_LINES`] lines before its `#[cfg(test)]` part.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The most lines a source file may have outside its tests.
const MAX_FILE_LINES: usize = 600;

/// The library source trees checked (relative to the workspace root).
const CRATES: [&str; 4] = [
    "sync-core/src",
    "sync-runtime/src",
    "sync-sim/src",
    "tests/src",
];

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// Every `.rs` file under `dir`, recursively.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source dir") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file (`relay/mod.rs` → `relay`, `relay/health.rs` → `relay::health`);
/// `None` for the crate root and binaries.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?.with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    let root = parts.first()?;
    (root != "lib" && root != "main" && root != "bin").then(|| parts.join("::"))
}

/// The part of a file before its first top-level `#[cfg(test)]`.
fn non_test(text: &str) -> &str {
    text.find("\n#[cfg(test)]").map_or(text, |i| &text[..i])
}

/// The paths named by `use crate::…;` items (braces expanded).
fn used_paths(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find("use crate::") {
        let item = &rest[i + "use crate::".len()..];
        let end = item.find(';').unwrap_or(item.len());
        let body: String = item[..end].chars().filter(|c| !c.is_whitespace()).collect();
        expand("", &body, &mut out);
        rest = &item[end..];
    }
    out
}

/// Expands `a::{b,c::{d}}` into `a::b`, `a::c::d`.
fn expand(prefix: &str, body: &str, out: &mut Vec<String>) {
    let Some(open) = body.find('{') else {
        out.push(format!("{prefix}{body}"));
        return;
    };
    let head = &body[..open];
    let inner = &body[open + 1..body.rfind('}').unwrap_or(body.len())];
    let (mut depth, mut start) = (0usize, 0usize);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                expand(&format!("{prefix}{head}"), &inner[start..i], out);
                start = i + 1;
            }
            _ => {}
        }
    }
    if start < inner.len() {
        expand(&format!("{prefix}{head}"), &inner[start..], out);
    }
}

/// The file-level import graph of one crate's source tree.
fn import_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let modules: BTreeMap<String, PathBuf> = files
        .iter()
        .filter_map(|f| Some((module_of(src, f)?, f.clone())))
        .collect();
    let mut graph = BTreeMap::new();
    for (module, file) in &modules {
        let text = std::fs::read_to_string(file).expect("readable source");
        let mut targets = BTreeSet::new();
        for path in used_paths(non_test(&text)) {
            let segments: Vec<&str> = path.split("::").collect();
            let target = (1..=segments.len())
                .rev()
                .map(|k| segments[..k].join("::"))
                .find(|candidate| modules.contains_key(candidate));
            if let Some(target) = target.filter(|t| t != module) {
                targets.insert(target);
            }
        }
        graph.insert(module.clone(), targets);
    }
    graph
}

/// A cycle through `start`, if any (depth-first search).
fn cycle_from(graph: &BTreeMap<String, BTreeSet<String>>, start: &str) -> Option<Vec<String>> {
    let mut stack = vec![(start.to_string(), vec![start.to_string()])];
    let mut seen = BTreeSet::new();
    while let Some((node, path)) = stack.pop() {
        for next in graph.get(&node).into_iter().flatten() {
            if next == start {
                return Some([path.clone(), vec![next.clone()]].concat());
            }
            if seen.insert(next.clone()) {
                stack.push((next.clone(), [path.clone(), vec![next.clone()]].concat()));
            }
        }
    }
    None
}

#[test]
fn no_crate_has_an_import_circle() {
    let root = workspace_root();
    for krate in CRATES {
        let graph = import_graph(&root.join(krate));
        assert!(graph.len() > 3, "{krate}: too few modules found to check");
        for module in graph.keys() {
            if let Some(cycle) = cycle_from(&graph, module) {
                panic!("{krate}: import circle {}", cycle.join(" → "));
            }
        }
    }
}

#[test]
fn the_checker_finds_a_circle() {
    let mut graph = BTreeMap::new();
    graph.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    graph.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert!(cycle_from(&graph, "a").is_some());
    let mut paths = Vec::new();
    expand(
        "",
        "relay::{health::{Health,ErrorClass},Status}",
        &mut paths,
    );
    assert_eq!(
        paths,
        [
            "relay::health::Health",
            "relay::health::ErrorClass",
            "relay::Status"
        ]
    );
}

#[test]
fn no_source_file_is_over_600_lines_outside_its_tests() {
    let root = workspace_root();
    let mut files = Vec::new();
    for krate in CRATES {
        rust_files(&root.join(krate), &mut files);
    }
    let long: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(f).expect("readable source");
            let lines = non_test(&text).lines().count();
            (lines > MAX_FILE_LINES).then(|| format!("{} ({lines} lines)", f.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files over {MAX_FILE_LINES} lines: {long:?}"
    );
}
