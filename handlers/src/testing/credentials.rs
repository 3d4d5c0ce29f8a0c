//! Credentials for tests: honest about hashes and expiry, free of bcrypt's cost.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use super::lock;
use crate::context::Credentials;
use crate::error::{CredentialError, TokenRejection};
use crate::model::{IssuedToken, TokenClaims, User};

/// Credentials that behave like the real ones (hashes that hide the password, tokens that expire) but cost nothing.
#[derive(Default)]
pub struct FakeCredentials {
    tokens: Mutex<HashMap<String, TokenClaims>>,
    verifications: AtomicU64,
}

impl FakeCredentials {
    /// How many password verifications ran (a real one costs a bcrypt round, so login must do exactly one).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::SeqCst)
    }
}

/// How long fake tokens live, like the real default.
pub const FAKE_TOKEN_TTL: Duration = Duration::hours(24);

fn fake_hash(password: &str) -> String {
    let mut hasher = DefaultHasher::new();
    password.hash(&mut hasher);
    format!("fake${:016x}", hasher.finish())
}

#[async_trait]
impl Credentials for FakeCredentials {
    async fn hash_password(&self, password: &str) -> Result<String, CredentialError> {
        Ok(fake_hash(password))
    }

    async fn verify_password(
        &self,
        password: &str,
        hash: Option<&str>,
    ) -> Result<bool, CredentialError> {
        self.verifications.fetch_add(1, Ordering::SeqCst);
        Ok(hash.is_some_and(|hash| hash == fake_hash(password)))
    }

    fn issue_token(
        &self,
        user: &User,
        now: OffsetDateTime,
    ) -> Result<IssuedToken, CredentialError> {
        let token_id = Uuid::new_v4().to_string();
        let claims = TokenClaims {
            user_id: user.id,
            username: user.username.clone(),
            token_id: token_id.clone(),
            issued_at: now,
            expires_at: now + FAKE_TOKEN_TTL,
        };
        let token = format!("fake-token.{token_id}");
        lock(&self.tokens).insert(token.clone(), claims.clone());
        Ok(IssuedToken {
            token,
            token_id,
            expires_at: claims.expires_at,
        })
    }

    fn verify_token(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<TokenClaims, TokenRejection> {
        let claims = lock(&self.tokens)
            .get(token)
            .cloned()
            .ok_or(TokenRejection::Malformed)?;
        if now >= claims.expires_at {
            return Err(TokenRejection::Expired);
        }
        Ok(claims)
    }
}
