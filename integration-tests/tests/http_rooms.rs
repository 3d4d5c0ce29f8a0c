//! The room routes of PROTOCOL §1 against a real server, on SQLite and on PostgreSQL.

use palaver_integration_tests::Engine;
use palaver_integration_tests::api::{Client, assert_error};
use reqwest::StatusCode;
use serde_json::json;

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
    assert_eq!(members, json!([{"username": "john_doe", "online": false}]));
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

async fn history_is_paged_and_guarded(engine: Engine) {
    let Some(client) = Client::start(engine).await else {
        return;
    };
    let john = client.user("john_doe").await;
    let jane = client.user("jane_doe").await;
    client
        .post_as(&john, "/api/rooms", json!({"name": "lobby"}))
        .await;
    client
        .post_as(
            &john,
            "/api/rooms",
            json!({"name": "vault", "private": true, "password": "open sesame"}),
        )
        .await;

    let (status, page) = client
        .get("/api/rooms/lobby/messages?limit=10", Some(&jane))
        .await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(
        page,
        json!({"messages": [], "next_before": null, "has_more": false})
    );

    let (status, body) = client.get("/api/rooms/vault/messages", Some(&jane)).await;
    assert_error(status, &body, StatusCode::FORBIDDEN, "forbidden");
    let with_password = client
        .http
        .get(client.server.url("/api/rooms/vault/messages"))
        .bearer_auth(&jane)
        .header("x-room-password", "open sesame")
        .send()
        .await
        .unwrap();
    assert_eq!(with_password.status(), StatusCode::OK);

    let (status, body) = client.get("/api/rooms/nowhere/messages", Some(&jane)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "room_not_found");
    assert_eq!(body["error"], "room does not exist");
    let (status, body) = client
        .get("/api/rooms/lobby/messages?since=yesterday", Some(&jane))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = client
        .get("/api/rooms/lobby/messages?bogus=1", Some(&jane))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

palaver_integration_tests::on_every_engine!(
    rooms_are_created_listed_and_deleted_by_their_owner,
    history_is_paged_and_guarded
);
