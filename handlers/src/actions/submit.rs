//! Putting an entry in a room's log for a connection: the post, edit, deletion or reaction is put in line at once,
//! and the sender's answer comes once it is committed: an ack with the entry's seq, or the rule that refused it.

use uuid::Uuid;

use crate::context::Context;
use crate::error::Error;
use crate::event::{PendingReplies, Reply, Session};
use crate::model::{Appended, Change, NewEntry};

/// Submits `change` by the session's user to the room `room_id` (called `room`); the future replies resolve once
/// it is stored (and delivered) or refused.
pub(crate) async fn submit(
    ctx: &dyn Context,
    session: &Session,
    room_id: Uuid,
    room: String,
    change: Change,
    client_msg_id: Option<String>,
) -> Result<PendingReplies, Error> {
    let new = NewEntry {
        id: Uuid::now_v7(),
        room_id,
        user_id: session.principal.user_id,
        change,
        client_msg_id,
        created_at: ctx.clock().now(),
    };
    let posted = ctx.messages().submit(&room, new).await?;
    let edit_window_secs = ctx.limits().edit_window_secs;
    Ok(Box::pin(async move {
        answer(room_id, room, posted.await?, edit_window_secs)
    }))
}

/// The sender's answer to the outcome of its entry.
fn answer(
    room_id: Uuid,
    room: String,
    outcome: Appended,
    edit_window_secs: u64,
) -> Result<Vec<Reply>, Error> {
    match outcome {
        Appended::Stored(entry) => Ok(vec![Reply::Ack {
            room,
            seq: entry.seq,
        }]),
        Appended::Duplicate(original) if original.room_id == room_id => Ok(vec![Reply::Ack {
            room,
            seq: original.seq,
        }]),
        // The key was spent on another room: acknowledging a seq of that room here would mislead the client.
        Appended::Duplicate(_) => Err(Error::Malformed(
            "client_msg_id was already used for a message to another room".into(),
        )),
        // A reaction made before: acknowledged with the entry that made it, like a repeated post.
        Appended::Unchanged { seq, .. } => Ok(vec![Reply::Ack { room, seq }]),
        Appended::Refused(refusal) => Err(Error::refused(refusal, edit_window_secs)),
    }
}
