use super::*;

fn config() -> ImageConfig {
    ImageConfig {
        env: vec!["PATH=/usr/bin:/bin".into(), "LANG=C".into()],
        entrypoint: vec!["/bin/sh".into(), "-c".into()],
        cmd: vec!["echo hi".into()],
        working_dir: Some("/work".into()),
        user: Some("1000:100".into()),
        labels: BTreeMap::new(),
    }
}

#[test]
fn command_takes_entrypoint_then_args_or_cmd() {
    let c = config();
    assert_eq!(c.command(None).unwrap(), ["/bin/sh", "-c", "echo hi"]);
    assert_eq!(
        c.command(Some(&["exit 3".to_string()])).unwrap(),
        ["/bin/sh", "-c", "exit 3"]
    );
    let empty = ImageConfig::default();
    let err = empty.command(None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(empty.command(Some(&["ls".to_string()])).is_ok());
}

#[test]
fn apply_sets_process_root_and_env_over_the_specs() {
    let mut spec = Spec::default();
    let mut process = spec.process().clone().unwrap();
    process.set_env(Some(vec!["PATH=/mine".into(), "TERM=xterm".into()]));
    spec.set_process(Some(process));
    config().apply(&mut spec, None).unwrap();
    let p = spec.process().as_ref().unwrap();
    assert_eq!(p.args().as_deref().unwrap(), ["/bin/sh", "-c", "echo hi"]);
    assert_eq!(
        p.env().as_deref().unwrap(),
        ["TERM=xterm", "PATH=/usr/bin:/bin", "LANG=C"]
    );
    assert_eq!(p.cwd().to_str(), Some("/work"));
    assert_eq!((p.user().uid(), p.user().gid()), (1000, 100));
    assert_eq!(
        spec.root().as_ref().unwrap().path().to_str(),
        Some(IMAGE_ROOTFS_PATH)
    );
}

#[test]
fn apply_refuses_names_and_relative_dirs_without_touching_the_spec() {
    for user in ["daemon", "1000", "1000:staff", "-1", "0:x"] {
        let mut c = config();
        c.user = Some(user.into());
        let mut spec = Spec::default();
        let before = spec.clone();
        let err = c.apply(&mut spec, None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidArgument, "{user}");
        assert!(err.to_string().contains(user), "{err}");
        assert_eq!(spec, before);
    }
    for user in ["root", "0", "root:root", "0:0", "1000:1000"] {
        let mut c = config();
        c.user = Some(user.into());
        c.apply(&mut Spec::default(), None).unwrap();
    }
    let mut c = config();
    c.working_dir = Some("relative".into());
    let err = c.apply(&mut Spec::default(), None).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
}

proptest::proptest! {
    #[test]
    fn users_never_panic(user in ".{0,40}") {
        let mut c = ImageConfig { cmd: vec!["x".into()], user: Some(user), ..Default::default() };
        c.working_dir = None;
        let _ = c.apply(&mut Spec::default(), None);
    }
}
