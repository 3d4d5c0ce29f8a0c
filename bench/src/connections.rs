//! The `connections` scenario: how many idle authenticated WebSockets the server holds, how fast it accepts them,
//! and what each costs it in resident memory.
//!
//! Across a cluster (`--url` several times) connection `i` goes to URL `i % urls`, and the memory reported is that of
//! every server process added up (each found by its URL's listening port, or given with `--server-pid`); per
//! connection is the growth of that sum divided by the connections opened. Across processes (`--processes N`) each
//! worker opens one block of the connections with users of its own; the parent measures the servers while every
//! worker holds its connections, so the memory is that of all of them at once.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::client::{self, Connector, Socket};
use crate::server_proc;
use crate::spread;
use crate::workers::{self, Link, Plan, Workers};

/// Options of the `connections` scenario.
#[derive(clap::Args, Clone)]
pub struct Options {
    /// Idle connections to open and hold.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Handshakes in flight at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Source addresses to spread connections over (127.0.0.2 onwards); each has about 28 000 ephemeral ports.
    #[arg(long, default_value_t = 4)]
    source_addresses: usize,
    /// Connections per user (the server may cap how many one user holds).
    #[arg(long, default_value_t = 10)]
    per_user: usize,
    /// How long to hold the connections open, in seconds.
    #[arg(long, default_value_t = 5)]
    hold: u64,
    /// How many of the connections are checked to be alive (a `list_rooms` answered) after the hold.
    #[arg(long, default_value_t = 1000)]
    probes: usize,
    /// The server's process id, for its memory; found by the listening port of each `--url` when omitted. Give it
    /// several times (or comma-separated) for a cluster: the report adds their memory up.
    #[arg(long, value_delimiter = ',')]
    pub(crate) server_pid: Vec<u32>,
}

/// What the held connections are asked to do.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Hold,
    Probe,
    Close,
}

/// The servers' processes, measured by resident memory: those given with `--server-pid`, else the one listening on
/// each URL's port (each found once, however many URLs lead to it).
struct Servers {
    pids: Vec<u32>,
}

impl Servers {
    fn find(urls: &[String], given: &[u32]) -> anyhow::Result<Servers> {
        if !given.is_empty() {
            return Ok(Servers {
                pids: given.to_vec(),
            });
        }
        let mut pids = Vec::new();
        for url in urls {
            let parsed = reqwest::Url::parse(url).with_context(|| format!("bad --url {url}"))?;
            let pid = parsed
                .port_or_known_default()
                .and_then(server_proc::find_by_port);
            if let Some(pid) = pid
                && !pids.contains(&pid)
            {
                pids.push(pid);
            }
        }
        Ok(Servers { pids })
    }

    /// Their resident memory added up, in KiB; none when there is no process or one cannot be read.
    fn rss(&self) -> Option<u64> {
        if self.pids.is_empty() {
            return None;
        }
        self.pids
            .iter()
            .map(|&pid| server_proc::rss_kib(pid).ok())
            .sum()
    }
}

/// A gauge added up over every server; none when one does not show it.
async fn metric_sum(http: &reqwest::Client, urls: &[String], name: &str) -> Option<f64> {
    let mut total = 0.0;
    for url in urls {
        total += client::metric(http, url, name).await?;
    }
    Some(total)
}

/// The parent's side: measures the servers around the workers' steps (`ready` once the users exist, `opened` once
/// every connection is open or failed, `probed`, and `report` once all are closed) and merges what they counted.
pub async fn drive(
    urls: &[String],
    options: &Options,
    workers: &mut Workers,
) -> anyhow::Result<Value> {
    let http = reqwest::Client::new();
    let servers = Servers::find(urls, &options.server_pid)?;
    let ready = workers.gather("ready").await?;
    let open_before = metric_sum(&http, urls, "palaver_connections_open").await;
    let rss_before = servers.rss();

    let started = Instant::now();
    workers.tell("start", json!({}))?;
    let opened_parts = workers.gather("opened").await?;
    let handshake_secs = started.elapsed().as_secs_f64();
    let mut handshakes = Histogram::<u64>::new(3)?;
    let mut errors: Vec<String> = Vec::new();
    for part in &opened_parts {
        spread::merge_histograms(&mut handshakes, part["handshakes"].as_str())?;
        for err in part["errors"].as_array().into_iter().flatten() {
            if let Some(err) = err.as_str()
                && errors.len() < 5
                && !errors.iter().any(|known| known == err)
            {
                errors.push(err.to_owned());
            }
        }
    }
    let failed = workers::sum(&opened_parts, "failed") as usize;
    let opened = handshakes.len() as usize;
    // Let the servers finish what follows each handshake before measuring them.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_open = servers.rss();
    let open_server = metric_sum(&http, urls, "palaver_connections_open").await;
    tokio::time::sleep(Duration::from_secs(options.hold)).await;
    let rss_held = servers.rss();

    workers.tell("probe", json!({}))?;
    let probed_parts = workers.gather("probed").await?;
    let (probed, alive) = (
        workers::sum(&probed_parts, "probed"),
        workers::sum(&probed_parts, "alive"),
    );
    let closing = Instant::now();
    workers.tell("close", json!({}))?;
    let reports = workers.gather("report").await?;
    let close_secs = closing.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_closed = servers.rss();

    let per_conn = match (rss_before, rss_held) {
        (Some(before), Some(held)) if opened > 0 => {
            Some(((held as f64 - before as f64) * 1024.0 / opened as f64).round())
        }
        _ => None,
    };
    let ms = |q: f64| handshakes.value_at_quantile(q) as f64 / 1000.0;
    Ok(json!({
        "scenario": "connections",
        "connections": options.connections,
        "opened": opened,
        "failed": failed,
        "errors": errors,
        "users": workers::sum(&ready, "users"),
        "source_addresses": options.source_addresses,
        "concurrency": options.concurrency,
        "handshake_seconds": round2(handshake_secs),
        "handshakes_per_sec": (opened as f64 / handshake_secs).round(),
        "handshake_p50_ms": ms(0.5),
        "handshake_p99_ms": ms(0.99),
        "server_open_before": open_before,
        "server_open_after": open_server,
        "server_pid": (servers.pids.len() == 1).then(|| servers.pids[0]),
        "server_rss_before_kib": rss_before,
        "server_rss_open_kib": rss_open,
        "server_rss_held_kib": rss_held,
        "server_rss_closed_kib": rss_closed,
        "server_rss_per_conn_bytes": per_conn,
        "dropped_while_held": workers::sum(&reports, "dropped"),
        "probed": probed,
        "alive": alive,
        "close_seconds": round2(close_secs),
        "urls": urls,
        "processes": workers.len(),
        "servers_measured": servers.pids.len(),
        "server_pids": servers.pids,
    }))
}

/// A worker's side: registers users for its block of the connections, says `ready`; on `start` opens them (dealt
/// round-robin over the URLs by their number) and says `opened` with the handshake times; on `probe` asks its
/// sample for `list_rooms` and says `probed`; on `close` closes them all and says `report`.
pub async fn work(plan: Plan, options: Options, mut link: Link) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let mut connectors = Vec::with_capacity(plan.urls.len());
    for url in &plan.urls {
        connectors.push(Connector::new(url, options.source_addresses).await?);
    }
    let share = spread::block(options.connections, plan.workers, plan.index);
    let per_user = options.per_user.max(1);
    let tokens = client::users(
        &http,
        &plan.urls[0],
        &plan.user_tag(),
        share.len().div_ceil(per_user),
    )
    .await?;
    link.say("ready", json!({"users": tokens.len()}))?;
    link.hear("start").await?;

    let (phase_tx, phase) = watch::channel(Phase::Hold);
    let (opened_tx, mut opened_rx) = mpsc::channel(1024);
    let (probed_tx, mut probed_rx) = mpsc::channel(1024);
    let dropped = Arc::new(AtomicUsize::new(0));
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let probe_every = options.connections.div_ceil(options.probes.max(1)).max(1);
    let mut tasks = Vec::with_capacity(share.len());
    for (j, i) in share.enumerate() {
        let (connector, token) = (
            spread::pick(&connectors, i).clone(),
            tokens[j / per_user].clone(),
        );
        let (permits, opened, probed) = (permits.clone(), opened_tx.clone(), probed_tx.clone());
        let (phase, dropped) = (phase.clone(), dropped.clone());
        let probe = options.probes > 0 && i % probe_every == 0;
        tasks.push(tokio::spawn(async move {
            let permit = permits.acquire_owned().await;
            let began = Instant::now();
            let socket = connector.open(&token, i).await;
            drop(permit);
            let socket = match socket {
                Ok(socket) => {
                    let _ = opened.send(Ok(began.elapsed())).await;
                    socket
                }
                Err(err) => {
                    let _ = opened.send(Err(format!("{err:#}"))).await;
                    return;
                }
            };
            drop(opened);
            hold(socket, probe, phase, probed, dropped).await;
        }));
    }
    drop((opened_tx, probed_tx));

    let mut handshakes = Histogram::<u64>::new(3)?;
    let mut errors: Vec<String> = Vec::new();
    let mut failed = 0usize;
    while let Some(result) = opened_rx.recv().await {
        match result {
            Ok(took) => handshakes.record(took.as_micros() as u64)?,
            Err(err) => {
                failed += 1;
                if errors.len() < 5 && !errors.contains(&err) {
                    errors.push(err);
                }
            }
        }
    }
    link.say(
        "opened",
        json!({
            "failed": failed,
            "errors": errors,
            "handshakes": spread::encode_histogram(&handshakes)?,
        }),
    )?;

    link.hear("probe").await?;
    let _ = phase_tx.send(Phase::Probe);
    let (mut probed, mut alive) = (0usize, 0usize);
    while let Some(ok) = probed_rx.recv().await {
        probed += 1;
        alive += usize::from(ok);
    }
    link.say("probed", json!({"probed": probed, "alive": alive}))?;

    link.hear("close").await?;
    let _ = phase_tx.send(Phase::Close);
    for task in tasks {
        let _ = task.await;
    }
    link.say(
        "report",
        json!({"dropped": dropped.load(Ordering::Relaxed)}),
    )?;
    Ok(())
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// Holds one connection: reads (so pings are answered) until asked to probe, probes if it is in the sample, then
/// closes when asked to.
async fn hold(
    mut socket: Socket,
    probe: bool,
    mut phase: watch::Receiver<Phase>,
    probed: mpsc::Sender<bool>,
    dropped: Arc<AtomicUsize>,
) {
    let alive = loop {
        tokio::select! {
            changed = phase.changed() => {
                if changed.is_err() || *phase.borrow() != Phase::Hold {
                    break true;
                }
            }
            frame = socket.next() => {
                if !matches!(frame, Some(Ok(_))) {
                    dropped.fetch_add(1, Ordering::Relaxed);
                    break false;
                }
            }
        }
    };
    if probe {
        let answered = alive && list_rooms(&mut socket).await;
        let _ = probed.send(answered).await;
    }
    drop(probed);
    if !alive {
        return;
    }
    let _ = phase.wait_for(|phase| *phase == Phase::Close).await;
    client::close(socket).await;
}

/// Whether the server answers a `list_rooms` on `socket` within ten seconds.
async fn list_rooms(socket: &mut Socket) -> bool {
    let asked = async {
        socket
            .send(client::frame("list_rooms", "probe", json!({})))
            .await?;
        client::expect(socket, "rooms").await
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(10), asked).await,
        Ok(Ok(_))
    )
}
