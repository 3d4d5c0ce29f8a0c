//! Fan-out: a stored message becomes a room event for every subscriber, on every node, through the broker (on one
//! node, the local hub itself).

use std::sync::Arc;

use palaver_handlers::event::{Broadcast, RoomEvent};
use palaver_handlers::model::LogEntry;
use palaver_handlers::{Broker, Delivered};

use crate::metrics::Metrics;

/// Publishes stored messages to their room.
pub struct Fanout {
    broker: Arc<dyn Broker>,
    metrics: Arc<Metrics>,
}

impl Fanout {
    /// Fan-out through `broker`, counting into `metrics`.
    pub fn new(broker: Arc<dyn Broker>, metrics: Arc<Metrics>) -> Self {
        Fanout { broker, metrics }
    }

    /// Delivers `message`, just stored in the room named `room`, to the room's subscribers (the sender's
    /// connections included). Called in commit order, so every room's messages go out in seq order.
    pub fn stored(&self, room: &str, message: LogEntry) {
        self.stored_then(room, message, Box::new(|| {}));
    }

    /// Delivers like [`Fanout::stored`], then runs `delivered` once this node's subscribers have the entry queued:
    /// the sender's ack goes there, after its own message frame.
    pub fn stored_then(&self, room: &str, message: LogEntry, delivered: Delivered) {
        self.metrics.messages_stored.inc();
        let broadcast = Broadcast {
            room_id: message.room_id,
            room: room.to_owned(),
            at: message.created_at,
            event: RoomEvent::Entry(message),
            skip_user: None,
        };
        self.broker.publish_stored(broadcast, delivered);
    }
}
