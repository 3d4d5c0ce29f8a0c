//! `POST /api/login`: exchange a username (or email) and password for a token.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::actions::required;
use crate::context::Context;
use crate::error::{Error, Field};

/// The body of a login: `username` may hold the username or the email.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[serde(alias = "login", alias = "email")]
    pub username: Option<String>,
    pub password: Option<String>,
}

/// A successful login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoginResponse {
    pub token: String,
    pub token_type: &'static str,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    pub user: LoginUser,
}

/// The account a login opened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoginUser {
    pub id: Uuid,
    pub username: String,
}

/// Checks the password and signs a token. A wrong password and an unknown account get the same answer after the
/// same work (a bcrypt verification either way), so the answer reveals nothing about which accounts exist.
pub async fn login(ctx: &dyn Context, req: LoginRequest) -> Result<LoginResponse, Error> {
    let login = required(Field::Login, &req.username)?;
    let password = required(Field::Password, &req.password)?;
    let user = ctx.store().user_by_login(login).await?;
    let matches = ctx
        .credentials()
        .verify_password(
            password,
            user.as_ref().map(|user| user.password_hash.as_str()),
        )
        .await?;
    let user = match user {
        Some(user) if matches => user,
        _ => return Err(Error::InvalidCredentials),
    };
    let issued = ctx.credentials().issue_token(&user, ctx.clock().now())?;
    Ok(LoginResponse {
        token: issued.token,
        token_type: "Bearer",
        expires_at: issued.expires_at,
        user: LoginUser {
            id: user.id,
            username: user.username,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestContext;
    use crate::{Clock, Credentials};

    fn request(login: &str, password: &str) -> LoginRequest {
        LoginRequest {
            username: Some(login.into()),
            password: Some(password.into()),
        }
    }

    #[tokio::test]
    async fn logs_in_by_username_or_email() {
        let ctx = TestContext::new();
        let user = ctx.register("john_doe", "correct horse").await;
        for login_name in [
            "john_doe",
            "JOHN_DOE",
            "john_doe@example.com",
            "John_Doe@Example.com",
        ] {
            let response = login(&ctx, request(login_name, "correct horse"))
                .await
                .unwrap();
            assert_eq!(response.user.id, user.id);
            assert_eq!(response.token_type, "Bearer");
            let claims = ctx
                .credentials
                .verify_token(&response.token, ctx.clock.now())
                .unwrap();
            assert_eq!(claims.user_id, user.id);
        }
    }

    #[tokio::test]
    async fn wrong_password_and_unknown_user_look_the_same() {
        let ctx = TestContext::new();
        ctx.register("john_doe", "correct horse").await;
        // Each path runs exactly one bcrypt verification (the unknown one against the dummy hash), so neither is
        // cheaper than the other.
        let before = ctx.credentials.verifications();
        let wrong = login(&ctx, request("john_doe", "wrong horse"))
            .await
            .unwrap_err();
        assert_eq!(
            ctx.credentials.verifications(),
            before + 1,
            "wrong password"
        );
        let unknown = login(&ctx, request("nobody", "wrong horse"))
            .await
            .unwrap_err();
        assert_eq!(ctx.credentials.verifications(), before + 2, "unknown user");
        assert_eq!(wrong, unknown);
        assert_eq!(wrong, Error::InvalidCredentials);
    }

    #[tokio::test]
    async fn missing_fields_are_named() {
        let ctx = TestContext::new();
        let err = login(
            &ctx,
            LoginRequest {
                username: None,
                password: Some("x".into()),
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err.field(), Some("login"));
        let err = login(
            &ctx,
            LoginRequest {
                username: Some("john".into()),
                password: None,
            },
        )
        .await
        .unwrap_err();
        assert_eq!(err.field(), Some("password"));
    }
}
