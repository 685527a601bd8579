//! The tar reader on what tar writers produce: GNU long names, pax
//! headers, base-256 sizes, checksums, links, the end marker.

use libctd_core::ErrorKind;

use super::*;
use crate::tar::{
    BLOCK, Entry, Kind, TarReader, clean_path, parse_header, parse_number, parse_pax,
};

async fn entries(bytes: &[u8]) -> Result<Vec<(Entry, Vec<u8>)>> {
    use tokio::io::AsyncReadExt as _;
    let mut tar = TarReader::new(bytes);
    let mut out = Vec::new();
    while let Some(e) = tar.next_entry().await? {
        let mut body = Vec::new();
        tar.body().read_to_end(&mut body).await.unwrap();
        out.push((e, body));
    }
    Ok(out)
}

#[tokio::test]
async fn gnu_long_names_and_pax_paths_are_read() {
    let long = format!("{}/file", "d".repeat(150));
    let mut b = tar::Builder::new(Vec::new());
    // A GNU header: the tar crate writes an 'L' entry for the long name.
    let mut h = tar::Header::new_gnu();
    h.set_size(3);
    h.set_cksum();
    b.append_data(&mut h, &long, &b"abc"[..]).unwrap();
    // A pax header naming path and size.
    let pax_path = format!("{}/pax", "p".repeat(120));
    b.append_pax_extensions([("path", pax_path.as_bytes()), ("size", b"5".as_slice())])
        .unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_path("short").unwrap();
    h.set_size(5);
    h.set_cksum();
    b.append(&h, &b"12345"[..]).unwrap();
    // A ustar name split into prefix and name.
    let split = format!("{}/{}", "q".repeat(90), "r".repeat(90));
    let mut h = tar::Header::new_ustar();
    h.set_size(1);
    h.set_cksum();
    b.append_data(&mut h, &split, &b"z"[..]).unwrap();
    let got = entries(&b.into_inner().unwrap()).await.unwrap();
    let names: Vec<&str> = got.iter().map(|(e, _)| e.path.as_str()).collect();
    assert_eq!(names, [long.as_str(), pax_path.as_str(), split.as_str()]);
    assert_eq!(got[0].1, b"abc");
    assert_eq!(got[1].1, b"12345");
    assert_eq!(got[1].0.size, 5);
    assert_eq!(got[2].0.kind, Kind::File);
}

#[tokio::test]
async fn links_and_directories_are_entries_without_bodies() {
    let mut b = tar::Builder::new(Vec::new());
    for (ty, path, link) in [
        (tar::EntryType::Directory, "./dir/", ""),
        (tar::EntryType::Symlink, "dir/s", "../t"),
        (tar::EntryType::Link, "dir/h", "dir/s"),
    ] {
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(ty);
        h.set_size(0);
        h.set_cksum();
        if link.is_empty() {
            b.append_data(&mut h, path, std::io::empty()).unwrap();
        } else {
            b.append_link(&mut h, path, link).unwrap();
        }
    }
    let got = entries(&b.into_inner().unwrap()).await.unwrap();
    let kinds: Vec<_> = got
        .iter()
        .map(|(e, _)| (e.path.as_str(), e.kind, e.link.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("dir", Kind::Directory, ""),
            ("dir/s", Kind::Symlink, "../t"),
            ("dir/h", Kind::HardLink, "dir/s"),
        ]
    );
}

#[tokio::test]
async fn devices_and_fifos_are_refused() {
    for ty in [
        tar::EntryType::Char,
        tar::EntryType::Fifo,
        tar::EntryType::Block,
    ] {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_entry_type(ty);
        h.set_size(0);
        h.set_cksum();
        b.append_data(&mut h, "dev/x", std::io::empty()).unwrap();
        let err = entries(&b.into_inner().unwrap()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument);
        assert!(err.message().contains("\"dev/x\""), "{err}");
    }
}

#[tokio::test]
async fn the_end_marker() {
    let two = archive(&[("a".to_owned(), b"1".to_vec())]);
    assert_eq!(entries(&two).await.unwrap().len(), 1);
    // One zero block and the end of the stream: accepted.
    assert_eq!(two.len(), 4 * BLOCK, "header, data, two zero blocks");
    let one = &two[..3 * BLOCK];
    assert_eq!(entries(one).await.unwrap().len(), 1);
    // A header after a zero block: refused.
    let mut after = one.to_vec();
    after.extend_from_slice(&two[..BLOCK]);
    let err = entries(&after).await.unwrap_err();
    assert!(err.message().contains("after the end marker"), "{err}");
    // No end marker: truncated, naming the last entry.
    let none = &one[..one.len() - BLOCK];
    let err = entries(none).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(
        err.message().contains("truncated") && err.message().contains("\"a\""),
        "{err}"
    );
    let err = entries(b"").await.unwrap_err();
    assert!(err.message().contains("truncated"), "{err}");
}

#[test]
fn numbers_in_octal_and_base_256() {
    assert_eq!(parse_number(b"00000000644\0"), Some(0o644));
    assert_eq!(parse_number(b"  17 \0\0"), Some(0o17));
    assert_eq!(parse_number(b"\0\0\0\0"), Some(0));
    assert_eq!(parse_number(b"0009"), None);
    let mut big = [0u8; 12];
    big[0] = 0x80;
    big[7] = 0x02; // 2 << 32: 8 GiB, too large for octal's 11 digits
    assert_eq!(parse_number(&big), Some(2 << 32));
    assert_eq!(parse_number(&[0xff; 12]), None, "negative");
    assert_eq!(
        parse_number(&[0x80, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
        None
    );
}

#[test]
fn a_bad_checksum_is_refused() {
    let bytes = archive(&[("a".to_owned(), b"1".to_vec())]);
    let mut block = [0u8; BLOCK];
    block.copy_from_slice(&bytes[..BLOCK]);
    assert!(parse_header(&block, "x").unwrap().is_some());
    block[0] ^= 1;
    let err = parse_header(&block, "entry \"z\"").unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(
        err.message().contains("checksum") && err.message().contains("\"z\""),
        "{err}"
    );
    assert_eq!(parse_header(&[0; BLOCK], "x").unwrap(), None);
}

#[test]
fn pax_records() {
    let pax = parse_pax(b"12 path=a/b\n11 size=42\n11 mtime=1\n").unwrap();
    assert_eq!(pax.path.as_deref(), Some("a/b"));
    assert_eq!(pax.size, Some(42));
    for bad in [
        &b"13 path=a/b\n"[..],
        b"x path=a\n",
        b"11 size=-1\n",
        b"3 a\n",
        b"99 path=a\n",
    ] {
        assert_eq!(parse_pax(bad), None, "{:?}", String::from_utf8_lossy(bad));
    }
}

#[test]
fn paths_are_cleaned() {
    assert_eq!(clean_path("./a//b/./c/").as_deref(), Some("a/b/c"));
    assert_eq!(clean_path("/abs/x/../y").as_deref(), Some("abs/y"));
    assert_eq!(clean_path("./").as_deref(), Some(""));
    assert_eq!(clean_path("../etc/passwd"), None);
    assert_eq!(clean_path("a/../../b"), None);
}

/// A regular-file header whose name ends in `/` is a directory (the old
/// convention), but the body its size declares is still in the stream:
/// the reader skips it and reads the next header where it is.
#[tokio::test]
async fn a_file_named_like_a_directory_keeps_its_body_in_the_stream() {
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_size(600);
    h.as_old_mut().name[..6].copy_from_slice(b"weird/");
    h.set_cksum();
    b.append(&h, &[9u8; 600][..]).unwrap();
    let mut h = tar::Header::new_ustar();
    h.set_size(4);
    h.set_cksum();
    b.append_data(&mut h, "next", &b"next"[..]).unwrap();
    let got = entries(&b.into_inner().unwrap()).await.unwrap();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(
        (got[0].0.path.as_str(), got[0].0.kind),
        ("weird", Kind::Directory)
    );
    assert!(got[0].1.is_empty());
    assert_eq!(
        (got[1].0.path.as_str(), got[1].1.as_slice()),
        ("next", &b"next"[..])
    );
}
