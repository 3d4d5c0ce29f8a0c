//! `palaver-bench`: a load generator for Palaver. It creates its own users and rooms on the server at `--url`, speaks
//! the JSON protocol (`palaver.v1.json`) and prints what it measured.
//!
//! Scenarios:
//! - `persist`: clients post as fast as acknowledgements allow (each in its own room, so fan-out does not count),
//!   keeping `--in-flight` messages outstanding; reports persisted (acknowledged) messages per second and the
//!   send→ack latency.
//!
//! Run the server with a cheap bcrypt cost and no per-user message limit, e.g.
//! `PALAVER_BCRYPT_COST=4 PALAVER_WS_MESSAGE_LIMIT=1000000 cargo run --release`, then
//! `cargo run --release -p palaver-bench -- persist --clients 32 --seconds 10`.

mod client;
mod persist;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(version, about = "Load generator for Palaver")]
struct Cli {
    /// The server's base URL.
    #[arg(long, global = true, default_value = "http://127.0.0.1:8080")]
    url: String,
    /// Print the result as JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand)]
enum Scenario {
    /// Sustained posting: acknowledged messages per second and send→ack latency.
    Persist(persist::Options),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let report = match cli.scenario {
        Scenario::Persist(options) => persist::run(&cli.url, options).await?,
    };
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for (key, value) in report.as_object().into_iter().flatten() {
            println!("{key:<24} {value}");
        }
    }
    Ok(())
}
