//! `unreact`: the user takes back one of their reactions to a message: an entry of the room's log with its own seq
//! (`reaction` with `added: false`).

use crate::actions::react::ReactionRequest;
use crate::actions::room_access::joined_room;
use crate::actions::submit::submit;
use crate::context::Context;
use crate::error::Error;
use crate::event::{PendingReplies, Session};
use crate::model::Change;
use crate::validate;

/// Puts the removal in line; the log refuses it when the user has no such reaction on the message, or the message
/// does not exist or was deleted (`not_found`). (Its tests are with `react`'s.)
pub async fn unreact(
    ctx: &dyn Context,
    session: &Session,
    req: ReactionRequest,
) -> Result<PendingReplies, Error> {
    let (room_id, room) = joined_room(ctx, session, Some(&req.room)).await?;
    let emoji = validate::emoji(&req.emoji)?;
    let change = Change::Unreact {
        target_seq: req.seq,
        emoji: emoji.to_owned(),
    };
    submit(ctx, session, room_id, room, change, None).await
}
