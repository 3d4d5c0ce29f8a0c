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
//!
//! A cluster: give `--url` once per node (or comma-separated); the nodes must share one database and one JWT secret.
//! Users and rooms are created over the first URL and the clients are spread over all of them (each scenario's
//! module says how). More clients than one process may hold open files for: `--processes N` runs the clients in N
//! worker processes, each with its share, and merges their results (the `workers` module says how).

mod client;
mod connections;
mod fanout;
mod login_timing;
mod persist;
mod server_proc;
mod spread;
mod workers;

use std::time::Instant;

use anyhow::bail;
use clap::{Parser, Subcommand};
use serde_json::Value;

use workers::{Link, Plan, Workers};

#[derive(Parser)]
#[command(version, about = "Load generator for Palaver")]
struct Cli {
    /// The server's base URL. Give it several times, or comma-separated, to spread the clients over a cluster's
    /// nodes (users and rooms are created over the first); all on the same side of the scenario's name, since
    /// those given after it replace those given before.
    #[arg(
        long,
        global = true,
        value_delimiter = ',',
        default_value = "http://127.0.0.1:8080"
    )]
    url: Vec<String>,
    /// Print the result as JSON instead of a table.
    #[arg(long, global = true)]
    json: bool,
    /// Worker processes to run the clients in, each with its share (one process may hold only so many open files).
    #[arg(long, global = true, default_value_t = 1)]
    processes: usize,
    /// Run as worker number I of a multi-process run (started by the bench itself).
    #[arg(long, global = true, hide = true)]
    worker: Option<usize>,
    /// The run's tag, given to the workers of a multi-process run.
    #[arg(long, global = true, hide = true)]
    tag: Option<String>,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Clone)]
enum Scenario {
    /// Sustained posting: acknowledged messages per second and send→ack latency.
    Persist(persist::Options),
    /// Idle connections: handshakes per second and the server's memory per connection.
    Connections(connections::Options),
    /// Rooms with many members: deliveries per second, send→receive latency, lost and repeated messages.
    Fanout(fanout::Options),
    /// Failed logins for a known and an unknown account: whether their timing tells them apart (one process, the
    /// first `--url`).
    LoginTiming(login_timing::Options),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Every connection is a file descriptor: take all the hard limit allows.
    if let Err(err) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("palaver-bench: cannot raise the open file limit: {err}");
    }
    let urls = spread::urls(&cli.url)?;
    let processes = cli.processes.max(1);
    if let Some(index) = cli.worker {
        let Some(tag) = cli.tag else {
            bail!("--worker needs --tag");
        };
        let plan = Plan {
            urls,
            workers: processes,
            index,
            tag,
        };
        let ok = workers::serve_stdio(|link| work(plan, cli.scenario, link)).await;
        std::process::exit(if ok { 0 } else { 1 });
    }
    let report = run(&urls, processes, cli.scenario).await?;
    if cli.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for (key, value) in report.as_object().into_iter().flatten() {
            println!("{key:<24} {value}");
        }
    }
    Ok(())
}

/// Runs `scenario` as the parent: starts the workers and steers them.
async fn run(urls: &[String], processes: usize, scenario: Scenario) -> anyhow::Result<Value> {
    let tag = workers::new_tag();
    let launch = |scenario: &Scenario| {
        let scenario = scenario.clone();
        Workers::launch(urls, processes, &tag, move |plan, link| {
            work(plan, scenario, link)
        })
    };
    let report;
    let workers = match &scenario {
        Scenario::LoginTiming(options) => {
            if processes > 1 {
                bail!("login-timing runs in one process");
            }
            return login_timing::run(&urls[0], options.clone()).await;
        }
        Scenario::Persist(options) => {
            let mut workers = launch(&scenario)?;
            report = persist::drive(urls, options, &mut workers).await?;
            workers
        }
        Scenario::Connections(options) => {
            let mut workers = launch(&scenario)?;
            report = connections::drive(urls, options, &mut workers).await?;
            workers
        }
        Scenario::Fanout(options) => {
            options.check(urls.len())?;
            let began = Instant::now();
            let owners = if processes > 1 {
                fanout::create_rooms(&urls[0], &tag, options).await?
            } else {
                0
            };
            let mut workers = launch(&scenario)?;
            report = fanout::drive(urls, options, &mut workers, began, owners).await?;
            workers
        }
    };
    workers.finish().await?;
    Ok(report)
}

/// A worker's part of `scenario`.
async fn work(plan: Plan, scenario: Scenario, link: Link) -> anyhow::Result<()> {
    match scenario {
        Scenario::Persist(options) => persist::work(plan, options, link).await,
        Scenario::Connections(options) => connections::work(plan, options, link).await,
        Scenario::Fanout(options) => fanout::work(plan, options, link).await,
        Scenario::LoginTiming(_) => bail!("login-timing has no workers"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_may_be_repeated_or_comma_separated() {
        let cli = Cli::try_parse_from([
            "palaver-bench",
            "--url",
            "http://127.0.0.1:8091,http://127.0.0.1:8092",
            "--url",
            "http://127.0.0.1:8093",
            "fanout",
            "--processes",
            "3",
        ])
        .unwrap();
        assert_eq!(
            spread::urls(&cli.url).unwrap(),
            [
                "http://127.0.0.1:8091",
                "http://127.0.0.1:8092",
                "http://127.0.0.1:8093"
            ]
        );
        assert_eq!(cli.processes, 3);
        assert_eq!(cli.worker, None);
        let after = Cli::try_parse_from([
            "palaver-bench",
            "connections",
            "--url",
            "http://127.0.0.1:8091",
            "--url",
            "http://127.0.0.1:8092",
        ])
        .unwrap();
        assert_eq!(
            after.url,
            ["http://127.0.0.1:8091", "http://127.0.0.1:8092"]
        );
    }

    #[test]
    fn one_server_and_one_process_by_default() {
        let cli = Cli::try_parse_from(["palaver-bench", "persist"]).unwrap();
        assert_eq!(cli.url, ["http://127.0.0.1:8080"]);
        assert_eq!(cli.processes, 1);
    }

    #[test]
    fn a_worker_takes_its_number_and_tag_after_the_scenario_arguments() {
        let cli = Cli::try_parse_from([
            "palaver-bench",
            "--processes",
            "2",
            "connections",
            "--connections",
            "2000",
            "--server-pid",
            "10,11",
            "--worker",
            "1",
            "--tag",
            "abcd1234",
        ])
        .unwrap();
        assert_eq!(
            (cli.worker, cli.tag.as_deref()),
            (Some(1), Some("abcd1234"))
        );
        let Scenario::Connections(options) = cli.scenario else {
            panic!("not connections");
        };
        assert_eq!(options.server_pid, [10, 11]);
    }
}
