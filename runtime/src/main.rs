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
        "audit" => audit(std::env::args().skip(2).collect()).await,
        "--help" | "-h" | "help" => {
            println!(
                "usage: palaver [serve]\n       palaver audit [--since <RFC 3339 time | 30m | 12h | 7d>] [--limit N]\n\n\
                 Settings come from config/default.toml and PALAVER_* variables."
            );
            Ok(())
        }
        other => anyhow::bail!("unknown command {other:?}; try `palaver --help`"),
    }
}

async fn serve() -> anyhow::Result<()> {
    let settings = Settings::load().context("configuration")?;
    telemetry::init(&settings.log, &settings.log_format);
    raise_open_file_limit();
    let server = palaver_runtime::start(settings).await?;
    server.run_until(shutdown_signal()).await;
    Ok(())
}

/// Raises the soft limit on open files to the hard limit: every WebSocket is a file descriptor, and the usual soft
/// limit (1024) would refuse connections long before memory runs out. Failing to raise it is logged, not fatal.
fn raise_open_file_limit() {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => tracing::info!(limit, "open file limit raised to the hard limit"),
        Err(err) => tracing::warn!(error = %err, "cannot raise the open file limit"),
    }
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

/// `palaver audit --since …`: prints recent security events from the configured database, one JSON object a line.
async fn audit(args: Vec<String>) -> anyhow::Result<()> {
    let mut since = time::OffsetDateTime::now_utc() - time::Duration::days(1);
    let mut limit = 1000u32;
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        let value = args
            .next()
            .with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--since" => since = parse_since(&value)?,
            "--limit" => limit = value.parse().context("--limit must be a number")?,
            other => anyhow::bail!("unknown option {other:?}; try `palaver --help`"),
        }
    }
    let settings = Settings::load().context("configuration")?;
    let opened = palaver_runtime::store::open(
        &settings.database_url,
        &settings.sqlite_path,
        settings.db_pool_size,
        settings.db_timeout(),
    )
    .await
    .context("cannot open the database")?;
    let events = opened
        .store
        .audit_since(since, limit)
        .await
        .context("cannot read the audit log")?;
    for event in events {
        let line = serde_json::json!({
            "at": event.at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "event": event.event,
            "outcome": event.outcome,
            "user_id": event.user_id,
            "username": event.username,
            "ip": event.ip,
            "user_agent": event.user_agent,
            "details": event.details,
        });
        println!("{line}");
    }
    Ok(())
}

/// An RFC 3339 time, or a span back from now: `30m`, `12h`, `7d`.
fn parse_since(value: &str) -> anyhow::Result<time::OffsetDateTime> {
    if let Ok(at) =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
    {
        return Ok(at);
    }
    let (number, unit) = value.split_at(value.len().saturating_sub(1));
    let number: i64 = number
        .parse()
        .with_context(|| format!("--since {value:?}: a time or a span like 12h"))?;
    let span = match unit {
        "m" => time::Duration::minutes(number),
        "h" => time::Duration::hours(number),
        "d" => time::Duration::days(number),
        _ => anyhow::bail!("--since {value:?}: a time or a span like 30m, 12h, 7d"),
    };
    Ok(time::OffsetDateTime::now_utc() - span)
}

#[cfg(test)]
mod tests {
    use super::parse_since;

    #[test]
    fn since_takes_a_time_or_a_span() {
        let at = parse_since("2026-11-25T15:30:45Z").unwrap();
        assert_eq!(at.hour(), 15);
        let hour_ago = parse_since("1h").unwrap();
        let elapsed = time::OffsetDateTime::now_utc() - hour_ago;
        assert!((elapsed - time::Duration::hours(1)).abs() < time::Duration::seconds(5));
        assert!(parse_since("soon").is_err());
        assert!(parse_since("5y").is_err());
    }
}
