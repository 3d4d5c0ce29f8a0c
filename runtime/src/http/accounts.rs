//! The account routes of PROTOCOL §1: register, login, logout, me.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use palaver_handlers::actions::{authenticate::authenticate, login, logout, me, register};
use palaver_handlers::model::Principal;
use warp::Reply;
use warp::reply::Response;

use super::auth::{Presented, SESSION_COOKIE};
use super::body::decode;
use super::error::error_response;
use crate::context::AppContext;

/// The principal behind the presented token, or the 401 to send.
pub async fn principal(ctx: &AppContext, presented: &Presented) -> Result<Principal, Response> {
    authenticate(ctx, presented.token())
        .await
        .map_err(|err| error_response(&err))
}

/// `POST /api/register` → 201 with the account.
pub async fn register(ctx: Arc<AppContext>, content_type: Option<String>, body: Bytes) -> Response {
    let request = match decode(content_type.as_deref(), &body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    match register::register(ctx.as_ref(), request).await {
        Ok(user) => {
            tracing::info!(user = %user.id, username = %user.username, "account registered");
            warp::reply::with_status(warp::reply::json(&user), StatusCode::CREATED).into_response()
        }
        Err(err) => error_response(&err),
    }
}

/// `POST /api/login` → 200 with a token, and the session cookie for browsers.
pub async fn login(ctx: Arc<AppContext>, content_type: Option<String>, body: Bytes) -> Response {
    let request = match decode(content_type.as_deref(), &body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    match login::login(ctx.as_ref(), request).await {
        Ok(answer) => {
            tracing::info!(user = %answer.user.id, "login");
            let cookie = session_cookie(
                &answer.token,
                ctx.settings.token_ttl_secs,
                ctx.settings.cookie_secure,
            );
            warp::reply::with_header(warp::reply::json(&answer), http::header::SET_COOKIE, cookie)
                .into_response()
        }
        Err(err) => error_response(&err),
    }
}

/// `POST /api/logout` → 204; the token is revoked and the cookie cleared.
pub async fn logout(ctx: Arc<AppContext>, presented: Presented) -> Response {
    let principal = match principal(&ctx, &presented).await {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    match logout::logout(ctx.as_ref(), &principal).await {
        Ok(()) => {
            let closed = ctx.hub.close_token(&principal.token_id);
            tracing::info!(user = %principal.user_id, sockets_closed = closed, "logout");
            let cookie = session_cookie("", 0, ctx.settings.cookie_secure);
            let reply = warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT);
            warp::reply::with_header(reply, http::header::SET_COOKIE, cookie).into_response()
        }
        Err(err) => error_response(&err),
    }
}

/// `GET /api/me` → the account.
pub async fn me(ctx: Arc<AppContext>, presented: Presented) -> Response {
    let principal = match principal(&ctx, &presented).await {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    match me::me(ctx.as_ref(), &principal).await {
        Ok(user) => warp::reply::json(&user).into_response(),
        Err(err) => error_response(&err),
    }
}

/// `POST /api/ws-ticket` → `{ticket, expires_in}`: a single-use pass for `/ws?ticket=…`, for browsers.
pub async fn ws_ticket(ctx: Arc<AppContext>, presented: Presented) -> Response {
    let principal = match principal(&ctx, &presented).await {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    match ctx.tickets.issue(principal) {
        Some(ticket) => {
            let body =
                serde_json::json!({"ticket": ticket, "expires_in": ctx.tickets.ttl().as_secs()});
            warp::reply::json(&body).into_response()
        }
        None => error_response(&palaver_handlers::Error::Unavailable(
            "too many open WebSocket tickets".into(),
        )),
    }
}

/// The `Set-Cookie` value for the session: HttpOnly (no script reads it), SameSite=Strict (no cross-site request
/// carries it), Secure when served over HTTPS. `max_age` 0 deletes it.
pub fn session_cookie(token: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!(
        "{SESSION_COOKIE}={token}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict{secure}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_locked_down() {
        let cookie = session_cookie("t0k", 60, false);
        assert_eq!(
            cookie,
            "palaver_session=t0k; Path=/; Max-Age=60; HttpOnly; SameSite=Strict"
        );
        assert!(session_cookie("t0k", 60, true).ends_with("; Secure"));
    }
}
