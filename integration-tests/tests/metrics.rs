//! `GET /metrics` is scraped like Prometheus would, and its counters move with what users do.

use palaver_integration_tests::api::Client;
use palaver_integration_tests::ws::WsClient;
use palaver_integration_tests::{Engine, TestServer};
use reqwest::StatusCode;
use serde_json::json;

/// The value of an unlabelled sample `name` in a scrape.
fn sample(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no sample {name} in:\n{scrape}"))
}

async fn scrape(client: &Client) -> String {
    let response = client
        .http
        .get(client.server.url("/metrics"))
        .send()
        .await
        .expect("scrape sent");
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    response.text().await.expect("a scrape")
}

async fn counters_move_with_chat(engine: Engine) {
    let Some(client) = Client::start(engine).await else {
        return;
    };
    let before = scrape(&client).await;
    assert_eq!(sample(&before, "palaver_handshakes_total"), 0.0);
    assert_eq!(sample(&before, "palaver_messages_stored_total"), 0.0);

    let john = client.user("john_doe").await;
    let mut ws = WsClient::json(&client.server, &john).await;
    ws.send_cmd("create_room", json!({"name": "general"}), None)
        .await;
    ws.expect_json("room_created").await;
    ws.expect_json("welcome").await;
    for n in 0..3 {
        ws.send_cmd(
            "room_message",
            json!({"content": format!("hello {n}")}),
            Some(&format!("m{n}")),
        )
        .await;
        // The sender's own copy is delivered when it is stored, then the ack.
        ws.expect_json("message").await;
        ws.expect_json("ack").await;
    }

    let after = scrape(&client).await;
    assert_eq!(sample(&after, "palaver_handshakes_total"), 1.0);
    assert_eq!(sample(&after, "palaver_connections_open"), 1.0);
    assert_eq!(sample(&after, "palaver_messages_stored_total"), 3.0);
    assert_eq!(sample(&after, "palaver_frames_in_total"), 4.0);
    assert!(sample(&after, "palaver_deliveries_total") >= 3.0, "{after}");
    assert!(
        sample(&after, "palaver_group_commit_batch_size_count") >= 1.0,
        "{after}"
    );
    assert!(
        sample(&after, "palaver_fanout_seconds_count") >= 3.0,
        "{after}"
    );
    assert!(
        sample(&after, "palaver_group_commit_seconds_count") >= 1.0,
        "{after}"
    );
    // Replies and events queued: welcome, room_created, then per post its copy and its ack.
    assert!(sample(&after, "palaver_frames_out_total") >= 8.0, "{after}");
    // A gauge read at scrape time: nothing holds a connection between requests.
    let in_use = sample(&after, "palaver_db_pool_in_use");
    assert!((0.0..=4.0).contains(&in_use), "{after}");
    ws.close().await;
    // The gauge of open sockets follows the close (the session ends a moment after the close handshake).
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while sample(&scrape(&client).await, "palaver_connections_open") != 0.0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "palaver_connections_open never went back to 0"
        );
        tokio::task::yield_now().await;
    }
}

async fn refusals_are_counted_per_limit(engine: Engine) {
    let Some(client) = Client::start_with(engine, &[("PALAVER_WS_MESSAGE_LIMIT", "3")]).await
    else {
        return;
    };
    let john = client.user("john_doe").await;
    let mut ws = WsClient::json(&client.server, &john).await;
    for n in 0..6 {
        ws.send_cmd("list_rooms", json!({}), Some(&format!("l{n}")))
            .await;
    }
    let mut refused = 0;
    for n in 0..6 {
        let answer = ws.answer_to(&format!("l{n}")).await;
        if answer["code"] == "rate_limited" {
            refused += 1;
        }
    }
    assert!(refused >= 1, "the limit of 3 refused some of 6");
    let scrape = scrape(&client).await;
    assert_eq!(
        sample(&scrape, "palaver_rate_limited_total{limit=\"ws_messages\"}"),
        f64::from(refused),
        "every refusal counted:\n{scrape}"
    );
    ws.close().await;
}

async fn a_metrics_token_guards_the_scrape(engine: Engine) {
    let Some(server) =
        TestServer::start_with(engine, &[("PALAVER_METRICS_TOKEN", "scrape-secret")]).await
    else {
        return;
    };
    let http = reqwest::Client::new();
    let refused = http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let wrong = http
        .get(server.url("/metrics"))
        .bearer_auth("guess")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let allowed = http
        .get(server.url("/metrics"))
        .bearer_auth("scrape-secret")
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status(), StatusCode::OK);
    assert!(
        allowed
            .text()
            .await
            .unwrap()
            .contains("palaver_handshakes_total 0")
    );
}

palaver_integration_tests::on_every_engine!(
    counters_move_with_chat,
    a_metrics_token_guards_the_scrape,
    refusals_are_counted_per_limit,
);
