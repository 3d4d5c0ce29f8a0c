//! What actions emit: replies to the connection that sent a command, and broadcasts to a room. The runtime renders
//! both with either codec (text, PROTOCOL §4, or JSON, §5), so the chat rules never deal with formats.

use std::future::Future;
use std::pin::Pin;

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::Error;
use crate::model::{HistoryPage, LogEntry, Principal, Room};

/// Identifies one WebSocket connection on this node.
pub type ConnectionId = u64;

/// The connection a WebSocket command arrived on, and who opened it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub conn: ConnectionId,
    pub principal: Principal,
}

/// A room as clients see it (`rooms`, `ROOMS_LIST:`, `room_created`): never its password hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomView {
    pub name: String,
    pub private: bool,
    pub id: Uuid,
    pub members_online: usize,
    /// The owner's user id.
    pub created_by: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Whether the user asking is a member (so a new device knows which rooms to rejoin, private ones without their
    /// password).
    pub member: bool,
    /// A direct room (shown only to its two members).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub direct: bool,
    /// For a direct room: the other member's username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub with: Option<String>,
    /// For a member: the seq they have read through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_read_seq: Option<i64>,
    /// For a member: the messages by others after their read point, deleted ones not counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unread: Option<u64>,
}

impl RoomView {
    /// The view of `room` with `members_online` users connected to it, for a user who is a `member` of it or not.
    pub fn of(room: &Room, members_online: usize, member: bool) -> Self {
        RoomView {
            name: room.name.clone(),
            private: room.private,
            id: room.id,
            members_online,
            created_by: room.owner_id,
            created_at: room.created_at,
            member,
            direct: room.direct,
            with: None,
            last_read_seq: None,
            unread: None,
        }
    }

    /// This view of a direct room, naming the other member.
    pub fn with_peer(mut self, with: String) -> Self {
        self.with = Some(with);
        self
    }

    /// This view with a member's read state.
    pub fn with_read_state(mut self, last_read_seq: i64, unread: u64) -> Self {
        self.last_read_seq = Some(last_read_seq);
        self.unread = Some(unread);
        self
    }
}

/// A room member and whether any of their connections is subscribed to the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberView {
    pub username: String,
    pub online: bool,
    /// The seq the member has read through (their read receipt).
    pub last_read_seq: i64,
    /// `owner`, `admin`, `moderator` or `member`.
    pub role: &'static str,
}

/// A reply to the connection that sent the command.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Joined (or created) a room: `Welcome to room '…'!` / `welcome`.
    Welcome {
        room: String,
        last_seq: i64,
        at: OffsetDateTime,
    },
    /// An entry of the room's log replayed to this connection (resume with `after_seq`).
    Entry { room: String, entry: LogEntry },
    /// Left a room: `You have left the room "…"` + `ROOM_LEAVE_SUCCESS:…` / `left_room`.
    LeftRoom { room: String },
    /// A room was created: `ROOM_CREATE_SUCCESS:{…}` / `room_created`.
    RoomCreated(RoomView),
    /// The room list: `ROOMS_LIST:[…]` / `rooms`.
    Rooms(Vec<RoomView>),
    /// A direct room with `with` is open: `DM_OPENED:{…}` / `dm_opened` (the user's connections get the same event).
    DirectOpened { room: String, with: String },
    /// `username`'s direct messages are refused now (`blocked`: true) or accepted again: `BLOCKED:…` / `blocked`,
    /// `UNBLOCKED:…` / `unblocked`.
    Blocked { username: String, blocked: bool },
    /// A page of search results: `SEARCH_RESULTS:{…}` / `search_results`.
    SearchResults(crate::model::SearchPage),
    /// A page of history: `MESSAGES:{…}` / `history`.
    History { room: String, page: HistoryPage },
    /// The members of a room: `MEMBERS_LIST:[…]` / `members`.
    Members {
        room: String,
        members: Vec<MemberView>,
    },
    /// The user's read point in the room (`read`, with the command's id; the user's connections in the room get the
    /// same event).
    Read { room: String, seq: i64 },
    /// A posted message, or an edit, deletion or reaction, is durably stored with `seq` (JSON protocol only; the
    /// text protocol shows the entry).
    Ack { room: String, seq: i64 },
    /// The command failed.
    Error(Error),
    /// Not a frame: the replay of the room above ends at `through_seq`, so the runtime releases the events the hub
    /// held for this connection (see [`crate::Hub::release`]) once the replies before it are queued.
    CaughtUp { room_id: Uuid, through_seq: i64 },
}

/// Replies that are not ready yet: they resolve once the command's work settles (a post, once it is stored).
pub type PendingReplies = Pin<Box<dyn Future<Output = Result<Vec<Reply>, Error>> + Send + 'static>>;

/// What running a WebSocket command gave: its replies now, or replies the session awaits in order behind the
/// commands sent before it, while it reads on (so a connection can have several posts in flight).
pub enum Outcome {
    /// The command is done; its replies, in order.
    Done(Vec<Reply>),
    /// The command is in line (a post waiting for its commit); its replies once it settles.
    Pending(PendingReplies),
}

impl From<Vec<Reply>> for Outcome {
    fn from(replies: Vec<Reply>) -> Self {
        Outcome::Done(replies)
    }
}

impl From<PendingReplies> for Outcome {
    fn from(pending: PendingReplies) -> Self {
        Outcome::Pending(pending)
    }
}

impl std::fmt::Debug for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Done(replies) => f.debug_tuple("Done").field(replies).finish(),
            Outcome::Pending(_) => f.write_str("Pending(..)"),
        }
    }
}

/// What happened in a room, for its subscribed connections.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomEvent {
    /// `… has joined the room` / `joined`.
    Joined { username: String },
    /// `… has left the room` / `left`.
    Left { username: String },
    /// A new entry of the room's log: a message, an edit, a deletion or a reaction.
    Entry(LogEntry),
    /// `Room '…' has been deleted by …` / `room_deleted`.
    Deleted { by: String },
    /// `TYPING:…` / `typing`.
    Typing { username: String },
    /// `READ:…` / `read`: the user's read point moved; only that user's connections receive it.
    Read { user_id: Uuid, seq: i64 },
    /// `RECEIPT:…` / `receipt`: a member's read point moved, for the others.
    Receipt { username: String, seq: i64 },
    /// `… made bob a moderator` / `role_changed`: `username` has `role` now, given by `by`.
    RoleChanged {
        username: String,
        role: crate::model::Role,
        by: String,
    },
    /// `… was kicked by …` / `kicked`: a moderator removed `username` from the room.
    Kicked {
        username: String,
        by: String,
        reason: Option<String>,
    },
    /// `You have left the room …` / `left_room`: `user_id` is no longer in the room (kicked); only their
    /// connections receive it, right before they are unsubscribed.
    Removed { user_id: Uuid },
    /// `DM_OPENED:…` / `dm_opened`: the direct room with `with` is open; only `user_id`'s connections receive it.
    DirectOpened { user_id: Uuid, with: String },
}

impl RoomEvent {
    /// The one user whose connections receive this event, when it is not for the whole room.
    pub fn only_for(&self) -> Option<Uuid> {
        match self {
            RoomEvent::Read { user_id, .. }
            | RoomEvent::DirectOpened { user_id, .. }
            | RoomEvent::Removed { user_id } => Some(*user_id),
            _ => None,
        }
    }
}

/// An event for every connection subscribed to a room, except those of `skip_user`.
#[derive(Debug, Clone, PartialEq)]
pub struct Broadcast {
    pub room_id: Uuid,
    pub room: String,
    pub at: OffsetDateTime,
    pub event: RoomEvent,
    /// The user whose own connections do not receive it (the joiner, the typist).
    pub skip_user: Option<Uuid>,
}

/// Whether subscribing made the user present in the room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Subscribed {
    /// This connection was not yet subscribed.
    pub new_for_connection: bool,
    /// None of the user's connections was subscribed before: the others are told the user joined.
    pub first_for_user: bool,
}

/// A room a connection was removed from, and whether its user is now absent from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribed {
    pub room_id: Uuid,
    pub room: String,
    /// The user's last connection in the room is gone: the others are told the user left.
    pub last_for_user: bool,
}
