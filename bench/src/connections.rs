//! The `connections` scenario: how many idle authenticated WebSockets the server holds, how fast it accepts them,
//! and what each costs it in resident memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};

use crate::client::{self, Connector, Socket};
use crate::server_proc;

/// Options of the `connections` scenario.
#[derive(clap::Args)]
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
    /// The server's process id, for its memory; found by the listening port when omitted.
    #[arg(long)]
    server_pid: Option<u32>,
}

/// What the held connections are asked to do.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Hold,
    Probe,
    Close,
}

/// Runs the scenario against `url`.
pub async fn run(url: &str, options: Options) -> anyhow::Result<Value> {
    let http = reqwest::Client::new();
    let connector = Connector::new(url, options.source_addresses).await?;
    let pid = options
        .server_pid
        .or_else(|| server_proc::find_by_port(connector.port()));
    let rss = || pid.and_then(|pid| server_proc::rss_kib(pid).ok());
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let per_user = options.per_user.max(1);
    let tokens = client::users(&http, url, tag, options.connections.div_ceil(per_user)).await?;
    let open_before = client::metric(&http, url, "palaver_connections_open").await;
    let rss_before = rss();

    let (phase_tx, phase) = watch::channel(Phase::Hold);
    let (opened_tx, mut opened_rx) = mpsc::channel(1024);
    let (probed_tx, mut probed_rx) = mpsc::channel(1024);
    let dropped = Arc::new(AtomicUsize::new(0));
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let probe_every = options.connections.div_ceil(options.probes.max(1)).max(1);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(options.connections);
    for i in 0..options.connections {
        let (connector, token) = (connector.clone(), tokens[i / per_user].clone());
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
    let handshake_secs = started.elapsed().as_secs_f64();
    let opened = handshakes.len() as usize;
    // Let the server finish what follows each handshake before measuring it.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_open = rss();
    let open_server = client::metric(&http, url, "palaver_connections_open").await;
    tokio::time::sleep(Duration::from_secs(options.hold)).await;
    let rss_held = rss();

    let _ = phase_tx.send(Phase::Probe);
    let (mut probed, mut alive) = (0usize, 0usize);
    while let Some(ok) = probed_rx.recv().await {
        probed += 1;
        alive += usize::from(ok);
    }
    let _ = phase_tx.send(Phase::Close);
    let closing = Instant::now();
    for task in tasks {
        let _ = task.await;
    }
    let close_secs = closing.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_closed = rss();

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
        "users": tokens.len(),
        "source_addresses": options.source_addresses,
        "concurrency": options.concurrency,
        "handshake_seconds": round2(handshake_secs),
        "handshakes_per_sec": (opened as f64 / handshake_secs).round(),
        "handshake_p50_ms": ms(0.5),
        "handshake_p99_ms": ms(0.99),
        "server_open_before": open_before,
        "server_open_after": open_server,
        "server_pid": pid,
        "server_rss_before_kib": rss_before,
        "server_rss_open_kib": rss_open,
        "server_rss_held_kib": rss_held,
        "server_rss_closed_kib": rss_closed,
        "server_rss_per_conn_bytes": per_conn,
        "dropped_while_held": dropped.load(Ordering::Relaxed),
        "probed": probed,
        "alive": alive,
        "close_seconds": round2(close_secs),
    }))
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
