//! The account routes of PROTOCOL §1: register, login, logout, me.

use std::sync::Arc;

use bytes::Bytes;
use http::StatusCode;
use palaver_handlers::Credentials as _;
use palaver_handlers::actions::{authenticate::authenticate, login, logout, me, register};
use palaver_handlers::model::Principal;
use warp::Reply;
use warp::reply::Response;

use super::auth::{Presented, SESSION_COOKIE};
use super::body::decode;
use super::client_ip::ClientIp;
use super::csrf::csrf_cookie;
use super::error::{error_response, json_error, too_many_requests};
use crate::audit::Actor;
use crate::context::AppContext;
use crate::ratelimit::Decision;
use std::time::Instant;

/// The principal behind the presented token, or the 401 to send.
pub async fn principal(ctx: &AppContext, presented: &Presented) -> Result<Principal, Response> {
    authenticate(ctx, presented.token()).await.map_err(|err| {
        if let palaver_handlers::Error::InvalidToken(reason) = &err {
            let details = serde_json::json!({"reason": reason.as_str()});
            ctx.audit
                .record("token_rejected", "denied", &Actor::default(), details);
        }
        error_response(&err)
    })
}

/// The principal of a request that changes state: as [`principal`], and when the session cookie authenticated it,
/// only with this session's CSRF token (403 `csrf_failed` otherwise).
pub async fn principal_for_change(
    ctx: &AppContext,
    presented: &Presented,
) -> Result<Principal, Response> {
    let principal = principal(ctx, presented).await?;
    if let Presented::Cookie(_, proof) = presented
        && !ctx.csrf.verify_proof(proof, &principal.token_id)
    {
        tracing::warn!(user = %principal.user_id, "csrf check failed");
        return Err(json_error(
            StatusCode::FORBIDDEN,
            "this request needs the session's CSRF token in X-CSRF-Token",
            "csrf_failed",
            None,
        ));
    }
    Ok(principal)
}

/// `POST /api/register` → 201 with the account.
pub async fn register(
    ctx: Arc<AppContext>,
    ip: Option<ClientIp>,
    content_type: Option<String>,
    body: Bytes,
) -> Response {
    if let Some(ClientIp(ip)) = ip
        && let Decision::Limited { retry_after } =
            ctx.http_limits.registrations.check(&ip, Instant::now())
    {
        ctx.metrics
            .rate_limited
            .with_label_values(&["registrations"])
            .inc();
        let actor = Actor {
            ip: Some(ip),
            ..Actor::default()
        };
        ctx.audit.rate_limited("registrations", &actor);
        return too_many_requests(retry_after);
    }
    let request = match decode(content_type.as_deref(), &body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    match register::register(ctx.as_ref(), request).await {
        Ok(user) => {
            tracing::info!(user = %user.id, username = ?user.username, "account registered");
            let actor = Actor {
                user_id: Some(user.id),
                username: Some(user.username.clone()),
                ip: ip.map(|ClientIp(ip)| ip),
                ..Actor::default()
            };
            ctx.audit
                .record("register", "success", &actor, serde_json::json!({}));
            warp::reply::with_status(warp::reply::json(&user), StatusCode::CREATED).into_response()
        }
        Err(err) => error_response(&err),
    }
}

/// `POST /api/login` → 200 with a token, and the session cookie for browsers.
pub async fn login(
    ctx: Arc<AppContext>,
    ip: Option<ClientIp>,
    content_type: Option<String>,
    body: Bytes,
) -> Response {
    let request: login::LoginRequest = match decode(content_type.as_deref(), &body) {
        Ok(request) => request,
        Err(response) => return *response,
    };
    // Guessing is slowed per account (from anywhere) and per address (against any account); a locked-out attempt
    // costs no bcrypt round and says nothing about whether the password was right.
    let account = request.username.as_deref().unwrap_or("").to_lowercase();
    let ip = ip.map(|ClientIp(ip)| ip);
    let limits = &ctx.http_limits;
    let now = Instant::now();
    let by_account = limits.login_failures_by_account.peek(&account, now);
    let by_ip = ip.map_or(Decision::Allowed, |ip| {
        limits.login_failures_by_ip.peek(&ip, now)
    });
    for decision in [by_account, by_ip] {
        if let Decision::Limited { retry_after } = decision {
            ctx.metrics
                .rate_limited
                .with_label_values(&["login_failures"])
                .inc();
            let actor = Actor {
                username: Some(account.clone()),
                ip,
                ..Actor::default()
            };
            // A locked-out guesser keeps trying: one audit event a minute, like every other rate limit.
            ctx.audit.rate_limited("login_failures", &actor);
            return too_many_requests(retry_after);
        }
    }
    let outcome = login::login(ctx.as_ref(), request).await;
    if let Err(palaver_handlers::Error::InvalidCredentials) = outcome {
        limits.login_failures_by_account.record(&account, now);
        if let Some(ip) = ip {
            limits.login_failures_by_ip.record(&ip, now);
        }
        let actor = Actor {
            username: Some(account.clone()),
            ip,
            ..Actor::default()
        };
        ctx.audit.record(
            "login",
            "failure",
            &actor,
            serde_json::json!({"reason": "invalid_credentials"}),
        );
    }
    if let Ok(answer) = &outcome {
        let actor = Actor {
            user_id: Some(answer.user.id),
            username: Some(answer.user.username.clone()),
            ip,
            ..Actor::default()
        };
        ctx.audit
            .record("login", "success", &actor, serde_json::json!({}));
    }
    match outcome {
        Ok(answer) => {
            tracing::info!(user = %answer.user.id, "login");
            let cookie = session_cookie(
                &answer.token,
                ctx.settings.token_ttl_secs,
                ctx.settings.cookie_secure,
            );
            let mut response = warp::reply::with_header(
                warp::reply::json(&answer),
                http::header::SET_COOKIE,
                cookie,
            )
            .into_response();
            // The session's CSRF token, for the page's script to echo on state-changing requests.
            let now = time::OffsetDateTime::now_utc();
            if let Ok(claims) = ctx.credentials.verify_token(&answer.token, now) {
                let token = ctx.csrf.token_for(&claims.token_id);
                let cookie = csrf_cookie(
                    &token,
                    ctx.settings.token_ttl_secs,
                    ctx.settings.cookie_secure,
                );
                if let Ok(value) = http::HeaderValue::from_str(&cookie) {
                    response
                        .headers_mut()
                        .append(http::header::SET_COOKIE, value);
                }
            }
            response
        }
        Err(err) => error_response(&err),
    }
}

/// `GET /api/csrf` → `{csrf_token}`, also set as the `palaver_csrf` cookie: the session's token when the session
/// cookie is valid, else a random one (for pages before login; it authorises nothing).
pub async fn csrf(ctx: Arc<AppContext>, presented: Presented) -> Response {
    let token = match &presented {
        Presented::Cookie(..) => match principal(&ctx, &presented).await {
            Ok(principal) => ctx.csrf.token_for(&principal.token_id),
            Err(response) => return response,
        },
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
    warp::reply::with_header(body, http::header::SET_COOKIE, cookie).into_response()
}

/// `POST /api/logout` → 204; the token is revoked and the cookie cleared.
pub async fn logout(ctx: Arc<AppContext>, presented: Presented) -> Response {
    let principal = match principal_for_change(&ctx, &presented).await {
        Ok(principal) => principal,
        Err(response) => return response,
    };
    match logout::logout(ctx.as_ref(), &principal).await {
        Ok(()) => {
            let closed = ctx.hub.close_token(&principal.token_id);
            let actor = Actor {
                user_id: Some(principal.user_id),
                username: Some(principal.username.clone()),
                ..Actor::default()
            };
            ctx.audit.record(
                "logout",
                "success",
                &actor,
                serde_json::json!({"sockets_closed": closed}),
            );
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
    let principal = match principal_for_change(&ctx, &presented).await {
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
