//! The group-commit writer: every chat message of this node goes through one task that stores whatever is waiting
//! (from all rooms, up to `max_batch`) in one transaction, then delivers the stored messages in commit order and only
//! then answers the senders. One transaction per batch instead of per message is what makes durable chat fast, and one
//! delivering task is what keeps every room's messages in seq order for every recipient.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use palaver_handlers::model::{Appended, NewEntry};
use palaver_handlers::{MessageLog, Posted, Store, StoreError};
use tokio::sync::{mpsc, oneshot};

use super::Fanout;
use crate::metrics::Metrics;

/// How the writer batches.
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    /// The most messages in one transaction.
    pub max_batch: usize,
    /// How long the writer waits for more messages once it has one, when fewer than `max_batch` are waiting. Zero
    /// (the default) batches only what queued up during the previous commit, which adds no latency when idle.
    pub linger: Duration,
    /// How many posts may wait for the writer; past it senders wait (back-pressure), never memory.
    pub queue: usize,
    /// How long one commit may take before its outcome counts as unknown (a stalled connection must not stall chat).
    pub commit_timeout: Duration,
}

/// How often the writer asks again about messages whose commit outcome is unknown while no new post arrives.
const RESOLVE_EVERY: Duration = Duration::from_millis(500);

/// One post waiting to be stored.
struct Post {
    room: String,
    message: NewEntry,
    done: oneshot::Sender<Result<Appended, StoreError>>,
}

/// A message whose commit's outcome is unknown: its room (name and id) and its id.
struct InDoubt {
    room: String,
    room_id: uuid::Uuid,
    id: uuid::Uuid,
}

/// The handle handlers post through; the writer task runs until every handle is dropped.
pub struct GroupCommit {
    posts: mpsc::Sender<Post>,
}

/// What the writer works with.
struct Writer {
    store: Arc<dyn Store>,
    fanout: Fanout,
    metrics: Arc<Metrics>,
    commit_timeout: Duration,
    /// Messages (room, id) of a commit whose answer was lost: the database may have stored them. Until the writer
    /// knows (and has delivered those it did store), nothing newer is committed, so rooms stay in seq order.
    in_doubt: Vec<InDoubt>,
}

impl GroupCommit {
    /// Starts the writer over `store`, delivering through `fanout`.
    pub fn start(
        store: Arc<dyn Store>,
        fanout: Fanout,
        metrics: Arc<Metrics>,
        settings: BatchSettings,
    ) -> Self {
        let (posts, waiting) = mpsc::channel(settings.queue.max(1));
        tokio::spawn(write(
            Writer {
                store,
                fanout,
                metrics,
                commit_timeout: settings.commit_timeout,
                in_doubt: Vec::new(),
            },
            waiting,
            settings,
        ));
        GroupCommit { posts }
    }
}

fn writer_gone() -> StoreError {
    StoreError::Unavailable("the message writer has stopped".into())
}

#[async_trait]
impl MessageLog for GroupCommit {
    async fn submit(&self, room: &str, message: NewEntry) -> Result<Posted, StoreError> {
        let (done, outcome) = oneshot::channel();
        let post = Post {
            room: room.to_owned(),
            message,
            done,
        };
        self.posts.send(post).await.map_err(|_| writer_gone())?;
        Ok(Box::pin(async move {
            outcome.await.map_err(|_| writer_gone())?
        }))
    }
}

async fn write(mut writer: Writer, mut waiting: mpsc::Receiver<Post>, settings: BatchSettings) {
    let max_batch = settings.max_batch.max(1);
    loop {
        let first = if writer.in_doubt.is_empty() {
            waiting.recv().await
        } else {
            tokio::select! {
                post = waiting.recv() => post,
                _ = tokio::time::sleep(RESOLVE_EVERY) => {
                    writer.resolve().await;
                    continue;
                }
            }
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        while batch.len() < max_batch {
            match waiting.try_recv() {
                Ok(post) => batch.push(post),
                Err(_) if settings.linger.is_zero() => break,
                Err(_) => match tokio::time::timeout(settings.linger, waiting.recv()).await {
                    Ok(Some(post)) => batch.push(post),
                    _ => break,
                },
            }
        }
        if !writer.in_doubt.is_empty() && !writer.resolve().await {
            let unsettled = StoreError::Unavailable("earlier messages are not settled yet".into());
            fail(
                batch
                    .into_iter()
                    .map(|post| (post.room, post.done))
                    .collect(),
                &unsettled,
            );
            continue;
        }
        writer.commit(batch).await;
    }
}

/// A post's room and the sender waiting for its outcome.
type Waiter = (String, oneshot::Sender<Result<Appended, StoreError>>);

impl Writer {
    /// Stores a batch in one transaction and settles every post in it. If the batch fails for a reason other than
    /// the database being unreachable, one bad message must not sink the others: each is retried on its own.
    async fn commit(&mut self, batch: Vec<Post>) {
        let (posts, messages): (Vec<Waiter>, Vec<NewEntry>) = batch
            .into_iter()
            .map(|post| ((post.room, post.done), post.message))
            .unzip();
        let timer = self.metrics.batch_seconds.start_timer();
        let stored = self.append(&messages).await;
        let elapsed = timer.stop_and_record();
        self.metrics.batch_size.observe(posts.len() as f64);
        tracing::debug!(
            batch = posts.len(),
            elapsed_us = (elapsed * 1e6) as u64,
            "batch committed"
        );
        match stored {
            Ok(outcomes) if outcomes.len() == posts.len() => self.deliver(posts, outcomes),
            Ok(outcomes) => {
                let error = StoreError::Backend(format!(
                    "{} outcomes for {} messages",
                    outcomes.len(),
                    posts.len()
                ));
                fail(posts, &error);
            }
            Err(StoreError::Unavailable(detail)) => {
                // The commit may have happened with only its answer lost: find out before anything newer is stored.
                self.doubt(&posts, &messages);
                fail(posts, &StoreError::Unavailable(detail));
            }
            Err(error) if posts.len() == 1 => fail(posts, &error),
            Err(error) => {
                tracing::warn!(%error, batch = posts.len(), "batch failed; storing its messages one by one");
                for (post, message) in posts.into_iter().zip(messages) {
                    let single = std::slice::from_ref(&message);
                    match self.append(single).await {
                        Ok(outcomes) if outcomes.len() == 1 => self.deliver(vec![post], outcomes),
                        Ok(_) => fail(
                            vec![post],
                            &StoreError::Backend("no outcome for a message".into()),
                        ),
                        Err(error @ StoreError::Unavailable(_)) => {
                            self.doubt(std::slice::from_ref(&post), single);
                            fail(vec![post], &error);
                        }
                        Err(error) => fail(vec![post], &error),
                    }
                }
            }
        }
    }

    /// Stores messages, giving up (outcome unknown) after the commit timeout.
    async fn append(&self, messages: &[NewEntry]) -> Result<Vec<Appended>, StoreError> {
        match tokio::time::timeout(self.commit_timeout, self.store.append_messages(messages)).await
        {
            Ok(stored) => stored,
            Err(_) => Err(StoreError::Unavailable(
                "the commit did not answer in time".into(),
            )),
        }
    }

    /// Remembers messages whose commit outcome is unknown.
    fn doubt(&mut self, posts: &[Waiter], messages: &[NewEntry]) {
        let doubtful = posts
            .iter()
            .zip(messages)
            .map(|((room, _), message)| InDoubt {
                room: room.clone(),
                room_id: message.room_id,
                id: message.id,
            });
        self.in_doubt.extend(doubtful);
    }

    /// Asks the store which messages in doubt it holds and delivers those, in seq order; true once settled.
    async fn resolve(&mut self) -> bool {
        let ids: Vec<uuid::Uuid> = self.in_doubt.iter().map(|doubt| doubt.id).collect();
        let rooms: Vec<uuid::Uuid> = self.in_doubt.iter().map(|doubt| doubt.room_id).collect();
        let lookup =
            tokio::time::timeout(self.commit_timeout, self.store.messages_by_id(&rooms, &ids))
                .await;
        let Ok(Ok(found)) = lookup else {
            return false;
        };
        tracing::warn!(
            in_doubt = ids.len(),
            stored = found.len(),
            "settled messages whose commit answer was lost"
        );
        for message in found {
            let room = self
                .in_doubt
                .iter()
                .find(|doubt| doubt.id == message.id)
                .map(|doubt| doubt.room.clone())
                .unwrap_or_default();
            self.fanout.stored(&room, message);
        }
        self.in_doubt.clear();
        true
    }

    /// Publishes the newly stored messages in commit (so seq) order, and answers each sender once its entry is
    /// delivered on this node (the ack follows the sender's own message frame); the others are answered at once.
    fn deliver(&self, posts: Vec<Waiter>, outcomes: Vec<Appended>) {
        for ((room, done), outcome) in posts.into_iter().zip(outcomes) {
            match &outcome {
                Appended::Stored(message) => {
                    let message = message.clone();
                    // The sender may have gone; the message is stored and delivered regardless.
                    let answer = Box::new(move || {
                        let _ = done.send(Ok(outcome));
                    });
                    self.fanout.stored_then(&room, message, answer);
                }
                _ => {
                    let _ = done.send(Ok(outcome));
                }
            }
        }
    }
}

fn fail(posts: Vec<Waiter>, error: &StoreError) {
    for (_, done) in posts {
        let _ = done.send(Err(error.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palaver_handlers::Hub;
    use palaver_handlers::event::{Broadcast, RoomEvent};
    use palaver_handlers::model::{
        AuditEvent, Change, HistoryPage, HistoryQuery, LogEntry, Member, NewRoom, NewUser,
        ReadPoint, ReadState, Room, User,
    };
    use palaver_handlers::testing::{MemoryHub, MemoryStore};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};
    use time::OffsetDateTime;
    use time::macros::datetime;
    use tokio::sync::watch;
    use tokio::time::Instant;
    use uuid::Uuid;

    const AT: time::OffsetDateTime = datetime!(2026-11-25 15:30:45 UTC);

    /// Long enough for anything these tests await; with the clock paused it costs no real time.
    const PATIENCE: Duration = Duration::from_secs(60);

    async fn setup() -> (Arc<MemoryStore>, Arc<MemoryHub>, Uuid, Uuid) {
        let store = Arc::new(MemoryStore::new());
        let user = Uuid::now_v7();
        store
            .create_user(NewUser {
                id: user,
                username: "john_doe".into(),
                email: "john@example.com".into(),
                password_hash: "x".into(),
                created_at: AT,
            })
            .await
            .unwrap();
        let room = Uuid::now_v7();
        store
            .create_room(NewRoom {
                id: room,
                name: "general".into(),
                private: false,
                password_hash: None,
                owner_id: user,
                created_at: AT,
            })
            .await
            .unwrap();
        let hub = Arc::new(MemoryHub::default());
        hub.subscribe(9, Uuid::now_v7(), room, "general");
        (store, hub, user, room)
    }

    fn message(room_id: Uuid, user_id: Uuid, content: &str) -> NewEntry {
        NewEntry {
            id: Uuid::now_v7(),
            room_id,
            user_id,
            change: Change::Post {
                content: content.into(),
                reply_to: None,
            },
            client_msg_id: None,
            created_at: AT,
        }
    }

    fn start(store: Arc<dyn Store>, hub: &Arc<MemoryHub>, settings: BatchSettings) -> GroupCommit {
        let metrics = Arc::new(Metrics::new());
        let fanout = Fanout::new(hub.clone(), metrics.clone());
        GroupCommit::start(store, fanout, metrics, settings)
    }

    fn writer(store: &Arc<MemoryStore>, hub: &Arc<MemoryHub>) -> GroupCommit {
        start(store.clone(), hub, settings())
    }

    fn settings() -> BatchSettings {
        BatchSettings {
            max_batch: 64,
            linger: Duration::ZERO,
            queue: 1024,
            commit_timeout: Duration::from_secs(5),
        }
    }

    /// Awaits `future`, failing the test if it takes longer than [`PATIENCE`].
    async fn within<F: std::future::Future>(future: F) -> F::Output {
        tokio::time::timeout(PATIENCE, future)
            .await
            .expect("the awaited event happens")
    }

    /// The messages the hub delivered to the room's subscriber so far, as (seq, content), in delivery order.
    fn delivered(hub: &MemoryHub) -> Vec<(i64, String)> {
        hub.take(9)
            .into_iter()
            .filter_map(|d| match d.event {
                RoomEvent::Entry(m) => Some((m.seq, m.content()?.to_owned())),
                _ => None,
            })
            .collect()
    }

    fn pairs(expected: &[(i64, &str)]) -> Vec<(i64, String)> {
        expected
            .iter()
            .map(|(seq, content)| (*seq, (*content).to_owned()))
            .collect()
    }

    /// The [`MemoryStore`] with a record of what the writer asks of it: every append's messages (by content), every
    /// lookup of messages in doubt (by id). Its appends can be held, so that posts queue up behind a commit, and its
    /// lookups can be refused.
    struct Probe {
        inner: Arc<MemoryStore>,
        appends: Mutex<Vec<Vec<String>>>,
        /// How many appends have begun.
        appends_begun: watch::Sender<usize>,
        /// Appends wait while this is false.
        open: watch::Sender<bool>,
        lookups: Mutex<Vec<Vec<Uuid>>>,
        /// How many lookups have been made.
        lookups_made: watch::Sender<usize>,
        refuse_lookups: AtomicBool,
    }

    impl Probe {
        fn new(inner: Arc<MemoryStore>) -> Arc<Self> {
            Arc::new(Probe {
                inner,
                appends: Mutex::default(),
                appends_begun: watch::Sender::new(0),
                open: watch::Sender::new(true),
                lookups: Mutex::default(),
                lookups_made: watch::Sender::new(0),
                refuse_lookups: AtomicBool::new(false),
            })
        }

        /// Holds every append from now on, once it has been recorded, until [`Probe::release`].
        fn hold(&self) {
            self.open.send_replace(false);
        }

        fn release(&self) {
            self.open.send_replace(true);
        }

        fn refuse_lookups(&self, refuse: bool) {
            self.refuse_lookups.store(refuse, Ordering::SeqCst);
        }

        /// Resolves once `count` appends have begun (a held one counts).
        async fn appends_begun(&self, count: usize) {
            let mut begun = self.appends_begun.subscribe();
            within(begun.wait_for(|begun| *begun >= count))
                .await
                .expect("the probe is alive");
        }

        /// Resolves once `count` lookups have been made.
        async fn lookups_made(&self, count: usize) {
            let mut made = self.lookups_made.subscribe();
            within(made.wait_for(|made| *made >= count))
                .await
                .expect("the probe is alive");
        }

        /// The contents of every append's messages, one list per call, in call order.
        fn appends(&self) -> Vec<Vec<String>> {
            self.appends.lock().unwrap().clone()
        }

        /// The ids each lookup asked about, in call order.
        fn lookups(&self) -> Vec<Vec<Uuid>> {
            self.lookups.lock().unwrap().clone()
        }
    }

    #[async_trait]
    impl Store for Probe {
        async fn append_messages(&self, batch: &[NewEntry]) -> Result<Vec<Appended>, StoreError> {
            let contents = batch
                .iter()
                .map(|m| match &m.change {
                    Change::Post { content, .. } => content.clone(),
                    other => format!("{other:?}"),
                })
                .collect();
            self.appends.lock().unwrap().push(contents);
            self.appends_begun.send_modify(|begun| *begun += 1);
            let mut open = self.open.subscribe();
            open.wait_for(|open| *open)
                .await
                .expect("the probe is alive");
            self.inner.append_messages(batch).await
        }

        async fn messages_by_id(
            &self,
            room_ids: &[Uuid],
            ids: &[Uuid],
        ) -> Result<Vec<LogEntry>, StoreError> {
            self.lookups.lock().unwrap().push(ids.to_vec());
            self.lookups_made.send_modify(|made| *made += 1);
            if self.refuse_lookups.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("the lookup was refused".into()));
            }
            self.inner.messages_by_id(room_ids, ids).await
        }

        async fn ping(&self) -> Result<(), StoreError> {
            self.inner.ping().await
        }
        async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
            self.inner.create_user(user).await
        }
        async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
            self.inner.user_by_id(id).await
        }
        async fn user_by_login(&self, login: &str) -> Result<Option<User>, StoreError> {
            self.inner.user_by_login(login).await
        }
        async fn revoke_token(
            &self,
            token_id: &str,
            user_id: Uuid,
            expires_at: OffsetDateTime,
        ) -> Result<(), StoreError> {
            self.inner.revoke_token(token_id, user_id, expires_at).await
        }
        async fn is_token_revoked(&self, token_id: &str) -> Result<bool, StoreError> {
            self.inner.is_token_revoked(token_id).await
        }
        async fn purge_revoked_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
            self.inner.purge_revoked_tokens(now).await
        }
        async fn use_ticket(
            &self,
            ticket_id: &str,
            expires_at: OffsetDateTime,
        ) -> Result<bool, StoreError> {
            self.inner.use_ticket(ticket_id, expires_at).await
        }
        async fn purge_used_tickets(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
            self.inner.purge_used_tickets(now).await
        }
        async fn create_room(&self, room: NewRoom) -> Result<Room, StoreError> {
            self.inner.create_room(room).await
        }
        async fn room_by_name(&self, name: &str) -> Result<Option<Room>, StoreError> {
            self.inner.room_by_name(name).await
        }
        async fn list_rooms(&self) -> Result<Vec<Room>, StoreError> {
            self.inner.list_rooms().await
        }
        async fn last_seqs(&self, room_ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>, StoreError> {
            self.inner.last_seqs(room_ids).await
        }
        async fn count_rooms_owned(&self, owner_id: Uuid) -> Result<u64, StoreError> {
            self.inner.count_rooms_owned(owner_id).await
        }
        async fn delete_room(&self, room_id: Uuid) -> Result<bool, StoreError> {
            self.inner.delete_room(room_id).await
        }
        async fn add_member(
            &self,
            room_id: Uuid,
            user_id: Uuid,
            at: OffsetDateTime,
        ) -> Result<bool, StoreError> {
            self.inner.add_member(room_id, user_id, at).await
        }
        async fn remove_member(&self, room_id: Uuid, user_id: Uuid) -> Result<bool, StoreError> {
            self.inner.remove_member(room_id, user_id).await
        }
        async fn is_member(&self, room_id: Uuid, user_id: Uuid) -> Result<bool, StoreError> {
            self.inner.is_member(room_id, user_id).await
        }
        async fn members(&self, room_id: Uuid) -> Result<Vec<Member>, StoreError> {
            self.inner.members(room_id).await
        }
        async fn role_of(
            &self,
            room_id: Uuid,
            user_id: Uuid,
        ) -> Result<Option<palaver_handlers::model::Role>, StoreError> {
            self.inner.role_of(room_id, user_id).await
        }
        async fn set_role(
            &self,
            room_id: Uuid,
            user_id: Uuid,
            role: palaver_handlers::model::Role,
        ) -> Result<bool, StoreError> {
            self.inner.set_role(room_id, user_id, role).await
        }
        async fn transfer_ownership(
            &self,
            room_id: Uuid,
            from: Uuid,
            to: Uuid,
        ) -> Result<bool, StoreError> {
            self.inner.transfer_ownership(room_id, from, to).await
        }
        async fn mark_read(
            &self,
            room_id: Uuid,
            user_id: Uuid,
            seq: i64,
        ) -> Result<Option<ReadPoint>, StoreError> {
            self.inner.mark_read(room_id, user_id, seq).await
        }
        async fn read_state(&self, user_id: Uuid) -> Result<Vec<ReadState>, StoreError> {
            self.inner.read_state(user_id).await
        }
        async fn rooms_of_member(&self, user_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
            self.inner.rooms_of_member(user_id).await
        }
        async fn history(
            &self,
            room_id: Uuid,
            query: &HistoryQuery,
        ) -> Result<HistoryPage, StoreError> {
            self.inner.history(room_id, query).await
        }
        async fn log_after(
            &self,
            room_id: Uuid,
            after_seq: i64,
            limit: u32,
        ) -> Result<Vec<LogEntry>, StoreError> {
            self.inner.log_after(room_id, after_seq, limit).await
        }
        async fn open_direct(
            &self,
            room: NewRoom,
            other: Uuid,
        ) -> Result<(Room, bool), StoreError> {
            self.inner.open_direct(room, other).await
        }
        async fn set_blocked(
            &self,
            blocker: Uuid,
            blocked: Uuid,
            blocked_now: bool,
            at: OffsetDateTime,
        ) -> Result<bool, StoreError> {
            self.inner
                .set_blocked(blocker, blocked, blocked_now, at)
                .await
        }
        async fn is_blocked(&self, blocker: Uuid, blocked: Uuid) -> Result<bool, StoreError> {
            self.inner.is_blocked(blocker, blocked).await
        }
        async fn search(
            &self,
            query: &palaver_handlers::model::SearchQuery,
        ) -> Result<palaver_handlers::model::SearchPage, StoreError> {
            self.inner.search(query).await
        }
        async fn record_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
            self.inner.record_audit(events).await
        }
        async fn audit_since(
            &self,
            since: OffsetDateTime,
            limit: u32,
        ) -> Result<Vec<AuditEvent>, StoreError> {
            self.inner.audit_since(since, limit).await
        }
    }

    #[tokio::test]
    async fn concurrent_posts_are_stored_gaplessly_and_delivered_in_seq_order() {
        let (store, hub, user, room) = setup().await;
        let log = Arc::new(writer(&store, &hub));
        let posts = (0..200).map(|n| {
            let log = log.clone();
            tokio::spawn(async move {
                log.post("general", message(room, user, &format!("m{n}")))
                    .await
            })
        });
        let mut seqs: Vec<i64> = Vec::new();
        for post in posts {
            seqs.push(post.await.unwrap().unwrap().entry().unwrap().seq);
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=200).collect::<Vec<i64>>());
        let delivered: Vec<i64> = hub
            .take(9)
            .into_iter()
            .filter_map(|d| match d {
                Broadcast {
                    event: RoomEvent::Entry(m),
                    ..
                } => Some(m.seq),
                _ => None,
            })
            .collect();
        assert_eq!(
            delivered,
            (1..=200).collect::<Vec<i64>>(),
            "in seq order, each once"
        );
    }

    #[tokio::test]
    async fn one_bad_message_does_not_sink_its_batch() {
        let (memory, hub, user, room) = setup().await;
        let store = Probe::new(memory.clone());
        let log = start(store.clone(), &hub, settings());
        // The writer is held in the commit of a first post while the good and the bad post queue behind it, so the
        // two are taken as one batch when it is released.
        store.hold();
        let first = log
            .submit("general", message(room, user, "first"))
            .await
            .unwrap();
        store.appends_begun(1).await;
        let good = log
            .submit("general", message(room, user, "ok"))
            .await
            .unwrap();
        let bad = log
            .submit("nowhere", message(Uuid::now_v7(), user, "x"))
            .await
            .unwrap();
        store.release();
        assert_eq!(within(first).await.unwrap().entry().unwrap().seq, 1);
        let good = within(good).await;
        let bad = within(bad).await;
        assert_eq!(
            store.appends(),
            vec![vec!["first"], vec!["ok", "x"], vec!["ok"], vec!["x"]],
            "the good and the bad post shared a batch, then were retried one by one"
        );
        assert_eq!(good.unwrap().entry().unwrap().seq, 2);
        assert!(matches!(bad, Err(StoreError::Backend(_))), "{bad:?}");
        assert_eq!(memory.message_count(), 2);
        assert_eq!(delivered(&hub), pairs(&[(1, "first"), (2, "ok")]));
    }

    /// With `linger`, a writer with a queue of one is given a post `a`, then `b` half the linger after it has taken
    /// `a`, then, once both are answered, `c` alone. Returns the batches it committed and how long `c` waited.
    async fn batches_with(linger: Duration) -> (Vec<Vec<String>>, Duration) {
        let (memory, hub, user, room) = setup().await;
        let store = Probe::new(memory);
        let settings = BatchSettings {
            linger,
            queue: 1,
            ..settings()
        };
        let log = start(store.clone(), &hub, settings);
        let a = log
            .submit("general", message(room, user, "a"))
            .await
            .unwrap();
        // The queue of one is full until the writer takes `a`: room in it means the writer has it.
        let room_again = within(log.posts.reserve()).await.unwrap();
        tokio::time::advance(linger / 2).await;
        let (done, b) = oneshot::channel();
        room_again.send(Post {
            room: "general".into(),
            message: message(room, user, "b"),
            done,
        });
        assert_eq!(within(a).await.unwrap().entry().unwrap().seq, 1);
        assert_eq!(within(b).await.unwrap().unwrap().entry().unwrap().seq, 2);
        let alone = Instant::now();
        let c = log.post("general", message(room, user, "c"));
        assert_eq!(within(c).await.unwrap().entry().unwrap().seq, 3);
        let waited = alone.elapsed();
        assert_eq!(delivered(&hub), pairs(&[(1, "a"), (2, "b"), (3, "c")]));
        (store.appends(), waited)
    }

    #[tokio::test(start_paused = true)]
    async fn a_post_within_the_linger_joins_the_batch_and_no_linger_adds_no_wait() {
        let linger = Duration::from_millis(20);
        let (batches, waited) = batches_with(linger).await;
        assert_eq!(
            batches,
            vec![vec!["a", "b"], vec!["c"]],
            "b came within the linger"
        );
        assert_eq!(
            waited, linger,
            "a post alone waits out the linger, no longer"
        );

        // Without a linger the writer commits what it has at once; only posts that queued while it was busy share a
        // batch (see `max_batch_splits_what_queued_into_batches_in_seq_order`).
        let (batches, waited) = batches_with(Duration::ZERO).await;
        assert_eq!(batches, vec![vec!["a"], vec!["b"], vec!["c"]]);
        assert_eq!(waited, Duration::ZERO);
    }

    #[tokio::test]
    async fn max_batch_splits_what_queued_into_batches_in_seq_order() {
        let (memory, hub, user, room) = setup().await;
        let store = Probe::new(memory);
        let settings = BatchSettings {
            max_batch: 4,
            ..settings()
        };
        let log = start(store.clone(), &hub, settings);
        store.hold();
        let first = log
            .submit("general", message(room, user, "first"))
            .await
            .unwrap();
        store.appends_begun(1).await;
        let mut posted = Vec::new();
        for n in 0..10 {
            let content = format!("m{n}");
            posted.push(
                log.submit("general", message(room, user, &content))
                    .await
                    .unwrap(),
            );
        }
        store.release();
        assert_eq!(within(first).await.unwrap().entry().unwrap().seq, 1);
        let mut seqs = Vec::new();
        for post in posted {
            seqs.push(within(post).await.unwrap().entry().unwrap().seq);
        }
        assert_eq!(seqs, (2..=11).collect::<Vec<i64>>(), "gapless, in line");
        assert_eq!(
            store.appends(),
            vec![
                vec!["first"],
                vec!["m0", "m1", "m2", "m3"],
                vec!["m4", "m5", "m6", "m7"],
                vec!["m8", "m9"],
            ]
        );
        let expected: Vec<(i64, String)> = std::iter::once((1, "first".to_owned()))
            .chain((0..10).map(|n| (n + 2, format!("m{n}"))))
            .collect();
        assert_eq!(delivered(&hub), expected, "in seq order, each once");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_queue_makes_senders_wait_for_room_and_loses_nothing() {
        let (memory, hub, user, room) = setup().await;
        let store = Probe::new(memory.clone());
        let settings = BatchSettings {
            queue: 2,
            commit_timeout: Duration::from_secs(3600),
            ..settings()
        };
        let log = start(store.clone(), &hub, settings);
        store.hold();
        let first = log
            .submit("general", message(room, user, "first"))
            .await
            .unwrap();
        store.appends_begun(1).await;
        // The writer is held in the first commit; two more posts fill the queue.
        let a = log
            .submit("general", message(room, user, "a"))
            .await
            .unwrap();
        let b = log
            .submit("general", message(room, user, "b"))
            .await
            .unwrap();
        let mut third = std::pin::pin!(log.submit("general", message(room, user, "c")));
        assert!(
            tokio::time::timeout(Duration::from_secs(30), &mut third)
                .await
                .is_err(),
            "the third post waits for room while the writer is held"
        );
        assert_eq!(store.appends(), vec![vec!["first"]]);
        store.release();
        let c = within(third).await.unwrap();
        let mut seqs = Vec::new();
        for post in [first, a, b, c] {
            seqs.push(within(post).await.unwrap().entry().unwrap().seq);
        }
        assert_eq!(seqs, [1, 2, 3, 4]);
        assert_eq!(memory.message_count(), 4, "nothing is lost");
        assert_eq!(
            delivered(&hub),
            pairs(&[(1, "first"), (2, "a"), (3, "b"), (4, "c")])
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_commit_that_never_answers_fails_after_the_commit_timeout_and_is_in_doubt() {
        let (memory, hub, user, room) = setup().await;
        let store = Probe::new(memory.clone());
        let commit_timeout = Duration::from_secs(5);
        let settings = BatchSettings {
            commit_timeout,
            ..settings()
        };
        let log = start(store.clone(), &hub, settings);
        store.hold();
        let stalled = message(room, user, "stalled");
        let stalled_id = stalled.id;
        let posted = Instant::now();
        let outcome = within(log.post("general", stalled)).await;
        assert_eq!(
            outcome,
            Err(StoreError::Unavailable(
                "the commit did not answer in time".into()
            ))
        );
        assert_eq!(posted.elapsed(), commit_timeout);
        // Its outcome is unknown: the writer asks whether it was stored, here unprompted after a while.
        store.lookups_made(1).await;
        assert_eq!(posted.elapsed(), commit_timeout + RESOLVE_EVERY);
        assert_eq!(store.lookups(), vec![vec![stalled_id]]);
        store.release();
        let next = within(log.post("general", message(room, user, "next")))
            .await
            .unwrap();
        assert_eq!(
            next.entry().unwrap().seq,
            1,
            "the stalled commit stored nothing and used no seq"
        );
        assert_eq!(store.lookups().len(), 1, "settled: not asked again");
        assert_eq!(store.appends(), vec![vec!["stalled"], vec!["next"]]);
        assert_eq!(delivered(&hub), pairs(&[(1, "next")]));
        assert_eq!(memory.message_count(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_newer_is_committed_until_the_messages_in_doubt_are_settled() {
        let (memory, hub, user, room) = setup().await;
        let store = Probe::new(memory.clone());
        let log = start(store.clone(), &hub, settings());
        memory.lose_next_answer();
        store.refuse_lookups(true);
        let lost = message(room, user, "stored, answer lost");
        let lost_id = lost.id;
        let outcome = within(log.post("general", lost)).await;
        assert!(
            matches!(outcome, Err(StoreError::Unavailable(_))),
            "{outcome:?}"
        );
        let unsettled = Err(StoreError::Unavailable(
            "earlier messages are not settled yet".into(),
        ));
        let refused = within(log.post("general", message(room, user, "refused"))).await;
        assert_eq!(refused, unsettled);
        // The writer keeps asking on its own; the lookup keeps failing; posts keep being refused.
        store.lookups_made(2).await;
        let refused = within(log.post("general", message(room, user, "refused too"))).await;
        assert_eq!(refused, unsettled);
        assert!(
            store.lookups().iter().all(|ids| *ids == [lost_id]),
            "{:?}",
            store.lookups()
        );
        assert_eq!(
            store.appends(),
            vec![vec!["stored, answer lost"]],
            "nothing newer was committed"
        );
        assert!(delivered(&hub).is_empty());

        store.refuse_lookups(false);
        let next = within(log.post("general", message(room, user, "next")))
            .await
            .unwrap();
        assert_eq!(next.entry().unwrap().seq, 2);
        assert_eq!(
            delivered(&hub),
            pairs(&[(1, "stored, answer lost"), (2, "next")]),
            "the message in doubt that was stored is delivered first"
        );
        assert_eq!(
            memory.message_count(),
            2,
            "the refused posts were never stored"
        );
    }

    #[tokio::test]
    async fn a_commit_whose_answer_is_lost_is_still_delivered_before_anything_newer() {
        let (store, hub, user, room) = setup().await;
        let log = writer(&store, &hub);
        store.lose_next_answer();
        let lost = log
            .post("general", message(room, user, "stored, answer lost"))
            .await;
        assert!(matches!(lost, Err(StoreError::Unavailable(_))), "{lost:?}");
        let next = log
            .post("general", message(room, user, "next"))
            .await
            .unwrap();
        assert_eq!(next.entry().unwrap().seq, 2);
        let delivered: Vec<(i64, String)> = hub
            .take(9)
            .into_iter()
            .filter_map(|d| match d {
                Broadcast {
                    event: RoomEvent::Entry(m),
                    ..
                } => Some((m.seq, m.content()?.to_owned())),
                _ => None,
            })
            .collect();
        assert_eq!(
            delivered,
            vec![
                (1, "stored, answer lost".to_owned()),
                (2, "next".to_owned())
            ]
        );
    }

    #[tokio::test]
    async fn an_unreachable_database_fails_the_posts_and_delivers_nothing() {
        let (store, hub, user, room) = setup().await;
        let log = writer(&store, &hub);
        store.set_unavailable(true);
        let outcome = log.post("general", message(room, user, "lost?")).await;
        assert!(matches!(outcome, Err(StoreError::Unavailable(_))));
        assert!(hub.take(9).is_empty());
        store.set_unavailable(false);
        let outcome = log
            .post("general", message(room, user, "back"))
            .await
            .unwrap();
        assert_eq!(
            outcome.entry().unwrap().seq,
            1,
            "nothing was stored while down, and no seq was used"
        );
    }
}
