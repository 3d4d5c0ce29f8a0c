//! A real Palaver server on a free port, for black-box tests: SQLite in a temporary directory, or PostgreSQL in a
//! fresh schema (see [`crate::pg`]).

use std::net::SocketAddr;

use palaver_runtime::{RunningServer, Settings};

use crate::pg::{self, PgDatabase};

/// The JWT secret test servers sign with, so tests can forge tokens signed with the right key.
pub const TEST_JWT_SECRET: &str = "integration-test-secret-0123456789abcdef";

/// Which store a test server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// A running server and what it needs to stay alive; shut down when dropped with [`TestServer::stop`] or at exit.
pub struct TestServer {
    server: Option<RunningServer>,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
    // Declared last: the server and its pool are gone before the schema is dropped.
    _database: Option<PgDatabase>,
}

impl TestServer {
    /// A server on `engine` with test settings, or `None` when PostgreSQL was asked for and is not available outside
    /// CI (see [`crate::pg`]).
    pub async fn start(engine: Engine) -> Option<TestServer> {
        Self::start_with(engine, &[]).await
    }

    /// Like [`TestServer::start`], with extra `PALAVER_*` settings.
    pub async fn start_with(engine: Engine, extra: &[(&str, &str)]) -> Option<TestServer> {
        let dir = tempfile::tempdir().expect("a temporary directory for the test database");
        let database = match engine {
            Engine::Sqlite => None,
            Engine::Postgres => Some(pg::fresh_database_url().await?),
        };
        let database_url = database
            .as_ref()
            .map(|db| db.url().to_owned())
            .unwrap_or_default();
        Some(Self::launch(dir, &database_url, database, extra).await)
    }

    /// A server on the PostgreSQL database at `url`, which the caller provides and keeps alive for as long as the
    /// server runs (e.g. a [`PgDatabase`] reached through a [`crate::proxy::Proxy`]), with extra `PALAVER_*` settings.
    pub async fn start_on_postgres(url: &str, extra: &[(&str, &str)]) -> TestServer {
        let dir = tempfile::tempdir().expect("a temporary directory for the server");
        Self::launch(dir, url, None, extra).await
    }

    /// Starts the server with test settings on `database_url` (empty: SQLite in `dir`); `database` is kept until
    /// the server is gone.
    async fn launch(
        dir: tempfile::TempDir,
        database_url: &str,
        database: Option<PgDatabase>,
        extra: &[(&str, &str)],
    ) -> TestServer {
        let sqlite_path = dir.path().join("palaver.db");
        let mut vars: Vec<(String, String)> = vec![
            ("PALAVER_LISTEN".into(), "127.0.0.1:0".into()),
            (
                "PALAVER_SQLITE_PATH".into(),
                sqlite_path.display().to_string(),
            ),
            ("PALAVER_DATABASE_URL".into(), database_url.to_owned()),
            ("PALAVER_DB_POOL_SIZE".into(), "4".into()),
            ("PALAVER_BCRYPT_COST".into(), "4".into()),
            ("PALAVER_JWT_SECRET".into(), TEST_JWT_SECRET.into()),
            ("PALAVER_SHUTDOWN_GRACE_MS".into(), "2000".into()),
            // Tests make many requests from one address; the tests of the limits set them low again.
            ("PALAVER_HTTP_REQUESTS_PER_MINUTE".into(), "1000000".into()),
            ("PALAVER_REGISTRATIONS_PER_HOUR".into(), "1000000".into()),
        ];
        vars.extend(
            extra
                .iter()
                .map(|(key, value)| (key.to_string(), value.to_string())),
        );
        let settings = Settings::load_from(vars).expect("test settings are valid");
        let server = palaver_runtime::start(settings)
            .await
            .expect("the test server starts");
        let addr = server.local_addr();
        TestServer {
            server: Some(server),
            addr,
            _dir: dir,
            _database: database,
        }
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Shuts the server down and waits for it.
    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}
