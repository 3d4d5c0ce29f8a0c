//! `list_rooms` (WebSocket) and `GET /api/rooms`: every room, with how many users are in it now.

use std::collections::HashMap;

use serde::Deserialize;
use uuid::Uuid;

use crate::context::Context;
use crate::error::Error;
use crate::event::{Reply, RoomView, Session};
use crate::model::{Principal, ReadState};

/// The `data` of a `list_rooms` command: nothing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRoomsRequest {}

/// Reply: the room list, oldest room first.
pub async fn list_rooms(
    ctx: &dyn Context,
    session: &Session,
    _req: ListRoomsRequest,
) -> Result<Vec<Reply>, Error> {
    Ok(vec![Reply::Rooms(
        list_rooms_for(ctx, &session.principal).await?,
    )])
}

/// Every room as `principal` sees it, oldest first, with the number of users subscribed to it and whether
/// `principal` is a member; for the rooms they are a member of, their read point and unread count. The core of both
/// the WebSocket command and the REST route.
pub async fn list_rooms_for(
    ctx: &dyn Context,
    principal: &Principal,
) -> Result<Vec<RoomView>, Error> {
    let rooms = ctx.store().list_rooms().await?;
    let joined: HashMap<Uuid, ReadState> = ctx
        .store()
        .read_state(principal.user_id)
        .await?
        .into_iter()
        .map(|state| (state.room_id, state))
        .collect();
    let mut views = Vec::with_capacity(rooms.len());
    for room in &rooms {
        let online = ctx.presence().online_users(room.id).len();
        let view = match joined.get(&room.id) {
            Some(state) => {
                RoomView::of(room, online, true).with_read_state(state.last_read_seq, state.unread)
            }
            // Another pair's direct room is not theirs to see.
            None if room.direct => continue,
            None => RoomView::of(room, online, false),
        };
        views.push(if room.direct {
            view.with_peer(peer(ctx, room.id, principal).await?)
        } else {
            view
        });
    }
    Ok(views)
}

/// The other member of a direct room.
async fn peer(ctx: &dyn Context, room_id: Uuid, principal: &Principal) -> Result<String, Error> {
    Ok(ctx
        .store()
        .members(room_id)
        .await?
        .into_iter()
        .find(|member| member.user_id != principal.user_id)
        .map(|member| member.username)
        .unwrap_or_else(|| principal.username.clone()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestContext;
    use crate::testing::fixtures::*;
    use crate::{ErrorKind, Hub};
    use time::Duration;

    async fn session(ctx: &TestContext) -> Session {
        on(9, &user(ctx, "reader").await)
    }

    #[tokio::test]
    async fn no_rooms_is_an_empty_list() {
        let ctx = TestContext::new();
        assert_eq!(
            list_rooms(&ctx, &session(&ctx).await, ListRoomsRequest {})
                .await
                .unwrap(),
            vec![Reply::Rooms(Vec::new())]
        );
    }

    #[tokio::test]
    async fn lists_every_room_with_its_online_users() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = user(&ctx, "jane_doe").await;
        let general = public_room(&ctx, &john, "general").await;
        ctx.clock.advance(Duration::seconds(1));
        let secret = private_room(&ctx, &john, "secret").await;
        ctx.hub.unsubscribe(1, secret.id);
        // Two connections of one user count once.
        enter(&ctx, &on(2, &jane), "general").await;
        enter(&ctx, &on(3, &jane), "general").await;

        let replies = list_rooms(&ctx, &session(&ctx).await, ListRoomsRequest {})
            .await
            .unwrap();
        assert_eq!(
            replies,
            vec![Reply::Rooms(vec![
                RoomView::of(&general, 2, false),
                RoomView::of(&secret, 0, false),
            ])]
        );
        // Each user sees which rooms are theirs: jane joined only "general", john owns both.
        let Reply::Rooms(janes) = &list_rooms(&ctx, &on(2, &jane), ListRoomsRequest {})
            .await
            .unwrap()[0]
        else {
            unreachable!()
        };
        let member: Vec<bool> = janes.iter().map(|view| view.member).collect();
        assert_eq!(member, [true, false]);
        let Reply::Rooms(johns) = &list_rooms(&ctx, &john, ListRoomsRequest {}).await.unwrap()[0]
        else {
            unreachable!()
        };
        assert!(johns.iter().all(|view| view.member));
        let Reply::Rooms(views) = &replies[0] else {
            unreachable!()
        };
        assert!(views[1].private);
        assert_eq!(views[0].created_by, john.principal.user_id);
    }

    #[tokio::test]
    async fn members_see_their_read_point_and_unread_count() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let general = public_room(&ctx, &john, "general").await;
        enter(&ctx, &jane, "general").await;
        post(&ctx, &general, &john.principal, &["one", "two", "three"]).await;
        post(&ctx, &general, &jane.principal, &["mine"]).await;
        let view = |replies: Vec<Reply>| match replies.into_iter().next() {
            Some(Reply::Rooms(mut views)) => views.remove(0),
            other => panic!("{other:?}"),
        };
        let janes = view(list_rooms(&ctx, &jane, ListRoomsRequest {}).await.unwrap());
        assert_eq!((janes.last_read_seq, janes.unread), (Some(0), Some(3)));
        crate::actions::mark_read::mark_read(
            &ctx,
            &jane,
            crate::actions::mark_read::MarkReadRequest {
                room: "general".into(),
                seq: 2,
            },
        )
        .await
        .unwrap();
        let janes = view(list_rooms(&ctx, &jane, ListRoomsRequest {}).await.unwrap());
        assert_eq!((janes.last_read_seq, janes.unread), (Some(2), Some(1)));
        let johns = view(list_rooms(&ctx, &john, ListRoomsRequest {}).await.unwrap());
        assert_eq!((johns.last_read_seq, johns.unread), (Some(0), Some(1)));
        let stranger = on(3, &user(&ctx, "stranger").await);
        let theirs = view(
            list_rooms(&ctx, &stranger, ListRoomsRequest {})
                .await
                .unwrap(),
        );
        assert_eq!((theirs.last_read_seq, theirs.unread), (None, None));
    }

    #[tokio::test]
    async fn the_store_being_down_is_unavailable() {
        let ctx = TestContext::new();
        let reader = session(&ctx).await;
        ctx.store.set_unavailable(true);
        let err = list_rooms(&ctx, &reader, ListRoomsRequest {})
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }
}
