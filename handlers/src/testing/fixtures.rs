//! What the actions' tests share: users, sessions, rooms, posts, and reading what a connection was delivered.

use crate::actions::authenticate::authenticate;
use crate::actions::create_room::{CreateRoomRequest, create_room};
use crate::actions::join_room::{JoinRoomRequest, join_room};
use crate::event::{ConnectionId, Reply, RoomEvent, Session};
use crate::model::{Change, LogEntry, NewEntry, Principal, Room};
use crate::testing::TestContext;
use crate::{Clock, Hub as _, Store as _};
use time::Duration;
use uuid::Uuid;

/// A password that passes the room password rules.
pub const ROOM_PASSWORD: &str = "open sesame";

/// Registers `username`, logs in and authenticates the token, as a connection would.
pub async fn user(ctx: &TestContext, username: &str) -> Principal {
    let (_, token) = ctx.register_and_login(username).await;
    authenticate(ctx, Some(&token))
        .await
        .expect("a fresh token authenticates")
}

/// The session of `principal` on connection `conn`.
pub fn on(conn: ConnectionId, principal: &Principal) -> Session {
    Session {
        conn,
        principal: principal.clone(),
    }
}

/// Creates a public room from `session` (which joins it) and forgets what the creation delivered.
pub async fn public_room(ctx: &TestContext, session: &Session, name: &str) -> Room {
    room(ctx, session, name, None).await
}

/// Creates a private room with [`ROOM_PASSWORD`] from `session` (which joins it).
pub async fn private_room(ctx: &TestContext, session: &Session, name: &str) -> Room {
    room(ctx, session, name, Some(ROOM_PASSWORD)).await
}

async fn room(ctx: &TestContext, session: &Session, name: &str, password: Option<&str>) -> Room {
    let req = CreateRoomRequest {
        name: name.into(),
        private: Some(password.is_some()),
        password: password.map(Into::into),
    };
    create_room(ctx, session, req)
        .await
        .expect("test room is valid");
    ctx.hub.take(session.conn);
    ctx.store
        .room_by_name(name)
        .await
        .unwrap()
        .expect("the room was stored")
}

/// Joins `name` from `session` without a password or replay; returns the replies.
pub async fn enter(ctx: &TestContext, session: &Session, name: &str) -> Vec<Reply> {
    let req = JoinRoomRequest {
        name: name.into(),
        password: None,
        after_seq: None,
    };
    let replies = join_room(ctx, session, req)
        .await
        .expect("the join succeeds");
    release_caught_up(ctx, session, replies)
}

/// Does what the runtime does with a join's replies: at [`Reply::CaughtUp`] the events held for the room are
/// released. Returns the other replies.
pub fn release_caught_up(ctx: &TestContext, session: &Session, replies: Vec<Reply>) -> Vec<Reply> {
    replies
        .into_iter()
        .filter(|reply| match reply {
            Reply::CaughtUp {
                room_id,
                through_seq,
            } => {
                ctx.hub.release(session.conn, *room_id, *through_seq);
                false
            }
            _ => true,
        })
        .collect()
}

/// The room events delivered to `conn` since the last look, as (room, event).
pub fn events(ctx: &TestContext, conn: ConnectionId) -> Vec<(String, RoomEvent)> {
    ctx.hub
        .take(conn)
        .into_iter()
        .map(|broadcast| (broadcast.room, broadcast.event))
        .collect()
}

/// Stores one message per entry of `contents` from `principal`, one second apart (so time filters can tell them
/// apart), as the message action would; returns them as stored.
pub async fn post(
    ctx: &TestContext,
    room: &Room,
    principal: &Principal,
    contents: &[&str],
) -> Vec<LogEntry> {
    let mut stored = Vec::new();
    for content in contents {
        ctx.clock.advance(Duration::seconds(1));
        let appended = ctx
            .store
            .append_messages(&[NewEntry {
                id: Uuid::now_v7(),
                room_id: room.id,
                user_id: principal.user_id,
                change: Change::Post {
                    content: (*content).into(),
                    reply_to: None,
                },
                client_msg_id: None,
                created_at: ctx.clock.now(),
            }])
            .await
            .expect("test messages store");
        stored.extend(appended.iter().filter_map(|a| a.entry().cloned()));
    }
    stored
}

/// Stores `count` messages "message 1", "message 2", … from `principal`.
pub async fn post_numbered(
    ctx: &TestContext,
    room: &Room,
    principal: &Principal,
    count: usize,
) -> Vec<LogEntry> {
    let contents: Vec<String> = (1..=count).map(|n| format!("message {n}")).collect();
    let contents: Vec<&str> = contents.iter().map(String::as_str).collect();
    post(ctx, room, principal, &contents).await
}

/// The `Left` event of `username` in `room`, as [`events`] returns it.
pub fn left(room: &str, username: &str) -> (String, RoomEvent) {
    (
        room.into(),
        RoomEvent::Left {
            username: username.into(),
        },
    )
}

/// Forgets everything delivered so far to each of `conns`.
pub fn drain(ctx: &TestContext, conns: &[ConnectionId]) {
    for conn in conns {
        ctx.hub.take(*conn);
    }
}
