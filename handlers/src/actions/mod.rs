//! One module per action, named after the wire command or route it serves, holding its rule and its unit tests.
//! Each action is a plain async function over a [`crate::Context`]: the runtime decodes a frame into a
//! [`crate::command::Command`] (or a request body into the action's request type), calls it, and renders what it
//! returns.

// The WebSocket commands (PROTOCOL §3), each named after its wire `type`; those with a REST route too have a
// `<command>_for` entry taking the principal instead of a connection.
pub mod block_user;
pub mod create_room;
pub mod delete_message;
pub mod delete_room;
pub mod edit_message;
pub mod get_messages;
pub mod join_room;
pub mod kick;
pub mod leave_room;
pub mod list_members;
pub mod list_rooms;
pub mod mark_read;
pub mod open_dm;
pub mod react;
pub mod room_message;
pub mod search;
pub mod set_role;
pub mod transfer_ownership;
pub mod typing;
pub mod unblock_user;
pub mod unreact;

// The account routes (PROTOCOL §1), named after their path.
pub mod login;
pub mod logout;
pub mod me;
pub mod register;

// What every authenticated request and every WebSocket goes through.
pub mod authenticate;
pub mod disconnect;
pub mod redeem_ticket;

mod room_access;
mod submit;

use uuid::Uuid;

use crate::context::Context;
use crate::error::{Error, Field};
use crate::event::{Broadcast, RoomEvent};

/// The value of a required request field, or a validation error naming it.
pub(crate) fn required(field: Field, value: &Option<String>) -> Result<&str, Error> {
    match value.as_deref() {
        Some(value) if !value.is_empty() => Ok(value),
        _ => Err(Error::invalid(
            field,
            format!("{} is required", field.name()),
        )),
    }
}

/// Publishes `event` to the room's subscribed connections, except those of `skip_user`, stamped with the clock's now.
pub(crate) fn publish(
    ctx: &dyn Context,
    room_id: Uuid,
    room: &str,
    event: RoomEvent,
    skip_user: Option<Uuid>,
) {
    ctx.broker().publish(Broadcast {
        room_id,
        room: room.to_owned(),
        at: ctx.clock().now(),
        event,
        skip_user,
    });
}
