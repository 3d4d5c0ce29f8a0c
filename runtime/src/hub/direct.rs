//! Opening a direct room on this node: every connection of the user here is subscribed to it and told
//! (`dm_opened`). The broker of one node does this alone; in a cluster, every node does it for its own connections
//! of the user when it hears of the room.

use palaver_handlers::event::{Broadcast, ConnectionId, RoomEvent};
use palaver_handlers::{Hub, Presence};
use time::OffsetDateTime;
use uuid::Uuid;

use super::LocalHub;

/// Subscribes the user's connections on this node to the direct room and tells them; a user who was in the room
/// nowhere before is announced to `presence`. Returns the connections newly subscribed.
pub fn open_here(
    hub: &LocalHub,
    presence: &dyn Presence,
    user_id: Uuid,
    username: &str,
    room_id: Uuid,
    room: &str,
    with: &str,
) -> Vec<ConnectionId> {
    let subscribed = Hub::subscribe_user(hub, user_id, room_id, room);
    if subscribed.iter().any(|(_, s)| s.first_for_user) {
        presence.arrived(room_id, user_id, username);
    }
    Hub::publish(
        hub,
        Broadcast {
            room_id,
            room: room.to_owned(),
            at: OffsetDateTime::now_utc(),
            event: RoomEvent::DirectOpened {
                user_id,
                with: with.to_owned(),
            },
            skip_user: None,
        },
    );
    subscribed
        .into_iter()
        .filter(|(_, s)| s.new_for_connection)
        .map(|(conn, _)| conn)
        .collect()
}
