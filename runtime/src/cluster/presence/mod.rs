//! Presence across the cluster: the NATS [`Presence`]. Each node is the authority for its own connections (the
//! local hub knows them) and announces every change, numbered under its incarnation, on `<cluster>.presence`; every
//! second it sends a heartbeat naming the number it has reached. The other nodes keep a [`roster::Roster`] of what
//! each has announced, ask a node for a snapshot when they find they missed something, and count a node silent for
//! [`Liveness::silence`] (3 s) as dead: its users leave the rooms they have no socket left in, and each survivor
//! tells its own sockets there. A node that sent its heartbeats but does not hear its *own* for as long knows the
//! others count it dead: it closes its sockets with 1012 so that their clients reconnect to a node that is in the
//! cluster, and refuses new ones until it hears itself again. Silence is measured against this node's own echo
//! ([`echo::Echo`]), so a node that is merely slow (its CPU saturated) neither counts the others dead nor cuts
//! itself off.

pub mod echo;
pub mod holdings;
pub mod roster;
pub mod wire;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use palaver_handlers::event::{Broadcast, RoomEvent};
use palaver_handlers::{Clock, Hub, Presence};
use uuid::Uuid;

use self::echo::Echo;
use self::holdings::Holdings;
use self::roster::{Gone, Heard, Roster};
use self::wire::{Announcement, Assembly, Change, Heartbeat, Request, Snapshot, SnapshotPart};
use super::Cluster;
use super::outbox::Outbox;
use crate::close::Close;
use crate::context::SystemClock;
use crate::hub::LocalHub;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;
use crate::ws::capacity::Elsewhere;

/// How presence is tuned (`cluster_heartbeat_ms`, `cluster_dead_after_ms`).
#[derive(Debug, Clone, Copy)]
pub struct Liveness {
    /// How often a node says it is alive.
    pub heartbeat: Duration,
    /// How long a node may be silent before it counts as dead.
    pub silence: Duration,
}

/// How long a snapshot may take to arrive, all its parts.
const SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(2);

/// This node's presence: its holdings, the number of the last change, the changes numbered but not sent yet, and
/// the number of the last change sent (what heartbeats name).
#[derive(Default)]
struct Local {
    seq: u64,
    held: Holdings,
    unsent: Vec<Change>,
    sent_seq: u64,
}

/// The presence of a clustered node.
pub struct NatsPresence {
    node_id: String,
    incarnation: Uuid,
    cluster: Arc<Cluster>,
    hub: Arc<LocalHub>,
    outbox: Outbox,
    metrics: Arc<Metrics>,
    local: Mutex<Local>,
    roster: Mutex<Roster>,
    /// This node's own heartbeat, as it comes back from NATS.
    echo: Mutex<Echo>,
    /// Woken when a change is queued for announcement.
    queued: tokio::sync::Notify,
    /// True while this node counts itself cut off from the cluster.
    cut: AtomicBool,
    liveness: Liveness,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing here panics while holding a lock; recover the data if something ever did.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl NatsPresence {
    /// Starts presence over `cluster` as a new incarnation, until `shutdown`.
    pub fn start(
        cluster: Arc<Cluster>,
        hub: Arc<LocalHub>,
        outbox: Outbox,
        metrics: Arc<Metrics>,
        liveness: Liveness,
        shutdown: Shutdown,
    ) -> Arc<NatsPresence> {
        let presence = Arc::new(NatsPresence {
            node_id: cluster.node_id.clone(),
            incarnation: Uuid::new_v4(),
            cluster,
            hub,
            outbox,
            metrics,
            local: Mutex::default(),
            roster: Mutex::default(),
            echo: Mutex::new(Echo::new(Instant::now())),
            queued: tokio::sync::Notify::new(),
            cut: AtomicBool::new(false),
            liveness,
        });
        tokio::spawn(presence.clone().announcing(shutdown.clone()));
        tokio::spawn(presence.clone().run(shutdown));
        presence
    }

    /// Whether this node counts itself cut off from the cluster (its sockets were closed with 1012).
    pub fn is_cut(&self) -> bool {
        self.cut.load(Ordering::SeqCst)
    }

    /// How many nodes are alive, this one included while it is in the cluster.
    pub fn nodes_alive(&self) -> usize {
        lock(&self.roster).alive() + usize::from(!self.is_cut())
    }

    /// A room was deleted: nobody is in it on any node any more.
    pub fn forget_room(&self, room_id: Uuid) {
        lock(&self.roster).forget_room(room_id);
        self.change_here(Change::Forgot { room_id });
    }

    /// Applies `change` to this node's holdings and, when it changed something, numbers it and queues it for the
    /// next announcement.
    fn change_here(&self, change: Change) {
        let mut local = lock(&self.local);
        if !local.held.apply(change.clone()) {
            return;
        }
        local.seq += 1;
        local.unsent.push(change);
        if local.unsent.len() == 1 {
            self.queued.notify_one();
        }
    }

    /// Sends the queued changes, in number order, in announcements of at most [`wire::ANNOUNCED_CHANGES`].
    fn announce(&self) {
        let mut local = lock(&self.local);
        while !local.unsent.is_empty() {
            let take = local.unsent.len().min(wire::ANNOUNCED_CHANGES);
            let changes: Vec<Change> = local.unsent.drain(..take).collect();
            let announcement = Announcement {
                node: self.node_id.clone(),
                incarnation: self.incarnation,
                seq: local.sent_seq + 1,
                changes,
            };
            local.sent_seq += take as u64;
            self.outbox.send(
                self.cluster.subjects.presence(),
                wire::encode(&announcement),
            );
        }
    }

    /// Sends what is queued whenever it is woken, until `shutdown`. A lone change goes out at once; in a burst, the
    /// changes queued while this task waited for its turn on a busy runtime go out together (the busier the node,
    /// the larger the batch), never held back by a timer.
    async fn announcing(self: Arc<Self>, mut shutdown: Shutdown) {
        loop {
            tokio::select! {
                _ = self.queued.notified() => {}
                _ = shutdown.stopped() => return,
            }
            self.announce();
        }
    }

    fn snapshot(&self) -> Snapshot {
        let local = lock(&self.local);
        Snapshot {
            incarnation: self.incarnation,
            seq: local.seq,
            present: local.held.present(),
            connections: local.held.connections(),
        }
    }

    async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        let client = self.cluster.client().clone();
        let subscribed = async {
            Ok::<_, async_nats::SubscribeError>((
                client.subscribe(self.cluster.subjects.presence()).await?,
                client.subscribe(self.cluster.subjects.heartbeat()).await?,
                client
                    .subscribe(self.cluster.subjects.node(&self.node_id))
                    .await?,
            ))
        };
        let (mut changes, mut heartbeats, mut requests) = match subscribed.await {
            Ok(subscribed) => subscribed,
            Err(err) => {
                // Only a closed client fails here (subscriptions wait for a connection otherwise).
                tracing::error!(error = %err, "cannot subscribe to the cluster's presence");
                return;
            }
        };
        // A heartbeat late for a stalled task goes out once, not in a burst: the beats counted as sent are the ones
        // that could have been heard.
        let mut beat = tokio::time::interval(self.liveness.heartbeat);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Silence is checked four times per heartbeat.
        let mut check = tokio::time::interval(self.liveness.heartbeat / 4);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            tokio::select! {
                Some(message) = changes.next() => {
                    if let Some(announcement) = wire::decode::<Announcement>(&message.payload) {
                        self.announced(announcement);
                    }
                }
                Some(message) = heartbeats.next() => {
                    if let Some(heartbeat) = wire::decode::<Heartbeat>(&message.payload) {
                        self.heartbeat(heartbeat);
                    }
                }
                Some(message) = requests.next() => {
                    if let (Some(Request::Snapshot), Some(reply)) =
                        (wire::decode::<Request>(&message.payload), message.reply)
                    {
                        self.send_snapshot(reply.to_string());
                    }
                }
                _ = beat.tick() => {
                    let heartbeat = Heartbeat {
                        node: self.node_id.clone(),
                        incarnation: self.incarnation,
                        seq: lock(&self.local).sent_seq,
                    };
                    self.outbox.send(self.cluster.subjects.heartbeat(), wire::encode(&heartbeat));
                    lock(&self.echo).sent();
                }
                _ = check.tick() => self.check(Instant::now()),
                _ = shutdown.stopped() => return,
            }
        }
    }

    fn announced(self: &Arc<Self>, announcement: Announcement) {
        if announcement.node == self.node_id {
            return;
        }
        let now = Instant::now();
        for (number, change) in (announcement.seq..).zip(announcement.changes) {
            let heard = lock(&self.roster).change(
                &announcement.node,
                announcement.incarnation,
                number,
                change,
                now,
            );
            self.act_on(&announcement.node, heard);
        }
    }

    fn heartbeat(self: &Arc<Self>, heartbeat: Heartbeat) {
        let now = Instant::now();
        if heartbeat.node == self.node_id {
            if heartbeat.incarnation == self.incarnation {
                lock(&self.echo).heard(now);
            } else {
                tracing::error!(node = %self.node_id, "another node runs with this node's id");
            }
            return;
        }
        let heard = lock(&self.roster).heartbeat(
            &heartbeat.node,
            heartbeat.incarnation,
            heartbeat.seq,
            now,
        );
        self.act_on(&heartbeat.node, heard);
    }

    fn act_on(self: &Arc<Self>, node: &str, heard: Heard) {
        if let Some(gone) = heard.replaced {
            tracing::info!(node, "a node started again");
            self.left(gone);
        }
        if heard.snapshot {
            self.request_snapshot(node.to_owned());
        }
    }

    /// Checks this node's own heartbeat and the others' silence.
    fn check(&self, now: Instant) {
        let echo = *lock(&self.echo);
        if echo.cut_off(now, &self.liveness) {
            if !self.cut.swap(true, Ordering::SeqCst) {
                tracing::error!(
                    "this node has sent its heartbeats but not heard itself on NATS for over {} ms: the others \
                     count it dead; closing its sockets (1012) until it is back",
                    self.liveness.silence.as_millis()
                );
            }
            // Sockets that were opening meanwhile go too.
            self.hub.close_all(Close::ClusterLost);
        } else if now.saturating_duration_since(echo.heard_at()) <= self.liveness.silence
            && self.cut.swap(false, Ordering::SeqCst)
        {
            tracing::info!("this node hears itself on NATS again: taking clients");
        }
        let hearing_until = echo.hearing_until(now, &self.liveness);
        let dead = lock(&self.roster).expire(hearing_until, self.liveness.silence);
        for gone in dead {
            tracing::warn!(node = %gone.node, "a node fell silent: counted dead");
            self.metrics.cluster_dead_nodes.inc();
            self.left(gone);
        }
        self.metrics
            .cluster_nodes_alive
            .set(self.nodes_alive() as i64);
    }

    /// A node's connections are gone: whoever of its users has no socket left in a room leaves it, and this node's
    /// sockets there are told.
    fn left(&self, gone: Gone) {
        for present in gone.present {
            let still_here = lock(&self.local).held.has(present.room_id, present.user_id);
            if still_here || lock(&self.roster).has(present.room_id, present.user_id) {
                continue;
            }
            let Some(room) = self.hub.room_name(present.room_id) else {
                // Nobody here to tell.
                continue;
            };
            Hub::publish(
                self.hub.as_ref(),
                Broadcast {
                    room_id: present.room_id,
                    room,
                    at: SystemClock.now(),
                    event: RoomEvent::Left {
                        username: present.username,
                    },
                    skip_user: Some(present.user_id),
                },
            );
        }
    }

    /// Asks `node` for its snapshot in the background; applies it once every part is in.
    fn request_snapshot(self: &Arc<Self>, node: String) {
        let presence = self.clone();
        tokio::spawn(async move {
            let client = presence.cluster.client();
            let inbox = client.new_inbox();
            let mut parts = match client.subscribe(inbox.clone()).await {
                Ok(parts) => parts,
                Err(err) => {
                    tracing::warn!(%node, error = %err, "cannot ask for a snapshot");
                    return;
                }
            };
            let request = wire::encode(&Request::Snapshot);
            if let Err(err) = client
                .publish_with_reply(presence.cluster.subjects.node(&node), inbox, request.into())
                .await
            {
                tracing::warn!(%node, error = %err, "cannot ask for a snapshot");
                return;
            }
            let mut assembly = Assembly::default();
            let deadline = tokio::time::Instant::now() + SNAPSHOT_TIMEOUT;
            while let Ok(Some(message)) = tokio::time::timeout_at(deadline, parts.next()).await {
                let Some(part) = wire::decode::<SnapshotPart>(&message.payload) else {
                    continue;
                };
                if part.node != node {
                    continue;
                }
                if let Some(snapshot) = assembly.take(part) {
                    lock(&presence.roster).snapshot(&node, snapshot, Instant::now());
                    return;
                }
            }
            // Unanswered: the node's next heartbeat asks again.
            tracing::debug!(%node, "a snapshot did not arrive in time");
        });
    }

    fn send_snapshot(&self, reply: String) {
        for part in wire::split(&self.node_id, self.snapshot()) {
            self.outbox.send(reply.clone(), wire::encode(&part));
        }
    }

    fn present_elsewhere(&self, room_id: Uuid, user_id: Uuid) -> bool {
        lock(&self.roster).has(room_id, user_id)
    }
}

impl Presence for NatsPresence {
    fn arrived(&self, room_id: Uuid, user_id: Uuid, username: &str) -> bool {
        let arrived = Change::Arrived {
            room_id,
            user_id,
            username: username.to_owned(),
        };
        self.change_here(arrived);
        !self.present_elsewhere(room_id, user_id)
    }

    fn departed(&self, room_id: Uuid, user_id: Uuid) -> bool {
        self.change_here(Change::Departed { room_id, user_id });
        !self.present_elsewhere(room_id, user_id)
    }

    fn online_users(&self, room_id: Uuid) -> Vec<Uuid> {
        let mut users = Hub::online_users(self.hub.as_ref(), room_id);
        users.extend(lock(&self.roster).online(room_id));
        users.sort_unstable();
        users.dedup();
        users
    }
}

impl Elsewhere for NatsPresence {
    fn connections_elsewhere(&self, user_id: Uuid) -> u32 {
        lock(&self.roster).connections(user_id)
    }

    fn connections_here(&self, user_id: Uuid, count: u32) {
        self.change_here(Change::Connections { user_id, count });
    }
}
