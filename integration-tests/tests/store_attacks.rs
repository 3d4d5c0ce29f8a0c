//! Attacks on what the server stores, and what stops them: SQL in every text field, and a user hoarding rooms. Each
//! test asserts the refusal and that nothing else was stored or changed, on every engine.

use palaver_integration_tests::Engine;
use palaver_integration_tests::api::Client;
use palaver_integration_tests::ws::WsClient;
use reqwest::StatusCode;
use serde_json::json;

// ---------------------------------------------------------------------------------------------------------------
// Room hoarding.

async fn ten_thousand_room_creations_stop_at_the_quota(engine: Engine) {
    let Some(client) = Client::start_with(engine, &[("PALAVER_WS_MESSAGE_LIMIT", "1000000")]).await
    else {
        return;
    };
    let john = client.user("john_doe").await;
    let mut ws = WsClient::json(&client.server, &john).await;
    let (mut created, mut refused) = (0, 0);
    // In chunks, reading the answers, so the connection's send queue never overflows.
    for chunk in 0..20 {
        for n in 0..500 {
            let name = format!("room {}", chunk * 500 + n);
            ws.send_cmd("create_room", json!({"name": name}), Some(&name))
                .await;
        }
        let mut answered = 0;
        while answered < 500 {
            let frame = ws.next_json().await;
            match frame["type"].as_str() {
                Some("room_created") => {
                    created += 1;
                    answered += 1;
                }
                Some("error") => {
                    assert_eq!(frame["code"], "forbidden", "{frame}");
                    refused += 1;
                    answered += 1;
                }
                _ => {}
            }
        }
    }
    assert_eq!((created, refused), (50, 9950));
    let (status, rooms) = client.get("/api/rooms", Some(&john)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rooms.as_array().map(Vec::len), Some(50));
    let (status, body) = client
        .post_as(&john, "/api/rooms", json!({"name": "one more"}))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
}

// ---------------------------------------------------------------------------------------------------------------
// SQL injection.

const INJECTIONS: [&str; 6] = [
    "'; DROP TABLE users; --",
    "\" OR \"1\"=\"1",
    "' OR '1'='1' --",
    "%' OR 1=1; --",
    "x'); DELETE FROM messages; --",
    "\\'; SELECT pg_sleep(10); --",
];

async fn sql_in_every_text_field_is_only_text(engine: Engine) {
    let limits = [
        ("PALAVER_LOGIN_FAILURE_LIMIT", "1000"),
        ("PALAVER_LOGIN_IP_FAILURE_LIMIT", "1000"),
    ];
    let Some(client) = Client::start_with(engine, &limits).await else {
        return;
    };
    let john = client.user("john_doe").await;
    for injection in INJECTIONS {
        // Accounts: refused by validation or simply no match; never an error from the database.
        let (status, body) = client
            .post(
                "/api/register",
                json!({"username": injection, "email": injection, "password": injection}),
            )
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        let (status, body) = client
            .post(
                "/api/login",
                json!({"username": injection, "password": injection}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let (status, body) = client
            .post(
                "/api/login",
                json!({"username": "john_doe", "password": injection}),
            )
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let (status, body) = client
            .post_as(&john, "/api/rooms", json!({"name": injection}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }
    // A private room whose password is an injection string works with exactly that password.
    let (status, body) = client
        .post_as(
            &john,
            "/api/rooms",
            json!({"name": "vault", "private": true, "password": INJECTIONS[2]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let mut ws = WsClient::json(&client.server, &john).await;
    ws.send_cmd("join_room", json!({"name": "vault"}), Some("j"))
        .await;
    assert_eq!(ws.answer_to("j").await["type"], "welcome");
    // Messages are stored verbatim and read back verbatim.
    for (n, injection) in INJECTIONS.iter().enumerate() {
        let id = format!("m{n}");
        ws.send_cmd(
            "room_message",
            json!({"room": "vault", "content": injection}),
            Some(&id),
        )
        .await;
        assert_eq!(ws.answer_to(&id).await["type"], "ack");
    }
    let (status, page) = client
        .get("/api/rooms/vault/messages?limit=200", Some(&john))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let mut contents: Vec<&str> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|message| message["content"].as_str())
        .collect();
    contents.reverse();
    assert_eq!(contents, INJECTIONS);
    // Filters are values, not SQL: each finds only itself.
    for injection in INJECTIONS {
        ws.send_cmd(
            "get_messages",
            json!({"name": "vault", "contains": injection, "sender": injection}),
            Some("f"),
        )
        .await;
        let page = ws.answer_to("f").await;
        assert_eq!(page["messages"].as_array().map(Vec::len), Some(0), "{page}");
        ws.send_cmd(
            "get_messages",
            json!({"name": "vault", "contains": injection}),
            Some("g"),
        )
        .await;
        let page = ws.answer_to("g").await;
        let found: Vec<&str> = page["messages"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|message| message["content"].as_str())
            .collect();
        assert_eq!(found, [injection], "{page}");
    }
    // Everything is still there.
    let (status, me) = client.get("/api/me", Some(&john)).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(client.member_names(&john, "vault").await, ["john_doe"]);
}

palaver_integration_tests::on_every_engine!(
    ten_thousand_room_creations_stop_at_the_quota,
    sql_in_every_text_field_is_only_text,
);
