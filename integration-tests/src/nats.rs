//! The NATS server cluster tests run against. Where it comes from, in order:
//! 1. `TEST_NATS_URL` (e.g. `nats://127.0.0.1:4222`): that server; it must answer.
//! 2. A NATS server answering on `127.0.0.1:4222`.
//! 3. Neither, with `CI` set to `true` or `1`: a panic, because in CI the cluster suite must fail, never skip.
//! 4. Neither, outside CI: `None`, after one line on stderr saying the test was skipped and how to run it.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

/// The environment variable naming a NATS server to test against.
pub const TEST_NATS_URL: &str = "TEST_NATS_URL";

/// Where a NATS server is looked for when `TEST_NATS_URL` is not set.
const LOCAL: &str = "nats://127.0.0.1:4222";

/// The `host:port` of a `nats://host:port` URL.
pub fn address(url: &str) -> Option<SocketAddr> {
    url.strip_prefix("nats://")?.parse().ok()
}

/// Whether a NATS server answers at `addr` (it greets every connection with `INFO`).
async fn answers(addr: SocketAddr) -> bool {
    let greeting = async {
        let mut stream = TcpStream::connect(addr).await.ok()?;
        let mut info = [0u8; 4];
        stream.read_exact(&mut info).await.ok()?;
        Some(&info == b"INFO")
    };
    tokio::time::timeout(Duration::from_secs(2), greeting)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

/// The URL of a NATS server that answers, or `None` (after a note on stderr) when there is none outside CI.
///
/// # Panics
/// When `TEST_NATS_URL` is set and its server does not answer, and in CI when no server answers at all.
pub async fn server_url() -> Option<String> {
    if let Some(url) = std::env::var(TEST_NATS_URL)
        .ok()
        .filter(|url| !url.trim().is_empty())
    {
        let addr = address(url.trim())
            .unwrap_or_else(|| panic!("{TEST_NATS_URL} must be nats://<ip>:<port>, not {url:?}"));
        assert!(answers(addr).await, "{TEST_NATS_URL}={url} does not answer");
        return Some(url.trim().to_owned());
    }
    let local = address(LOCAL).expect("a valid address");
    if answers(local).await {
        return Some(LOCAL.to_owned());
    }
    let in_ci = std::env::var("CI").is_ok_and(|ci| ci.eq_ignore_ascii_case("true") || ci == "1");
    if in_ci {
        panic!("CI=true but no NATS: start nats-server on 127.0.0.1:4222 or set {TEST_NATS_URL}");
    }
    eprintln!(
        "cluster test skipped: no NATS server answers on 127.0.0.1:4222; start one (nats-server -js) or set \
         {TEST_NATS_URL} to run it"
    );
    None
}
