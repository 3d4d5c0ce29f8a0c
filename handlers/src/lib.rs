//! # palaver-handlers
//!
//! The chat itself: Palaver's rules as plain async functions over a shared [`Context`]. Nothing here does I/O; the
//! runtime (`palaver-runtime`) implements the context with a database, bcrypt and JWT, and turns HTTP requests and
//! WebSocket frames into calls of these functions.
//!
//! ## Layout
//! - [`context`] — the `Context` trait and its nine parts: `Store` (the durable record), `Credentials` (bcrypt and
//!   tokens), `Clock`, `Hub` (this node's subscriptions and delivery), `Broker` (room events, and a leave's unsubscriptions, to every node), `Presence`
//!   (who is where, across nodes), `Limits`, `MessageLog` (posting: stored, then delivered in seq order) and `Guard`
//!   (throttled attempts and the audit trail).
//! - [`command`] — the `Command` enum every WebSocket frame decodes into: the single dispatch point.
//! - [`actions`] — one file per wire command or route, named after it, holding its rule and its unit tests.
//! - [`event`] — what actions emit: replies to the caller, broadcasts to a room, the `Outcome` of a command.
//! - [`model`] — users, rooms, messages, the principal, security events: plain data.
//! - [`validate`] — the protocol's validation rules, one function per field.
//! - [`error`] — every error a client can see, with its code, kind and literal text.
//! - `testing` (feature `testing`) — in-memory implementations of every part of the context, one file each, and the
//!   fixtures the actions' tests share.

pub mod actions;
pub mod command;
pub mod context;
pub mod error;
pub mod event;
pub mod model;
pub mod room_log;
pub mod search_text;
pub mod validate;

#[cfg(feature = "testing")]
pub mod testing;

pub use command::{Command, Decoded};
pub use context::{
    Attempt, Broker, Clock, Context, Credentials, Delivered, Guard, Hub, Limits, MAX_HELD_EVENTS,
    MessageLog, Posted, Presence, Receipts, Store,
};
pub use error::{
    ConnectionCap, CredentialError, Error, ErrorKind, Field, StoreError, TokenRejection, Unique,
};
pub use event::{Outcome, PendingReplies};
