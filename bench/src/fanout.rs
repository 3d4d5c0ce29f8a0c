//! The `fanout` scenario: rooms full of connections, a few of them posting at a set total rate; every member counts
//! what it receives. Reports deliveries per second, send→receive latency, and lost or repeated messages.
//!
//! Each message carries its send time (nanoseconds since the bench started, as 16 hex digits at the start of the
//! content); senders and receivers share that clock because they are one process. After the run every member must
//! have seen every seq acknowledged in its room exactly once; messages still on their way get a short drain period.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Connector, Socket};

/// Options of the `fanout` scenario.
#[derive(clap::Args)]
pub struct Options {
    /// Rooms.
    #[arg(long, default_value_t = 10)]
    rooms: usize,
    /// Members (connections) per room.
    #[arg(long, default_value_t = 100)]
    members: usize,
    /// Members of each room that post.
    #[arg(long, default_value_t = 1)]
    senders_per_room: usize,
    /// Messages posted per second, over all rooms together.
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    /// How long to post, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Message size in bytes (at least 16: the send time).
    #[arg(long, default_value_t = 100)]
    size: usize,
    /// How long members may take after the last acknowledgement to receive what is still on its way, in seconds.
    #[arg(long, default_value_t = 5)]
    drain: u64,
    /// Connections per user (the server may cap how many one user holds).
    #[arg(long, default_value_t = 10)]
    per_user: usize,
    /// Source addresses to spread connections over (127.0.0.2 onwards).
    #[arg(long, default_value_t = 4)]
    source_addresses: usize,
    /// Handshakes and joins in flight at once while setting up.
    #[arg(long, default_value_t = 128)]
    concurrency: usize,
}

/// The clock every send time is measured on.
static EPOCH: OnceLock<Instant> = OnceLock::new();

fn now_nanos() -> u64 {
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Latencies are recorded locally and merged into the shared histogram this many at a time.
const LATENCY_BATCH: usize = 512;

/// What the run's end tells the members: for each room, the highest acknowledged seq; and until when to wait for it.
struct Finish {
    last_seq: Vec<u64>,
    drain_until: tokio::time::Instant,
}

/// What one member saw.
struct Member {
    room: usize,
    /// Bit `seq` is set once that seq was received.
    seen: Vec<u64>,
    deliveries: u64,
    duplicates: u64,
    out_of_order: u64,
    max_seen: u64,
    last_delivery: Option<Instant>,
    closed_early: Option<String>,
}

impl Member {
    fn new(room: usize) -> Self {
        Member {
            room,
            seen: Vec::new(),
            deliveries: 0,
            duplicates: 0,
            out_of_order: 0,
            max_seen: 0,
            last_delivery: None,
            closed_early: None,
        }
    }

    fn has(&self, seq: u64) -> bool {
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        self.seen.get(word).is_some_and(|w| w & (1 << bit) != 0)
    }

    /// Records a delivery of `seq`; `contiguous` is the highest seq below which all were seen.
    fn record(&mut self, seq: u64, contiguous: &mut u64) {
        self.deliveries += 1;
        self.last_delivery = Some(Instant::now());
        if self.has(seq) {
            self.duplicates += 1;
            return;
        }
        if seq < self.max_seen {
            self.out_of_order += 1;
        }
        self.max_seen = self.max_seen.max(seq);
        let (word, bit) = ((seq / 64) as usize, seq % 64);
        if self.seen.len() <= word {
            self.seen.resize(word + 1, 0);
        }
        self.seen[word] |= 1 << bit;
        while self.has(*contiguous + 1) {
            *contiguous += 1;
        }
    }
}

/// What the senders' side tells the main task.
struct Channels {
    acks: mpsc::UnboundedSender<(usize, u64)>,
    sent: mpsc::UnboundedSender<u64>,
    latencies: Arc<Mutex<Histogram<u64>>>,
}

/// Runs the scenario against `url`.
pub async fn run(url: &str, options: Options) -> anyhow::Result<Value> {
    if options.size < 16 {
        bail!("--size must be at least 16 bytes (the send time)");
    }
    if options.senders_per_room == 0 || options.senders_per_room > options.members {
        bail!("--senders-per-room must be between 1 and --members");
    }
    now_nanos();
    let http = reqwest::Client::new();
    let connector = Connector::new(url, options.source_addresses).await?;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let per_user = options.per_user.max(1);
    let users_per_room = options.members.div_ceil(per_user);
    let setup = Instant::now();
    let tokens = client::users(&http, url, tag, options.rooms * users_per_room).await?;
    let rooms: Vec<String> = (0..options.rooms)
        .map(|r| format!("fan {tag} {r}"))
        .collect();

    let (start_tx, start) = watch::channel(None::<Instant>);
    let (finish_tx, finish) = watch::channel(None::<Arc<Finish>>);
    let (ready_tx, mut ready_rx) = mpsc::channel::<anyhow::Result<()>>(1024);
    let (acks_tx, mut acks_rx) = mpsc::unbounded_channel();
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel();
    // Up to a minute, in microseconds.
    let latencies = Arc::new(Mutex::new(Histogram::<u64>::new_with_bounds(
        1, 60_000_000, 3,
    )?));
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let (senders_per_room, total_senders) = (
        options.senders_per_room,
        options.rooms * options.senders_per_room,
    );
    let per_sender = options.rate / total_senders as f64;
    let deadline = Duration::from_secs(options.seconds);
    let content_pad = "x".repeat(options.size - 16);

    // The owners create the rooms first; everyone else joins them.
    let mut tasks = Vec::new();
    for create in [true, false] {
        for (r, room) in rooms.iter().enumerate() {
            let members = if create { 0..1 } else { 1..options.members };
            for m in members {
                let i = r * options.members + m;
                let token = tokens[r * users_per_room + m / per_user].clone();
                let (connector, room, permits) = (connector.clone(), room.clone(), permits.clone());
                let (start, finish, ready) = (start.clone(), finish.clone(), ready_tx.clone());
                let sender = m < options.senders_per_room;
                let channels = Channels {
                    acks: acks_tx.clone(),
                    sent: sent_tx.clone(),
                    latencies: latencies.clone(),
                };
                let content_pad = content_pad.clone();
                tasks.push(tokio::spawn(async move {
                    let permit = permits.acquire_owned().await;
                    let joined = join(&connector, &token, i, &room, create).await;
                    drop(permit);
                    let socket = match joined {
                        Ok(socket) => socket,
                        Err(err) => {
                            let _ = ready.send(Err(err)).await;
                            return Member::new(r);
                        }
                    };
                    let _ = ready.send(Ok(())).await;
                    drop(ready);
                    let pace = sender.then(|| Pace {
                        rate: per_sender,
                        phase: (r * senders_per_room + m) as f64 / total_senders as f64,
                        deadline,
                        room: room.clone(),
                        pad: content_pad,
                    });
                    listen(socket, r, pace, start, finish, channels).await
                }));
            }
        }
        if create {
            // Rooms must exist before anyone joins them.
            for _ in 0..options.rooms {
                ready_rx
                    .recv()
                    .await
                    .context("an owner task ended")?
                    .context("creating a room")?;
            }
        }
    }
    drop((ready_tx, acks_tx, sent_tx));
    let others = options.rooms * (options.members - 1);
    for _ in 0..others {
        ready_rx
            .recv()
            .await
            .context("a member task ended")?
            .context("joining a room")?;
    }
    let setup_secs = setup.elapsed().as_secs_f64();
    // Let the members drain the join notifications before posting starts.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let started = Instant::now();
    let _ = start_tx.send(Some(started));
    let mut sent = 0u64;
    for _ in 0..options.rooms * options.senders_per_room {
        sent += sent_rx.recv().await.unwrap_or(0);
    }
    let send_secs = started.elapsed().as_secs_f64();
    let mut acked: Vec<Vec<u64>> = vec![Vec::new(); options.rooms];
    let mut acked_count = 0u64;
    let ack_deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while acked_count < sent {
        match tokio::time::timeout_at(ack_deadline, acks_rx.recv()).await {
            Ok(Some((room, seq))) => {
                acked[room].push(seq);
                acked_count += 1;
            }
            _ => break,
        }
    }
    let last_seq = acked
        .iter()
        .map(|seqs| seqs.iter().copied().max().unwrap_or(0))
        .collect();
    let _ = finish_tx.send(Some(Arc::new(Finish {
        last_seq,
        drain_until: tokio::time::Instant::now() + Duration::from_secs(options.drain),
    })));

    let mut members = Vec::with_capacity(tasks.len());
    for task in tasks {
        members.push(task.await.context("member task")?);
    }
    let mut report = Tally::default();
    for member in &members {
        report.add(member, &acked[member.room], started);
    }
    let latencies = latencies.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
    let ms = |q: f64| latencies.value_at_quantile(q) as f64 / 1000.0;
    let delivery_secs = report.last_delivery_secs.max(send_secs);
    Ok(json!({
        "scenario": "fanout",
        "rooms": options.rooms,
        "members_per_room": options.members,
        "connections": options.rooms * options.members,
        "users": tokens.len(),
        "senders_per_room": options.senders_per_room,
        "message_bytes": options.size,
        "setup_seconds": round2(setup_secs),
        "target_posts_per_sec": options.rate,
        "posted": sent,
        "acked": acked_count,
        "posted_per_sec": (sent as f64 / send_secs).round(),
        "deliveries": report.deliveries,
        "expected_deliveries": acked_count * options.members as u64,
        "delivery_seconds": round2(delivery_secs),
        "deliveries_per_sec": (report.deliveries as f64 / delivery_secs).round(),
        "latency_p50_ms": ms(0.5),
        "latency_p99_ms": ms(0.99),
        "latency_p999_ms": ms(0.999),
        "latency_max_ms": latencies.max() as f64 / 1000.0,
        "lost": report.lost,
        "members_with_loss": report.members_with_loss,
        "duplicates": report.duplicates,
        "out_of_order": report.out_of_order,
        "unacked_seen": report.unacked_seen,
        "closed_early": report.closed_early,
        "close_reasons": report.reasons,
    }))
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// The members' results added up.
#[derive(Default)]
struct Tally {
    deliveries: u64,
    lost: u64,
    members_with_loss: u64,
    duplicates: u64,
    out_of_order: u64,
    unacked_seen: u64,
    closed_early: u64,
    reasons: Vec<String>,
    last_delivery_secs: f64,
}

impl Tally {
    fn add(&mut self, member: &Member, acked: &[u64], started: Instant) {
        self.deliveries += member.deliveries;
        self.duplicates += member.duplicates;
        self.out_of_order += member.out_of_order;
        let lost = acked.iter().filter(|&&seq| !member.has(seq)).count() as u64;
        self.lost += lost;
        self.members_with_loss += u64::from(lost > 0);
        let seen: u64 = member.seen.iter().map(|w| u64::from(w.count_ones())).sum();
        self.unacked_seen += seen.saturating_sub(acked.len() as u64 - lost);
        if let Some(reason) = &member.closed_early {
            self.closed_early += 1;
            if self.reasons.len() < 5 && !self.reasons.contains(reason) {
                self.reasons.push(reason.clone());
            }
        }
        if let Some(at) = member.last_delivery {
            let secs = at.saturating_duration_since(started).as_secs_f64();
            self.last_delivery_secs = self.last_delivery_secs.max(secs);
        }
    }
}

/// Opens a member's connection and creates or joins its room; returns once the welcome arrived.
async fn join(
    connector: &Connector,
    token: &str,
    i: usize,
    room: &str,
    create: bool,
) -> anyhow::Result<Socket> {
    let mut socket = connector.open(token, i).await?;
    let kind = if create { "create_room" } else { "join_room" };
    socket
        .send(client::frame(kind, "join", json!({"name": room})))
        .await?;
    client::expect(&mut socket, "welcome").await?;
    Ok(socket)
}

/// How a sender posts.
struct Pace {
    /// Messages per second from this sender.
    rate: f64,
    /// Where in its interval this sender posts, as a fraction of the interval: senders are spread evenly over
    /// time rather than all posting at the same instant, which would measure bursts instead of a steady rate.
    phase: f64,
    deadline: Duration,
    room: String,
    pad: String,
}

/// One member: receives until it has every acknowledged seq of its room or the drain period ends. A sender also
/// posts (from a task of its own, so a slow read never holds up a send) and reports its acks.
async fn listen(
    socket: Socket,
    room: usize,
    pace: Option<Pace>,
    mut start: watch::Receiver<Option<Instant>>,
    mut finish: watch::Receiver<Option<Arc<Finish>>>,
    channels: Channels,
) -> Member {
    let (sink, mut stream) = socket.split();
    let mut writer = None;
    let mut sink = Some(sink);
    let mut member = Member::new(room);
    let mut contiguous = 0u64;
    let mut batch = Vec::with_capacity(LATENCY_BATCH);
    let mut last_seq = None;
    let mut awaiting_start = pace.is_some();
    let drain = tokio::time::sleep(Duration::from_secs(3600));
    tokio::pin!(drain);
    loop {
        if last_seq.is_some_and(|last| contiguous >= last) {
            break;
        }
        tokio::select! {
            frame = stream.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(close))) => {
                        member.closed_early = Some(format!("closed by the server: {close:?}"));
                        break;
                    }
                    Some(Ok(_)) => continue,
                    Some(Err(err)) => {
                        member.closed_early = Some(format!("socket error: {err}"));
                        break;
                    }
                    None => {
                        member.closed_early = Some("the server closed the connection".into());
                        break;
                    }
                };
                match parse(text.as_str()) {
                    Parsed::Message { seq, sent_nanos } => {
                        member.record(seq, &mut contiguous);
                        if let Some(sent) = sent_nanos {
                            batch.push(now_nanos().saturating_sub(sent) / 1000);
                            if batch.len() == LATENCY_BATCH {
                                flush(&channels.latencies, &mut batch);
                            }
                        }
                    }
                    Parsed::Ack { seq } => {
                        let _ = channels.acks.send((room, seq));
                    }
                    Parsed::Other => {}
                }
            }
            changed = start.changed(), if awaiting_start => {
                let started = *start.borrow();
                match (changed, started, &pace, sink.take()) {
                    (Ok(()), Some(started), Some(pace), Some(taken)) => {
                        awaiting_start = false;
                        let pace = pace.clone_for_writer();
                        writer = Some(tokio::spawn(post(taken, pace, started, channels.sent.clone())));
                    }
                    (Err(_), _, _, taken) => {
                        awaiting_start = false;
                        sink = taken;
                    }
                    (_, _, _, taken) => sink = taken,
                }
            }
            changed = finish.changed(), if last_seq.is_none() => {
                let end = finish.borrow().clone();
                match (changed, end) {
                    (Ok(()), Some(end)) => {
                        last_seq = Some(end.last_seq[room]);
                        drain.as_mut().reset(end.drain_until);
                    }
                    (Err(_), _) => break,
                    _ => {}
                }
            }
            _ = &mut drain => break,
        }
    }
    flush(&channels.latencies, &mut batch);
    let sink = match writer {
        Some(writer) => writer.await.ok(),
        None => sink,
    };
    if let Some(sink) = sink
        && let Ok(socket) = sink.reunite(stream)
    {
        client::close(socket).await;
    }
    member
}

impl Pace {
    fn clone_for_writer(&self) -> Pace {
        Pace {
            rate: self.rate,
            phase: self.phase,
            deadline: self.deadline,
            room: self.room.clone(),
            pad: self.pad.clone(),
        }
    }
}

/// A sender's writing half: posts at its rate from `started` until the deadline, then reports how many it sent
/// and hands the sink back.
async fn post(
    mut sink: SplitSink<Socket, Message>,
    pace: Pace,
    started: Instant,
    sent_to: mpsc::UnboundedSender<u64>,
) -> SplitSink<Socket, Message> {
    let mut ticks = tokio::time::interval(Duration::from_millis(1));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut sent = 0u64;
    'posting: loop {
        ticks.tick().await;
        let elapsed = started.elapsed();
        let until = elapsed.min(pace.deadline);
        let due = (until.as_secs_f64() * pace.rate + pace.phase) as u64;
        while sent < due {
            let content = format!("{:016x}{}", now_nanos(), pace.pad);
            let data = json!({"room": pace.room, "content": content});
            if sink
                .feed(client::frame("room_message", &sent.to_string(), data))
                .await
                .is_err()
            {
                break 'posting;
            }
            sent += 1;
        }
        if sink.flush().await.is_err() || elapsed >= pace.deadline {
            break;
        }
    }
    let _ = sent_to.send(sent);
    sink
}

fn flush(latencies: &Mutex<Histogram<u64>>, batch: &mut Vec<u64>) {
    if let Ok(mut histogram) = latencies.lock() {
        for &micros in batch.iter() {
            histogram.saturating_record(micros.clamp(1, 60_000_000));
        }
    }
    batch.clear();
}

/// What a received frame means to the bench.
#[derive(Debug, PartialEq, Eq)]
enum Parsed {
    Message { seq: u64, sent_nanos: Option<u64> },
    Ack { seq: u64 },
    Other,
}

/// Reads the few fields the bench needs from a server frame without building a JSON tree: at hundreds of thousands
/// of frames a second the bench's own parsing would otherwise compete with the server for the CPU.
fn parse(text: &str) -> Parsed {
    let seq = || number_after(text, "\"seq\":");
    if text.starts_with("{\"type\":\"message\"") {
        let sent_nanos = text
            .find("\"content\":\"")
            .and_then(|at| text.get(at + 11..at + 27))
            .and_then(|hex| u64::from_str_radix(hex, 16).ok());
        return match seq() {
            Some(seq) => Parsed::Message { seq, sent_nanos },
            None => Parsed::Other,
        };
    }
    if text.starts_with("{\"type\":\"ack\"")
        && let Some(seq) = seq()
    {
        return Parsed::Ack { seq };
    }
    Parsed::Other
}

fn number_after(text: &str, key: &str) -> Option<u64> {
    let rest = &text[text.find(key)? + key.len()..];
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_messages_and_acks_without_a_json_tree() {
        let message = r#"{"type":"message","room":"r","seq":42,"id":"00000000-0000-0000-0000-000000000000","username":"u","content":"00000000000003e8xxxx","timestamp":"2026-11-26T00:00:00Z"}"#;
        assert_eq!(
            parse(message),
            Parsed::Message {
                seq: 42,
                sent_nanos: Some(1000)
            }
        );
        let ack = r#"{"type":"ack","id":"7","room":"r","seq":9}"#;
        assert_eq!(parse(ack), Parsed::Ack { seq: 9 });
        assert_eq!(
            parse(r#"{"type":"joined","room":"r","username":"u"}"#),
            Parsed::Other
        );
    }

    #[test]
    fn a_member_counts_duplicates_and_gaps() {
        let mut member = Member::new(0);
        let mut contiguous = 0;
        for seq in [1, 2, 2, 4, 3] {
            member.record(seq, &mut contiguous);
        }
        assert_eq!(contiguous, 4);
        assert_eq!(member.duplicates, 1);
        assert_eq!(member.out_of_order, 1);
        assert_eq!(member.deliveries, 5);
        let mut tally = Tally::default();
        member.record(6, &mut contiguous);
        tally.add(&member, &[1, 2, 3, 4, 5, 6], Instant::now());
        assert_eq!(tally.lost, 1);
        assert_eq!(tally.duplicates, 1);
    }
}
