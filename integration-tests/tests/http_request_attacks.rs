//! Attacks with HTTP requests themselves, and what stops them: a request head dribbled byte by byte, a one-megabyte
//! `Authorization` header, request floods from one address (with a spoofed `X-Forwarded-For`, and behind a trusted
//! proxy), and registration floods. Each test asserts the refusal and that nothing was stored or changed.

use std::time::{Duration, Instant};

use palaver_integration_tests::api::{Client, PASSWORD, assert_error};
use palaver_integration_tests::process::ServerProcess;
use palaver_integration_tests::{Engine, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PATIENCE: Duration = Duration::from_secs(5);

/// The server still serves: `/healthz` answers 200.
async fn still_healthy(server: &TestServer) {
    let response = reqwest::get(server.url("/healthz")).await.expect("healthz");
    assert_eq!(response.status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------------------------
// Request heads.

async fn a_handshake_dribbled_byte_by_byte_is_cut_off(engine: Engine) {
    let Some(client) = Client::start_with(engine, &[("PALAVER_HEADER_TIMEOUT_MS", "500")]).await
    else {
        return;
    };
    let request = b"GET /ws HTTP/1.1\r\nHost: palaver\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\
                    Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                    X-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    let mut tcp = TcpStream::connect(client.server.addr()).await.unwrap();
    let started = Instant::now();
    let mut cut_off = false;
    for byte in request {
        if tcp.write_all(&[*byte]).await.is_err() {
            cut_off = true;
            break;
        }
        // Has the server hung up (EOF or an error answer)?
        let mut buf = [0u8; 256];
        if let Ok(read) = tokio::time::timeout(Duration::from_millis(50), tcp.read(&mut buf)).await
        {
            let answered = read.map_or(true, |n| n == 0 || buf[..n].starts_with(b"HTTP/1.1 4"));
            if answered {
                cut_off = true;
                break;
            }
        }
    }
    assert!(
        cut_off,
        "the server waited for the whole dribbled handshake"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "cut off only after {:?}",
        started.elapsed()
    );
    still_healthy(&client.server).await;
}

/// The resident memory of process `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

/// Sends one request with a 1 MB `Authorization` header; returns the status line, if the server answered one.
async fn huge_authorization(addr: std::net::SocketAddr, path: &str) -> Option<String> {
    let mut tcp = TcpStream::connect(addr).await.ok()?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: palaver\r\nAuthorization: Bearer ");
    request.push_str(&"a".repeat(1 << 20));
    request.push_str("\r\n\r\n");
    // The server may hang up before it has read everything.
    let _ = tcp.write_all(request.as_bytes()).await;
    let mut answer = vec![0u8; 256];
    let read = tcp.read(&mut answer).await.ok()?;
    let text = String::from_utf8_lossy(&answer[..read]).into_owned();
    text.lines().next().map(str::to_owned)
}

async fn a_one_megabyte_authorization_header_is_refused_fast_in_flat_memory(engine: Engine) {
    let Some(server) = ServerProcess::start(engine, &[]).await else {
        return;
    };
    let pid = server.pid().expect("a running server");
    // Warm up, then measure the memory across many such requests.
    huge_authorization(server.addr(), "/api/me").await;
    let before = rss_kib(pid);
    for round in 0..60 {
        let path = if round % 2 == 0 { "/api/me" } else { "/ws" };
        let started = Instant::now();
        let status = tokio::time::timeout(PATIENCE, huge_authorization(server.addr(), path))
            .await
            .expect("an answer or a hang-up in time");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "took {:?}",
            started.elapsed()
        );
        if let Some(status) = status {
            assert!(
                !status.contains(" 2") && !status.contains(" 101"),
                "accepted: {status}"
            );
        }
    }
    let after = rss_kib(pid);
    assert!(
        after < before + 32 * 1024,
        "memory grew from {before} KiB to {after} KiB"
    );
    let healthy = reqwest::get(server.url("/healthz")).await.unwrap();
    assert_eq!(healthy.status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------------------------
// Floods from one address.

async fn a_flood_from_one_address_gets_429_and_a_spoofed_forwarded_for_does_not_help(
    engine: Engine,
) {
    let extra = [("PALAVER_HTTP_REQUESTS_PER_MINUTE", "5")];
    let Some(server) = TestServer::start_with(engine, &extra).await else {
        return;
    };
    let http = reqwest::Client::new();
    let mut statuses = Vec::new();
    for n in 0..8 {
        // A different claimed address each time: the server does not trust this peer as a proxy.
        let response = http
            .get(server.url("/api/rooms"))
            .header("x-forwarded-for", format!("198.51.100.{n}"))
            .send()
            .await
            .unwrap();
        statuses.push(response.status().as_u16());
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert!(response.headers().contains_key("retry-after"));
            assert_eq!(response.headers()["x-content-type-options"], "nosniff");
        }
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 429, 429, 429]);
    // Probes are never limited, nor the browser client's files (a page load asks for many).
    for path in ["/healthz", "/", "/static/js/main.js", "/static/app.css"] {
        let response = http.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
    }
}

async fn behind_a_trusted_proxy_each_client_has_its_own_budget(engine: Engine) {
    let extra = [
        ("PALAVER_HTTP_REQUESTS_PER_MINUTE", "2"),
        ("PALAVER_TRUSTED_PROXIES", "127.0.0.1"),
    ];
    let Some(server) = TestServer::start_with(engine, &extra).await else {
        return;
    };
    let http = reqwest::Client::new();
    let status_for = |client: &'static str| {
        http.get(server.url("/api/rooms"))
            .header("x-forwarded-for", client)
            .send()
    };
    for _ in 0..2 {
        assert_eq!(
            status_for("198.51.100.1").await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        status_for("198.51.100.1").await.unwrap().status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        status_for("198.51.100.2").await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
}

async fn registrations_are_limited_per_address(engine: Engine) {
    let extra = [("PALAVER_REGISTRATIONS_PER_HOUR", "2")];
    let Some(server) = TestServer::start_with(engine, &extra).await else {
        return;
    };
    let client = Client {
        server,
        http: reqwest::Client::new(),
    };
    client.register("user_one").await;
    client.register("user_two").await;
    let body: Value =
        json!({"username": "user_three", "email": "three@example.com", "password": PASSWORD});
    let (status, answer) = client.post("/api/register", body).await;
    assert_error(
        status,
        &answer,
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
    );
    let (status, _) = client
        .post(
            "/api/login",
            json!({"username": "user_three", "password": PASSWORD}),
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "nothing was stored");
}

palaver_integration_tests::on_every_engine!(
    a_flood_from_one_address_gets_429_and_a_spoofed_forwarded_for_does_not_help,
    behind_a_trusted_proxy_each_client_has_its_own_budget,
    registrations_are_limited_per_address,
);

// Reading request heads does not depend on the database: these run on the embedded one only.
palaver_integration_tests::on_sqlite_only!(
    a_handshake_dribbled_byte_by_byte_is_cut_off,
    a_one_megabyte_authorization_header_is_refused_fast_in_flat_memory,
);
