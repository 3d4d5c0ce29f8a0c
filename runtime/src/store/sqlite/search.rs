//! Full-text search over the messages of a user's rooms: the FTS5 index `messages_fts` (kept by triggers), ranked
//! by `bm25`, with FTS5 snippets.

use palaver_handlers::model::{SearchHit, SearchPage, SearchQuery};
use palaver_handlers::search_text::terms;
use rusqlite::{Connection, params};

use super::convert::{Failure, id_text, time_at, uuid_at};

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
        next: more.then(|| query.offset + u64::from(query.limit)),
    })
}
