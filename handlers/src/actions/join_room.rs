//! `join_room`: become a member of a room (once, stored) and subscribe this connection to it, optionally replaying
//! the messages missed since a known seq.

use serde::Deserialize;

use crate::actions::publish;
use crate::actions::room_access::{find_room, may_enter};
use crate::context::Context;
use crate::error::Error;
use crate::event::{Reply, RoomEvent, Session};
use crate::model::{LogEntry, Room};

/// How many messages one store read of a replay fetches.
const REPLAY_PAGE: u32 = 200;

/// The `data` of a `join_room` command.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JoinRoomRequest {
    pub name: String,
    /// A private room's password; members rejoin without it.
    pub password: Option<String>,
    /// The last seq the client saw: every entry of the room's log after it is replayed.
    pub after_seq: Option<i64>,
}

/// Joins the room: checks access, records the membership, subscribes the connection and tells the others when this
/// is the user's first connection in the room. Replies: the welcome, then the replayed messages, oldest first.
pub async fn join_room(
    ctx: &dyn Context,
    session: &Session,
    req: JoinRoomRequest,
) -> Result<Vec<Reply>, Error> {
    let principal = &session.principal;
    let room = find_room(ctx, &req.name).await?;
    let password = req.password.as_deref();
    may_enter(ctx, principal, &room, password, Error::BadRoomPassword).await?;
    // Refused before anything is recorded: a join that cannot be served makes no member.
    if let Some(after_seq) = req.after_seq {
        let missed = room.last_seq.saturating_sub(after_seq.max(0));
        let max = i64::from(ctx.limits().max_replay);
        if missed > max {
            return Err(Error::Malformed(format!(
                "{missed} messages were missed, more than {max} can be replayed: read them with get_messages, \
                 then join with a later after_seq"
            )));
        }
    }
    ctx.store()
        .add_member(room.id, principal.user_id, ctx.clock().now())
        .await?;
    let hub = ctx.hub();
    // Every join subscribes with the room's events held, then reads what was stored after the point the client knows
    // (its after_seq, or the room's end as read above): whatever is committed meanwhile is either read or delivered
    // after it, never lost and never doubled.
    let subscribed = hub.subscribe_held(session.conn, principal.user_id, room.id, &room.name);
    if subscribed.first_for_user
        && ctx
            .presence()
            .arrived(room.id, principal.user_id, &principal.username)
    {
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
    if !subscribed.new_for_connection {
        // Subscribed already: this connection has been receiving the room live all along, so a replay would only
        // repeat what it has.
        return Ok(vec![welcome(ctx, &room, room.last_seq)]);
    }
    // A client claiming to have seen beyond the end must still receive the messages that come next.
    let known = req
        .after_seq
        .map_or(room.last_seq, |after| after.clamp(0, room.last_seq));
    ctx.broker().watch(room.id, &room.name, known);
    let missed = match replay(ctx, &room, known).await {
        Ok(missed) => missed,
        Err(err) => {
            // Nothing held may stay held: go live without a replay rather than freeze the room for this connection.
            hub.release(session.conn, room.id, known);
            return Err(err);
        }
    };
    let through_seq = missed.last().map_or(known, |message| message.seq);
    // A plain join announces where the room stood; a resume announces the newest seq it now has.
    let announced = if req.after_seq.is_some() {
        through_seq.max(room.last_seq)
    } else {
        known
    };
    let mut replies = vec![welcome(ctx, &room, announced)];
    replies.extend(missed.into_iter().map(|entry| Reply::Entry {
        room: room.name.clone(),
        entry,
    }));
    replies.push(Reply::CaughtUp {
        room_id: room.id,
        through_seq,
    });
    Ok(replies)
}

fn welcome(ctx: &dyn Context, room: &Room, last_seq: i64) -> Reply {
    Reply::Welcome {
        room: room.name.clone(),
        last_seq,
        at: ctx.clock().now(),
    }
}

/// Every entry of the room's log with a seq above `after_seq`, oldest first, read a page at a time.
async fn replay(ctx: &dyn Context, room: &Room, after_seq: i64) -> Result<Vec<LogEntry>, Error> {
    let mut missed: Vec<LogEntry> = Vec::new();
    let mut from = after_seq.max(0);
    // Bounded even if entries keep arriving while it reads: at most twice the replay limit.
    let most = 2 * usize::try_from(ctx.limits().max_replay).unwrap_or(usize::MAX);
    while missed.len() < most {
        let page = ctx.store().log_after(room.id, from, REPLAY_PAGE).await?;
        let Some(newest) = page.last().map(|entry| entry.seq) else {
            break;
        };
        missed.extend(page);
        from = newest;
    }
    Ok(missed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Broadcast;
    use crate::model::SecurityEvent;
    use crate::testing::TestContext;
    use crate::testing::fixtures::*;
    use crate::{Clock, ErrorKind, Hub, Store};

    fn request(name: &str, password: Option<&str>, after_seq: Option<i64>) -> JoinRoomRequest {
        JoinRoomRequest {
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
        let replies = join_room(&ctx, &jane, request("GENERAL", None, None))
            .await
            .unwrap();
        let replies = release_caught_up(&ctx, &jane, replies);
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
        let err = join_room(&ctx, &jane, request("nowhere", None, None))
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
            let err = join_room(&ctx, &jane, request("secret", password, None))
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

        let replies = join_room(&ctx, &jane, request("secret", Some(ROOM_PASSWORD), None))
            .await
            .unwrap();
        let replies = release_caught_up(&ctx, &jane, replies);
        assert_eq!(replies, vec![welcome(&ctx, "secret", 0)]);
        assert_eq!(events(&ctx, 1), vec![joined("secret", "jane_doe")]);
    }

    #[tokio::test]
    async fn guessing_a_room_password_is_throttled_and_audited() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let mary = on(3, &user(&ctx, "mary_doe").await);
        private_room(&ctx, &john, "secret").await;
        for guess in 0..ctx.guard.limit {
            let password = format!("guess number {guess}");
            let err = join_room(&ctx, &jane, request("secret", Some(&password), None))
                .await
                .unwrap_err();
            assert_eq!(err, Error::BadRoomPassword);
        }
        let verifications = ctx.credentials.verifications();
        // Past the limit even the right password is refused, untried.
        let err = join_room(&ctx, &jane, request("secret", Some(ROOM_PASSWORD), None))
            .await
            .unwrap_err();
        assert_eq!(err, Error::RateLimited);
        assert_eq!(err.to_string(), "rate limit exceeded");
        assert_eq!(ctx.credentials.verifications(), verifications);
        assert!(ctx.hub.rooms_of(2).is_empty());

        let jane_id = jane.principal.user_id;
        let failed = SecurityEvent::RoomPasswordFailed {
            room: "secret".into(),
        };
        let locked = SecurityEvent::RoomPasswordLocked {
            room: "secret".into(),
        };
        let jane_events: Vec<SecurityEvent> = ctx
            .guard
            .events()
            .into_iter()
            .filter(|(user, _)| *user == jane_id)
            .map(|(_, event)| event)
            .collect();
        let mut expected = vec![failed; ctx.guard.limit as usize];
        expected.push(locked);
        assert_eq!(jane_events, expected);

        // The count is the user's own: another user still gets in.
        let replies = join_room(&ctx, &mary, request("secret", Some(ROOM_PASSWORD), None))
            .await
            .unwrap();
        assert!(matches!(replies[0], Reply::Welcome { .. }));
    }

    #[tokio::test]
    async fn no_password_is_no_attempt() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        private_room(&ctx, &john, "secret").await;
        for _ in 0..2 * ctx.guard.limit {
            let err = join_room(&ctx, &jane, request("secret", None, None))
                .await
                .unwrap_err();
            assert_eq!(err, Error::BadRoomPassword);
        }
        let replies = join_room(&ctx, &jane, request("secret", Some(ROOM_PASSWORD), None))
            .await
            .unwrap();
        assert!(matches!(replies[0], Reply::Welcome { .. }));
    }

    #[tokio::test]
    async fn members_rejoin_a_private_room_without_the_password() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = user(&ctx, "jane_doe").await;
        private_room(&ctx, &john, "secret").await;
        join_room(
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
        join_room(
            &ctx,
            &jane,
            request("general", Some("whatever it is"), None),
        )
        .await
        .unwrap();
        join_room(
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
        let replies = join_room(&ctx, &jane, request("general", None, Some(17)))
            .await
            .unwrap();
        assert_eq!(replies[0], welcome(&ctx, "general", 450));
        // The replay ends with the marker that releases the live events held meanwhile.
        assert_eq!(
            replies.last(),
            Some(&Reply::CaughtUp {
                room_id: room.id,
                through_seq: 450
            })
        );
        let replayed: Vec<LogEntry> = replies[1..replies.len() - 1]
            .iter()
            .map(|reply| match reply {
                Reply::Entry { room, entry } => {
                    assert_eq!(room, "general");
                    entry.clone()
                }
                other => panic!("unexpected reply {other:?}"),
            })
            .collect();
        assert_eq!(replayed, stored[17..].to_vec());
        assert_eq!(replayed.first().map(|m| m.seq), Some(18));
        assert_eq!(
            replayed.last().and_then(LogEntry::content),
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
        for (conn, after_seq) in [(3, 3), (4, 99)] {
            // A fresh connection each time: one already in the room is live and gets no replay.
            let replies = join_room(
                &ctx,
                &on(conn, &jane.principal),
                request("general", None, Some(after_seq)),
            )
            .await
            .unwrap();
            // Nothing replayed; live messages after seq 3 (the room's end) will flow once released.
            let caught_up = Reply::CaughtUp {
                room_id: room.id,
                through_seq: 3,
            };
            assert_eq!(replies, vec![welcome(&ctx, "general", 3), caught_up]);
        }
        let replies = join_room(
            &ctx,
            &on(5, &jane.principal),
            request("general", None, Some(0)),
        )
        .await
        .unwrap();
        assert_eq!(replies.len(), 5);
        let empty = public_room(&ctx, &john, "empty").await;
        let replies = join_room(&ctx, &jane, request("empty", None, Some(0)))
            .await
            .unwrap();
        let caught_up = Reply::CaughtUp {
            room_id: empty.id,
            through_seq: 0,
        };
        assert_eq!(replies, vec![welcome(&ctx, &empty.name, 0), caught_up]);
    }

    #[tokio::test]
    async fn a_connection_already_in_the_room_gets_no_replay() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let room = public_room(&ctx, &john, "general").await;
        post_numbered(&ctx, &room, &john.principal, 4).await;
        // John's connection has been live in the room since he created it: a replay would repeat what it has.
        let replies = join_room(&ctx, &john, request("general", None, Some(1)))
            .await
            .unwrap();
        assert_eq!(replies, vec![welcome(&ctx, "general", 4)]);
    }

    #[tokio::test]
    async fn a_resuming_connection_gets_nothing_twice_and_nothing_lost() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let room = public_room(&ctx, &john, "general").await;
        let five = post_numbered(&ctx, &room, &john.principal, 5).await;
        let replies = join_room(&ctx, &jane, request("general", None, Some(2)))
            .await
            .unwrap();
        // Held until released: message 5 as a live event too (committed after the subscription, so also read by the
        // replay), and a message posted after the replay (6).
        ctx.hub.publish(Broadcast {
            room_id: room.id,
            room: "general".into(),
            at: five[4].created_at,
            event: RoomEvent::Entry(five[4].clone()),
            skip_user: None,
        });
        let sixth = crate::actions::room_message::room_message(
            &ctx,
            &john,
            crate::actions::room_message::RoomMessageRequest {
                room: Some("general".into()),
                content: "six".into(),
                client_msg_id: None,
                reply_to: None,
            },
        )
        .await
        .unwrap()
        .await
        .unwrap();
        assert_eq!(
            sixth,
            vec![Reply::Ack {
                room: "general".into(),
                seq: 6
            }]
        );
        let early = ctx.hub.take(2);
        assert!(early.is_empty(), "held while the replay is sent: {early:?}");
        let through = match replies.last() {
            Some(Reply::CaughtUp { through_seq, .. }) => *through_seq,
            other => panic!("no CaughtUp: {other:?}"),
        };
        assert_eq!(through, 5);
        ctx.hub.release(2, room.id, through);
        let live: Vec<i64> = ctx
            .hub
            .take(2)
            .into_iter()
            .filter_map(|delivery| match delivery {
                Broadcast {
                    event: RoomEvent::Entry(message),
                    ..
                } => Some(message.seq),
                _ => None,
            })
            .collect();
        assert_eq!(live, vec![6]);
    }

    #[tokio::test]
    async fn a_replay_longer_than_max_replay_is_refused_and_makes_no_member() {
        let mut ctx = TestContext::new();
        ctx.limits.max_replay = 5;
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let room = public_room(&ctx, &john, "general").await;
        post_numbered(&ctx, &room, &john.principal, 10).await;
        let err = join_room(&ctx, &jane, request("general", None, Some(4)))
            .await
            .unwrap_err();
        assert_eq!(
            (err.code(), err.to_string().as_str()),
            (
                "invalid_request",
                "6 messages were missed, more than 5 can be replayed: read them with get_messages, then join \
                 with a later after_seq"
            )
        );
        assert!(
            !ctx.store
                .is_member(room.id, jane.principal.user_id)
                .await
                .unwrap()
        );
        assert!(ctx.hub.rooms_of(2).is_empty());
        assert!(
            events(&ctx, 1).is_empty(),
            "nobody is told of a refused join"
        );
        // Exactly the limit is replayed.
        let replies = join_room(&ctx, &jane, request("general", None, Some(5)))
            .await
            .unwrap();
        assert_eq!(
            replies.len(),
            1 + 5 + 1,
            "welcome, five messages, caught up"
        );
    }

    #[tokio::test]
    async fn the_store_being_down_is_unavailable() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        public_room(&ctx, &john, "general").await;
        ctx.store.set_unavailable(true);
        let err = join_room(
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
