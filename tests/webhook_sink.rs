//! `webhook-sink`: a local stand-in for Slack and Teams webhooks, for `make demo` and for
//! trying `alerts:` without a workspace. It answers 200 on `/slack` and 202 on `/teams` (as
//! the services do), writes every body it takes to `<dir>/<n>-<path>.json` and prints one
//! line per message.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use sluice_tests::webhooks::Sink;

/// Receive webhook posts on 127.0.0.1 and keep their bodies.
#[derive(Debug, Parser)]
#[command(name = "webhook-sink")]
struct Cli {
    /// Port to listen on.
    #[arg(long, default_value_t = 8098)]
    port: u16,
    /// Where each body is written, as <n>-<path>.json.
    #[arg(long, default_value = ".local/webhooks")]
    dir: PathBuf,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    if let Err(e) = std::fs::create_dir_all(&cli.dir) {
        eprintln!("webhook-sink: cannot create {}: {e}", cli.dir.display());
        return std::process::ExitCode::FAILURE;
    }
    let answers = BTreeMap::from([("/teams".to_string(), vec![202])]);
    let sink = match Sink::start(cli.port, answers).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("webhook-sink: cannot listen on 127.0.0.1:{}: {e}", cli.port);
            return std::process::ExitCode::FAILURE;
        }
    };
    eprintln!(
        "webhook-sink: listening on {} (post to /slack or /teams), bodies in {}",
        sink.url,
        cli.dir.display()
    );
    let mut written = 0;
    loop {
        tokio::time::sleep(Duration::from_millis(100)).await;
        for r in sink.all().into_iter().skip(written) {
            written += 1;
            let name = format!(
                "{written:03}-{}.json",
                r.path.trim_start_matches('/').replace('/', "_")
            );
            let text = serde_json::to_string_pretty(&r.body).unwrap_or_default();
            let _ = std::fs::write(cli.dir.join(&name), text);
            let title = r.body["blocks"][0]["text"]["text"]
                .as_str()
                .or(r.body["attachments"][0]["content"]["body"][0]["text"].as_str())
                .unwrap_or("(no title)");
            println!(
                "{} {}  {title}  -> {}",
                r.status,
                r.path,
                cli.dir.join(name).display()
            );
        }
    }
}
