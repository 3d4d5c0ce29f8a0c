//! Reading the rooms' logs: entries by id, the log after a seq, and history pages of messages in their current state
//! with their reactions and reply counts.

use std::collections::HashMap;

use palaver_handlers::model::{HistoryMessage, HistoryPage, HistoryQuery, LogEntry, ReactionCount};
use rusqlite::{Connection, OptionalExtension, params};
use uuid::Uuid;

use super::convert::{ENTRY_COLUMNS, Failure, entry_from_row, id_text, micros, micros_ceil};

/// A page of history, newest first: ?1 room, ?2 before seq, ?3 after seq (both exclusive), ?4 since and ?5 until
/// (inclusive, microseconds), ?6 sender or NULL, ?7 thread root or NULL, ?8 1 to leave out tombstones. No LIMIT:
/// the caller stops reading when the page is full.
pub(super) fn history_sql() -> String {
    format!(
        "SELECT {ENTRY_COLUMNS}
         FROM messages AS m JOIN users AS u ON u.id = m.user_id
         WHERE m.room_id = ?1 AND m.seq < ?2 AND m.seq > ?3 AND m.kind = 'message'
           AND m.created_at >= ?4 AND m.created_at <= ?5
           AND (?6 IS NULL OR lower(u.username) = lower(?6))
           AND (?7 IS NULL OR m.seq = ?7 OR m.reply_to = ?7)
           AND (?8 = 0 OR m.deleted_at IS NULL)
         ORDER BY m.seq DESC"
    )
}

/// One keyset query on (room_id, seq), newest first. Absent cursors and time bounds become the widest bounds so the
/// seq range always reaches the index. `contains` is matched here rather than in SQL because SQLite's `lower()`
/// folds only ASCII and message text may be any language; rows are read lazily and reading stops after `limit + 1`
/// matches (the extra one only tells `has_more`).
pub(super) fn history(
    connection: &Connection,
    room_id: Uuid,
    query: &HistoryQuery,
) -> Result<HistoryPage, Failure> {
    // One read transaction: the page, its reactions and replies, and the room's newest seq in one snapshot.
    let snapshot = connection.unchecked_transaction()?;
    let connection: &Connection = &snapshot;
    let limit = usize::try_from(query.limit).unwrap_or(usize::MAX);
    let needle = query.contains.as_deref().map(str::to_lowercase);
    // A tombstone has neither sender nor text to match.
    let without_tombstones = query.sender.is_some() || needle.is_some();
    let mut statement = connection.prepare_cached(&history_sql())?;
    let mut rows = statement.query(params![
        id_text(room_id),
        query.before_seq.unwrap_or(i64::MAX),
        query.after_seq.unwrap_or(i64::MIN),
        query.since.map_or(i64::MIN, micros_ceil),
        query.until.map_or(i64::MAX, micros),
        query.sender,
        query.thread,
        i64::from(without_tombstones),
    ])?;
    let mut entries = Vec::new();
    while entries.len() <= limit {
        let Some(row) = rows.next()? else { break };
        let entry = entry_from_row(row)?;
        let matches = needle.as_deref().is_none_or(|needle| {
            entry
                .content()
                .is_some_and(|content| content.to_lowercase().contains(needle))
        });
        if matches {
            entries.push(entry);
        }
    }
    let has_more = entries.len() > limit;
    entries.truncate(limit);
    let next_before = entries.last().map(|entry| entry.seq);
    drop(rows);
    drop(statement);
    let messages = with_reactions_and_replies(connection, room_id, entries, query.viewer)?;
    let as_of: i64 = connection
        .prepare_cached("SELECT last_seq FROM rooms WHERE id = ?1")?
        .query_row([id_text(room_id)], |row| row.get(0))
        .optional()?
        .unwrap_or(0);
    snapshot.commit()?;
    Ok(HistoryPage {
        messages,
        next_before,
        has_more,
        as_of,
    })
}

/// The page's messages with their reactions (counted per emoji, `me` for `viewer`, emojis in the order first used)
/// and reply counts, read for the page's seq range with one statement each.
fn with_reactions_and_replies(
    connection: &Connection,
    room_id: Uuid,
    entries: Vec<LogEntry>,
    viewer: Option<Uuid>,
) -> Result<Vec<HistoryMessage>, Failure> {
    let (Some(newest), Some(oldest)) = (entries.first(), entries.last()) else {
        return Ok(Vec::new());
    };
    let room = id_text(room_id);
    let (low, high) = (oldest.seq, newest.seq);
    let mut by_message: HashMap<i64, Vec<ReactionCount>> = HashMap::new();
    let mut statement = connection.prepare_cached(
        "SELECT target_seq, emoji, count(*), max(user_id = ?4) FROM reactions
         WHERE room_id = ?1 AND target_seq >= ?2 AND target_seq <= ?3
         GROUP BY target_seq, emoji ORDER BY target_seq, min(seq)",
    )?;
    let mut rows = statement.query(params![room, low, high, viewer.map(id_text)])?;
    while let Some(row) = rows.next()? {
        let count: i64 = row.get(2)?;
        let me: Option<i64> = row.get(3)?;
        by_message
            .entry(row.get(0)?)
            .or_default()
            .push(ReactionCount {
                emoji: row.get(1)?,
                count: u32::try_from(count).unwrap_or(u32::MAX),
                me: me == Some(1),
            });
    }
    let mut replies: HashMap<i64, u32> = HashMap::new();
    let mut statement = connection.prepare_cached(
        "SELECT reply_to, count(*) FROM messages
         WHERE room_id = ?1 AND reply_to >= ?2 AND reply_to <= ?3 AND kind = 'message' AND deleted_at IS NULL
         GROUP BY reply_to",
    )?;
    let mut rows = statement.query(params![room, low, high])?;
    while let Some(row) = rows.next()? {
        let count: i64 = row.get(1)?;
        replies.insert(row.get(0)?, u32::try_from(count).unwrap_or(u32::MAX));
    }
    Ok(entries
        .into_iter()
        .map(|entry| HistoryMessage {
            reactions: by_message.remove(&entry.seq).unwrap_or_default(),
            replies: replies.get(&entry.seq).copied().unwrap_or(0),
            entry,
        })
        .collect())
}

/// The room's log after `after_seq`, oldest first, at most `limit` entries.
pub(super) fn log_after(
    connection: &Connection,
    room_id: Uuid,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<LogEntry>, Failure> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM messages AS m JOIN users AS u ON u.id = m.user_id
         WHERE m.room_id = ?1 AND m.seq > ?2 ORDER BY m.seq LIMIT ?3"
    ))?;
    let entries = statement
        .query_map(
            params![id_text(room_id), after_seq, i64::from(limit)],
            entry_from_row,
        )?
        .collect::<rusqlite::Result<_>>()?;
    Ok(entries)
}

/// The stored entries among `ids`, by room and seq.
pub(super) fn by_id(connection: &Connection, ids: &[Uuid]) -> Result<Vec<LogEntry>, Failure> {
    let mut statement = connection.prepare_cached(&format!(
        "SELECT {ENTRY_COLUMNS} FROM messages AS m JOIN users AS u ON u.id = m.user_id WHERE m.id = ?1"
    ))?;
    let mut found = Vec::new();
    for id in ids {
        if let Some(entry) = statement
            .query_row([id_text(*id)], entry_from_row)
            .optional()?
        {
            found.push(entry);
        }
    }
    found.sort_by_key(|entry| (entry.room_id, entry.seq));
    Ok(found)
}
