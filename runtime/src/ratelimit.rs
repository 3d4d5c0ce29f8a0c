//! Sliding-window rate limits in memory, keyed by anything hashable (a user, an IP, an account and IP pair).
//!
//! Each key keeps the count of the current fixed window and of the previous one; the estimate weights the previous
//! count by how much of it still overlaps the sliding window (the "sliding window counter"). That is two integers per
//! key, and memory is bounded: stale keys are swept, and past `max_keys` the stalest key is evicted.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// One key's counts.
#[derive(Debug, Clone, Copy)]
struct Window {
    /// Start of the current fixed window.
    start: Instant,
    current: u32,
    previous: u32,
}

/// Whether a request may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Refused; the caller may retry after this long.
    Limited {
        retry_after: Duration,
    },
}

/// A limit of `limit` events per sliding `window`, per key.
pub struct RateLimiter<K> {
    limit: u32,
    window: Duration,
    max_keys: usize,
    windows: Mutex<HashMap<K, Window>>,
}

impl<K: Hash + Eq + Clone> RateLimiter<K> {
    /// A limiter allowing `limit` events per `window` for each key, remembering at most `max_keys` keys.
    pub fn new(limit: u32, window: Duration, max_keys: usize) -> Self {
        RateLimiter {
            limit,
            window,
            max_keys: max_keys.max(1),
            windows: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one event for `key` at `now` if the limit allows it.
    pub fn check(&self, key: &K, now: Instant) -> Decision {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = self.entry(&mut windows, key, now);
        let decision = self.decide(entry, now);
        if decision == Decision::Allowed {
            entry.current += 1;
        }
        decision
    }

    /// Whether `key` is within the limit at `now`, without counting anything (for limits on failures, counted with
    /// [`RateLimiter::record`] only when one happens).
    pub fn peek(&self, key: &K, now: Instant) -> Decision {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match windows.get_mut(key) {
            Some(entry) => {
                roll(entry, self.window, now);
                self.decide(entry, now)
            }
            None => Decision::Allowed,
        }
    }

    /// Counts one event for `key` at `now`, whatever the limit says.
    pub fn record(&self, key: &K, now: Instant) {
        let mut windows = self
            .windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let entry = self.entry(&mut windows, key, now);
        entry.current = entry.current.saturating_add(1);
    }

    /// The key's window, rolled to `now`, made room for when the key is new.
    fn entry<'a>(
        &self,
        windows: &'a mut HashMap<K, Window>,
        key: &K,
        now: Instant,
    ) -> &'a mut Window {
        if !windows.contains_key(key) && windows.len() >= self.max_keys {
            self.make_room(windows, now);
        }
        let entry = windows.entry(key.clone()).or_insert(Window {
            start: now,
            current: 0,
            previous: 0,
        });
        roll(entry, self.window, now);
        entry
    }

    /// Whether one more event fits: the previous window weighted by its remaining overlap, plus the current one.
    fn decide(&self, entry: &Window, now: Instant) -> Decision {
        let elapsed =
            now.saturating_duration_since(entry.start).as_secs_f64() / self.window.as_secs_f64();
        let estimate =
            f64::from(entry.previous) * (1.0 - elapsed).max(0.0) + f64::from(entry.current);
        if estimate + 1.0 > f64::from(self.limit) {
            let retry_after = (entry.start + self.window)
                .saturating_duration_since(now)
                .max(Duration::from_millis(1));
            Decision::Limited { retry_after }
        } else {
            Decision::Allowed
        }
    }

    /// How many keys are remembered.
    pub fn tracked_keys(&self) -> usize {
        self.windows
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .len()
    }

    fn make_room(&self, windows: &mut HashMap<K, Window>, now: Instant) {
        // Keys untouched for two windows count nothing any more.
        let stale = self.window * 2;
        windows.retain(|_, w| now.saturating_duration_since(w.start) < stale);
        if windows.len() >= self.max_keys {
            // Still full of live keys (a flood of new ones): forget the stalest eighth at once, so the cost of this
            // scan is shared by the next max_keys/8 new keys instead of paid by each.
            let mut starts: Vec<Instant> = windows.values().map(|w| w.start).collect();
            let cut = (starts.len() / 8).max(1) - 1;
            let (_, cutoff, _) = starts.select_nth_unstable(cut);
            let cutoff = *cutoff;
            windows.retain(|_, w| w.start > cutoff);
        }
    }
}

/// Moves `entry` to the fixed window containing `now`.
fn roll(entry: &mut Window, window: Duration, now: Instant) {
    let elapsed = now.saturating_duration_since(entry.start);
    if elapsed < window {
        return;
    }
    let windows_passed = elapsed.as_nanos() / window.as_nanos().max(1);
    entry.previous = if windows_passed == 1 {
        entry.current
    } else {
        0
    };
    entry.current = 0;
    let advance = window.as_nanos() * windows_passed;
    entry.start += Duration::from_nanos(u64::try_from(advance).unwrap_or(u64::MAX));
}

/// The limits of HTTP traffic: requests per client address, and password guessing.
pub struct HttpLimits {
    /// Requests per client address.
    pub requests: RateLimiter<std::net::IpAddr>,
    /// Registrations per client address.
    pub registrations: RateLimiter<std::net::IpAddr>,
    /// Failed logins per client address (credential stuffing from one place).
    pub login_failures_by_ip: RateLimiter<std::net::IpAddr>,
    /// Failed logins per account name (guessing one account's password from many places).
    pub login_failures_by_account: RateLimiter<String>,
}

/// How many client addresses' and accounts' windows are kept at most.
const MAX_TRACKED_CLIENTS: usize = 100_000;

impl HttpLimits {
    /// The limits from the settings' numbers.
    pub fn new(
        requests_per_minute: u32,
        registrations_per_hour: u32,
        (login_failures, login_ip_failures): (u32, u32),
        login_window: Duration,
    ) -> Self {
        HttpLimits {
            requests: RateLimiter::new(
                requests_per_minute,
                Duration::from_secs(60),
                MAX_TRACKED_CLIENTS,
            ),
            registrations: RateLimiter::new(
                registrations_per_hour,
                Duration::from_secs(3600),
                MAX_TRACKED_CLIENTS,
            ),
            login_failures_by_ip: RateLimiter::new(
                login_ip_failures,
                login_window,
                MAX_TRACKED_CLIENTS,
            ),
            login_failures_by_account: RateLimiter::new(
                login_failures,
                login_window,
                MAX_TRACKED_CLIENTS,
            ),
        }
    }
}

/// The limits of WebSocket traffic, per user across all of that user's connections.
pub struct SocketLimits {
    /// Commands per user.
    pub messages: RateLimiter<uuid::Uuid>,
    /// Refusals per user: a user refused this often keeps flooding and is disconnected (1008).
    pub floods: RateLimiter<uuid::Uuid>,
}

/// How many users' windows are kept at most.
const MAX_TRACKED_USERS: usize = 100_000;

impl SocketLimits {
    /// `messages` commands per `window` per user; `refusals` refusals per ten windows before a disconnect.
    pub fn new(messages: u32, window: Duration, refusals: u32) -> Self {
        SocketLimits {
            messages: RateLimiter::new(messages, window, MAX_TRACKED_USERS),
            floods: RateLimiter::new(refusals, window * 10, MAX_TRACKED_USERS),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn allows_the_limit_then_refuses_with_a_retry_time() {
        let limiter = RateLimiter::new(3, SECOND, 100);
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(limiter.check(&"jane", t0), Decision::Allowed);
        }
        assert!(
            matches!(limiter.check(&"jane", t0), Decision::Limited { retry_after } if retry_after <= SECOND)
        );
        assert_eq!(
            limiter.check(&"john", t0),
            Decision::Allowed,
            "keys are independent"
        );
    }

    #[test]
    fn the_window_slides_instead_of_resetting() {
        let limiter = RateLimiter::new(10, SECOND, 100);
        let t0 = Instant::now();
        limiter.check(&1, t0);
        for _ in 0..9 {
            limiter.check(&1, t0 + Duration::from_millis(900));
        }
        // Just after the key's fixed window turns, 90% of the previous one still counts: no fresh burst of 10.
        let just_after = t0 + Duration::from_millis(1100);
        let allowed = (0..10)
            .filter(|_| limiter.check(&1, just_after) == Decision::Allowed)
            .count();
        assert_eq!(allowed, 1);
        // Two windows later everything has slid out.
        let later = t0 + Duration::from_millis(3000);
        let allowed = (0..20)
            .filter(|_| limiter.check(&1, later) == Decision::Allowed)
            .count();
        assert_eq!(allowed, 10);
    }

    #[test]
    fn failures_are_counted_only_when_recorded() {
        let limiter = RateLimiter::new(2, SECOND, 100);
        let t0 = Instant::now();
        assert_eq!(limiter.peek(&"acct", t0), Decision::Allowed);
        assert_eq!(
            limiter.peek(&"acct", t0),
            Decision::Allowed,
            "peeking counts nothing"
        );
        limiter.record(&"acct", t0);
        assert_eq!(limiter.peek(&"acct", t0), Decision::Allowed);
        limiter.record(&"acct", t0);
        assert!(matches!(
            limiter.peek(&"acct", t0),
            Decision::Limited { .. }
        ));
        assert_eq!(limiter.peek(&"acct", t0 + SECOND * 3), Decision::Allowed);
    }

    #[test]
    fn memory_stays_bounded_under_many_keys() {
        let limiter = RateLimiter::new(5, SECOND, 1000);
        let t0 = Instant::now();
        for key in 0..100_000u32 {
            limiter.check(&key, t0 + Duration::from_micros(u64::from(key)));
        }
        assert!(limiter.tracked_keys() <= 1000, "{}", limiter.tracked_keys());
        // Once they are stale, a sweep forgets them all.
        limiter.check(&u32::MAX, t0 + SECOND * 5);
        assert!(limiter.tracked_keys() <= 2, "{}", limiter.tracked_keys());
    }
}
