//! How presence travels between nodes (PROTOCOL §10): announcements of changes on `<cluster>.presence`, heartbeats on
//! `<cluster>.heartbeat`, and snapshots in parts, answering a request on the node's own subject. JSON, naming the
//! node; what does not decode is dropped (a later heartbeat reveals what it carried, and a snapshot repairs it).

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::roster::Present;

/// One change to a node's connections.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Change {
    /// The user's first socket on the node subscribed to the room.
    Arrived {
        room_id: Uuid,
        user_id: Uuid,
        username: String,
    },
    /// The user's last socket on the node left the room.
    Departed { room_id: Uuid, user_id: Uuid },
    /// The room was deleted: the node has nobody in it.
    Forgot { room_id: Uuid },
    /// The user now holds `count` sockets on the node.
    Connections { user_id: Uuid, count: u32 },
}

/// Changes numbered in the node's sequence: the first is number `seq`, the next `seq + 1`, and so on. A node sends the
/// changes of a few milliseconds in one announcement, so that a burst (thousands of sockets closing at once) is a few
/// NATS messages rather than thousands queued ahead of the heartbeats.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Announcement {
    pub node: String,
    pub incarnation: Uuid,
    pub seq: u64,
    pub changes: Vec<Change>,
}

/// The most changes in one announcement: well under NATS's 1 MiB default.
pub const ANNOUNCED_CHANGES: usize = 2_000;

/// A node is alive, and has announced changes through `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    pub node: String,
    pub incarnation: Uuid,
    pub seq: u64,
}

/// What a node asks another on its node subject.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Request {
    /// Send everything you hold, in parts, to the request's reply subject.
    Snapshot,
}

/// Everything a node holds, as of its change `seq`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    pub incarnation: Uuid,
    pub seq: u64,
    pub present: Vec<Present>,
    pub connections: Vec<(Uuid, u32)>,
}

/// One part of a snapshot (a NATS message has a size limit; a node with many users sends many parts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotPart {
    pub node: String,
    pub incarnation: Uuid,
    pub seq: u64,
    /// This part's index, from 0, and how many there are.
    pub part: u32,
    pub parts: u32,
    /// (room id, user id, username).
    pub present: Vec<(Uuid, Uuid, String)>,
    /// (user id, sockets).
    pub connections: Vec<(Uuid, u32)>,
}

/// The most entries (presences and connection counts together) in one part: well under NATS's 1 MiB default.
pub const PART_ENTRIES: usize = 2_000;

/// `snapshot` of `node` in parts of at most [`PART_ENTRIES`] entries (one part when it is empty).
pub fn split(node: &str, snapshot: Snapshot) -> Vec<SnapshotPart> {
    let present: Vec<(Uuid, Uuid, String)> = snapshot
        .present
        .into_iter()
        .map(|p| (p.room_id, p.user_id, p.username))
        .collect();
    let total = present.len() + snapshot.connections.len();
    let parts = total.div_ceil(PART_ENTRIES).max(1);
    let mut present = present.into_iter();
    let mut connections = snapshot.connections.into_iter();
    (0..parts)
        .map(|part| {
            let mut chunk = SnapshotPart {
                node: node.to_owned(),
                incarnation: snapshot.incarnation,
                seq: snapshot.seq,
                part: part as u32,
                parts: parts as u32,
                present: present.by_ref().take(PART_ENTRIES).collect(),
                connections: Vec::new(),
            };
            let room = PART_ENTRIES - chunk.present.len();
            chunk.connections = connections.by_ref().take(room).collect();
            chunk
        })
        .collect()
}

/// Collects the parts of one snapshot, in any order.
#[derive(Debug, Default)]
pub struct Assembly {
    parts: Vec<Option<SnapshotPart>>,
}

impl Assembly {
    /// Takes a part; the whole snapshot once every part of it is in. A part of another snapshot (another count,
    /// incarnation or seq) starts over with it.
    pub fn take(&mut self, part: SnapshotPart) -> Option<Snapshot> {
        let index = part.part as usize;
        let fits = |first: &SnapshotPart| {
            first.parts == part.parts
                && first.incarnation == part.incarnation
                && first.seq == part.seq
        };
        if !self.parts.iter().flatten().next().is_none_or(fits) || self.parts.is_empty() {
            self.parts = vec![None; part.parts as usize];
        }
        *self.parts.get_mut(index)? = Some(part);
        if self.parts.iter().any(Option::is_none) {
            return None;
        }
        let mut snapshot = Snapshot::default();
        for part in std::mem::take(&mut self.parts).into_iter().flatten() {
            snapshot.incarnation = part.incarnation;
            snapshot.seq = part.seq;
            snapshot.present.extend(part.present.into_iter().map(
                |(room_id, user_id, username)| Present {
                    room_id,
                    user_id,
                    username,
                },
            ));
            snapshot.connections.extend(part.connections);
        }
        Some(snapshot)
    }
}

/// The JSON of a message between nodes (these types always serialize).
pub fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).unwrap_or_default()
}

/// A message between nodes, or `None` when `payload` is not one.
pub fn decode<'a, T: Deserialize<'a>>(payload: &'a [u8]) -> Option<T> {
    serde_json::from_slice(payload).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(present: usize, connections: usize) -> Snapshot {
        Snapshot {
            incarnation: Uuid::now_v7(),
            seq: 41,
            present: (0..present)
                .map(|i| Present {
                    room_id: Uuid::now_v7(),
                    user_id: Uuid::now_v7(),
                    username: format!("user{i}"),
                })
                .collect(),
            connections: (0..connections)
                .map(|i| (Uuid::now_v7(), i as u32 + 1))
                .collect(),
        }
    }

    #[test]
    fn a_snapshot_survives_splitting_and_reassembly_in_any_order() {
        for (present, connections) in [(0, 0), (3, 2), (PART_ENTRIES, 1), (4_500, 3_700)] {
            let sent = snapshot(present, connections);
            let mut parts = split("node-b", sent.clone());
            assert_eq!(
                parts.len(),
                (present + connections).div_ceil(PART_ENTRIES).max(1)
            );
            for part in &parts {
                assert!(part.present.len() + part.connections.len() <= PART_ENTRIES);
                assert!(encode(part).len() < 512 * 1024, "well under NATS's limit");
            }
            parts.reverse();
            let mut assembly = Assembly::default();
            let last = parts.pop().expect("one part at least");
            for part in parts {
                let wire: SnapshotPart = decode(&encode(&part)).expect("it decodes");
                assert_eq!(assembly.take(wire), None, "incomplete");
            }
            assert_eq!(assembly.take(last), Some(sent));
        }
    }

    #[test]
    fn a_part_of_another_snapshot_starts_over() {
        let mut assembly = Assembly::default();
        let first = split("b", snapshot(3_000, 0));
        let second = split("b", snapshot(10, 0));
        assert_eq!(assembly.take(first[0].clone()), None);
        // The second (one part) replaces the first's half.
        let whole = assembly.take(second[0].clone()).expect("complete");
        assert_eq!(whole.present.len(), 10);
        // A part with an index past the count is ignored.
        let mut bad = first[1].clone();
        bad.part = 9;
        assert_eq!(Assembly::default().take(bad), None);
    }

    #[test]
    fn announcements_round_trip_and_strangers_do_not_decode() {
        let sent = Announcement {
            node: "node-a".into(),
            incarnation: Uuid::now_v7(),
            seq: 7,
            changes: vec![
                Change::Arrived {
                    room_id: Uuid::now_v7(),
                    user_id: Uuid::now_v7(),
                    username: "jane".into(),
                },
                Change::Connections {
                    user_id: Uuid::now_v7(),
                    count: 2,
                },
            ],
        };
        assert_eq!(decode::<Announcement>(&encode(&sent)), Some(sent));
        assert_eq!(decode::<Announcement>(b"{\"node\":\"a\"}"), None);
        assert_eq!(decode::<Heartbeat>(b"not json"), None);
        assert_eq!(
            decode::<Request>(br#"{"type":"snapshot"}"#),
            Some(Request::Snapshot)
        );
    }
}
