//! `delete_message`: the author, or the room's owner, deletes a message. The deletion is an entry of the room's log
//! with its own seq (`message_deleted`); the message's content, and that of its edits, is erased from the store.

use serde::Deserialize;

use crate::actions::room_access::{is_direct_name, joined_room};
use crate::actions::submit::submit;
use crate::context::Context;
use crate::error::Error;
use crate::event::{PendingReplies, Session};
use crate::model::{Change, Role};

/// The `data` of a `delete_message` command.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteMessageRequest {
    pub room: String,
    /// The seq of the message to delete.
    pub seq: i64,
}

/// Puts the deletion in line; the log refuses it when the message does not exist or is deleted already
/// (`not_found`), or when the user is neither its author nor the room's owner (`forbidden`).
pub async fn delete_message(
    ctx: &dyn Context,
    session: &Session,
    req: DeleteMessageRequest,
) -> Result<PendingReplies, Error> {
    let (room_id, room) = joined_room(ctx, session, Some(&req.room)).await?;
    // Moderators and up delete anyone's message; a direct room has no such powers (whoever opened it is only its
    // first member). Its name says which it is: no read of the room.
    let moderates = !is_direct_name(&room)
        && ctx
            .store()
            .role_of(room_id, session.principal.user_id)
            .await?
            .is_some_and(|role| role >= Role::Moderator);
    let change = Change::Delete {
        target_seq: req.seq,
        any_author: moderates,
    };
    submit(ctx, session, room_id, room, change, None).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::actions::edit_message::{EditMessageRequest, edit_message};
    use crate::event::{Reply, RoomEvent};
    use crate::model::{Body, HistoryQuery, LogEntry};
    use crate::testing::TestContext;
    use crate::testing::fixtures::*;

    async fn delete(ctx: &TestContext, session: &Session, seq: i64) -> Result<Vec<Reply>, Error> {
        let req = DeleteMessageRequest {
            room: "general".into(),
            seq,
        };
        delete_message(ctx, session, req).await?.await
    }

    fn ack(seq: i64) -> Vec<Reply> {
        vec![Reply::Ack {
            room: "general".into(),
            seq,
        }]
    }

    #[tokio::test]
    async fn the_author_deletes_and_the_content_is_gone_everywhere() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let room = public_room(&ctx, &john, "general").await;
        enter(&ctx, &jane, "general").await;
        post(&ctx, &room, &john.principal, &["secret"]).await;
        let req = EditMessageRequest {
            room: "general".into(),
            seq: 1,
            content: "more secret".into(),
        };
        edit_message(&ctx, &john, req).await.unwrap().await.unwrap();
        drain(&ctx, &[1, 2]);

        assert_eq!(delete(&ctx, &john, 1).await, Ok(ack(3)));
        let events = events(&ctx, 2);
        let [(_, RoomEvent::Entry(entry))] = events.as_slice() else {
            panic!("one entry, got {events:?}");
        };
        assert_eq!(entry.body, Body::Delete { target_seq: 1 });
        // Erased in the store, the edit's text too: only tombstones are left.
        let log = ctx.store.log_after(room.id, 0, 10).await.unwrap();
        assert!(
            log.iter()
                .all(|entry| entry.content().is_none_or(str::is_empty)),
            "{log:?}"
        );
        assert!(log[0].message().unwrap().deleted);
        let page = ctx
            .store
            .history(room.id, &HistoryQuery::latest(10))
            .await
            .unwrap();
        assert!(page.messages[0].entry.message().unwrap().deleted);
        assert_eq!(
            delete(&ctx, &john, 1).await,
            Err(Error::MessageDeleted { seq: 1 })
        );
    }

    #[tokio::test]
    async fn the_owner_deletes_anyones_message_and_members_only_their_own() {
        let ctx = TestContext::new();
        let owner = on(1, &user(&ctx, "owner").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let bob = on(3, &user(&ctx, "bob").await);
        let room = public_room(&ctx, &owner, "general").await;
        enter(&ctx, &jane, "general").await;
        enter(&ctx, &bob, "general").await;
        let posted: Vec<LogEntry> = post(&ctx, &room, &jane.principal, &["one", "two"]).await;
        assert_eq!(posted.len(), 2);
        assert_eq!(delete(&ctx, &bob, 1).await, Err(Error::NotAuthorOrOwner));
        assert_eq!(delete(&ctx, &owner, 1).await, Ok(ack(3)));
        assert_eq!(delete(&ctx, &jane, 2).await, Ok(ack(4)));
        assert_eq!(
            delete(&ctx, &jane, 9).await,
            Err(Error::MessageNotFound { seq: 9 })
        );
    }

    #[tokio::test]
    async fn in_a_direct_room_each_deletes_only_their_own() {
        use crate::actions::open_dm::{OpenDmRequest, open_dm};
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        // The hub knows a connection once it is in some room.
        public_room(&ctx, &john, "lobby").await;
        enter(&ctx, &jane, "lobby").await;
        let req = OpenDmRequest {
            username: "jane_doe".into(),
        };
        open_dm(&ctx, &john, req).await.unwrap();
        let room = ctx
            .store
            .room_by_name("dm:jane_doe:john_doe")
            .await
            .unwrap()
            .unwrap();
        post(&ctx, &room, &jane.principal, &["mine"]).await;
        let gone = DeleteMessageRequest {
            room: room.name.clone(),
            seq: 1,
        };
        let refused = delete_message(&ctx, &john, gone.clone())
            .await
            .unwrap()
            .await;
        assert_eq!(
            refused,
            Err(Error::NotAuthorOrOwner),
            "the opener is no owner of jane's words"
        );
        assert!(
            delete_message(&ctx, &jane, gone)
                .await
                .unwrap()
                .await
                .is_ok()
        );
    }
}
