//! The store conformance suite: one set of cases, written once against `&dyn Store`, run against every engine.
//!
//! `conformance_suite!` instantiates each case for each engine, as `memory::<case>`, `sqlite::<case>` and
//! `postgres::<case>`. Every test gets a store of its own: a fresh `MemoryStore`, a SQLite file in a fresh temporary
//! directory, or a fresh PostgreSQL schema (see `palaver_integration_tests::pg`: skipped without `TEST_DATABASE_URL` or
//! Docker, a failure in CI). Times are whole microseconds because the SQL engines store microseconds.
//!
//! Run one engine with `cargo test -p palaver-integration-tests --test store_conformance memory`, all with
//! `TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test cargo test -p palaver-integration-tests --test store_conformance`.

use std::time::Duration as StdDuration;

use palaver_handlers::model::{
    Appended, AuditEvent, Body, Change, HistoryPage, HistoryQuery, LogEntry, Member, MessageBody,
    NewEntry, NewRoom, NewUser, ReactionCount, ReadPoint, ReadState, Refusal, Role, Room,
    SearchPage, SearchQuery, User,
};
use palaver_handlers::{Store, StoreError, Unique};
use palaver_integration_tests::pg::PgDatabase;
use tempfile::TempDir;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

/// A store under test with whatever must outlive it. Fields drop in order: the store before its file or schema.
struct Engine {
    store: Box<dyn Store>,
    _dir: Option<TempDir>,
    _database: Option<PgDatabase>,
}

impl Engine {
    fn store(&self) -> &dyn Store {
        self.store.as_ref()
    }
}

/// How each engine's store is made; `None` means the engine is unavailable here and the test is skipped.
mod engines {
    use super::*;

    pub async fn memory() -> Option<Engine> {
        Some(Engine {
            store: Box::new(palaver_handlers::testing::MemoryStore::new()),
            _dir: None,
            _database: None,
        })
    }

    pub async fn sqlite() -> Option<Engine> {
        let dir = tempfile::tempdir().expect("a temporary directory for the SQLite file");
        let store = palaver_runtime::store::sqlite::SqliteStore::open(&dir.path().join("p.db"))
            .await
            .unwrap_or_else(|error| panic!("SqliteStore::open failed: {error}"));
        Some(Engine {
            store: Box::new(store),
            _dir: Some(dir),
            _database: None,
        })
    }

    pub async fn postgres() -> Option<Engine> {
        let database = palaver_integration_tests::pg::fresh_database_url().await?;
        let store = palaver_runtime::store::postgres::PostgresStore::connect(
            database.url(),
            4,
            StdDuration::from_secs(5),
        )
        .await
        .unwrap_or_else(|error| panic!("PostgresStore::connect to {database:?} failed: {error}"));
        Some(Engine {
            store: Box::new(store),
            _dir: None,
            _database: Some(database),
        })
    }
}

/// One module per engine, one `#[tokio::test]` per case.
macro_rules! engine_tests {
    ($engine:ident; $($case:ident),+ $(,)?) => {
        mod $engine {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let Some(engine) = crate::engines::$engine().await else { return };
                    crate::cases::$case(engine.store()).await;
                }
            )+
        }
    };
}

/// Every case, for every engine.
macro_rules! conformance_suite {
    ($($case:ident),+ $(,)?) => {
        engine_tests!(memory; $($case),+);
        engine_tests!(sqlite; $($case),+);
        engine_tests!(postgres; $($case),+);
    };
}

conformance_suite!(
    ping_answers,
    create_user_then_find_by_id,
    create_user_then_find_by_login,
    create_user_with_taken_username_conflicts_case_insensitively,
    create_user_with_taken_email_conflicts_case_insensitively,
    revoke_token_then_is_revoked,
    purge_revoked_tokens_removes_only_expired,
    use_ticket_is_true_once_per_ticket,
    purge_used_tickets_removes_only_expired,
    create_room_makes_owner_a_member,
    create_room_with_taken_name_conflicts_case_insensitively,
    create_room_with_unknown_owner_fails_and_stores_nothing,
    room_by_name_is_case_insensitive,
    list_rooms_oldest_first,
    count_rooms_owned_counts_per_owner,
    last_seqs_answer_every_existing_room_at_once,
    delete_room_removes_messages_and_memberships,
    rooms_of_member_lists_exactly_the_users_rooms,
    add_member_then_remove,
    members_sorted_by_username,
    append_batch_across_two_rooms_gives_gapless_seqs_in_batch_order,
    append_empty_batch_stores_nothing,
    append_duplicate_within_batch_returns_original,
    append_duplicate_across_batches_returns_original,
    append_duplicate_key_in_another_room_returns_original,
    append_same_key_from_another_user_is_not_duplicate,
    append_without_key_is_never_duplicate,
    append_failing_batch_stores_nothing_and_uses_no_seq,
    history_newest_first_with_limit,
    history_paging_with_before_seq_visits_each_message_once,
    history_after_seq,
    messages_by_id_finds_only_what_was_stored,
    history_sender_filter_is_case_insensitive,
    history_contains_is_case_insensitive_and_literal,
    history_contains_folds_non_ascii_case,
    history_since_until_are_inclusive,
    history_filters_combined,
    record_audit_then_audit_since_oldest_first_with_limit,
    log_edit_by_the_author_is_an_entry_and_history_shows_the_edit,
    log_refusals_store_nothing_and_take_no_seq,
    log_edit_window_is_checked_against_the_message_time,
    log_delete_erases_the_message_its_edits_and_its_reactions,
    log_delete_by_another_needs_any_author,
    log_reactions_are_once_per_user_and_emoji_and_counted_with_me,
    log_reactions_are_bounded_per_message,
    log_replies_need_a_live_message_and_history_counts_them_and_filters_threads,
    log_changes_within_one_batch_see_each_other,
    log_after_returns_every_kind_in_seq_order_within_the_limit,
    log_history_filters_leave_out_tombstones,
    log_messages_by_id_finds_changes_too,
    read_point_moves_forward_only_within_the_room,
    read_state_counts_messages_by_others_after_the_read_point,
    a_new_membership_starts_read_through_the_rooms_end,
    search_finds_every_word_in_the_users_rooms_best_first,
    search_sees_edits_and_forgets_deletions,
    search_pages_with_next,
    open_direct_is_one_room_per_pair_with_both_as_members,
    blocks_are_one_way_and_can_be_undone,
    roles_start_with_one_owner_and_change_only_as_allowed,
    ownership_moves_with_owner_id_in_one_step,
);

// ---------------------------------------------------------------------------------------------------------------------
// Fixtures

/// The suite's epoch: every time is this plus a whole number of microseconds.
const T0: OffsetDateTime = datetime!(2026-11-25 15:30:45 UTC);

/// `T0` plus `micros` microseconds.
fn at(micros: i64) -> OffsetDateTime {
    T0 + Duration::microseconds(micros)
}

/// `T0` plus `seconds` seconds.
fn secs(seconds: i64) -> OffsetDateTime {
    T0 + Duration::seconds(seconds)
}

fn new_user(username: &str, email: &str, created_at: OffsetDateTime) -> NewUser {
    NewUser {
        id: Uuid::now_v7(),
        username: username.into(),
        email: email.into(),
        password_hash: format!("$2b$12$hash.of.{username}"),
        created_at,
    }
}

/// Stores `username` with email `<username>@example.com`.
async fn user(store: &dyn Store, username: &str) -> User {
    let new = new_user(username, &format!("{username}@example.com"), T0);
    store
        .create_user(new)
        .await
        .unwrap_or_else(|error| panic!("create_user({username}) failed: {error}"))
}

fn new_room(name: &str, owner: &User, created_at: OffsetDateTime) -> NewRoom {
    NewRoom {
        id: Uuid::now_v7(),
        name: name.into(),
        private: false,
        password_hash: None,
        owner_id: owner.id,
        created_at,
    }
}

/// Stores a public room named `name` owned by `owner`, created at `T0`.
async fn room(store: &dyn Store, name: &str, owner: &User) -> Room {
    store
        .create_room(new_room(name, owner, T0))
        .await
        .unwrap_or_else(|error| panic!("create_room({name}) failed: {error}"))
}

fn message(
    room: &Room,
    sender: &User,
    content: &str,
    key: Option<&str>,
    created_at: OffsetDateTime,
) -> NewEntry {
    NewEntry {
        id: Uuid::now_v7(),
        room_id: room.id,
        user_id: sender.id,
        change: Change::Post {
            content: content.into(),
            reply_to: None,
        },
        client_msg_id: key.map(str::to_owned),
        created_at,
    }
}

/// A change by `user` to `room`'s log at `created_at`.
fn change(room: &Room, user: &User, change: Change, created_at: OffsetDateTime) -> NewEntry {
    NewEntry {
        id: Uuid::now_v7(),
        room_id: room.id,
        user_id: user.id,
        change,
        client_msg_id: None,
        created_at,
    }
}

fn edit(target_seq: i64, content: &str) -> Change {
    Change::Edit {
        target_seq,
        content: content.into(),
        not_before: None,
    }
}

fn delete(target_seq: i64) -> Change {
    Change::Delete {
        target_seq,
        any_author: false,
    }
}

fn react(target_seq: i64, emoji: &str) -> Change {
    Change::React {
        target_seq,
        emoji: emoji.into(),
        max_emojis: 20,
    }
}

fn unreact(target_seq: i64, emoji: &str) -> Change {
    Change::Unreact {
        target_seq,
        emoji: emoji.into(),
    }
}

fn reply(content: &str, to: i64) -> Change {
    Change::Post {
        content: content.into(),
        reply_to: Some(to),
    }
}

/// The seq each outcome took, `None` for what was not stored.
fn taken(outcomes: &[Appended]) -> Vec<Option<i64>> {
    outcomes
        .iter()
        .map(|outcome| match outcome {
            Appended::Stored(entry) => Some(entry.seq),
            _ => None,
        })
        .collect()
}

/// The whole log of `room`, oldest first.
async fn log_of(store: &dyn Store, room: &Room) -> Vec<LogEntry> {
    store
        .log_after(room.id, 0, 1_000)
        .await
        .unwrap_or_else(|error| panic!("log_after failed: {error}"))
}

/// Searches `user`'s rooms.
async fn search(store: &dyn Store, user: &User, words: &str, room: Option<&Room>) -> SearchPage {
    let query = SearchQuery {
        user_id: user.id,
        words: words.into(),
        room_id: room.map(|room| room.id),
        limit: 20,
        offset: 0,
    };
    store
        .search(&query)
        .await
        .unwrap_or_else(|error| panic!("search({query:?}) failed: {error}"))
}

/// (room, seq) of each result, best first.
fn found(page: &SearchPage) -> Vec<(String, i64)> {
    page.results
        .iter()
        .map(|hit| (hit.room.clone(), hit.seq))
        .collect()
}

/// A room of alice's with her message "hello" (seq 1) and bob as a member.
async fn one_message(store: &dyn Store) -> (Room, User, User) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let chat = room(store, "chat", &alice).await;
    store
        .add_member(chat.id, bob.id, secs(1))
        .await
        .expect("add_member");
    append(store, &[message(&chat, &alice, "hello", None, secs(1))]).await;
    (chat, alice, bob)
}

/// What the store must answer for the post `new`, stored with `seq` by `sender`.
fn stored_as(new: &NewEntry, seq: i64, sender: &User) -> LogEntry {
    let Change::Post { content, reply_to } = &new.change else {
        panic!("stored_as is for posts, not {:?}", new.change);
    };
    LogEntry {
        id: new.id,
        room_id: new.room_id,
        seq,
        user_id: new.user_id,
        username: sender.username.clone(),
        client_msg_id: new.client_msg_id.clone(),
        created_at: new.created_at,
        body: Body::Message(MessageBody::posted(content.clone(), *reply_to)),
    }
}

async fn append(store: &dyn Store, batch: &[NewEntry]) -> Vec<Appended> {
    store
        .append_messages(batch)
        .await
        .unwrap_or_else(|error| panic!("append_messages failed: {error}"))
}

/// A history page's messages without their reactions and reply counts, for the cases about which messages a query
/// finds.
#[derive(Debug, PartialEq)]
struct Page {
    messages: Vec<LogEntry>,
    next_before: Option<i64>,
    has_more: bool,
}

async fn history(store: &dyn Store, room: &Room, query: HistoryQuery) -> Page {
    let page = history_page(store, room, query).await;
    Page {
        messages: page.messages.into_iter().map(|m| m.entry).collect(),
        next_before: page.next_before,
        has_more: page.has_more,
    }
}

async fn history_page(store: &dyn Store, room: &Room, query: HistoryQuery) -> HistoryPage {
    store
        .history(room.id, &query)
        .await
        .unwrap_or_else(|error| panic!("history({query:?}) failed: {error}"))
}

fn seqs(page: &Page) -> Vec<i64> {
    page.messages.iter().map(|message| message.seq).collect()
}

async fn last_seq(store: &dyn Store, room: &Room) -> i64 {
    store
        .room_by_name(&room.name)
        .await
        .expect("room_by_name")
        .expect("the room exists")
        .last_seq
}

async fn members_of(store: &dyn Store, room: &Room) -> Vec<Member> {
    store.members(room.id).await.expect("members")
}

fn member(user: &User) -> Member {
    Member {
        user_id: user.id,
        username: user.username.clone(),
        last_read_seq: 0,
        role: Role::Member,
    }
}

/// The room's creator as a member: its owner.
fn owning(user: &User) -> Member {
    Member {
        role: Role::Owner,
        ..member(user)
    }
}

// ---------------------------------------------------------------------------------------------------------------------
// History fixture: ten messages in one room, alternately by `alice` and `Bob_B`.

const HISTORY: [&str; 10] = [
    "Hello world",
    "hi alice",
    "HELLO again",
    "nothing here",
    "say hello",
    "Hello from Bob",
    "bye",
    "50% off",
    r"a_b c:\dir",
    "last one",
];

/// When history message `seq` was sent: `seq` seconds and 250 001 µs after `T0`.
fn sent_at(seq: i64) -> OffsetDateTime {
    secs(seq) + Duration::microseconds(250_001)
}

/// A room holding [`HISTORY`]: seq `n` is `HISTORY[n - 1]`, sent at `sent_at(n)` by alice (odd) or Bob_B (even).
/// Also a second room with one message, which must never show up in the first room's history.
async fn seeded_history(store: &dyn Store) -> (Room, Vec<LogEntry>) {
    let alice = user(store, "alice").await;
    let bob = user(store, "Bob_B").await;
    let chat = room(store, "History", &alice).await;
    let elsewhere = room(store, "Elsewhere", &bob).await;
    let mut expected = Vec::new();
    let mut batch = Vec::new();
    for (index, content) in HISTORY.iter().enumerate() {
        let seq = index as i64 + 1;
        let sender = if seq % 2 == 1 { &alice } else { &bob };
        let new = message(
            &chat,
            sender,
            content,
            Some(&format!("h-{seq}")),
            sent_at(seq),
        );
        expected.push(stored_as(&new, seq, sender));
        batch.push(new);
        if seq == 5 {
            batch.push(message(
                &elsewhere,
                &alice,
                "hello from elsewhere",
                None,
                sent_at(5),
            ));
        }
    }
    append(store, &batch).await;
    (chat, expected)
}

/// The expected messages with these seqs, in the order given.
fn expect_seqs(all: &[LogEntry], seqs: &[i64]) -> Vec<LogEntry> {
    seqs.iter()
        .map(|seq| all[*seq as usize - 1].clone())
        .collect()
}

// ---------------------------------------------------------------------------------------------------------------------
// The cases

mod cases {
    use super::*;

    pub async fn ping_answers(store: &dyn Store) {
        store.ping().await.expect("ping");
    }

    // --- users ---

    pub async fn create_user_then_find_by_id(store: &dyn Store) {
        let new = new_user("Alice_1", "Alice.One@Example.com", at(123_456));
        let created = store.create_user(new.clone()).await.expect("create_user");
        assert_eq!(created.id, new.id);
        assert_eq!(
            created.username, "Alice_1",
            "the username is kept as written"
        );
        assert_eq!(
            created.email, "Alice.One@Example.com",
            "the email is kept as written"
        );
        assert_eq!(created.password_hash, new.password_hash);
        assert_eq!(created.created_at, at(123_456));

        assert_eq!(
            store.user_by_id(new.id).await.expect("user_by_id"),
            Some(created)
        );
        assert_eq!(
            store.user_by_id(Uuid::now_v7()).await.expect("user_by_id"),
            None
        );
    }

    pub async fn create_user_then_find_by_login(store: &dyn Store) {
        let alice = store
            .create_user(new_user("Alice_Two", "Alice.Two@Example.com", T0))
            .await
            .expect("create alice");
        let bob = store
            .create_user(new_user("bob", "bob@example.org", T0))
            .await
            .expect("create bob");
        for login in [
            "Alice_Two",
            "alice_two",
            "ALICE_TWO",
            "Alice.Two@Example.com",
            "alice.two@example.com",
            "ALICE.TWO@EXAMPLE.COM",
        ] {
            assert_eq!(
                store.user_by_login(login).await.expect("user_by_login"),
                Some(alice.clone()),
                "login {login:?}"
            );
        }
        for login in ["bob", "BOB", "Bob@Example.org"] {
            assert_eq!(
                store.user_by_login(login).await.expect("user_by_login"),
                Some(bob.clone()),
                "login {login:?}"
            );
        }
        // Neither prefixes nor LIKE patterns match.
        for login in [
            "alice",
            "Alice_Tw",
            "aliceXtwo",
            "Alice%",
            "%",
            "_ob",
            "alice.two@example",
            "carol",
            "",
        ] {
            assert_eq!(
                store.user_by_login(login).await.expect("user_by_login"),
                None,
                "login {login:?}"
            );
        }
    }

    pub async fn create_user_with_taken_username_conflicts_case_insensitively(store: &dyn Store) {
        let carol = user(store, "Carol").await;
        let clash = new_user("cAROL", "other@example.com", T0);
        assert_eq!(
            store.create_user(clash.clone()).await,
            Err(StoreError::Conflict(Unique::Username))
        );

        assert_eq!(
            store.user_by_id(clash.id).await.expect("user_by_id"),
            None,
            "nothing stored"
        );
        assert_eq!(
            store
                .user_by_login("other@example.com")
                .await
                .expect("user_by_login"),
            None,
            "nothing stored"
        );
        assert_eq!(
            store.user_by_login("carol").await.expect("user_by_login"),
            Some(carol)
        );
        // The store still works after the refusal (no transaction left aborted).
        let dave = user(store, "dave").await;
        assert_eq!(
            store.user_by_id(dave.id).await.expect("user_by_id"),
            Some(dave)
        );
    }

    pub async fn create_user_with_taken_email_conflicts_case_insensitively(store: &dyn Store) {
        let dave = store
            .create_user(new_user("dave", "Dave@Example.com", T0))
            .await
            .expect("create dave");
        let clash = new_user("erin", "dAVE@example.COM", T0);
        assert_eq!(
            store.create_user(clash.clone()).await,
            Err(StoreError::Conflict(Unique::Email))
        );

        assert_eq!(
            store.user_by_id(clash.id).await.expect("user_by_id"),
            None,
            "nothing stored"
        );
        assert_eq!(
            store.user_by_login("erin").await.expect("user_by_login"),
            None,
            "nothing stored"
        );
        assert_eq!(
            store
                .user_by_login("dave@example.com")
                .await
                .expect("user_by_login"),
            Some(dave)
        );
        let erin = store
            .create_user(new_user("erin", "erin@example.com", T0))
            .await
            .expect("erin with her own email");
        assert_eq!(
            store.user_by_login("ERIN").await.expect("user_by_login"),
            Some(erin)
        );
    }

    // --- token revocation ---

    pub async fn revoke_token_then_is_revoked(store: &dyn Store) {
        let alice = user(store, "alice").await;
        assert!(
            !store
                .is_token_revoked("jti-1")
                .await
                .expect("is_token_revoked")
        );

        store
            .revoke_token("jti-1", alice.id, secs(3600))
            .await
            .expect("revoke_token");
        assert!(
            store
                .is_token_revoked("jti-1")
                .await
                .expect("is_token_revoked")
        );
        assert!(
            !store
                .is_token_revoked("jti-2")
                .await
                .expect("is_token_revoked"),
            "only that token"
        );
        assert!(
            !store
                .is_token_revoked("JTI-1")
                .await
                .expect("is_token_revoked"),
            "token ids are exact"
        );

        store
            .revoke_token("jti-1", alice.id, secs(3600))
            .await
            .expect("revoking twice is harmless");
        assert!(
            store
                .is_token_revoked("jti-1")
                .await
                .expect("is_token_revoked")
        );
    }

    pub async fn use_ticket_is_true_once_per_ticket(store: &dyn Store) {
        assert!(store.use_ticket("ticket-1", secs(30)).await.expect("use"));
        assert!(!store.use_ticket("ticket-1", secs(30)).await.expect("again"));
        assert!(
            !store.use_ticket("ticket-1", secs(60)).await.expect("again"),
            "another expiry does not make it new"
        );
        assert!(
            store
                .use_ticket("ticket-2", secs(30))
                .await
                .expect("another")
        );
    }

    pub async fn purge_used_tickets_removes_only_expired(store: &dyn Store) {
        for (ticket, expires_at) in [
            ("expired-long-ago", secs(-3600)),
            ("expired-just-now", at(-1)),
            ("expires-soon", at(1)),
            ("expires-later", secs(3600)),
        ] {
            assert!(store.use_ticket(ticket, expires_at).await.expect("use"));
        }
        assert_eq!(store.purge_used_tickets(T0).await.expect("purge"), 2);
        assert_eq!(store.purge_used_tickets(T0).await.expect("again"), 0);
        for (ticket, forgotten) in [
            ("expired-long-ago", true),
            ("expired-just-now", true),
            ("expires-soon", false),
            ("expires-later", false),
        ] {
            assert_eq!(
                store.use_ticket(ticket, secs(3600)).await.expect("use"),
                forgotten,
                "{ticket}"
            );
        }
    }

    pub async fn purge_revoked_tokens_removes_only_expired(store: &dyn Store) {
        let alice = user(store, "alice").await;
        let tokens = [
            ("expired-long-ago", secs(-3600)),
            ("expired-just-now", at(-1)),
            ("expires-soon", at(1)),
            ("expires-later", secs(3600)),
        ];
        for (token, expires_at) in tokens {
            store
                .revoke_token(token, alice.id, expires_at)
                .await
                .expect("revoke_token");
        }

        assert_eq!(store.purge_revoked_tokens(T0).await.expect("purge"), 2);
        for (token, still_revoked) in [
            ("expired-long-ago", false),
            ("expired-just-now", false),
            ("expires-soon", true),
            ("expires-later", true),
        ] {
            assert_eq!(
                store
                    .is_token_revoked(token)
                    .await
                    .expect("is_token_revoked"),
                still_revoked,
                "{token}"
            );
        }
        assert_eq!(
            store.purge_revoked_tokens(T0).await.expect("purge again"),
            0
        );

        assert_eq!(
            store
                .purge_revoked_tokens(secs(3600) + Duration::microseconds(1))
                .await
                .expect("purge"),
            2
        );
        assert!(
            !store
                .is_token_revoked("expires-later")
                .await
                .expect("is_token_revoked")
        );
    }

    // --- rooms ---

    pub async fn create_room_makes_owner_a_member(store: &dyn Store) {
        let owner = user(store, "owner").await;
        let other = user(store, "other").await;
        let new = new_room("General Chat", &owner, at(5_000_001));
        let created = store.create_room(new.clone()).await.expect("create_room");
        assert_eq!(
            created,
            Room {
                id: new.id,
                name: "General Chat".into(),
                private: false,
                password_hash: None,
                owner_id: owner.id,
                created_at: at(5_000_001),
                last_seq: 0,
                direct: false,
            }
        );
        assert!(
            store
                .is_member(created.id, owner.id)
                .await
                .expect("is_member")
        );
        assert!(
            !store
                .is_member(created.id, other.id)
                .await
                .expect("is_member")
        );
        assert_eq!(members_of(store, &created).await, vec![owning(&owner)]);

        let secret = NewRoom {
            private: true,
            password_hash: Some("$2b$12$room.password.hash".into()),
            ..new_room("Secret Base", &other, at(6_000_002))
        };
        let created_secret = store
            .create_room(secret.clone())
            .await
            .expect("create private room");
        assert!(created_secret.private);
        assert_eq!(
            created_secret.password_hash.as_deref(),
            Some("$2b$12$room.password.hash")
        );
        assert_eq!(
            store
                .room_by_name("Secret Base")
                .await
                .expect("room_by_name"),
            Some(created_secret.clone())
        );
        assert_eq!(
            members_of(store, &created_secret).await,
            vec![owning(&other)]
        );
    }

    pub async fn create_room_with_taken_name_conflicts_case_insensitively(store: &dyn Store) {
        let alice = user(store, "alice").await;
        let bob = user(store, "bob").await;
        let lobby = room(store, "Lobby", &alice).await;
        let clash = new_room("LOBBY", &bob, secs(1));
        assert_eq!(
            store.create_room(clash.clone()).await,
            Err(StoreError::Conflict(Unique::RoomName))
        );

        assert_eq!(
            store.list_rooms().await.expect("list_rooms"),
            vec![lobby.clone()],
            "nothing stored"
        );
        assert_eq!(
            store.room_by_name("lobby").await.expect("room_by_name"),
            Some(lobby)
        );
        assert_eq!(
            store
                .count_rooms_owned(bob.id)
                .await
                .expect("count_rooms_owned"),
            0
        );
        assert!(
            !store.is_member(clash.id, bob.id).await.expect("is_member"),
            "no membership stored"
        );
        assert_eq!(store.members(clash.id).await.expect("members"), vec![]);
        // The store still works after the refusal.
        let other = room(store, "Lobby Two", &bob).await;
        assert_eq!(
            store.room_by_name("lobby two").await.expect("room_by_name"),
            Some(other)
        );

        // Room names may hold any letters, and their case is folded beyond ASCII.
        let cafe = room(store, "Café Crème", &alice).await;
        assert_eq!(
            store
                .create_room(new_room("CAFÉ CRÈME", &bob, secs(2)))
                .await,
            Err(StoreError::Conflict(Unique::RoomName))
        );
        assert_eq!(
            store
                .room_by_name("café crème")
                .await
                .expect("room_by_name"),
            Some(cafe)
        );
    }

    pub async fn create_room_with_unknown_owner_fails_and_stores_nothing(store: &dyn Store) {
        let alice = user(store, "alice").await;
        let ghost = Uuid::now_v7();
        let orphan = NewRoom {
            id: Uuid::now_v7(),
            name: "Orphan".into(),
            private: false,
            password_hash: None,
            owner_id: ghost,
            created_at: T0,
        };
        let result = store.create_room(orphan.clone()).await;
        assert!(
            matches!(result, Err(StoreError::Backend(_))),
            "expected a Backend error, got {result:?}"
        );

        assert_eq!(
            store.room_by_name("Orphan").await.expect("room_by_name"),
            None,
            "the transaction rolled back"
        );
        assert_eq!(store.list_rooms().await.expect("list_rooms"), vec![]);
        assert_eq!(
            store
                .count_rooms_owned(ghost)
                .await
                .expect("count_rooms_owned"),
            0
        );
        assert_eq!(store.members(orphan.id).await.expect("members"), vec![]);
        // The name is free: nothing half-written holds it.
        let real = room(store, "Orphan", &alice).await;
        assert_eq!(store.list_rooms().await.expect("list_rooms"), vec![real]);
    }

    pub async fn room_by_name_is_case_insensitive(store: &dyn Store) {
        let alice = user(store, "alice").await;
        let dev = room(store, "Dev Talk", &alice).await;
        let _other = room(store, "Dev Talk 2", &alice).await;
        for name in ["Dev Talk", "dev talk", "DEV TALK", "dEV tALK"] {
            assert_eq!(
                store.room_by_name(name).await.expect("room_by_name"),
                Some(dev.clone()),
                "name {name:?}"
            );
        }
        // Neither prefixes nor LIKE patterns match.
        for name in ["Dev", "Dev_Talk", "Dev%", "%", "Dev Talk ", "Nothing"] {
            assert_eq!(
                store.room_by_name(name).await.expect("room_by_name"),
                None,
                "name {name:?}"
            );
        }
    }

    pub async fn list_rooms_oldest_first(store: &dyn Store) {
        assert_eq!(store.list_rooms().await.expect("list_rooms"), vec![]);
        let alice = user(store, "alice").await;
        let bob = user(store, "bob").await;
        // Ids run against the creation order, so ordering by id would be caught; names are out of order too.
        let specs = [
            ("Zeta", &alice, u128::MAX - 1),
            ("alpha", &bob, u128::MAX - 2),
            ("Mid", &alice, 3),
        ];
        let mut expected = Vec::new();
        for (index, (name, owner, id)) in specs.into_iter().enumerate() {
            let new = NewRoom {
                id: Uuid::from_u128(id),
                ..new_room(name, owner, secs(index as i64 * 60))
            };
            expected.push(store.create_room(new).await.expect("create_room"));
        }
        assert_eq!(store.list_rooms().await.expect("list_rooms"), expected);
    }

    pub async fn count_rooms_owned_counts_per_owner(store: &dyn Store) {
        let alice = user(store, "alice").await;
        let bob = user(store, "bob").await;
        let carol = user(store, "carol").await;
        let first = room(store, "Alice One", &alice).await;
        room(store, "Alice Two", &alice).await;
        room(store, "Bob One", &bob).await;
        // Membership is not ownership.
        store
            .add_member(first.id, carol.id, T0)
            .await
            .expect("add_member");

        for (owner, count) in [(&alice, 2), (&bob, 1), (&carol, 0)] {
            assert_eq!(
                store.count_rooms_owned(owner.id).await.expect("count"),
                count,
                "{}",
                owner.username
            );
        }
        assert_eq!(
            store
                .count_rooms_owned(Uuid::now_v7())
                .await
                .expect("count"),
            0
        );
        assert!(store.delete_room(first.id).await.expect("delete_room"));
        assert_eq!(store.count_rooms_owned(alice.id).await.expect("count"), 1);
    }

    pub async fn last_seqs_answer_every_existing_room_at_once(store: &dyn Store) {
        let owner = user(store, "owner").await;
        let (quiet, busy) = (
            room(store, "Quiet", &owner).await,
            room(store, "Busy", &owner).await,
        );
        let batch: Vec<NewEntry> = (1..=3)
            .map(|n| message(&busy, &owner, &format!("m{n}"), None, secs(n)))
            .collect();
        append(store, &batch).await;
        let gone = Uuid::now_v7();
        let mut seqs = store
            .last_seqs(&[busy.id, gone, quiet.id])
            .await
            .expect("last_seqs");
        seqs.sort_by_key(|(id, _)| *id);
        let mut expected = vec![(busy.id, 3), (quiet.id, 0)];
        expected.sort_by_key(|(id, _)| *id);
        assert_eq!(seqs, expected, "a room that does not exist is left out");
        assert_eq!(store.last_seqs(&[]).await.expect("last_seqs"), vec![]);
    }

    pub async fn rooms_of_member_lists_exactly_the_users_rooms(store: &dyn Store) {
        let owner = user(store, "owner").await;
        let guest = user(store, "guest").await;
        let loner = user(store, "loner").await;
        let first = room(store, "First", &owner).await;
        let second = room(store, "Second", &owner).await;
        let left = room(store, "Left", &owner).await;
        for joined in [&first, &left] {
            assert!(
                store
                    .add_member(joined.id, guest.id, secs(1))
                    .await
                    .expect("add_member")
            );
        }
        assert!(
            store
                .remove_member(left.id, guest.id)
                .await
                .expect("remove_member")
        );
        let sorted = |mut ids: Vec<uuid::Uuid>| {
            ids.sort();
            ids
        };
        assert_eq!(
            sorted(
                store
                    .rooms_of_member(guest.id)
                    .await
                    .expect("rooms_of_member")
            ),
            vec![first.id]
        );
        assert_eq!(
            sorted(
                store
                    .rooms_of_member(owner.id)
                    .await
                    .expect("rooms_of_member")
            ),
            sorted(vec![first.id, second.id, left.id]),
            "the owner is a member of every room created"
        );
        assert!(
            store
                .rooms_of_member(loner.id)
                .await
                .expect("rooms_of_member")
                .is_empty()
        );
    }

    pub async fn delete_room_removes_messages_and_memberships(store: &dyn Store) {
        let owner = user(store, "owner").await;
        let guest = user(store, "guest").await;
        let doomed = room(store, "Doomed", &owner).await;
        let survivor = room(store, "Survivor", &owner).await;
        assert!(
            store
                .add_member(doomed.id, guest.id, secs(1))
                .await
                .expect("add_member")
        );
        assert!(
            store
                .add_member(survivor.id, guest.id, secs(1))
                .await
                .expect("add_member")
        );
        append(
            store,
            &[
                message(&doomed, &owner, "d1", Some("key-d1"), secs(2)),
                message(&survivor, &guest, "s1", None, secs(2)),
                message(&doomed, &guest, "d2", None, secs(3)),
                message(&survivor, &owner, "s2", None, secs(3)),
                message(&doomed, &owner, "d3", None, secs(4)),
            ],
        )
        .await;

        assert!(store.delete_room(doomed.id).await.expect("delete_room"));

        assert_eq!(
            store.room_by_name("Doomed").await.expect("room_by_name"),
            None
        );
        let survivor_now = Room {
            last_seq: 2,
            ..survivor.clone()
        };
        assert_eq!(
            store.list_rooms().await.expect("list_rooms"),
            vec![survivor_now]
        );
        assert_eq!(store.count_rooms_owned(owner.id).await.expect("count"), 1);
        assert!(
            !store
                .is_member(doomed.id, owner.id)
                .await
                .expect("is_member")
        );
        assert!(
            !store
                .is_member(doomed.id, guest.id)
                .await
                .expect("is_member")
        );
        assert_eq!(store.members(doomed.id).await.expect("members"), vec![]);
        let gone = history(store, &doomed, HistoryQuery::latest(50)).await;
        assert_eq!(
            (gone.messages.len(), gone.next_before, gone.has_more),
            (0, None, false)
        );
        // The other room is untouched.
        assert_eq!(
            seqs(&history(store, &survivor, HistoryQuery::latest(50)).await),
            vec![2, 1]
        );
        assert_eq!(
            members_of(store, &survivor).await,
            vec![member(&guest), owning(&owner)]
        );

        assert!(
            !store
                .delete_room(doomed.id)
                .await
                .expect("delete_room again"),
            "false the second time"
        );
        assert!(
            !store
                .delete_room(Uuid::now_v7())
                .await
                .expect("delete_room unknown")
        );

        // The name is free again, the new room's history starts at 1, and the deleted messages' keys are free.
        let reborn = room(store, "Doomed", &owner).await;
        assert_eq!(reborn.last_seq, 0);
        let new = message(&reborn, &owner, "fresh", Some("key-d1"), secs(5));
        assert_eq!(
            append(store, std::slice::from_ref(&new)).await,
            vec![Appended::Stored(stored_as(&new, 1, &owner))]
        );
        assert_eq!(
            seqs(&history(store, &reborn, HistoryQuery::latest(50)).await),
            vec![1]
        );
    }

    // --- membership ---

    pub async fn add_member_then_remove(store: &dyn Store) {
        let owner = user(store, "owner").await;
        let guest = user(store, "guest").await;
        let chat = room(store, "Chat", &owner).await;
        assert!(!store.is_member(chat.id, guest.id).await.expect("is_member"));

        assert!(
            store
                .add_member(chat.id, guest.id, secs(1))
                .await
                .expect("add_member"),
            "true when new"
        );
        assert!(
            !store
                .add_member(chat.id, guest.id, secs(2))
                .await
                .expect("add_member"),
            "false when already"
        );
        assert!(
            !store
                .add_member(chat.id, owner.id, secs(2))
                .await
                .expect("add_member"),
            "the owner already is"
        );
        assert!(store.is_member(chat.id, guest.id).await.expect("is_member"));
        assert_eq!(
            members_of(store, &chat).await,
            vec![member(&guest), owning(&owner)]
        );

        assert!(
            store
                .remove_member(chat.id, guest.id)
                .await
                .expect("remove_member"),
            "true when there was one"
        );
        assert!(
            !store
                .remove_member(chat.id, guest.id)
                .await
                .expect("remove_member"),
            "false when none"
        );
        assert!(!store.is_member(chat.id, guest.id).await.expect("is_member"));
        assert!(
            store.is_member(chat.id, owner.id).await.expect("is_member"),
            "only that membership ended"
        );
        assert_eq!(members_of(store, &chat).await, vec![owning(&owner)]);

        assert!(
            store
                .add_member(chat.id, guest.id, secs(3))
                .await
                .expect("add_member"),
            "rejoining works"
        );
        assert!(
            store
                .remove_member(chat.id, owner.id)
                .await
                .expect("remove_member"),
            "the owner may leave"
        );
        assert_eq!(members_of(store, &chat).await, vec![member(&guest)]);
        assert!(
            !store
                .remove_member(Uuid::now_v7(), guest.id)
                .await
                .expect("remove_member unknown room")
        );
    }

    pub async fn members_sorted_by_username(store: &dyn Store) {
        let mallory = user(store, "mallory").await;
        let chat = room(store, "Chat", &mallory).await;
        let mut joined = Vec::new();
        for name in ["Carol", "zed", "alice", "Bob", "dave_9"] {
            let user = user(store, name).await;
            assert!(
                store
                    .add_member(chat.id, user.id, secs(1))
                    .await
                    .expect("add_member")
            );
            joined.push(user);
        }
        let outsider = user(store, "aaron").await;
        let other = room(store, "Other", &outsider).await;
        store
            .add_member(other.id, joined[0].id, secs(1))
            .await
            .expect("add_member");

        let names: Vec<String> = members_of(store, &chat)
            .await
            .into_iter()
            .map(|m| m.username)
            .collect();
        assert_eq!(
            names,
            ["alice", "Bob", "Carol", "dave_9", "mallory", "zed"],
            "sorted by username, ignoring case"
        );
        let by_id: Vec<Member> = members_of(store, &chat).await;
        let alice = joined
            .iter()
            .find(|u| u.username == "alice")
            .expect("alice joined");
        assert_eq!(by_id[0], member(alice), "each member carries its user id");
        assert_eq!(
            members_of(store, &other).await,
            vec![owning(&outsider), member(&joined[0])]
        );
    }

    // --- messages ---

    pub async fn append_batch_across_two_rooms_gives_gapless_seqs_in_batch_order(
        store: &dyn Store,
    ) {
        let alice = user(store, "alice").await;
        let bob = user(store, "bob").await;
        let one = room(store, "Room One", &alice).await;
        let two = room(store, "Room Two", &bob).await;
        let batch = [
            message(&one, &alice, "one-1", Some("a-1"), at(1_000_001)),
            message(&two, &bob, "two-1", Some("b-1"), at(1_000_002)),
            message(&one, &bob, "one-2", None, at(1_000_003)),
            message(&one, &alice, "one-3", Some("a-2"), at(1_000_004)),
            message(&two, &alice, "two-2", None, at(1_000_005)),
        ];
        let expected = vec![
            Appended::Stored(stored_as(&batch[0], 1, &alice)),
            Appended::Stored(stored_as(&batch[1], 1, &bob)),
            Appended::Stored(stored_as(&batch[2], 2, &bob)),
            Appended::Stored(stored_as(&batch[3], 3, &alice)),
            Appended::Stored(stored_as(&batch[4], 2, &alice)),
        ];
        assert_eq!(append(store, &batch).await, expected);

        assert_eq!(last_seq(store, &one).await, 3);
        assert_eq!(last_seq(store, &two).await, 2);
        let listed: Vec<(String, i64)> = store
            .list_rooms()
            .await
            .expect("list_rooms")
            .into_iter()
            .map(|r| (r.name, r.last_seq))
            .collect();
        assert_eq!(
            listed,
            [("Room One".to_owned(), 3), ("Room Two".to_owned(), 2)]
        );
        let messages = |outcomes: &[usize]| {
            outcomes
                .iter()
                .rev()
                .map(|i| expected[*i].entry().unwrap().clone())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            history(store, &one, HistoryQuery::latest(50))
                .await
                .messages,
            messages(&[0, 2, 3])
        );
        assert_eq!(
            history(store, &two, HistoryQuery::latest(50))
                .await
                .messages,
            messages(&[1, 4])
        );

        let next = [
            message(&two, &bob, "two-3", None, at(2_000_001)),
            message(&one, &alice, "one-4", None, at(2_000_002)),
            message(&two, &bob, "two-4", None, at(2_000_003)),
        ];
        let seqs_of = |outcomes: Vec<Appended>| {
            outcomes
                .iter()
                .map(|o| o.entry().unwrap().seq)
                .collect::<Vec<_>>()
        };
        assert_eq!(seqs_of(append(store, &next).await), vec![3, 4, 4]);
        assert_eq!(last_seq(store, &one).await, 4);
        assert_eq!(last_seq(store, &two).await, 4);
        assert_eq!(
            seqs(&history(store, &two, HistoryQuery::latest(50)).await),
            vec![4, 3, 2, 1]
        );
    }

    pub async fn append_empty_batch_stores_nothing(store: &dyn Store) {
        let alice = user(store, "alice").await;
        let chat = room(store, "Chat", &alice).await;
        assert_eq!(append(store, &[]).await, vec![]);
        assert_eq!(last_seq(store, &chat).await, 0);
    }

    pub async fn append_duplicate_within_batch_returns_original(store: &dyn Store) {
        let alice = user(store, "alice").await;
        let chat = room(store, "Chat", &alice).await;
        let batch = [
            message(&chat, &alice, "first", Some("k-1"), secs(1)),
            message(&chat, &alice, "second try of first", Some("k-1"), secs(2)),
            message(&chat, &alice, "another", Some("k-2"), secs(3)),
        ];
        let original = stored_as(&batch[0], 1, &alice);
        assert_eq!(
            append(store, &batch).await,
            vec![
                Appended::Stored(original.clone()),
                Appended::Duplicate(original.clone()),
                Appended::Stored(stored_as(&batch[2], 2, &alice)),
            ]
        );
        assert_eq!(last_seq(store, &chat).await, 2, "the duplicate used no seq");
        assert_eq!(
            history(store, &chat, HistoryQuery::latest(50))
                .await
                .messages,
            vec![stored_as(&batch[2], 2, &alice), original]
        );
    }

    pub async fn append_duplicate_across_batches_returns_original(store: &dyn Store) {
        let alice = user(store, "alice").await;
        let bob = user(store, "bob").await;
        let chat = room(store, "Chat", &alice).await;
        let first = message(&chat, &alice, "original", Some("k"), secs(1));
        let original = stored_as(&first, 1, &alice);
        assert_eq!(
            append(store, std::slice::from_ref(&first)).await,
            vec![Appended::Stored(original.clone())]
        );

        let retry = [
            message(&chat, &alice, "retry", Some("k"), secs(2)),
            message(&chat, &bob, "hello", None, secs(3)),
        ];
        assert_eq!(
            append(store, &retry).await,
            vec![
                Appended::Duplicate(original.clone()),
                Appended::Stored(stored_as(&retry[1], 2, &bob))
            ]
        );
        assert_eq!(last_seq(store, &chat).await, 2);
        let page = history(store, &chat, HistoryQuery::latest(50)).await;
        assert_eq!(
            page.messages,
            vec![stored_as(&retry[1], 2, &bob), original.clone()],
            "the retry is not stored"
        );

        // And again, alone in its batch.
        let again = message(&chat, &alice, "third try", Some("k"), secs(4));
        assert_eq!(
            append(store, &[again]).await,
            vec![Appended::Duplicate(original)]
        );
        assert_eq!(last_seq(store, &chat).await, 2);
    }

    pub async fn append_duplicate_key_in_another_room_returns_original(store: &dyn Store) {
        let alice = user(store, "alice").await;
        let one = room(store, "One", &alice).await;
        let two = room(store, "Two", &alice).await;
        let first = message(&one, &alice, "original", Some("k"), secs(1));
        let original = stored_as(&first, 1, &alice);
        append(store, &[first]).await;

        // The key is the sender's, whatever the room: the repeat is answered with the original.
        let elsewhere = message(&two, &alice, "same key, other room", Some("k"), secs(2));
        assert_eq!(
            append(store, &[elsewhere]).await,
            vec![Appended::Duplicate(original)]
        );
        assert_eq!(last_seq(store, &two).await, 0);
        assert_eq!(
            history(store, &two, HistoryQuery::latest(50))
                .await
                .messages,
            vec![]
        );
    }

    pub async fn append_same_key_from_another_user_is_not_duplicate(store: &dyn Store) {
        let alice = user(store, "alice").await;
        let bob = user(store, "bob").await;
        let carol = user(store, "carol").await;
        let chat = room(store, "Chat", &alice).await;
        let batch = [
            message(&chat, &alice, "from alice", Some("k"), secs(1)),
            message(&chat, &bob, "from bob", Some("k"), secs(2)),
        ];
        assert_eq!(
            append(store, &batch).await,
            vec![
                Appended::Stored(stored_as(&batch[0], 1, &alice)),
                Appended::Stored(stored_as(&batch[1], 2, &bob))
            ]
        );
        let later = message(&chat, &carol, "from carol", Some("k"), secs(3));
        assert_eq!(
            append(store, std::slice::from_ref(&later)).await,
            vec![Appended::Stored(stored_as(&later, 3, &carol))]
        );
        assert_eq!(
            seqs(&history(store, &chat, HistoryQuery::latest(50)).await),
            vec![3, 2, 1]
        );
    }

    pub async fn append_without_key_is_never_duplicate(store: &dyn Store) {
        let alice = user(store, "alice").await;
        let chat = room(store, "Chat", &alice).await;
        let batch = [
            message(&chat, &alice, "same", None, secs(1)),
            message(&chat, &alice, "same", None, secs(1)),
        ];
        assert_eq!(
            append(store, &batch).await,
            vec![
                Appended::Stored(stored_as(&batch[0], 1, &alice)),
                Appended::Stored(stored_as(&batch[1], 2, &alice))
            ]
        );
        let again = message(&chat, &alice, "same", None, secs(1));
        assert_eq!(
            append(store, std::slice::from_ref(&again)).await,
            vec![Appended::Stored(stored_as(&again, 3, &alice))]
        );
    }

    pub async fn append_failing_batch_stores_nothing_and_uses_no_seq(store: &dyn Store) {
        let alice = user(store, "alice").await;
        let bob = user(store, "bob").await;
        let chat = room(store, "Chat", &alice).await;
        let other = room(store, "Other", &bob).await;
        let before = [
            message(&chat, &alice, "m1", None, secs(1)),
            message(&chat, &bob, "m2", None, secs(2)),
        ];
        append(store, &before).await;

        let ghost_room = Room {
            id: Uuid::now_v7(),
            name: "Ghost".into(),
            ..chat.clone()
        };
        let doomed = [
            message(&chat, &alice, "lost-1", Some("a"), secs(3)),
            message(&other, &bob, "lost-2", None, secs(3)),
            message(&ghost_room, &bob, "lost-3", None, secs(4)),
            message(&chat, &bob, "lost-4", None, secs(5)),
        ];
        let result = store.append_messages(&doomed).await;
        assert!(
            matches!(result, Err(StoreError::Backend(_))),
            "expected a Backend error, got {result:?}"
        );

        assert_eq!(last_seq(store, &chat).await, 2, "last_seq unchanged");
        assert_eq!(last_seq(store, &other).await, 0, "last_seq unchanged");
        let page = history(store, &chat, HistoryQuery::latest(50)).await;
        assert_eq!(
            page.messages,
            vec![
                stored_as(&before[1], 2, &bob),
                stored_as(&before[0], 1, &alice)
            ]
        );
        assert_eq!(
            history(store, &other, HistoryQuery::latest(50))
                .await
                .messages,
            vec![]
        );

        // The next append continues gaplessly, and the failed batch's key was never taken.
        let after = [
            message(&chat, &alice, "kept-3", Some("a"), secs(6)),
            message(&other, &bob, "kept-o1", None, secs(6)),
            message(&chat, &bob, "kept-4", None, secs(7)),
        ];
        assert_eq!(
            append(store, &after).await,
            vec![
                Appended::Stored(stored_as(&after[0], 3, &alice)),
                Appended::Stored(stored_as(&after[1], 1, &bob)),
                Appended::Stored(stored_as(&after[2], 4, &bob)),
            ]
        );
        assert_eq!(
            seqs(&history(store, &chat, HistoryQuery::latest(50)).await),
            vec![4, 3, 2, 1]
        );
    }

    // --- history ---

    pub async fn history_newest_first_with_limit(store: &dyn Store) {
        let (chat, all) = seeded_history(store).await;

        let page = history(store, &chat, HistoryQuery::latest(3)).await;
        assert_eq!(
            page.messages,
            expect_seqs(&all, &[10, 9, 8]),
            "exact messages, microseconds included"
        );
        assert_eq!((page.next_before, page.has_more), (Some(8), true));

        let page = history(store, &chat, HistoryQuery::latest(1)).await;
        assert_eq!(
            (seqs(&page), page.next_before, page.has_more),
            (vec![10], Some(10), true)
        );

        let page = history(store, &chat, HistoryQuery::latest(10)).await;
        assert_eq!(
            page.messages,
            expect_seqs(&all, &[10, 9, 8, 7, 6, 5, 4, 3, 2, 1])
        );
        assert_eq!(
            (page.next_before, page.has_more),
            (Some(1), false),
            "exactly the limit: nothing older"
        );

        let page = history(store, &chat, HistoryQuery::latest(200)).await;
        assert_eq!(
            (page.messages.len(), page.next_before, page.has_more),
            (10, Some(1), false)
        );

        let alice = store
            .user_by_login("alice")
            .await
            .expect("user_by_login")
            .expect("alice exists");
        let empty = room(store, "Empty", &alice).await;
        assert_eq!(
            history(store, &empty, HistoryQuery::latest(50)).await,
            Page {
                messages: vec![],
                next_before: None,
                has_more: false
            }
        );
    }

    pub async fn history_paging_with_before_seq_visits_each_message_once(store: &dyn Store) {
        let (chat, all) = seeded_history(store).await;
        for (limit, expected_pages) in [
            (
                3,
                vec![vec![10, 9, 8], vec![7, 6, 5], vec![4, 3, 2], vec![1]],
            ),
            (5, vec![vec![10, 9, 8, 7, 6], vec![5, 4, 3, 2, 1]]),
            (4, vec![vec![10, 9, 8, 7], vec![6, 5, 4, 3], vec![2, 1]]),
        ] {
            let mut pages = Vec::new();
            let mut visited = Vec::new();
            let mut query = HistoryQuery::latest(limit);
            loop {
                let page = history(store, &chat, query.clone()).await;
                pages.push(seqs(&page));
                visited.extend(page.messages.iter().cloned());
                assert_eq!(
                    page.next_before,
                    page.messages.last().map(|m| m.seq),
                    "next_before is the smallest seq"
                );
                if !page.has_more {
                    break;
                }
                assert!(
                    pages.len() <= 10,
                    "paging does not end (limit {limit}): {pages:?}"
                );
                query.before_seq = page.next_before;
            }
            assert_eq!(pages, expected_pages, "limit {limit}");
            assert_eq!(
                visited,
                expect_seqs(&all, &[10, 9, 8, 7, 6, 5, 4, 3, 2, 1]),
                "each exactly once"
            );
        }

        let query = HistoryQuery {
            before_seq: Some(1),
            ..HistoryQuery::latest(50)
        };
        assert_eq!(
            history(store, &chat, query).await,
            Page {
                messages: vec![],
                next_before: None,
                has_more: false
            }
        );
        let query = HistoryQuery {
            before_seq: Some(4),
            ..HistoryQuery::latest(2)
        };
        let page = history(store, &chat, query).await;
        assert_eq!(
            (seqs(&page), page.next_before, page.has_more),
            (vec![3, 2], Some(2), true)
        );
    }

    pub async fn messages_by_id_finds_only_what_was_stored(store: &dyn Store) {
        let (chat, all) = seeded_history(store).await;
        let missing = Uuid::now_v7();
        let wanted = [all[2].id, missing, all[0].id];
        let found = store
            .messages_by_id(&[chat.id], &wanted)
            .await
            .expect("lookup works");
        assert_eq!(
            found,
            vec![all[0].clone(), all[2].clone()],
            "stored ones only, by seq"
        );
        assert!(found.iter().all(|m| m.room_id == chat.id));
        assert_eq!(
            store
                .messages_by_id(&[chat.id], &[missing])
                .await
                .expect("lookup works"),
            vec![]
        );
        assert_eq!(
            store.messages_by_id(&[], &[]).await.expect("lookup works"),
            vec![]
        );
    }

    pub async fn history_after_seq(store: &dyn Store) {
        let (chat, all) = seeded_history(store).await;
        let query = |after: i64, before: Option<i64>, limit: u32| HistoryQuery {
            after_seq: Some(after),
            before_seq: before,
            ..HistoryQuery::latest(limit)
        };

        let page = history(store, &chat, query(7, None, 50)).await;
        assert_eq!(page.messages, expect_seqs(&all, &[10, 9, 8]));
        assert_eq!((page.next_before, page.has_more), (Some(8), false));

        let page = history(store, &chat, query(7, None, 2)).await;
        assert_eq!(
            (seqs(&page), page.next_before, page.has_more),
            (vec![10, 9], Some(9), true)
        );
        let page = history(store, &chat, query(7, Some(9), 2)).await;
        assert_eq!(
            (seqs(&page), page.next_before, page.has_more),
            (vec![8], Some(8), false)
        );

        assert_eq!(
            seqs(&history(store, &chat, query(5, Some(9), 50)).await),
            vec![8, 7, 6]
        );
        assert_eq!(
            seqs(&history(store, &chat, query(0, None, 50)).await),
            vec![10, 9, 8, 7, 6, 5, 4, 3, 2, 1]
        );
        let page = history(store, &chat, query(10, None, 50)).await;
        assert_eq!(
            (seqs(&page), page.next_before, page.has_more),
            (vec![], None, false)
        );
    }

    pub async fn history_sender_filter_is_case_insensitive(store: &dyn Store) {
        let (chat, all) = seeded_history(store).await;
        let by = |sender: &str, limit: u32| HistoryQuery {
            sender: Some(sender.into()),
            ..HistoryQuery::latest(limit)
        };

        for sender in ["alice", "ALICE", "Alice"] {
            let page = history(store, &chat, by(sender, 50)).await;
            assert_eq!(
                page.messages,
                expect_seqs(&all, &[9, 7, 5, 3, 1]),
                "sender {sender:?}"
            );
            assert!(!page.has_more);
        }
        for sender in ["Bob_B", "bob_b", "BOB_B"] {
            let page = history(store, &chat, by(sender, 5)).await;
            assert_eq!(seqs(&page), vec![10, 8, 6, 4, 2], "sender {sender:?}");
            assert!(!page.has_more, "seq 1 is older but not Bob_B's");
        }
        for sender in ["bob", "Bob%", "alic", "nobody"] {
            assert_eq!(
                seqs(&history(store, &chat, by(sender, 50)).await),
                Vec::<i64>::new(),
                "sender {sender:?}"
            );
        }

        let page = history(store, &chat, by("alice", 2)).await;
        assert_eq!(
            (seqs(&page), page.next_before, page.has_more),
            (vec![9, 7], Some(7), true)
        );
        let page = history(
            store,
            &chat,
            HistoryQuery {
                before_seq: Some(7),
                ..by("alice", 2)
            },
        )
        .await;
        assert_eq!(
            (seqs(&page), page.next_before, page.has_more),
            (vec![5, 3], Some(3), true)
        );
        let page = history(
            store,
            &chat,
            HistoryQuery {
                before_seq: Some(3),
                ..by("alice", 2)
            },
        )
        .await;
        assert_eq!(
            (seqs(&page), page.next_before, page.has_more),
            (vec![1], Some(1), false)
        );
    }

    pub async fn history_contains_folds_non_ascii_case(store: &dyn Store) {
        let alice = user(store, "alice").await;
        let chat = room(store, "Chat", &alice).await;
        let batch = [
            message(&chat, &alice, "À L'ÉCOLE, Ünïcode", None, secs(1)),
            message(&chat, &alice, "ascii only: ecole", None, secs(2)),
        ];
        append(store, &batch).await;
        let containing = |text: &str| HistoryQuery {
            contains: Some(text.into()),
            ..HistoryQuery::latest(50)
        };
        for (text, expected) in [
            ("l'école", vec![1]),
            ("ÜNÏCODE", vec![1]),
            ("à l'", vec![1]),
            ("ecole", vec![2]),
        ] {
            assert_eq!(
                seqs(&history(store, &chat, containing(text)).await),
                expected,
                "contains {text:?}"
            );
        }
    }

    pub async fn history_contains_is_case_insensitive_and_literal(store: &dyn Store) {
        let (chat, all) = seeded_history(store).await;
        let containing = |text: &str, limit: u32| HistoryQuery {
            contains: Some(text.into()),
            ..HistoryQuery::latest(limit)
        };

        for text in ["hello", "HELLO", "Hello", "hElLo"] {
            let page = history(store, &chat, containing(text, 50)).await;
            assert_eq!(
                page.messages,
                expect_seqs(&all, &[6, 5, 3, 1]),
                "contains {text:?}"
            );
        }
        // LIKE wildcards and escape characters are plain text here.
        for (text, expected) in [
            ("50%", vec![8]),
            ("%", vec![8]),
            ("a_b", vec![9]),
            ("_", vec![9]),
            (r"c:\dir", vec![9]),
            (r"\", vec![9]),
            ("h%o", vec![]),
            ("b_e", vec![]),
            ("zzz", vec![]),
            ("world", vec![1]),
            ("LAST ONE", vec![10]),
        ] {
            assert_eq!(
                seqs(&history(store, &chat, containing(text, 50)).await),
                expected,
                "contains {text:?}"
            );
        }

        let page = history(store, &chat, containing("hello", 2)).await;
        assert_eq!(
            (seqs(&page), page.next_before, page.has_more),
            (vec![6, 5], Some(5), true)
        );
        let page = history(
            store,
            &chat,
            HistoryQuery {
                before_seq: Some(5),
                ..containing("hello", 2)
            },
        )
        .await;
        assert_eq!(
            (seqs(&page), page.next_before, page.has_more),
            (vec![3, 1], Some(1), false)
        );
    }

    pub async fn history_since_until_are_inclusive(store: &dyn Store) {
        let (chat, all) = seeded_history(store).await;
        let window = |since: Option<OffsetDateTime>, until: Option<OffsetDateTime>| HistoryQuery {
            since,
            until,
            ..HistoryQuery::latest(50)
        };
        let one_micro = Duration::microseconds(1);

        let page = history(store, &chat, window(Some(sent_at(3)), Some(sent_at(6)))).await;
        assert_eq!(
            page.messages,
            expect_seqs(&all, &[6, 5, 4, 3]),
            "both ends inclusive"
        );
        for (since, until, expected) in [
            (
                Some(sent_at(3) + one_micro),
                Some(sent_at(6)),
                vec![6, 5, 4],
            ),
            (
                Some(sent_at(3)),
                Some(sent_at(6) - one_micro),
                vec![5, 4, 3],
            ),
            (
                Some(sent_at(3) - one_micro),
                Some(sent_at(6) + one_micro),
                vec![6, 5, 4, 3],
            ),
            (Some(sent_at(9)), None, vec![10, 9]),
            (None, Some(sent_at(2)), vec![2, 1]),
            (Some(sent_at(10) + one_micro), None, vec![]),
            (None, Some(sent_at(1) - one_micro), vec![]),
            (Some(sent_at(4)), Some(sent_at(4)), vec![4]),
        ] {
            assert_eq!(
                seqs(&history(store, &chat, window(since, until)).await),
                expected,
                "since {since:?} until {until:?}"
            );
        }

        let query = HistoryQuery {
            limit: 2,
            ..window(Some(sent_at(3)), Some(sent_at(8)))
        };
        let page = history(store, &chat, query).await;
        assert_eq!(
            (seqs(&page), page.next_before, page.has_more),
            (vec![8, 7], Some(7), true)
        );
        let query = HistoryQuery {
            limit: 2,
            ..window(Some(sent_at(9)), None)
        };
        let page = history(store, &chat, query).await;
        assert_eq!(
            (seqs(&page), page.next_before, page.has_more),
            (vec![10, 9], Some(9), false),
            "older ones fall before since"
        );
    }

    pub async fn history_filters_combined(store: &dyn Store) {
        let (chat, all) = seeded_history(store).await;
        let alice_hello = HistoryQuery {
            sender: Some("ALICE".into()),
            contains: Some("hello".into()),
            ..HistoryQuery::latest(50)
        };

        assert_eq!(
            history(store, &chat, alice_hello.clone()).await.messages,
            expect_seqs(&all, &[5, 3, 1])
        );
        let since = HistoryQuery {
            since: Some(sent_at(2)),
            ..alice_hello.clone()
        };
        assert_eq!(
            seqs(&history(store, &chat, since.clone()).await),
            vec![5, 3]
        );
        let before = HistoryQuery {
            before_seq: Some(5),
            ..since
        };
        assert_eq!(seqs(&history(store, &chat, before).await), vec![3]);
        let after = HistoryQuery {
            after_seq: Some(1),
            until: Some(sent_at(4)),
            ..alice_hello.clone()
        };
        assert_eq!(seqs(&history(store, &chat, after).await), vec![3]);
        let bob_hello = HistoryQuery {
            sender: Some("bob_b".into()),
            contains: Some("HELLO".into()),
            until: Some(sent_at(6)),
            ..HistoryQuery::latest(50)
        };
        assert_eq!(
            history(store, &chat, bob_hello).await.messages,
            expect_seqs(&all, &[6])
        );

        // Paging one at a time through the combined filter.
        let mut query = HistoryQuery {
            limit: 1,
            ..alice_hello
        };
        let mut pages = Vec::new();
        loop {
            let page = history(store, &chat, query.clone()).await;
            pages.push((seqs(&page), page.has_more));
            if !page.has_more || pages.len() > 10 {
                break;
            }
            query.before_seq = page.next_before;
        }
        assert_eq!(pages, [(vec![5], true), (vec![3], true), (vec![1], false)]);
    }

    // --- audit ---

    pub async fn record_audit_then_audit_since_oldest_first_with_limit(store: &dyn Store) {
        let alice = user(store, "alice").await;
        let event = |at: OffsetDateTime, name: &str, outcome: &str, details: serde_json::Value| {
            AuditEvent {
                at,
                event: name.into(),
                user_id: None,
                username: None,
                ip: None,
                user_agent: None,
                outcome: outcome.into(),
                details,
            }
        };
        let registered = AuditEvent {
            user_id: Some(alice.id),
            username: Some("alice".into()),
            ip: Some("203.0.113.7".into()),
            user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".into()),
            ..event(at(7), "register", "success", serde_json::json!({}))
        };
        let rejected = event(
            secs(1),
            "token_rejected",
            "denied",
            serde_json::json!({"reason": "expired", "path": "/api/me"}),
        );
        let login = AuditEvent {
            user_id: Some(alice.id),
            username: Some("alice".into()),
            ip: Some("2001:db8::1".into()),
            ..event(
                secs(2) + Duration::microseconds(5),
                "login",
                "failure",
                serde_json::json!({
                    "attempt": 3,
                    "ratio": 2.5,
                    "nested": {"list": [1, "two", null, true, {"deep": "é ✓ \"quoted\""}]},
                    "none": null
                }),
            )
        };
        let later = event(secs(3), "logout", "success", serde_json::json!(["a", 1]));

        // Recorded out of order and in two calls; read back by time.
        store
            .record_audit(&[login.clone(), registered.clone(), rejected.clone()])
            .await
            .expect("record_audit");
        store
            .record_audit(std::slice::from_ref(&later))
            .await
            .expect("record_audit");
        store
            .record_audit(&[])
            .await
            .expect("record_audit of nothing");

        let since = |from: OffsetDateTime, limit: u32| async move {
            store.audit_since(from, limit).await.expect("audit_since")
        };
        let all = vec![
            registered.clone(),
            rejected.clone(),
            login.clone(),
            later.clone(),
        ];
        assert_eq!(
            since(T0, 100).await,
            all,
            "oldest first, every field round-trips"
        );
        assert_eq!(
            since(T0, 2).await,
            vec![registered.clone(), rejected.clone()],
            "at most limit, the oldest"
        );
        assert_eq!(
            since(secs(1), 100).await,
            vec![rejected.clone(), login.clone(), later.clone()],
            "at since inclusive"
        );
        assert_eq!(
            since(secs(1) + Duration::microseconds(1), 100).await,
            vec![login.clone(), later.clone()]
        );
        assert_eq!(since(secs(1), 1).await, vec![rejected]);
        assert_eq!(
            since(secs(3) + Duration::microseconds(1), 100).await,
            vec![]
        );
        assert_eq!(since(at(7), 100).await, all, "microseconds are kept");
        assert_eq!(since(at(8), 100).await, all[1..].to_vec());
    }

    pub async fn log_edit_by_the_author_is_an_entry_and_history_shows_the_edit(store: &dyn Store) {
        let (chat, alice, _) = one_message(store).await;
        let outcomes = append(
            store,
            &[change(&chat, &alice, edit(1, "hello, world"), secs(2))],
        )
        .await;
        let Appended::Stored(entry) = &outcomes[0] else {
            panic!("stored, got {outcomes:?}");
        };
        assert_eq!(entry.seq, 2);
        assert_eq!(entry.username, "alice");
        assert_eq!(
            entry.body,
            Body::Edit {
                target_seq: 1,
                content: "hello, world".into()
            }
        );
        assert_eq!(last_seq(store, &chat).await, 2);
        let page = history_page(store, &chat, HistoryQuery::latest(50)).await;
        assert_eq!(
            page.messages.len(),
            1,
            "an edit is not a message of its own"
        );
        assert_eq!(
            page.as_of, 2,
            "the page includes every change through seq 2"
        );
        let message = page.messages[0].entry.message().expect("a message");
        assert_eq!(message.content, "hello, world");
        assert_eq!(message.edited_at, Some(secs(2)));
        assert!(!message.deleted);
        assert_eq!(
            log_of(store, &chat).await[1],
            entry.clone(),
            "the log holds the edit"
        );
    }

    pub async fn log_refusals_store_nothing_and_take_no_seq(store: &dyn Store) {
        let (chat, alice, bob) = one_message(store).await;
        let batch = [
            change(&chat, &bob, edit(1, "not yours"), secs(2)),
            change(&chat, &alice, edit(9, "nothing there"), secs(2)),
            change(&chat, &bob, react(9, "👍"), secs(2)),
            change(&chat, &bob, unreact(1, "👍"), secs(2)),
            change(&chat, &alice, reply("to nothing", 9), secs(2)),
            change(&chat, &alice, react(1, "👍"), secs(2)),
            change(
                &chat,
                &alice,
                edit(2, "a reaction is not a message"),
                secs(2),
            ),
        ];
        let outcomes = append(store, &batch).await;
        assert_eq!(
            outcomes[..5],
            [
                Appended::Refused(Refusal::NotAuthor),
                Appended::Refused(Refusal::NoSuchMessage { seq: 9 }),
                Appended::Refused(Refusal::NoSuchMessage { seq: 9 }),
                Appended::Refused(Refusal::NoSuchReaction),
                Appended::Refused(Refusal::NoSuchMessage { seq: 9 }),
            ]
        );
        assert_eq!(
            taken(&outcomes[5..6]),
            vec![Some(2)],
            "the refusals took no seq"
        );
        assert_eq!(
            outcomes[6],
            Appended::Refused(Refusal::NoSuchMessage { seq: 2 })
        );
        assert_eq!(last_seq(store, &chat).await, 2);
        assert_eq!(log_of(store, &chat).await.len(), 2);
        let page = history_page(store, &chat, HistoryQuery::latest(50)).await;
        assert_eq!(page.messages[0].entry.content(), Some("hello"));
    }

    pub async fn log_edit_window_is_checked_against_the_message_time(store: &dyn Store) {
        let (chat, alice, _) = one_message(store).await;
        let within = |not_before| Change::Edit {
            target_seq: 1,
            content: "edited".into(),
            not_before: Some(not_before),
        };
        let outcomes = append(
            store,
            &[
                change(
                    &chat,
                    &alice,
                    within(secs(1) + Duration::microseconds(1)),
                    secs(9),
                ),
                change(&chat, &alice, within(secs(1)), secs(9)),
            ],
        )
        .await;
        assert_eq!(outcomes[0], Appended::Refused(Refusal::EditWindowClosed));
        assert_eq!(
            taken(&outcomes[1..]),
            vec![Some(2)],
            "a message at the window's start may be edited"
        );
    }

    pub async fn log_delete_erases_the_message_its_edits_and_its_reactions(store: &dyn Store) {
        let (chat, alice, bob) = one_message(store).await;
        append(
            store,
            &[
                change(&chat, &alice, edit(1, "secret"), secs(2)),
                change(&chat, &bob, react(1, "👍"), secs(2)),
                change(&chat, &bob, reply("I saw it", 1), secs(2)),
            ],
        )
        .await;
        let outcomes = append(store, &[change(&chat, &alice, delete(1), secs(3))]).await;
        assert_eq!(taken(&outcomes), vec![Some(5)]);
        let log = log_of(store, &chat).await;
        assert_eq!(
            log.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1, 2, 3, 4, 5]
        );
        let first = log[0].message().expect("a message");
        assert!(first.deleted);
        assert_eq!(first.content, "", "erased, not hidden");
        assert_eq!(
            log[1].body,
            Body::Edit {
                target_seq: 1,
                content: String::new()
            },
            "the edit's text is erased too"
        );
        assert_eq!(log[4].body, Body::Delete { target_seq: 1 });
        let page = history_page(store, &chat, HistoryQuery::latest(50)).await;
        let tombstone = &page.messages[1];
        assert!(tombstone.entry.message().expect("a message").deleted);
        assert!(
            tombstone.reactions.is_empty(),
            "a deleted message keeps no reactions"
        );
        assert_eq!(page.messages[0].entry.content(), Some("I saw it"));
        // Nothing more can happen to it.
        let outcomes = append(
            store,
            &[
                change(&chat, &alice, edit(1, "back"), secs(4)),
                change(&chat, &alice, delete(1), secs(4)),
                change(&chat, &bob, react(1, "🎉"), secs(4)),
                change(&chat, &bob, unreact(1, "👍"), secs(4)),
                change(&chat, &bob, reply("again", 1), secs(4)),
            ],
        )
        .await;
        for outcome in outcomes {
            assert_eq!(outcome, Appended::Refused(Refusal::Deleted { seq: 1 }));
        }
        assert_eq!(last_seq(store, &chat).await, 5);
    }

    pub async fn log_delete_by_another_needs_any_author(store: &dyn Store) {
        let (chat, _, bob) = one_message(store).await;
        let outcomes = append(store, &[change(&chat, &bob, delete(1), secs(2))]).await;
        assert_eq!(outcomes[0], Appended::Refused(Refusal::NotAuthorOrOwner));
        let owner_like = Change::Delete {
            target_seq: 1,
            any_author: true,
        };
        let outcomes = append(store, &[change(&chat, &bob, owner_like, secs(2))]).await;
        assert_eq!(taken(&outcomes), vec![Some(2)]);
        let entry = outcomes[0].entry().expect("stored");
        assert_eq!(entry.username, "bob", "the deletion is the deleter's entry");
    }

    pub async fn log_reactions_are_once_per_user_and_emoji_and_counted_with_me(store: &dyn Store) {
        let (chat, alice, bob) = one_message(store).await;
        let outcomes = append(
            store,
            &[
                change(&chat, &bob, react(1, "👍"), secs(2)),
                change(&chat, &alice, react(1, ":party_parrot:"), secs(2)),
                change(&chat, &alice, react(1, "👍"), secs(2)),
            ],
        )
        .await;
        assert_eq!(taken(&outcomes), vec![Some(2), Some(3), Some(4)]);
        assert_eq!(
            outcomes[0].entry().expect("stored").body,
            Body::Reaction {
                target_seq: 1,
                emoji: "👍".into(),
                added: true
            }
        );
        let repeat = append(store, &[change(&chat, &bob, react(1, "👍"), secs(3))]).await;
        assert_eq!(
            repeat[0],
            Appended::Unchanged {
                room_id: chat.id,
                seq: 2
            },
            "a repeat is a no-op, answered with the entry that made it"
        );
        assert_eq!(last_seq(store, &chat).await, 4);
        let counts = |viewer: &User| HistoryQuery {
            viewer: Some(viewer.id),
            ..HistoryQuery::latest(50)
        };
        let page = history_page(store, &chat, counts(&bob)).await;
        assert_eq!(
            page.messages[0].reactions,
            vec![
                ReactionCount {
                    emoji: "👍".into(),
                    count: 2,
                    me: true
                },
                ReactionCount {
                    emoji: ":party_parrot:".into(),
                    count: 1,
                    me: false
                },
            ],
            "by emoji, in the order each was first used"
        );
        let removed = append(store, &[change(&chat, &bob, unreact(1, "👍"), secs(4))]).await;
        assert_eq!(taken(&removed), vec![Some(5)]);
        assert_eq!(
            removed[0].entry().expect("stored").body,
            Body::Reaction {
                target_seq: 1,
                emoji: "👍".into(),
                added: false
            }
        );
        let page = history_page(store, &chat, counts(&bob)).await;
        assert_eq!(
            page.messages[0].reactions,
            vec![
                ReactionCount {
                    emoji: ":party_parrot:".into(),
                    count: 1,
                    me: false
                },
                ReactionCount {
                    emoji: "👍".into(),
                    count: 1,
                    me: false
                },
            ],
            "👍 is now first used by alice's, after the parrot"
        );
        // Taken back, it may be given again, as a new entry.
        let again = append(store, &[change(&chat, &bob, react(1, "👍"), secs(5))]).await;
        assert_eq!(taken(&again), vec![Some(6)]);
        let page = history_page(store, &chat, counts(&alice)).await;
        assert_eq!(
            page.messages[0].reactions[1],
            ReactionCount {
                emoji: "👍".into(),
                count: 2,
                me: true
            }
        );
    }

    pub async fn log_reactions_are_bounded_per_message(store: &dyn Store) {
        let (chat, alice, bob) = one_message(store).await;
        let bounded = |emoji: &str| Change::React {
            target_seq: 1,
            emoji: emoji.into(),
            max_emojis: 2,
        };
        let outcomes = append(
            store,
            &[
                change(&chat, &alice, bounded("👍"), secs(2)),
                change(&chat, &alice, bounded("🎉"), secs(2)),
                change(&chat, &alice, bounded("🚀"), secs(2)),
                change(&chat, &bob, bounded("🎉"), secs(2)),
            ],
        )
        .await;
        assert_eq!(taken(&outcomes), vec![Some(2), Some(3), None, Some(4)]);
        assert_eq!(
            outcomes[2],
            Appended::Refused(Refusal::TooManyReactions { max: 2 })
        );
        // Across batches too: the stored emojis count.
        let later = append(store, &[change(&chat, &bob, bounded("🚀"), secs(3))]).await;
        assert_eq!(
            later[0],
            Appended::Refused(Refusal::TooManyReactions { max: 2 })
        );
    }

    pub async fn log_replies_need_a_live_message_and_history_counts_them_and_filters_threads(
        store: &dyn Store,
    ) {
        let (chat, alice, bob) = one_message(store).await;
        let outcomes = append(
            store,
            &[
                message(&chat, &bob, "unrelated", None, secs(2)),
                change(&chat, &bob, reply("first reply", 1), secs(3)),
                change(&chat, &alice, reply("second reply", 1), secs(4)),
                change(&chat, &alice, reply("reply to the unrelated", 2), secs(5)),
            ],
        )
        .await;
        assert_eq!(taken(&outcomes), vec![Some(2), Some(3), Some(4), Some(5)]);
        assert_eq!(
            outcomes[1]
                .entry()
                .and_then(LogEntry::message)
                .and_then(|m| m.reply_to),
            Some(1)
        );
        let page = history_page(store, &chat, HistoryQuery::latest(50)).await;
        let replies: Vec<(i64, u32)> = page
            .messages
            .iter()
            .map(|m| (m.entry.seq, m.replies))
            .collect();
        assert_eq!(replies, vec![(5, 0), (4, 0), (3, 0), (2, 1), (1, 2)]);
        let thread = history(
            store,
            &chat,
            HistoryQuery {
                thread: Some(1),
                ..HistoryQuery::latest(50)
            },
        )
        .await;
        assert_eq!(
            seqs(&thread),
            vec![4, 3, 1],
            "the root and its replies, newest first"
        );
        // A deleted reply is not counted.
        append(store, &[change(&chat, &alice, delete(4), secs(6))]).await;
        let page = history_page(store, &chat, HistoryQuery::latest(50)).await;
        assert_eq!(page.messages.last().map(|m| m.replies), Some(1));
    }

    pub async fn log_changes_within_one_batch_see_each_other(store: &dyn Store) {
        let alice = user(store, "alice").await;
        let bob = user(store, "bob").await;
        let chat = room(store, "chat", &alice).await;
        let batch = [
            message(&chat, &alice, "draft", None, secs(1)),
            change(&chat, &alice, edit(1, "final"), secs(2)),
            change(&chat, &bob, react(1, "👍"), secs(2)),
            change(&chat, &bob, reply("nice", 1), secs(2)),
            message(&chat, &alice, "doomed", None, secs(3)),
            change(&chat, &alice, edit(5, "doomed, edited"), secs(3)),
            change(&chat, &alice, delete(5), secs(3)),
            change(&chat, &bob, react(5, "🎉"), secs(3)),
        ];
        let outcomes = append(store, &batch).await;
        assert_eq!(
            taken(&outcomes),
            vec![
                Some(1),
                Some(2),
                Some(3),
                Some(4),
                Some(5),
                Some(6),
                Some(7),
                None
            ]
        );
        assert_eq!(outcomes[7], Appended::Refused(Refusal::Deleted { seq: 5 }));
        // Delivered as they happened: the post as posted.
        assert_eq!(
            outcomes[0].entry().and_then(LogEntry::content),
            Some("draft")
        );
        // Stored in their state after the batch.
        let log = log_of(store, &chat).await;
        let first = log[0].message().expect("a message");
        assert_eq!(
            (first.content.as_str(), first.edited_at),
            ("final", Some(secs(2)))
        );
        let doomed = log[4].message().expect("a message");
        assert!(doomed.deleted && doomed.content.is_empty());
        assert_eq!(
            log[5].content(),
            Some(""),
            "the doomed message's edit is erased"
        );
        let page = history_page(store, &chat, HistoryQuery::latest(50)).await;
        let root = page.messages.last().expect("the first message");
        assert_eq!((root.replies, root.reactions.len()), (1, 1));
    }

    pub async fn log_after_returns_every_kind_in_seq_order_within_the_limit(store: &dyn Store) {
        let (chat, alice, bob) = one_message(store).await;
        let (elsewhere, _, _) = {
            let other = room(store, "elsewhere", &bob).await;
            append(store, &[message(&other, &bob, "not here", None, secs(1))]).await;
            (other, (), ())
        };
        append(
            store,
            &[
                change(&chat, &alice, edit(1, "hello!"), secs(2)),
                change(&chat, &bob, react(1, "👍"), secs(3)),
                message(&chat, &bob, "hi", Some("k"), secs(4)),
                change(&chat, &bob, unreact(1, "👍"), secs(5)),
                change(&chat, &bob, delete(4), secs(6)),
            ],
        )
        .await;
        let log = log_of(store, &chat).await;
        let kinds: Vec<(i64, &str)> = log
            .iter()
            .map(|entry| (entry.seq, entry.kind().as_str()))
            .collect();
        assert_eq!(
            kinds,
            vec![
                (1, "message"),
                (2, "edit"),
                (3, "react"),
                (4, "message"),
                (5, "unreact"),
                (6, "delete")
            ]
        );
        assert_eq!(
            log[0].content(),
            Some("hello!"),
            "messages in their current state"
        );
        assert_eq!(log[3].client_msg_id.as_deref(), Some("k"));
        assert_eq!(log[2].created_at, secs(3));
        let window = store.log_after(chat.id, 2, 2).await.expect("log_after");
        assert_eq!(window.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3, 4]);
        assert!(
            store
                .log_after(chat.id, 6, 10)
                .await
                .expect("log_after")
                .is_empty()
        );
        assert_eq!(log_of(store, &elsewhere).await.len(), 1);
    }

    pub async fn log_history_filters_leave_out_tombstones(store: &dyn Store) {
        let (chat, alice, _) = one_message(store).await;
        append(
            store,
            &[
                message(&chat, &alice, "hello again", None, secs(2)),
                change(&chat, &alice, delete(1), secs(3)),
            ],
        )
        .await;
        let unfiltered = history(store, &chat, HistoryQuery::latest(50)).await;
        assert_eq!(seqs(&unfiltered), vec![2, 1], "a tombstone keeps its place");
        for query in [
            HistoryQuery {
                sender: Some("alice".into()),
                ..HistoryQuery::latest(50)
            },
            HistoryQuery {
                contains: Some("hello".into()),
                ..HistoryQuery::latest(50)
            },
        ] {
            assert_eq!(
                seqs(&history(store, &chat, query.clone()).await),
                vec![2],
                "{query:?}"
            );
        }
    }

    pub async fn log_messages_by_id_finds_changes_too(store: &dyn Store) {
        let (chat, alice, bob) = one_message(store).await;
        let batch = [
            change(&chat, &alice, edit(1, "edited"), secs(2)),
            change(&chat, &bob, react(1, "👍"), secs(2)),
        ];
        let outcomes = append(store, &batch).await;
        let found = store
            .messages_by_id(&[chat.id], &[batch[1].id, batch[0].id])
            .await
            .expect("lookup works");
        let expected: Vec<LogEntry> = outcomes.iter().filter_map(|o| o.entry().cloned()).collect();
        assert_eq!(found, expected);
    }

    pub async fn read_point_moves_forward_only_within_the_room(store: &dyn Store) {
        let (chat, alice, bob) = one_message(store).await;
        append(
            store,
            &[
                message(&chat, &alice, "two", None, secs(2)),
                message(&chat, &alice, "three", None, secs(3)),
            ],
        )
        .await;
        let mark = |seq| store.mark_read(chat.id, bob.id, seq);
        let point = |seq, moved| Some(ReadPoint { seq, moved });
        // Bob joined before the first message: he starts with nothing read.
        assert_eq!(mark(1).await.expect("mark_read"), point(1, true));
        assert_eq!(mark(2).await.expect("mark_read"), point(2, true));
        assert_eq!(
            mark(1).await.expect("mark_read"),
            point(2, false),
            "never backwards"
        );
        assert_eq!(
            mark(99).await.expect("mark_read"),
            point(3, true),
            "clamped to the end"
        );
        let stranger = user(store, "stranger").await;
        assert_eq!(
            store
                .mark_read(chat.id, stranger.id, 1)
                .await
                .expect("mark_read"),
            None,
            "only members have read points"
        );
        let members = members_of(store, &chat).await;
        let points: Vec<(&str, i64)> = members
            .iter()
            .map(|m| (m.username.as_str(), m.last_read_seq))
            .collect();
        assert_eq!(points, vec![("alice", 0), ("bob", 3)]);
        // Leaving forgets it.
        store
            .remove_member(chat.id, bob.id)
            .await
            .expect("remove_member");
        assert_eq!(
            store
                .mark_read(chat.id, bob.id, 3)
                .await
                .expect("mark_read"),
            None
        );
    }

    pub async fn read_state_counts_messages_by_others_after_the_read_point(store: &dyn Store) {
        let (chat, alice, bob) = one_message(store).await;
        let other = room(store, "other", &bob).await;
        append(
            store,
            &[
                message(&chat, &alice, "two", None, secs(2)),
                message(&chat, &bob, "mine", None, secs(2)),
                change(&chat, &alice, react(2, "👍"), secs(3)),
                change(&chat, &alice, edit(2, "two!"), secs(3)),
                message(&chat, &alice, "doomed", None, secs(4)),
                change(&chat, &alice, delete(6), secs(4)),
                message(&chat, &alice, "five", None, secs(5)),
                message(&other, &alice, "elsewhere", None, secs(5)),
            ],
        )
        .await;
        let state = |states: Vec<ReadState>, room: &Room| {
            states
                .into_iter()
                .find(|state| state.room_id == room.id)
                .map(|state| (state.last_read_seq, state.unread))
        };
        let bobs = store.read_state(bob.id).await.expect("read_state");
        assert_eq!(bobs.len(), 2, "one per room bob is in");
        // Alice's "hello", "two" and "five"; not bob's own, not the reaction or the edit, not the deleted one.
        assert_eq!(state(bobs.clone(), &chat), Some((0, 3)));
        assert_eq!(
            state(bobs, &other),
            Some((0, 1)),
            "each room counts its own"
        );
        store
            .mark_read(chat.id, bob.id, 5)
            .await
            .expect("mark_read");
        let bobs = store.read_state(bob.id).await.expect("read_state");
        assert_eq!(state(bobs, &chat), Some((5, 1)));
        let alices = store.read_state(alice.id).await.expect("read_state");
        assert_eq!(
            state(alices.clone(), &chat),
            Some((0, 1)),
            "only bob's message is alice's to read"
        );
        assert_eq!(state(alices, &other), None);
    }

    pub async fn a_new_membership_starts_read_through_the_rooms_end(store: &dyn Store) {
        let (chat, alice, _) = one_message(store).await;
        append(store, &[message(&chat, &alice, "two", None, secs(2))]).await;
        let late = user(store, "late").await;
        store
            .add_member(chat.id, late.id, secs(3))
            .await
            .expect("add_member");
        let states = store.read_state(late.id).await.expect("read_state");
        assert_eq!(
            states,
            vec![ReadState {
                room_id: chat.id,
                last_read_seq: 2,
                unread: 0
            }]
        );
        append(store, &[message(&chat, &alice, "three", None, secs(4))]).await;
        let states = store.read_state(late.id).await.expect("read_state");
        assert_eq!(states[0].unread, 1);
    }

    pub async fn search_finds_every_word_in_the_users_rooms_best_first(store: &dyn Store) {
        let (chat, alice, bob) = one_message(store).await;
        let secret = room(store, "secret", &alice).await;
        append(
            store,
            &[
                message(&chat, &alice, "Deploy the release tonight", None, secs(2)),
                message(
                    &chat,
                    &bob,
                    "deploy deploy DEPLOY, the release is ready",
                    None,
                    secs(3),
                ),
                message(&chat, &bob, "the release notes", None, secs(4)),
                message(&secret, &alice, "deploy the release quietly", None, secs(5)),
                message(&chat, &alice, "redeploy later", None, secs(6)),
            ],
        )
        .await;
        let page = search(store, &bob, "Release DEPLOY", None).await;
        // Every word, whole words only, in bob's rooms only; the message saying it most comes first.
        assert_eq!(found(&page), vec![("chat".into(), 3), ("chat".into(), 2)]);
        assert_eq!(page.next, None);
        let best = &page.results[0];
        assert_eq!(best.username, "bob");
        assert_eq!(best.created_at, secs(3));
        assert!(best.snippet.contains("**DEPLOY**"), "{}", best.snippet);
        assert!(best.snippet.contains("**release**"), "{}", best.snippet);
        let alices = search(store, &alice, "deploy release", None).await;
        assert_eq!(alices.results.len(), 3, "alice is in both rooms");
        let only = search(store, &alice, "deploy release", Some(&secret)).await;
        assert_eq!(found(&only), vec![("secret".into(), 1)]);
        for nothing in ["", "  ***  ", "deploy elephant"] {
            assert!(
                search(store, &bob, nothing, None).await.results.is_empty(),
                "{nothing:?}"
            );
        }
        // Case and punctuation do not matter; the words of a quote are only words.
        assert_eq!(
            found(&search(store, &bob, "\"NOTES\" (the)", None).await),
            vec![("chat".into(), 4)]
        );
    }

    pub async fn search_sees_edits_and_forgets_deletions(store: &dyn Store) {
        let (chat, alice, bob) = one_message(store).await;
        append(
            store,
            &[
                message(&chat, &alice, "the password is swordfish", None, secs(2)),
                message(&chat, &alice, "meet at noon", None, secs(3)),
            ],
        )
        .await;
        assert_eq!(
            found(&search(store, &bob, "swordfish", None).await).len(),
            1
        );
        append(
            store,
            &[
                change(&chat, &alice, delete(2), secs(4)),
                change(&chat, &alice, edit(3, "meet at midnight"), secs(4)),
            ],
        )
        .await;
        assert!(
            search(store, &bob, "swordfish", None)
                .await
                .results
                .is_empty(),
            "a deleted message is gone from the index"
        );
        assert!(search(store, &bob, "noon", None).await.results.is_empty());
        let page = search(store, &bob, "midnight", None).await;
        assert_eq!(found(&page), vec![("chat".into(), 3)]);
        assert!(page.results[0].snippet.contains("**midnight**"));
        // A deleted room takes its messages out of the index.
        store.delete_room(chat.id).await.expect("delete_room");
        assert!(
            search(store, &alice, "midnight", None)
                .await
                .results
                .is_empty()
        );
    }

    pub async fn search_pages_with_next(store: &dyn Store) {
        let (chat, alice, bob) = one_message(store).await;
        let batch: Vec<NewEntry> = (0..5)
            .map(|n| {
                message(
                    &chat,
                    &alice,
                    &format!("standup note {n}"),
                    None,
                    secs(2 + n),
                )
            })
            .collect();
        append(store, &batch).await;
        let mut query = SearchQuery {
            user_id: bob.id,
            words: "standup".into(),
            room_id: None,
            limit: 2,
            offset: 0,
        };
        let mut seen = Vec::new();
        loop {
            let page = store.search(&query).await.expect("search");
            assert!(page.results.len() <= 2);
            seen.extend(page.results.iter().map(|hit| hit.seq));
            match page.next {
                Some(next) => query.offset = next,
                None => break,
            }
        }
        seen.sort_unstable();
        assert_eq!(seen, vec![2, 3, 4, 5, 6], "each exactly once");
    }

    pub async fn open_direct_is_one_room_per_pair_with_both_as_members(store: &dyn Store) {
        let alice = user(store, "alice").await;
        let bob = user(store, "bob").await;
        let carol = user(store, "carol").await;
        let direct = |owner: &User, other: &User, n: i64| {
            let mut room = new_room(
                &palaver_handlers::model::direct_room_name(&owner.username, &other.username),
                owner,
                secs(n),
            );
            room.private = true;
            room
        };
        let new = direct(&alice, &bob, 1);
        let (opened, created) = store
            .open_direct(new.clone(), bob.id)
            .await
            .expect("open_direct");
        assert!(created);
        assert_eq!(
            opened,
            Room {
                id: new.id,
                name: "dm:alice:bob".into(),
                private: true,
                password_hash: None,
                owner_id: alice.id,
                created_at: secs(1),
                last_seq: 0,
                direct: true,
            }
        );
        assert_eq!(
            members_of(store, &opened).await,
            vec![member(&alice), member(&bob)]
        );
        // Opened again, from the other side: the same room, not created.
        append(store, &[message(&opened, &alice, "hi bob", None, secs(2))]).await;
        store
            .remove_member(opened.id, bob.id)
            .await
            .expect("remove_member");
        let (again, created) = store
            .open_direct(direct(&bob, &alice, 3), alice.id)
            .await
            .expect("open_direct");
        assert!(!created);
        assert_eq!(
            (again.id, again.last_seq, again.direct),
            (opened.id, 1, true)
        );
        let members = members_of(store, &again).await;
        assert_eq!(members.len(), 2, "bob is a member again");
        let bobs = members.iter().find(|m| m.user_id == bob.id).expect("bob");
        assert_eq!(
            bobs.last_read_seq, 1,
            "a renewed membership starts read through the end"
        );
        // Found by name like any room, marked direct; another pair gets a room of its own.
        let found = store
            .room_by_name("DM:ALICE:BOB")
            .await
            .expect("room_by_name")
            .expect("the room");
        assert!(found.direct);
        let (other, created) = store
            .open_direct(direct(&alice, &carol, 4), carol.id)
            .await
            .expect("open_direct");
        assert!(created);
        assert_ne!(other.id, opened.id);
        let listed = store.list_rooms().await.expect("list_rooms");
        assert!(listed.iter().all(|room| room.direct), "{listed:?}");
        let plain = room(store, "plain", &alice).await;
        assert!(!plain.direct);
    }

    pub async fn blocks_are_one_way_and_can_be_undone(store: &dyn Store) {
        let alice = user(store, "alice").await;
        let bob = user(store, "bob").await;
        let blocked = |a: &User, b: &User| store.is_blocked(a.id, b.id);
        assert!(!blocked(&alice, &bob).await.expect("is_blocked"));
        assert!(
            store
                .set_blocked(alice.id, bob.id, true, secs(1))
                .await
                .expect("set_blocked")
        );
        assert!(
            !store
                .set_blocked(alice.id, bob.id, true, secs(2))
                .await
                .expect("set_blocked"),
            "twice changes nothing"
        );
        assert!(blocked(&alice, &bob).await.expect("is_blocked"));
        assert!(!blocked(&bob, &alice).await.expect("is_blocked"), "one way");
        assert!(
            store
                .set_blocked(alice.id, bob.id, false, secs(3))
                .await
                .expect("set_blocked")
        );
        assert!(
            !store
                .set_blocked(alice.id, bob.id, false, secs(3))
                .await
                .expect("set_blocked")
        );
        assert!(!blocked(&alice, &bob).await.expect("is_blocked"));
    }

    pub async fn roles_start_with_one_owner_and_change_only_as_allowed(store: &dyn Store) {
        let (chat, alice, bob) = one_message(store).await;
        let role = |user: &User| store.role_of(chat.id, user.id);
        assert_eq!(role(&alice).await.expect("role_of"), Some(Role::Owner));
        assert_eq!(role(&bob).await.expect("role_of"), Some(Role::Member));
        let stranger = user(store, "stranger").await;
        assert_eq!(role(&stranger).await.expect("role_of"), None);
        assert!(
            store
                .set_role(chat.id, bob.id, Role::Moderator)
                .await
                .expect("set_role")
        );
        assert_eq!(role(&bob).await.expect("role_of"), Some(Role::Moderator));
        assert!(
            !store
                .set_role(chat.id, stranger.id, Role::Admin)
                .await
                .expect("set_role"),
            "not a member"
        );
        assert!(
            !store
                .set_role(chat.id, alice.id, Role::Member)
                .await
                .expect("set_role"),
            "the owner keeps the room until it is transferred"
        );
        assert!(store.set_role(chat.id, bob.id, Role::Owner).await.is_err());
        let members = members_of(store, &chat).await;
        let roles: Vec<(&str, Role)> = members
            .iter()
            .map(|m| (m.username.as_str(), m.role))
            .collect();
        assert_eq!(
            roles,
            vec![("alice", Role::Owner), ("bob", Role::Moderator)]
        );
        // A direct room's members are members.
        let mut new = new_room("dm:alice:stranger", &alice, secs(9));
        new.private = true;
        let (direct, _) = store
            .open_direct(new, stranger.id)
            .await
            .expect("open_direct");
        for user in [&alice, &stranger] {
            assert_eq!(
                store.role_of(direct.id, user.id).await.expect("role_of"),
                Some(Role::Member)
            );
        }
    }

    pub async fn ownership_moves_with_owner_id_in_one_step(store: &dyn Store) {
        let (chat, alice, bob) = one_message(store).await;
        let stranger = user(store, "stranger").await;
        assert!(
            !store
                .transfer_ownership(chat.id, bob.id, alice.id)
                .await
                .expect("transfer"),
            "only the owner hands it on"
        );
        assert!(
            !store
                .transfer_ownership(chat.id, alice.id, stranger.id)
                .await
                .expect("transfer"),
            "only to a member"
        );
        assert!(
            store
                .transfer_ownership(chat.id, alice.id, bob.id)
                .await
                .expect("transfer")
        );
        assert_eq!(
            store.role_of(chat.id, bob.id).await.expect("role_of"),
            Some(Role::Owner)
        );
        assert_eq!(
            store.role_of(chat.id, alice.id).await.expect("role_of"),
            Some(Role::Admin)
        );
        let found = store
            .room_by_name("chat")
            .await
            .expect("room_by_name")
            .expect("the room");
        assert_eq!(found.owner_id, bob.id);
        assert_eq!(store.count_rooms_owned(bob.id).await.expect("count"), 1);
        assert_eq!(store.count_rooms_owned(alice.id).await.expect("count"), 0);
    }
}
