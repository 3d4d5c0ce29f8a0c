//! Who is asking: the credentials a request presents (`Authorization: Bearer`, the `palaver_session` cookie with its
//! CSRF proof, a WebSocket ticket) and the client address it comes from, turned into a [`Principal`] or the
//! [`Error`] to answer. The HTTP routes and the WebSocket handshake both authenticate here.

pub mod client_ip;
pub mod cookies;
pub mod csrf;
pub mod tickets;

use http::HeaderMap;
use palaver_handlers::Clock;
use palaver_handlers::Error;
use palaver_handlers::actions::authenticate::authenticate;
use palaver_handlers::actions::redeem_ticket::redeem_ticket;
use palaver_handlers::model::{Principal, SecurityEvent};

use crate::audit::Actor;
use crate::context::AppContext;
pub use cookies::cookie;
use csrf::CsrfProof;

/// The session cookie's name (PROTOCOL §1).
pub const SESSION_COOKIE: &str = "palaver_session";

/// How the request presented its token; cookie-borne credentials are ambient and need CSRF checks, so the request's
/// CSRF header and cookie travel with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Presented {
    Bearer(String),
    Cookie(String, CsrfProof),
    None,
}

impl Presented {
    /// The token, if any was presented.
    pub fn token(&self) -> Option<&str> {
        match self {
            Presented::Bearer(token) | Presented::Cookie(token, _) => Some(token),
            Presented::None => None,
        }
    }
}

/// The token in an `Authorization` header value, if it uses the Bearer scheme (case-insensitive, RFC 6750).
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|token| !token.is_empty())
}

/// The token in `headers`: `Authorization: Bearer …` first, then the session cookie.
pub fn from_headers(headers: &HeaderMap) -> Presented {
    let bearer = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(bearer_token);
    if let Some(token) = bearer {
        return Presented::Bearer(token.to_owned());
    }
    match cookie(headers, SESSION_COOKIE) {
        Some(token) if !token.is_empty() => {
            Presented::Cookie(token.to_owned(), CsrfProof::from_headers(headers))
        }
        _ => Presented::None,
    }
}

/// The principal behind a presented token; a token refused for what it is (forged, expired, revoked) is audited.
pub async fn principal(ctx: &AppContext, token: Option<&str>) -> Result<Principal, Error> {
    authenticate(ctx, token).await.inspect_err(|err| {
        if let Error::InvalidToken(reason) = err {
            let event = SecurityEvent::TokenRejected { reason: *reason };
            ctx.guard.audit(&Actor::default(), event);
        }
    })
}

/// The principal of a request that only reads.
pub async fn reader(ctx: &AppContext, presented: &Presented) -> Result<Principal, Error> {
    principal(ctx, presented.token()).await
}

/// The principal of a request that changes state: as [`reader`], and when the session cookie authenticated it, only
/// with this session's CSRF token ([`Error::CsrfFailed`] otherwise).
pub async fn changer(ctx: &AppContext, presented: &Presented) -> Result<Principal, Error> {
    let principal = principal(ctx, presented.token()).await?;
    if let Presented::Cookie(_, proof) = presented
        && !ctx.csrf.verify_proof(proof, &principal.token_id)
    {
        tracing::warn!(user = %principal.user_id, "csrf check failed");
        return Err(Error::CsrfFailed);
    }
    Ok(principal)
}

/// Who opens a WebSocket: a Bearer token, else a single-use ticket from the query string, else the session cookie —
/// only with an `Origin` (which was checked): a cookie without one is not a browser page, and a ticket or token is
/// what other clients use. [`Error::MissingCredentials`] when none is presented.
pub async fn socket_opener(
    ctx: &AppContext,
    headers: &HeaderMap,
    query: Option<&str>,
) -> Result<Principal, Error> {
    if let Presented::Bearer(token) = from_headers(headers) {
        return principal(ctx, Some(&token)).await;
    }
    if let Some(ticket) = tickets::in_query(query) {
        return redeem(ctx, ticket).await;
    }
    let cookie_token = cookie(headers, SESSION_COOKIE).filter(|token| !token.is_empty());
    match cookie_token {
        Some(token) if headers.contains_key(http::header::ORIGIN) => {
            principal(ctx, Some(token)).await
        }
        _ => Err(Error::MissingCredentials),
    }
}

/// The principal of a ticket this server signed, used up now; a ticket whose token was revoked is audited as that
/// token would be.
async fn redeem(ctx: &AppContext, ticket: &str) -> Result<Principal, Error> {
    let signed = ctx
        .tickets
        .verify(ticket, ctx.clock.now())
        .ok_or(Error::InvalidTicket)?;
    redeem_ticket(ctx, signed).await.inspect_err(|err| {
        if let Error::InvalidToken(reason) = err {
            let event = SecurityEvent::TokenRejected { reason: *reason };
            ctx.guard.audit(&Actor::default(), event);
        }
    })
}

/// The audit actor of a principal acting from `ip`.
pub fn actor(principal: &Principal, ip: Option<std::net::IpAddr>) -> Actor {
    Actor {
        ip,
        ..Actor::of(principal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_scheme_is_case_insensitive_and_needs_a_token() {
        assert_eq!(bearer_token("Bearer abc.def"), Some("abc.def"));
        assert_eq!(bearer_token("bearer  abc"), Some("abc"));
        assert_eq!(bearer_token("Basic dXNlcjpwYXNz"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer"), None);
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn header_wins_over_cookie() {
        let both = headers(&[
            ("authorization", "Bearer from-header"),
            ("cookie", "palaver_session=from-cookie"),
        ]);
        assert_eq!(from_headers(&both), Presented::Bearer("from-header".into()));
        let cookie = headers(&[
            ("cookie", "theme=dark; palaver_session=c"),
            ("authorization", "Basic x"),
        ]);
        assert_eq!(
            from_headers(&cookie),
            Presented::Cookie("c".into(), CsrfProof::default())
        );
        assert_eq!(
            from_headers(&headers(&[("cookie", "palaver_session=")])),
            Presented::None
        );
        assert_eq!(from_headers(&HeaderMap::new()), Presented::None);
    }
}
