//! How Palaver's values are stored in SQLite and read back, and how SQLite's errors become [`StoreError`]s.
//!
//! Ids are hyphenated lowercase text; times are whole microseconds since the Unix epoch (UTC), the precision
//! PostgreSQL keeps too.

use palaver_handlers::model::{EntryKind, LogEntry};
use palaver_handlers::{StoreError, Unique};
use rusqlite::types::Type;
use rusqlite::{ErrorCode, Row, ffi};
use time::OffsetDateTime;
use uuid::Uuid;

/// Why a job on a connection failed: SQLite refused, or a store rule did (a missing room, a taken name).
#[derive(Debug)]
pub(super) enum Failure {
    /// An error from SQLite, classified when it becomes a [`StoreError`].
    Sqlite(rusqlite::Error),
    /// An outcome the store decided itself.
    Store(StoreError),
}

impl From<rusqlite::Error> for Failure {
    fn from(err: rusqlite::Error) -> Self {
        Failure::Sqlite(err)
    }
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Self {
        Failure::Store(err)
    }
}

impl From<Failure> for StoreError {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Sqlite(err) => store_error(&err),
            Failure::Store(err) => err,
        }
    }
}

/// A [`StoreError::Backend`] for a store rule that refused the operation.
pub(super) fn backend(message: String) -> Failure {
    Failure::Store(StoreError::Backend(message))
}

/// Classifies a SQLite error: a broken uniqueness rule is a conflict, a lock that outlasted the busy timeout means
/// the database is unavailable for now, anything else is a backend failure.
pub(super) fn store_error(err: &rusqlite::Error) -> StoreError {
    if let rusqlite::Error::SqliteFailure(cause, message) = err {
        if cause.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
            && let Some(rule) = message.as_deref().and_then(unique_rule)
        {
            return StoreError::Conflict(rule);
        }
        if matches!(
            cause.code,
            ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked
        ) {
            return StoreError::Unavailable(err.to_string());
        }
    }
    StoreError::Backend(err.to_string())
}

/// Which rule a "UNIQUE constraint failed: …" message names. An index on an expression is named by the index
/// (`index 'users_username_key'`), one on a plain column by the column (`rooms.name_key`); see V1__init.sql.
fn unique_rule(message: &str) -> Option<Unique> {
    const RULES: [(&str, Unique); 4] = [
        ("users_username_key", Unique::Username),
        ("users_email_key", Unique::Email),
        ("rooms.name_key", Unique::RoomName),
        ("rooms_name_key", Unique::RoomName),
    ];
    RULES
        .iter()
        .find(|(name, _)| message.contains(name))
        .map(|(_, rule)| *rule)
}

/// An id as stored: hyphenated lowercase text.
pub(super) fn id_text(id: Uuid) -> String {
    id.hyphenated().to_string()
}

/// A time as stored: microseconds since the Unix epoch, rounded down.
pub(super) fn micros(at: OffsetDateTime) -> i64 {
    saturate(at.unix_timestamp_nanos().div_euclid(1000))
}

/// A lower bound in stored units, rounded up, so that `stored >= bound` keeps exactly the stored times at or after
/// `at` (rounding down would let in a message from the same microsecond but before `at`).
pub(super) fn micros_ceil(at: OffsetDateTime) -> i64 {
    let nanos = at.unix_timestamp_nanos();
    saturate(nanos.div_euclid(1000) + i128::from(nanos.rem_euclid(1000) != 0))
}

fn saturate(value: i128) -> i64 {
    i64::try_from(value).unwrap_or(if value < 0 { i64::MIN } else { i64::MAX })
}

/// `at` as it reads back from the store (UTC, whole microseconds), so what a write returns equals what later reads
/// return.
pub(super) fn as_stored(at: OffsetDateTime) -> OffsetDateTime {
    from_micros(micros(at)).unwrap_or(at)
}

fn from_micros(micros: i64) -> Result<OffsetDateTime, time::error::ComponentRange> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
}

/// The id stored in column `index`.
pub(super) fn uuid_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Uuid> {
    let text: String = row.get(index)?;
    parse_uuid(index, &text)
}

/// The id, if any, stored in column `index`.
pub(super) fn optional_uuid_at(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<Uuid>> {
    let text: Option<String> = row.get(index)?;
    text.map(|text| parse_uuid(index, &text)).transpose()
}

fn parse_uuid(index: usize, text: &str) -> rusqlite::Result<Uuid> {
    Uuid::parse_str(text).map_err(|err| conversion_failure(index, Type::Text, err))
}

/// The time stored in column `index`.
pub(super) fn time_at(row: &Row<'_>, index: usize) -> rusqlite::Result<OffsetDateTime> {
    from_micros(row.get(index)?).map_err(|err| conversion_failure(index, Type::Integer, err))
}

/// The time, if any, stored in column `index`.
pub(super) fn optional_time_at(
    row: &Row<'_>,
    index: usize,
) -> rusqlite::Result<Option<OffsetDateTime>> {
    let micros: Option<i64> = row.get(index)?;
    micros
        .map(|micros| {
            from_micros(micros).map_err(|err| conversion_failure(index, Type::Integer, err))
        })
        .transpose()
}

/// The columns [`entry_from_row`] reads, in its order: a `messages` row `m` joined with its user `u`.
pub(super) const ENTRY_COLUMNS: &str = "m.id, m.room_id, m.seq, m.user_id, u.username, m.content, m.client_msg_id, \
     m.created_at, m.kind, m.target_seq, m.reply_to, m.emoji, m.edited_at, m.deleted_at IS NOT NULL";

/// A log entry from a row with [`ENTRY_COLUMNS`].
pub(super) fn entry_from_row(row: &Row<'_>) -> rusqlite::Result<LogEntry> {
    let kind: String = row.get(8)?;
    let unreadable = |what: String| conversion_failure(8, Type::Text, std::io::Error::other(what));
    let kind = EntryKind::parse(&kind)
        .ok_or_else(|| unreadable(format!("unknown entry kind {kind:?}")))?;
    let body = kind
        .body(
            row.get(5)?,
            row.get(9)?,
            row.get(10)?,
            row.get(11)?,
            optional_time_at(row, 12)?,
            row.get(13)?,
        )
        .ok_or_else(|| unreadable(format!("an entry of kind {kind:?} lacks a column")))?;
    Ok(LogEntry {
        id: uuid_at(row, 0)?,
        room_id: uuid_at(row, 1)?,
        seq: row.get(2)?,
        user_id: uuid_at(row, 3)?,
        username: row.get(4)?,
        client_msg_id: row.get(6)?,
        created_at: time_at(row, 7)?,
        body,
    })
}

/// The JSON document stored as text in column `index`.
pub(super) fn json_at(row: &Row<'_>, index: usize) -> rusqlite::Result<serde_json::Value> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text).map_err(|err| conversion_failure(index, Type::Text, err))
}

fn conversion_failure(
    index: usize,
    kind: Type,
    err: impl std::error::Error + Send + Sync + 'static,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, kind, Box::new(err))
}

/// A count as SQLite returns it (a non-negative `i64`), as the trait's `u64`.
pub(super) fn count(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn times_round_to_whole_microseconds() {
        let at = datetime!(2026-11-25 15:30:45.123_456_789 UTC);
        assert_eq!(micros(at), 1_795_620_645_123_456);
        assert_eq!(micros_ceil(at), 1_795_620_645_123_457);
        assert_eq!(as_stored(at), datetime!(2026-11-25 15:30:45.123_456 UTC));
        let whole = datetime!(2026-11-25 15:30:45.123_456 UTC);
        assert_eq!(micros_ceil(whole), micros(whole));
        let before_epoch = datetime!(1969-12-31 23:59:59.999_999_5 UTC);
        assert_eq!(micros(before_epoch), -1);
        assert_eq!(micros_ceil(before_epoch), 0);
    }

    #[test]
    fn unique_messages_name_their_rule() {
        let cases = [
            (
                "UNIQUE constraint failed: index 'users_username_key'",
                Some(Unique::Username),
            ),
            (
                "UNIQUE constraint failed: index 'users_email_key'",
                Some(Unique::Email),
            ),
            (
                "UNIQUE constraint failed: rooms.name_key",
                Some(Unique::RoomName),
            ),
            ("UNIQUE constraint failed: users.id", None),
        ];
        for (message, rule) in cases {
            assert_eq!(unique_rule(message), rule, "{message}");
        }
    }
}
