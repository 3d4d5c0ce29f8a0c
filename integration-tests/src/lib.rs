//! Helpers for Palaver's black-box tests: databases to test against and a server on a free port.

pub mod api;
pub mod pg;
pub mod server;

pub use server::{Engine, TEST_JWT_SECRET, TestServer};
