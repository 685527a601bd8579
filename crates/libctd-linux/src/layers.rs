//! (tests) The crate's modules use each other in one direction only: no
//! module uses, directly or through others, a module that uses it.
//!
//! The graph is read from the sources: a module (one file; `client/exec.rs`
//! is `client::exec`) uses every module a `crate::` path in it names
//! (through the crate root's `pub use`s too) and the submodules it declares;
//! comments and test modules (`tests.rs`, `mod tests { .. }`) are left out.
//! A cycle is a strongly connected component of more than one module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Cycles known and accepted, each as its sorted list of modules: none.
const KNOWN: &[&[&str]] = &[];

/// Every module of the crate and its source, by path (`""` is the root).
fn modules(src: &Path) -> BTreeMap<String, String> {
    fn walk(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                let mut p = prefix.to_vec();
                p.push(name);
                walk(&path, &p, out);
            } else if let Some(stem) = name.strip_suffix(".rs") {
                let mut p = prefix.to_vec();
                if stem != "mod" && !(prefix.is_empty() && stem == "lib") {
                    p.push(stem.to_owned());
                }
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                out.insert(p.join("::"), text);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, &[], &mut out);
    out
}

/// `text` without comments (string contents are kept: they rarely hold `crate::`).
fn strip_comments(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while !rest.is_empty() {
        if let Some(r) = rest.strip_prefix("//") {
            rest = r.find('\n').map_or("", |i| &r[i..]);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.find("*/").map_or("", |i| &r[i + 2..]);
        } else {
            let c = rest.chars().next().unwrap_or(' ');
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
    }
    out
}

/// The paths after `crate::` in `code`, a `use crate::{a, b::c}` group
/// giving one path per member.
fn crate_paths(code: &str) -> Vec<String> {
    let mut paths = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        let after = &code[i + "crate::".len()..];
        if let Some(group) = after.strip_prefix('{') {
            let end = group.find('}').unwrap_or(group.len());
            for member in group[..end].split(',') {
                let member: String = member
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                if !member.is_empty() {
                    paths.push(member);
                }
            }
        } else {
            let path: String = after
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                .collect();
            paths.push(path);
        }
    }
    paths
}

/// The module graph: each module and the modules it uses.
fn graph(mods: &BTreeMap<String, String>) -> BTreeMap<String, BTreeSet<String>> {
    let root = mods.get("").map(|s| strip_comments(s)).unwrap_or_default();
    // `pub use module::{A, B};` in the root: `crate::A` is in `module`.
    let mut reexports = BTreeMap::new();
    for stmt in root.split("pub use ").skip(1) {
        let stmt = stmt.split(';').next().unwrap_or("");
        let Some((module, items)) = stmt.split_once("::") else {
            continue;
        };
        for item in items.split(|c: char| !(c.is_alphanumeric() || c == '_')) {
            if !item.is_empty() {
                reexports.insert(item.to_owned(), module.trim().to_owned());
            }
        }
    }
    let resolve = |path: &str| -> Option<String> {
        let parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
        (1..=parts.len())
            .rev()
            .map(|k| parts[..k].join("::"))
            .find(|m| mods.contains_key(m))
            .or_else(|| reexports.get(*parts.first()?).cloned())
    };
    let mut edges = BTreeMap::new();
    // Test modules may use anything; they are left out.
    let is_test = |name: &str| name == "tests" || name.ends_with("::tests");
    for (name, text) in mods.iter().filter(|(n, _)| !n.is_empty() && !is_test(n)) {
        let mut code = strip_comments(text);
        if let Some(i) = code.find("#[cfg(test)]\nmod tests {") {
            code.truncate(i);
        }
        let mut uses = BTreeSet::new();
        for path in crate_paths(&code) {
            if let Some(m) = resolve(&path).filter(|m| m != name) {
                uses.insert(m);
            }
        }
        for line in code.lines() {
            let line = line.trim();
            let decl = line
                .strip_prefix("pub(crate) mod ")
                .or_else(|| line.strip_prefix("mod "));
            if let Some(child) = decl.and_then(|d| d.strip_suffix(';')) {
                let child = format!("{name}::{child}");
                if mods.contains_key(&child) && !is_test(&child) {
                    uses.insert(child);
                }
            }
        }
        edges.insert(name.clone(), uses);
    }
    edges
}

/// The strongly connected components of more than one module, sorted.
fn cycles(edges: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    // Two modules are in one cycle when each reaches the other.
    let reach = |from: &str| -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![from.to_owned()];
        while let Some(m) = todo.pop() {
            for n in edges.get(&m).into_iter().flatten() {
                if seen.insert(n.clone()) {
                    todo.push(n.clone());
                }
            }
        }
        seen
    };
    let reached: BTreeMap<&String, BTreeSet<String>> =
        edges.keys().map(|m| (m, reach(m))).collect();
    let mut out: BTreeSet<Vec<String>> = BTreeSet::new();
    for (m, r) in &reached {
        let comp: Vec<String> = reached
            .iter()
            .filter(|(n, rn)| r.contains(n.as_str()) && rn.contains(m.as_str()))
            .map(|(n, _)| (*n).clone())
            .collect();
        if comp.len() > 1 {
            out.insert(comp);
        }
    }
    out.into_iter().collect()
}

#[test]
fn no_module_uses_a_module_that_uses_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mods = modules(&src);
    assert!(
        mods.contains_key("client::lifecycle"),
        "the sources are read"
    );
    let edges = graph(&mods);
    // The graph is read, not assumed: known uses are found.
    assert!(edges["client::lifecycle"].contains("events"));
    assert!(edges["remote"].contains("client"));
    assert!(edges["client"].contains("client::exec"));
    assert!(
        edges["client"].contains("session"),
        "all of client/mod.rs is read"
    );
    let unknown: Vec<Vec<String>> = cycles(&edges)
        .into_iter()
        .filter(|c| !KNOWN.iter().any(|k| k.iter().eq(c.iter())))
        .collect();
    assert!(
        unknown.is_empty(),
        "modules that use each other: {unknown:?}"
    );
}

#[test]
fn a_cycle_is_found() {
    let mut mods = BTreeMap::new();
    mods.insert(String::new(), "mod a;\nmod b;\npub use b::B;".to_owned());
    mods.insert("a".to_owned(), "use crate::B; // crate::c".to_owned());
    mods.insert("b".to_owned(), "use crate::{a::x, c};".to_owned());
    mods.insert("c".to_owned(), "/* crate::a */".to_owned());
    assert_eq!(
        cycles(&graph(&mods)),
        vec![vec!["a".to_owned(), "b".to_owned()]]
    );
}
