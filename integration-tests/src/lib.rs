//! Helpers for Palaver's black-box tests: databases to test against, a server on a free port, WebSocket clients, and a
//! proxy that takes a dependency away from a running server.

pub mod api;
pub mod chat;
pub mod cluster;
pub mod member;
pub mod nats;
pub mod pg;
pub mod pipe;
pub mod process;
pub mod proxy;
pub mod server;
pub mod ws;

pub use server::{Engine, TEST_JWT_SECRET, TestServer};

/// A running Palaver a test can reach: a server in this process ([`TestServer`]) or a child process
/// ([`process::ServerProcess`]).
pub trait Reachable {
    /// The address it listens on.
    fn addr(&self) -> std::net::SocketAddr;

    /// `http://<addr><path>`.
    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr(), path)
    }
}

impl<T: Reachable> Reachable for &T {
    fn addr(&self) -> std::net::SocketAddr {
        (**self).addr()
    }
}

impl Reachable for TestServer {
    fn addr(&self) -> std::net::SocketAddr {
        TestServer::addr(self)
    }
}

impl Reachable for process::ServerProcess {
    fn addr(&self) -> std::net::SocketAddr {
        process::ServerProcess::addr(self)
    }
}

/// Generates `sqlite::<name>` and `postgres::<name>` tokio tests from async functions taking an [`Engine`]; the
/// calling module must have `Engine` in scope.
///
/// Tests that only mean something on PostgreSQL (a database server that becomes unreachable, say) follow a `;` and
/// `postgres only:`. They are async functions without arguments and become `postgres::<name>` alone, so no SQLite
/// test reports ok without having run:
///
/// ```text
/// palaver_integration_tests::on_every_engine!(
///     messages_are_ordered,
///     ; postgres only:
///     a_lost_database_fails_posts,
/// );
/// ```
#[macro_export]
macro_rules! on_every_engine {
    ($($test:ident,)* ; postgres only: $($postgres_only:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test] async fn $test() { super::$test(super::Engine::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test] async fn $test() { super::$test(super::Engine::Postgres).await })*
            $(#[tokio::test] async fn $postgres_only() { super::$postgres_only().await })*
        }
    };
    ($($test:ident),* $(,)?) => {
        $crate::on_every_engine!($($test,)* ; postgres only:);
    };
}

/// Generates `embedded::<name>` tokio tests (multi-threaded, two workers) running async functions taking an [`Engine`]
/// on SQLite only: for tests of what does not depend on the database (the transport, HTTP limits), where a second
/// engine would double the time and prove nothing more. The calling module must have `Engine` in scope.
#[macro_export]
macro_rules! on_sqlite_only {
    ($($test:ident),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $test() { super::$test(super::Engine::Sqlite).await }
            )*
        }
    };
}
