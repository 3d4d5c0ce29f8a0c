//! # palaver-handlers
//!
//! The chat itself: Palaver's rules as plain async functions over a shared [`Context`]. Nothing here does I/O; the
//! runtime (`palaver-runtime`) implements the context with a database, bcrypt and JWT, and turns HTTP requests and
//! WebSocket frames into calls of these functions.
//!
//! ## Layout
//! - [`context`] — the `Context` trait and the traits it is made of (`Store`, `Credentials`, `Clock`).
//! - [`event`] — what actions emit: replies to the caller, broadcasts to a room.
//! - [`model`] — users, rooms, messages, the principal: plain data.
//! - [`validate`] — the protocol's validation rules, one function per field.
//! - [`error`] — the one error enum; each variant knows its code, kind and text.
//! - [`actions`] — one module per action, each with its unit tests.
//! - `testing` (feature `testing`): an in-memory context for unit tests.

pub mod actions;
pub mod command;
pub mod context;
pub mod error;
pub mod event;
pub mod model;
pub mod validate;

#[cfg(feature = "testing")]
pub mod testing;

pub use command::{Command, Decoded};
pub use context::{
    Attempt, Clock, Context, Credentials, Guard, Hub, Limits, MAX_HELD_EVENTS, MessageLog, Posted,
    Store,
};
pub use error::{
    ConnectionCap, CredentialError, Error, ErrorKind, Field, StoreError, TokenRejection, Unique,
};
pub use event::{Outcome, PendingReplies};
