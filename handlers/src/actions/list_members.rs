//! `list_members` (WebSocket) and `GET /api/rooms/{name}/members`: who belongs to a room and who is in it now.

use serde::Deserialize;

use crate::actions::room_access::find_room;
use crate::context::Context;
use crate::error::Error;
use crate::event::{MemberView, Reply, Session};
use crate::model::{Principal, Room};

/// The `data` of a `list_members` command.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListMembersRequest {
    pub name: String,
}

/// Reply: the room's members by username, each marked online when one of their connections is in the room.
pub async fn list_members(
    ctx: &dyn Context,
    session: &Session,
    req: ListMembersRequest,
) -> Result<Vec<Reply>, Error> {
    let (room, members) = list_members_for(ctx, &session.principal, &req.name).await?;
    Ok(vec![Reply::Members {
        room: room.name,
        members,
    }])
}

/// The members of the room called `name`, for a principal who is one of them. The core of both the WebSocket command
/// and the REST route.
pub async fn list_members_for(
    ctx: &dyn Context,
    principal: &Principal,
    name: &str,
) -> Result<(Room, Vec<MemberView>), Error> {
    let room = find_room(ctx, name).await?;
    if !ctx.store().is_member(room.id, principal.user_id).await? {
        return Err(Error::NotInRoom);
    }
    let online = ctx.presence().online_users(room.id);
    let members = ctx
        .store()
        .members(room.id)
        .await?
        .into_iter()
        .map(|member| MemberView {
            online: online.contains(&member.user_id),
            username: member.username,
            last_read_seq: member.last_read_seq,
            role: member.role.as_str(),
        })
        .collect();
    Ok((room, members))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;
    use crate::testing::TestContext;
    use crate::testing::fixtures::*;

    fn request(name: &str) -> ListMembersRequest {
        ListMembersRequest { name: name.into() }
    }

    fn member(username: &str, online: bool) -> MemberView {
        MemberView {
            username: username.into(),
            online,
            last_read_seq: 0,
            role: if username == "john_doe" {
                "owner"
            } else {
                "member"
            },
        }
    }

    #[tokio::test]
    async fn lists_members_with_their_presence() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = user(&ctx, "jane_doe").await;
        let bob = user(&ctx, "bob_smith").await;
        public_room(&ctx, &john, "general").await;
        enter(&ctx, &on(2, &jane), "general").await;
        enter(&ctx, &on(3, &jane), "general").await;
        enter(&ctx, &on(4, &bob), "general").await;
        // Bob's connection closes: he stays a member, offline. Jane keeps one of her two connections.
        crate::actions::disconnect::disconnect(&ctx, &on(4, &bob));
        crate::actions::disconnect::disconnect(&ctx, &on(2, &jane));

        let replies = list_members(&ctx, &john, request("GENERAL")).await.unwrap();
        assert_eq!(
            replies,
            vec![Reply::Members {
                room: "general".into(),
                members: vec![
                    member("bob_smith", false),
                    member("jane_doe", true),
                    member("john_doe", true),
                ],
            }]
        );
        // Members who are offline may ask too.
        assert!(
            list_members(&ctx, &on(5, &bob), request("general"))
                .await
                .is_ok()
        );
    }

    #[tokio::test]
    async fn only_members_may_ask() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        public_room(&ctx, &john, "general").await;
        let err = list_members(&ctx, &jane, request("general"))
            .await
            .unwrap_err();
        assert_eq!(err, Error::NotInRoom);
        assert_eq!(err.kind(), ErrorKind::Forbidden);
        let err = list_members(&ctx, &jane, request("nowhere"))
            .await
            .unwrap_err();
        assert_eq!(err, Error::RoomNotFound);
    }

    #[tokio::test]
    async fn the_store_being_down_is_unavailable() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        public_room(&ctx, &john, "general").await;
        ctx.store.set_unavailable(true);
        let err = list_members_for(&ctx, &john.principal, "general")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }
}
