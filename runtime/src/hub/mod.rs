//! The local hub: which of this node's connections are subscribed to which rooms, and delivery to them. It is
//! node-local by definition and knows no wire format: each connection brings the [`Render`] of its codec, an event
//! is rendered once per renderer (and text prefix variant) and the same bytes are queued on every recipient. Queues
//! are bounded, and a connection whose queue is full is told to close (1013) instead of delaying anyone else.

pub mod direct;
mod kick;
mod render;
mod single_node;

pub use kick::Kick;
pub use render::Render;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use palaver_handlers::event::{Broadcast, ConnectionId, RoomEvent, Subscribed, Unsubscribed};
use palaver_handlers::{Hub, MAX_HELD_EVENTS};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use uuid::Uuid;

use crate::close::Close;
use crate::metrics::Metrics;
use render::Rendered;

/// How the hub reaches one connection: the renderer of its codec, its bounded outbound queue, and the way to make it
/// close.
pub struct ConnectionHandle {
    pub user_id: Uuid,
    /// The `jti` of the token the socket was opened with, so a logout can close it.
    pub token_id: String,
    pub renderer: &'static dyn Render,
    pub queue: mpsc::Sender<Utf8Bytes>,
    /// Kicked with 1013 when the queue overflows, 1008 when the token is revoked.
    pub kick: Arc<Kick>,
}

struct Connection {
    handle: ConnectionHandle,
    /// (room id, name) in join order.
    rooms: Vec<(Uuid, String)>,
    /// Events of rooms this connection is catching up on, held until released (see [`Hub::release`]).
    held: HashMap<Uuid, Vec<Broadcast>>,
    /// Per room, the seq a replay delivered through: a message at or below it is not delivered again, even when its
    /// publication comes after the release (the writer publishes just after its commit, which a replay can read
    /// first).
    floors: HashMap<Uuid, i64>,
}

#[derive(Default)]
struct State {
    connections: HashMap<ConnectionId, Connection>,
    /// room id → subscribed connections, in subscription order.
    rooms: HashMap<Uuid, Vec<ConnectionId>>,
}

/// The hub of this node. Its lock is only ever held for in-memory work: no await, no I/O.
pub struct LocalHub {
    state: Mutex<State>,
    metrics: Arc<Metrics>,
}

fn deliver(handle: &ConnectionHandle, frame: Utf8Bytes) {
    if handle.queue.try_send(frame).is_err() {
        // Full (a slow consumer) or closed (already going away): either way the connection must end.
        handle.kick.kick(Close::SlowConsumer);
    }
}

impl Default for LocalHub {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalHub {
    /// A hub with no connections and metrics of its own.
    pub fn new() -> Self {
        Self::with_metrics(Arc::new(Metrics::new()))
    }

    /// A hub with no connections, counting into `metrics`.
    pub fn with_metrics(metrics: Arc<Metrics>) -> Self {
        LocalHub {
            state: Mutex::default(),
            metrics,
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing in this module panics while holding the lock; recover the data if something ever did.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Makes a connection reachable; it joins rooms through [`Hub::subscribe`].
    pub fn register(&self, conn: ConnectionId, handle: ConnectionHandle) {
        self.state().connections.insert(
            conn,
            Connection {
                handle,
                rooms: Vec::new(),
                held: HashMap::new(),
                floors: HashMap::new(),
            },
        );
    }

    /// Forgets a connection (after [`Hub::unsubscribe_all`]).
    pub fn unregister(&self, conn: ConnectionId) {
        let mut state = self.state();
        if let Some(connection) = state.connections.remove(&conn) {
            for (room_id, _) in connection.rooms {
                remove_from_room(&mut state, room_id, conn);
            }
        }
    }

    /// Closes (1008) every connection opened with the token `token_id`; returns how many.
    pub fn close_token(&self, token_id: &str) -> usize {
        let state = self.state();
        let matching = state
            .connections
            .values()
            .filter(|c| c.handle.token_id == token_id);
        matching
            .map(|c| c.handle.kick.kick(Close::TokenRevoked))
            .count()
    }

    /// Closes every connection with `close`; returns how many.
    pub fn close_all(&self, close: Close) -> usize {
        let state = self.state();
        state
            .connections
            .values()
            .map(|c| c.handle.kick.kick(close))
            .count()
    }

    /// The name of a room one of this node's connections is subscribed to, if any is.
    pub fn room_name(&self, room_id: Uuid) -> Option<String> {
        let state = self.state();
        let conn = state.rooms.get(&room_id)?.first()?;
        let connection = state.connections.get(conn)?;
        connection
            .rooms
            .iter()
            .find(|(id, _)| *id == room_id)
            .map(|(_, name)| name.clone())
    }

    /// How many connections are registered.
    pub fn connection_count(&self) -> usize {
        self.state().connections.len()
    }

    /// Whether any of this node's connections is subscribed to the room.
    pub fn serves(&self, room_id: Uuid) -> bool {
        self.state().rooms.contains_key(&room_id)
    }

    /// How many rooms connection `conn` has joined, without copying their names as [`Hub::rooms_of`] does (the text
    /// protocol prefixes a line with its room when there are several, asked on every reply).
    pub fn joined_count(&self, conn: ConnectionId) -> usize {
        self.state()
            .connections
            .get(&conn)
            .map_or(0, |connection| connection.rooms.len())
    }
}

fn remove_from_room(state: &mut State, room_id: Uuid, conn: ConnectionId) {
    if let Some(conns) = state.rooms.get_mut(&room_id) {
        conns.retain(|c| *c != conn);
        if conns.is_empty() {
            state.rooms.remove(&room_id);
        }
    }
}

fn user_present(state: &State, room_id: Uuid, user_id: Uuid) -> bool {
    state.rooms.get(&room_id).is_some_and(|conns| {
        conns.iter().any(|c| {
            state
                .connections
                .get(c)
                .is_some_and(|conn| conn.handle.user_id == user_id)
        })
    })
}

/// Subscribes `conn` to a room in one critical section; with `hold`, its events are held from this instant on.
fn subscribe(
    state: &mut State,
    conn: ConnectionId,
    user_id: Uuid,
    room_id: Uuid,
    room: &str,
    hold: bool,
) -> Subscribed {
    let first_for_user = !user_present(state, room_id, user_id);
    let Some(connection) = state.connections.get_mut(&conn) else {
        return Subscribed {
            new_for_connection: false,
            first_for_user: false,
        };
    };
    if connection.rooms.iter().any(|(id, _)| *id == room_id) {
        return Subscribed {
            new_for_connection: false,
            first_for_user,
        };
    }
    if hold {
        connection.held.entry(room_id).or_default();
    }
    connection.rooms.push((room_id, room.to_owned()));
    state.rooms.entry(room_id).or_default().push(conn);
    Subscribed {
        new_for_connection: true,
        first_for_user,
    }
}

impl Hub for LocalHub {
    fn subscribe(
        &self,
        conn: ConnectionId,
        user_id: Uuid,
        room_id: Uuid,
        room: &str,
    ) -> Subscribed {
        subscribe(&mut self.state(), conn, user_id, room_id, room, false)
    }

    fn subscribe_held(
        &self,
        conn: ConnectionId,
        user_id: Uuid,
        room_id: Uuid,
        room: &str,
    ) -> Subscribed {
        subscribe(&mut self.state(), conn, user_id, room_id, room, true)
    }

    fn release(&self, conn: ConnectionId, room_id: Uuid, through_seq: i64) {
        let mut state = self.state();
        let Some(connection) = state.connections.get_mut(&conn) else {
            return;
        };
        let held = connection.held.remove(&room_id).unwrap_or_default();
        connection.floors.insert(room_id, through_seq);
        let renderer = connection.handle.renderer;
        let prefixed = connection.rooms.len() > 1;
        for broadcast in held {
            if matches!(&broadcast.event, RoomEvent::Entry(message) if message.seq <= through_seq) {
                continue;
            }
            let frame = renderer.event(&broadcast, prefixed);
            deliver(&connection.handle, Utf8Bytes::from(frame));
        }
    }

    fn unsubscribe(&self, conn: ConnectionId, room_id: Uuid) -> Option<Unsubscribed> {
        let mut state = self.state();
        let connection = state.connections.get_mut(&conn)?;
        let index = connection.rooms.iter().position(|(id, _)| *id == room_id)?;
        let (_, room) = connection.rooms.remove(index);
        connection.held.remove(&room_id);
        connection.floors.remove(&room_id);
        let user_id = connection.handle.user_id;
        remove_from_room(&mut state, room_id, conn);
        let last_for_user = !user_present(&state, room_id, user_id);
        Some(Unsubscribed {
            room_id,
            room,
            last_for_user,
        })
    }

    fn unsubscribe_user(&self, user_id: Uuid, room_id: Uuid) -> Vec<ConnectionId> {
        let conns: Vec<ConnectionId> = {
            let state = self.state();
            let subscribed = state
                .rooms
                .get(&room_id)
                .map(Vec::as_slice)
                .unwrap_or_default();
            subscribed
                .iter()
                .copied()
                .filter(|c| {
                    state
                        .connections
                        .get(c)
                        .is_some_and(|conn| conn.handle.user_id == user_id)
                })
                .collect()
        };
        for conn in &conns {
            self.unsubscribe(*conn, room_id);
        }
        conns
    }

    fn subscribe_user(
        &self,
        user_id: Uuid,
        room_id: Uuid,
        room: &str,
    ) -> Vec<(ConnectionId, Subscribed)> {
        let mut state = self.state();
        let mut conns: Vec<ConnectionId> = state
            .connections
            .iter()
            .filter(|(_, connection)| connection.handle.user_id == user_id)
            .map(|(conn, _)| *conn)
            .collect();
        conns.sort_unstable();
        conns
            .into_iter()
            .map(|conn| {
                (
                    conn,
                    subscribe(&mut state, conn, user_id, room_id, room, false),
                )
            })
            .collect()
    }

    fn unsubscribe_all(&self, conn: ConnectionId) -> Vec<Unsubscribed> {
        let rooms: Vec<Uuid> = self.rooms_of(conn).into_iter().map(|(id, _)| id).collect();
        rooms
            .into_iter()
            .filter_map(|room_id| self.unsubscribe(conn, room_id))
            .collect()
    }

    fn drop_room(&self, room_id: Uuid) {
        let mut state = self.state();
        for conn in state.rooms.remove(&room_id).unwrap_or_default() {
            if let Some(connection) = state.connections.get_mut(&conn) {
                connection.rooms.retain(|(id, _)| *id != room_id);
                connection.held.remove(&room_id);
                connection.floors.remove(&room_id);
            }
        }
    }

    fn rooms_of(&self, conn: ConnectionId) -> Vec<(Uuid, String)> {
        self.state()
            .connections
            .get(&conn)
            .map(|c| c.rooms.clone())
            .unwrap_or_default()
    }

    fn online_users(&self, room_id: Uuid) -> Vec<Uuid> {
        let state = self.state();
        let mut users: Vec<Uuid> = state
            .rooms
            .get(&room_id)
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .filter_map(|c| state.connections.get(c).map(|conn| conn.handle.user_id))
            .collect();
        users.sort_unstable();
        users.dedup();
        users
    }

    fn publish(&self, broadcast: Broadcast) {
        let _timer = self.metrics.fanout_seconds.start_timer();
        let mut state = self.state();
        let State { connections, rooms } = &mut *state;
        let Some(conns) = rooms.get(&broadcast.room_id) else {
            return;
        };
        let mut delivered = 0;
        let mut rendered = Rendered::default();
        // Asked once, not per recipient: a read point or a kick's end is for one user's connections.
        let only_for = broadcast.event.only_for();
        for conn in conns {
            let Some(connection) = connections.get_mut(conn) else {
                continue;
            };
            if Some(connection.handle.user_id) == broadcast.skip_user
                || only_for.is_some_and(|only| only != connection.handle.user_id)
            {
                continue;
            }
            let floor = connection.floors.get(&broadcast.room_id);
            if matches!((&broadcast.event, floor), (RoomEvent::Entry(m), Some(floor)) if m.seq <= *floor)
            {
                continue;
            }
            if let Some(held) = connection.held.get_mut(&broadcast.room_id) {
                if held.len() < MAX_HELD_EVENTS {
                    held.push(broadcast.clone());
                } else {
                    connection.held.remove(&broadcast.room_id);
                    connection.handle.kick.kick(Close::SlowConsumer);
                }
                continue;
            }
            let prefixed = connection.rooms.len() > 1;
            let frame = rendered.get(connection.handle.renderer, &broadcast, prefixed);
            deliver(&connection.handle, frame);
            delivered += 1;
        }
        self.metrics.deliveries.inc_by(delivered);
        self.metrics.frames_out.inc_by(delivered);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::render::Codec;
    use palaver_handlers::model::{Body, MessageBody};
    use time::macros::datetime;

    struct Probe {
        rx: mpsc::Receiver<Utf8Bytes>,
        kick: Arc<Kick>,
    }

    fn connect(
        hub: &LocalHub,
        conn: ConnectionId,
        user_id: Uuid,
        codec: Codec,
        capacity: usize,
    ) -> Probe {
        let (queue, rx) = mpsc::channel(capacity);
        let kick = Arc::new(Kick::default());
        hub.register(
            conn,
            ConnectionHandle {
                user_id,
                token_id: format!("token-{conn}"),
                renderer: codec.renderer(),
                queue,
                kick: kick.clone(),
            },
        );
        Probe { rx, kick }
    }

    fn typing(room_id: Uuid, skip_user: Option<Uuid>) -> Broadcast {
        Broadcast {
            room_id,
            room: "general".into(),
            at: datetime!(2026-11-25 15:30:45 UTC),
            event: RoomEvent::Typing {
                username: "john_doe".into(),
            },
            skip_user,
        }
    }

    fn drain(probe: &mut Probe) -> Vec<String> {
        let mut frames = Vec::new();
        while let Ok(frame) = probe.rx.try_recv() {
            frames.push(frame.to_string());
        }
        frames
    }

    #[test]
    fn presence_counts_users_not_connections() {
        let hub = LocalHub::new();
        let (john, jane, room) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let _a = connect(&hub, 1, john, Codec::Text, 8);
        let _b = connect(&hub, 2, john, Codec::Json, 8);
        let _c = connect(&hub, 3, jane, Codec::Text, 8);
        assert!(hub.subscribe(1, john, room, "general").first_for_user);
        assert!(!hub.subscribe(2, john, room, "general").first_for_user);
        assert!(!hub.subscribe(2, john, room, "general").new_for_connection);
        hub.subscribe(3, jane, room, "general");
        assert_eq!(hub.online_users(room).len(), 2);
        assert!(!hub.unsubscribe(1, room).unwrap().last_for_user);
        assert!(hub.unsubscribe(2, room).unwrap().last_for_user);
        assert_eq!(hub.online_users(room), [jane]);
        assert_eq!(hub.unsubscribe(2, room), None);
    }

    #[test]
    fn joined_count_follows_the_connections_rooms() {
        let hub = LocalHub::new();
        let john = Uuid::now_v7();
        let _probe = connect(&hub, 1, john, Codec::Text, 8);
        assert_eq!(hub.joined_count(1), 0);
        let (general, random) = (Uuid::now_v7(), Uuid::now_v7());
        hub.subscribe(1, john, general, "general");
        hub.subscribe(1, john, random, "random");
        assert_eq!(hub.joined_count(1), hub.rooms_of(1).len());
        assert_eq!(hub.joined_count(1), 2);
        hub.unsubscribe(1, general);
        assert_eq!(hub.joined_count(1), 1);
        assert_eq!(
            hub.joined_count(99),
            0,
            "an unknown connection has joined nothing"
        );
    }

    #[test]
    fn publish_renders_per_codec_and_skips_the_sender() {
        let hub = LocalHub::new();
        let (john, jane, room) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut text = connect(&hub, 1, jane, Codec::Text, 8);
        let mut json = connect(&hub, 2, jane, Codec::Json, 8);
        let mut own = connect(&hub, 3, john, Codec::Text, 8);
        for (conn, user) in [(1, jane), (2, jane), (3, john)] {
            hub.subscribe(conn, user, room, "general");
        }
        hub.publish(typing(room, Some(john)));
        assert_eq!(drain(&mut text), ["TYPING:john_doe"]);
        assert_eq!(
            drain(&mut json),
            [r#"{"type":"typing","room":"general","username":"john_doe"}"#]
        );
        assert!(drain(&mut own).is_empty());
    }

    #[test]
    fn text_lines_get_the_room_prefix_in_several_rooms() {
        let hub = LocalHub::new();
        let (jane, room, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let mut probe = connect(&hub, 1, jane, Codec::Text, 8);
        hub.subscribe(1, jane, room, "general");
        hub.publish(typing(room, None));
        hub.subscribe(1, jane, other, "random");
        hub.publish(typing(room, None));
        assert_eq!(
            drain(&mut probe),
            ["TYPING:john_doe", "#general TYPING:john_doe"]
        );
    }

    #[tokio::test]
    async fn a_full_queue_raises_the_alarm_instead_of_waiting() {
        let hub = LocalHub::new();
        let (jane, room) = (Uuid::now_v7(), Uuid::now_v7());
        let mut slow = connect(&hub, 1, jane, Codec::Text, 2);
        hub.subscribe(1, jane, room, "general");
        for _ in 0..3 {
            hub.publish(typing(room, None));
        }
        let code = tokio::time::timeout(std::time::Duration::from_secs(1), slow.kick.kicked())
            .await
            .expect("overflow is signalled");
        assert_eq!(code, Close::SlowConsumer);
        assert_eq!(drain(&mut slow).len(), 2, "the queue stays bounded");
    }

    #[tokio::test]
    async fn closing_a_token_kicks_only_its_connections_with_1008() {
        let hub = LocalHub::new();
        let (jane, room) = (Uuid::now_v7(), Uuid::now_v7());
        // Two sockets of the same user, opened with different tokens (token-1 and token-2).
        let first = connect(&hub, 1, jane, Codec::Text, 2);
        let mut second = connect(&hub, 2, jane, Codec::Text, 2);
        hub.subscribe(1, jane, room, "general");
        hub.subscribe(2, jane, room, "general");
        assert_eq!(hub.close_token("token-1"), 1);
        let code = tokio::time::timeout(std::time::Duration::from_secs(1), first.kick.kicked())
            .await
            .expect("the token's connection is kicked");
        assert_eq!(code, Close::TokenRevoked);
        assert_eq!(first.kick.requested(), Some(Close::TokenRevoked));
        assert_eq!(
            second.kick.requested(),
            None,
            "the same user's socket on another token stays open"
        );
        hub.publish(typing(room, None));
        assert_eq!(
            drain(&mut second),
            ["TYPING:john_doe"],
            "and it still receives the room's events"
        );
        assert_eq!(second.kick.requested(), None);
        assert_eq!(hub.close_token("unknown"), 0);
    }

    #[tokio::test]
    async fn closing_all_kicks_every_connection_with_the_close_given() {
        let hub = LocalHub::new();
        let (jane, joe) = (Uuid::now_v7(), Uuid::now_v7());
        let first = connect(&hub, 1, jane, Codec::Text, 2);
        let second = connect(&hub, 2, joe, Codec::Json, 2);
        assert_eq!(hub.close_all(Close::ClusterLost), 2);
        assert_eq!(first.kick.requested(), Some(Close::ClusterLost));
        assert_eq!(second.kick.requested(), Some(Close::ClusterLost));
        assert_eq!(LocalHub::new().close_all(Close::ClusterLost), 0);
    }

    #[test]
    fn a_room_is_named_while_a_connection_is_in_it() {
        let hub = LocalHub::new();
        let (jane, room, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let _probe = connect(&hub, 1, jane, Codec::Text, 2);
        assert_eq!(hub.room_name(room), None);
        hub.subscribe(1, jane, other, "other");
        hub.subscribe(1, jane, room, "general");
        assert_eq!(hub.room_name(room).as_deref(), Some("general"));
        hub.unsubscribe(1, room);
        assert_eq!(hub.room_name(room), None);
    }

    fn message(room_id: Uuid, seq: i64) -> Broadcast {
        Broadcast {
            room_id,
            room: "general".into(),
            at: datetime!(2026-11-25 15:30:45 UTC),
            event: RoomEvent::Entry(palaver_handlers::model::LogEntry {
                id: Uuid::now_v7(),
                room_id,
                seq,
                user_id: Uuid::nil(),
                username: "john_doe".into(),
                body: Body::Message(MessageBody::posted(format!("m{seq}"), None)),
                client_msg_id: None,
                created_at: datetime!(2026-11-25 15:30:45 UTC),
            }),
            skip_user: None,
        }
    }

    #[test]
    fn a_held_subscription_releases_past_the_replay_and_never_repeats_it() {
        let hub = LocalHub::new();
        let (jane, room) = (Uuid::now_v7(), Uuid::now_v7());
        let mut probe = connect(&hub, 1, jane, Codec::Text, 16);
        hub.subscribe_held(1, jane, room, "general");
        hub.publish(message(room, 4));
        hub.publish(message(room, 6));
        assert!(drain(&mut probe).is_empty(), "held until released");
        // The replay delivered through 5: 4 is dropped, 6 follows.
        hub.release(1, room, 5);
        // A publication of a message the replay already had, arriving after the release, is dropped too.
        hub.publish(message(room, 5));
        hub.publish(message(room, 7));
        let seqs: Vec<String> = drain(&mut probe)
            .iter()
            .map(|line| line.rsplit(' ').next().unwrap_or("").to_owned())
            .collect();
        assert_eq!(seqs, ["m6", "m7"]);
    }

    #[test]
    fn deleting_a_room_forgets_its_subscriptions() {
        let hub = LocalHub::new();
        let (jane, room) = (Uuid::now_v7(), Uuid::now_v7());
        let _probe = connect(&hub, 1, jane, Codec::Text, 8);
        hub.subscribe(1, jane, room, "general");
        hub.drop_room(room);
        assert!(hub.rooms_of(1).is_empty());
        assert!(hub.online_users(room).is_empty());
        hub.unregister(1);
        assert_eq!(hub.connection_count(), 0);
    }
}
