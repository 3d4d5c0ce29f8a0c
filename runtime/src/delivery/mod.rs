//! The path of a chat message after its rule has passed, in the order the data flows: the [`group_commit`] writer
//! stores it (with the other messages waiting, in one transaction), then hands what was stored to the [`fanout`],
//! which publishes it to the room's subscribers through the local hub, and only then answers the sender. Beside it,
//! [`receipts`] tells a room where its members have read to, throttled.

pub mod fanout;
pub mod group_commit;
pub mod receipts;

pub use fanout::Fanout;
pub use group_commit::{BatchSettings, GroupCommit};
pub use receipts::ReceiptThrottle;
