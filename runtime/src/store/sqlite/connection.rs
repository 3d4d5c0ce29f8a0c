//! Opening the connections: the one writer (which creates the file and runs the migrations) and the readers.
//! These functions block; they run on the store's own threads, never on the async runtime.

use std::path::Path;
use std::time::Duration;

use palaver_handlers::StoreError;
use rusqlite::{Connection, OpenFlags};

use super::convert::store_error;

/// The SQL migrations, embedded at compile time (runtime/build.rs reruns the build when one changes).
mod embedded {
    refinery::embed_migrations!("../migrations/sqlite");
}

/// How long a statement waits for a lock another connection holds before failing with "database is busy".
const BUSY_TIMEOUT: Duration = Duration::from_millis(5000);

/// Opens the write connection: creates the file and its directories if needed, then brings the schema up to date.
pub(super) fn open_writer(path: &Path) -> Result<Connection, StoreError> {
    create_parent_dirs(path)?;
    let mut connection = Connection::open(path).map_err(|err| store_error(&err))?;
    configure(&connection)?;
    migrate(&mut connection)?;
    Ok(connection)
}

/// Opens a read-only connection to a database the writer has already created and migrated.
pub(super) fn open_reader(path: &Path) -> Result<Connection, StoreError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_ONLY
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let connection = Connection::open_with_flags(path, flags).map_err(|err| store_error(&err))?;
    configure(&connection)?;
    Ok(connection)
}

fn create_parent_dirs(path: &Path) -> Result<(), StoreError> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).map_err(|err| {
                StoreError::Backend(format!(
                    "cannot create the directory {}: {err}",
                    parent.display()
                ))
            })
        }
        _ => Ok(()),
    }
}

/// The settings every connection needs. WAL lets readers work while the writer commits; `synchronous=FULL` because
/// NORMAL can lose the last committed transactions on power loss; foreign keys are off by default in SQLite.
fn configure(connection: &Connection) -> Result<(), StoreError> {
    let sqlite = |err: rusqlite::Error| store_error(&err);
    // First, so that switching the journal mode waits for a lock instead of failing at once.
    connection.busy_timeout(BUSY_TIMEOUT).map_err(sqlite)?;
    let mode: String = connection
        .pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))
        .map_err(sqlite)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(StoreError::Backend(format!(
            "SQLite refused WAL mode (journal_mode is {mode})"
        )));
    }
    connection
        .pragma_update(None, "synchronous", "FULL")
        .map_err(sqlite)?;
    connection
        .pragma_update(None, "foreign_keys", "ON")
        .map_err(sqlite)?;
    Ok(())
}

/// Applies the migrations this file has not seen yet; each runs in its own transaction.
fn migrate(connection: &mut Connection) -> Result<(), StoreError> {
    let report = embedded::migrations::runner()
        .run(connection)
        .map_err(|err| StoreError::Backend(format!("SQLite migration failed: {err}")))?;
    let applied = report.applied_migrations();
    if !applied.is_empty() {
        let names: Vec<String> = applied.iter().map(ToString::to_string).collect();
        tracing::info!(migrations = ?names, "applied SQLite migrations");
    }
    Ok(())
}
