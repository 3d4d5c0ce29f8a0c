//! Attacks with HTTP requests themselves, and what stops them: a request head dribbled byte by byte, heads over the
//! byte and header-count limits (up to a one-megabyte `Authorization` header), request floods from one address (with
//! a spoofed `X-Forwarded-For`, and behind a trusted proxy), and registration floods. Each test asserts the refusal
//! and that nothing was stored or changed.

use std::time::{Duration, Instant};

use palaver_integration_tests::api::{Client, PASSWORD, assert_error};
use palaver_integration_tests::process::ServerProcess;
use palaver_integration_tests::{Engine, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a raw exchange may take before the test gives up on it: generous, it only bounds a hang.
const PATIENCE: Duration = Duration::from_secs(30);

/// The server still serves: `/healthz` answers 200 on a new connection.
async fn still_healthy(server: &TestServer) {
    let response = reqwest::get(server.url("/healthz")).await.expect("healthz");
    assert_eq!(response.status(), StatusCode::OK);
}

/// What the server answered on a raw connection.
#[derive(Debug)]
struct RawAnswer {
    status: u16,
    /// The status line and headers, header names in lower case.
    head: String,
    body: Vec<u8>,
}

/// Sends `request` on a new connection and reads until the server closes it. The server may stop reading and hang
/// up before the whole request is written, so a failed write is not an error, nor a reset once the answer is in.
async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> RawAnswer {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (mut reader, mut writer) = tcp.into_split();
    let write = async move {
        let _ = writer.write_all(request).await;
        // Kept open: a half-close could make the server give up on the request before answering it.
        writer
    };
    let read = async {
        let mut answer = Vec::new();
        let mut buf = vec![0u8; 64 * 1024];
        while let Ok(read) = reader.read(&mut buf).await {
            if read == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..read]);
        }
        answer
    };
    let (_writer, answer) = tokio::time::timeout(PATIENCE, async { tokio::join!(write, read) })
        .await
        .expect("the server answers and closes in time");
    let text = String::from_utf8_lossy(&answer);
    let (head, _) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete answer: {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {head:?}"));
    RawAnswer {
        status,
        head: head.to_lowercase(),
        body: answer[head.len() + 4..].to_vec(),
    }
}

/// `GET path` with `headers` (lines without their CRLF) and `Connection: close`, as raw bytes.
fn request_with(path: &str, headers: &[String]) -> Vec<u8> {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: palaver\r\nConnection: close\r\n");
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request.into_bytes()
}

/// `GET path` whose head (request line, headers, and the blank line) is exactly `bytes` long, padded by one header.
fn head_of_size(path: &str, bytes: usize) -> Vec<u8> {
    let bare = request_with(path, &["X-Padding: ".to_owned()]).len();
    let padding = "a".repeat(bytes.checked_sub(bare).expect("room for the request line"));
    let request = request_with(path, &[format!("X-Padding: {padding}")]);
    assert_eq!(request.len(), bytes);
    request
}

/// `GET path` with `count` headers in all (`Host`, `Connection` and numbered ones).
fn head_with_headers(path: &str, count: usize) -> Vec<u8> {
    let numbered: Vec<String> = (2..count).map(|n| format!("X-Header-{n}: {n}")).collect();
    request_with(path, &numbered)
}

/// Hyper's own refusal of a head over a limit: `431`, no body, and the connection closed (it was read to its end).
fn assert_431(answer: &RawAnswer, what: &str) {
    assert_eq!(answer.status, 431, "{what}: {answer:?}");
    assert!(
        answer
            .head
            .starts_with("http/1.1 431 request header fields too large"),
        "{what}: {answer:?}"
    );
    assert!(
        answer.head.contains("\r\ncontent-length: 0")
            && answer.head.contains("\r\nconnection: close"),
        "{what}: {answer:?}"
    );
    assert!(answer.body.is_empty(), "{what}: {answer:?}");
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

async fn heads_over_the_byte_or_header_limit_get_431_and_the_server_stays_healthy(engine: Engine) {
    // The defaults, and smaller configured limits (hyper's own default count is also 100: only a configured one
    // shows that the setting is the one applied).
    for (extra, max_bytes, max_headers) in [
        (vec![], 16384, 100),
        (
            vec![
                ("PALAVER_MAX_HEADER_BYTES", "9000"),
                ("PALAVER_MAX_HEADERS", "20"),
            ],
            9000,
            20,
        ),
    ] {
        let Some(server) = TestServer::start_with(engine, &extra).await else {
            return;
        };
        // At the limits the request is routed (401: no token).
        for (what, request) in [
            (
                "a head of max_header_bytes",
                head_of_size("/api/me", max_bytes),
            ),
            (
                "max_headers headers",
                head_with_headers("/api/me", max_headers),
            ),
        ] {
            let answer = exchange(server.addr(), &request).await;
            assert_eq!(
                answer.status, 401,
                "{what} ({max_bytes}, {max_headers}): {answer:?}"
            );
        }
        // One past either is refused before routing, on the API and on the WebSocket path alike.
        for path in ["/api/me", "/ws", "/healthz"] {
            for (what, request) in [
                ("one byte too many", head_of_size(path, max_bytes + 1)),
                (
                    "one header too many",
                    head_with_headers(path, max_headers + 1),
                ),
            ] {
                let answer = exchange(server.addr(), &request).await;
                assert_431(
                    &answer,
                    &format!("{what} ({max_bytes}, {max_headers}) on {path}"),
                );
                still_healthy(&server).await;
            }
        }
        server.stop().await;
    }
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

/// A request to `path` with a 1 MB `Authorization` header.
fn huge_authorization(path: &str) -> Vec<u8> {
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: palaver\r\nAuthorization: Bearer ");
    request.push_str(&"a".repeat(1 << 20));
    request.push_str("\r\n\r\n");
    request.into_bytes()
}

async fn a_one_megabyte_authorization_header_is_refused_in_flat_memory(engine: Engine) {
    let Some(server) = ServerProcess::start(engine, &[]).await else {
        return;
    };
    let pid = server.pid().expect("a running server");
    // Warm up, then measure the memory across many such requests.
    assert_431(
        &exchange(server.addr(), &huge_authorization("/api/me")).await,
        "warm-up",
    );
    let before = rss_kib(pid);
    for round in 0..60 {
        let path = if round % 2 == 0 { "/api/me" } else { "/ws" };
        let answer = exchange(server.addr(), &huge_authorization(path)).await;
        assert_431(&answer, &format!("round {round} on {path}"));
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
    heads_over_the_byte_or_header_limit_get_431_and_the_server_stays_healthy,
    a_one_megabyte_authorization_header_is_refused_in_flat_memory,
);
