//! Ordering and durability (PROTOCOL §5 acks, §6) against a real server, on SQLite and on PostgreSQL: many senders at
//! once, a reader resuming mid-stream, idempotent retries, a server killed with SIGKILL, and (on PostgreSQL only: an
//! embedded database cannot go away) a database that goes away and comes back.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use futures_util::SinkExt;
use palaver_integration_tests::api::{self, Client, PASSWORD};
use palaver_integration_tests::pipe::{Pipe, PipeReceiver, command, next_json};
use palaver_integration_tests::process::ServerProcess;
use palaver_integration_tests::proxy::ProxiedPostgres;
use palaver_integration_tests::ws::{FRAME_TIMEOUT, WsClient};
use palaver_integration_tests::{Engine, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_tungstenite::tungstenite::Message;

/// How many messages a sending client keeps in flight (sent, not yet acknowledged). The server takes up to 64 per
/// connection before it stops reading; a client that sends without bound and reads more slowly than the room moves
/// ends up a slow consumer, closed with 1013 (PROTOCOL §2).
const WINDOW: usize = 32;

/// Lifts the per-user command limit (20 per second by default), which load from one user would otherwise hit.
const NO_RATE_LIMIT: (&str, &str) = ("PALAVER_WS_MESSAGE_LIMIT", "100000");

/// A `room_message` whose content, client_msg_id and command id are all `key`, so every frame names its message.
fn keyed_message(room: &str, key: &str) -> Message {
    command(
        "room_message",
        json!({"room": room, "content": key, "client_msg_id": key}),
        key,
    )
}

/// What one connection received.
#[derive(Debug, Default)]
struct Seen {
    /// `(seq, username, client_msg_id)` of every `message` frame, in arrival order.
    messages: Vec<(i64, String, Option<String>)>,
    /// `(command id, seq)` of every `ack`, in arrival order.
    acks: Vec<(String, i64)>,
}

impl Seen {
    fn seqs(&self) -> Vec<i64> {
        self.messages.iter().map(|(seq, _, _)| *seq).collect()
    }
}

/// Reads until at least `messages` message frames and `acks` acks have arrived, giving a permit back to `window` for
/// each ack. Presence frames are skipped; any other frame (an error, say) fails the test.
async fn read_until(
    rx: &mut PipeReceiver,
    seen: &mut Seen,
    messages: usize,
    acks: usize,
    window: Option<&Semaphore>,
) {
    while seen.messages.len() < messages || seen.acks.len() < acks {
        let frame = next_json(rx).await.unwrap_or_else(|end| {
            panic!(
                "the connection {end} after {} messages and {} acks",
                seen.messages.len(),
                seen.acks.len()
            )
        });
        match frame["type"].as_str() {
            Some("message") => seen.messages.push((
                seq_of(&frame),
                frame["username"].as_str().unwrap_or_default().to_owned(),
                frame["client_msg_id"].as_str().map(str::to_owned),
            )),
            Some("ack") => {
                seen.acks.push((
                    frame["id"].as_str().unwrap_or_default().to_owned(),
                    seq_of(&frame),
                ));
                if let Some(window) = window {
                    window.add_permits(1);
                }
            }
            Some("joined" | "left") => {}
            _ => panic!("unexpected frame: {frame}"),
        }
    }
}

fn seq_of(frame: &Value) -> i64 {
    frame["seq"]
        .as_i64()
        .unwrap_or_else(|| panic!("no seq in {frame}"))
}

/// Asserts that `seqs` is exactly `1..=last`, naming the first place it is not (a gap, a repeat, a swap).
fn assert_gapless(who: &str, seqs: &[i64], last: i64) {
    if let Some(at) = (0..seqs.len()).find(|&i| seqs[i] != i as i64 + 1) {
        let window = &seqs[at.saturating_sub(3)..(at + 4).min(seqs.len())];
        panic!(
            "{who}: expected seqs 1..={last}; at position {at} expected {} but got {} (around it: {window:?}; {} \
             seqs in all)",
            at + 1,
            seqs[at],
            seqs.len()
        );
    }
    assert_eq!(
        seqs.len() as i64,
        last,
        "{who}: expected seqs 1..={last}, got 1..={}",
        seqs.len()
    );
}

// ---------------------------------------------------------------------------------------------------------------
// 1. Many senders at once.

const FLOOD_ROOM: &str = "flood";
/// Sending connections: two per user.
const SENDERS: usize = 20;
const SENDING_USERS: usize = 10;
const PER_SENDER: usize = 200;
/// Connections that only read, joined before anyone sends.
const READERS: usize = 2;

async fn concurrent_senders_get_gapless_ordered_seqs(engine: Engine) {
    let Some(server) = TestServer::start_with(engine, &[NO_RATE_LIMIT]).await else {
        return;
    };
    let client = Client {
        server,
        http: reqwest::Client::new(),
    };
    let addr = client.server.addr();
    let reader = client.user("reader").await;
    let (status, body) = client
        .post_as(&reader, "/api/rooms", json!({"name": FLOOD_ROOM}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut users = Vec::new();
    for user in 0..SENDING_USERS {
        let name = format!("sender_{user}");
        let token = client.user(&name).await;
        users.push((name, token));
    }

    let mut readers = Vec::new();
    for r in 0..READERS {
        let mut pipe = Pipe::open(addr, &reader).await;
        pipe.join_room(json!({"name": FLOOD_ROOM}), &format!("r{r}"))
            .await;
        readers.push(pipe);
    }
    let mut senders = Vec::new();
    for s in 0..SENDERS {
        let (name, token) = &users[s % SENDING_USERS];
        let mut pipe = Pipe::open(addr, token).await;
        pipe.join_room(json!({"name": FLOOD_ROOM}), &format!("s{s}"))
            .await;
        senders.push((name.clone(), pipe));
    }

    let total = SENDERS * PER_SENDER;
    let started = Instant::now();
    let reader_tasks: Vec<_> = readers
        .into_iter()
        .map(|mut pipe| {
            tokio::spawn(async move {
                let mut seen = Seen::default();
                read_until(&mut pipe.rx, &mut seen, total, 0, None).await;
                seen
            })
        })
        .collect();
    let sender_tasks: Vec<_> = senders
        .into_iter()
        .enumerate()
        .map(|(s, (name, pipe))| {
            tokio::spawn(async move { (name, send_and_collect(pipe, s, total).await) })
        })
        .collect();
    let mut seen_by_readers = Vec::new();
    for task in reader_tasks {
        seen_by_readers.push(task.await.expect("a reader finished"));
    }
    let mut seen_by_senders = Vec::new();
    for task in sender_tasks {
        seen_by_senders.push(task.await.expect("a sender finished"));
    }
    eprintln!(
        "{engine:?}: {total} messages from {SENDERS} connections ({SENDING_USERS} users) reached {} connections in \
         {:?}",
        READERS + SENDERS,
        started.elapsed()
    );

    // Every connection in the room, the senders' own included, saw 1..=total once each, in order.
    let total = total as i64;
    for (r, seen) in seen_by_readers.iter().enumerate() {
        assert_gapless(&format!("reader {r}"), &seen.seqs(), total);
    }
    for (s, (name, seen)) in seen_by_senders.iter().enumerate() {
        assert_gapless(&format!("sender {s} ({name})"), &seen.seqs(), total);
    }

    // Each sender got one ack per message, each naming the seq its own message was delivered with.
    let delivered: HashMap<i64, (String, Option<String>)> = seen_by_readers[0]
        .messages
        .iter()
        .map(|(seq, user, key)| (*seq, (user.clone(), key.clone())))
        .collect();
    let mut acked_seqs = Vec::new();
    for (s, (name, seen)) in seen_by_senders.iter().enumerate() {
        assert_eq!(seen.acks.len(), PER_SENDER, "sender {s}: {:?}", seen.acks);
        let ids: BTreeSet<&str> = seen.acks.iter().map(|(id, _)| id.as_str()).collect();
        let sent: BTreeSet<String> = (0..PER_SENDER).map(|n| format!("s{s}-{n}")).collect();
        assert!(
            ids.iter().copied().eq(sent.iter().map(String::as_str)),
            "sender {s}: one ack per command"
        );
        let seqs: BTreeSet<i64> = seen.acks.iter().map(|(_, seq)| *seq).collect();
        assert_eq!(seqs.len(), PER_SENDER, "sender {s}: distinct seqs");
        for (id, seq) in &seen.acks {
            let (user, key) = &delivered[seq];
            assert_eq!(
                (user.as_str(), key.as_deref()),
                (name.as_str(), Some(id.as_str())),
                "sender {s}: ack {id} says seq {seq}, which was delivered as another message"
            );
        }
        acked_seqs.extend(seqs);
    }
    acked_seqs.sort_unstable();
    assert_gapless("the union of all acks", &acked_seqs, total);
}

/// Sends `PER_SENDER` keyed messages as fast as the server takes them, [`WINDOW`] at most in flight, while reading
/// every frame, until all acks and all `total` messages of the room have arrived.
async fn send_and_collect(pipe: Pipe, sender: usize, total: usize) -> Seen {
    let Pipe { mut tx, mut rx } = pipe;
    let window = Semaphore::new(WINDOW);
    let send_all = async {
        for n in 0..PER_SENDER {
            window
                .acquire()
                .await
                .expect("the window stays open")
                .forget();
            let key = format!("s{sender}-{n}");
            tx.send(keyed_message(FLOOD_ROOM, &key))
                .await
                .expect("a message sent");
        }
    };
    let mut seen = Seen::default();
    tokio::join!(
        send_all,
        read_until(&mut rx, &mut seen, total, PER_SENDER, Some(&window))
    );
    seen
}

// ---------------------------------------------------------------------------------------------------------------
// 2. Resuming mid-stream.

const RESUME_ROOM: &str = "general";
/// How many times the reader drops its connection and resumes.
const RESUMES: usize = 3;
/// How far the room moves on while the reader is away: more than one replay page (200).
const MISSED: i64 = 450;

async fn a_reader_resumes_mid_stream_without_gap_or_duplicate(engine: Engine) {
    let Some(server) = TestServer::start_with(engine, &[NO_RATE_LIMIT]).await else {
        return;
    };
    let client = Client {
        server,
        http: reqwest::Client::new(),
    };
    let jane = client.user("jane_doe").await;
    let (status, body) = client
        .post_as(&jane, "/api/rooms", json!({"name": RESUME_ROOM}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut reader = WsClient::json(&client.server, &jane).await;
    let welcome = join(&mut reader, json!({"name": RESUME_ROOM}), "j0").await;
    assert_eq!(welcome["last_seq"], 0, "{welcome}");

    let stop = Arc::new(AtomicBool::new(false));
    let (acked, mut top_acked) = watch::channel(0_i64);
    let acked = Arc::new(acked);
    let mut senders = Vec::new();
    for s in 0..3 {
        let name = format!("sender_{s}");
        let token = client.user(&name).await;
        let mut ws = WsClient::json(&client.server, &token).await;
        join(&mut ws, json!({"name": RESUME_ROOM}), "j").await;
        senders.push(tokio::spawn(keep_sending(
            ws,
            name,
            stop.clone(),
            acked.clone(),
        )));
    }

    let started = Instant::now();
    let mut last = 0_i64;
    for resume in 1..=RESUMES {
        let watched_through = last + 100;
        read_messages(&mut reader, &mut last, watched_through).await;
        reader.drop_without_close();
        let missed_through = last + MISSED;
        await_acked(&mut top_acked, missed_through).await;

        reader = WsClient::json(&client.server, &jane).await;
        let id = format!("resume{resume}");
        let welcome = join(
            &mut reader,
            json!({"name": RESUME_ROOM, "after_seq": last}),
            &id,
        )
        .await;
        let last_seq = welcome["last_seq"]
            .as_i64()
            .unwrap_or_else(|| panic!("{welcome}"));
        assert!(last_seq >= missed_through, "{welcome}");
        // The replay, then live messages: read well past what the welcome announced while the senders go on.
        read_messages(&mut reader, &mut last, last_seq + 50).await;
        assert!(
            !senders.iter().any(|task| task.is_finished()),
            "the senders were still sending"
        );
    }
    stop.store(true, Ordering::SeqCst);
    let mut acked_seqs = Vec::new();
    let mut open = Vec::new();
    for task in senders {
        let (ws, seqs) = task.await.expect("a sender finished");
        acked_seqs.extend(seqs);
        open.push(ws);
    }
    acked_seqs.sort_unstable();
    let final_seq = acked_seqs.last().copied().unwrap_or_default();
    assert_gapless("the union of all acks", &acked_seqs, final_seq);
    read_messages(&mut reader, &mut last, final_seq).await;
    // Nothing after the last message: no late duplicate of a held or replayed one. The sentinel is one more message,
    // so a duplicate that a later delivery would let out is caught too: the reader's very next frame must be it.
    let sentinel = &mut open[0];
    post_key(sentinel, RESUME_ROOM, "sentinel", "sentinel").await;
    let sentinel_seq = await_ack(sentinel, "sentinel").await;
    assert_eq!(
        sentinel_seq,
        final_seq + 1,
        "the sentinel follows the last ack"
    );
    expect_keyed_message(&mut reader, sentinel_seq, "sender_0", "sentinel").await;
    reader.expect_nothing_before_sentinel().await;
    eprintln!(
        "{engine:?}: {final_seq} messages, {RESUMES} resumes of ≥{MISSED} missed messages, in {:?}",
        started.elapsed()
    );
    drop(open);
}

/// Waits until the senders' highest acked seq (published by [`keep_sending`]) reaches `seq`. There is no budget for
/// the whole: each ack is awaited with the frame timeout, so a slow machine only takes longer, and only senders that
/// stop being acknowledged fail the test.
async fn await_acked(top_acked: &mut watch::Receiver<i64>, seq: i64) {
    loop {
        let top = *top_acked.borrow_and_update();
        if top >= seq {
            return;
        }
        tokio::time::timeout(FRAME_TIMEOUT, top_acked.changed())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "no ack within {FRAME_TIMEOUT:?}: the senders are at seq {top}, short of {seq}"
                )
            })
            .expect("the senders run");
    }
}

/// Sends `join_room` and returns the `welcome`, which must be the answer's first frame.
async fn join(ws: &mut WsClient, data: Value, id: &str) -> Value {
    ws.send_cmd("join_room", data.clone(), Some(id)).await;
    let welcome = ws.next_json().await;
    assert_eq!(
        welcome["type"], "welcome",
        "the answer to {data}: {welcome}"
    );
    assert_eq!(welcome["id"], id, "{welcome}");
    assert_eq!(welcome["room"], data["name"], "{welcome}");
    welcome
}

/// Reads until the message with seq `through`; each message must carry the seq after the one before (`last`).
/// Presence frames are skipped; anything else fails the test.
async fn read_messages(ws: &mut WsClient, last: &mut i64, through: i64) {
    while *last < through {
        let frame = ws.next_json().await;
        match frame["type"].as_str() {
            Some("message") => {
                let seq = seq_of(&frame);
                assert_eq!(seq, *last + 1, "after seq {last} came {frame}");
                *last = seq;
            }
            Some("joined" | "left") => {}
            _ => panic!("expected a message after seq {last}, got {frame}"),
        }
    }
}

/// Posts keyed messages one after another until `stop`, each once its predecessor is acked; publishes the highest
/// acked seq. Returns the connection (still open) and the acked seqs.
async fn keep_sending(
    mut ws: WsClient,
    name: String,
    stop: Arc<AtomicBool>,
    acked: Arc<watch::Sender<i64>>,
) -> (WsClient, Vec<i64>) {
    let mut seqs = Vec::new();
    let mut n = 0;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let key = format!("{name}-{n}");
        ws.send_cmd(
            "room_message",
            json!({"room": RESUME_ROOM, "content": key, "client_msg_id": key}),
            Some(&key),
        )
        .await;
        let seq = await_ack(&mut ws, &key).await;
        seqs.push(seq);
        acked.send_modify(|top| *top = (*top).max(seq));
    }
    (ws, seqs)
}

/// Reads until the ack of command `id` and returns its seq; messages and presence frames on the way are skipped.
async fn await_ack(ws: &mut WsClient, id: &str) -> i64 {
    loop {
        let frame = ws.next_json().await;
        match frame["type"].as_str() {
            Some("ack") => {
                assert_eq!(frame["id"], id, "{frame}");
                return seq_of(&frame);
            }
            Some("message" | "joined" | "left") => {}
            _ => panic!("expected the ack of {id}, got {frame}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------------------------
// 3. Idempotent retries.

/// Posts `key` as the content and the client_msg_id of a message, with command id `id`.
async fn post_key(ws: &mut WsClient, room: &str, key: &str, id: &str) {
    ws.send_cmd(
        "room_message",
        json!({"room": room, "content": key, "client_msg_id": key}),
        Some(id),
    )
    .await;
}

/// Asserts that the next frame is the `message` with this seq and key.
async fn expect_keyed_message(ws: &mut WsClient, seq: i64, username: &str, key: &str) {
    let frame = ws.expect_json("message").await;
    assert_keyed(&frame, seq, username, key);
}

/// Asserts that `frame` is the `message` with this seq and key (posted by [`post_key`]).
fn assert_keyed(frame: &Value, seq: i64, username: &str, key: &str) {
    assert_eq!(
        (
            &frame["type"],
            &frame["seq"],
            &frame["username"],
            &frame["client_msg_id"],
            &frame["content"]
        ),
        (
            &json!("message"),
            &json!(seq),
            &json!(username),
            &json!(key),
            &json!(key)
        ),
        "{frame}"
    );
}

/// The error frame refusing command `id` because the database failed (PROTOCOL §6.4).
fn unavailable(id: &str) -> Value {
    json!({
        "type": "error",
        "code": "unavailable",
        "message": "the service is temporarily unavailable, please retry",
        "id": id,
    })
}

/// Asserts that the next frame is exactly the ack of command `id` with this seq.
async fn expect_ack(ws: &mut WsClient, id: &str, room: &str, seq: i64) {
    let ack = ws.next_json().await;
    assert_eq!(
        ack,
        json!({"type": "ack", "id": id, "room": room, "seq": seq})
    );
}

async fn retries_with_the_same_client_msg_id_are_stored_once(engine: Engine) {
    let Some(server) = TestServer::start_with(engine, &[NO_RATE_LIMIT]).await else {
        return;
    };
    let client = Client {
        server,
        http: reqwest::Client::new(),
    };
    let john = client.user("john_doe").await;
    let jane = client.user("jane_doe").await;
    let room = "general";
    let mut phone = WsClient::json(&client.server, &john).await;
    phone
        .send_cmd("create_room", json!({"name": room}), Some("c"))
        .await;
    phone.expect_json("room_created").await;
    phone.expect_json("welcome").await;
    let mut laptop = WsClient::json(&client.server, &john).await;
    join(&mut laptop, json!({"name": room}), "j").await;
    let mut other = WsClient::json(&client.server, &jane).await;
    join(&mut other, json!({"name": room}), "j").await;
    for ws in [&mut phone, &mut laptop] {
        let joined = ws.expect_json("joined").await;
        assert_eq!(joined["username"], "jane_doe", "{joined}");
    }

    // The first post is stored and delivered; its repeat on the same connection is only acknowledged.
    post_key(&mut phone, room, "k-1", "a1").await;
    expect_keyed_message(&mut phone, 1, "john_doe", "k-1").await;
    expect_ack(&mut phone, "a1", room, 1).await;
    post_key(&mut phone, room, "k-1", "a2").await;
    expect_ack(&mut phone, "a2", room, 1).await;
    // Pipelined: the same key twice before the first ack; both acks carry the one seq.
    post_key(&mut phone, room, "k-1", "a2b").await;
    post_key(&mut phone, room, "k-1", "a2c").await;
    expect_ack(&mut phone, "a2b", room, 1).await;
    expect_ack(&mut phone, "a2c", room, 1).await;
    // From the user's other connection too.
    expect_keyed_message(&mut laptop, 1, "john_doe", "k-1").await;
    post_key(&mut laptop, room, "k-1", "b1").await;
    expect_ack(&mut laptop, "b1", room, 1).await;

    // Across a reconnect (the retry of a client that lost its connection before the ack).
    phone.drop_without_close();
    let mut phone = WsClient::json(&client.server, &john).await;
    let welcome = join(&mut phone, json!({"name": room, "after_seq": 0}), "j2").await;
    assert_eq!(welcome["last_seq"], 1, "{welcome}");
    expect_keyed_message(&mut phone, 1, "john_doe", "k-1").await;
    post_key(&mut phone, room, "k-1", "a3").await;
    expect_ack(&mut phone, "a3", room, 1).await;

    // The same key from both connections at once, many times: one message each, one seq in both acks.
    const RACES: i64 = 20;
    for race in 0..RACES {
        let key = format!("race-{race}");
        post_key(&mut phone, room, &key, "p").await;
        post_key(&mut laptop, room, &key, "l").await;
        let seq = 2 + race;
        for (ws, id) in [(&mut phone, "p"), (&mut laptop, "l")] {
            let ack = await_ack(ws, id).await;
            assert_eq!(ack, seq, "{key} from the {id} connection");
        }
    }
    // Another user's key is hers alone, even when it is spelled like john's.
    post_key(&mut other, room, "k-1", "o1").await;
    let jane_seq = RACES + 2;
    expect_keyed_message(&mut other, 1, "john_doe", "k-1").await;
    for race in 0..RACES {
        expect_keyed_message(&mut other, 2 + race, "john_doe", &format!("race-{race}")).await;
    }
    expect_keyed_message(&mut other, jane_seq, "jane_doe", "k-1").await;
    expect_ack(&mut other, "o1", room, jane_seq).await;
    // Every post above was acknowledged, and a message is delivered before it is acknowledged: a second delivery of any
    // of them would already be queued ahead of the sentinel.
    other.expect_nothing_before_sentinel().await;

    // History shows each message once.
    other
        .send_cmd(
            "get_messages",
            json!({"name": room, "limit": 200}),
            Some("h"),
        )
        .await;
    let history = other.expect_json("history").await;
    let stored: Vec<(i64, String, String)> = history["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("{history}"))
        .iter()
        .map(|message| {
            (
                seq_of(message),
                message["username"].as_str().unwrap_or_default().to_owned(),
                message["client_msg_id"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .rev()
        .collect();
    let mut expected = vec![(1, "john_doe".to_owned(), "k-1".to_owned())];
    expected.extend((0..RACES).map(|race| (2 + race, "john_doe".into(), format!("race-{race}"))));
    expected.push((jane_seq, "jane_doe".into(), "k-1".into()));
    assert_eq!(stored, expected, "{history}");
}

// ---------------------------------------------------------------------------------------------------------------
// 4. SIGKILL.

const CRASH_ROOM: &str = "crash";
const CRASH_SENDERS: usize = 4;
/// Acks to collect before the kill.
const ACKS_BEFORE_KILL: usize = 300;

async fn acknowledged_messages_survive_a_sigkill(engine: Engine) {
    let Some(mut server) = ServerProcess::start(engine, &[NO_RATE_LIMIT]).await else {
        return;
    };
    let http = reqwest::Client::new();
    let mut tokens = Vec::new();
    for s in 0..CRASH_SENDERS {
        tokens.push(account(&http, &server, &format!("crasher_{s}")).await);
    }
    let (status, body) = api::read(
        http.post(server.url("/api/rooms"))
            .bearer_auth(&tokens[0])
            .json(&json!({"name": CRASH_ROOM}))
            .send()
            .await
            .expect("request sent"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (acks_tx, mut acks) = mpsc::channel::<(String, i64)>(1024);
    let mut pipes = Vec::new();
    for token in &tokens {
        let mut pipe = Pipe::open(server.addr(), token).await;
        pipe.join_room(json!({"name": CRASH_ROOM}), "j").await;
        pipes.push(pipe);
    }
    let senders: Vec<_> = pipes
        .into_iter()
        .enumerate()
        .map(|(s, pipe)| tokio::spawn(send_until_cut(pipe, s, acks_tx.clone())))
        .collect();
    drop(acks_tx);

    let mut acked: Vec<(String, i64)> = Vec::new();
    while acked.len() < ACKS_BEFORE_KILL {
        let ack = tokio::time::timeout(FRAME_TIMEOUT, acks.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} acks within {FRAME_TIMEOUT:?}", acked.len()))
            .expect("the senders run until the kill");
        acked.push(ack);
    }
    server.kill().await;
    // Acks already on their way when the server died count as well: they were sent, so they were promised.
    while let Some(ack) = acks.recv().await {
        acked.push(ack);
    }
    let mut sent: Vec<(usize, String)> = Vec::new();
    for (s, task) in senders.into_iter().enumerate() {
        let keys = task.await.expect("a sender ended with the server");
        sent.extend(keys.into_iter().map(|key| (s, key)));
    }

    server.restart().await;
    let stored = stored_messages(&http, &server, &tokens[0], CRASH_ROOM).await;
    let by_key = index_by_key(&stored);
    for (key, seq) in &acked {
        assert_eq!(
            by_key.get(key.as_str()),
            Some(seq),
            "{key} was acknowledged with seq {seq} before the kill"
        );
    }
    let acked_keys: BTreeSet<&str> = acked.iter().map(|(key, _)| key.as_str()).collect();
    let unacked: Vec<&(usize, String)> = sent
        .iter()
        .filter(|(_, key)| !acked_keys.contains(key.as_str()))
        .collect();
    let stored_before = stored.len() as i64;
    eprintln!(
        "{engine:?}: killed with {} acks received, {} messages sent and not acked; {stored_before} stored",
        acked.len(),
        unacked.len()
    );

    // The clients retry what was not acknowledged, with the same keys: what was stored keeps its seq, the rest is
    // stored now, after everything else.
    let mut next_new = stored_before + 1;
    for (s, token) in tokens.iter().enumerate() {
        let mut pipe = Pipe::open(server.addr(), token).await;
        pipe.join_room(json!({"name": CRASH_ROOM}), "j").await;
        for (_, key) in unacked.iter().filter(|(sender, _)| *sender == s) {
            pipe.tx
                .send(keyed_message(CRASH_ROOM, key))
                .await
                .expect("a retry sent");
            let seq = pipe.await_ack(key).await;
            match by_key.get(key.as_str()) {
                Some(stored_seq) => assert_eq!(seq, *stored_seq, "retry of {key}"),
                None => {
                    assert_eq!(seq, next_new, "retry of {key}, stored only now");
                    next_new += 1;
                }
            }
        }
    }
    // The room's seq goes on from the last stored message: the kill used up no seq.
    let mut pipe = Pipe::open(server.addr(), &tokens[0]).await;
    pipe.join_room(json!({"name": CRASH_ROOM}), "j").await;
    pipe.tx
        .send(keyed_message(CRASH_ROOM, "after-restart"))
        .await
        .expect("a message sent");
    assert_eq!(pipe.await_ack("after-restart").await, next_new);
    next_new += 1;
    let stored = stored_messages(&http, &server, &tokens[0], CRASH_ROOM).await;
    let by_key = index_by_key(&stored);
    for (_, key) in &sent {
        assert!(by_key.contains_key(key.as_str()), "{key} is stored");
    }
    assert_eq!(stored.len() as i64, next_new - 1);
}

/// Registers and logs in `username` on a child-process server; returns the token.
async fn account(http: &reqwest::Client, server: &ServerProcess, username: &str) -> String {
    let (status, body) = api::read(
        http.post(server.url("/api/register"))
            .json(&json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}))
            .send()
            .await
            .expect("request sent"),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = api::read(
        http.post(server.url("/api/login"))
            .json(&json!({"username": username, "password": PASSWORD}))
            .send()
            .await
            .expect("request sent"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["token"].as_str().expect("a token").to_owned()
}

/// Keeps up to [`WINDOW`] keyed messages in flight until the connection ends; reports each ack as it arrives and
/// returns every key sent.
async fn send_until_cut(
    pipe: Pipe,
    sender: usize,
    acks: mpsc::Sender<(String, i64)>,
) -> Vec<String> {
    let Pipe { mut tx, mut rx } = pipe;
    let window = Semaphore::new(WINDOW);
    let send = async {
        let mut sent = Vec::new();
        for n in 0.. {
            let Ok(permit) = window.acquire().await else {
                break;
            };
            permit.forget();
            let key = format!("c{sender}-{n}");
            // Counted as sent before it is written: a failed write may still have reached the server.
            sent.push(key.clone());
            if tx.send(keyed_message(CRASH_ROOM, &key)).await.is_err() {
                break;
            }
        }
        sent
    };
    let read = async {
        while let Ok(frame) = next_json(&mut rx).await {
            match frame["type"].as_str() {
                Some("ack") => {
                    let key = frame["id"].as_str().unwrap_or_default().to_owned();
                    let _ = acks.send((key, seq_of(&frame))).await;
                    window.add_permits(1);
                }
                Some("message" | "joined" | "left") => {}
                _ => panic!("unexpected frame: {frame}"),
            }
        }
        window.close();
    };
    let (sent, ()) = tokio::join!(send, read);
    sent
}

/// Every stored message of `room`, oldest first, read through `GET /api/rooms/{room}/messages` in pages of 200;
/// asserts that the seqs are 1..=N.
async fn stored_messages(
    http: &reqwest::Client,
    server: &ServerProcess,
    token: &str,
    room: &str,
) -> Vec<Value> {
    let mut messages: Vec<Value> = Vec::new();
    let mut before: Option<i64> = None;
    loop {
        let mut path = format!("/api/rooms/{room}/messages?limit=200");
        if let Some(before) = before {
            path.push_str(&format!("&before_seq={before}"));
        }
        let response = http
            .get(server.url(&path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request sent");
        let (status, page) = api::read(response).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        let batch = page["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("{path}: {page}"));
        messages.extend(batch.iter().cloned());
        if page["has_more"] != true {
            break;
        }
        before = Some(
            page["next_before"]
                .as_i64()
                .unwrap_or_else(|| panic!("{path}: {page}")),
        );
    }
    messages.reverse();
    let seqs: Vec<i64> = messages.iter().map(seq_of).collect();
    assert_gapless(
        &format!("the stored messages of {room}"),
        &seqs,
        seqs.len() as i64,
    );
    messages
}

/// client_msg_id → seq of stored messages; asserts that no key is stored twice.
fn index_by_key(messages: &[Value]) -> BTreeMap<&str, i64> {
    let mut by_key = BTreeMap::new();
    for message in messages {
        let key = message["client_msg_id"]
            .as_str()
            .unwrap_or_else(|| panic!("no client_msg_id: {message}"));
        assert_eq!(
            message["content"], key,
            "the content belongs to its key: {message}"
        );
        if let Some(earlier) = by_key.insert(key, seq_of(message)) {
            panic!("{key} is stored twice: seq {earlier} and {message}");
        }
    }
    by_key
}

// ---------------------------------------------------------------------------------------------------------------
// 5. The database goes away and comes back (PostgreSQL only).

/// A server whose PostgreSQL is reached through a [`palaver_integration_tests::proxy::Proxy`], and a room where john
/// posts and jane listens; one message (`k-1`, seq 1) is already stored and delivered.
struct Proxied {
    client: Client,
    jane: String,
    sender: WsClient,
    other: WsClient,
    // Declared last: the server is gone before the proxy and the schema.
    database: ProxiedPostgres,
}

const PROXIED_ROOM: &str = "general";

impl Proxied {
    /// PostgreSQL only (an embedded database cannot become unreachable); `None` without PostgreSQL outside CI.
    async fn start() -> Option<Proxied> {
        let database = ProxiedPostgres::start().await?;
        let server =
            TestServer::start_on_postgres(database.url(), &[("PALAVER_DB_TIMEOUT_MS", "1000")])
                .await;
        let client = Client {
            server,
            http: reqwest::Client::new(),
        };
        let john = client.user("john_doe").await;
        let jane = client.user("jane_doe").await;
        let mut sender = WsClient::json(&client.server, &john).await;
        sender
            .send_cmd("create_room", json!({"name": PROXIED_ROOM}), Some("c"))
            .await;
        sender.expect_json("room_created").await;
        sender.expect_json("welcome").await;
        let mut other = WsClient::json(&client.server, &jane).await;
        join(&mut other, json!({"name": PROXIED_ROOM}), "j").await;
        sender.expect_json("joined").await;
        post_key(&mut sender, PROXIED_ROOM, "k-1", "m1").await;
        expect_keyed_message(&mut sender, 1, "john_doe", "k-1").await;
        expect_ack(&mut sender, "m1", PROXIED_ROOM, 1).await;
        expect_keyed_message(&mut other, 1, "john_doe", "k-1").await;
        let (status, body) = client.get("/readyz", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        Some(Proxied {
            client,
            jane,
            sender,
            other,
            database,
        })
    }

    /// `(seq, client_msg_id)` of the room's stored messages, newest first, read through the REST route.
    async fn stored_keys(&self) -> Vec<(i64, String)> {
        let path = format!("/api/rooms/{PROXIED_ROOM}/messages");
        let (status, page) = self.client.get(&path, Some(&self.jane)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        page["messages"]
            .as_array()
            .unwrap_or_else(|| panic!("{page}"))
            .iter()
            .map(|message| {
                let key = message["client_msg_id"].as_str().unwrap_or_default();
                (seq_of(message), key.to_owned())
            })
            .collect()
    }
}

async fn an_unreachable_database_fails_posts_and_uses_no_seq() {
    let Some(mut chat) = Proxied::start().await else {
        return;
    };
    let room = PROXIED_ROOM;
    chat.database.proxy.cut();
    post_key(&mut chat.sender, room, "k-2", "m2").await;
    let refused = chat.sender.next_json().await;
    assert_eq!(
        (&refused["type"], &refused["id"]),
        (&json!("error"), &json!("m2")),
        "a post the database never stored is refused, not acknowledged: {refused}"
    );
    eprintln!("Postgres: a post while the database is cut is answered {refused}");
    let (status, body) = chat.client.get("/readyz", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");

    chat.database.proxy.heal();
    let restored = Instant::now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    loop {
        poll.tick().await;
        let (status, body) = chat.client.get("/readyz", None).await;
        if status == StatusCode::OK {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/readyz still answers {status} {body} 10 s after the database came back"
        );
    }
    eprintln!(
        "Postgres: /readyz answered 200 {:?} after the database came back",
        restored.elapsed()
    );

    // The refused post used no seq: its retry is the next message, and the only one the others receive.
    post_key(&mut chat.sender, room, "k-2", "m3").await;
    expect_keyed_message(&mut chat.sender, 2, "john_doe", "k-2").await;
    expect_ack(&mut chat.sender, "m3", room, 2).await;
    expect_keyed_message(&mut chat.other, 2, "john_doe", "k-2").await;
    let stored = chat.stored_keys().await;
    assert_eq!(stored, [(2, "k-2".into()), (1, "k-1".into())]);
    // The sentinel is john's next message. The writer settles a post whose outcome it does not know before it commits
    // anything newer, and delivers in commit order: had the refused post been stored and delivered late after all, it
    // would reach jane before the sentinel, which would not be seq 3.
    post_key(&mut chat.sender, room, "k-3", "m4").await;
    expect_keyed_message(&mut chat.sender, 3, "john_doe", "k-3").await;
    expect_ack(&mut chat.sender, "m4", room, 3).await;
    expect_keyed_message(&mut chat.other, 3, "john_doe", "k-3").await;
}

async fn a_commit_whose_answer_is_lost_leaves_no_gap() {
    let Some(mut chat) = Proxied::start().await else {
        return;
    };
    let room = PROXIED_ROOM;
    // The database commits k-2, but the connection dies before the server hears so.
    chat.database.proxy.lose_next_answer_to(b"COMMIT");
    post_key(&mut chat.sender, room, "k-2", "m2").await;
    // The writer cannot know whether k-2 was stored, so m2 is refused (PROTOCOL §6.4). The one frame that may come
    // before the refusal is k-2 itself, seq 2: the writer settles the doubt on its own while no post arrives and
    // delivers k-2 once it finds it stored, which a very slow reply could let out first.
    let mut k2_delivered = false;
    let mut answer = chat.sender.next_json().await;
    if answer["type"] == "message" {
        assert_keyed(&answer, 2, "john_doe", "k-2");
        k2_delivered = true;
        answer = chat.sender.next_json().await;
    }
    assert_eq!(
        answer,
        unavailable("m2"),
        "a post whose commit answer was lost"
    );
    assert_eq!(
        chat.database.proxy.answers_lost(),
        1,
        "the proxy lost the answer to a COMMIT"
    );
    // The client retries. Once the writer has settled the doubt it finds k-2 stored: k-2 is delivered (unless that
    // already happened) and the retry is only acknowledged, with k-2's seq. Until the doubt is settled, the retry is
    // refused like m2 and tried again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    let mut retries = 0;
    loop {
        poll.tick().await;
        retries += 1;
        let id = format!("m3-{retries}");
        post_key(&mut chat.sender, room, "k-2", &id).await;
        let mut answer = chat.sender.next_json().await;
        if answer["type"] == "message" {
            assert!(!k2_delivered, "k-2 delivered twice: {answer}");
            assert_keyed(&answer, 2, "john_doe", "k-2");
            k2_delivered = true;
            answer = chat.sender.next_json().await;
        }
        if answer["type"] == "ack" {
            assert_eq!(
                answer,
                json!({"type": "ack", "id": id, "room": room, "seq": 2}),
                "the retry of k-2"
            );
            break;
        }
        assert_eq!(
            answer,
            unavailable(&id),
            "a retry before the doubt is settled"
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the retry of k-2 is still refused after {retries} tries"
        );
    }
    assert!(k2_delivered, "k-2, stored, was delivered to its sender");
    // Settled: the next post is stored and delivered as usual.
    post_key(&mut chat.sender, room, "k-3", "m4").await;
    expect_keyed_message(&mut chat.sender, 3, "john_doe", "k-3").await;
    expect_ack(&mut chat.sender, "m4", room, 3).await;
    eprintln!("Postgres: the retry of k-2 was acknowledged at try {retries}");
    let stored = chat.stored_keys().await;
    assert_eq!(
        stored,
        [(3, "k-3".into()), (2, "k-2".into()), (1, "k-1".into())],
        "k-2 was committed once"
    );
    // Jane, connected throughout, receives every stored message in seq order without a gap (PROTOCOL §6).
    let mut received = Vec::new();
    while received.last() != Some(&3) {
        let frame = chat.other.expect_json("message").await;
        received.push(seq_of(&frame));
        assert!(
            received.len() <= 2,
            "jane received {received:?} after seq 1"
        );
    }
    assert_eq!(received, [2, 3], "jane's messages after seq 1");
}

/// How many times a reader joins while messages flow.
const JOINS: usize = 20;

async fn a_join_during_traffic_continues_right_after_the_welcome(engine: Engine) {
    let Some(server) = TestServer::start_with(engine, &[NO_RATE_LIMIT]).await else {
        return;
    };
    let client = Client {
        server,
        http: reqwest::Client::new(),
    };
    let jane = client.user("jane_doe").await;
    let (status, body) = client
        .post_as(&jane, "/api/rooms", json!({"name": RESUME_ROOM}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let stop = Arc::new(AtomicBool::new(false));
    let (acked, mut top_acked) = watch::channel(0_i64);
    let acked = Arc::new(acked);
    let mut senders = Vec::new();
    for s in 0..3 {
        let name = format!("sender_{s}");
        let token = client.user(&name).await;
        let mut ws = WsClient::json(&client.server, &token).await;
        join(&mut ws, json!({"name": RESUME_ROOM}), "j").await;
        senders.push(tokio::spawn(keep_sending(
            ws,
            name,
            stop.clone(),
            acked.clone(),
        )));
    }
    await_acked(&mut top_acked, 20).await;

    // A plain join (no after_seq) while others post: the welcome names the room's last seq, and the connection
    // receives every message after it, from the next one on.
    let mut gaps = Vec::new();
    for attempt in 0..JOINS {
        let mut reader = WsClient::json(&client.server, &jane).await;
        reader
            .send_cmd("join_room", json!({"name": RESUME_ROOM}), Some("j"))
            .await;
        let mut last_seq = None;
        let mut received = Vec::new();
        while received.len() < 10 {
            let frame = reader.next_json().await;
            match frame["type"].as_str() {
                Some("welcome") => last_seq = Some(frame["last_seq"].as_i64().expect("a last_seq")),
                Some("message") => received.push(seq_of(&frame)),
                Some("joined" | "left") => {}
                _ => panic!("unexpected frame: {frame}"),
            }
        }
        let last_seq = last_seq.expect("a welcome among the first frames");
        let expected: Vec<i64> = (last_seq + 1..=last_seq + 10).collect();
        if received != expected {
            gaps.push(format!(
                "join {attempt}: welcome last_seq {last_seq}, then messages {received:?}"
            ));
        }
        reader.drop_without_close();
    }
    stop.store(true, Ordering::SeqCst);
    for task in senders {
        task.await.expect("a sender finished");
    }
    assert!(
        gaps.is_empty(),
        "{} of {JOINS} joins missed messages after the welcome:\n{}",
        gaps.len(),
        gaps.join("\n")
    );
}

palaver_integration_tests::on_every_engine!(
    concurrent_senders_get_gapless_ordered_seqs,
    a_reader_resumes_mid_stream_without_gap_or_duplicate,
    retries_with_the_same_client_msg_id_are_stored_once,
    acknowledged_messages_survive_a_sigkill,
    a_join_during_traffic_continues_right_after_the_welcome,
    ; postgres only:
    an_unreachable_database_fails_posts_and_uses_no_seq,
    a_commit_whose_answer_is_lost_leaves_no_gap,
);
