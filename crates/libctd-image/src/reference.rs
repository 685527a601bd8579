//! Image names, checked and normalised as docker references are:
//! `busybox` is `docker.io/library/busybox:latest`, `example.com/a/b` is
//! `example.com/a/b:latest`, a digest is kept (`name[:tag]@sha256:<hex>`,
//! sha256 only). A name that is not a reference is `InvalidArgument`.

use libctd_core::{Error, Result};

use crate::digest::Digest;

/// The registry a name without one lives in.
const DEFAULT_DOMAIN: &str = "docker.io";
/// The longest name (domain and path), as docker allows.
const MAX_NAME: usize = 255;

/// A reference, split.
struct Parts<'a> {
    /// The name as written (before tag and digest).
    name: &'a str,
    /// Domain and path, normalised.
    full_name: String,
    tag: Option<&'a str>,
    digest: Option<Digest>,
}

/// `reference` normalised; `InvalidArgument` naming it if it is not one.
pub fn normalise(reference: &str) -> Result<String> {
    let parts = parse(reference)?;
    let mut out = parts.full_name;
    match (parts.tag, &parts.digest) {
        (Some(tag), _) => {
            out.push(':');
            out.push_str(tag);
        }
        (None, None) => out.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(digest) = parts.digest {
        out.push('@');
        out.push_str(&digest.to_string());
    }
    Ok(out)
}

/// Whether `reference` is a reference written in full (its registry and
/// path as normalisation would make them), as opposed to a bare tag or a
/// short name.
pub fn is_full(reference: &str) -> bool {
    parse(reference).is_ok_and(|p| p.name == p.full_name)
}

fn parse(reference: &str) -> Result<Parts<'_>> {
    let invalid = |why: &str| {
        Error::invalid_argument(format!(
            "image name {reference:?} is not a valid reference: {why}"
        ))
    };
    let (rest, digest) = match reference.split_once('@') {
        Some((rest, digest)) => (
            rest,
            Some(Digest::parse(digest).map_err(|e| invalid(e.message()))?),
        ),
        None => (reference, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match rest[last_slash..].rfind(':') {
        Some(i) => (&rest[..last_slash + i], Some(&rest[last_slash + i + 1..])),
        None => (rest, None),
    };
    if let Some(tag) = tag {
        let ok = tag.len() <= 128
            && tag.bytes().enumerate().all(|(i, b)| {
                b.is_ascii_alphanumeric() || b == b'_' || (i > 0 && (b == b'.' || b == b'-'))
            })
            && !tag.is_empty();
        if !ok {
            return Err(invalid("bad tag"));
        }
    }
    if name.is_empty() {
        return Err(invalid("no name"));
    }
    // Only the whole reference is an image id (docker's rule): with a
    // tag or a digest, 64 hex digits are a repository name like any other.
    if Digest::from_hex(reference).is_some() {
        return Err(invalid("a 64-digit hexadecimal name is an image id"));
    }
    let (domain, path) = match name.split_once('/') {
        Some((first, path))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.bytes().any(|b| b.is_ascii_uppercase()) =>
        {
            (first, path.to_owned())
        }
        _ => (DEFAULT_DOMAIN, name.to_owned()),
    };
    let domain = if domain == "index.docker.io" {
        DEFAULT_DOMAIN
    } else {
        domain
    };
    if !valid_domain(domain) {
        return Err(invalid("bad registry name"));
    }
    if path.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(invalid("the repository name must be lower case"));
    }
    if !path.split('/').all(valid_component) {
        return Err(invalid("bad repository name"));
    }
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    let full_name = format!("{domain}/{path}");
    if full_name.len() > MAX_NAME {
        return Err(invalid("the name is longer than 255 characters"));
    }
    Ok(Parts {
        name,
        full_name,
        tag,
        digest,
    })
}

/// `host[:port]`: dot-separated labels of letters, digits and inner dashes.
fn valid_domain(domain: &str) -> bool {
    let (host, port) = match domain.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (domain, None),
    };
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    host.split('.').all(label_ok)
        && port.is_none_or(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
}

/// A path component: lower-case alphanumeric runs joined by one `.`, one
/// or two `_`, or any number of `-`.
fn valid_component(component: &str) -> bool {
    let bytes = component.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let (Some(&first), Some(&last)) = (bytes.first(), bytes.last()) else {
        return false;
    };
    if !alnum(first) || !alnum(last) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use libctd_core::ErrorKind;

    const HEX: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn names_are_normalised_like_docker_references() {
        for (given, want) in [
            ("busybox", "docker.io/library/busybox:latest"),
            ("busybox:1.36", "docker.io/library/busybox:1.36"),
            ("library/busybox", "docker.io/library/busybox:latest"),
            (
                "index.docker.io/busybox",
                "docker.io/library/busybox:latest",
            ),
            ("me/app:v1", "docker.io/me/app:v1"),
            ("example.com/a/b", "example.com/a/b:latest"),
            ("localhost/app", "localhost/app:latest"),
            ("localhost:5000/app:x", "localhost:5000/app:x"),
            ("reg.io:443/a__b/c-d.e:T_1", "reg.io:443/a__b/c-d.e:T_1"),
            (
                &format!("busybox@sha256:{HEX}"),
                &format!("docker.io/library/busybox@sha256:{HEX}"),
            ),
            (
                &format!("busybox:1@sha256:{HEX}"),
                &format!("docker.io/library/busybox:1@sha256:{HEX}"),
            ),
            (&format!("{HEX}:1"), &format!("docker.io/library/{HEX}:1")),
        ] {
            assert_eq!(normalise(given).unwrap(), want, "{given}");
        }
    }

    #[test]
    fn invalid_references_are_refused() {
        let long = format!("a/{}", "b".repeat(300));
        for bad in [
            "",
            ":tag",
            "Busybox",
            "me/App",
            "busybox:",
            "busybox:-x",
            "busybox:bad/tag",
            "a..b/c",
            "-host.io/a",
            "host.io:port/a",
            "a/b_.c",
            "a/-b",
            "a//b",
            "busybox@sha256:abc",
            &format!("busybox@md5:{HEX}"),
            HEX,
            &long,
            &format!("busybox:{}", "t".repeat(129)),
        ] {
            let err = normalise(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{bad:?}");
            assert!(err.message().contains("not a valid reference"), "{err}");
        }
    }

    #[test]
    fn full_references_are_told_from_tags_and_short_names() {
        assert!(is_full("docker.io/library/busybox:latest"));
        assert!(is_full("example.com/a/b"));
        assert!(!is_full("latest"));
        assert!(!is_full("v1.0"));
        assert!(!is_full("busybox:1"));
        assert!(!is_full("docker.io/busybox"));
        assert!(!is_full("Not A Ref"));
    }
}
