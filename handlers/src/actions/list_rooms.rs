//! `list_rooms` (WebSocket) and `GET /api/rooms`: every room, with how many users are in it now.

use std::collections::HashSet;

use serde::Deserialize;
use uuid::Uuid;

use crate::context::Context;
use crate::error::Error;
use crate::event::{Reply, RoomView, Session};
use crate::model::Principal;

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

/// Every room as `principal` sees it, oldest first, with the number of users subscribed to it on this node and
/// whether `principal` is a member. The core of both the WebSocket command and the REST route.
pub async fn list_rooms_for(
    ctx: &dyn Context,
    principal: &Principal,
) -> Result<Vec<RoomView>, Error> {
    let rooms = ctx.store().list_rooms().await?;
    let joined: HashSet<Uuid> = ctx
        .store()
        .rooms_of_member(principal.user_id)
        .await?
        .into_iter()
        .collect();
    Ok(rooms
        .iter()
        .map(|room| {
            let online = ctx.presence().online_users(room.id).len();
            RoomView::of(room, online, joined.contains(&room.id))
        })
        .collect())
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
