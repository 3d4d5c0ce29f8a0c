//! A clock for tests: it stands still until a test moves it.

use std::sync::Mutex;

use time::{Duration, OffsetDateTime};

use super::lock;
use crate::context::Clock;

/// A clock that stands still until [`ManualClock::advance`] moves it.
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    /// A clock standing at `now`.
    pub fn at(now: OffsetDateTime) -> Self {
        ManualClock(Mutex::new(now))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        *lock(&self.0) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *lock(&self.0)
    }
}
