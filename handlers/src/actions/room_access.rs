//! Which room a command is about, and whether the asking user may get in: finding a room by name, finding the room
//! among those the connection has joined, checking a private room's password (throttled and audited).

use uuid::Uuid;

use crate::context::{Attempt, Context};
use crate::error::Error;
use crate::event::Session;
use crate::model::{Principal, Role, Room, SecurityEvent, User};
use crate::validate;

/// The room called `name` (case-insensitively), or [`Error::RoomNotFound`].
pub(crate) async fn find_room(ctx: &dyn Context, name: &str) -> Result<Room, Error> {
    ctx.store()
        .room_by_name(name)
        .await?
        .ok_or(Error::RoomNotFound)
}

/// Whether two room names are the same room (names are unique case-insensitively).
pub(crate) fn same_room_name(a: &str, b: &str) -> bool {
    a.to_lowercase() == b.to_lowercase()
}

/// The room a command addresses among those the session's connection has joined, as (id, name).
///
/// Without a name: the only joined room, [`Error::RoomRequired`] if several are joined, [`Error::NotInRoom`] if none.
/// With a name: that room if the connection joined it; otherwise [`Error::RoomNotFound`] if no such room exists, else
/// [`Error::NotInRoom`]. The store is read only on the way to an error, so the hot path (posting) costs no query.
pub(crate) async fn joined_room(
    ctx: &dyn Context,
    session: &Session,
    name: Option<&str>,
) -> Result<(Uuid, String), Error> {
    let mut rooms = ctx.hub().rooms_of(session.conn);
    match name {
        None => match rooms.len() {
            0 => Err(Error::NotInRoom),
            1 => Ok(rooms.remove(0)),
            _ => Err(Error::RoomRequired),
        },
        Some(name) => match rooms
            .into_iter()
            .find(|(_, joined)| same_room_name(joined, name))
        {
            Some(room) => Ok(room),
            None => {
                find_room(ctx, name).await?;
                Err(Error::NotInRoom)
            }
        },
    }
}

/// Whether the room named `room` is a direct room (by its name, which no other room can have: see
/// [`crate::model::direct_room_name`]), answered without the store.
pub(crate) fn is_direct_name(room: &str) -> bool {
    room.starts_with("dm:")
}

/// Refuses a post by `user_id` into the direct room `room_id` when its other member blocked them.
pub(crate) async fn not_blocked_in_direct(
    ctx: &dyn Context,
    room_id: Uuid,
    user_id: Uuid,
) -> Result<(), Error> {
    for member in ctx.store().members(room_id).await? {
        if member.user_id != user_id && ctx.store().is_blocked(member.user_id, user_id).await? {
            return Err(Error::Blocked);
        }
    }
    Ok(())
}

/// What a command by one member about another needs: the room, the sender's role in it, the other user and theirs.
pub(crate) struct MemberAction {
    pub room: Room,
    pub actor: Role,
    pub target: User,
    pub target_role: Role,
}

/// The room called `room`, `principal`'s role in it ([`Error::NotInRoom`] without one), and the member called
/// `username` with their role ([`Error::UserNotFound`], [`Error::NotAMember`]).
pub(crate) async fn member_action(
    ctx: &dyn Context,
    principal: &Principal,
    room: &str,
    username: &str,
) -> Result<MemberAction, Error> {
    let room = find_room(ctx, room).await?;
    let actor = ctx
        .store()
        .role_of(room.id, principal.user_id)
        .await?
        .ok_or(Error::NotInRoom)?;
    let target = user_named(ctx, username).await?;
    let target_role = ctx
        .store()
        .role_of(room.id, target.id)
        .await?
        .ok_or(Error::NotAMember)?;
    Ok(MemberAction {
        room,
        actor,
        target,
        target_role,
    })
}

/// The account called `username` (case-insensitively; never found by email).
pub(crate) async fn user_named(ctx: &dyn Context, username: &str) -> Result<User, Error> {
    ctx.store()
        .user_by_login(username)
        .await?
        .filter(|user| user.username.eq_ignore_ascii_case(username))
        .ok_or(Error::UserNotFound)
}

/// Lets `principal` into `room`: anyone into a public room, members into a private one, others only with its
/// password ([`Error::BadRoomPassword`] when it is wrong, `without_password` when they gave none).
pub(crate) async fn may_enter(
    ctx: &dyn Context,
    principal: &Principal,
    room: &Room,
    password: Option<&str>,
    without_password: Error,
) -> Result<(), Error> {
    if room.direct {
        // A direct room has its two members and no password: nobody else gets in.
        return if ctx.store().is_member(room.id, principal.user_id).await? {
            Ok(())
        } else {
            Err(Error::NotInRoom)
        };
    }
    if !room.private || ctx.store().is_member(room.id, principal.user_id).await? {
        return Ok(());
    }
    if password.is_none() {
        return Err(without_password);
    }
    if room_password_matches(ctx, principal, room, password).await? {
        Ok(())
    } else {
        Err(Error::BadRoomPassword)
    }
}

/// Whether `password` is the private room's password, as `principal`'s attempt: each wrong password is counted and
/// audited, and once the user's recent failures on this room reach the limit, passwords are refused untried with
/// [`Error::RateLimited`] (no bcrypt round either), so guessing a room's password is slow. No password at all is no
/// attempt. A password over bcrypt's 72 bytes never matches: bcrypt would compare only its first 72 bytes.
async fn room_password_matches(
    ctx: &dyn Context,
    principal: &Principal,
    room: &Room,
    password: Option<&str>,
) -> Result<bool, Error> {
    let Some(password) = password.filter(|password| !password.is_empty()) else {
        return Ok(false);
    };
    let guard = ctx.guard();
    let attempt = Attempt::RoomPassword {
        user_id: principal.user_id,
        room_id: room.id,
    };
    let event_room = || room.name.clone();
    if !guard.may_try(&attempt) {
        guard.record(
            principal,
            SecurityEvent::RoomPasswordLocked { room: event_room() },
        );
        return Err(Error::RateLimited);
    }
    let matches = password.len() <= validate::MAX_PASSWORD_BYTES
        && ctx
            .credentials()
            .verify_password(password, room.password_hash.as_deref())
            .await?;
    if !matches {
        guard.failed(&attempt);
        guard.record(
            principal,
            SecurityEvent::RoomPasswordFailed { room: event_room() },
        );
    }
    Ok(matches)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestContext;
    use crate::testing::fixtures::*;

    #[tokio::test]
    async fn an_omitted_room_is_the_only_one_joined() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        assert_eq!(joined_room(&ctx, &john, None).await, Err(Error::NotInRoom));
        let general = public_room(&ctx, &john, "general").await;
        assert_eq!(
            joined_room(&ctx, &john, None).await,
            Ok((general.id, "general".into()))
        );
        public_room(&ctx, &john, "random").await;
        assert_eq!(
            joined_room(&ctx, &john, None).await,
            Err(Error::RoomRequired)
        );
    }

    #[tokio::test]
    async fn a_named_room_must_exist_and_be_joined() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let general = public_room(&ctx, &john, "General").await;
        assert_eq!(
            joined_room(&ctx, &john, Some("gENERAL")).await,
            Ok((general.id, "General".into()))
        );
        assert_eq!(
            joined_room(&ctx, &jane, Some("general")).await,
            Err(Error::NotInRoom)
        );
        assert_eq!(
            joined_room(&ctx, &john, Some("nowhere")).await,
            Err(Error::RoomNotFound)
        );
    }
}
