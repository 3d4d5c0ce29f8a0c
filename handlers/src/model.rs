//! Palaver's plain data: users, rooms, messages, the authenticated principal and audit events. No behaviour, no I/O.

use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::TokenRejection;

/// A registered account as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    /// A bcrypt hash; never leaves the server.
    pub password_hash: String,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
}

/// An account to be stored by [`crate::Store::create_user`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewUser {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub created_at: OffsetDateTime,
}

/// The public face of an account: what `/api/register` and `/api/me` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UserView {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

impl From<&User> for UserView {
    fn from(user: &User) -> Self {
        UserView {
            id: user.id,
            username: user.username.clone(),
            email: user.email.clone(),
            created_at: user.created_at,
        }
    }
}

/// Who is making a request: established from a verified, unrevoked token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub username: String,
    /// The token's `jti`, so a logout can revoke exactly this token.
    pub token_id: String,
    /// When the token stops being valid; a socket opened with it is closed then.
    pub expires_at: OffsetDateTime,
}

/// A WebSocket ticket whose signature and expiry were checked: what remains is whether it was used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedTicket {
    /// The ticket's own id, recorded when it is used.
    pub id: String,
    /// When the ticket stops being valid; its record of use may be forgotten after that.
    pub expires_at: OffsetDateTime,
    /// Who it was issued to: the token it stands for.
    pub principal: Principal,
}

/// The claims Palaver reads from a verified token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenClaims {
    pub user_id: Uuid,
    pub username: String,
    pub token_id: String,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

/// A freshly signed token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedToken {
    pub token: String,
    pub token_id: String,
    pub expires_at: OffsetDateTime,
}

/// A chat room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Room {
    pub id: Uuid,
    pub name: String,
    pub private: bool,
    /// bcrypt hash of the room password; `Some` exactly when the room is private.
    pub password_hash: Option<String>,
    pub owner_id: Uuid,
    pub created_at: OffsetDateTime,
    /// The seq of the newest stored message (0 for none yet).
    pub last_seq: i64,
    /// A direct conversation between two users: not listed to others, joined by nobody else.
    pub direct: bool,
}

/// The name of the direct room between two users: `dm:<name>:<name>`, the names lower-cased and sorted. Room names
/// a user can choose never contain `:`, so it names no other room.
pub fn direct_room_name(a: &str, b: &str) -> String {
    let (a, b) = (a.to_lowercase(), b.to_lowercase());
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    format!("dm:{first}:{second}")
}

/// The key that makes the direct room of two users one room: their ids, lower first.
pub fn direct_key(a: Uuid, b: Uuid) -> String {
    let (first, second) = if a <= b { (a, b) } else { (b, a) };
    format!("{first}:{second}")
}

/// A room to be stored by [`crate::Store::create_room`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRoom {
    pub id: Uuid,
    pub name: String,
    pub private: bool,
    pub password_hash: Option<String>,
    pub owner_id: Uuid,
    pub created_at: OffsetDateTime,
}

/// A member of a room, as listed by the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub user_id: Uuid,
    pub username: String,
    /// The seq the member has read through (0: nothing yet).
    pub last_read_seq: i64,
    pub role: Role,
}

/// A member's role in a room, from the most powers to the fewest: one owner, then admins, moderators, members.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Member,
    Moderator,
    Admin,
    Owner,
}

impl Role {
    /// The role's wire and stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Moderator => "moderator",
            Role::Member => "member",
        }
    }

    /// The role called `name`.
    pub fn parse(name: &str) -> Option<Role> {
        Some(match name {
            "owner" => Role::Owner,
            "admin" => Role::Admin,
            "moderator" => Role::Moderator,
            "member" => Role::Member,
            _ => return None,
        })
    }
}

/// Where a member's read point stands after a `mark_read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadPoint {
    /// The seq read through now: never lower than before, never beyond the room's newest entry.
    pub seq: i64,
    /// Whether it moved forward.
    pub moved: bool,
}

/// A member's read state in one room: computed from the log, never kept as a counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadState {
    pub room_id: Uuid,
    pub last_read_seq: i64,
    /// Messages by others after `last_read_seq`, deleted ones not counted.
    pub unread: u64,
}

/// An entry to be put in a room's log; the store assigns its seq (the next of the room).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewEntry {
    pub id: Uuid,
    pub room_id: Uuid,
    /// Who makes the change: the poster, editor, deleter or reactor.
    pub user_id: Uuid,
    pub change: Change,
    /// The sender's idempotency key (posts only): the same (user, key) is stored once.
    pub client_msg_id: Option<String>,
    pub created_at: OffsetDateTime,
}

/// What a new entry does. The rules of each (who may, on what) are checked by the store in the transaction that
/// stores it, against the state the log has reached, with [`crate::room_log::plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// Posts a message, optionally replying to an earlier one of the room.
    Post {
        content: String,
        reply_to: Option<i64>,
    },
    /// Replaces the content of the author's own message. `not_before` is the edit window: a message created before
    /// it may no longer be edited.
    Edit {
        target_seq: i64,
        content: String,
        not_before: Option<OffsetDateTime>,
    },
    /// Deletes a message, erasing its content; `any_author` lets the room's owner delete others' messages.
    Delete { target_seq: i64, any_author: bool },
    /// Adds the user's reaction `emoji` to a message, which may carry at most `max_emojis` distinct ones.
    React {
        target_seq: i64,
        emoji: String,
        max_emojis: usize,
    },
    /// Removes the user's reaction `emoji` from a message.
    Unreact { target_seq: i64, emoji: String },
}

/// An entry of a room's log, as stored: every change to a room's messages takes the room's next seq, so replaying
/// the log in seq order rebuilds exactly the state it describes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub id: Uuid,
    pub room_id: Uuid,
    /// Position in the room: 1, 2, 3, … with no gaps.
    pub seq: i64,
    /// Who made it.
    pub user_id: Uuid,
    pub username: String,
    pub client_msg_id: Option<String>,
    pub created_at: OffsetDateTime,
    pub body: Body,
}

/// What a log entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A posted message. Read back from the store it is in its current state: edited content with `edited_at`, or
    /// deleted (its content erased, `""`).
    Message(MessageBody),
    /// The message `target_seq` was edited to `content` (erased, `""`, once the message is deleted).
    Edit { target_seq: i64, content: String },
    /// The message `target_seq` was deleted.
    Delete { target_seq: i64 },
    /// The entry's user added (or removed) the reaction `emoji` to the message `target_seq`.
    Reaction {
        target_seq: i64,
        emoji: String,
        added: bool,
    },
}

/// A posted message's text and state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageBody {
    pub content: String,
    /// The message of the room this one replies to.
    pub reply_to: Option<i64>,
    /// When it was last edited.
    pub edited_at: Option<OffsetDateTime>,
    /// Deleted: the content is erased.
    pub deleted: bool,
}

impl MessageBody {
    /// A message as posted: not edited, not deleted.
    pub fn posted(content: impl Into<String>, reply_to: Option<i64>) -> Self {
        MessageBody {
            content: content.into(),
            reply_to,
            edited_at: None,
            deleted: false,
        }
    }
}

impl LogEntry {
    /// The message this entry is, if it is one.
    pub fn message(&self) -> Option<&MessageBody> {
        match &self.body {
            Body::Message(message) => Some(message),
            _ => None,
        }
    }

    /// The text the entry carries: a message's content or an edit's new content.
    pub fn content(&self) -> Option<&str> {
        match &self.body {
            Body::Message(message) => Some(&message.content),
            Body::Edit { content, .. } => Some(content),
            Body::Delete { .. } | Body::Reaction { .. } => None,
        }
    }

    /// The message an edit, deletion or reaction is about.
    pub fn target_seq(&self) -> Option<i64> {
        match &self.body {
            Body::Message(_) => None,
            Body::Edit { target_seq, .. }
            | Body::Delete { target_seq }
            | Body::Reaction { target_seq, .. } => Some(*target_seq),
        }
    }

    /// The entry's kind as the database column `kind` holds it.
    pub fn kind(&self) -> EntryKind {
        match &self.body {
            Body::Message(_) => EntryKind::Message,
            Body::Edit { .. } => EntryKind::Edit,
            Body::Delete { .. } => EntryKind::Delete,
            Body::Reaction { added: true, .. } => EntryKind::React,
            Body::Reaction { added: false, .. } => EntryKind::Unreact,
        }
    }
}

/// The kinds of log entry, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntryKind {
    Message,
    Edit,
    Delete,
    React,
    Unreact,
}

impl EntryKind {
    /// The value of the `kind` column.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryKind::Message => "message",
            EntryKind::Edit => "edit",
            EntryKind::Delete => "delete",
            EntryKind::React => "react",
            EntryKind::Unreact => "unreact",
        }
    }

    /// The kind a `kind` column holds.
    pub fn parse(kind: &str) -> Option<Self> {
        Some(match kind {
            "message" => EntryKind::Message,
            "edit" => EntryKind::Edit,
            "delete" => EntryKind::Delete,
            "react" => EntryKind::React,
            "unreact" => EntryKind::Unreact,
            _ => return None,
        })
    }

    /// The body of an entry of this kind from its stored columns; `None` when a column it needs is missing.
    pub fn body(
        self,
        content: String,
        target_seq: Option<i64>,
        reply_to: Option<i64>,
        emoji: Option<String>,
        edited_at: Option<OffsetDateTime>,
        deleted: bool,
    ) -> Option<Body> {
        Some(match self {
            EntryKind::Message => Body::Message(MessageBody {
                content,
                reply_to,
                edited_at,
                deleted,
            }),
            EntryKind::Edit => Body::Edit {
                target_seq: target_seq?,
                content,
            },
            EntryKind::Delete => Body::Delete {
                target_seq: target_seq?,
            },
            EntryKind::React | EntryKind::Unreact => Body::Reaction {
                target_seq: target_seq?,
                emoji: emoji?,
                added: self == EntryKind::React,
            },
        })
    }
}

/// The outcome of putting one entry of a batch in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Appended {
    /// Newly stored with the next seq of its room.
    Stored(LogEntry),
    /// A repeat of an earlier (user, client_msg_id): nothing was stored; this is the original.
    Duplicate(LogEntry),
    /// A reaction the user had made already (by the entry `seq`): nothing was stored.
    Unchanged { room_id: Uuid, seq: i64 },
    /// The change breaks a rule of the log: nothing was stored and no seq was used.
    Refused(Refusal),
}

impl Appended {
    /// The stored entry, new or original.
    pub fn entry(&self) -> Option<&LogEntry> {
        match self {
            Appended::Stored(entry) | Appended::Duplicate(entry) => Some(entry),
            Appended::Unchanged { .. } | Appended::Refused(_) => None,
        }
    }
}

/// Why the log refused a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No message has this seq in the room (an edit, deletion or reaction is not a message).
    NoSuchMessage { seq: i64 },
    /// The message was deleted.
    Deleted { seq: i64 },
    /// Only the author may edit a message.
    NotAuthor,
    /// Only the author or the room's owner may delete a message.
    NotAuthorOrOwner,
    /// The message is older than the edit window.
    EditWindowClosed,
    /// The message carries the most distinct emojis allowed.
    TooManyReactions { max: usize },
    /// The user has no such reaction on the message.
    NoSuchReaction,
}

/// Several users' reactions with one emoji to a message, as history shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReactionCount {
    pub emoji: String,
    pub count: u32,
    /// Whether the user reading the history is one of them.
    pub me: bool,
}

/// A message of a history page in its current state, with what others did to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryMessage {
    /// The message (its body is [`Body::Message`]).
    pub entry: LogEntry,
    /// Its reactions, by emoji, in the order each emoji was first used.
    pub reactions: Vec<ReactionCount>,
    /// How many messages (not deleted) reply to it.
    pub replies: u32,
}

impl HistoryMessage {
    /// A message with no reactions or replies.
    pub fn plain(entry: LogEntry) -> Self {
        HistoryMessage {
            entry,
            reactions: Vec::new(),
            replies: 0,
        }
    }
}

/// A history request: newest first, with cursors and filters (PROTOCOL §5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryQuery {
    /// At most this many messages (the handler clamps it to 1..=200).
    pub limit: u32,
    /// Only messages older than this seq.
    pub before_seq: Option<i64>,
    /// Only messages newer than this seq.
    pub after_seq: Option<i64>,
    /// Only messages by this username (case-insensitive).
    pub sender: Option<String>,
    /// Only messages containing this text (case-insensitive).
    pub contains: Option<String>,
    /// Only messages created at or after this time.
    pub since: Option<OffsetDateTime>,
    /// Only messages created at or before this time.
    pub until: Option<OffsetDateTime>,
    /// Only the thread of this message: the message itself and its replies.
    pub thread: Option<i64>,
    /// The user reading, whose own reactions are marked `me`.
    pub viewer: Option<Uuid>,
}

impl HistoryQuery {
    /// The newest `limit` messages, unfiltered.
    pub fn latest(limit: u32) -> Self {
        HistoryQuery {
            limit,
            before_seq: None,
            after_seq: None,
            sender: None,
            contains: None,
            since: None,
            until: None,
            thread: None,
            viewer: None,
        }
    }
}

/// One page of history, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    pub messages: Vec<HistoryMessage>,
    /// The cursor for the next older page: the smallest seq on this page.
    pub next_before: Option<i64>,
    /// Whether older messages matching the query exist.
    pub has_more: bool,
    /// The room's newest seq when the page was read, in the same snapshot: the page's messages include every edit,
    /// deletion and reaction up to it, so a client applies to them only the entries after it.
    pub as_of: i64,
}

/// A full-text search over the messages of the rooms a user is a member of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchQuery {
    /// Whose rooms are searched.
    pub user_id: Uuid,
    /// The words to find, all of them, as the user typed them.
    pub words: String,
    /// Only this room.
    pub room_id: Option<Uuid>,
    pub limit: u32,
    /// How many better results to skip (the previous page's `next`).
    pub offset: u64,
}

/// One message found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchHit {
    pub room_id: Uuid,
    pub room: String,
    pub seq: i64,
    pub username: String,
    /// The matching part of the message, each matching word between `**` marks.
    pub snippet: String,
    pub created_at: OffsetDateTime,
}

/// A page of search results, best first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    pub results: Vec<SearchHit>,
    /// The cursor of the next page, when there is one.
    pub next: Option<u64>,
}

/// The marks a search snippet puts around each matching word.
pub const HIGHLIGHT: &str = "**";

/// A limit whose refusals are counted (the `limit` label of `palaver_rate_limited_total`) and audited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Limit {
    /// HTTP requests per client address (`http_requests_per_minute`).
    HttpRequests,
    /// Registrations per client address (`registrations_per_hour`).
    Registrations,
    /// Failed logins per account and per address (`login_failure_limit`, `login_ip_failure_limit`).
    LoginFailures,
    /// WebSocket commands per user (`ws_message_limit`).
    WsMessages,
    /// Open WebSockets per user (`ws_connections_per_user`).
    ConnectionsPerUser,
    /// Open WebSockets per client address (`ws_connections_per_ip`).
    ConnectionsPerIp,
    /// Wrong private-room passwords per user and room (`room_password_attempts`).
    RoomPassword,
}

impl Limit {
    /// The limit's name in metrics and the audit log.
    pub fn label(self) -> &'static str {
        match self {
            Limit::HttpRequests => "http_requests",
            Limit::Registrations => "registrations",
            Limit::LoginFailures => "login_failures",
            Limit::WsMessages => "ws_messages",
            Limit::ConnectionsPerUser => "connections_per_user",
            Limit::ConnectionsPerIp => "connections_per_ip",
            Limit::RoomPassword => "room_password",
        }
    }
}

/// A security event, for the audit log: what the chat rules report (rooms, room passwords) and what the runtime
/// records about accounts, tokens, limits and connections. Never holds a password, token or message body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecurityEvent {
    /// An account was created.
    Registered,
    /// A login succeeded.
    LoggedIn,
    /// A login with a wrong password or an unknown account.
    LoginFailed,
    /// A token was revoked by a logout, closing this many of its sockets.
    LoggedOut {
        sockets_closed: usize,
    },
    /// A presented token was refused.
    TokenRejected {
        reason: TokenRejection,
    },
    /// A request or command was refused by a limit (recorded at most once a minute per limit and actor).
    RateLimited {
        limit: Limit,
    },
    /// A WebSocket was closed for policy (1008) or as a slow consumer (1013).
    ConnectionClosed {
        code: u16,
        reason: String,
    },
    RoomCreated {
        room: String,
        private: bool,
    },
    RoomDeleted {
        room: String,
    },
    /// A moderator removed a member from a room (they may join again).
    MemberKicked {
        room: String,
        username: String,
        reason: Option<String>,
    },
    /// A wrong password for a private room.
    RoomPasswordFailed {
        room: String,
    },
    /// A room password refused untried: too many recent failures (recorded as [`SecurityEvent::RateLimited`] with
    /// [`Limit::RoomPassword`] and the room).
    RoomPasswordLocked {
        room: String,
    },
}

impl SecurityEvent {
    /// The event's name in the audit log.
    pub fn name(&self) -> &'static str {
        match self {
            SecurityEvent::Registered => "register",
            SecurityEvent::LoggedIn | SecurityEvent::LoginFailed => "login",
            SecurityEvent::LoggedOut { .. } => "logout",
            SecurityEvent::TokenRejected { .. } => "token_rejected",
            SecurityEvent::RateLimited { .. } | SecurityEvent::RoomPasswordLocked { .. } => {
                "rate_limited"
            }
            SecurityEvent::ConnectionClosed { .. } => "connection_closed",
            SecurityEvent::RoomCreated { .. } => "room_created",
            SecurityEvent::RoomDeleted { .. } => "room_deleted",
            SecurityEvent::RoomPasswordFailed { .. } => "room_password_failed",
            SecurityEvent::MemberKicked { .. } => "member_kicked",
        }
    }

    /// `success`, `failure` or `denied`, as the audit log's outcome column has it.
    pub fn outcome(&self) -> &'static str {
        match self {
            SecurityEvent::Registered
            | SecurityEvent::LoggedIn
            | SecurityEvent::LoggedOut { .. }
            | SecurityEvent::RoomCreated { .. }
            | SecurityEvent::RoomDeleted { .. }
            | SecurityEvent::MemberKicked { .. } => "success",
            SecurityEvent::LoginFailed | SecurityEvent::RoomPasswordFailed { .. } => "failure",
            SecurityEvent::TokenRejected { .. }
            | SecurityEvent::RateLimited { .. }
            | SecurityEvent::RoomPasswordLocked { .. }
            | SecurityEvent::ConnectionClosed { .. } => "denied",
        }
    }

    /// The limit a refusal event is about, if it is one.
    pub fn limit(&self) -> Option<Limit> {
        match self {
            SecurityEvent::RateLimited { limit } => Some(*limit),
            SecurityEvent::RoomPasswordLocked { .. } => Some(Limit::RoomPassword),
            _ => None,
        }
    }

    /// The event's details, as the audit log's `details` object has them.
    pub fn details(&self) -> serde_json::Value {
        use serde_json::json;
        match self {
            SecurityEvent::Registered | SecurityEvent::LoggedIn => json!({}),
            SecurityEvent::LoginFailed => json!({"reason": "invalid_credentials"}),
            SecurityEvent::LoggedOut { sockets_closed } => {
                json!({"sockets_closed": sockets_closed})
            }
            SecurityEvent::TokenRejected { reason } => json!({"reason": reason.as_str()}),
            SecurityEvent::RateLimited { limit } => json!({"limit": limit.label()}),
            SecurityEvent::ConnectionClosed { code, reason } => {
                json!({"code": code, "reason": reason})
            }
            SecurityEvent::RoomCreated { room, private } => {
                json!({"room": room, "private": private})
            }
            SecurityEvent::RoomDeleted { room } | SecurityEvent::RoomPasswordFailed { room } => {
                json!({"room": room})
            }
            SecurityEvent::MemberKicked {
                room,
                username,
                reason,
            } => json!({"room": room, "username": username, "reason": reason}),
            SecurityEvent::RoomPasswordLocked { room } => {
                json!({"room": room, "limit": Limit::RoomPassword.label()})
            }
        }
    }
}

/// A security-relevant event for the audit log. Never holds a password, token or message body.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEvent {
    pub at: OffsetDateTime,
    /// What happened, e.g. `login`, `register`, `token_rejected`.
    pub event: String,
    pub user_id: Option<Uuid>,
    pub username: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// `success`, `failure` or `denied`.
    pub outcome: String,
    pub details: serde_json::Value,
}
