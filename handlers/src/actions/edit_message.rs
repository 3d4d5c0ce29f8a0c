//! `edit_message`: the author replaces the content of one of their messages. The edit is an entry of the room's
//! log with its own seq, delivered to the room (`message_edited`) and acknowledged after commit like a post.

use serde::Deserialize;
use time::Duration;

use crate::actions::room_access::joined_room;
use crate::actions::submit::submit;
use crate::context::Context;
use crate::error::Error;
use crate::event::{PendingReplies, Session};
use crate::model::Change;
use crate::validate;

/// The `data` of an `edit_message` command.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditMessageRequest {
    pub room: String,
    /// The seq of the message to edit.
    pub seq: i64,
    /// The new content, validated like a message's.
    pub content: String,
}

/// Validates the new content and puts the edit in line. The log refuses it (once it sees it, in order with
/// everything else in the room) when the message does not exist (`not_found`), was deleted (`not_found`), is
/// someone else's (`forbidden`) or is older than the edit window (`forbidden`).
pub async fn edit_message(
    ctx: &dyn Context,
    session: &Session,
    req: EditMessageRequest,
) -> Result<PendingReplies, Error> {
    let (room_id, room) = joined_room(ctx, session, Some(&req.room)).await?;
    let content = validate::message_content(&req.content, ctx.limits().max_message_bytes)?;
    let window = ctx.limits().edit_window_secs;
    let not_before = (window > 0).then(|| {
        let window = Duration::seconds(i64::try_from(window).unwrap_or(i64::MAX));
        ctx.clock()
            .now()
            .checked_sub(window)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
    });
    let change = Change::Edit {
        target_seq: req.seq,
        content: content.to_owned(),
        not_before,
    };
    submit(ctx, session, room_id, room, change, None).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::room_message::{RoomMessageRequest, room_message};
    use crate::event::{Reply, RoomEvent};
    use crate::model::{Body, HistoryQuery};
    use crate::testing::TestContext;
    use crate::testing::fixtures::*;
    use crate::{Clock, Store};

    async fn edit(
        ctx: &TestContext,
        session: &Session,
        seq: i64,
        content: &str,
    ) -> Result<Vec<Reply>, Error> {
        let req = EditMessageRequest {
            room: "general".into(),
            seq,
            content: content.into(),
        };
        edit_message(ctx, session, req).await?.await
    }

    async fn say(ctx: &TestContext, session: &Session, content: &str) {
        let req = RoomMessageRequest {
            room: Some("general".into()),
            content: content.into(),
            ..RoomMessageRequest::default()
        };
        room_message(ctx, session, req)
            .await
            .unwrap()
            .await
            .unwrap();
    }

    fn ack(seq: i64) -> Vec<Reply> {
        vec![Reply::Ack {
            room: "general".into(),
            seq,
        }]
    }

    #[tokio::test]
    async fn the_author_edits_and_everyone_sees_the_edit_as_a_new_entry() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let room = public_room(&ctx, &john, "general").await;
        enter(&ctx, &jane, "general").await;
        say(&ctx, &john, "helo").await;
        drain(&ctx, &[1, 2]);

        assert_eq!(edit(&ctx, &john, 1, "hello").await, Ok(ack(2)));
        for conn in [1, 2] {
            let events = events(&ctx, conn);
            let [(room_name, RoomEvent::Entry(entry))] = events.as_slice() else {
                panic!("one entry, got {events:?}");
            };
            assert_eq!(room_name, "general");
            assert_eq!((entry.seq, entry.username.as_str()), (2, "john_doe"));
            assert_eq!(
                entry.body,
                Body::Edit {
                    target_seq: 1,
                    content: "hello".into()
                }
            );
        }
        let page = ctx
            .store
            .history(room.id, &HistoryQuery::latest(10))
            .await
            .unwrap();
        let message = page.messages[0].entry.message().unwrap();
        assert_eq!(message.content, "hello");
        assert_eq!(message.edited_at, Some(ctx.clock.now()));
        assert_eq!(page.messages.len(), 1, "an edit is not a message");
    }

    #[tokio::test]
    async fn only_the_author_edits_an_existing_live_message() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        public_room(&ctx, &john, "general").await;
        enter(&ctx, &jane, "general").await;
        say(&ctx, &john, "mine").await;
        assert_eq!(edit(&ctx, &jane, 1, "yours").await, Err(Error::NotAuthor));
        assert_eq!(
            edit(&ctx, &john, 7, "nothing").await,
            Err(Error::MessageNotFound { seq: 7 })
        );
        edit(&ctx, &john, 1, "mine!").await.unwrap();
        // An edit is an entry, not a message: it cannot be edited itself.
        assert_eq!(
            edit(&ctx, &john, 2, "again").await,
            Err(Error::MessageNotFound { seq: 2 })
        );
        let refused = edit(&ctx, &john, 1, " ").await.unwrap_err();
        assert_eq!(refused.code(), "invalid_message");
        let stranger = on(3, &user(&ctx, "stranger").await);
        assert_eq!(edit(&ctx, &stranger, 1, "x").await, Err(Error::NotInRoom));
        assert_eq!(ctx.store.message_count(), 2, "refusals store nothing");
    }

    #[tokio::test]
    async fn the_edit_window_closes() {
        let mut ctx = TestContext::new();
        ctx.limits.edit_window_secs = 60;
        let john = on(1, &user(&ctx, "john_doe").await);
        public_room(&ctx, &john, "general").await;
        say(&ctx, &john, "soon stale").await;
        ctx.clock.advance(Duration::seconds(60));
        assert_eq!(edit(&ctx, &john, 1, "just in time").await, Ok(ack(2)));
        ctx.clock.advance(Duration::seconds(1));
        let late = edit(&ctx, &john, 1, "too late").await.unwrap_err();
        assert_eq!(late, Error::EditWindowClosed { secs: 60 });
        assert_eq!(
            late.to_string(),
            "messages can only be edited within 60 seconds of posting"
        );
    }
}
