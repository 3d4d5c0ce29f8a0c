//! The `fanout` scenario: rooms full of connections, a few of them posting at a set total rate; every member counts
//! what it receives. Reports deliveries per second, send→receive latency, and lost or repeated messages.
//!
//! Each message carries its send time (nanoseconds of the machine's `CLOCK_MONOTONIC`, as 16 hex digits at the start
//! of the content); every process on one machine reads the same clock, so a member in one worker process can time a
//! message sent from another. After the run every member must have seen every seq acknowledged in its room exactly
//! once; messages still on their way get a short drain period.
//!
//! Across a cluster (`--url` several times) each room's members are dealt round-robin over the URLs (member `m` to
//! URL `m % urls`), so every room has members on every node, except its senders (the first `--senders-per-room`
//! members), which all connect to one URL, `--senders-url-index` (the first by default). Users are registered over the
//! first URL: the nodes share one database.
//!
//! Across processes (`--processes N`) the members are dealt round-robin over the workers (member `m` of room `r`,
//! number `r × members + m`, to worker `(r × members + m) % N`), so a room's members span processes too. The parent
//! creates the rooms before starting the workers (over HTTP, as a few owner users); the workers register their own
//! users and join. Only the workers holding senders post. The check stays exact because the acknowledged seqs travel
//! through the parent: once its senders are done each worker says `posted` with the seqs its senders had
//! acknowledged, per room, as ranges; the parent takes the union per room and says `finish` with it to every worker,
//! and each member then waits (up to the drain period) for every one of those seqs and counts any it lacks as lost,
//! any it got twice as a duplicate. In one process the same steps run between the parent and one worker task, so
//! the check is the one it always was: the seqs acknowledged in the room, each received exactly once.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures_util::stream::SplitSink;
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Connector, Socket, now_nanos};
use crate::spread;
use crate::workers::{self, Link, Plan, Workers};

/// Options of the `fanout` scenario.
#[derive(clap::Args, Clone)]
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
    /// Which `--url` the senders connect to, counted from 0 (the other members are dealt over all of them).
    #[arg(long, default_value_t = 0)]
    senders_url_index: usize,
}

impl Options {
    /// Refuses options the scenario cannot run with `urls` servers.
    pub fn check(&self, urls: usize) -> anyhow::Result<()> {
        if self.size < 16 {
            bail!("--size must be at least 16 bytes (the send time)");
        }
        if self.senders_per_room == 0 || self.senders_per_room > self.members {
            bail!("--senders-per-room must be between 1 and --members");
        }
        if self.senders_url_index >= urls {
            bail!("--senders-url-index must name one of the {urls} --url");
        }
        Ok(())
    }
}

/// Latencies are recorded locally and merged into the shared histogram this many at a time.
const LATENCY_BATCH: usize = 512;

/// How many rooms each owner user creates when the parent creates them (the server's `rooms_per_user` is 50).
const ROOMS_PER_OWNER: usize = 10;

/// The run's room names.
fn room_names(tag: &str, rooms: usize) -> Vec<String> {
    (0..rooms).map(|r| format!("fan {tag} {r}")).collect()
}

/// Up to a minute, in microseconds.
fn latency_histogram() -> anyhow::Result<Histogram<u64>> {
    Ok(Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?)
}

/// One member connection a worker runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Seat {
    /// The connection's number over the whole run, `room × members + member`.
    index: usize,
    room: usize,
    /// Its place in the room, 0…members-1; the first `senders_per_room` post.
    member: usize,
    /// Which of this worker's users it connects as.
    user: usize,
    /// Which `--url` it connects to.
    url: usize,
}

/// Worker `worker` of `workers`'s members: dealt round-robin by their number; within a room the worker's members
/// share users `per_user` at a time (a user never spans rooms). With one worker, member `m` of room `r` is user
/// `r × ⌈members / per_user⌉ + m / per_user`, as it always was.
fn seats(options: &Options, urls: usize, workers: usize, worker: usize) -> Vec<Seat> {
    let per_user = options.per_user.max(1);
    let mut seats = Vec::new();
    let mut users = 0;
    for room in 0..options.rooms {
        let mut here = 0;
        for member in 0..options.members {
            let index = room * options.members + member;
            if !spread::deals_to(index, workers, worker) {
                continue;
            }
            let url = if member < options.senders_per_room {
                options.senders_url_index
            } else {
                member % urls
            };
            seats.push(Seat {
                index,
                room,
                member,
                user: users + here / per_user,
                url,
            });
            here += 1;
        }
        users += here.div_ceil(per_user);
    }
    seats
}

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
    /// When the last delivery arrived, on the shared clock ([`now_nanos`]).
    last_delivery: Option<u64>,
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
        self.last_delivery = Some(now_nanos());
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

/// What the senders' side tells the worker's main task.
struct Channels {
    acks: mpsc::UnboundedSender<(usize, u64)>,
    sent: mpsc::UnboundedSender<u64>,
    latencies: Arc<Mutex<Histogram<u64>>>,
}

/// Creates the run's rooms over HTTP before the workers start, when they are several processes (in one process each
/// room's first member creates it, as it always did). Returns how many owner users were registered.
pub async fn create_rooms(url: &str, tag: &str, options: &Options) -> anyhow::Result<usize> {
    let http = reqwest::Client::new();
    let rooms = room_names(tag, options.rooms);
    let owners = client::users(
        &http,
        url,
        &format!("{tag}o"),
        rooms.len().div_ceil(ROOMS_PER_OWNER),
    )
    .await?;
    for (r, room) in rooms.iter().enumerate() {
        let created = http
            .post(format!("{url}/api/rooms"))
            .bearer_auth(&owners[r / ROOMS_PER_OWNER])
            .json(&json!({"name": room}))
            .send()
            .await?;
        if !created.status().is_success() {
            bail!(
                "creating room {room}: {} {}",
                created.status(),
                created.text().await?
            );
        }
    }
    Ok(owners.len())
}

/// The parent's side: waits for the workers' setup, starts them, passes the acknowledged seqs from the senders to
/// every member, and merges the workers' reports. `began` is when setup began; `owners`, the users
/// [`create_rooms`] registered.
pub async fn drive(
    urls: &[String],
    options: &Options,
    workers: &mut Workers,
    began: Instant,
    owners: usize,
) -> anyhow::Result<Value> {
    let ready = workers.gather("ready").await?;
    let setup_secs = began.elapsed().as_secs_f64();
    // Let the members drain the join notifications before posting starts.
    tokio::time::sleep(Duration::from_secs(1)).await;

    let started = now_nanos();
    workers.tell("start", json!({}))?;
    let posted = workers.gather("posted").await?;
    let sent = workers::sum(&posted, "sent");
    let acked_count = workers::sum(&posted, "acked");
    let send_secs = workers::max(&posted, "sent_at")
        .unwrap_or(started)
        .saturating_sub(started) as f64
        / 1e9;
    let acked = union_acked(&posted, options.rooms)?;
    workers.tell("finish", json!({ "acked": acked }))?;

    let reports = workers.gather("report").await?;
    let mut report = Tally::default();
    let mut latencies = latency_histogram()?;
    for part in &reports {
        report.merge(&Tally::from_json(part));
        spread::merge_histograms(&mut latencies, part["latencies"].as_str())?;
    }
    let ms = |q: f64| latencies.value_at_quantile(q) as f64 / 1000.0;
    let last_delivery_secs = report
        .last_delivery
        .unwrap_or(started)
        .saturating_sub(started) as f64
        / 1e9;
    let delivery_secs = last_delivery_secs.max(send_secs);
    Ok(json!({
        "scenario": "fanout",
        "rooms": options.rooms,
        "members_per_room": options.members,
        "connections": options.rooms * options.members,
        "users": workers::sum(&ready, "users") as usize + owners,
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
        "urls": urls,
        "senders_url": urls[options.senders_url_index],
        "processes": workers.len(),
    }))
}

/// Per room, the union of the seqs every worker's senders had acknowledged (each worker's `acked_ranges`: one list
/// of `[first, last]` per room).
fn union_acked(posted: &[Value], rooms: usize) -> anyhow::Result<Vec<Vec<(u64, u64)>>> {
    let mut per_room: Vec<Vec<Vec<(u64, u64)>>> = vec![Vec::new(); rooms];
    for part in posted {
        let ranges: Vec<Vec<(u64, u64)>> = serde_json::from_value(part["acked_ranges"].clone())
            .context("a worker's acked_ranges")?;
        if ranges.len() != rooms {
            bail!(
                "a worker reported acks for {} rooms, not {rooms}",
                ranges.len()
            );
        }
        for (room, ranges) in ranges.into_iter().enumerate() {
            per_room[room].push(ranges);
        }
    }
    Ok(per_room.into_iter().map(spread::union_ranges).collect())
}

/// A worker's side: registers its users, connects and joins its members (the first member of each room creates it
/// when this is the only worker), says `ready`, and on `start` lets its senders post; says `posted` with the acks,
/// and on `finish` (every room's acknowledged seqs) lets its members drain, then says `report`.
pub async fn work(plan: Plan, options: Options, mut link: Link) -> anyhow::Result<()> {
    options.check(plan.urls.len())?;
    let http = reqwest::Client::new();
    let mut connectors = Vec::with_capacity(plan.urls.len());
    for url in &plan.urls {
        connectors.push(Connector::new(url, options.source_addresses).await?);
    }
    let seats = seats(&options, plan.urls.len(), plan.workers, plan.index);
    let users = seats.iter().map(|seat| seat.user + 1).max().unwrap_or(0);
    let tokens = client::users(&http, &plan.urls[0], &plan.user_tag(), users).await?;
    let rooms = room_names(&plan.tag, options.rooms);

    let (start_tx, start) = watch::channel(None::<Instant>);
    let (finish_tx, finish) = watch::channel(None::<Arc<Finish>>);
    let (ready_tx, mut ready_rx) = mpsc::channel::<anyhow::Result<()>>(1024);
    let (acks_tx, mut acks_rx) = mpsc::unbounded_channel();
    let (sent_tx, mut sent_rx) = mpsc::unbounded_channel();
    let latencies = Arc::new(Mutex::new(latency_histogram()?));
    let permits = Arc::new(Semaphore::new(options.concurrency.max(1)));
    let (senders_per_room, total_senders) = (
        options.senders_per_room,
        options.rooms * options.senders_per_room,
    );
    let per_sender = options.rate / total_senders as f64;
    let deadline = Duration::from_secs(options.seconds);
    let content_pad = "x".repeat(options.size - 16);
    let my_senders = seats
        .iter()
        .filter(|seat| seat.member < options.senders_per_room)
        .count();

    // Alone, the owners create the rooms first and everyone else joins them; several workers join rooms the parent
    // created.
    let mut tasks = Vec::new();
    for create in [true, false] {
        let phase: Vec<Seat> = seats
            .iter()
            .copied()
            .filter(|seat| (plan.alone() && seat.member == 0) == create)
            .collect();
        for seat in &phase {
            let (r, m, i) = (seat.room, seat.member, seat.index);
            let token = tokens[seat.user].clone();
            let connector = connectors[seat.url].clone();
            let (room, permits) = (rooms[r].clone(), permits.clone());
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
        // Rooms must exist before anyone joins them.
        let what = if create {
            "creating a room"
        } else {
            "joining a room"
        };
        for _ in 0..phase.len() {
            ready_rx
                .recv()
                .await
                .context("a member task ended")?
                .context(what)?;
        }
    }
    drop((ready_tx, acks_tx, sent_tx));
    link.say("ready", json!({"users": tokens.len()}))?;

    link.hear("start").await?;
    let started = Instant::now();
    let _ = start_tx.send(Some(started));
    let mut sent = 0u64;
    for _ in 0..my_senders {
        sent += sent_rx.recv().await.unwrap_or(0);
    }
    let sent_at = now_nanos();
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
    let acked_ranges: Vec<Vec<(u64, u64)>> = acked
        .iter_mut()
        .map(|seqs| {
            seqs.sort_unstable();
            spread::to_ranges(seqs)
        })
        .collect();
    link.say(
        "posted",
        json!({"sent": sent, "acked": acked_count, "sent_at": sent_at, "acked_ranges": acked_ranges}),
    )?;

    let finished = link.hear("finish").await?;
    let acked: Vec<Vec<(u64, u64)>> =
        serde_json::from_value(finished["acked"].clone()).context("the acked seqs")?;
    if acked.len() != options.rooms {
        bail!(
            "acked seqs for {} rooms, not {}",
            acked.len(),
            options.rooms
        );
    }
    let last_seq = acked
        .iter()
        .map(|ranges| ranges.last().map_or(0, |&(_, last)| last))
        .collect();
    let _ = finish_tx.send(Some(Arc::new(Finish {
        last_seq,
        drain_until: tokio::time::Instant::now() + Duration::from_secs(options.drain),
    })));

    let mut report = Tally::default();
    for task in tasks {
        let member = task.await.context("member task")?;
        report.add(&member, &acked[member.room]);
    }
    let latencies = {
        let latencies = latencies.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        spread::encode_histogram(&latencies)?
    };
    let mut part = report.to_json();
    part["latencies"] = json!(latencies);
    link.say("report", part)?;
    Ok(())
}

fn round2(value: f64) -> f64 {
    (value * 100.0).round() / 100.0
}

/// The members' results added up.
#[derive(Default, Debug, PartialEq)]
struct Tally {
    deliveries: u64,
    lost: u64,
    members_with_loss: u64,
    duplicates: u64,
    out_of_order: u64,
    unacked_seen: u64,
    closed_early: u64,
    reasons: Vec<String>,
    /// The latest delivery, on the shared clock.
    last_delivery: Option<u64>,
}

impl Tally {
    /// Adds one member, checked against its room's acknowledged seqs.
    fn add(&mut self, member: &Member, acked: &[(u64, u64)]) {
        self.deliveries += member.deliveries;
        self.duplicates += member.duplicates;
        self.out_of_order += member.out_of_order;
        let lost: u64 = acked
            .iter()
            .map(|&(first, last)| (first..=last).filter(|&seq| !member.has(seq)).count() as u64)
            .sum();
        self.lost += lost;
        self.members_with_loss += u64::from(lost > 0);
        let seen: u64 = member.seen.iter().map(|w| u64::from(w.count_ones())).sum();
        self.unacked_seen += seen.saturating_sub(spread::ranges_len(acked) - lost);
        if let Some(reason) = &member.closed_early {
            self.closed_early += 1;
            self.note(reason);
        }
        self.last_delivery = self.last_delivery.max(member.last_delivery);
    }

    /// Keeps up to five distinct close reasons.
    fn note(&mut self, reason: &str) {
        if self.reasons.len() < 5 && !self.reasons.iter().any(|known| known == reason) {
            self.reasons.push(reason.to_owned());
        }
    }

    /// Adds another worker's tally.
    fn merge(&mut self, other: &Tally) {
        self.deliveries += other.deliveries;
        self.lost += other.lost;
        self.members_with_loss += other.members_with_loss;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.unacked_seen += other.unacked_seen;
        self.closed_early += other.closed_early;
        for reason in &other.reasons {
            self.note(reason);
        }
        self.last_delivery = self.last_delivery.max(other.last_delivery);
    }

    fn to_json(&self) -> Value {
        json!({
            "deliveries": self.deliveries,
            "lost": self.lost,
            "members_with_loss": self.members_with_loss,
            "duplicates": self.duplicates,
            "out_of_order": self.out_of_order,
            "unacked_seen": self.unacked_seen,
            "closed_early": self.closed_early,
            "reasons": self.reasons,
            "last_delivery": self.last_delivery,
        })
    }

    fn from_json(value: &Value) -> Tally {
        let count = |key: &str| value[key].as_u64().unwrap_or(0);
        Tally {
            deliveries: count("deliveries"),
            lost: count("lost"),
            members_with_loss: count("members_with_loss"),
            duplicates: count("duplicates"),
            out_of_order: count("out_of_order"),
            unacked_seen: count("unacked_seen"),
            closed_early: count("closed_early"),
            reasons: value["reasons"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|reason| reason.as_str().map(str::to_owned))
                .collect(),
            last_delivery: value["last_delivery"].as_u64(),
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
        tally.add(&member, &[(1, 6)]);
        assert_eq!(tally.lost, 1);
        assert_eq!(tally.members_with_loss, 1);
        assert_eq!(tally.duplicates, 1);
        assert_eq!(tally.unacked_seen, 0);
        // Seqs 2 and 4 acknowledged only: 6 was seen though nobody acknowledged it, 3 is not counted at all.
        let mut partial = Tally::default();
        partial.add(&member, &[(2, 2), (4, 4)]);
        assert_eq!(partial.lost, 0);
        assert_eq!(partial.unacked_seen, 3);
    }

    fn options(rooms: usize, members: usize, per_user: usize, senders: usize) -> Options {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Args {
            #[command(flatten)]
            options: Options,
        }
        let (rooms, members) = (rooms.to_string(), members.to_string());
        let (per_user, senders) = (per_user.to_string(), senders.to_string());
        Args::parse_from([
            "fanout",
            "--rooms",
            &rooms,
            "--members",
            &members,
            "--per-user",
            &per_user,
            "--senders-per-room",
            &senders,
        ])
        .options
    }

    #[test]
    fn alone_the_seats_are_what_they_always_were() {
        let options = options(3, 25, 10, 1);
        let seats = seats(&options, 1, 1, 0);
        assert_eq!(seats.len(), 75);
        for seat in &seats {
            assert_eq!(seat.index, seat.room * 25 + seat.member);
            // tokens[r * users_per_room + m / per_user], users_per_room = ⌈25 / 10⌉ = 3
            assert_eq!(seat.user, seat.room * 3 + seat.member / 10);
            assert_eq!(seat.url, 0);
        }
    }

    #[test]
    fn members_are_dealt_over_urls_and_workers_once_each() {
        let options = options(4, 20, 3, 2);
        let mut owner = vec![None; 80];
        for worker in 0..3 {
            let seats = seats(&options, 2, 3, worker);
            let mut per_user = std::collections::HashMap::new();
            for seat in &seats {
                assert!(
                    owner[seat.index].replace(worker).is_none(),
                    "seat {seat:?} twice"
                );
                // Senders on the first URL, the others member by member over both.
                let url = if seat.member < 2 { 0 } else { seat.member % 2 };
                assert_eq!(seat.url, url, "{seat:?}");
                let entry = per_user.entry(seat.user).or_insert((seat.room, 0));
                assert_eq!(entry.0, seat.room, "a user spans rooms");
                entry.1 += 1;
            }
            assert!(per_user.values().all(|&(_, n)| n <= 3));
            // Users are numbered 0… without gaps.
            assert_eq!(
                per_user.len(),
                seats.iter().map(|s| s.user + 1).max().unwrap()
            );
        }
        assert!(owner.iter().all(Option::is_some), "a seat nobody runs");
        // Every room has members in every worker and on every URL.
        for room in 0..4 {
            for worker in 0..3 {
                assert!(seats(&options, 2, 3, worker).iter().any(|s| s.room == room));
            }
            for url in 0..2 {
                assert!(
                    (0..3)
                        .flat_map(|w| seats(&options, 2, 3, w))
                        .any(|s| s.room == room && s.url == url)
                );
            }
        }
        let mut moved = options.clone();
        moved.senders_url_index = 1;
        let first = seats(&moved, 2, 1, 0);
        assert_eq!(
            (first[0].url, first[1].url, first[2].url, first[3].url),
            (1, 1, 0, 1)
        );
    }

    #[test]
    fn worker_tallies_and_acks_merge() {
        let one = Tally {
            deliveries: 100,
            lost: 2,
            members_with_loss: 1,
            duplicates: 1,
            out_of_order: 0,
            unacked_seen: 3,
            closed_early: 1,
            reasons: vec!["closed by the server: 1013".into()],
            last_delivery: Some(5_000),
        };
        let two = Tally {
            deliveries: 250,
            lost: 0,
            members_with_loss: 0,
            duplicates: 4,
            out_of_order: 2,
            unacked_seen: 0,
            closed_early: 2,
            reasons: vec![
                "closed by the server: 1013".into(),
                "socket error: reset".into(),
            ],
            last_delivery: Some(4_000),
        };
        let mut merged = Tally::from_json(&one.to_json());
        assert_eq!(merged, one);
        merged.merge(&Tally::from_json(&two.to_json()));
        assert_eq!(
            merged,
            Tally {
                deliveries: 350,
                lost: 2,
                members_with_loss: 1,
                duplicates: 5,
                out_of_order: 2,
                unacked_seen: 3,
                closed_early: 3,
                reasons: vec![
                    "closed by the server: 1013".into(),
                    "socket error: reset".into()
                ],
                last_delivery: Some(5_000),
            }
        );
        // Two workers' senders in the same rooms: the acked seqs are united per room.
        let posted = [
            json!({"acked_ranges": [[[1, 40]], [], [[1, 3]]]}),
            json!({"acked_ranges": [[[41, 50]], [[1, 9]], [[5, 5]]]}),
        ];
        assert_eq!(
            union_acked(&posted, 3).unwrap(),
            [vec![(1, 50)], vec![(1, 9)], vec![(1, 3), (5, 5)]]
        );
        assert!(union_acked(&posted, 2).is_err());
    }
}
