//! A WebSocket session's life against a real server: a client that stops answering pings is closed, one that cannot
//! keep up is closed as a slow consumer (and counted), a replay longer than `max_replay` is refused, origins listed in
//! `allowed_origins` may open sockets from a browser and others may not, and SIGTERM closes every socket with 1001
//! and exits within the grace period.

use std::time::Duration;

use palaver_integration_tests::api::{Client, PASSWORD};
use palaver_integration_tests::process::ServerProcess;
use palaver_integration_tests::ws::{Connect, FRAME_TIMEOUT, Frame, WsClient};
use palaver_integration_tests::{Engine, TestServer};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// How long a test waits for something that takes a few of the server's (shortened) ping periods.
const SLOW_TIMEOUT: Duration = Duration::from_secs(20);

/// A WebSocket opened by hand on a raw TCP stream: it reads the server's frames but never answers anything, pings
/// included (a real client library answers pings on its own whenever it reads).
struct DeafClient {
    stream: TcpStream,
}

impl DeafClient {
    async fn open(server: &TestServer, token: &str) -> DeafClient {
        let mut stream = TcpStream::connect(server.addr())
            .await
            .expect("the server accepts");
        let request = format!(
            "GET /ws HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
             Authorization: Bearer {token}\r\n\r\n",
            server.addr()
        );
        stream
            .write_all(request.as_bytes())
            .await
            .expect("the handshake is sent");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut byte = [0u8; 1];
            let read = tokio::time::timeout(FRAME_TIMEOUT, stream.read_exact(&mut byte))
                .await
                .expect("the handshake is answered in time");
            read.expect("the handshake answer is read");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        DeafClient { stream }
    }

    /// The next frame the server sends, as (opcode, payload), within `wait`.
    async fn next_frame(&mut self, wait: Duration) -> (u8, Vec<u8>) {
        tokio::time::timeout(wait, async {
            let mut header = [0u8; 2];
            self.stream.read_exact(&mut header).await?;
            let opcode = header[0] & 0x0f;
            let length = match header[1] & 0x7f {
                126 => u64::from(self.stream.read_u16().await?),
                127 => self.stream.read_u64().await?,
                short => u64::from(short),
            };
            let mut payload = vec![0u8; usize::try_from(length).expect("a frame that fits")];
            self.stream.read_exact(&mut payload).await?;
            Ok::<_, std::io::Error>((opcode, payload))
        })
        .await
        .expect("a frame within the wait")
        .expect("the frame is read")
    }
}

async fn create_room(ws: &mut WsClient, name: &str) {
    ws.send_cmd("create_room", json!({"name": name}), Some("create"))
        .await;
    ws.expect_json("room_created").await;
    ws.expect_json("welcome").await;
}

async fn a_client_that_stops_answering_pings_is_closed(engine: Engine) {
    let settings = [
        ("PALAVER_PING_INTERVAL_SECS", "1"),
        ("PALAVER_PONG_TIMEOUT_SECS", "2"),
    ];
    let Some(client) = Client::start_with(engine, &settings).await else {
        return;
    };
    let token = client.user("john_doe").await;
    let mut deaf = DeafClient::open(&client.server, &token).await;
    // A client that answers, at the same time, keeps its socket past that: it sees three pings and is still served.
    let mut alive = WsClient::json(&client.server, &token).await;
    let answering = tokio::spawn(async move {
        for _ in 0..3 {
            alive.expect_ping(SLOW_TIMEOUT).await;
        }
        alive.expect_nothing_before_sentinel().await;
    });
    let mut pings = 0;
    loop {
        let (opcode, payload) = deaf.next_frame(SLOW_TIMEOUT).await;
        match opcode {
            0x9 => pings += 1,
            0x8 => {
                let code = u16::from_be_bytes([payload[0], payload[1]]);
                assert_eq!(
                    (code, String::from_utf8_lossy(&payload[2..]).as_ref()),
                    (1000, "no pong")
                );
                break;
            }
            other => panic!("unexpected opcode {other:#x}"),
        }
    }
    assert!(pings >= 1, "the server pinged before giving up");
    answering
        .await
        .expect("the answering client was served throughout");
}

async fn a_client_that_cannot_keep_up_is_closed_with_1013_and_counted(engine: Engine) {
    let settings = [
        ("PALAVER_OUTBOUND_QUEUE_FRAMES", "4"),
        ("PALAVER_WS_MESSAGE_LIMIT", "100000"),
    ];
    let Some(client) = Client::start_with(engine, &settings).await else {
        return;
    };
    let john = client.user("john_doe").await;
    let jane = client.user("jane_doe").await;
    let mut sender = WsClient::json(&client.server, &john).await;
    create_room(&mut sender, "general").await;
    let mut slow = WsClient::json(&client.server, &jane).await;
    slow.send_cmd("join_room", json!({"name": "general"}), Some("j"))
        .await;
    slow.expect_json("welcome").await;
    sender.expect_json("joined").await;
    // Jane stops reading. Large messages fill the socket's buffers, then her queue of four, then she is closed; the
    // metric says so as soon as the server decides. She reads again right away (well within the write timeout), so
    // the close frame reaches her behind what her buffers held.
    let content = "x".repeat(60_000);
    let mut seq = 0;
    loop {
        seq += 1;
        let id = format!("m{seq}");
        sender
            .send_cmd("room_message", json!({"content": content}), Some(&id))
            .await;
        let ack = sender.answer_to(&id).await;
        assert_eq!(ack["type"], "ack", "{ack}");
        let scrape = client
            .http
            .get(client.server.url("/metrics"))
            .send()
            .await
            .expect("a scrape")
            .text()
            .await
            .expect("a scrape body");
        if scrape.contains("palaver_slow_consumer_closes_total 1") {
            break;
        }
        assert!(seq < 2_000, "jane was never closed as a slow consumer");
    }
    // What reached her socket's buffers before the overflow arrives in order, then the close.
    let mut delivered = 0;
    loop {
        match slow.next_frame().await {
            Frame::Text(text) => {
                let frame: Value = serde_json::from_str(&text).expect("JSON");
                assert_eq!(frame["type"], "message", "{frame}");
                delivered += 1;
                assert_eq!(frame["seq"], delivered, "in order, no gap until the close");
            }
            Frame::Close(Some((code, reason))) => {
                assert_eq!((code, reason.as_str()), (1013, "slow consumer"));
                break;
            }
            other => panic!("expected messages then a 1013 close, got {other:?}"),
        }
    }
    assert!(delivered < seq, "the close came before everything sent");
    // She resumes from the last seq she saw and gets the rest.
    let mut again = WsClient::json(&client.server, &jane).await;
    again
        .send_cmd(
            "join_room",
            json!({"name": "general", "after_seq": delivered}),
            Some("resume"),
        )
        .await;
    again.expect_json("welcome").await;
    for expected in delivered + 1..=seq {
        let frame = again.expect_json("message").await;
        assert_eq!(frame["seq"], expected);
    }
}

async fn a_replay_longer_than_max_replay_is_refused(engine: Engine) {
    let Some(client) = Client::start_with(engine, &[("PALAVER_MAX_REPLAY", "3")]).await else {
        return;
    };
    let john = client.user("john_doe").await;
    let jane = client.user("jane_doe").await;
    let mut sender = WsClient::json(&client.server, &john).await;
    create_room(&mut sender, "general").await;
    for n in 1..=5 {
        let id = format!("m{n}");
        sender
            .send_cmd(
                "room_message",
                json!({"content": format!("message {n}")}),
                Some(&id),
            )
            .await;
        assert_eq!(sender.answer_to(&id).await["type"], "ack");
    }
    let mut reader = WsClient::json(&client.server, &jane).await;
    reader
        .send_cmd(
            "join_room",
            json!({"name": "general", "after_seq": 1}),
            Some("resume"),
        )
        .await;
    let refused = reader.expect_json("error").await;
    assert_eq!(
        refused,
        json!({"type": "error", "id": "resume", "code": "invalid_request",
               "message": "4 messages were missed, more than 3 can be replayed: read them with get_messages, then join with a later after_seq"})
    );
    // Refused entirely: jane is no member, and the room heard of no join.
    assert_eq!(client.member_names(&john, "general").await, ["john_doe"]);
    sender.expect_nothing_before_sentinel().await;
    // Within the limit the replay is served.
    reader
        .send_cmd(
            "join_room",
            json!({"name": "general", "after_seq": 2}),
            Some("resume"),
        )
        .await;
    assert_eq!(reader.expect_json("welcome").await["last_seq"], 5);
    for seq in 3..=5 {
        assert_eq!(reader.expect_json("message").await["seq"], seq);
    }
}

/// Logs in over HTTP as a browser does; the `Cookie` header value its session then sends.
async fn browser_session(client: &Client, username: &str) -> String {
    let response = client
        .http
        .post(client.server.url("/api/login"))
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
        .find(|value| value.starts_with("palaver_session="))
        .and_then(|value| value.split(';').next())
        .expect("a session cookie")
        .to_owned()
}

async fn allowed_origins_open_sockets_from_a_browser_and_others_do_not(engine: Engine) {
    let settings = [("PALAVER_ALLOWED_ORIGINS", "https://chat.example")];
    let Some(client) = Client::start_with(engine, &settings).await else {
        return;
    };
    client.register("john_doe").await;
    let cookie = browser_session(&client, "john_doe").await;
    let own = format!("http://{}", client.server.addr());
    for origin in ["https://chat.example", own.as_str()] {
        let mut ws = Connect::anonymous()
            .cookie(&cookie)
            .origin(origin)
            .json()
            .open(&client.server)
            .await;
        ws.send_cmd("list_rooms", json!({}), Some("l")).await;
        assert_eq!(ws.answer_to("l").await["type"], "rooms", "from {origin}");
    }
    for origin in [
        "https://evil.example",
        "https://chat.example.evil",
        "http://chat.example",
    ] {
        let status = Connect::anonymous()
            .cookie(&cookie)
            .origin(origin)
            .refused(&client.server)
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "from {origin}");
    }
}

async fn sigterm_closes_every_socket_with_1001_and_exits_within_the_grace_period(engine: Engine) {
    let Some(mut server) =
        ServerProcess::start(engine, &[("PALAVER_SHUTDOWN_GRACE_MS", "3000")]).await
    else {
        return;
    };
    let http = reqwest::Client::new();
    let register = |username: &'static str| {
        http.post(server.url("/api/register"))
            .json(&json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}))
            .send()
    };
    register("john_doe").await.expect("registered");
    let login = http
        .post(server.url("/api/login"))
        .json(&json!({"username": "john_doe", "password": PASSWORD}))
        .send()
        .await
        .expect("login sent")
        .json::<Value>()
        .await
        .expect("a login answer");
    let token = login["token"].as_str().expect("a token").to_owned();
    let mut sockets = Vec::new();
    for _ in 0..3 {
        let url = format!("ws://{}/ws", server.addr());
        let mut request =
            tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                url.as_str(),
            )
            .expect("a WebSocket URL");
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("a header"),
        );
        let (socket, _) = tokio_tungstenite::connect_async(request)
            .await
            .expect("the socket opens");
        sockets.push(socket);
    }
    let status = server.terminate(Duration::from_secs(10)).await;
    assert!(status.success(), "a clean exit, got {status}");
    for mut socket in sockets {
        use futures_util::StreamExt;
        let close = loop {
            match tokio::time::timeout(FRAME_TIMEOUT, socket.next()).await {
                Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame)))) => break frame,
                Ok(Some(Ok(_))) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        };
        let close = close.expect("a close frame with a code");
        assert_eq!(
            (u16::from(close.code), close.reason.as_str()),
            (1001, "server shutting down")
        );
    }
}

async fn json_logs_are_one_object_per_line(engine: Engine) {
    let settings = [("PALAVER_LOG", "info"), ("PALAVER_LOG_FORMAT", "json")];
    let Some(mut server) = ServerProcess::start(engine, &settings).await else {
        return;
    };
    let answered = reqwest::get(server.url("/readyz")).await.expect("readyz");
    assert_eq!(answered.status(), StatusCode::OK);
    server.terminate(Duration::from_secs(10)).await;
    let log = server.log();
    let lines: Vec<&str> = log.lines().filter(|line| !line.trim().is_empty()).collect();
    assert!(lines.len() >= 2, "a start and a stop at least:\n{log}");
    let mut messages = Vec::new();
    for line in lines {
        let entry: Value = serde_json::from_str(line)
            .unwrap_or_else(|err| panic!("not one JSON object ({err}): {line:?}"));
        for field in ["timestamp", "level", "target"] {
            assert!(entry[field].is_string(), "no {field} in {line}");
        }
        messages.push(entry["fields"]["message"].as_str().unwrap_or("").to_owned());
    }
    for expected in ["palaver is listening", "shutting down"] {
        assert!(
            messages.iter().any(|message| message == expected),
            "no {expected:?} among {messages:?}"
        );
    }
}

// The transport does not depend on the database: these run on the embedded engine only.
palaver_integration_tests::on_sqlite_only!(
    a_client_that_stops_answering_pings_is_closed,
    a_client_that_cannot_keep_up_is_closed_with_1013_and_counted,
    allowed_origins_open_sockets_from_a_browser_and_others_do_not,
    sigterm_closes_every_socket_with_1001_and_exits_within_the_grace_period,
    json_logs_are_one_object_per_line,
);

palaver_integration_tests::on_every_engine!(a_replay_longer_than_max_replay_is_refused);
