//! Deciding whether and how a `GET /ws` request may become a WebSocket: origin, credentials, the RFC 6455 headers and
//! the sub-protocol. Pure functions over headers, so every refusal is unit-tested without a socket.

use http::HeaderMap;
use http::header::{
    CONNECTION, HOST, ORIGIN, SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION,
    UPGRADE,
};

use crate::render::{Codec, JSON_PROTOCOL};

/// Whether `origin` may use this server: one of `allowed` (or `*` there), or the server's own (`http(s)://<Host>`).
/// A request without `Origin` is not from a browser page and is judged by its credentials alone.
pub fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(ORIGIN).and_then(|value| value.to_str().ok()) else {
        return true;
    };
    let origin = origin.trim_end_matches('/');
    if allowed
        .iter()
        .any(|allowed| allowed == "*" || allowed.trim_end_matches('/').eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let host = headers
        .get(HOST)
        .and_then(|value| value.to_str().ok())
        .unwrap_or("");
    !host.is_empty()
        && ["http://", "https://"].iter().any(|scheme| {
            origin.len() == scheme.len() + host.len()
                && origin[..scheme.len()].eq_ignore_ascii_case(scheme)
                && origin[scheme.len()..].eq_ignore_ascii_case(host)
        })
}

/// Why the RFC 6455 handshake headers are unacceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadHandshake {
    /// Not an upgrade to `websocket`.
    NotAnUpgrade,
    /// `Sec-WebSocket-Version` is not 13 (answered 426 with the version we speak).
    WrongVersion,
    /// `Sec-WebSocket-Key` is missing or not 16 bytes in base64.
    BadKey,
}

fn header_has_token(headers: &HeaderMap, name: http::header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

/// The client's `Sec-WebSocket-Key`, once the upgrade headers are checked.
pub fn check_upgrade(headers: &HeaderMap) -> Result<&[u8], BadHandshake> {
    if !header_has_token(headers, UPGRADE, "websocket")
        || !header_has_token(headers, CONNECTION, "upgrade")
    {
        return Err(BadHandshake::NotAnUpgrade);
    }
    if headers.get(SEC_WEBSOCKET_VERSION).map(|v| v.as_bytes()) != Some(b"13") {
        return Err(BadHandshake::WrongVersion);
    }
    let key = headers
        .get(SEC_WEBSOCKET_KEY)
        .map(|v| v.as_bytes())
        .ok_or(BadHandshake::BadKey)?;
    // 16 random bytes in base64 are 24 characters ending in "==".
    let looks_right = key.len() == 24
        && key.ends_with(b"==")
        && key[..22]
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'+' || *b == b'/');
    if !looks_right {
        return Err(BadHandshake::BadKey);
    }
    Ok(key)
}

/// The codec the client chose: JSON when it offers `palaver.v1.json`, else the text protocol.
pub fn chosen_codec(headers: &HeaderMap) -> Codec {
    if header_has_token(headers, SEC_WEBSOCKET_PROTOCOL, JSON_PROTOCOL) {
        Codec::Json
    } else {
        Codec::Text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    const UPGRADE_HEADERS: [(&str, &str); 4] = [
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn own_origin_and_listed_origins_are_allowed() {
        let allowed = vec!["https://chat.example".to_owned()];
        let own = headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
        ]);
        assert!(origin_allowed(&own, &allowed));
        assert!(origin_allowed(
            &headers(&[("host", "x"), ("origin", "https://chat.example/")]),
            &allowed
        ));
        assert!(
            origin_allowed(&headers(&[("host", "x")]), &allowed),
            "no Origin: not a browser page"
        );
        assert!(!origin_allowed(
            &headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://evil.example")
            ]),
            &allowed
        ));
        assert!(!origin_allowed(
            &headers(&[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080.evil")
            ]),
            &allowed
        ));
        assert!(!origin_allowed(&headers(&[("origin", "null")]), &allowed));
        assert!(origin_allowed(
            &headers(&[("origin", "http://anything")]),
            &["*".to_owned()]
        ));
    }

    #[test]
    fn the_rfc_6455_headers_are_required() {
        assert_eq!(
            check_upgrade(&headers(&UPGRADE_HEADERS)),
            Ok(&b"dGhlIHNhbXBsZSBub25jZQ=="[..])
        );
        let without = |name: &str| {
            let pairs: Vec<_> = UPGRADE_HEADERS
                .iter()
                .copied()
                .filter(|(n, _)| *n != name)
                .collect();
            check_upgrade(&headers(&pairs)).map(<[u8]>::to_vec)
        };
        assert_eq!(without("upgrade"), Err(BadHandshake::NotAnUpgrade));
        assert!(without("nothing").is_ok());
        assert_eq!(without("connection"), Err(BadHandshake::NotAnUpgrade));
        assert_eq!(
            without("sec-websocket-version"),
            Err(BadHandshake::WrongVersion)
        );
        assert_eq!(without("sec-websocket-key"), Err(BadHandshake::BadKey));
        let mut wrong = UPGRADE_HEADERS;
        wrong[3] = ("sec-websocket-key", "short");
        assert_eq!(check_upgrade(&headers(&wrong)), Err(BadHandshake::BadKey));
        wrong[2] = ("sec-websocket-version", "8");
        assert_eq!(
            check_upgrade(&headers(&wrong)),
            Err(BadHandshake::WrongVersion)
        );
    }

    #[test]
    fn json_is_chosen_only_when_offered() {
        assert_eq!(
            chosen_codec(&headers(&[(
                "sec-websocket-protocol",
                "chat, palaver.v1.json"
            )])),
            Codec::Json
        );
        assert_eq!(
            chosen_codec(&headers(&[("sec-websocket-protocol", "chat")])),
            Codec::Text
        );
        assert_eq!(chosen_codec(&HeaderMap::new()), Codec::Text);
    }
}
