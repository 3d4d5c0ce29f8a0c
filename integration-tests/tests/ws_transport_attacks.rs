//! Attacks on the WebSocket transport, and what stops them: connection hoarding per user and per address, frames that
//! lie about their size or their encoding, compression the server never agreed to, and broken handshakes. Each test
//! asserts the refusal (the HTTP status or the close code) and that the server goes on serving.

use std::time::{Duration, Instant};

use palaver_integration_tests::api::Client;
use palaver_integration_tests::ws::{Connect, WsClient};
use palaver_integration_tests::{Engine, TestServer};
use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PATIENCE: Duration = Duration::from_secs(5);

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
// Connection hoarding.

async fn connections_are_capped_per_user(engine: Engine) {
    let Some(client) =
        Client::start_with(engine, &[("PALAVER_WS_CONNECTIONS_PER_USER", "3")]).await
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
    let Some(client) = Client::start_with(engine, &[("PALAVER_WS_CONNECTIONS_PER_IP", "2")]).await
    else {
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
    let Some(client) = Client::start_with(engine, &[]).await else {
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
    let Some(client) = Client::start_with(engine, &[]).await else {
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
    let Some(client) = Client::start_with(engine, &[]).await else {
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
    let Some(client) = Client::start_with(engine, &[]).await else {
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

// The transport does not depend on the database: these run on the embedded one only.
palaver_integration_tests::on_sqlite_only!(
    connections_are_capped_per_user,
    connections_are_capped_per_address,
    a_frame_announcing_two_to_the_63_bytes_is_closed_with_1009,
    invalid_utf8_in_a_text_frame_is_closed_with_1007,
    compression_is_declined_and_a_compressed_frame_is_refused,
    broken_handshakes_are_refused,
);
