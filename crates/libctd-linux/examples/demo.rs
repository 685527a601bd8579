//! A tour of libctd on Linux: starts a private containerd, makes an image
//! archive from the host's busybox (offline, no registry), imports it with
//! its progress shown, runs a container on a snapshot of it that prints,
//! runs an exec in it, pauses and resumes it, reads its stats, shows each
//! event as it arrives, then removes the container, its snapshot and the
//! image, and cleans everything up.
//!
//! Run as root: `cargo run -p libctd-linux --example demo`.

#[cfg(not(unix))]
fn main() {
    eprintln!("the Linux demo runs on Linux only");
}

#[cfg(unix)]
fn main() -> std::process::ExitCode {
    demo::main()
}

#[cfg(unix)]
mod demo {
    use std::path::PathBuf;
    use std::process::ExitCode;
    use std::sync::Arc;
    use std::time::Duration;

    use libctd_core::{
        Backend, BoxError, CreateOptions, DirectIo, EventInfo, EventType, INIT_PROCESS_ID,
        ImportOptions, ImportProgress, PlatformStats, Remote, Result, StdioAttachment,
        stdio_callback,
    };
    use libctd_linux::LinuxRemote;
    use libctd_testkit::containerd::{build_busybox_rootfs, busybox_process, busybox_spec};
    use libctd_testkit::image::{ImageArchive, Layer};

    /// The demo image's name.
    const IMAGE: &str = "example.com/libctd/demo:1";
    use tokio::io::{AsyncBufReadExt, BufReader};
    use tokio::sync::mpsc;

    /// Prints each event as it arrives and forwards it to `main`.
    struct Printer(mpsc::UnboundedSender<(EventType, EventInfo)>);

    #[libctd_core::async_trait]
    impl Backend for Printer {
        async fn process_event(
            &self,
            container_id: &str,
            event: EventType,
            info: EventInfo,
        ) -> std::result::Result<(), BoxError> {
            let mut line = format!("  [event] {container_id}/{} {event}", info.process_id);
            if info.pid != 0 {
                line.push_str(&format!(" pid={}", info.pid));
            }
            if event == EventType::Exit {
                line.push_str(&format!(" exit_code={}", info.exit_code));
            }
            if info.oom_killed {
                line.push_str(" oom_killed");
            }
            println!("{line}");
            let _ = self.0.send((event, info));
            Ok(())
        }
    }

    /// Prints a process's output lines with a prefix.
    fn print_output(prefix: &'static str) -> libctd_core::StdioCallback {
        stdio_callback(move |io: DirectIo| {
            let mut tasks = Vec::new();
            for stream in [io.stdout, io.stderr].into_iter().flatten() {
                tasks.push(tokio::spawn(async move {
                    let mut lines = BufReader::new(stream).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        println!("  [{prefix}] {line}");
                    }
                }));
            }
            Ok(Box::new(tasks) as Box<dyn StdioAttachment>)
        })
    }

    /// Waits for `event` of `process_id`.
    async fn wait_event(
        rx: &mut mpsc::UnboundedReceiver<(EventType, EventInfo)>,
        event: EventType,
        process_id: &str,
    ) -> Result<EventInfo> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let next = tokio::time::timeout_at(deadline, rx.recv()).await;
            match next {
                Ok(Some((e, info))) if e == event && info.process_id == process_id => {
                    return Ok(info);
                }
                Ok(Some(_)) => {}
                _ => {
                    return Err(libctd_core::Error::deadline_exceeded(format!(
                        "no {event} event of {process_id} within 30s"
                    )));
                }
            }
        }
    }

    async fn tour(
        remote: &LinuxRemote,
        rootfs: &std::path::Path,
        rx: &mut mpsc::UnboundedReceiver<(EventType, EventInfo)>,
        tx: mpsc::UnboundedSender<(EventType, EventInfo)>,
    ) -> Result<()> {
        let client = remote
            .new_client("libctd-demo", Arc::new(Printer(tx)))
            .await?;
        let v = client.version().await?;
        println!("containerd {} ({})", v.version, v.revision);

        // An image archive made here from the host's busybox: one gzip layer.
        let archive = ImageArchive::new(IMAGE)
            .layer(Layer::from_dir(rootfs)?.gzip())
            .env(["GREETING=hello from a libctd container"])
            .cmd([
                "sh",
                "-c",
                "echo $GREETING; i=0; while :; do i=$((i+1)); echo tick $i; sleep 1; done",
            ])
            .oci()?;
        println!("import {IMAGE} ({} bytes)", archive.len());
        let images = client
            .images()
            .ok_or_else(|| libctd_core::Error::not_implemented("no images on this backend"))?;
        let progress = |p: &ImportProgress| {
            if p.done == p.total {
                println!("  stored {} ({} bytes)", p.blob, p.total);
            }
        };
        let imported = images
            .import(
                Box::pin(std::io::Cursor::new(archive)),
                ImportOptions::new().with_progress(progress),
            )
            .await?;
        let image = imported
            .into_iter()
            .next()
            .ok_or_else(|| libctd_core::Error::not_found("the archive holds no image"))?;
        println!("imported {} ({})", image.name, image.digest);

        // The spec from the image's configuration (its Cmd and Env), on a
        // fresh snapshot of it.
        let mut spec = busybox_spec(rootfs, &["true"], false, Some(64 << 20));
        image.config.apply(&mut spec, None)?;
        println!("create demo from {}", image.name);
        let options = CreateOptions::new().with_image(image.name.as_str());
        client.create("demo", &spec, options).await?;
        let pid = client
            .start("demo", None, false, print_output("demo"))
            .await?;
        println!("started demo as pid {pid}");

        println!("exec greet");
        let greet = busybox_process(
            &["sh", "-c", "echo hello from an exec in $(hostname)"],
            false,
        );
        client
            .exec("demo", "greet", &greet, false, print_output("greet"))
            .await?;
        let exit = wait_event(rx, EventType::Exit, "greet").await?;
        println!("greet exited with {}", exit.exit_code);

        println!("pause");
        client.pause("demo").await?;
        wait_event(rx, EventType::Paused, INIT_PROCESS_ID).await?;
        println!("status: {}", client.status("demo").await?);
        println!("resume");
        client.resume("demo").await?;
        wait_event(rx, EventType::Resumed, INIT_PROCESS_ID).await?;
        println!("status: {}", client.status("demo").await?);

        let stats = client.stats("demo").await?;
        if let PlatformStats::Linux(s) = stats.platform {
            println!(
                "stats: memory {} KiB of {} KiB, cpu {} ms, {} processes",
                s.memory.usage / 1024,
                s.memory.limit / 1024,
                s.cpu.usage_total_ns / 1_000_000,
                s.pids.current
            );
        }
        println!("pids: {:?}", client.list_pids("demo").await?);

        println!("stop demo (SIGKILL)");
        client.signal_process("demo", INIT_PROCESS_ID, 9).await?;
        let exit = wait_event(rx, EventType::Exit, INIT_PROCESS_ID).await?;
        println!("demo exited with {}", exit.exit_code);
        let task = client.delete_task("demo").await?;
        println!("task deleted (exit code {})", task.exit_code);
        client.delete("demo").await?;
        println!("container and its snapshot deleted");
        images.remove_image(&image.name).await?;
        println!("image removed");
        Ok(())
    }

    pub(crate) fn main() -> ExitCode {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
            )
            .try_init();
        if !nix::unistd::geteuid().is_root() {
            eprintln!("the demo runs containers: run it as root (sudo)");
            return ExitCode::FAILURE;
        }
        let rt = match tokio::runtime::Runtime::new() {
            Ok(rt) => rt,
            Err(e) => {
                eprintln!("cannot start a runtime: {e}");
                return ExitCode::FAILURE;
            }
        };
        rt.block_on(async {
            let state_dir = PathBuf::from(format!("/tmp/libctd-demo-{}", std::process::id()));
            println!(
                "starting an embedded containerd under {}",
                state_dir.display()
            );
            let remote = match LinuxRemote::builder().state_dir(&state_dir).build().await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("error: {}", e.report());
                    let _ = std::fs::remove_dir_all(&state_dir);
                    return ExitCode::FAILURE;
                }
            };
            let rootfs = state_dir.join("rootfs");
            let (tx, mut rx) = mpsc::unbounded_channel();
            let result = match build_busybox_rootfs(&rootfs) {
                Ok(()) => tour(&remote, &rootfs, &mut rx, tx).await,
                Err(e) => Err(e),
            };
            println!("cleanup: stopping containerd");
            let cleaned = remote.cleanup().await;
            let _ = std::fs::remove_dir_all(&state_dir);
            match result.and(cleaned) {
                Ok(()) => {
                    println!("done");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: {}", e.report());
                    ExitCode::FAILURE
                }
            }
        })
    }
}
