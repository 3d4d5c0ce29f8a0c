//! Palaver on several nodes (only when `nats_url` is set). Every node commits to the one PostgreSQL, which stays the
//! only ack point; core NATS carries room events between nodes, and a message lost, late, repeated or out of order
//! on NATS costs latency, never a message: each node delivers every room's messages in seq order and reads any gap
//! from the database.
//!
//! - [`broker`] — the NATS [`palaver_handlers::Broker`]: local delivery in seq order, publishing to the other nodes,
//!   one subscription per room this node serves.
//! - [`sequencer`] — the per-room ordering and gap bookkeeping the broker drives.
//! - [`presence`] — the NATS [`palaver_handlers::Presence`]: who is where on every node, heartbeats, dead nodes,
//!   and this node's own cut-off from the cluster.
//! - [`control`] — what every node must act on at once (a revoked token).
//! - [`outbox`] — the one bounded, never-waiting way out to NATS.
//! - [`subjects`], [`wire`] — what travels where, and how room events are encoded.

pub mod broker;
pub mod control;
pub mod outbox;
pub mod presence;
pub mod sequencer;
pub mod subjects;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use palaver_handlers::Store;
use tokio::sync::mpsc;

use crate::hub::LocalHub;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

pub use broker::NatsBroker;
pub use control::Control;
pub use presence::NatsPresence;

/// What the NATS connection tells the node about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection {
    /// (Re)connected: what was missed while away must be caught up.
    Connected,
    /// Messages were dropped for a subscription that could not keep up: catch up.
    DroppedMessages,
}

/// This node's connection to the cluster.
pub struct Cluster {
    /// This node's name among the others.
    pub node_id: String,
    /// The cluster's subjects.
    pub subjects: subjects::Subjects,
    client: async_nats::Client,
}

impl Cluster {
    /// Connects to NATS at `url` as `node_id`. The server starts even when NATS is down: the client keeps trying in
    /// the background, `/readyz` answers 503 meanwhile, and every (re)connection is reported on the returned channel
    /// so the node can catch up. A node hears its own messages too (no `no_echo`): hearing its own heartbeat is how
    /// it knows it is still in the cluster; its own room events it skips.
    pub async fn connect(
        url: &str,
        name: &str,
        node_id: String,
        metrics: Arc<Metrics>,
    ) -> Result<(Cluster, mpsc::Receiver<Connection>), async_nats::ConnectError> {
        let (events, reported) = mpsc::channel(16);
        let client = async_nats::ConnectOptions::new()
            .name(format!("palaver {node_id}"))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .connection_timeout(Duration::from_secs(2))
            .ping_interval(Duration::from_secs(2))
            .event_callback(move |event| {
                let (events, metrics) = (events.clone(), metrics.clone());
                async move {
                    let report = match event {
                        async_nats::Event::Connected => {
                            metrics.nats_connected.set(1);
                            tracing::info!("connected to NATS");
                            Some(Connection::Connected)
                        }
                        async_nats::Event::Disconnected => {
                            metrics.nats_connected.set(0);
                            tracing::warn!("disconnected from NATS");
                            None
                        }
                        async_nats::Event::SlowConsumer(subscription) => {
                            tracing::warn!(subscription, "NATS dropped messages of a subscription");
                            Some(Connection::DroppedMessages)
                        }
                        other => {
                            tracing::info!(event = %other, "NATS");
                            None
                        }
                    };
                    if let Some(report) = report {
                        // Full means a catch-up is due already.
                        let _ = events.try_send(report);
                    }
                }
            })
            .connect(url)
            .await?;
        let subjects = subjects::Subjects::of(name);
        Ok((
            Cluster {
                node_id,
                subjects,
                client,
            },
            reported,
        ))
    }

    /// Whether this node is connected to NATS now.
    pub fn connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// The NATS client.
    pub fn client(&self) -> &async_nats::Client {
        &self.client
    }
}

/// A node id for a start that was given none: random, so every start is a new incarnation.
pub fn random_node_id() -> String {
    format!("node-{}", &uuid::Uuid::new_v4().simple().to_string()[..12])
}

/// Everything of a node that is one of several.
pub struct Node {
    pub cluster: Arc<Cluster>,
    pub broker: Arc<NatsBroker>,
    pub presence: Arc<NatsPresence>,
    pub control: Control,
}

impl Node {
    /// Whether this node may take clients: connected to NATS, and not cut off from the cluster.
    pub fn in_cluster(&self) -> bool {
        self.cluster.connected() && !self.presence.is_cut()
    }
}

/// What a node needs from the rest of the server to join a cluster.
pub struct Parts {
    /// The cluster's name (`cluster_name`), which every subject starts with.
    pub name: String,
    pub hub: Arc<LocalHub>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub timing: broker::Timing,
    pub liveness: presence::Liveness,
}

/// Connects to NATS at `url` as `node_id` and starts the node's broker, presence and control, until `shutdown`.
pub async fn join(
    url: &str,
    node_id: String,
    parts: Parts,
    shutdown: Shutdown,
) -> Result<Node, async_nats::ConnectError> {
    let Parts {
        name,
        hub,
        store,
        metrics,
        timing,
        liveness,
    } = parts;
    let (cluster, connection) = Cluster::connect(url, &name, node_id, metrics.clone()).await?;
    let cluster = Arc::new(cluster);
    let outbox = outbox::Outbox::start(cluster.client().clone(), metrics.clone(), shutdown.clone());
    let presence = NatsPresence::start(
        cluster.clone(),
        hub.clone(),
        outbox.clone(),
        metrics.clone(),
        liveness,
        shutdown.clone(),
    );
    let control = Control::start(
        cluster.clone(),
        outbox.clone(),
        hub.clone(),
        store.clone(),
        shutdown.clone(),
    );
    let broker = NatsBroker::start(
        broker::Setup {
            cluster: cluster.clone(),
            connection,
            hub,
            store,
            metrics,
            outbox,
            presence: presence.clone(),
            timing,
        },
        shutdown,
    );
    control.serve_direct_rooms(broker.clone());
    Ok(Node {
        cluster,
        broker,
        presence,
        control,
    })
}
