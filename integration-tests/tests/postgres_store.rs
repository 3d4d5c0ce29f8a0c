//! What is particular to the PostgreSQL store, tested black-box through its public API: batches racing for rooms'
//! row locks and for idempotency keys, the history statement's plan, case folding beyond ASCII, and connections the
//! server kills. The behaviour every engine shares is the `store_conformance` suite's job.
//!
//! Every test gets a fresh schema from `palaver_integration_tests::pg`: skipped without `TEST_DATABASE_URL` or Docker,
//! a failure in CI. Run it with
//! `TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p palaver-integration-tests --test postgres_store`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use palaver_handlers::model::{
    Appended, Change, HistoryPage, HistoryQuery, LogEntry, Member, NewEntry, NewRoom, NewUser,
    Room, User,
};
use palaver_handlers::{Store, StoreError, Unique};
use palaver_integration_tests::pg::{self, PgDatabase};
use palaver_runtime::store::postgres::PostgresStore;
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

/// The time the tests' records are made at.
const T0: OffsetDateTime = datetime!(2026-11-25 15:30:45 UTC);

/// A store in a schema of its own, with a plain connection to the same schema for what the store does not offer
/// (ANALYZE, terminating the store's sessions). Fields drop in order: the store and the connection before the
/// schema's guard, which drops the schema.
struct TestDb {
    store: PostgresStore,
    admin: tokio_postgres::Client,
    /// The store's URL: the schema's URL with the schema's name as application_name, so that the store's sessions,
    /// and only they, can be found in pg_stat_activity.
    url: String,
    database: PgDatabase,
}

impl TestDb {
    /// A fresh store, or `None` when there is no PostgreSQL outside CI (the helper panics in CI).
    async fn open() -> anyhow::Result<Option<TestDb>> {
        let Some(database) = pg::fresh_database_url().await else {
            return Ok(None);
        };
        let (admin, connection) =
            tokio_postgres::connect(database.url(), tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        let separator = if database.url().contains('?') {
            '&'
        } else {
            '?'
        };
        let url = format!(
            "{}{separator}application_name={}",
            database.url(),
            database.schema()
        );
        let store = PostgresStore::connect(&url, 8, Duration::from_secs(10)).await?;
        Ok(Some(TestDb {
            store,
            admin,
            url,
            database,
        }))
    }

    /// Opens a second store on the same schema (the migrations have run already).
    async fn reopen(&self) -> anyhow::Result<PostgresStore> {
        Ok(PostgresStore::connect(&self.url, 8, Duration::from_secs(10)).await?)
    }

    /// Closes the store's connections and drops the schema, failing the test if it cannot be dropped. A test that
    /// fails before this still loses its schema, to the guard's best-effort drop.
    async fn drop_schema(self) -> anyhow::Result<()> {
        self.store.pool().close();
        self.admin
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", self.database.schema()))
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

fn message(room: &Room, user: &User, content: &str, key: Option<&str>) -> NewEntry {
    NewEntry {
        id: Uuid::new_v4(),
        room_id: room.id,
        user_id: user.id,
        change: Change::Post {
            content: content.into(),
            reply_to: None,
        },
        client_msg_id: key.map(str::to_owned),
        created_at: T0,
    }
}

fn seqs(outcomes: &[Appended]) -> Vec<i64> {
    outcomes
        .iter()
        .map(|outcome| outcome.entry().unwrap().seq)
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
                .entry(outcome.entry().unwrap().room_id)
                .or_default()
                .push(outcome.entry().unwrap().seq);
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
async fn a_batch_with_an_unknown_room_or_user_stores_nothing_and_uses_no_seq() -> anyhow::Result<()>
{
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
    assert_eq!(
        outcomes[0],
        Appended::Duplicate(first[0].entry().unwrap().clone())
    );
    assert!(matches!(&outcomes[1], Appended::Stored(m) if m.content() == Some("two")));
    assert_eq!(
        outcomes[2],
        Appended::Duplicate(outcomes[1].entry().unwrap().clone())
    );
    assert_eq!(seqs(&outcomes), vec![1, 2, 2, 3]);
    let page = store.history(general.id, &HistoryQuery::latest(10)).await?;
    assert_eq!(
        page.messages
            .iter()
            .map(|m| m.entry.seq)
            .collect::<Vec<_>>(),
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
    let stored: Vec<&LogEntry> = outcomes
        .iter()
        .filter_map(|outcome| match outcome {
            Appended::Stored(message) => Some(message),
            _ => None,
        })
        .collect();
    assert_eq!(stored.len(), 1);
    assert!(
        outcomes
            .iter()
            .all(|outcome| outcome.entry() == Some(stored[0]))
    );
    db.drop_schema().await
}

#[tokio::test]
async fn a_history_page_walks_the_room_seq_index_instead_of_scanning_messages() -> anyhow::Result<()>
{
    let Some(db) = TestDb::open().await? else {
        return Ok(());
    };
    let store = &db.store;
    let alice = user(store, "alice").await?;
    let busy = room(store, "busy", &alice).await?;
    let quiet = room(store, "quiet", &alice).await?;
    for chunk in 0..20 {
        let batch: Vec<NewEntry> = (0..1000)
            .map(|n| {
                let target = if n % 10 == 0 { &quiet } else { &busy };
                let mut new = message(target, &alice, &format!("message {chunk}-{n}"), None);
                new.created_at = T0 + time::Duration::seconds(chunk * 1000 + n);
                new
            })
            .collect();
        store.append_messages(&batch).await?;
    }
    // Fresh statistics, so the planner knows the busy room holds most of the table.
    db.admin.batch_execute("ANALYZE messages").await?;
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
        let plan = store.explain_history(busy.id, query).await?;
        assert!(!plan.contains("Seq Scan on messages"), "{query:?}\n{plan}");
        assert!(plan.contains("messages_room_seq_key"), "{query:?}\n{plan}");
    }
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
    let page_seqs = |page: &HistoryPage| {
        page.messages
            .iter()
            .map(|m| m.entry.seq)
            .collect::<Vec<_>>()
    };

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
            username: alice.username.clone(),
            last_read_seq: 0,
            role: palaver_handlers::model::Role::Owner,
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
            &[&db.database.schema()],
        )
        .await?;
    assert!(!killed.is_empty());
    // The pool checks a connection before handing it out again, so the next caller gets a fresh one.
    db.store.ping().await?;
    db.drop_schema().await
}

/// After a commit whose answer was lost, the writer asks which of its messages were stored. The commit may still be
/// landing on its old connection: the lookup must wait for it rather than answer "not stored" for a message that is
/// committed a moment later (it would then never be delivered).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lookup_of_messages_in_doubt_waits_for_a_commit_still_landing() -> anyhow::Result<()> {
    let Some(db) = TestDb::open().await? else {
        return Ok(());
    };
    let alice = user(&db.store, "alice").await?;
    let general = room(&db.store, "general", &alice).await?;
    // The old connection's transaction, as the store's batch leaves it just before its COMMIT: the room's row locked,
    // the message inserted, its seq taken.
    let (landing, connection) =
        tokio_postgres::connect(db.database.url(), tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    landing.batch_execute("BEGIN").await?;
    landing
        .execute(
            "SELECT 1 FROM rooms WHERE id = $1 FOR NO KEY UPDATE",
            &[&general.id],
        )
        .await?;
    let id = Uuid::new_v4();
    landing
        .execute(
            "INSERT INTO messages (id, room_id, seq, user_id, content, created_at) VALUES ($1, $2, 1, $3, 'late', $4)",
            &[&id, &general.id, &alice.id, &T0],
        )
        .await?;
    landing
        .execute(
            "UPDATE rooms SET last_seq = 1 WHERE id = $1",
            &[&general.id],
        )
        .await?;

    let store = Arc::new(db.reopen().await?);
    let lookup = {
        let (store, room_id) = (store.clone(), general.id);
        tokio::spawn(async move { store.messages_by_id(&[room_id], &[id]).await })
    };
    // The lookup must be waiting on the landing transaction's lock, not answering: see its session wait.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let waiting: i64 = db
            .admin
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'",
                &[&db.database.schema()],
            )
            .await?
            .get(0);
        if waiting > 0 {
            break;
        }
        assert!(
            !lookup.is_finished(),
            "the lookup answered while the commit was still landing: {:?}",
            lookup.await?
        );
        assert!(
            tokio::time::Instant::now() < deadline,
            "the lookup never waited for the landing commit"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    landing.batch_execute("COMMIT").await?;
    let found = tokio::time::timeout(Duration::from_secs(10), lookup).await???;
    assert_eq!(found.len(), 1, "the late commit's message is found");
    assert_eq!((found[0].id, found[0].seq), (id, 1));
    drop(store);
    db.drop_schema().await
}

/// A session whose client vanished mid-transaction must not hold its rooms' locks for ever: the store's sessions end
/// a transaction left idle after four of its timeouts.
#[tokio::test]
async fn the_stores_sessions_end_transactions_left_idle() -> anyhow::Result<()> {
    let Some(db) = TestDb::open().await? else {
        return Ok(());
    };
    let session = db.store.pool().get().await?;
    let setting: String = session
        .query_one("SHOW idle_in_transaction_session_timeout", &[])
        .await?
        .get(0);
    // TestDb opens the store with a 10 s timeout; PostgreSQL shows 40 000 ms as 40s.
    assert_eq!(setting, "40s");
    // And the schema option of the URL is kept beside it.
    let schema: String = session.query_one("SHOW search_path", &[]).await?.get(0);
    assert_eq!(schema, db.database.schema());
    drop(session);
    db.drop_schema().await
}
