//! The two implementations of [`palaver_handlers::Store`]: PostgreSQL for production, SQLite as the zero-setup default.

pub mod maintenance;
pub mod postgres;
pub mod revocations;
pub mod sqlite;

use std::path::Path;
use std::sync::Arc;

use palaver_handlers::{Store, StoreError};

/// An open store, and its PostgreSQL pool when it has one (for the pool-usage metric).
pub struct Opened {
    pub store: Arc<dyn Store>,
    pub pool: Option<deadpool_postgres::Pool>,
}

/// Opens the store the configuration names: `postgres://…` (or `postgresql://…`) selects PostgreSQL with a pool of
/// `pool_size`; an empty URL selects SQLite at `sqlite_path`. Migrations run before this returns.
pub async fn open(
    database_url: &str,
    sqlite_path: &Path,
    pool_size: usize,
    pool_timeout: std::time::Duration,
) -> Result<Opened, StoreError> {
    let url = database_url.trim();
    if url.is_empty() {
        let store = Arc::new(sqlite::SqliteStore::open(sqlite_path).await?);
        Ok(Opened { store, pool: None })
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let store = postgres::PostgresStore::connect(url, pool_size, pool_timeout).await?;
        let pool = Some(store.pool().clone());
        Ok(Opened {
            store: Arc::new(store),
            pool,
        })
    } else {
        Err(StoreError::Backend(
            "database_url must be empty (embedded SQLite) or start with postgres://".into(),
        ))
    }
}
