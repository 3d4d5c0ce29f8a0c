//! Putting batches of entries in the rooms' logs: the batch's rooms are locked and read with what the log's rules
//! need (senders, idempotency keys, the messages it targets, the reactions it touches), [`room_log::plan`] decides,
//! and the plan is written, all in one transaction. A batch of plain posts costs three pipelined lookups and two
//! pipelined writes, as before entries had kinds; edits, deletions, reactions and replies add what they touch.

use std::collections::BTreeSet;

use deadpool_postgres::{Client, Transaction};
use futures_util::future::{try_join, try_join3};
use palaver_handlers::StoreError;
use palaver_handlers::model::{Appended, Body, LogEntry, NewEntry};
use palaver_handlers::room_log::{self, Lookup, Plan, ReactionKey, Target, Wanted};
use time::OffsetDateTime;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::PostgresStore;
use super::convert::{CLIENT_MSG_ID_KEY, ENTRY_COLUMNS, entry_from_row, pg_error, violates};

/// Stores a non-empty batch in one transaction. A repeat of an existing (user, client_msg_id), or of one earlier in
/// the batch, is answered with the original.
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

/// Why one attempt at storing a batch failed.
#[derive(Debug)]
enum AppendError {
    /// The database refused or could not be reached.
    Db(tokio_postgres::Error),
    /// The batch names a room or a user that does not exist, or a row did not read back.
    Refused(StoreError),
}

impl From<tokio_postgres::Error> for AppendError {
    fn from(error: tokio_postgres::Error) -> Self {
        AppendError::Db(error)
    }
}

impl From<StoreError> for AppendError {
    fn from(error: StoreError) -> Self {
        AppendError::Refused(error)
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

/// Stores a batch in one transaction: lock and read, decide, write, commit.
async fn append_once(
    client: &mut Client,
    batch: &[NewEntry],
) -> Result<Vec<Appended>, AppendError> {
    let transaction = client.transaction().await?;
    let lookup = look_up_batch(&transaction, batch).await?;
    let plan = room_log::plan(batch, lookup)?;
    write_batch(&transaction, &plan).await?;
    transaction.commit().await?;
    Ok(plan.outcomes)
}

/// Locks the batch's rooms in id order and reads their last seqs, the senders' names and the stored originals of
/// the batch's idempotency keys. The three statements are pipelined in that order, so the originals are read once
/// the locks are held and a batch of the same room that committed meanwhile is seen; what the batch targets is read
/// after them, under the same locks.
async fn look_up_batch(
    transaction: &Transaction<'_>,
    batch: &[NewEntry],
) -> Result<Lookup, AppendError> {
    let room_ids = distinct(batch.iter().map(|entry| entry.room_id));
    let user_ids = distinct(batch.iter().map(|entry| entry.user_id));
    let (key_users, key_ids): (Vec<Uuid>, Vec<&str>) = batch
        .iter()
        .filter_map(|entry| Some((entry.user_id, entry.client_msg_id.as_deref()?)))
        .unzip();
    let originals_sql = format!(
        "SELECT {ENTRY_COLUMNS}
         FROM UNNEST($1::uuid[], $2::text[]) AS k (user_id, client_msg_id)
         JOIN messages m ON m.user_id = k.user_id AND m.client_msg_id = k.client_msg_id
         JOIN users u ON u.id = m.user_id
         WHERE m.client_msg_id IS NOT NULL"
    );
    let (rooms, users, originals) = try_join3(
        rows(
            transaction,
            "SELECT id, last_seq FROM rooms WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
            &[&room_ids],
        ),
        rows(
            transaction,
            "SELECT id, username FROM users WHERE id = ANY($1)",
            &[&user_ids],
        ),
        rows(transaction, &originals_sql, &[&key_users, &key_ids]),
    )
    .await?;
    let mut lookup = Lookup {
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
            .map(entry_from_row)
            .collect::<Result<_, _>>()?,
        ..Lookup::default()
    };
    let wanted = room_log::wanted(batch);
    if !wanted.is_empty() {
        look_up_targets(transaction, &wanted, &mut lookup).await?;
    }
    Ok(lookup)
}

/// Reads the messages the batch targets (with the distinct emojis each carries) and the reactions it touches.
async fn look_up_targets(
    transaction: &Transaction<'_>,
    wanted: &Wanted,
    lookup: &mut Lookup,
) -> Result<(), tokio_postgres::Error> {
    let (target_rooms, target_seqs): (Vec<Uuid>, Vec<i64>) = wanted.targets.iter().copied().unzip();
    let reaction_rooms: Vec<Uuid> = wanted.reactions.iter().map(|k| k.room_id).collect();
    let reaction_targets: Vec<i64> = wanted.reactions.iter().map(|k| k.target_seq).collect();
    let reaction_users: Vec<Uuid> = wanted.reactions.iter().map(|k| k.user_id).collect();
    let reaction_emojis: Vec<&str> = wanted.reactions.iter().map(|k| k.emoji.as_str()).collect();
    let (targets, reactions) = try_join(
        rows(
            transaction,
            "SELECT m.room_id, m.seq, m.user_id, m.created_at, m.deleted_at IS NOT NULL AS deleted,
                    ARRAY(SELECT DISTINCT r.emoji FROM reactions r
                          WHERE r.room_id = m.room_id AND r.target_seq = m.seq) AS emojis
             FROM UNNEST($1::uuid[], $2::bigint[]) AS t (room_id, seq)
             JOIN messages m ON m.room_id = t.room_id AND m.seq = t.seq
             WHERE m.kind = 'message'",
            &[&target_rooms, &target_seqs],
        ),
        rows(
            transaction,
            "SELECT r.room_id, r.target_seq, r.user_id, r.emoji, r.seq
             FROM UNNEST($1::uuid[], $2::bigint[], $3::uuid[], $4::text[]) AS k (room_id, target_seq, user_id, emoji)
             JOIN reactions r ON r.room_id = k.room_id AND r.target_seq = k.target_seq
                             AND r.emoji = k.emoji AND r.user_id = k.user_id",
            &[&reaction_rooms, &reaction_targets, &reaction_users, &reaction_emojis],
        ),
    )
    .await?;
    for row in &targets {
        let emojis: Vec<String> = row.try_get("emojis")?;
        let target = Target {
            user_id: row.try_get("user_id")?,
            created_at: row.try_get("created_at")?,
            deleted: row.try_get("deleted")?,
            emojis: emojis.into_iter().collect::<BTreeSet<_>>(),
        };
        lookup
            .targets
            .insert((row.try_get("room_id")?, row.try_get("seq")?), target);
    }
    for row in &reactions {
        let key = ReactionKey {
            room_id: row.try_get("room_id")?,
            target_seq: row.try_get("target_seq")?,
            user_id: row.try_get("user_id")?,
            emoji: row.try_get("emoji")?,
        };
        lookup.reactions.insert(key, row.try_get("seq")?);
    }
    Ok(())
}

/// The columns of new `messages` rows, one vector per column.
#[derive(Default)]
struct NewRows<'a> {
    ids: Vec<Uuid>,
    rooms: Vec<Uuid>,
    seqs: Vec<i64>,
    users: Vec<Uuid>,
    contents: Vec<&'a str>,
    keys: Vec<Option<&'a str>>,
    created: Vec<OffsetDateTime>,
    kinds: Vec<&'static str>,
    targets: Vec<Option<i64>>,
    replies: Vec<Option<i64>>,
    emojis: Vec<Option<&'a str>>,
    edited: Vec<Option<OffsetDateTime>>,
    deleted: Vec<Option<OffsetDateTime>>,
}

impl<'a> NewRows<'a> {
    fn of(entries: &'a [LogEntry]) -> Self {
        let mut rows = NewRows::default();
        for entry in entries {
            rows.ids.push(entry.id);
            rows.rooms.push(entry.room_id);
            rows.seqs.push(entry.seq);
            rows.users.push(entry.user_id);
            rows.contents.push(entry.content().unwrap_or(""));
            rows.keys.push(entry.client_msg_id.as_deref());
            rows.created.push(entry.created_at);
            rows.kinds.push(entry.kind().as_str());
            rows.targets.push(entry.target_seq());
            let message = entry.message();
            rows.replies.push(message.and_then(|m| m.reply_to));
            rows.emojis.push(match &entry.body {
                Body::Reaction { emoji, .. } => Some(emoji.as_str()),
                _ => None,
            });
            rows.edited.push(message.and_then(|m| m.edited_at));
            // A message posted and deleted in one batch: deleted as it was stored.
            rows.deleted
                .push(message.filter(|m| m.deleted).map(|_| entry.created_at));
        }
        rows
    }
}

/// Moves the rooms' last seqs and inserts the new entries with one statement each, the two pipelined; then applies
/// what the batch's edits, deletions and reactions do to the messages they target.
async fn write_batch(
    transaction: &Transaction<'_>,
    plan: &Plan,
) -> Result<(), tokio_postgres::Error> {
    if plan.inserts.is_empty() {
        return Ok(());
    }
    let (room_ids, last_seqs): (Vec<Uuid>, Vec<i64>) = plan.moved_rooms.iter().copied().unzip();
    let new = NewRows::of(&plan.inserts);
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
            "INSERT INTO messages (id, room_id, seq, user_id, content, client_msg_id, created_at, kind, target_seq,
                                   reply_to, emoji, edited_at, deleted_at)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::uuid[], $5::text[], $6::text[],
                                  $7::timestamptz[], $8::text[], $9::bigint[], $10::bigint[], $11::text[],
                                  $12::timestamptz[], $13::timestamptz[])",
            &[
                &new.ids,
                &new.rooms,
                &new.seqs,
                &new.users,
                &new.contents,
                &new.keys,
                &new.created,
                &new.kinds,
                &new.targets,
                &new.replies,
                &new.emojis,
                &new.edited,
                &new.deleted,
            ],
        ),
    )
    .await?;
    write_changes(transaction, plan).await
}

/// Edits stored messages, erases deleted ones (with their edits and reactions), and moves reactions.
async fn write_changes(
    transaction: &Transaction<'_>,
    plan: &Plan,
) -> Result<(), tokio_postgres::Error> {
    if !plan.edits.is_empty() {
        let rooms: Vec<Uuid> = plan.edits.iter().map(|edit| edit.room_id).collect();
        let seqs: Vec<i64> = plan.edits.iter().map(|edit| edit.seq).collect();
        let contents: Vec<&str> = plan
            .edits
            .iter()
            .map(|edit| edit.content.as_str())
            .collect();
        let times: Vec<OffsetDateTime> = plan.edits.iter().map(|edit| edit.edited_at).collect();
        rows(
            transaction,
            "UPDATE messages m SET content = e.content, edited_at = e.edited_at
             FROM UNNEST($1::uuid[], $2::bigint[], $3::text[], $4::timestamptz[]) AS e (room_id, seq, content, edited_at)
             WHERE m.room_id = e.room_id AND m.seq = e.seq",
            &[&rooms, &seqs, &contents, &times],
        )
        .await?;
    }
    if !plan.deletions.is_empty() {
        let rooms: Vec<Uuid> = plan.deletions.iter().map(|(room, _, _)| *room).collect();
        let seqs: Vec<i64> = plan.deletions.iter().map(|(_, seq, _)| *seq).collect();
        let times: Vec<OffsetDateTime> = plan.deletions.iter().map(|(_, _, at)| *at).collect();
        try_join3(
            rows(
                transaction,
                "UPDATE messages m SET content = '', edited_at = NULL, deleted_at = d.at
                 FROM UNNEST($1::uuid[], $2::bigint[], $3::timestamptz[]) AS d (room_id, seq, at)
                 WHERE m.room_id = d.room_id AND m.seq = d.seq",
                &[&rooms, &seqs, &times],
            ),
            rows(
                transaction,
                "UPDATE messages m SET content = ''
                 FROM UNNEST($1::uuid[], $2::bigint[]) AS d (room_id, seq)
                 WHERE m.room_id = d.room_id AND m.target_seq = d.seq AND m.kind = 'edit'",
                &[&rooms, &seqs],
            ),
            rows(
                transaction,
                "DELETE FROM reactions r USING UNNEST($1::uuid[], $2::bigint[]) AS d (room_id, seq)
                 WHERE r.room_id = d.room_id AND r.target_seq = d.seq",
                &[&rooms, &seqs],
            ),
        )
        .await?;
    }
    if !plan.reactions_removed.is_empty() {
        let keys = KeyColumns::of(plan.reactions_removed.iter());
        rows(
            transaction,
            "DELETE FROM reactions r
             USING UNNEST($1::uuid[], $2::bigint[], $3::uuid[], $4::text[]) AS k (room_id, target_seq, user_id, emoji)
             WHERE r.room_id = k.room_id AND r.target_seq = k.target_seq AND r.emoji = k.emoji
               AND r.user_id = k.user_id",
            &[&keys.rooms, &keys.targets, &keys.users, &keys.emojis],
        )
        .await?;
    }
    if !plan.reactions_added.is_empty() {
        let keys = KeyColumns::of(plan.reactions_added.iter().map(|(key, _)| key));
        let seqs: Vec<i64> = plan.reactions_added.iter().map(|(_, seq)| *seq).collect();
        rows(
            transaction,
            "INSERT INTO reactions (room_id, target_seq, user_id, emoji, seq)
             SELECT * FROM UNNEST($1::uuid[], $2::bigint[], $3::uuid[], $4::text[], $5::bigint[])",
            &[&keys.rooms, &keys.targets, &keys.users, &keys.emojis, &seqs],
        )
        .await?;
    }
    Ok(())
}

/// Reaction keys, one vector per column.
struct KeyColumns<'a> {
    rooms: Vec<Uuid>,
    targets: Vec<i64>,
    users: Vec<Uuid>,
    emojis: Vec<&'a str>,
}

impl<'a> KeyColumns<'a> {
    fn of(keys: impl Iterator<Item = &'a ReactionKey>) -> Self {
        let mut columns = KeyColumns {
            rooms: Vec::new(),
            targets: Vec::new(),
            users: Vec::new(),
            emojis: Vec::new(),
        };
        for key in keys {
            columns.rooms.push(key.room_id);
            columns.targets.push(key.target_seq);
            columns.users.push(key.user_id);
            columns.emojis.push(&key.emoji);
        }
        columns
    }
}

/// Runs one statement inside a transaction, prepared once per connection.
pub(super) async fn rows(
    transaction: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let statement = transaction.prepare_cached(sql).await?;
    transaction.query(&statement, params).await
}

/// The values of `values` once each, sorted.
pub(super) fn distinct(values: impl Iterator<Item = Uuid>) -> Vec<Uuid> {
    let mut values: Vec<Uuid> = values.collect();
    values.sort_unstable();
    values.dedup();
    values
}
