//! Accounts and revoked tokens.

use palaver_handlers::model::{NewUser, User};
use palaver_handlers::{StoreError, Unique};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use time::OffsetDateTime;
use uuid::Uuid;

use super::convert::{Failure, as_stored, id_text, micros, micros_ceil, time_at, uuid_at};

/// Stores a new account. The uniqueness rules are checked in the protocol's order (username, then email) so the
/// conflict named is the same as the reference store's when both are taken; the unique indexes stay the guard.
pub(super) fn create_user(connection: &mut Connection, new: NewUser) -> Result<User, Failure> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    if exists(
        &tx,
        "SELECT EXISTS (SELECT 1 FROM users WHERE lower(username) = lower(?1))",
        &new.username,
    )? {
        return Err(StoreError::Conflict(Unique::Username).into());
    }
    if exists(
        &tx,
        "SELECT EXISTS (SELECT 1 FROM users WHERE lower(email) = lower(?1))",
        &new.email,
    )? {
        return Err(StoreError::Conflict(Unique::Email).into());
    }
    let created_at = as_stored(new.created_at);
    tx.prepare_cached(
        "INSERT INTO users (id, username, email, password_hash, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
    )?
    .execute(params![
        id_text(new.id),
        new.username,
        new.email,
        new.password_hash,
        micros(created_at)
    ])?;
    tx.commit()?;
    Ok(User {
        id: new.id,
        username: new.username,
        email: new.email,
        password_hash: new.password_hash,
        created_at,
        updated_at: created_at,
    })
}

fn exists(connection: &Connection, sql: &str, value: &str) -> rusqlite::Result<bool> {
    connection
        .prepare_cached(sql)?
        .query_row([value], |row| row.get(0))
}

/// The account with this id.
pub(super) fn user_by_id(connection: &Connection, id: Uuid) -> Result<Option<User>, Failure> {
    let user = connection
        .prepare_cached(
            "SELECT id, username, email, password_hash, created_at, updated_at FROM users WHERE id = ?1",
        )?
        .query_row([id_text(id)], user_from_row)
        .optional()?;
    Ok(user)
}

/// The account whose username or email is `login`, ignoring ASCII case (both indexes serve the two halves).
pub(super) fn user_by_login(connection: &Connection, login: &str) -> Result<Option<User>, Failure> {
    let user = connection
        .prepare_cached(
            "SELECT id, username, email, password_hash, created_at, updated_at FROM users
             WHERE lower(username) = lower(?1) OR lower(email) = lower(?1)
             LIMIT 1",
        )?
        .query_row([login], user_from_row)
        .optional()?;
    Ok(user)
}

fn user_from_row(row: &Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: uuid_at(row, 0)?,
        username: row.get(1)?,
        email: row.get(2)?,
        password_hash: row.get(3)?,
        created_at: time_at(row, 4)?,
        updated_at: time_at(row, 5)?,
    })
}

/// Records a revocation; a second revocation of the same token keeps the first.
pub(super) fn revoke_token(
    connection: &Connection,
    token_id: &str,
    user_id: Uuid,
    expires_at: OffsetDateTime,
) -> Result<(), Failure> {
    connection
        .prepare_cached(
            "INSERT INTO revoked_tokens (jti, user_id, expires_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (jti) DO NOTHING",
        )?
        .execute(params![token_id, id_text(user_id), micros(expires_at)])?;
    Ok(())
}

/// Whether the token is revoked (expired revocations count until they are purged).
pub(super) fn is_token_revoked(connection: &Connection, token_id: &str) -> Result<bool, Failure> {
    Ok(exists(
        connection,
        "SELECT EXISTS (SELECT 1 FROM revoked_tokens WHERE jti = ?1)",
        token_id,
    )?)
}

/// Forgets revocations that expired before `now`.
pub(super) fn purge_revoked_tokens(
    connection: &Connection,
    now: OffsetDateTime,
) -> Result<u64, Failure> {
    let purged = connection
        .prepare_cached("DELETE FROM revoked_tokens WHERE expires_at < ?1")?
        .execute([micros_ceil(now)])?;
    Ok(u64::try_from(purged).unwrap_or(u64::MAX))
}

/// Records a ticket's use: true when this is its first, false when a row says it was used already.
pub(super) fn use_ticket(
    connection: &Connection,
    ticket_id: &str,
    expires_at: OffsetDateTime,
) -> Result<bool, Failure> {
    let inserted = connection
        .prepare_cached(
            "INSERT INTO used_ws_tickets (id, expires_at) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
        )?
        .execute(params![ticket_id, micros(expires_at)])?;
    Ok(inserted == 1)
}

/// Forgets the uses of tickets that expired before `now`.
pub(super) fn purge_used_tickets(
    connection: &Connection,
    now: OffsetDateTime,
) -> Result<u64, Failure> {
    let purged = connection
        .prepare_cached("DELETE FROM used_ws_tickets WHERE expires_at < ?1")?
        .execute([micros_ceil(now)])?;
    Ok(u64::try_from(purged).unwrap_or(u64::MAX))
}
