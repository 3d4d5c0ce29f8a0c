//! The PostgreSQL [`Store`]: a deadpool of tokio-postgres connections over the schema in `migrations/postgres`.
//!
//! Every statement is prepared once per connection and cached. Writes that touch several rows run as one
//! transaction (or one statement). Message batches take their rooms' row locks in id order, which serialises the
//! writers of a room (gapless seqs) without letting two batches that span several rooms deadlock.

use std::collections::HashMap;
use std::error::Error as _;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{
    Client, Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime, Transaction,
};
use futures_util::future::{try_join, try_join3};
use palaver_handlers::model::{
    Appended, AuditEvent, HistoryPage, HistoryQuery, Member, NewMessage, NewRoom, NewUser, Room,
    StoredMessage, User,
};
use palaver_handlers::{Store, StoreError, Unique};
use time::{OffsetDateTime, UtcOffset};
use tokio_postgres::error::{DbError, SqlState};
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

use super::revocations::RevocationCache;

mod embedded {
    refinery::embed_migrations!("../migrations/postgres");
}

/// The unique indexes of `V1__init.sql` whose violation a caller can act on.
const USERNAME_KEY: &str = "users_username_key";
const EMAIL_KEY: &str = "users_email_key";
const ROOM_NAME_KEY: &str = "rooms_name_key";
const CLIENT_MSG_ID_KEY: &str = "messages_client_msg_id_key";

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
        let created_at = to_micros(user.created_at);
        let user = User {
            id: user.id,
            username: user.username,
            email: user.email,
            password_hash: user.password_hash,
            created_at,
            updated_at: created_at,
        };
        self.execute(
            "INSERT INTO users (id, username, email, password_hash, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &user.id,
                &user.username,
                &user.email,
                &user.password_hash,
                &user.created_at,
                &user.updated_at,
            ],
        )
        .await?;
        Ok(user)
    }

    async fn user_by_id(&self, id: Uuid) -> Result<Option<User>, StoreError> {
        let row = self
            .query_opt(
                "SELECT id, username, email, password_hash, created_at, updated_at FROM users WHERE id = $1",
                &[&id],
            )
            .await?;
        row.as_ref()
            .map(user_from_row)
            .transpose()
            .map_err(pg_error)
    }

    async fn user_by_login(&self, login: &str) -> Result<Option<User>, StoreError> {
        // The same expressions as the unique indexes, so that both are used.
        let row = self
            .query_opt(
                r#"SELECT id, username, email, password_hash, created_at, updated_at FROM users
                   WHERE lower(username COLLATE "C") = lower($1::text COLLATE "C")
                      OR lower(email COLLATE "C") = lower($1::text COLLATE "C")
                   LIMIT 1"#,
                &[&login],
            )
            .await?;
        row.as_ref()
            .map(user_from_row)
            .transpose()
            .map_err(pg_error)
    }

    async fn revoke_token(
        &self,
        token_id: &str,
        user_id: Uuid,
        expires_at: OffsetDateTime,
    ) -> Result<(), StoreError> {
        self.execute(
            "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (jti) DO NOTHING",
            &[&token_id, &user_id, &to_micros(expires_at)],
        )
        .await?;
        self.revocations.remember(token_id, true);
        Ok(())
    }

    async fn is_token_revoked(&self, token_id: &str) -> Result<bool, StoreError> {
        if let Some(revoked) = self.revocations.lookup(token_id) {
            return Ok(revoked);
        }
        let row = self
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $1)",
                &[&token_id],
            )
            .await?;
        let revoked = row.try_get(0).map_err(pg_error)?;
        self.revocations.remember(token_id, revoked);
        Ok(revoked)
    }

    async fn purge_revoked_tokens(&self, now: OffsetDateTime) -> Result<u64, StoreError> {
        let purged = self
            .execute("DELETE FROM revoked_tokens WHERE expires_at < $1", &[&now])
            .await?;
        self.revocations.forget_all();
        Ok(purged)
    }

    async fn create_room(&self, room: NewRoom) -> Result<Room, StoreError> {
        let room = Room {
            id: room.id,
            name: room.name,
            private: room.private,
            password_hash: room.password_hash,
            owner_id: room.owner_id,
            created_at: to_micros(room.created_at),
            last_seq: 0,
        };
        // One statement, so one transaction: the room and its owner's membership are stored together or not at all.
        self.execute(
            "WITH room AS (
                 INSERT INTO rooms (id, name, name_key, private, password_hash, owner_id, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 RETURNING id, owner_id, created_at
             )
             INSERT INTO room_members (room_id, user_id, joined_at) SELECT id, owner_id, created_at FROM room",
            &[
                &room.id,
                &room.name,
                &room_name_key(&room.name),
                &room.private,
                &room.password_hash,
                &room.owner_id,
                &room.created_at,
            ],
        )
        .await?;
        Ok(room)
    }

    async fn room_by_name(&self, name: &str) -> Result<Option<Room>, StoreError> {
        let row = self
            .query_opt(
                "SELECT id, name, private, password_hash, owner_id, created_at, last_seq FROM rooms WHERE name_key = $1",
                &[&room_name_key(name)],
            )
            .await?;
        row.as_ref()
            .map(room_from_row)
            .transpose()
            .map_err(pg_error)
    }

    async fn list_rooms(&self) -> Result<Vec<Room>, StoreError> {
        let rows = self
            .query(
                "SELECT id, name, private, password_hash, owner_id, created_at, last_seq FROM rooms
                 ORDER BY created_at, position",
                &[],
            )
            .await?;
        rows.iter()
            .map(room_from_row)
            .collect::<Result<_, _>>()
            .map_err(pg_error)
    }

    async fn count_rooms_owned(&self, owner_id: Uuid) -> Result<u64, StoreError> {
        let row = self
            .query_one(
                "SELECT count(*) FROM rooms WHERE owner_id = $1",
                &[&owner_id],
            )
            .await?;
        row.try_get::<_, i64>(0)
            .map(i64::unsigned_abs)
            .map_err(pg_error)
    }

    async fn delete_room(&self, room_id: Uuid) -> Result<bool, StoreError> {
        // The room's messages and memberships go with it (ON DELETE CASCADE), in this one statement. Deleting the
        // row waits for a batch holding the room's lock to commit, and that batch's messages go too.
        let deleted = self
            .execute("DELETE FROM rooms WHERE id = $1", &[&room_id])
            .await?;
        Ok(deleted > 0)
    }

    async fn add_member(
        &self,
        room_id: Uuid,
        user_id: Uuid,
        at: OffsetDateTime,
    ) -> Result<bool, StoreError> {
        let added = self
            .execute(
                "INSERT INTO room_members (room_id, user_id, joined_at) VALUES ($1, $2, $3)
                 ON CONFLICT (room_id, user_id) DO NOTHING",
                &[&room_id, &user_id, &to_micros(at)],
            )
            .await?;
        Ok(added > 0)
    }

    async fn remove_member(&self, room_id: Uuid, user_id: Uuid) -> Result<bool, StoreError> {
        let removed = self
            .execute(
                "DELETE FROM room_members WHERE room_id = $1 AND user_id = $2",
                &[&room_id, &user_id],
            )
            .await?;
        Ok(removed > 0)
    }

    async fn is_member(&self, room_id: Uuid, user_id: Uuid) -> Result<bool, StoreError> {
        let row = self
            .query_one(
                "SELECT EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2)",
                &[&room_id, &user_id],
            )
            .await?;
        row.try_get(0).map_err(pg_error)
    }

    async fn rooms_of_member(&self, user_id: Uuid) -> Result<Vec<Uuid>, StoreError> {
        let rows = self
            .query(
                "SELECT room_id FROM room_members WHERE user_id = $1",
                &[&user_id],
            )
            .await?;
        rows.iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()
            .map_err(pg_error)
    }

    async fn members(&self, room_id: Uuid) -> Result<Vec<Member>, StoreError> {
        let rows = self
            .query(
                r#"SELECT u.id, u.username FROM room_members rm JOIN users u ON u.id = rm.user_id
                   WHERE rm.room_id = $1
                   ORDER BY lower(u.username COLLATE "C")"#,
                &[&room_id],
            )
            .await?;
        rows.iter()
            .map(member_from_row)
            .collect::<Result<_, _>>()
            .map_err(pg_error)
    }

    async fn append_messages(&self, batch: &[NewMessage]) -> Result<Vec<Appended>, StoreError> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        let mut client = self.client().await?;
        match append_once(&mut client, batch).await {
            Err(AppendError::Db(error)) if violates(&error, CLIENT_MSG_ID_KEY) => {
                // A concurrent batch stored the same (user, client_msg_id) after this one looked: looking again
                // finds it, and the message becomes a duplicate of it.
                append_once(&mut client, batch)
                    .await
                    .map_err(StoreError::from)
            }
            outcome => outcome.map_err(StoreError::from),
        }
    }

    async fn messages_by_id(&self, ids: &[Uuid]) -> Result<Vec<StoredMessage>, StoreError> {
        let rows = self
            .query(
                "SELECT m.id, m.room_id, m.seq, m.user_id, u.username, m.content, m.client_msg_id, m.created_at
                 FROM messages m JOIN users u ON u.id = m.user_id
                 WHERE m.id = ANY($1) ORDER BY m.room_id, m.seq",
                &[&ids],
            )
            .await?;
        rows.iter()
            .map(message_from_row)
            .collect::<Result<_, _>>()
            .map_err(pg_error)
    }

    async fn history(
        &self,
        room_id: Uuid,
        query: &HistoryQuery,
    ) -> Result<HistoryPage, StoreError> {
        // One more row than asked tells whether there is more.
        let fetch = i64::from(query.limit) + 1;
        let (sql, params) = history_statement(&room_id, query, &fetch);
        let rows = self.query(&sql, &params).await?;
        let limit = query.limit as usize;
        let has_more = rows.len() > limit;
        let messages = rows
            .iter()
            .take(limit)
            .map(message_from_row)
            .collect::<Result<Vec<_>, _>>()
            .map_err(pg_error)?;
        let next_before = messages.last().map(|message| message.seq);
        Ok(HistoryPage {
            messages,
            next_before,
            has_more,
        })
    }

    async fn record_audit(&self, events: &[AuditEvent]) -> Result<(), StoreError> {
        if events.is_empty() {
            return Ok(());
        }
        let at: Vec<OffsetDateTime> = events.iter().map(|e| to_micros(e.at)).collect();
        let event: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
        let user_id: Vec<Option<Uuid>> = events.iter().map(|e| e.user_id).collect();
        let username: Vec<Option<&str>> = events.iter().map(|e| e.username.as_deref()).collect();
        let ip: Vec<Option<&str>> = events.iter().map(|e| e.ip.as_deref()).collect();
        let user_agent: Vec<Option<&str>> =
            events.iter().map(|e| e.user_agent.as_deref()).collect();
        let outcome: Vec<&str> = events.iter().map(|e| e.outcome.as_str()).collect();
        let details: Vec<&serde_json::Value> = events.iter().map(|e| &e.details).collect();
        self.execute(
            "INSERT INTO audit_log (at, event, user_id, username, ip, user_agent, outcome, details)
             SELECT * FROM UNNEST($1::timestamptz[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                                  $7::text[], $8::jsonb[])",
            &[&at, &event, &user_id, &username, &ip, &user_agent, &outcome, &details],
        )
        .await
        .map(drop)
    }

    async fn audit_since(
        &self,
        since: OffsetDateTime,
        limit: u32,
    ) -> Result<Vec<AuditEvent>, StoreError> {
        let rows = self
            .query(
                "SELECT at, event, user_id, username, ip, user_agent, outcome, details FROM audit_log
                 WHERE at >= $1 ORDER BY at, id LIMIT $2",
                &[&since, &i64::from(limit)],
            )
            .await?;
        rows.iter()
            .map(audit_from_row)
            .collect::<Result<_, _>>()
            .map_err(pg_error)
    }
}

/// The history statement for the filters `query` has, with its parameters. Each combination of filters is a
/// statement (and a cached plan) of its own: a plan made for "any filter, maybe absent" cannot bound its scan of the
/// (room_id, seq) index by the cursors, and would read and sort a whole room to return its newest page.
fn history_statement<'a>(
    room_id: &'a Uuid,
    query: &'a HistoryQuery,
    fetch: &'a i64,
) -> (String, Vec<&'a (dyn ToSql + Sync)>) {
    let mut sql = String::from(
        "SELECT m.id, m.room_id, m.seq, m.user_id, u.username, m.content, m.client_msg_id, m.created_at
         FROM messages m JOIN users u ON u.id = m.user_id
         WHERE m.room_id = $1",
    );
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![room_id];
    let mut filter = |condition: &str, value: &'a (dyn ToSql + Sync)| {
        params.push(value);
        sql.push_str(" AND ");
        sql.push_str(&condition.replace('?', &format!("${}", params.len())));
    };
    if let Some(before) = &query.before_seq {
        filter("m.seq < ?", before);
    }
    if let Some(after) = &query.after_seq {
        filter("m.seq > ?", after);
    }
    if let Some(sender) = &query.sender {
        // Resolved through the username index once, then compared by id on every message.
        filter(
            r#"m.user_id = (SELECT id FROM users WHERE lower(username COLLATE "C") = lower(?::text COLLATE "C"))"#,
            sender,
        );
    }
    if let Some(needle) = &query.contains {
        // strpos, unlike LIKE, gives '%' and '_' in the needle no meaning.
        filter("strpos(lower(m.content), lower(?::text)) > 0", needle);
    }
    if let Some(since) = &query.since {
        filter("m.created_at >= ?", since);
    }
    if let Some(until) = &query.until {
        filter("m.created_at <= ?", until);
    }
    params.push(fetch);
    sql.push_str(&format!(" ORDER BY m.seq DESC LIMIT ${}", params.len()));
    (sql, params)
}

/// Why one attempt at storing a batch failed.
#[derive(Debug)]
enum AppendError {
    /// The database refused or could not be reached.
    Db(tokio_postgres::Error),
    /// The batch names a room or a user that does not exist.
    Refused(StoreError),
}

impl From<tokio_postgres::Error> for AppendError {
    fn from(error: tokio_postgres::Error) -> Self {
        AppendError::Db(error)
    }
}

impl From<AppendError> for StoreError {
    fn from(error: AppendError) -> Self {
        match error {
            AppendError::Db(error) => pg_error(error),
            AppendError::Refused(error) => error,
        }
    }
}

/// What a batch needs to know from the database, read under its rooms' locks.
#[derive(Debug)]
struct BatchLookup {
    /// The last seq of each existing room of the batch.
    last_seqs: HashMap<Uuid, i64>,
    /// The username of each existing sender of the batch.
    usernames: HashMap<Uuid, String>,
    /// Stored messages carrying one of the batch's (user, client_msg_id).
    originals: Vec<StoredMessage>,
}

/// What a batch does: the outcome of each message, and the rooms whose last seq moves.
#[derive(Debug)]
struct AppendPlan {
    outcomes: Vec<Appended>,
    /// (room, its new last seq) for every room that receives a message.
    moved_rooms: Vec<(Uuid, i64)>,
}

/// Stores a batch in one transaction: lock and read, decide, write, commit.
async fn append_once(
    client: &mut Client,
    batch: &[NewMessage],
) -> Result<Vec<Appended>, AppendError> {
    let transaction = client.transaction().await?;
    let lookup = look_up_batch(&transaction, batch).await?;
    let plan = plan_batch(batch, lookup).map_err(AppendError::Refused)?;
    write_batch(&transaction, &plan).await?;
    transaction.commit().await?;
    Ok(plan.outcomes)
}

/// Locks the batch's rooms in id order and reads their last seqs, the senders' names and the stored originals of
/// the batch's idempotency keys. The three statements are pipelined in that order, so the originals are read once
/// the locks are held and a batch of the same room that committed meanwhile is seen.
async fn look_up_batch(
    transaction: &Transaction<'_>,
    batch: &[NewMessage],
) -> Result<BatchLookup, AppendError> {
    let room_ids = distinct(batch.iter().map(|message| message.room_id));
    let user_ids = distinct(batch.iter().map(|message| message.user_id));
    let (key_users, key_ids): (Vec<Uuid>, Vec<&str>) = batch
        .iter()
        .filter_map(|message| Some((message.user_id, message.client_msg_id.as_deref()?)))
        .unzip();
    let (rooms, users, originals) = try_join3(
        rows(
            transaction,
            "SELECT id, last_seq FROM rooms WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE",
            &[&room_ids],
        ),
        rows(transaction, "SELECT id, username FROM users WHERE id = ANY($1)", &[&user_ids]),
        rows(
            transaction,
            "SELECT m.id, m.room_id, m.seq, m.user_id, u.username, m.content, m.client_msg_id, m.created_at
             FROM UNNEST($1::uuid[], $2::text[]) AS k (user_id, client_msg_id)
             JOIN messages m ON m.user_id = k.user_id AND m.client_msg_id = k.client_msg_id
             JOIN users u ON u.id = m.user_id
             WHERE m.client_msg_id IS NOT NULL",
            &[&key_users, &key_ids],
        ),
    )
    .await?;
    Ok(BatchLookup {
        last_seqs: rooms
            .iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("last_seq")?)))
            .collect::<Result<_, tokio_postgres::Error>>()?,
        usernames: users
            .iter()
            .map(|row| Ok((row.try_get("id")?, row.try_get("username")?)))
            .collect::<Result<_, tokio_postgres::Error>>()?,
        originals: originals
            .iter()
            .map(message_from_row)
            .collect::<Result<_, _>>()?,
    })
}

/// Decides the outcome of each message in batch order: a duplicate of a stored original or of an earlier message of
/// the batch, or new with the next seq of its room. A new message naming an unknown room or user refuses the batch.
fn plan_batch(batch: &[NewMessage], lookup: BatchLookup) -> Result<AppendPlan, StoreError> {
    let BatchLookup {
        mut last_seqs,
        usernames,
        originals,
    } = lookup;
    let locked_seqs = last_seqs.clone();
    let mut outcomes: Vec<Appended> = Vec::with_capacity(batch.len());
    let mut first_with_key: HashMap<(Uuid, &str), usize> = HashMap::new();
    for new in batch {
        if let Some(original) = original_of(new, &originals, &first_with_key, &outcomes) {
            outcomes.push(Appended::Duplicate(original));
            continue;
        }
        if let Some(key) = new.client_msg_id.as_deref() {
            first_with_key.insert((new.user_id, key), outcomes.len());
        }
        let username = usernames
            .get(&new.user_id)
            .ok_or_else(|| StoreError::Backend(format!("no user {}", new.user_id)))?;
        let seq = last_seqs
            .get_mut(&new.room_id)
            .ok_or_else(|| StoreError::Backend(format!("no room {}", new.room_id)))?;
        *seq += 1;
        outcomes.push(Appended::Stored(stored_message(
            new,
            *seq,
            username.clone(),
        )));
    }
    let moved_rooms = last_seqs
        .into_iter()
        .filter(|(room_id, seq)| locked_seqs.get(room_id) != Some(seq))
        .collect();
    Ok(AppendPlan {
        outcomes,
        moved_rooms,
    })
}

/// The message `new` repeats, if its (user, client_msg_id) was stored before or came earlier in the batch.
fn original_of(
    new: &NewMessage,
    originals: &[StoredMessage],
    first_with_key: &HashMap<(Uuid, &str), usize>,
    outcomes: &[Appended],
) -> Option<StoredMessage> {
    let key = new.client_msg_id.as_deref()?;
    originals
        .iter()
        .find(|original| {
            original.user_id == new.user_id && original.client_msg_id.as_deref() == Some(key)
        })
        .or_else(|| {
            let earlier = first_with_key.get(&(new.user_id, key))?;
            outcomes.get(*earlier).map(Appended::message)
        })
        .cloned()
}

/// Moves the rooms' last seqs and inserts the new messages with one statement each, the two pipelined.
async fn write_batch(
    transaction: &Transaction<'_>,
    plan: &AppendPlan,
) -> Result<(), tokio_postgres::Error> {
    let stored: Vec<&StoredMessage> = plan
        .outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            Appended::Stored(message) => Some(message),
            Appended::Duplicate(_) => None,
        })
        .collect();
    if stored.is_empty() {
        return Ok(());
    }
    let (room_ids, last_seqs): (Vec<Uuid>, Vec<i64>) = plan.moved_rooms.iter().copied().unzip();
    let ids: Vec<Uuid> = stored.iter().map(|m| m.id).collect();
    let rooms: Vec<Uuid> = stored.iter().map(|m| m.room_id).collect();
    let seqs: Vec<i64> = stored.iter().map(|m| m.seq).collect();
    let users: Vec<Uuid> = stored.iter().map(|m| m.user_id).collect();
    let contents: Vec<&str> = stored.iter().map(|m| m.content.as_str()).collect();
    let keys: Vec<Option<&str>> = stored.iter().map(|m| m.client_msg_id.as_deref()).collect();
    let created: Vec<OffsetDateTime> = stored.iter().map(|m| m.created_at).collect();
    try_join(
        rows(
            transaction,
            "UPDATE rooms SET last_seq = moved.last_seq
             FROM UNNEST($1::uuid[], $2::bigint[]) AS moved (id, last_seq)
             WHERE rooms.id = moved.id",
            &[&room_ids, &last_seqs],
        ),
        rows(
            transaction,
            "INSERT INTO messages (id, room_id, seq, user_id, content, client_msg_id, created_at)
             SELECT * FROM UNNEST($1::uuid[], $2::uuid[], $3::bigint[], $4::uuid[], $5::text[], $6::text[],
                                  $7::timestamptz[])",
            &[&ids, &rooms, &seqs, &users, &contents, &keys, &created],
        ),
    )
    .await?;
    Ok(())
}

/// Runs one statement inside a transaction, prepared once per connection.
async fn rows(
    transaction: &Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, tokio_postgres::Error> {
    let statement = transaction.prepare_cached(sql).await?;
    transaction.query(&statement, params).await
}

/// The values of `values` once each, sorted.
fn distinct(values: impl Iterator<Item = Uuid>) -> Vec<Uuid> {
    let mut values: Vec<Uuid> = values.collect();
    values.sort_unstable();
    values.dedup();
    values
}

/// `new` as stored with `seq`, its time cut to what the database keeps.
fn stored_message(new: &NewMessage, seq: i64, username: String) -> StoredMessage {
    StoredMessage {
        id: new.id,
        room_id: new.room_id,
        seq,
        user_id: new.user_id,
        username,
        content: new.content.clone(),
        client_msg_id: new.client_msg_id.clone(),
        created_at: to_micros(new.created_at),
    }
}

/// The key room names are unique by: Unicode lower case, computed here because what the database's lower() folds
/// depends on its locale.
fn room_name_key(name: &str) -> String {
    name.to_lowercase()
}

/// `at` in UTC, cut to whole microseconds: PostgreSQL keeps no more, so what a write returns equals what a later
/// read returns.
fn to_micros(at: OffsetDateTime) -> OffsetDateTime {
    let at = at.to_offset(UtcOffset::UTC);
    at - time::Duration::nanoseconds(i64::from(at.nanosecond() % 1_000))
}

fn user_from_row(row: &Row) -> Result<User, tokio_postgres::Error> {
    Ok(User {
        id: row.try_get("id")?,
        username: row.try_get("username")?,
        email: row.try_get("email")?,
        password_hash: row.try_get("password_hash")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn room_from_row(row: &Row) -> Result<Room, tokio_postgres::Error> {
    Ok(Room {
        id: row.try_get("id")?,
        name: row.try_get("name")?,
        private: row.try_get("private")?,
        password_hash: row.try_get("password_hash")?,
        owner_id: row.try_get("owner_id")?,
        created_at: row.try_get("created_at")?,
        last_seq: row.try_get("last_seq")?,
    })
}

fn member_from_row(row: &Row) -> Result<Member, tokio_postgres::Error> {
    Ok(Member {
        user_id: row.try_get("id")?,
        username: row.try_get("username")?,
    })
}

fn message_from_row(row: &Row) -> Result<StoredMessage, tokio_postgres::Error> {
    Ok(StoredMessage {
        id: row.try_get("id")?,
        room_id: row.try_get("room_id")?,
        seq: row.try_get("seq")?,
        user_id: row.try_get("user_id")?,
        username: row.try_get("username")?,
        content: row.try_get("content")?,
        client_msg_id: row.try_get("client_msg_id")?,
        created_at: row.try_get("created_at")?,
    })
}

fn audit_from_row(row: &Row) -> Result<AuditEvent, tokio_postgres::Error> {
    Ok(AuditEvent {
        at: row.try_get("at")?,
        event: row.try_get("event")?,
        user_id: row.try_get("user_id")?,
        username: row.try_get("username")?,
        ip: row.try_get("ip")?,
        user_agent: row.try_get("user_agent")?,
        outcome: row.try_get("outcome")?,
        details: row.try_get("details")?,
    })
}

/// Maps a failure of a statement: a broken uniqueness rule is a conflict, a lost or refused connection means the
/// database is unavailable, anything else is a backend error.
fn pg_error(error: tokio_postgres::Error) -> StoreError {
    match error.as_db_error() {
        Some(db) => db_error(db),
        None if error.is_closed() || caused_by_io(&error) => StoreError::Unavailable(chain(&error)),
        // No SQLSTATE and no I/O: a value that did not convert, which is a bug rather than an outage.
        None => StoreError::Backend(chain(&error)),
    }
}

/// Maps a failure to get a connection: every one without a SQLSTATE (refused, reset, timed out) is an outage.
fn pool_error(error: PoolError) -> StoreError {
    match error {
        PoolError::Backend(error) => match error.as_db_error() {
            Some(db) => db_error(db),
            None => StoreError::Unavailable(chain(&error)),
        },
        PoolError::Timeout(_) | PoolError::Closed => StoreError::Unavailable(error.to_string()),
        other => StoreError::Backend(other.to_string()),
    }
}

/// Maps an error the server reported. Its detail is left out: it quotes the offending values (emails, say).
fn db_error(db: &DbError) -> StoreError {
    let code = db.code();
    if *code == SqlState::UNIQUE_VIOLATION
        && let Some(unique) = db.constraint().and_then(unique_rule)
    {
        return StoreError::Conflict(unique);
    }
    let message = format!("{} (SQLSTATE {})", db.message(), code.code());
    if is_outage(code) {
        StoreError::Unavailable(message)
    } else {
        StoreError::Backend(message)
    }
}

/// The uniqueness rule a unique index enforces, for the indexes a caller can act on.
fn unique_rule(constraint: &str) -> Option<Unique> {
    match constraint {
        USERNAME_KEY => Some(Unique::Username),
        EMAIL_KEY => Some(Unique::Email),
        ROOM_NAME_KEY => Some(Unique::RoomName),
        _ => None,
    }
}

/// Whether `error` is a violation of the unique index `constraint`.
fn violates(error: &tokio_postgres::Error, constraint: &str) -> bool {
    error.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some(constraint)
    })
}

/// SQLSTATEs that say the server cannot serve now (connection exceptions, shutting down, starting up, full), as
/// opposed to refusing this statement.
fn is_outage(code: &SqlState) -> bool {
    code.code().starts_with("08")
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
        ]
        .contains(code)
}

/// Whether an I/O error lies anywhere in the causes of `error`.
fn caused_by_io(error: &tokio_postgres::Error) -> bool {
    let mut cause = error.source();
    while let Some(error) = cause {
        if error.is::<std::io::Error>() {
            return true;
        }
        cause = error.source();
    }
    false
}

/// `error` and its causes on one line: tokio-postgres's own messages leave the cause out ("error connecting to
/// server").
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(error) = cause {
        text.push_str(": ");
        text.push_str(&error.to_string());
        cause = error.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::sync::Arc;

    use time::macros::datetime;

    /// The time the tests' records are made at.
    const T0: OffsetDateTime = datetime!(2026-11-25 15:30:45 UTC);

    /// A store in a schema of its own, dropped when the test passes (a failed test leaves it to look at).
    struct TestDb {
        store: PostgresStore,
        admin: tokio_postgres::Client,
        schema: String,
        /// The store's URL: the schema is its search_path and its application_name.
        url: String,
    }

    impl TestDb {
        /// A fresh store, or `None` when TEST_DATABASE_URL is not set.
        async fn open() -> anyhow::Result<Option<TestDb>> {
            let Ok(url) = std::env::var("TEST_DATABASE_URL") else {
                return Ok(None);
            };
            let (admin, connection) = tokio_postgres::connect(&url, NoTls).await?;
            tokio::spawn(connection);
            let schema = format!("palaver_t_{:016x}", rand::random::<u64>());
            admin
                .batch_execute(&format!("CREATE SCHEMA {schema}"))
                .await?;
            let separator = if url.contains('?') { '&' } else { '?' };
            let url = format!(
                "{url}{separator}options=-csearch_path%3D{schema}&application_name={schema}"
            );
            let store = PostgresStore::connect(&url, 8, Duration::from_secs(10)).await?;
            Ok(Some(TestDb {
                store,
                admin,
                schema,
                url,
            }))
        }

        /// Opens a second store on the same schema (the migrations have run already).
        async fn reopen(&self) -> anyhow::Result<PostgresStore> {
            Ok(PostgresStore::connect(&self.url, 8, Duration::from_secs(10)).await?)
        }

        async fn drop_schema(self) -> anyhow::Result<()> {
            self.store.pool().close();
            self.admin
                .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.schema))
                .await?;
            Ok(())
        }
    }

    async fn user(store: &PostgresStore, username: &str) -> anyhow::Result<User> {
        Ok(store
            .create_user(NewUser {
                id: Uuid::new_v4(),
                username: username.into(),
                email: format!("{username}@example.com"),
                password_hash: "hash".into(),
                created_at: T0,
            })
            .await?)
    }

    async fn room(store: &PostgresStore, name: &str, owner: &User) -> anyhow::Result<Room> {
        Ok(store
            .create_room(NewRoom {
                id: Uuid::new_v4(),
                name: name.into(),
                private: false,
                password_hash: None,
                owner_id: owner.id,
                created_at: T0,
            })
            .await?)
    }

    fn message(room: &Room, user: &User, content: &str, key: Option<&str>) -> NewMessage {
        NewMessage {
            id: Uuid::new_v4(),
            room_id: room.id,
            user_id: user.id,
            content: content.into(),
            client_msg_id: key.map(str::to_owned),
            created_at: T0,
        }
    }

    fn seqs(outcomes: &[Appended]) -> Vec<i64> {
        outcomes
            .iter()
            .map(|outcome| outcome.message().seq)
            .collect()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_batches_get_gapless_seqs_without_deadlock() -> anyhow::Result<()> {
        let Some(db) = TestDb::open().await? else {
            return Ok(());
        };
        let store = Arc::new(db.reopen().await?);
        let alice = user(&store, "alice").await?;
        let (general, random) = (
            room(&store, "general", &alice).await?,
            room(&store, "random", &alice).await?,
        );
        // Each task writes batches that span both rooms, half of them in the opposite order.
        let tasks: Vec<_> = (0..8)
            .map(|task| {
                let (store, alice, general, random) = (
                    store.clone(),
                    alice.clone(),
                    general.clone(),
                    random.clone(),
                );
                tokio::spawn(async move {
                    let mut stored = Vec::new();
                    for round in 0..20 {
                        let text = format!("{task}/{round}");
                        let batch = if task % 2 == 0 {
                            vec![
                                message(&general, &alice, &text, None),
                                message(&random, &alice, &text, None),
                            ]
                        } else {
                            vec![
                                message(&random, &alice, &text, None),
                                message(&general, &alice, &text, None),
                            ]
                        };
                        stored.extend(store.append_messages(&batch).await?);
                    }
                    Ok::<_, StoreError>(stored)
                })
            })
            .collect();
        let mut by_room: HashMap<Uuid, Vec<i64>> = HashMap::new();
        for task in tasks {
            for outcome in task.await?? {
                assert!(matches!(outcome, Appended::Stored(_)));
                by_room
                    .entry(outcome.message().room_id)
                    .or_default()
                    .push(outcome.message().seq);
            }
        }
        for room_id in [general.id, random.id] {
            let mut seqs = by_room.remove(&room_id).unwrap_or_default();
            seqs.sort_unstable();
            assert_eq!(seqs, (1..=160).collect::<Vec<i64>>());
        }
        let rooms = db.store.list_rooms().await?;
        assert_eq!(
            rooms.iter().map(|room| room.last_seq).collect::<Vec<_>>(),
            vec![160, 160]
        );
        db.drop_schema().await
    }

    #[tokio::test]
    async fn a_batch_with_an_unknown_room_or_user_stores_nothing_and_uses_no_seq()
    -> anyhow::Result<()> {
        let Some(db) = TestDb::open().await? else {
            return Ok(());
        };
        let store = &db.store;
        let alice = user(store, "alice").await?;
        let general = room(store, "general", &alice).await?;
        let ghost_room = Room {
            id: Uuid::new_v4(),
            ..general.clone()
        };
        let ghost = User {
            id: Uuid::new_v4(),
            ..alice.clone()
        };
        for bad in [
            message(&ghost_room, &alice, "lost", None),
            message(&general, &ghost, "lost", Some("k2")),
        ] {
            let batch = [message(&general, &alice, "first", Some("k1")), bad];
            assert!(matches!(
                store.append_messages(&batch).await,
                Err(StoreError::Backend(_))
            ));
        }
        let page = store.history(general.id, &HistoryQuery::latest(10)).await?;
        assert!(page.messages.is_empty());
        // The key of the refused batch is free, and the room's next seq is still 1.
        let outcomes = store
            .append_messages(&[message(&general, &alice, "again", Some("k1"))])
            .await?;
        assert!(matches!(&outcomes[..], [Appended::Stored(m)] if m.seq == 1));
        db.drop_schema().await
    }

    #[tokio::test]
    async fn repeated_client_msg_ids_answer_the_original() -> anyhow::Result<()> {
        let Some(db) = TestDb::open().await? else {
            return Ok(());
        };
        let store = &db.store;
        let alice = user(store, "alice").await?;
        let general = room(store, "general", &alice).await?;
        let first = store
            .append_messages(&[message(&general, &alice, "one", Some("a"))])
            .await?;
        let batch = [
            message(&general, &alice, "one again", Some("a")),
            message(&general, &alice, "two", Some("b")),
            message(&general, &alice, "two again", Some("b")),
            message(&general, &alice, "three", None),
        ];
        let outcomes = store.append_messages(&batch).await?;
        assert_eq!(outcomes[0], Appended::Duplicate(first[0].message().clone()));
        assert!(matches!(&outcomes[1], Appended::Stored(m) if m.content == "two"));
        assert_eq!(
            outcomes[2],
            Appended::Duplicate(outcomes[1].message().clone())
        );
        assert_eq!(seqs(&outcomes), vec![1, 2, 2, 3]);
        let page = store.history(general.id, &HistoryQuery::latest(10)).await?;
        assert_eq!(
            page.messages.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![3, 2, 1]
        );
        db.drop_schema().await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_key_raced_into_several_rooms_is_stored_once() -> anyhow::Result<()> {
        let Some(db) = TestDb::open().await? else {
            return Ok(());
        };
        let store = Arc::new(db.reopen().await?);
        let alice = user(&store, "alice").await?;
        // Different rooms, so the rooms' locks do not serialise the batches: the unique index decides.
        let mut rooms = Vec::new();
        for n in 0..8 {
            rooms.push(room(&store, &format!("room {n}"), &alice).await?);
        }
        let start = Arc::new(tokio::sync::Barrier::new(rooms.len()));
        let tasks: Vec<_> = rooms
            .iter()
            .map(|room| {
                let (store, start) = (store.clone(), start.clone());
                let new = message(room, &alice, "hello", Some("same"));
                tokio::spawn(async move {
                    start.wait().await;
                    store.append_messages(&[new]).await
                })
            })
            .collect();
        let mut outcomes = Vec::new();
        for task in tasks {
            outcomes.extend(task.await??);
        }
        let stored: Vec<&StoredMessage> = outcomes
            .iter()
            .filter_map(|outcome| match outcome {
                Appended::Stored(message) => Some(message),
                Appended::Duplicate(_) => None,
            })
            .collect();
        assert_eq!(stored.len(), 1);
        assert!(
            outcomes
                .iter()
                .all(|outcome| outcome.message() == stored[0])
        );
        db.drop_schema().await
    }

    #[tokio::test]
    async fn a_history_page_walks_the_room_seq_index_instead_of_scanning_messages()
    -> anyhow::Result<()> {
        let Some(db) = TestDb::open().await? else {
            return Ok(());
        };
        let store = &db.store;
        let alice = user(store, "alice").await?;
        let busy = room(store, "busy", &alice).await?;
        let quiet = room(store, "quiet", &alice).await?;
        for chunk in 0..20 {
            let batch: Vec<NewMessage> = (0..1000)
                .map(|n| {
                    let target = if n % 10 == 0 { &quiet } else { &busy };
                    let mut new = message(target, &alice, &format!("message {chunk}-{n}"), None);
                    new.created_at = T0 + time::Duration::seconds(chunk * 1000 + n);
                    new
                })
                .collect();
            store.append_messages(&batch).await?;
        }
        let client = store.client().await?;
        client.batch_execute("ANALYZE messages").await?;
        let pages = [
            HistoryQuery::latest(50),
            HistoryQuery {
                before_seq: Some(9_000),
                ..HistoryQuery::latest(50)
            },
            HistoryQuery {
                after_seq: Some(100),
                before_seq: Some(301),
                ..HistoryQuery::latest(200)
            },
            HistoryQuery {
                since: Some(T0),
                until: Some(T0 + time::Duration::hours(3)),
                ..HistoryQuery::latest(50)
            },
        ];
        for query in &pages {
            let fetch = i64::from(query.limit) + 1;
            let (sql, params) = history_statement(&busy.id, query, &fetch);
            let plan: String = client
                .query(&format!("EXPLAIN (FORMAT TEXT) {sql}"), &params)
                .await?
                .iter()
                .map(|row| row.get::<_, String>(0))
                .collect::<Vec<_>>()
                .join("\n");
            assert!(!plan.contains("Seq Scan on messages"), "{query:?}\n{plan}");
            assert!(plan.contains("messages_room_seq_key"), "{query:?}\n{plan}");
        }
        drop(client);
        db.drop_schema().await
    }

    #[tokio::test]
    async fn history_filters_and_pages_newest_first() -> anyhow::Result<()> {
        let Some(db) = TestDb::open().await? else {
            return Ok(());
        };
        let store = &db.store;
        let (alice, bob) = (user(store, "alice").await?, user(store, "bob").await?);
        let general = room(store, "general", &alice).await?;
        let mut batch = Vec::new();
        for n in 1..=6 {
            let author = if n % 2 == 0 { &bob } else { &alice };
            let mut new = message(&general, author, &format!("Note {n} ÄRGER"), None);
            new.created_at = T0 + time::Duration::minutes(n);
            batch.push(new);
        }
        store.append_messages(&batch).await?;
        let page_seqs =
            |page: &HistoryPage| page.messages.iter().map(|m| m.seq).collect::<Vec<_>>();

        let first = store.history(general.id, &HistoryQuery::latest(4)).await?;
        assert_eq!(
            (page_seqs(&first), first.next_before, first.has_more),
            (vec![6, 5, 4, 3], Some(3), true)
        );
        let older = HistoryQuery {
            before_seq: first.next_before,
            ..HistoryQuery::latest(4)
        };
        let second = store.history(general.id, &older).await?;
        assert_eq!(
            (page_seqs(&second), second.next_before, second.has_more),
            (vec![2, 1], Some(1), false)
        );

        let filtered = HistoryQuery {
            sender: Some("BOB".into()),
            contains: Some("ärger".into()),
            since: Some(T0 + time::Duration::minutes(2)),
            until: Some(T0 + time::Duration::minutes(4)),
            ..HistoryQuery::latest(10)
        };
        assert_eq!(
            page_seqs(&store.history(general.id, &filtered).await?),
            vec![4, 2]
        );
        let window = HistoryQuery {
            after_seq: Some(2),
            before_seq: Some(5),
            ..HistoryQuery::latest(10)
        };
        assert_eq!(
            page_seqs(&store.history(general.id, &window).await?),
            vec![4, 3]
        );
        let needle = HistoryQuery {
            contains: Some("%".into()),
            ..HistoryQuery::latest(10)
        };
        assert!(
            store
                .history(general.id, &needle)
                .await?
                .messages
                .is_empty()
        );
        db.drop_schema().await
    }

    #[tokio::test]
    async fn uniqueness_is_case_insensitive_and_named() -> anyhow::Result<()> {
        let Some(db) = TestDb::open().await? else {
            return Ok(());
        };
        let store = &db.store;
        let alice = user(store, "alice").await?;
        let mut twin = NewUser {
            id: Uuid::new_v4(),
            username: "ALICE".into(),
            email: "ALICE@example.com".into(),
            password_hash: "hash".into(),
            created_at: T0,
        };
        assert_eq!(
            store.create_user(twin.clone()).await,
            Err(StoreError::Conflict(Unique::Username))
        );
        twin.username = "alice2".into();
        assert_eq!(
            store.create_user(twin).await,
            Err(StoreError::Conflict(Unique::Email))
        );
        assert_eq!(
            store.user_by_login("Alice@Example.COM").await?,
            Some(alice.clone())
        );

        room(store, "Café", &alice).await?;
        let clash = NewRoom {
            id: Uuid::new_v4(),
            name: "CAFÉ".into(),
            private: false,
            password_hash: None,
            owner_id: alice.id,
            created_at: T0,
        };
        assert_eq!(
            store.create_room(clash).await,
            Err(StoreError::Conflict(Unique::RoomName))
        );
        let cafe = store.room_by_name("cAfÉ").await?;
        assert_eq!(cafe.as_ref().map(|room| room.name.as_str()), Some("Café"));
        let members = store
            .members(cafe.map_or(Uuid::nil(), |room| room.id))
            .await?;
        assert_eq!(
            members,
            vec![Member {
                user_id: alice.id,
                username: alice.username.clone()
            }]
        );
        db.drop_schema().await
    }

    #[tokio::test]
    async fn connections_killed_by_the_server_are_replaced() -> anyhow::Result<()> {
        let Some(db) = TestDb::open().await? else {
            return Ok(());
        };
        db.store.ping().await?;
        let killed = db
            .admin
            .query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
                &[&db.schema],
            )
            .await?;
        assert!(!killed.is_empty());
        // The pool checks a connection before handing it out again, so the next caller gets a fresh one.
        db.store.ping().await?;
        db.drop_schema().await
    }

    #[test]
    fn a_batch_plan_numbers_new_messages_per_room_and_points_repeats_at_the_first() {
        let (general, random, alice) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        let new = |room_id, key: Option<&str>| NewMessage {
            id: Uuid::new_v4(),
            room_id,
            user_id: alice,
            content: "hi".into(),
            client_msg_id: key.map(str::to_owned),
            created_at: T0,
        };
        let batch = [
            new(general, Some("a")),
            new(random, None),
            new(general, Some("a")),
            new(general, None),
        ];
        let lookup = BatchLookup {
            last_seqs: HashMap::from([(general, 7), (random, 0)]),
            usernames: HashMap::from([(alice, "alice".to_owned())]),
            originals: Vec::new(),
        };
        let plan = plan_batch(&batch, lookup).expect("every room and user is known");
        assert_eq!(seqs(&plan.outcomes), vec![8, 1, 8, 9]);
        assert_eq!(
            plan.outcomes[2],
            Appended::Duplicate(plan.outcomes[0].message().clone())
        );
        let mut moved = plan.moved_rooms;
        moved.sort_unstable_by_key(|(_, seq)| *seq);
        assert_eq!(moved, vec![(random, 1), (general, 9)]);

        let unknown = BatchLookup {
            last_seqs: HashMap::from([(general, 7)]),
            usernames: HashMap::from([(alice, "alice".to_owned())]),
            originals: Vec::new(),
        };
        assert_eq!(
            plan_batch(&batch, unknown).err(),
            Some(StoreError::Backend(format!("no room {random}")))
        );
    }

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
