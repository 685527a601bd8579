//! The facade re-exports this target's backend, whose builder is the way to
//! set platform options.

#![cfg(unix)]

use libctd::{ErrorKind, platform};

#[tokio::test]
async fn the_platform_builder_reports_an_unreachable_containerd() {
    let dir = std::env::temp_dir().join(format!("libctd-facade-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("nothing-here.sock");
    let err = match platform::LinuxRemote::builder()
        .address(&socket)
        .build()
        .await
    {
        Ok(_) => panic!("connected to a socket that does not exist"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{}", err.report());
    assert!(
        err.report().to_string().contains("nothing-here.sock"),
        "the error names the socket: {}",
        err.report()
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn the_platform_builder_rejects_a_bad_value_before_starting_anything() {
    let err = match platform::LinuxRemote::builder()
        .state_dir("relative/state")
        .build()
        .await
    {
        Ok(_) => panic!("accepted a relative state directory"),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("relative/state"), "{err}");
    assert!(!std::path::Path::new("relative").exists());
}
