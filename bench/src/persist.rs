//! The `persist` scenario: how many messages per second the server stores and acknowledges, and how long a sender
//! waits for its ack.
//!
//! Across a cluster (`--url` several times) client `i` connects to URL `i % urls`; across processes
//! (`--processes N`) each worker runs one block of the clients, and the parent adds up their acks and merges their
//! latency histograms.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde_json::{Value, json};

use crate::client;
use crate::spread;
use crate::workers::{self, Link, Plan, Workers};

/// Options of the `persist` scenario.
#[derive(clap::Args, Clone)]
pub struct Options {
    /// Concurrent clients, each posting into its own room.
    #[arg(long, default_value_t = 32)]
    clients: usize,
    /// Messages each client keeps outstanding (sent, not yet acknowledged).
    #[arg(long, default_value_t = 8)]
    in_flight: usize,
    /// How long to post, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Message size in bytes.
    #[arg(long, default_value_t = 100)]
    size: usize,
}

struct ClientResult {
    acked: u64,
    latencies: Histogram<u64>,
}

/// The parent's side: starts the workers once their users exist and adds up what they acknowledged.
pub async fn drive(
    urls: &[String],
    options: &Options,
    workers: &mut Workers,
) -> anyhow::Result<Value> {
    workers.gather("ready").await?;
    let started = Instant::now();
    workers.tell("start", json!({}))?;
    let reports = workers.gather("report").await?;
    let elapsed = started.elapsed().as_secs_f64();
    let acked = workers::sum(&reports, "acked");
    let mut latencies = Histogram::<u64>::new(3)?;
    spread::merge_histograms(
        &mut latencies,
        reports.iter().filter_map(|part| part["latencies"].as_str()),
    )?;
    let ms = |q: f64| latencies.value_at_quantile(q) as f64 / 1000.0;
    Ok(json!({
        "scenario": "persist",
        "clients": options.clients,
        "in_flight_per_client": options.in_flight,
        "message_bytes": options.size,
        "seconds": (elapsed * 100.0).round() / 100.0,
        "acked_messages": acked,
        "persisted_per_sec": (acked as f64 / elapsed).round(),
        "ack_p50_ms": ms(0.5),
        "ack_p99_ms": ms(0.99),
        "ack_p999_ms": ms(0.999),
        "ack_max_ms": latencies.max() as f64 / 1000.0,
        "urls": urls,
        "processes": workers.len(),
    }))
}

/// A worker's side: registers a user for each client of its block, says `ready`, and on `start` runs them (client
/// `i` connects to URL `i % urls`) until the deadline; says `report` with what was acknowledged.
pub async fn work(plan: Plan, options: Options, mut link: Link) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let share = spread::block(options.clients, plan.workers, plan.index);
    let user_tag = plan.user_tag();
    let mut tokens = Vec::new();
    for j in 0..share.len() {
        tokens.push(client::user(&http, &plan.urls[0], &format!("b{user_tag}_{j}")).await?);
    }
    link.say("ready", json!({"users": tokens.len()}))?;
    link.hear("start").await?;
    let deadline = Instant::now() + Duration::from_secs(options.seconds);
    let content = "x".repeat(options.size);
    let tag = &plan.tag;
    let tasks: Vec<_> = share
        .zip(tokens)
        .map(|(i, token)| {
            let (url, content, room) = (
                spread::pick(&plan.urls, i).clone(),
                content.clone(),
                format!("bench {tag} {i}"),
            );
            let in_flight = options.in_flight;
            tokio::spawn(
                async move { post(&url, &token, &room, &content, in_flight, deadline).await },
            )
        })
        .collect();
    let mut acked = 0;
    let mut latencies = Histogram::<u64>::new(3)?;
    for task in tasks {
        let result = task.await.context("client task")??;
        acked += result.acked;
        latencies.add(&result.latencies)?;
    }
    link.say(
        "report",
        json!({"acked": acked, "latencies": spread::encode_histogram(&latencies)?}),
    )?;
    Ok(())
}

/// One client: creates its room, then keeps `in_flight` posts outstanding until the deadline, then drains.
async fn post(
    url: &str,
    token: &str,
    room: &str,
    content: &str,
    in_flight: usize,
    deadline: Instant,
) -> anyhow::Result<ClientResult> {
    let (mut sink, mut stream) = client::socket(url, token).await?;
    client::send(&mut sink, "create_room", "create", json!({"name": room})).await?;
    client::expect(&mut stream, "welcome").await?;
    let mut sent_at: HashMap<String, Instant> = HashMap::new();
    let mut next = 0u64;
    let mut result = ClientResult {
        acked: 0,
        latencies: Histogram::new(3)?,
    };
    loop {
        while sent_at.len() < in_flight && Instant::now() < deadline {
            let id = next.to_string();
            next += 1;
            let data = json!({"room": room, "content": content, "client_msg_id": id});
            sent_at.insert(id.clone(), Instant::now());
            client::send(&mut sink, "room_message", &id, data).await?;
        }
        if sent_at.is_empty() {
            return Ok(result);
        }
        let frame = client::next_json(&mut stream).await?;
        match frame["type"].as_str() {
            Some("ack") => {
                let id = frame["id"].as_str().unwrap_or_default();
                if let Some(at) = sent_at.remove(id) {
                    result.acked += 1;
                    result.latencies.record(at.elapsed().as_micros() as u64)?;
                }
            }
            Some("error") => anyhow::bail!("server refused a post: {frame}"),
            _ => {}
        }
    }
}
