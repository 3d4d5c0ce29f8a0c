//! The NATS subjects a cluster uses (PROTOCOL §10), all under the cluster's name (`cluster_name`, `palaver` by
//! default), so that several clusters can share one NATS. Room subjects carry room ids, never names: names can be
//! reused after a deletion and may hold characters a subject cannot. Names and node ids are checked at start to be
//! one subject token.

use uuid::Uuid;

/// The subjects of one cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subjects {
    cluster: String,
}

impl Subjects {
    /// The subjects of the cluster called `cluster` (a [`is_token`] name).
    pub fn of(cluster: &str) -> Self {
        Subjects {
            cluster: cluster.to_owned(),
        }
    }

    /// One room's events (messages with their seq, joined, left, typing, deleted).
    pub fn room(&self, room_id: Uuid) -> String {
        format!("{}.room.{}", self.cluster, room_id.simple())
    }

    /// Requests to one node (snapshots of its presence).
    pub fn node(&self, node_id: &str) -> String {
        format!("{}.node.{node_id}", self.cluster)
    }

    /// Every node's presence changes, numbered per node.
    pub fn presence(&self) -> String {
        format!("{}.presence", self.cluster)
    }

    /// Every node's heartbeat.
    pub fn heartbeat(&self) -> String {
        format!("{}.heartbeat", self.cluster)
    }

    /// Cluster control: what every node must act on (a revoked token).
    pub fn control(&self) -> String {
        format!("{}.control", self.cluster)
    }
}

/// Whether `name` can name a cluster or a node: one subject token of letters, digits, `-` and `_`, at most 64
/// bytes.
pub fn is_token(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_subject_is_under_the_cluster_name() {
        let id = Uuid::parse_str("01a2352f-32ae-732e-bfab-f275fb5a9bd3").unwrap();
        let subjects = Subjects::of("palaver");
        assert_eq!(
            subjects.room(id),
            "palaver.room.01a2352f32ae732ebfabf275fb5a9bd3"
        );
        assert_eq!(subjects.node("node-1"), "palaver.node.node-1");
        assert_eq!(subjects.presence(), "palaver.presence");
        assert_eq!(subjects.heartbeat(), "palaver.heartbeat");
        assert_eq!(subjects.control(), "palaver.control");
        assert_eq!(Subjects::of("staging").presence(), "staging.presence");
    }

    #[test]
    fn names_are_one_token() {
        for good in ["node-1", "a", "eu_west_3", &"x".repeat(64)] {
            assert!(is_token(good), "{good}");
        }
        for bad in ["", "a.b", "a b", "*", ">", "nöde", &"x".repeat(65)] {
            assert!(!is_token(bad), "{bad}");
        }
    }
}
