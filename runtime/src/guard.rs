//! The runtime's [`Guard`], and the one place where security events are recorded: failed attempts counted in sliding
//! windows in memory, every security event sent to the audit log, every refusal by a limit counted in the metrics.

use std::sync::Arc;
use std::time::{Duration, Instant};

use palaver_handlers::model::{Limit, Principal, SecurityEvent};
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

    /// Records `event` about `actor` in the audit log; a refusal by a limit is also counted in
    /// `palaver_rate_limited_total` (every refusal, though the audit log keeps one a minute per actor).
    pub fn audit(&self, actor: &Actor, event: SecurityEvent) {
        if let Some(limit) = event.limit() {
            self.metrics
                .rate_limited
                .with_label_values(&[limit.label()])
                .inc();
        }
        self.audit.record(actor, &event);
    }

    /// Counts and audits that `actor` was refused by `limit`.
    pub fn refused(&self, limit: Limit, actor: &Actor) {
        self.audit(actor, SecurityEvent::RateLimited { limit });
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
        self.audit(&Actor::of(principal), event);
    }
}
