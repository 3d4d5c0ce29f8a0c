//! The runtime's [`Guard`]: failed attempts counted in sliding windows in memory, security events sent to the audit
//! log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use palaver_handlers::model::{Principal, SecurityEvent};
use palaver_handlers::{Attempt, Guard};

use crate::audit::{Actor, Audit};
use crate::metrics::Metrics;
use crate::ratelimit::{Decision, RateLimiter};

/// How many users' attempts are remembered at most (stale ones are swept; past it the stalest are evicted).
const MAX_TRACKED_ATTEMPTS: usize = 100_000;

/// Failed attempts per user and target, and the audit log they report to.
pub struct SecurityGuard {
    failures: RateLimiter<Attempt>,
    audit: Audit,
    metrics: Arc<Metrics>,
}

impl SecurityGuard {
    /// Allows `limit` failures of one attempt per `window`.
    pub fn new(limit: u32, window: Duration, audit: Audit, metrics: Arc<Metrics>) -> Self {
        SecurityGuard {
            failures: RateLimiter::new(limit, window, MAX_TRACKED_ATTEMPTS),
            audit,
            metrics,
        }
    }
}

impl Guard for SecurityGuard {
    fn may_try(&self, attempt: &Attempt) -> bool {
        self.failures.peek(attempt, Instant::now()) == Decision::Allowed
    }

    fn failed(&self, attempt: &Attempt) {
        self.failures.record(attempt, Instant::now());
    }

    fn record(&self, principal: &Principal, event: SecurityEvent) {
        let actor = Actor::of(principal);
        let mut details = serde_json::json!({ "room": event.room() });
        match &event {
            SecurityEvent::RoomCreated { private, .. } => {
                details["private"] = (*private).into();
            }
            SecurityEvent::RoomPasswordLocked { .. } => {
                // A locked-out guesser keeps trying: one audit event a minute, like every other rate limit.
                self.metrics
                    .rate_limited
                    .with_label_values(&["room_password"])
                    .inc();
                self.audit
                    .rate_limited_with("room_password", &actor, details);
                return;
            }
            SecurityEvent::RoomDeleted { .. } | SecurityEvent::RoomPasswordFailed { .. } => {}
        }
        self.audit
            .record(event.name(), event.outcome(), &actor, details);
    }
}
