//! The account routes of PROTOCOL §1: register, login, logout, me, the CSRF token and WebSocket tickets.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::StatusCode;
use palaver_handlers::Clock as _;
use palaver_handlers::Credentials as _;
use palaver_handlers::Error;
use palaver_handlers::actions::{login, logout, me, register};
use palaver_handlers::model::{Limit, SecurityEvent};
use warp::Reply;
use warp::reply::Response;

use super::body::decode;
use super::respond;
use crate::audit::Actor;
use crate::auth::client_ip::ClientIp;
use crate::auth::csrf::csrf_cookie;
use crate::auth::{self, Presented, SESSION_COOKIE};
use crate::context::AppContext;
use crate::ratelimit::Decision;

/// The actor of an anonymous request from `ip`, maybe naming the account it is about.
fn anonymous(username: Option<String>, ip: Option<IpAddr>) -> Actor {
    Actor {
        username,
        ip,
        ..Actor::default()
    }
}

/// `POST /api/register` → 201 with the account.
pub async fn register(
    ctx: Arc<AppContext>,
    ip: Option<ClientIp>,
    content_type: Option<String>,
    body: Bytes,
) -> Response {
    respond(registered(&ctx, ip.map(|ClientIp(ip)| ip), content_type, body).await)
}

async fn registered(
    ctx: &AppContext,
    ip: Option<IpAddr>,
    content_type: Option<String>,
    body: Bytes,
) -> Result<Response, Error> {
    if let Some(ip) = ip
        && let Decision::Limited { retry_after } =
            ctx.http_limits.registrations.check(&ip, Instant::now())
    {
        ctx.guard
            .refused(Limit::Registrations, &anonymous(None, Some(ip)));
        return Err(Error::TooManyRequests { retry_after });
    }
    let request = decode(content_type.as_deref(), &body)?;
    let user = register::register(ctx, request).await?;
    tracing::info!(user = %user.id, username = ?user.username, "account registered");
    let actor = Actor {
        user_id: Some(user.id),
        username: Some(user.username.clone()),
        ip,
        ..Actor::default()
    };
    ctx.guard.audit(&actor, SecurityEvent::Registered);
    Ok(warp::reply::with_status(warp::reply::json(&user), StatusCode::CREATED).into_response())
}

/// `POST /api/login` → 200 with a token, and the session and CSRF cookies for browsers.
pub async fn login(
    ctx: Arc<AppContext>,
    ip: Option<ClientIp>,
    content_type: Option<String>,
    body: Bytes,
) -> Response {
    respond(logged_in(&ctx, ip.map(|ClientIp(ip)| ip), content_type, body).await)
}

async fn logged_in(
    ctx: &AppContext,
    ip: Option<IpAddr>,
    content_type: Option<String>,
    body: Bytes,
) -> Result<Response, Error> {
    let request: login::LoginRequest = decode(content_type.as_deref(), &body)?;
    // Guessing is slowed per account (from anywhere) and per address (against any account); a locked-out attempt
    // costs no bcrypt round and says nothing about whether the password was right.
    let account = request.username.as_deref().unwrap_or("").to_lowercase();
    let limits = &ctx.http_limits;
    let now = Instant::now();
    let by_account = limits.login_failures_by_account.peek(&account, now);
    let by_ip = ip.map_or(Decision::Allowed, |ip| {
        limits.login_failures_by_ip.peek(&ip, now)
    });
    for decision in [by_account, by_ip] {
        if let Decision::Limited { retry_after } = decision {
            ctx.guard
                .refused(Limit::LoginFailures, &anonymous(Some(account), ip));
            return Err(Error::TooManyRequests { retry_after });
        }
    }
    let answer = match login::login(ctx, request).await {
        Ok(answer) => answer,
        Err(err) => {
            if err == Error::InvalidCredentials {
                limits.login_failures_by_account.record(&account, now);
                if let Some(ip) = ip {
                    limits.login_failures_by_ip.record(&ip, now);
                }
                ctx.guard
                    .audit(&anonymous(Some(account), ip), SecurityEvent::LoginFailed);
            }
            return Err(err);
        }
    };
    let actor = Actor {
        user_id: Some(answer.user.id),
        username: Some(answer.user.username.clone()),
        ip,
        ..Actor::default()
    };
    ctx.guard.audit(&actor, SecurityEvent::LoggedIn);
    tracing::info!(user = %answer.user.id, "login");
    let settings = &ctx.settings;
    let cookie = session_cookie(
        &answer.token,
        settings.token_ttl_secs,
        settings.cookie_secure,
    );
    let mut response =
        warp::reply::with_header(warp::reply::json(&answer), http::header::SET_COOKIE, cookie)
            .into_response();
    // The session's CSRF token, for the page's script to echo on state-changing requests.
    let now = time::OffsetDateTime::now_utc();
    if let Ok(claims) = ctx.credentials.verify_token(&answer.token, now) {
        let token = ctx.csrf.token_for(&claims.token_id);
        let cookie = csrf_cookie(&token, settings.token_ttl_secs, settings.cookie_secure);
        if let Ok(value) = http::HeaderValue::from_str(&cookie) {
            response
                .headers_mut()
                .append(http::header::SET_COOKIE, value);
        }
    }
    Ok(response)
}

/// `GET /api/csrf` → `{csrf_token}`, also set as the `palaver_csrf` cookie: the session's token when the session
/// cookie is valid, else a random one (for pages before login; it authorises nothing).
pub async fn csrf(ctx: Arc<AppContext>, presented: Presented) -> Response {
    respond(csrf_token(&ctx, &presented).await)
}

async fn csrf_token(ctx: &AppContext, presented: &Presented) -> Result<Response, Error> {
    let token = match presented {
        Presented::Cookie(..) => {
            let principal = auth::reader(ctx, presented).await?;
            ctx.csrf.token_for(&principal.token_id)
        }
        _ => {
            let mut bytes = [0u8; 32];
            rand::fill(&mut bytes);
            bytes.iter().map(|byte| format!("{byte:02x}")).collect()
        }
    };
    let cookie = csrf_cookie(
        &token,
        ctx.settings.token_ttl_secs,
        ctx.settings.cookie_secure,
    );
    let body = warp::reply::json(&serde_json::json!({ "csrf_token": token }));
    Ok(warp::reply::with_header(body, http::header::SET_COOKIE, cookie).into_response())
}

/// `POST /api/logout` → 204; the token is revoked, its sockets closed and the cookie cleared.
pub async fn logout(ctx: Arc<AppContext>, presented: Presented) -> Response {
    respond(logged_out(&ctx, &presented).await)
}

async fn logged_out(ctx: &AppContext, presented: &Presented) -> Result<Response, Error> {
    let principal = auth::changer(ctx, presented).await?;
    logout::logout(ctx, &principal).await?;
    let sockets_closed = ctx.hub.close_token(&principal.token_id);
    if let Some(node) = &ctx.cluster {
        // The token's sockets on the other nodes close too, and their caches learn the revocation.
        node.control.token_revoked(&principal.token_id);
    }
    ctx.guard.audit(
        &Actor::of(&principal),
        SecurityEvent::LoggedOut { sockets_closed },
    );
    tracing::info!(user = %principal.user_id, sockets_closed, "logout");
    let cookie = session_cookie("", 0, ctx.settings.cookie_secure);
    let reply = warp::reply::with_status(warp::reply(), StatusCode::NO_CONTENT);
    Ok(warp::reply::with_header(reply, http::header::SET_COOKIE, cookie).into_response())
}

/// `GET /api/me` → the account.
pub async fn me(ctx: Arc<AppContext>, presented: Presented) -> Response {
    respond(account(&ctx, &presented).await)
}

async fn account(ctx: &AppContext, presented: &Presented) -> Result<Response, Error> {
    let principal = auth::reader(ctx, presented).await?;
    let user = me::me(ctx, &principal).await?;
    Ok(warp::reply::json(&user).into_response())
}

/// `POST /api/ws-ticket` → `{ticket, expires_in}`: a single-use pass for `/ws?ticket=…` on any node, for browsers.
pub async fn ws_ticket(ctx: Arc<AppContext>, presented: Presented) -> Response {
    respond(ticket(&ctx, &presented).await)
}

async fn ticket(ctx: &AppContext, presented: &Presented) -> Result<Response, Error> {
    let principal = auth::changer(ctx, presented).await?;
    let ticket = ctx.tickets.issue(&principal, ctx.clock.now());
    let body = serde_json::json!({"ticket": ticket, "expires_in": ctx.tickets.ttl_secs()});
    Ok(warp::reply::json(&body).into_response())
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
