//! `create_room` (WebSocket) and `POST /api/rooms`: create a room, owned by its creator, who joins it.

use serde::Deserialize;
use uuid::Uuid;

use crate::actions::required;
use crate::context::Context;
use crate::error::{Error, Field, StoreError, Unique};
use crate::event::{Reply, RoomView, Session};
use crate::model::{NewRoom, Principal, Room, SecurityEvent};
use crate::validate;

/// The `data` of a `create_room` command, and the body of `POST /api/rooms`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRoomRequest {
    pub name: String,
    /// Private rooms need a password to join; absent means public.
    pub private: Option<bool>,
    /// Required for a private room, refused for a public one.
    pub password: Option<String>,
}

/// Creates the room and subscribes the creator's connection to it. Nobody else is in a new room, so nothing is
/// published. Replies: the room, then the welcome.
pub async fn create_room(
    ctx: &dyn Context,
    session: &Session,
    req: CreateRoomRequest,
) -> Result<Vec<Reply>, Error> {
    let room = create_room_for(ctx, &session.principal, &req).await?;
    let principal = &session.principal;
    let subscribed = ctx
        .hub()
        .subscribe(session.conn, principal.user_id, room.id, &room.name);
    if subscribed.first_for_user {
        // Nobody else is in a new room: presence learns of the creator, and nobody is told.
        ctx.presence()
            .arrived(room.id, principal.user_id, &principal.username);
    }
    ctx.broker().watch(room.id, &room.name, 0);
    let online = ctx.presence().online_users(room.id).len();
    Ok(vec![
        Reply::RoomCreated(RoomView::of(&room, online, true).with_read_state(0, 0)),
        Reply::Welcome {
            room: room.name,
            last_seq: 0,
            at: ctx.clock().now(),
        },
    ])
}

/// Validates the request and stores the room with `principal` as owner and member; nothing is stored if a rule fails.
/// The core of both the WebSocket command and the REST route.
pub async fn create_room_for(
    ctx: &dyn Context,
    principal: &Principal,
    req: &CreateRoomRequest,
) -> Result<Room, Error> {
    let name = validate::room_name(&req.name)?;
    let private = req.private.unwrap_or(false);
    let password = room_password(private, &req.password)?;
    let quota = ctx.limits().rooms_per_user;
    if ctx.store().count_rooms_owned(principal.user_id).await? >= quota {
        return Err(Error::RoomQuota(quota));
    }
    // Checked before hashing so that a taken name costs no bcrypt round; the store's unique index stays the judge.
    if ctx.store().room_by_name(name).await?.is_some() {
        return Err(Error::RoomExists);
    }
    let password_hash = match password {
        Some(password) => Some(ctx.credentials().hash_password(password).await?),
        None => None,
    };
    let room = NewRoom {
        id: Uuid::now_v7(),
        name: name.to_owned(),
        private,
        password_hash,
        owner_id: principal.user_id,
        created_at: ctx.clock().now(),
    };
    let room = ctx
        .store()
        .create_room(room)
        .await
        .map_err(creation_error)?;
    ctx.guard().record(
        principal,
        SecurityEvent::RoomCreated {
            room: room.name.clone(),
            private: room.private,
        },
    );
    Ok(room)
}

/// A store failure of creating a room as the client should see it: a taken name is [`Error::RoomExists`] (the
/// general conversion treats a room-name conflict as unexpected).
fn creation_error(err: StoreError) -> Error {
    match err {
        StoreError::Conflict(Unique::RoomName) => Error::RoomExists,
        other => other.into(),
    }
}

/// The password a room is created with: required (and well-formed) for a private room, refused for a public one.
/// An empty password on a public room counts as none, as a form with an empty field sends it.
fn room_password(private: bool, password: &Option<String>) -> Result<Option<&str>, Error> {
    if private {
        let password = required(Field::RoomPassword, password).map_err(|_| {
            Error::invalid(
                Field::RoomPassword,
                "password is required for a private room",
            )
        })?;
        return validate::room_password(password).map(Some);
    }
    match password.as_deref() {
        None | Some("") => Ok(None),
        Some(_) => Err(Error::invalid(
            Field::RoomPassword,
            "a public room cannot have a password",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::SecurityEvent;
    use crate::testing::TestContext;
    use crate::testing::fixtures::*;
    use crate::{Clock, Credentials, ErrorKind, Hub, Store};

    fn request(name: &str, private: Option<bool>, password: Option<&str>) -> CreateRoomRequest {
        CreateRoomRequest {
            name: name.into(),
            private,
            password: password.map(Into::into),
        }
    }

    #[tokio::test]
    async fn creates_a_public_room_and_joins_it() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let replies = create_room(&ctx, &john, request("general", None, None))
            .await
            .unwrap();
        let room = ctx.store.room_by_name("general").await.unwrap().unwrap();
        let now = ctx.clock.now();
        assert_eq!(
            replies,
            vec![
                Reply::RoomCreated(RoomView {
                    name: "general".into(),
                    private: false,
                    id: room.id,
                    members_online: 1,
                    created_by: john.principal.user_id,
                    created_at: now,
                    member: true,
                    direct: false,
                    with: None,
                    last_read_seq: Some(0),
                    unread: Some(0),
                }),
                Reply::Welcome {
                    room: "general".into(),
                    last_seq: 0,
                    at: now
                },
            ]
        );
        assert_eq!(room.owner_id, john.principal.user_id);
        assert_eq!(room.password_hash, None);
        assert_eq!(
            ctx.guard.events(),
            vec![(
                john.principal.user_id,
                SecurityEvent::RoomCreated {
                    room: "general".into(),
                    private: false
                }
            )],
            "the creation is audited"
        );
        assert!(
            ctx.store
                .is_member(room.id, john.principal.user_id)
                .await
                .unwrap()
        );
        assert_eq!(ctx.hub.rooms_of(1), vec![(room.id, "general".into())]);
        assert!(ctx.hub.published().is_empty());
        assert!(ctx.hub.take(1).is_empty());
    }

    #[tokio::test]
    async fn a_private_rooms_password_is_stored_hashed() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let replies = create_room(
            &ctx,
            &john,
            request("secret", Some(true), Some(ROOM_PASSWORD)),
        )
        .await
        .unwrap();
        assert!(matches!(&replies[0], Reply::RoomCreated(view) if view.private));
        let room = ctx.store.room_by_name("secret").await.unwrap().unwrap();
        assert!(room.private);
        let hash = room.password_hash.expect("a private room has a hash");
        assert_ne!(hash, ROOM_PASSWORD);
        assert!(
            ctx.credentials
                .verify_password(ROOM_PASSWORD, Some(&hash))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn refused_requests_store_and_join_nothing() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let cases = [
            (request("x", None, None), "name"),
            (request(" general", None, None), "name"),
            (request("semi;colon", None, None), "name"),
            (request("secret", Some(true), None), "password"),
            (request("secret", Some(true), Some("")), "password"),
            (request("secret", Some(true), Some("short")), "password"),
            (
                request("secret", Some(true), Some(&"k".repeat(73))),
                "password",
            ),
            (
                request("open", Some(false), Some(ROOM_PASSWORD)),
                "password",
            ),
            (request("open", None, Some(ROOM_PASSWORD)), "password"),
        ];
        for (req, field) in cases {
            let err = create_room(&ctx, &john, req.clone()).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Invalid, "{req:?}");
            assert_eq!(err.field(), Some(field), "{req:?}");
        }
        let err = create_room(&ctx, &john, request("secret", Some(true), None))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "password is required for a private room");
        let err = create_room(&ctx, &john, request("open", None, Some(ROOM_PASSWORD)))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "a public room cannot have a password");
        assert!(ctx.store.list_rooms().await.unwrap().is_empty());
        assert!(ctx.hub.rooms_of(1).is_empty());
        assert!(
            ctx.guard.events().is_empty(),
            "nothing created, nothing audited"
        );
    }

    #[tokio::test]
    async fn a_public_room_may_carry_an_empty_password() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        create_room(&ctx, &john, request("open", Some(false), Some("")))
            .await
            .unwrap();
        let room = ctx.store.room_by_name("open").await.unwrap().unwrap();
        assert!(!room.private);
        assert_eq!(room.password_hash, None);
    }

    #[tokio::test]
    async fn names_are_taken_case_insensitively() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        public_room(&ctx, &john, "General").await;
        let err = create_room(&ctx, &jane, request("gENERAL", None, None))
            .await
            .unwrap_err();
        assert_eq!(err, Error::RoomExists);
        assert_eq!(err.to_string(), "room already exists");
        assert_eq!(ctx.store.list_rooms().await.unwrap().len(), 1);
        assert!(ctx.hub.rooms_of(2).is_empty());
    }

    #[test]
    fn a_name_conflict_from_the_store_is_room_exists() {
        // Another node took the name between the check and the insert: the store's unique index answers.
        assert_eq!(
            creation_error(StoreError::Conflict(Unique::RoomName)),
            Error::RoomExists
        );
        assert_eq!(
            creation_error(StoreError::Unavailable("down".into())).kind(),
            ErrorKind::Unavailable
        );
    }

    #[tokio::test]
    async fn the_room_quota_is_enforced() {
        let mut ctx = TestContext::new();
        ctx.limits.rooms_per_user = 2;
        let john = on(1, &user(&ctx, "john_doe").await);
        public_room(&ctx, &john, "one").await;
        public_room(&ctx, &john, "two").await;
        let err = create_room(&ctx, &john, request("three", None, None))
            .await
            .unwrap_err();
        assert_eq!(err, Error::RoomQuota(2));
        assert_eq!(err.to_string(), "you already own 2 rooms, the most allowed");
        assert!(ctx.store.room_by_name("three").await.unwrap().is_none());
        // The quota is per owner: someone else may still create rooms.
        let jane = on(2, &user(&ctx, "jane_doe").await);
        public_room(&ctx, &jane, "three").await;
    }

    #[tokio::test]
    async fn the_store_being_down_is_unavailable() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        ctx.store.set_unavailable(true);
        let err = create_room(&ctx, &john, request("general", None, None))
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert!(ctx.hub.rooms_of(1).is_empty());
    }
}
