//! `kick`: a moderator, admin or the owner removes a member of lower role from a room. The membership ends and every
//! connection of that user leaves the room on every node; they may join again. The room is told (`kicked`), the
//! kicked user's connections then get `left_room`, and the kick is audited with its reason.

use serde::Deserialize;

use crate::actions::publish;
use crate::actions::room_access::{MemberAction, member_action};
use crate::context::Context;
use crate::error::Error;
use crate::event::{Reply, RoomEvent, Session};
use crate::model::{Role, SecurityEvent};

/// The longest kick reason, in characters.
pub const MAX_REASON_CHARS: usize = 200;

/// The `data` of a `kick` command.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KickRequest {
    pub room: String,
    pub username: String,
    /// Shown to the room and kept in the audit log.
    pub reason: Option<String>,
}

/// Whether a member with role `actor` may moderate one with role `target`: moderators and up, only below their own.
pub(crate) fn may_moderate(actor: Role, target: Role) -> bool {
    actor >= Role::Moderator && target < actor
}

/// Removes the member; replies nothing more (the sender sees `kicked` in the room).
pub async fn kick(
    ctx: &dyn Context,
    session: &Session,
    req: KickRequest,
) -> Result<Vec<Reply>, Error> {
    let reason = match req.reason.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(reason)
            if reason.chars().count() > MAX_REASON_CHARS
                || reason.chars().any(char::is_control) =>
        {
            return Err(Error::Malformed(format!(
                "reason must be at most {MAX_REASON_CHARS} characters without control characters"
            )));
        }
        Some(reason) => Some(reason.to_owned()),
    };
    let me = &session.principal;
    let MemberAction {
        room,
        actor,
        target,
        target_role,
    } = member_action(ctx, me, &req.room, &req.username).await?;
    if room.direct || target.id == me.user_id || !may_moderate(actor, target_role) {
        return Err(Error::MayNotModerate);
    }
    ctx.store().remove_member(room.id, target.id).await?;
    let kicked = RoomEvent::Kicked {
        username: target.username.clone(),
        by: me.username.clone(),
        reason: reason.clone(),
    };
    publish(ctx, room.id, &room.name, kicked, None);
    publish(
        ctx,
        room.id,
        &room.name,
        RoomEvent::Removed { user_id: target.id },
        None,
    );
    // After the two events, so the kicked user's sockets on every node receive both before they leave.
    let unsubscribed = ctx
        .broker()
        .unsubscribe_user(target.id, room.id, &room.name);
    if !unsubscribed.is_empty() {
        ctx.presence().departed(room.id, target.id);
    }
    ctx.guard().record(
        me,
        SecurityEvent::MemberKicked {
            room: room.name,
            username: target.username,
            reason,
        },
    );
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::set_role::{SetRoleRequest, set_role};
    use crate::testing::TestContext;
    use crate::testing::fixtures::*;
    use crate::{Hub, Store};

    fn out(username: &str, reason: Option<&str>) -> KickRequest {
        KickRequest {
            room: "general".into(),
            username: username.into(),
            reason: reason.map(Into::into),
        }
    }

    #[test]
    fn moderators_and_up_reach_only_below_themselves() {
        use Role::*;
        for (actor, target, allowed) in [
            (Owner, Admin, true),
            (Admin, Moderator, true),
            (Moderator, Member, true),
            (Moderator, Moderator, false),
            (Admin, Owner, false),
            (Member, Member, false),
        ] {
            assert_eq!(
                may_moderate(actor, target),
                allowed,
                "{actor:?} on {target:?}"
            );
        }
    }

    #[tokio::test]
    async fn a_kick_removes_the_member_everywhere_and_tells_the_room() {
        let ctx = TestContext::new();
        let owner = on(1, &user(&ctx, "owner").await);
        let moderator = on(2, &user(&ctx, "mod").await);
        let troll = user(&ctx, "troll").await;
        let room = public_room(&ctx, &owner, "general").await;
        enter(&ctx, &moderator, "general").await;
        enter(&ctx, &on(3, &troll), "general").await;
        enter(&ctx, &on(4, &troll), "general").await;
        let promote = SetRoleRequest {
            room: "general".into(),
            username: "mod".into(),
            role: "moderator".into(),
        };
        set_role(&ctx, &owner, promote).await.unwrap();
        drain(&ctx, &[1, 2, 3, 4]);

        // A member moderates nobody; a moderator not the owner.
        assert_eq!(
            kick(&ctx, &on(3, &troll), out("mod", None)).await,
            Err(Error::MayNotModerate)
        );
        assert_eq!(
            kick(&ctx, &moderator, out("owner", None)).await,
            Err(Error::MayNotModerate)
        );
        assert_eq!(
            kick(&ctx, &moderator, out("troll", Some("  spam  "))).await,
            Ok(vec![])
        );

        let kicked = RoomEvent::Kicked {
            username: "troll".into(),
            by: "mod".into(),
            reason: Some("spam".into()),
        };
        assert_eq!(events(&ctx, 1), vec![("general".into(), kicked.clone())]);
        for conn in [3, 4] {
            assert_eq!(
                events(&ctx, conn),
                vec![
                    ("general".into(), kicked.clone()),
                    (
                        "general".into(),
                        RoomEvent::Removed {
                            user_id: troll.user_id
                        }
                    ),
                ],
                "conn {conn}"
            );
            assert!(ctx.hub.rooms_of(conn).is_empty());
        }
        assert!(!ctx.store.is_member(room.id, troll.user_id).await.unwrap());
        let (_, audited) = ctx.guard.events().pop().unwrap();
        assert_eq!(
            audited,
            SecurityEvent::MemberKicked {
                room: "general".into(),
                username: "troll".into(),
                reason: Some("spam".into())
            }
        );
        assert_eq!(
            kick(&ctx, &moderator, out("troll", None)).await,
            Err(Error::NotAMember)
        );
        let long = "x".repeat(MAX_REASON_CHARS + 1);
        let refused = kick(&ctx, &owner, out("mod", Some(&long)))
            .await
            .unwrap_err();
        assert_eq!(refused.code(), "invalid_request");
    }
}
