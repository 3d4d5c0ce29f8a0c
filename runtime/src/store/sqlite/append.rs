//! Putting batches of entries in the rooms' logs: in one immediate transaction on the writer's connection, the
//! batch's rooms, senders, idempotency keys, targets and reactions are read, [`room_log::plan`] decides, and the
//! plan is written. The first failure rolls the whole batch back, seqs included.

use palaver_handlers::model::{Appended, Body, LogEntry, NewEntry};
use palaver_handlers::room_log::{self, Lookup, Plan, Target};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

use super::convert::{ENTRY_COLUMNS, Failure, entry_from_row, id_text, micros, time_at};

/// Stores a batch in one transaction. A repeat of an existing (user, client_msg_id), or of one earlier in the
/// batch, is answered with the original.
pub(super) fn append_messages(
    connection: &mut Connection,
    batch: &[NewEntry],
) -> Result<Vec<Appended>, Failure> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let lookup = look_up(&tx, batch)?;
    let plan = room_log::plan(batch, lookup)?;
    write(&tx, &plan)?;
    tx.commit()?;
    Ok(plan.outcomes)
}

/// Reads what the log's rules need for `batch` (the transaction holds the database's write lock already).
fn look_up(tx: &Connection, batch: &[NewEntry]) -> Result<Lookup, Failure> {
    let mut lookup = Lookup::default();
    for new in batch {
        if !lookup.last_seqs.contains_key(&new.room_id)
            && let Some(last_seq) = tx
                .prepare_cached("SELECT last_seq FROM rooms WHERE id = ?1")?
                .query_row([id_text(new.room_id)], |row| row.get(0))
                .optional()?
        {
            lookup.last_seqs.insert(new.room_id, last_seq);
        }
        if !lookup.usernames.contains_key(&new.user_id)
            && let Some(username) = tx
                .prepare_cached("SELECT username FROM users WHERE id = ?1")?
                .query_row([id_text(new.user_id)], |row| row.get(0))
                .optional()?
        {
            lookup.usernames.insert(new.user_id, username);
        }
        if let Some(key) = &new.client_msg_id
            && let Some(original) = tx
                .prepare_cached(&format!(
                    "SELECT {ENTRY_COLUMNS} FROM messages AS m JOIN users AS u ON u.id = m.user_id
                     WHERE m.user_id = ?1 AND m.client_msg_id = ?2"
                ))?
                .query_row(params![id_text(new.user_id), key], entry_from_row)
                .optional()?
        {
            lookup.originals.push(original);
        }
    }
    let wanted = room_log::wanted(batch);
    for (room_id, seq) in wanted.targets {
        let room = id_text(room_id);
        let found = tx
            .prepare_cached(
                "SELECT user_id, created_at, deleted_at IS NOT NULL FROM messages
                 WHERE room_id = ?1 AND seq = ?2 AND kind = 'message'",
            )?
            .query_row(params![room, seq], |row| {
                Ok((row.get::<_, String>(0)?, time_at(row, 1)?, row.get(2)?))
            })
            .optional()?;
        let Some((author, created_at, deleted)) = found else {
            continue;
        };
        let emojis = tx
            .prepare_cached(
                "SELECT DISTINCT emoji FROM reactions WHERE room_id = ?1 AND target_seq = ?2",
            )?
            .query_map(params![room, seq], |row| row.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let user_id = uuid::Uuid::parse_str(&author)
            .map_err(|err| super::convert::backend(format!("author of {seq}: {err}")))?;
        let target = Target {
            user_id,
            created_at,
            deleted,
            emojis,
        };
        lookup.targets.insert((room_id, seq), target);
    }
    for key in wanted.reactions {
        let seq: Option<i64> = tx
            .prepare_cached(
                "SELECT seq FROM reactions
                 WHERE room_id = ?1 AND target_seq = ?2 AND emoji = ?3 AND user_id = ?4",
            )?
            .query_row(
                params![
                    id_text(key.room_id),
                    key.target_seq,
                    key.emoji,
                    id_text(key.user_id)
                ],
                |row| row.get(0),
            )
            .optional()?;
        if let Some(seq) = seq {
            lookup.reactions.insert(key, seq);
        }
    }
    Ok(lookup)
}

/// Writes what the plan decided: the rooms' new last seqs, the new entries, and what the edits, deletions and
/// reactions do to the messages they target.
fn write(tx: &Connection, plan: &Plan) -> rusqlite::Result<()> {
    for (room_id, last_seq) in &plan.moved_rooms {
        tx.prepare_cached("UPDATE rooms SET last_seq = ?2 WHERE id = ?1")?
            .execute(params![id_text(*room_id), last_seq])?;
    }
    for entry in &plan.inserts {
        insert(tx, entry)?;
    }
    for edit in &plan.edits {
        tx.prepare_cached(
            "UPDATE messages SET content = ?3, edited_at = ?4 WHERE room_id = ?1 AND seq = ?2",
        )?
        .execute(params![
            id_text(edit.room_id),
            edit.seq,
            edit.content,
            micros(edit.edited_at)
        ])?;
    }
    for (room_id, seq, at) in &plan.deletions {
        let room = id_text(*room_id);
        tx.prepare_cached(
            "UPDATE messages SET content = '', edited_at = NULL, deleted_at = ?3
             WHERE room_id = ?1 AND seq = ?2",
        )?
        .execute(params![room, seq, micros(*at)])?;
        tx.prepare_cached(
            "UPDATE messages SET content = '' WHERE room_id = ?1 AND target_seq = ?2 AND kind = 'edit'",
        )?
        .execute(params![room, seq])?;
        tx.prepare_cached("DELETE FROM reactions WHERE room_id = ?1 AND target_seq = ?2")?
            .execute(params![room, seq])?;
    }
    for key in &plan.reactions_removed {
        tx.prepare_cached(
            "DELETE FROM reactions WHERE room_id = ?1 AND target_seq = ?2 AND emoji = ?3 AND user_id = ?4",
        )?
        .execute(params![
            id_text(key.room_id),
            key.target_seq,
            key.emoji,
            id_text(key.user_id)
        ])?;
    }
    for (key, seq) in &plan.reactions_added {
        tx.prepare_cached(
            "INSERT INTO reactions (room_id, target_seq, emoji, user_id, seq) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![
            id_text(key.room_id),
            key.target_seq,
            key.emoji,
            id_text(key.user_id),
            seq
        ])?;
    }
    Ok(())
}

/// Inserts one new entry in its state after the batch.
fn insert(tx: &Connection, entry: &LogEntry) -> rusqlite::Result<usize> {
    let message = entry.message();
    let emoji = match &entry.body {
        Body::Reaction { emoji, .. } => Some(emoji.as_str()),
        _ => None,
    };
    // A message posted and deleted in one batch: deleted as it was stored.
    let deleted_at = message
        .filter(|message| message.deleted)
        .map(|_| micros(entry.created_at));
    tx.prepare_cached(
        "INSERT INTO messages (id, room_id, seq, user_id, content, client_msg_id, created_at, kind, target_seq,
                               reply_to, emoji, edited_at, deleted_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
    )?
    .execute(params![
        id_text(entry.id),
        id_text(entry.room_id),
        entry.seq,
        id_text(entry.user_id),
        entry.content().unwrap_or(""),
        entry.client_msg_id,
        micros(entry.created_at),
        entry.kind().as_str(),
        entry.target_seq(),
        message.and_then(|message| message.reply_to),
        emoji,
        message.and_then(|message| message.edited_at).map(micros),
        deleted_at,
    ])
}
