//! # palaver-runtime
//!
//! Everything of Palaver that does I/O. It implements `palaver_handlers::Context` and routes requests to the
//! handlers; it never decides chat rules.
//!
//! ## Layout
//! Start, serve, stop:
//! - [`server`] — builds the context, accepts connections, routes `/ws` to [`ws`] and the rest to [`http`].
//! - [`shutdown`] — the stop signal every connection task listens to.
//! - [`config`] — the settings, from `config/default.toml` and `PALAVER_*` variables.
//! - [`context`] — the `Context` the handlers run over, and everything the adapters share.
//!
//! The two adapters (neither imports the other) and what they share:
//! - [`http`] — the REST routes (warp filters), the web client, probes, metrics.
//! - [`ws`] — `GET /ws`: handshake, one session task per socket, connection caps, control frames.
//! - [`auth`] — who is asking: bearer token, session cookie and CSRF, ticket, client address.
//! - [`render`] — every shape on the wire: the text and JSON codecs, JSON bodies, HTTP error responses.
//! - [`close`] — every WebSocket close code and reason.
//!
//! The message path and the node's connections:
//! - [`delivery`] — after the rule: the group-commit writer, then the fan-out.
//! - [`hub`] — this node's sockets and rooms; renders nothing itself.
//! - [`cluster`] — several nodes on NATS (only with `nats_url`): the broker that orders and repairs every room.
//!
//! Engines and services:
//! - [`store`] — PostgreSQL and SQLite implementations of `Store`, with their migrations.
//! - [`credentials`] — bcrypt and JWT.
//! - [`guard`], [`audit`], [`ratelimit`] — attempts, the audit log, sliding-window limits.
//! - [`metrics`] — Prometheus metrics for `/metrics`.
//! - [`telemetry`] — logging.

pub mod audit;
pub mod auth;
pub mod close;
pub mod cluster;
pub mod config;
pub mod context;
pub mod credentials;
pub mod delivery;
pub mod guard;
pub mod http;
pub mod hub;
pub mod metrics;
pub mod ratelimit;
pub mod render;
pub mod server;
pub mod shutdown;
pub mod store;
pub mod telemetry;
pub mod ws;

pub use config::Settings;
pub use server::{RunningServer, start};
