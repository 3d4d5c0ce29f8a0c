//! A single node needs no broker and no presence service: the hub is both. What it publishes reaches every
//! subscriber there is, and the first (or last) connection of a user here is their first (or last) anywhere.

use palaver_handlers::event::Broadcast;
use palaver_handlers::{Broker, Hub, Presence};
use uuid::Uuid;

use super::LocalHub;

/// On one node the hub is the broker: what is published reaches this node's subscribers, and no other node exists.
impl Broker for LocalHub {
    fn publish(&self, broadcast: Broadcast) {
        Hub::publish(self, broadcast);
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
