//! The server: builds the context, accepts TCP connections, serves each with hyper (the HTTP routes through warp),
//! and shuts down gracefully.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::mpsc::Sender;
use tokio::task::JoinHandle;
use tower_service::Service as _;

use crate::auth::client_ip::{ClientIp, client_ip};
use crate::config::{Mode, Settings};
use crate::context::{AppContext, SystemClock};
use crate::credentials::{RealCredentials, TokenSettings};
use crate::delivery::{BatchSettings, Fanout, GroupCommit};
use crate::hub::LocalHub;
use crate::metrics::Metrics;
use crate::ratelimit::Decision;
use crate::render::http::error_response;
use crate::shutdown::{self, Shutdown, Stop};
use palaver_handlers::model::Limit;
use palaver_handlers::{Broker, Error, Limits, Presence};

/// The address of the peer that opened the connection, put into every request's extensions.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub SocketAddr);

/// A server that is accepting connections.
pub struct RunningServer {
    local_addr: SocketAddr,
    stop: Stop,
    task: JoinHandle<()>,
}

impl RunningServer {
    /// The address it listens on (useful when the configured port was 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets open connections finish within the grace period, and waits until it is done.
    pub async fn shutdown(self) {
        self.stop.stop();
        let _ = self.task.await;
    }

    /// Runs until `signal` resolves, then shuts down.
    pub async fn run_until(self, signal: impl std::future::Future<Output = ()>) {
        signal.await;
        tracing::info!("shutting down");
        self.shutdown().await;
    }
}

/// How many connections may wait to be accepted. The standard library's 128 overflows under a burst of reconnects
/// (clients whose SYN is dropped retry only after a second); the kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: u32 = 4096;

/// A listening socket on `addr` with [`LISTEN_BACKLOG`].
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Builds the context from `settings` (opening the store and running its migrations), binds the listener and starts
/// serving in the background.
pub async fn start(settings: Settings) -> anyhow::Result<RunningServer> {
    let (stop, shutdown) = shutdown::channel();
    let ctx = Arc::new(build_context(settings, shutdown.clone()).await?);
    let listener = listen(ctx.settings.listen)
        .with_context(|| format!("cannot listen on {}", ctx.settings.listen))?;
    let local_addr = listener
        .local_addr()
        .context("listener has no local address")?;
    tokio::spawn(crate::store::maintenance::purge_expired(
        ctx.store.clone(),
        crate::store::maintenance::PURGE_EVERY,
        shutdown.clone(),
    ));
    let task = tokio::spawn(accept_loop(listener, ctx, shutdown));
    tracing::info!(%local_addr, "palaver is listening");
    Ok(RunningServer {
        local_addr,
        stop,
        task,
    })
}

/// Builds the context from `settings`; its background tasks end with `shutdown`.
pub(crate) async fn build_context(
    settings: Settings,
    shutdown: Shutdown,
) -> anyhow::Result<AppContext> {
    let secret = if settings.needs_generated_secret() {
        // Config loading already refused this in production mode.
        debug_assert_eq!(settings.env, Mode::Dev);
        tracing::warn!(
            "no PALAVER_JWT_SECRET of at least 32 bytes: using a random one for this run (dev mode); \
             tokens will not survive a restart"
        );
        let mut secret = vec![0u8; 64];
        rand::fill(&mut secret[..]);
        secret
    } else {
        settings.jwt_secret.clone().into_bytes()
    };
    let crate::store::Opened { store, pool } = crate::store::open(
        &settings.database_url,
        &settings.sqlite_path,
        settings.db_pool_size,
        settings.db_timeout(),
    )
    .await
    .context("cannot open the database")?;
    let csrf = crate::auth::csrf::CsrfKey::derive(&secret);
    let tickets = crate::auth::tickets::Tickets::new(
        &secret,
        Duration::from_secs(settings.ws_ticket_ttl_secs),
    );
    let tokens = TokenSettings {
        secret,
        issuer: settings.jwt_issuer.clone(),
        audience: settings.jwt_audience.clone(),
        ttl: settings.token_ttl(),
    };
    let credentials =
        RealCredentials::new(settings.bcrypt_cost, settings.bcrypt_concurrency, tokens)
            .await
            .context("cannot set up password hashing")?;
    let limits = Limits {
        max_message_bytes: settings.max_message_bytes,
        rooms_per_user: settings.rooms_per_user,
        max_replay: settings.max_replay,
        edit_window_secs: settings.edit_window_secs,
        max_reactions_per_message: settings.max_reactions_per_message,
    };
    let metrics = Arc::new(Metrics::new());
    let hub = Arc::new(LocalHub::with_metrics(metrics.clone()));
    let batching = BatchSettings {
        max_batch: settings.group_commit_max_batch,
        linger: Duration::from_micros(settings.group_commit_linger_us),
        queue: settings.group_commit_queue,
        commit_timeout: settings.db_timeout() * 2,
    };
    let connections = crate::ws::capacity::ConnectionCaps::new(
        settings.ws_connections_per_user,
        settings.ws_connections_per_ip,
    );
    let cluster = cluster(&settings, &hub, &store, &metrics, shutdown).await?;
    let (broker, presence): (Arc<dyn Broker>, Arc<dyn Presence>) = match &cluster {
        Some(node) => {
            connections.count_elsewhere(node.presence.clone());
            (node.broker.clone(), node.presence.clone())
        }
        None => (hub.clone(), hub.clone()),
    };
    let fanout = Fanout::new(broker.clone(), metrics.clone());
    let messages = GroupCommit::start(store.clone(), fanout, metrics.clone(), batching);
    let audit = crate::audit::Audit::start(store.clone());
    let guard = crate::guard::SecurityGuard::new(
        settings.room_password_attempts,
        Duration::from_secs(settings.room_password_window_secs),
        audit,
        metrics.clone(),
    );
    let receipts = crate::delivery::ReceiptThrottle::new(
        broker.clone(),
        crate::delivery::receipts::RECEIPT_EVERY,
    );
    Ok(AppContext {
        guard,
        connections,
        store,
        pool,
        metrics,
        credentials,
        clock: SystemClock,
        hub,
        broker,
        presence,
        cluster,
        messages,
        receipts,
        limits,
        csrf,
        tickets,
        http_limits: crate::ratelimit::HttpLimits::new(
            settings.http_requests_per_minute,
            settings.registrations_per_hour,
            (
                settings.login_failure_limit,
                settings.login_ip_failure_limit,
            ),
            Duration::from_secs(settings.login_failure_window_secs),
        ),
        socket_limits: crate::ratelimit::SocketLimits::new(
            settings.ws_message_limit,
            Duration::from_millis(settings.ws_message_window_ms),
            settings.ws_flood_refusals,
        ),
        settings,
    })
}

/// With `nats_url`, this node joins the cluster; without, it is the only node.
async fn cluster(
    settings: &Settings,
    hub: &Arc<LocalHub>,
    store: &Arc<dyn palaver_handlers::Store>,
    metrics: &Arc<Metrics>,
    shutdown: Shutdown,
) -> anyhow::Result<Option<Arc<crate::cluster::Node>>> {
    let url = settings.nats_url.trim();
    if url.is_empty() {
        return Ok(None);
    }
    let node_id = match settings.node_id.trim() {
        "" => crate::cluster::random_node_id(),
        given => given.to_owned(),
    };
    let parts = crate::cluster::Parts {
        name: settings.cluster_name.clone(),
        hub: hub.clone(),
        store: store.clone(),
        metrics: metrics.clone(),
        timing: crate::cluster::broker::Timing {
            gap_hold: Duration::from_millis(settings.cluster_gap_hold_ms),
            position_check: Duration::from_millis(settings.cluster_position_check_ms),
        },
        liveness: crate::cluster::presence::Liveness {
            heartbeat: Duration::from_millis(settings.cluster_heartbeat_ms),
            silence: Duration::from_millis(settings.cluster_dead_after_ms),
        },
    };
    let node = crate::cluster::join(url, node_id.clone(), parts, shutdown)
        .await
        .with_context(|| format!("cannot use NATS at {url} (nats_url)"))?;
    tracing::info!(node = %node_id, nats = %url, "clustered");
    Ok(Some(Arc::new(node)))
}

async fn accept_loop(listener: TcpListener, ctx: Arc<AppContext>, mut shutdown: Shutdown) {
    let routes = warp::service(crate::http::routes(ctx.clone()));
    // Every connection task holds a clone of `open`; when the receiver sees the channel closed, all are gone.
    let (open, mut all_closed) = tokio::sync::mpsc::channel::<()>(1);
    let mut http = hyper::server::conn::http1::Builder::new();
    // Past either head limit hyper answers 431 itself and closes the connection; nothing of the request is routed.
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_millis(ctx.settings.header_timeout_ms))
        .max_header_size(ctx.settings.max_header_bytes)
        .max_headers(ctx.settings.max_headers);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(err) => {
                        // Usually EMFILE: back off briefly instead of spinning.
                        tracing::warn!(error = %err, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let routes = routes.clone();
                let (ctx, stop, open_for_sockets) = (ctx.clone(), shutdown.clone(), open.clone());
                let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
                    request.extensions_mut().insert(ClientAddr(peer));
                    let ip = client_ip(peer, request.headers(), &ctx.settings.trusted_proxies);
                    request.extensions_mut().insert(ClientIp(ip));
                    let mut routes = routes.clone();
                    let (ctx, stop, open) = (ctx.clone(), stop.clone(), open_for_sockets.clone());
                    async move {
                        let response = if let Some(refusal) = over_request_limit(&ctx, ip, request.uri().path()) {
                            refusal
                        } else if request.uri().path() == crate::ws::PATH {
                            crate::ws::upgrade(ctx, request, stop, open).await
                        } else {
                            routes.call(request).await?
                        };
                        Ok::<_, std::convert::Infallible>(crate::http::web::nosniff(response))
                    }
                });
                let connection = http.serve_connection(TokioIo::new(stream), service).with_upgrades();
                tokio::spawn(serve_connection(connection, peer, shutdown.clone(), open.clone()));
            }
            _ = shutdown.stopped() => break,
        }
    }
    drop(listener);
    drop(open);
    let grace = Duration::from_millis(ctx.settings.shutdown_grace_ms);
    tokio::select! {
        _ = all_closed.recv() => tracing::info!("all connections closed"),
        _ = tokio::time::sleep(grace) => tracing::warn!("grace period over; closing remaining connections"),
    }
}

/// Serves one connection until it ends; on shutdown, asks it to finish its current request and close.
async fn serve_connection<C>(
    connection: C,
    peer: SocketAddr,
    mut shutdown: Shutdown,
    _open: Sender<()>,
) where
    C: std::future::Future<Output = hyper::Result<()>> + GracefulClose,
{
    let mut connection = std::pin::pin!(connection);
    let finished = tokio::select! {
        result = connection.as_mut() => Some(result),
        _ = shutdown.stopped() => None,
    };
    let result = match finished {
        Some(result) => result,
        None => {
            connection.as_mut().close_gracefully();
            connection.as_mut().await
        }
    };
    if let Err(err) = result {
        tracing::debug!(%peer, error = %err, "connection ended with an error");
    }
}

/// The 429 for a client over its request budget, if it is. Probes and scrapes are never limited, nor are the browser
/// client's files: they are served from memory, and one page load asks for over a dozen of them, so counting them
/// would lock out a few reloads or an office behind one address.
fn over_request_limit(
    ctx: &AppContext,
    ip: std::net::IpAddr,
    path: &str,
) -> Option<warp::reply::Response> {
    if matches!(path, "/" | "/healthz" | "/readyz" | "/metrics") || path.starts_with("/static/") {
        return None;
    }
    match ctx
        .http_limits
        .requests
        .check(&ip, std::time::Instant::now())
    {
        Decision::Allowed => None,
        Decision::Limited { retry_after } => {
            let actor = crate::audit::Actor {
                ip: Some(ip),
                ..Default::default()
            };
            ctx.guard.refused(Limit::HttpRequests, &actor);
            Some(error_response(&Error::TooManyRequests { retry_after }))
        }
    }
}

/// A hyper connection that can be asked to finish its in-flight request and close.
trait GracefulClose {
    fn close_gracefully(self: std::pin::Pin<&mut Self>);
}

impl<I, S> GracefulClose for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S: hyper::service::HttpService<Incoming>,
    S::ResBody: hyper::body::Body + 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn close_gracefully(self: std::pin::Pin<&mut Self>) {
        self.graceful_shutdown();
    }
}
