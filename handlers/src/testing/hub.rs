//! A [`Hub`] in memory that records what each connection would have received, held to the same conformance suite
//! as the runtime's hub: the same held-while-replaying rule, the same replayed-through floor, the same limit on held
//! events.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use uuid::Uuid;

use super::lock;
use crate::context::{Broker, Hub, MAX_HELD_EVENTS, Presence};
use crate::event::{Broadcast, ConnectionId, RoomEvent, Subscribed, Unsubscribed};

#[derive(Default)]
struct HubState {
    /// (connection, user, room id, room name), in subscription order.
    subscriptions: Vec<(ConnectionId, Uuid, Uuid, String)>,
    /// Events held for (connection, room) until released.
    held: HashMap<(ConnectionId, Uuid), Vec<Broadcast>>,
    /// The seq a replay delivered through, per (connection, room): no message at or below it is delivered again.
    floors: HashMap<(ConnectionId, Uuid), i64>,
    /// What each connection received, oldest first.
    outbox: HashMap<ConnectionId, Vec<Broadcast>>,
    /// Connections told to close as slow consumers (too much held while catching up).
    kicked: HashSet<ConnectionId>,
    published: Vec<Broadcast>,
    /// (user, room) of every membership the broker was told had ended, oldest first.
    memberships_ended: Vec<(Uuid, Uuid)>,
    /// Every connection seen subscribing to any room, with its user: what this hub knows of a user's connections.
    connections: Vec<(ConnectionId, Uuid)>,
}

/// A [`Hub`] that records what each connection would have received.
#[derive(Default)]
pub struct MemoryHub {
    state: Mutex<HubState>,
}

impl MemoryHub {
    /// Everything delivered to `conn` so far, oldest first, and forgets it.
    pub fn take(&self, conn: ConnectionId) -> Vec<Broadcast> {
        lock(&self.state).outbox.remove(&conn).unwrap_or_default()
    }

    /// Every broadcast published so far, oldest first.
    pub fn published(&self) -> Vec<Broadcast> {
        lock(&self.state).published.clone()
    }

    /// Every (user, room) whose subscriptions the broker was asked to end on every node, oldest first.
    pub fn memberships_ended(&self) -> Vec<(Uuid, Uuid)> {
        lock(&self.state).memberships_ended.clone()
    }

    /// Whether `conn` was told to close as a slow consumer.
    pub fn kicked(&self, conn: ConnectionId) -> bool {
        lock(&self.state).kicked.contains(&conn)
    }
}

/// Whether `broadcast` is a message the connection already has (its seq is at or below the replay's floor).
fn below_floor(broadcast: &Broadcast, floor: Option<&i64>) -> bool {
    matches!((&broadcast.event, floor), (RoomEvent::Entry(m), Some(floor)) if m.seq <= *floor)
}

impl HubState {
    fn subscribe(
        &mut self,
        conn: ConnectionId,
        user_id: Uuid,
        room_id: Uuid,
        room: &str,
        hold: bool,
    ) -> Subscribed {
        let subs = &self.subscriptions;
        let new_for_connection = !subs.iter().any(|(c, _, r, _)| *c == conn && *r == room_id);
        let first_for_user = !subs
            .iter()
            .any(|(_, u, r, _)| *u == user_id && *r == room_id);
        if !self.connections.contains(&(conn, user_id)) {
            self.connections.push((conn, user_id));
        }
        if new_for_connection {
            self.subscriptions
                .push((conn, user_id, room_id, room.to_owned()));
            if hold {
                self.held.entry((conn, room_id)).or_default();
            }
        }
        Subscribed {
            new_for_connection,
            first_for_user,
        }
    }

    fn unsubscribe(&mut self, conn: ConnectionId, room_id: Uuid) -> Option<Unsubscribed> {
        self.held.remove(&(conn, room_id));
        self.floors.remove(&(conn, room_id));
        let index = self
            .subscriptions
            .iter()
            .position(|(c, _, r, _)| *c == conn && *r == room_id)?;
        let (_, user_id, _, room) = self.subscriptions.remove(index);
        let last_for_user = !self
            .subscriptions
            .iter()
            .any(|(_, u, r, _)| *u == user_id && *r == room_id);
        Some(Unsubscribed {
            room_id,
            room,
            last_for_user,
        })
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
        lock(&self.state).subscribe(conn, user_id, room_id, room, false)
    }

    fn subscribe_held(
        &self,
        conn: ConnectionId,
        user_id: Uuid,
        room_id: Uuid,
        room: &str,
    ) -> Subscribed {
        lock(&self.state).subscribe(conn, user_id, room_id, room, true)
    }

    fn release(&self, conn: ConnectionId, room_id: Uuid, through_seq: i64) {
        let mut state = lock(&self.state);
        if !state
            .subscriptions
            .iter()
            .any(|(c, _, r, _)| *c == conn && *r == room_id)
        {
            return;
        }
        let held = state.held.remove(&(conn, room_id)).unwrap_or_default();
        state.floors.insert((conn, room_id), through_seq);
        let live: Vec<Broadcast> = held
            .into_iter()
            .filter(|broadcast| !below_floor(broadcast, Some(&through_seq)))
            .collect();
        state.outbox.entry(conn).or_default().extend(live);
    }

    fn unsubscribe(&self, conn: ConnectionId, room_id: Uuid) -> Option<Unsubscribed> {
        lock(&self.state).unsubscribe(conn, room_id)
    }

    fn unsubscribe_user(&self, user_id: Uuid, room_id: Uuid) -> Vec<ConnectionId> {
        let mut state = lock(&self.state);
        let conns: Vec<ConnectionId> = state
            .subscriptions
            .iter()
            .filter(|(_, u, r, _)| *u == user_id && *r == room_id)
            .map(|(c, _, _, _)| *c)
            .collect();
        for conn in &conns {
            state.unsubscribe(*conn, room_id);
        }
        conns
    }

    fn subscribe_user(
        &self,
        user_id: Uuid,
        room_id: Uuid,
        room: &str,
    ) -> Vec<(ConnectionId, Subscribed)> {
        let mut state = lock(&self.state);
        let conns: Vec<ConnectionId> = state
            .connections
            .iter()
            .filter(|(_, user)| *user == user_id)
            .map(|(conn, _)| *conn)
            .collect();
        conns
            .into_iter()
            .map(|conn| (conn, state.subscribe(conn, user_id, room_id, room, false)))
            .collect()
    }

    fn unsubscribe_all(&self, conn: ConnectionId) -> Vec<Unsubscribed> {
        let mut state = lock(&self.state);
        let rooms: Vec<Uuid> = state
            .subscriptions
            .iter()
            .filter(|(c, _, _, _)| *c == conn)
            .map(|(_, _, r, _)| *r)
            .collect();
        rooms
            .into_iter()
            .filter_map(|room_id| state.unsubscribe(conn, room_id))
            .collect()
    }

    fn drop_room(&self, room_id: Uuid) {
        let mut state = lock(&self.state);
        state.subscriptions.retain(|(_, _, r, _)| *r != room_id);
        state.held.retain(|(_, r), _| *r != room_id);
        state.floors.retain(|(_, r), _| *r != room_id);
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
        let only_for = broadcast.event.only_for();
        let mut state = lock(&self.state);
        let recipients: Vec<ConnectionId> = state
            .subscriptions
            .iter()
            .filter(|(_, u, r, _)| *r == broadcast.room_id && Some(*u) != broadcast.skip_user)
            .filter(|(_, u, _, _)| only_for.is_none_or(|only| only == *u))
            .map(|(c, _, _, _)| *c)
            .collect();
        for conn in recipients {
            let key = (conn, broadcast.room_id);
            if below_floor(&broadcast, state.floors.get(&key)) {
                continue;
            }
            if let Some(held) = state.held.get_mut(&key) {
                if held.len() < MAX_HELD_EVENTS {
                    held.push(broadcast.clone());
                } else {
                    state.held.remove(&key);
                    state.kicked.insert(conn);
                }
                continue;
            }
            state
                .outbox
                .entry(conn)
                .or_default()
                .push(broadcast.clone());
        }
        state.published.push(broadcast);
    }
}

/// On one node the hub is the broker: what is published reaches this node's subscribers, and this node's
/// connections are all there are to unsubscribe (it records that it was asked, for tests to see).
impl Broker for MemoryHub {
    fn publish(&self, broadcast: Broadcast) {
        Hub::publish(self, broadcast);
    }

    fn unsubscribe_user(&self, user_id: Uuid, room_id: Uuid, _room: &str) -> Vec<ConnectionId> {
        lock(&self.state).memberships_ended.push((user_id, room_id));
        Hub::unsubscribe_user(self, user_id, room_id)
    }

    fn open_direct(
        &self,
        user_id: Uuid,
        _username: &str,
        room_id: Uuid,
        room: &str,
        _last_seq: i64,
        with: &str,
    ) -> Vec<ConnectionId> {
        let subscribed = Hub::subscribe_user(self, user_id, room_id, room);
        Hub::publish(
            self,
            Broadcast {
                room_id,
                room: room.to_owned(),
                at: time::OffsetDateTime::UNIX_EPOCH,
                event: RoomEvent::DirectOpened {
                    user_id,
                    with: with.to_owned(),
                },
                skip_user: None,
            },
        );
        subscribed
            .into_iter()
            .filter(|(_, subscribed)| subscribed.new_for_connection)
            .map(|(conn, _)| conn)
            .collect()
    }
}

/// On one node the hub is presence: the first (last) connection here is the first (last) anywhere.
impl Presence for MemoryHub {
    fn arrived(&self, _room_id: Uuid, _user_id: Uuid, _username: &str) -> bool {
        true
    }

    fn departed(&self, _room_id: Uuid, _user_id: Uuid) -> bool {
        true
    }

    fn online_users(&self, room_id: Uuid) -> Vec<Uuid> {
        Hub::online_users(self, room_id)
    }
}
