//! How Palaver's values are read back from PostgreSQL rows, how times are cut to what PostgreSQL keeps, and how
//! tokio-postgres's and deadpool's errors become [`StoreError`]s.

use std::error::Error as _;

use deadpool_postgres::PoolError;
use palaver_handlers::model::{AuditEvent, Body, EntryKind, LogEntry, Member, Role, Room, User};
use palaver_handlers::{StoreError, Unique};
use tokio_postgres::Row;
use tokio_postgres::error::{DbError, SqlState};

/// The unique indexes of `V1__init.sql` whose violation a caller can act on.
const USERNAME_KEY: &str = "users_username_key";
const EMAIL_KEY: &str = "users_email_key";
const ROOM_NAME_KEY: &str = "rooms_name_key";
/// The unique index on (user_id, client_msg_id): its violation means a concurrent batch stored the same key first.
pub(super) const CLIENT_MSG_ID_KEY: &str = "messages_client_msg_id_key";

// `at` in UTC, cut to whole microseconds: PostgreSQL keeps no more, so what a write returns equals what a later read
// returns. The log's rules cut entry times with the same function.
pub(super) use palaver_handlers::room_log::to_micros;

/// A user from a row with the columns of `users`.
pub(super) fn user_from_row(row: &Row) -> Result<User, tokio_postgres::Error> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// A room from a row with the columns of `rooms`.
pub(super) fn room_from_row(row: &Row) -> Result<Room, tokio_postgres::Error> {
    Ok(Room {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        private: row.try_get("private")?,
        password_hash: row.try_get("password_hash")?,
        owner_id: row.try_get("owner_id")?,
        created_at: row.try_get("created_at")?,
        last_seq: row.try_get("last_seq")?,
        direct: row.try_get("direct")?,
    })
}

/// A member from a row with a user's `id` and `username`.
pub(super) fn member_from_row(row: &Row) -> Result<Member, tokio_postgres::Error> {
    Ok(Member {
        user_id: row.try_get("id")?,
        username: row.try_get("username")?,
        last_read_seq: row.try_get("last_read_seq")?,
        role: {
            let role: String = row.try_get("role")?;
            Role::parse(&role).unwrap_or(Role::Member)
        },
    })
}

/// The columns [`entry_from_row`] reads: a `messages` row `m` joined with its user `u`.
pub(super) const ENTRY_COLUMNS: &str = "m.id, m.room_id, m.seq, m.user_id, u.username, m.content, m.client_msg_id, \
     m.created_at, m.kind, m.target_seq, m.reply_to, m.emoji, m.edited_at, m.deleted_at IS NOT NULL AS deleted";

/// A log entry from a row with [`ENTRY_COLUMNS`].
pub(super) fn entry_from_row(row: &Row) -> Result<LogEntry, StoreError> {
    let kind: String = row.try_get("kind").map_err(pg_error)?;
    let kind = EntryKind::parse(&kind)
        .ok_or_else(|| StoreError::Backend(format!("unknown entry kind {kind:?}")))?;
    let read = || -> Result<(LogEntry, Option<Body>), tokio_postgres::Error> {
        let body = kind.body(
            row.try_get("content")?,
            row.try_get("target_seq")?,
            row.try_get("reply_to")?,
            row.try_get("emoji")?,
            row.try_get("edited_at")?,
            row.try_get("deleted")?,
        );
        let entry = LogEntry {
            id: row.try_get("id")?,
            room_id: row.try_get("room_id")?,
            seq: row.try_get("seq")?,
            user_id: row.try_get("user_id")?,
            username: row.try_get("username")?,
            client_msg_id: row.try_get("client_msg_id")?,
            created_at: row.try_get("created_at")?,
            body: Body::Delete { target_seq: 0 },
        };
        Ok((entry, body))
    };
    let (mut entry, body) = read().map_err(pg_error)?;
    entry.body = body.ok_or_else(|| {
        StoreError::Backend(format!(
            "entry {} of kind {kind:?} lacks a column",
            entry.seq
        ))
    })?;
    Ok(entry)
}

/// An audit event from a row with the columns of `audit_log`.
pub(super) fn audit_from_row(row: &Row) -> Result<AuditEvent, tokio_postgres::Error> {
    Ok(AuditEvent {
        at: row.try_get("at")?,
        event: row.try_get("event")?,
        user_id: row.try_get("user_id")?,
        username: row.try_get("username")?,
        ip: row.try_get("ip")?,
        user_agent: row.try_get("user_agent")?,
        outcome: row.try_get("outcome")?,
        details: row.try_get("details")?,
    })
}

/// Maps a failure of a statement: a broken uniqueness rule is a conflict, a lost or refused connection means the
/// database is unavailable, anything else is a backend error.
pub(super) fn pg_error(error: tokio_postgres::Error) -> StoreError {
    match error.as_db_error() {
        Some(db) => db_error(db),
        None if error.is_closed() || caused_by_io(&error) => StoreError::Unavailable(chain(&error)),
        // No SQLSTATE and no I/O: a value that did not convert, which is a bug rather than an outage.
        None => StoreError::Backend(chain(&error)),
    }
}

/// Maps a failure to get a connection: every one without a SQLSTATE (refused, reset, timed out) is an outage.
pub(super) fn pool_error(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(error) => match error.as_db_error() {
            Some(db) => db_error(db),
            None => StoreError::Unavailable(chain(&error)),
        },
        PoolError::Timeout(_) | PoolError::Closed => StoreError::Unavailable(error.to_string()),
        other => StoreError::Backend(other.to_string()),
    }
}

/// Maps an error the server reported. Its detail is left out: it quotes the offending values (emails, say).
fn db_error(db: &DbError) -> StoreError {
    let code = db.code();
    if *code == SqlState::UNIQUE_VIOLATION
        && let Some(unique) = db.constraint().and_then(unique_rule)
    {
        return StoreError::Conflict(unique);
    }
    let message = format!("{} (SQLSTATE {})", db.message(), code.code());
    if is_outage(code) {
        StoreError::Unavailable(message)
    } else {
        StoreError::Backend(message)
    }
}

/// The uniqueness rule a unique index enforces, for the indexes a caller can act on.
fn unique_rule(constraint: &str) -> Option<Unique> {
    match constraint {
        USERNAME_KEY => Some(Unique::Username),
        EMAIL_KEY => Some(Unique::Email),
        ROOM_NAME_KEY => Some(Unique::RoomName),
        _ => None,
    }
}

/// Whether `error` is a violation of the unique index `constraint`.
pub(super) fn violates(error: &tokio_postgres::Error, constraint: &str) -> bool {
    error.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some(constraint)
    })
}

/// SQLSTATEs that say the server cannot serve now (connection exceptions, shutting down, starting up, full), as
/// opposed to refusing this statement.
fn is_outage(code: &SqlState) -> bool {
    code.code().starts_with("08")
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
        ]
        .contains(code)
}

/// Whether an I/O error lies anywhere in the causes of `error`.
fn caused_by_io(error: &tokio_postgres::Error) -> bool {
    let mut cause = error.source();
    while let Some(error) = cause {
        if error.is::<std::io::Error>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// `error` and its causes on one line: tokio-postgres's own messages leave the cause out ("error connecting to
/// server").
pub(super) fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}
