//! Reading the rooms' logs: entries by id (settling a commit whose answer was lost), the log after a seq (resume and
//! repair), and history pages of messages in their current state with their reactions and reply counts.

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use futures_util::future::try_join;
use palaver_handlers::StoreError;
use palaver_handlers::model::{HistoryMessage, HistoryPage, HistoryQuery, LogEntry, ReactionCount};
use tokio_postgres::IsolationLevel;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::PostgresStore;
use super::append::distinct;
use super::convert::{ENTRY_COLUMNS, entry_from_row, pg_error};

/// The stored messages among `ids`, by room then seq.
pub(super) async fn by_id(
    store: &PostgresStore,
    room_ids: &[Uuid],
    ids: &[Uuid],
) -> Result<Vec<LogEntry>, StoreError> {
    let mut client = store.client().await?;
    let transaction = client.transaction().await.map_err(pg_error)?;
    // A commit whose answer was lost may still be landing on its old connection. It holds its rooms' rows (locked by
    // the batch lookup, in the same order) until it ends, so taking those locks waits for it; the next statement's
    // snapshot then sees whether it committed.
    let room_ids = distinct(room_ids.iter().copied());
    transaction
        .execute(
            "SELECT 1 FROM rooms WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
            &[&room_ids],
        )
        .await
        .map_err(pg_error)?;
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM messages m JOIN users u ON u.id = m.user_id
         WHERE m.id = ANY($1) ORDER BY m.room_id, m.seq"
    );
    let rows = transaction.query(&sql, &[&ids]).await.map_err(pg_error)?;
    transaction.commit().await.map_err(pg_error)?;
    rows.iter().map(entry_from_row).collect()
}

/// The room's log after `after_seq`, oldest first, at most `limit` entries: a range scan of (room_id, seq).
pub(super) async fn log_after(
    store: &PostgresStore,
    room_id: Uuid,
    after_seq: i64,
    limit: u32,
) -> Result<Vec<LogEntry>, StoreError> {
    let sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM messages m JOIN users u ON u.id = m.user_id
         WHERE m.room_id = $1 AND m.seq > $2 ORDER BY m.seq LIMIT $3"
    );
    let rows = store
        .query(&sql, &[&room_id, &after_seq, &i64::from(limit)])
        .await?;
    rows.iter().map(entry_from_row).collect()
}

/// A page of `room_id`'s history, newest first, with the cursor to the next older page. The page, its reactions and
/// reply counts, and the room's newest seq are read in one repeatable-read snapshot, so `as_of` says exactly which
/// changes the page includes.
pub(super) async fn history(
    store: &PostgresStore,
    room_id: Uuid,
    query: &HistoryQuery,
) -> Result<HistoryPage, StoreError> {
    let fetch = rows_to_fetch(query);
    let (sql, params) = history_statement(&room_id, query, &fetch);
    let mut client = store.client().await?;
    let transaction = client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .await
        .map_err(pg_error)?;
    let statement = transaction.prepare_cached(&sql).await.map_err(pg_error)?;
    let rows = transaction
        .query(&statement, &params)
        .await
        .map_err(pg_error)?;
    let limit = query.limit as usize;
    let has_more = rows.len() > limit;
    let entries = rows
        .iter()
        .take(limit)
        .map(entry_from_row)
        .collect::<Result<Vec<_>, _>>()?;
    let next_before = entries.last().map(|entry| entry.seq);
    let messages = with_reactions_and_replies(&transaction, room_id, entries, query.viewer).await?;
    let as_of = transaction
        .query_opt("SELECT last_seq FROM rooms WHERE id = $1", &[&room_id])
        .await
        .map_err(pg_error)?
        .map(|row| row.try_get::<_, i64>(0))
        .transpose()
        .map_err(pg_error)?
        .unwrap_or(0);
    transaction.commit().await.map_err(pg_error)?;
    Ok(HistoryPage {
        messages,
        next_before,
        has_more,
        as_of,
    })
}

/// The page's messages with their reactions (counted per emoji, `me` for `viewer`, emojis in the order first used)
/// and their reply counts, read with two pipelined statements.
async fn with_reactions_and_replies(
    client: &Transaction<'_>,
    room_id: Uuid,
    entries: Vec<LogEntry>,
    viewer: Option<Uuid>,
) -> Result<Vec<HistoryMessage>, StoreError> {
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let seqs: Vec<i64> = entries.iter().map(|entry| entry.seq).collect();
    let (reactions, replies) = try_join(
        async {
            let statement = client
                .prepare_cached(
                    "SELECT target_seq, emoji, count(*) AS count, coalesce(bool_or(user_id = $3), false) AS me
                     FROM reactions WHERE room_id = $1 AND target_seq = ANY($2)
                     GROUP BY target_seq, emoji ORDER BY target_seq, min(seq)",
                )
                .await?;
            client.query(&statement, &[&room_id, &seqs, &viewer]).await
        },
        async {
            let statement = client
                .prepare_cached(
                    "SELECT reply_to, count(*) AS count FROM messages
                     WHERE room_id = $1 AND reply_to = ANY($2) AND kind = 'message' AND deleted_at IS NULL
                     GROUP BY reply_to",
                )
                .await?;
            client.query(&statement, &[&room_id, &seqs]).await
        },
    )
    .await
    .map_err(pg_error)?;
    let mut by_message: HashMap<i64, Vec<ReactionCount>> = HashMap::new();
    for row in &reactions {
        let count: i64 = row.try_get("count").map_err(pg_error)?;
        let reaction = ReactionCount {
            emoji: row.try_get("emoji").map_err(pg_error)?,
            count: u32::try_from(count).unwrap_or(u32::MAX),
            me: row.try_get("me").map_err(pg_error)?,
        };
        let seq: i64 = row.try_get("target_seq").map_err(pg_error)?;
        by_message.entry(seq).or_default().push(reaction);
    }
    let mut reply_counts: HashMap<i64, u32> = HashMap::new();
    for row in &replies {
        let count: i64 = row.try_get("count").map_err(pg_error)?;
        let seq: i64 = row.try_get("reply_to").map_err(pg_error)?;
        reply_counts.insert(seq, u32::try_from(count).unwrap_or(u32::MAX));
    }
    Ok(entries
        .into_iter()
        .map(|entry| HistoryMessage {
            reactions: by_message.remove(&entry.seq).unwrap_or_default(),
            replies: reply_counts.get(&entry.seq).copied().unwrap_or(0),
            entry,
        })
        .collect())
}

/// The text of `EXPLAIN` for the statement [`history`] runs for `query`, one line per row of the plan.
pub(super) async fn explain_history(
    store: &PostgresStore,
    room_id: Uuid,
    query: &HistoryQuery,
) -> Result<String, StoreError> {
    let fetch = rows_to_fetch(query);
    let (sql, params) = history_statement(&room_id, query, &fetch);
    let client = store.client().await?;
    // Not prepare_cached: a one-off look at a plan should not take a slot in the connection's statement cache.
    let rows = client
        .query(&format!("EXPLAIN (FORMAT TEXT) {sql}"), &params)
        .await
        .map_err(pg_error)?;
    let lines = rows
        .iter()
        .map(|row| row.try_get::<_, String>(0))
        .collect::<Result<Vec<_>, _>>()
        .map_err(pg_error)?;
    Ok(lines.join("\n"))
}

/// How many rows a history page reads: one more than asked tells whether there is more.
fn rows_to_fetch(query: &HistoryQuery) -> i64 {
    i64::from(query.limit) + 1
}

/// The history statement for the filters `query` has, with its parameters. Each combination of filters is a
/// statement (and a cached plan) of its own: a plan made for "any filter, maybe absent" cannot bound its scan of the
/// (room_id, seq) index by the cursors, and would read and sort a whole room to return its newest page.
fn history_statement<'a>(
    room_id: &'a Uuid,
    query: &'a HistoryQuery,
    fetch: &'a i64,
) -> (String, Vec<&'a (dyn ToSql + Sync)>) {
    let mut sql = format!(
        "SELECT {ENTRY_COLUMNS} FROM messages m JOIN users u ON u.id = m.user_id
         WHERE m.room_id = $1 AND m.kind = 'message'"
    );
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![room_id];
    let mut filter = |condition: &str, value: &'a (dyn ToSql + Sync)| {
        params.push(value);
        sql.push_str(" AND ");
        sql.push_str(&condition.replace('?', &format!("${}", params.len())));
    };
    if let Some(before) = &query.before_seq {
        filter("m.seq < ?", before);
    }
    if let Some(after) = &query.after_seq {
        filter("m.seq > ?", after);
    }
    if let Some(sender) = &query.sender {
        // Resolved through the username index once, then compared by id on every message.
        filter(
            r#"m.user_id = (SELECT id FROM users WHERE lower(username COLLATE "C") = lower(?::text COLLATE "C"))"#,
            sender,
        );
    }
    if let Some(needle) = &query.contains {
        // strpos, unlike LIKE, gives '%' and '_' in the needle no meaning.
        filter("strpos(lower(m.content), lower(?::text)) > 0", needle);
    }
    if let Some(since) = &query.since {
        filter("m.created_at >= ?", since);
    }
    if let Some(until) = &query.until {
        filter("m.created_at <= ?", until);
    }
    if let Some(root) = &query.thread {
        // Every `?` of a condition is its one parameter: the root and its replies.
        filter("(m.seq = ? OR m.reply_to = ?)", root);
    }
    if query.sender.is_some() || query.contains.is_some() {
        // A tombstone has neither sender nor text to match.
        sql.push_str(" AND m.deleted_at IS NULL");
    }
    params.push(fetch);
    sql.push_str(&format!(" ORDER BY m.seq DESC LIMIT ${}", params.len()));
    (sql, params)
}
