//! Full-text search over the messages of a user's rooms: the FTS5 index `messages_fts`, ranked by `bm25`, with FTS5
//! snippets; and the indexing of new messages, which their commits only queue (`search_pending`, V7) and which runs
//! here in large batches, on the writer's connection.

use palaver_handlers::model::{SearchHit, SearchPage, SearchQuery};
use palaver_handlers::search_text::terms;
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::convert::{Failure, id_text, time_at, uuid_at};

/// Indexes up to `most` queued messages in one transaction (each in its state now: edited content, or not at all
/// once deleted) and takes them off the queue; how many were taken.
pub(super) fn index_pending(connection: &mut Connection, most: u32) -> Result<u32, Failure> {
    // Looked at without the write lock: an idle store's round costs one read.
    let queued: bool = connection
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM search_pending)")?
        .query_row([], |row| row.get(0))?;
    if !queued {
        return Ok(0);
    }
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let through: Option<i64> = tx
        .prepare_cached(
            "SELECT max(pending_id), count(*) FROM
                 (SELECT pending_id FROM search_pending ORDER BY pending_id LIMIT ?1)",
        )?
        .query_row([most], |row| row.get(0))
        .optional()?
        .flatten();
    let Some(through) = through else {
        return Ok(0);
    };
    // Rows added to message_search now get ids above every id it holds: the new ones are those above this.
    let before: i64 = tx
        .prepare_cached("SELECT coalesce(max(search_id), 0) FROM message_search")?
        .query_row([], |row| row.get(0))?;
    tx.prepare_cached(
        "INSERT OR IGNORE INTO message_search (room_id, seq)
         SELECT p.room_id, p.seq FROM search_pending AS p
         JOIN messages AS m ON m.room_id = p.room_id AND m.seq = p.seq
         WHERE p.pending_id <= ?1 AND m.kind = 'message' AND m.deleted_at IS NULL
         ORDER BY p.pending_id",
    )?
    .execute([through])?;
    tx.prepare_cached(
        "INSERT INTO messages_fts (rowid, content)
         SELECT s.search_id, m.content FROM message_search AS s
         JOIN messages AS m ON m.room_id = s.room_id AND m.seq = s.seq
         WHERE s.search_id > ?1",
    )?
    .execute([before])?;
    let taken = tx
        .prepare_cached("DELETE FROM search_pending WHERE pending_id <= ?1")?
        .execute([through])?;
    tx.commit()?;
    Ok(u32::try_from(taken).unwrap_or(u32::MAX))
}

/// Indexes every queued message, a batch at a time (before a search, so it sees every committed message).
pub(super) fn index_all_pending(connection: &mut Connection) -> Result<(), Failure> {
    while index_pending(connection, INDEX_BATCH)? == INDEX_BATCH {}
    Ok(())
}

/// The most queued messages indexed in one transaction.
pub(super) const INDEX_BATCH: u32 = 2_000;

/// A page of the messages matching every word of the query, best first; one more row than asked tells whether there
/// is a next page.
pub(super) fn search(connection: &Connection, query: &SearchQuery) -> Result<SearchPage, Failure> {
    let words = terms(&query.words);
    if words.is_empty() {
        return Ok(SearchPage {
            results: Vec::new(),
            next: None,
        });
    }
    // Each word quoted, so nothing the user types is FTS5 syntax; words side by side must all match.
    let matching: Vec<String> = words
        .iter()
        .map(|word| format!("\"{}\"", word.replace('"', "\"\"")))
        .collect();
    let mut statement = connection.prepare_cached(
        "SELECT s.room_id, r.name, s.seq, u.username, m.created_at,
                snippet(messages_fts, 0, '**', '**', '…', 24)
         FROM messages_fts
         JOIN message_search AS s ON s.search_id = messages_fts.rowid
         JOIN room_members AS rm ON rm.room_id = s.room_id AND rm.user_id = ?1
         JOIN messages AS m ON m.room_id = s.room_id AND m.seq = s.seq
         JOIN rooms AS r ON r.id = s.room_id
         JOIN users AS u ON u.id = m.user_id
         WHERE messages_fts MATCH ?2 AND (?3 IS NULL OR s.room_id = ?3)
         ORDER BY bm25(messages_fts), m.created_at DESC, s.seq DESC
         LIMIT ?4 OFFSET ?5",
    )?;
    let fetch = i64::from(query.limit) + 1;
    let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
    let mut results = statement
        .query_map(
            params![
                id_text(query.user_id),
                matching.join(" "),
                query.room_id.map(id_text),
                fetch,
                offset
            ],
            |row| {
                Ok(SearchHit {
                    room_id: uuid_at(row, 0)?,
                    room: row.get(1)?,
                    seq: row.get(2)?,
                    username: row.get(3)?,
                    created_at: time_at(row, 4)?,
                    snippet: row.get(5)?,
                })
            },
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let more = results.len() > query.limit as usize;
    results.truncate(query.limit as usize);
    Ok(SearchPage {
        results,
        next: more.then(|| query.offset.saturating_add(u64::from(query.limit))),
    })
}
