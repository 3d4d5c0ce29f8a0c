//! A TCP proxy in front of any address, for tests that take a dependency away and bring it back: PostgreSQL today,
//! a NATS server or anything else spoken over TCP tomorrow. Point the server under test at [`Proxy::addr`] instead of
//! the real address (see [`through`] for URLs), then:
//!
//! - [`Proxy::cut`]: every forwarded connection is closed at once, and new ones are closed as soon as they are
//!   accepted, as when the network or the dependency goes down;
//! - [`Proxy::heal`]: new connections are forwarded again;
//! - [`Proxy::lose_next_answer_to`]: the next connection that sends a given request (e.g. `COMMIT`) is closed right
//!   after the request is forwarded, so the dependency acts on it but its answer never arrives;
//! - dropping the proxy closes every connection and stops listening.
//!
//! The proxy forwards bytes and understands no protocol; it never delays or reorders them.
//!
//! ```no_run
//! # async fn example() {
//! use palaver_integration_tests::TestServer;
//! use palaver_integration_tests::proxy::{ProxiedPostgres, Proxy, through};
//! // Any TCP service:
//! let upstream: std::net::SocketAddr = "127.0.0.1:4222".parse().unwrap();
//! let proxy = Proxy::start(upstream).await;
//! let _url = through("nats://127.0.0.1:4222", proxy.addr()); // "nats://127.0.0.1:<proxy port>"
//! proxy.cut(); // the service is gone
//! proxy.heal(); // and back
//!
//! // A test server whose PostgreSQL is reached through a proxy:
//! let Some(database) = ProxiedPostgres::start().await else { return };
//! let server = TestServer::start_on_postgres(database.url(), &[]).await;
//! database.proxy.cut(); // the server's database is gone
//! let _ready = server.url("/readyz");
//! # drop(server);
//! # }
//! ```

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::pg::{self, PgDatabase};

/// How many bytes one read forwards at most.
const CHUNK: usize = 16 * 1024;

/// A TCP proxy on a free port of 127.0.0.1, forwarding every connection to one upstream address. Dropping it closes
/// every connection and the listening socket.
pub struct Proxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accepting: JoinHandle<()>,
}

/// What the proxy's tasks share.
struct Shared {
    upstream: SocketAddr,
    /// `false`: every forwarded connection is closed, and new ones are closed as soon as they are accepted.
    open: watch::Sender<bool>,
    /// Whether [`Shared::lose_answer_to`] holds a request; checked first, so unarmed forwarding takes no lock.
    armed: AtomicBool,
    /// The request whose answer the next connection that sends it loses.
    lose_answer_to: Mutex<Option<Vec<u8>>>,
    /// How many armed faults have fired.
    answers_lost: AtomicUsize,
    /// How many connections were forwarded (connected upstream) so far.
    forwarded: AtomicUsize,
}

impl Proxy {
    /// Starts a proxy to `upstream` on a free port of 127.0.0.1 and returns once it accepts connections.
    ///
    /// # Panics
    /// When no local port can be bound.
    pub async fn start(upstream: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the proxy");
        let addr = listener.local_addr().expect("the proxy's address");
        let shared = Arc::new(Shared {
            upstream,
            open: watch::Sender::new(true),
            armed: AtomicBool::new(false),
            lose_answer_to: Mutex::new(None),
            answers_lost: AtomicUsize::new(0),
            forwarded: AtomicUsize::new(0),
        });
        let accepting = tokio::spawn(accept(listener, shared.clone()));
        Proxy {
            addr,
            shared,
            accepting,
        }
    }

    /// The address to connect to instead of the upstream one.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address the proxy forwards to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// Closes every forwarded connection now; until [`Proxy::heal`], new connections are accepted and closed at once.
    pub fn cut(&self) {
        self.shared.open.send_replace(false);
    }

    /// Forwards new connections again (the ones [`Proxy::cut`] closed stay closed).
    pub fn heal(&self) {
        self.shared.open.send_replace(true);
    }

    /// Whether the proxy is cut.
    pub fn is_cut(&self) -> bool {
        !*self.shared.open.borrow()
    }

    /// Arms a one-shot fault: the next connection whose client sends `request` (e.g. `b"COMMIT"` to PostgreSQL) is
    /// closed right after the bytes carrying it are forwarded, before any answer comes back. The upstream acts on
    /// the request; the client never hears how it went. A request split across reads is found as well.
    pub fn lose_next_answer_to(&self, request: &[u8]) {
        assert!(!request.is_empty(), "an empty request matches everything");
        *self.lock_fault() = Some(request.to_vec());
        self.shared.armed.store(true, Ordering::SeqCst);
    }

    /// How many answers [`Proxy::lose_next_answer_to`] made the proxy lose so far.
    pub fn answers_lost(&self) -> usize {
        self.shared.answers_lost.load(Ordering::SeqCst)
    }

    /// Whether a fault armed with [`Proxy::lose_next_answer_to`] is still waiting for its request.
    pub fn is_armed(&self) -> bool {
        self.shared.armed.load(Ordering::SeqCst)
    }

    /// How many connections the proxy has forwarded (connected upstream) since it started.
    pub fn forwarded(&self) -> usize {
        self.shared.forwarded.load(Ordering::SeqCst)
    }

    fn lock_fault(&self) -> std::sync::MutexGuard<'_, Option<Vec<u8>>> {
        self.shared
            .lose_answer_to
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accepting.abort();
        self.cut();
    }
}

impl Shared {
    /// Whether `recent` (the tail of what the client sent, ending with the bytes just forwarded) holds the armed
    /// request; disarms the fault when it does.
    fn fires(&self, recent: &[u8]) -> bool {
        if !self.armed.load(Ordering::SeqCst) {
            return false;
        }
        let mut fault = self
            .lose_answer_to
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let found = fault
            .as_deref()
            .is_some_and(|request| recent.windows(request.len()).any(|bytes| bytes == request));
        if found {
            *fault = None;
            self.armed.store(false, Ordering::SeqCst);
            self.answers_lost.fetch_add(1, Ordering::SeqCst);
        }
        found
    }

    /// The longest armed request, to know how much of the client's stream to keep for matching across reads.
    fn armed_len(&self) -> usize {
        if !self.armed.load(Ordering::SeqCst) {
            return 0;
        }
        self.lose_answer_to
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .as_ref()
            .map_or(0, Vec::len)
    }
}

async fn accept(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            continue;
        };
        if !*shared.open.borrow() {
            drop(client);
            continue;
        }
        tokio::spawn(forward(client, shared.clone()));
    }
}

/// Forwards one connection byte for byte until either side closes, the proxy is cut, or it carried the request
/// whose answer is to be lost.
async fn forward(mut client: TcpStream, shared: Arc<Shared>) {
    let Ok(mut upstream) = TcpStream::connect(shared.upstream).await else {
        return;
    };
    shared.forwarded.fetch_add(1, Ordering::SeqCst);
    let mut open = shared.open.subscribe();
    let (mut up, mut down) = (vec![0_u8; CHUNK], vec![0_u8; CHUNK]);
    // The end of what the client sent before the current read, so a request split across reads is still found.
    let mut recent: Vec<u8> = Vec::new();
    loop {
        tokio::select! {
            read = client.read(&mut up) => {
                let Ok(n @ 1..) = read else { return };
                if upstream.write_all(&up[..n]).await.is_err() {
                    return;
                }
                let armed_len = shared.armed_len();
                if armed_len == 0 {
                    recent.clear();
                    continue;
                }
                recent.extend_from_slice(&up[..n]);
                if shared.fires(&recent) {
                    return;
                }
                let excess = recent.len().saturating_sub(armed_len - 1);
                recent.drain(..excess);
            }
            read = upstream.read(&mut down) => {
                let Ok(n @ 1..) = read else { return };
                if client.write_all(&down[..n]).await.is_err() {
                    return;
                }
            }
            () = cut(&mut open) => return,
        }
    }
}

/// Resolves once the proxy is cut (or gone).
async fn cut(open: &mut watch::Receiver<bool>) {
    while *open.borrow_and_update() {
        if open.changed().await.is_err() {
            return;
        }
    }
}

/// `url` with its host and port replaced by `addr` (user, path and query kept): the URL of the same service through
/// a proxy. Works for any `scheme://[user@]host[:port][/path][?query]` URL (`postgres://`, `nats://`, …).
///
/// # Panics
/// When `url` has no `scheme://`.
pub fn through(url: &str, addr: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").expect("a URL with a scheme");
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let user = authority
        .rsplit_once('@')
        .map(|(user, _)| format!("{user}@"))
        .unwrap_or_default();
    format!("{scheme}://{user}{addr}{tail}")
}

/// A fresh PostgreSQL schema (see [`crate::pg`]) and a [`Proxy`] in front of its server: give [`ProxiedPostgres::url`]
/// to the server under test (an in-process [`crate::TestServer::start_on_postgres`], or a
/// [`crate::process::ServerProcess`] with `PALAVER_DATABASE_URL`), and the test can take the database away from it
/// and give it back. Drop whatever is connected to it first: the schema goes with this guard.
pub struct ProxiedPostgres {
    /// The proxy between the server under test and PostgreSQL.
    pub proxy: Proxy,
    /// The URL through the proxy.
    url: String,
    // Declared last: the proxy is gone before the schema is dropped.
    database: PgDatabase,
}

impl ProxiedPostgres {
    /// A fresh schema and a proxy in front of its server; `None` when PostgreSQL is not available outside CI (see
    /// [`crate::pg::fresh_database_url`]).
    pub async fn start() -> Option<ProxiedPostgres> {
        let database = pg::fresh_database_url().await?;
        let proxy = Proxy::start(pg::server_addr(database.url()).await).await;
        let url = through(database.url(), proxy.addr());
        Some(ProxiedPostgres {
            proxy,
            url,
            database,
        })
    }

    /// The schema's URL through the proxy, for the server under test.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The schema's URL straight to PostgreSQL, for a test that looks at the database while the proxy is cut.
    pub fn direct_url(&self) -> &str {
        self.database.url()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const PATIENCE: Duration = Duration::from_secs(5);

    #[test]
    fn through_replaces_only_host_and_port() {
        let addr: SocketAddr = "127.0.0.1:40001".parse().unwrap();
        let cases = [
            (
                "postgres://postgres@127.0.0.1:5432/test?options=-csearch_path%3Ds",
                "postgres://postgres@127.0.0.1:40001/test?options=-csearch_path%3Ds",
            ),
            (
                "postgres://user:secret@db.example:5432/app",
                "postgres://user:secret@127.0.0.1:40001/app",
            ),
            ("nats://nats.example:4222", "nats://127.0.0.1:40001"),
            ("nats://localhost?name=x", "nats://127.0.0.1:40001?name=x"),
        ];
        for (url, expected) in cases {
            assert_eq!(through(url, addr), expected, "for {url}");
        }
    }

    /// A TCP service that answers every read with the same bytes, and records everything it received.
    async fn echo() -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (received, log) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let received = received.clone();
                tokio::spawn(async move {
                    let mut buf = vec![0_u8; 1024];
                    while let Ok(n @ 1..) = socket.read(&mut buf).await {
                        let _ = received.send(buf[..n].to_vec());
                        if socket.write_all(&buf[..n]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        (addr, log)
    }

    /// Sends `bytes` and reads the echo; `None` when the connection ends first.
    async fn round_trip(socket: &mut TcpStream, bytes: &[u8]) -> Option<Vec<u8>> {
        socket.write_all(bytes).await.ok()?;
        let mut answer = vec![0_u8; bytes.len()];
        tokio::time::timeout(PATIENCE, socket.read_exact(&mut answer))
            .await
            .expect("an answer or a hang-up in time")
            .ok()?;
        Some(answer)
    }

    /// Asserts that the proxy ends `socket` (EOF or a reset) within [`PATIENCE`].
    async fn assert_ended(socket: &mut TcpStream) {
        let mut buf = [0_u8; 16];
        let read = tokio::time::timeout(PATIENCE, socket.read(&mut buf))
            .await
            .expect("the proxy ends the connection in time");
        assert!(
            matches!(read, Ok(0) | Err(_)),
            "expected the end, read {read:?}"
        );
    }

    #[tokio::test]
    async fn forwards_cuts_refuses_heals_and_closes_on_drop() {
        let (upstream, _log) = echo().await;
        let proxy = Proxy::start(upstream).await;
        assert_eq!(proxy.upstream(), upstream);
        let mut before = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(
            round_trip(&mut before, b"ping").await.as_deref(),
            Some(&b"ping"[..])
        );
        assert_eq!(proxy.forwarded(), 1);

        proxy.cut();
        assert!(proxy.is_cut());
        assert_ended(&mut before).await;
        let mut refused = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_ended(&mut refused).await;
        assert_eq!(proxy.forwarded(), 1, "nothing was forwarded while cut");

        proxy.heal();
        assert!(!proxy.is_cut());
        let mut after = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(
            round_trip(&mut after, b"pong").await.as_deref(),
            Some(&b"pong"[..])
        );

        let addr = proxy.addr();
        drop(proxy);
        assert_ended(&mut after).await;
        let gone = tokio::time::timeout(PATIENCE, async {
            // The accept loop is aborted on drop; the port stops accepting once its task is gone.
            loop {
                match TcpStream::connect(addr).await {
                    Err(_) => return,
                    Ok(mut socket) => assert_ended(&mut socket).await,
                }
                tokio::task::yield_now().await;
            }
        })
        .await;
        assert!(gone.is_ok(), "the proxy still listens after it was dropped");
    }

    #[tokio::test]
    async fn the_answer_to_an_armed_request_is_lost_once_even_when_split() {
        let (upstream, mut log) = echo().await;
        let proxy = Proxy::start(upstream).await;
        let mut socket = TcpStream::connect(proxy.addr()).await.unwrap();
        proxy.lose_next_answer_to(b"COMMIT");
        assert!(proxy.is_armed());
        assert_eq!(
            round_trip(&mut socket, b"BEGIN; COM").await.as_deref(),
            Some(&b"BEGIN; COM"[..])
        );
        socket.write_all(b"MIT;").await.unwrap();
        assert_ended(&mut socket).await;
        let mut received = Vec::new();
        while received != b"BEGIN; COMMIT;" {
            let bytes = tokio::time::timeout(PATIENCE, log.recv())
                .await
                .expect("the upstream receives the request")
                .expect("the upstream runs");
            received.extend(bytes);
        }
        assert_eq!((proxy.answers_lost(), proxy.is_armed()), (1, false));
        // One-shot: the next connection's COMMIT is answered.
        let mut next = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(
            round_trip(&mut next, b"COMMIT").await.as_deref(),
            Some(&b"COMMIT"[..])
        );
        assert_eq!(proxy.answers_lost(), 1);
    }
}
