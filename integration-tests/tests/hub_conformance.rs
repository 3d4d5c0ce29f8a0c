//! The hub conformance suite: the same tests against the runtime's `LocalHub` and the handlers' in-memory
//! `MemoryHub`, so the fake the actions are unit-tested over cannot drift from the hub that serves real sockets
//! (presence, skipping the sender, events held while a replay is read, the replayed-through floor, the limit on held
//! events, unsubscribing).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use palaver_handlers::event::{Broadcast, ConnectionId, RoomEvent};
use palaver_handlers::model::LogEntry;
use palaver_handlers::testing::MemoryHub;
use palaver_handlers::{Hub, MAX_HELD_EVENTS};
use palaver_runtime::close::Close;
use palaver_runtime::hub::{ConnectionHandle, Kick, LocalHub};
use palaver_runtime::render::Codec;
use serde_json::Value;
use time::macros::datetime;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use uuid::Uuid;

/// What a connection was delivered, as the suite compares it: the event's kind, room and what tells it apart.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    Message {
        room: String,
        seq: i64,
    },
    Joined {
        room: String,
        username: String,
    },
    Left {
        room: String,
        username: String,
    },
    Typing {
        room: String,
        username: String,
    },
    Deleted {
        room: String,
        by: String,
    },
    Read {
        room: String,
        seq: i64,
    },
    Receipt {
        room: String,
        username: String,
        seq: i64,
    },
    DirectOpened {
        room: String,
        with: String,
    },
}

/// A hub under test, with the means to connect sockets and see what they were delivered.
trait Subject {
    fn hub(&self) -> &dyn Hub;
    /// Makes connection `conn` of `user` known to the hub (the runtime registers a socket before it joins rooms).
    fn connect(&self, conn: ConnectionId, user: Uuid);
    /// What `conn` was delivered since the last look, oldest first.
    fn delivered(&self, conn: ConnectionId) -> Vec<Seen>;
    /// Whether `conn` was told to close as a slow consumer.
    fn kicked_slow(&self, conn: ConnectionId) -> bool;
}

/// A socket's end of the hub: the frames queued for it and its kick.
type Socket = (mpsc::Receiver<Utf8Bytes>, Arc<Kick>);

/// The runtime's hub, with JSON-protocol connections whose frames are parsed back.
struct Local {
    hub: LocalHub,
    sockets: Mutex<HashMap<ConnectionId, Socket>>,
}

impl Local {
    fn new() -> Self {
        Local {
            hub: LocalHub::new(),
            sockets: Mutex::default(),
        }
    }
}

fn seen_of(frame: &str) -> Seen {
    let frame: Value = serde_json::from_str(frame).expect("the hub renders JSON frames as JSON");
    let text = |key: &str| frame[key].as_str().unwrap_or_default().to_owned();
    match frame["type"].as_str() {
        Some("message") => Seen::Message {
            room: text("room"),
            seq: frame["seq"].as_i64().expect("a message has a seq"),
        },
        Some("joined") => Seen::Joined {
            room: text("room"),
            username: text("username"),
        },
        Some("left") => Seen::Left {
            room: text("room"),
            username: text("username"),
        },
        Some("typing") => Seen::Typing {
            room: text("room"),
            username: text("username"),
        },
        Some("room_deleted") => Seen::Deleted {
            room: text("room"),
            by: text("by"),
        },
        Some("read") => Seen::Read {
            room: text("room"),
            seq: frame["seq"].as_i64().expect("a read point has a seq"),
        },
        Some("dm_opened") => Seen::DirectOpened {
            room: text("room"),
            with: text("with"),
        },
        Some("receipt") => Seen::Receipt {
            room: text("room"),
            username: text("username"),
            seq: frame["seq"].as_i64().expect("a receipt has a seq"),
        },
        other => panic!("unexpected frame type {other:?}: {frame}"),
    }
}

impl Subject for Local {
    fn hub(&self) -> &dyn Hub {
        &self.hub
    }

    fn connect(&self, conn: ConnectionId, user: Uuid) {
        // Room for every frame a test sends: a full queue is a different test (the hub's own unit tests).
        let (queue, frames) = mpsc::channel(4 * MAX_HELD_EVENTS);
        let kick = Arc::new(Kick::default());
        self.hub.register(
            conn,
            ConnectionHandle {
                user_id: user,
                token_id: format!("token-{conn}"),
                renderer: Codec::Json.renderer(),
                queue,
                kick: kick.clone(),
            },
        );
        self.sockets.lock().unwrap().insert(conn, (frames, kick));
    }

    fn delivered(&self, conn: ConnectionId) -> Vec<Seen> {
        let mut sockets = self.sockets.lock().unwrap();
        let (frames, _) = sockets.get_mut(&conn).expect("a connected socket");
        let mut seen = Vec::new();
        while let Ok(frame) = frames.try_recv() {
            seen.push(seen_of(frame.as_str()));
        }
        seen
    }

    fn kicked_slow(&self, conn: ConnectionId) -> bool {
        let sockets = self.sockets.lock().unwrap();
        sockets[&conn].1.requested() == Some(Close::SlowConsumer)
    }
}

/// The handlers' in-memory hub.
#[derive(Default)]
struct Memory {
    hub: MemoryHub,
}

impl Subject for Memory {
    fn hub(&self) -> &dyn Hub {
        &self.hub
    }

    fn connect(&self, _conn: ConnectionId, _user: Uuid) {}

    fn delivered(&self, conn: ConnectionId) -> Vec<Seen> {
        self.hub
            .take(conn)
            .into_iter()
            .map(|broadcast| {
                let room = broadcast.room;
                match broadcast.event {
                    RoomEvent::Entry(message) => Seen::Message {
                        room,
                        seq: message.seq,
                    },
                    RoomEvent::Joined { username } => Seen::Joined { room, username },
                    RoomEvent::Left { username } => Seen::Left { room, username },
                    RoomEvent::Typing { username } => Seen::Typing { room, username },
                    RoomEvent::Deleted { by } => Seen::Deleted { room, by },
                    RoomEvent::Read { seq, .. } => Seen::Read { room, seq },
                    RoomEvent::Receipt { username, seq } => Seen::Receipt {
                        room,
                        username,
                        seq,
                    },
                    RoomEvent::DirectOpened { with, .. } => Seen::DirectOpened { room, with },
                    RoomEvent::RoleChanged { .. }
                    | RoomEvent::Kicked { .. }
                    | RoomEvent::Removed { .. } => {
                        panic!("the suite publishes no moderation events")
                    }
                }
            })
            .collect()
    }

    fn kicked_slow(&self, conn: ConnectionId) -> bool {
        self.hub.kicked(conn)
    }
}

const AT: time::OffsetDateTime = datetime!(2026-11-25 15:30:45 UTC);

fn message(room_id: Uuid, room: &str, seq: i64) -> Broadcast {
    Broadcast {
        room_id,
        room: room.into(),
        at: AT,
        event: RoomEvent::Entry(LogEntry {
            id: Uuid::now_v7(),
            room_id,
            seq,
            user_id: Uuid::nil(),
            username: "john_doe".into(),
            body: palaver_handlers::model::Body::Message(
                palaver_handlers::model::MessageBody::posted(format!("m{seq}"), None),
            ),
            client_msg_id: None,
            created_at: AT,
        }),
        skip_user: None,
    }
}

fn typing(room_id: Uuid, room: &str, username: &str, skip_user: Option<Uuid>) -> Broadcast {
    Broadcast {
        room_id,
        room: room.into(),
        at: AT,
        event: RoomEvent::Typing {
            username: username.into(),
        },
        skip_user,
    }
}

fn seqs(seen: &[Seen]) -> Vec<i64> {
    seen.iter()
        .map(|seen| match seen {
            Seen::Message { seq, .. } => *seq,
            other => panic!("expected only messages, got {other:?}"),
        })
        .collect()
}

fn presence_counts_users_and_connections(subject: &dyn Subject) {
    let hub = subject.hub();
    let (john, jane, room) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    for (conn, user) in [(1, john), (2, john), (3, jane)] {
        subject.connect(conn, user);
    }
    let first = hub.subscribe(1, john, room, "general");
    assert!(first.new_for_connection && first.first_for_user);
    let second = hub.subscribe(2, john, room, "general");
    assert!(second.new_for_connection && !second.first_for_user);
    let again = hub.subscribe(2, john, room, "general");
    assert!(!again.new_for_connection && !again.first_for_user);
    hub.subscribe(3, jane, room, "general");
    let mut online = hub.online_users(room);
    online.sort();
    let mut expected = vec![john, jane];
    expected.sort();
    assert_eq!(online, expected);
    let gone = hub
        .unsubscribe(1, room)
        .expect("connection 1 was subscribed");
    assert!(!gone.last_for_user, "john still has connection 2");
    let gone = hub
        .unsubscribe(2, room)
        .expect("connection 2 was subscribed");
    assert_eq!((gone.room.as_str(), gone.last_for_user), ("general", true));
    assert_eq!(hub.online_users(room), vec![jane]);
    assert_eq!(hub.unsubscribe(2, room), None);
}

fn publishing_reaches_subscribers_but_the_skipped_user(subject: &dyn Subject) {
    let hub = subject.hub();
    let (john, jane, room, other) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    for (conn, user) in [(1, john), (2, jane), (3, jane), (4, jane)] {
        subject.connect(conn, user);
    }
    hub.subscribe(1, john, room, "general");
    hub.subscribe(2, jane, room, "general");
    hub.subscribe(3, jane, room, "general");
    hub.subscribe(4, jane, other, "random");
    hub.publish(typing(room, "general", "john_doe", Some(john)));
    let typed = Seen::Typing {
        room: "general".into(),
        username: "john_doe".into(),
    };
    assert_eq!(subject.delivered(2), vec![typed.clone()]);
    assert_eq!(subject.delivered(3), vec![typed]);
    assert!(subject.delivered(1).is_empty(), "the typist hears nothing");
    assert!(
        subject.delivered(4).is_empty(),
        "another room hears nothing"
    );
    hub.publish(message(room, "general", 1));
    let seen = Seen::Message {
        room: "general".into(),
        seq: 1,
    };
    for conn in [1, 2, 3] {
        assert_eq!(subject.delivered(conn), vec![seen.clone()], "conn {conn}");
    }
}

fn a_read_point_reaches_only_its_users_connections(subject: &dyn Subject) {
    let hub = subject.hub();
    let (john, jane, room) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    for (conn, user) in [(1, john), (2, jane), (3, jane)] {
        subject.connect(conn, user);
        hub.subscribe(conn, user, room, "general");
    }
    hub.publish(Broadcast {
        room_id: room,
        room: "general".into(),
        at: AT,
        event: RoomEvent::Read {
            user_id: jane,
            seq: 7,
        },
        skip_user: None,
    });
    let read = Seen::Read {
        room: "general".into(),
        seq: 7,
    };
    assert_eq!(subject.delivered(2), vec![read.clone()]);
    assert_eq!(subject.delivered(3), vec![read]);
    assert!(
        subject.delivered(1).is_empty(),
        "john's read point is his own"
    );
    hub.publish(Broadcast {
        room_id: room,
        room: "general".into(),
        at: AT,
        event: RoomEvent::Receipt {
            username: "jane_doe".into(),
            seq: 7,
        },
        skip_user: Some(jane),
    });
    assert_eq!(
        subject.delivered(1),
        vec![Seen::Receipt {
            room: "general".into(),
            username: "jane_doe".into(),
            seq: 7
        }]
    );
    assert!(subject.delivered(2).is_empty());
}

fn subscribing_a_user_subscribes_each_of_their_connections(subject: &dyn Subject) {
    let hub = subject.hub();
    let (john, jane, lobby, direct) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    for (conn, user) in [(1, john), (2, jane), (3, jane)] {
        subject.connect(conn, user);
        hub.subscribe(conn, user, lobby, "lobby");
    }
    hub.subscribe(3, jane, direct, "dm:jane:john");
    let subscribed = hub.subscribe_user(jane, direct, "dm:jane:john");
    let mut conns: Vec<(u64, bool, bool)> = subscribed
        .iter()
        .map(|(conn, s)| (*conn, s.new_for_connection, s.first_for_user))
        .collect();
    conns.sort_unstable();
    assert_eq!(
        conns,
        vec![(2, true, false), (3, false, false)],
        "each of jane's, once; she was in the room already on 3"
    );
    assert_eq!(hub.online_users(direct), vec![jane]);
    assert!(
        hub.rooms_of(1).iter().all(|(id, _)| *id != direct),
        "not john's"
    );
    hub.publish(message(direct, "dm:jane:john", 1));
    assert_eq!(seqs(&subject.delivered(2)), vec![1]);
    assert!(subject.delivered(1).is_empty());
}

fn a_held_subscription_releases_past_the_replay_in_order(subject: &dyn Subject) {
    let hub = subject.hub();
    let (jane, room) = (Uuid::now_v7(), Uuid::now_v7());
    subject.connect(1, jane);
    hub.subscribe_held(1, jane, room, "general");
    for seq in [4, 5, 6, 7] {
        hub.publish(message(room, "general", seq));
    }
    hub.publish(typing(room, "general", "john_doe", None));
    assert!(subject.delivered(1).is_empty(), "held until released");
    // The replay delivered through 5: 4 and 5 are dropped, the rest follow in the order published.
    hub.release(1, room, 5);
    let released = subject.delivered(1);
    assert_eq!(
        released,
        vec![
            Seen::Message {
                room: "general".into(),
                seq: 6
            },
            Seen::Message {
                room: "general".into(),
                seq: 7
            },
            Seen::Typing {
                room: "general".into(),
                username: "john_doe".into()
            },
        ]
    );
}

fn the_replayed_through_floor_drops_late_publications(subject: &dyn Subject) {
    let hub = subject.hub();
    let (jane, room) = (Uuid::now_v7(), Uuid::now_v7());
    subject.connect(1, jane);
    hub.subscribe_held(1, jane, room, "general");
    hub.release(1, room, 5);
    // A publication can trail its commit, which the replay read first: 5 arrives after the release.
    for seq in [3, 5, 6] {
        hub.publish(message(room, "general", seq));
    }
    hub.publish(typing(room, "general", "john_doe", None));
    let seen = subject.delivered(1);
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seqs(&seen[..1]), vec![6]);
    // Leaving forgets the floor: a later join starts afresh.
    hub.unsubscribe(1, room);
    hub.subscribe(1, jane, room, "general");
    hub.publish(message(room, "general", 2));
    assert_eq!(seqs(&subject.delivered(1)), vec![2]);
}

fn too_much_held_is_a_slow_consumer(subject: &dyn Subject) {
    let hub = subject.hub();
    let (jane, john, room) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    subject.connect(1, jane);
    subject.connect(2, john);
    hub.subscribe_held(1, jane, room, "general");
    hub.subscribe(2, john, room, "general");
    for seq in 1..=i64::try_from(MAX_HELD_EVENTS).unwrap() {
        hub.publish(message(room, "general", seq));
    }
    assert!(!subject.kicked_slow(1), "exactly the limit is held");
    hub.publish(message(room, "general", 10_001));
    assert!(subject.kicked_slow(1), "one more is too many");
    hub.release(1, room, 0);
    assert!(
        subject.delivered(1).is_empty(),
        "what was held is dropped; the client resumes"
    );
    assert_eq!(subject.delivered(2).len(), MAX_HELD_EVENTS + 1);
    assert!(!subject.kicked_slow(2), "others are not affected");
}

fn leaving_unsubscribes_every_connection_of_the_user(subject: &dyn Subject) {
    let hub = subject.hub();
    let (jane, john, room, other) = (
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
        Uuid::now_v7(),
    );
    for (conn, user) in [(1, jane), (2, jane), (3, john)] {
        subject.connect(conn, user);
    }
    hub.subscribe(1, jane, room, "general");
    hub.subscribe(2, jane, room, "general");
    hub.subscribe(2, jane, other, "random");
    hub.subscribe(3, john, room, "general");
    let mut gone = hub.unsubscribe_user(jane, room);
    gone.sort_unstable();
    assert_eq!(gone, vec![1, 2]);
    assert_eq!(hub.online_users(room), vec![john]);
    assert_eq!(hub.rooms_of(2), vec![(other, "random".to_owned())]);
    assert!(hub.rooms_of(1).is_empty());
    assert!(hub.unsubscribe_user(jane, room).is_empty());
}

fn closing_unsubscribes_from_every_room_in_join_order(subject: &dyn Subject) {
    let hub = subject.hub();
    let (jane, john) = (Uuid::now_v7(), Uuid::now_v7());
    let (general, random, third) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    for (conn, user) in [(1, jane), (2, jane), (3, john)] {
        subject.connect(conn, user);
    }
    hub.subscribe(1, jane, general, "general");
    hub.subscribe(1, jane, random, "random");
    hub.subscribe(1, jane, third, "third");
    hub.subscribe(2, jane, random, "random");
    hub.subscribe(3, john, general, "general");
    assert_eq!(
        hub.rooms_of(1),
        vec![
            (general, "general".to_owned()),
            (random, "random".to_owned()),
            (third, "third".to_owned())
        ]
    );
    let gone: Vec<(String, bool)> = hub
        .unsubscribe_all(1)
        .into_iter()
        .map(|gone| (gone.room, gone.last_for_user))
        .collect();
    assert_eq!(
        gone,
        vec![
            ("general".to_owned(), true),
            ("random".to_owned(), false),
            ("third".to_owned(), true)
        ]
    );
    assert!(hub.rooms_of(1).is_empty());
    assert!(hub.unsubscribe_all(1).is_empty());
}

fn a_dropped_room_is_forgotten(subject: &dyn Subject) {
    let hub = subject.hub();
    let (jane, room, other) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    subject.connect(1, jane);
    hub.subscribe_held(1, jane, room, "general");
    hub.subscribe(1, jane, other, "random");
    hub.drop_room(room);
    assert_eq!(hub.rooms_of(1), vec![(other, "random".to_owned())]);
    assert!(hub.online_users(room).is_empty());
    hub.publish(message(room, "general", 1));
    hub.release(1, room, 0);
    assert!(subject.delivered(1).is_empty());
}

macro_rules! conformance {
    ($($test:ident),* $(,)?) => {
        mod local {
            $(#[test] fn $test() { super::$test(&super::Local::new()) })*
        }
        mod memory {
            $(#[test] fn $test() { super::$test(&super::Memory::default()) })*
        }
    };
}

conformance!(
    presence_counts_users_and_connections,
    publishing_reaches_subscribers_but_the_skipped_user,
    a_read_point_reaches_only_its_users_connections,
    subscribing_a_user_subscribes_each_of_their_connections,
    a_held_subscription_releases_past_the_replay_in_order,
    the_replayed_through_floor_drops_late_publications,
    too_much_held_is_a_slow_consumer,
    leaving_unsubscribes_every_connection_of_the_user,
    closing_unsubscribes_from_every_room_in_join_order,
    a_dropped_room_is_forgotten,
);
