//! The worker binaries the tests run: where `make test` built them, log-ingest started as a
//! service, and a process's peak memory (the bench reads it too).

use std::path::PathBuf;

/// A worker binary next to the test's profile directory, built by `make test` first
/// (`cargo build --workspace --bins`; `cargo test` does not build other packages' binaries).
pub fn binary(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let path = exe
        .parent()
        .and_then(|p| p.parent())
        .expect("target/debug")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --bins -p {name}` (make test does)",
        path.display()
    );
    path
}

/// Starts `log-ingest serve --target local` from `exe` with `config` on a free loopback port
/// and waits until `/healthz` answers; returns the child and the push URL.
pub async fn spawn_log_ingest(
    exe: &std::path::Path,
    config: &std::path::Path,
) -> std::io::Result<(tokio::process::Child, String)> {
    spawn_log_ingest_with(exe, config, &[], None).await
}

/// Like `spawn_log_ingest`, with environment variables set (`K_SERVICE`, as Cloud Run sets
/// it) and its log lines written to `log`.
pub async fn spawn_log_ingest_with(
    exe: &std::path::Path,
    config: &std::path::Path,
    envs: &[(&str, &str)],
    log: Option<&std::path::Path>,
) -> std::io::Result<(tokio::process::Child, String)> {
    let stderr = match log {
        Some(path) => std::process::Stdio::from(std::fs::File::create(path)?),
        None => std::process::Stdio::inherit(),
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let mut child = tokio::process::Command::new(exe)
        .args([
            "serve",
            "--target",
            "local",
            "--host",
            "127.0.0.1",
            "--log-format",
            "json",
        ])
        .arg("--port")
        .arg(port.to_string())
        .arg("--config")
        .arg(config)
        .envs(envs.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(stderr)
        .spawn()?;
    let url = format!("http://127.0.0.1:{port}/");
    let http = reqwest::Client::new();
    let started = std::time::Instant::now();
    while http.get(format!("{url}healthz")).send().await.is_err() {
        if let Some(status) = child.try_wait()? {
            return Err(std::io::Error::other(format!(
                "log-ingest exited: {status}"
            )));
        }
        if started.elapsed() > std::time::Duration::from_secs(60) {
            return Err(std::io::Error::other(
                "log-ingest did not answer /healthz in 60 s",
            ));
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    Ok((child, url))
}

/// Peak resident memory (VmHWM) of a process (`self` or a pid), in KiB.
pub fn peak_rss_kib_of(pid: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}
