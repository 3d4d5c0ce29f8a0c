//! `typing`: tell the others in a room that the user is typing. Ephemeral: nothing is stored.

use serde::Deserialize;

use crate::actions::publish;
use crate::actions::room_access::joined_room;
use crate::context::Context;
use crate::error::Error;
use crate::event::{Reply, RoomEvent, Session};

/// The `data` of a `typing` command.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypingRequest {
    pub room: String,
}

/// Publishes the typing notice to the room's other users (none of the typist's own connections). No reply.
pub async fn typing(
    ctx: &dyn Context,
    session: &Session,
    req: TypingRequest,
) -> Result<Vec<Reply>, Error> {
    let (room_id, room) = joined_room(ctx, session, Some(&req.room)).await?;
    let principal = &session.principal;
    publish(
        ctx,
        room_id,
        &room,
        RoomEvent::Typing {
            username: principal.username.clone(),
        },
        Some(principal.user_id),
    );
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestContext;
    use crate::testing::fixtures::*;

    fn request(room: &str) -> TypingRequest {
        TypingRequest { room: room.into() }
    }

    #[tokio::test]
    async fn the_others_see_the_typist_and_nothing_is_stored() {
        let ctx = TestContext::new();
        let john = user(&ctx, "john_doe").await;
        let jane = on(3, &user(&ctx, "jane_doe").await);
        public_room(&ctx, &on(1, &john), "general").await;
        enter(&ctx, &on(2, &john), "general").await;
        enter(&ctx, &jane, "general").await;
        drain(&ctx, &[1, 2, 3]);
        let replies = typing(&ctx, &on(1, &john), request("General"))
            .await
            .unwrap();
        assert!(replies.is_empty());
        assert_eq!(
            events(&ctx, 3),
            vec![(
                "general".into(),
                RoomEvent::Typing {
                    username: "john_doe".into()
                }
            )]
        );
        assert!(events(&ctx, 1).is_empty());
        assert!(
            events(&ctx, 2).is_empty(),
            "the typist's other connection hears nothing"
        );
        assert_eq!(ctx.store.message_count(), 0);
    }

    #[tokio::test]
    async fn the_connection_must_have_joined_the_room() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        public_room(&ctx, &john, "general").await;
        let err = typing(&ctx, &jane, request("general")).await.unwrap_err();
        assert_eq!(err, Error::NotInRoom);
        let err = typing(&ctx, &jane, request("nowhere")).await.unwrap_err();
        assert_eq!(err, Error::RoomNotFound);
        assert!(ctx.hub.published().is_empty());
    }
}
