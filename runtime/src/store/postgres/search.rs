//! Full-text search over the messages of a user's rooms: the generated `search` tsvector and its GIN index, ranked
//! by `ts_rank`, with `ts_headline` snippets.

use palaver_handlers::StoreError;
use palaver_handlers::model::{SearchHit, SearchPage, SearchQuery};
use palaver_handlers::search_text::terms;

use super::PostgresStore;
use super::convert::pg_error;

/// A page of the messages matching every word of the query, best first; one more row than asked tells whether there
/// is a next page.
pub(super) async fn search(
    store: &PostgresStore,
    query: &SearchQuery,
) -> Result<SearchPage, StoreError> {
    let words = terms(&query.words);
    if words.is_empty() {
        return Ok(SearchPage {
            results: Vec::new(),
            next: None,
        });
    }
    // The words as typed, split the way every engine splits them; plainto_tsquery ANDs them.
    let text = words.join(" ");
    let fetch = i64::from(query.limit) + 1;
    let offset = i64::try_from(query.offset).unwrap_or(i64::MAX);
    let rows = store
        .query(
            r#"SELECT m.room_id, r.name AS room, m.seq, u.username, m.created_at,
                      ts_headline('simple', m.content, q,
                                  'StartSel="**", StopSel="**", MinWords=12, MaxWords=32') AS snippet
               FROM plainto_tsquery('simple', $2) AS q, room_members rm
               JOIN messages m ON m.room_id = rm.room_id
               JOIN rooms r ON r.id = m.room_id
               JOIN users u ON u.id = m.user_id
               WHERE rm.user_id = $1 AND m.search @@ q AND ($3::uuid IS NULL OR m.room_id = $3)
               ORDER BY ts_rank(m.search, q) DESC, m.created_at DESC, m.seq DESC
               LIMIT $4 OFFSET $5"#,
            &[&query.user_id, &text, &query.room_id, &fetch, &offset],
        )
        .await?;
    let more = rows.len() > query.limit as usize;
    let results = rows
        .iter()
        .take(query.limit as usize)
        .map(|row| {
            Ok(SearchHit {
                room_id: row.try_get("room_id")?,
                room: row.try_get("room")?,
                seq: row.try_get("seq")?,
                username: row.try_get("username")?,
                snippet: row.try_get("snippet")?,
                created_at: row.try_get("created_at")?,
            })
        })
        .collect::<Result<Vec<_>, tokio_postgres::Error>>()
        .map_err(pg_error)?;
    Ok(SearchPage {
        results,
        next: more.then(|| query.offset.saturating_add(u64::from(query.limit))),
    })
}
