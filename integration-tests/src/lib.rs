//! Helpers for Palaver's black-box tests: databases to test against, a server on a free port, WebSocket clients, and a
//! proxy that takes a dependency away from a running server.

pub mod api;
pub mod pg;
pub mod pipe;
pub mod process;
pub mod proxy;
pub mod server;
pub mod ws;

pub use server::{Engine, TEST_JWT_SECRET, TestServer};

/// Generates `sqlite::<name>` and `postgres::<name>` tokio tests from async functions taking an [`Engine`]; the
/// calling module must have `Engine` in scope.
#[macro_export]
macro_rules! on_every_engine {
    ($($test:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $test() { super::$test(super::Engine::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $test() { super::$test(super::Engine::Postgres).await })*
        }
    };
}
