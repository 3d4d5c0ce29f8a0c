//! The audit log of security events: each event goes to the `audit` tracing target at once and into the database's
//! `audit_log` table through a bounded queue that a background task drains in batches, so recording never waits on
//! the database. Events never hold a password, token or message body.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use palaver_handlers::Store;
use palaver_handlers::model::{AuditEvent, Limit, SecurityEvent};
use time::OffsetDateTime;
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::ratelimit::{Decision, RateLimiter};

/// How many events may wait for the database; past it new events are logged but not stored (and counted).
const QUEUE: usize = 10_000;
/// The most events stored in one write.
const BATCH: usize = 500;

/// Where security events are recorded.
#[derive(Clone)]
pub struct Audit {
    events: mpsc::Sender<AuditEvent>,
    /// Rate-limit refusals already recorded, so that a flood is one event a minute per actor, not one per request.
    refusals: Arc<RateLimiter<RefusalKey>>,
}

/// A rate limit and who hit it.
type RefusalKey = (Limit, Option<Uuid>, Option<IpAddr>);

/// How many (limit, actor) pairs' last refusal is remembered at most.
const MAX_TRACKED_REFUSALS: usize = 100_000;

/// Who and where an event is about.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub user_id: Option<Uuid>,
    pub username: Option<String>,
    pub ip: Option<IpAddr>,
    pub user_agent: Option<String>,
}

impl Actor {
    /// The actor of an authenticated request.
    pub fn of(principal: &palaver_handlers::model::Principal) -> Self {
        Actor {
            user_id: Some(principal.user_id),
            username: Some(principal.username.clone()),
            ..Actor::default()
        }
    }
}

impl Audit {
    /// Starts the writer task over `store`.
    pub fn start(store: Arc<dyn Store>) -> Self {
        let (events, waiting) = mpsc::channel(QUEUE);
        tokio::spawn(write(store, waiting));
        Audit {
            events,
            refusals: Arc::new(RateLimiter::new(
                1,
                Duration::from_secs(60),
                MAX_TRACKED_REFUSALS,
            )),
        }
    }

    /// Records `event` about `actor`. A refusal by a limit is recorded at most once a minute per limit and actor,
    /// so that a flood is one event, not thousands.
    pub fn record(&self, actor: &Actor, event: &SecurityEvent) {
        if let Some(limit) = event.limit() {
            let key = (limit, actor.user_id, actor.ip);
            if self.refusals.check(&key, Instant::now()) != Decision::Allowed {
                return;
            }
        }
        let (name, outcome, details) = (event.name(), event.outcome(), event.details());
        // Debug formatting escapes newlines and control characters, so a hostile username cannot forge log lines.
        tracing::info!(
            target: "audit",
            event = name,
            outcome,
            user = ?actor.user_id,
            username = ?actor.username,
            ip = ?actor.ip,
            user_agent = ?actor.user_agent,
            details = %details,
        );
        let entry = AuditEvent {
            at: OffsetDateTime::now_utc(),
            event: name.to_owned(),
            user_id: actor.user_id,
            username: actor.username.clone(),
            ip: actor.ip.map(|ip| ip.to_string()),
            user_agent: actor
                .user_agent
                .as_deref()
                .map(|agent| agent.chars().take(256).collect()),
            outcome: outcome.to_owned(),
            details,
        };
        if self.events.try_send(entry).is_err() {
            tracing::warn!(target: "audit", event = name, "audit queue full; event logged but not stored");
        }
    }
}

async fn write(store: Arc<dyn Store>, mut waiting: mpsc::Receiver<AuditEvent>) {
    while let Some(first) = waiting.recv().await {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match waiting.try_recv() {
                Ok(event) => batch.push(event),
                Err(_) => break,
            }
        }
        if let Err(err) = store.record_audit(&batch).await {
            tracing::warn!(target: "audit", error = %err, events = batch.len(), "audit events not stored");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palaver_handlers::testing::MemoryStore;

    #[tokio::test]
    async fn events_reach_the_store_without_secrets() {
        let store = Arc::new(MemoryStore::new());
        let audit = Audit::start(store.clone());
        let actor = Actor {
            username: Some("john\u{1b}[31m\nfake".into()),
            ip: "127.0.0.1".parse().ok(),
            ..Actor::default()
        };
        audit.record(&actor, &SecurityEvent::LoginFailed);
        let since = OffsetDateTime::now_utc() - time::Duration::minutes(1);
        let mut stored = Vec::new();
        for _ in 0..100 {
            stored = store.audit_since(since, 10).await.unwrap();
            if !stored.is_empty() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(stored.len(), 1);
        assert_eq!(stored[0].event, "login");
        assert_eq!(stored[0].outcome, "failure");
        assert_eq!(stored[0].ip.as_deref(), Some("127.0.0.1"));
    }

    #[tokio::test]
    async fn a_flood_of_refusals_is_one_event_per_actor_and_limit() {
        let store = Arc::new(MemoryStore::new());
        let audit = Audit::start(store.clone());
        let flooder = Actor {
            ip: "192.0.2.1".parse().ok(),
            ..Actor::default()
        };
        let other = Actor {
            ip: "192.0.2.2".parse().ok(),
            ..Actor::default()
        };
        let refused = |limit| SecurityEvent::RateLimited { limit };
        for _ in 0..1000 {
            audit.record(&flooder, &refused(Limit::HttpRequests));
        }
        audit.record(&flooder, &refused(Limit::Registrations));
        audit.record(&other, &refused(Limit::HttpRequests));
        let since = OffsetDateTime::now_utc() - time::Duration::minutes(1);
        let mut stored = Vec::new();
        for _ in 0..100 {
            stored = store.audit_since(since, 100).await.unwrap();
            if stored.len() >= 3 {
                break;
            }
            tokio::task::yield_now().await;
        }
        let mut seen: Vec<(String, String)> = stored
            .iter()
            .map(|event| {
                (
                    event.ip.clone().unwrap_or_default(),
                    event.details["limit"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                )
            })
            .collect();
        seen.sort();
        assert_eq!(
            seen,
            [
                ("192.0.2.1".to_owned(), "http_requests".to_owned()),
                ("192.0.2.1".to_owned(), "registrations".to_owned()),
                ("192.0.2.2".to_owned(), "http_requests".to_owned()),
            ]
        );
        assert!(stored.iter().all(|event| event.event == "rate_limited"));
    }
}
