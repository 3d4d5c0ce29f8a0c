//! `POST /api/register`: create an account.

use serde::Deserialize;
use uuid::Uuid;

use crate::actions::required;
use crate::context::Context;
use crate::error::{Error, Field};
use crate::model::{NewUser, UserView};
use crate::validate;

/// The body of a registration.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub username: Option<String>,
    pub email: Option<String>,
    pub password: Option<String>,
}

/// Validates the request, hashes the password and stores the account. Nothing is stored if any rule fails.
pub async fn register(ctx: &dyn Context, req: RegisterRequest) -> Result<UserView, Error> {
    let username = validate::username(required(Field::Username, &req.username)?)?;
    let email = validate::email(required(Field::Email, &req.email)?)?;
    let password = validate::password(required(Field::Password, &req.password)?)?;
    if password.eq_ignore_ascii_case(username) {
        return Err(Error::invalid(
            Field::Password,
            "password must not be the username",
        ));
    }
    let password_hash = ctx.credentials().hash_password(password).await?;
    let user = ctx
        .store()
        .create_user(NewUser {
            id: Uuid::now_v7(),
            username: username.to_owned(),
            email: email.to_owned(),
            password_hash,
            created_at: ctx.clock().now(),
        })
        .await?;
    Ok(UserView::from(&user))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Store;
    use crate::testing::TestContext;

    fn request(username: &str, email: &str, password: &str) -> RegisterRequest {
        RegisterRequest {
            username: Some(username.into()),
            email: Some(email.into()),
            password: Some(password.into()),
        }
    }

    #[tokio::test]
    async fn registers_and_hides_the_hash() {
        let ctx = TestContext::new();
        let view = register(
            &ctx,
            request("john_doe", "john@example.com", "correct horse"),
        )
        .await
        .unwrap();
        assert_eq!(view.username, "john_doe");
        assert_eq!(view.email, "john@example.com");
        let stored = ctx.store.user_by_login("john_doe").await.unwrap().unwrap();
        assert_eq!(stored.id, view.id);
        assert_ne!(stored.password_hash, "correct horse");
    }

    #[tokio::test]
    async fn every_missing_field_is_named() {
        let ctx = TestContext::new();
        for (req, field) in [
            (
                RegisterRequest {
                    username: None,
                    ..request("x", "a@b.co", "correct horse")
                },
                "username",
            ),
            (
                RegisterRequest {
                    email: None,
                    ..request("john", "x", "correct horse")
                },
                "email",
            ),
            (
                RegisterRequest {
                    password: Some(String::new()),
                    ..request("john", "a@b.co", "x")
                },
                "password",
            ),
        ] {
            let err = register(&ctx, req).await.unwrap_err();
            assert_eq!(err.field(), Some(field));
            assert!(err.to_string().contains("is required"), "{err}");
        }
        assert_eq!(ctx.store.user_count(), 0);
    }

    #[tokio::test]
    async fn invalid_fields_store_nothing() {
        let ctx = TestContext::new();
        let cases = [
            request("ab", "a@b.co", "correct horse"),
            request("admin", "a@b.co", "correct horse"),
            request("john", "not-an-email", "correct horse"),
            request("john", "a@b.co", "short"),
            request("john", "a@b.co", "password1"),
            request("john", "a@b.co", &"x".repeat(73)),
            request("johnsmith", "a@b.co", "JohnSmith"),
        ];
        for req in cases {
            let err = register(&ctx, req.clone()).await.unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Invalid, "{req:?}");
        }
        assert_eq!(ctx.store.user_count(), 0);
    }

    #[tokio::test]
    async fn duplicates_conflict_case_insensitively() {
        let ctx = TestContext::new();
        register(
            &ctx,
            request("john_doe", "john@example.com", "correct horse"),
        )
        .await
        .unwrap();
        let err = register(
            &ctx,
            request("JOHN_DOE", "other@example.com", "correct horse"),
        )
        .await
        .unwrap_err();
        assert_eq!(err, Error::UsernameTaken);
        let err = register(&ctx, request("jane", "John@Example.com", "correct horse"))
            .await
            .unwrap_err();
        assert_eq!(err, Error::EmailTaken);
        assert_eq!(ctx.store.user_count(), 1);
    }
}
