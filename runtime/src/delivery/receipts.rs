//! Read receipts, throttled: a member's read point moving is told to the room's other members at most once a second
//! per member and room, and always with the latest point. The first move in a quiet second goes out at once; moves
//! inside the second wait for its end, and only the newest of them is sent.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use palaver_handlers::event::{Broadcast, RoomEvent};
use palaver_handlers::{Broker, Receipts};
use time::OffsetDateTime;
use tokio::time::Instant;
use uuid::Uuid;

/// The shortest time between two receipts of one member in one room.
pub const RECEIPT_EVERY: Duration = Duration::from_secs(1);

/// Past this many members tracked, the ones quiet for a whole period are forgotten (they send at once next time).
const PRUNE_ABOVE: usize = 10_000;

/// One member in one room: when their last receipt went out, and the newest one waiting for the period's end.
struct Slot {
    sent_at: Instant,
    pending: Option<Broadcast>,
}

type Slots = Arc<Mutex<HashMap<(Uuid, Uuid), Slot>>>;

/// Sends receipts through the broker (to every node), throttled.
pub struct ReceiptThrottle {
    broker: Arc<dyn Broker>,
    every: Duration,
    slots: Slots,
}

impl ReceiptThrottle {
    /// Receipts through `broker`, at most one per member and room every `every`.
    pub fn new(broker: Arc<dyn Broker>, every: Duration) -> Self {
        ReceiptThrottle {
            broker,
            every,
            slots: Arc::default(),
        }
    }
}

fn lock(slots: &Slots) -> MutexGuard<'_, HashMap<(Uuid, Uuid), Slot>> {
    slots
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Receipts for ReceiptThrottle {
    fn moved(&self, room_id: Uuid, room: &str, user_id: Uuid, username: &str, seq: i64) {
        let receipt = Broadcast {
            room_id,
            room: room.to_owned(),
            at: OffsetDateTime::now_utc(),
            event: RoomEvent::Receipt {
                username: username.to_owned(),
                seq,
            },
            skip_user: Some(user_id),
        };
        let now = Instant::now();
        let key = (room_id, user_id);
        let mut slots = lock(&self.slots);
        if slots.len() > PRUNE_ABOVE {
            let every = self.every;
            slots.retain(|_, slot| slot.pending.is_some() || now < slot.sent_at + every);
        }
        match slots.get_mut(&key) {
            // A flush is scheduled: it will send this one, the newest.
            Some(slot) if slot.pending.is_some() => slot.pending = Some(receipt),
            Some(slot) if now < slot.sent_at + self.every => {
                slot.pending = Some(receipt);
                let due = slot.sent_at + self.every;
                let (slots, broker) = (self.slots.clone(), self.broker.clone());
                tokio::spawn(async move {
                    tokio::time::sleep_until(due).await;
                    let waiting = lock(&slots).get_mut(&key).and_then(|slot| {
                        slot.sent_at = Instant::now();
                        slot.pending.take()
                    });
                    if let Some(receipt) = waiting {
                        broker.publish(receipt);
                    }
                });
            }
            _ => {
                slots.insert(
                    key,
                    Slot {
                        sent_at: now,
                        pending: None,
                    },
                );
                drop(slots);
                self.broker.publish(receipt);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palaver_handlers::testing::MemoryHub;

    fn seqs(hub: &MemoryHub) -> Vec<(String, i64)> {
        hub.published()
            .into_iter()
            .filter_map(|broadcast| match broadcast.event {
                RoomEvent::Receipt { username, seq } => Some((username, seq)),
                _ => None,
            })
            .collect()
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_one_a_second_per_member_and_room_and_always_the_latest() {
        let hub = Arc::new(MemoryHub::default());
        let throttle = ReceiptThrottle::new(hub.clone(), RECEIPT_EVERY);
        let (room, other_room, jane, john) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        throttle.moved(room, "general", jane, "jane", 1);
        assert_eq!(
            seqs(&hub),
            [("jane".to_owned(), 1)],
            "the first goes at once"
        );
        for seq in 2..=5 {
            throttle.moved(room, "general", jane, "jane", seq);
        }
        // Others are not held up by jane's throttle.
        throttle.moved(room, "general", john, "john", 7);
        throttle.moved(other_room, "random", jane, "jane", 9);
        assert_eq!(seqs(&hub).len(), 3);
        tokio::time::sleep(Duration::from_millis(999)).await;
        assert_eq!(seqs(&hub).len(), 3, "not before the second is over");
        tokio::time::sleep(Duration::from_millis(2)).await;
        tokio::task::yield_now().await;
        assert_eq!(
            seqs(&hub).last(),
            Some(&("jane".to_owned(), 5)),
            "the latest, once"
        );
        assert_eq!(seqs(&hub).len(), 4);
        let published = hub.published();
        let receipt = published.last().expect("a receipt");
        assert_eq!(
            receipt.skip_user,
            Some(jane),
            "not to jane's own connections"
        );
        // Quiet for a second: the next goes at once again.
        tokio::time::sleep(RECEIPT_EVERY).await;
        throttle.moved(room, "general", jane, "jane", 6);
        assert_eq!(seqs(&hub).last(), Some(&("jane".to_owned(), 6)));
    }
}
