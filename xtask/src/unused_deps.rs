//! `cargo xtask ci`'s unused-dependency check, the way `cargo machete`
//! makes it: a dependency of a member whose crate name appears nowhere in
//! that member's Rust sources is unused. A dependency needed without being
//! named (one that only turns a feature on) is listed, with why, under
//! `[package.metadata.cargo-machete] ignored = [...]` in its manifest, the
//! key `cargo machete` itself reads.

use std::path::{Path, PathBuf};

use crate::Result;

/// The workspace members' manifests, read from the root manifest.
fn members(root: &Path) -> Result<Vec<PathBuf>> {
    let text = read(&root.join("Cargo.toml"))?;
    let start = text
        .find("members = [")
        .ok_or("the root Cargo.toml has no members list")?;
    let list = &text[start..];
    let end = list.find(']').ok_or("the members list is not closed")?;
    Ok(list[..end]
        .split('"')
        .skip(1)
        .step_by(2)
        .map(|m| root.join(m))
        .collect())
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

/// The dependency names of a manifest (normal, dev, build, per target), and
/// the names it says to ignore.
fn dependencies(manifest: &str) -> (Vec<String>, Vec<String>) {
    let mut deps = Vec::new();
    let mut ignored = Vec::new();
    let mut section = String::new();
    for line in manifest.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            section = line.trim_matches(|c| c == '[' || c == ']').to_owned();
            continue;
        }
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        if section.ends_with("dependencies") {
            let key = line.split(['=', '.', ' ']).next().unwrap_or_default();
            if !key.is_empty() {
                deps.push(key.trim_matches('"').to_owned());
            }
        } else if section == "package.metadata.cargo-machete" && line.starts_with("ignored") {
            ignored.extend(line.split('"').skip(1).step_by(2).map(str::to_owned));
        }
    }
    deps.sort();
    deps.dedup();
    (deps, ignored)
}

/// Every `.rs` file under `dir`, skipping build output.
fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "target") {
                rust_files(&path, out);
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Whether `source` names the crate `ident` (a path, a `use`, an `extern crate`).
fn names(source: &str, ident: &str) -> bool {
    source.match_indices(ident).any(|(at, _)| {
        let before = source[..at].chars().next_back();
        let after = &source[at + ident.len()..];
        let starts = before.is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
        starts
            && (after.starts_with("::")
                || after.starts_with(';')
                || after.starts_with(" as ")
                || after.starts_with(',')
                || after.starts_with('}'))
    })
}

/// The unused dependencies of every member, as `member: dep` lines.
pub(crate) fn check(root: &Path) -> Result {
    let mut unused = Vec::new();
    for member in members(root)? {
        let manifest = read(&member.join("Cargo.toml"))?;
        let (deps, ignored) = dependencies(&manifest);
        let mut files = Vec::new();
        rust_files(&member, &mut files);
        // A nested member (the HCS double) is checked on its own.
        let sources: Vec<String> = files
            .iter()
            .filter(|f| {
                !f.ancestors()
                    .skip(1)
                    .take_while(|a| *a != member)
                    .any(|a| a.join("Cargo.toml").exists())
            })
            .map(|f| read(f))
            .collect::<Result<_>>()?;
        for dep in deps {
            let ident = dep.replace('-', "_");
            if !ignored.contains(&dep) && !sources.iter().any(|s| names(s, &ident)) {
                let name = member.strip_prefix(root).unwrap_or(&member);
                unused.push(format!("{}: {dep}", name.display()));
            }
        }
    }
    if unused.is_empty() {
        println!("no unused dependencies");
        Ok(())
    } else {
        Err(format!(
            "unused dependencies (remove them, or list them with why under \
             [package.metadata.cargo-machete] ignored):\n  {}",
            unused.join("\n  ")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_are_read_by_section() {
        let (deps, ignored) = dependencies(
            "[package]\nname = \"x\"\n[dependencies]\ntokio = { workspace = true }\n\
             serde.workspace = true\n# note\n[target.'cfg(unix)'.dependencies]\nnix = \"1\"\n\
             [dev-dependencies]\nproptest = \"1\"\n[features]\nbig = []\n\
             [package.metadata.cargo-machete]\nignored = [\"serde\"]\n",
        );
        assert_eq!(deps, ["nix", "proptest", "serde", "tokio"]);
        assert_eq!(ignored, ["serde"]);
    }

    #[test]
    fn a_crate_is_named_by_paths_and_uses_only() {
        assert!(names("use tokio::sync;", "tokio"));
        assert!(names("#[tokio::test]", "tokio"));
        assert!(names("use futures;", "futures"));
        assert!(names("use {libc, nix};", "libc"));
        assert!(!names("let my_tokio = 1; // tokio", "tokio"));
        assert!(!names("prost_types::Any", "prost"));
    }
}
