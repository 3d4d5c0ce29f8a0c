//! The NATS subjects a cluster uses (PROTOCOL §10). Room subjects carry room ids, never names: names can be
//! reused after a deletion and may hold characters a subject cannot.

use uuid::Uuid;

/// Every subject of a cluster starts with this.
pub const PREFIX: &str = "palaver";

/// The subject of one room's events (messages with their seq, joined, left, typing, deleted).
pub fn room(room_id: Uuid) -> String {
    format!("{PREFIX}.room.{}", room_id.simple())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_room_subject_is_one_token_per_part() {
        let id = Uuid::parse_str("01a2352f-32ae-732e-bfab-f275fb5a9bd3").unwrap();
        assert_eq!(room(id), "palaver.room.01a2352f32ae732ebfabf275fb5a9bd3");
    }
}
