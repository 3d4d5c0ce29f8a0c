//! Turning a presented token into a [`Principal`]: every authenticated HTTP request and WebSocket connection starts here.

use crate::context::Context;
use crate::error::{Error, TokenRejection};
use crate::model::Principal;

/// Verifies `token` (signature, algorithm, issuer, audience, times) and checks it has not been revoked.
/// `None` or an empty token means no credentials were presented.
pub async fn authenticate(ctx: &dyn Context, token: Option<&str>) -> Result<Principal, Error> {
    let token = match token {
        Some(token) if !token.is_empty() => token,
        _ => return Err(Error::MissingCredentials),
    };
    let claims = ctx
        .credentials()
        .verify_token(token, ctx.clock().now())
        .map_err(Error::InvalidToken)?;
    if ctx.store().is_token_revoked(&claims.token_id).await? {
        return Err(Error::InvalidToken(TokenRejection::Revoked));
    }
    Ok(Principal {
        user_id: claims.user_id,
        username: claims.username,
        token_id: claims.token_id,
        expires_at: claims.expires_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestContext;
    use time::Duration;

    #[tokio::test]
    async fn a_fresh_token_authenticates() {
        let ctx = TestContext::new();
        let (user, token) = ctx.register_and_login("john_doe").await;
        let principal = authenticate(&ctx, Some(&token)).await.unwrap();
        assert_eq!(principal.user_id, user.id);
        assert_eq!(principal.username, "john_doe");
    }

    #[tokio::test]
    async fn no_token_is_missing_credentials() {
        let ctx = TestContext::new();
        assert_eq!(
            authenticate(&ctx, None).await.unwrap_err(),
            Error::MissingCredentials
        );
        assert_eq!(
            authenticate(&ctx, Some("")).await.unwrap_err(),
            Error::MissingCredentials
        );
    }

    #[tokio::test]
    async fn forged_expired_and_revoked_tokens_are_refused() {
        let ctx = TestContext::new();
        let (_, token) = ctx.register_and_login("john_doe").await;
        let forged = authenticate(&ctx, Some("not-a-token")).await.unwrap_err();
        assert_eq!(forged, Error::InvalidToken(TokenRejection::Malformed));

        let principal = authenticate(&ctx, Some(&token)).await.unwrap();
        crate::actions::logout::logout(&ctx, &principal)
            .await
            .unwrap();
        let revoked = authenticate(&ctx, Some(&token)).await.unwrap_err();
        assert_eq!(revoked, Error::InvalidToken(TokenRejection::Revoked));

        let (_, token) = ctx.register_and_login("jane_doe").await;
        ctx.clock.advance(Duration::days(2));
        let expired = authenticate(&ctx, Some(&token)).await.unwrap_err();
        assert_eq!(expired, Error::InvalidToken(TokenRejection::Expired));
        assert_eq!(expired.code(), "token_expired");
    }
}
