//! What the cluster suites share: accounts made on one node and used on any, and a member's socket that keeps the
//! room messages it is delivered and checks them against the seqs it must see (in order, each once).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::Reachable;
use crate::api::{PASSWORD, read};
use crate::ws::WsClient;

/// Registers `username` on `server` and logs in; the token works on every node (one signing key).
pub async fn account(server: &impl Reachable, username: &str) -> String {
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
pub struct Member {
    pub ws: WsClient,
    pub unread: Vec<Value>,
    /// Answers to commands that arrived while the test was reading messages.
    pub answers: Vec<Value>,
    /// Presence events (`joined`, `left`) that arrived while the test was reading something else.
    pub presence: Vec<Value>,
    /// The seq of every room message this member was delivered, in delivery order, over every socket it had.
    pub delivered: Vec<i64>,
}

impl Member {
    pub async fn open(server: &impl Reachable, token: &str) -> Member {
        Member {
            ws: WsClient::json(server, token).await,
            unread: Vec::new(),
            answers: Vec::new(),
            presence: Vec::new(),
            delivered: Vec::new(),
        }
    }

    /// Continues on a new socket to `server` (after the old one's node died), keeping what was delivered so far.
    pub async fn reconnect(&mut self, server: &impl Reachable, token: &str) {
        self.ws = WsClient::json(server, token).await;
        self.answers.clear();
    }

    /// Closes the socket cleanly.
    pub async fn close(self) {
        self.ws.close().await;
    }

    /// Files one frame that is not what the caller waits for.
    fn keep(&mut self, frame: Value) {
        match frame["type"].as_str() {
            Some("message") => {
                if let Some(seq) = frame["seq"].as_i64() {
                    self.delivered.push(seq);
                }
                self.unread.push(frame);
            }
            Some("joined" | "left") => self.presence.push(frame),
            _ if !frame["id"].is_null() => self.answers.push(frame),
            _ => {}
        }
    }

    /// Reads frames until a `kind` (`joined` or `left`) event for `username` arrives, keeping the rest.
    pub async fn presence_of(&mut self, kind: &str, username: &str) -> Value {
        loop {
            if let Some(at) = self
                .presence
                .iter()
                .position(|event| event["type"] == kind && event["username"] == username)
            {
                return self.presence.remove(at);
            }
            let frame = self.ws.next_json().await;
            self.keep(frame);
        }
    }

    /// Joins `room` resuming after `after_seq`; the welcome's `last_seq`. The replayed messages count as delivered.
    pub async fn resume(&mut self, room: &str, after_seq: i64) -> i64 {
        self.ws
            .send_cmd(
                "join_room",
                json!({"name": room, "after_seq": after_seq}),
                Some("resume"),
            )
            .await;
        let welcome = self.answer_to("resume").await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        welcome["last_seq"].as_i64().expect("a last_seq")
    }

    /// Reads until a message with seq `last` (or later) was delivered, keeping everything.
    pub async fn until_seq(&mut self, last: i64) {
        while !self.delivered.iter().any(|seq| *seq >= last) {
            let frame = self.ws.next_json().await;
            self.keep(frame);
        }
    }

    /// Asserts what the checker of every cluster test asserts: this member was delivered exactly the seqs
    /// `first..=last`, strictly increasing (no gap, no repeat, nothing out of order), and so every acked seq in
    /// `acked` that lies in that range.
    pub fn assert_delivered(&self, first: i64, last: i64, acked: &[i64]) {
        let expected: Vec<i64> = (first..=last).collect();
        if self.delivered != expected {
            let repeats = self.delivered.windows(2).filter(|w| w[1] <= w[0]).count();
            let missing: Vec<i64> = expected
                .iter()
                .filter(|seq| !self.delivered.contains(seq))
                .copied()
                .collect();
            panic!(
                "expected seqs {first}..={last} each once in order; {} delivered, {repeats} out of order or \
                 repeated, missing {missing:?}",
                self.delivered.len()
            );
        }
        for seq in acked.iter().filter(|seq| (first..=last).contains(*seq)) {
            assert!(
                self.delivered.contains(seq),
                "acked seq {seq} not delivered"
            );
        }
    }

    /// The answer to command `id`; messages delivered before it are kept for [`Member::through`].
    pub async fn answer_to(&mut self, id: &str) -> Value {
        if let Some(at) = self.answers.iter().position(|frame| frame["id"] == id) {
            return self.answers.remove(at);
        }
        loop {
            let frame = self.ws.next_json().await;
            if frame["id"] == id {
                return frame;
            }
            self.keep(frame);
        }
    }

    /// Creates `room` (and so joins it).
    pub async fn create(&mut self, room: &str) {
        self.ws
            .send_cmd("create_room", json!({"name": room}), Some("create"))
            .await;
        assert_eq!(self.answer_to("create").await["type"], "room_created");
        self.ws.expect_json("welcome").await;
    }

    /// Joins `room`; the welcome's `last_seq`.
    pub async fn join(&mut self, room: &str) -> i64 {
        self.ws
            .send_cmd("join_room", json!({"name": room}), Some("join"))
            .await;
        let welcome = self.answer_to("join").await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        welcome["last_seq"].as_i64().expect("a last_seq")
    }

    /// Posts `content` (also its command id) without waiting for the ack.
    pub async fn send(&mut self, room: &str, content: &str) {
        self.ws
            .send_cmd(
                "room_message",
                json!({"room": room, "content": content}),
                Some(content),
            )
            .await;
    }

    /// Posts `content` and returns its acknowledged seq.
    pub async fn post(&mut self, room: &str, content: &str) -> i64 {
        self.send(room, content).await;
        let ack = self.answer_to(content).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        ack["seq"].as_i64().expect("a seq")
    }

    /// The messages with seqs `first..=last`, asserting they were delivered in that order, each once, and nothing
    /// else before them; acks and presence frames are skipped.
    pub async fn through(&mut self, first: i64, last: i64) -> Vec<Value> {
        while !self.unread.iter().any(|frame| frame["seq"] == last) {
            let frame = self.ws.next_json().await;
            self.keep(frame);
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
