//! Images: import, run a container on a snapshot of one, remove, and the
//! archives an import must refuse. A backend without images (the fixture
//! gives no [`Fixture::image`]) must answer `None` from `Client::images`
//! and refuse a create that names an image with `InvalidArgument`.

use libctd_core::oci_spec::runtime::Spec;
use libctd_core::{
    CreateOptions, ErrorKind, IMAGE_ROOTFS_PATH, Images, ImportOptions, ImportProgress, Result,
};

use super::{Harness, Program, expect_err};
use crate::image::ImageArchive;

/// The name the cases import their image under.
const NAME: &str = "example.com/conformance/image:1";

/// The client's image store, or `None` after checking that the backend
/// refuses a create from an image.
async fn images_or_refusal(h: &Harness) -> Result<Option<(&dyn Images, ImageArchive)>> {
    match (h.client().images(), h.fixture().image(NAME)) {
        (Some(images), Some(archive)) => Ok(Some((images, archive))),
        (None, None) => {
            let spec = on_image(h.fixture().spec(&Program::Exit(0), false));
            let options = h.fixture().create_options().with_image(NAME);
            expect_err(
                "create from an image on a backend without images",
                ErrorKind::InvalidArgument,
                "image",
                h.client().create("no-images", &spec, options).await,
            );
            Ok(None)
        }
        (images, archive) => panic!(
            "the client has images: {}, the fixture has an image archive: {}",
            images.is_some(),
            archive.is_some()
        ),
    }
}

fn on_image(mut spec: Spec) -> Spec {
    let mut root = spec.root().clone().unwrap_or_default();
    root.set_path(IMAGE_ROOTFS_PATH.into());
    spec.set_root(Some(root));
    spec
}

fn archive(image: &ImageArchive) -> libctd_core::Archive {
    let bytes = image
        .oci()
        .unwrap_or_else(|e| panic!("building the archive: {e}"));
    Box::pin(std::io::Cursor::new(bytes))
}

fn image_options(h: &Harness) -> CreateOptions {
    h.fixture().create_options().with_image(NAME)
}

/// An imported image is listed with its configuration, found by name, and
/// gone once removed; progress reaches the caller.
pub(crate) async fn import_list_remove(h: &Harness) -> Result<()> {
    let Some((images, image)) = images_or_refusal(h).await? else {
        return Ok(());
    };
    let image = image
        .cmd(["hello"])
        .env(["GREETING=hi"])
        .working_dir("/tmp");
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<ImportProgress>::new()));
    let sink = seen.clone();
    let options = ImportOptions::new().with_progress(move |p| {
        sink.lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(p.clone());
    });
    let imported = images.import(archive(&image), options).await?;
    assert_eq!(imported.len(), 1, "{imported:?}");
    assert_eq!(imported[0].name, NAME);
    assert_eq!(imported[0].digest, image.manifest_digest()?);
    assert_eq!(imported[0].config.cmd, ["hello"]);
    assert_eq!(imported[0].config.env, ["GREETING=hi"]);
    assert_eq!(imported[0].config.working_dir.as_deref(), Some("/tmp"));
    let found = images.image(NAME).await?;
    assert_eq!(found, imported[0]);
    let listed = images.list_images().await?;
    assert!(listed.contains(&found), "{listed:?}");
    {
        let seen = seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for digest in image.layer_digests()? {
            let last = seen.iter().rfind(|p| p.blob == digest);
            let last = last.unwrap_or_else(|| panic!("no progress for layer {digest}: {seen:?}"));
            assert_eq!(
                last.done, last.total,
                "the layer's last report is not whole"
            );
        }
    }
    // Importing again is no error and changes nothing.
    let again = images.import(archive(&image), ImportOptions::new()).await?;
    assert_eq!(again, imported);
    images.remove_image(NAME).await?;
    expect_err(
        "image after remove",
        ErrorKind::NotFound,
        NAME,
        images.image(NAME).await,
    );
    expect_err(
        "remove twice",
        ErrorKind::NotFound,
        NAME,
        images.remove_image(NAME).await,
    );
    assert!(!images.list_images().await?.iter().any(|i| i.name == NAME));
    Ok(())
}

/// A container runs the image's own command on a snapshot of it, and its
/// id can be used again once it is deleted (its snapshot went with it).
pub(crate) async fn run_from_image(h: &Harness) -> Result<()> {
    let Some((images, image)) = images_or_refusal(h).await? else {
        return Ok(());
    };
    let text = "from the image\n";
    let command = h
        .fixture()
        .spec(&Program::Print(text.into()), false)
        .process()
        .as_ref()
        .and_then(|p| p.args().clone())
        .unwrap_or_default();
    let image = image.config_field("Cmd", serde_json::json!(command));
    let imported = images.import(archive(&image), ImportOptions::new()).await?;
    let config = &imported[0].config;
    let id = "from-image";
    for round in 0..2 {
        let mut spec = h.fixture().spec(&Program::Exit(0), false);
        config.apply(&mut spec, None)?;
        h.client().create(id, &spec, image_options(h)).await?;
        let started = h.start(id, false).await?;
        let out = started.stdio.wait_stdout(h.timeout()).await?;
        assert_eq!(String::from_utf8_lossy(&out), text, "round {round}");
        assert_eq!(h.wait_exit(id).await?.exit_code, 0, "round {round}");
        h.remove(id).await?;
    }
    images.remove_image(NAME).await?;
    Ok(())
}

/// A create naming an image that is not there, or a malformed name, fails
/// with its kind, and the id is free again.
pub(crate) async fn unknown_or_malformed_image(h: &Harness) -> Result<()> {
    let Some((images, _)) = images_or_refusal(h).await? else {
        return Ok(());
    };
    let id = "no-such-image";
    let spec = on_image(h.fixture().spec(&Program::Exit(0), false));
    let missing = h
        .fixture()
        .create_options()
        .with_image("example.com/none:1");
    expect_err(
        "create from a missing image",
        ErrorKind::NotFound,
        "example.com/none:1",
        h.client().create(id, &spec, missing).await,
    );
    let bad = h.fixture().create_options().with_image("Not An Image");
    expect_err(
        "create from a malformed name",
        ErrorKind::InvalidArgument,
        "Not An Image",
        h.client().create(id, &spec, bad).await,
    );
    // The snapshot is mounted at the spec's root: it must say so.
    let mut elsewhere = spec.clone();
    if let Some(root) = elsewhere.root().clone() {
        let mut root = root;
        root.set_path("/somewhere/else".into());
        elsewhere.set_root(Some(root));
    }
    expect_err(
        "create from an image with root.path elsewhere",
        ErrorKind::InvalidArgument,
        IMAGE_ROOTFS_PATH,
        h.client().create(id, &elsewhere, image_options(h)).await,
    );
    // ("UPPER/case" would be valid: an upper-case first component is a
    // registry host, as in docker's grammar; a path component is not.)
    for name in ["", "upper/CASE", "a//b"] {
        expect_err(
            "image(malformed)",
            ErrorKind::InvalidArgument,
            "",
            images.image(name).await,
        );
        expect_err(
            "remove_image(malformed)",
            ErrorKind::InvalidArgument,
            "",
            images.remove_image(name).await,
        );
    }
    // The id is free.
    h.create(id, &Program::Exit(0), false).await?;
    h.client().delete(id).await?;
    Ok(())
}

/// Each malformed archive fails with its kind, naming what is wrong, and
/// leaves the store usable: the good archive imports afterwards.
pub(crate) async fn bad_archives(h: &Harness) -> Result<()> {
    let Some((images, image)) = images_or_refusal(h).await? else {
        return Ok(());
    };
    let good = image.oci()?;
    let cases = crate::image::refused_faults(good.len());
    for (fault, kind, contains) in cases {
        let what = format!("import with {fault:?}");
        let bad = image.clone().fault(fault);
        expect_err(
            &what,
            kind,
            contains,
            images.import(archive(&bad), ImportOptions::new()).await,
        );
        assert!(
            !images.list_images().await?.iter().any(|i| i.name == NAME),
            "{what} left an image record"
        );
    }
    let garbage: libctd_core::Archive = Box::pin(std::io::Cursor::new(vec![0x55u8; 3000]));
    expect_err(
        "import of garbage",
        ErrorKind::InvalidArgument,
        "tar header",
        images.import(garbage, ImportOptions::new()).await,
    );
    let imported = images.import(archive(&image), ImportOptions::new()).await?;
    assert_eq!(imported[0].name, NAME);
    images.remove_image(NAME).await?;
    Ok(())
}

/// A `docker save` archive imports like an OCI one, and a multi-platform
/// index gives this host's image.
pub(crate) async fn docker_and_multi_platform(h: &Harness) -> Result<()> {
    let Some((images, image)) = images_or_refusal(h).await? else {
        return Ok(());
    };
    let image = image.cmd(["docker"]);
    let docker: libctd_core::Archive = Box::pin(std::io::Cursor::new(image.docker()?));
    let imported = images.import(docker, ImportOptions::new()).await?;
    assert_eq!(imported.len(), 1, "{imported:?}");
    assert_eq!(imported[0].name, NAME);
    assert_eq!(imported[0].config.cmd, ["docker"]);
    images.remove_image(NAME).await?;
    // The host's manifest comes last in the index, after two others.
    let others = if crate::image::host_arch() == "s390x" {
        ["ppc64le", "riscv64"]
    } else {
        ["s390x", "riscv64"]
    };
    let multi = image.also_platform(others[0]).also_platform(others[1]);
    let imported = images.import(archive(&multi), ImportOptions::new()).await?;
    assert_eq!(imported.len(), 1, "{imported:?}");
    assert_eq!(imported[0].config.cmd, ["docker"]);
    assert_eq!(
        imported[0].digest,
        multi.manifest_digest()?,
        "the host's manifest is not the one imported"
    );
    images.remove_image(NAME).await?;
    Ok(())
}
