//! Structured logs with `tracing`: human-readable or JSON, filtered by the `log` setting or `RUST_LOG`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber; a second call (e.g. in tests) is ignored.
pub fn init(filter: &str, format: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(true)
        // Colours only for a person at a terminal: a log file or collector gets plain text, in which any escape
        // sequence can only have come from input (and is then shown escaped, never raw).
        .with_ansi(std::io::stdout().is_terminal());
    let _ = if format == "json" {
        builder.json().try_init()
    } else {
        builder.try_init()
    };
}
