//! Cluster control on `<cluster>.control`: what a node does that every other node must act on at once. A logout
//! revokes its token in the database (the record) and here tells every node to close that token's sockets and to
//! remember the revocation in its cache, so no node trusts its cached "not revoked" for the token any longer. A direct
//! room just opened (recorded in the database) tells every node to subscribe the user's sockets there to it.

use std::sync::{Arc, OnceLock};

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
    /// The user is a member of the direct room (with `with`): subscribe their sockets to it and tell them.
    DirectOpened {
        room_id: uuid::Uuid,
        room: String,
        last_seq: i64,
        user_id: uuid::Uuid,
        username: String,
        with: String,
    },
}

/// What a direct room just opened needs to be served on a node: its broker, set once the broker has started.
type DirectServer = Arc<OnceLock<Arc<super::NatsBroker>>>;

/// The control message that tells every other node of a direct room opened for `user_id`.
pub fn direct_opened(
    node: &str,
    room_id: uuid::Uuid,
    room: &str,
    last_seq: i64,
    user_id: uuid::Uuid,
    username: &str,
    with: &str,
) -> Vec<u8> {
    let order = Order {
        node: node.to_owned(),
        kind: Kind::DirectOpened {
            room_id,
            room: room.to_owned(),
            last_seq,
            user_id,
            username: username.to_owned(),
            with: with.to_owned(),
        },
    };
    serde_json::to_vec(&order).unwrap_or_default()
}

/// The sending side of cluster control.
pub struct Control {
    node_id: String,
    subject: String,
    outbox: Outbox,
    direct: DirectServer,
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
        let direct = DirectServer::default();
        tokio::spawn(listen(cluster, hub, store, direct.clone(), shutdown));
        Control {
            node_id,
            subject,
            outbox,
            direct,
        }
    }

    /// Serves the direct rooms other nodes open through `broker` (started after control, which it sends with).
    pub fn serve_direct_rooms(&self, broker: Arc<super::NatsBroker>) {
        let _ = self.direct.set(broker);
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
    direct: DirectServer,
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
            Kind::DirectOpened {
                room_id,
                room,
                last_seq,
                user_id,
                username,
                with,
            } => match direct.get() {
                Some(broker) => {
                    broker.open_direct_here(user_id, &username, room_id, &room, last_seq, &with);
                }
                // Not serving yet: the user's sockets here join the room when they next join it.
                None => {
                    tracing::debug!(%room_id, "a direct room opened before this node's broker started")
                }
            },
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
