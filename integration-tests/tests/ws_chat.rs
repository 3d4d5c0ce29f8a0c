//! The WebSocket contract of PROTOCOL §2–§5 against a real server, on SQLite and on PostgreSQL: every command of §3 in
//! the text protocol (§4) and in the JSON protocol (§5), presence, the `#room ` prefix, size limits, malformed frames,
//! and how a connection is authenticated or refused.

use palaver_integration_tests::api::PASSWORD;
use palaver_integration_tests::chat::Chat;
use palaver_integration_tests::ws::{
    Connect, Frame, MISSING_CREDENTIALS, WsClient, assert_stamped, raw_upgrade,
};
use palaver_integration_tests::{Engine, TEST_JWT_SECRET};
use reqwest::StatusCode;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

const ROOM_PASSWORD: &str = "open sesame";
const FOREIGN_ORIGIN: &str = "http://evil.example";
const LEFT_GENERAL: &str = "You have left the room \"general\"";
const LEAVE_SUCCESS: &str = "ROOM_LEAVE_SUCCESS:You have successfully left the room";
const INVALID_FORMAT: &str = "Error: invalid message format";
const INVALID_TOKEN: &str = "the token is invalid";
const INVALID_TICKET: &str = "the ticket is invalid, used or expired";
const FORBIDDEN_ORIGIN: &str = "this origin may not open a WebSocket";
const UNAUTHORIZED: StatusCode = StatusCode::UNAUTHORIZED;
const FORBIDDEN: StatusCode = StatusCode::FORBIDDEN;

// ---------------------------------------------------------------------------------------------------------------
// Text-protocol helpers.

/// Creates a public room on a text connection in no other room; checks both frames and returns the room's id.
async fn create_text(ws: &mut WsClient, name: &str) -> String {
    ws.send_cmd("create_room", json!({"name": name}), None)
        .await;
    let id = expect_created_text(ws, name, false).await;
    ws.expect_stamped(&format!("Welcome to room '{name}'!"))
        .await;
    id
}

/// Checks `ROOM_CREATE_SUCCESS:{"name":…,"private":…,"id":…}` byte for byte and returns the id.
async fn expect_created_text(ws: &mut WsClient, name: &str, private: bool) -> String {
    let created = ws.next_text().await;
    let body: Value = created
        .strip_prefix("ROOM_CREATE_SUCCESS:")
        .and_then(|body| serde_json::from_str(body).ok())
        .unwrap_or_else(|| panic!("not a creation: {created:?}"));
    let id = body["id"].as_str().unwrap_or_default().to_owned();
    assert!(Uuid::parse_str(&id).is_ok(), "{created}");
    assert_eq!(
        created,
        format!(r#"ROOM_CREATE_SUCCESS:{{"name":"{name}","private":{private},"id":"{id}"}}"#)
    );
    id
}

/// Joins a room on a text connection in no other room and checks the welcome.
async fn join_text(ws: &mut WsClient, data: Value) {
    let name = data["name"].as_str().expect("a room name").to_owned();
    ws.send_cmd("join_room", data, None).await;
    ws.expect_stamped(&format!("Welcome to room '{name}'!"))
        .await;
}

/// Posts to a room (named, or the only one when `room` is `None`).
async fn say(ws: &mut WsClient, room: Option<&str>, content: &str) {
    let data = match room {
        Some(room) => json!({"room": room, "content": content}),
        None => json!({"content": content}),
    };
    ws.send_cmd("room_message", data, None).await;
}

/// `(username, online)` pairs of a `MEMBERS_LIST:` frame, sorted by username.
async fn members_text(ws: &mut WsClient, room: &str) -> Vec<(String, bool)> {
    ws.send_cmd("list_members", json!({"name": room}), None)
        .await;
    let list = ws.expect_prefixed_json("MEMBERS_LIST:").await;
    member_pairs(&list)
}

fn member_pairs(list: &Value) -> Vec<(String, bool)> {
    let mut pairs: Vec<(String, bool)> = list
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|member| {
            let object = member.as_object().expect("a member object");
            assert_eq!(
                object.keys().collect::<Vec<_>>(),
                ["username", "online", "last_read_seq", "role"],
                "{member}"
            );
            (
                member["username"].as_str().expect("a username").to_owned(),
                member["online"].as_bool().expect("an online flag"),
            )
        })
        .collect();
    pairs.sort();
    pairs
}

fn pairs(expected: &[(&str, bool)]) -> Vec<(String, bool)> {
    expected
        .iter()
        .map(|(name, online)| (name.to_string(), *online))
        .collect()
}

/// The seqs of a history page (text or JSON).
fn seqs(page: &Value) -> Vec<i64> {
    page["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages: {page}"))
        .iter()
        .map(|message| message["seq"].as_i64().expect("a seq"))
        .collect()
}

fn assert_rfc3339(value: &Value) {
    let text = value
        .as_str()
        .unwrap_or_else(|| panic!("not a time: {value}"));
    assert!(OffsetDateTime::parse(text, &Rfc3339).is_ok(), "{text}");
}

// ---------------------------------------------------------------------------------------------------------------
// JSON-protocol helpers.

/// Creates a room on a JSON connection; checks `room_created` and `welcome` (both carrying `id`) and returns the room.
async fn create_json(ws: &mut WsClient, data: Value, id: &str) -> Value {
    let name = data["name"].clone();
    ws.send_cmd("create_room", data, Some(id)).await;
    let created = ws.expect_json("room_created").await;
    assert_eq!(created["id"], id, "{created}");
    assert_eq!(created["room"]["name"], name, "{created}");
    assert!(
        Uuid::parse_str(created["room"]["id"].as_str().unwrap_or_default()).is_ok(),
        "{created}"
    );
    let welcome = ws.expect_json("welcome").await;
    assert_eq!(welcome["room"], name, "{welcome}");
    assert_eq!(welcome["last_seq"], 0, "{welcome}");
    assert_eq!(welcome["id"], id, "{welcome}");
    created["room"].clone()
}

/// Joins a room on a JSON connection; checks the `welcome` and returns it.
async fn join_json(ws: &mut WsClient, data: Value, id: &str) -> Value {
    let name = data["name"].clone();
    ws.send_cmd("join_room", data, Some(id)).await;
    let welcome = ws.expect_json("welcome").await;
    assert_eq!(welcome["room"], name, "{welcome}");
    assert_eq!(welcome["id"], id, "{welcome}");
    assert!(welcome["last_seq"].is_i64(), "{welcome}");
    welcome
}

/// Checks a `message` frame and returns it.
async fn expect_message_json(
    ws: &mut WsClient,
    room: &str,
    seq: i64,
    username: &str,
    content: &str,
) -> Value {
    let frame = ws.expect_json("message").await;
    assert_eq!(frame["room"], room, "{frame}");
    assert_eq!(frame["seq"], seq, "{frame}");
    assert_eq!(frame["username"], username, "{frame}");
    assert_eq!(frame["content"], content, "{frame}");
    assert!(
        Uuid::parse_str(frame["id"].as_str().unwrap_or_default()).is_ok(),
        "{frame}"
    );
    assert_rfc3339(&frame["timestamp"]);
    frame
}

/// Checks an `ack` for command `id`.
async fn expect_ack(ws: &mut WsClient, id: &str, room: &str, seq: i64) {
    let ack = ws.next_json().await;
    assert_eq!(
        ack,
        json!({"type": "ack", "id": id, "room": room, "seq": seq})
    );
}

/// Checks an error frame: exactly `{type, id, code, message}`.
async fn expect_error_json(ws: &mut WsClient, id: &str, code: &str, message: &str) {
    let error = ws.next_json().await;
    assert_eq!(
        error,
        json!({"type": "error", "id": id, "code": code, "message": message})
    );
}

/// Posts on a JSON connection and checks the sender's own `message` then its `ack`.
async fn post_json(
    ws: &mut WsClient,
    room: &str,
    username: &str,
    content: &str,
    seq: i64,
    id: &str,
) {
    ws.send_cmd(
        "room_message",
        json!({"room": room, "content": content}),
        Some(id),
    )
    .await;
    expect_message_json(ws, room, seq, username, content).await;
    expect_ack(ws, id, room, seq).await;
}

async fn members_json(ws: &mut WsClient, room: &str, id: &str) -> Vec<(String, bool)> {
    ws.send_cmd("list_members", json!({"name": room}), Some(id))
        .await;
    let frame = ws.expect_json("members").await;
    assert_eq!(frame["room"], room, "{frame}");
    assert_eq!(frame["id"], id, "{frame}");
    member_pairs(&frame["members"])
}

// ---------------------------------------------------------------------------------------------------------------
// Chatting.

async fn text_two_users_chat_in_a_public_room(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.text(&chat.john).await;
    let mut jane = chat.text(&chat.jane).await;

    create_text(&mut john, "general").await;
    join_text(&mut jane, json!({"name": "general"})).await;
    john.expect_stamped("jane_doe has joined the room").await;

    say(&mut john, Some("general"), "hello").await;
    john.expect_stamped("john_doe: hello").await;
    jane.expect_stamped("john_doe: hello").await;

    // `room` may be omitted when exactly one room is joined.
    say(&mut jane, None, "hi john").await;
    jane.expect_stamped("jane_doe: hi john").await;
    john.expect_stamped("jane_doe: hi john").await;

    // Content is delivered as it was sent, never interpreted.
    let odd = "<b>bold</b> \"quoted\" 'single' #general [12:00:00] émoji 🎉";
    say(&mut john, None, odd).await;
    john.expect_stamped(&format!("john_doe: {odd}")).await;
    jane.expect_stamped(&format!("john_doe: {odd}")).await;
}

async fn json_two_users_chat_in_a_public_room(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.json(&chat.john).await;
    let mut jane = chat.json(&chat.jane).await;

    let room = create_json(&mut john, json!({"name": "general"}), "c1").await;
    assert_eq!(room["private"], false, "{room}");
    join_json(&mut jane, json!({"name": "general"}), "j1").await;
    let joined = john.expect_json("joined").await;
    assert_eq!(
        (&joined["room"], &joined["username"]),
        (&json!("general"), &json!("jane_doe")),
        "{joined}"
    );
    assert_rfc3339(&joined["timestamp"]);

    john.send_cmd(
        "room_message",
        json!({"room": "general", "content": "hello", "client_msg_id": "k1"}),
        Some("m1"),
    )
    .await;
    let mine = expect_message_json(&mut john, "general", 1, "john_doe", "hello").await;
    assert_eq!(mine["client_msg_id"], "k1", "{mine}");
    expect_ack(&mut john, "m1", "general", 1).await;
    let theirs = expect_message_json(&mut jane, "general", 1, "john_doe", "hello").await;
    assert_eq!(theirs, mine, "everyone sees the same message");

    // The same client_msg_id again: acknowledged with the first seq, stored and delivered once.
    john.send_cmd(
        "room_message",
        json!({"room": "general", "content": "hello", "client_msg_id": "k1"}),
        Some("m2"),
    )
    .await;
    expect_ack(&mut john, "m2", "general", 1).await;

    // `room` may be omitted when exactly one room is joined; seqs follow without gaps.
    jane.send_cmd("room_message", json!({"content": "hi john"}), Some("m3"))
        .await;
    // Had the repeat been delivered, jane's next frame would be seq 1 again.
    expect_message_json(&mut jane, "general", 2, "jane_doe", "hi john").await;
    expect_ack(&mut jane, "m3", "general", 2).await;
    expect_message_json(&mut john, "general", 2, "jane_doe", "hi john").await;
}

// ---------------------------------------------------------------------------------------------------------------
// Private rooms and unknown rooms.

async fn text_private_room_needs_its_password(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.text(&chat.john).await;
    let mut jane = chat.text(&chat.jane).await;

    john.send_cmd(
        "create_room",
        json!({"name": "vault", "private": true, "password": ROOM_PASSWORD}),
        None,
    )
    .await;
    expect_created_text(&mut john, "vault", true).await;
    john.expect_stamped("Welcome to room 'vault'!").await;

    for data in [
        json!({"name": "vault"}),
        json!({"name": "vault", "password": "wrong password"}),
    ] {
        jane.send_cmd("join_room", data, None).await;
        jane.expect_text("Error: incorrect room password").await;
    }
    join_text(
        &mut jane,
        json!({"name": "vault", "password": ROOM_PASSWORD}),
    )
    .await;
    john.expect_stamped("jane_doe has joined the room").await;
    say(&mut jane, None, "in").await;
    jane.expect_stamped("jane_doe: in").await;
    john.expect_stamped("jane_doe: in").await;

    // Membership outlives the connection: jane rejoins without the password.
    jane.drop_without_close();
    john.expect_stamped("jane_doe has left the room").await;
    let mut jane = chat.text(&chat.jane).await;
    join_text(&mut jane, json!({"name": "vault"})).await;
    john.expect_stamped("jane_doe has joined the room").await;
}

async fn json_private_room_needs_its_password(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.json(&chat.john).await;
    let mut jane = chat.json(&chat.jane).await;

    let room = create_json(
        &mut john,
        json!({"name": "vault", "private": true, "password": ROOM_PASSWORD}),
        "c1",
    )
    .await;
    assert_eq!(room["private"], true, "{room}");
    assert!(!room.to_string().contains(ROOM_PASSWORD), "{room}");

    jane.send_cmd("join_room", json!({"name": "vault"}), Some("p1"))
        .await;
    expect_error_json(
        &mut jane,
        "p1",
        "bad_room_password",
        "incorrect room password",
    )
    .await;
    jane.send_cmd(
        "join_room",
        json!({"name": "vault", "password": "wrong password"}),
        Some("p2"),
    )
    .await;
    expect_error_json(
        &mut jane,
        "p2",
        "bad_room_password",
        "incorrect room password",
    )
    .await;

    join_json(
        &mut jane,
        json!({"name": "vault", "password": ROOM_PASSWORD}),
        "p3",
    )
    .await;
    let joined = john.expect_json("joined").await;
    assert_eq!(joined["username"], "jane_doe", "{joined}");
    assert_eq!(joined["room"], "vault", "{joined}");
}

async fn text_unknown_rooms_do_not_exist(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut jane = chat.text(&chat.jane).await;
    for (kind, data) in [
        ("join_room", json!({"name": "nowhere"})),
        ("room_message", json!({"room": "nowhere", "content": "hi"})),
        ("get_messages", json!({"name": "nowhere"})),
        ("list_members", json!({"name": "nowhere"})),
        ("delete_room", json!({"name": "nowhere"})),
        ("leave_room", json!({"name": "nowhere"})),
    ] {
        jane.send_cmd(kind, data, None).await;
        jane.expect_text("Error: room does not exist").await;
    }
}

async fn json_unknown_rooms_do_not_exist(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut jane = chat.json(&chat.jane).await;
    for (kind, data) in [
        ("join_room", json!({"name": "nowhere"})),
        ("room_message", json!({"room": "nowhere", "content": "hi"})),
        ("get_messages", json!({"name": "nowhere"})),
        ("list_members", json!({"name": "nowhere"})),
        ("delete_room", json!({"name": "nowhere"})),
        ("leave_room", json!({"name": "nowhere"})),
    ] {
        jane.send_cmd(kind, data, Some(kind)).await;
        expect_error_json(&mut jane, kind, "room_not_found", "room does not exist").await;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Leaving and deleting.

async fn text_leaving_a_room(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.text(&chat.john).await;
    let mut jane = chat.text(&chat.jane).await;
    create_text(&mut john, "general").await;
    join_text(&mut jane, json!({"name": "general"})).await;
    john.expect_stamped("jane_doe has joined the room").await;

    jane.send_cmd("leave_room", json!({"name": "general"}), None)
        .await;
    jane.expect_text(LEFT_GENERAL).await;
    jane.expect_text(LEAVE_SUCCESS).await;
    john.expect_stamped("jane_doe has left the room").await;

    say(&mut john, None, "still here?").await;
    john.expect_stamped("john_doe: still here?").await;
    // Were jane still subscribed, the message would come before the answer to her next command.
    say(&mut jane, Some("general"), "hello?").await;
    jane.expect_text("Error: you are not in that room").await;
    assert_eq!(
        members_text(&mut john, "general").await,
        pairs(&[("john_doe", true)]),
        "leaving ends the membership"
    );

    // Without a name, the only room joined is left.
    join_text(&mut jane, json!({"name": "general"})).await;
    john.expect_stamped("jane_doe has joined the room").await;
    jane.send_cmd("leave_room", json!({}), None).await;
    jane.expect_text(LEFT_GENERAL).await;
    jane.expect_text(LEAVE_SUCCESS).await;
    john.expect_stamped("jane_doe has left the room").await;
}

async fn json_leaving_a_room(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.json(&chat.john).await;
    let mut jane = chat.json(&chat.jane).await;
    let mut jane_phone = chat.json(&chat.jane).await;
    create_json(&mut john, json!({"name": "general"}), "c1").await;
    join_json(&mut jane, json!({"name": "general"}), "j1").await;
    john.expect_json("joined").await;
    // The user's second connection is not announced again.
    join_json(&mut jane_phone, json!({"name": "general"}), "j2").await;

    jane.send_cmd("leave_room", json!({"name": "general"}), Some("l1"))
        .await;
    let left = jane.next_json().await;
    assert_eq!(
        left,
        json!({"type": "left_room", "room": "general", "id": "l1"})
    );
    let left = john.expect_json("left").await;
    assert_eq!(
        (&left["room"], &left["username"]),
        (&json!("general"), &json!("jane_doe")),
        "{left}"
    );
    assert_rfc3339(&left["timestamp"]);

    // Leaving unsubscribes every connection of the user: neither hears the next message.
    post_json(&mut john, "general", "john_doe", "anyone?", 1, "m1").await;
    for (ws, id) in [(&mut jane, "r1"), (&mut jane_phone, "r2")] {
        ws.send_cmd("list_rooms", json!({}), Some(id)).await;
        let rooms = ws.expect_json("rooms").await;
        assert_eq!(rooms["id"], id, "{rooms}");
    }
    jane_phone
        .send_cmd(
            "room_message",
            json!({"room": "general", "content": "hello?"}),
            Some("m2"),
        )
        .await;
    expect_error_json(
        &mut jane_phone,
        "m2",
        "forbidden",
        "you are not in that room",
    )
    .await;
}

async fn text_deleting_a_room(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.text(&chat.john).await;
    let mut jane = chat.text(&chat.jane).await;
    create_text(&mut john, "general").await;
    join_text(&mut jane, json!({"name": "general"})).await;
    john.expect_stamped("jane_doe has joined the room").await;
    say(&mut john, None, "soon gone").await;
    john.expect_stamped("john_doe: soon gone").await;
    jane.expect_stamped("john_doe: soon gone").await;

    jane.send_cmd("delete_room", json!({"name": "general"}), None)
        .await;
    jane.expect_text("Error: only the room owner can delete it")
        .await;

    john.send_cmd("delete_room", json!({"name": "general"}), None)
        .await;
    john.expect_stamped("Room 'general' has been deleted by john_doe")
        .await;
    jane.expect_stamped("Room 'general' has been deleted by john_doe")
        .await;

    jane.send_cmd("list_rooms", json!({}), None).await;
    jane.expect_text("ROOMS_LIST:[]").await;
    // Members were removed: nobody is in a room any more.
    say(&mut jane, None, "hello?").await;
    jane.expect_text("Error: you are not in that room").await;
    john.send_cmd("get_messages", json!({"name": "general"}), None)
        .await;
    john.expect_text("Error: room does not exist").await;
    // The name is free again, and the history is gone with the room.
    create_text(&mut john, "general").await;
    john.send_cmd("get_messages", json!({"name": "general"}), None)
        .await;
    john.expect_text(r#"MESSAGES:{"messages":[],"next_before":null,"has_more":false}"#)
        .await;
}

async fn json_deleting_a_room(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.json(&chat.john).await;
    let mut jane = chat.json(&chat.jane).await;
    create_json(&mut john, json!({"name": "general"}), "c1").await;
    join_json(&mut jane, json!({"name": "general"}), "j1").await;
    john.expect_json("joined").await;

    jane.send_cmd("delete_room", json!({"name": "general"}), Some("d1"))
        .await;
    expect_error_json(
        &mut jane,
        "d1",
        "forbidden",
        "only the room owner can delete it",
    )
    .await;

    john.send_cmd("delete_room", json!({"name": "general"}), Some("d2"))
        .await;
    for ws in [&mut john, &mut jane] {
        let deleted = ws.expect_json("room_deleted").await;
        assert_eq!(
            (&deleted["room"], &deleted["by"]),
            (&json!("general"), &json!("john_doe")),
            "{deleted}"
        );
    }
    jane.send_cmd("list_rooms", json!({}), Some("r1")).await;
    let rooms = jane.next_json().await;
    assert_eq!(rooms, json!({"type": "rooms", "rooms": [], "id": "r1"}));
}

// ---------------------------------------------------------------------------------------------------------------
// Room list, history, members, typing.

async fn text_room_list(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.text(&chat.john).await;
    let general = create_text(&mut john, "general").await;
    let (status, vault) = chat
        .client
        .post_as(
            &chat.john,
            "/api/rooms",
            json!({"name": "vault", "private": true, "password": ROOM_PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{vault}");

    let mut jane = chat.text(&chat.jane).await;
    jane.send_cmd("list_rooms", json!({}), None).await;
    let text = jane.next_text().await;
    assert!(
        text.starts_with(&format!(
            r#"ROOMS_LIST:[{{"name":"general","private":false,"id":"{general}""#
        )),
        "{text}"
    );
    let list: Value = serde_json::from_str(text.strip_prefix("ROOMS_LIST:").unwrap()).unwrap();
    let rooms = list.as_array().expect("a list");
    assert_eq!(rooms.len(), 2, "{list}");
    assert_eq!(
        (&rooms[1]["name"], &rooms[1]["private"], &rooms[1]["id"]),
        (&json!("vault"), &json!(true), &vault["id"]),
        "{list}"
    );
    for room in rooms {
        let keys: Vec<&String> = room
            .as_object()
            .expect("an object")
            .keys()
            .take(3)
            .collect();
        assert_eq!(keys, ["name", "private", "id"], "{room}");
    }
    assert!(!text.contains(ROOM_PASSWORD), "{text}");
}

async fn json_room_list(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.json(&chat.john).await;
    let general = create_json(&mut john, json!({"name": "general"}), "c1").await;
    let mut jane = chat.json(&chat.jane).await;
    jane.send_cmd("list_rooms", json!({}), Some("r1")).await;
    let frame = jane.expect_json("rooms").await;
    assert_eq!(frame["id"], "r1", "{frame}");
    let rooms = frame["rooms"].as_array().expect("a list");
    assert_eq!(rooms.len(), 1, "{frame}");
    assert_eq!(
        (&rooms[0]["name"], &rooms[0]["private"], &rooms[0]["id"]),
        (&json!("general"), &json!(false), &general["id"]),
        "{frame}"
    );
    assert_eq!(rooms[0]["members_online"], 1, "john is in it: {frame}");
}

async fn text_history(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.text(&chat.john).await;
    create_text(&mut john, "general").await;
    for content in ["one", "two", "three"] {
        say(&mut john, None, content).await;
        john.expect_stamped(&format!("john_doe: {content}")).await;
    }

    // Anyone may read a public room's history, newest first.
    let mut jane = chat.text(&chat.jane).await;
    jane.send_cmd("get_messages", json!({"name": "general"}), None)
        .await;
    let page = jane.expect_prefixed_json("MESSAGES:").await;
    assert_eq!(seqs(&page), [3, 2, 1], "{page}");
    assert_eq!(
        (&page["next_before"], &page["has_more"]),
        (&json!(1), &json!(false)),
        "{page}"
    );
    let newest = &page["messages"][0];
    let keys: Vec<&String> = newest.as_object().expect("an object").keys().collect();
    assert_eq!(keys, ["seq", "username", "content", "timestamp"], "{page}");
    assert_eq!(
        (&newest["username"], &newest["content"]),
        (&json!("john_doe"), &json!("three")),
        "{page}"
    );
    // `2026-11-25T15:31:02Z`: whole seconds in UTC.
    let stamp = newest["timestamp"].as_str().expect("a timestamp");
    assert_eq!(
        (stamp.len(), &stamp[10..11], &stamp[19..]),
        (20, "T", "Z"),
        "{stamp}"
    );
    assert_rfc3339(&newest["timestamp"]);

    jane.send_cmd("get_messages", json!({"name": "general", "limit": 2}), None)
        .await;
    let page = jane.expect_prefixed_json("MESSAGES:").await;
    assert_eq!(seqs(&page), [3, 2], "{page}");
    assert_eq!(
        (&page["next_before"], &page["has_more"]),
        (&json!(2), &json!(true)),
        "{page}"
    );
    jane.send_cmd(
        "get_messages",
        json!({"name": "general", "limit": 2, "before_seq": 2}),
        None,
    )
    .await;
    let page = jane.expect_prefixed_json("MESSAGES:").await;
    assert_eq!(seqs(&page), [1], "{page}");
    assert_eq!(page["has_more"], false, "{page}");

    jane.send_cmd(
        "get_messages",
        json!({"name": "general", "contains": "TW"}),
        None,
    )
    .await;
    assert_eq!(seqs(&jane.expect_prefixed_json("MESSAGES:").await), [2]);
    jane.send_cmd(
        "get_messages",
        json!({"name": "general", "after_seq": 1}),
        None,
    )
    .await;
    assert_eq!(seqs(&jane.expect_prefixed_json("MESSAGES:").await), [3, 2]);
    jane.send_cmd(
        "get_messages",
        json!({"name": "general", "sender": "jane_doe"}),
        None,
    )
    .await;
    jane.expect_text(r#"MESSAGES:{"messages":[],"next_before":null,"has_more":false}"#)
        .await;
}

async fn json_history(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.json(&chat.john).await;
    create_json(&mut john, json!({"name": "general"}), "c1").await;
    let mut posted = Vec::new();
    for (seq, content) in [(1, "one"), (2, "two"), (3, "three")] {
        john.send_cmd(
            "room_message",
            json!({"content": content, "client_msg_id": format!("k{seq}")}),
            Some("m"),
        )
        .await;
        let mut message = expect_message_json(&mut john, "general", seq, "john_doe", content).await;
        expect_ack(&mut john, "m", "general", seq).await;
        let object = message.as_object_mut().expect("an object");
        object.remove("type");
        object.remove("room");
        posted.push(message);
    }

    john.send_cmd(
        "get_messages",
        json!({"name": "general", "limit": 2}),
        Some("h1"),
    )
    .await;
    let page = john.expect_json("history").await;
    assert_eq!(
        page,
        json!({"type": "history", "room": "general", "messages": [posted[2], posted[1]],
               "next_before": 2, "has_more": true, "as_of": 3, "id": "h1"}),
        "a history item is the message frame without type and room"
    );
    john.send_cmd(
        "get_messages",
        json!({"name": "general", "before_seq": 2}),
        Some("h2"),
    )
    .await;
    let page = john.expect_json("history").await;
    assert_eq!(seqs(&page), [1], "{page}");
    assert_eq!(page["has_more"], false, "{page}");
    assert_eq!(page["id"], "h2", "{page}");
}

async fn text_members_and_presence(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.text(&chat.john).await;
    let mut jane = chat.text(&chat.jane).await;
    let mut jane_phone = chat.text(&chat.jane).await;
    create_text(&mut john, "general").await;

    // Only members may list the members.
    jane.send_cmd("list_members", json!({"name": "general"}), None)
        .await;
    jane.expect_text("Error: you are not in that room").await;

    join_text(&mut jane, json!({"name": "general"})).await;
    john.expect_stamped("jane_doe has joined the room").await;
    // A second connection of the same user is not announced: john's next frame is the list.
    join_text(&mut jane_phone, json!({"name": "general"})).await;
    assert_eq!(
        members_text(&mut john, "general").await,
        pairs(&[("jane_doe", true), ("john_doe", true)])
    );
    assert_eq!(
        members_text(&mut jane, "general").await,
        pairs(&[("jane_doe", true), ("john_doe", true)])
    );

    // Both of jane's connections receive the room's messages, her own included.
    say(&mut jane_phone, None, "from my phone").await;
    for ws in [&mut jane_phone, &mut jane, &mut john] {
        ws.expect_stamped("jane_doe: from my phone").await;
    }

    // Connections vanish without a close frame; the user leaves when the last one goes.
    jane_phone.drop_without_close();
    jane.drop_without_close();
    john.expect_stamped("jane_doe has left the room").await;
    assert_eq!(
        members_text(&mut john, "general").await,
        pairs(&[("jane_doe", false), ("john_doe", true)]),
        "a dropped connection is not a leave: jane is still a member"
    );
}

async fn json_members_and_presence(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.json(&chat.john).await;
    let mut jane = chat.json(&chat.jane).await;
    create_json(&mut john, json!({"name": "general"}), "c1").await;

    jane.send_cmd("list_members", json!({"name": "general"}), Some("x"))
        .await;
    expect_error_json(&mut jane, "x", "forbidden", "you are not in that room").await;

    join_json(&mut jane, json!({"name": "general"}), "j1").await;
    john.expect_json("joined").await;
    assert_eq!(
        members_json(&mut john, "general", "l1").await,
        pairs(&[("jane_doe", true), ("john_doe", true)])
    );

    jane.drop_without_close();
    let left = john.expect_json("left").await;
    assert_eq!(
        (&left["room"], &left["username"]),
        (&json!("general"), &json!("jane_doe")),
        "{left}"
    );
    assert_eq!(
        members_json(&mut john, "general", "l2").await,
        pairs(&[("jane_doe", false), ("john_doe", true)])
    );
}

async fn text_typing_reaches_the_others_only(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.text(&chat.john).await;
    let mut jane = chat.text(&chat.jane).await;
    create_text(&mut john, "general").await;
    join_text(&mut jane, json!({"name": "general"})).await;
    john.expect_stamped("jane_doe has joined the room").await;

    john.send_cmd("typing", json!({"room": "general"}), None)
        .await;
    jane.expect_text("TYPING:john_doe").await;
    // The notice was published while john's command ran: had it reached john, it would be queued before the sentinel.
    john.expect_nothing_before_sentinel().await;

    // Never stored.
    john.send_cmd("get_messages", json!({"name": "general"}), None)
        .await;
    john.expect_text(r#"MESSAGES:{"messages":[],"next_before":null,"has_more":false}"#)
        .await;
}

async fn json_typing_reaches_the_others_only(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.json(&chat.john).await;
    let mut jane = chat.json(&chat.jane).await;
    create_json(&mut john, json!({"name": "general"}), "c1").await;
    join_json(&mut jane, json!({"name": "general"}), "j1").await;
    john.expect_json("joined").await;

    jane.send_cmd("typing", json!({"room": "general"}), Some("t1"))
        .await;
    let typing = john.next_json().await;
    assert_eq!(
        typing,
        json!({"type": "typing", "room": "general", "username": "jane_doe"})
    );
    // No echo of her own notice and no reply to t1: both would be queued before the sentinel's answer.
    jane.expect_nothing_before_sentinel().await;
}

// ---------------------------------------------------------------------------------------------------------------
// A connection in several rooms.

async fn text_lines_carry_the_room_when_in_several_rooms(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.text(&chat.john).await;
    let mut jane = chat.text(&chat.jane).await;
    create_text(&mut john, "general").await;
    let (status, body) = chat
        .client
        .post_as(&chat.john, "/api/rooms", json!({"name": "random"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    join_text(&mut jane, json!({"name": "general"})).await;
    john.expect_stamped("jane_doe has joined the room").await;

    // From here on john's connection is in two rooms.
    john.send_cmd("join_room", json!({"name": "random"}), None)
        .await;
    john.expect_room_stamped("random", "Welcome to room 'random'!")
        .await;
    say(&mut john, Some("general"), "hi all").await;
    john.expect_room_stamped("general", "john_doe: hi all")
        .await;
    jane.expect_stamped("john_doe: hi all").await;
    // With several rooms joined, a message must name its room.
    say(&mut john, None, "where does this go?").await;
    john.expect_text("Error: you are in several rooms; name the room")
        .await;

    jane.send_cmd("join_room", json!({"name": "random"}), None)
        .await;
    jane.expect_room_stamped("random", "Welcome to room 'random'!")
        .await;
    john.expect_room_stamped("random", "jane_doe has joined the room")
        .await;
    john.send_cmd("typing", json!({"room": "general"}), None)
        .await;
    jane.expect_text("#general TYPING:john_doe").await;
    say(&mut jane, Some("random"), "yo").await;
    jane.expect_room_stamped("random", "jane_doe: yo").await;
    john.expect_room_stamped("random", "jane_doe: yo").await;

    jane.send_cmd("leave_room", json!({"name": "random"}), None)
        .await;
    jane.expect_text("You have left the room \"random\"").await;
    jane.expect_text(LEAVE_SUCCESS).await;
    john.expect_room_stamped("random", "jane_doe has left the room")
        .await;
    // Back to one room: jane's lines lose the prefix again.
    say(&mut john, Some("general"), "back to one").await;
    john.expect_room_stamped("general", "john_doe: back to one")
        .await;
    jane.expect_stamped("john_doe: back to one").await;
}

// ---------------------------------------------------------------------------------------------------------------
// Sizes and malformed frames.

const SMALL_LIMIT: &[(&str, &str)] = &[("PALAVER_MAX_MESSAGE_BYTES", "1024")];

async fn text_oversize_messages_are_rejected_and_not_stored(engine: Engine) {
    let Some(chat) = Chat::start_with(engine, SMALL_LIMIT).await else {
        return;
    };
    let mut john = chat.text(&chat.john).await;
    let mut jane = chat.text(&chat.jane).await;
    create_text(&mut john, "general").await;
    join_text(&mut jane, json!({"name": "general"})).await;
    john.expect_stamped("jane_doe has joined the room").await;
    say(&mut john, None, "short").await;
    john.expect_stamped("john_doe: short").await;
    jane.expect_stamped("john_doe: short").await;

    // 1025 bytes, and 1026 bytes in 342 characters: the limit counts bytes.
    for content in ["x".repeat(1025), "€".repeat(342)] {
        say(&mut john, None, &content).await;
        john.expect_text("Message rejected: message too large (max 1024 bytes)")
            .await;
    }

    // The sentinel is john's next message: his messages are stored and delivered in the order he sent them, so a
    // rejected one that reached jane after all would come before it.
    let exactly = "y".repeat(1024);
    say(&mut john, None, &exactly).await;
    john.expect_stamped(&format!("john_doe: {exactly}")).await;
    jane.expect_stamped(&format!("john_doe: {exactly}")).await;

    john.send_cmd("get_messages", json!({"name": "general"}), None)
        .await;
    let page = john.expect_prefixed_json("MESSAGES:").await;
    assert_eq!(
        seqs(&page),
        [2, 1],
        "only the two accepted messages are stored"
    );
}

async fn json_oversize_messages_are_rejected_and_not_stored(engine: Engine) {
    let Some(chat) = Chat::start_with(engine, SMALL_LIMIT).await else {
        return;
    };
    let mut john = chat.json(&chat.john).await;
    create_json(&mut john, json!({"name": "general"}), "c1").await;
    post_json(&mut john, "general", "john_doe", "short", 1, "m1").await;

    john.send_cmd(
        "room_message",
        json!({"content": "x".repeat(1025)}),
        Some("big"),
    )
    .await;
    expect_error_json(
        &mut john,
        "big",
        "message_too_large",
        "message too large (max 1024 bytes)",
    )
    .await;

    john.send_cmd("get_messages", json!({"name": "general"}), Some("h1"))
        .await;
    let page = john.expect_json("history").await;
    assert_eq!(seqs(&page), [1], "{page}");
    // The next message gets the next seq: nothing was taken by the rejected one.
    post_json(&mut john, "general", "john_doe", "after", 2, "m2").await;
}

async fn a_message_at_the_limit_is_accepted_however_its_json_is_escaped(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.text(&chat.john).await;
    create_text(&mut john, "general").await;
    // 32768 × "é" is exactly the default 65536 bytes of UTF-8. Python's json.dumps (ensure_ascii, its default)
    // sends each as the six bytes `\u00e9`: valid JSON for a valid message, in a frame of about 192 KiB.
    let content = "é".repeat(32768);
    let frame = format!(
        r#"{{"type":"room_message","data":{{"content":"{}"}}}}"#,
        "\\u00e9".repeat(32768)
    );
    john.send_raw(&frame).await;
    john.expect_stamped(&format!("john_doe: {content}")).await;
}

async fn frames_far_over_the_limit_are_closed_with_1009(engine: Engine) {
    let Some(chat) = Chat::start_with(engine, SMALL_LIMIT).await else {
        return;
    };
    let mut john = chat.text(&chat.john).await;
    create_text(&mut john, "general").await;
    let huge =
        json!({"type": "room_message", "data": {"content": "x".repeat(1 << 20)}}).to_string();
    // The server may stop reading before the whole frame is sent; what matters is how it closes.
    let _ = john.try_send_raw(&huge).await;
    john.expect_close(1009).await;
}

async fn text_malformed_frames_are_answered_and_the_connection_stays(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.text(&chat.john).await;
    for frame in [
        "not json",
        r#"{"type":"bogus"}"#,
        r#"{"type":"join_room","data":{}}"#,
        r#"{"type":"room_message","data":{"room":"general"}}"#,
        "[]",
    ] {
        john.send_raw(frame).await;
        let answer = john.next_text().await;
        assert_eq!(answer, INVALID_FORMAT, "the answer to {frame:?}");
    }
    create_text(&mut john, "general").await;
    say(&mut john, None, "still works").await;
    john.expect_stamped("john_doe: still works").await;
}

async fn json_malformed_frames_are_answered_and_the_connection_stays(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.json(&chat.john).await;
    for frame in [
        "not json",
        r#"{"type":"bogus"}"#,
        r#"{"type":"join_room","data":{}}"#,
    ] {
        john.send_raw(frame).await;
        let error = john.expect_json("error").await;
        assert_eq!(
            error,
            json!({"type": "error", "code": "invalid_message", "message": "invalid message format"}),
            "the answer to {frame:?}"
        );
    }
    // A frame that names its id gets the id back, even when its data is wrong.
    john.send_raw(r#"{"type":"join_room","id":"x1","data":{"nam":"general"}}"#)
        .await;
    expect_error_json(&mut john, "x1", "invalid_message", "invalid message format").await;
    create_json(&mut john, json!({"name": "general"}), "c1").await;
    post_json(&mut john, "general", "john_doe", "still works", 1, "m1").await;
}

// ---------------------------------------------------------------------------------------------------------------
// Opening a connection: credentials, origin, sub-protocol, tickets, pings.

async fn connections_without_valid_credentials_are_refused(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let server = chat.server();
    let (status, body) = raw_upgrade(server, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body, MISSING_CREDENTIALS);
    assert_eq!(
        Connect::anonymous().refusal(server).await,
        (StatusCode::UNAUTHORIZED, MISSING_CREDENTIALS.to_owned())
    );
    for token in ["not-a-jwt", "a.b.c"] {
        Connect::bearer(token)
            .assert_refused(server, UNAUTHORIZED, "invalid_token", INVALID_TOKEN)
            .await;
    }
    Connect::anonymous()
        .cookie("palaver_session=not-a-jwt")
        .origin(&chat.own_origin())
        .assert_refused(server, UNAUTHORIZED, "invalid_token", INVALID_TOKEN)
        .await;

    // A well-signed token past its expiry.
    let (_, me) = chat.client.get("/api/me", Some(&chat.john)).await;
    let expired = sign_expired(me["id"].as_str().expect("an id"));
    Connect::bearer(&expired)
        .assert_refused(
            server,
            UNAUTHORIZED,
            "token_expired",
            "the token has expired",
        )
        .await;

    // A revoked token no longer opens a WebSocket.
    WsClient::text(server, &chat.jane).await.close().await;
    let (status, body) = chat
        .client
        .post_as(&chat.jane, "/api/logout", json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    Connect::bearer(&chat.jane)
        .assert_refused(
            server,
            UNAUTHORIZED,
            "token_revoked",
            "the token has been revoked",
        )
        .await;
}

async fn a_foreign_origin_is_refused(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let server = chat.server();
    Connect::bearer(&chat.john)
        .origin(FOREIGN_ORIGIN)
        .assert_refused(server, FORBIDDEN, "forbidden_origin", FORBIDDEN_ORIGIN)
        .await;
    let cookie = format!(
        "palaver_session={}",
        session_cookie(&chat, "jane_doe").await
    );
    Connect::anonymous()
        .cookie(&cookie)
        .origin(FOREIGN_ORIGIN)
        .assert_refused(server, FORBIDDEN, "forbidden_origin", FORBIDDEN_ORIGIN)
        .await;
    let (status, body) = raw_upgrade(
        server,
        &[
            ("authorization", &format!("Bearer {}", chat.john)),
            ("origin", FOREIGN_ORIGIN),
        ],
    )
    .await;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body).ok()),
        (
            StatusCode::FORBIDDEN,
            Some(json!({"error": FORBIDDEN_ORIGIN, "code": "forbidden_origin"}))
        )
    );

    // The server's own origin is fine, with a Bearer token or with the session cookie.
    let mut john = Connect::bearer(&chat.john)
        .origin(&chat.own_origin())
        .open(server)
        .await;
    create_text(&mut john, "general").await;
    let mut jane = Connect::anonymous()
        .cookie(&cookie)
        .origin(&chat.own_origin())
        .json()
        .open(server)
        .await;
    assert_eq!(jane.protocol(), Some("palaver.v1.json"));
    join_json(&mut jane, json!({"name": "general"}), "j1").await;
    john.expect_stamped("jane_doe has joined the room").await;
}

/// A token for `user_id` signed with the test server's key that expired a minute ago.
fn sign_expired(user_id: &str) -> String {
    let now = OffsetDateTime::now_utc().unix_timestamp();
    let claims = json!({
        "sub": user_id, "username": "john_doe", "jti": Uuid::new_v4().to_string(),
        "iat": now - 120, "nbf": now - 120, "exp": now - 60, "iss": "palaver", "aud": "palaver-clients",
    });
    let key = jsonwebtoken::EncodingKey::from_secret(TEST_JWT_SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::default(), &claims, &key).expect("test token signs")
}

async fn logging_out_closes_the_tokens_connections_with_1008(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.text(&chat.john).await;
    create_text(&mut john, "general").await;
    let (status, body) = chat
        .client
        .post_as(&chat.john, "/api/logout", json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    // PROTOCOL §2: 1008 policy (…, revoked token).
    john.expect_close(1008).await;
}

async fn shutting_down_closes_connections_with_1001(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.text(&chat.john).await;
    create_text(&mut john, "general").await;
    let ((), ()) = tokio::join!(chat.client.server.stop(), john.expect_close(1001));
}

/// Logs `username` in over HTTP and returns the value of the `palaver_session` cookie it sets.
async fn session_cookie(chat: &Chat, username: &str) -> String {
    let response = chat
        .client
        .http
        .post(chat.server().url("/api/login"))
        .json(&json!({"username": username, "password": PASSWORD}))
        .send()
        .await
        .expect("login sent");
    assert_eq!(response.status(), StatusCode::OK);
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .filter_map(|value| value.split(';').next())
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == "palaver_session")
        .map(|(_, value)| value.to_owned())
        .expect("a palaver_session cookie")
}

async fn the_sub_protocol_is_echoed_only_when_offered(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let server = chat.server();
    let json = Connect::bearer(&chat.john)
        .protocol("chat, palaver.v1.json")
        .open(server)
        .await;
    assert_eq!(json.protocol(), Some("palaver.v1.json"));
    let mut text = Connect::bearer(&chat.john).open(server).await;
    assert_eq!(text.protocol(), None);
    text.send_cmd("list_rooms", json!({}), None).await;
    text.expect_text("ROOMS_LIST:[]").await;
}

async fn a_ticket_opens_one_connection(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let server = chat.server();
    let (status, body) = chat.client.post("/api/ws-ticket", json!({})).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let (status, body) = chat
        .client
        .post_as(&chat.john, "/api/ws-ticket", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 30, "{body}");
    let ticket = body["ticket"].as_str().expect("a ticket").to_owned();
    assert!(!ticket.is_empty());

    let mut john = Connect::anonymous()
        .ticket(&ticket)
        .json()
        .open(server)
        .await;
    create_json(&mut john, json!({"name": "general"}), "c1").await;
    assert_eq!(
        members_json(&mut john, "general", "l1").await,
        pairs(&[("john_doe", true)]),
        "the ticket's connection is john's"
    );

    // A ticket is single use; one never issued, or altered by one character (forged), opens nothing.
    let (_, body) = chat
        .client
        .post_as(&chat.john, "/api/ws-ticket", json!({}))
        .await;
    let fresh = body["ticket"].as_str().expect("a ticket").to_owned();
    let (payload, signature) = fresh.split_once('.').expect("payload.signature");
    let flipped = if signature.starts_with('A') { 'B' } else { 'A' };
    let forged = format!("{payload}.{flipped}{}", &signature[1..]);
    for refused in [ticket.as_str(), "no-such-ticket", &forged] {
        Connect::anonymous()
            .ticket(refused)
            .assert_refused(server, UNAUTHORIZED, "invalid_ticket", INVALID_TICKET)
            .await;
    }
    // The unused ticket of a token logged out since is refused as the token would be.
    let (status, _) = chat
        .client
        .post_as(&chat.john, "/api/logout", json!({}))
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    Connect::anonymous()
        .ticket(&fresh)
        .assert_refused(
            server,
            UNAUTHORIZED,
            "token_revoked",
            "the token has been revoked",
        )
        .await;
}

async fn the_server_pings_and_keeps_an_answering_client(engine: Engine) {
    let settings = [
        ("PALAVER_PING_INTERVAL_SECS", "1"),
        ("PALAVER_PONG_TIMEOUT_SECS", "2"),
    ];
    let Some(chat) = Chat::start_with(engine, &settings).await else {
        return;
    };
    let mut john = chat.text(&chat.john).await;
    let wait = std::time::Duration::from_secs(3);
    // Reading answers each ping with a pong; three pings span more than the pong timeout.
    for _ in 0..3 {
        john.expect_ping(wait).await;
    }
    john.send_cmd("list_rooms", json!({}), None).await;
    john.expect_text("ROOMS_LIST:[]").await;
}

// ---------------------------------------------------------------------------------------------------------------
// Resume.

async fn json_join_with_after_seq_replays_what_was_missed(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.json(&chat.john).await;
    let mut jane = chat.json(&chat.jane).await;
    create_json(&mut john, json!({"name": "general"}), "c1").await;
    join_json(&mut jane, json!({"name": "general"}), "j1").await;
    john.expect_json("joined").await;
    for seq in 1..=2 {
        let content = format!("message {seq}");
        post_json(&mut john, "general", "john_doe", &content, seq, "m").await;
        expect_message_json(&mut jane, "general", seq, "john_doe", &content).await;
    }

    jane.drop_without_close();
    john.expect_json("left").await;
    for seq in 3..=5 {
        post_json(
            &mut john,
            "general",
            "john_doe",
            &format!("message {seq}"),
            seq,
            "m",
        )
        .await;
    }

    let mut jane = chat.json(&chat.jane).await;
    let welcome = join_json(&mut jane, json!({"name": "general", "after_seq": 2}), "j2").await;
    assert_eq!(welcome["last_seq"], 5, "{welcome}");
    for seq in 3..=5 {
        expect_message_json(
            &mut jane,
            "general",
            seq,
            "john_doe",
            &format!("message {seq}"),
        )
        .await;
    }
    john.expect_json("joined").await;

    // Then live messages, with no gap and no duplicate.
    post_json(&mut john, "general", "john_doe", "live", 6, "m").await;
    expect_message_json(&mut jane, "general", 6, "john_doe", "live").await;

    // A replay in the text protocol shows the missed lines, oldest first.
    let mut reader = chat.text(&chat.jane).await;
    join_text(&mut reader, json!({"name": "general", "after_seq": 4})).await;
    for content in ["message 5", "live"] {
        let line = reader.next_text().await;
        assert_stamped(&line, "", &format!("john_doe: {content}"));
    }
    reader.send_cmd("list_rooms", json!({}), None).await;
    let next = reader.next_frame().await;
    assert!(
        matches!(&next, Frame::Text(text) if text.starts_with("ROOMS_LIST:[")),
        "{next:?}"
    );
}

/// Room names are unique case-insensitively: the second creator gets `Error: room already exists` (text) or the
/// `conflict` code (JSON), and nothing is created.
async fn a_taken_room_name_is_a_conflict(engine: Engine) {
    let Some(chat) = Chat::start(engine).await else {
        return;
    };
    let mut john = chat.text(&chat.john).await;
    create_text(&mut john, "general").await;
    let mut jane = chat.text(&chat.jane).await;
    jane.send_cmd("create_room", json!({"name": "GENERAL"}), None)
        .await;
    jane.expect_text("Error: room already exists").await;
    let mut json_jane = chat.json(&chat.jane).await;
    json_jane
        .send_cmd("create_room", json!({"name": "General"}), Some("c1"))
        .await;
    let refused = json_jane.expect_json("error").await;
    assert_eq!(
        refused,
        json!({"type": "error", "code": "conflict", "message": "room already exists", "id": "c1"})
    );
    jane.send_cmd("list_rooms", json!({}), None).await;
    let list: Value =
        serde_json::from_str(jane.next_text().await.strip_prefix("ROOMS_LIST:").unwrap()).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(1));
}

/// The per-user limit counts commands across all of a user's connections; past it each command is refused with the
/// protocol's text (or `rate_limited` with the command's id), and a user who keeps going is closed with 1008.
async fn flooding_is_rate_limited_then_disconnected(engine: Engine) {
    let limits = [
        ("PALAVER_WS_MESSAGE_LIMIT", "4"),
        ("PALAVER_WS_MESSAGE_WINDOW_MS", "60000"),
        ("PALAVER_WS_FLOOD_REFUSALS", "3"),
    ];
    let Some(chat) = Chat::start_with(engine, &limits).await else {
        return;
    };
    let mut text = chat.text(&chat.jane).await;
    let mut json = chat.json(&chat.jane).await;
    for _ in 0..2 {
        text.send_cmd("list_rooms", json!({}), None).await;
        assert!(text.next_text().await.starts_with("ROOMS_LIST:"));
        json.send_cmd("list_rooms", json!({}), None).await;
        json.expect_json("rooms").await;
    }
    // Four commands used the limit, two per connection: the fifth is refused whichever connection sends it.
    text.send_cmd("list_rooms", json!({}), None).await;
    text.expect_text("Error: rate limit exceeded").await;
    json.send_cmd("list_rooms", json!({}), Some("r1")).await;
    expect_error_json(&mut json, "r1", "rate_limited", "rate limit exceeded").await;
    // Another user is not affected.
    let mut john = chat.text(&chat.john).await;
    john.send_cmd("list_rooms", json!({}), None).await;
    assert!(john.next_text().await.starts_with("ROOMS_LIST:"));
    // Third refusal is still answered; the fourth means the user keeps flooding.
    text.send_cmd("list_rooms", json!({}), None).await;
    text.expect_text("Error: rate limit exceeded").await;
    text.send_cmd("list_rooms", json!({}), None).await;
    text.expect_close(1008).await;
}

palaver_integration_tests::on_every_engine!(
    text_two_users_chat_in_a_public_room,
    json_two_users_chat_in_a_public_room,
    text_private_room_needs_its_password,
    json_private_room_needs_its_password,
    text_unknown_rooms_do_not_exist,
    json_unknown_rooms_do_not_exist,
    text_leaving_a_room,
    json_leaving_a_room,
    text_deleting_a_room,
    json_deleting_a_room,
    text_room_list,
    json_room_list,
    text_history,
    json_history,
    text_members_and_presence,
    json_members_and_presence,
    text_typing_reaches_the_others_only,
    json_typing_reaches_the_others_only,
    text_lines_carry_the_room_when_in_several_rooms,
    text_oversize_messages_are_rejected_and_not_stored,
    json_oversize_messages_are_rejected_and_not_stored,
    a_message_at_the_limit_is_accepted_however_its_json_is_escaped,
    frames_far_over_the_limit_are_closed_with_1009,
    text_malformed_frames_are_answered_and_the_connection_stays,
    json_malformed_frames_are_answered_and_the_connection_stays,
    connections_without_valid_credentials_are_refused,
    logging_out_closes_the_tokens_connections_with_1008,
    shutting_down_closes_connections_with_1001,
    a_foreign_origin_is_refused,
    the_sub_protocol_is_echoed_only_when_offered,
    a_ticket_opens_one_connection,
    the_server_pings_and_keeps_an_answering_client,
    json_join_with_after_seq_replays_what_was_missed,
    flooding_is_rate_limited_then_disconnected,
    a_taken_room_name_is_a_conflict,
);
