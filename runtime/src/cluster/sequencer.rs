//! Gapless delivery per room on one node of a cluster. Messages reach a node from its own writer and, over NATS,
//! from every other node's, in no guaranteed order and with no guarantee of arriving at all. The sequencer keeps, for
//! each room this node serves, the seq it has delivered through: an older or equal seq is dropped, the next one is
//! delivered with any that were waiting behind it, and a later one waits. A gap that stays open longer than the hold
//! is read from the database; so is the distance to the database's newest seq, which the position check finds.
//!
//! This is pure bookkeeping: the node's broker feeds it, reads the database for it, and delivers what it returns.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use palaver_handlers::event::{Broadcast, RoomEvent};
use palaver_handlers::model::LogEntry;
use uuid::Uuid;

/// The most messages one room keeps waiting behind a gap; past it the gap is read from the database at once.
pub const MAX_WAITING: usize = 10_000;

/// Seqs a room is missing: everything after `after` up to and including `through`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Missing {
    pub room_id: Uuid,
    pub after: i64,
    pub through: i64,
}

#[derive(Debug)]
struct RoomOrder {
    name: String,
    /// The seq delivered through.
    through: i64,
    /// Messages that arrived ahead of a gap, by seq.
    waiting: BTreeMap<i64, Broadcast>,
    /// When the oldest open gap was first seen.
    gap_since: Option<Instant>,
    /// A database read for this room is under way: no second one is asked for.
    reading: bool,
}

/// The per-room order of one node.
#[derive(Debug, Default)]
pub struct Sequencer {
    rooms: HashMap<Uuid, RoomOrder>,
}

pub(super) fn seq_of(broadcast: &Broadcast) -> Option<i64> {
    match &broadcast.event {
        RoomEvent::Entry(message) => Some(message.seq),
        _ => None,
    }
}

impl Sequencer {
    /// Starts serving the room called `name`, whose messages through `from_seq` the joining connection gets by its
    /// own replay. False when the room was served already (what was delivered stays delivered).
    pub fn watch(&mut self, room_id: Uuid, name: &str, from_seq: i64) -> bool {
        if self.rooms.contains_key(&room_id) {
            return false;
        }
        self.rooms.insert(
            room_id,
            RoomOrder {
                name: name.to_owned(),
                through: from_seq.max(0),
                waiting: BTreeMap::new(),
                gap_since: None,
                reading: false,
            },
        );
        true
    }

    /// Stops serving a room (its last local connection has gone).
    pub fn forget(&mut self, room_id: Uuid) {
        self.rooms.remove(&room_id);
    }

    /// The rooms served.
    pub fn watched(&self) -> Vec<Uuid> {
        self.rooms.keys().copied().collect()
    }

    /// Whether the room is served.
    /// The seq the room is delivered through here, if it is served.
    pub fn through(&self, room_id: Uuid) -> Option<i64> {
        self.rooms.get(&room_id).map(|room| room.through)
    }

    pub fn watches(&self, room_id: Uuid) -> bool {
        self.rooms.contains_key(&room_id)
    }

    /// Takes one event of a room; returns what is now ready to deliver, in order. Events that are not messages, and
    /// messages of rooms not served, go through as they come.
    pub fn offer(&mut self, broadcast: Broadcast, now: Instant) -> Vec<Broadcast> {
        let (Some(seq), Some(room)) = (seq_of(&broadcast), self.rooms.get_mut(&broadcast.room_id))
        else {
            return vec![broadcast];
        };
        if seq <= room.through {
            return Vec::new();
        }
        if seq > room.through + 1 {
            room.waiting.insert(seq, broadcast);
            room.gap_since.get_or_insert(now);
            return Vec::new();
        }
        room.through = seq;
        let mut ready = vec![broadcast];
        drain(room, &mut ready);
        ready
    }

    /// The gaps open longer than `hold` (or with too much waiting behind them), for reading from the database. Each
    /// room is asked for once until [`Sequencer::read`] answers it.
    pub fn overdue(&mut self, now: Instant, hold: Duration) -> Vec<Missing> {
        let mut missing = Vec::new();
        for (room_id, room) in &mut self.rooms {
            let Some(since) = room.gap_since else {
                continue;
            };
            let Some(first_waiting) = room.waiting.keys().next().copied() else {
                continue;
            };
            let overdue = now.duration_since(since) >= hold || room.waiting.len() >= MAX_WAITING;
            if overdue && !room.reading {
                room.reading = true;
                missing.push(Missing {
                    room_id: *room_id,
                    after: room.through,
                    through: first_waiting - 1,
                });
            }
        }
        missing
    }

    /// The rooms behind the database's newest seqs (`last_seqs`, from the position check): what is missing up to each.
    pub fn behind(&mut self, last_seqs: &[(Uuid, i64)]) -> Vec<Missing> {
        let mut missing = Vec::new();
        for (room_id, last_seq) in last_seqs {
            let Some(room) = self.rooms.get_mut(room_id) else {
                continue;
            };
            if *last_seq <= room.through || room.reading {
                continue;
            }
            // Up to what waits, if anything does (what waits needs no reading), else up to the newest.
            let through = room
                .waiting
                .keys()
                .next()
                .map_or(*last_seq, |first| first - 1);
            room.reading = true;
            missing.push(Missing {
                room_id: *room_id,
                after: room.through,
                through,
            });
        }
        missing
    }

    /// The answer to a read of `missing`: the stored messages found, oldest first. Returns what is now ready to
    /// deliver. Whatever of `missing` was not found is given up (it cannot be stored later: seqs are taken at commit,
    /// in order), so the room moves on.
    pub fn read(&mut self, missing: Missing, found: Vec<LogEntry>) -> Vec<Broadcast> {
        let Some(room) = self.rooms.get_mut(&missing.room_id) else {
            return Vec::new();
        };
        room.reading = false;
        let mut ready = Vec::new();
        for message in found {
            if message.seq <= room.through || message.seq > missing.through {
                continue;
            }
            room.through = message.seq;
            ready.push(Broadcast {
                room_id: missing.room_id,
                room: room.name.clone(),
                at: message.created_at,
                event: RoomEvent::Entry(message),
                skip_user: None,
            });
        }
        if room.through < missing.through {
            room.through = missing.through;
        }
        drain(room, &mut ready);
        ready
    }

    /// A read of `missing` failed: it may be asked for again.
    pub fn read_failed(&mut self, missing: Missing) {
        if let Some(room) = self.rooms.get_mut(&missing.room_id) {
            room.reading = false;
        }
    }
}

/// Moves what waits right behind `through` to `ready`, and closes the gap when nothing waits any more.
fn drain(room: &mut RoomOrder, ready: &mut Vec<Broadcast>) {
    while let Some(next) = room.waiting.remove(&(room.through + 1)) {
        room.through += 1;
        ready.push(next);
    }
    // Anything at or below through that was waiting is a duplicate now.
    room.waiting = room.waiting.split_off(&(room.through + 1));
    room.gap_since = if room.waiting.is_empty() {
        None
    } else {
        room.gap_since.or(Some(Instant::now()))
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use palaver_handlers::model::{Body, MessageBody};
    use time::macros::datetime;

    const HOLD: Duration = Duration::from_millis(150);

    fn stored(room_id: Uuid, seq: i64) -> LogEntry {
        LogEntry {
            id: Uuid::now_v7(),
            room_id,
            seq,
            user_id: Uuid::nil(),
            username: "john_doe".into(),
            body: Body::Message(MessageBody::posted(format!("m{seq}"), None)),
            client_msg_id: None,
            created_at: datetime!(2026-11-25 15:30:45 UTC),
        }
    }

    fn message(room_id: Uuid, seq: i64) -> Broadcast {
        Broadcast {
            room_id,
            room: "general".into(),
            at: datetime!(2026-11-25 15:30:45 UTC),
            event: RoomEvent::Entry(stored(room_id, seq)),
            skip_user: None,
        }
    }

    fn seqs(ready: &[Broadcast]) -> Vec<i64> {
        ready.iter().filter_map(seq_of).collect()
    }

    #[test]
    fn the_next_seq_goes_through_and_repeats_are_dropped() {
        let (mut sequencer, room, now) = (Sequencer::default(), Uuid::now_v7(), Instant::now());
        assert!(sequencer.watch(room, "general", 3));
        assert!(!sequencer.watch(room, "general", 0), "served already");
        assert!(seqs(&sequencer.offer(message(room, 2), now)).is_empty());
        assert!(seqs(&sequencer.offer(message(room, 3), now)).is_empty());
        assert_eq!(seqs(&sequencer.offer(message(room, 4), now)), [4]);
        assert!(seqs(&sequencer.offer(message(room, 4), now)).is_empty());
        assert_eq!(seqs(&sequencer.offer(message(room, 5), now)), [5]);
    }

    #[test]
    fn a_later_seq_waits_for_the_gap_and_both_go_in_order() {
        let (mut sequencer, room, now) = (Sequencer::default(), Uuid::now_v7(), Instant::now());
        sequencer.watch(room, "general", 0);
        assert!(sequencer.offer(message(room, 3), now).is_empty());
        assert!(sequencer.offer(message(room, 2), now).is_empty());
        assert_eq!(seqs(&sequencer.offer(message(room, 1), now)), [1, 2, 3]);
        assert!(
            sequencer.overdue(now + HOLD, HOLD).is_empty(),
            "no gap left"
        );
    }

    #[test]
    fn a_gap_held_past_the_hold_is_read_once_and_filled() {
        let (mut sequencer, room, now) = (Sequencer::default(), Uuid::now_v7(), Instant::now());
        sequencer.watch(room, "general", 10);
        sequencer.offer(message(room, 14), now);
        sequencer.offer(message(room, 15), now);
        assert!(
            sequencer.overdue(now + HOLD / 2, HOLD).is_empty(),
            "not yet"
        );
        let missing = sequencer.overdue(now + HOLD, HOLD);
        assert_eq!(
            missing,
            [Missing {
                room_id: room,
                after: 10,
                through: 13
            }]
        );
        assert!(
            sequencer.overdue(now + HOLD * 2, HOLD).is_empty(),
            "asked once"
        );
        // Meanwhile 12 arrives live; the read brings 11 to 13.
        assert!(sequencer.offer(message(room, 12), now).is_empty());
        let found = (11..=13).map(|seq| stored(room, seq)).collect();
        let ready = sequencer.read(missing[0], found);
        assert_eq!(seqs(&ready), [11, 12, 13, 14, 15]);
        assert_eq!(ready[0].room, "general");
        assert!(seqs(&sequencer.offer(message(room, 12), now)).is_empty());
        assert_eq!(seqs(&sequencer.offer(message(room, 16), now)), [16]);
    }

    #[test]
    fn a_failed_read_is_asked_again() {
        let (mut sequencer, room, now) = (Sequencer::default(), Uuid::now_v7(), Instant::now());
        sequencer.watch(room, "general", 0);
        sequencer.offer(message(room, 3), now);
        let missing = sequencer.overdue(now + HOLD, HOLD);
        sequencer.read_failed(missing[0]);
        assert_eq!(sequencer.overdue(now + HOLD, HOLD), missing);
    }

    #[test]
    fn the_position_check_catches_a_lost_last_message() {
        let (mut sequencer, room, now) = (Sequencer::default(), Uuid::now_v7(), Instant::now());
        sequencer.watch(room, "general", 0);
        sequencer.offer(message(room, 1), now);
        let other = Uuid::now_v7();
        assert!(sequencer.behind(&[(room, 1), (other, 9)]).is_empty());
        let missing = sequencer.behind(&[(room, 3)]);
        assert_eq!(
            missing,
            [Missing {
                room_id: room,
                after: 1,
                through: 3
            }]
        );
        assert!(sequencer.behind(&[(room, 3)]).is_empty(), "asked once");
        let ready = sequencer.read(missing[0], vec![stored(room, 2), stored(room, 3)]);
        assert_eq!(seqs(&ready), [2, 3]);
        assert!(sequencer.behind(&[(room, 3)]).is_empty());
    }

    #[test]
    fn what_the_database_does_not_have_is_given_up() {
        let (mut sequencer, room, now) = (Sequencer::default(), Uuid::now_v7(), Instant::now());
        sequencer.watch(room, "general", 0);
        sequencer.offer(message(room, 4), now);
        let missing = sequencer.overdue(now + HOLD, HOLD);
        let ready = sequencer.read(missing[0], vec![stored(room, 2)]);
        assert_eq!(seqs(&ready), [2, 4]);
        assert_eq!(seqs(&sequencer.offer(message(room, 5), now)), [5]);
    }

    #[test]
    fn other_events_and_unserved_rooms_go_through() {
        let (mut sequencer, room, now) = (Sequencer::default(), Uuid::now_v7(), Instant::now());
        let typing = Broadcast {
            event: RoomEvent::Typing {
                username: "jane_doe".into(),
            },
            ..message(room, 0)
        };
        assert_eq!(sequencer.offer(typing.clone(), now), [typing]);
        assert_eq!(seqs(&sequencer.offer(message(room, 7), now)), [7]);
        sequencer.watch(room, "general", 0);
        sequencer.forget(room);
        assert_eq!(seqs(&sequencer.offer(message(room, 9), now)), [9]);
    }

    #[test]
    fn too_much_waiting_is_read_at_once() {
        let (mut sequencer, room, now) = (Sequencer::default(), Uuid::now_v7(), Instant::now());
        sequencer.watch(room, "general", 0);
        for seq in 2..=i64::try_from(MAX_WAITING).unwrap() + 1 {
            sequencer.offer(message(room, seq), now);
        }
        assert_eq!(sequencer.overdue(now, HOLD).len(), 1);
    }
}
