//! The security guard for tests: failures counted without a window, events kept in order.

use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;

use super::lock;
use crate::context::{Attempt, Guard};
use crate::model::{Principal, SecurityEvent};

/// The guard in memory: failures counted forever (no window; tests are short), events kept in order.
pub struct MemoryGuard {
    /// Failures after which an attempt is refused.
    pub limit: u32,
    failures: Mutex<HashMap<Attempt, u32>>,
    events: Mutex<Vec<(Uuid, SecurityEvent)>>,
}

impl Default for MemoryGuard {
    fn default() -> Self {
        MemoryGuard {
            limit: 5,
            failures: Mutex::default(),
            events: Mutex::default(),
        }
    }
}

impl MemoryGuard {
    /// Every event recorded so far, with the user who did it.
    pub fn events(&self) -> Vec<(Uuid, SecurityEvent)> {
        lock(&self.events).clone()
    }
}

impl Guard for MemoryGuard {
    fn may_try(&self, attempt: &Attempt) -> bool {
        lock(&self.failures).get(attempt).copied().unwrap_or(0) < self.limit
    }

    fn failed(&self, attempt: &Attempt) {
        *lock(&self.failures).entry(*attempt).or_default() += 1;
    }

    fn record(&self, principal: &Principal, event: SecurityEvent) {
        lock(&self.events).push((principal.user_id, event));
    }
}
