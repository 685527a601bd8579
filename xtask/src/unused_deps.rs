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
    let path = root.join("Cargo.toml");
    let manifest = parse(&read(&path)?, &path)?;
    let members = manifest
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(toml::Value::as_array)
        .ok_or("the root Cargo.toml has no [workspace] members list")?;
    members
        .iter()
        .map(|m| {
            m.as_str()
                .map(|m| root.join(m))
                .ok_or_else(|| format!("a workspace member is not a string: {m}"))
        })
        .collect()
}

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn parse(text: &str, path: &Path) -> Result<toml::Table> {
    text.parse::<toml::Table>()
        .map_err(|e| format!("{} is not valid TOML: {}", path.display(), e.message()))
}

/// The kinds of dependency table a manifest (or one of its targets) has.
const DEPENDENCY_TABLES: [&str; 3] = ["dependencies", "dev-dependencies", "build-dependencies"];

/// The dependency names of a manifest (normal, dev, build, per target), and
/// the names it says to ignore. A dependency is named by its key, which is
/// the crate name the sources use (also when `package = ...` renames it).
fn dependencies(manifest: &toml::Table) -> (Vec<String>, Vec<String>) {
    let targets = manifest
        .get("target")
        .and_then(toml::Value::as_table)
        .into_iter()
        .flat_map(|t| t.values().filter_map(toml::Value::as_table));
    let mut deps: Vec<String> = std::iter::once(manifest)
        .chain(targets)
        .flat_map(|t| DEPENDENCY_TABLES.iter().filter_map(|k| t.get(*k)))
        .filter_map(toml::Value::as_table)
        .flat_map(|t| t.keys().cloned())
        .collect();
    deps.sort();
    deps.dedup();
    let ignored = manifest
        .get("package")
        .and_then(|p| p.get("metadata"))
        .and_then(|m| m.get("cargo-machete"))
        .and_then(|c| c.get("ignored"))
        .and_then(toml::Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(toml::Value::as_str)
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
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
        let path = member.join("Cargo.toml");
        let (deps, ignored) = dependencies(&parse(&read(&path)?, &path)?);
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

    fn read_str(manifest: &str) -> (Vec<String>, Vec<String>) {
        dependencies(&parse(manifest, Path::new("Cargo.toml")).unwrap())
    }

    #[test]
    fn manifests_are_read_by_section() {
        let (deps, ignored) = read_str(
            "[package]\nname = \"x\"\n[dependencies]\ntokio = { workspace = true }\n\
             serde.workspace = true\n# note\n[target.'cfg(unix)'.dependencies]\nnix = \"1\"\n\
             [dev-dependencies]\nproptest = \"1\"\n[features]\nbig = []\n\
             [package.metadata.cargo-machete]\nignored = [\"serde\"]\n",
        );
        assert_eq!(deps, ["nix", "proptest", "serde", "tokio"]);
        assert_eq!(ignored, ["serde"]);
    }

    #[test]
    fn tricky_manifests_are_read_as_toml() {
        let (deps, ignored) = read_str(
            r#"
            package = { name = "x", metadata.cargo-machete.ignored = [
                "a-feature-only", # why: it turns a feature on
                "b",
            ] }

            [dependencies]
            inline = { version = "1", features = ["x"] }
            dotted.workspace = true
            "quoted-name" = "1"
            renamed = { package = "real-name", version = "1" }

            [dependencies.table-form]
            version = "2" # [dev-dependencies] in a comment is no section
            features = ["dependencies"]

            [target.'cfg(unix)'.dependencies]
            unix-only = "1"

            [target."x86_64-pc-windows-gnu".dev-dependencies.win-dev]
            version = "1"

            [target.'cfg(windows)'.build-dependencies]
            win-build.workspace = true

            [features]
            dependencies = []
            "#,
        );
        assert_eq!(
            deps,
            [
                "dotted",
                "inline",
                "quoted-name",
                "renamed",
                "table-form",
                "unix-only",
                "win-build",
                "win-dev"
            ]
        );
        assert_eq!(ignored, ["a-feature-only", "b"]);
    }

    #[test]
    fn a_manifest_that_is_not_toml_is_an_error() {
        let e = parse("[dependencies\nx = 1", Path::new("m/Cargo.toml")).unwrap_err();
        assert!(e.contains("m/Cargo.toml is not valid TOML"), "{e}");
    }

    #[test]
    fn members_are_read_from_the_workspace_table() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let members = members(root).unwrap();
        assert!(members.contains(&root.join("xtask")), "{members:?}");
        assert!(members.contains(&root.join("crates/libctd-windows/hcs-double")));
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
