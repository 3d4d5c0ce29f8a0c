//! Fan-out: a stored message becomes a room event for every subscriber. Today the subscribers are this node's
//! connections, reached through the local hub; fan-out across nodes belongs here too.

use std::sync::Arc;

use palaver_handlers::Hub;
use palaver_handlers::event::{Broadcast, RoomEvent};
use palaver_handlers::model::StoredMessage;

use crate::metrics::Metrics;

/// Publishes stored messages to their room.
pub struct Fanout {
    hub: Arc<dyn Hub>,
    metrics: Arc<Metrics>,
}

impl Fanout {
    /// Fan-out through `hub`, counting into `metrics`.
    pub fn new(hub: Arc<dyn Hub>, metrics: Arc<Metrics>) -> Self {
        Fanout { hub, metrics }
    }

    /// Delivers `message`, just stored in the room named `room`, to the room's subscribers (the sender's
    /// connections included). Called in commit order, so every room's messages go out in seq order.
    pub fn stored(&self, room: &str, message: StoredMessage) {
        self.metrics.messages_stored.inc();
        self.hub.publish(Broadcast {
            room_id: message.room_id,
            room: room.to_owned(),
            at: message.created_at,
            event: RoomEvent::Message(message),
            skip_user: None,
        });
    }
}
