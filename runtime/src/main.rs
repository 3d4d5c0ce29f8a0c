//! `palaver`: the chat server. `palaver` (or `palaver serve`) runs it with the configuration from
//! `config/default.toml` and `PALAVER_*` environment variables.

use anyhow::Context as _;
use palaver_runtime::{Settings, telemetry};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            // One readable line (with its causes) rather than a debug dump: this is what an operator sees.
            eprintln!("palaver: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let command = std::env::args().nth(1).unwrap_or_else(|| "serve".into());
    match command.as_str() {
        "serve" => serve().await,
        "--help" | "-h" | "help" => {
            println!(
                "usage: palaver [serve]\n\nSettings come from config/default.toml and PALAVER_* variables."
            );
            Ok(())
        }
        other => anyhow::bail!("unknown command {other:?}; try `palaver --help`"),
    }
}

async fn serve() -> anyhow::Result<()> {
    let settings = Settings::load().context("configuration")?;
    telemetry::init(&settings.log, &settings.log_format);
    let server = palaver_runtime::start(settings).await?;
    server.run_until(shutdown_signal()).await;
    Ok(())
}

/// Resolves on SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(err) => {
                tracing::warn!(error = %err, "cannot listen for SIGTERM; only Ctrl-C stops the server");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
