//! What the room actions share: finding a room by name, finding the room a command is about among those the
//! connection has joined, checking a private room's password, and publishing an event to a room.

use uuid::Uuid;

use crate::context::{Attempt, Context};
use crate::error::Error;
use crate::event::{Broadcast, RoomEvent, Session};
use crate::model::{Principal, Room, SecurityEvent};
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

/// Whether `password` is the private room's password, as `principal`'s attempt: each wrong password is counted and
/// audited, and once the user's recent failures on this room reach the limit, passwords are refused untried with
/// [`Error::RateLimited`] (no bcrypt round either), so guessing a room's password is slow. No password at all is no
/// attempt. A password over bcrypt's 72 bytes never matches: bcrypt would compare only its first 72 bytes.
pub(crate) async fn room_password_matches(
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

/// Publishes `event` to the room's subscribed connections, except those of `skip_user`, stamped with the clock's now.
pub(crate) fn publish(
    ctx: &dyn Context,
    room_id: Uuid,
    room: &str,
    event: RoomEvent,
    skip_user: Option<Uuid>,
) {
    ctx.hub().publish(Broadcast {
        room_id,
        room: room.to_owned(),
        at: ctx.clock().now(),
        event,
        skip_user,
    });
}

/// Helpers the room actions' tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use crate::actions::authenticate::authenticate;
    use crate::actions::create_room::{CreateRoomRequest, create_room};
    use crate::actions::join::{JoinRequest, join};
    use crate::event::{ConnectionId, Reply, RoomEvent, Session};
    use crate::model::{NewMessage, Principal, Room, StoredMessage};
    use crate::testing::{Delivery, TestContext};
    use crate::{Clock, Hub as _, Store as _};
    use time::Duration;
    use uuid::Uuid;

    /// A password that passes the room password rules.
    pub const ROOM_PASSWORD: &str = "open sesame";

    /// Registers `username`, logs in and authenticates the token, as a connection would.
    pub async fn user(ctx: &TestContext, username: &str) -> Principal {
        let (_, token) = ctx.register_and_login(username).await;
        authenticate(ctx, Some(&token))
            .await
            .expect("a fresh token authenticates")
    }

    /// The session of `principal` on connection `conn`.
    pub fn on(conn: ConnectionId, principal: &Principal) -> Session {
        Session {
            conn,
            principal: principal.clone(),
        }
    }

    /// Creates a public room from `session` (which joins it) and forgets what the creation delivered.
    pub async fn public_room(ctx: &TestContext, session: &Session, name: &str) -> Room {
        room(ctx, session, name, None).await
    }

    /// Creates a private room with [`ROOM_PASSWORD`] from `session` (which joins it).
    pub async fn private_room(ctx: &TestContext, session: &Session, name: &str) -> Room {
        room(ctx, session, name, Some(ROOM_PASSWORD)).await
    }

    async fn room(
        ctx: &TestContext,
        session: &Session,
        name: &str,
        password: Option<&str>,
    ) -> Room {
        let req = CreateRoomRequest {
            name: name.into(),
            private: Some(password.is_some()),
            password: password.map(Into::into),
        };
        create_room(ctx, session, req)
            .await
            .expect("test room is valid");
        ctx.hub.take(session.conn);
        ctx.store
            .room_by_name(name)
            .await
            .unwrap()
            .expect("the room was stored")
    }

    /// Joins `name` from `session` without a password or replay; returns the replies.
    pub async fn enter(ctx: &TestContext, session: &Session, name: &str) -> Vec<Reply> {
        let req = JoinRequest {
            name: name.into(),
            password: None,
            after_seq: None,
        };
        let replies = join(ctx, session, req).await.expect("the join succeeds");
        release_caught_up(ctx, session, replies)
    }

    /// Does what the runtime does with a join's replies: at [`Reply::CaughtUp`] the events held for the room are
    /// released. Returns the other replies.
    pub fn release_caught_up(
        ctx: &TestContext,
        session: &Session,
        replies: Vec<Reply>,
    ) -> Vec<Reply> {
        replies
            .into_iter()
            .filter(|reply| match reply {
                Reply::CaughtUp {
                    room_id,
                    through_seq,
                } => {
                    ctx.hub.release(session.conn, *room_id, *through_seq);
                    false
                }
                _ => true,
            })
            .collect()
    }

    /// The room events delivered to `conn` since the last look, as (room, event); panics on other deliveries.
    pub fn events(ctx: &TestContext, conn: ConnectionId) -> Vec<(String, RoomEvent)> {
        ctx.hub
            .take(conn)
            .into_iter()
            .map(|delivery| match delivery {
                Delivery::Event(broadcast) => (broadcast.room, broadcast.event),
                Delivery::Reply(reply) => panic!("unexpected reply {reply:?} to connection {conn}"),
            })
            .collect()
    }

    /// Stores one message per entry of `contents` from `principal`, one second apart (so time filters can tell them
    /// apart), as the message action would; returns them as stored.
    pub async fn post(
        ctx: &TestContext,
        room: &Room,
        principal: &Principal,
        contents: &[&str],
    ) -> Vec<StoredMessage> {
        let mut stored = Vec::new();
        for content in contents {
            ctx.clock.advance(Duration::seconds(1));
            let appended = ctx
                .store
                .append_messages(&[NewMessage {
                    id: Uuid::now_v7(),
                    room_id: room.id,
                    user_id: principal.user_id,
                    content: (*content).into(),
                    client_msg_id: None,
                    created_at: ctx.clock.now(),
                }])
                .await
                .expect("test messages store");
            stored.extend(appended.iter().map(|a| a.message().clone()));
        }
        stored
    }

    /// Stores `count` messages "message 1", "message 2", … from `principal`.
    pub async fn post_numbered(
        ctx: &TestContext,
        room: &Room,
        principal: &Principal,
        count: usize,
    ) -> Vec<StoredMessage> {
        let contents: Vec<String> = (1..=count).map(|n| format!("message {n}")).collect();
        let contents: Vec<&str> = contents.iter().map(String::as_str).collect();
        post(ctx, room, principal, &contents).await
    }

    /// The `Left` event of `username` in `room`, as [`events`] returns it.
    pub fn left(room: &str, username: &str) -> (String, RoomEvent) {
        (
            room.into(),
            RoomEvent::Left {
                username: username.into(),
            },
        )
    }

    /// Forgets everything delivered so far to each of `conns`.
    pub fn drain(ctx: &TestContext, conns: &[ConnectionId]) {
        for conn in conns {
            ctx.hub.take(*conn);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use crate::testing::TestContext;

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

    #[test]
    fn requests_decode_from_the_protocols_data_objects() {
        use crate::actions::{
            create_room::CreateRoomRequest, delete_room::DeleteRoomRequest,
            history::HistoryRequest, join::JoinRequest, leave::LeaveRequest,
            list_rooms::ListRoomsRequest, members::MembersRequest, message::MessageRequest,
            typing::TypingRequest,
        };
        use serde_json::from_str;

        let create: CreateRoomRequest =
            from_str(r#"{"name":"general","private":true,"password":"open sesame"}"#).unwrap();
        assert_eq!(
            (create.private, create.password.as_deref()),
            (Some(true), Some("open sesame"))
        );
        let create: CreateRoomRequest = from_str(r#"{"name":"general"}"#).unwrap();
        assert_eq!((create.private, create.password), (None, None));
        let join: JoinRequest =
            from_str(r#"{"name":"general","password":"pw","after_seq":41}"#).unwrap();
        assert_eq!(join.after_seq, Some(41));
        let leave: LeaveRequest = from_str("{}").unwrap();
        assert_eq!(leave.name, None);
        from_str::<DeleteRoomRequest>(r#"{"name":"general"}"#).unwrap();
        from_str::<ListRoomsRequest>("{}").unwrap();
        let message: MessageRequest = from_str(r#"{"content":"hi","client_msg_id":"k1"}"#).unwrap();
        assert_eq!(
            (message.room, message.client_msg_id.as_deref()),
            (None, Some("k1"))
        );
        let history: HistoryRequest = from_str(
            r#"{"name":"general","limit":20,"before_seq":9,"after_seq":1,"sender":"jane",
                "contains":"hi","since":"2026-11-25T15:00:00Z","until":"2026-11-25T16:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!((history.limit, history.before_seq), (Some(20), Some(9)));
        from_str::<MembersRequest>(r#"{"name":"general"}"#).unwrap();
        from_str::<TypingRequest>(r#"{"room":"general"}"#).unwrap();

        // Unknown, missing and mistyped fields are refused (the runtime answers `invalid message format`).
        assert!(from_str::<JoinRequest>(r#"{"name":"general","pasword":"pw"}"#).is_err());
        assert!(from_str::<ListRoomsRequest>(r#"{"name":"general"}"#).is_err());
        assert!(from_str::<MessageRequest>(r#"{"room":"general"}"#).is_err());
        assert!(from_str::<TypingRequest>("{}").is_err());
        assert!(from_str::<JoinRequest>(r#"{"name":"general","after_seq":"7"}"#).is_err());
        assert!(from_str::<CreateRoomRequest>(r#"{"name":"general","private":"yes"}"#).is_err());
    }
}
