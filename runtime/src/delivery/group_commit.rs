//! The group-commit writer: every chat message of this node goes through one task that stores whatever is waiting
//! (from all rooms, up to `max_batch`) in one transaction, then delivers the stored messages in commit order and only
//! then answers the senders. One transaction per batch instead of per message is what makes durable chat fast, and one
//! delivering task is what keeps every room's messages in seq order for every recipient.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use palaver_handlers::model::{Appended, NewMessage};
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
    message: NewMessage,
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
    async fn submit(&self, room: &str, message: NewMessage) -> Result<Posted, StoreError> {
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
        let (posts, messages): (Vec<Waiter>, Vec<NewMessage>) = batch
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
    async fn append(&self, messages: &[NewMessage]) -> Result<Vec<Appended>, StoreError> {
        match tokio::time::timeout(self.commit_timeout, self.store.append_messages(messages)).await
        {
            Ok(stored) => stored,
            Err(_) => Err(StoreError::Unavailable(
                "the commit did not answer in time".into(),
            )),
        }
    }

    /// Remembers messages whose commit outcome is unknown.
    fn doubt(&mut self, posts: &[Waiter], messages: &[NewMessage]) {
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

    /// Publishes the newly stored messages in commit (so seq) order, then answers each sender.
    fn deliver(&self, posts: Vec<Waiter>, outcomes: Vec<Appended>) {
        for ((room, done), outcome) in posts.into_iter().zip(outcomes) {
            if let Appended::Stored(message) = &outcome {
                self.fanout.stored(&room, message.clone());
            }
            // The sender may have gone; the message is stored and delivered regardless.
            let _ = done.send(Ok(outcome));
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
    use palaver_handlers::model::{NewRoom, NewUser};
    use palaver_handlers::testing::{MemoryHub, MemoryStore};
    use time::macros::datetime;
    use uuid::Uuid;

    const AT: time::OffsetDateTime = datetime!(2026-11-25 15:30:45 UTC);

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

    fn message(room_id: Uuid, user_id: Uuid, content: &str) -> NewMessage {
        NewMessage {
            id: Uuid::now_v7(),
            room_id,
            user_id,
            content: content.into(),
            client_msg_id: None,
            created_at: AT,
        }
    }

    fn writer(store: &Arc<MemoryStore>, hub: &Arc<MemoryHub>) -> GroupCommit {
        let metrics = Arc::new(Metrics::new());
        let fanout = Fanout::new(hub.clone(), metrics.clone());
        GroupCommit::start(store.clone(), fanout, metrics, settings())
    }

    fn settings() -> BatchSettings {
        BatchSettings {
            max_batch: 64,
            linger: Duration::ZERO,
            queue: 1024,
            commit_timeout: Duration::from_secs(5),
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
            seqs.push(post.await.unwrap().unwrap().message().seq);
        }
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=200).collect::<Vec<i64>>());
        let delivered: Vec<i64> = hub
            .take(9)
            .into_iter()
            .filter_map(|d| match d {
                Broadcast {
                    event: RoomEvent::Message(m),
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
        let (store, hub, user, room) = setup().await;
        let log = Arc::new(writer(&store, &hub));
        let good = {
            let log = log.clone();
            tokio::spawn(async move { log.post("general", message(room, user, "ok")).await })
        };
        let bad = {
            let log = log.clone();
            tokio::spawn(async move {
                log.post("nowhere", message(Uuid::now_v7(), user, "x"))
                    .await
            })
        };
        assert!(good.await.unwrap().is_ok());
        assert!(matches!(bad.await.unwrap(), Err(StoreError::Backend(_))));
        assert_eq!(store.message_count(), 1);
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
        assert_eq!(next.message().seq, 2);
        let delivered: Vec<(i64, String)> = hub
            .take(9)
            .into_iter()
            .filter_map(|d| match d {
                Broadcast {
                    event: RoomEvent::Message(m),
                    ..
                } => Some((m.seq, m.content)),
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
            outcome.message().seq,
            1,
            "nothing was stored while down, and no seq was used"
        );
    }
}
