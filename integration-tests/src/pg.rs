//! Fresh PostgreSQL databases for tests: each call gives a test its own empty schema, so tests can run in parallel
//! against one server without seeing each other's tables.
//!
//! Where the server comes from, in order:
//! 1. `TEST_DATABASE_URL` (e.g. `postgres://postgres@127.0.0.1:5432/test`): that server.
//! 2. Docker (a socket at `/var/run/docker.sock`, or `DOCKER_HOST` set): a `postgres:16-alpine` container started with
//!    `testcontainers`, one per [`PgDatabase`], removed when the guard is dropped.
//! 3. Neither, with `CI` set to `true` or `1`: a panic, because in CI the PostgreSQL suite must fail, never skip.
//! 4. Neither, outside CI: `None`, after one line on stderr saying the test was skipped and how to run it.
//!
//! ```no_run
//! # async fn example() {
//! let Some(db) = palaver_integration_tests::pg::fresh_database_url().await else { return };
//! // `db.url()` connects to the same database with `search_path` set to a schema of its own.
//! let _url: &str = db.url();
//! # }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use testcontainers::core::wait::LogWaitStrategy;
use testcontainers::core::{IntoContainerPort, WaitFor};
use testcontainers::runners::AsyncRunner;
use testcontainers::{ContainerAsync, GenericImage, ImageExt};

/// The environment variable naming a PostgreSQL server to test against.
pub const TEST_DATABASE_URL: &str = "TEST_DATABASE_URL";

/// How long setting up or dropping a schema may take before we give up.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// What PostgreSQL logs when it is ready; the official image logs it twice (the init server, then the real one).
const READY_MESSAGE: &str = "database system is ready to accept connections";

/// A fresh, empty schema in a PostgreSQL database, alive as long as this guard.
///
/// Dropping it drops the schema (`DROP SCHEMA … CASCADE`, best effort, on a thread of its own so no async runtime is
/// involved), or removes the container it lives in. Drop it inside a Tokio runtime (the end of a `#[tokio::test]` is
/// fine): testcontainers needs one to remove a container. Drop whatever is connected to it first.
pub struct PgDatabase {
    /// The URL tests connect with: the server's URL plus `options=-csearch_path%3D<schema>`.
    url: String,
    /// The URL without the schema option, for creating and dropping the schema.
    server_url: String,
    /// `palaver_t_<16 hex digits>`.
    schema: String,
    /// The container the server runs in, when Docker provided it; removed on drop.
    container: Option<ContainerAsync<GenericImage>>,
}

impl PgDatabase {
    /// A URL to the database whose `search_path` is this guard's schema only: unqualified tables are created and found
    /// there.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The name of this guard's schema.
    pub fn schema(&self) -> &str {
        &self.schema
    }
}

impl std::fmt::Debug for PgDatabase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgDatabase")
            .field("url", &self.url)
            .field("schema", &self.schema)
            .field("in_container", &self.container.is_some())
            .finish()
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        if self.container.is_some() {
            // The container, and the schema with it, goes away when the field is dropped.
            return;
        }
        let server_url = self.server_url.clone();
        let schema = self.schema.clone();
        // A thread with its own small runtime: works whether or not we are inside a runtime, and whatever its flavor.
        // Joining blocks the caller for one round trip, which keeps schemas from leaking when the test process exits.
        let dropper = std::thread::Builder::new()
            .name("pg-schema-drop".into())
            .spawn(move || drop_schema_blocking(&server_url, &schema));
        match dropper.map(|handle| handle.join()) {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => eprintln!(
                "warning: could not drop test schema {}: {error}",
                self.schema
            ),
            Ok(Err(_)) | Err(_) => eprintln!(
                "warning: could not drop test schema {}: dropper failed",
                self.schema
            ),
        }
    }
}

/// A fresh schema in a PostgreSQL database, from `TEST_DATABASE_URL` or Docker; `None` (after a note on stderr) when
/// neither is available outside CI.
///
/// # Panics
/// When `TEST_DATABASE_URL` is set but the schema cannot be created, when Docker is available but the container does
/// not start, and in CI (`CI=true` or `CI=1`) when there is no PostgreSQL at all: a test that asked for PostgreSQL
/// must fail loudly rather than pass without it.
pub async fn fresh_database_url() -> Option<PgDatabase> {
    if let Some(server_url) = std::env::var(TEST_DATABASE_URL)
        .ok()
        .filter(|url| !url.trim().is_empty())
    {
        let server_url = server_url.trim().to_owned();
        let schema = create_schema(&server_url).await.unwrap_or_else(|error| {
            panic!("{TEST_DATABASE_URL} is set but no test schema could be created: {error}")
        });
        return Some(PgDatabase {
            url: with_search_path(&server_url, &schema),
            server_url,
            schema,
            container: None,
        });
    }
    if docker_available() {
        let (container, server_url) = start_container().await.unwrap_or_else(|error| {
            panic!("Docker is available but PostgreSQL did not start in it: {error}")
        });
        let schema = create_schema(&server_url).await.unwrap_or_else(|error| {
            panic!("no test schema could be created in the PostgreSQL container: {error}")
        });
        return Some(PgDatabase {
            url: with_search_path(&server_url, &schema),
            server_url,
            schema,
            container: Some(container),
        });
    }
    if running_in_ci() {
        panic!(
            "CI=true but no PostgreSQL: set {TEST_DATABASE_URL} (e.g. postgres://postgres@127.0.0.1:5432/test)"
        );
    }
    eprintln!(
        "PostgreSQL test skipped: no PostgreSQL available; set {TEST_DATABASE_URL}=postgres://user@host:5432/db \
         (or make Docker available) to run it"
    );
    None
}

/// The TCP address of the PostgreSQL server `url` names (its first host), e.g. to put a
/// [`crate::proxy::Proxy`] in front of it.
///
/// # Panics
/// When `url` does not parse, names a Unix socket rather than a TCP host, or its host does not resolve.
pub async fn server_addr(url: &str) -> SocketAddr {
    let config: tokio_postgres::Config = url.parse().expect("a PostgreSQL URL");
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
        other => panic!("expected a TCP host in the PostgreSQL URL, not {other:?}"),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    tokio::net::lookup_host((host.as_str(), port))
        .await
        .expect("the PostgreSQL host resolves")
        .next()
        .expect("an address for the PostgreSQL host")
}

/// Whether a Docker daemon looks reachable.
fn docker_available() -> bool {
    std::env::var_os("DOCKER_HOST").is_some_and(|host| !host.is_empty())
        || std::path::Path::new("/var/run/docker.sock").exists()
}

/// Whether we run in CI, where a missing database is a failure.
fn running_in_ci() -> bool {
    std::env::var("CI").is_ok_and(|ci| ci.eq_ignore_ascii_case("true") || ci == "1")
}

/// `url` with `options=-csearch_path%3D<schema>` appended as a query parameter.
fn with_search_path(url: &str, schema: &str) -> String {
    let separator = match url.find('?') {
        None => "?",
        Some(at) if at + 1 == url.len() || url.ends_with('&') => "",
        Some(_) => "&",
    };
    format!("{url}{separator}options=-csearch_path%3D{schema}")
}

/// A schema name no other test uses: `palaver_t_` and 16 random hex digits (lowercase, so it needs no quoting).
fn new_schema_name() -> String {
    format!("palaver_t_{:016x}", rand::random::<u64>())
}

/// Connects to `url`, runs `sql`, disconnects.
async fn execute(url: &str, sql: &str) -> Result<(), String> {
    let work = async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .map_err(|error| error.to_string())?;
        let connection = tokio::spawn(connection);
        let result = client
            .batch_execute(sql)
            .await
            .map_err(|error| error.to_string());
        drop(client);
        // The connection ends once the client is gone; wait so the session is closed when we return.
        let _ = connection.await;
        result
    };
    tokio::time::timeout(SETUP_TIMEOUT, work)
        .await
        .map_err(|_| format!("no answer within {SETUP_TIMEOUT:?}"))?
}

/// Creates a fresh schema on the server at `url`; returns its name.
async fn create_schema(url: &str) -> Result<String, String> {
    let schema = new_schema_name();
    execute(url, &format!("CREATE SCHEMA {schema}")).await?;
    Ok(schema)
}

/// Drops `schema` and everything in it, on a runtime of this thread's own.
fn drop_schema_blocking(url: &str, schema: &str) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| error.to_string())?;
    runtime.block_on(execute(
        url,
        &format!("DROP SCHEMA IF EXISTS {schema} CASCADE"),
    ))
}

/// Starts `postgres:16-alpine` (trust auth) and waits until it accepts connections; returns it and its URL.
async fn start_container() -> Result<(ContainerAsync<GenericImage>, String), String> {
    let container = GenericImage::new("postgres", "16-alpine")
        .with_exposed_port(5432.tcp())
        .with_wait_for(WaitFor::log(
            LogWaitStrategy::stdout_or_stderr(READY_MESSAGE).with_times(2),
        ))
        .with_env_var("POSTGRES_HOST_AUTH_METHOD", "trust")
        .start()
        .await
        .map_err(|error| error.to_string())?;
    let host = container
        .get_host()
        .await
        .map_err(|error| error.to_string())?;
    let port = container
        .get_host_port_ipv4(5432.tcp())
        .await
        .map_err(|error| error.to_string())?;
    Ok((
        container,
        format!("postgres://postgres@{host}:{port}/postgres"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_path_is_appended_with_the_right_separator() {
        let cases = [
            (
                "postgres://u@h/db",
                "postgres://u@h/db?options=-csearch_path%3Ds",
            ),
            (
                "postgres://u@h/db?sslmode=disable",
                "postgres://u@h/db?sslmode=disable&options=-csearch_path%3Ds",
            ),
            (
                "postgres://u@h/db?",
                "postgres://u@h/db?options=-csearch_path%3Ds",
            ),
            (
                "postgres://u@h/db?a=1&",
                "postgres://u@h/db?a=1&options=-csearch_path%3Ds",
            ),
        ];
        for (url, expected) in cases {
            assert_eq!(with_search_path(url, "s"), expected, "for {url}");
        }
    }

    #[test]
    fn schema_names_are_fresh_and_need_no_quoting() {
        let (a, b) = (new_schema_name(), new_schema_name());
        assert_ne!(a, b);
        assert_eq!(a.len(), "palaver_t_".len() + 16);
        assert!(
            a.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
            "{a}"
        );
    }

    #[test]
    fn the_url_parses_with_the_schema_option() {
        let url = with_search_path("postgres://postgres@127.0.0.1:5432/test", "palaver_t_00ff");
        let config: tokio_postgres::Config = url.parse().expect("the URL parses");
        assert_eq!(config.get_options(), Some("-csearch_path=palaver_t_00ff"));
        assert_eq!(config.get_dbname(), Some("test"));
    }
}
