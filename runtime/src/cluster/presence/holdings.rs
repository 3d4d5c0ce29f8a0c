//! What one node holds: which of its users are in which room (with their names) and how many sockets each user has
//! open there. This node keeps its own (and announces every change to it); the roster keeps one per other node,
//! built from the same changes and snapshots.

use std::collections::HashMap;

use uuid::Uuid;

use super::roster::Present;
use super::wire::{Change, Snapshot};

/// One node's users in rooms and sockets per user.
#[derive(Debug, Default)]
pub struct Holdings {
    /// room id → user id → username.
    rooms: HashMap<Uuid, HashMap<Uuid, String>>,
    /// user id → open sockets (never 0: a user with none is forgotten).
    connections: HashMap<Uuid, u32>,
}

impl Holdings {
    /// What a snapshot says a node holds.
    pub fn of(snapshot: Snapshot) -> Self {
        let mut holdings = Holdings::default();
        for present in snapshot.present {
            holdings.apply(Change::Arrived {
                room_id: present.room_id,
                user_id: present.user_id,
                username: present.username,
            });
        }
        for (user_id, count) in snapshot.connections {
            holdings.apply(Change::Connections { user_id, count });
        }
        holdings
    }

    /// Applies one change; false when it changed nothing (a departure or deletion of what was not held).
    pub fn apply(&mut self, change: Change) -> bool {
        match change {
            Change::Arrived {
                room_id,
                user_id,
                username,
            } => {
                self.rooms
                    .entry(room_id)
                    .or_default()
                    .insert(user_id, username);
                true
            }
            Change::Departed { room_id, user_id } => {
                let Some(users) = self.rooms.get_mut(&room_id) else {
                    return false;
                };
                let removed = users.remove(&user_id).is_some();
                if users.is_empty() {
                    self.rooms.remove(&room_id);
                }
                removed
            }
            Change::Forgot { room_id } => self.rooms.remove(&room_id).is_some(),
            Change::Connections { user_id, count } => {
                if count == 0 {
                    self.connections.remove(&user_id).is_some()
                } else {
                    self.connections.insert(user_id, count) != Some(count)
                }
            }
        }
    }

    /// Whether the user is in the room here.
    pub fn has(&self, room_id: Uuid, user_id: Uuid) -> bool {
        self.rooms
            .get(&room_id)
            .is_some_and(|users| users.contains_key(&user_id))
    }

    /// The users in the room here.
    pub fn users_in(&self, room_id: Uuid) -> impl Iterator<Item = Uuid> + '_ {
        self.rooms
            .get(&room_id)
            .into_iter()
            .flat_map(|users| users.keys().copied())
    }

    /// The user's open sockets here.
    pub fn connections_of(&self, user_id: Uuid) -> u32 {
        self.connections.get(&user_id).copied().unwrap_or(0)
    }

    /// Every user in every room here, ordered by room and user.
    pub fn present(&self) -> Vec<Present> {
        let mut present: Vec<Present> = self
            .rooms
            .iter()
            .flat_map(|(room_id, users)| {
                users.iter().map(|(user_id, username)| Present {
                    room_id: *room_id,
                    user_id: *user_id,
                    username: username.clone(),
                })
            })
            .collect();
        present.sort_by_key(|p| (p.room_id, p.user_id));
        present
    }

    /// Every user's open sockets here, as (user id, count).
    pub fn connections(&self) -> Vec<(Uuid, u32)> {
        self.connections
            .iter()
            .map(|(user, count)| (*user, *count))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_say_whether_they_changed_anything() {
        let (room, user) = (Uuid::now_v7(), Uuid::now_v7());
        let mut held = Holdings::default();
        let departed = Change::Departed {
            room_id: room,
            user_id: user,
        };
        assert!(!held.apply(departed.clone()), "nobody to depart");
        assert!(held.apply(Change::Arrived {
            room_id: room,
            user_id: user,
            username: "jane".into(),
        }));
        assert!(held.has(room, user));
        assert_eq!(held.users_in(room).collect::<Vec<_>>(), [user]);
        assert!(held.apply(departed));
        assert!(!held.has(room, user));
        assert!(!held.apply(Change::Forgot { room_id: room }));
        let sockets = |count| Change::Connections {
            user_id: user,
            count,
        };
        assert!(held.apply(sockets(2)));
        assert!(!held.apply(sockets(2)));
        assert_eq!(held.connections_of(user), 2);
        assert!(held.apply(sockets(0)));
        assert_eq!(held.connections_of(user), 0);
        assert!(
            held.connections().is_empty(),
            "a user with none is forgotten"
        );
    }

    #[test]
    fn a_snapshot_round_trips() {
        let (room, user) = (Uuid::now_v7(), Uuid::now_v7());
        let snapshot = Snapshot {
            incarnation: Uuid::now_v7(),
            seq: 3,
            present: vec![Present {
                room_id: room,
                user_id: user,
                username: "jane".into(),
            }],
            connections: vec![(user, 2)],
        };
        let held = Holdings::of(snapshot.clone());
        assert_eq!(held.present(), snapshot.present);
        assert_eq!(held.connections(), snapshot.connections);
    }
}
