//! What every scenario needs: accounts over HTTP and JSON-protocol WebSockets.

use anyhow::{Context as _, bail};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// The password of every bench user.
const PASSWORD: &str = "bench horse battery staple";

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Registers `username` and logs it in; returns a token.
pub async fn user(http: &reqwest::Client, url: &str, username: &str) -> anyhow::Result<String> {
    let account = json!({"username": username, "email": format!("{username}@bench.example"), "password": PASSWORD});
    let registered = http
        .post(format!("{url}/api/register"))
        .json(&account)
        .send()
        .await?;
    if !registered.status().is_success() {
        bail!(
            "registering {username}: {} {}",
            registered.status(),
            registered.text().await?
        );
    }
    let login = json!({"username": username, "password": PASSWORD});
    let answer: Value = http
        .post(format!("{url}/api/login"))
        .json(&login)
        .send()
        .await?
        .json()
        .await?;
    answer["token"]
        .as_str()
        .map(str::to_owned)
        .context("login gave no token")
}

/// A JSON-protocol WebSocket, split for concurrent sending and receiving.
pub async fn socket(
    url: &str,
    token: &str,
) -> anyhow::Result<(SplitSink<Socket, Message>, SplitStream<Socket>)> {
    let ws_url = format!("{}/ws", url.replacen("http", "ws", 1));
    let mut request = ws_url.into_client_request()?;
    request
        .headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    request
        .headers_mut()
        .insert("sec-websocket-protocol", "palaver.v1.json".parse()?);
    let (socket, _) = tokio_tungstenite::connect_async(request).await?;
    Ok(socket.split())
}

/// Sends one command frame.
pub async fn send(
    sink: &mut SplitSink<Socket, Message>,
    kind: &str,
    id: &str,
    data: Value,
) -> anyhow::Result<()> {
    let frame = json!({"type": kind, "id": id, "data": data}).to_string();
    sink.send(Message::text(frame)).await?;
    Ok(())
}

/// The next JSON frame (pings skipped), or an error when the socket ends.
pub async fn next_json(stream: &mut SplitStream<Socket>) -> anyhow::Result<Value> {
    while let Some(message) = stream.next().await {
        if let Message::Text(text) = message? {
            return Ok(serde_json::from_str(text.as_str())?);
        }
    }
    bail!("the server closed the socket")
}

/// Reads frames until one of `kind` arrives; an `error` frame is an error.
pub async fn expect(stream: &mut SplitStream<Socket>, kind: &str) -> anyhow::Result<Value> {
    loop {
        let frame = next_json(stream).await?;
        match frame["type"].as_str() {
            Some(k) if k == kind => return Ok(frame),
            Some("error") => bail!("server error while waiting for {kind}: {frame}"),
            _ => {}
        }
    }
}
