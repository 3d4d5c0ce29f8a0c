//! A cache in front of the revoked-token table. Every authenticated request asks whether its token was revoked, and
//! almost always the answer is no: that answer is trusted for [`NOT_REVOKED_FOR`], so a busy client costs one lookup
//! every two seconds rather than one a request. A revocation made through this store is known at once; one made by
//! another node of a cluster is announced on its control subject and known here at once too
//! ([`palaver_handlers::Store::learn_revoked`]); should that announcement be lost, the revocation still takes effect
//! here within [`NOT_REVOKED_FOR`].

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a "not revoked" answer from the database is believed.
pub const NOT_REVOKED_FOR: Duration = Duration::from_secs(2);

/// How many tokens are remembered at most; past it the cache starts over (the database stays the record).
const MAX_TOKENS: usize = 100_000;

/// Per token id: revoked for good, or known not revoked at an instant.
#[derive(Default)]
pub struct RevocationCache {
    known: Mutex<HashMap<String, Known>>,
}

#[derive(Clone, Copy)]
enum Known {
    Revoked,
    NotRevokedAt(Instant),
}

impl RevocationCache {
    /// What is known of `token_id` now, if anything still trusted.
    pub fn lookup(&self, token_id: &str) -> Option<bool> {
        self.lookup_at(token_id, Instant::now())
    }

    /// Remembers the database's answer for `token_id`.
    pub fn remember(&self, token_id: &str, revoked: bool) {
        self.remember_at(token_id, revoked, Instant::now());
    }

    /// Forgets everything, as when revocations of expired tokens were purged from the database.
    pub fn forget_all(&self) {
        self.lock().clear();
    }

    fn lookup_at(&self, token_id: &str, now: Instant) -> Option<bool> {
        match self.lock().get(token_id).copied()? {
            Known::Revoked => Some(true),
            Known::NotRevokedAt(at) if now.saturating_duration_since(at) < NOT_REVOKED_FOR => {
                Some(false)
            }
            Known::NotRevokedAt(_) => None,
        }
    }

    fn remember_at(&self, token_id: &str, revoked: bool, now: Instant) {
        let mut known = self.lock();
        if known.len() >= MAX_TOKENS && !known.contains_key(token_id) {
            known.clear();
        }
        let entry = if revoked {
            Known::Revoked
        } else {
            Known::NotRevokedAt(now)
        };
        known.insert(token_id.to_owned(), entry);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Known>> {
        self.known
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_not_revoked_answer_is_trusted_only_briefly() {
        let cache = RevocationCache::default();
        let t0 = Instant::now();
        assert_eq!(
            cache.lookup_at("jti", t0),
            None,
            "unknown: ask the database"
        );
        cache.remember_at("jti", false, t0);
        assert_eq!(
            cache.lookup_at("jti", t0 + Duration::from_millis(500)),
            Some(false)
        );
        assert_eq!(cache.lookup_at("jti", t0 + NOT_REVOKED_FOR), None);
    }

    #[test]
    fn a_revocation_is_known_at_once_and_for_good() {
        let cache = RevocationCache::default();
        let t0 = Instant::now();
        cache.remember_at("jti", false, t0);
        cache.remember_at("jti", true, t0);
        assert_eq!(cache.lookup_at("jti", t0), Some(true));
        assert_eq!(
            cache.lookup_at("jti", t0 + Duration::from_secs(3600)),
            Some(true)
        );
    }

    #[test]
    fn memory_is_bounded() {
        let cache = RevocationCache::default();
        let t0 = Instant::now();
        for n in 0..(MAX_TOKENS + 10) {
            cache.remember_at(&format!("jti-{n}"), false, t0);
        }
        assert!(cache.lock().len() <= MAX_TOKENS);
    }
}
