//! Cluster control on `<cluster>.control`: what a node does that every other node must act on at once. A logout
//! revokes its token in the database (the record) and here tells every node to close that token's sockets and to
//! remember the revocation in its cache, so no node trusts its cached "not revoked" for the token any longer.

use std::sync::Arc;

use futures_util::StreamExt;
use palaver_handlers::Store;
use serde::{Deserialize, Serialize};

use super::Cluster;
use super::outbox::Outbox;
use crate::hub::LocalHub;
use crate::shutdown::Shutdown;

/// A control message between nodes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Order {
    /// The node that sent it.
    node: String,
    #[serde(flatten)]
    kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Kind {
    /// The token was revoked (a logout): close its sockets, refuse it from now on.
    TokenRevoked { token_id: String },
}

/// The sending side of cluster control.
pub struct Control {
    node_id: String,
    subject: String,
    outbox: Outbox,
}

impl Control {
    /// Starts listening to the other nodes' control messages, acting on them through `hub` and `store`.
    pub fn start(
        cluster: Arc<Cluster>,
        outbox: Outbox,
        hub: Arc<LocalHub>,
        store: Arc<dyn Store>,
        shutdown: Shutdown,
    ) -> Control {
        let node_id = cluster.node_id.clone();
        let subject = cluster.subjects.control();
        tokio::spawn(listen(cluster, hub, store, shutdown));
        Control {
            node_id,
            subject,
            outbox,
        }
    }

    /// Tells every other node that the token `token_id` was revoked.
    pub fn token_revoked(&self, token_id: &str) {
        let order = Order {
            node: self.node_id.clone(),
            kind: Kind::TokenRevoked {
                token_id: token_id.to_owned(),
            },
        };
        let payload = serde_json::to_vec(&order).unwrap_or_default();
        if !self.outbox.send(self.subject.clone(), payload) {
            // The other nodes still learn it from the database within their cache's trust period.
            tracing::warn!("a token revocation could not be sent to the other nodes");
        }
    }
}

async fn listen(
    cluster: Arc<Cluster>,
    hub: Arc<LocalHub>,
    store: Arc<dyn Store>,
    mut shutdown: Shutdown,
) {
    let mut orders = match cluster.client().subscribe(cluster.subjects.control()).await {
        Ok(orders) => orders,
        Err(err) => {
            tracing::error!(error = %err, "cannot subscribe to cluster control");
            return;
        }
    };
    loop {
        let message = tokio::select! {
            message = orders.next() => match message {
                Some(message) => message,
                None => return,
            },
            _ = shutdown.stopped() => return,
        };
        let Ok(order) = serde_json::from_slice::<Order>(&message.payload) else {
            tracing::debug!("a control message that does not decode was dropped");
            continue;
        };
        if order.node == cluster.node_id {
            continue;
        }
        match order.kind {
            Kind::TokenRevoked { token_id } => {
                store.learn_revoked(&token_id);
                let closed = hub.close_token(&token_id);
                tracing::info!(from = %order.node, closed, "a token revoked on another node");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn orders_have_one_flat_shape() {
        let order = Order {
            node: "node-1".into(),
            kind: Kind::TokenRevoked {
                token_id: "t-1".into(),
            },
        };
        let json = serde_json::to_value(&order).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"node": "node-1", "type": "token_revoked", "token_id": "t-1"})
        );
        assert_eq!(serde_json::from_value::<Order>(json).unwrap(), order);
        assert!(serde_json::from_str::<Order>(r#"{"node":"a","type":"nope"}"#).is_err());
    }
}
