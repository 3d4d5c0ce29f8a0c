//! The room routes of PROTOCOL §1 against a real server, on SQLite and on PostgreSQL.

use std::time::Duration;

use palaver_integration_tests::api::{Client, assert_error, assert_exact_error};
use palaver_integration_tests::proxy::ProxiedPostgres;
use palaver_integration_tests::ws::WsClient;
use palaver_integration_tests::{Engine, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn rooms_are_created_listed_and_deleted_by_their_owner(engine: Engine) {
    let Some(client) = Client::start(engine).await else {
        return;
    };
    let john = client.user("john_doe").await;
    let jane = client.user("jane_doe").await;

    let (status, room) = client
        .post_as(&john, "/api/rooms", json!({"name": "general chat"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{room}");
    assert_eq!(
        (room["name"].as_str(), room["private"].as_bool()),
        (Some("general chat"), Some(false))
    );
    assert!(room.get("password_hash").is_none(), "{room}");

    let (status, body) = client
        .post_as(&jane, "/api/rooms", json!({"name": "GENERAL CHAT"}))
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    let (status, body) = client
        .post_as(&jane, "/api/rooms", json!({"name": "x"}))
        .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_room_name");
    let (status, body) = client
        .post_as(
            &jane,
            "/api/rooms",
            json!({"name": "secret", "private": true}),
        )
        .await;
    assert_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_room_password",
    );
    let (status, body) = client
        .post_as(
            &jane,
            "/api/rooms",
            json!({"name": "secret", "private": true, "password": "open sesame"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (status, list) = client.get("/api/rooms", Some(&john)).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let names: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(names, ["general chat", "secret"]);
    assert!(list.to_string().find("open sesame").is_none());

    let (status, members) = client
        .get("/api/rooms/general%20chat/members", Some(&john))
        .await;
    assert_eq!(status, StatusCode::OK, "{members}");
    assert_eq!(
        members,
        json!([{"username": "john_doe", "online": false, "last_read_seq": 0, "role": "owner"}])
    );
    let (status, body) = client
        .get("/api/rooms/general%20chat/members", Some(&jane))
        .await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");

    let (status, body) = client.delete_as(&jane, "/api/rooms/general%20chat").await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let (status, _) = client.delete_as(&john, "/api/rooms/general%20chat").await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = client.delete_as(&john, "/api/rooms/general%20chat").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "room_not_found");
    let (status, body) = client.get("/api/rooms", None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
}

/// How many messages the history test posts: enough for three pages of [`PAGE`].
const POSTED: i64 = 12;
/// The page size the history test asks for.
const PAGE: i64 = 5;

/// Posts `count` messages to `room` as the user of `token` over a JSON WebSocket, `message <n>` for n = 1..=count,
/// the odd ones with `client_msg_id` `<room>-<n>` (a user's keys are unique across rooms); each is awaited (its event, then its ack with seq n).
async fn post_messages(client: &Client, token: &str, room: &str, count: i64) {
    let mut ws = WsClient::json(&client.server, token).await;
    ws.send_cmd("join_room", json!({"name": room}), Some("j"))
        .await;
    let welcome = ws.expect_json("welcome").await;
    assert_eq!(welcome["last_seq"], 0, "{welcome}");
    for n in 1..=count {
        let id = format!("m{n}");
        let mut data = json!({"room": room, "content": format!("message {n}")});
        if n % 2 == 1 {
            data["client_msg_id"] = json!(format!("{room}-{n}"));
        }
        ws.send_cmd("room_message", data, Some(&id)).await;
        let message = ws.expect_json("message").await;
        assert_eq!(message["seq"], n, "{message}");
        let ack = ws.expect_json("ack").await;
        assert_eq!(
            ack,
            json!({"type": "ack", "room": room, "seq": n, "id": id})
        );
    }
    ws.close().await;
}

/// Asserts that `page` holds exactly the messages with `seqs` (newest first, as [`post_messages`] wrote them to
/// `room`, each an item of exactly the fields PROTOCOL §1.4 names), and its `next_before` and `has_more`.
fn assert_page(room: &str, page: &Value, seqs: &[i64], next_before: Value, has_more: bool) {
    let items = page["messages"]
        .as_array()
        .unwrap_or_else(|| panic!("no messages: {page}"));
    let got: Vec<i64> = items
        .iter()
        .map(|item| item["seq"].as_i64().unwrap_or(-1))
        .collect();
    assert_eq!(got, seqs, "{page}");
    for item in items {
        let seq = item["seq"].as_i64().unwrap_or_default();
        let mut fields: Vec<&str> = item
            .as_object()
            .expect("an item object")
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        let mut expected = vec!["content", "id", "seq", "timestamp", "username"];
        if seq % 2 == 1 {
            expected.push("client_msg_id");
            assert_eq!(item["client_msg_id"], format!("{room}-{seq}"), "{item}");
        }
        expected.sort_unstable();
        assert_eq!(fields, expected, "{item}");
        assert_eq!(item["content"], format!("message {seq}"), "{item}");
        assert_eq!(item["username"], "john_doe", "{item}");
        assert!(
            uuid::Uuid::parse_str(item["id"].as_str().unwrap_or_default()).is_ok(),
            "{item}"
        );
        let timestamp = item["timestamp"].as_str().unwrap_or_default();
        assert!(
            time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{item}"
        );
    }
    assert_eq!(
        (&page["next_before"], &page["has_more"]),
        (&next_before, &json!(has_more)),
        "{page}"
    );
    let keys: Vec<&String> = page.as_object().expect("a page object").keys().collect();
    assert_eq!(
        keys.len(),
        4,
        "only messages, next_before, has_more and as_of: {page}"
    );
}

async fn history_is_paged_and_guarded(engine: Engine) {
    let Some(client) = Client::start(engine).await else {
        return;
    };
    let john = client.user("john_doe").await;
    let jane = client.user("jane_doe").await;
    let (status, body) = client
        .post_as(&john, "/api/rooms", json!({"name": "lobby"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = client
        .post_as(
            &john,
            "/api/rooms",
            json!({"name": "vault", "private": true, "password": "open sesame"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    let (status, page) = client
        .get("/api/rooms/lobby/messages?limit=10", Some(&jane))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        page,
        json!({"messages": [], "next_before": null, "has_more": false, "as_of": 0})
    );

    post_messages(&client, &john, "lobby", POSTED).await;
    post_messages(&client, &john, "vault", 1).await;

    // Newest first, PAGE at a time, each page's next_before the before_seq of the next: 12..8, 7..3, 2..1.
    let mut before: Option<i64> = None;
    let mut pages = Vec::new();
    loop {
        let path = match before {
            None => format!("/api/rooms/lobby/messages?limit={PAGE}"),
            Some(seq) => format!("/api/rooms/lobby/messages?limit={PAGE}&before_seq={seq}"),
        };
        let (status, page) = client.get(&path, Some(&jane)).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        let more = page["has_more"] == true;
        before = page["next_before"].as_i64();
        pages.push(page);
        if !more {
            break;
        }
        assert!(pages.len() < 10, "paging does not end: {pages:?}");
    }
    assert_eq!(pages.len(), 3, "{pages:?}");
    assert_page("lobby", &pages[0], &[12, 11, 10, 9, 8], json!(8), true);
    assert_page("lobby", &pages[1], &[7, 6, 5, 4, 3], json!(3), true);
    assert_page("lobby", &pages[2], &[2, 1], json!(1), false);
    // Before the first message there is nothing; the default limit (50) takes the whole room at once.
    let (status, page) = client
        .get("/api/rooms/lobby/messages?before_seq=1", Some(&jane))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_page("lobby", &page, &[], Value::Null, false);
    let all: Vec<i64> = (1..=POSTED).rev().collect();
    let (status, page) = client.get("/api/rooms/lobby/messages", Some(&jane)).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_page("lobby", &page, &all, json!(1), false);
    // A page that ends exactly at the oldest message has no more after it.
    let (status, page) = client
        .get(
            "/api/rooms/lobby/messages?limit=2&before_seq=3",
            Some(&jane),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_page("lobby", &page, &[2, 1], json!(1), false);
    // after_seq bounds the page from below; has_more says whether older messages of the same query remain.
    let (status, page) = client
        .get("/api/rooms/lobby/messages?limit=3&after_seq=5", Some(&jane))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_page("lobby", &page, &[12, 11, 10], json!(10), true);
    let (status, page) = client
        .get(
            "/api/rooms/lobby/messages?limit=3&after_seq=5&before_seq=9",
            Some(&jane),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_page("lobby", &page, &[8, 7, 6], json!(6), false);
    // limit is clamped, never refused: 0 and negatives give one message.
    for limit in ["0", "-3"] {
        let (status, page) = client
            .get(
                &format!("/api/rooms/lobby/messages?limit={limit}"),
                Some(&jane),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{page}");
        assert_page("lobby", &page, &[12], json!(12), true);
    }

    // A private room: a non-member needs its password, and a wrong one is refused.
    let (status, body) = client.get("/api/rooms/vault/messages", Some(&jane)).await;
    assert_exact_error(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "forbidden",
        "you are not in that room",
    );
    let (status, body) = client
        .get_with(
            "/api/rooms/vault/messages",
            &jane,
            &[("x-room-password", "open sesame?")],
        )
        .await;
    assert_exact_error(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "bad_room_password",
        "incorrect room password",
    );
    let (status, page) = client
        .get_with(
            "/api/rooms/vault/messages",
            &jane,
            &[("x-room-password", "open sesame")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_page("vault", &page, &[1], json!(1), false);
    // Reading with the password did not make jane a member.
    assert_eq!(client.member_names(&john, "vault").await, ["john_doe"]);

    let (status, body) = client.get("/api/rooms/nowhere/messages", Some(&jane)).await;
    assert_exact_error(
        status,
        &body,
        StatusCode::NOT_FOUND,
        "room_not_found",
        "room does not exist",
    );
    let (status, body) = client
        .get("/api/rooms/lobby/messages?since=yesterday", Some(&jane))
        .await;
    assert_exact_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "since must be an RFC 3339 time, like 2026-11-25T15:31:02Z",
    );
    let (status, body) = client
        .get("/api/rooms/lobby/messages?bogus=1", Some(&jane))
        .await;
    assert_eq!(
        (status, &body["code"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_request")),
        "{body}"
    );
    let text = body["error"].as_str().unwrap_or_default();
    assert!(
        text.starts_with("query string is not valid: unknown field `bogus`, expected one of "),
        "{body}"
    );
    let (status, body) = client
        .get("/api/rooms/lobby/messages?before_seq=three", Some(&jane))
        .await;
    assert_exact_error(
        status,
        &body,
        StatusCode::BAD_REQUEST,
        "invalid_request",
        "query string is not valid: invalid digit found in string",
    );
    let (status, body) = client.get("/api/rooms/lobby/messages", None).await;
    assert_exact_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Authorization header with Bearer token required",
    );
}

/// The answer of an API route while the database does not answer (PROTOCOL §1.1, §6.4).
const UNAVAILABLE: &str = "the service is temporarily unavailable, please retry";

/// How long the routes may take to answer again once the database is back.
const RECOVERY: Duration = Duration::from_secs(10);

/// With the database cut off, every room route and `/readyz` answer 503 (the API ones `unavailable`) while
/// `/healthz` still answers; once it is back, they all answer as before, and nothing tried while it was away was
/// stored.
async fn room_routes_answer_503_while_the_database_is_down() {
    let Some(database) = ProxiedPostgres::start().await else {
        return;
    };
    let server =
        TestServer::start_on_postgres(database.url(), &[("PALAVER_DB_TIMEOUT_MS", "1000")]).await;
    let client = Client {
        server,
        http: reqwest::Client::new(),
    };
    let john = client.user("john_doe").await;
    let (status, lobby) = client
        .post_as(&john, "/api/rooms", json!({"name": "lobby"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{lobby}");
    post_messages(&client, &john, "lobby", 1).await;

    database.proxy.cut();
    let reads = [
        "/api/rooms",
        "/api/rooms/lobby/messages",
        "/api/rooms/lobby/members",
    ];
    for path in reads {
        let (status, body) = client.get(path, Some(&john)).await;
        assert_exact_error(
            status,
            &body,
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            UNAVAILABLE,
        );
    }
    let (status, body) = client
        .post_as(&john, "/api/rooms", json!({"name": "later"}))
        .await;
    assert_exact_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        UNAVAILABLE,
    );
    let (status, body) = client.get("/readyz", None).await;
    assert_eq!(
        (status, body),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"status": "unavailable", "database": "unavailable"})
        )
    );
    let (status, body) = client.get("/healthz", None).await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));

    database.proxy.heal();
    let deadline = tokio::time::Instant::now() + RECOVERY;
    let (status, body) =
        until_answered(deadline, "GET /readyz", || client.get("/readyz", None)).await;
    assert_eq!(
        (status, body),
        (StatusCode::OK, json!({"status": "ready", "database": "ok"}))
    );
    let (status, list) = until_answered(deadline, "GET /api/rooms", || {
        client.get("/api/rooms", Some(&john))
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let rooms: Vec<(&Value, &Value)> = list
        .as_array()
        .unwrap_or_else(|| panic!("{list}"))
        .iter()
        .map(|room| (&room["name"], &room["id"]))
        .collect();
    assert_eq!(
        rooms,
        [(&json!("lobby"), &lobby["id"])],
        "the refused creation stored nothing"
    );
    let (status, page) = until_answered(deadline, "GET messages", || {
        client.get("/api/rooms/lobby/messages", Some(&john))
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_page("lobby", &page, &[1], json!(1), false);
    let (status, members) = until_answered(deadline, "GET members", || {
        client.get("/api/rooms/lobby/members", Some(&john))
    })
    .await;
    assert_eq!(status, StatusCode::OK, "{members}");
    let names: Vec<&Value> = members
        .as_array()
        .unwrap_or_else(|| panic!("{members}"))
        .iter()
        .map(|member| &member["username"])
        .collect();
    assert_eq!(names, [&json!("john_doe")], "{members}");
    let (status, later) = until_answered(deadline, "POST /api/rooms", || {
        client.post_as(&john, "/api/rooms", json!({"name": "later"}))
    })
    .await;
    assert_eq!(status, StatusCode::CREATED, "{later}");
    assert_eq!(
        (&later["name"], &later["member"]),
        (&json!("later"), &json!(true)),
        "{later}"
    );
    client.server.stop().await;
    drop(database);
}

/// Repeats `request` until it is answered with anything but `503` and returns that answer; fails the test when the
/// deadline passes first. Between tries it waits a little: there is no event that says the pool has reconnected.
async fn until_answered<F, Fut>(
    deadline: tokio::time::Instant,
    what: &str,
    mut request: F,
) -> (StatusCode, Value)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = (StatusCode, Value)>,
{
    let mut poll = tokio::time::interval(Duration::from_millis(100));
    loop {
        poll.tick().await;
        let (status, body) = request().await;
        if status != StatusCode::SERVICE_UNAVAILABLE {
            return (status, body);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} still answers {status} {body} {RECOVERY:?} after the database came back"
        );
    }
}

palaver_integration_tests::on_every_engine!(
    rooms_are_created_listed_and_deleted_by_their_owner,
    history_is_paged_and_guarded,
    ; postgres only:
    room_routes_answer_503_while_the_database_is_down,
);
