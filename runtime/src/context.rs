//! The runtime's [`Context`]: the configured store, real credentials and the system clock, shared by every request.

use std::sync::Arc;

use palaver_handlers::{
    Broker, Clock, Context, Credentials, Guard, Hub, Limits, MessageLog, Presence, Receipts, Store,
};
use time::OffsetDateTime;

use crate::auth::csrf::CsrfKey;
use crate::auth::tickets::Tickets;
use crate::config::Settings;
use crate::credentials::RealCredentials;
use crate::delivery::{GroupCommit, ReceiptThrottle};
use crate::guard::SecurityGuard;
use crate::hub::LocalHub;
use crate::metrics::Metrics;
use crate::ratelimit::{HttpLimits, SocketLimits};
use crate::ws::capacity::ConnectionCaps;

/// The wall clock, in whole microseconds: the precision both stores keep, so a value a handler holds equals the one
/// read back later.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        let now = OffsetDateTime::now_utc();
        now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
            .unwrap_or(now)
    }
}

/// What every handler call runs over in the server.
pub struct AppContext {
    pub store: Arc<dyn Store>,
    /// The PostgreSQL pool behind `store`, if any (for metrics).
    pub pool: Option<deadpool_postgres::Pool>,
    pub metrics: Arc<Metrics>,
    pub credentials: RealCredentials,
    pub clock: SystemClock,
    pub hub: Arc<LocalHub>,
    /// Room events to every node: the hub itself on one node.
    pub broker: Arc<dyn Broker>,
    /// Who is where, across nodes: the hub itself on one node.
    pub presence: Arc<dyn Presence>,
    /// This node's part in the cluster, when it is one of several.
    pub cluster: Option<Arc<crate::cluster::Node>>,
    pub messages: GroupCommit,
    pub receipts: ReceiptThrottle,
    pub limits: Limits,
    pub tickets: Tickets,
    pub csrf: CsrfKey,
    pub socket_limits: SocketLimits,
    pub http_limits: HttpLimits,
    pub guard: SecurityGuard,
    pub connections: Arc<ConnectionCaps>,
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

    fn hub(&self) -> &dyn Hub {
        self.hub.as_ref()
    }

    fn broker(&self) -> &dyn Broker {
        self.broker.as_ref()
    }

    fn presence(&self) -> &dyn Presence {
        self.presence.as_ref()
    }

    fn messages(&self) -> &dyn MessageLog {
        &self.messages
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn guard(&self) -> &dyn Guard {
        &self.guard
    }

    fn receipts(&self) -> &dyn Receipts {
        &self.receipts
    }
}
