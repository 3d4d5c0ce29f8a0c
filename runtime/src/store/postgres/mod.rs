//! The PostgreSQL [`Store`]: a deadpool of tokio-postgres connections over the schema in `migrations/postgres`.
//!
//! Every statement is prepared once per connection and cached. Writes that touch several rows run as one
//! transaction (or one statement). Message batches take their rooms' row locks in id order, which serialises the
//! writers of a room (gapless seqs) without letting two batches that span several rooms deadlock.
//!
//! Layout: this file holds the pool, the migrations and the query helpers every statement goes through; `convert`
//! maps rows, times and errors, and `accounts`, `rooms`, `append` (writing the rooms' logs), `messages` (reading
//! them), `search` and `audit` hold the queries.

mod accounts;
mod append;
mod audit;
mod convert;
mod messages;
mod rooms;
mod search;

use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Client, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use palaver_handlers::model::{
    Appended, AuditEvent, HistoryPage, HistoryQuery, LogEntry, Member, NewEntry, NewRoom, NewUser,
    ReadPoint, ReadState, Role, Room, SearchPage, SearchQuery, User,
};
use palaver_handlers::{Store, StoreError};
use time::OffsetDateTime;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use super::revocations::RevocationCache;
use convert::{chain, pg_error, pool_error};

mod embedded {
    refinery::embed_migrations!("../migrations/postgres");
}

/// The advisory lock held while migrating ("palaver1" in ASCII), so that nodes starting together take turns.
const MIGRATION_LOCK: i64 = 0x7061_6c61_7665_7231;

/// The [`Store`] on PostgreSQL.
pub struct PostgresStore {
    pool: Pool,
    revocations: RevocationCache,
}

impl PostgresStore {
    /// Connects to `url` with a pool of at most `pool_size` connections and runs the pending migrations.
    ///
    /// `timeout` bounds waiting for a free connection, opening one and checking one before reuse (deadpool waits
    /// forever by default). Connections are checked with a query before reuse, so a restarted server costs one
    /// failed check rather than a failed request.
    pub async fn connect(
        url: &str,
        pool_size: usize,
        timeout: Duration,
    ) -> Result<PostgresStore, StoreError> {
        let mut config: tokio_postgres::Config = url
            .parse()
            .map_err(|error| StoreError::Backend(format!("invalid database_url: {error}")))?;
        if config.get_application_name().is_none() {
            config.application_name("palaver");
        }
        // A session whose client vanished mid-transaction (a cut network, a lost answer) would otherwise hold its
        // rooms' row locks until TCP gives up on it, and the writer settling that transaction's messages waits on
        // those locks. Palaver's transactions never idle waiting for their client, so a few timeouts is generous.
        let idle = timeout.saturating_mul(4).max(Duration::from_secs(1));
        let idle = format!(
            "-c idle_in_transaction_session_timeout={}",
            idle.as_millis()
        );
        let options = match config.get_options() {
            Some(options) if !options.trim().is_empty() => format!("{options} {idle}"),
            _ => idle,
        };
        config.options(&options);
        let manager = Manager::from_config(
            config,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Verified,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(pool_size.max(1))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(timeout))
            .recycle_timeout(Some(timeout))
            .build()
            .map_err(|error| {
                StoreError::Backend(format!("cannot build the connection pool: {error}"))
            })?;
        let store = PostgresStore {
            pool,
            revocations: RevocationCache::default(),
        };
        store.migrate().await?;
        Ok(store)
    }

    /// The connection pool, for its metrics (size, available, waiting).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The plan PostgreSQL makes for the history page `query` of room `room_id`: the text of `EXPLAIN` for the very
    /// statement [`Store::history`] runs for it (same filters, same row limit), one line per row of the plan.
    ///
    /// Plain `EXPLAIN`: the query is planned, not run, so this is safe on a live database. A healthy plan reads the
    /// `(room_id, seq)` index `messages_room_seq_key` and has no `Seq Scan on messages`; after an upgrade, a bulk
    /// import or on a room of unusual shape, this tells whether pages still take that path.
    pub async fn explain_history(
        &self,
        room_id: Uuid,
        query: &HistoryQuery,
    ) -> Result<String, StoreError> {
        messages::explain_history(self, room_id, query).await
    }

    /// Applies the migrations not yet applied, under an advisory lock: nodes starting together against a fresh
    /// database would otherwise race to create the same tables.
    async fn migrate(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        client
            .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK])
            .await
            .map_err(pg_error)?;
        let migrated = embedded::migrations::runner()
            .run_async(&mut **client)
            .await;
        let unlocked = client
            .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK])
            .await;
        if unlocked.is_err() {
            // The lock belongs to the session: closing the connection is the sure way to release it.
            drop(deadpool_postgres::Object::take(client));
        }
        migrated.map_err(|error| {
            StoreError::Backend(format!("migrations failed: {}", chain(&error)))
        })?;
        unlocked.map(drop).map_err(pg_error)
    }

    /// A pooled connection.
    async fn client(&self) -> Result<Client, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Runs one statement and returns its rows.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.query(&statement, params).await.map_err(pg_error)
    }

    /// Runs one statement that returns at most one row.
    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Row>, StoreError> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// Runs one statement that returns exactly one row (an aggregate or `EXISTS`).
    async fn query_one(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, StoreError> {
        self.query_opt(sql, params)
            .await?
            .ok_or_else(|| StoreError::Backend(format!("no row from: {sql}")))
    }

    /// Runs one statement and returns how many rows it changed.
    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.execute(&statement, params).await.map_err(pg_error)
    }
}

#[async_trait]
impl Store for PostgresStore {
    async fn ping(&self) -> Result<(), StoreError> {
        let client = self.client().await?;
        client.batch_execute("SELECT 1").await.map_err(pg_error)
    }

    async fn create_user(&self, user: NewUser) -> Result<User, StoreError> {
        accounts::create_user(self, user).await
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        accounts::user_by_id(self, id).await
    }

    async fn user_by_login(&self, login: &str) -> Result<Option<User>, StoreError> {
        accounts::user_by_login(self, login).await
    }

    async fn revoke_token(
        &self,
        token_id: &str,
        user_id: Uuid,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        accounts::revoke_token(self, token_id, user_id, expires_at).await?;
        self.revocations.remember(token_id, true);
        Ok(())
    }

    async fn is_token_revoked(&self, token_id: &str) -> Result<bool, StoreError> {
        if let Some(revoked) = self.revocations.lookup(token_id) {
            return Ok(revoked);
        }
        let revoked = accounts::is_token_revoked(self, token_id).await?;
        self.revocations.remember(token_id, revoked);
        Ok(revoked)
    }

    fn learn_revoked(&self, token_id: &str) {
        self.revocations.remember(token_id, true);
    }

    async fn purge_revoked_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let purged = accounts::purge_revoked_tokens(self, now).await?;
        self.revocations.forget_all();
        Ok(purged)
    }

    async fn use_ticket(
        &self,
        ticket_id: &str,
        expires_at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        accounts::use_ticket(self, ticket_id, expires_at).await
    }

    async fn purge_used_tickets(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        accounts::purge_used_tickets(self, now).await
    }

    async fn create_room(&self, room: NewRoom) -> Result<Room, StoreError> {
        rooms::create_room(self, room).await
    }

    async fn room_by_name(&self, name: &str) -> Result<Option<Room>, StoreError> {
        rooms::room_by_name(self, name).await
    }

    async fn list_rooms(&self) -> Result<Vec<Room>, StoreError> {
        rooms::list_rooms(self).await
    }

    async fn last_seqs(&self, room_ids: &[Uuid]) -> Result<Vec<(Uuid, i64)>, StoreError> {
        rooms::last_seqs(self, room_ids).await
    }

    async fn count_rooms_owned(&self, owner_id: Uuid) -> Result<u64, StoreError> {
        rooms::count_rooms_owned(self, owner_id).await
    }

    async fn open_direct(&self, room: NewRoom, other: Uuid) -> Result<(Room, bool), StoreError> {
        rooms::open_direct(self, room, other).await
    }

    async fn set_blocked(
        &self,
        blocker: Uuid,
        blocked: Uuid,
        blocked_now: bool,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        rooms::set_blocked(self, blocker, blocked, blocked_now, at).await
    }

    async fn is_blocked(&self, blocker: Uuid, blocked: Uuid) -> Result<bool, StoreError> {
        rooms::is_blocked(self, blocker, blocked).await
    }

    async fn delete_room(&self, room_id: Uuid) -> Result<bool, StoreError> {
        rooms::delete_room(self, room_id).await
    }

    async fn add_member(
        &self,
        room_id: Uuid,
        user_id: Uuid,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        rooms::add_member(self, room_id, user_id, at).await
    }

    async fn remove_member(&self, room_id: Uuid, user_id: Uuid) -> Result<bool, StoreError> {
        rooms::remove_member(self, room_id, user_id).await
    }

    async fn is_member(&self, room_id: Uuid, user_id: Uuid) -> Result<bool, StoreError> {
        rooms::is_member(self, room_id, user_id).await
    }

    async fn rooms_of_member(&self, user_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
        rooms::rooms_of_member(self, user_id).await
    }

    async fn members(&self, room_id: Uuid) -> Result<Vec<Member>, StoreError> {
        rooms::members(self, room_id).await
    }

    async fn role_of(&self, room_id: Uuid, user_id: Uuid) -> Result<Option<Role>, StoreError> {
        rooms::role_of(self, room_id, user_id).await
    }

    async fn set_role(&self, room_id: Uuid, user_id: Uuid, role: Role) -> Result<bool, StoreError> {
        rooms::set_role(self, room_id, user_id, role).await
    }

    async fn transfer_ownership(
        &self,
        room_id: Uuid,
        from: Uuid,
        to: Uuid,
    ) -> Result<bool, StoreError> {
        rooms::transfer_ownership(self, room_id, from, to).await
    }

    async fn mark_read(
        &self,
        room_id: Uuid,
        user_id: Uuid,
        seq: i64,
    ) -> Result<Option<ReadPoint>, StoreError> {
        rooms::mark_read(self, room_id, user_id, seq).await
    }

    async fn read_state(&self, user_id: Uuid) -> Result<Vec<ReadState>, StoreError> {
        rooms::read_state(self, user_id).await
    }

    async fn append_messages(&self, batch: &[NewEntry]) -> Result<Vec<Appended>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        append::append_messages(self, batch).await
    }

    async fn messages_by_id(
        &self,
        room_ids: &[Uuid],
        ids: &[Uuid],
    ) -> Result<Vec<LogEntry>, StoreError> {
        messages::by_id(self, room_ids, ids).await
    }

    async fn history(
        &self,
        room_id: Uuid,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, StoreError> {
        messages::history(self, room_id, query).await
    }

    async fn log_after(
        &self,
        room_id: Uuid,
        after_seq: i64,
        limit: u32,
    ) -> Result<Vec<LogEntry>, StoreError> {
        messages::log_after(self, room_id, after_seq, limit).await
    }

    async fn search(&self, query: &SearchQuery) -> Result<SearchPage, StoreError> {
        search::search(self, query).await
    }

    async fn record_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        audit::record_audit(self, events).await
    }

    async fn audit_since(
        &self,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        audit::audit_since(self, since, limit).await
    }
}

/// What needs no database. The behaviour on a real server is tested black-box by the integration suite
/// `postgres_store` (and, for what every engine shares, `store_conformance`).
#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_server_is_unavailable() {
        let url = "postgres://postgres@127.0.0.1:1/test";
        let outcome = PostgresStore::connect(url, 1, Duration::from_secs(2)).await;
        assert!(
            matches!(outcome, Err(StoreError::Unavailable(_))),
            "{:?}",
            outcome.err()
        );
    }
}
