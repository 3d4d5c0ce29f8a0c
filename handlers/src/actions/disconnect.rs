//! A WebSocket connection closed: unsubscribe it everywhere. Membership stays: a dropped connection is not a leave.

use crate::actions::publish;
use crate::context::Context;
use crate::event::{RoomEvent, Session};

/// Unsubscribes the session's connection from every room it joined, telling each room's others when it was the
/// user's last connection there.
pub fn disconnect(ctx: &dyn Context, session: &Session) {
    let principal = &session.principal;
    for gone in ctx.hub().unsubscribe_all(session.conn) {
        if gone.last_for_user && ctx.presence().departed(gone.room_id, principal.user_id) {
            publish(
                ctx,
                gone.room_id,
                &gone.room,
                RoomEvent::Left {
                    username: principal.username.clone(),
                },
                Some(principal.user_id),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestContext;
    use crate::testing::fixtures::*;
    use crate::{Hub, Store};

    #[tokio::test]
    async fn the_last_connection_closing_is_a_left_in_every_room() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let general = public_room(&ctx, &john, "general").await;
        public_room(&ctx, &john, "random").await;
        enter(&ctx, &jane, "general").await;
        enter(&ctx, &jane, "random").await;
        drain(&ctx, &[1, 2]);
        disconnect(&ctx, &jane);
        assert_eq!(
            events(&ctx, 1),
            vec![left("general", "jane_doe"), left("random", "jane_doe")]
        );
        assert!(ctx.hub.rooms_of(2).is_empty());
        // Still a member: closing a connection is not leaving.
        assert!(
            ctx.store
                .is_member(general.id, jane.principal.user_id)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn closing_one_of_two_connections_is_not_a_left() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = user(&ctx, "jane_doe").await;
        let room = public_room(&ctx, &john, "general").await;
        enter(&ctx, &on(2, &jane), "general").await;
        enter(&ctx, &on(3, &jane), "general").await;
        drain(&ctx, &[1, 2, 3]);
        disconnect(&ctx, &on(2, &jane));
        assert!(events(&ctx, 1).is_empty());
        assert_eq!(ctx.hub.online_users(room.id).len(), 2);
        disconnect(&ctx, &on(3, &jane));
        assert_eq!(events(&ctx, 1), vec![left("general", "jane_doe")]);
        assert_eq!(ctx.hub.online_users(room.id), vec![john.principal.user_id]);
    }

    #[tokio::test]
    async fn a_connection_in_no_room_closes_quietly() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        disconnect(&ctx, &john);
        disconnect(&ctx, &john);
        assert!(ctx.hub.published().is_empty());
    }
}
