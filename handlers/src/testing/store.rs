//! The reference [`Store`] in memory, held to the same conformance suite as the SQL engines.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::lock;
use crate::context::Store;
use crate::error::{StoreError, Unique};
use crate::model::{
    Appended, AuditEvent, Body, HIGHLIGHT, HistoryMessage, HistoryPage, HistoryQuery, LogEntry,
    Member, NewEntry, NewRoom, NewUser, ReactionCount, ReadPoint, ReadState, Role, Room, SearchHit,
    SearchPage, SearchQuery, User, direct_key,
};
use crate::room_log::{self, Lookup, Plan, ReactionKey, Target};
use crate::search_text::{terms, words};

#[derive(Default)]
struct MemoryState {
    users: Vec<User>,
    rooms: Vec<Room>,
    members: Vec<(Uuid, Uuid, OffsetDateTime)>,
    messages: Vec<LogEntry>,
    /// Every reaction present, with the seq of the entry that added it.
    reactions: HashMap<ReactionKey, i64>,
    /// Each membership's read point, by (room, user).
    read_points: HashMap<(Uuid, Uuid), i64>,
    /// The direct rooms, by their pair's key.
    direct: HashMap<String, Uuid>,
    /// Each membership's role other than member, by (room, user).
    roles: HashMap<(Uuid, Uuid), Role>,
    /// (blocker, blocked).
    blocks: HashSet<(Uuid, Uuid)>,
    revoked: HashMap<String, OffsetDateTime>,
    used_tickets: HashMap<String, OffsetDateTime>,
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

    /// How many entries the logs hold, of every kind.
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

/// `text` with every word of `wanted` between [`HIGHLIGHT`] marks.
fn highlight(text: &str, found: &[(std::ops::Range<usize>, String)], wanted: &[String]) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut at = 0;
    for (range, word) in found {
        if wanted.contains(word) {
            out.push_str(&text[at..range.start]);
            out.push_str(HIGHLIGHT);
            out.push_str(&text[range.clone()]);
            out.push_str(HIGHLIGHT);
            at = range.end;
        }
    }
    out.push_str(&text[at..]);
    out
}

fn matches_query(entry: &LogEntry, query: &HistoryQuery) -> bool {
    let Some(message) = entry.message() else {
        return false;
    };
    let filtered = query.sender.is_some() || query.contains.is_some();
    !(filtered && message.deleted)
        && query.before_seq.is_none_or(|before| entry.seq < before)
        && query.after_seq.is_none_or(|after| entry.seq > after)
        && query
            .sender
            .as_ref()
            .is_none_or(|sender| entry.username.eq_ignore_ascii_case(sender))
        && query.contains.as_ref().is_none_or(|needle| {
            message
                .content
                .to_lowercase()
                .contains(&needle.to_lowercase())
        })
        && query.since.is_none_or(|since| entry.created_at >= since)
        && query.until.is_none_or(|until| entry.created_at <= until)
        && query
            .thread
            .is_none_or(|root| entry.seq == root || message.reply_to == Some(root))
}

impl MemoryState {
    /// What [`room_log::plan`] needs to know of the log for `batch`.
    fn lookup(&self, batch: &[NewEntry]) -> Lookup {
        let wanted = room_log::wanted(batch);
        let mut lookup = Lookup {
            last_seqs: self
                .rooms
                .iter()
                .filter(|room| batch.iter().any(|new| new.room_id == room.id))
                .map(|room| (room.id, room.last_seq))
                .collect(),
            usernames: self
                .users
                .iter()
                .filter(|user| batch.iter().any(|new| new.user_id == user.id))
                .map(|user| (user.id, user.username.clone()))
                .collect(),
            originals: self
                .messages
                .iter()
                .filter(|entry| {
                    entry.client_msg_id.is_some()
                        && batch.iter().any(|new| {
                            new.user_id == entry.user_id && new.client_msg_id == entry.client_msg_id
                        })
                })
                .cloned()
                .collect(),
            ..Lookup::default()
        };
        for (room_id, seq) in wanted.targets {
            let found = self.messages.iter().find(|entry| {
                entry.room_id == room_id && entry.seq == seq && entry.message().is_some()
            });
            if let Some(entry) = found {
                let target = Target {
                    user_id: entry.user_id,
                    created_at: entry.created_at,
                    deleted: entry.message().is_some_and(|message| message.deleted),
                    emojis: self
                        .reactions
                        .keys()
                        .filter(|key| key.room_id == room_id && key.target_seq == seq)
                        .map(|key| key.emoji.clone())
                        .collect(),
                };
                lookup.targets.insert((room_id, seq), target);
            }
        }
        for key in wanted.reactions {
            if let Some(seq) = self.reactions.get(&key) {
                lookup.reactions.insert(key, *seq);
            }
        }
        lookup
    }

    /// Writes what the log's rules decided.
    fn write(&mut self, plan: Plan) {
        for (room_id, last_seq) in plan.moved_rooms {
            if let Some(room) = self.rooms.iter_mut().find(|room| room.id == room_id) {
                room.last_seq = last_seq;
            }
        }
        self.messages.extend(plan.inserts);
        for edit in plan.edits {
            if let Some(Body::Message(message)) = self
                .messages
                .iter_mut()
                .find(|entry| entry.room_id == edit.room_id && entry.seq == edit.seq)
                .map(|entry| &mut entry.body)
            {
                message.content = edit.content;
                message.edited_at = Some(edit.edited_at);
            }
        }
        for (room_id, seq, _) in plan.deletions {
            for entry in self.messages.iter_mut().filter(|e| e.room_id == room_id) {
                match &mut entry.body {
                    Body::Message(message) if entry.seq == seq => {
                        message.content.clear();
                        message.edited_at = None;
                        message.deleted = true;
                    }
                    Body::Edit {
                        target_seq,
                        content,
                    } if *target_seq == seq => content.clear(),
                    _ => {}
                }
            }
            self.reactions
                .retain(|key, _| !(key.room_id == room_id && key.target_seq == seq));
        }
        for key in plan.reactions_removed {
            self.reactions.remove(&key);
        }
        self.reactions.extend(plan.reactions_added);
    }

    /// `entry` with its reactions counted for `viewer` and its replies counted.
    fn history_message(&self, entry: &LogEntry, viewer: Option<Uuid>) -> HistoryMessage {
        let mut reactions: Vec<(i64, ReactionCount)> = Vec::new();
        let mut mine: Vec<(&ReactionKey, i64)> = self
            .reactions
            .iter()
            .filter(|(key, _)| key.room_id == entry.room_id && key.target_seq == entry.seq)
            .map(|(key, seq)| (key, *seq))
            .collect();
        mine.sort_by_key(|(_, seq)| *seq);
        for (key, seq) in mine {
            let me = viewer == Some(key.user_id);
            match reactions.iter_mut().find(|(_, r)| r.emoji == key.emoji) {
                Some((_, count)) => {
                    count.count += 1;
                    count.me |= me;
                }
                None => reactions.push((
                    seq,
                    ReactionCount {
                        emoji: key.emoji.clone(),
                        count: 1,
                        me,
                    },
                )),
            }
        }
        let replies = self
            .messages
            .iter()
            .filter(|other| {
                other.room_id == entry.room_id
                    && other.message().is_some_and(|message| {
                        message.reply_to == Some(entry.seq) && !message.deleted
                    })
            })
            .count();
        HistoryMessage {
            entry: entry.clone(),
            reactions: reactions.into_iter().map(|(_, count)| count).collect(),
            replies: u32::try_from(replies).unwrap_or(u32::MAX),
        }
    }
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

    async fn use_ticket(
        &self,
        ticket_id: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut state = self.state()?;
        if state.used_tickets.contains_key(ticket_id) {
            return Ok(false);
        }
        state.used_tickets.insert(ticket_id.to_owned(), expires_at);
        Ok(true)
    }

    async fn purge_used_tickets(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let mut state = self.state()?;
        let before = state.used_tickets.len();
        state
            .used_tickets
            .retain(|_, expires_at| *expires_at >= now);
        Ok((before - state.used_tickets.len()) as u64)
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
            direct: false,
        };
        state
            .members
            .push((room.id, room.owner_id, room.created_at));
        state.read_points.insert((room.id, room.owner_id), 0);
        state.roles.insert((room.id, room.owner_id), Role::Owner);
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

    async fn last_seqs(&self, room_ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>, StoreError> {
        Ok(self
            .state()?
            .rooms
            .iter()
            .filter(|r| room_ids.contains(&r.id))
            .map(|r| (r.id, r.last_seq))
            .collect())
    }

    async fn count_rooms_owned(&self, owner_id: Uuid) -> Result<u64, StoreError> {
        Ok(self
            .state()?
            .rooms
            .iter()
            .filter(|r| r.owner_id == owner_id)
            .count() as u64)
    }

    async fn open_direct(&self, room: NewRoom, other: Uuid) -> Result<(Room, bool), StoreError> {
        let mut state = self.state()?;
        username_of(&state, room.owner_id)?;
        username_of(&state, other)?;
        let key = direct_key(room.owner_id, other);
        let (opened, created) = match state.direct.get(&key) {
            Some(id) => {
                let found = state.rooms.iter().find(|r| r.id == *id).cloned();
                (
                    found.ok_or_else(|| StoreError::Backend(format!("no room {id}")))?,
                    false,
                )
            }
            None => {
                if state
                    .rooms
                    .iter()
                    .any(|r| r.name.to_lowercase() == room.name.to_lowercase())
                {
                    return Err(StoreError::Conflict(Unique::RoomName));
                }
                let opened = Room {
                    id: room.id,
                    name: room.name,
                    private: room.private,
                    password_hash: room.password_hash,
                    owner_id: room.owner_id,
                    created_at: room.created_at,
                    last_seq: 0,
                    direct: true,
                };
                state.direct.insert(key, opened.id);
                state.rooms.push(opened.clone());
                (opened, true)
            }
        };
        let opener = room.owner_id;
        for user in [opener, other] {
            if !state
                .members
                .iter()
                .any(|(r, u, _)| *r == opened.id && *u == user)
            {
                state.members.push((opened.id, user, room.created_at));
                state.read_points.insert((opened.id, user), opened.last_seq);
            }
        }
        Ok((opened, created))
    }

    async fn set_blocked(
        &self,
        blocker: Uuid,
        blocked: Uuid,
        blocked_now: bool,
        _at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let mut state = self.state()?;
        username_of(&state, blocker)?;
        username_of(&state, blocked)?;
        Ok(if blocked_now {
            state.blocks.insert((blocker, blocked))
        } else {
            state.blocks.remove(&(blocker, blocked))
        })
    }

    async fn is_blocked(&self, blocker: Uuid, blocked: Uuid) -> Result<bool, StoreError> {
        Ok(self.state()?.blocks.contains(&(blocker, blocked)))
    }

    async fn delete_room(&self, room_id: Uuid) -> Result<bool, StoreError> {
        let mut state = self.state()?;
        let before = state.rooms.len();
        state.rooms.retain(|r| r.id != room_id);
        state.members.retain(|(room, _, _)| *room != room_id);
        state.messages.retain(|m| m.room_id != room_id);
        state.reactions.retain(|key, _| key.room_id != room_id);
        state.read_points.retain(|(room, _), _| *room != room_id);
        state.direct.retain(|_, room| *room != room_id);
        state.roles.retain(|(room, _), _| *room != room_id);
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
        // A new membership starts read through the room's newest entry.
        let last_seq = state
            .rooms
            .iter()
            .find(|r| r.id == room_id)
            .map_or(0, |r| r.last_seq);
        state.read_points.insert((room_id, user_id), last_seq);
        Ok(true)
    }

    async fn remove_member(&self, room_id: Uuid, user_id: Uuid) -> Result<bool, StoreError> {
        let mut state = self.state()?;
        let before = state.members.len();
        state
            .members
            .retain(|(room, user, _)| !(*room == room_id && *user == user_id));
        state.read_points.remove(&(room_id, user_id));
        state.roles.remove(&(room_id, user_id));
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

    async fn mark_read(
        &self,
        room_id: Uuid,
        user_id: Uuid,
        seq: i64,
    ) -> Result<Option<ReadPoint>, StoreError> {
        let mut state = self.state()?;
        let last_seq = state
            .rooms
            .iter()
            .find(|room| room.id == room_id)
            .map_or(0, |room| room.last_seq);
        let Some(point) = state.read_points.get_mut(&(room_id, user_id)) else {
            return Ok(None);
        };
        let target = seq.min(last_seq);
        let moved = *point < target;
        if moved {
            *point = target;
        }
        Ok(Some(ReadPoint { seq: *point, moved }))
    }

    async fn read_state(&self, user_id: Uuid) -> Result<Vec<ReadState>, StoreError> {
        let state = self.state()?;
        Ok(state
            .read_points
            .iter()
            .filter(|((_, user), _)| *user == user_id)
            .map(|((room_id, _), last_read_seq)| {
                let unread = state
                    .messages
                    .iter()
                    .filter(|entry| {
                        entry.room_id == *room_id
                            && entry.seq > *last_read_seq
                            && entry.user_id != user_id
                            && entry.message().is_some_and(|message| !message.deleted)
                    })
                    .count();
                ReadState {
                    room_id: *room_id,
                    last_read_seq: *last_read_seq,
                    unread: unread as u64,
                }
            })
            .collect())
    }

    async fn role_of(&self, room_id: Uuid, user_id: Uuid) -> Result<Option<Role>, StoreError> {
        let state = self.state()?;
        let member = state
            .members
            .iter()
            .any(|(room, user, _)| *room == room_id && *user == user_id);
        Ok(member.then(|| {
            state
                .roles
                .get(&(room_id, user_id))
                .copied()
                .unwrap_or(Role::Member)
        }))
    }

    async fn set_role(&self, room_id: Uuid, user_id: Uuid, role: Role) -> Result<bool, StoreError> {
        if role == Role::Owner {
            return Err(StoreError::Backend(
                "an owner is made by transfer_ownership".into(),
            ));
        }
        let mut state = self.state()?;
        let member = state
            .members
            .iter()
            .any(|(room, user, _)| *room == room_id && *user == user_id);
        // The owner keeps the room until it is transferred.
        let owner = state.roles.get(&(room_id, user_id)) == Some(&Role::Owner);
        if member && !owner {
            state.roles.insert((room_id, user_id), role);
        }
        Ok(member && !owner)
    }

    async fn transfer_ownership(
        &self,
        room_id: Uuid,
        from: Uuid,
        to: Uuid,
    ) -> Result<bool, StoreError> {
        let mut state = self.state()?;
        let owns = state.roles.get(&(room_id, from)) == Some(&Role::Owner);
        let member = state
            .members
            .iter()
            .any(|(room, user, _)| *room == room_id && *user == to);
        if !owns || !member || from == to {
            return Ok(false);
        }
        state.roles.insert((room_id, from), Role::Admin);
        state.roles.insert((room_id, to), Role::Owner);
        if let Some(room) = state.rooms.iter_mut().find(|room| room.id == room_id) {
            room.owner_id = to;
        }
        Ok(true)
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
                    last_read_seq: state
                        .read_points
                        .get(&(room_id, *user_id))
                        .copied()
                        .unwrap_or(0),
                    role: state
                        .roles
                        .get(&(room_id, *user_id))
                        .copied()
                        .unwrap_or(Role::Member),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        members.sort_by_key(|member| member.username.to_lowercase());
        Ok(members)
    }

    async fn append_messages(&self, batch: &[NewEntry]) -> Result<Vec<Appended>, StoreError> {
        let mut state = self.state()?;
        // The plan is made before anything is written: a batch it refuses leaves the store untouched.
        let plan = room_log::plan(batch, state.lookup(batch))?;
        let outcomes = plan.outcomes.clone();
        state.write(plan);
        if self.lose_answer.swap(false, Ordering::SeqCst) {
            return Err(StoreError::Unavailable(
                "the answer to the commit was lost".into(),
            ));
        }
        Ok(outcomes)
    }

    async fn messages_by_id(
        &self,
        _room_ids: &[Uuid],
        ids: &[Uuid],
    ) -> Result<Vec<LogEntry>, StoreError> {
        // Every write holds the state's lock to its end: none can still be landing.
        let state = self.state()?;
        let mut found: Vec<LogEntry> = state
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
        let mut matching: Vec<&LogEntry> = state
            .messages
            .iter()
            .filter(|m| m.room_id == room_id && matches_query(m, query))
            .collect();
        matching.sort_by_key(|m| std::cmp::Reverse(m.seq));
        let limit = query.limit as usize;
        let has_more = matching.len() > limit;
        let messages: Vec<HistoryMessage> = matching
            .into_iter()
            .take(limit)
            .map(|entry| state.history_message(entry, query.viewer))
            .collect();
        let next_before = messages.last().map(|m| m.entry.seq);
        let as_of = state
            .rooms
            .iter()
            .find(|room| room.id == room_id)
            .map_or(0, |room| room.last_seq);
        Ok(HistoryPage {
            messages,
            next_before,
            has_more,
            as_of,
        })
    }

    async fn log_after(
        &self,
        room_id: Uuid,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<LogEntry>, StoreError> {
        let state = self.state()?;
        let mut entries: Vec<LogEntry> = state
            .messages
            .iter()
            .filter(|entry| entry.room_id == room_id && entry.seq > after_seq)
            .cloned()
            .collect();
        entries.sort_by_key(|entry| entry.seq);
        entries.truncate(limit as usize);
        Ok(entries)
    }

    async fn search(&self, query: &SearchQuery) -> Result<SearchPage, StoreError> {
        let state = self.state()?;
        let wanted = terms(&query.words);
        let mut hits: Vec<(usize, usize, SearchHit)> = Vec::new();
        for entry in &state.messages {
            let Some(message) = entry.message().filter(|message| !message.deleted) else {
                continue;
            };
            let member = state
                .read_points
                .contains_key(&(entry.room_id, query.user_id));
            if !member || query.room_id.is_some_and(|room| room != entry.room_id) {
                continue;
            }
            let found = words(&message.content);
            if wanted.is_empty() || !wanted.iter().all(|w| found.iter().any(|(_, f)| f == w)) {
                continue;
            }
            let matches = found.iter().filter(|(_, f)| wanted.contains(f)).count();
            let room = state
                .rooms
                .iter()
                .find(|room| room.id == entry.room_id)
                .map(|room| room.name.clone())
                .unwrap_or_default();
            let hit = SearchHit {
                room_id: entry.room_id,
                room,
                seq: entry.seq,
                username: entry.username.clone(),
                snippet: highlight(&message.content, &found, &wanted),
                created_at: entry.created_at,
            };
            hits.push((matches, found.len(), hit));
        }
        // More matches first, then the shorter message, then the newer.
        hits.sort_by(|a, b| {
            b.0.cmp(&a.0)
                .then(a.1.cmp(&b.1))
                .then(b.2.created_at.cmp(&a.2.created_at))
                .then(b.2.seq.cmp(&a.2.seq))
        });
        let offset = usize::try_from(query.offset).unwrap_or(usize::MAX);
        let limit = query.limit as usize;
        let more = hits.len() > offset.saturating_add(limit);
        let results = hits
            .into_iter()
            .skip(offset)
            .take(limit)
            .map(|(_, _, hit)| hit)
            .collect();
        Ok(SearchPage {
            results,
            next: more.then_some(query.offset.saturating_add(u64::from(query.limit))),
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
