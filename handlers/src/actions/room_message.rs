//! `room_message`: post a chat message to a room the connection has joined. It is delivered, to every subscribed
//! connection including the sender's, only once it is stored; the sender gets an ack with its seq.

use serde::Deserialize;

use crate::actions::room_access::{is_direct_name, joined_room, not_blocked_in_direct};
use crate::actions::submit::submit;
use crate::context::Context;
use crate::error::Error;
use crate::event::{PendingReplies, Session};
use crate::model::Change;
use crate::validate;

/// The `data` of a `room_message` command.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoomMessageRequest {
    /// The room; omitted, the only room this connection has joined.
    pub room: Option<String>,
    pub content: String,
    /// Makes posting idempotent: the same (user, client_msg_id) is stored and delivered once.
    pub client_msg_id: Option<String>,
    /// The seq of the room's message this one replies to.
    pub reply_to: Option<i64>,
}

/// Validates the message and puts it in line to be stored, returning at once with the future ack, so one connection
/// can have several messages in flight: the message log stores them in the order submitted and, once each is
/// committed, delivers it to the room in seq order (to the sender's connections too), then the ack resolves. A repeat
/// of an earlier `client_msg_id` publishes nothing and is acknowledged with the original's seq. A reply names a
/// message of the room that exists and is not deleted, or is refused with `not_found` once the log sees it.
pub async fn room_message(
    ctx: &dyn Context,
    session: &Session,
    req: RoomMessageRequest,
) -> Result<PendingReplies, Error> {
    let (room_id, room) = joined_room(ctx, session, req.room.as_deref()).await?;
    if is_direct_name(&room) {
        not_blocked_in_direct(ctx, room_id, session.principal.user_id).await?;
    }
    let content = validate::message_content(&req.content, ctx.limits().max_message_bytes)?;
    let client_msg_id = req
        .client_msg_id
        .as_deref()
        .map(validate::client_msg_id)
        .transpose()?;
    let change = Change::Post {
        content: content.to_owned(),
        reply_to: req.reply_to,
    };
    let client_msg_id = client_msg_id.map(str::to_owned);
    submit(ctx, session, room_id, room, change, client_msg_id).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Reply, RoomEvent};
    use crate::model::{Body, MessageBody};
    use crate::model::{HistoryQuery, LogEntry};
    use crate::testing::TestContext;
    use crate::testing::fixtures::*;
    use crate::{Clock, ErrorKind, Store};
    use uuid::Uuid;

    /// Posts and awaits the ack, as a session does.
    async fn message(
        ctx: &TestContext,
        session: &Session,
        req: RoomMessageRequest,
    ) -> Result<Vec<Reply>, Error> {
        room_message(ctx, session, req).await?.await
    }

    fn to(room: Option<&str>, content: &str, client_msg_id: Option<&str>) -> RoomMessageRequest {
        RoomMessageRequest {
            room: room.map(Into::into),
            content: content.into(),
            client_msg_id: client_msg_id.map(Into::into),
            reply_to: None,
        }
    }

    fn ack(room: &str, seq: i64) -> Vec<Reply> {
        vec![Reply::Ack {
            room: room.into(),
            seq,
        }]
    }

    async fn stored(ctx: &TestContext, room: Uuid) -> Vec<LogEntry> {
        let mut page = ctx
            .store
            .history(room, &HistoryQuery::latest(200))
            .await
            .unwrap();
        page.messages.reverse();
        page.messages.into_iter().map(|m| m.entry).collect()
    }

    #[tokio::test]
    async fn a_stored_message_reaches_every_subscriber_and_is_acked() {
        let ctx = TestContext::new();
        let john = user(&ctx, "john_doe").await;
        let jane = on(3, &user(&ctx, "jane_doe").await);
        let room = public_room(&ctx, &on(1, &john), "general").await;
        enter(&ctx, &on(2, &john), "general").await;
        enter(&ctx, &jane, "general").await;
        drain(&ctx, &[1, 2, 3]);

        let replies = message(
            &ctx,
            &on(1, &john),
            to(Some("general"), "hello there", Some("k1")),
        )
        .await
        .unwrap();
        assert_eq!(replies, ack("general", 1));
        let messages = stored(&ctx, room.id).await;
        assert_eq!(messages.len(), 1);
        let expected = LogEntry {
            id: messages[0].id,
            room_id: room.id,
            seq: 1,
            user_id: john.user_id,
            username: "john_doe".into(),
            client_msg_id: Some("k1".into()),
            created_at: ctx.clock.now(),
            body: Body::Message(MessageBody::posted("hello there", None)),
        };
        assert_eq!(messages[0], expected);
        // The sender's own connections see it too, the sending one included.
        for conn in [1, 2, 3] {
            assert_eq!(
                events(&ctx, conn),
                vec![("general".into(), RoomEvent::Entry(expected.clone()))],
                "conn {conn}"
            );
        }
        let published = ctx.hub.published();
        let last = published.last().unwrap();
        assert_eq!(last.skip_user, None);
        assert_eq!(last.at, ctx.clock.now());
    }

    #[tokio::test]
    async fn a_reply_names_a_live_message_of_the_room() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        public_room(&ctx, &john, "general").await;
        message(&ctx, &john, to(None, "question?", None))
            .await
            .unwrap();
        let reply = |to_seq| RoomMessageRequest {
            reply_to: Some(to_seq),
            ..to(None, "answer", None)
        };
        assert_eq!(message(&ctx, &john, reply(1)).await, Ok(ack("general", 2)));
        let (_, RoomEvent::Entry(entry)) = events(&ctx, 1).pop().unwrap() else {
            panic!("an entry")
        };
        assert_eq!(entry.message().and_then(|m| m.reply_to), Some(1));
        assert_eq!(
            message(&ctx, &john, reply(7)).await,
            Err(Error::MessageNotFound { seq: 7 })
        );
        assert_eq!(
            ctx.store.message_count(),
            2,
            "a refused reply stores nothing"
        );
    }

    #[tokio::test]
    async fn seqs_follow_each_other() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        public_room(&ctx, &john, "general").await;
        for seq in 1..=3 {
            let replies = message(&ctx, &john, to(None, "again", None)).await.unwrap();
            assert_eq!(replies, ack("general", seq));
        }
    }

    #[tokio::test]
    async fn a_repeated_client_msg_id_is_stored_once_and_acked_with_the_first_seq() {
        let ctx = TestContext::new();
        let john = user(&ctx, "john_doe").await;
        let jane = on(3, &user(&ctx, "jane_doe").await);
        let room = public_room(&ctx, &on(1, &john), "general").await;
        enter(&ctx, &jane, "general").await;
        message(&ctx, &on(1, &john), to(None, "first", None))
            .await
            .unwrap();
        let first = message(&ctx, &on(1, &john), to(None, "hello", Some("k1")))
            .await
            .unwrap();
        assert_eq!(first, ack("general", 2));
        drain(&ctx, &[1, 3]);
        let published = ctx.hub.published().len();

        // A retry after a reconnect, on another connection of the same user.
        enter(&ctx, &on(2, &john), "general").await;
        let repeat = message(
            &ctx,
            &on(2, &john),
            to(Some("general"), "hello", Some("k1")),
        )
        .await
        .unwrap();
        assert_eq!(repeat, ack("general", 2));
        assert_eq!(ctx.store.message_count(), 2);
        assert_eq!(
            ctx.hub.published().len(),
            published,
            "nothing is delivered twice"
        );
        assert!(events(&ctx, 3).is_empty());

        // The key is the sender's: another user may use the same one.
        let other = message(&ctx, &jane, to(None, "hello", Some("k1")))
            .await
            .unwrap();
        assert_eq!(other, ack("general", 3));
        assert_eq!(stored(&ctx, room.id).await.len(), 3);
    }

    #[tokio::test]
    async fn a_client_msg_id_spent_in_another_room_is_refused() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        public_room(&ctx, &john, "general").await;
        public_room(&ctx, &john, "random").await;
        message(&ctx, &john, to(Some("general"), "hello", Some("k1")))
            .await
            .unwrap();
        let err = message(&ctx, &john, to(Some("random"), "hello", Some("k1")))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Invalid);
        assert!(err.to_string().contains("client_msg_id"), "{err}");
        assert_eq!(ctx.store.message_count(), 1);
    }

    #[tokio::test]
    async fn the_room_is_resolved_among_the_joined_ones() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let cases = [
            (None, Error::NotInRoom),
            (Some("nowhere"), Error::RoomNotFound),
        ];
        for (room, expected) in cases {
            let err = message(&ctx, &john, to(room, "hi", None))
                .await
                .unwrap_err();
            assert_eq!(err, expected, "{room:?}");
        }
        public_room(&ctx, &john, "general").await;
        public_room(&ctx, &john, "random").await;
        let err = message(&ctx, &john, to(None, "hi", None))
            .await
            .unwrap_err();
        assert_eq!(err, Error::RoomRequired);
        // A member of a room whose connection has not joined it is not in it.
        let err = message(&ctx, &jane, to(Some("general"), "hi", None))
            .await
            .unwrap_err();
        assert_eq!(err, Error::NotInRoom);
        assert_eq!(ctx.store.message_count(), 0);
        let replies = message(&ctx, &john, to(Some("RANDOM"), "hi", None))
            .await
            .unwrap();
        assert_eq!(replies, ack("random", 1));
    }

    #[tokio::test]
    async fn bad_content_is_refused_and_nothing_stored() {
        let mut ctx = TestContext::new();
        ctx.limits.max_message_bytes = 8;
        let john = on(1, &user(&ctx, "john_doe").await);
        public_room(&ctx, &john, "general").await;
        let cases = [
            ("", "invalid_message", "message must not be empty"),
            ("  \n\t ", "invalid_message", "message must not be empty"),
            (
                "a\0b",
                "invalid_message",
                "message must not contain NUL characters",
            ),
            (
                "123456789",
                "message_too_large",
                "message too large (max 8 bytes)",
            ),
            // 3 × 3 bytes: the limit counts bytes, not characters.
            (
                "€€€",
                "message_too_large",
                "message too large (max 8 bytes)",
            ),
        ];
        for (content, code, text) in cases {
            let err = message(&ctx, &john, to(None, content, None))
                .await
                .unwrap_err();
            assert_eq!(err.code(), code, "{content:?}");
            assert_eq!(err.to_string(), text, "{content:?}");
        }
        let err = message(&ctx, &john, to(None, "12345678", None))
            .await
            .map(|_| ());
        assert_eq!(err, Ok(()), "exactly the limit passes");
        assert_eq!(ctx.store.message_count(), 1);
    }

    #[tokio::test]
    async fn oversize_content_has_the_configured_limit_in_its_error() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        public_room(&ctx, &john, "general").await;
        let err = message(&ctx, &john, to(None, &"x".repeat(65_537), None))
            .await
            .unwrap_err();
        assert_eq!(err, Error::MessageTooLarge { max: 65_536 });
        assert_eq!(ctx.store.message_count(), 0);
        assert!(ctx.hub.published().is_empty());
    }

    #[tokio::test]
    async fn bad_client_msg_ids_are_refused() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        public_room(&ctx, &john, "general").await;
        for key in ["", &"k".repeat(65), "a\nb"] {
            let err = message(&ctx, &john, to(None, "hi", Some(key)))
                .await
                .unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Invalid, "{key:?}");
        }
        assert_eq!(ctx.store.message_count(), 0);
        assert!(ctx.hub.published().is_empty());
    }

    #[tokio::test]
    async fn a_failing_store_publishes_nothing() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        public_room(&ctx, &john, "general").await;
        enter(&ctx, &jane, "general").await;
        drain(&ctx, &[1, 2]);
        ctx.store.set_unavailable(true);
        let err = message(&ctx, &john, to(None, "hi", None))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(events(&ctx, 1).is_empty());
        assert!(events(&ctx, 2).is_empty());
    }
}
