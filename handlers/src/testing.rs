//! An in-memory [`Context`] for unit tests: a reference [`Store`], fake but honest credentials, and a clock that
//! moves only when told. Enabled by the `testing` feature; the store conformance suite runs against it too.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::context::{
    Attempt, Clock, Context, CredentialError, Credentials, Guard, Hub, Limits, MessageLog, Posted,
    Store, StoreError, Unique,
};
use crate::error::TokenRejection;
use crate::event::{Broadcast, ConnectionId, Reply, RoomEvent, Subscribed, Unsubscribed};
use crate::model::{
    Appended, AuditEvent, HistoryPage, HistoryQuery, IssuedToken, Member, NewMessage, NewRoom,
    NewUser, Principal, Room, SecurityEvent, StoredMessage, TokenClaims, User,
};

/// A clock that stands still until [`ManualClock::advance`] moves it.
#[derive(Debug)]
pub struct ManualClock(Mutex<OffsetDateTime>);

impl ManualClock {
    /// A clock standing at `now`.
    pub fn at(now: OffsetDateTime) -> Self {
        ManualClock(Mutex::new(now))
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        *lock(&self.0) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *lock(&self.0)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A test that panicked while holding the lock has already failed; keep the data usable for its report.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[derive(Default)]
struct MemoryState {
    users: Vec<User>,
    rooms: Vec<Room>,
    members: Vec<(Uuid, Uuid, OffsetDateTime)>,
    messages: Vec<StoredMessage>,
    revoked: HashMap<String, OffsetDateTime>,
    audit: Vec<AuditEvent>,
}

/// A [`Store`] in memory with the same rules as the SQL engines: case-insensitive uniqueness, gapless seqs,
/// all-or-nothing batches.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<MemoryState>,
    /// When set, every call fails as if the database were down.
    unavailable: std::sync::atomic::AtomicBool,
    /// When set, the next append is stored but answered as if the connection broke before the answer came.
    lose_answer: std::sync::atomic::AtomicBool,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many accounts are stored.
    pub fn user_count(&self) -> usize {
        lock(&self.state).users.len()
    }

    /// How many messages are stored.
    pub fn message_count(&self) -> usize {
        lock(&self.state).messages.len()
    }

    /// Makes the next `append_messages` store its batch and then fail with [`StoreError::Unavailable`], like a
    /// commit whose answer was lost.
    pub fn lose_next_answer(&self) {
        self.lose_answer.store(true, Ordering::SeqCst);
    }

    /// Makes every following call fail with [`StoreError::Unavailable`] (or work again).
    pub fn set_unavailable(&self, unavailable: bool) {
        self.unavailable.store(unavailable, Ordering::SeqCst);
    }

    fn state(&self) -> Result<MutexGuard<'_, MemoryState>, StoreError> {
        if self.unavailable.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable("memory store switched off".into()));
        }
        Ok(lock(&self.state))
    }
}

fn username_of(state: &MemoryState, user_id: Uuid) -> Result<String, StoreError> {
    state
        .users
        .iter()
        .find(|user| user.id == user_id)
        .map(|user| user.username.clone())
        .ok_or_else(|| StoreError::Backend(format!("no user {user_id}")))
}

fn matches_query(message: &StoredMessage, query: &HistoryQuery) -> bool {
    query.before_seq.is_none_or(|before| message.seq < before)
        && query.after_seq.is_none_or(|after| message.seq > after)
        && query
            .sender
            .as_ref()
            .is_none_or(|sender| message.username.eq_ignore_ascii_case(sender))
        && query.contains.as_ref().is_none_or(|needle| {
            message
                .content
                .to_lowercase()
                .contains(&needle.to_lowercase())
        })
        && query.since.is_none_or(|since| message.created_at >= since)
        && query.until.is_none_or(|until| message.created_at <= until)
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        self.state().map(drop)
    }

    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        let mut state = self.state()?;
        if state
            .users
            .iter()
            .any(|u| u.username.eq_ignore_ascii_case(&user.username))
        {
            return Err(StoreError::Conflict(Unique::Username));
        }
        if state
            .users
            .iter()
            .any(|u| u.email.eq_ignore_ascii_case(&user.email))
        {
            return Err(StoreError::Conflict(Unique::Email));
        }
        let user = User {
            id: user.id,
            username: user.username,
            email: user.email,
            password_hash: user.password_hash,
            created_at: user.created_at,
            updated_at: user.created_at,
        };
        state.users.push(user.clone());
        Ok(user)
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        Ok(self.state()?.users.iter().find(|u| u.id == id).cloned())
    }

    async fn user_by_login(&self, login: &str) -> Result<Option<User>, StoreError> {
        let state = self.state()?;
        Ok(state
            .users
            .iter()
            .find(|u| u.username.eq_ignore_ascii_case(login) || u.email.eq_ignore_ascii_case(login))
            .cloned())
    }

    async fn revoke_token(
        &self,
        token_id: &str,
        user_id: Uuid,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let mut state = self.state()?;
        if !state.users.iter().any(|u| u.id == user_id) {
            return Err(StoreError::Backend(format!("no user {user_id}")));
        }
        state
            .revoked
            .entry(token_id.to_owned())
            .or_insert(expires_at);
        Ok(())
    }

    async fn is_token_revoked(&self, token_id: &str) -> Result<bool, StoreError> {
        Ok(self.state()?.revoked.contains_key(token_id))
    }

    async fn purge_revoked_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut state = self.state()?;
        let before = state.revoked.len();
        state.revoked.retain(|_, expires_at| *expires_at >= now);
        Ok((before - state.revoked.len()) as u64)
    }

    async fn create_room(&self, room: NewRoom) -> Result<Room, StoreError> {
        let mut state = self.state()?;
        if state
            .rooms
            .iter()
            .any(|r| r.name.to_lowercase() == room.name.to_lowercase())
        {
            return Err(StoreError::Conflict(Unique::RoomName));
        }
        username_of(&state, room.owner_id)?;
        let room = Room {
            id: room.id,
            name: room.name,
            private: room.private,
            password_hash: room.password_hash,
            owner_id: room.owner_id,
            created_at: room.created_at,
            last_seq: 0,
        };
        state
            .members
            .push((room.id, room.owner_id, room.created_at));
        state.rooms.push(room.clone());
        Ok(room)
    }

    async fn room_by_name(&self, name: &str) -> Result<Option<Room>, StoreError> {
        let name = name.to_lowercase();
        Ok(self
            .state()?
            .rooms
            .iter()
            .find(|r| r.name.to_lowercase() == name)
            .cloned())
    }

    async fn list_rooms(&self) -> Result<Vec<Room>, StoreError> {
        let mut rooms = self.state()?.rooms.clone();
        // Stable: rooms created at the same instant stay in the order they were stored.
        rooms.sort_by_key(|room| room.created_at);
        Ok(rooms)
    }

    async fn count_rooms_owned(&self, owner_id: Uuid) -> Result<u64, StoreError> {
        Ok(self
            .state()?
            .rooms
            .iter()
            .filter(|r| r.owner_id == owner_id)
            .count() as u64)
    }

    async fn delete_room(&self, room_id: Uuid) -> Result<bool, StoreError> {
        let mut state = self.state()?;
        let before = state.rooms.len();
        state.rooms.retain(|r| r.id != room_id);
        state.members.retain(|(room, _, _)| *room != room_id);
        state.messages.retain(|m| m.room_id != room_id);
        Ok(state.rooms.len() < before)
    }

    async fn add_member(
        &self,
        room_id: Uuid,
        user_id: Uuid,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut state = self.state()?;
        if !state.rooms.iter().any(|r| r.id == room_id) {
            return Err(StoreError::Backend(format!("no room {room_id}")));
        }
        username_of(&state, user_id)?;
        if state
            .members
            .iter()
            .any(|(room, user, _)| *room == room_id && *user == user_id)
        {
            return Ok(false);
        }
        state.members.push((room_id, user_id, at));
        Ok(true)
    }

    async fn remove_member(&self, room_id: Uuid, user_id: Uuid) -> Result<bool, StoreError> {
        let mut state = self.state()?;
        let before = state.members.len();
        state
            .members
            .retain(|(room, user, _)| !(*room == room_id && *user == user_id));
        Ok(state.members.len() < before)
    }

    async fn is_member(&self, room_id: Uuid, user_id: Uuid) -> Result<bool, StoreError> {
        Ok(self
            .state()?
            .members
            .iter()
            .any(|(room, user, _)| *room == room_id && *user == user_id))
    }

    async fn rooms_of_member(&self, user_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
        Ok(self
            .state()?
            .members
            .iter()
            .filter(|(_, user, _)| *user == user_id)
            .map(|(room, _, _)| *room)
            .collect())
    }

    async fn members(&self, room_id: Uuid) -> Result<Vec<Member>, StoreError> {
        let state = self.state()?;
        let mut members = state
            .members
            .iter()
            .filter(|(room, _, _)| *room == room_id)
            .map(|(_, user_id, _)| {
                Ok(Member {
                    user_id: *user_id,
                    username: username_of(&state, *user_id)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        members.sort_by_key(|member| member.username.to_lowercase());
        Ok(members)
    }

    async fn append_messages(&self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError> {
        let mut guard = self.state()?;
        // Work on a copy and swap it in at the end: a failure half-way leaves the store untouched.
        let mut state = MemoryState {
            users: guard.users.clone(),
            rooms: guard.rooms.clone(),
            members: guard.members.clone(),
            messages: guard.messages.clone(),
            revoked: HashMap::new(),
            audit: Vec::new(),
        };
        let mut outcomes = Vec::with_capacity(batch.len());
        for new in batch {
            if let Some(key) = &new.client_msg_id {
                let original = state
                    .messages
                    .iter()
                    .find(|m| m.user_id == new.user_id && m.client_msg_id.as_ref() == Some(key));
                if let Some(original) = original {
                    outcomes.push(Appended::Duplicate(original.clone()));
                    continue;
                }
            }
            let username = username_of(&state, new.user_id)?;
            let room = state
                .rooms
                .iter_mut()
                .find(|r| r.id == new.room_id)
                .ok_or_else(|| StoreError::Backend(format!("no room {}", new.room_id)))?;
            room.last_seq += 1;
            let stored = StoredMessage {
                id: new.id,
                room_id: new.room_id,
                seq: room.last_seq,
                user_id: new.user_id,
                username,
                content: new.content.clone(),
                client_msg_id: new.client_msg_id.clone(),
                created_at: new.created_at,
            };
            state.messages.push(stored.clone());
            outcomes.push(Appended::Stored(stored));
        }
        guard.rooms = state.rooms;
        guard.messages = state.messages;
        if self.lose_answer.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "the answer to the commit was lost".into(),
            ));
        }
        Ok(outcomes)
    }

    async fn messages_by_id(&self, ids: &[Uuid]) -> Result<Vec<StoredMessage>, StoreError> {
        let state = self.state()?;
        let mut found: Vec<StoredMessage> = state
            .messages
            .iter()
            .filter(|m| ids.contains(&m.id))
            .cloned()
            .collect();
        found.sort_by_key(|m| (m.room_id, m.seq));
        Ok(found)
    }

    async fn history(
        &self,
        room_id: Uuid,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, StoreError> {
        let state = self.state()?;
        let mut matching: Vec<&StoredMessage> = state
            .messages
            .iter()
            .filter(|m| m.room_id == room_id && matches_query(m, query))
            .collect();
        matching.sort_by_key(|m| std::cmp::Reverse(m.seq));
        let limit = query.limit as usize;
        let has_more = matching.len() > limit;
        let messages: Vec<StoredMessage> = matching.into_iter().take(limit).cloned().collect();
        let next_before = messages.last().map(|m| m.seq);
        Ok(HistoryPage {
            messages,
            next_before,
            has_more,
        })
    }

    async fn record_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        self.state()?.audit.extend_from_slice(events);
        Ok(())
    }

    async fn audit_since(
        &self,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let state = self.state()?;
        let mut events: Vec<AuditEvent> = state
            .audit
            .iter()
            .filter(|e| e.at >= since)
            .cloned()
            .collect();
        events.sort_by_key(|e| e.at);
        events.truncate(limit as usize);
        Ok(events)
    }
}

/// Credentials that behave like the real ones (hashes that hide the password, tokens that expire) but cost nothing.
#[derive(Default)]
pub struct FakeCredentials {
    tokens: Mutex<HashMap<String, TokenClaims>>,
    verifications: AtomicU64,
}

impl FakeCredentials {
    /// How many password verifications ran (a real one costs a bcrypt round, so login must do exactly one).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::SeqCst)
    }
}

/// How long fake tokens live, like the real default.
pub const FAKE_TOKEN_TTL: Duration = Duration::hours(24);

fn fake_hash(password: &str) -> String {
    let mut hasher = DefaultHasher::new();
    password.hash(&mut hasher);
    format!("fake${:016x}", hasher.finish())
}

#[async_trait]
impl Credentials for FakeCredentials {
    async fn hash_password(&self, password: &str) -> Result<String, CredentialError> {
        Ok(fake_hash(password))
    }

    async fn verify_password(
        &self,
        password: &str,
        hash: Option<&str>,
    ) -> Result<bool, CredentialError> {
        self.verifications.fetch_add(1, Ordering::SeqCst);
        Ok(hash.is_some_and(|hash| hash == fake_hash(password)))
    }

    fn issue_token(
        &self,
        user: &User,
        now: OffsetDateTime,
    ) -> Result<IssuedToken, CredentialError> {
        let token_id = Uuid::new_v4().to_string();
        let claims = TokenClaims {
            user_id: user.id,
            username: user.username.clone(),
            token_id: token_id.clone(),
            issued_at: now,
            expires_at: now + FAKE_TOKEN_TTL,
        };
        let token = format!("fake-token.{token_id}");
        lock(&self.tokens).insert(token.clone(), claims.clone());
        Ok(IssuedToken {
            token,
            token_id,
            expires_at: claims.expires_at,
        })
    }

    fn verify_token(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<TokenClaims, TokenRejection> {
        let claims = lock(&self.tokens)
            .get(token)
            .cloned()
            .ok_or(TokenRejection::Malformed)?;
        if now >= claims.expires_at {
            return Err(TokenRejection::Expired);
        }
        Ok(claims)
    }
}

/// What a connection of the [`MemoryHub`] received, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    Event(Broadcast),
    Reply(Reply),
}

#[derive(Default)]
struct HubState {
    /// (connection, user, room id, room name), in subscription order.
    subscriptions: Vec<(ConnectionId, Uuid, Uuid, String)>,
    /// Events held for (connection, room) until released.
    held: HashMap<(ConnectionId, Uuid), Vec<Broadcast>>,
    outbox: HashMap<ConnectionId, Vec<Delivery>>,
    published: Vec<Broadcast>,
}

/// A [`Hub`] that records what each connection would have received.
#[derive(Default)]
pub struct MemoryHub {
    state: Mutex<HubState>,
}

impl MemoryHub {
    /// Everything delivered to `conn` so far, oldest first, and forgets it.
    pub fn take(&self, conn: ConnectionId) -> Vec<Delivery> {
        lock(&self.state).outbox.remove(&conn).unwrap_or_default()
    }

    /// Every broadcast published so far, oldest first.
    pub fn published(&self) -> Vec<Broadcast> {
        lock(&self.state).published.clone()
    }
}

impl Hub for MemoryHub {
    fn subscribe(
        &self,
        conn: ConnectionId,
        user_id: Uuid,
        room_id: Uuid,
        room: &str,
    ) -> Subscribed {
        let mut state = lock(&self.state);
        let subs = &state.subscriptions;
        let new_for_connection = !subs.iter().any(|(c, _, r, _)| *c == conn && *r == room_id);
        let first_for_user = !subs
            .iter()
            .any(|(_, u, r, _)| *u == user_id && *r == room_id);
        if new_for_connection {
            state
                .subscriptions
                .push((conn, user_id, room_id, room.to_owned()));
        }
        Subscribed {
            new_for_connection,
            first_for_user,
        }
    }

    fn subscribe_held(
        &self,
        conn: ConnectionId,
        user_id: Uuid,
        room_id: Uuid,
        room: &str,
    ) -> Subscribed {
        let subscribed = self.subscribe(conn, user_id, room_id, room);
        lock(&self.state).held.entry((conn, room_id)).or_default();
        subscribed
    }

    fn release(&self, conn: ConnectionId, room_id: Uuid, through_seq: i64) {
        let mut state = lock(&self.state);
        let held = state.held.remove(&(conn, room_id)).unwrap_or_default();
        for broadcast in held {
            if !matches!(&broadcast.event, RoomEvent::Message(m) if m.seq <= through_seq) {
                state
                    .outbox
                    .entry(conn)
                    .or_default()
                    .push(Delivery::Event(broadcast));
            }
        }
    }

    fn unsubscribe(&self, conn: ConnectionId, room_id: Uuid) -> Option<Unsubscribed> {
        let mut state = lock(&self.state);
        state.held.remove(&(conn, room_id));
        let index = state
            .subscriptions
            .iter()
            .position(|(c, _, r, _)| *c == conn && *r == room_id)?;
        let (_, user_id, _, room) = state.subscriptions.remove(index);
        let last_for_user = !state
            .subscriptions
            .iter()
            .any(|(_, u, r, _)| *u == user_id && *r == room_id);
        Some(Unsubscribed {
            room_id,
            room,
            last_for_user,
        })
    }

    fn unsubscribe_user(&self, user_id: Uuid, room_id: Uuid) -> Vec<ConnectionId> {
        let mut state = lock(&self.state);
        let conns: Vec<ConnectionId> = state
            .subscriptions
            .iter()
            .filter(|(_, u, r, _)| *u == user_id && *r == room_id)
            .map(|(c, _, _, _)| *c)
            .collect();
        state
            .subscriptions
            .retain(|(_, u, r, _)| !(*u == user_id && *r == room_id));
        state
            .held
            .retain(|(c, r), _| !(*r == room_id && conns.contains(c)));
        conns
    }

    fn unsubscribe_all(&self, conn: ConnectionId) -> Vec<Unsubscribed> {
        let rooms: Vec<Uuid> = self.rooms_of(conn).into_iter().map(|(id, _)| id).collect();
        rooms
            .into_iter()
            .filter_map(|room_id| self.unsubscribe(conn, room_id))
            .collect()
    }

    fn drop_room(&self, room_id: Uuid) {
        let mut state = lock(&self.state);
        state.subscriptions.retain(|(_, _, r, _)| *r != room_id);
        state.held.retain(|(_, r), _| *r != room_id);
    }

    fn rooms_of(&self, conn: ConnectionId) -> Vec<(Uuid, String)> {
        let state = lock(&self.state);
        state
            .subscriptions
            .iter()
            .filter(|(c, _, _, _)| *c == conn)
            .map(|(_, _, r, n)| (*r, n.clone()))
            .collect()
    }

    fn online_users(&self, room_id: Uuid) -> Vec<Uuid> {
        let state = lock(&self.state);
        let mut users: Vec<Uuid> = state
            .subscriptions
            .iter()
            .filter(|(_, _, r, _)| *r == room_id)
            .map(|(_, u, _, _)| *u)
            .collect();
        users.sort();
        users.dedup();
        users
    }

    fn publish(&self, broadcast: Broadcast) {
        let mut state = lock(&self.state);
        let recipients: Vec<ConnectionId> = state
            .subscriptions
            .iter()
            .filter(|(_, u, r, _)| *r == broadcast.room_id && Some(*u) != broadcast.skip_user)
            .map(|(c, _, _, _)| *c)
            .collect();
        for conn in recipients {
            if let Some(held) = state.held.get_mut(&(conn, broadcast.room_id)) {
                held.push(broadcast.clone());
            } else {
                state
                    .outbox
                    .entry(conn)
                    .or_default()
                    .push(Delivery::Event(broadcast.clone()));
            }
        }
        state.published.push(broadcast);
    }

    fn send_to(&self, conn: ConnectionId, reply: Reply) {
        lock(&self.state)
            .outbox
            .entry(conn)
            .or_default()
            .push(Delivery::Reply(reply));
    }
}

/// The guard in memory: failures counted forever (no window; tests are short), events kept in order.
pub struct MemoryGuard {
    /// Failures after which an attempt is refused.
    pub limit: u32,
    failures: Mutex<HashMap<Attempt, u32>>,
    events: Mutex<Vec<(Uuid, SecurityEvent)>>,
}

impl Default for MemoryGuard {
    fn default() -> Self {
        MemoryGuard {
            limit: 5,
            failures: Mutex::default(),
            events: Mutex::default(),
        }
    }
}

impl MemoryGuard {
    /// Every event recorded so far, with the user who did it.
    pub fn events(&self) -> Vec<(Uuid, SecurityEvent)> {
        lock(&self.events).clone()
    }
}

impl Guard for MemoryGuard {
    fn may_try(&self, attempt: &Attempt) -> bool {
        lock(&self.failures).get(attempt).copied().unwrap_or(0) < self.limit
    }

    fn failed(&self, attempt: &Attempt) {
        *lock(&self.failures).entry(*attempt).or_default() += 1;
    }

    fn record(&self, principal: &Principal, event: SecurityEvent) {
        lock(&self.events).push((principal.user_id, event));
    }
}

/// The in-memory context: public fields so tests can look inside.
pub struct TestContext {
    pub store: MemoryStore,
    pub credentials: FakeCredentials,
    pub clock: ManualClock,
    pub hub: MemoryHub,
    pub guard: MemoryGuard,
    pub limits: Limits,
}

impl Default for TestContext {
    fn default() -> Self {
        Self::new()
    }
}

impl TestContext {
    /// An empty context whose clock stands at 2026-11-25 15:30:45 UTC.
    pub fn new() -> Self {
        TestContext {
            store: MemoryStore::new(),
            credentials: FakeCredentials::default(),
            clock: ManualClock::at(time::macros::datetime!(2026-11-25 15:30:45 UTC)),
            hub: MemoryHub::default(),
            guard: MemoryGuard::default(),
            limits: Limits::default(),
        }
    }

    /// Registers `username` (email `<username>@example.com`) with `password`.
    pub async fn register(&self, username: &str, password: &str) -> crate::model::UserView {
        let request = crate::actions::register::RegisterRequest {
            username: Some(username.into()),
            email: Some(format!("{username}@example.com")),
            password: Some(password.into()),
        };
        crate::actions::register::register(self, request)
            .await
            .expect("test registration is valid")
    }

    /// Logs `username` in with the password [`TestContext::register_and_login`] uses; returns the token.
    pub async fn login(&self, username: &str) -> String {
        let request = crate::actions::login::LoginRequest {
            username: Some(username.into()),
            password: Some(TEST_PASSWORD.into()),
        };
        crate::actions::login::login(self, request)
            .await
            .expect("test login is valid")
            .token
    }

    /// Registers `username` and logs in; returns the account and a token.
    pub async fn register_and_login(&self, username: &str) -> (crate::model::UserView, String) {
        let user = self.register(username, TEST_PASSWORD).await;
        let token = self.login(username).await;
        (user, token)
    }
}

/// The password test helpers register with.
pub const TEST_PASSWORD: &str = "correct horse battery";

impl Context for TestContext {
    fn store(&self) -> &dyn Store {
        &self.store
    }

    fn credentials(&self) -> &dyn Credentials {
        &self.credentials
    }

    fn clock(&self) -> &dyn Clock {
        &self.clock
    }

    fn hub(&self) -> &dyn Hub {
        &self.hub
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn messages(&self) -> &dyn MessageLog {
        self
    }

    fn guard(&self) -> &dyn Guard {
        &self.guard
    }
}

/// Posting in the test context: append to the memory store, then publish through the memory hub (one task, so in
/// seq order).
#[async_trait]
impl MessageLog for TestContext {
    async fn submit(&self, room: &str, message: NewMessage) -> Result<Posted, StoreError> {
        let outcome = self
            .store
            .append_messages(std::slice::from_ref(&message))
            .await?
            .pop()
            .ok_or_else(|| StoreError::Backend("no outcome for a message".into()))?;
        if let Appended::Stored(stored) = &outcome {
            self.hub.publish(Broadcast {
                room_id: stored.room_id,
                room: room.to_owned(),
                at: stored.created_at,
                event: RoomEvent::Message(stored.clone()),
                skip_user: None,
            });
        }
        Ok(Box::pin(std::future::ready(Ok(outcome))))
    }
}
