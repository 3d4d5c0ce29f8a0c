//! The SQLite [`Store`]: Palaver's zero-setup default, one database file.
//!
//! SQLite's calls block, so none runs on the async runtime. One dedicated thread owns the only write connection
//! (SQLite allows one writer at a time anyway, and a single owner makes "read the room's last seq, then write" safe
//! without retries); a few reader threads own read-only connections, which WAL lets read while the writer commits.
//! Each async method sends a job over a bounded channel to one of them and awaits the answer.
//!
//! Layout: `worker` runs the threads, `connection` opens connections and migrates, `convert` maps values and
//! errors, and `accounts`, `rooms`, `append` (writing the rooms' logs), `messages` (reading them), `search` and
//! `audit` hold the queries.

mod accounts;
mod append;
mod audit;
mod connection;
mod convert;
mod messages;
mod rooms;
mod search;
mod worker;

#[cfg(test)]
mod tests;

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use palaver_handlers::model::{
    Appended, AuditEvent, HistoryPage, HistoryQuery, LogEntry, Member, NewEntry, NewRoom, NewUser,
    ReadPoint, ReadState, Role, Room, SearchPage, SearchQuery, User,
};
use palaver_handlers::{Store, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

use super::revocations::RevocationCache;
use worker::Pool;

/// How often queued messages are moved into the search index while the store is open.
const INDEX_EVERY: std::time::Duration = std::time::Duration::from_millis(250);

/// Indexes queued messages every [`INDEX_EVERY`], until the store is dropped: a batch per transaction, many
/// messages each, so the index costs little per message and nothing inside the commits of posts.
async fn index_in_the_background(writer: std::sync::Weak<Pool>) {
    loop {
        tokio::time::sleep(INDEX_EVERY).await;
        let Some(pool) = writer.upgrade() else { return };
        match pool
            .run(|connection| search::index_pending(connection, search::INDEX_BATCH))
            .await
        {
            Ok(_) => {}
            Err(_) if pool.is_stopped() => return,
            // Busy or failing now; the queue waits for the next round (and for the next search).
            Err(error) => tracing::warn!(%error, "search indexing failed; retrying"),
        }
    }
}

/// How many jobs may wait for the writer, and for the readers together, before callers wait to enqueue more.
const QUEUE_CAPACITY: usize = 256;

/// How many reader connections to keep: one per core, at least 2 (so one slow history page does not hold up every
/// read) and at most 4 (SQLite gains little from more).
fn reader_count() -> usize {
    std::thread::available_parallelism()
        .map_or(2, std::num::NonZero::get)
        .clamp(2, 4)
}

/// Palaver's durable record in a SQLite file, served by a writer thread and a few reader threads. Dropping it ends
/// the threads once the jobs already queued are done.
pub struct SqliteStore {
    writer: Arc<Pool>,
    readers: Pool,
    revocations: RevocationCache,
}

impl SqliteStore {
    /// Opens (creating it and its parent directories if needed) the database file at `path` and brings its schema
    /// up to date before returning. The default path is `./data/palaver.db`. The path must name a file: the
    /// connections share the data through it.
    pub async fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        let writer_path = path.to_path_buf();
        let writer = Pool::start("sqlite-writer", 1, QUEUE_CAPACITY, move || {
            connection::open_writer(&writer_path)
        })
        .await?;
        let reader_path = path.to_path_buf();
        let readers = Pool::start("sqlite-reader", reader_count(), QUEUE_CAPACITY, move || {
            connection::open_reader(&reader_path)
        })
        .await?;
        tracing::info!(path = %path.display(), "SQLite store open");
        let writer = Arc::new(writer);
        tokio::spawn(index_in_the_background(Arc::downgrade(&writer)));
        Ok(SqliteStore {
            writer,
            readers,
            revocations: RevocationCache::default(),
        })
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> {
        if self.writer.is_stopped() {
            return Err(StoreError::Unavailable(
                "the SQLite writer thread has stopped".into(),
            ));
        }
        self.readers
            .run(|connection| Ok(connection.query_row("SELECT 1", [], |_| Ok(()))?))
            .await
    }

    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        self.writer
            .run(move |connection| accounts::create_user(connection, user))
            .await
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        self.readers
            .run(move |connection| accounts::user_by_id(connection, id))
            .await
    }

    async fn user_by_login(&self, login: &str) -> Result<Option<User>, StoreError> {
        let login = login.to_owned();
        self.readers
            .run(move |connection| accounts::user_by_login(connection, &login))
            .await
    }

    async fn revoke_token(
        &self,
        token_id: &str,
        user_id: Uuid,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        let id = token_id.to_owned();
        self.writer
            .run(move |connection| accounts::revoke_token(connection, &id, user_id, expires_at))
            .await?;
        self.revocations.remember(token_id, true);
        Ok(())
    }

    async fn is_token_revoked(&self, token_id: &str) -> Result<bool, StoreError> {
        if let Some(revoked) = self.revocations.lookup(token_id) {
            return Ok(revoked);
        }
        let id = token_id.to_owned();
        let revoked = self
            .readers
            .run(move |connection| accounts::is_token_revoked(connection, &id))
            .await?;
        self.revocations.remember(token_id, revoked);
        Ok(revoked)
    }

    fn learn_revoked(&self, token_id: &str) {
        self.revocations.remember(token_id, true);
    }

    async fn purge_revoked_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let purged = self
            .writer
            .run(move |connection| accounts::purge_revoked_tokens(connection, now))
            .await?;
        self.revocations.forget_all();
        Ok(purged)
    }

    async fn use_ticket(
        &self,
        ticket_id: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let id = ticket_id.to_owned();
        self.writer
            .run(move |connection| accounts::use_ticket(connection, &id, expires_at))
            .await
    }

    async fn purge_used_tickets(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        self.writer
            .run(move |connection| accounts::purge_used_tickets(connection, now))
            .await
    }

    async fn create_room(&self, room: NewRoom) -> Result<Room, StoreError> {
        self.writer
            .run(move |connection| rooms::create_room(connection, room))
            .await
    }

    async fn room_by_name(&self, name: &str) -> Result<Option<Room>, StoreError> {
        let name = name.to_owned();
        self.readers
            .run(move |connection| rooms::room_by_name(connection, &name))
            .await
    }

    async fn list_rooms(&self) -> Result<Vec<Room>, StoreError> {
        self.readers
            .run(|connection| rooms::list_rooms(connection))
            .await
    }

    async fn last_seqs(&self, room_ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>, StoreError> {
        let room_ids = room_ids.to_vec();
        self.readers
            .run(move |connection| rooms::last_seqs(connection, &room_ids))
            .await
    }

    async fn count_rooms_owned(&self, owner_id: Uuid) -> Result<u64, StoreError> {
        self.readers
            .run(move |connection| rooms::count_rooms_owned(connection, owner_id))
            .await
    }

    async fn open_direct(&self, room: NewRoom, other: Uuid) -> Result<(Room, bool), StoreError> {
        self.writer
            .run(move |connection| rooms::open_direct(connection, room, other))
            .await
    }

    async fn set_blocked(
        &self,
        blocker: Uuid,
        blocked: Uuid,
        blocked_now: bool,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.writer
            .run(move |connection| {
                rooms::set_blocked(connection, blocker, blocked, blocked_now, at)
            })
            .await
    }

    async fn is_blocked(&self, blocker: Uuid, blocked: Uuid) -> Result<bool, StoreError> {
        self.readers
            .run(move |connection| rooms::is_blocked(connection, blocker, blocked))
            .await
    }

    async fn delete_room(&self, room_id: Uuid) -> Result<bool, StoreError> {
        self.writer
            .run(move |connection| rooms::delete_room(connection, room_id))
            .await
    }

    async fn add_member(
        &self,
        room_id: Uuid,
        user_id: Uuid,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        self.writer
            .run(move |connection| rooms::add_member(connection, room_id, user_id, at))
            .await
    }

    async fn remove_member(&self, room_id: Uuid, user_id: Uuid) -> Result<bool, StoreError> {
        self.writer
            .run(move |connection| rooms::remove_member(connection, room_id, user_id))
            .await
    }

    async fn is_member(&self, room_id: Uuid, user_id: Uuid) -> Result<bool, StoreError> {
        self.readers
            .run(move |connection| rooms::is_member(connection, room_id, user_id))
            .await
    }

    async fn rooms_of_member(&self, user_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
        self.readers
            .run(move |connection| rooms::rooms_of_member(connection, user_id))
            .await
    }

    async fn members(&self, room_id: Uuid) -> Result<Vec<Member>, StoreError> {
        self.readers
            .run(move |connection| rooms::members(connection, room_id))
            .await
    }

    async fn role_of(&self, room_id: Uuid, user_id: Uuid) -> Result<Option<Role>, StoreError> {
        self.readers
            .run(move |connection| rooms::role_of(connection, room_id, user_id))
            .await
    }

    async fn set_role(&self, room_id: Uuid, user_id: Uuid, role: Role) -> Result<bool, StoreError> {
        self.writer
            .run(move |connection| rooms::set_role(connection, room_id, user_id, role))
            .await
    }

    async fn transfer_ownership(
        &self,
        room_id: Uuid,
        from: Uuid,
        to: Uuid,
    ) -> Result<bool, StoreError> {
        self.writer
            .run(move |connection| rooms::transfer_ownership(connection, room_id, from, to))
            .await
    }

    async fn mark_read(
        &self,
        room_id: Uuid,
        user_id: Uuid,
        seq: i64,
    ) -> Result<Option<ReadPoint>, StoreError> {
        self.writer
            .run(move |connection| rooms::mark_read(connection, room_id, user_id, seq))
            .await
    }

    async fn read_state(&self, user_id: Uuid) -> Result<Vec<ReadState>, StoreError> {
        self.readers
            .run(move |connection| rooms::read_state(connection, user_id))
            .await
    }

    async fn append_messages(&self, batch: &[NewEntry]) -> Result<Vec<Appended>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let batch = batch.to_vec();
        self.writer
            .run(move |connection| append::append_messages(connection, &batch))
            .await
    }

    async fn messages_by_id(
        &self,
        _room_ids: &[Uuid],
        ids: &[Uuid],
    ) -> Result<Vec<LogEntry>, StoreError> {
        let ids = ids.to_vec();
        // On the writer's thread, behind whatever write is still queued or running there (one that timed out is not
        // cancelled): the answer cannot precede a commit that lands late.
        self.writer
            .run(move |connection| messages::by_id(connection, &ids))
            .await
    }

    async fn history(
        &self,
        room_id: Uuid,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, StoreError> {
        let query = query.clone();
        self.readers
            .run(move |connection| messages::history(connection, room_id, &query))
            .await
    }

    async fn log_after(
        &self,
        room_id: Uuid,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<LogEntry>, StoreError> {
        self.readers
            .run(move |connection| messages::log_after(connection, room_id, after_seq, limit))
            .await
    }

    async fn search(&self, query: &SearchQuery) -> Result<SearchPage, StoreError> {
        // What is committed and still queued for the index is indexed first: a search sees every message.
        self.writer.run(search::index_all_pending).await?;
        let query = query.clone();
        self.readers
            .run(move |connection| search::search(connection, &query))
            .await
    }

    async fn record_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let events = events.to_vec();
        self.writer
            .run(move |connection| audit::record_audit(connection, &events))
            .await
    }

    async fn audit_since(
        &self,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        self.readers
            .run(move |connection| audit::audit_since(connection, since, limit))
            .await
    }
}
