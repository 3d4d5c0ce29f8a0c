//! A small WebSocket client for black-box tests of `GET /ws` (PROTOCOL §2–§5): open a connection with the headers a
//! test chooses, send commands, and await the frames a user would see, each with a timeout (tests never sleep).
//!
//! ```no_run
//! # async fn example(server: &palaver_integration_tests::TestServer, token: &str) {
//! use palaver_integration_tests::ws::WsClient;
//! let mut john = WsClient::text(server, token).await;
//! john.send_cmd("create_room", serde_json::json!({"name": "general"}), None).await;
//! let created = john.next_text().await;
//! john.expect_stamped("Welcome to room 'general'!").await;
//! # let _ = created;
//! # }
//! ```

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::Reachable;

/// The sub-protocol that selects the JSON protocol (PROTOCOL §5).
pub const JSON_PROTOCOL: &str = "palaver.v1.json";

/// How long a test waits for an expected frame before it fails.
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(5);

/// The exact body of the 401 answer to a `GET /ws` without credentials (PROTOCOL §2).
pub const MISSING_CREDENTIALS: &str = "Authorization header with Bearer token required";

/// How to open a WebSocket: which credentials, `Origin`, sub-protocol and query string to send.
#[derive(Debug, Clone, Default)]
pub struct Connect {
    bearer: Option<String>,
    origin: Option<String>,
    cookie: Option<String>,
    protocol: Option<String>,
    query: Option<String>,
}

impl Connect {
    /// No credentials, no `Origin`, the text protocol.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// `Authorization: Bearer <token>`.
    pub fn bearer(token: &str) -> Self {
        Connect {
            bearer: Some(token.to_owned()),
            ..Self::default()
        }
    }

    /// Adds an `Origin` header.
    pub fn origin(mut self, origin: &str) -> Self {
        self.origin = Some(origin.to_owned());
        self
    }

    /// Adds a `Cookie` header (e.g. `palaver_session=<token>`).
    pub fn cookie(mut self, cookie: &str) -> Self {
        self.cookie = Some(cookie.to_owned());
        self
    }

    /// Offers a sub-protocol (`Sec-WebSocket-Protocol`).
    pub fn protocol(mut self, protocol: &str) -> Self {
        self.protocol = Some(protocol.to_owned());
        self
    }

    /// Offers [`JSON_PROTOCOL`].
    pub fn json(self) -> Self {
        self.protocol(JSON_PROTOCOL)
    }

    /// Adds `?ticket=<ticket>` to the URL.
    pub fn ticket(mut self, ticket: &str) -> Self {
        self.query = Some(format!("ticket={ticket}"));
        self
    }

    /// `ws://127.0.0.1:<port>/ws` with this query string, if any.
    fn url(&self, server: &impl Reachable) -> String {
        match &self.query {
            Some(query) => format!("ws://{}/ws?{query}", server.addr()),
            None => format!("ws://{}/ws", server.addr()),
        }
    }

    /// Opens the connection, or returns the handshake's error (a refusal is [`tungstenite::Error::Http`]).
    pub async fn try_open(&self, server: &impl Reachable) -> Result<WsClient, tungstenite::Error> {
        let mut request = self.url(server).into_client_request()?;
        let headers = request.headers_mut();
        let mut set = |name: &'static str, value: String| {
            let value = HeaderValue::from_str(&value).expect("a header value a test chose");
            headers.insert(name, value);
        };
        if let Some(token) = &self.bearer {
            set("authorization", format!("Bearer {token}"));
        }
        if let Some(origin) = &self.origin {
            set("origin", origin.clone());
        }
        if let Some(cookie) = &self.cookie {
            set("cookie", cookie.clone());
        }
        if let Some(protocol) = &self.protocol {
            set("sec-websocket-protocol", protocol.clone());
        }
        let (stream, response) =
            tokio::time::timeout(FRAME_TIMEOUT, tokio_tungstenite::connect_async(request))
                .await
                .unwrap_or_else(|_| panic!("no handshake answer within {FRAME_TIMEOUT:?}"))?;
        let protocol = response
            .headers()
            .get("sec-websocket-protocol")
            .map(|value| value.to_str().unwrap_or("<not ASCII>").to_owned());
        Ok(WsClient { stream, protocol })
    }

    /// Opens the connection; panics when the server refuses it.
    pub async fn open(&self, server: &impl Reachable) -> WsClient {
        match self.try_open(server).await {
            Ok(client) => client,
            Err(tungstenite::Error::Http(response)) => panic!(
                "the upgrade was refused with {}: {:?}",
                response.status(),
                response
                    .body()
                    .as_deref()
                    .map(String::from_utf8_lossy)
                    .unwrap_or_default()
            ),
            Err(err) => panic!("the WebSocket did not open: {err}"),
        }
    }

    /// The HTTP status and body (as text) with which the server refuses the upgrade; panics when it accepts it.
    pub async fn refusal(&self, server: &impl Reachable) -> (StatusCode, String) {
        match self.try_open(server).await {
            Ok(_) => panic!("the upgrade was accepted, but a refusal was expected ({self:?})"),
            Err(tungstenite::Error::Http(response)) => (
                StatusCode::from_u16(response.status().as_u16()).expect("a valid status"),
                response
                    .body()
                    .as_deref()
                    .map(|body| String::from_utf8_lossy(body).into_owned())
                    .unwrap_or_default(),
            ),
            Err(err) => panic!("expected an HTTP refusal, got: {err}"),
        }
    }

    /// Asserts that the server refuses the upgrade with `status` and the JSON error body `{"error": text, "code":
    /// code}` (PROTOCOL §2.1, §2.2).
    pub async fn assert_refused(
        &self,
        server: &impl Reachable,
        status: StatusCode,
        code: &str,
        text: &str,
    ) {
        let (got, body) = self.refusal(server).await;
        let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::String(body));
        assert_eq!(
            (got, parsed),
            (status, json!({"error": text, "code": code})),
            "the refusal of {self:?}"
        );
    }

    /// The HTTP status with which the server refuses the upgrade; panics when it accepts it.
    pub async fn refused(&self, server: &impl Reachable) -> StatusCode {
        match self.try_open(server).await {
            Ok(_) => panic!("the upgrade was accepted, but a refusal was expected ({self:?})"),
            Err(tungstenite::Error::Http(response)) => {
                StatusCode::from_u16(response.status().as_u16()).expect("a valid status")
            }
            Err(err) => panic!("expected an HTTP refusal, got: {err}"),
        }
    }
}

/// A frame as a test sees it; pings and pongs are never reported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A text frame.
    Text(String),
    /// A binary frame (the server never sends one).
    Binary(Vec<u8>),
    /// A close frame, with its code and reason when it carried one.
    Close(Option<(u16, String)>),
    /// The connection ended without a close frame, or failed; the error as text.
    Ended(String),
}

/// One open WebSocket to a test server.
pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    protocol: Option<String>,
}

impl WsClient {
    /// A text-protocol connection authenticated with a Bearer token.
    pub async fn text(server: &impl Reachable, token: &str) -> WsClient {
        let client = Connect::bearer(token).open(server).await;
        assert_eq!(
            client.protocol(),
            None,
            "the text protocol echoes no sub-protocol"
        );
        client
    }

    /// A JSON-protocol connection (offering [`JSON_PROTOCOL`]) authenticated with a Bearer token.
    pub async fn json(server: &impl Reachable, token: &str) -> WsClient {
        let client = Connect::bearer(token).json().open(server).await;
        assert_eq!(
            client.protocol(),
            Some(JSON_PROTOCOL),
            "the server echoes the sub-protocol it chose"
        );
        client
    }

    /// The sub-protocol the server chose (its `Sec-WebSocket-Protocol` answer), if any.
    pub fn protocol(&self) -> Option<&str> {
        self.protocol.as_deref()
    }

    /// Sends a text frame as it is, returning the transport's error if sending fails.
    pub async fn try_send_raw(&mut self, text: &str) -> Result<(), tungstenite::Error> {
        tokio::time::timeout(FRAME_TIMEOUT, self.stream.send(Message::text(text)))
            .await
            .unwrap_or_else(|_| panic!("a frame could not be sent within {FRAME_TIMEOUT:?}"))
    }

    /// Sends a text frame as it is (for malformed frames).
    pub async fn send_raw(&mut self, text: &str) {
        self.try_send_raw(text)
            .await
            .unwrap_or_else(|err| panic!("sending {text:?} failed: {err}"));
    }

    /// Sends the command `{"type": kind, "id": id, "data": data}` (PROTOCOL §3); `id` is left out when `None`.
    pub async fn send_cmd(&mut self, kind: &str, data: Value, id: Option<&str>) {
        let mut frame = json!({"type": kind, "data": data});
        if let Some(id) = id {
            frame["id"] = json!(id);
        }
        self.send_raw(&frame.to_string()).await;
    }

    /// The next frame other than a ping or pong, or `None` when nothing arrives within `wait`.
    pub async fn next_frame_within(&mut self, wait: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .ok()?;
            return Some(match next {
                None => Frame::Ended("the stream ended".into()),
                Some(Err(err)) => Frame::Ended(err.to_string()),
                Some(Ok(Message::Text(text))) => Frame::Text(text.as_str().to_owned()),
                Some(Ok(Message::Binary(bytes))) => Frame::Binary(bytes.to_vec()),
                Some(Ok(Message::Close(close))) => Frame::Close(
                    close.map(|frame| (u16::from(frame.code), frame.reason.as_str().to_owned())),
                ),
                Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            });
        }
    }

    /// The next frame other than a ping or pong; panics when none arrives within [`FRAME_TIMEOUT`].
    pub async fn next_frame(&mut self) -> Frame {
        self.next_frame_within(FRAME_TIMEOUT)
            .await
            .unwrap_or_else(|| panic!("no frame arrived within {FRAME_TIMEOUT:?}"))
    }

    /// The next text frame; panics on any other frame or when none arrives within [`FRAME_TIMEOUT`].
    pub async fn next_text(&mut self) -> String {
        match self.next_frame().await {
            Frame::Text(text) => text,
            other => panic!("expected a text frame, got {other:?}"),
        }
    }

    /// Asserts that the next text frame is exactly `expected`.
    pub async fn expect_text(&mut self, expected: &str) {
        let text = self.next_text().await;
        assert_eq!(text, expected, "unexpected frame");
    }

    /// Asserts that the next text frame is `[HH:MM:SS] <rest>` (PROTOCOL §4), and returns it.
    pub async fn expect_stamped(&mut self, rest: &str) -> String {
        let text = self.next_text().await;
        assert_stamped(&text, "", rest);
        text
    }

    /// Asserts that the next text frame is `#<room> [HH:MM:SS] <rest>`, as a connection in several rooms sees it.
    pub async fn expect_room_stamped(&mut self, room: &str, rest: &str) -> String {
        let text = self.next_text().await;
        assert_stamped(&text, &format!("#{room} "), rest);
        text
    }

    /// The next text frame parsed as JSON; panics when it is not JSON.
    pub async fn next_json(&mut self) -> Value {
        let text = self.next_text().await;
        serde_json::from_str(&text).unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))
    }

    /// The next JSON frame, asserting that its `type` is `kind`.
    pub async fn expect_json(&mut self, kind: &str) -> Value {
        let frame = self.next_json().await;
        assert_eq!(frame["type"], kind, "unexpected frame: {frame}");
        frame
    }

    /// The next JSON frame answering command `id` (carrying that id); frames before it (events, other answers) are
    /// skipped.
    pub async fn answer_to(&mut self, id: &str) -> Value {
        loop {
            let frame = self.next_json().await;
            if frame["id"] == id {
                return frame;
            }
        }
    }

    /// The next text frame with its `prefix` (e.g. `MESSAGES:`) removed and the rest parsed as JSON.
    pub async fn expect_prefixed_json(&mut self, prefix: &str) -> Value {
        let text = self.next_text().await;
        let rest = text
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected a frame starting with {prefix:?}, got {text:?}"));
        serde_json::from_str(rest)
            .unwrap_or_else(|err| panic!("not JSON after {prefix} ({err}): {text}"))
    }

    /// Asserts that the server closes the connection with a close frame carrying `code`.
    pub async fn expect_close(&mut self, code: u16) {
        match self.next_frame().await {
            Frame::Close(Some((got, reason))) => {
                assert_eq!(got, code, "closed with {got} ({reason:?}), expected {code}");
            }
            other => panic!("expected a close frame with code {code}, got {other:?}"),
        }
    }

    /// Proves that nothing is queued for this connection ahead of a sentinel: sends `list_rooms` with a fresh id and
    /// asserts that the very next frame is its answer (`rooms` with that id on the JSON protocol, `ROOMS_LIST:` on the
    /// text protocol), failing the test with whatever frame came first instead.
    ///
    /// The server answers a connection's commands in order and queues the events for it in the order they happen, so
    /// every frame queued before the sentinel's answer arrives before it. Call this once whatever must not arrive would
    /// already have been queued (the event was published, the command answered); it says nothing about later events.
    /// When a later event is what would carry the bug, make that event the sentinel instead: e.g. have another user
    /// post a message and assert that it is the next frame. The sentinel counts against the user's command rate
    /// limit like any command.
    pub async fn expect_nothing_before_sentinel(&mut self) {
        let id = format!("sentinel-{}", uuid::Uuid::new_v4());
        self.send_cmd("list_rooms", json!({}), Some(&id)).await;
        let frame = self.next_frame().await;
        let answered = match (&frame, self.protocol()) {
            (Frame::Text(text), Some(JSON_PROTOCOL)) => serde_json::from_str::<Value>(text)
                .is_ok_and(|reply| reply["type"] == "rooms" && reply["id"] == id.as_str()),
            (Frame::Text(text), _) => text.starts_with("ROOMS_LIST:"),
            _ => false,
        };
        assert!(
            answered,
            "expected nothing before the answer to the sentinel list_rooms (id {id}), got {frame:?}"
        );
    }

    /// Awaits a ping from the server within `wait`, skipping nothing else: any other frame fails the test.
    pub async fn expect_ping(&mut self, wait: Duration) {
        let next = tokio::time::timeout(wait, self.stream.next())
            .await
            .unwrap_or_else(|_| panic!("no ping within {wait:?}"));
        match next {
            Some(Ok(Message::Ping(_))) => {}
            other => panic!("expected a ping, got {other:?}"),
        }
    }

    /// Ends the connection the way a crashed client or a lost network does: the TCP stream is dropped without a
    /// close frame.
    pub fn drop_without_close(self) {
        drop(self.stream);
    }

    /// Closes the connection with a normal close frame (1000) and waits for the server's answer.
    pub async fn close(mut self) {
        let _ = tokio::time::timeout(FRAME_TIMEOUT, self.stream.close(None)).await;
        let _ = self.next_frame_within(FRAME_TIMEOUT).await;
    }
}

/// Asserts that `line` is `<prefix>[HH:MM:SS] <rest>`: a text-protocol line stamped with a time (PROTOCOL §4).
pub fn assert_stamped(line: &str, prefix: &str, rest: &str) {
    let stamped = line
        .strip_prefix(prefix)
        .unwrap_or_else(|| panic!("expected {line:?} to start with {prefix:?}"));
    let bytes = stamped.as_bytes();
    let clock_shaped = bytes.len() >= 11
        && bytes[0] == b'['
        && bytes[3] == b':'
        && bytes[6] == b':'
        && bytes[9] == b']'
        && bytes[10] == b' '
        && [1, 2, 4, 5, 7, 8]
            .iter()
            .all(|&i| bytes[i].is_ascii_digit());
    assert!(
        clock_shaped,
        "expected {line:?} to be {prefix:?} + \"[HH:MM:SS] \" + {rest:?}"
    );
    assert_eq!(&stamped[11..], rest, "in the line {line:?}");
}

/// Sends `GET /ws` with the WebSocket upgrade headers plus `headers` over plain HTTP, and returns the status and
/// body of the answer: for checking the exact body of a refusal.
pub async fn raw_upgrade(
    server: &impl Reachable,
    headers: &[(&str, &str)],
) -> (StatusCode, String) {
    let mut request = reqwest::Client::new()
        .get(server.url("/ws"))
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = tokio::time::timeout(FRAME_TIMEOUT, request.send())
        .await
        .expect("an answer in time")
        .expect("the request was sent");
    let status = response.status();
    let body = response.text().await.expect("a body");
    (status, body)
}
