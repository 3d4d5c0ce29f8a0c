//! Where a request's credentials come from: `Authorization: Bearer <jwt>`, or the `palaver_session` cookie.

use std::convert::Infallible;

use http::HeaderMap;
use warp::Filter;

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

/// The CSRF token a cookie-authenticated request carried, in the header and in the cookie.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsrfProof {
    pub header: Option<String>,
    pub cookie: Option<String>,
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

/// The token a request presents: a Bearer header wins over the cookie.
pub fn presented() -> impl Filter<Extract = (Presented,), Error = Infallible> + Clone {
    warp::header::headers_cloned().map(|headers: HeaderMap| from_headers(&headers))
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
            let proof = CsrfProof {
                header: headers
                    .get(super::csrf::CSRF_HEADER)
                    .and_then(|value| value.to_str().ok())
                    .map(str::to_owned),
                cookie: cookie(headers, super::csrf::CSRF_COOKIE).map(str::to_owned),
            };
            Presented::Cookie(token.to_owned(), proof)
        }
        _ => Presented::None,
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value)
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
