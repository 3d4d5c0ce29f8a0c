//! The NATS [`Broker`]. Publishing delivers to this node's hub and sends the event to the other nodes through the
//! [`Outbox`] (never awaited on the ack path: a full outbox drops, and the receivers repair from the database).
//! Messages of every room this node serves, its own and the other nodes', pass through one ordering task (the
//! [`Sequencer`]), which delivers them in seq order and reads gaps and lagging rooms from the database; each served
//! room has one NATS subscription per node, taken when the room gets its first local connection and dropped after
//! the last. A user's membership that ends (they left the room) travels on the room's subject too: each node
//! unsubscribes that user's connections there.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use palaver_handlers::event::{Broadcast, ConnectionId, RoomEvent};
use palaver_handlers::model::LogEntry;
use palaver_handlers::{Broker, Clock, Delivered, Hub, Presence, Store};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::outbox::Outbox;
use super::presence::NatsPresence;
use super::sequencer::{Missing, Sequencer};
use super::{Cluster, Connection, wire};
use crate::context::SystemClock;
use crate::hub::LocalHub;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// How many events may wait for the ordering task.
const INPUT_QUEUE: usize = 65_536;
/// The most messages one database read of a gap fetches.
const READ_PAGE: u32 = 500;

/// How the ordering task is tuned.
#[derive(Debug, Clone, Copy)]
pub struct Timing {
    /// How long a gap may stay open before it is read from the database.
    pub gap_hold: Duration,
    /// How often every served room is checked against the database's newest seq.
    pub position_check: Duration,
}

/// What the ordering task is told.
enum Input {
    /// Serve a room from `from_seq` on.
    Watch {
        room_id: Uuid,
        room: String,
        from_seq: i64,
    },
    /// A room event, from this node or another (boxed: the queue holds many, most of them small), with what to run
    /// once it is delivered here (this node's own entries: the sender's ack).
    Event(Box<Broadcast>, Option<Delivered>),
    /// The database's answer to a read of missing seqs (`None`: the read failed).
    Read(Missing, Option<Vec<LogEntry>>),
    /// The database's newest seqs of the served rooms.
    Positions(Vec<(Uuid, i64)>),
}

/// The broker of a clustered node.
pub struct NatsBroker {
    node_id: String,
    subjects: super::subjects::Subjects,
    hub: Arc<LocalHub>,
    inputs: mpsc::Sender<Input>,
    outbox: Outbox,
    presence: Arc<NatsPresence>,
}

/// What the broker is started with.
pub struct Setup {
    pub cluster: Arc<Cluster>,
    /// What the NATS connection reports (a reconnection, dropped messages): each is followed by a catch-up.
    pub connection: mpsc::Receiver<Connection>,
    pub hub: Arc<LocalHub>,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub outbox: Outbox,
    pub presence: Arc<NatsPresence>,
    pub timing: Timing,
}

impl NatsBroker {
    /// Starts the ordering task, until `shutdown`.
    pub fn start(setup: Setup, shutdown: Shutdown) -> Arc<NatsBroker> {
        let (inputs, waiting) = mpsc::channel(INPUT_QUEUE);
        let ordering = Ordering {
            cluster: setup.cluster.clone(),
            hub: setup.hub.clone(),
            store: setup.store,
            metrics: setup.metrics,
            presence: setup.presence.clone(),
            inputs: inputs.clone(),
            sequencer: Sequencer::default(),
            acks: HashMap::new(),
            subscriptions: HashMap::new(),
            timing: setup.timing,
        };
        tokio::spawn(ordering.run(waiting, setup.connection, shutdown));
        Arc::new(NatsBroker {
            node_id: setup.cluster.node_id.clone(),
            subjects: setup.cluster.subjects.clone(),
            hub: setup.hub,
            inputs,
            outbox: setup.outbox,
            presence: setup.presence,
        })
    }
}

impl NatsBroker {
    /// Puts an entry in line with the other nodes' entries of its room; `delivered` runs once it is delivered here.
    /// If the line is full, the gap path repairs the entry and its sender is answered at once.
    fn order(&self, broadcast: Broadcast, delivered: Option<Delivered>) {
        if let Err(refused) = self
            .inputs
            .try_send(Input::Event(Box::new(broadcast), delivered))
        {
            tracing::warn!("the ordering queue is full; a message will be read from the database");
            if let Input::Event(_, Some(delivered)) = refused.into_inner() {
                delivered();
            }
        }
    }

    /// The direct room was opened for the user (here or on another node): their sockets on this node are subscribed
    /// and told, and the room is served from `last_seq` on.
    pub fn open_direct_here(
        &self,
        user_id: Uuid,
        username: &str,
        room_id: Uuid,
        room: &str,
        last_seq: i64,
        with: &str,
    ) -> Vec<ConnectionId> {
        let presence: &dyn palaver_handlers::Presence = self.presence.as_ref();
        let here = crate::hub::direct::open_here(
            &self.hub, presence, user_id, username, room_id, room, with,
        );
        if !here.is_empty() {
            Broker::watch(self, room_id, room, last_seq);
        }
        here
    }
}

impl Broker for NatsBroker {
    fn publish(&self, broadcast: Broadcast) {
        let is_message = matches!(broadcast.event, RoomEvent::Entry(_));
        // A node cut off from the cluster is dead to the others, who have said its users left: what its closing
        // sockets say now would reach them late and wrong. Messages always go (they are deduplicated by seq).
        if is_message || !self.presence.is_cut() {
            let subject = self.subjects.room(broadcast.room_id);
            self.outbox
                .send(subject, wire::encode(&self.node_id, &broadcast));
        }
        if let RoomEvent::Deleted { .. } = broadcast.event {
            self.presence.forget_room(broadcast.room_id);
        }
        if is_message {
            self.order(broadcast, None);
        } else {
            Hub::publish(self.hub.as_ref(), broadcast);
        }
    }

    fn publish_stored(&self, broadcast: Broadcast, delivered: Delivered) {
        let subject = self.subjects.room(broadcast.room_id);
        self.outbox
            .send(subject, wire::encode(&self.node_id, &broadcast));
        self.order(broadcast, Some(delivered));
    }

    fn unsubscribe_user(&self, user_id: Uuid, room_id: Uuid, room: &str) -> Vec<ConnectionId> {
        let unsubscribed = Hub::unsubscribe_user(self.hub.as_ref(), user_id, room_id);
        // Sent even while this node is cut off, like messages: it is not a presence claim its closing sockets make
        // but a stored fact, and a socket of the user elsewhere must not stay in a room they are no longer a member
        // of. Sent when no connection here was subscribed too: one elsewhere may be.
        let ended = wire::MembershipEnded {
            room_id,
            room: room.to_owned(),
            at: SystemClock.now(),
            user_id,
        };
        self.outbox.send(
            self.subjects.room(room_id),
            wire::encode_membership_ended(&self.node_id, &ended),
        );
        unsubscribed
    }

    fn open_direct(
        &self,
        user_id: Uuid,
        username: &str,
        room_id: Uuid,
        room: &str,
        last_seq: i64,
        with: &str,
    ) -> Vec<ConnectionId> {
        let here = self.open_direct_here(user_id, username, room_id, room, last_seq, with);
        // The user's sockets on other nodes: sent even while cut off, like a leave's end of membership, because it
        // states what the database holds.
        let order = super::control::direct_opened(
            &self.node_id,
            room_id,
            room,
            last_seq,
            user_id,
            username,
            with,
        );
        if !self.outbox.send(self.subjects.control(), order) {
            tracing::warn!(%room_id, "a direct room could not be announced to the other nodes");
        }
        here
    }

    fn watch(&self, room_id: Uuid, room: &str, from_seq: i64) {
        let watch = Input::Watch {
            room_id,
            room: room.to_owned(),
            from_seq,
        };
        if self.inputs.try_send(watch).is_err() {
            tracing::warn!(%room_id, "the ordering queue is full; the position check will serve the room");
        }
    }
}

/// The ordering task's state.
struct Ordering {
    cluster: Arc<Cluster>,
    hub: Arc<LocalHub>,
    store: Arc<dyn Store>,
    metrics: Arc<Metrics>,
    presence: Arc<NatsPresence>,
    /// Its own input, for the subscriptions and reads it starts.
    inputs: mpsc::Sender<Input>,
    sequencer: Sequencer,
    /// What waits for this node's own entries to be delivered here (their senders' acks), by (room, seq).
    acks: HashMap<(Uuid, i64), Vec<Delivered>>,
    /// The task forwarding each served room's NATS subscription.
    subscriptions: HashMap<Uuid, JoinHandle<()>>,
    timing: Timing,
}

impl Ordering {
    async fn run(
        mut self,
        mut waiting: mpsc::Receiver<Input>,
        mut connection: mpsc::Receiver<Connection>,
        mut shutdown: Shutdown,
    ) {
        let mut gaps = tokio::time::interval(self.timing.gap_hold / 2);
        let mut positions = tokio::time::interval(self.timing.position_check);
        loop {
            tokio::select! {
                input = waiting.recv() => match input {
                    Some(input) => self.take(input),
                    None => break,
                },
                Some(_) = connection.recv() => self.check_positions(),
                _ = gaps.tick() => self.read_overdue(),
                _ = positions.tick() => {
                    self.forget_unserved();
                    self.check_positions();
                }
                _ = shutdown.stopped() => break,
            }
        }
        for (_, subscription) in self.subscriptions.drain() {
            subscription.abort();
        }
    }

    fn take(&mut self, input: Input) {
        match input {
            Input::Watch {
                room_id,
                room,
                from_seq,
            } => {
                if self.sequencer.watch(room_id, &room, from_seq) {
                    self.subscribe(room_id);
                }
            }
            Input::Event(broadcast, delivered) => {
                let (room_id, seq) = (broadcast.room_id, super::sequencer::seq_of(&broadcast));
                if let (Some(delivered), Some(seq)) = (delivered, seq) {
                    self.acks.entry((room_id, seq)).or_default().push(delivered);
                }
                let ready = self.sequencer.offer(*broadcast, Instant::now());
                self.deliver(ready);
                self.settle(room_id);
            }
            Input::Read(missing, Some(found)) => {
                let ready = self.sequencer.read(missing, found);
                self.deliver(ready);
                self.settle(missing.room_id);
            }
            Input::Read(missing, None) => self.sequencer.read_failed(missing),
            Input::Positions(last_seqs) => {
                for missing in self.sequencer.behind(&last_seqs) {
                    self.metrics.cluster_catch_ups.inc();
                    self.read(missing);
                }
            }
        }
    }

    /// Delivers to this node's subscribers, in order, and runs what waited for each entry's delivery.
    fn deliver(&mut self, ready: Vec<Broadcast>) {
        for broadcast in ready {
            let key = super::sequencer::seq_of(&broadcast).map(|seq| (broadcast.room_id, seq));
            Hub::publish(self.hub.as_ref(), broadcast);
            if let Some(waiting) = key.and_then(|key| self.acks.remove(&key)) {
                waiting.into_iter().for_each(|delivered| delivered());
            }
        }
    }

    /// Runs what waits for entries of the room the sequencer has moved past without delivering them here (a repeat,
    /// a room no connection here serves, or seqs given up): nothing more will come for them.
    fn settle(&mut self, room_id: Uuid) {
        let through = self.sequencer.through(room_id);
        let passed: Vec<(Uuid, i64)> = self
            .acks
            .keys()
            .filter(|(room, seq)| *room == room_id && through.is_none_or(|through| *seq <= through))
            .copied()
            .collect();
        for key in passed {
            if let Some(waiting) = self.acks.remove(&key) {
                waiting.into_iter().for_each(|delivered| delivered());
            }
        }
    }

    /// Takes the room's NATS subscription: another node's events go to the ordering task (messages) or the hub.
    fn subscribe(&mut self, room_id: Uuid) {
        let (client, node_id) = (self.cluster.client().clone(), self.cluster.node_id.clone());
        let subject = self.cluster.subjects.room(room_id);
        let (inputs, hub, metrics) = (self.inputs.clone(), self.hub.clone(), self.metrics.clone());
        let presence = self.presence.clone();
        let forwarding = tokio::spawn(async move {
            let mut subscriber = match client.subscribe(subject).await {
                Ok(subscriber) => subscriber,
                Err(err) => {
                    // The position check still catches the room up from the database.
                    tracing::warn!(%room_id, error = %err, "cannot subscribe to a room's events");
                    return;
                }
            };
            while let Some(message) = subscriber.next().await {
                if wire::is_from(&message.payload, &node_id) {
                    // This node's own, heard back.
                    continue;
                }
                let Some((from, received)) = wire::decode(&message.payload) else {
                    tracing::debug!(%room_id, "a room event that does not decode was dropped");
                    continue;
                };
                if from == node_id {
                    continue;
                }
                let broadcast = match received {
                    wire::Received::Event(broadcast) if broadcast.room_id == room_id => broadcast,
                    wire::Received::MembershipEnded(ended) if ended.room_id == room_id => {
                        metrics.cluster_received.inc();
                        // Left on another node (that node says `left`, so this one does not): the user's sockets
                        // here leave too, at once, before this subject's later events; presence here follows.
                        let unsubscribed =
                            Hub::unsubscribe_user(hub.as_ref(), ended.user_id, room_id);
                        if !unsubscribed.is_empty() {
                            presence.departed(room_id, ended.user_id);
                        }
                        continue;
                    }
                    _ => continue,
                };
                metrics.cluster_received.inc();
                match broadcast.event {
                    RoomEvent::Entry(_) => {
                        if inputs
                            .send(Input::Event(Box::new(broadcast), None))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    RoomEvent::Deleted { .. } => {
                        // Deleted on another node: this node's sockets hear it and leave the room too.
                        Hub::publish(hub.as_ref(), broadcast);
                        hub.drop_room(room_id);
                        presence.forget_room(room_id);
                    }
                    _ => Hub::publish(hub.as_ref(), broadcast),
                }
            }
        });
        if let Some(previous) = self.subscriptions.insert(room_id, forwarding) {
            previous.abort();
        }
    }

    /// Stops serving the rooms no local connection is in any more.
    fn forget_unserved(&mut self) {
        for room_id in self.sequencer.watched() {
            if !self.hub.serves(room_id) {
                self.sequencer.forget(room_id);
                if let Some(subscription) = self.subscriptions.remove(&room_id) {
                    subscription.abort();
                }
            }
        }
    }

    fn read_overdue(&mut self) {
        for missing in self.sequencer.overdue(Instant::now(), self.timing.gap_hold) {
            self.metrics.cluster_gaps_filled.inc();
            self.read(missing);
        }
    }

    /// Reads `missing` from the database in the background; the answer comes back as an input.
    fn read(&self, missing: Missing) {
        let (store, inputs) = (self.store.clone(), self.inputs.clone());
        tokio::spawn(async move {
            let found = read_range(store.as_ref(), missing).await;
            if let Err(err) = &found {
                tracing::warn!(room_id = %missing.room_id, error = %err, "cannot read missing messages");
            }
            let _ = inputs.send(Input::Read(missing, found.ok())).await;
        });
    }

    /// Asks the database for the newest seq of every served room, in one query, in the background.
    fn check_positions(&self) {
        let rooms = self.sequencer.watched();
        if rooms.is_empty() {
            return;
        }
        let (store, inputs) = (self.store.clone(), self.inputs.clone());
        tokio::spawn(async move {
            match store.last_seqs(&rooms).await {
                Ok(last_seqs) => {
                    let _ = inputs.send(Input::Positions(last_seqs)).await;
                }
                Err(err) => tracing::warn!(error = %err, "cannot check the rooms' positions"),
            }
        });
    }
}

/// The stored entries of `missing` (every kind: messages, edits, deletions, reactions), oldest first, in pages.
async fn read_range(
    store: &dyn Store,
    missing: Missing,
) -> Result<Vec<LogEntry>, palaver_handlers::StoreError> {
    let mut found: Vec<LogEntry> = Vec::new();
    let mut after = missing.after;
    while after < missing.through {
        let page = store.log_after(missing.room_id, after, READ_PAGE).await?;
        let Some(newest) = page.last().map(|entry| entry.seq) else {
            break;
        };
        found.extend(
            page.into_iter()
                .filter(|entry| entry.seq <= missing.through),
        );
        after = newest;
    }
    Ok(found)
}
