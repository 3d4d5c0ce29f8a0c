//! The HTTP API (PROTOCOL §1) as warp filters. Each route decodes its request, calls one handler and renders the
//! answer; the rules live in `palaver-handlers`.

pub mod accounts;
pub mod body;
pub mod health;
pub mod metrics;
pub mod rejection;
pub mod rooms;
pub mod web;

use std::convert::Infallible;
use std::sync::Arc;

use http::HeaderMap;
use palaver_handlers::Error;
use warp::Filter;
use warp::reply::Response;

use crate::auth::Presented;
use crate::auth::client_ip::ClientIp;
use crate::context::AppContext;
use crate::render::http::error_response;

/// The answer of a route: its response, or its error rendered.
pub fn respond(result: Result<Response, Error>) -> Response {
    result.unwrap_or_else(|err| error_response(&err))
}

/// The credentials a request presents (see [`crate::auth`]).
fn presented() -> impl Filter<Extract = (Presented,), Error = Infallible> + Clone {
    warp::header::headers_cloned().map(|headers: HeaderMap| crate::auth::from_headers(&headers))
}

/// Every HTTP route (the API, the probes, the browser client), with JSON errors for everything unmatched. (The
/// server marks every response `nosniff`, these and the ones it answers itself.)
pub fn routes(
    ctx: Arc<AppContext>,
) -> impl Filter<Extract = (Response,), Error = Infallible> + Clone {
    let limit = ctx.settings.max_body_bytes;
    let with_ctx = warp::any().map(move || ctx.clone());

    let client_ip = warp::ext::optional::<ClientIp>();
    let register = warp::path!("api" / "register")
        .and(warp::post())
        .and(with_ctx.clone())
        .and(client_ip)
        .and(body::raw_json(limit))
        .then(accounts::register);
    let login = warp::path!("api" / "login")
        .and(warp::post())
        .and(with_ctx.clone())
        .and(client_ip)
        .and(body::raw_json(limit))
        .then(accounts::login);
    let logout = warp::path!("api" / "logout")
        .and(warp::post())
        .and(with_ctx.clone())
        .and(presented())
        .then(accounts::logout);
    let me = warp::path!("api" / "me")
        .and(warp::get())
        .and(with_ctx.clone())
        .and(presented())
        .then(accounts::me);
    let csrf = warp::path!("api" / "csrf")
        .and(warp::get())
        .and(with_ctx.clone())
        .and(presented())
        .then(accounts::csrf);
    let ws_ticket = warp::path!("api" / "ws-ticket")
        .and(warp::post())
        .and(with_ctx.clone())
        .and(presented())
        .then(accounts::ws_ticket);
    let room_list = warp::path!("api" / "rooms")
        .and(warp::get())
        .and(with_ctx.clone())
        .and(presented())
        .then(rooms::list);
    let room_create = warp::path!("api" / "rooms")
        .and(warp::post())
        .and(with_ctx.clone())
        .and(presented())
        .and(body::raw_json(limit))
        .then(rooms::create);
    let room_delete = warp::path!("api" / "rooms" / String)
        .and(warp::delete())
        .and(with_ctx.clone())
        .and(presented())
        .then(rooms::delete);
    let room_messages = warp::path!("api" / "rooms" / String / "messages")
        .and(warp::get())
        .and(with_ctx.clone())
        .and(presented())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::optional::<String>(
            rooms::ROOM_PASSWORD_HEADER,
        ))
        .then(rooms::messages);
    let room_members = warp::path!("api" / "rooms" / String / "members")
        .and(warp::get())
        .and(with_ctx.clone())
        .and(presented())
        .then(rooms::members);
    let metrics = warp::path!("metrics")
        .and(warp::get())
        .and(with_ctx.clone())
        .and(presented())
        .then(metrics::metrics);
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .then(health::healthz);
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(with_ctx)
        .then(health::readyz);

    // Boxed in groups: one long chain of `or`s nests its future types past the compiler's recursion limit in
    // release builds.
    let accounts = register
        .or(login)
        .unify()
        .or(logout)
        .unify()
        .or(me)
        .unify()
        .or(csrf)
        .unify()
        .or(ws_ticket)
        .unify()
        .boxed();
    accounts
        .or(room_list)
        .unify()
        .or(room_create)
        .unify()
        .or(room_delete)
        .unify()
        .or(room_messages)
        .unify()
        .or(room_members)
        .unify()
        .or(metrics)
        .unify()
        .or(healthz)
        .unify()
        .or(readyz)
        .unify()
        .or(web::routes())
        .unify()
        .recover(rejection::recover)
        .unify()
}
