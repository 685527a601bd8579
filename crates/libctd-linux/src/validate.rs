//! Checks of what an engine asks to create, so that what cannot work fails
//! at `create` with `InvalidArgument` instead of half-way through `start`.

use std::path::Path;

use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{Error, IMAGE_ROOTFS_PATH, ImageRootfs, Result};

/// The longest runtime name accepted.
const MAX_RUNTIME_LEN: usize = 255;

/// A container spec that runc can start: it has a process, and its root
/// filesystem is an absolute path to an existing directory (no mounts are
/// passed to the task, so a path relative to the bundle cannot work).
pub(crate) fn spec(spec: &Spec) -> Result<()> {
    if spec.process().is_none() {
        return Err(Error::invalid_argument(
            "the spec has no process: a Linux container needs one",
        ));
    }
    let Some(root) = spec.root() else {
        return Err(Error::invalid_argument(
            "the spec has no root: a Linux container needs root.path, its root filesystem",
        ));
    };
    rootfs(root.path())
}

/// A container spec for a container from `image`: it has a process, its
/// root is the image's snapshot ([`IMAGE_ROOTFS_PATH`], which the
/// backend mounts in the bundle; an absolute path would bypass the
/// snapshot), and the image's name and snapshotter are well-formed.
pub(crate) fn image_spec(spec: &Spec, image: &ImageRootfs) -> Result<()> {
    libctd_image::reference::normalise(&image.image)?;
    if let Some(snapshotter) = &image.snapshotter {
        crate::images::validate_snapshotter(snapshotter)?;
    }
    if spec.process().is_none() {
        return Err(Error::invalid_argument(
            "the spec has no process: a Linux container needs one",
        ));
    }
    let path = spec.root().as_ref().map(|r| r.path().as_path());
    match path {
        Some(p) if p == Path::new(IMAGE_ROOTFS_PATH) => Ok(()),
        other => Err(Error::invalid_argument(format!(
            "a container from image {:?} has its root at {IMAGE_ROOTFS_PATH:?} (the image's \
             snapshot, mounted in the bundle), not {}: set root.path with ImageConfig::apply",
            image.image,
            other.map_or_else(
                || "no root".to_owned(),
                |p| format!("{:?}", p.display().to_string())
            )
        ))),
    }
}

/// A root filesystem path: absolute, an existing directory.
fn rootfs(path: &Path) -> Result<()> {
    if !path.is_absolute() {
        return Err(Error::invalid_argument(format!(
            "root.path {} is relative: give the root filesystem as an absolute path",
            path.display()
        )));
    }
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Ok(()),
        Ok(_) => Err(Error::invalid_argument(format!(
            "root.path {} is not a directory",
            path.display()
        ))),
        Err(e) => Err(Error::invalid_argument(format!(
            "root.path {} cannot be used: {e}",
            path.display()
        ))
        .with_source(e)),
    }
}

/// A containerd runtime: a name such as `io.containerd.runc.v2` (dotted
/// lowercase words, at least three) or the absolute path of a shim binary.
pub(crate) fn runtime(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::invalid_argument(format!(
            "runtime {name:?} is not a valid runtime: {why}"
        )))
    };
    if name.is_empty() || name.len() > MAX_RUNTIME_LEN {
        return bad("it must have 1 to 255 characters");
    }
    if name.starts_with('/') {
        return match std::fs::metadata(name) {
            Ok(m) if m.is_file() => Ok(()),
            _ => bad("no shim binary exists at that path"),
        };
    }
    let parts: Vec<&str> = name.split('.').collect();
    let word_ok = |w: &&str| {
        !w.is_empty()
            && w.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    if parts.len() < 3 || !parts.iter().all(word_ok) {
        return bad("expected a name like io.containerd.runc.v2, or a shim's absolute path");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtimes() {
        for good in ["io.containerd.runc.v2", "io.containerd.runsc.v1", "/bin/sh"] {
            assert!(runtime(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "runc",
            "io..runc",
            "io.containerd.runc.v2 ",
            "IO.containerd.runc.v2",
            "io.containerd.run/c.v2",
            "/nonexistent/shim",
            "io.containerd.\u{0}.v2",
        ] {
            let e = runtime(bad).unwrap_err();
            assert_eq!(e.kind(), libctd_core::ErrorKind::InvalidArgument, "{bad:?}");
        }
        assert!(runtime(&"a.".repeat(200)).is_err());
    }

    #[test]
    fn image_specs_have_their_root_at_rootfs() {
        use libctd_core::oci_spec::runtime::{Process, Root};
        let image = ImageRootfs::new("example.com/a:1");
        let with_root = |path: Option<&str>| {
            let mut spec = Spec::default();
            spec.set_process(Some(Process::default()));
            spec.set_root(path.map(|p| {
                let mut root = Root::default();
                root.set_path(p.into());
                root
            }));
            spec
        };
        image_spec(&with_root(Some("rootfs")), &image).unwrap();
        for bad in [
            None,
            Some("/"),
            Some("/rootfs"),
            Some("./rootfs"),
            Some("other"),
        ] {
            let e = image_spec(&with_root(bad), &image).unwrap_err();
            assert_eq!(e.kind(), libctd_core::ErrorKind::InvalidArgument, "{bad:?}");
            assert!(e.message().contains("\"rootfs\""), "{e}");
        }
        let mut no_process = with_root(Some("rootfs"));
        no_process.set_process(None);
        assert!(image_spec(&no_process, &image).is_err());
        for (name, snapshotter) in [("Bad Name", None), ("a:1", Some("")), ("a:1", Some("x/y"))] {
            let mut image = ImageRootfs::new(name);
            image.snapshotter = snapshotter.map(str::to_owned);
            let e = image_spec(&with_root(Some("rootfs")), &image).unwrap_err();
            assert_eq!(
                e.kind(),
                libctd_core::ErrorKind::InvalidArgument,
                "{name} {snapshotter:?}"
            );
        }
    }

    #[test]
    fn rootfs_paths() {
        assert!(rootfs(Path::new("/")).is_ok());
        for bad in ["rootfs", "./rootfs", "/nonexistent/rootfs", "/etc/passwd"] {
            let e = rootfs(Path::new(bad)).unwrap_err();
            assert_eq!(e.kind(), libctd_core::ErrorKind::InvalidArgument, "{bad}");
            assert!(e.message().contains(bad.trim_start_matches("./")), "{e}");
        }
    }
}
