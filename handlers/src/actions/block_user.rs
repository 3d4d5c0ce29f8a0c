//! `block_user`: the user refuses direct messages from another (`unblock_user` undoes it). A blocked user can no
//! longer open a direct room with the blocker, nor post in the one they share; everything else is unchanged.

use serde::Deserialize;

use crate::actions::room_access::user_named;
use crate::context::Context;
use crate::error::Error;
use crate::event::{Reply, Session};

/// The `data` of a `block_user` or `unblock_user` command.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockRequest {
    pub username: String,
}

/// Refuses direct messages from `username` from now on; replies `blocked` (also when they were blocked already).
pub async fn block_user(
    ctx: &dyn Context,
    session: &Session,
    req: BlockRequest,
) -> Result<Vec<Reply>, Error> {
    set(ctx, session, req, true).await
}

/// Records whether the session's user refuses direct messages from `req.username`; replies `blocked` or
/// `unblocked`.
pub(crate) async fn set(
    ctx: &dyn Context,
    session: &Session,
    req: BlockRequest,
    blocked: bool,
) -> Result<Vec<Reply>, Error> {
    let other = user_named(ctx, &req.username).await?;
    if other.id == session.principal.user_id {
        return Err(Error::BlockYourself);
    }
    ctx.store()
        .set_blocked(
            session.principal.user_id,
            other.id,
            blocked,
            ctx.clock().now(),
        )
        .await?;
    Ok(vec![Reply::Blocked {
        username: other.username,
        blocked,
    }])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::actions::unblock_user::unblock_user;
    use crate::testing::TestContext;
    use crate::testing::fixtures::*;

    #[tokio::test]
    async fn blocking_is_recorded_one_way_and_can_be_undone() {
        let ctx = TestContext::new();
        let john = user(&ctx, "john_doe").await;
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let req = || BlockRequest {
            username: "JOHN_DOE".into(),
        };
        let blocked = vec![Reply::Blocked {
            username: "john_doe".into(),
            blocked: true,
        }];
        assert_eq!(block_user(&ctx, &jane, req()).await, Ok(blocked.clone()));
        assert_eq!(block_user(&ctx, &jane, req()).await, Ok(blocked));
        assert!(
            ctx.store
                .is_blocked(jane.principal.user_id, john.user_id)
                .await
                .unwrap()
        );
        assert!(
            !ctx.store
                .is_blocked(john.user_id, jane.principal.user_id)
                .await
                .unwrap()
        );
        unblock_user(&ctx, &jane, req()).await.unwrap();
        assert!(
            !ctx.store
                .is_blocked(jane.principal.user_id, john.user_id)
                .await
                .unwrap()
        );
        let me = BlockRequest {
            username: "jane_doe".into(),
        };
        assert_eq!(block_user(&ctx, &jane, me).await, Err(Error::BlockYourself));
        let nobody = BlockRequest {
            username: "nobody".into(),
        };
        assert_eq!(
            unblock_user(&ctx, &jane, nobody).await,
            Err(Error::UserNotFound)
        );
    }
}
