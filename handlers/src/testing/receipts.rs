//! Read receipts in memory: every move is recorded, none is throttled (the runtime's throttle is tested there).

use std::sync::Mutex;

use uuid::Uuid;

use super::lock;
use crate::context::Receipts;

/// Records the receipts the actions asked for.
#[derive(Default)]
pub struct MemoryReceipts {
    sent: Mutex<Vec<(Uuid, String, i64)>>,
}

impl MemoryReceipts {
    /// Every receipt asked for, as (room, username, seq), oldest first.
    pub fn sent(&self) -> Vec<(Uuid, String, i64)> {
        lock(&self.sent).clone()
    }
}

impl Receipts for MemoryReceipts {
    fn moved(&self, room_id: Uuid, _room: &str, _user_id: Uuid, username: &str, seq: i64) {
        lock(&self.sent).push((room_id, username.to_owned(), seq));
    }
}
