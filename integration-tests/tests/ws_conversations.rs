//! Conversations against a real server, on SQLite and on PostgreSQL (PROTOCOL §3.3, §4, §5, §6): edits, deletions,
//! reactions and replies in both protocols, history in the messages' current state over WebSocket and REST, and a
//! client that resumes with `after_seq` ending with exactly the state of one that never left.

use std::collections::{BTreeMap, BTreeSet};

use palaver_integration_tests::Engine;
use palaver_integration_tests::chat::Chat;
use palaver_integration_tests::ws::WsClient;
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Commands are not what these tests measure: the per-user budget is lifted.
const NO_RATE_LIMIT: (&str, &str) = ("PALAVER_WS_MESSAGE_LIMIT", "100000");

/// John's JSON connection in a new room `general`, and jane's, joined to it.
async fn general(chat: &Chat) -> (WsClient, WsClient) {
    let mut john = chat.json(&chat.john).await;
    john.send_cmd("create_room", json!({"name": "general"}), Some("c"))
        .await;
    john.expect_json("room_created").await;
    john.expect_json("welcome").await;
    let mut jane = chat.json(&chat.jane).await;
    jane.send_cmd("join_room", json!({"name": "general"}), Some("j"))
        .await;
    jane.expect_json("welcome").await;
    john.expect_json("joined").await;
    (john, jane)
}

/// Sends a command and returns the answer to it, after every frame that came before it; those are returned too.
async fn command(ws: &mut WsClient, kind: &str, data: Value, id: &str) -> (Vec<Value>, Value) {
    ws.send_cmd(kind, data, Some(id)).await;
    let mut before = Vec::new();
    loop {
        let frame = ws.next_json().await;
        if frame["id"] == id {
            return (before, frame);
        }
        before.push(frame);
    }
}

/// Sends a change and checks that the sender sees the entry, then its ack with the entry's seq; returns the entry.
async fn change(ws: &mut WsClient, kind: &str, data: Value, id: &str, seq: i64) -> Value {
    let room = data["room"].clone();
    let (events, ack) = command(ws, kind, data, id).await;
    assert_eq!(
        ack,
        json!({"type": "ack", "id": id, "room": room, "seq": seq})
    );
    let [event] = events.as_slice() else {
        panic!("one event before the ack, got {events:?}");
    };
    assert_eq!(event["seq"], seq, "{event}");
    event.clone()
}

fn error(id: &str, code: &str, message: &str) -> Value {
    json!({"type": "error", "id": id, "code": code, "message": message})
}

async fn json_edits_deletions_and_reactions_reach_everyone_and_are_acked(engine: Engine) {
    let Some(chat) = Chat::start_with(engine, &[NO_RATE_LIMIT]).await else {
        return;
    };
    let (mut john, mut jane) = general(&chat).await;
    let posted = change(
        &mut john,
        "room_message",
        json!({"room": "general", "content": "helo"}),
        "m1",
        1,
    )
    .await;
    assert_eq!(jane.expect_json("message").await, posted);

    let edited = change(
        &mut john,
        "edit_message",
        json!({"room": "general", "seq": 1, "content": "hello"}),
        "e1",
        2,
    )
    .await;
    let edited_at = edited["edited_at"].clone();
    assert!(edited_at.is_string(), "{edited}");
    assert_eq!(
        edited,
        json!({"type": "message_edited", "room": "general", "seq": 2, "target_seq": 1, "username": "john_doe",
               "content": "hello", "edited_at": edited_at})
    );
    assert_eq!(jane.next_json().await, edited);

    let reaction = change(
        &mut jane,
        "react",
        json!({"room": "general", "seq": 1, "emoji": "👍"}),
        "r1",
        3,
    )
    .await;
    assert_eq!(
        reaction,
        json!({"type": "reaction", "room": "general", "seq": 3, "target_seq": 1, "username": "jane_doe",
               "emoji": "👍", "added": true})
    );
    assert_eq!(john.next_json().await, reaction);
    // A repeat is acknowledged with the entry that made it, and nobody is told anything.
    let (events, ack) = command(
        &mut jane,
        "react",
        json!({"room": "general", "seq": 1, "emoji": "👍"}),
        "r2",
    )
    .await;
    assert_eq!(
        (events, ack),
        (
            vec![],
            json!({"type": "ack", "id": "r2", "room": "general", "seq": 3})
        )
    );
    let taken_back = change(
        &mut jane,
        "unreact",
        json!({"room": "general", "seq": 1, "emoji": "👍"}),
        "u1",
        4,
    )
    .await;
    assert_eq!(taken_back["added"], false, "{taken_back}");
    assert_eq!(john.next_json().await, taken_back);

    // Refusals, each with its code and text, and none takes a seq.
    let refusals = [
        (
            false,
            "edit_message",
            json!({"room": "general", "seq": 1, "content": "mine now"}),
            error("x1", "forbidden", "only its author can edit a message"),
        ),
        (
            false,
            "delete_message",
            json!({"room": "general", "seq": 1}),
            error(
                "x1",
                "forbidden",
                "only its author or the room owner can delete a message",
            ),
        ),
        (
            true,
            "edit_message",
            json!({"room": "general", "seq": 2, "content": "an edit is not a message"}),
            error("x1", "not_found", "there is no message 2 in this room"),
        ),
        (
            false,
            "unreact",
            json!({"room": "general", "seq": 1, "emoji": "👍"}),
            error(
                "x1",
                "not_found",
                "you have not reacted to that message with that emoji",
            ),
        ),
        (
            false,
            "react",
            json!({"room": "general", "seq": 1, "emoji": "thumbs"}),
            error(
                "x1",
                "invalid_emoji",
                "emoji must be one emoji, like 👍, or a :short_name:",
            ),
        ),
        (
            false,
            "room_message",
            json!({"room": "general", "content": "re", "reply_to": 9}),
            error("x1", "not_found", "there is no message 9 in this room"),
        ),
        (
            true,
            "edit_message",
            json!({"room": "general", "seq": 1, "content": "  "}),
            error("x1", "invalid_message", "message must not be empty"),
        ),
        (
            true,
            "edit_message",
            json!({"room": "elsewhere", "seq": 1, "content": "x"}),
            error("x1", "room_not_found", "room does not exist"),
        ),
    ];
    for (by_john, kind, data, expected) in refusals {
        let ws = if by_john { &mut john } else { &mut jane };
        let (events, answer) = command(ws, kind, data.clone(), "x1").await;
        assert_eq!((events, answer), (vec![], expected), "{kind} {data}");
    }

    // A reply, then the owner deletes jane's reply and john his own message.
    let reply = change(
        &mut jane,
        "room_message",
        json!({"room": "general", "content": "hi!", "reply_to": 1}),
        "m2",
        5,
    )
    .await;
    assert_eq!(reply["reply_to"], 1, "{reply}");
    assert_eq!(john.next_json().await, reply);
    let deleted = change(
        &mut john,
        "delete_message",
        json!({"room": "general", "seq": 5}),
        "d1",
        6,
    )
    .await;
    assert_eq!(
        deleted,
        json!({"type": "message_deleted", "room": "general", "seq": 6, "target_seq": 5, "username": "john_doe"})
    );
    assert_eq!(jane.next_json().await, deleted);
    change(
        &mut john,
        "delete_message",
        json!({"room": "general", "seq": 1}),
        "d2",
        7,
    )
    .await;
    jane.expect_json("message_deleted").await;
    let (_, answer) = command(
        &mut jane,
        "react",
        json!({"room": "general", "seq": 1, "emoji": ":tada:"}),
        "r3",
    )
    .await;
    assert_eq!(answer, error("r3", "not_found", "message 1 was deleted"));
    jane.expect_nothing_before_sentinel().await;
    john.expect_nothing_before_sentinel().await;
}

async fn text_edits_deletions_and_reactions_have_their_lines(engine: Engine) {
    let Some(chat) = Chat::start_with(engine, &[NO_RATE_LIMIT]).await else {
        return;
    };
    let mut john = chat.text(&chat.john).await;
    john.send_cmd("create_room", json!({"name": "general"}), None)
        .await;
    assert!(john.next_text().await.starts_with("ROOM_CREATE_SUCCESS:"));
    john.expect_stamped("Welcome to room 'general'!").await;
    let mut jane = chat.text(&chat.jane).await;
    jane.send_cmd("join_room", json!({"name": "general"}), None)
        .await;
    jane.expect_stamped("Welcome to room 'general'!").await;
    john.expect_stamped("jane_doe has joined the room").await;

    john.send_cmd(
        "room_message",
        json!({"room": "general", "content": "helo"}),
        None,
    )
    .await;
    let steps: [(bool, &str, Value, &str); 5] = [
        (
            true,
            "edit_message",
            json!({"room": "general", "seq": 1, "content": "hello"}),
            "john_doe edited a message: hello",
        ),
        (
            false,
            "react",
            json!({"room": "general", "seq": 1, "emoji": "🎉"}),
            "jane_doe reacted 🎉",
        ),
        (
            false,
            "unreact",
            json!({"room": "general", "seq": 1, "emoji": "🎉"}),
            "jane_doe took back the reaction 🎉",
        ),
        (
            false,
            "room_message",
            json!({"room": "general", "content": "hi", "reply_to": 1}),
            "jane_doe: hi",
        ),
        (
            true,
            "delete_message",
            json!({"room": "general", "seq": 1}),
            "john_doe deleted a message",
        ),
    ];
    for ws in [&mut john, &mut jane] {
        ws.expect_stamped("john_doe: helo").await;
    }
    // One step at a time: the next is sent once both have seen the line of the one before.
    for (by_john, kind, data, line) in steps {
        let ws = if by_john { &mut john } else { &mut jane };
        ws.send_cmd(kind, data, None).await;
        for ws in [&mut john, &mut jane] {
            ws.expect_stamped(line).await;
        }
    }
    john.send_cmd(
        "edit_message",
        json!({"room": "general", "seq": 5, "content": "x"}),
        None,
    )
    .await;
    john.expect_text("Error: only its author can edit a message")
        .await;
    jane.send_cmd(
        "edit_message",
        json!({"room": "general", "seq": 4, "content": "x"}),
        None,
    )
    .await;
    jane.expect_text("Error: there is no message 4 in this room")
        .await;
    jane.send_cmd(
        "react",
        json!({"room": "general", "seq": 1, "emoji": "👍"}),
        None,
    )
    .await;
    jane.expect_text("Error: message 1 was deleted").await;

    // The history shows the current state: a tombstone, and the reply with its target.
    jane.send_cmd("get_messages", json!({"name": "general"}), None)
        .await;
    let page = jane.expect_prefixed_json("MESSAGES:").await;
    let reply = &page["messages"][0];
    let timestamp = reply["timestamp"].clone();
    assert_eq!(
        page["messages"],
        json!([
            {"seq": 5, "username": "jane_doe", "content": "hi", "timestamp": timestamp, "reply_to": 1},
            {"seq": 1, "deleted": true},
        ])
    );
    // A replay shows a deleted message as such, then what happened to it.
    let mut late = chat.text(&chat.jane).await;
    late.send_cmd(
        "join_room",
        json!({"name": "general", "after_seq": 0}),
        None,
    )
    .await;
    late.expect_stamped("Welcome to room 'general'!").await;
    for line in [
        "(a deleted message)",
        "john_doe edited a message: ",
        "jane_doe reacted 🎉",
        "jane_doe took back the reaction 🎉",
        "jane_doe: hi",
        "john_doe deleted a message",
    ] {
        late.expect_stamped(line).await;
    }
}

async fn json_history_shows_messages_in_their_current_state(engine: Engine) {
    let Some(chat) = Chat::start_with(engine, &[NO_RATE_LIMIT]).await else {
        return;
    };
    let (mut john, mut jane) = general(&chat).await;
    let steps: [(bool, &str, Value); 8] = [
        (
            true,
            "room_message",
            json!({"room": "general", "content": "root", "client_msg_id": "k1"}),
        ),
        (
            true,
            "edit_message",
            json!({"room": "general", "seq": 1, "content": "root, edited"}),
        ),
        (
            false,
            "react",
            json!({"room": "general", "seq": 1, "emoji": "👍"}),
        ),
        (
            true,
            "react",
            json!({"room": "general", "seq": 1, "emoji": "👍"}),
        ),
        (
            true,
            "react",
            json!({"room": "general", "seq": 1, "emoji": ":ship_it:"}),
        ),
        (
            false,
            "room_message",
            json!({"room": "general", "content": "a reply", "reply_to": 1}),
        ),
        (
            false,
            "room_message",
            json!({"room": "general", "content": "unrelated"}),
        ),
        (
            false,
            "delete_message",
            json!({"room": "general", "seq": 7}),
        ),
    ];
    for (seq, (by_john, kind, data)) in (1..).zip(steps) {
        let ws = if by_john { &mut john } else { &mut jane };
        let (_, ack) = command(ws, kind, data, &format!("s{seq}")).await;
        assert_eq!(ack["seq"], seq, "{ack}");
    }
    let (_, page) = command(&mut jane, "get_messages", json!({"name": "general"}), "h1").await;
    let messages = page["messages"].as_array().expect("messages");
    assert_eq!(messages.len(), 3, "{page}");
    assert_eq!(
        page["as_of"], 8,
        "the page is the room's state through seq 8: {page}"
    );
    assert_eq!(messages[0], json!({"seq": 7, "deleted": true}));
    assert_eq!(messages[1]["reply_to"], 1, "{page}");
    let root = &messages[2];
    assert_eq!(root["content"], "root, edited", "{root}");
    assert_eq!(root["client_msg_id"], "k1", "{root}");
    assert!(root["edited_at"].is_string(), "{root}");
    assert_eq!(root["replies"], 1, "{root}");
    assert_eq!(
        root["reactions"],
        json!([{"emoji": "👍", "count": 2, "me": true}, {"emoji": ":ship_it:", "count": 1, "me": false}])
    );
    // The REST route answers the same items, `me` for its own reader.
    let (status, body) = chat
        .client
        .get_with("/api/rooms/general/messages", &chat.john, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["messages"][0], messages[0]);
    assert_eq!(body["messages"][1], messages[1]);
    assert_eq!(
        body["messages"][2]["reactions"],
        json!([{"emoji": "👍", "count": 2, "me": true}, {"emoji": ":ship_it:", "count": 1, "me": true}])
    );
    // One thread: the root and its replies.
    let (status, body) = chat
        .client
        .get_with("/api/rooms/general/messages?thread=1", &chat.jane, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let seqs: Vec<&Value> = body["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| &m["seq"])
        .collect();
    assert_eq!(seqs, [&json!(6), &json!(1)], "{body}");
    let (_, page) = command(
        &mut jane,
        "get_messages",
        json!({"name": "general", "thread": 1}),
        "h2",
    )
    .await;
    assert_eq!(page["messages"], body["messages"]);
}

/// What a client knows of one message, built only from the frames it received.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Seen {
    content: String,
    deleted: bool,
    edited: bool,
    reply_to: Option<i64>,
    reactions: BTreeMap<String, BTreeSet<String>>,
}

/// A client's view of a room, applying entries in the order they arrive, and the last seq it saw.
#[derive(Debug, Default, PartialEq, Eq)]
struct View {
    messages: BTreeMap<i64, Seen>,
    last_seq: i64,
}

impl View {
    /// Applies one frame; panics on a seq out of order (a gap or a repeat).
    fn apply(&mut self, frame: &Value) {
        let seq = frame["seq"].as_i64().expect("an entry has a seq");
        assert_eq!(seq, self.last_seq + 1, "entries in seq order: {frame}");
        self.last_seq = seq;
        let target = frame["target_seq"].as_i64().unwrap_or_default();
        let username = frame["username"].as_str().unwrap_or_default().to_owned();
        match frame["type"].as_str() {
            Some("message") => {
                let seen = Seen {
                    content: frame["content"].as_str().unwrap_or_default().to_owned(),
                    deleted: frame["deleted"] == true,
                    edited: frame["edited_at"].is_string(),
                    reply_to: frame["reply_to"].as_i64(),
                    reactions: BTreeMap::new(),
                };
                self.messages.insert(seq, seen);
            }
            Some("message_edited") => {
                let message = self
                    .messages
                    .get_mut(&target)
                    .expect("edits a known message");
                message.content = frame["content"].as_str().unwrap_or_default().to_owned();
                message.edited = true;
            }
            Some("message_deleted") => {
                let message = self
                    .messages
                    .get_mut(&target)
                    .expect("deletes a known message");
                *message = Seen {
                    deleted: true,
                    ..Seen::default()
                };
            }
            Some("reaction") => {
                let message = self
                    .messages
                    .get_mut(&target)
                    .expect("reacts to a known message");
                let emoji = frame["emoji"].as_str().unwrap_or_default().to_owned();
                let users = message.reactions.entry(emoji.clone()).or_default();
                if frame["added"] == true {
                    users.insert(username);
                } else {
                    users.remove(&username);
                    if users.is_empty() {
                        message.reactions.remove(&emoji);
                    }
                }
            }
            other => panic!("not an entry: {other:?} in {frame}"),
        }
    }

    /// Reads entries through `last`.
    async fn follow(&mut self, ws: &mut WsClient, last: i64) {
        while self.last_seq < last {
            let frame = ws.next_json().await;
            if frame["seq"].is_i64() && frame["type"] != "ack" {
                self.apply(&frame);
            }
        }
    }
}

async fn a_client_that_resumes_ends_with_the_state_of_one_that_never_left(engine: Engine) {
    let Some(chat) = Chat::start_with(engine, &[NO_RATE_LIMIT]).await else {
        return;
    };
    let (mut john, mut stayer) = general(&chat).await;
    let mut leaver = chat.json(&chat.jane).await;
    leaver
        .send_cmd("join_room", json!({"name": "general"}), Some("j"))
        .await;
    leaver.expect_json("welcome").await;
    let (mut stayed, mut left) = (View::default(), View::default());

    // Before the leaver goes: three messages, an edit and a reaction.
    let before: [(&str, Value); 5] = [
        ("room_message", json!({"content": "one"})),
        ("room_message", json!({"content": "two"})),
        ("room_message", json!({"content": "three", "reply_to": 1})),
        ("edit_message", json!({"seq": 2, "content": "two, edited"})),
        ("react", json!({"seq": 1, "emoji": "👍"})),
    ];
    let mut seq = 0;
    for (kind, mut data) in before {
        data["room"] = json!("general");
        seq += 1;
        let (_, ack) = command(&mut john, kind, data, &format!("b{seq}")).await;
        assert_eq!(ack["seq"], seq, "{ack}");
    }
    stayed.follow(&mut stayer, seq).await;
    left.follow(&mut leaver, seq).await;
    let known = left.last_seq;
    leaver.drop_without_close();

    // While it is away: more of every kind, on messages it saw and on new ones, by both users.
    let away: [(bool, &str, Value); 9] = [
        (true, "room_message", json!({"content": "four"})),
        (
            true,
            "edit_message",
            json!({"seq": 1, "content": "one, edited"}),
        ),
        (false, "react", json!({"seq": 1, "emoji": "👍"})),
        (false, "react", json!({"seq": 6, "emoji": ":wave:"})),
        (true, "unreact", json!({"seq": 1, "emoji": "👍"})),
        (true, "delete_message", json!({"seq": 2})),
        (
            false,
            "room_message",
            json!({"content": "five", "reply_to": 6}),
        ),
        (
            true,
            "edit_message",
            json!({"seq": 6, "content": "four, edited"}),
        ),
        (true, "delete_message", json!({"seq": 12})),
    ];
    for (by_john, kind, mut data) in away {
        data["room"] = json!("general");
        seq += 1;
        let ws = if by_john { &mut john } else { &mut stayer };
        let (events, ack) = command(ws, kind, data.clone(), &format!("a{seq}")).await;
        assert_eq!(ack["seq"], seq, "{kind} {data}: {ack}");
        if !by_john {
            // What came before the stayer's own ack is part of what it saw.
            for event in events.iter().filter(|event| event["seq"].is_i64()) {
                stayed.apply(event);
            }
        }
    }
    // Seq 12 was jane's "five": john owns the room, so he may delete it. Nothing may be left out of either view.
    stayed.follow(&mut stayer, seq).await;

    let mut back = chat.json(&chat.jane).await;
    back.send_cmd(
        "join_room",
        json!({"name": "general", "after_seq": known}),
        Some("r"),
    )
    .await;
    let welcome = back.expect_json("welcome").await;
    assert_eq!(welcome["last_seq"], seq, "{welcome}");
    left.follow(&mut back, seq).await;
    assert_eq!(
        left, stayed,
        "the resumed client knows exactly what the one that stayed knows"
    );

    // And both agree with the history.
    let (_, page) = command(&mut back, "get_messages", json!({"name": "general"}), "h").await;
    let mut from_history = BTreeMap::new();
    for item in page["messages"].as_array().expect("messages") {
        let seq = item["seq"].as_i64().expect("a seq");
        let reactions: BTreeMap<String, usize> = item["reactions"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|r| {
                        let count = r["count"].as_u64().unwrap_or_default() as usize;
                        (r["emoji"].as_str().unwrap_or_default().to_owned(), count)
                    })
                    .collect()
            })
            .unwrap_or_default();
        let content = item["content"].as_str().unwrap_or_default().to_owned();
        from_history.insert(seq, (content, item["deleted"] == true, reactions));
    }
    let from_frames: BTreeMap<i64, (String, bool, BTreeMap<String, usize>)> = stayed
        .messages
        .iter()
        .map(|(seq, seen)| {
            let reactions = seen
                .reactions
                .iter()
                .map(|(emoji, users)| (emoji.clone(), users.len()))
                .collect();
            (*seq, (seen.content.clone(), seen.deleted, reactions))
        })
        .collect();
    assert_eq!(from_frames, from_history);
    assert_eq!(
        stayed.messages[&1].content, "one, edited",
        "the edit made while away is there"
    );
    assert_eq!(
        stayed.messages[&6].reactions.keys().collect::<Vec<_>>(),
        [":wave:"],
        "and the reaction"
    );
}

async fn json_mark_read_tells_the_users_connections_and_the_room(engine: Engine) {
    let Some(chat) = Chat::start_with(engine, &[NO_RATE_LIMIT]).await else {
        return;
    };
    let (mut john, mut phone) = general(&chat).await;
    let mut laptop = chat.json(&chat.jane).await;
    laptop
        .send_cmd("join_room", json!({"name": "general"}), Some("j"))
        .await;
    laptop.expect_json("welcome").await;
    for (seq, content) in (1..).zip(["one", "two", "three"]) {
        change(
            &mut john,
            "room_message",
            json!({"room": "general", "content": content}),
            "m",
            seq,
        )
        .await;
        phone.expect_json("message").await;
        laptop.expect_json("message").await;
    }
    let (events, answer) = command(
        &mut phone,
        "mark_read",
        json!({"room": "general", "seq": 2}),
        "r1",
    )
    .await;
    let read = json!({"type": "read", "room": "general", "seq": 2});
    assert_eq!(
        events,
        vec![read.clone()],
        "the marking connection hears it too"
    );
    assert_eq!(
        answer,
        json!({"type": "read", "room": "general", "seq": 2, "id": "r1"})
    );
    assert_eq!(laptop.next_json().await, read, "the laptop's badge clears");
    assert_eq!(
        john.next_json().await,
        json!({"type": "receipt", "room": "general", "username": "jane_doe", "seq": 2})
    );
    // The read state, in the room list of both protocols' users and over REST, and in the member list.
    let (_, rooms) = command(&mut laptop, "list_rooms", json!({}), "l1").await;
    let general_room = &rooms["rooms"][0];
    assert_eq!(
        (&general_room["last_read_seq"], &general_room["unread"]),
        (&json!(2), &json!(1)),
        "{rooms}"
    );
    let (status, body) = chat.client.get_with("/api/rooms", &chat.john, &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (&body[0]["last_read_seq"], &body[0]["unread"]),
        (&json!(0), &json!(0)),
        "john's own messages are not unread for him: {body}"
    );
    let (_, members) = command(&mut john, "list_members", json!({"name": "general"}), "l2").await;
    assert_eq!(
        members["members"],
        json!([
            {"username": "jane_doe", "online": true, "last_read_seq": 2, "role": "member"},
            {"username": "john_doe", "online": true, "last_read_seq": 0, "role": "owner"},
        ])
    );
    // Backwards is no move: answered with where it stands, nobody told.
    let (events, answer) = command(
        &mut laptop,
        "mark_read",
        json!({"room": "general", "seq": 1}),
        "r2",
    )
    .await;
    assert_eq!(
        (events, answer),
        (
            vec![],
            json!({"type": "read", "room": "general", "seq": 2, "id": "r2"})
        )
    );
    phone.expect_nothing_before_sentinel().await;
    // A stranger has no read point.
    let mut stranger = chat.json(&chat.client.user("stranger").await).await;
    let (_, answer) = command(
        &mut stranger,
        "mark_read",
        json!({"room": "general", "seq": 1}),
        "r3",
    )
    .await;
    assert_eq!(answer, error("r3", "forbidden", "you are not in that room"));
}

async fn text_mark_read_has_its_lines(engine: Engine) {
    let Some(chat) = Chat::start_with(engine, &[NO_RATE_LIMIT]).await else {
        return;
    };
    // Jane's JSON connection stays, so her text one joining announces nothing.
    let (mut john, _jane) = general(&chat).await;
    let mut jane = chat.text(&chat.jane).await;
    jane.send_cmd("join_room", json!({"name": "general"}), None)
        .await;
    jane.expect_stamped("Welcome to room 'general'!").await;
    change(
        &mut john,
        "room_message",
        json!({"room": "general", "content": "one"}),
        "m",
        1,
    )
    .await;
    jane.expect_stamped("john_doe: one").await;
    let mut watcher = chat.text(&chat.john).await;
    watcher
        .send_cmd("join_room", json!({"name": "general"}), None)
        .await;
    watcher.expect_stamped("Welcome to room 'general'!").await;
    jane.send_cmd("mark_read", json!({"room": "general", "seq": 1}), None)
        .await;
    jane.expect_text("READ:1").await;
    watcher.expect_text("RECEIPT:jane_doe:1").await;
    jane.expect_nothing_before_sentinel().await;
}

async fn unread_counts_stay_exact_under_concurrent_posts_deletions_and_reads(engine: Engine) {
    let Some(chat) = Chat::start_with(engine, &[NO_RATE_LIMIT]).await else {
        return;
    };
    let (mut john, mut phone) = general(&chat).await;
    let mut laptop = chat.json(&chat.jane).await;
    laptop
        .send_cmd("join_room", json!({"name": "general"}), Some("j"))
        .await;
    laptop.expect_json("welcome").await;
    // John pipelines 60 posts, deleting every fifth as soon as it is sent, while both of jane's devices mark read
    // at seqs that race the posts (some beyond the end at the time they land).
    let posts = 60;
    for n in 1..=posts {
        john.send_cmd(
            "room_message",
            json!({"room": "general", "content": format!("m{n}")}),
            Some(&format!("p{n}")),
        )
        .await;
        if n % 5 == 0 {
            john.send_cmd(
                "delete_message",
                json!({"room": "general", "seq": n + n / 5 - 1}),
                Some(&format!("d{n}")),
            )
            .await;
        }
        if n % 7 == 0 {
            phone
                .send_cmd("mark_read", json!({"room": "general", "seq": n}), Some("r"))
                .await;
            laptop
                .send_cmd(
                    "mark_read",
                    json!({"room": "general", "seq": n / 2}),
                    Some("r"),
                )
                .await;
        }
    }
    let entries = posts + posts / 5;
    // Every post and deletion answered (each is its own entry).
    let mut acked = 0;
    while acked < entries {
        let frame = john.next_json().await;
        if frame["type"] == "ack" {
            acked += 1;
        } else {
            assert_ne!(frame["type"], "error", "{frame}");
        }
    }
    let (_, answer) = command(
        &mut phone,
        "mark_read",
        json!({"room": "general", "seq": 0}),
        "final",
    )
    .await;
    // Where the racing marks left it: each was clamped to the room's end when it landed.
    let read_through = answer["seq"].as_i64().expect("a read point");
    assert!((0..=entries).contains(&read_through), "{answer}");
    // The count the server gives against the count of what the history holds after that point.
    let (_, rooms) = command(&mut laptop, "list_rooms", json!({}), "l").await;
    let (_, page) = command(
        &mut laptop,
        "get_messages",
        json!({"name": "general", "after_seq": read_through, "limit": 200}),
        "h",
    )
    .await;
    let expected = page["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .filter(|m| m["deleted"] != true && m["username"] == "john_doe")
        .count();
    assert_eq!(rooms["rooms"][0]["last_read_seq"], read_through, "{rooms}");
    assert_eq!(
        rooms["rooms"][0]["unread"], expected,
        "{rooms} against {page}"
    );
    // Reading to the end leaves nothing unread, on either device.
    command(
        &mut laptop,
        "mark_read",
        json!({"room": "general", "seq": entries}),
        "end",
    )
    .await;
    let (_, rooms) = command(&mut phone, "list_rooms", json!({}), "l2").await;
    assert_eq!(rooms["rooms"][0]["unread"], 0, "{rooms}");
    assert_eq!(rooms["rooms"][0]["last_read_seq"], entries, "{rooms}");
}

async fn search_finds_messages_in_the_users_rooms_over_both_protocols_and_rest(engine: Engine) {
    let Some(chat) = Chat::start_with(engine, &[NO_RATE_LIMIT]).await else {
        return;
    };
    let (mut john, mut jane) = general(&chat).await;
    let posts = [
        "the quarterly report is late",
        "Report: quarterly numbers are in",
        "lunch?",
        "the report, draft two",
    ];
    for (seq, content) in (1..).zip(posts) {
        change(
            &mut john,
            "room_message",
            json!({"room": "general", "content": content}),
            "m",
            seq,
        )
        .await;
        jane.expect_json("message").await;
    }
    change(
        &mut john,
        "delete_message",
        json!({"room": "general", "seq": 4}),
        "d",
        5,
    )
    .await;
    change(
        &mut john,
        "edit_message",
        json!({"room": "general", "seq": 3, "content": "lunch, then the quarterly report"}),
        "e",
        6,
    )
    .await;
    let (_, page) = command(
        &mut jane,
        "search",
        json!({"query": "Quarterly REPORT", "limit": 2}),
        "s1",
    )
    .await;
    assert_eq!(page["type"], "search_results", "{page}");
    assert_eq!(page["id"], "s1", "{page}");
    let results = page["results"].as_array().expect("results");
    assert_eq!(results.len(), 2, "{page}");
    assert_eq!(page["next"], 2, "{page}");
    let first = &results[0];
    let keys: Vec<&String> = first.as_object().expect("an object").keys().collect();
    assert_eq!(
        keys,
        ["room", "seq", "username", "snippet", "timestamp"],
        "{page}"
    );
    assert_eq!(first["room"], "general");
    assert!(
        first["snippet"].as_str().unwrap_or_default().contains("**"),
        "{page}"
    );
    let (_, rest) = command(
        &mut jane,
        "search",
        json!({"query": "quarterly report", "limit": 2, "cursor": 2}),
        "s2",
    )
    .await;
    let mut seqs: Vec<i64> = results
        .iter()
        .chain(rest["results"].as_array().expect("results"))
        .map(|hit| hit["seq"].as_i64().expect("a seq"))
        .collect();
    seqs.sort_unstable();
    assert_eq!(
        seqs,
        [1, 2, 3],
        "the edited one by its new text, the deleted one gone: {rest}"
    );
    assert_eq!(rest["next"], Value::Null, "{rest}");
    // Over REST, with `q`, the same results.
    let (status, body) = chat
        .client
        .get_with("/api/search?q=quarterly%20report&limit=2", &chat.jane, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["results"], page["results"]);
    assert_eq!(body["next"], 2);
    let (status, body) = chat
        .client
        .get_with("/api/search?q=", &chat.jane, &[])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["code"], "invalid_query", "{body}");
    // In the text protocol.
    let mut text = chat.text(&chat.jane).await;
    text.send_cmd("search", json!({"query": "lunch", "room": "general"}), None)
        .await;
    let found = text.expect_prefixed_json("SEARCH_RESULTS:").await;
    assert_eq!(found["results"][0]["seq"], 3, "{found}");
    assert_eq!(
        found["results"][0]["snippet"],
        "**lunch**, then the quarterly report"
    );
    // Someone in none of the rooms finds nothing; naming a room they are not in is refused.
    let mut stranger = chat.json(&chat.client.user("stranger").await).await;
    let (_, nothing) = command(&mut stranger, "search", json!({"query": "report"}), "s3").await;
    assert_eq!(nothing["results"], json!([]), "{nothing}");
    let (_, refused) = command(
        &mut stranger,
        "search",
        json!({"query": "report", "room": "general"}),
        "s4",
    )
    .await;
    assert_eq!(
        refused,
        error("s4", "forbidden", "you are not in that room")
    );
}

async fn json_a_direct_room_is_its_two_members_and_a_block_refuses_it(engine: Engine) {
    let Some(chat) = Chat::start_with(engine, &[NO_RATE_LIMIT]).await else {
        return;
    };
    let mut john = chat.json(&chat.john).await;
    let mut phone = chat.json(&chat.jane).await;
    let mut laptop = chat.json(&chat.jane).await;
    let (events, opened) =
        command(&mut john, "open_dm", json!({"username": "JANE_DOE"}), "o1").await;
    let room = "dm:jane_doe:john_doe";
    assert_eq!(
        events,
        vec![json!({"type": "dm_opened", "room": room, "with": "jane_doe"})]
    );
    assert_eq!(
        opened,
        json!({"type": "dm_opened", "room": room, "with": "jane_doe", "id": "o1"})
    );
    for device in [&mut phone, &mut laptop] {
        assert_eq!(
            device.next_json().await,
            json!({"type": "dm_opened", "room": room, "with": "john_doe"}),
            "each of jane's sockets is told and subscribed"
        );
    }
    let posted = change(
        &mut john,
        "room_message",
        json!({"room": room, "content": "just us"}),
        "m1",
        1,
    )
    .await;
    assert_eq!(phone.next_json().await, posted);
    assert_eq!(laptop.next_json().await, posted);
    change(
        &mut phone,
        "react",
        json!({"room": room, "seq": 1, "emoji": "🤝"}),
        "r1",
        2,
    )
    .await;
    john.expect_json("reaction").await;
    laptop.expect_json("reaction").await;

    // Nobody else gets in, sees it listed, or reads it.
    let outsider = chat.client.user("bob").await;
    let mut bob = chat.json(&outsider).await;
    for (kind, data) in [
        ("join_room", json!({"name": room})),
        ("get_messages", json!({"name": room})),
        ("list_members", json!({"name": room})),
    ] {
        let (_, answer) = command(&mut bob, kind, data, "x").await;
        assert_eq!(
            answer,
            error("x", "forbidden", "you are not in that room"),
            "{kind}"
        );
    }
    let (_, rooms) = command(&mut bob, "list_rooms", json!({}), "l").await;
    assert_eq!(rooms["rooms"], json!([]), "{rooms}");
    let (_, rooms) = command(&mut john, "list_rooms", json!({}), "l").await;
    let listed = &rooms["rooms"][0];
    assert_eq!(
        (
            &listed["name"],
            &listed["direct"],
            &listed["with"],
            &listed["unread"]
        ),
        (&json!(room), &json!(true), &json!("jane_doe"), &json!(0)),
        "{rooms}"
    );
    let (_, answer) = command(&mut john, "delete_room", json!({"name": room}), "d").await;
    assert_eq!(
        answer,
        error("d", "forbidden", "a direct conversation cannot be deleted")
    );

    // Jane blocks john: he can neither post there nor open it again; she unblocks, and he can.
    let (_, answer) = command(
        &mut laptop,
        "block_user",
        json!({"username": "john_doe"}),
        "b",
    )
    .await;
    assert_eq!(
        answer,
        json!({"type": "blocked", "username": "john_doe", "id": "b"})
    );
    let blocked = "this user does not accept direct messages from you";
    let (_, answer) = command(
        &mut john,
        "room_message",
        json!({"room": room, "content": "?"}),
        "m2",
    )
    .await;
    assert_eq!(answer, error("m2", "forbidden", blocked));
    let (_, answer) = command(&mut john, "open_dm", json!({"username": "jane_doe"}), "o2").await;
    assert_eq!(answer, error("o2", "forbidden", blocked));
    let (_, answer) = command(
        &mut laptop,
        "unblock_user",
        json!({"username": "john_doe"}),
        "u",
    )
    .await;
    assert_eq!(
        answer,
        json!({"type": "unblocked", "username": "john_doe", "id": "u"})
    );
    change(
        &mut john,
        "room_message",
        json!({"room": room, "content": "thanks"}),
        "m3",
        3,
    )
    .await;
    // Mistakes have clear answers.
    for (data, expected) in [
        (
            json!({"username": "john_doe"}),
            error(
                "e",
                "invalid_request",
                "you cannot open a direct conversation with yourself",
            ),
        ),
        (
            json!({"username": "nobody_here"}),
            error("e", "not_found", "there is no user called that"),
        ),
    ] {
        let (_, answer) = command(&mut john, "open_dm", data, "e").await;
        assert_eq!(answer, expected);
    }
}

async fn text_direct_rooms_and_blocks_have_their_lines(engine: Engine) {
    let Some(chat) = Chat::start_with(engine, &[NO_RATE_LIMIT]).await else {
        return;
    };
    let mut john = chat.text(&chat.john).await;
    let mut jane = chat.text(&chat.jane).await;
    john.send_cmd("open_dm", json!({"username": "jane_doe"}), None)
        .await;
    let opened = r#"DM_OPENED:{"room":"dm:jane_doe:john_doe","with":"jane_doe"}"#;
    john.expect_text(opened).await;
    john.expect_text(opened).await;
    jane.expect_text(r#"DM_OPENED:{"room":"dm:jane_doe:john_doe","with":"john_doe"}"#)
        .await;
    john.send_cmd(
        "room_message",
        json!({"room": "dm:jane_doe:john_doe", "content": "hey"}),
        None,
    )
    .await;
    jane.expect_stamped("john_doe: hey").await;
    jane.send_cmd("block_user", json!({"username": "john_doe"}), None)
        .await;
    jane.expect_text("BLOCKED:john_doe").await;
    jane.send_cmd("unblock_user", json!({"username": "john_doe"}), None)
        .await;
    jane.expect_text("UNBLOCKED:john_doe").await;
}

async fn json_roles_are_given_shown_and_enforced(engine: Engine) {
    let Some(chat) = Chat::start_with(engine, &[NO_RATE_LIMIT]).await else {
        return;
    };
    let (mut john, mut jane) = general(&chat).await;
    let bob_token = chat.client.user("bob").await;
    let mut bob = chat.json(&bob_token).await;
    bob.send_cmd("join_room", json!({"name": "general"}), Some("j"))
        .await;
    bob.expect_json("welcome").await;
    john.expect_json("joined").await;
    jane.expect_json("joined").await;
    john.send_cmd(
        "set_role",
        json!({"room": "general", "username": "jane_doe", "role": "moderator"}),
        Some("s1"),
    )
    .await;
    let changed = json!({"type": "role_changed", "room": "general", "username": "jane_doe", "role": "moderator",
                         "by": "john_doe"});
    for ws in [&mut john, &mut jane, &mut bob] {
        assert_eq!(ws.next_json().await, changed);
    }
    let (_, members) = command(&mut bob, "list_members", json!({"name": "general"}), "l").await;
    let roles: Vec<(&str, &str)> = members["members"]
        .as_array()
        .expect("members")
        .iter()
        .map(|m| {
            (
                m["username"].as_str().unwrap_or(""),
                m["role"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            ("bob", "member"),
            ("jane_doe", "moderator"),
            ("john_doe", "owner")
        ]
    );
    // A moderator deletes anyone's message; a member gives no roles.
    change(
        &mut bob,
        "room_message",
        json!({"room": "general", "content": "spam"}),
        "m",
        1,
    )
    .await;
    john.expect_json("message").await;
    jane.expect_json("message").await;
    let deleted = change(
        &mut jane,
        "delete_message",
        json!({"room": "general", "seq": 1}),
        "d",
        2,
    )
    .await;
    assert_eq!(deleted["username"], "jane_doe", "{deleted}");
    for (who, data, expected) in [
        (
            "bob",
            json!({"room": "general", "username": "jane_doe", "role": "member"}),
            error(
                "x",
                "forbidden",
                "you may not give that role to that member",
            ),
        ),
        (
            "jane",
            json!({"room": "general", "username": "bob", "role": "admin"}),
            error(
                "x",
                "forbidden",
                "you may not give that role to that member",
            ),
        ),
        (
            "john",
            json!({"room": "general", "username": "nobody_here", "role": "member"}),
            error("x", "not_found", "there is no user called that"),
        ),
        (
            "john",
            json!({"room": "general", "username": "bob", "role": "owner"}),
            error(
                "x",
                "invalid_request",
                "role must be admin, moderator or member (an owner is made by transfer_ownership)",
            ),
        ),
    ] {
        let ws = match who {
            "bob" => &mut bob,
            "jane" => &mut jane,
            _ => &mut john,
        };
        let (_, answer) = command(ws, "set_role", data.clone(), "x").await;
        assert_eq!(answer, expected, "{data}");
    }
    // The owner hands the room to jane and becomes an admin; the room hears both.
    john.send_cmd(
        "transfer_ownership",
        json!({"room": "general", "username": "jane_doe"}),
        Some("t"),
    )
    .await;
    // (The deletion's event was read while the refusals above were awaited.)
    for ws in [&mut john, &mut bob] {
        let first = ws.next_json().await;
        let second = ws.next_json().await;
        assert_eq!(
            (&first["username"], &first["role"]),
            (&json!("jane_doe"), &json!("owner"))
        );
        assert_eq!(
            (&second["username"], &second["role"]),
            (&json!("john_doe"), &json!("admin"))
        );
    }
    let (_, answer) = command(
        &mut john,
        "transfer_ownership",
        json!({"room": "general", "username": "bob"}),
        "t2",
    )
    .await;
    assert_eq!(
        answer,
        error("t2", "forbidden", "only the room owner can transfer it")
    );
    let (_, answer) = command(&mut john, "delete_room", json!({"name": "general"}), "d2").await;
    assert_eq!(
        answer,
        error("d2", "forbidden", "only the room owner can delete it")
    );
}

async fn text_role_changes_have_their_lines(engine: Engine) {
    let Some(chat) = Chat::start_with(engine, &[NO_RATE_LIMIT]).await else {
        return;
    };
    let (mut john, _jane) = general(&chat).await;
    let mut watcher = chat.text(&chat.jane).await;
    watcher
        .send_cmd("join_room", json!({"name": "general"}), None)
        .await;
    watcher.expect_stamped("Welcome to room 'general'!").await;
    john.send_cmd(
        "set_role",
        json!({"room": "general", "username": "jane_doe", "role": "admin"}),
        None,
    )
    .await;
    watcher
        .expect_stamped("john_doe made jane_doe an admin")
        .await;
    john.send_cmd(
        "transfer_ownership",
        json!({"room": "general", "username": "jane_doe"}),
        None,
    )
    .await;
    watcher
        .expect_stamped("john_doe made jane_doe the owner")
        .await;
    watcher
        .expect_stamped("john_doe made john_doe an admin")
        .await;
    watcher
        .send_cmd(
            "set_role",
            json!({"room": "general", "username": "john_doe", "role": "moderator"}),
            None,
        )
        .await;
    watcher
        .expect_stamped("jane_doe made john_doe a moderator")
        .await;
}

async fn kick_removes_the_member_on_both_protocols(engine: Engine) {
    let Some(chat) = Chat::start_with(engine, &[NO_RATE_LIMIT]).await else {
        return;
    };
    let (mut john, mut jane) = general(&chat).await;
    let mut jane_text = chat.text(&chat.jane).await;
    jane_text
        .send_cmd("join_room", json!({"name": "general"}), None)
        .await;
    jane_text.expect_stamped("Welcome to room 'general'!").await;
    let (_, answer) = command(
        &mut jane,
        "kick",
        json!({"room": "general", "username": "john_doe"}),
        "k0",
    )
    .await;
    assert_eq!(
        answer,
        error("k0", "forbidden", "you may not moderate that member")
    );
    john.send_cmd(
        "kick",
        json!({"room": "general", "username": "jane_doe", "reason": "flooding"}),
        Some("k1"),
    )
    .await;
    let kicked = json!({"type": "kicked", "room": "general", "username": "jane_doe", "by": "john_doe",
                        "reason": "flooding"});
    assert_eq!(john.next_json().await, kicked);
    assert_eq!(jane.next_json().await, kicked);
    assert_eq!(
        jane.next_json().await,
        json!({"type": "left_room", "room": "general"})
    );
    jane_text
        .expect_stamped("jane_doe was kicked by john_doe (flooding)")
        .await;
    jane_text
        .expect_text("You have left the room \"general\"")
        .await;
    // Out of the room: posting is refused, the member list no longer has her; she may join again.
    let (_, answer) = command(
        &mut jane,
        "room_message",
        json!({"room": "general", "content": "hi"}),
        "p",
    )
    .await;
    assert_eq!(answer, error("p", "forbidden", "you are not in that room"));
    let (_, members) = command(&mut john, "list_members", json!({"name": "general"}), "l").await;
    assert_eq!(
        members["members"].as_array().map(Vec::len),
        Some(1),
        "{members}"
    );
    let (_, welcome) = command(&mut jane, "join_room", json!({"name": "general"}), "j2").await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
}

palaver_integration_tests::on_every_engine!(
    json_edits_deletions_and_reactions_reach_everyone_and_are_acked,
    text_edits_deletions_and_reactions_have_their_lines,
    json_history_shows_messages_in_their_current_state,
    a_client_that_resumes_ends_with_the_state_of_one_that_never_left,
    json_mark_read_tells_the_users_connections_and_the_room,
    text_mark_read_has_its_lines,
    unread_counts_stay_exact_under_concurrent_posts_deletions_and_reads,
    search_finds_messages_in_the_users_rooms_over_both_protocols_and_rest,
    json_a_direct_room_is_its_two_members_and_a_block_refuses_it,
    text_direct_rooms_and_blocks_have_their_lines,
    json_roles_are_given_shown_and_enforced,
    text_role_changes_have_their_lines,
    kick_removes_the_member_on_both_protocols,
);
