//! A JSON-protocol WebSocket split into halves that run at once: one task sends as fast as the server takes frames
//! while another reads, as load tests and crash tests need (the one-at-a-time [`crate::ws::WsClient`] cannot).
//!
//! A [`Pipe`] talks to any address, so it works with an in-process [`crate::TestServer`] as well as with a
//! [`crate::process::ServerProcess`] that a test kills and restarts.
//!
//! ```no_run
//! # async fn example(addr: std::net::SocketAddr, token: &str) {
//! use futures_util::SinkExt;
//! use palaver_integration_tests::pipe::{self, Pipe};
//! let mut pipe = Pipe::open(addr, token).await;
//! let welcome = pipe.join_room(serde_json::json!({"name": "general"}), "j").await;
//! let message = serde_json::json!({"room": "general", "content": "hi"});
//! pipe.tx.send(pipe::command("room_message", message, "m1")).await.unwrap();
//! let seq = pipe.await_ack("m1").await;
//! # let _ = (welcome, seq);
//! # }
//! ```

use std::net::SocketAddr;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::ws::{FRAME_TIMEOUT, JSON_PROTOCOL};

/// The client side of a WebSocket to a test server.
pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// The sending half of a [`Pipe`].
pub type PipeSender = SplitSink<Socket, Message>;

/// The reading half of a [`Pipe`].
pub type PipeReceiver = SplitStream<Socket>;

/// A JSON-protocol connection split into its sending and its reading half; move each into a task of its own.
pub struct Pipe {
    /// Commands go out here (see [`command`]).
    pub tx: PipeSender,
    /// Frames come in here (see [`next_json`]).
    pub rx: PipeReceiver,
}

impl Pipe {
    /// Opens a JSON-protocol WebSocket to the server at `addr`, authenticated with a Bearer token.
    ///
    /// # Panics
    /// When the handshake is not answered within [`FRAME_TIMEOUT`], is refused, or the server does not choose
    /// [`JSON_PROTOCOL`].
    pub async fn open(addr: SocketAddr, token: &str) -> Pipe {
        let mut request = format!("ws://{addr}/ws")
            .into_client_request()
            .expect("a WebSocket URL");
        let headers = request.headers_mut();
        let bearer = HeaderValue::from_str(&format!("Bearer {token}")).expect("a token is ASCII");
        headers.insert("authorization", bearer);
        headers.insert(
            "sec-websocket-protocol",
            HeaderValue::from_static(JSON_PROTOCOL),
        );
        let (socket, response) =
            tokio::time::timeout(FRAME_TIMEOUT, tokio_tungstenite::connect_async(request))
                .await
                .unwrap_or_else(|_| panic!("no handshake answer within {FRAME_TIMEOUT:?}"))
                .unwrap_or_else(|err| panic!("the WebSocket did not open: {err}"));
        let chosen = response
            .headers()
            .get("sec-websocket-protocol")
            .and_then(|value| value.to_str().ok());
        assert_eq!(
            chosen,
            Some(JSON_PROTOCOL),
            "the server chose the JSON protocol"
        );
        let (tx, rx) = socket.split();
        Pipe { tx, rx }
    }

    /// Sends `join_room` with `data` and returns the `welcome` answering command `id`; presence frames before it
    /// are skipped, anything else fails the test.
    pub async fn join_room(&mut self, data: Value, id: &str) -> Value {
        self.tx
            .send(command("join_room", data, id))
            .await
            .expect("join_room sent");
        loop {
            let frame = next_json(&mut self.rx)
                .await
                .unwrap_or_else(|end| panic!("the connection {end} while joining"));
            match frame["type"].as_str() {
                Some("welcome") => {
                    assert_eq!(frame["id"], id, "{frame}");
                    return frame;
                }
                Some("joined" | "left") => {}
                _ => panic!("expected a welcome, got {frame}"),
            }
        }
    }

    /// Reads until the ack of command `id` and returns its seq; messages and presence frames on the way are skipped,
    /// anything else (an error, say) fails the test.
    pub async fn await_ack(&mut self, id: &str) -> i64 {
        loop {
            let frame = next_json(&mut self.rx)
                .await
                .unwrap_or_else(|end| panic!("the connection {end} before the ack of {id}"));
            match frame["type"].as_str() {
                Some("ack") => {
                    assert_eq!(frame["id"], id, "{frame}");
                    return frame["seq"]
                        .as_i64()
                        .unwrap_or_else(|| panic!("no seq in {frame}"));
                }
                Some("message" | "joined" | "left") => {}
                _ => panic!("expected the ack of {id}, got {frame}"),
            }
        }
    }
}

/// The command frame `{"type": kind, "id": id, "data": data}` (PROTOCOL §3).
pub fn command(kind: &str, data: Value, id: &str) -> Message {
    Message::text(json!({"type": kind, "id": id, "data": data}).to_string())
}

/// The next text frame as JSON, or how the connection ended (its close frame, or the transport's error); pings and
/// pongs are skipped.
///
/// # Panics
/// When nothing arrives within [`FRAME_TIMEOUT`], on a binary frame, and on text that is not JSON.
pub async fn next_json(rx: &mut PipeReceiver) -> Result<Value, String> {
    loop {
        let next = tokio::time::timeout(FRAME_TIMEOUT, rx.next())
            .await
            .unwrap_or_else(|_| panic!("no frame arrived within {FRAME_TIMEOUT:?}"));
        return match next {
            Some(Ok(Message::Text(text))) => Ok(serde_json::from_str(text.as_str())
                .unwrap_or_else(|err| panic!("not JSON ({err}): {text}"))),
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => continue,
            Some(Ok(Message::Binary(_))) => panic!("the server sent a binary frame"),
            Some(Ok(Message::Close(frame))) => Err(format!("closed with {frame:?}")),
            Some(Err(err)) => Err(format!("failed: {err}")),
            None => Err("ended without a close frame".into()),
        };
    }
}
