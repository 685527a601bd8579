//! A small `ctr run` over libctd: runs a command in a busybox container on an
//! embedded containerd, with an interactive terminal (raw mode, window
//! resizes forwarded) or plain stdio, and exits with the container's exit code.
//!
//! ```text
//! sudo cargo run -p libctd-linux --example run -- -t -i sh
//! echo hi | sudo cargo run -p libctd-linux --example run -- -i cat
//! sudo cargo run -p libctd-linux --example run -- --image busybox.tar
//! ```
//!
//! Options: `-t`/`--tty` (a terminal), `-i`/`--interactive` (forward stdin),
//! `--image ARCHIVE` (import an image archive, OCI layout or `docker save`,
//! with its progress shown, and run the container on a snapshot of it:
//! `COMMAND` replaces the image's Cmd; without one, the image's
//! Entrypoint/Cmd run, with its Env and WorkingDir),
//! `--rootfs DIR` (default: a busybox rootfs built in the state directory),
//! `--state-dir DIR` (default: a fresh one under /tmp, removed at the end),
//! `--memory BYTES` (a memory limit).

#[cfg(not(unix))]
fn main() {
    eprintln!("run works on Linux only");
}

#[cfg(unix)]
fn main() {
    std::process::exit(run::main());
}

#[cfg(unix)]
mod run {
    use std::os::fd::AsFd;
    use std::path::PathBuf;
    use std::sync::Arc;

    use libctd_core::{
        Backend, BoxError, Client, CreateOptions, DirectIo, EventInfo, EventType, INIT_PROCESS_ID,
        Image, ImportOptions, ImportProgress, Remote, Result, StdioAttachment, stdio_callback,
    };
    use libctd_linux::LinuxRemote;
    use libctd_testkit::containerd::{build_busybox_rootfs, busybox_spec};
    use nix::sys::termios::{SetArg, Termios, cfmakeraw, tcgetattr, tcsetattr};
    use tokio::io::AsyncWriteExt;
    use tokio::sync::mpsc;

    struct Args {
        tty: bool,
        interactive: bool,
        image: Option<PathBuf>,
        rootfs: Option<PathBuf>,
        state_dir: Option<PathBuf>,
        memory: Option<i64>,
        command: Vec<String>,
    }

    const USAGE: &str = "usage: run [-t|--tty] [-i|--interactive] [--image ARCHIVE] [--rootfs DIR] \
                         [--state-dir DIR] [--memory BYTES] [--] COMMAND [ARG...]";

    fn parse() -> std::result::Result<Args, String> {
        let mut args = Args {
            tty: false,
            interactive: false,
            image: None,
            rootfs: None,
            state_dir: None,
            memory: None,
            command: Vec::new(),
        };
        let mut it = std::env::args().skip(1);
        while let Some(a) = it.next() {
            match a.as_str() {
                "-t" | "--tty" => args.tty = true,
                "-i" | "--interactive" => args.interactive = true,
                "-ti" | "-it" => {
                    args.tty = true;
                    args.interactive = true;
                }
                "--image" => args.image = Some(it.next().ok_or(USAGE)?.into()),
                "--rootfs" => args.rootfs = Some(it.next().ok_or(USAGE)?.into()),
                "--state-dir" => args.state_dir = Some(it.next().ok_or(USAGE)?.into()),
                "--memory" => {
                    let v = it.next().ok_or(USAGE)?;
                    args.memory = Some(v.parse().map_err(|_| format!("bad --memory {v}"))?);
                }
                "-h" | "--help" => return Err(USAGE.into()),
                "--" => {
                    args.command.extend(it.by_ref());
                }
                s if s.starts_with('-') && args.command.is_empty() => {
                    return Err(format!("unknown option {s}\n{USAGE}"));
                }
                _ => {
                    args.command.push(a);
                    args.command.extend(it.by_ref());
                }
            }
        }
        if args.image.is_some() && args.rootfs.is_some() {
            return Err(format!("--image and --rootfs exclude each other\n{USAGE}"));
        }
        if args.command.is_empty() && args.image.is_none() {
            args.command = vec!["sh".into()];
        }
        Ok(args)
    }

    /// Hands the init's exit code to `main`.
    struct ExitWatch(mpsc::UnboundedSender<u32>);

    #[libctd_core::async_trait]
    impl Backend for ExitWatch {
        async fn process_event(
            &self,
            _container_id: &str,
            event: EventType,
            info: EventInfo,
        ) -> std::result::Result<(), BoxError> {
            if event == EventType::Exit && info.process_id == INIT_PROCESS_ID {
                let _ = self.0.send(info.exit_code);
            }
            Ok(())
        }
    }

    /// Puts the terminal in raw mode until dropped.
    struct RawMode(Option<Termios>);

    impl RawMode {
        fn enter(enable: bool) -> Self {
            if !enable {
                return RawMode(None);
            }
            let stdin = std::io::stdin();
            let Ok(saved) = tcgetattr(stdin.as_fd()) else {
                return RawMode(None);
            };
            let mut raw = saved.clone();
            cfmakeraw(&mut raw);
            let _ = tcsetattr(stdin.as_fd(), SetArg::TCSANOW, &raw);
            RawMode(Some(saved))
        }
    }

    impl Drop for RawMode {
        fn drop(&mut self) {
            if let Some(saved) = &self.0 {
                let _ = tcsetattr(std::io::stdin().as_fd(), SetArg::TCSANOW, saved);
            }
        }
    }

    /// The terminal's size (columns, rows), if stdin is one.
    fn window_size() -> Option<(u32, u32)> {
        let mut ws = libc::winsize {
            ws_row: 0,
            ws_col: 0,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        // SAFETY: TIOCGWINSZ writes a `winsize` into the pointer we pass.
        let rc = unsafe { libc::ioctl(libc::STDIN_FILENO, libc::TIOCGWINSZ, &mut ws) };
        (rc == 0 && ws.ws_col > 0 && ws.ws_row > 0)
            .then(|| (u32::from(ws.ws_col), u32::from(ws.ws_row)))
    }

    /// Copies the process's output to ours and our stdin to the process.
    fn attach(interactive: bool) -> libctd_core::StdioCallback {
        stdio_callback(move |io: DirectIo| {
            let mut tasks = Vec::new();
            if let Some(mut out) = io.stdout {
                tasks.push(tokio::spawn(async move {
                    let mut stdout = tokio::io::stdout();
                    let mut buf = vec![0u8; 16 * 1024];
                    loop {
                        use tokio::io::AsyncReadExt;
                        match out.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => {
                                if stdout.write_all(&buf[..n]).await.is_err() {
                                    break;
                                }
                                let _ = stdout.flush().await;
                            }
                        }
                    }
                }));
            }
            if let Some(mut err) = io.stderr {
                tasks.push(tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut err, &mut tokio::io::stderr()).await;
                }));
            }
            if let Some(mut stdin) = io.stdin {
                // Not waited for: stdin may never reach EOF.
                tokio::spawn(async move {
                    if interactive {
                        let _ = tokio::io::copy(&mut tokio::io::stdin(), &mut stdin).await;
                    }
                    let _ = stdin.shutdown().await;
                });
            }
            Ok(Box::new(tasks) as Box<dyn StdioAttachment>)
        })
    }

    async fn run(args: &Args, remote: &LinuxRemote, rootfs: &std::path::Path) -> Result<u32> {
        let (tx, mut exits) = mpsc::unbounded_channel();
        let client = remote
            .new_client("libctd-run", Arc::new(ExitWatch(tx)))
            .await?;
        let id = format!("run-{}", std::process::id());
        let command: Vec<&str> = args.command.iter().map(String::as_str).collect();
        let mut spec = busybox_spec(rootfs, &command, args.tty, args.memory);
        let mut options = CreateOptions::new();
        if let Some(archive) = &args.image {
            let image = import(client.as_ref(), archive).await?;
            let given = (!args.command.is_empty()).then_some(args.command.as_slice());
            image.config.apply(&mut spec, given)?;
            options = options.with_image(image.name);
        }
        if let (Some(process), Ok(term)) = (spec.process().clone(), std::env::var("TERM")) {
            let mut process = process;
            let mut env = process.env().clone().unwrap_or_default();
            env.retain(|e| !e.starts_with("TERM="));
            env.push(format!("TERM={term}"));
            process.set_env(Some(env));
            spec.set_process(Some(process));
        }
        if args.tty
            && let (Some(mut process), Some((w, h))) = (spec.process().clone(), window_size())
        {
            let size = libctd_core::oci_spec::runtime::BoxBuilder::default()
                .width(w)
                .height(h)
                .build()
                .ok();
            process.set_console_size(size);
            spec.set_process(Some(process));
        }
        client.create(&id, &spec, options).await?;
        let raw = RawMode::enter(args.tty);
        let started = client
            .start(&id, None, args.interactive, attach(args.interactive))
            .await;
        let result = match started {
            Ok(_) => supervise(args, client.as_ref(), &id, &mut exits).await,
            Err(e) => Err(e),
        };
        drop(raw);
        let _ = client.signal_process(&id, INIT_PROCESS_ID, 9).await;
        if result.is_ok() {
            client.delete_task(&id).await?;
        } else {
            let _ = exits.recv().await;
            let _ = client.delete_task(&id).await;
        }
        client.delete(&id).await?;
        result
    }

    /// Imports the image archive at `path`, showing each blob's progress on
    /// stderr, and returns the image for this host.
    async fn import(client: &dyn Client, path: &std::path::Path) -> Result<Image> {
        let images = client
            .images()
            .ok_or_else(|| libctd_core::Error::not_implemented("this backend keeps no images"))?;
        let file = tokio::fs::File::open(path).await.map_err(|e| {
            libctd_core::Error::invalid_argument(format!("cannot open {}", path.display()))
                .with_source(e)
        })?;
        let progress = |p: &ImportProgress| {
            if p.done == p.total {
                eprintln!("imported {} ({} bytes)", p.blob, p.total);
            }
        };
        let options = ImportOptions::new().with_progress(progress);
        let mut imported = images.import(Box::pin(file), options).await?;
        // One image per name; run the first.
        imported
            .drain(..)
            .next()
            .ok_or_else(|| libctd_core::Error::not_found("the archive holds no image"))
    }

    /// Forwards window resizes (and, without a terminal, SIGINT/SIGTERM) until
    /// the init exits, and returns its exit code.
    async fn supervise(
        args: &Args,
        client: &dyn Client,
        id: &str,
        exits: &mut mpsc::UnboundedReceiver<u32>,
    ) -> Result<u32> {
        use tokio::signal::unix::{SignalKind, signal};
        let io_err = |e| libctd_core::Error::system("cannot watch signals").with_source(e);
        let mut winch = signal(SignalKind::window_change()).map_err(io_err)?;
        let mut int = signal(SignalKind::interrupt()).map_err(io_err)?;
        let mut term = signal(SignalKind::terminate()).map_err(io_err)?;
        if args.tty
            && let Some((w, h)) = window_size()
        {
            client.resize_terminal(id, INIT_PROCESS_ID, w, h).await?;
        }
        loop {
            tokio::select! {
                code = exits.recv() => {
                    return code.ok_or_else(|| libctd_core::Error::unknown("the event stream ended"));
                }
                _ = winch.recv() => {
                    if args.tty && let Some((w, h)) = window_size() {
                        let _ = client.resize_terminal(id, INIT_PROCESS_ID, w, h).await;
                    }
                }
                _ = int.recv() => { let _ = client.signal_process(id, INIT_PROCESS_ID, 2).await; }
                _ = term.recv() => { let _ = client.signal_process(id, INIT_PROCESS_ID, 15).await; }
            }
        }
    }

    pub(crate) fn main() -> i32 {
        let args = match parse() {
            Ok(a) => a,
            Err(msg) => {
                eprintln!("{msg}");
                return 2;
            }
        };
        if !nix::unistd::geteuid().is_root() {
            eprintln!("run starts containers: run it as root (sudo)");
            return 125;
        }
        let rt = match tokio::runtime::Runtime::new() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("cannot start a runtime: {e}");
                return 125;
            }
        };
        let code = rt.block_on(async {
            let own_dir = args.state_dir.is_none();
            let state_dir = args.state_dir.clone().unwrap_or_else(|| {
                PathBuf::from(format!("/tmp/libctd-run-{}", std::process::id()))
            });
            let remote = match LinuxRemote::builder().state_dir(&state_dir).build().await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("run: {}", e.report());
                    return 125;
                }
            };
            let rootfs = match &args.rootfs {
                Some(r) => Ok(r.clone()),
                // The spec's root is the image's snapshot: no rootfs is built.
                None if args.image.is_some() => Ok(PathBuf::from(libctd_core::IMAGE_ROOTFS_PATH)),
                None => {
                    let r = state_dir.join("rootfs");
                    build_busybox_rootfs(&r).map(|()| r)
                }
            };
            let result = match rootfs {
                Ok(rootfs) => run(&args, &remote, &rootfs).await,
                Err(e) => Err(e),
            };
            let _ = remote.cleanup().await;
            if own_dir {
                let _ = std::fs::remove_dir_all(&state_dir);
            }
            match result {
                Ok(code) => i32::try_from(code).unwrap_or(255),
                Err(e) => {
                    eprintln!("run: {}", e.report());
                    125
                }
            }
        });
        // A blocking read of our stdin may still be pending: do not wait for it.
        rt.shutdown_background();
        code
    }
}
