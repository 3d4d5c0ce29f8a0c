//! `react`: the user adds a reaction (one emoji or a `:short_name:`) to a message. Each reaction is an entry of the
//! room's log with its own seq (`reaction` with `added: true`); a user reacts with one emoji once per message.

use serde::Deserialize;

use crate::actions::room_access::joined_room;
use crate::actions::submit::submit;
use crate::context::Context;
use crate::error::Error;
use crate::event::{PendingReplies, Session};
use crate::model::Change;
use crate::validate;

/// The `data` of a `react` or `unreact` command.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReactionRequest {
    pub room: String,
    /// The seq of the message.
    pub seq: i64,
    pub emoji: String,
}

/// Validates the emoji and puts the reaction in line. A reaction the user made already is acknowledged with the
/// seq of the entry that made it and stores nothing; the log refuses a message that does not exist or was deleted
/// (`not_found`) and a new emoji past the message's distinct-emoji limit (`forbidden`).
pub async fn react(
    ctx: &dyn Context,
    session: &Session,
    req: ReactionRequest,
) -> Result<PendingReplies, Error> {
    let (room_id, room) = joined_room(ctx, session, Some(&req.room)).await?;
    let emoji = validate::emoji(&req.emoji)?;
    let change = Change::React {
        target_seq: req.seq,
        emoji: emoji.to_owned(),
        max_emojis: ctx.limits().max_reactions_per_message,
    };
    submit(ctx, session, room_id, room, change, None).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::actions::unreact::unreact;
    use crate::event::{Reply, RoomEvent};
    use crate::model::{Body, HistoryQuery, ReactionCount};
    use crate::testing::TestContext;
    use crate::testing::fixtures::*;

    fn to(seq: i64, emoji: &str) -> ReactionRequest {
        ReactionRequest {
            room: "general".into(),
            seq,
            emoji: emoji.into(),
        }
    }

    async fn add(
        ctx: &TestContext,
        s: &Session,
        seq: i64,
        emoji: &str,
    ) -> Result<Vec<Reply>, Error> {
        react(ctx, s, to(seq, emoji)).await?.await
    }

    async fn remove(
        ctx: &TestContext,
        s: &Session,
        seq: i64,
        emoji: &str,
    ) -> Result<Vec<Reply>, Error> {
        unreact(ctx, s, to(seq, emoji)).await?.await
    }

    fn ack(seq: i64) -> Vec<Reply> {
        vec![Reply::Ack {
            room: "general".into(),
            seq,
        }]
    }

    #[tokio::test]
    async fn reactions_are_entries_counted_per_emoji_with_me_for_the_reader() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let room = public_room(&ctx, &john, "general").await;
        enter(&ctx, &jane, "general").await;
        post(&ctx, &room, &john.principal, &["ship it"]).await;
        drain(&ctx, &[1, 2]);

        assert_eq!(add(&ctx, &jane, 1, "👍").await, Ok(ack(2)));
        let seen = events(&ctx, 1);
        let [(_, RoomEvent::Entry(entry))] = seen.as_slice() else {
            panic!("one entry, got {seen:?}");
        };
        assert_eq!(entry.username, "jane_doe");
        assert_eq!(
            entry.body,
            Body::Reaction {
                target_seq: 1,
                emoji: "👍".into(),
                added: true
            }
        );
        // A repeat is a no-op, acknowledged with the entry that made it.
        assert_eq!(add(&ctx, &jane, 1, "👍").await, Ok(ack(2)));
        assert!(events(&ctx, 1).is_empty());
        assert_eq!(add(&ctx, &john, 1, "👍").await, Ok(ack(3)));
        assert_eq!(add(&ctx, &john, 1, ":rocket:").await, Ok(ack(4)));
        let mut query = HistoryQuery::latest(10);
        query.viewer = Some(jane.principal.user_id);
        let page = ctx.store.history(room.id, &query).await.unwrap();
        assert_eq!(
            page.messages[0].reactions,
            vec![
                ReactionCount {
                    emoji: "👍".into(),
                    count: 2,
                    me: true
                },
                ReactionCount {
                    emoji: ":rocket:".into(),
                    count: 1,
                    me: false
                },
            ]
        );
        assert_eq!(remove(&ctx, &jane, 1, "👍").await, Ok(ack(5)));
        assert_eq!(
            remove(&ctx, &jane, 1, "👍").await,
            Err(Error::ReactionNotFound)
        );
        let page = ctx.store.history(room.id, &query).await.unwrap();
        assert_eq!(page.messages[0].reactions[0].count, 1);
        assert!(!page.messages[0].reactions[0].me);
    }

    #[tokio::test]
    async fn emojis_are_validated_and_bounded_per_message() {
        let mut ctx = TestContext::new();
        ctx.limits.max_reactions_per_message = 2;
        let john = on(1, &user(&ctx, "john_doe").await);
        let room = public_room(&ctx, &john, "general").await;
        post(&ctx, &room, &john.principal, &["hi"]).await;
        let bad = add(&ctx, &john, 1, "not an emoji").await.unwrap_err();
        assert_eq!(bad.code(), "invalid_emoji");
        add(&ctx, &john, 1, "👍").await.unwrap();
        add(&ctx, &john, 1, "🎉").await.unwrap();
        assert_eq!(
            add(&ctx, &john, 1, "🚀").await,
            Err(Error::TooManyReactions { max: 2 })
        );
        assert_eq!(
            add(&ctx, &john, 5, "👍").await,
            Err(Error::MessageNotFound { seq: 5 })
        );
        assert_eq!(
            add(&ctx, &john, 2, "👍").await,
            Err(Error::MessageNotFound { seq: 2 }),
            "a reaction is not a message"
        );
    }
}
