//! `join_room`: become a member of a room (once, stored) and subscribe this connection to it, optionally replaying
//! the messages missed since a known seq.

use serde::Deserialize;

use crate::actions::rooms::{find_room, publish, room_password_matches};
use crate::context::Context;
use crate::error::Error;
use crate::event::{Reply, RoomEvent, Session};
use crate::model::{HistoryQuery, Principal, Room, StoredMessage};

/// How many messages one store read of a replay fetches.
const REPLAY_PAGE: u32 = 200;

/// The `data` of a `join_room` command.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRequest {
    pub name: String,
    /// A private room's password; members rejoin without it.
    pub password: Option<String>,
    /// The last seq the client saw: every stored message after it is replayed.
    pub after_seq: Option<i64>,
}

/// Joins the room: checks access, records the membership, subscribes the connection and tells the others when this
/// is the user's first connection in the room. Replies: the welcome, then the replayed messages, oldest first.
pub async fn join(
    ctx: &dyn Context,
    session: &Session,
    req: JoinRequest,
) -> Result<Vec<Reply>, Error> {
    let principal = &session.principal;
    let room = find_room(ctx, &req.name).await?;
    admit(ctx, principal, &room, req.password.as_deref()).await?;
    ctx.store()
        .add_member(room.id, principal.user_id, ctx.clock().now())
        .await?;
    let subscribed = ctx
        .hub()
        .subscribe(session.conn, principal.user_id, room.id, &room.name);
    if subscribed.first_for_user {
        publish(
            ctx,
            room.id,
            &room.name,
            RoomEvent::Joined {
                username: principal.username.clone(),
            },
            Some(principal.user_id),
        );
    }
    let missed = match req.after_seq {
        Some(after_seq) => replay(ctx, &room, after_seq).await?,
        None => Vec::new(),
    };
    let last_seq = missed
        .last()
        .map_or(room.last_seq, |message| message.seq.max(room.last_seq));
    let welcome = Reply::Welcome {
        room: room.name.clone(),
        last_seq,
        at: ctx.clock().now(),
    };
    let replayed = missed.into_iter().map(|message| Reply::Message {
        room: room.name.clone(),
        message,
    });
    Ok(std::iter::once(welcome).chain(replayed).collect())
}

/// Lets the principal in: anyone into a public room, members into a private room, others only with its password.
async fn admit(
    ctx: &dyn Context,
    principal: &Principal,
    room: &Room,
    password: Option<&str>,
) -> Result<(), Error> {
    if !room.private || ctx.store().is_member(room.id, principal.user_id).await? {
        return Ok(());
    }
    if room_password_matches(ctx, room, password).await? {
        Ok(())
    } else {
        Err(Error::BadRoomPassword)
    }
}

/// Every stored message of the room with a seq above `after_seq`, oldest first. The store pages newest first, so the
/// pages are read downwards from the newest and the whole is reversed.
async fn replay(
    ctx: &dyn Context,
    room: &Room,
    after_seq: i64,
) -> Result<Vec<StoredMessage>, Error> {
    let mut query = HistoryQuery::latest(REPLAY_PAGE);
    query.after_seq = Some(after_seq);
    let mut missed = Vec::new();
    loop {
        let page = ctx.store().history(room.id, &query).await?;
        missed.extend(page.messages);
        match page.next_before {
            Some(next_before) if page.has_more => query.before_seq = Some(next_before),
            _ => break,
        }
    }
    missed.reverse();
    Ok(missed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::rooms::test_support::*;
    use crate::testing::TestContext;
    use crate::{Clock, ErrorKind, Hub, Store};

    fn request(name: &str, password: Option<&str>, after_seq: Option<i64>) -> JoinRequest {
        JoinRequest {
            name: name.into(),
            password: password.map(Into::into),
            after_seq,
        }
    }

    fn welcome(ctx: &TestContext, room: &str, last_seq: i64) -> Reply {
        Reply::Welcome {
            room: room.into(),
            last_seq,
            at: ctx.clock.now(),
        }
    }

    fn joined(room: &str, username: &str) -> (String, RoomEvent) {
        (
            room.into(),
            RoomEvent::Joined {
                username: username.into(),
            },
        )
    }

    #[tokio::test]
    async fn joining_welcomes_the_joiner_and_tells_the_others() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let room = public_room(&ctx, &john, "general").await;
        let replies = join(&ctx, &jane, request("GENERAL", None, None))
            .await
            .unwrap();
        assert_eq!(replies, vec![welcome(&ctx, "general", 0)]);
        assert_eq!(events(&ctx, 1), vec![joined("general", "jane_doe")]);
        assert!(events(&ctx, 2).is_empty(), "the joiner hears no joined");
        assert!(
            ctx.store
                .is_member(room.id, jane.principal.user_id)
                .await
                .unwrap()
        );
        assert_eq!(ctx.hub.rooms_of(2), vec![(room.id, "general".into())]);
        let published = ctx.hub.published();
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].skip_user, Some(jane.principal.user_id));
        assert_eq!(published[0].room_id, room.id);
        assert_eq!(published[0].at, ctx.clock.now());
    }

    #[tokio::test]
    async fn the_welcome_carries_the_rooms_last_seq() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let room = public_room(&ctx, &john, "general").await;
        post_numbered(&ctx, &room, &john.principal, 3).await;
        let replies = enter(&ctx, &jane, "general").await;
        assert_eq!(replies, vec![welcome(&ctx, "general", 3)]);
    }

    #[tokio::test]
    async fn a_second_connection_of_the_same_user_is_not_announced() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = user(&ctx, "jane_doe").await;
        let (jane_phone, jane_laptop) = (on(2, &jane), on(3, &jane));
        public_room(&ctx, &john, "general").await;
        enter(&ctx, &jane_phone, "general").await;
        assert_eq!(events(&ctx, 1), vec![joined("general", "jane_doe")]);
        let replies = enter(&ctx, &jane_laptop, "general").await;
        assert_eq!(replies, vec![welcome(&ctx, "general", 0)]);
        assert!(events(&ctx, 1).is_empty());
        assert!(events(&ctx, 2).is_empty());
        assert_eq!(ctx.hub.published().len(), 1);
    }

    #[tokio::test]
    async fn joining_again_on_the_same_connection_only_welcomes_again() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let room = public_room(&ctx, &john, "general").await;
        enter(&ctx, &jane, "general").await;
        drain(&ctx, &[1, 2]);
        let replies = enter(&ctx, &jane, "general").await;
        assert_eq!(replies, vec![welcome(&ctx, "general", 0)]);
        assert!(events(&ctx, 1).is_empty());
        assert_eq!(ctx.hub.published().len(), 1);
        assert_eq!(ctx.hub.rooms_of(2), vec![(room.id, "general".into())]);
        // The creator, already subscribed by the creation, is not announced either.
        enter(&ctx, &john, "general").await;
        assert!(events(&ctx, 2).is_empty());
    }

    #[tokio::test]
    async fn an_unknown_room_is_not_found() {
        let ctx = TestContext::new();
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let err = join(&ctx, &jane, request("nowhere", None, None))
            .await
            .unwrap_err();
        assert_eq!(err, Error::RoomNotFound);
        assert_eq!(err.to_string(), "room does not exist");
        assert!(ctx.hub.rooms_of(2).is_empty());
    }

    #[tokio::test]
    async fn a_private_room_needs_its_password() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let room = private_room(&ctx, &john, "secret").await;
        let verifications = ctx.credentials.verifications();
        let too_long = format!("{ROOM_PASSWORD}{}", "x".repeat(72));
        for password in [
            None,
            Some(""),
            Some("wrong password"),
            Some(too_long.as_str()),
        ] {
            let err = join(&ctx, &jane, request("secret", password, None))
                .await
                .unwrap_err();
            assert_eq!(err, Error::BadRoomPassword, "{password:?}");
            assert_eq!(err.to_string(), "incorrect room password");
        }
        assert!(
            !ctx.store
                .is_member(room.id, jane.principal.user_id)
                .await
                .unwrap()
        );
        assert!(ctx.hub.rooms_of(2).is_empty());
        assert!(events(&ctx, 1).is_empty());
        // Only the one real candidate cost a (bcrypt) verification.
        assert_eq!(ctx.credentials.verifications(), verifications + 1);

        let replies = join(&ctx, &jane, request("secret", Some(ROOM_PASSWORD), None))
            .await
            .unwrap();
        assert_eq!(replies, vec![welcome(&ctx, "secret", 0)]);
        assert_eq!(events(&ctx, 1), vec![joined("secret", "jane_doe")]);
    }

    #[tokio::test]
    async fn members_rejoin_a_private_room_without_the_password() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = user(&ctx, "jane_doe").await;
        private_room(&ctx, &john, "secret").await;
        join(
            &ctx,
            &on(2, &jane),
            request("secret", Some(ROOM_PASSWORD), None),
        )
        .await
        .unwrap();
        // The connection closes; the membership stays. A new connection rejoins without the password.
        crate::actions::disconnect::disconnect(&ctx, &on(2, &jane));
        drain(&ctx, &[1, 2]);
        let replies = enter(&ctx, &on(3, &jane), "secret").await;
        assert_eq!(replies, vec![welcome(&ctx, "secret", 0)]);
        assert_eq!(events(&ctx, 1), vec![joined("secret", "jane_doe")]);
        // The owner is a member from the start.
        crate::actions::disconnect::disconnect(&ctx, &john);
        enter(&ctx, &on(4, &john.principal), "secret").await;
    }

    #[tokio::test]
    async fn a_wrong_password_is_ignored_for_members_and_public_rooms() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        public_room(&ctx, &john, "general").await;
        private_room(&ctx, &john, "secret").await;
        join(
            &ctx,
            &jane,
            request("general", Some("whatever it is"), None),
        )
        .await
        .unwrap();
        join(
            &ctx,
            &on(3, &john.principal),
            request("secret", Some("wrong password"), None),
        )
        .await
        .unwrap();
    }

    #[tokio::test]
    async fn after_seq_replays_every_missed_message_in_order() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let room = public_room(&ctx, &john, "general").await;
        // More than two store pages, so the replay must page.
        let stored = post_numbered(&ctx, &room, &john.principal, 450).await;
        let replies = join(&ctx, &jane, request("general", None, Some(17)))
            .await
            .unwrap();
        assert_eq!(replies[0], welcome(&ctx, "general", 450));
        let replayed: Vec<StoredMessage> = replies[1..]
            .iter()
            .map(|reply| match reply {
                Reply::Message { room, message } => {
                    assert_eq!(room, "general");
                    message.clone()
                }
                other => panic!("unexpected reply {other:?}"),
            })
            .collect();
        assert_eq!(replayed, stored[17..].to_vec());
        assert_eq!(replayed.first().map(|m| m.seq), Some(18));
        assert_eq!(
            replayed.last().map(|m| m.content.as_str()),
            Some("message 450")
        );
    }

    #[tokio::test]
    async fn after_seq_at_the_end_or_beyond_replays_nothing() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let room = public_room(&ctx, &john, "general").await;
        post_numbered(&ctx, &room, &john.principal, 3).await;
        for after_seq in [3, 99] {
            let replies = join(&ctx, &jane, request("general", None, Some(after_seq)))
                .await
                .unwrap();
            assert_eq!(replies, vec![welcome(&ctx, "general", 3)]);
        }
        let replies = join(&ctx, &jane, request("general", None, Some(0)))
            .await
            .unwrap();
        assert_eq!(replies.len(), 4);
        let empty = public_room(&ctx, &john, "empty").await;
        let replies = join(&ctx, &jane, request("empty", None, Some(0)))
            .await
            .unwrap();
        assert_eq!(replies, vec![welcome(&ctx, &empty.name, 0)]);
    }

    #[tokio::test]
    async fn the_store_being_down_is_unavailable() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        public_room(&ctx, &john, "general").await;
        ctx.store.set_unavailable(true);
        let err = join(
            &ctx,
            &on(2, &john.principal),
            request("general", None, None),
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(ctx.hub.rooms_of(2).is_empty());
    }
}
