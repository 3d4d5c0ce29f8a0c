//! Accounts and revoked tokens. The cache of revocations is the store's (in `mod.rs`); these functions only read
//! and write the tables.

use palaver_handlers::StoreError;
use palaver_handlers::model::{NewUser, User};
use time::OffsetDateTime;
use uuid::Uuid;

use super::PostgresStore;
use super::convert::{pg_error, to_micros, user_from_row};

/// Stores a new account; a taken username or email is a conflict named by the unique index it breaks.
pub(super) async fn create_user(store: &PostgresStore, user: NewUser) -> Result<User, StoreError> {
    let created_at = to_micros(user.created_at);
    let user = User {
        id: user.id,
        username: user.username,
        email: user.email,
        password_hash: user.password_hash,
        created_at,
        updated_at: created_at,
    };
    store
        .execute(
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

/// The account with this id.
pub(super) async fn user_by_id(
    store: &PostgresStore,
    id: Uuid,
) -> Result<Option<User>, StoreError> {
    let row = store
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

/// The account whose username or email is `login`, ignoring case.
pub(super) async fn user_by_login(
    store: &PostgresStore,
    login: &str,
) -> Result<Option<User>, StoreError> {
    // The same expressions as the unique indexes, so that both are used.
    let row = store
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

/// Records a token as revoked until it expires; revoking it again changes nothing.
pub(super) async fn revoke_token(
    store: &PostgresStore,
    token_id: &str,
    user_id: Uuid,
    expires_at: OffsetDateTime,
) -> Result<(), StoreError> {
    store
        .execute(
            "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES ($1, $2, $3)
             ON CONFLICT (jti) DO NOTHING",
            &[&token_id, &user_id, &to_micros(expires_at)],
        )
        .await
        .map(drop)
}

/// Whether the token was revoked, as the table says.
pub(super) async fn is_token_revoked(
    store: &PostgresStore,
    token_id: &str,
) -> Result<bool, StoreError> {
    let row = store
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = $1)",
            &[&token_id],
        )
        .await?;
    row.try_get(0).map_err(pg_error)
}

/// Forgets the revocations of tokens that expired before `now`; returns how many.
pub(super) async fn purge_revoked_tokens(
    store: &PostgresStore,
    now: OffsetDateTime,
) -> Result<u64, StoreError> {
    store
        .execute("DELETE FROM revoked_tokens WHERE expires_at < $1", &[&now])
        .await
}

/// Records a ticket's use: true when this is its first, false when a row says it was used already.
pub(super) async fn use_ticket(
    store: &PostgresStore,
    ticket_id: &str,
    expires_at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let inserted = store
        .execute(
            "INSERT INTO used_ws_tickets (id, expires_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
            &[&ticket_id, &to_micros(expires_at)],
        )
        .await?;
    Ok(inserted == 1)
}

/// Forgets the uses of tickets that expired before `now`; returns how many.
pub(super) async fn purge_used_tickets(
    store: &PostgresStore,
    now: OffsetDateTime,
) -> Result<u64, StoreError> {
    store
        .execute("DELETE FROM used_ws_tickets WHERE expires_at < $1", &[&now])
        .await
}
