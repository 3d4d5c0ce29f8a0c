//! Attacks on the WebSocket endpoint and the chat rules, and what stops them: room-password guessing, connection
//! hoarding, frames that lie about their size or their encoding, compression the server never agreed to, broken or
//! dribbled handshakes, huge headers, tokens that expire on an open socket, room hoarding and SQL in every text
//! field. Each test asserts the refusal and that nothing was stored or changed.

use std::time::{Duration, Instant};

use palaver_integration_tests::api::{Client, assert_error, read};
use palaver_integration_tests::process::ServerProcess;
use palaver_integration_tests::ws::{Connect, WsClient};
use palaver_integration_tests::{Engine, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const ROOM_PASSWORD: &str = "open sesame";
const PATIENCE: Duration = Duration::from_secs(5);

async fn client_with(engine: Engine, extra: &[(&str, &str)]) -> Option<Client> {
    let server = TestServer::start_with(engine, extra).await?;
    Some(Client {
        server,
        http: reqwest::Client::new(),
    })
}

/// The next frame answering command `id` (skipping events), as JSON.
async fn answer(ws: &mut WsClient, id: &str) -> Value {
    loop {
        let frame = ws.next_json().await;
        if frame["id"] == id {
            return frame;
        }
    }
}

async fn member_names(client: &Client, token: &str, room: &str) -> Vec<String> {
    let (status, body) = client
        .get(&format!("/api/rooms/{room}/members"), Some(token))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array()
        .or_else(|| body["members"].as_array())
        .expect("a member list")
        .iter()
        .filter_map(|member| member["username"].as_str().map(str::to_owned))
        .collect()
}

// ---------------------------------------------------------------------------------------------------------------
// Raw sockets, for what a well-behaved client library cannot send.

/// Opens `/ws` over a plain TCP socket with `headers` added; returns the socket and the response head.
async fn raw_handshake(server: &TestServer, headers: &[(&str, &str)]) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(server.addr()).await.expect("connect");
    let mut request = format!(
        "GET /ws HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n",
        server.addr()
    );
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    tcp.write_all(request.as_bytes()).await.expect("send");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let read = tokio::time::timeout(PATIENCE, tcp.read(&mut byte))
            .await
            .expect("a response head in time")
            .expect("read");
        assert_eq!(read, 1, "closed before the head ended: {head:?}");
        head.push(byte[0]);
    }
    (tcp, String::from_utf8_lossy(&head).into_owned())
}

/// The standard handshake headers of a client with `token`.
fn upgrade_headers(token: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Sec-WebSocket-Version", "13".into()),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==".into()),
        ("Authorization", format!("Bearer {token}")),
    ]
}

async fn open_raw(server: &TestServer, token: &str, extra: &[(&str, &str)]) -> (TcpStream, String) {
    let headers = upgrade_headers(token);
    let mut all: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    let (tcp, head) = raw_handshake(server, &all).await;
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    (tcp, head)
}

/// A client frame (clients must mask): `first` is the FIN/RSV/opcode byte.
fn masked_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut frame = vec![first];
    match payload.len() {
        len @ 0..=125 => frame.push(0x80 | len as u8),
        len @ 126..=0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// Reads server frames until a close frame and returns its code; panics if the socket ends without one.
async fn close_code(tcp: &mut TcpStream) -> u16 {
    loop {
        let mut header = [0u8; 2];
        tokio::time::timeout(PATIENCE, tcp.read_exact(&mut header))
            .await
            .expect("a frame in time")
            .expect("a frame before the socket ended");
        let len = match header[1] & 0x7f {
            126 => {
                let mut len = [0u8; 2];
                tcp.read_exact(&mut len).await.expect("length");
                u64::from(u16::from_be_bytes(len))
            }
            127 => {
                let mut len = [0u8; 8];
                tcp.read_exact(&mut len).await.expect("length");
                u64::from_be_bytes(len)
            }
            len => u64::from(len),
        };
        let mut payload = vec![0u8; usize::try_from(len).expect("a small server frame")];
        tcp.read_exact(&mut payload).await.expect("payload");
        if header[0] & 0x0f == 0x8 {
            assert!(payload.len() >= 2, "a close frame with a code");
            return u16::from_be_bytes([payload[0], payload[1]]);
        }
    }
}

/// The server still serves: `/healthz` answers 200.
async fn still_healthy(server: &TestServer) {
    let response = reqwest::get(server.url("/healthz")).await.expect("healthz");
    assert_eq!(response.status(), StatusCode::OK);
}

// ---------------------------------------------------------------------------------------------------------------
// Room passwords.

async fn guessing_a_room_password_is_locked_out(engine: Engine) {
    let Some(client) = client_with(engine, &[]).await else {
        return;
    };
    let john = client.user("john_doe").await;
    let jane = client.user("jane_doe").await;
    let mary = client.user("mary_doe").await;
    let mut owner = WsClient::json(&client.server, &john).await;
    owner
        .send_cmd(
            "create_room",
            json!({"name": "secret", "private": true, "password": ROOM_PASSWORD}),
            Some("c"),
        )
        .await;
    assert_eq!(answer(&mut owner, "c").await["type"], "room_created");

    let mut guesser = WsClient::json(&client.server, &jane).await;
    for guess in 0..5 {
        let id = format!("g{guess}");
        let password = format!("guess number {guess}");
        guesser
            .send_cmd(
                "join_room",
                json!({"name": "secret", "password": password}),
                Some(&id),
            )
            .await;
        let refused = answer(&mut guesser, &id).await;
        assert_eq!(refused["code"], "bad_room_password", "{refused}");
    }
    // The sixth try is refused untried, even with the right password, over WebSocket and over HTTP alike.
    guesser
        .send_cmd(
            "join_room",
            json!({"name": "secret", "password": ROOM_PASSWORD}),
            Some("right"),
        )
        .await;
    let refused = answer(&mut guesser, "right").await;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    assert_eq!(refused["message"], "rate limit exceeded", "{refused}");
    let response = client
        .http
        .get(client.server.url("/api/rooms/secret/messages"))
        .bearer_auth(&jane)
        .header("x-room-password", ROOM_PASSWORD)
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_error(status, &body, StatusCode::TOO_MANY_REQUESTS, "rate_limited");
    assert_eq!(member_names(&client, &john, "secret").await, ["john_doe"]);

    // The lockout is jane's on this room only: mary gets in with the password.
    let mut other = WsClient::json(&client.server, &mary).await;
    other
        .send_cmd(
            "join_room",
            json!({"name": "secret", "password": ROOM_PASSWORD}),
            Some("m"),
        )
        .await;
    assert_eq!(answer(&mut other, "m").await["type"], "welcome");
}

// ---------------------------------------------------------------------------------------------------------------
// Connection hoarding.

async fn connections_are_capped_per_user(engine: Engine) {
    let Some(client) = client_with(engine, &[("PALAVER_WS_CONNECTIONS_PER_USER", "3")]).await
    else {
        return;
    };
    let john = client.user("john_doe").await;
    let jane = client.user("jane_doe").await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(WsClient::json(&client.server, &john).await);
    }
    assert_eq!(
        Connect::bearer(&john).refused(&client.server).await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert!(
        Connect::bearer(&jane)
            .try_open(&client.server)
            .await
            .is_ok(),
        "other users are not affected"
    );
    // A closed connection gives its place back.
    open.pop().expect("a connection").close().await;
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Ok(ws) = Connect::bearer(&john).json().try_open(&client.server).await {
            open.push(ws);
            break;
        }
        assert!(Instant::now() < deadline, "the place was not given back");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn connections_are_capped_per_address(engine: Engine) {
    let Some(client) = client_with(engine, &[("PALAVER_WS_CONNECTIONS_PER_IP", "2")]).await else {
        return;
    };
    let users = [
        client.user("john_doe").await,
        client.user("jane_doe").await,
        client.user("mary_doe").await,
    ];
    let _first = WsClient::json(&client.server, &users[0]).await;
    let _second = WsClient::json(&client.server, &users[1]).await;
    assert_eq!(
        Connect::bearer(&users[2]).refused(&client.server).await,
        StatusCode::TOO_MANY_REQUESTS
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Frames.

async fn a_frame_announcing_two_to_the_63_bytes_is_closed_with_1009(engine: Engine) {
    let Some(client) = client_with(engine, &[]).await else {
        return;
    };
    let token = client.user("john_doe").await;
    let (mut tcp, _) = open_raw(&client.server, &token, &[]).await;
    // Only the header: FIN + text, masked, 64-bit length 2^63 - 1, then a mask key. No payload follows.
    let mut header = vec![0x81, 0x80 | 127];
    header.extend_from_slice(&(u64::MAX >> 1).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    tcp.write_all(&header).await.expect("send the header");
    assert_eq!(close_code(&mut tcp).await, 1009);
    still_healthy(&client.server).await;
}

async fn invalid_utf8_in_a_text_frame_is_closed_with_1007(engine: Engine) {
    let Some(client) = client_with(engine, &[]).await else {
        return;
    };
    let token = client.user("john_doe").await;
    let (mut tcp, _) = open_raw(&client.server, &token, &[]).await;
    tcp.write_all(&masked_frame(0x81, b"/list \xff\xfe bad"))
        .await
        .expect("send");
    assert_eq!(close_code(&mut tcp).await, 1007);
}

async fn compression_is_declined_and_a_compressed_frame_is_refused(engine: Engine) {
    let Some(client) = client_with(engine, &[]).await else {
        return;
    };
    let token = client.user("john_doe").await;
    let offer = (
        "Sec-WebSocket-Extensions",
        "permessage-deflate; client_max_window_bits",
    );
    let (mut tcp, head) = open_raw(&client.server, &token, &[offer]).await;
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("sec-websocket-extensions"),
        "no extension was agreed: {head}"
    );
    // RSV1 set (a "compressed" frame, e.g. a zip bomb) on a connection that agreed no extension: a protocol error.
    tcp.write_all(&masked_frame(
        0xc1,
        &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
    ))
    .await
    .expect("send");
    assert_eq!(close_code(&mut tcp).await, 1002);
}

// ---------------------------------------------------------------------------------------------------------------
// Handshakes.

async fn broken_handshakes_are_refused(engine: Engine) {
    let Some(client) = client_with(engine, &[]).await else {
        return;
    };
    let token = client.user("john_doe").await;
    let bearer = format!("Bearer {token}");
    let (_, head) = raw_handshake(
        &client.server,
        &[("Sec-WebSocket-Version", "13"), ("Authorization", &bearer)],
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 400"), "missing key: {head}");
    let (_, head) = raw_handshake(
        &client.server,
        &[
            ("Sec-WebSocket-Version", "8"),
            ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("Authorization", &bearer),
        ],
    )
    .await;
    assert!(head.starts_with("HTTP/1.1 426"), "wrong version: {head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("sec-websocket-version: 13"),
        "{head}"
    );
}

async fn a_handshake_dribbled_byte_by_byte_is_cut_off(engine: Engine) {
    let Some(client) = client_with(engine, &[("PALAVER_HEADER_TIMEOUT_MS", "500")]).await else {
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
// Tokens.

async fn a_token_expiring_on_an_open_socket_closes_it_with_1008(engine: Engine) {
    let Some(client) = client_with(engine, &[("PALAVER_TOKEN_TTL_SECS", "2")]).await else {
        return;
    };
    let token = client.user("john_doe").await;
    let mut ws = WsClient::json(&client.server, &token).await;
    let opened = Instant::now();
    ws.expect_close(1008).await;
    let lived = opened.elapsed();
    assert!(
        lived >= Duration::from_millis(500),
        "closed after only {lived:?}: before the token expired"
    );
    assert_eq!(
        Connect::bearer(&token).refused(&client.server).await,
        StatusCode::UNAUTHORIZED
    );
}

// ---------------------------------------------------------------------------------------------------------------
// Room hoarding.

async fn ten_thousand_room_creations_stop_at_the_quota(engine: Engine) {
    let Some(client) = client_with(engine, &[("PALAVER_WS_MESSAGE_LIMIT", "1000000")]).await else {
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
    let Some(client) = client_with(engine, &limits).await else {
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
    assert_eq!(answer(&mut ws, "j").await["type"], "welcome");
    // Messages are stored verbatim and read back verbatim.
    for (n, injection) in INJECTIONS.iter().enumerate() {
        let id = format!("m{n}");
        ws.send_cmd(
            "room_message",
            json!({"room": "vault", "content": injection}),
            Some(&id),
        )
        .await;
        assert_eq!(answer(&mut ws, &id).await["type"], "ack");
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
        let page = answer(&mut ws, "f").await;
        assert_eq!(page["messages"].as_array().map(Vec::len), Some(0), "{page}");
        ws.send_cmd(
            "get_messages",
            json!({"name": "vault", "contains": injection}),
            Some("g"),
        )
        .await;
        let page = answer(&mut ws, "g").await;
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
    assert_eq!(member_names(&client, &john, "vault").await, ["john_doe"]);
}

// ---------------------------------------------------------------------------------------------------------------
// Username enumeration by timing.

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn login_takes_as_long_for_unknown_users_as_for_wrong_passwords(engine: Engine) {
    // A real bcrypt cost, so the hash dominates; generous failure limits, so no lockout interferes.
    let settings = [
        ("PALAVER_BCRYPT_COST", "8"),
        ("PALAVER_LOGIN_FAILURE_LIMIT", "1000"),
        ("PALAVER_LOGIN_IP_FAILURE_LIMIT", "1000"),
    ];
    let Some(client) = client_with(engine, &settings).await else {
        return;
    };
    client.register("john_doe").await;
    let (mut known, mut unknown) = (Vec::new(), Vec::new());
    for round in 0..15 {
        for (username, samples) in [("john_doe", &mut known), ("nobody_here", &mut unknown)] {
            let started = Instant::now();
            let (status, body) = client
                .post(
                    "/api/login",
                    json!({"username": username, "password": format!("wrong password {round}")}),
                )
                .await;
            samples.push(started.elapsed());
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        }
    }
    let (known, unknown) = (median(known), median(unknown));
    let ratio = known.as_secs_f64() / unknown.as_secs_f64();
    assert!(
        (1.0 / 3.0..3.0).contains(&ratio),
        "a wrong password takes {known:?}, an unknown user {unknown:?}"
    );
}

palaver_integration_tests::on_every_engine!(
    guessing_a_room_password_is_locked_out,
    ten_thousand_room_creations_stop_at_the_quota,
    sql_in_every_text_field_is_only_text,
);

/// The transport attacks do not depend on the database: they run on the embedded one only.
macro_rules! on_sqlite {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                super::$name(Engine::Sqlite).await;
            }
        )*
    };
}

mod embedded {
    use super::Engine;

    on_sqlite!(
        connections_are_capped_per_user,
        connections_are_capped_per_address,
        a_frame_announcing_two_to_the_63_bytes_is_closed_with_1009,
        invalid_utf8_in_a_text_frame_is_closed_with_1007,
        compression_is_declined_and_a_compressed_frame_is_refused,
        broken_handshakes_are_refused,
        a_handshake_dribbled_byte_by_byte_is_cut_off,
        a_one_megabyte_authorization_header_is_refused_fast_in_flat_memory,
        a_token_expiring_on_an_open_socket_closes_it_with_1008,
        login_takes_as_long_for_unknown_users_as_for_wrong_passwords,
    );
}
