//! `delete_room` (WebSocket) and `DELETE /api/rooms/{name}`: the owner deletes a room with its history; every
//! subscribed connection is told and unsubscribed.

use serde::Deserialize;

use crate::actions::publish;
use crate::actions::room_access::find_room;
use crate::context::Context;
use crate::error::Error;
use crate::event::{Reply, RoomEvent, Session};
use crate::model::{Principal, SecurityEvent};

/// The `data` of a `delete_room` command.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteRoomRequest {
    pub name: String,
}

/// Deletes the room. No reply of its own: the owner, if subscribed, hears the deletion like everyone else.
pub async fn delete_room(
    ctx: &dyn Context,
    session: &Session,
    req: DeleteRoomRequest,
) -> Result<Vec<Reply>, Error> {
    delete_room_for(ctx, &session.principal, &req.name).await?;
    Ok(Vec::new())
}

/// Deletes the room called `name` if `principal` owns it: the store forgets it (with messages and memberships), then
/// its subscribers are told and unsubscribed. The core of both the WebSocket command and the REST route.
pub async fn delete_room_for(
    ctx: &dyn Context,
    principal: &Principal,
    name: &str,
) -> Result<(), Error> {
    let room = find_room(ctx, name).await?;
    if room.direct {
        return Err(Error::DirectRoom);
    }
    if room.owner_id != principal.user_id {
        return Err(Error::NotOwner);
    }
    // Deleted first: if the store fails, nobody has been told a deletion that did not happen.
    if !ctx.store().delete_room(room.id).await? {
        // Someone else deleted it in between, and told the members.
        return Err(Error::RoomNotFound);
    }
    ctx.guard().record(
        principal,
        SecurityEvent::RoomDeleted {
            room: room.name.clone(),
        },
    );
    publish(
        ctx,
        room.id,
        &room.name,
        RoomEvent::Deleted {
            by: principal.username.clone(),
        },
        None,
    );
    ctx.hub().drop_room(room.id);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::NewEntry;
    use crate::testing::TestContext;
    use crate::testing::fixtures::*;
    use crate::{Clock, ErrorKind, Hub, Store};
    use uuid::Uuid;

    fn request(name: &str) -> DeleteRoomRequest {
        DeleteRoomRequest { name: name.into() }
    }

    fn deleted(room: &str, by: &str) -> (String, RoomEvent) {
        (room.into(), RoomEvent::Deleted { by: by.into() })
    }

    #[tokio::test]
    async fn the_owner_deletes_and_everyone_subscribed_is_told() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = user(&ctx, "jane_doe").await;
        let room = public_room(&ctx, &john, "general").await;
        public_room(&ctx, &john, "random").await;
        enter(&ctx, &on(2, &jane), "general").await;
        enter(&ctx, &on(3, &jane), "general").await;
        ctx.store
            .append_messages(&[NewEntry {
                id: Uuid::now_v7(),
                room_id: room.id,
                user_id: jane.user_id,
                change: crate::model::Change::Post {
                    content: "hi".into(),
                    reply_to: None,
                },
                client_msg_id: None,
                created_at: ctx.clock.now(),
            }])
            .await
            .unwrap();
        drain(&ctx, &[1, 2, 3]);

        let replies = delete_room(&ctx, &john, request("GENERAL")).await.unwrap();
        assert!(replies.is_empty());
        for conn in [1, 2, 3] {
            assert_eq!(
                events(&ctx, conn),
                vec![deleted("general", "john_doe")],
                "conn {conn}"
            );
        }
        assert_eq!(ctx.hub.published().last().unwrap().skip_user, None);
        assert!(ctx.store.room_by_name("general").await.unwrap().is_none());
        assert_eq!(ctx.store.message_count(), 0);
        assert!(!ctx.store.is_member(room.id, jane.user_id).await.unwrap());
        assert!(ctx.hub.online_users(room.id).is_empty());
        assert!(ctx.hub.rooms_of(2).is_empty());
        assert_eq!(ctx.hub.rooms_of(1).len(), 1, "the owner stays in 'random'");
        assert_eq!(
            ctx.guard.events().last(),
            Some(&(
                john.principal.user_id,
                SecurityEvent::RoomDeleted {
                    room: "general".into()
                }
            )),
            "the deletion is audited"
        );
        // The name is free again.
        public_room(&ctx, &john, "general").await;
    }

    #[tokio::test]
    async fn only_the_owner_may_delete() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        public_room(&ctx, &john, "general").await;
        enter(&ctx, &jane, "general").await;
        drain(&ctx, &[1, 2]);
        let err = delete_room(&ctx, &jane, request("general"))
            .await
            .unwrap_err();
        assert_eq!(err, Error::NotOwner);
        assert_eq!(err.to_string(), "only the room owner can delete it");
        assert_eq!(err.kind(), ErrorKind::Forbidden);
        assert!(ctx.store.room_by_name("general").await.unwrap().is_some());
        assert!(events(&ctx, 1).is_empty());
        assert_eq!(ctx.hub.rooms_of(2).len(), 1);
        let deletions = ctx
            .guard
            .events()
            .into_iter()
            .filter(|(_, event)| matches!(event, SecurityEvent::RoomDeleted { .. }))
            .count();
        assert_eq!(deletions, 0, "a refused deletion is not audited as one");
    }

    #[tokio::test]
    async fn an_unknown_room_is_not_found() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let err = delete_room(&ctx, &john, request("nowhere"))
            .await
            .unwrap_err();
        assert_eq!(err, Error::RoomNotFound);
        assert!(ctx.hub.published().is_empty());
    }

    #[tokio::test]
    async fn the_store_being_down_is_unavailable_and_tells_nobody() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        public_room(&ctx, &john, "general").await;
        ctx.store.set_unavailable(true);
        let err = delete_room(&ctx, &john, request("general"))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(ctx.hub.published().is_empty());
        assert_eq!(ctx.hub.rooms_of(1).len(), 1);
    }
}
