//! `mark_read`: the user has read a room through a seq. The read point is stored per member and never moves
//! backwards; when it moves, every connection of the user in the room is told (`read`: reading on the phone clears
//! the badge on the laptop), and the room's other members get a read receipt (`receipt`, at most one a second per
//! member). Unread counts are computed from the log against this point (see `list_rooms`).

use serde::Deserialize;

use crate::actions::publish;
use crate::actions::room_access::find_room;
use crate::context::Context;
use crate::error::Error;
use crate::event::{Reply, RoomEvent, Session};

/// The `data` of a `mark_read` command.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MarkReadRequest {
    pub room: String,
    /// The newest seq the user has seen; beyond the room's end counts as its end.
    pub seq: i64,
}

/// Moves the member's read point; replies with where it stands (also when it did not move: a lower seq, or one
/// read already). Only members have read points (`forbidden` otherwise).
pub async fn mark_read(
    ctx: &dyn Context,
    session: &Session,
    req: MarkReadRequest,
) -> Result<Vec<Reply>, Error> {
    let principal = &session.principal;
    let room = find_room(ctx, &req.room).await?;
    let point = ctx
        .store()
        .mark_read(room.id, principal.user_id, req.seq)
        .await?
        .ok_or(Error::NotInRoom)?;
    if point.moved {
        let read = RoomEvent::Read {
            user_id: principal.user_id,
            seq: point.seq,
        };
        publish(ctx, room.id, &room.name, read, None);
        ctx.receipts().moved(
            room.id,
            &room.name,
            principal.user_id,
            &principal.username,
            point.seq,
        );
    }
    Ok(vec![Reply::Read {
        room: room.name,
        seq: point.seq,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::testing::TestContext;
    use crate::testing::fixtures::*;

    fn to(room: &str, seq: i64) -> MarkReadRequest {
        MarkReadRequest {
            room: room.into(),
            seq,
        }
    }

    fn read(seq: i64) -> Vec<Reply> {
        vec![Reply::Read {
            room: "general".into(),
            seq,
        }]
    }

    #[tokio::test]
    async fn the_read_point_moves_forward_only_and_tells_the_users_connections_and_the_room() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = user(&ctx, "jane_doe").await;
        let (phone, laptop) = (on(2, &jane), on(3, &jane));
        let room = public_room(&ctx, &john, "general").await;
        enter(&ctx, &phone, "general").await;
        enter(&ctx, &laptop, "general").await;
        post(&ctx, &room, &john.principal, &["one", "two", "three"]).await;
        drain(&ctx, &[1, 2, 3]);

        assert_eq!(mark_read(&ctx, &phone, to("general", 2)).await, Ok(read(2)));
        let told = RoomEvent::Read {
            user_id: jane.user_id,
            seq: 2,
        };
        // Jane's connections hear it (the hub delivers it to hers only); the room hears a receipt.
        for conn in [2, 3] {
            assert_eq!(events(&ctx, conn), vec![("general".into(), told.clone())]);
        }
        assert!(events(&ctx, 1).is_empty(), "not john's");
        assert_eq!(ctx.receipts.sent(), vec![(room.id, "jane_doe".into(), 2)]);

        // Backwards or in place: no move, nobody told, the answer is where it stands.
        for seq in [1, 2] {
            assert_eq!(
                mark_read(&ctx, &laptop, to("GENERAL", seq)).await,
                Ok(read(2))
            );
        }
        assert!(events(&ctx, 2).is_empty());
        // Beyond the end counts as the end.
        assert_eq!(
            mark_read(&ctx, &laptop, to("general", 99)).await,
            Ok(read(3))
        );
        let members = ctx.store.members(room.id).await.unwrap();
        let janes = members.iter().find(|m| m.username == "jane_doe").unwrap();
        assert_eq!(janes.last_read_seq, 3);
        assert_eq!(ctx.receipts.sent().len(), 2);
    }

    #[tokio::test]
    async fn only_members_have_read_points() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let stranger = on(2, &user(&ctx, "stranger").await);
        public_room(&ctx, &john, "general").await;
        assert_eq!(
            mark_read(&ctx, &stranger, to("general", 1)).await,
            Err(Error::NotInRoom)
        );
        assert_eq!(
            mark_read(&ctx, &stranger, to("nowhere", 1)).await,
            Err(Error::RoomNotFound)
        );
    }
}
