//! `transfer_ownership`: the owner hands the room to another member, and becomes an admin. The room is told of both
//! roles (`role_changed`).

use serde::Deserialize;

use crate::actions::room_access::{find_room, user_named};
use crate::actions::set_role::announce;
use crate::context::Context;
use crate::error::Error;
use crate::event::{Reply, Session};
use crate::model::Role;

/// The `data` of a `transfer_ownership` command.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferOwnershipRequest {
    pub room: String,
    /// The member who owns the room afterwards.
    pub username: String,
}

/// Transfers the room; replies nothing more (the room's events say it).
pub async fn transfer_ownership(
    ctx: &dyn Context,
    session: &Session,
    req: TransferOwnershipRequest,
) -> Result<Vec<Reply>, Error> {
    let me = &session.principal;
    let room = find_room(ctx, &req.room).await?;
    let actor = ctx.store().role_of(room.id, me.user_id).await?;
    if room.direct || actor != Some(Role::Owner) {
        return Err(Error::NotOwnerToTransfer);
    }
    let target = user_named(ctx, &req.username).await?;
    if target.id == me.user_id {
        return Err(Error::RoleNotAllowed);
    }
    if !ctx
        .store()
        .transfer_ownership(room.id, me.user_id, target.id)
        .await?
    {
        return Err(Error::NotAMember);
    }
    for (username, role) in [
        (target.username, Role::Owner),
        (me.username.clone(), Role::Admin),
    ] {
        announce(ctx, &room, username, role, &me.username);
    }
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::actions::delete_room::delete_room_for;
    use crate::event::RoomEvent;
    use crate::testing::TestContext;
    use crate::testing::fixtures::*;

    fn to(username: &str) -> TransferOwnershipRequest {
        TransferOwnershipRequest {
            room: "general".into(),
            username: username.into(),
        }
    }

    #[tokio::test]
    async fn the_owner_hands_the_room_on_and_becomes_an_admin() {
        let ctx = TestContext::new();
        let owner = on(1, &user(&ctx, "owner").await);
        let heir = on(2, &user(&ctx, "heir").await);
        let room = public_room(&ctx, &owner, "general").await;
        enter(&ctx, &heir, "general").await;
        drain(&ctx, &[1, 2]);
        assert_eq!(
            transfer_ownership(&ctx, &heir, to("owner")).await,
            Err(Error::NotOwnerToTransfer)
        );
        assert_eq!(
            transfer_ownership(&ctx, &owner, to("owner")).await,
            Err(Error::RoleNotAllowed)
        );
        let stranger = user(&ctx, "stranger").await;
        assert_eq!(
            transfer_ownership(&ctx, &owner, to("stranger")).await,
            Err(Error::NotAMember)
        );
        assert_eq!(
            transfer_ownership(&ctx, &owner, to("heir")).await,
            Ok(vec![])
        );
        let role = |id| ctx.store.role_of(room.id, id);
        assert_eq!(
            role(heir.principal.user_id).await.unwrap(),
            Some(Role::Owner)
        );
        assert_eq!(
            role(owner.principal.user_id).await.unwrap(),
            Some(Role::Admin)
        );
        let seen: Vec<RoomEvent> = events(&ctx, 1)
            .into_iter()
            .map(|(_, event)| event)
            .collect();
        assert_eq!(
            seen,
            vec![
                RoomEvent::RoleChanged {
                    username: "heir".into(),
                    role: Role::Owner,
                    by: "owner".into()
                },
                RoomEvent::RoleChanged {
                    username: "owner".into(),
                    role: Role::Admin,
                    by: "owner".into()
                },
            ]
        );
        // The room is the heir's to delete now.
        assert_eq!(
            delete_room_for(&ctx, &owner.principal, "general").await,
            Err(Error::NotOwner)
        );
        delete_room_for(&ctx, &heir.principal, "general")
            .await
            .unwrap();
        assert!(role(stranger.user_id).await.unwrap().is_none());
    }
}
