//! `set_role`: a room's owner gives a member the role admin, moderator or member; an admin gives moderator or member
//! to moderators and members. Nobody changes their own role, and the owner is made only by `transfer_ownership`.
//! The room is told (`role_changed`).

use serde::Deserialize;

use crate::actions::publish;
use crate::actions::room_access::{MemberAction, member_action};
use crate::context::Context;
use crate::error::Error;
use crate::event::{Reply, RoomEvent, Session};
use crate::model::{Role, Room};

/// The `data` of a `set_role` command.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetRoleRequest {
    pub room: String,
    pub username: String,
    /// `admin`, `moderator` or `member`.
    pub role: String,
}

/// Whether a member with role `actor` may give `role` to a member who has `current`.
pub(crate) fn may_give(actor: Role, current: Role, role: Role) -> bool {
    match actor {
        Role::Owner => current != Role::Owner && role != Role::Owner,
        Role::Admin => current < Role::Admin && role < Role::Admin,
        Role::Moderator | Role::Member => false,
    }
}

/// Changes the member's role and tells the room; replies nothing more (the sender is in the room, or is told by the
/// event on its other connections).
pub async fn set_role(
    ctx: &dyn Context,
    session: &Session,
    req: SetRoleRequest,
) -> Result<Vec<Reply>, Error> {
    let role = Role::parse(&req.role)
        .filter(|role| *role != Role::Owner)
        .ok_or_else(|| {
            Error::Malformed(
                "role must be admin, moderator or member (an owner is made by transfer_ownership)"
                    .into(),
            )
        })?;
    let me = &session.principal;
    let MemberAction {
        room,
        actor,
        target,
        target_role: current,
    } = member_action(ctx, me, &req.room, &req.username).await?;
    if room.direct || target.id == me.user_id || !may_give(actor, current, role) {
        return Err(Error::RoleNotAllowed);
    }
    if !ctx.store().set_role(room.id, target.id, role).await? {
        return Err(Error::NotAMember);
    }
    announce(ctx, &room, target.username, role, &me.username);
    Ok(Vec::new())
}

/// Tells the room that `username` has `role` now, given by `by`.
pub(crate) fn announce(ctx: &dyn Context, room: &Room, username: String, role: Role, by: &str) {
    let changed = RoomEvent::RoleChanged {
        username,
        role,
        by: by.to_owned(),
    };
    publish(ctx, room.id, &room.name, changed, None);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::testing::TestContext;
    use crate::testing::fixtures::*;

    fn give(username: &str, role: &str) -> SetRoleRequest {
        SetRoleRequest {
            room: "general".into(),
            username: username.into(),
            role: role.into(),
        }
    }

    #[test]
    fn who_may_give_which_role() {
        use Role::*;
        let all = [Owner, Admin, Moderator, Member];
        let allowed: Vec<(Role, Role, Role)> = all
            .iter()
            .flat_map(|actor| all.iter().map(move |current| (*actor, *current)))
            .flat_map(|(actor, current)| all.iter().map(move |role| (actor, current, *role)))
            .filter(|(actor, current, role)| may_give(*actor, *current, *role))
            .collect();
        let mut expected = Vec::new();
        for current in [Admin, Moderator, Member] {
            for role in [Admin, Moderator, Member] {
                expected.push((Owner, current, role));
            }
        }
        for current in [Moderator, Member] {
            for role in [Moderator, Member] {
                expected.push((Admin, current, role));
            }
        }
        assert_eq!(allowed, expected);
    }

    #[tokio::test]
    async fn roles_are_stored_told_to_the_room_and_checked() {
        let ctx = TestContext::new();
        let owner = on(1, &user(&ctx, "owner").await);
        let admin = on(2, &user(&ctx, "alice").await);
        let member = on(3, &user(&ctx, "bob").await);
        let room = public_room(&ctx, &owner, "general").await;
        enter(&ctx, &admin, "general").await;
        enter(&ctx, &member, "general").await;
        drain(&ctx, &[1, 2, 3]);

        assert_eq!(
            set_role(&ctx, &owner, give("ALICE", "admin")).await,
            Ok(vec![])
        );
        assert_eq!(
            ctx.store
                .role_of(room.id, admin.principal.user_id)
                .await
                .unwrap(),
            Some(Role::Admin)
        );
        let told = RoomEvent::RoleChanged {
            username: "alice".into(),
            role: Role::Admin,
            by: "owner".into(),
        };
        for conn in [1, 2, 3] {
            assert_eq!(events(&ctx, conn), vec![("general".into(), told.clone())]);
        }
        // An admin makes a moderator, but no admin and nothing of the owner.
        set_role(&ctx, &admin, give("bob", "moderator"))
            .await
            .unwrap();
        for (who, role, expected) in [
            (&admin, give("bob", "admin"), Error::RoleNotAllowed),
            (&admin, give("owner", "member"), Error::RoleNotAllowed),
            (&member, give("alice", "member"), Error::RoleNotAllowed),
            (&owner, give("owner", "admin"), Error::RoleNotAllowed),
            (&owner, give("nobody", "member"), Error::UserNotFound),
        ] {
            assert_eq!(
                set_role(&ctx, who, role.clone()).await,
                Err(expected),
                "{role:?}"
            );
        }
        let stranger = user(&ctx, "stranger").await;
        assert_eq!(
            set_role(&ctx, &owner, give("stranger", "member")).await,
            Err(Error::NotAMember)
        );
        assert_eq!(
            set_role(&ctx, &on(9, &stranger), give("bob", "member")).await,
            Err(Error::NotInRoom)
        );
        let bad = set_role(&ctx, &owner, give("bob", "owner"))
            .await
            .unwrap_err();
        assert_eq!(bad.code(), "invalid_request");
    }
}
