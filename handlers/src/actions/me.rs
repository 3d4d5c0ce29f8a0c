//! `GET /api/me`: the authenticated user's own account.

use crate::context::Context;
use crate::error::{Error, TokenRejection};
use crate::model::{Principal, UserView};

/// The principal's account as the store has it now.
pub async fn me(ctx: &dyn Context, principal: &Principal) -> Result<UserView, Error> {
    match ctx.store().user_by_id(principal.user_id).await? {
        Some(user) => Ok(UserView::from(&user)),
        None => Err(Error::InvalidToken(TokenRejection::UnknownUser)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::authenticate::authenticate;
    use crate::testing::TestContext;

    #[tokio::test]
    async fn answers_the_principals_account() {
        let ctx = TestContext::new();
        let (user, token) = ctx.register_and_login("john_doe").await;
        let principal = authenticate(&ctx, Some(&token)).await.unwrap();
        let view = me(&ctx, &principal).await.unwrap();
        assert_eq!(view.id, user.id);
        assert_eq!(view.email, "john_doe@example.com");
    }

    #[tokio::test]
    async fn a_principal_without_an_account_is_refused() {
        let ctx = TestContext::new();
        let (_, token) = ctx.register_and_login("john_doe").await;
        let mut principal = authenticate(&ctx, Some(&token)).await.unwrap();
        principal.user_id = uuid::Uuid::now_v7();
        assert_eq!(
            me(&ctx, &principal).await.unwrap_err().code(),
            "invalid_token"
        );
    }
}
