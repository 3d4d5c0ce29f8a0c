//! Several Palaver nodes on one PostgreSQL and one NATS: room events cross nodes, every member on every node gets
//! each room's messages in seq order exactly once, and what NATS loses (a node cut off from it) is repaired from the
//! database. Needs PostgreSQL (`TEST_DATABASE_URL`) and NATS (`TEST_NATS_URL` or a server on 127.0.0.1:4222); in CI
//! both must be there.

use std::time::Duration;

use palaver_integration_tests::TestServer;
use palaver_integration_tests::api::{PASSWORD, read};
use palaver_integration_tests::nats;
use palaver_integration_tests::pg::{self, PgDatabase};
use palaver_integration_tests::proxy::{Proxy, through};
use palaver_integration_tests::ws::{FRAME_TIMEOUT, WsClient};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Quick repairs, so that tests of them are quick too, and no per-user command limit for the bursts.
const TIMING: [(&str, &str); 3] = [
    ("PALAVER_CLUSTER_GAP_HOLD_MS", "100"),
    ("PALAVER_CLUSTER_POSITION_CHECK_MS", "200"),
    ("PALAVER_WS_MESSAGE_LIMIT", "100000"),
];

/// A database and a NATS server for a cluster, or `None` when either is missing outside CI.
async fn backing() -> Option<(PgDatabase, String)> {
    let nats = nats::server_url().await?;
    let database = pg::fresh_database_url().await?;
    Some((database, nats))
}

/// A node of the cluster on `database` and `nats`, named `node`.
async fn node(database: &PgDatabase, nats: &str, node: &str) -> TestServer {
    let mut settings = vec![("PALAVER_NATS_URL", nats), ("PALAVER_NODE_ID", node)];
    settings.extend(TIMING);
    TestServer::start_on_postgres(database.url(), &settings).await
}

/// Registers `username` on `server` and logs in; the token works on every node (one signing key).
async fn account(server: &TestServer, username: &str) -> String {
    let http = reqwest::Client::new();
    let registered = http
        .post(server.url("/api/register"))
        .json(&json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}))
        .send()
        .await
        .expect("register sent");
    assert_eq!(registered.status(), StatusCode::CREATED);
    let (status, body) = read(
        http.post(server.url("/api/login"))
            .json(&json!({"username": username, "password": PASSWORD}))
            .send()
            .await
            .expect("login sent"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body["token"].as_str().expect("a token").to_owned()
}

/// A member's socket and the room messages it has been delivered but the test has not looked at yet.
struct Member {
    ws: WsClient,
    unread: Vec<Value>,
    /// Answers to commands that arrived while the test was reading messages.
    answers: Vec<Value>,
}

impl Member {
    async fn open(server: &TestServer, token: &str) -> Member {
        Member {
            ws: WsClient::json(server, token).await,
            unread: Vec::new(),
            answers: Vec::new(),
        }
    }

    /// The answer to command `id`; messages delivered before it are kept for [`Member::through`].
    async fn answer_to(&mut self, id: &str) -> Value {
        if let Some(at) = self.answers.iter().position(|frame| frame["id"] == id) {
            return self.answers.remove(at);
        }
        loop {
            let frame = self.ws.next_json().await;
            if frame["id"] == id {
                return frame;
            }
            if frame["type"] == "message" {
                self.unread.push(frame);
            }
        }
    }

    /// Creates `room` (and so joins it).
    async fn create(&mut self, room: &str) {
        self.ws
            .send_cmd("create_room", json!({"name": room}), Some("create"))
            .await;
        assert_eq!(self.answer_to("create").await["type"], "room_created");
        self.ws.expect_json("welcome").await;
    }

    /// Joins `room`; the welcome's `last_seq`.
    async fn join(&mut self, room: &str) -> i64 {
        self.ws
            .send_cmd("join_room", json!({"name": room}), Some("join"))
            .await;
        let welcome = self.answer_to("join").await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        welcome["last_seq"].as_i64().expect("a last_seq")
    }

    /// Posts `content` (also its command id) without waiting for the ack.
    async fn send(&mut self, room: &str, content: &str) {
        self.ws
            .send_cmd(
                "room_message",
                json!({"room": room, "content": content}),
                Some(content),
            )
            .await;
    }

    /// Posts `content` and returns its acknowledged seq.
    async fn post(&mut self, room: &str, content: &str) -> i64 {
        self.send(room, content).await;
        let ack = self.answer_to(content).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        ack["seq"].as_i64().expect("a seq")
    }

    /// The messages with seqs `first..=last`, asserting they were delivered in that order, each once, and nothing
    /// else before them; acks and presence frames are skipped.
    async fn through(&mut self, first: i64, last: i64) -> Vec<Value> {
        while !self.unread.iter().any(|frame| frame["seq"] == last) {
            let frame = self.ws.next_json().await;
            if frame["type"] == "message" {
                self.unread.push(frame);
            } else if !frame["id"].is_null() {
                self.answers.push(frame);
            }
        }
        let seen: Vec<Value> = self.unread.drain(..).collect();
        let seqs: Vec<i64> = seen
            .iter()
            .filter_map(|frame| frame["seq"].as_i64())
            .collect();
        assert_eq!(
            seqs,
            (first..=last).collect::<Vec<_>>(),
            "in order, each once"
        );
        seen
    }
}

#[tokio::test]
async fn messages_cross_nodes_in_seq_order_each_once() {
    let Some((database, nats)) = backing().await else {
        return;
    };
    let a = node(&database, &nats, "node-a").await;
    let b = node(&database, &nats, "node-b").await;
    let mut on_a = Member::open(&a, &account(&a, "john_doe").await).await;
    on_a.create("general").await;
    let mut on_b = Member::open(&b, &account(&b, "jane_doe").await).await;
    assert_eq!(on_b.join("general").await, 0);
    // The joined notice crosses to node A.
    let joined = on_a.ws.expect_json("joined").await;
    assert_eq!(joined["username"], "jane_doe");
    // They post in turn, each waiting for its ack: every seq reaches both nodes in order.
    for n in 0..10 {
        let sender = if n % 2 == 0 { &mut on_a } else { &mut on_b };
        assert_eq!(sender.post("general", &format!("turn {n}")).await, n + 1);
    }
    let seen_on_a = on_a.through(1, 10).await;
    let seen_on_b = on_b.through(1, 10).await;
    assert_eq!(seen_on_a, seen_on_b, "the same messages, the same seqs");
    // Then both at once, pipelined: the nodes' commits interleave, and still each sees 11..=50 in order.
    for n in 0..20 {
        on_a.send("general", &format!("burst {n} from node a"))
            .await;
        on_b.send("general", &format!("burst {n} from node b"))
            .await;
    }
    let burst_on_a = on_a.through(11, 50).await;
    let burst_on_b = on_b.through(11, 50).await;
    assert_eq!(burst_on_a, burst_on_b);
    // Each sender's last ack follows its own message; after it, nothing more may come.
    assert_eq!(on_a.answer_to("burst 19 from node a").await["type"], "ack");
    assert_eq!(on_b.answer_to("burst 19 from node b").await["type"], "ack");
    on_a.ws.expect_nothing_before_sentinel().await;
    on_b.ws.expect_nothing_before_sentinel().await;
}

#[tokio::test]
async fn what_a_node_cut_off_from_nats_missed_is_read_from_the_database() {
    let Some((database, nats)) = backing().await else {
        return;
    };
    let a = node(&database, &nats, "node-a").await;
    // Node B reaches NATS through a proxy the test can cut.
    let proxy = Proxy::start(nats::address(&nats).expect("a nats:// URL")).await;
    let b = node(&database, &through(&nats, proxy.addr()), "node-b").await;
    let mut on_a = Member::open(&a, &account(&a, "john_doe").await).await;
    on_a.create("general").await;
    let mut on_b = Member::open(&b, &account(&b, "jane_doe").await).await;
    on_b.join("general").await;
    on_a.post("general", "before the cut").await;
    on_b.through(1, 1).await;

    proxy.cut();
    // Node B hears nothing from NATS now, and the last of these has no successor to reveal the gap: the position
    // check finds them in the database.
    for n in 2..=4 {
        assert_eq!(
            on_a.post("general", &format!("during the cut {n}")).await,
            n
        );
    }
    let caught_up = on_b.through(2, 4).await;
    assert_eq!(caught_up[2]["content"], "during the cut 4");
    // Node B's own posts are acknowledged all the while: the database is the ack point.
    assert_eq!(on_b.post("general", "from the cut-off node").await, 5);
    on_b.through(5, 5).await;
    on_a.through(1, 5).await;

    proxy.heal();
    // Once NATS is back (the gauge says so), messages flow over it again.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = reqwest::get(b.url("/metrics"))
            .await
            .expect("a scrape")
            .text()
            .await
            .expect("a scrape body");
        if metrics.contains("palaver_nats_connected 1") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "node B did not reconnect to NATS"
        );
        tokio::task::yield_now().await;
    }
    on_a.post("general", "after the heal").await;
    on_b.through(6, 6).await;
    on_b.ws.expect_nothing_before_sentinel().await;
}

#[tokio::test]
async fn several_sockets_on_one_node_get_each_remote_message_once() {
    let Some((database, nats)) = backing().await else {
        return;
    };
    let a = node(&database, &nats, "node-a").await;
    let b = node(&database, &nats, "node-b").await;
    let mut on_a = Member::open(&a, &account(&a, "john_doe").await).await;
    on_a.create("general").await;
    let mut readers = Vec::new();
    for k in 0..4 {
        let token = account(&b, &format!("reader_{k}")).await;
        let mut reader = Member::open(&b, &token).await;
        reader.join("general").await;
        readers.push(reader);
    }
    for n in 1..=5 {
        on_a.post("general", &format!("to every reader {n}")).await;
    }
    for reader in &mut readers {
        reader.through(1, 5).await;
        reader.ws.expect_nothing_before_sentinel().await;
    }
}

#[tokio::test]
async fn a_node_whose_nats_is_unreachable_is_not_ready() {
    let Some(database) = pg::fresh_database_url().await else {
        return;
    };
    // A port nothing listens on: take one and let it go.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port");
    let url = format!("nats://{closed}");
    let node =
        TestServer::start_on_postgres(database.url(), &[("PALAVER_NATS_URL", url.as_str())]).await;
    let answer = tokio::time::timeout(FRAME_TIMEOUT, reqwest::get(node.url("/readyz")))
        .await
        .expect("an answer in time")
        .expect("readyz answers");
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    let body: Value = answer.json().await.expect("a JSON body");
    assert_eq!(
        body,
        json!({"status": "unavailable", "database": "ok", "nats": "unavailable"})
    );
    let health = reqwest::get(node.url("/healthz"))
        .await
        .expect("healthz answers");
    assert_eq!(health.status(), StatusCode::OK, "the process itself runs");
}

#[tokio::test]
async fn a_room_deleted_on_one_node_is_left_on_every_node() {
    let Some((database, nats)) = backing().await else {
        return;
    };
    let a = node(&database, &nats, "node-a").await;
    let b = node(&database, &nats, "node-b").await;
    let mut owner = Member::open(&a, &account(&a, "john_doe").await).await;
    owner.create("general").await;
    let mut guest = Member::open(&b, &account(&b, "jane_doe").await).await;
    guest.join("general").await;
    owner
        .ws
        .send_cmd("delete_room", json!({"name": "general"}), Some("delete"))
        .await;
    let deleted = guest.ws.expect_json("room_deleted").await;
    assert_eq!(
        (&deleted["room"], &deleted["by"]),
        (&json!("general"), &json!("john_doe"))
    );
    // Jane's socket on node B is no longer in the room: a post there is refused.
    guest
        .ws
        .send_cmd(
            "room_message",
            json!({"room": "general", "content": "anyone?"}),
            Some("late"),
        )
        .await;
    let refused = guest.answer_to("late").await;
    assert_eq!(refused["code"], "room_not_found", "{refused}");
}
