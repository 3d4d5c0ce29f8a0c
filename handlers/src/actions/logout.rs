//! `POST /api/logout`: revoke the token the request was made with.

use crate::context::Context;
use crate::error::Error;
use crate::model::Principal;

/// Revokes the principal's token until it would have expired anyway.
pub async fn logout(ctx: &dyn Context, principal: &Principal) -> Result<(), Error> {
    ctx.store()
        .revoke_token(&principal.token_id, principal.user_id, principal.expires_at)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::actions::authenticate::authenticate;
    use crate::testing::TestContext;

    #[tokio::test]
    async fn logout_revokes_only_that_token() {
        let ctx = TestContext::new();
        let (_, first) = ctx.register_and_login("john_doe").await;
        let second = ctx.login("john_doe").await;
        let principal = authenticate(&ctx, Some(&first)).await.unwrap();
        logout(&ctx, &principal).await.unwrap();
        assert!(authenticate(&ctx, Some(&first)).await.is_err());
        assert!(authenticate(&ctx, Some(&second)).await.is_ok());
        // Logging out twice is harmless.
        logout(&ctx, &principal).await.unwrap();
    }
}
