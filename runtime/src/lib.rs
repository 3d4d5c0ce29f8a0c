//! # palaver-runtime
//!
//! Everything of Palaver that does I/O: configuration, the stores, credentials, the HTTP routes and the server.
//! It implements `palaver_handlers::Context` and routes requests to the handlers; it never decides chat rules.

pub mod store;
