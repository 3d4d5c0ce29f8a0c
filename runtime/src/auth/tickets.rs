//! WebSocket tickets: browsers cannot set an `Authorization` header on a WebSocket, so they trade their session for a
//! short-lived ticket (`POST /api/ws-ticket`) and open `/ws?ticket=…` with it.
//!
//! A ticket is signed, not remembered: it carries its own id, its expiry and the principal it stands for, under an
//! HMAC keyed from the server's signing secret, so any node of a cluster (and a restarted node) can check it. Issuing
//! one costs no storage; redeeming one records its id in the database
//! ([`palaver_handlers::actions::redeem_ticket`]), which makes it single use across every node.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use palaver_handlers::model::{Principal, SignedTicket};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use time::OffsetDateTime;
use uuid::Uuid;

/// No ticket this server issues is longer; a longer one is refused before it is decoded.
pub const MAX_TICKET_LEN: usize = 512;

/// What a ticket says, signed.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    /// The ticket's own id (random), recorded when it is used.
    id: String,
    /// Unix seconds after which the ticket is refused.
    exp: i64,
    /// The principal: user id, username, the token's id and its expiry (Unix seconds).
    sub: Uuid,
    name: String,
    jti: String,
    texp: i64,
}

/// Issues and checks tickets.
pub struct Tickets {
    key: Vec<u8>,
    ttl: time::Duration,
}

impl Tickets {
    /// Tickets valid for `ttl`, signed with a key derived from the server's signing secret, so every node agrees.
    pub fn new(secret: &[u8], ttl: std::time::Duration) -> Self {
        let mut mac = hmac(secret);
        mac.update(b"palaver ws-ticket key");
        Tickets {
            key: mac.finalize().into_bytes().to_vec(),
            ttl: time::Duration::try_from(ttl).unwrap_or(time::Duration::MAX),
        }
    }

    /// How long a ticket is valid, in whole seconds.
    pub fn ttl_secs(&self) -> i64 {
        self.ttl.whole_seconds()
    }

    /// A new ticket for `principal`, valid for the ticket lifetime from `now`, never past the token's own expiry.
    pub fn issue(&self, principal: &Principal, now: OffsetDateTime) -> String {
        let mut id = [0u8; 16];
        rand::fill(&mut id);
        let expires = now.saturating_add(self.ttl).min(principal.expires_at);
        let claims = Claims {
            id: id.iter().map(|b| format!("{b:02x}")).collect(),
            exp: expires.unix_timestamp(),
            sub: principal.user_id,
            name: principal.username.clone(),
            jti: principal.token_id.clone(),
            texp: principal.expires_at.unix_timestamp(),
        };
        // A struct of strings and numbers always serialises.
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap_or_default());
        let signature = URL_SAFE_NO_PAD.encode(self.sign(payload.as_bytes()));
        format!("{payload}.{signature}")
    }

    /// The ticket's id, expiry and principal when this server signed it and it has not expired at `now`; `None`
    /// for anything else (malformed, forged, expired). Whether it was used already is the database's to say.
    pub fn verify(&self, ticket: &str, now: OffsetDateTime) -> Option<SignedTicket> {
        if ticket.len() > MAX_TICKET_LEN {
            return None;
        }
        let (payload, signature) = ticket.split_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        let mut mac = hmac(&self.key);
        mac.update(payload.as_bytes());
        // Constant time, whatever byte differs.
        mac.verify_slice(&signature).ok()?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        let expires_at = OffsetDateTime::from_unix_timestamp(claims.exp).ok()?;
        if expires_at <= now {
            return None;
        }
        Some(SignedTicket {
            id: claims.id,
            expires_at,
            principal: Principal {
                user_id: claims.sub,
                username: claims.name,
                token_id: claims.jti,
                expires_at: OffsetDateTime::from_unix_timestamp(claims.texp).ok()?,
            },
        })
    }

    fn sign(&self, payload: &[u8]) -> Vec<u8> {
        let mut mac = hmac(&self.key);
        mac.update(payload);
        mac.finalize().into_bytes().to_vec()
    }
}

fn hmac(key: &[u8]) -> Hmac<Sha256> {
    // HMAC accepts keys of any length.
    Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length")
}

/// The `ticket` parameter of a query string, if any.
pub fn in_query(query: Option<&str>) -> Option<&str> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(key, _)| *key == "ticket")
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const SECRET: &[u8] = b"a signing secret of at least thirty-two bytes";

    fn now() -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000).unwrap()
    }

    fn principal() -> Principal {
        Principal {
            user_id: Uuid::now_v7(),
            username: "john_doe".into(),
            token_id: "token-1".into(),
            expires_at: now() + time::Duration::hours(1),
        }
    }

    #[test]
    fn a_ticket_stands_for_its_principal_until_it_expires() {
        let tickets = Tickets::new(SECRET, Duration::from_secs(30));
        let principal = principal();
        let ticket = tickets.issue(&principal, now());
        assert!(ticket.len() <= MAX_TICKET_LEN, "{}", ticket.len());
        assert!(
            ticket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)),
            "a ticket needs no escaping in a URL: {ticket}"
        );
        let signed = tickets.verify(&ticket, now()).expect("valid");
        assert_eq!(signed.principal.user_id, principal.user_id);
        assert_eq!(signed.principal.username, "john_doe");
        assert_eq!(signed.principal.token_id, "token-1");
        assert_eq!(signed.principal.expires_at, principal.expires_at);
        assert_eq!(signed.expires_at, now() + time::Duration::seconds(30));
        assert_eq!(signed.id.len(), 32);
        assert!(
            tickets
                .verify(&ticket, now() + time::Duration::seconds(29))
                .is_some()
        );
        assert!(
            tickets
                .verify(&ticket, now() + time::Duration::seconds(30))
                .is_none()
        );
    }

    #[test]
    fn every_ticket_has_its_own_id() {
        let tickets = Tickets::new(SECRET, Duration::from_secs(30));
        let principal = principal();
        let a = tickets.verify(&tickets.issue(&principal, now()), now());
        let b = tickets.verify(&tickets.issue(&principal, now()), now());
        assert_ne!(a.unwrap().id, b.unwrap().id);
    }

    #[test]
    fn a_ticket_never_outlives_its_token() {
        let tickets = Tickets::new(SECRET, Duration::from_secs(30));
        let mut principal = principal();
        principal.expires_at = now() + time::Duration::seconds(5);
        let ticket = tickets.issue(&principal, now());
        assert!(
            tickets
                .verify(&ticket, now() + time::Duration::seconds(5))
                .is_none()
        );
    }

    #[test]
    fn another_servers_forged_or_altered_tickets_are_refused() {
        let tickets = Tickets::new(SECRET, Duration::from_secs(30));
        let ticket = tickets.issue(&principal(), now());
        let other = Tickets::new(
            b"another secret of at least thirty-two bytes",
            Duration::from_secs(30),
        );
        assert!(other.verify(&ticket, now()).is_none(), "another key");
        let (payload, signature) = ticket.split_once('.').unwrap();
        // The payload re-encoded with another username keeps the old signature: refused.
        let mut claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        claims["name"] = "admin".into();
        let altered = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        assert!(
            tickets
                .verify(&format!("{altered}.{signature}"), now())
                .is_none()
        );
        for bad in [
            "",
            ".",
            "made-up",
            payload,
            &format!("{payload}."),
            &format!("{payload}.{signature}x"),
            &format!("{payload}.{}", &signature[1..]),
            &"a".repeat(MAX_TICKET_LEN + 1),
            "%%%.%%%",
        ] {
            assert!(tickets.verify(bad, now()).is_none(), "{bad:?}");
        }
    }

    #[test]
    fn a_node_with_the_same_secret_accepts_the_ticket() {
        let issued = Tickets::new(SECRET, Duration::from_secs(30)).issue(&principal(), now());
        let elsewhere = Tickets::new(SECRET, Duration::from_secs(30));
        assert!(elsewhere.verify(&issued, now()).is_some());
    }

    #[test]
    fn tickets_come_from_the_query() {
        assert_eq!(in_query(Some("a=1&ticket=abc")), Some("abc"));
        assert_eq!(in_query(Some("tickets=abc")), None);
        assert_eq!(in_query(None), None);
    }
}
