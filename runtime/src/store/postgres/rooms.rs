//! Rooms and their members.

use palaver_handlers::StoreError;
use palaver_handlers::model::{Member, NewRoom, ReadPoint, ReadState, Role, Room, direct_key};
use time::OffsetDateTime;
use uuid::Uuid;

use super::PostgresStore;
use super::convert::{member_from_row, pg_error, room_from_row, to_micros};

/// The key room names are unique by: Unicode lower case, computed here because what the database's lower() folds
/// depends on its locale.
fn room_name_key(name: &str) -> String {
    name.to_lowercase()
}

/// Stores a room and makes its owner a member; a taken name (ignoring case) is a conflict.
pub(super) async fn create_room(store: &PostgresStore, room: NewRoom) -> Result<Room, StoreError> {
    let room = Room {
        id: room.id,
        name: room.name,
        private: room.private,
        password_hash: room.password_hash,
        owner_id: room.owner_id,
        created_at: to_micros(room.created_at),
        last_seq: 0,
        direct: false,
    };
    // One statement, so one transaction: the room and its owner's membership are stored together or not at all.
    store
        .execute(
            "WITH room AS (
                 INSERT INTO rooms (id, name, name_key, private, password_hash, owner_id, created_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 RETURNING id, owner_id, created_at
             )
             INSERT INTO room_members (room_id, user_id, joined_at, role)
             SELECT id, owner_id, created_at, 'owner' FROM room",
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

/// Opens the direct room of `room.owner_id` and `other` (creating it the first time) and makes both members, in one
/// transaction. A concurrent open of the same pair waits on the unique dm_key and then finds the room.
pub(super) async fn open_direct(
    store: &PostgresStore,
    room: NewRoom,
    other: Uuid,
) -> Result<(Room, bool), StoreError> {
    let mut client = store.client().await?;
    let transaction = client.transaction().await.map_err(pg_error)?;
    let key = direct_key(room.owner_id, other);
    let opener = room.owner_id;
    let created_at = to_micros(room.created_at);
    let created = transaction
        .execute(
            "INSERT INTO rooms (id, name, name_key, private, password_hash, owner_id, created_at, dm_key)
             VALUES ($1, $2, $3, true, NULL, $4, $5, $6)
             ON CONFLICT (dm_key) WHERE dm_key IS NOT NULL DO NOTHING",
            &[
                &room.id,
                &room.name,
                &room_name_key(&room.name),
                &room.owner_id,
                &created_at,
                &key,
            ],
        )
        .await
        .map_err(pg_error)?
        > 0;
    let row = transaction
        .query_one(
            "SELECT id, name, private, password_hash, owner_id, created_at, last_seq, true AS direct
             FROM rooms WHERE dm_key = $1",
            &[&key],
        )
        .await
        .map_err(pg_error)?;
    let opened = room_from_row(&row).map_err(pg_error)?;
    transaction
        .execute(
            "INSERT INTO room_members (room_id, user_id, joined_at, last_read_seq)
             SELECT $1, u, $3, $4 FROM UNNEST($2::uuid[]) AS u
             ON CONFLICT (room_id, user_id) DO NOTHING",
            &[
                &opened.id,
                &vec![opener, other],
                &created_at,
                &opened.last_seq,
            ],
        )
        .await
        .map_err(pg_error)?;
    transaction.commit().await.map_err(pg_error)?;
    Ok((opened, created))
}

/// Records (or forgets) that `blocker` refuses direct messages from `blocked`; whether anything changed.
pub(super) async fn set_blocked(
    store: &PostgresStore,
    blocker: Uuid,
    blocked: Uuid,
    blocked_now: bool,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let changed = if blocked_now {
        store
            .execute(
                "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&blocker, &blocked, &to_micros(at)],
            )
            .await?
    } else {
        store
            .execute(
                "DELETE FROM blocks WHERE blocker_id = $1 AND blocked_id = $2",
                &[&blocker, &blocked],
            )
            .await?
    };
    Ok(changed > 0)
}

/// Whether `blocker` refuses direct messages from `blocked`.
pub(super) async fn is_blocked(
    store: &PostgresStore,
    blocker: Uuid,
    blocked: Uuid,
) -> Result<bool, StoreError> {
    let row = store
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM blocks WHERE blocker_id = $1 AND blocked_id = $2)",
            &[&blocker, &blocked],
        )
        .await?;
    row.try_get(0).map_err(pg_error)
}

/// The room with this name, ignoring case.
pub(super) async fn room_by_name(
    store: &PostgresStore,
    name: &str,
) -> Result<Option<Room>, StoreError> {
    let row = store
        .query_opt(
            "SELECT id, name, private, password_hash, owner_id, created_at, last_seq, dm_key IS NOT NULL AS direct FROM rooms WHERE name_key = $1",
            &[&room_name_key(name)],
        )
        .await?;
    row.as_ref()
        .map(room_from_row)
        .transpose()
        .map_err(pg_error)
}

/// Every room, oldest first (creation order breaks ties).
pub(super) async fn list_rooms(store: &PostgresStore) -> Result<Vec<Room>, StoreError> {
    let rows = store
        .query(
            "SELECT id, name, private, password_hash, owner_id, created_at, last_seq, dm_key IS NOT NULL AS direct FROM rooms
                 ORDER BY created_at, position",
            &[],
        )
        .await?;
    rows.iter()
        .map(room_from_row)
        .collect::<Result<_, _>>()
        .map_err(pg_error)
}

/// The newest seq of each existing room among `room_ids`, in one query.
pub(super) async fn last_seqs(
    store: &PostgresStore,
    room_ids: &[Uuid],
) -> Result<Vec<(Uuid, i64)>, StoreError> {
    let rows = store
        .query(
            "SELECT id, last_seq FROM rooms WHERE id = ANY($1)",
            &[&room_ids],
        )
        .await?;
    rows.iter()
        .map(|row| Ok((row.try_get("id")?, row.try_get("last_seq")?)))
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(pg_error)
}

/// How many rooms `owner_id` owns.
pub(super) async fn count_rooms_owned(
    store: &PostgresStore,
    owner_id: Uuid,
) -> Result<u64, StoreError> {
    let row = store
        .query_one(
            "SELECT count(*) FROM rooms WHERE owner_id = $1",
            &[&owner_id],
        )
        .await?;
    row.try_get::<_, i64>(0)
        .map(i64::unsigned_abs)
        .map_err(pg_error)
}

/// Deletes a room with its messages and memberships; `false` if there was no such room.
pub(super) async fn delete_room(store: &PostgresStore, room_id: Uuid) -> Result<bool, StoreError> {
    // The room's messages and memberships go with it (ON DELETE CASCADE), in this one statement. Deleting the
    // row waits for a batch holding the room's lock to commit, and that batch's messages go too.
    let deleted = store
        .execute("DELETE FROM rooms WHERE id = $1", &[&room_id])
        .await?;
    Ok(deleted > 0)
}

/// Makes `user_id` a member of `room_id`; `false` if they were one already.
pub(super) async fn add_member(
    store: &PostgresStore,
    room_id: Uuid,
    user_id: Uuid,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let added = store
        .execute(
            "INSERT INTO room_members (room_id, user_id, joined_at, last_read_seq)
                 SELECT $1, $2, $3, last_seq FROM rooms WHERE id = $1
                 ON CONFLICT (room_id, user_id) DO NOTHING",
            &[&room_id, &user_id, &to_micros(at)],
        )
        .await?;
    Ok(added > 0)
}

/// The member's role; `None` for a non-member.
pub(super) async fn role_of(
    store: &PostgresStore,
    room_id: Uuid,
    user_id: Uuid,
) -> Result<Option<Role>, StoreError> {
    let row = store
        .query_opt(
            "SELECT role FROM room_members WHERE room_id = $1 AND user_id = $2",
            &[&room_id, &user_id],
        )
        .await?;
    row.map(|row| {
        let role: String = row.try_get(0).map_err(pg_error)?;
        Role::parse(&role).ok_or_else(|| StoreError::Backend(format!("unknown role {role:?}")))
    })
    .transpose()
}

/// Gives a member a role other than owner (a member who is the owner keeps it: ownership moves only by transfer).
pub(super) async fn set_role(
    store: &PostgresStore,
    room_id: Uuid,
    user_id: Uuid,
    role: Role,
) -> Result<bool, StoreError> {
    if role == Role::Owner {
        return Err(StoreError::Backend(
            "an owner is made by transfer_ownership".into(),
        ));
    }
    let changed = store
        .execute(
            "UPDATE room_members SET role = $3 WHERE room_id = $1 AND user_id = $2 AND role <> 'owner'",
            &[&room_id, &user_id, &role.as_str()],
        )
        .await?;
    Ok(changed > 0)
}

/// Moves ownership from `from` to the member `to` (the old owner becomes an admin), and the room's owner_id with it,
/// in one transaction under the room's row lock.
pub(super) async fn transfer_ownership(
    store: &PostgresStore,
    room_id: Uuid,
    from: Uuid,
    to: Uuid,
) -> Result<bool, StoreError> {
    if from == to {
        return Ok(false);
    }
    let mut client = store.client().await?;
    let transaction = client.transaction().await.map_err(pg_error)?;
    transaction
        .execute("SELECT 1 FROM rooms WHERE id = $1 FOR UPDATE", &[&room_id])
        .await
        .map_err(pg_error)?;
    let roles = transaction
        .query(
            "SELECT user_id, role FROM room_members WHERE room_id = $1 AND user_id = ANY($2)",
            &[&room_id, &vec![from, to]],
        )
        .await
        .map_err(pg_error)?;
    let role_of = |user: Uuid| {
        roles.iter().find_map(|row| {
            let id: Uuid = row.try_get(0).ok()?;
            let role: String = row.try_get(1).ok()?;
            (id == user).then_some(role)
        })
    };
    if role_of(from).as_deref() != Some("owner") || role_of(to).is_none() {
        return Ok(false);
    }
    transaction
        .execute(
            "UPDATE room_members SET role = CASE WHEN user_id = $2 THEN 'admin' ELSE 'owner' END
             WHERE room_id = $1 AND user_id IN ($2, $3)",
            &[&room_id, &from, &to],
        )
        .await
        .map_err(pg_error)?;
    transaction
        .execute(
            "UPDATE rooms SET owner_id = $2 WHERE id = $1",
            &[&room_id, &to],
        )
        .await
        .map_err(pg_error)?;
    transaction.commit().await.map_err(pg_error)?;
    Ok(true)
}

/// Moves the member's read point forward to `seq`, clamped to the room's newest seq.
pub(super) async fn mark_read(
    store: &PostgresStore,
    room_id: Uuid,
    user_id: Uuid,
    seq: i64,
) -> Result<Option<ReadPoint>, StoreError> {
    // One statement: the update moves the point only forward (the row lock orders concurrent marks), and the member's
    // row is read either way, so a mark that does not move still answers where the point stands.
    let row = store
        .query_opt(
            "WITH target AS (
                 SELECT LEAST($3::bigint, r.last_seq) AS seq FROM rooms r WHERE r.id = $1
             ), moved AS (
                 UPDATE room_members rm SET last_read_seq = target.seq FROM target
                 WHERE rm.room_id = $1 AND rm.user_id = $2 AND rm.last_read_seq < target.seq
                 RETURNING rm.last_read_seq
             )
             SELECT coalesce((SELECT last_read_seq FROM moved), rm.last_read_seq) AS seq,
                    EXISTS (SELECT 1 FROM moved) AS moved
             FROM room_members rm WHERE rm.room_id = $1 AND rm.user_id = $2",
            &[&room_id, &user_id, &seq],
        )
        .await?;
    row.map(|row| {
        Ok(ReadPoint {
            seq: row.try_get("seq")?,
            moved: row.try_get("moved")?,
        })
    })
    .transpose()
    .map_err(pg_error)
}

/// The user's read point and unread count in each of their rooms: one count over the (room_id, seq) index per room.
pub(super) async fn read_state(
    store: &PostgresStore,
    user_id: Uuid,
) -> Result<Vec<ReadState>, StoreError> {
    let rows = store
        .query(
            "SELECT rm.room_id, rm.last_read_seq,
                    (SELECT count(*) FROM messages m
                     WHERE m.room_id = rm.room_id AND m.seq > rm.last_read_seq AND m.kind = 'message'
                       AND m.deleted_at IS NULL AND m.user_id <> rm.user_id) AS unread
             FROM room_members rm WHERE rm.user_id = $1",
            &[&user_id],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let unread: i64 = row.try_get("unread")?;
            Ok(ReadState {
                room_id: row.try_get("room_id")?,
                last_read_seq: row.try_get("last_read_seq")?,
                unread: u64::try_from(unread).unwrap_or(0),
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(pg_error)
}

/// Ends a membership; `false` if there was none.
pub(super) async fn remove_member(
    store: &PostgresStore,
    room_id: Uuid,
    user_id: Uuid,
) -> Result<bool, StoreError> {
    let removed = store
        .execute(
            "DELETE FROM room_members WHERE room_id = $1 AND user_id = $2",
            &[&room_id, &user_id],
        )
        .await?;
    Ok(removed > 0)
}

/// Whether `user_id` is a member of `room_id`.
pub(super) async fn is_member(
    store: &PostgresStore,
    room_id: Uuid,
    user_id: Uuid,
) -> Result<bool, StoreError> {
    let row = store
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2)",
            &[&room_id, &user_id],
        )
        .await?;
    row.try_get(0).map_err(pg_error)
}

/// The ids of the rooms `user_id` is a member of.
pub(super) async fn rooms_of_member(
    store: &PostgresStore,
    user_id: Uuid,
) -> Result<Vec<Uuid>, StoreError> {
    let rows = store
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

/// The members of `room_id`, by username ignoring case.
pub(super) async fn members(
    store: &PostgresStore,
    room_id: Uuid,
) -> Result<Vec<Member>, StoreError> {
    let rows = store
        .query(
            r#"SELECT u.id, u.username, rm.last_read_seq, rm.role FROM room_members rm JOIN users u ON u.id = rm.user_id
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
