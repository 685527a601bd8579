//! The facade picks this target's backend and passes options through to it.

#![cfg(unix)]

use libctd::{ErrorKind, RemoteOption, platform};

#[tokio::test]
async fn default_remote_reports_an_unreachable_containerd() {
    let dir = std::env::temp_dir().join(format!("libctd-facade-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("nothing-here.sock");
    let address = platform::Address(socket.clone());
    let err = match libctd::default_remote(&[&address as &dyn RemoteOption]).await {
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
async fn default_remote_rejects_a_bad_option_value() {
    let level = platform::LogLevel("loud".into());
    let err = match libctd::default_remote(&[&level as &dyn RemoteOption]).await {
        Ok(_) => panic!("accepted log level \"loud\""),
        Err(e) => e,
    };
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains("loud"), "{err}");
}
