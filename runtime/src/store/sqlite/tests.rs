//! What is particular to the SQLite engine: transactions across the writer thread, concurrency, the file on disk,
//! and case folding beyond ASCII. The behaviour every engine shares is the cross-engine conformance suite's job.

use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use palaver_handlers::model::{
    Appended, Change, HistoryQuery, NewEntry, NewRoom, NewUser, Room, User,
};
use palaver_handlers::{Store, StoreError, Unique};
use time::OffsetDateTime;
use time::macros::datetime;
use uuid::Uuid;

use super::convert::backend;
use super::worker::Pool;
use super::{SqliteStore, messages, reader_count};

const NOW: OffsetDateTime = datetime!(2026-11-25 15:30:45 UTC);

async fn open_in(dir: &tempfile::TempDir) -> SqliteStore {
    SqliteStore::open(&dir.path().join("palaver.db"))
        .await
        .expect("a fresh database in a temporary directory opens")
}

fn new_user(username: &str) -> NewUser {
    NewUser {
        id: Uuid::new_v4(),
        username: username.into(),
        email: format!("{username}@example.com"),
        password_hash: "hash".into(),
        created_at: NOW,
    }
}

fn new_room(name: &str, owner: &User) -> NewRoom {
    NewRoom {
        id: Uuid::new_v4(),
        name: name.into(),
        private: false,
        password_hash: None,
        owner_id: owner.id,
        created_at: NOW,
    }
}

async fn user(store: &SqliteStore, username: &str) -> User {
    store
        .create_user(new_user(username))
        .await
        .expect("a new username and email are free")
}

async fn room(store: &SqliteStore, name: &str, owner: &User) -> Room {
    store
        .create_room(new_room(name, owner))
        .await
        .expect("a new room name is free")
}

fn message(room_id: Uuid, user_id: Uuid, content: &str, key: Option<&str>) -> NewEntry {
    NewEntry {
        id: Uuid::new_v4(),
        room_id,
        user_id,
        change: Change::Post {
            content: content.into(),
            reply_to: None,
        },
        client_msg_id: key.map(Into::into),
        created_at: NOW,
    }
}

async fn seqs(store: &SqliteStore, room_id: Uuid) -> Vec<i64> {
    let page = store
        .history(room_id, &HistoryQuery::latest(200))
        .await
        .expect("history reads");
    page.messages
        .iter()
        .map(|message| message.entry.seq)
        .collect()
}

async fn last_seq(store: &SqliteStore, name: &str) -> i64 {
    store
        .room_by_name(name)
        .await
        .expect("rooms read")
        .expect("the room exists")
        .last_seq
}

#[tokio::test]
async fn a_batch_failing_half_way_stores_nothing_and_uses_no_seq() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open_in(&dir).await;
    let alice = user(&store, "alice").await;
    let lobby = room(&store, "lobby", &alice).await;
    store
        .append_messages(&[message(lobby.id, alice.id, "first", Some("k1"))])
        .await
        .expect("stored");

    let unknown_room = [
        message(lobby.id, alice.id, "second", Some("k2")),
        message(Uuid::new_v4(), alice.id, "nowhere", None),
    ];
    let unknown_user = [
        message(lobby.id, alice.id, "second", None),
        message(lobby.id, Uuid::new_v4(), "ghost", None),
    ];
    for batch in [&unknown_room[..], &unknown_user[..]] {
        let outcome = store.append_messages(batch).await;
        assert!(
            matches!(outcome, Err(StoreError::Backend(_))),
            "{outcome:?}"
        );
        assert_eq!(seqs(&store, lobby.id).await, [1]);
        assert_eq!(last_seq(&store, "lobby").await, 1);
    }

    // Nothing of the failed batch lingers: its key is free and the next message takes seq 2.
    let retried = store
        .append_messages(&[message(lobby.id, alice.id, "second", Some("k2"))])
        .await
        .expect("stored");
    assert!(
        matches!(&retried[..], [Appended::Stored(m)] if m.seq == 2),
        "{retried:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_take_every_seq_once_without_gaps() {
    const TASKS: usize = 8;
    const PER_TASK: usize = 25;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = Arc::new(open_in(&dir).await);
    let alice = user(&store, "alice").await;
    let lobby = room(&store, "lobby", &alice).await;

    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = Arc::clone(&store);
        tasks.push(tokio::spawn(async move {
            let mut seqs = Vec::new();
            for index in 0..PER_TASK {
                let key = format!("{task}-{index}");
                let batch = [message(lobby.id, alice.id, "hi", Some(&key))];
                let outcomes = store.append_messages(&batch).await.expect("stored");
                seqs.extend(outcomes.iter().map(|outcome| outcome.entry().unwrap().seq));
            }
            seqs
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await.expect("the task finishes"));
    }
    all.sort_unstable();
    let expected: Vec<i64> = (1..=i64::try_from(TASKS * PER_TASK).expect("small")).collect();
    assert_eq!(all, expected);
    assert_eq!(last_seq(&store, "lobby").await, expected.len() as i64);
    assert_eq!(
        seqs(&store, lobby.id).await,
        expected.iter().rev().copied().collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn reopening_keeps_the_data_and_does_not_rerun_migrations() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("nested").join("data").join("palaver.db");
    let store = SqliteStore::open(&path)
        .await
        .expect("opens, creating the directories");
    let alice = user(&store, "alice").await;
    let lobby = room(&store, "lobby", &alice).await;
    store
        .append_messages(&[message(lobby.id, alice.id, "kept", None)])
        .await
        .expect("stored");
    drop(store);

    let store = SqliteStore::open(&path).await.expect("reopens");
    assert_eq!(
        store.user_by_login("ALICE").await.expect("reads"),
        Some(alice)
    );
    assert_eq!(seqs(&store, lobby.id).await, [1]);
    assert_eq!(
        migration_count(&path).await,
        shipped_migrations(),
        "each migration ran once"
    );
}

/// How many migrations Palaver ships for SQLite.
fn shipped_migrations() -> i64 {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../migrations/sqlite");
    let files = std::fs::read_dir(dir).expect("the migrations directory");
    files.filter(|entry| entry.is_ok()).count() as i64
}

async fn migration_count(path: &Path) -> i64 {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let connection = rusqlite::Connection::open(path)?;
        connection.query_row("SELECT count(*) FROM refinery_schema_history", [], |row| {
            row.get(0)
        })
    })
    .await
    .expect("the query finishes")
    .expect("refinery's history table is readable")
}

#[tokio::test]
async fn uniqueness_and_search_fold_case_beyond_ascii() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open_in(&dir).await;
    let alice = user(&store, "alice").await;

    let taken = NewUser {
        email: "ALICE@example.com".into(),
        ..new_user("alice2")
    };
    assert_eq!(
        store.create_user(taken).await,
        Err(StoreError::Conflict(Unique::Email))
    );
    let both = NewUser {
        email: "alice@EXAMPLE.com".into(),
        ..new_user("ALICE")
    };
    assert_eq!(
        store.create_user(both).await,
        Err(StoreError::Conflict(Unique::Username))
    );

    let cafe = room(&store, "Café Ünter", &alice).await;
    let again = new_room("CAFÉ ÜNTER", &alice);
    assert_eq!(
        store.create_room(again).await,
        Err(StoreError::Conflict(Unique::RoomName))
    );
    assert_eq!(
        store.room_by_name("café ünter").await.expect("reads"),
        Some(cafe.clone())
    );

    store
        .append_messages(&[message(cafe.id, alice.id, "ÉTÉ À PARIS", None)])
        .await
        .expect("stored");
    let query = HistoryQuery {
        contains: Some("été à".into()),
        ..HistoryQuery::latest(10)
    };
    let page = store.history(cafe.id, &query).await.expect("history reads");
    assert_eq!(page.messages.len(), 1);
}

#[tokio::test]
async fn history_walks_the_room_seq_index_without_sorting() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open_in(&dir).await;
    let plan = store
        .readers
        .run(|connection| {
            let mut statement =
                connection.prepare(&format!("EXPLAIN QUERY PLAN {}", messages::history_sql()))?;
            let details = statement
                .query_map(rusqlite::params!["r", 10, 0, 0, 0, "x", 3, 0], |row| {
                    row.get::<_, String>(3)
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(details.join("\n"))
        })
        .await
        .expect("the plan is readable");
    assert!(
        plan.contains("SEARCH m USING INDEX") && plan.contains("seq>? AND seq<?"),
        "{plan}"
    );
    assert!(!plan.contains("TEMP B-TREE"), "{plan}");
}

/// Runs `work` once on each of a pool's `threads` connections and returns each answer with the name of the thread
/// (so the connection) that gave it. Every job waits until all of them have started, so no thread can take two: each
/// connection answers exactly once. A pool with fewer threads fails the rendezvous instead of hanging.
async fn on_every_connection<T, F>(pool: &Pool, threads: usize, work: F) -> Vec<(String, T)>
where
    T: Send + 'static,
    F: Fn(&mut rusqlite::Connection) -> rusqlite::Result<T> + Send + Sync + 'static,
{
    let rendezvous = Arc::new((Mutex::new(0_usize), Condvar::new()));
    let work = Arc::new(work);
    let jobs = (0..threads).map(|_| {
        let rendezvous = Arc::clone(&rendezvous);
        let work = Arc::clone(&work);
        pool.run(move |connection| {
            let (started, all_started) = &*rendezvous;
            let mut count = started.lock().expect("the rendezvous lock");
            *count += 1;
            all_started.notify_all();
            let (count, waited) = all_started
                .wait_timeout_while(count, Duration::from_secs(10), |count| *count < threads)
                .expect("the rendezvous lock");
            drop(count);
            if waited.timed_out() {
                return Err(backend(format!(
                    "fewer than {threads} threads took a job at once"
                )));
            }
            let thread = std::thread::current().name().unwrap_or("").to_owned();
            Ok((thread, work(connection)?))
        })
    });
    let mut answers = futures_util::future::try_join_all(jobs)
        .await
        .expect("every connection answers");
    answers.sort_by(|a, b| a.0.cmp(&b.0));
    answers
}

#[tokio::test]
async fn every_connection_is_durable_wal_with_full_sync() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open_in(&dir).await;
    let pragmas = |connection: &mut rusqlite::Connection| {
        let journal: String = connection.query_row("PRAGMA journal_mode", [], |row| row.get(0))?;
        let synchronous: i64 = connection.query_row("PRAGMA synchronous", [], |row| row.get(0))?;
        let busy: i64 = connection.query_row("PRAGMA busy_timeout", [], |row| row.get(0))?;
        let foreign_keys: i64 =
            connection.query_row("PRAGMA foreign_keys", [], |row| row.get(0))?;
        Ok((journal, synchronous, busy > 0, foreign_keys))
    };
    // synchronous=2 is FULL: with NORMAL a committed transaction can vanish on power loss.
    let expected = ("wal".to_owned(), 2, true, 1);
    let writer = on_every_connection(&store.writer, 1, pragmas).await;
    assert_eq!(writer, [("sqlite-writer-0".to_owned(), expected.clone())]);
    let readers = on_every_connection(&store.readers, reader_count(), pragmas).await;
    let every_reader: Vec<(String, _)> = (0..reader_count())
        .map(|index| (format!("sqlite-reader-{index}"), expected.clone()))
        .collect();
    assert_eq!(readers, every_reader, "each reader connection, once");
}

/// (queued, indexed) messages of the search index, read on a reader connection.
async fn search_backlog(store: &SqliteStore) -> (i64, i64) {
    store
        .readers
        .run(|connection| {
            let queued =
                connection
                    .query_row("SELECT count(*) FROM search_pending", [], |row| row.get(0))?;
            let indexed =
                connection.query_row("SELECT count(*) FROM messages_fts", [], |row| row.get(0))?;
            Ok((queued, indexed))
        })
        .await
        .expect("the index tables are readable")
}

#[tokio::test]
async fn new_messages_are_indexed_in_the_background_outside_their_commits() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open_in(&dir).await;
    let owner = user(&store, "owner").await;
    let chat = room(&store, "chat", &owner).await;
    let batch: Vec<NewEntry> = (0..30)
        .map(|n| message(chat.id, owner.id, &format!("note number {n}"), None))
        .collect();
    store.append_messages(&batch).await.expect("stored");
    // The commit only queued them.
    assert_eq!(search_backlog(&store).await, (30, 0));
    // The indexer takes the queue on its next round, without any search asking.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while search_backlog(&store).await != (0, 30) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{:?}",
            search_backlog(&store).await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_message_changed_while_queued_is_indexed_as_it_is_then() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let store = open_in(&dir).await;
    let owner = user(&store, "owner").await;
    let chat = room(&store, "chat", &owner).await;
    store
        .append_messages(&[
            message(chat.id, owner.id, "first draft", None),
            message(chat.id, owner.id, "secret plans", None),
        ])
        .await
        .expect("stored");
    let changes = [
        Change::Edit {
            target_seq: 1,
            content: "final version".into(),
            not_before: None,
        },
        Change::Delete {
            target_seq: 2,
            any_author: false,
        },
    ];
    let entries: Vec<NewEntry> = changes
        .into_iter()
        .map(|change| NewEntry {
            change,
            ..message(chat.id, owner.id, "", None)
        })
        .collect();
    store.append_messages(&entries).await.expect("stored");
    assert_eq!(search_backlog(&store).await.0, 2, "still queued");
    let search = |words: &str| palaver_handlers::model::SearchQuery {
        user_id: owner.id,
        words: words.into(),
        room_id: None,
        limit: 10,
        offset: 0,
    };
    let found = |page: palaver_handlers::model::SearchPage| page.results.len();
    assert_eq!(
        found(store.search(&search("draft")).await.expect("search")),
        0
    );
    assert_eq!(
        found(store.search(&search("secret")).await.expect("search")),
        0
    );
    assert_eq!(
        found(store.search(&search("final")).await.expect("search")),
        1
    );
    assert_eq!(
        search_backlog(&store).await,
        (0, 1),
        "a search empties the queue first"
    );
}
