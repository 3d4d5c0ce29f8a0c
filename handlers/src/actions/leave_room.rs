//! `leave_room`: end the user's membership of a room and unsubscribe all of the user's connections from it, on every
//! node.

use serde::Deserialize;
use uuid::Uuid;

use crate::actions::publish;
use crate::actions::room_access::find_room;
use crate::context::Context;
use crate::error::Error;
use crate::event::{Reply, RoomEvent, Session};

/// The `data` of a `leave_room` command.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LeaveRoomRequest {
    /// The room to leave; omitted, the only room this connection has joined.
    pub name: Option<String>,
}

/// Leaves the room: the membership ends, every connection of the user is unsubscribed from it (on every node: the
/// broker tells the others), and the remaining subscribers are told. Reply: the leave confirmation.
pub async fn leave_room(
    ctx: &dyn Context,
    session: &Session,
    req: LeaveRoomRequest,
) -> Result<Vec<Reply>, Error> {
    let principal = &session.principal;
    let (room_id, room) = room_to_leave(ctx, session, req.name.as_deref()).await?;
    let was_member = ctx
        .store()
        .remove_member(room_id, principal.user_id)
        .await?;
    // This node's connections that were subscribed; the other nodes unsubscribe theirs (and update their presence).
    let unsubscribed = ctx
        .broker()
        .unsubscribe_user(principal.user_id, room_id, &room);
    if !was_member && unsubscribed.is_empty() {
        return Err(Error::NotInRoom);
    }
    if !unsubscribed.is_empty() {
        // The membership is over: the others are told whatever presence says of other connections.
        ctx.presence().departed(room_id, principal.user_id);
    }
    publish(
        ctx,
        room_id,
        &room,
        RoomEvent::Left {
            username: principal.username.clone(),
        },
        Some(principal.user_id),
    );
    Ok(vec![Reply::LeftRoom { room }])
}

/// The room a leave is about, as (id, name): the named room, which must exist, or the connection's only room.
async fn room_to_leave(
    ctx: &dyn Context,
    session: &Session,
    name: Option<&str>,
) -> Result<(Uuid, String), Error> {
    match name {
        Some(name) => {
            let room = find_room(ctx, name).await?;
            Ok((room.id, room.name))
        }
        None => crate::actions::room_access::joined_room(ctx, session, None).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestContext;
    use crate::testing::fixtures::*;
    use crate::{ErrorKind, Hub, Store};

    fn named(name: &str) -> LeaveRoomRequest {
        LeaveRoomRequest {
            name: Some(name.into()),
        }
    }

    #[tokio::test]
    async fn leaving_ends_the_membership_and_tells_the_others() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let room = public_room(&ctx, &john, "general").await;
        enter(&ctx, &jane, "general").await;
        drain(&ctx, &[1, 2]);
        let replies = leave_room(&ctx, &jane, named("GENERAL")).await.unwrap();
        assert_eq!(
            replies,
            vec![Reply::LeftRoom {
                room: "general".into()
            }]
        );
        assert_eq!(events(&ctx, 1), vec![left("general", "jane_doe")]);
        assert!(events(&ctx, 2).is_empty());
        assert!(
            !ctx.store
                .is_member(room.id, jane.principal.user_id)
                .await
                .unwrap()
        );
        assert!(ctx.hub.rooms_of(2).is_empty());
        assert_eq!(ctx.hub.online_users(room.id), vec![john.principal.user_id]);
    }

    #[tokio::test]
    async fn leaving_unsubscribes_every_connection_of_the_user() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = user(&ctx, "jane_doe").await;
        let room = public_room(&ctx, &john, "general").await;
        public_room(&ctx, &on(2, &jane), "random").await;
        enter(&ctx, &on(2, &jane), "general").await;
        enter(&ctx, &on(3, &jane), "general").await;
        drain(&ctx, &[1, 2, 3]);
        leave_room(&ctx, &on(3, &jane), named("general"))
            .await
            .unwrap();
        // One leave, one notice, however many connections the user had in the room.
        assert_eq!(events(&ctx, 1), vec![left("general", "jane_doe")]);
        assert!(ctx.hub.rooms_of(3).is_empty());
        assert_eq!(ctx.hub.rooms_of(2).len(), 1, "only 'random' is left");
        assert!(events(&ctx, 2).is_empty());
        assert_eq!(ctx.hub.online_users(room.id), vec![john.principal.user_id]);
        // Through the broker, so that the user's connections on the other nodes leave too.
        assert_eq!(ctx.hub.memberships_ended(), vec![(jane.user_id, room.id)]);
    }

    #[tokio::test]
    async fn an_omitted_name_leaves_the_only_room_joined() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        public_room(&ctx, &john, "general").await;
        enter(&ctx, &jane, "general").await;
        drain(&ctx, &[1]);
        let replies = leave_room(&ctx, &jane, LeaveRoomRequest::default())
            .await
            .unwrap();
        assert_eq!(
            replies,
            vec![Reply::LeftRoom {
                room: "general".into()
            }]
        );
        assert_eq!(events(&ctx, 1), vec![left("general", "jane_doe")]);
    }

    #[tokio::test]
    async fn an_omitted_name_needs_exactly_one_joined_room() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let err = leave_room(&ctx, &john, LeaveRoomRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err, Error::NotInRoom);
        assert_eq!(err.to_string(), "you are not in that room");
        public_room(&ctx, &john, "general").await;
        public_room(&ctx, &john, "random").await;
        let err = leave_room(&ctx, &john, LeaveRoomRequest::default())
            .await
            .unwrap_err();
        assert_eq!(err, Error::RoomRequired);
        assert_eq!(err.kind(), ErrorKind::Invalid);
        assert_eq!(ctx.hub.rooms_of(1).len(), 2);
        assert!(ctx.hub.published().is_empty());
    }

    #[tokio::test]
    async fn a_named_room_must_exist_and_the_user_be_a_member() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        public_room(&ctx, &john, "general").await;
        assert_eq!(
            leave_room(&ctx, &jane, named("nowhere")).await.unwrap_err(),
            Error::RoomNotFound
        );
        assert_eq!(
            leave_room(&ctx, &jane, named("general")).await.unwrap_err(),
            Error::NotInRoom
        );
        assert!(ctx.hub.published().is_empty());
        assert!(events(&ctx, 1).is_empty());
    }

    #[tokio::test]
    async fn leaving_again_tells_the_other_nodes_again() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let room = public_room(&ctx, &john, "general").await;
        enter(&ctx, &jane, "general").await;
        leave_room(&ctx, &jane, named("general")).await.unwrap();
        drain(&ctx, &[1, 2]);
        // No longer a member, nothing subscribed here: refused, yet the other nodes are told again (a socket of hers
        // that missed the first notice leaves now), and nobody here hears of it.
        assert_eq!(
            leave_room(&ctx, &jane, named("general")).await.unwrap_err(),
            Error::NotInRoom
        );
        let jane_in_general = (jane.principal.user_id, room.id);
        assert_eq!(
            ctx.hub.memberships_ended(),
            vec![jane_in_general, jane_in_general]
        );
        assert!(events(&ctx, 1).is_empty());
    }

    #[tokio::test]
    async fn a_member_without_a_subscribed_connection_can_leave() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = user(&ctx, "jane_doe").await;
        let room = private_room(&ctx, &john, "secret").await;
        ctx.store
            .add_member(room.id, jane.user_id, time::OffsetDateTime::UNIX_EPOCH)
            .await
            .unwrap();
        let replies = leave_room(&ctx, &on(2, &jane), named("secret"))
            .await
            .unwrap();
        assert_eq!(
            replies,
            vec![Reply::LeftRoom {
                room: "secret".into()
            }]
        );
        assert!(!ctx.store.is_member(room.id, jane.user_id).await.unwrap());
        assert_eq!(events(&ctx, 1), vec![left("secret", "jane_doe")]);
        // No connection of hers was subscribed here, but one on another node may be: the broker is told all the same.
        assert_eq!(ctx.hub.memberships_ended(), vec![(jane.user_id, room.id)]);
        // Leaving a private room means its password is needed again.
        let err = crate::actions::join_room::join_room(
            &ctx,
            &on(2, &jane),
            crate::actions::join_room::JoinRoomRequest {
                name: "secret".into(),
                password: None,
                after_seq: None,
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err, Error::BadRoomPassword);
    }
}
