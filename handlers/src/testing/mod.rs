//! In-memory implementations of every part of the [`crate::Context`], for unit tests: a reference store, fake but
//! honest credentials, a hub that records deliveries, a guard that remembers, receipts that are recorded, and a clock
//! that moves only when told.
//! Enabled by the `testing` feature; the store and hub conformance suites hold these to the same rules as the
//! runtime's real implementations. [`fixtures`] has the helpers the actions' tests share.

mod clock;
mod context;
mod credentials;
pub mod fixtures;
mod guard;
mod hub;
mod receipts;
mod store;

use std::sync::{Mutex, MutexGuard};

pub use clock::ManualClock;
pub use context::{TEST_PASSWORD, TestContext};
pub use credentials::{FAKE_TOKEN_TTL, FakeCredentials};
pub use guard::MemoryGuard;
pub use hub::MemoryHub;
pub use receipts::MemoryReceipts;
pub use store::MemoryStore;

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock has already failed; keep the data usable for its report.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
