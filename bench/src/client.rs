//! What every scenario needs: accounts over HTTP, JSON-protocol WebSockets opened from chosen source addresses, the
//! server's metrics.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context as _, bail};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Now, in nanoseconds of the machine's `CLOCK_MONOTONIC`: one clock for every process on the machine, so a send
/// time written by one bench process can be compared with a receive time read in another.
pub fn now_nanos() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is a valid timespec for clock_gettime to write; CLOCK_MONOTONIC always exists on Linux.
    let failed = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut now) } != 0;
    assert!(!failed, "clock_gettime(CLOCK_MONOTONIC) failed");
    now.tv_sec as u64 * 1_000_000_000 + now.tv_nsec as u64
}

/// The password of every bench user.
const PASSWORD: &str = "bench horse battery staple";

/// A JSON-protocol WebSocket to the server.
pub type Socket = WebSocketStream<TcpStream>;

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

/// Registers and logs in `count` users named `b<tag>_<i>`, a few at a time; returns their tokens in order.
pub async fn users(
    http: &reqwest::Client,
    url: &str,
    tag: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    futures_util::stream::iter(0..count)
        .map(|i| async move { user(http, url, &format!("b{tag}_{i}")).await })
        .buffered(16)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect()
}

/// Opens WebSockets to one server, spreading them over source addresses 127.0.0.2, 127.0.0.3, … so that more
/// connections fit than one address has ephemeral ports (about 28 000 on Linux's default range).
#[derive(Clone)]
pub struct Connector {
    ws_url: String,
    server: SocketAddr,
    sources: Vec<IpAddr>,
}

impl Connector {
    /// A connector for the server at `url` (http://host:port) using `source_addresses` loopback source addresses;
    /// 0 lets the operating system choose.
    pub async fn new(url: &str, source_addresses: usize) -> anyhow::Result<Self> {
        let parsed = reqwest::Url::parse(url).with_context(|| format!("bad --url {url}"))?;
        let host = parsed.host_str().context("--url has no host")?;
        let port = parsed
            .port_or_known_default()
            .context("--url has no port")?;
        let server = tokio::net::lookup_host((host, port))
            .await?
            .next()
            .with_context(|| format!("{host} does not resolve"))?;
        if source_addresses > 250 {
            bail!("at most 250 source addresses (127.0.0.2 to 127.0.0.251)");
        }
        if source_addresses > 0 && !server.ip().is_loopback() {
            bail!("--source-addresses needs a server on a loopback address");
        }
        let sources = (0..source_addresses)
            .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + i as u8)))
            .collect();
        Ok(Connector {
            ws_url: format!("{}/ws", url.trim_end_matches('/').replacen("http", "ws", 1)),
            server,
            sources,
        })
    }

    /// Opens connection number `i` (its source address is chosen round-robin by `i`) with `token`, offering the JSON
    /// sub-protocol.
    pub async fn open(&self, token: &str, i: usize) -> anyhow::Result<Socket> {
        let socket = if self.server.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if !self.sources.is_empty() {
            let source = self.sources[i % self.sources.len()];
            socket
                .bind(SocketAddr::new(source, 0))
                .with_context(|| format!("binding to {source}"))?;
        }
        let stream = socket.connect(self.server).await?;
        stream.set_nodelay(true)?;
        let mut request = self.ws_url.as_str().into_client_request()?;
        let headers = request.headers_mut();
        headers.insert("authorization", format!("Bearer {token}").parse()?);
        headers.insert("sec-websocket-protocol", "palaver.v1.json".parse()?);
        // tungstenite's default read buffer is 128 KiB per socket: far too much for tens of thousands of them.
        let config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(4 * 1024);
        let (socket, _) =
            tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
        Ok(socket)
    }
}

/// A JSON-protocol WebSocket, split for concurrent sending and receiving.
pub async fn socket(
    url: &str,
    token: &str,
) -> anyhow::Result<(SplitSink<Socket, Message>, SplitStream<Socket>)> {
    let socket = Connector::new(url, 0).await?.open(token, 0).await?;
    Ok(socket.split())
}

/// One command frame, as text.
pub fn frame(kind: &str, id: &str, data: Value) -> Message {
    Message::text(json!({"type": kind, "id": id, "data": data}).to_string())
}

/// Sends one command frame.
pub async fn send<S>(sink: &mut S, kind: &str, id: &str, data: Value) -> anyhow::Result<()>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    sink.send(frame(kind, id, data)).await?;
    Ok(())
}

/// The next JSON frame (pings skipped), or an error when the socket ends.
pub async fn next_json<S>(stream: &mut S) -> anyhow::Result<Value>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    while let Some(message) = stream.next().await {
        if let Message::Text(text) = message? {
            return Ok(serde_json::from_str(text.as_str())?);
        }
    }
    bail!("the server closed the socket")
}

/// Reads frames until one of `kind` arrives; an `error` frame is an error.
pub async fn expect<S>(stream: &mut S, kind: &str) -> anyhow::Result<Value>
where
    S: futures_util::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        let frame = next_json(stream).await?;
        match frame["type"].as_str() {
            Some(k) if k == kind => return Ok(frame),
            Some("error") => bail!("server error while waiting for {kind}: {frame}"),
            _ => {}
        }
    }
}

/// Sends a close frame and waits (up to two seconds) for the server to close the TCP connection, so that the
/// server, not the bench, keeps the TIME_WAIT state and the bench's ports are free for the next run.
pub async fn close(mut socket: Socket) {
    let polite = async {
        let _ = socket.close(None).await;
        while let Some(Ok(_)) = socket.next().await {}
    };
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), polite).await;
}

/// One gauge or counter from the server's `GET /metrics`, if it can be read.
pub async fn metric(http: &reqwest::Client, url: &str, name: &str) -> Option<f64> {
    let text = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .ok()?
        .text()
        .await
        .ok()?;
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}
