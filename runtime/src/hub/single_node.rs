//! A single node needs no broker and no presence service: the hub is both. What it publishes reaches every
//! subscriber there is, and the first (or last) connection of a user here is their first (or last) anywhere.

use palaver_handlers::event::{Broadcast, ConnectionId};
use palaver_handlers::{Broker, Hub, Presence};
use uuid::Uuid;

use super::LocalHub;

/// On one node the hub is the broker: what is published reaches this node's subscribers, and no other node exists,
/// so this node's connections are all the user's connections.
impl Broker for LocalHub {
    fn publish(&self, broadcast: Broadcast) {
        Hub::publish(self, broadcast);
    }

    fn unsubscribe_user(&self, user_id: Uuid, room_id: Uuid, _room: &str) -> Vec<ConnectionId> {
        Hub::unsubscribe_user(self, user_id, room_id)
    }

    fn open_direct(
        &self,
        user_id: Uuid,
        username: &str,
        room_id: Uuid,
        room: &str,
        _last_seq: i64,
        with: &str,
    ) -> Vec<ConnectionId> {
        super::direct::open_here(self, self, user_id, username, room_id, room, with)
    }
}

/// On one node the hub is presence: the first (last) connection here is the first (last) anywhere.
impl Presence for LocalHub {
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
