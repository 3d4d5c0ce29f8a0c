//! What this node knows of every other node's connections: per node, which users are in which rooms and how many
//! sockets each user holds there. Each node is the authority for its own connections and announces every change with
//! the next number of its own sequence, under an incarnation that is new at every start. The roster applies changes in
//! that order; a change out of order, a heartbeat naming a later number than it has, or a node it has never heard
//! (or a new incarnation of one) means it has missed something, and it asks that node for a snapshot. A node it has
//! not heard from for the silence limit is dead: its connections are dropped.
//!
//! This is pure bookkeeping; [`super::NatsPresence`] feeds it from NATS and acts on what it returns.

use std::collections::{BTreeMap, HashMap};

use std::time::{Duration, Instant};

use uuid::Uuid;

use super::holdings::Holdings;
use super::wire::{Change, Snapshot};

/// How many changes are kept while a node's snapshot is awaited; past it the oldest are dropped (a later gap asks
/// again).
const MAX_PENDING: usize = 10_000;

/// How long a snapshot request may go unanswered before another is asked for.
pub const SNAPSHOT_RETRY: Duration = Duration::from_secs(2);

/// One user in one room, as a dead node held them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Present {
    pub room_id: Uuid,
    pub user_id: Uuid,
    pub username: String,
}

/// A node whose connections are gone: it fell silent or started again under a new incarnation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gone {
    pub node: String,
    /// Who it had in which room.
    pub present: Vec<Present>,
}

/// What the roster needs after hearing a node.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Heard {
    /// Ask the node for a snapshot.
    pub snapshot: bool,
    /// The node's previous incarnation, whose connections are gone.
    pub replaced: Option<Gone>,
}

#[derive(Debug)]
struct Peer {
    incarnation: Uuid,
    /// The number of the last change applied.
    seq: u64,
    last_heard: Instant,
    /// A snapshot has been applied: until then nothing of the node is known.
    synced: bool,
    /// When a snapshot was last asked for, if one is awaited.
    requested: Option<Instant>,
    /// Changes that arrived while a snapshot was awaited, by number.
    pending: BTreeMap<u64, Change>,
    /// What the node holds, as far as it has been heard.
    held: Holdings,
}

impl Peer {
    fn new(incarnation: Uuid, now: Instant) -> Self {
        Peer {
            incarnation,
            seq: 0,
            last_heard: now,
            synced: false,
            requested: None,
            pending: BTreeMap::new(),
            held: Holdings::default(),
        }
    }

    /// Whether a snapshot should be asked for now (none awaited, or the last request is overdue).
    fn wants_snapshot(&mut self, now: Instant) -> bool {
        let due = self
            .requested
            .is_none_or(|at| now.saturating_duration_since(at) >= SNAPSHOT_RETRY);
        if due {
            self.requested = Some(now);
        }
        due
    }

    /// Applies the pending changes that follow on from `seq`, in order; drops the older ones.
    fn drain_pending(&mut self) {
        while let Some((&seq, _)) = self.pending.first_key_value() {
            if seq <= self.seq {
                self.pending.pop_first();
            } else if seq == self.seq + 1 {
                if let Some((_, change)) = self.pending.pop_first() {
                    self.held.apply(change);
                    self.seq = seq;
                }
            } else {
                break;
            }
        }
    }
}

/// The other nodes, as this node knows them.
#[derive(Debug, Default)]
pub struct Roster {
    peers: HashMap<String, Peer>,
}

impl Roster {
    /// Node `node` is alive as `incarnation` and has announced changes through `seq`.
    pub fn heartbeat(&mut self, node: &str, incarnation: Uuid, seq: u64, now: Instant) -> Heard {
        let mut heard = self.meet(node, incarnation, now);
        if let Some(peer) = self.peers.get_mut(node) {
            let behind = !peer.synced || peer.seq < seq;
            heard.snapshot = behind && peer.wants_snapshot(now);
        }
        heard
    }

    /// Node `node`, as `incarnation`, announces change number `seq`.
    pub fn change(
        &mut self,
        node: &str,
        incarnation: Uuid,
        seq: u64,
        change: Change,
        now: Instant,
    ) -> Heard {
        let mut heard = self.meet(node, incarnation, now);
        let Some(peer) = self.peers.get_mut(node) else {
            return heard;
        };
        if seq <= peer.seq && peer.synced {
            return heard;
        }
        if peer.synced && seq == peer.seq + 1 {
            peer.held.apply(change);
            peer.seq = seq;
            peer.drain_pending();
            return heard;
        }
        // Out of order, or nothing known yet: keep it for when the snapshot comes.
        if peer.pending.len() >= MAX_PENDING {
            peer.pending.pop_first();
        }
        peer.pending.insert(seq, change);
        heard.snapshot = peer.wants_snapshot(now);
        heard
    }

    /// A node's snapshot: everything it holds, as of its change `snapshot.seq`.
    pub fn snapshot(&mut self, node: &str, snapshot: Snapshot, now: Instant) {
        let Some(peer) = self.peers.get_mut(node) else {
            return;
        };
        if peer.incarnation != snapshot.incarnation || (peer.synced && snapshot.seq < peer.seq) {
            // Of an incarnation that is over, or older than what was applied since.
            return;
        }
        let seq = snapshot.seq;
        peer.held = Holdings::of(snapshot);
        peer.seq = seq;
        peer.synced = true;
        peer.requested = None;
        peer.last_heard = now;
        peer.drain_pending();
    }

    /// Drops the nodes not heard from for longer than `silence`; what each had.
    pub fn expire(&mut self, now: Instant, silence: Duration) -> Vec<Gone> {
        let dead: Vec<String> = self
            .peers
            .iter()
            .filter(|(_, peer)| now.saturating_duration_since(peer.last_heard) > silence)
            .map(|(node, _)| node.clone())
            .collect();
        let mut gone: Vec<Gone> = dead
            .into_iter()
            .filter_map(|node| {
                let peer = self.peers.remove(&node)?;
                Some(Gone {
                    present: peer.held.present(),
                    node,
                })
            })
            .collect();
        gone.sort_by(|a, b| a.node.cmp(&b.node));
        gone
    }

    /// Forgets every node's presence in a deleted room.
    pub fn forget_room(&mut self, room_id: Uuid) {
        for peer in self.peers.values_mut() {
            peer.held.apply(Change::Forgot { room_id });
        }
    }

    /// Whether the user is in the room on another node.
    pub fn has(&self, room_id: Uuid, user_id: Uuid) -> bool {
        self.peers
            .values()
            .any(|peer| peer.held.has(room_id, user_id))
    }

    /// The users in the room on other nodes (a user on several appears once per node).
    pub fn online(&self, room_id: Uuid) -> impl Iterator<Item = Uuid> + '_ {
        self.peers
            .values()
            .flat_map(move |peer| peer.held.users_in(room_id))
    }

    /// How many sockets the user holds on other nodes.
    pub fn connections(&self, user_id: Uuid) -> u32 {
        self.peers
            .values()
            .map(|peer| peer.held.connections_of(user_id))
            .sum()
    }

    /// How many other nodes are alive.
    pub fn alive(&self) -> usize {
        self.peers.len()
    }

    /// A node heard: known from now on; a different incarnation replaces the one known.
    fn meet(&mut self, node: &str, incarnation: Uuid, now: Instant) -> Heard {
        let mut heard = Heard::default();
        match self.peers.get_mut(node) {
            Some(peer) if peer.incarnation == incarnation => peer.last_heard = now,
            Some(peer) => {
                let old = std::mem::replace(peer, Peer::new(incarnation, now));
                heard.replaced = Some(Gone {
                    node: node.to_owned(),
                    present: old.held.present(),
                });
            }
            None => {
                self.peers
                    .insert(node.to_owned(), Peer::new(incarnation, now));
            }
        }
        heard
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> (Uuid, Uuid, Uuid) {
        (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7())
    }

    fn arrived(room_id: Uuid, user_id: Uuid, username: &str) -> Change {
        Change::Arrived {
            room_id,
            user_id,
            username: username.into(),
        }
    }

    fn empty_snapshot(incarnation: Uuid, seq: u64) -> Snapshot {
        Snapshot {
            incarnation,
            seq,
            present: Vec::new(),
            connections: Vec::new(),
        }
    }

    /// A roster that knows node "b" (incarnation `inc`) through change `seq`, with nothing in it.
    fn synced(inc: Uuid, seq: u64, now: Instant) -> Roster {
        let mut roster = Roster::default();
        assert!(roster.heartbeat("b", inc, seq, now).snapshot);
        roster.snapshot("b", empty_snapshot(inc, seq), now);
        roster
    }

    #[test]
    fn a_node_never_heard_is_asked_for_a_snapshot_once_until_the_retry() {
        let (inc, _, _) = ids();
        let now = Instant::now();
        let mut roster = Roster::default();
        assert!(roster.heartbeat("b", inc, 0, now).snapshot);
        assert!(
            !roster.heartbeat("b", inc, 0, now).snapshot,
            "one request at a time"
        );
        assert!(
            roster.heartbeat("b", inc, 0, now + SNAPSHOT_RETRY).snapshot,
            "asked again once the first went unanswered"
        );
        roster.snapshot("b", empty_snapshot(inc, 0), now);
        assert!(
            !roster
                .heartbeat("b", inc, 0, now + SNAPSHOT_RETRY * 3)
                .snapshot
        );
        assert_eq!(roster.alive(), 1);
    }

    #[test]
    fn changes_in_order_are_applied_and_repeats_ignored() {
        let (inc, room, user) = ids();
        let now = Instant::now();
        let mut roster = synced(inc, 4, now);
        let heard = roster.change("b", inc, 5, arrived(room, user, "jane"), now);
        assert_eq!(heard, Heard::default());
        assert!(roster.has(room, user));
        assert_eq!(roster.online(room).collect::<Vec<_>>(), [user]);
        // A repeat of change 5 (a departure would be wrong to apply now) changes nothing.
        roster.change(
            "b",
            inc,
            5,
            Change::Departed {
                room_id: room,
                user_id: user,
            },
            now,
        );
        assert!(roster.has(room, user));
        roster.change(
            "b",
            inc,
            6,
            Change::Departed {
                room_id: room,
                user_id: user,
            },
            now,
        );
        assert!(!roster.has(room, user));
        assert_eq!(roster.online(room).count(), 0);
    }

    #[test]
    fn a_gap_asks_for_a_snapshot_and_the_changes_after_it_are_applied_once_it_comes() {
        let (inc, room, user) = ids();
        let other = Uuid::now_v7();
        let now = Instant::now();
        let mut roster = synced(inc, 1, now);
        // Change 2 was lost; 3 arrives.
        let heard = roster.change("b", inc, 3, arrived(room, other, "joe"), now);
        assert!(heard.snapshot);
        assert!(!roster.has(room, other), "not applied across a gap");
        // The snapshot is as of change 2 (jane in the room); change 3 follows on from it.
        roster.snapshot(
            "b",
            Snapshot {
                incarnation: inc,
                seq: 2,
                present: vec![Present {
                    room_id: room,
                    user_id: user,
                    username: "jane".into(),
                }],
                connections: vec![(user, 2)],
            },
            now,
        );
        assert!(roster.has(room, user));
        assert!(roster.has(room, other));
        assert_eq!(roster.connections(user), 2);
        assert!(!roster.heartbeat("b", inc, 3, now).snapshot, "caught up");
    }

    #[test]
    fn a_heartbeat_ahead_of_the_last_change_reveals_a_lost_last_change() {
        let (inc, _, _) = ids();
        let now = Instant::now();
        let mut roster = synced(inc, 7, now);
        assert!(!roster.heartbeat("b", inc, 7, now).snapshot);
        assert!(roster.heartbeat("b", inc, 8, now).snapshot);
    }

    #[test]
    fn a_stale_snapshot_or_one_of_another_incarnation_is_ignored() {
        let (inc, room, user) = ids();
        let now = Instant::now();
        let mut roster = synced(inc, 1, now);
        roster.change("b", inc, 2, arrived(room, user, "jane"), now);
        roster.snapshot("b", empty_snapshot(inc, 1), now);
        assert!(
            roster.has(room, user),
            "a snapshot older than what was applied"
        );
        roster.snapshot("b", empty_snapshot(Uuid::now_v7(), 9), now);
        assert!(roster.has(room, user), "a snapshot of another incarnation");
    }

    #[test]
    fn a_new_incarnation_replaces_the_old_one_and_returns_what_it_had() {
        let (inc, room, user) = ids();
        let now = Instant::now();
        let mut roster = synced(inc, 0, now);
        roster.change("b", inc, 1, arrived(room, user, "jane"), now);
        roster.change(
            "b",
            inc,
            2,
            Change::Connections {
                user_id: user,
                count: 3,
            },
            now,
        );
        let heard = roster.heartbeat("b", Uuid::now_v7(), 0, now);
        assert!(heard.snapshot);
        assert_eq!(
            heard.replaced,
            Some(Gone {
                node: "b".into(),
                present: vec![Present {
                    room_id: room,
                    user_id: user,
                    username: "jane".into(),
                }],
            })
        );
        assert!(!roster.has(room, user));
        assert_eq!(roster.connections(user), 0);
    }

    #[test]
    fn a_silent_node_is_dead_after_the_limit_and_not_before() {
        let (inc, room, user) = ids();
        let start = Instant::now();
        let mut roster = synced(inc, 0, start);
        roster.change("b", inc, 1, arrived(room, user, "jane"), start);
        let silence = Duration::from_secs(3);
        assert!(roster.expire(start + silence, silence).is_empty());
        roster.heartbeat("b", inc, 1, start + Duration::from_secs(2));
        assert!(
            roster
                .expire(start + Duration::from_secs(4), silence)
                .is_empty(),
            "heard 2 s ago"
        );
        let gone = roster.expire(start + Duration::from_millis(5_001), silence);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].node, "b");
        assert_eq!(gone[0].present[0].user_id, user);
        assert!(!roster.has(room, user));
        assert_eq!(roster.alive(), 0);
    }

    #[test]
    fn connections_sum_over_nodes_and_a_room_can_be_forgotten() {
        let (inc, room, user) = ids();
        let inc_c = Uuid::now_v7();
        let now = Instant::now();
        let mut roster = synced(inc, 0, now);
        roster.heartbeat("c", inc_c, 0, now);
        roster.snapshot(
            "c",
            Snapshot {
                incarnation: inc_c,
                seq: 0,
                present: vec![Present {
                    room_id: room,
                    user_id: user,
                    username: "jane".into(),
                }],
                connections: vec![(user, 4)],
            },
            now,
        );
        roster.change(
            "b",
            inc,
            1,
            Change::Connections {
                user_id: user,
                count: 2,
            },
            now,
        );
        roster.change("b", inc, 2, arrived(room, user, "jane"), now);
        assert_eq!(roster.connections(user), 6);
        assert_eq!(roster.online(room).count(), 2, "once per node");
        roster.change(
            "b",
            inc,
            3,
            Change::Connections {
                user_id: user,
                count: 0,
            },
            now,
        );
        assert_eq!(roster.connections(user), 4);
        roster.forget_room(room);
        assert!(!roster.has(room, user));
        roster.change("c", inc_c, 1, Change::Forgot { room_id: room }, now);
        assert!(!roster.has(room, user));
    }
}
