//! `palaver-bench`: a load generator for Palaver. It creates its own users and rooms on the server at `--url`, speaks
//! the JSON protocol (`palaver.v1.json`) and prints what it measured.
//!
//! Scenarios:
//! - `persist`: clients post as fast as acknowledgements allow (each in its own room, so fan-out does not count),
//!   keeping `--in-flight` messages outstanding; reports persisted (acknowledged) messages per second and the
//!   send→ack latency.
//! - `connections`: opens many idle authenticated connections from several source addresses; reports handshakes per
//!   second and the server's resident memory per connection, checks a sample is still answered, then closes them.
//! - `fanout`: rooms × members connections, senders posting at a set total rate; reports deliveries per second,
//!   send→receive latency, and messages lost or repeated per member.
//!
//! Run the server with a cheap bcrypt cost and no per-user message limit, e.g.
//! `PALAVER_BCRYPT_COST=4 PALAVER_WS_MESSAGE_LIMIT=1000000 cargo run --release`, then
//! `cargo run --release -p palaver-bench -- persist --clients 32 --seconds 10`. The connection scenarios also need
//! the per-address HTTP, registration and connection limits raised (BENCHMARKS.md has the exact commands).

mod client;
mod connections;
mod fanout;
mod login_timing;
mod persist;
mod server_proc;

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
    /// Idle connections: handshakes per second and the server's memory per connection.
    Connections(connections::Options),
    /// Rooms with many members: deliveries per second, send→receive latency, lost and repeated messages.
    Fanout(fanout::Options),
    /// Failed logins for a known and an unknown account: whether their timing tells them apart.
    LoginTiming(login_timing::Options),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Every connection is a file descriptor: take all the hard limit allows.
    if let Err(err) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("palaver-bench: cannot raise the open file limit: {err}");
    }
    let report = match cli.scenario {
        Scenario::Persist(options) => persist::run(&cli.url, options).await?,
        Scenario::Connections(options) => connections::run(&cli.url, options).await?,
        Scenario::Fanout(options) => fanout::run(&cli.url, options).await?,
        Scenario::LoginTiming(options) => login_timing::run(&cli.url, options).await?,
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
