//! The runtime's [`Context`]: the configured store, real credentials and the system clock, shared by every request.

use std::sync::Arc;

use palaver_handlers::{Clock, Context, Credentials, Store};
use time::OffsetDateTime;

use crate::config::Settings;
use crate::credentials::RealCredentials;

/// The wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// What every handler call runs over in the server.
pub struct AppContext {
    pub store: Arc<dyn Store>,
    pub credentials: RealCredentials,
    pub clock: SystemClock,
    pub settings: Settings,
}

impl Context for AppContext {
    fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }

    fn credentials(&self) -> &dyn Credentials {
        &self.credentials
    }

    fn clock(&self) -> &dyn Clock {
        &self.clock
    }
}
