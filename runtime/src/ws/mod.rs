//! `GET /ws`: the WebSocket endpoint (PROTOCOL §2). The request is upgraded by hand rather than through warp's `Ws`
//! filter, because warp cannot choose a sub-protocol nor shrink tungstenite's eager 128 KiB read buffer per connection.

pub mod capacity;
pub mod control;
pub mod handshake;
pub mod session;

use std::sync::Arc;

use http::{HeaderValue, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use palaver_handlers::Error;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use warp::reply::Response;

use crate::auth::client_ip::ClientIp;
use crate::context::AppContext;
use crate::render::http::{error_response, seed_unauthorized};
use crate::render::{Codec, JSON_PROTOCOL};
use crate::shutdown::Shutdown;
use handshake::BadHandshake;

/// The path of the endpoint.
pub const PATH: &str = "/ws";

/// tungstenite's settings for one connection: a small read buffer, because every idle connection keeps one (a larger
/// frame still arrives whole: tungstenite reserves its full length and reads it in steps of this size), and a frame
/// cap above the message limit so a legal message always arrives and an oversized one gets the protocol's
/// rejection text rather than a close. JSON may escape every byte of content as `\u00XX` (six bytes for one), so the
/// cap is six times the limit plus room for the envelope.
pub fn socket_config(max_message_bytes: usize) -> WebSocketConfig {
    let frame_cap = max_message_bytes * 6 + 16 * 1024;
    WebSocketConfig::default()
        .read_buffer_size(1024)
        .write_buffer_size(16 * 1024)
        .max_write_buffer_size(4 * 1024 * 1024)
        .max_message_size(Some(frame_cap))
        .max_frame_size(Some(frame_cap))
}

/// The answer to a refused upgrade: the seed's plain-text 401 when no credentials came, else the JSON error.
fn refusal(err: &Error) -> Response {
    match err {
        Error::MissingCredentials => seed_unauthorized(),
        other => error_response(other),
    }
}

/// Answers a `GET /ws` request: refuses it, or switches protocols and starts the session in the background.
pub async fn upgrade(
    ctx: Arc<AppContext>,
    mut request: hyper::Request<Incoming>,
    shutdown: Shutdown,
    open: mpsc::Sender<()>,
) -> Response {
    if request.method() != http::Method::GET {
        return refusal(&Error::WebSocketNeedsGet);
    }
    if ctx
        .cluster
        .as_ref()
        .is_some_and(|node| node.presence.is_cut())
    {
        // The others count this node dead; its clients belong on a node that is in the cluster.
        return refusal(&Error::Unavailable(
            "this node is cut off from the cluster; connect to another node".into(),
        ));
    }
    if !handshake::origin_allowed(request.headers(), &ctx.settings.allowed_origins) {
        tracing::warn!(origin = ?request.headers().get(http::header::ORIGIN), "websocket refused: foreign origin");
        return refusal(&Error::ForbiddenOrigin);
    }
    let opened = crate::auth::socket_opener(&ctx, request.headers(), request.uri().query()).await;
    let principal = match opened {
        Ok(principal) => principal,
        Err(err) => return refusal(&err),
    };
    let accept = match handshake::check_upgrade(request.headers()) {
        Ok(key) => derive_accept_key(key),
        Err(BadHandshake::WrongVersion) => return refusal(&Error::WrongWebSocketVersion),
        Err(_) => return refusal(&Error::BadHandshake),
    };
    let address = request.extensions().get::<ClientIp>().map(|ip| ip.0);
    let slot = match ctx.connections.admit(principal.user_id, address) {
        Ok(slot) => slot,
        Err(cap) => {
            let actor = crate::auth::actor(&principal, address);
            ctx.guard.refused(capacity::limit_of(cap), &actor);
            return refusal(&Error::TooManyConnections(cap));
        }
    };
    let codec = handshake::chosen_codec(request.headers());
    let on_upgrade = hyper::upgrade::on(&mut request);
    let config = socket_config(ctx.settings.max_message_bytes);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let socket = WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    Some(config),
                )
                .await;
                session::run(ctx, socket, principal, codec, shutdown, open).await;
                drop(slot);
            }
            Err(err) => tracing::debug!(error = %err, "websocket upgrade failed"),
        }
    });
    let mut response = Response::new(Default::default());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(http::header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(
        http::header::CONNECTION,
        HeaderValue::from_static("Upgrade"),
    );
    if let Ok(accept) = HeaderValue::from_str(&accept) {
        headers.insert(http::header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    if codec == Codec::Json {
        headers.insert(
            http::header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static(JSON_PROTOCOL),
        );
    }
    response
}
