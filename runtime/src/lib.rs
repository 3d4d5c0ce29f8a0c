//! # palaver-runtime
//!
//! Everything of Palaver that does I/O. It implements `palaver_handlers::Context` and routes requests to the
//! handlers; it never decides chat rules.
//!
//! ## Layout
//! - [`audit`] — security events to the `audit` log target and the audit_log table.
//! - [`config`] — the settings, from `config/default.toml` and `PALAVER_*` variables.
//! - [`store`] — PostgreSQL and SQLite implementations of `Store`, with their migrations.
//! - [`credentials`] — bcrypt and JWT.
//! - [`context`] — the `Context` the handlers run over.
//! - [`http`] — warp routes, credentials extraction, JSON errors.
//! - [`hub`] — this node's room subscriptions and delivery, rendering each event once per codec.
//! - [`ws`] — `GET /ws`: handshake, tickets, one session task per socket, command dispatch, the two codecs.
//! - [`metrics`] — Prometheus metrics for `/metrics`.
//! - [`ratelimit`] — sliding-window limits with bounded memory.
//! - [`server`] — accepting connections, graceful shutdown.
//! - [`telemetry`] — logging.

pub mod audit;
pub mod config;
pub mod context;
pub mod credentials;
pub mod guard;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod ratelimit;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod ws;

pub use config::Settings;
pub use server::{RunningServer, start};
