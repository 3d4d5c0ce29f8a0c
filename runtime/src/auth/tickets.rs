//! Single-use WebSocket tickets: browsers cannot set an `Authorization` header on a WebSocket, so they trade their
//! session for a short-lived ticket (`POST /api/ws-ticket`) and open `/ws?ticket=…` with it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use palaver_handlers::model::Principal;

/// At most this many unredeemed tickets are kept; past it, new ones are refused until old ones expire.
pub const MAX_OPEN_TICKETS: usize = 100_000;

/// The tickets issued and not yet redeemed or expired.
pub struct Tickets {
    ttl: Duration,
    open: Mutex<HashMap<String, (Principal, Instant)>>,
}

impl Tickets {
    /// Tickets valid for `ttl`.
    pub fn new(ttl: Duration) -> Self {
        Tickets {
            ttl,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// How long a ticket is valid.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// A new ticket for `principal`, or `None` when too many are open.
    pub fn issue(&self, principal: Principal) -> Option<String> {
        let now = Instant::now();
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if open.len() >= MAX_OPEN_TICKETS {
            open.retain(|_, (_, expires)| *expires > now);
            if open.len() >= MAX_OPEN_TICKETS {
                return None;
            }
        }
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        let ticket: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        open.insert(ticket.clone(), (principal, now + self.ttl));
        Some(ticket)
    }

    /// The principal of a valid ticket, which is used up; `None` for an unknown, used or expired ticket.
    pub fn redeem(&self, ticket: &str) -> Option<Principal> {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let (principal, expires) = open.remove(ticket)?;
        (expires > Instant::now()).then_some(principal)
    }
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

    fn principal() -> Principal {
        Principal {
            user_id: uuid::Uuid::now_v7(),
            username: "john_doe".into(),
            token_id: "t".into(),
            expires_at: time::OffsetDateTime::now_utc(),
        }
    }

    #[test]
    fn a_ticket_works_once() {
        let tickets = Tickets::new(Duration::from_secs(30));
        let ticket = tickets.issue(principal()).unwrap();
        assert_eq!(ticket.len(), 64);
        assert_eq!(
            tickets.redeem(&ticket).map(|p| p.username),
            Some("john_doe".into())
        );
        assert!(tickets.redeem(&ticket).is_none());
        assert!(tickets.redeem("made-up").is_none());
    }

    #[test]
    fn an_expired_ticket_is_refused() {
        let tickets = Tickets::new(Duration::ZERO);
        let ticket = tickets.issue(principal()).unwrap();
        assert!(tickets.redeem(&ticket).is_none());
    }

    #[test]
    fn tickets_come_from_the_query() {
        assert_eq!(in_query(Some("a=1&ticket=abc")), Some("abc"));
        assert_eq!(in_query(Some("tickets=abc")), None);
        assert_eq!(in_query(None), None);
    }
}
