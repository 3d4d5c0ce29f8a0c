//! `open_dm`: opens the one direct room between the user and another, creating it the first time. Both are members;
//! nobody else can join it or see it listed. Every connection of both users, on every node, is subscribed to it and
//! told (`dm_opened`, naming the other). It is a room like any other after that: the same log, acks, resume, read
//! state and reactions. A user who blocked the opener (`block_user`) refuses it.

use serde::Deserialize;
use uuid::Uuid;

use crate::actions::room_access::user_named;
use crate::context::Context;
use crate::error::Error;
use crate::event::{Reply, Session};
use crate::model::{NewRoom, direct_room_name};

/// The `data` of an `open_dm` command.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenDmRequest {
    /// The other person.
    pub username: String,
}

/// Opens (or opens again) the direct room; replies `dm_opened`, after the same event reached this user's
/// connections.
pub async fn open_dm(
    ctx: &dyn Context,
    session: &Session,
    req: OpenDmRequest,
) -> Result<Vec<Reply>, Error> {
    let me = &session.principal;
    let other = user_named(ctx, &req.username).await?;
    if other.id == me.user_id {
        return Err(Error::DirectWithYourself);
    }
    if ctx.store().is_blocked(other.id, me.user_id).await? {
        return Err(Error::Blocked);
    }
    let new = NewRoom {
        id: Uuid::now_v7(),
        name: direct_room_name(&me.username, &other.username),
        private: true,
        password_hash: None,
        owner_id: me.user_id,
        created_at: ctx.clock().now(),
    };
    let (room, _created) = ctx.store().open_direct(new, other.id).await?;
    let broker = ctx.broker();
    broker.open_direct(
        me.user_id,
        &me.username,
        room.id,
        &room.name,
        room.last_seq,
        &other.username,
    );
    broker.open_direct(
        other.id,
        &other.username,
        room.id,
        &room.name,
        room.last_seq,
        &me.username,
    );
    Ok(vec![Reply::DirectOpened {
        room: room.name,
        with: other.username,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::block_user::{BlockRequest, block_user};
    use crate::actions::get_messages::{GetMessagesRequest, get_messages};
    use crate::actions::join_room::{JoinRoomRequest, join_room};
    use crate::actions::list_rooms::{ListRoomsRequest, list_rooms};
    use crate::actions::room_message::{RoomMessageRequest, room_message};
    use crate::event::RoomEvent;
    use crate::testing::TestContext;
    use crate::testing::fixtures::*;
    use crate::{Hub, Store};

    fn with(username: &str) -> OpenDmRequest {
        OpenDmRequest {
            username: username.into(),
        }
    }

    #[tokio::test]
    async fn both_users_connections_are_subscribed_and_told_and_it_is_one_room() {
        let ctx = TestContext::new();
        let john = user(&ctx, "john_doe").await;
        let jane = user(&ctx, "Jane_Doe").await;
        // The hub knows a connection once it is in some room.
        let lobby = public_room(&ctx, &on(1, &john), "lobby").await;
        for conn in [2, 3] {
            enter(&ctx, &on(conn, &jane), "lobby").await;
        }
        drain(&ctx, &[1, 2, 3]);

        let replies = open_dm(&ctx, &on(1, &john), with("jane_doe"))
            .await
            .unwrap();
        let room = "dm:jane_doe:john_doe";
        assert_eq!(
            replies,
            vec![Reply::DirectOpened {
                room: room.into(),
                with: "Jane_Doe".into()
            }]
        );
        for conn in [2, 3] {
            assert!(ctx.hub.rooms_of(conn).iter().any(|(_, name)| name == room));
            assert_eq!(
                events(&ctx, conn),
                vec![(
                    room.into(),
                    RoomEvent::DirectOpened {
                        user_id: jane.user_id,
                        with: "john_doe".into()
                    }
                )]
            );
        }
        assert!(ctx.hub.rooms_of(1).iter().any(|(_, name)| name == room));
        // Opening it again, from either side, is the same room.
        open_dm(&ctx, &on(2, &jane), with("JOHN_DOE"))
            .await
            .unwrap();
        let direct = ctx.store.room_by_name(room).await.unwrap().unwrap();
        assert!(direct.direct);
        assert_eq!(ctx.store.members(direct.id).await.unwrap().len(), 2);
        // Posting works like anywhere; outsiders cannot join, read or see it.
        let post = RoomMessageRequest {
            room: Some(room.into()),
            content: "hi jane".into(),
            ..RoomMessageRequest::default()
        };
        room_message(&ctx, &on(1, &john), post)
            .await
            .unwrap()
            .await
            .unwrap();
        let bob = on(4, &user(&ctx, "bob").await);
        let join = JoinRoomRequest {
            name: room.into(),
            ..JoinRoomRequest::default()
        };
        assert_eq!(join_room(&ctx, &bob, join).await, Err(Error::NotInRoom));
        let read = GetMessagesRequest {
            name: room.into(),
            ..GetMessagesRequest::default()
        };
        assert_eq!(get_messages(&ctx, &bob, read).await, Err(Error::NotInRoom));
        let Reply::Rooms(theirs) = &list_rooms(&ctx, &bob, ListRoomsRequest {}).await.unwrap()[0]
        else {
            unreachable!()
        };
        assert_eq!(theirs.len(), 1, "only the lobby: {theirs:?}");
        let Reply::Rooms(johns) = &list_rooms(&ctx, &on(1, &john), ListRoomsRequest {})
            .await
            .unwrap()[0]
        else {
            unreachable!()
        };
        let listed = johns
            .iter()
            .find(|view| view.direct)
            .expect("john's direct room");
        assert_eq!(listed.with.as_deref(), Some("Jane_Doe"));
        assert_eq!(lobby.name, "lobby");
    }

    #[tokio::test]
    async fn a_block_refuses_opening_and_posting() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        // The hub knows a connection once it is in some room.
        public_room(&ctx, &john, "lobby").await;
        open_dm(&ctx, &john, with("jane_doe")).await.unwrap();
        let block = BlockRequest {
            username: "john_doe".into(),
        };
        block_user(&ctx, &jane, block).await.unwrap();
        assert_eq!(
            open_dm(&ctx, &john, with("jane_doe")).await,
            Err(Error::Blocked)
        );
        let post = RoomMessageRequest {
            room: Some("dm:jane_doe:john_doe".into()),
            content: "hello?".into(),
            ..RoomMessageRequest::default()
        };
        assert_eq!(
            room_message(&ctx, &john, post).await.map(|_| ()),
            Err(Error::Blocked)
        );
        // The blocker may still write, and open it.
        open_dm(&ctx, &jane, with("john_doe")).await.unwrap();
    }

    #[tokio::test]
    async fn nobody_and_oneself_are_refused() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        assert_eq!(
            open_dm(&ctx, &john, with("nobody")).await,
            Err(Error::UserNotFound)
        );
        assert_eq!(
            open_dm(&ctx, &john, with("John_Doe")).await,
            Err(Error::DirectWithYourself)
        );
        // An email is not a username.
        assert_eq!(
            open_dm(&ctx, &john, with("john_doe@example.com")).await,
            Err(Error::UserNotFound)
        );
    }
}
