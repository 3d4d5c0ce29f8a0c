//! The real [`Credentials`]: bcrypt for passwords (off the async runtime, with bounded concurrency) and HS256 JWTs
//! with a pinned algorithm and checked issuer, audience and times.

use std::sync::Arc;

use async_trait::async_trait;
use jsonwebtoken::errors::ErrorKind as JwtErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use palaver_handlers::model::{IssuedToken, TokenClaims, User};
use palaver_handlers::{CredentialError, Credentials, TokenRejection};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use tokio::sync::Semaphore;
use uuid::Uuid;

/// What a token says, on the wire.
#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    username: String,
    jti: String,
    iat: i64,
    nbf: i64,
    exp: i64,
    iss: String,
    aud: String,
}

/// How tokens are signed and checked.
#[derive(Clone)]
pub struct TokenSettings {
    pub secret: Vec<u8>,
    pub issuer: String,
    pub audience: String,
    pub ttl: time::Duration,
}

/// bcrypt + JWT credentials.
pub struct RealCredentials {
    cost: u32,
    /// Bounds concurrent bcrypt work so a login flood queues instead of taking every blocking thread.
    hashing: Arc<Semaphore>,
    /// A hash of a random password at `cost`: unknown accounts are verified against it, so they take as long.
    dummy_hash: String,
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    tokens: TokenSettings,
}

impl RealCredentials {
    /// Credentials with bcrypt `cost`, at most `concurrency` hashes at once (0: one per core), and `tokens`.
    pub async fn new(
        cost: u32,
        concurrency: usize,
        tokens: TokenSettings,
    ) -> Result<Self, CredentialError> {
        let concurrency = match concurrency {
            0 => std::thread::available_parallelism()
                .map(usize::from)
                .unwrap_or(2),
            n => n,
        };
        let random_password = Uuid::new_v4().to_string();
        let dummy_hash = blocking(move || bcrypt::hash(random_password, cost)).await?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.set_issuer(&[&tokens.issuer]);
        validation.set_audience(&[&tokens.audience]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        // Times are checked against the caller's clock in `verify_token`, so the library's own clock is not used.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        Ok(RealCredentials {
            cost,
            hashing: Arc::new(Semaphore::new(concurrency)),
            dummy_hash,
            encoding: EncodingKey::from_secret(&tokens.secret),
            decoding: DecodingKey::from_secret(&tokens.secret),
            validation,
            tokens,
        })
    }

    async fn with_permit<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> Result<T, bcrypt::BcryptError> + Send + 'static,
    ) -> Result<T, CredentialError> {
        let _permit = self
            .hashing
            .acquire()
            .await
            .map_err(|_| CredentialError("password hashing is shut down".into()))?;
        blocking(work).await
    }
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, bcrypt::BcryptError> + Send + 'static,
) -> Result<T, CredentialError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|err| CredentialError(format!("bcrypt task failed: {err}")))?
        .map_err(|err| CredentialError(format!("bcrypt: {err}")))
}

/// Leeway for clock skew between nodes when checking `nbf`, in seconds.
const NBF_LEEWAY_SECS: i64 = 5;

/// The `alg` a token's header names, when the header is base64url JSON with a string `alg`.
fn named_algorithm(token: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Named {
        alg: String,
    }
    let header = base64url_decode(token.split('.').next()?)?;
    serde_json::from_slice::<Named>(&header)
        .ok()
        .map(|named| named.alg)
}

/// Unpadded base64url (RFC 4648 §5), as JWT segments are written; `None` on any other character.
fn base64url_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3 + 2);
    let (mut bits, mut held) = (0u32, 0u32);
    for byte in text.bytes() {
        let sextet = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'-' => 62,
            b'_' => 63,
            _ => return None,
        };
        bits = (bits << 6) | u32::from(sextet);
        held += 6;
        if held >= 8 {
            held -= 8;
            out.push((bits >> held) as u8);
            bits &= (1 << held) - 1;
        }
    }
    Some(out)
}

#[async_trait]
impl Credentials for RealCredentials {
    async fn hash_password(&self, password: &str) -> Result<String, CredentialError> {
        if password.len() > palaver_handlers::validate::MAX_PASSWORD_BYTES {
            // bcrypt would silently use only the first 72 bytes; validation refuses such passwords first.
            return Err(CredentialError(
                "password over 72 bytes reached the hasher".into(),
            ));
        }
        let password = password.to_owned();
        let cost = self.cost;
        self.with_permit(move || bcrypt::hash(password, cost)).await
    }

    async fn verify_password(
        &self,
        password: &str,
        hash: Option<&str>,
    ) -> Result<bool, CredentialError> {
        // An over-long password cannot match a stored hash (they were refused at registration), but it still costs
        // one verification so that its answer takes as long as any other.
        let too_long = password.len() > palaver_handlers::validate::MAX_PASSWORD_BYTES;
        let known = hash.is_some() && !too_long;
        let hash = match hash {
            Some(hash) if !too_long => hash.to_owned(),
            _ => self.dummy_hash.clone(),
        };
        let password = if too_long {
            String::new()
        } else {
            password.to_owned()
        };
        let matches = self
            .with_permit(move || bcrypt::verify(password, &hash))
            .await?;
        Ok(known && matches)
    }

    fn issue_token(
        &self,
        user: &User,
        now: OffsetDateTime,
    ) -> Result<IssuedToken, CredentialError> {
        let expires_at = now + self.tokens.ttl;
        let token_id = Uuid::new_v4().to_string();
        let claims = Claims {
            sub: user.id,
            username: user.username.clone(),
            jti: token_id.clone(),
            iat: now.unix_timestamp(),
            nbf: now.unix_timestamp(),
            exp: expires_at.unix_timestamp(),
            iss: self.tokens.issuer.clone(),
            aud: self.tokens.audience.clone(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|err| CredentialError(format!("signing a token: {err}")))?;
        Ok(IssuedToken {
            token,
            token_id,
            expires_at: OffsetDateTime::from_unix_timestamp(claims.exp).unwrap_or(expires_at),
        })
    }

    fn verify_token(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<TokenClaims, TokenRejection> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|err| match err.kind() {
                JwtErrorKind::InvalidSignature
                | JwtErrorKind::InvalidAlgorithm
                | JwtErrorKind::InvalidAlgorithmName => TokenRejection::BadSignature,
                JwtErrorKind::InvalidIssuer | JwtErrorKind::InvalidAudience => {
                    TokenRejection::WrongIssuerOrAudience
                }
                JwtErrorKind::ExpiredSignature => TokenRejection::Expired,
                JwtErrorKind::ImmatureSignature => TokenRejection::NotYetValid,
                // The library knows no `none` (nor any other name it does not implement), so such a header does not
                // parse; it is still a token claiming another algorithm than ours, a forgery rather than garbage.
                _ if named_algorithm(token).is_some_and(|alg| alg != "HS256") => {
                    TokenRejection::BadSignature
                }
                _ => TokenRejection::Malformed,
            })?;
        let claims = data.claims;
        let now_secs = now.unix_timestamp();
        if now_secs >= claims.exp {
            return Err(TokenRejection::Expired);
        }
        if now_secs + NBF_LEEWAY_SECS < claims.nbf {
            return Err(TokenRejection::NotYetValid);
        }
        let time_of = |secs: i64| {
            OffsetDateTime::from_unix_timestamp(secs).map_err(|_| TokenRejection::Malformed)
        };
        Ok(TokenClaims {
            user_id: claims.sub,
            username: claims.username,
            token_id: claims.jti,
            issued_at: time_of(claims.iat)?,
            expires_at: time_of(claims.exp)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef-test";

    fn settings(secret: &[u8]) -> TokenSettings {
        TokenSettings {
            secret: secret.to_vec(),
            issuer: "palaver".into(),
            audience: "palaver-clients".into(),
            ttl: time::Duration::hours(24),
        }
    }

    async fn credentials() -> RealCredentials {
        RealCredentials::new(4, 2, settings(SECRET)).await.unwrap()
    }

    fn user() -> User {
        let now = datetime!(2026-11-25 15:30:45 UTC);
        User {
            id: Uuid::now_v7(),
            username: "john_doe".into(),
            email: "john@example.com".into(),
            password_hash: String::new(),
            created_at: now,
            updated_at: now,
        }
    }

    /// Unpadded base64url, enough to forge test tokens by hand.
    fn base64_encode(bytes: &[u8]) -> String {
        const ALPHABET: &[u8; 64] =
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    }

    #[tokio::test]
    async fn hashes_verify_and_hide_the_password() {
        let creds = credentials().await;
        let hash = creds.hash_password("correct horse").await.unwrap();
        assert!(hash.starts_with("$2"));
        assert!(!hash.contains("correct horse"));
        assert!(
            creds
                .verify_password("correct horse", Some(&hash))
                .await
                .unwrap()
        );
        assert!(
            !creds
                .verify_password("wrong horse", Some(&hash))
                .await
                .unwrap()
        );
        assert!(!creds.verify_password("correct horse", None).await.unwrap());
    }

    #[tokio::test]
    async fn passwords_over_72_bytes_never_match_even_with_a_shared_prefix() {
        let creds = credentials().await;
        let base = "k".repeat(72);
        let hash = creds.hash_password(&base).await.unwrap();
        assert!(creds.hash_password(&format!("{base}x")).await.is_err());
        assert!(
            !creds
                .verify_password(&format!("{base}x"), Some(&hash))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn tokens_round_trip_and_expire_by_the_callers_clock() {
        let creds = credentials().await;
        let now = datetime!(2026-11-25 15:30:45 UTC);
        let issued = creds.issue_token(&user(), now).unwrap();
        let claims = creds.verify_token(&issued.token, now).unwrap();
        assert_eq!(claims.username, "john_doe");
        assert_eq!(claims.token_id, issued.token_id);
        assert_eq!(claims.expires_at, now + time::Duration::hours(24));
        let later = now + time::Duration::hours(24);
        assert_eq!(
            creds.verify_token(&issued.token, later),
            Err(TokenRejection::Expired)
        );
    }

    #[tokio::test]
    async fn forged_and_foreign_tokens_are_refused() {
        let creds = credentials().await;
        let now = datetime!(2026-11-25 15:30:45 UTC);
        let other_key =
            RealCredentials::new(4, 1, settings(b"another-secret-another-secret-another"))
                .await
                .unwrap();
        let forged = other_key.issue_token(&user(), now).unwrap();
        assert_eq!(
            creds.verify_token(&forged.token, now),
            Err(TokenRejection::BadSignature)
        );

        let mut foreign = settings(SECRET);
        foreign.audience = "someone-else".into();
        let foreign = RealCredentials::new(4, 1, foreign)
            .await
            .unwrap()
            .issue_token(&user(), now)
            .unwrap();
        assert_eq!(
            creds.verify_token(&foreign.token, now),
            Err(TokenRejection::WrongIssuerOrAudience)
        );

        assert_eq!(
            creds.verify_token("garbage", now),
            Err(TokenRejection::Malformed)
        );
    }

    /// The claims of a valid token for `user` at `now`, as JSON, for tests to change and sign themselves.
    fn claims_at(user: &User, now: OffsetDateTime) -> serde_json::Value {
        serde_json::json!({
            "sub": user.id,
            "username": user.username,
            "jti": Uuid::new_v4().to_string(),
            "iat": now.unix_timestamp(),
            "nbf": now.unix_timestamp(),
            "exp": (now + time::Duration::hours(1)).unix_timestamp(),
            "iss": "palaver",
            "aud": "palaver-clients",
        })
    }

    /// `claims` signed with `algorithm` (an HMAC one) under `secret`, properly: only the algorithm can be wrong.
    fn signed(claims: &serde_json::Value, algorithm: Algorithm, secret: &[u8]) -> String {
        jsonwebtoken::encode(
            &Header::new(algorithm),
            claims,
            &EncodingKey::from_secret(secret),
        )
        .unwrap()
    }

    /// A token whose header is `header`, signed as a verifier that trusts the header's `alg` would check an RS256
    /// token when handed the HMAC secret as the "public key": HMAC-SHA256 over `header.claims` with the secret's bytes.
    fn key_confusion_token(header: &str, claims: &serde_json::Value, secret: &[u8]) -> String {
        use hmac::{Hmac, Mac};
        let signing_input = format!(
            "{}.{}",
            base64_encode(header.as_bytes()),
            base64_encode(claims.to_string().as_bytes())
        );
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        mac.update(signing_input.as_bytes());
        let signature = base64_encode(&mac.finalize().into_bytes());
        format!("{signing_input}.{signature}")
    }

    #[tokio::test]
    async fn alg_none_and_other_algorithms_are_refused_even_when_properly_signed() {
        let creds = credentials().await;
        let now = datetime!(2026-11-25 15:30:45 UTC);
        let user = user();
        let claims = claims_at(&user, now);
        // The same claims and key with the pinned algorithm pass, so each refusal below is the algorithm's alone.
        let genuine = signed(&claims, Algorithm::HS256, SECRET);
        assert_eq!(creds.verify_token(&genuine, now).unwrap().user_id, user.id);

        for algorithm in [Algorithm::HS384, Algorithm::HS512] {
            let token = signed(&claims, algorithm, SECRET);
            assert_eq!(
                creds.verify_token(&token, now),
                Err(TokenRejection::BadSignature),
                "{algorithm:?} with the server's own secret"
            );
        }

        // Key confusion: RS256 "verified" with the HMAC secret as its public key.
        let confused = key_confusion_token(r#"{"alg":"RS256","typ":"JWT"}"#, &claims, SECRET);
        assert_eq!(
            creds.verify_token(&confused, now),
            Err(TokenRejection::BadSignature),
            "RS256 signed with the HMAC secret"
        );
        // The construction is sound: with the header saying HS256, the same recipe is a valid token.
        let honest = key_confusion_token(r#"{"alg":"HS256","typ":"JWT"}"#, &claims, SECRET);
        assert!(creds.verify_token(&honest, now).is_ok());

        // alg none: no signature at all.
        for header in [r#"{"alg":"none","typ":"JWT"}"#, r#"{"alg":"None"}"#] {
            let unsigned = format!(
                "{}.{}.",
                base64_encode(header.as_bytes()),
                base64_encode(claims.to_string().as_bytes())
            );
            assert_eq!(
                creds.verify_token(&unsigned, now),
                Err(TokenRejection::BadSignature),
                "{header}"
            );
        }
    }

    #[tokio::test]
    async fn properly_signed_tokens_with_wrong_or_missing_claims_are_refused() {
        let creds = credentials().await;
        let now = datetime!(2026-11-25 15:30:45 UTC);
        let user = user();
        let valid = claims_at(&user, now);
        assert!(
            creds
                .verify_token(&signed(&valid, Algorithm::HS256, SECRET), now)
                .is_ok()
        );
        let with = |key: &str, value: serde_json::Value| {
            let mut claims = valid.clone();
            claims[key] = value;
            claims
        };
        let without = |key: &str| {
            let mut claims = valid.clone();
            claims.as_object_mut().unwrap().remove(key);
            claims
        };
        let soon = now.unix_timestamp() + NBF_LEEWAY_SECS;
        let cases = [
            (
                "another issuer",
                with("iss", "someone-else".into()),
                Some(TokenRejection::WrongIssuerOrAudience),
            ),
            (
                "another audience",
                with("aud", "someone-else".into()),
                Some(TokenRejection::WrongIssuerOrAudience),
            ),
            (
                "nbf an hour ahead",
                with("nbf", (now.unix_timestamp() + 3600).into()),
                Some(TokenRejection::NotYetValid),
            ),
            (
                "nbf just past the leeway",
                with("nbf", (soon + 1).into()),
                Some(TokenRejection::NotYetValid),
            ),
            ("nbf within the leeway", with("nbf", soon.into()), None),
            (
                "exp reached",
                with("exp", now.unix_timestamp().into()),
                Some(TokenRejection::Expired),
            ),
            ("no exp", without("exp"), Some(TokenRejection::Malformed)),
            ("no nbf", without("nbf"), Some(TokenRejection::Malformed)),
            ("no iat", without("iat"), Some(TokenRejection::Malformed)),
            ("no iss", without("iss"), Some(TokenRejection::Malformed)),
            ("no aud", without("aud"), Some(TokenRejection::Malformed)),
            ("no sub", without("sub"), Some(TokenRejection::Malformed)),
            (
                "sub not a user id",
                with("sub", "admin".into()),
                Some(TokenRejection::Malformed),
            ),
            ("no jti", without("jti"), Some(TokenRejection::Malformed)),
        ];
        for (case, claims, expected) in cases {
            let answer = creds.verify_token(&signed(&claims, Algorithm::HS256, SECRET), now);
            match expected {
                Some(rejection) => assert_eq!(answer, Err(rejection), "{case}"),
                None => assert!(answer.is_ok(), "{case}: {answer:?}"),
            }
        }
    }
}
