//! What the cluster suites share: the NATS and database a cluster runs on, node settings that keep each test's
//! cluster apart from the others' on the one NATS server, and waiting for the nodes to find each other.

use std::time::Duration;

use crate::pg::{self, PgDatabase};
use crate::{Reachable, nats};

/// Quick repairs, so that tests of them are quick too, and no per-user command limit for the bursts.
pub const TIMING: [(&str, &str); 3] = [
    ("PALAVER_CLUSTER_GAP_HOLD_MS", "100"),
    ("PALAVER_CLUSTER_POSITION_CHECK_MS", "200"),
    ("PALAVER_WS_MESSAGE_LIMIT", "100000"),
];

/// A database and a NATS server for a cluster, or `None` when either is missing outside CI.
pub async fn backing() -> Option<(PgDatabase, String)> {
    let nats = nats::server_url().await?;
    let database = pg::fresh_database_url().await?;
    Some((database, nats))
}

/// The cluster name of the nodes on `database`: every test's cluster has subjects of its own on the one NATS server
/// the tests share (and node ids that only need to be unique within it).
pub fn cluster_name(database: &PgDatabase) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    database.url().hash(&mut hasher);
    format!("test-{:016x}", hasher.finish())
}

/// The settings of node `node` of the cluster on `database` and `nats`: [`TIMING`], then `extra`.
pub fn node_settings<'a>(
    name: &'a str,
    nats: &'a str,
    node: &'a str,
    extra: &[(&'a str, &'a str)],
) -> Vec<(&'a str, &'a str)> {
    let mut settings = vec![
        ("PALAVER_NATS_URL", nats),
        ("PALAVER_NODE_ID", node),
        ("PALAVER_CLUSTER_NAME", name),
    ];
    settings.extend(TIMING);
    settings.extend_from_slice(extra);
    settings
}

/// Polls `probe` every 50 ms until it is true; panics saying `what` after `within`.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    while !probe().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not within {within:?}: {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The value of the unlabelled metric `name` on `server` (0 when it cannot be scraped or is not there).
pub async fn metric(server: &impl Reachable, name: &str) -> f64 {
    let Ok(scrape) = reqwest::get(server.url("/metrics")).await else {
        return 0.0;
    };
    let text = scrape.text().await.unwrap_or_default();
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .find_map(|value| value.trim().parse().ok())
        .unwrap_or(0.0)
}

/// Waits until every node of `nodes` counts them all alive (each has heard every other's heartbeat).
pub async fn formed(nodes: &[impl Reachable]) {
    let expected = nodes.len() as f64;
    for node in nodes {
        eventually(Duration::from_secs(10), "the cluster formed", || async {
            metric(node, "palaver_cluster_nodes_alive").await == expected
        })
        .await;
    }
}
