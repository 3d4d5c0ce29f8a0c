//! The `Context` every handler runs over, and the small traits it is made of. The runtime implements them with
//! PostgreSQL or SQLite, bcrypt and JWT; the `testing` module (feature `testing`) implements them in memory for unit tests.

use std::future::Future;
use std::pin::Pin;

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::{CredentialError, StoreError, TokenRejection};
use crate::event::{Broadcast, ConnectionId, Subscribed, Unsubscribed};
use crate::model::{
    Appended, AuditEvent, HistoryPage, HistoryQuery, IssuedToken, LogEntry, Member, NewEntry,
    NewRoom, NewUser, Principal, ReadPoint, ReadState, Role, Room, SearchPage, SearchQuery,
    SecurityEvent, TokenClaims, User,
};

/// Everything a handler may use. Handlers never see warp, SQL or sockets: only this.
pub trait Context: Send + Sync {
    /// The durable record: users, rooms, memberships, messages.
    fn store(&self) -> &dyn Store;
    /// Password hashing and token signing.
    fn credentials(&self) -> &dyn Credentials;
    /// The current time.
    fn clock(&self) -> &dyn Clock;
    /// Which connections are subscribed to which rooms on this node, and the way to reach them.
    fn hub(&self) -> &dyn Hub;
    /// Delivery of room events to the room's subscribers on every node.
    fn broker(&self) -> &dyn Broker;
    /// Who is in which room, across every node.
    fn presence(&self) -> &dyn Presence;
    /// The configured limits the rules check.
    fn limits(&self) -> &Limits;
    /// Where chat messages are posted: stored first, then delivered in seq order.
    fn messages(&self) -> &dyn MessageLog;
    /// Throttled attempts and the audit trail of security events.
    fn guard(&self) -> &dyn Guard;
    /// Read receipts: a member's read point moved, for the room to be told (at most once a second per member).
    fn receipts(&self) -> &dyn Receipts;
}

/// Tells a room where its members have read to. A member scrolling through a room moves their read point many times
/// a second; the room hears of it at most once a second per member and room, and always of the latest point: a move
/// inside the second is sent when the second is over.
pub trait Receipts: Send + Sync {
    /// The member `user_id` (called `username`) of the room `room_id` (called `room`) has read through `seq`.
    fn moved(&self, room_id: Uuid, room: &str, user_id: Uuid, username: &str, seq: i64);
}

/// Security bookkeeping the rules consult. Guessing a secret (a private room's password) is slowed by counting
/// failures per user and target, and what a security review needs afterwards is recorded in the audit log.
pub trait Guard: Send + Sync {
    /// Whether `attempt` may be tried now: false once its recent failures reach the configured limit.
    fn may_try(&self, attempt: &Attempt) -> bool;
    /// Counts one failed `attempt`.
    fn failed(&self, attempt: &Attempt);
    /// Records `event`, done by `principal`, in the audit log. Never blocks: the log is written in the background.
    fn record(&self, principal: &Principal, event: SecurityEvent);
}

/// Something whose failures are counted, so that guessing it is slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Attempt {
    /// A user trying a private room's password.
    RoomPassword { user_id: Uuid, room_id: Uuid },
}

/// Posting chat messages. Implementations store the message durably (idempotently by sender and `client_msg_id`),
/// and only once it is committed deliver it to the room's subscribers; the messages of a room are delivered in seq
/// order. A repeat is delivered to nobody. (The runtime batches many posts into one transaction.)
#[async_trait]
pub trait MessageLog: Send + Sync {
    /// Takes `message` for the room named `room` in line: posts submitted one after another are stored (and get
    /// seqs) in that order. Returns once it is in line; the returned future resolves once it is stored and delivered,
    /// so a sender can have several posts in flight.
    async fn submit(&self, room: &str, message: NewEntry) -> Result<Posted, StoreError>;

    /// Submits `message` and waits until it is stored and delivered.
    async fn post(&self, room: &str, message: NewEntry) -> Result<Appended, StoreError> {
        self.submit(room, message).await?.await
    }
}

/// A submitted post: resolves to its outcome once the message is stored and delivered.
pub type Posted = Pin<Box<dyn Future<Output = Result<Appended, StoreError>> + Send + 'static>>;

/// The configured limits that chat rules enforce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// The largest message content, in bytes of UTF-8.
    pub max_message_bytes: usize,
    /// How many rooms one user may own.
    pub rooms_per_user: u64,
    /// The most messages one `join_room` with `after_seq` replays.
    pub max_replay: u32,
    /// How long after posting a message its author may edit it, in seconds; 0 is no limit.
    pub edit_window_secs: u64,
    /// The most distinct emojis one message may carry as reactions.
    pub max_reactions_per_message: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_message_bytes: 65_536,
            rooms_per_user: 50,
            max_replay: 10_000,
            edit_window_secs: 0,
            max_reactions_per_message: 20,
        }
    }
}

/// The most events held for one connection and room while it catches up (see [`Hub::subscribe_held`]); past it the
/// connection is too far behind and is closed as a slow consumer (it can resume again).
pub const MAX_HELD_EVENTS: usize = 10_000;

/// Room subscriptions of this node's connections, and delivery to them. Every method is quick and never waits:
/// delivery queues the event on each connection (whose own task writes it), so one slow client delays nobody.
pub trait Hub: Send + Sync {
    /// Subscribes connection `conn` of `user_id` to a room.
    fn subscribe(&self, conn: ConnectionId, user_id: Uuid, room_id: Uuid, room: &str)
    -> Subscribed;
    /// Subscribes like [`Hub::subscribe`], but holds the room's events for this connection until [`Hub::release`]:
    /// a resuming client is subscribed before its replay is read, so nothing published meanwhile is missed.
    fn subscribe_held(
        &self,
        conn: ConnectionId,
        user_id: Uuid,
        room_id: Uuid,
        room: &str,
    ) -> Subscribed;
    /// Delivers what was held for `conn` in the room, except messages with a seq up to `through_seq` (the replay
    /// already had them), and goes live.
    fn release(&self, conn: ConnectionId, room_id: Uuid, through_seq: i64);
    /// Unsubscribes one connection from a room; `None` if it was not subscribed.
    fn unsubscribe(&self, conn: ConnectionId, room_id: Uuid) -> Option<Unsubscribed>;
    /// Unsubscribes every connection of `user_id` from a room (leaving it); the connections that were subscribed.
    fn unsubscribe_user(&self, user_id: Uuid, room_id: Uuid) -> Vec<ConnectionId>;
    /// Subscribes every connection of `user_id` on this node to a room (a direct room just opened); each with what
    /// subscribing it did.
    fn subscribe_user(
        &self,
        user_id: Uuid,
        room_id: Uuid,
        room: &str,
    ) -> Vec<(ConnectionId, Subscribed)>;
    /// Unsubscribes a closing connection from every room.
    fn unsubscribe_all(&self, conn: ConnectionId) -> Vec<Unsubscribed>;
    /// Forgets a deleted room's subscriptions (after its deletion was broadcast).
    fn drop_room(&self, room_id: Uuid);
    /// The rooms `conn` is subscribed to, as (id, name), in the order it joined them.
    fn rooms_of(&self, conn: ConnectionId) -> Vec<(Uuid, String)>;
    /// The users with at least one connection subscribed to the room.
    fn online_users(&self, room_id: Uuid) -> Vec<Uuid>;
    /// Delivers `broadcast` to the room's subscribed connections (but those of `skip_user`).
    fn publish(&self, broadcast: Broadcast);
}

/// Delivery of room events to every node's subscribers, and the end of a user's subscriptions to a room on every
/// node: on one node, straight to the local hub; in a cluster, also to the other nodes, whose hubs deliver to (or
/// unsubscribe) theirs. Quick and never waits, like the hub.
pub trait Broker: Send + Sync {
    /// Delivers `broadcast` to the room's subscribed connections on every node (but those of its `skip_user`).
    fn publish(&self, broadcast: Broadcast);

    /// Publishes a newly stored log entry like [`Broker::publish`], and calls `delivered` once this node's
    /// subscribers have it queued, so that the sender's ack, sent from `delivered`, follows its own message frame
    /// (PROTOCOL §6.1). On one node that is at once; a broker that orders entries in a task of its own calls it
    /// there.
    fn publish_stored(&self, broadcast: Broadcast, delivered: Delivered) {
        self.publish(broadcast);
        delivered();
    }

    /// The user's membership of the room (called `room`) has ended: ends the subscriptions to it of every connection
    /// of `user_id` on every node, like [`Hub::unsubscribe_user`] does on this one. Returns this node's connections
    /// that were unsubscribed (the other nodes' are theirs to account for). Every broker implements it: a default
    /// that only unsubscribed this node's connections would leave the user's sockets elsewhere in the room.
    fn unsubscribe_user(&self, user_id: Uuid, room_id: Uuid, room: &str) -> Vec<ConnectionId>;

    /// The user (called `username`) is a member of the direct room `room_id` (called `room`, whose newest seq is
    /// `last_seq`) with the user called `with`: every connection of theirs on every node is subscribed to it and told
    /// (`dm_opened`). Returns this node's connections that were newly subscribed. Every broker implements it, like
    /// [`Broker::unsubscribe_user`]: the user's sockets on other nodes must hear of the room too.
    fn open_direct(
        &self,
        user_id: Uuid,
        username: &str,
        room_id: Uuid,
        room: &str,
        last_seq: i64,
        with: &str,
    ) -> Vec<ConnectionId>;

    /// A connection of this node subscribed to the room named `room`, knowing its messages through `from_seq` (its
    /// replay brings those): from now on this node needs the room's events, and its messages after `from_seq` in
    /// order. On one node every event is local already, so there is nothing to do.
    fn watch(&self, room_id: Uuid, room: &str, from_seq: i64) {
        let _ = (room_id, room, from_seq);
    }
}

/// What runs once an entry is delivered on this node (see [`Broker::publish_stored`]).
pub type Delivered = Box<dyn FnOnce() + Send>;

/// Who is in which room, across every node. The local hub knows this node's connections; presence turns "the user's
/// first (or last) connection on this node" into "first (or last) anywhere", which is when the others are told.
pub trait Presence: Send + Sync {
    /// The first connection of the user (called `username`) on this node subscribed to the room; whether it is
    /// their first anywhere.
    fn arrived(&self, room_id: Uuid, user_id: Uuid, username: &str) -> bool;
    /// The user's last connection on this node left the room; whether they have none left anywhere.
    fn departed(&self, room_id: Uuid, user_id: Uuid) -> bool;
    /// The users with at least one connection subscribed to the room, on any node.
    fn online_users(&self, room_id: Uuid) -> Vec<Uuid>;
}

/// The current time, behind a trait so tests can hold it still or move it.
pub trait Clock: Send + Sync {
    /// Now, in UTC.
    fn now(&self) -> OffsetDateTime;
}

/// The durable record. Every method that changes more than one row does so in one transaction: all or nothing.
#[async_trait]
pub trait Store: Send + Sync {
    /// Answers when the database answers (for `/readyz`).
    async fn ping(&self) -> Result<(), StoreError>;

    /// Stores a new account; [`StoreError::Conflict`] names the username or email already taken.
    async fn create_user(&self, user: NewUser) -> Result<User, StoreError>;
    /// The account with this id.
    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError>;
    /// The account whose username (case-insensitive) or email (case-insensitive) is `login`.
    async fn user_by_login(&self, login: &str) -> Result<Option<User>, StoreError>;

    /// Records that the token `token_id` is revoked until `expires_at`; revoking twice is harmless.
    async fn revoke_token(
        &self,
        token_id: &str,
        user_id: Uuid,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError>;
    /// Whether `token_id` has been revoked.
    async fn is_token_revoked(&self, token_id: &str) -> Result<bool, StoreError>;
    /// Another node revoked `token_id` (it is recorded already): a store that caches answers of
    /// [`Store::is_token_revoked`] must answer true from now on.
    fn learn_revoked(&self, token_id: &str) {
        let _ = token_id;
    }
    /// Forgets revocations of tokens that expired before `now`; returns how many.
    async fn purge_revoked_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError>;

    /// Records that the WebSocket ticket `ticket_id` (valid until `expires_at`) is used: true the first time, false
    /// when it had been used already, by any node.
    async fn use_ticket(
        &self,
        ticket_id: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Forgets the use of tickets that expired before `now` (they are refused for their expiry); returns how many.
    async fn purge_used_tickets(&self, now: OffsetDateTime) -> Result<u64, StoreError>;

    /// Stores a room and makes its owner a member, in one transaction.
    async fn create_room(&self, room: NewRoom) -> Result<Room, StoreError>;
    /// The room with this name (case-insensitive).
    async fn room_by_name(&self, name: &str) -> Result<Option<Room>, StoreError>;
    /// Every room, oldest first.
    async fn list_rooms(&self) -> Result<Vec<Room>, StoreError>;
    /// The newest seq of each room among `room_ids` that exists, in no particular order (one query, however many
    /// rooms: a cluster node checks every room it serves this way, so a lost last message is caught up).
    async fn last_seqs(&self, room_ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>, StoreError>;
    /// How many rooms `owner_id` owns (for the per-user room quota).
    async fn count_rooms_owned(&self, owner_id: Uuid) -> Result<u64, StoreError>;
    /// Opens the direct room between `room.owner_id` and `other`: creates it (`room`, with [`crate::model::direct_key`] of
    /// the two)
    /// the first time, finds it after; either way both are members afterwards (again, if one had left). Returns the
    /// room and whether it was created, in one transaction.
    async fn open_direct(&self, room: NewRoom, other: Uuid) -> Result<(Room, bool), StoreError>;
    /// Records that `blocker` refuses direct messages from `blocked` (or, with `blocked_now` false, no longer);
    /// whether anything changed.
    async fn set_blocked(
        &self,
        blocker: Uuid,
        blocked: Uuid,
        blocked_now: bool,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Whether `blocker` refuses direct messages from `blocked`.
    async fn is_blocked(&self, blocker: Uuid, blocked: Uuid) -> Result<bool, StoreError>;
    /// Deletes a room with its messages and memberships, in one transaction; false if there was no such room.
    async fn delete_room(&self, room_id: Uuid) -> Result<bool, StoreError>;

    /// Makes `user_id` a member of `room_id`; false if they already were.
    async fn add_member(
        &self,
        room_id: Uuid,
        user_id: Uuid,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError>;
    /// Ends a membership; false if there was none.
    async fn remove_member(&self, room_id: Uuid, user_id: Uuid) -> Result<bool, StoreError>;
    /// Whether `user_id` is a member of `room_id`.
    async fn is_member(&self, room_id: Uuid, user_id: Uuid) -> Result<bool, StoreError>;
    /// The member's role in the room; `None` if `user_id` is not a member.
    async fn role_of(&self, room_id: Uuid, user_id: Uuid) -> Result<Option<Role>, StoreError>;
    /// Gives a member a role other than owner; false if `user_id` is not a member.
    async fn set_role(&self, room_id: Uuid, user_id: Uuid, role: Role) -> Result<bool, StoreError>;
    /// Makes the member `to` the room's owner and its owner `from` an admin, in one transaction; false (and nothing
    /// changed) if `from` is not the owner or `to` not a member.
    async fn transfer_ownership(
        &self,
        room_id: Uuid,
        from: Uuid,
        to: Uuid,
    ) -> Result<bool, StoreError>;
    /// The members of a room, by username.
    async fn members(&self, room_id: Uuid) -> Result<Vec<Member>, StoreError>;
    /// The ids of the rooms `user_id` is a member of, in no particular order.
    async fn rooms_of_member(&self, user_id: Uuid) -> Result<Vec<Uuid>, StoreError>;
    /// Moves the member's read point in the room forward to `seq` (clamped to the room's newest seq; never
    /// backwards), in one statement; `None` if `user_id` is not a member.
    async fn mark_read(
        &self,
        room_id: Uuid,
        user_id: Uuid,
        seq: i64,
    ) -> Result<Option<ReadPoint>, StoreError>;
    /// The user's read state in every room they are a member of, in no particular order: the read point, and the
    /// messages by others after it that are not deleted, counted from the log through its (room_id, seq) index.
    async fn read_state(&self, user_id: Uuid) -> Result<Vec<ReadState>, StoreError>;

    /// Puts a batch of entries in their rooms' logs in one transaction, giving each the next seq of its room
    /// (gapless, in batch order) and applying what it does to the message it targets, by the rules of
    /// [`crate::room_log::plan`]. An entry repeating an earlier (user, client_msg_id) is not stored again: its
    /// outcome is the original; a change the rules refuse is not stored and takes no seq. If the batch fails, none
    /// of it is stored and no seq is used. Outcomes are in input order.
    async fn append_messages(&self, batch: &[NewEntry]) -> Result<Vec<Appended>, StoreError>;
    /// The stored entries among `ids`, of the rooms `room_ids`, ordered by room and seq. After a commit whose
    /// answer was lost, this tells which of its messages were stored after all, so it answers only once no write to
    /// those rooms can still commit: an answer given while the lost commit is still landing would leave a stored
    /// message undelivered.
    async fn messages_by_id(
        &self,
        room_ids: &[Uuid],
        ids: &[Uuid],
    ) -> Result<Vec<LogEntry>, StoreError>;
    /// A page of a room's messages in their current state, newest first: edited content, deletions as tombstones,
    /// reactions counted per emoji (`me` for `query.viewer`) and replies counted.
    async fn history(&self, room_id: Uuid, query: &HistoryQuery)
    -> Result<HistoryPage, StoreError>;
    /// The room's log after `after_seq`, oldest first, at most `limit` entries of every kind: what a client that
    /// knows the room through `after_seq` is missing. Messages are in their current state (an edit replayed after
    /// its message repeats what the message shows).
    async fn log_after(
        &self,
        room_id: Uuid,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<LogEntry>, StoreError>;

    /// Messages (not deleted, in their current text) of the rooms `query.user_id` is a member of containing every
    /// word of `query.words` (ignoring case), best match first, with a snippet around the match.
    async fn search(&self, query: &SearchQuery) -> Result<SearchPage, StoreError>;

    /// Appends audit events.
    async fn record_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError>;
    /// Audit events at or after `since`, oldest first, at most `limit`.
    async fn audit_since(
        &self,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError>;
}

/// Password hashing and token signing. Hashing is slow on purpose, so implementations keep it off the async runtime.
#[async_trait]
pub trait Credentials: Send + Sync {
    /// A bcrypt hash of `password` (which validation has kept within 72 bytes).
    async fn hash_password(&self, password: &str) -> Result<String, CredentialError>;
    /// Whether `password` matches `hash`. With `None` it checks against a dummy hash and answers false, so that a
    /// login for an unknown account takes as long as one for a known account.
    async fn verify_password(
        &self,
        password: &str,
        hash: Option<&str>,
    ) -> Result<bool, CredentialError>;
    /// Signs a token for `user`, valid from `now`.
    fn issue_token(&self, user: &User, now: OffsetDateTime)
    -> Result<IssuedToken, CredentialError>;
    /// Checks a token's signature, algorithm, issuer, audience and times against `now`. Revocation is not its job.
    fn verify_token(&self, token: &str, now: OffsetDateTime)
    -> Result<TokenClaims, TokenRejection>;
}
