//! Everything a node sends to NATS goes through one bounded outbox, in order, sent by one task. Sending never waits:
//! a full outbox drops (and counts) what does not fit, and the receivers repair it (room messages from the database,
//! presence by a snapshot), because async-nats's `publish` blocks once its own command channel is full and nothing on
//! the ack path may wait on NATS.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;

use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// How many messages may wait to be published.
const CAPACITY: usize = 65_536;
/// How long one publish may take before the outbox moves on.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);

/// The sending side of the outbox; cheap to clone.
#[derive(Clone)]
pub struct Outbox {
    waiting: mpsc::Sender<(String, Bytes)>,
    metrics: Arc<Metrics>,
}

impl Outbox {
    /// Starts the task publishing through `client` until `shutdown`.
    pub fn start(client: async_nats::Client, metrics: Arc<Metrics>, shutdown: Shutdown) -> Outbox {
        let (waiting, unsent) = mpsc::channel(CAPACITY);
        tokio::spawn(publish(client, unsent, metrics.clone(), shutdown));
        Outbox { waiting, metrics }
    }

    /// Queues `payload` for `subject`; false (and counted as dropped) when the outbox is full.
    pub fn send(&self, subject: String, payload: Vec<u8>) -> bool {
        let queued = self
            .waiting
            .try_send((subject, Bytes::from(payload)))
            .is_ok();
        if !queued {
            self.metrics.cluster_dropped.inc();
        }
        queued
    }
}

async fn publish(
    client: async_nats::Client,
    mut unsent: mpsc::Receiver<(String, Bytes)>,
    metrics: Arc<Metrics>,
    mut shutdown: Shutdown,
) {
    loop {
        let (subject, payload) = tokio::select! {
            next = unsent.recv() => match next {
                Some(next) => next,
                None => return,
            },
            _ = shutdown.stopped() => return,
        };
        match tokio::time::timeout(PUBLISH_TIMEOUT, client.publish(subject, payload)).await {
            Ok(Ok(())) => metrics.cluster_published.inc(),
            Ok(Err(err)) => {
                metrics.cluster_dropped.inc();
                tracing::debug!(error = %err, "a message to the cluster was not published");
            }
            Err(_) => metrics.cluster_dropped.inc(),
        }
    }
}
