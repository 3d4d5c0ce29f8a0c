//! CSRF protection for the browser session (double submit, bound to the session). A request authenticated by the
//! ambient `palaver_session` cookie that changes state must carry `X-CSRF-Token` equal to the `palaver_csrf` cookie,
//! and that token must be the one derived from the session's token id (an HMAC under the server's key), so a token
//! planted by another site or taken from another session is worthless. Bearer requests carry no ambient credential
//! and need no token.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use sha2::Sha256;

use super::cookies::cookie;

/// The cookie that carries the token (readable by the page's script, which echoes it in the header).
pub const CSRF_COOKIE: &str = "palaver_csrf";
/// The header a state-changing cookie-authenticated request carries the token in.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The CSRF token a cookie-authenticated request carried, in the header and in the cookie.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CsrfProof {
    pub header: Option<String>,
    pub cookie: Option<String>,
}

impl CsrfProof {
    /// The CSRF header and cookie of a request, as it sent them.
    pub fn from_headers(headers: &HeaderMap) -> Self {
        CsrfProof {
            header: headers
                .get(CSRF_HEADER)
                .and_then(|value| value.to_str().ok())
                .map(str::to_owned),
            cookie: cookie(headers, CSRF_COOKIE).map(str::to_owned),
        }
    }
}

/// Derives and checks CSRF tokens.
pub struct CsrfKey(Vec<u8>);

impl CsrfKey {
    /// A key derived from the server's signing secret, so every node (and a restart) agrees on tokens.
    pub fn derive(secret: &[u8]) -> Self {
        CsrfKey(hmac_hex(secret, b"palaver csrf key").into_bytes())
    }

    /// The token of the session whose token id is `token_id`.
    pub fn token_for(&self, token_id: &str) -> String {
        hmac_hex(&self.0, token_id.as_bytes())
    }

    /// Whether `headers` carry this session's token in both the header and the cookie.
    pub fn verify(&self, headers: &HeaderMap, token_id: &str) -> bool {
        self.verify_proof(&CsrfProof::from_headers(headers), token_id)
    }

    /// Whether `proof` holds this session's token in both the header and the cookie.
    pub fn verify_proof(&self, proof: &CsrfProof, token_id: &str) -> bool {
        let header = proof.header.as_deref().unwrap_or("");
        let cookie = proof.cookie.as_deref().unwrap_or("");
        let expected = self.token_for(token_id);
        // Both compared in full, whatever the first says, in constant time.
        let header_ok = constant_time_eq(header.as_bytes(), expected.as_bytes());
        let cookie_ok = constant_time_eq(cookie.as_bytes(), expected.as_bytes());
        header_ok & cookie_ok
    }
}

fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    // HMAC accepts keys of any length.
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// Compares secrets in time independent of where they differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The `Set-Cookie` value for the CSRF token: readable by script (that is the point), SameSite=Strict.
pub fn csrf_cookie(token: &str, max_age: u64, secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{CSRF_COOKIE}={token}; Path=/; Max-Age={max_age}; SameSite=Strict{secure}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(header: Option<&str>, cookie_value: Option<&str>) -> HeaderMap {
        let mut map = HeaderMap::new();
        if let Some(value) = header {
            map.insert(CSRF_HEADER, value.parse().unwrap());
        }
        if let Some(value) = cookie_value {
            map.insert(
                http::header::COOKIE,
                format!("palaver_session=s; {CSRF_COOKIE}={value}")
                    .parse()
                    .unwrap(),
            );
        }
        map
    }

    #[test]
    fn only_this_sessions_token_in_header_and_cookie_passes() {
        let key = CsrfKey::derive(b"secret-secret-secret-secret-secret!");
        let token = key.token_for("jti-1");
        assert_eq!(token.len(), 64);
        assert!(key.verify(&headers(Some(&token), Some(&token)), "jti-1"));
        assert!(
            !key.verify(&headers(None, Some(&token)), "jti-1"),
            "header missing"
        );
        assert!(
            !key.verify(&headers(Some(&token), None), "jti-1"),
            "cookie missing"
        );
        assert!(
            !key.verify(&headers(Some(&token), Some(&token)), "jti-2"),
            "another session"
        );
        let planted = "a".repeat(64);
        assert!(
            !key.verify(&headers(Some(&planted), Some(&planted)), "jti-1"),
            "a planted pair"
        );
        let other_key = CsrfKey::derive(b"another-secret-another-secret-xx!!");
        assert_ne!(other_key.token_for("jti-1"), token);
    }
}
