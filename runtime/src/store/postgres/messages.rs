//! Chat messages: appending batches with gapless per-room seqs (looked up under the rooms' locks, planned in
//! memory, written with two statements), finding messages by id, and reading history pages.

use std::collections::HashMap;

use deadpool_postgres::{Client, Transaction};
use futures_util::future::{try_join, try_join3};
use palaver_handlers::StoreError;
use palaver_handlers::model::{Appended, HistoryPage, HistoryQuery, NewEntry, LogEntry};
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::PostgresStore;
use super::convert::{CLIENT_MSG_ID_KEY, message_from_row, pg_error, to_micros, violates};

/// Stores a non-empty batch in one transaction. Each new message takes its room's `last_seq + 1`; a repeat of an
/// existing (user, client_msg_id), or of one earlier in the batch, is answered with the original.
pub(super) async fn append_messages(
    store: &PostgresStore,
    batch: &[NewEntry],
) -> Result<Vec<Appended>, StoreError> {
    let mut client = store.client().await?;
    match append_once(&mut client, batch).await {
        Err(AppendError::Db(error)) if violates(&error, CLIENT_MSG_ID_KEY) => {
            // A concurrent batch stored the same (user, client_msg_id) after this one looked: looking again
            // finds it, and the message becomes a duplicate of it.
            append_once(&mut client, batch)
                .await
                .map_err(StoreError::from)
        }
        outcome => outcome.map_err(StoreError::from),
    }
}

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
    let rows = transaction
        .query(
            "SELECT m.id, m.room_id, m.seq, m.user_id, u.username, m.content, m.client_msg_id, m.created_at
                 FROM messages m JOIN users u ON u.id = m.user_id
                 WHERE m.id = ANY($1) ORDER BY m.room_id, m.seq",
            &[&ids],
        )
        .await
        .map_err(pg_error)?;
    transaction.commit().await.map_err(pg_error)?;
    rows.iter()
        .map(message_from_row)
        .collect::<Result<_, _>>()
        .map_err(pg_error)
}

/// A page of `room_id`'s history, newest first, with the cursor to the next older page.
pub(super) async fn history(
    store: &PostgresStore,
    room_id: Uuid,
    query: &HistoryQuery,
) -> Result<HistoryPage, StoreError> {
    let fetch = rows_to_fetch(query);
    let (sql, params) = history_statement(&room_id, query, &fetch);
    let rows = store.query(&sql, &params).await?;
    let limit = query.limit as usize;
    let has_more = rows.len() > limit;
    let messages = rows
        .iter()
        .take(limit)
        .map(message_from_row)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pg_error)?;
    let next_before = messages.last().map(|message| message.seq);
    Ok(HistoryPage {
        messages,
        next_before,
        has_more,
    })
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
    let mut sql = String::from(
        "SELECT m.id, m.room_id, m.seq, m.user_id, u.username, m.content, m.client_msg_id, m.created_at
         FROM messages m JOIN users u ON u.id = m.user_id
         WHERE m.room_id = $1",
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
    params.push(fetch);
    sql.push_str(&format!(" ORDER BY m.seq DESC LIMIT ${}", params.len()));
    (sql, params)
}

/// Why one attempt at storing a batch failed.
#[derive(Debug)]
enum AppendError {
    /// The database refused or could not be reached.
    Db(tokio_postgres::Error),
    /// The batch names a room or a user that does not exist.
    Refused(StoreError),
}

impl From<tokio_postgres::Error> for AppendError {
    fn from(error: tokio_postgres::Error) -> Self {
        AppendError::Db(error)
    }
}

impl From<AppendError> for StoreError {
    fn from(error: AppendError) -> Self {
        match error {
            AppendError::Db(error) => pg_error(error),
            AppendError::Refused(error) => error,
        }
    }
}

/// What a batch needs to know from the database, read under its rooms' locks.
#[derive(Debug)]
struct BatchLookup {
    /// The last seq of each existing room of the batch.
    last_seqs: HashMap<Uuid, i64>,
    /// The username of each existing sender of the batch.
    usernames: HashMap<Uuid, String>,
    /// Stored messages carrying one of the batch's (user, client_msg_id).
    originals: Vec<LogEntry>,
}

/// What a batch does: the outcome of each message, and the rooms whose last seq moves.
#[derive(Debug)]
struct AppendPlan {
    outcomes: Vec<Appended>,
    /// (room, its new last seq) for every room that receives a message.
    moved_rooms: Vec<(Uuid, i64)>,
}

/// Stores a batch in one transaction: lock and read, decide, write, commit.
async fn append_once(
    client: &mut Client,
    batch: &[NewEntry],
) -> Result<Vec<Appended>, AppendError> {
    let transaction = client.transaction().await?;
    let lookup = look_up_batch(&transaction, batch).await?;
    let plan = plan_batch(batch, lookup).map_err(AppendError::Refused)?;
    write_batch(&transaction, &plan).await?;
    transaction.commit().await?;
    Ok(plan.outcomes)
}

/// Locks the batch's rooms in id order and reads their last seqs, the senders' names and the stored originals of
/// the batch's idempotency keys. The three statements are pipelined in that order, so the originals are read once
/// the locks are held and a batch of the same room that committed meanwhile is seen.
async fn look_up_batch(
    transaction: &Transaction<'_>,
    batch: &[NewEntry],
) -> Result<BatchLookup, AppendError> {
    let room_ids = distinct(batch.iter().map(|message| message.room_id));
    let user_ids = distinct(batch.iter().map(|message| message.user_id));
    let (key_users, key_ids): (Vec<Uuid>, Vec<&str>) = batch
        .iter()
        .filter_map(|message| Some((message.user_id, message.client_msg_id.as_deref()?)))
        .unzip();
    let (rooms, users, originals) = try_join3(
        rows(
            transaction,
            "SELECT id, last_seq FROM rooms WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
            &[&room_ids],
        ),
        rows(transaction, "SELECT id, username FROM users WHERE id = ANY($1)", &[&user_ids]),
        rows(
            transaction,
            "SELECT m.id, m.room_id, m.seq, m.user_id, u.username, m.content, m.client_msg_id, m.created_at
             FROM UNNEST($1::uuid[], $2::text[]) AS k (user_id, client_msg_id)
             JOIN messages m ON m.user_id = k.user_id AND m.client_msg_id = k.client_msg_id
             JOIN users u ON u.id = m.user_id
             WHERE m.client_msg_id IS NOT NULL",
            &[&key_users, &key_ids],
        ),
    )
    .await?;
    Ok(BatchLookup {
        last_seqs: rooms
            .iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("last_seq")?)))
            .collect::<Result<_, tokio_postgres::Error>>()?,
        usernames: users
            .iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("username")?)))
            .collect::<Result<_, tokio_postgres::Error>>()?,
        originals: originals
            .iter()
            .map(message_from_row)
            .collect::<Result<_, _>>()?,
    })
}

/// Decides the outcome of each message in batch order: a duplicate of a stored original or of an earlier message of
/// the batch, or new with the next seq of its room. A new message naming an unknown room or user refuses the batch.
fn plan_batch(batch: &[NewEntry], lookup: BatchLookup) -> Result<AppendPlan, StoreError> {
    let BatchLookup {
        mut last_seqs,
        usernames,
        originals,
    } = lookup;
    let locked_seqs = last_seqs.clone();
    let mut outcomes: Vec<Appended> = Vec::with_capacity(batch.len());
    let mut first_with_key: HashMap<(Uuid, &str), usize> = HashMap::new();
    for new in batch {
        if let Some(original) = original_of(new, &originals, &first_with_key, &outcomes) {
            outcomes.push(Appended::Duplicate(original));
            continue;
        }
        if let Some(key) = new.client_msg_id.as_deref() {
            first_with_key.insert((new.user_id, key), outcomes.len());
        }
        let username = usernames
            .get(&new.user_id)
            .ok_or_else(|| StoreError::Backend(format!("no user {}", new.user_id)))?;
        let seq = last_seqs
            .get_mut(&new.room_id)
            .ok_or_else(|| StoreError::Backend(format!("no room {}", new.room_id)))?;
        *seq += 1;
        outcomes.push(Appended::Stored(stored_message(
            new,
            *seq,
            username.clone(),
        )));
    }
    let moved_rooms = last_seqs
        .into_iter()
        .filter(|(room_id, seq)| locked_seqs.get(room_id) != Some(seq))
        .collect();
    Ok(AppendPlan {
        outcomes,
        moved_rooms,
    })
}

/// The message `new` repeats, if its (user, client_msg_id) was stored before or came earlier in the batch.
fn original_of(
    new: &NewEntry,
    originals: &[LogEntry],
    first_with_key: &HashMap<(Uuid, &str), usize>,
    outcomes: &[Appended],
) -> Option<LogEntry> {
    let key = new.client_msg_id.as_deref()?;
    originals
        .iter()
        .find(|original| {
            original.user_id == new.user_id && original.client_msg_id.as_deref() == Some(key)
        })
        .or_else(|| {
            let earlier = first_with_key.get(&(new.user_id, key))?;
            outcomes.get(*earlier).map(Appended::message)
        })
        .cloned()
}

/// Moves the rooms' last seqs and inserts the new messages with one statement each, the two pipelined.
async fn write_batch(
    transaction: &Transaction<'_>,
    plan: &AppendPlan,
) -> Result<(), tokio_postgres::Error> {
    let stored: Vec<&LogEntry> = plan
        .outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            Appended::Stored(message) => Some(message),
            Appended::Duplicate(_) => None,
        })
        .collect();
    if stored.is_empty() {
        return Ok(());
    }
    let (room_ids, last_seqs): (Vec<Uuid>, Vec<i64>) = plan.moved_rooms.iter().copied().unzip();
    let ids: Vec<Uuid> = stored.iter().map(|m| m.id).collect();
    let rooms: Vec<Uuid> = stored.iter().map(|m| m.room_id).collect();
    let seqs: Vec<i64> = stored.iter().map(|m| m.seq).collect();
    let users: Vec<Uuid> = stored.iter().map(|m| m.user_id).collect();
    let contents: Vec<&str> = stored.iter().map(|m| m.content.as_str()).collect();
    let keys: Vec<Option<&str>> = stored.iter().map(|m| m.client_msg_id.as_deref()).collect();
    let created: Vec<OffsetDateTime> = stored.iter().map(|m| m.created_at).collect();
    try_join(
        rows(
            transaction,
            "UPDATE rooms SET last_seq = moved.last_seq
             FROM UNNEST($1::uuid[], $2::bigint[]) AS moved (id, last_seq)
             WHERE rooms.id = moved.id",
            &[&room_ids, &last_seqs],
        ),
        rows(
            transaction,
            "INSERT INTO messages (id, room_id, seq, user_id, content, client_msg_id, created_at)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::uuid[], $5::text[], $6::text[],
                                  $7::timestamptz[])",
            &[&ids, &rooms, &seqs, &users, &contents, &keys, &created],
        ),
    )
    .await?;
    Ok(())
}

/// Runs one statement inside a transaction, prepared once per connection.
async fn rows(
    transaction: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let statement = transaction.prepare_cached(sql).await?;
    transaction.query(&statement, params).await
}

/// The values of `values` once each, sorted.
fn distinct(values: impl Iterator<Item = Uuid>) -> Vec<Uuid> {
    let mut values: Vec<Uuid> = values.collect();
    values.sort_unstable();
    values.dedup();
    values
}

/// `new` as stored with `seq`, its time cut to what the database keeps.
fn stored_message(new: &NewEntry, seq: i64, username: String) -> LogEntry {
    LogEntry {
        id: new.id,
        room_id: new.room_id,
        seq,
        user_id: new.user_id,
        username,
        content: new.content.clone(),
        client_msg_id: new.client_msg_id.clone(),
        created_at: to_micros(new.created_at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use time::macros::datetime;

    /// The time the test's messages are made at.
    const T0: OffsetDateTime = datetime!(2026-11-25 15:30:45 UTC);

    fn seqs(outcomes: &[Appended]) -> Vec<i64> {
        outcomes
            .iter()
            .map(|outcome| outcome.message().seq)
            .collect()
    }

    #[test]
    fn a_batch_plan_numbers_new_messages_per_room_and_points_repeats_at_the_first() {
        let (general, random, alice) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let new = |room_id, key: Option<&str>| NewEntry {
            id: Uuid::new_v4(),
            room_id,
            user_id: alice,
            content: "hi".into(),
            client_msg_id: key.map(str::to_owned),
            created_at: T0,
        };
        let batch = [
            new(general, Some("a")),
            new(random, None),
            new(general, Some("a")),
            new(general, None),
        ];
        let lookup = BatchLookup {
            last_seqs: HashMap::from([(general, 7), (random, 0)]),
            usernames: HashMap::from([(alice, "alice".to_owned())]),
            originals: Vec::new(),
        };
        let plan = plan_batch(&batch, lookup).expect("every room and user is known");
        assert_eq!(seqs(&plan.outcomes), vec![8, 1, 8, 9]);
        assert_eq!(
            plan.outcomes[2],
            Appended::Duplicate(plan.outcomes[0].message().clone())
        );
        let mut moved = plan.moved_rooms;
        moved.sort_unstable_by_key(|(_, seq)| *seq);
        assert_eq!(moved, vec![(random, 1), (general, 9)]);

        let unknown = BatchLookup {
            last_seqs: HashMap::from([(general, 7)]),
            usernames: HashMap::from([(alice, "alice".to_owned())]),
            originals: Vec::new(),
        };
        assert_eq!(
            plan_batch(&batch, unknown).err(),
            Some(StoreError::Backend(format!("no room {random}")))
        );
    }
}
