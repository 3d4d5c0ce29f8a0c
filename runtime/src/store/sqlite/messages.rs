//! Chat messages: appending batches with gapless per-room seqs, and reading history pages.

use palaver_handlers::model::{Appended, HistoryPage, HistoryQuery, NewEntry, LogEntry};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use uuid::Uuid;

use super::convert::{Failure, as_stored, backend, id_text, micros, micros_ceil, time_at, uuid_at};

/// Stores a batch in one transaction. Each new message takes its room's `last_seq + 1`; a repeat of an existing
/// (user, client_msg_id), or of one earlier in the batch, is answered with the original. The first failure rolls the
/// whole batch back, seqs included.
pub(super) fn append_messages(
    connection: &mut Connection,
    batch: &[NewEntry],
) -> Result<Vec<Appended>, Failure> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let outcomes = batch
        .iter()
        .map(|new| append_one(&tx, new))
        .collect::<Result<Vec<_>, _>>()?;
    tx.commit()?;
    Ok(outcomes)
}

/// Stores one message inside the batch's transaction, which also makes the batch's earlier messages visible to the
/// duplicate check.
fn append_one(tx: &Connection, new: &NewEntry) -> Result<Appended, Failure> {
    if let Some(key) = &new.client_msg_id
        && let Some(original) = by_client_msg_id(tx, new.user_id, key)?
    {
        return Ok(Appended::Duplicate(original));
    }
    let username = username_of(tx, new.user_id)?;
    let seq = next_seq(tx, new.room_id)?;
    let created_at = as_stored(new.created_at);
    tx.prepare_cached(
        "INSERT INTO messages (id, room_id, seq, user_id, content, client_msg_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        id_text(new.id),
        id_text(new.room_id),
        seq,
        id_text(new.user_id),
        new.content,
        new.client_msg_id,
        micros(created_at),
    ])?;
    Ok(Appended::Stored(LogEntry {
        id: new.id,
        room_id: new.room_id,
        seq,
        user_id: new.user_id,
        username,
        content: new.content.clone(),
        client_msg_id: new.client_msg_id.clone(),
        created_at,
    }))
}

/// The message `user_id` already stored under this idempotency key, if any (served by the partial unique index).
fn by_client_msg_id(
    tx: &Connection,
    user_id: Uuid,
    key: &str,
) -> rusqlite::Result<Option<LogEntry>> {
    tx.prepare_cached(
        "SELECT m.id, m.room_id, m.seq, m.user_id, u.username, m.content, m.client_msg_id, m.created_at
         FROM messages AS m JOIN users AS u ON u.id = m.user_id
         WHERE m.user_id = ?1 AND m.client_msg_id = ?2",
    )?
    .query_row(params![id_text(user_id), key], message_from_row)
    .optional()
}

fn username_of(tx: &Connection, user_id: Uuid) -> Result<String, Failure> {
    tx.prepare_cached("SELECT username FROM users WHERE id = ?1")?
        .query_row([id_text(user_id)], |row| row.get(0))
        .optional()?
        .ok_or_else(|| backend(format!("no user {user_id}")))
}

/// Takes the room's next seq; the room row stays locked by the transaction until the batch commits.
fn next_seq(tx: &Connection, room_id: Uuid) -> Result<i64, Failure> {
    tx.prepare_cached("UPDATE rooms SET last_seq = last_seq + 1 WHERE id = ?1 RETURNING last_seq")?
        .query_row([id_text(room_id)], |row| row.get(0))
        .optional()?
        .ok_or_else(|| backend(format!("no room {room_id}")))
}

/// A page of history, newest first: ?1 room, ?2 before seq, ?3 after seq (both exclusive), ?4 since and ?5 until
/// (inclusive, microseconds), ?6 sender or NULL. No LIMIT: the caller stops reading when the page is full.
pub(super) const HISTORY: &str = "
    SELECT m.id, m.room_id, m.seq, m.user_id, u.username, m.content, m.client_msg_id, m.created_at
    FROM messages AS m JOIN users AS u ON u.id = m.user_id
    WHERE m.room_id = ?1 AND m.seq < ?2 AND m.seq > ?3
      AND m.created_at >= ?4 AND m.created_at <= ?5
      AND (?6 IS NULL OR lower(u.username) = lower(?6))
    ORDER BY m.seq DESC";

/// One keyset query on (room_id, seq), newest first. Absent cursors and time bounds become the widest bounds so the
/// seq range always reaches the index. `contains` is matched here rather than in SQL because SQLite's `lower()`
/// folds only ASCII and message text may be any language; rows are read lazily and reading stops after `limit + 1`
/// matches (the extra one only tells `has_more`).
pub(super) fn history(
    connection: &Connection,
    room_id: Uuid,
    query: &HistoryQuery,
) -> Result<HistoryPage, Failure> {
    let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
    let needle = query.contains.as_deref().map(str::to_lowercase);
    let mut statement = connection.prepare_cached(HISTORY)?;
    let mut rows = statement.query(params![
        id_text(room_id),
        query.before_seq.unwrap_or(i64::MAX),
        query.after_seq.unwrap_or(i64::MIN),
        query.since.map_or(i64::MIN, micros_ceil),
        query.until.map_or(i64::MAX, micros),
        query.sender,
    ])?;
    let mut messages = Vec::new();
    while messages.len() <= limit {
        let Some(row) = rows.next()? else { break };
        let message = message_from_row(row)?;
        if needle
            .as_deref()
            .is_none_or(|needle| message.content.to_lowercase().contains(needle))
        {
            messages.push(message);
        }
    }
    let has_more = messages.len() > limit;
    messages.truncate(limit);
    let next_before = messages.last().map(|message| message.seq);
    Ok(HistoryPage {
        messages,
        next_before,
        has_more,
    })
}

/// The stored messages among `ids`, by room and seq.
pub(super) fn by_id(connection: &Connection, ids: &[Uuid]) -> Result<Vec<LogEntry>, Failure> {
    let mut statement = connection.prepare_cached(
        "SELECT m.id, m.room_id, m.seq, m.user_id, u.username, m.content, m.client_msg_id, m.created_at
         FROM messages AS m JOIN users AS u ON u.id = m.user_id WHERE m.id = ?1",
    )?;
    let mut found = Vec::new();
    for id in ids {
        if let Some(message) = statement
            .query_row([id_text(*id)], message_from_row)
            .optional()?
        {
            found.push(message);
        }
    }
    found.sort_by_key(|message| (message.room_id, message.seq));
    Ok(found)
}

fn message_from_row(row: &Row<'_>) -> rusqlite::Result<LogEntry> {
    Ok(LogEntry {
        id: uuid_at(row, 0)?,
        room_id: uuid_at(row, 1)?,
        seq: row.get(2)?,
        user_id: uuid_at(row, 3)?,
        username: row.get(4)?,
        content: row.get(5)?,
        client_msg_id: row.get(6)?,
        created_at: time_at(row, 7)?,
    })
}
