//! `GET /ws`: the WebSocket endpoint (PROTOCOL §2). The request is upgraded by hand rather than through warp's `Ws`
//! filter, because warp cannot choose a sub-protocol nor shrink tungstenite's eager 128 KiB read buffer per connection.

pub mod capacity;
pub mod codec;
pub mod control;
pub mod handshake;
pub mod session;
pub mod tickets;

use std::sync::Arc;

use http::{HeaderValue, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use palaver_handlers::actions::authenticate::authenticate;
use palaver_handlers::model::Principal;
use tokio::sync::{mpsc, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use warp::Reply;
use warp::reply::Response;

use crate::audit::Actor;
use crate::context::AppContext;
use crate::http::auth::{Presented, SESSION_COOKIE, cookie, from_headers};
use crate::http::error::{error_response, json_error};
use capacity::Refused;
use codec::{Codec, JSON_PROTOCOL};
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

/// The plain-text 401 the seed answers when a WebSocket request carries no credentials.
fn missing_credentials() -> Response {
    let mut response = warp::reply::with_status(
        "Authorization header with Bearer token required",
        StatusCode::UNAUTHORIZED,
    )
    .into_response();
    response.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer"),
    );
    response
}

/// Who opens the socket: a Bearer token, a ticket, or the session cookie (only with an `Origin`, which was checked).
async fn principal_of(
    ctx: &AppContext,
    request: &hyper::Request<Incoming>,
) -> Result<Principal, Response> {
    let headers = request.headers();
    let token = match from_headers(headers) {
        Presented::Bearer(token) => Some(token),
        _ => None,
    };
    if let Some(token) = token {
        return authenticate(ctx, Some(&token))
            .await
            .map_err(|err| error_response(&err));
    }
    if let Some(ticket) = handshake::ticket(request.uri().query()) {
        return ctx.tickets.redeem(ticket).ok_or_else(|| {
            json_error(
                StatusCode::UNAUTHORIZED,
                "the ticket is invalid, used or expired",
                "invalid_ticket",
                None,
            )
        });
    }
    let cookie_token = cookie(headers, SESSION_COOKIE).filter(|token| !token.is_empty());
    match cookie_token {
        Some(token) if headers.contains_key(http::header::ORIGIN) => authenticate(ctx, Some(token))
            .await
            .map_err(|err| error_response(&err)),
        _ => Err(missing_credentials()),
    }
}

/// The answer when a user or an address already holds as many connections as allowed: 429, counted and audited.
fn too_many_connections(
    ctx: &AppContext,
    principal: &Principal,
    address: Option<std::net::IpAddr>,
    refused: Refused,
) -> Response {
    let limit = refused.limit();
    ctx.metrics.rate_limited.with_label_values(&[limit]).inc();
    let actor = Actor {
        ip: address,
        ..Actor::of(principal)
    };
    ctx.audit.rate_limited(limit, &actor);
    let message = match refused {
        Refused::User => "too many open connections for this user",
        Refused::Address => "too many open connections from this address",
    };
    json_error(StatusCode::TOO_MANY_REQUESTS, message, "rate_limited", None)
}

/// Answers a `GET /ws` request: refuses it, or switches protocols and starts the session in the background.
pub async fn upgrade(
    ctx: Arc<AppContext>,
    mut request: hyper::Request<Incoming>,
    shutdown: watch::Receiver<bool>,
    open: mpsc::Sender<()>,
) -> Response {
    if request.method() != http::Method::GET {
        return json_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET to open a WebSocket",
            "method_not_allowed",
            None,
        );
    }
    if !handshake::origin_allowed(request.headers(), &ctx.settings.allowed_origins) {
        tracing::warn!(origin = ?request.headers().get(http::header::ORIGIN), "websocket refused: foreign origin");
        return json_error(
            StatusCode::FORBIDDEN,
            "this origin may not open a WebSocket",
            "forbidden_origin",
            None,
        );
    }
    let principal = match principal_of(&ctx, &request).await {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    let accept = match handshake::check_upgrade(request.headers()) {
        Ok(key) => derive_accept_key(key),
        Err(BadHandshake::WrongVersion) => {
            let mut response = json_error(
                StatusCode::UPGRADE_REQUIRED,
                "WebSocket version 13 is required",
                "bad_handshake",
                None,
            );
            response.headers_mut().insert(
                http::header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
            return response;
        }
        Err(_) => {
            return json_error(
                StatusCode::BAD_REQUEST,
                "not a valid WebSocket handshake",
                "bad_handshake",
                None,
            );
        }
    };
    let address = request
        .extensions()
        .get::<crate::http::client_ip::ClientIp>()
        .map(|ip| ip.0);
    let slot = match ctx.connections.admit(principal.user_id, address) {
        Ok(slot) => slot,
        Err(refused) => return too_many_connections(&ctx, &principal, address, refused),
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
