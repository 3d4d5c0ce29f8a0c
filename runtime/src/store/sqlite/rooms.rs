//! Rooms and their members.

use palaver_handlers::model::{Member, NewRoom, ReadPoint, ReadState, Role, Room, direct_key};
use rusqlite::{Connection, OptionalExtension, Row, TransactionBehavior, params};
use time::OffsetDateTime;
use uuid::Uuid;

use super::convert::{Failure, as_stored, backend, count, id_text, micros, time_at, uuid_at};

/// The key room names are unique by: Unicode lower case, computed here because SQLite's `lower()` folds only ASCII
/// and room names may hold any letters.
fn name_key(name: &str) -> String {
    name.to_lowercase()
}

/// Stores a room and makes its owner a member, in one transaction.
pub(super) fn create_room(connection: &mut Connection, new: NewRoom) -> Result<Room, Failure> {
    let created_at = micros(new.created_at);
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.prepare_cached(
        "INSERT INTO rooms (id, name, name_key, private, password_hash, owner_id, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        id_text(new.id),
        new.name,
        name_key(&new.name),
        new.private,
        new.password_hash,
        id_text(new.owner_id),
        created_at,
    ])?;
    insert_member(&tx, new.id, new.owner_id, created_at)?;
    tx.prepare_cached(
        "UPDATE room_members SET role = 'owner' WHERE room_id = ?1 AND user_id = ?2",
    )?
    .execute(params![id_text(new.id), id_text(new.owner_id)])?;
    tx.commit()?;
    Ok(Room {
        id: new.id,
        name: new.name,
        private: new.private,
        password_hash: new.password_hash,
        owner_id: new.owner_id,
        created_at: as_stored(new.created_at),
        last_seq: 0,
        direct: false,
    })
}

/// Opens the direct room of `new.owner_id` and `other` (creating it the first time) and makes both members, in one
/// transaction on the writer's connection.
pub(super) fn open_direct(
    connection: &mut Connection,
    new: NewRoom,
    other: Uuid,
) -> Result<(Room, bool), Failure> {
    let created_at = micros(new.created_at);
    let key = direct_key(new.owner_id, other);
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let created = tx
        .prepare_cached(
            "INSERT INTO rooms (id, name, name_key, private, password_hash, owner_id, created_at, dm_key)
             VALUES (?1, ?2, ?3, 1, NULL, ?4, ?5, ?6)
             ON CONFLICT (dm_key) WHERE dm_key IS NOT NULL DO NOTHING",
        )?
        .execute(params![
            id_text(new.id),
            new.name,
            name_key(&new.name),
            id_text(new.owner_id),
            created_at,
            key,
        ])?
        > 0;
    let room = tx
        .prepare_cached(
            "SELECT id, name, private, password_hash, owner_id, created_at, last_seq, 1 FROM rooms
             WHERE dm_key = ?1",
        )?
        .query_row([key], room_from_row)?;
    for user in [new.owner_id, other] {
        insert_member(&tx, room.id, user, created_at)?;
    }
    tx.commit()?;
    Ok((room, created))
}

/// Records (or forgets) that `blocker` refuses direct messages from `blocked`; whether anything changed.
pub(super) fn set_blocked(
    connection: &Connection,
    blocker: Uuid,
    blocked: Uuid,
    blocked_now: bool,
    at: OffsetDateTime,
) -> Result<bool, Failure> {
    let changed = if blocked_now {
        connection
            .prepare_cached(
                "INSERT INTO blocks (blocker_id, blocked_id, created_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT DO NOTHING",
            )?
            .execute(params![id_text(blocker), id_text(blocked), micros(at)])?
    } else {
        connection
            .prepare_cached("DELETE FROM blocks WHERE blocker_id = ?1 AND blocked_id = ?2")?
            .execute(params![id_text(blocker), id_text(blocked)])?
    };
    Ok(changed > 0)
}

/// Whether `blocker` refuses direct messages from `blocked`.
pub(super) fn is_blocked(
    connection: &Connection,
    blocker: Uuid,
    blocked: Uuid,
) -> Result<bool, Failure> {
    Ok(connection
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM blocks WHERE blocker_id = ?1 AND blocked_id = ?2)",
        )?
        .query_row(params![id_text(blocker), id_text(blocked)], |row| {
            row.get(0)
        })?)
}

/// The room with this name, ignoring case.
pub(super) fn room_by_name(connection: &Connection, name: &str) -> Result<Option<Room>, Failure> {
    let room = connection
        .prepare_cached(
            "SELECT id, name, private, password_hash, owner_id, created_at, last_seq, dm_key IS NOT NULL FROM rooms
             WHERE name_key = ?1",
        )?
        .query_row([name_key(name)], room_from_row)
        .optional()?;
    Ok(room)
}

/// Every room, oldest first (rooms created in the same microsecond in the order they were stored).
pub(super) fn list_rooms(connection: &Connection) -> Result<Vec<Room>, Failure> {
    let mut statement = connection.prepare_cached(
        "SELECT id, name, private, password_hash, owner_id, created_at, last_seq, dm_key IS NOT NULL FROM rooms
         ORDER BY created_at, rowid",
    )?;
    let rooms = statement
        .query_map([], room_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rooms)
}

fn room_from_row(row: &Row<'_>) -> rusqlite::Result<Room> {
    Ok(Room {
        id: uuid_at(row, 0)?,
        name: row.get(1)?,
        private: row.get(2)?,
        password_hash: row.get(3)?,
        owner_id: uuid_at(row, 4)?,
        created_at: time_at(row, 5)?,
        last_seq: row.get(6)?,
        direct: row.get(7)?,
    })
}

/// The newest seq of each existing room among `room_ids`.
pub(super) fn last_seqs(
    connection: &Connection,
    room_ids: &[Uuid],
) -> Result<Vec<(Uuid, i64)>, Failure> {
    let mut statement = connection.prepare_cached("SELECT last_seq FROM rooms WHERE id = ?1")?;
    let mut seqs = Vec::with_capacity(room_ids.len());
    for room_id in room_ids {
        let found = statement
            .query_row([id_text(*room_id)], |row| row.get::<_, i64>(0))
            .optional()?;
        if let Some(last_seq) = found {
            seqs.push((*room_id, last_seq));
        }
    }
    Ok(seqs)
}

/// How many rooms `owner_id` owns.
pub(super) fn count_rooms_owned(connection: &Connection, owner_id: Uuid) -> Result<u64, Failure> {
    let owned: i64 = connection
        .prepare_cached("SELECT count(*) FROM rooms WHERE owner_id = ?1")?
        .query_row([id_text(owner_id)], |row| row.get(0))?;
    Ok(count(owned))
}

/// Deletes a room, its messages and its memberships in one transaction; false if there was no such room.
pub(super) fn delete_room(connection: &mut Connection, room_id: Uuid) -> Result<bool, Failure> {
    let id = id_text(room_id);
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.prepare_cached("DELETE FROM messages WHERE room_id = ?1")?
        .execute([&id])?;
    tx.prepare_cached("DELETE FROM room_members WHERE room_id = ?1")?
        .execute([&id])?;
    let deleted = tx
        .prepare_cached("DELETE FROM rooms WHERE id = ?1")?
        .execute([&id])?;
    tx.commit()?;
    Ok(deleted > 0)
}

/// Makes `user_id` a member of `room_id`; false if they already were. An unknown room or user fails (foreign keys).
pub(super) fn add_member(
    connection: &Connection,
    room_id: Uuid,
    user_id: Uuid,
    at: OffsetDateTime,
) -> Result<bool, Failure> {
    Ok(insert_member(connection, room_id, user_id, micros(at))?)
}

fn insert_member(
    connection: &Connection,
    room_id: Uuid,
    user_id: Uuid,
    at: i64,
) -> rusqlite::Result<bool> {
    let inserted = connection
        .prepare_cached(
            "INSERT INTO room_members (room_id, user_id, joined_at, last_read_seq)
             SELECT ?1, ?2, ?3, last_seq FROM rooms WHERE id = ?1
             ON CONFLICT (room_id, user_id) DO NOTHING",
        )?
        .execute(params![id_text(room_id), id_text(user_id), at])?;
    Ok(inserted > 0)
}

/// The member's role; `None` for a non-member.
pub(super) fn role_of(
    connection: &Connection,
    room_id: Uuid,
    user_id: Uuid,
) -> Result<Option<Role>, Failure> {
    let role: Option<String> = connection
        .prepare_cached("SELECT role FROM room_members WHERE room_id = ?1 AND user_id = ?2")?
        .query_row(params![id_text(room_id), id_text(user_id)], |row| {
            row.get(0)
        })
        .optional()?;
    role.map(|role| Role::parse(&role).ok_or_else(|| backend(format!("unknown role {role:?}"))))
        .transpose()
}

/// Gives a member a role other than owner (the owner keeps it: ownership moves only by transfer).
pub(super) fn set_role(
    connection: &Connection,
    room_id: Uuid,
    user_id: Uuid,
    role: Role,
) -> Result<bool, Failure> {
    if role == Role::Owner {
        return Err(backend("an owner is made by transfer_ownership".into()));
    }
    let changed = connection
        .prepare_cached(
            "UPDATE room_members SET role = ?3 WHERE room_id = ?1 AND user_id = ?2 AND role <> 'owner'",
        )?
        .execute(params![id_text(room_id), id_text(user_id), role.as_str()])?;
    Ok(changed > 0)
}

/// Moves ownership from `from` to the member `to` (the old owner becomes an admin), and the room's owner_id with it,
/// in one transaction.
pub(super) fn transfer_ownership(
    connection: &mut Connection,
    room_id: Uuid,
    from: Uuid,
    to: Uuid,
) -> Result<bool, Failure> {
    if from == to {
        return Ok(false);
    }
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let owns = role_of(&tx, room_id, from)? == Some(Role::Owner);
    if !owns || role_of(&tx, room_id, to)?.is_none() {
        return Ok(false);
    }
    let (room, old, new) = (id_text(room_id), id_text(from), id_text(to));
    tx.prepare_cached(
        "UPDATE room_members SET role = 'admin' WHERE room_id = ?1 AND user_id = ?2",
    )?
    .execute(params![room, old])?;
    tx.prepare_cached(
        "UPDATE room_members SET role = 'owner' WHERE room_id = ?1 AND user_id = ?2",
    )?
    .execute(params![room, new])?;
    tx.prepare_cached("UPDATE rooms SET owner_id = ?2 WHERE id = ?1")?
        .execute(params![room, new])?;
    tx.commit()?;
    Ok(true)
}

/// Moves the member's read point forward to `seq`, clamped to the room's newest seq (on the writer's connection, so
/// concurrent marks are applied one after the other).
pub(super) fn mark_read(
    connection: &Connection,
    room_id: Uuid,
    user_id: Uuid,
    seq: i64,
) -> Result<Option<ReadPoint>, Failure> {
    let (room, user) = (id_text(room_id), id_text(user_id));
    let moved: Option<i64> = connection
        .prepare_cached(
            "UPDATE room_members SET last_read_seq = min(?3, (SELECT last_seq FROM rooms WHERE id = ?1))
             WHERE room_id = ?1 AND user_id = ?2
               AND last_read_seq < min(?3, (SELECT last_seq FROM rooms WHERE id = ?1))
             RETURNING last_read_seq",
        )?
        .query_row(params![room, user, seq], |row| row.get(0))
        .optional()?;
    if let Some(seq) = moved {
        return Ok(Some(ReadPoint { seq, moved: true }));
    }
    let current: Option<i64> = connection
        .prepare_cached(
            "SELECT last_read_seq FROM room_members WHERE room_id = ?1 AND user_id = ?2",
        )?
        .query_row(params![room, user], |row| row.get(0))
        .optional()?;
    Ok(current.map(|seq| ReadPoint { seq, moved: false }))
}

/// The user's read point and unread count in each of their rooms: one count over the (room_id, seq) index per room.
pub(super) fn read_state(
    connection: &Connection,
    user_id: Uuid,
) -> Result<Vec<ReadState>, Failure> {
    let mut statement = connection.prepare_cached(
        "SELECT rm.room_id, rm.last_read_seq,
                (SELECT count(*) FROM messages AS m
                 WHERE m.room_id = rm.room_id AND m.seq > rm.last_read_seq AND m.kind = 'message'
                   AND m.deleted_at IS NULL AND m.user_id <> rm.user_id)
         FROM room_members AS rm WHERE rm.user_id = ?1",
    )?;
    let states = statement
        .query_map([id_text(user_id)], |row| {
            Ok(ReadState {
                room_id: uuid_at(row, 0)?,
                last_read_seq: row.get(1)?,
                unread: count(row.get(2)?),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(states)
}

/// Ends a membership; false if there was none.
pub(super) fn remove_member(
    connection: &Connection,
    room_id: Uuid,
    user_id: Uuid,
) -> Result<bool, Failure> {
    let removed = connection
        .prepare_cached("DELETE FROM room_members WHERE room_id = ?1 AND user_id = ?2")?
        .execute([id_text(room_id), id_text(user_id)])?;
    Ok(removed > 0)
}

/// Whether `user_id` is a member of `room_id`.
pub(super) fn is_member(
    connection: &Connection,
    room_id: Uuid,
    user_id: Uuid,
) -> Result<bool, Failure> {
    let member = connection
        .prepare_cached(
            "SELECT EXISTS (SELECT 1 FROM room_members WHERE room_id = ?1 AND user_id = ?2)",
        )?
        .query_row([id_text(room_id), id_text(user_id)], |row| row.get(0))?;
    Ok(member)
}

/// The ids of the rooms a user is a member of.
pub(super) fn rooms_of_member(
    connection: &Connection,
    user_id: Uuid,
) -> Result<Vec<Uuid>, Failure> {
    let mut statement =
        connection.prepare_cached("SELECT room_id FROM room_members WHERE user_id = ?1")?;
    let rooms = statement
        .query_map([id_text(user_id)], |row| uuid_at(row, 0))?
        .collect::<rusqlite::Result<_>>()?;
    Ok(rooms)
}

/// The members of a room, by username ignoring case.
pub(super) fn members(connection: &Connection, room_id: Uuid) -> Result<Vec<Member>, Failure> {
    let mut statement = connection.prepare_cached(
        "SELECT u.id, u.username, rm.last_read_seq, rm.role FROM room_members AS rm JOIN users AS u ON u.id = rm.user_id
         WHERE rm.room_id = ?1
         ORDER BY lower(u.username)",
    )?;
    let members = statement
        .query_map([id_text(room_id)], |row| {
            Ok(Member {
                user_id: uuid_at(row, 0)?,
                username: row.get(1)?,
                last_read_seq: row.get(2)?,
                role: Role::parse(&row.get::<_, String>(3)?).unwrap_or(Role::Member),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    Ok(members)
}
