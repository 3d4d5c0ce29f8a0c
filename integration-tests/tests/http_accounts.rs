//! The account routes of PROTOCOL §1 against a real server, on SQLite and on PostgreSQL: what a client sees for
//! every success and every refusal, and that refused requests store nothing.

use palaver_integration_tests::api::{
    Client, PASSWORD, assert_error, assert_exact_error, read, unix_now,
};
use palaver_integration_tests::{Engine, TEST_JWT_SECRET};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// Signs claims with the test server's key, to make tokens that are well signed but wrong in some other way.
fn sign(claims: Value, algorithm: jsonwebtoken::Algorithm) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(TEST_JWT_SECRET.as_bytes());
    jsonwebtoken::encode(&jsonwebtoken::Header::new(algorithm), &claims, &key)
        .expect("test token signs")
}

fn claims(user_id: &str, exp_offset: i64) -> Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    json!({
        "sub": user_id, "username": "john_doe", "jti": uuid::Uuid::new_v4().to_string(),
        "iat": now, "nbf": now, "exp": now + exp_offset, "iss": "palaver", "aud": "palaver-clients",
    })
}

async fn register_returns_the_account_without_secrets(engine: Engine) {
    let Some(client) = Client::start(engine).await else {
        return;
    };
    let body = client.register("john_doe").await;
    assert_eq!(body["username"], "john_doe");
    assert_eq!(body["email"], "john_doe@example.com");
    assert!(
        body["id"]
            .as_str()
            .is_some_and(|id| uuid::Uuid::parse_str(id).is_ok()),
        "{body}"
    );
    assert!(
        body["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{body}"
    );
    let text = body.to_string();
    assert!(!text.contains(PASSWORD) && !text.contains("$2"), "{text}");
    assert!(body.get("token").is_none(), "registration gives no token");
}

async fn every_validation_rule_is_refused_and_names_the_field(engine: Engine) {
    let Some(client) = Client::start(engine).await else {
        return;
    };
    let long_email = format!("{}@example.com", "a".repeat(250));
    let cases = [
        (
            json!({"username": "ab", "email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "x".repeat(31), "email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "john doe", "email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "Admin", "email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"email": "a@example.com", "password": PASSWORD}),
            "username",
        ),
        (
            json!({"username": "john_doe", "email": "not-an-email", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"username": "john_doe", "email": long_email, "password": PASSWORD}),
            "email",
        ),
        (
            json!({"username": "john_doe", "password": PASSWORD}),
            "email",
        ),
        (
            json!({"username": "john_doe", "email": "a@example.com", "password": "short"}),
            "password",
        ),
        (
            json!({"username": "john_doe", "email": "a@example.com", "password": "k9".repeat(36) + "x"}),
            "password",
        ),
        (
            json!({"username": "john_doe", "email": "a@example.com", "password": "password123"}),
            "password",
        ),
        (
            json!({"username": "john_doe", "email": "a@example.com"}),
            "password",
        ),
    ];
    for (body, field) in cases {
        let (status, answer) = client.post("/api/register", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body} → {answer}");
        assert_eq!(answer["field"], field, "{body} → {answer}");
        assert_eq!(answer["code"], format!("invalid_{field}"), "{answer}");
    }
    // Nothing was stored: the name every case above used is still free.
    client.register("john_doe").await;
}

async fn malformed_bodies_get_clear_errors(engine: Engine) {
    let Some(client) = Client::start(engine).await else {
        return;
    };
    let url = client.server.url("/api/register");
    let send = |body: &'static str, content_type: &'static str| {
        client
            .http
            .post(&url)
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let (status, body) = read(send("{\"username\":", "application/json").await.unwrap()).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    let (status, body) = read(send("[1,2]", "application/json").await.unwrap()).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    let (status, body) = read(send("{\"username\":5}", "application/json").await.unwrap()).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    let (status, body) = read(
        send("{\"nickname\":\"x\"}", "application/json")
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_request");
    assert!(
        body["error"].as_str().unwrap().contains("nickname"),
        "{body}"
    );
    let (status, body) = read(
        send("username=john", "application/x-www-form-urlencoded")
            .await
            .unwrap(),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );
    let huge =
        json!({"username": "john_doe", "email": "a@example.com", "password": "x".repeat(100_000)});
    let (status, body) = client.post("/api/register", huge).await;
    assert_error(
        status,
        &body,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
    );
    let (status, body) = client.get("/api/nothing-here", None).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

async fn duplicates_conflict_case_insensitively(engine: Engine) {
    let Some(client) = Client::start(engine).await else {
        return;
    };
    client.register("john_doe").await;
    let (status, body) = client
        .post(
            "/api/register",
            json!({"username": "JOHN_DOE", "email": "other@example.com", "password": PASSWORD}),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(body["field"], "username");
    let (status, body) = client
        .post(
            "/api/register",
            json!({"username": "jane", "email": "John_Doe@Example.com", "password": PASSWORD}),
        )
        .await;
    assert_error(status, &body, StatusCode::CONFLICT, "conflict");
    assert_eq!(body["field"], "email");
    // The refused "jane" was not stored.
    client.register("jane").await;
}

async fn login_by_username_or_email_sets_a_locked_down_cookie(engine: Engine) {
    let Some(client) = Client::start(engine).await else {
        return;
    };
    let user = client.register("john_doe").await;
    for login in ["john_doe", "John_Doe", "john_doe@example.com"] {
        let response = client
            .http
            .post(client.server.url("/api/login"))
            .json(&json!({"username": login, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        let cookie = response
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let (status, body) = read(response).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["user"]["id"], user["id"]);
        assert_eq!(body["user"]["username"], "john_doe");
        assert!(body["expires_at"].as_str().is_some(), "{body}");
        let token = body["token"].as_str().unwrap();
        assert!(
            cookie.starts_with(&format!("palaver_session={token};")),
            "{cookie}"
        );
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
            "{cookie}"
        );
    }
}

async fn wrong_password_and_unknown_user_get_the_same_answer(engine: Engine) {
    let Some(client) = Client::start(engine).await else {
        return;
    };
    client.register("john_doe").await;
    let wrong = client
        .post(
            "/api/login",
            json!({"username": "john_doe", "password": "wrong horse battery"}),
        )
        .await;
    let unknown = client
        .post(
            "/api/login",
            json!({"username": "nobody_here", "password": "wrong horse battery"}),
        )
        .await;
    assert_error(
        wrong.0,
        &wrong.1,
        StatusCode::UNAUTHORIZED,
        "invalid_credentials",
    );
    assert_eq!(wrong, unknown);
    let (status, body) = client
        .post("/api/login", json!({"username": "john_doe"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["field"], "password");
}

async fn me_answers_by_bearer_or_cookie_and_refuses_everything_else(engine: Engine) {
    let Some(client) = Client::start(engine).await else {
        return;
    };
    let user = client.register("john_doe").await;
    let token = client.login("john_doe").await;

    let (status, body) = client.get("/api/me", Some(&token)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body, user);

    let by_cookie = client
        .http
        .get(client.server.url("/api/me"))
        .header("cookie", format!("palaver_session={token}"))
        .send()
        .await
        .unwrap();
    let (status, body) = read(by_cookie).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["username"], "john_doe");

    let (status, body) = client.get("/api/me", None).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        body["error"],
        "Authorization header with Bearer token required"
    );

    let user_id = user["id"].as_str().unwrap();
    let expired = sign(claims(user_id, -60), jsonwebtoken::Algorithm::HS256);
    let (status, body) = client.get("/api/me", Some(&expired)).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "token_expired");

    let wrong_alg = sign(claims(user_id, 3600), jsonwebtoken::Algorithm::HS512);
    let (status, body) = client.get("/api/me", Some(&wrong_alg)).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_token");

    let mut wrong_audience = claims(user_id, 3600);
    wrong_audience["aud"] = json!("someone-else");
    let (status, body) = client
        .get(
            "/api/me",
            Some(&sign(wrong_audience, jsonwebtoken::Algorithm::HS256)),
        )
        .await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_token");

    let mut parts = token.split('.');
    let (_, payload) = (parts.next(), parts.next().unwrap());
    let alg_none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    let (status, body) = client.get("/api/me", Some(&alg_none)).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_token");

    let forged = format!("{}x", &token[..token.len() - 1]);
    let (status, body) = client.get("/api/me", Some(&forged)).await;
    assert_error(status, &body, StatusCode::UNAUTHORIZED, "invalid_token");
}

/// How long the token the expiry part of the logout test revokes lives, in seconds: long enough for a logout and
/// one request before its `exp` (which is whole seconds, so it is at least this minus one second away).
const SHORT_LIFE_SECS: i64 = 4;

/// How long after a token's `exp` the logout test waits at most for its answer to turn to `token_expired`.
const EXPIRY_PATIENCE_SECS: f64 = 10.0;

async fn logout_revokes_the_token_until_it_expires(engine: Engine) {
    let Some(client) = Client::start(engine).await else {
        return;
    };
    let user = client.register("john_doe").await;
    let first = client.login("john_doe").await;
    let second = client.login("john_doe").await;
    let response = client
        .http
        .post(client.server.url("/api/logout"))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    let cleared = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        cleared,
        "palaver_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
    );
    let (status, body) = client.get("/api/me", Some(&first)).await;
    assert_exact_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "token_revoked",
        "the token has been revoked",
    );
    // Only the token logged out with: the user's other session goes on.
    let (status, body) = client.get("/api/me", Some(&second)).await;
    assert_eq!((status, &body), (StatusCode::OK, &user));
    let (status, body) = client.post_as(&first, "/api/logout", json!({})).await;
    assert_exact_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "token_revoked",
        "the token has been revoked",
    );
    let response = client
        .http
        .post(client.server.url("/api/logout"))
        .send()
        .await
        .unwrap();
    let (status, body) = read(response).await;
    assert_exact_error(
        status,
        &body,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        "Authorization header with Bearer token required",
    );

    // Until its exp, and no longer: a token (signed with the server's key, so it lives only SHORT_LIFE_SECS) is
    // revoked, answers token_revoked while the server's clock is before its exp, and token_expired from then on. Each
    // answer is judged by the clock read before and after the request, between which the server read its own.
    let user_id = user["id"].as_str().expect("an id");
    let short_claims = claims(user_id, SHORT_LIFE_SECS);
    let exp = short_claims["exp"].as_i64().expect("an exp") as f64;
    let short = sign(short_claims, jsonwebtoken::Algorithm::HS256);
    let (status, body) = client.post_as(&short, "/api/logout", json!({})).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let mut revoked_answers = 0;
    let mut poll = tokio::time::interval(std::time::Duration::from_millis(100));
    loop {
        poll.tick().await;
        let asked = unix_now();
        let (status, body) = client.get("/api/me", Some(&short)).await;
        let answered = unix_now();
        if body["code"] == "token_revoked" {
            assert_exact_error(
                status,
                &body,
                StatusCode::UNAUTHORIZED,
                "token_revoked",
                "the token has been revoked",
            );
            assert!(
                asked < exp,
                "token_revoked for a request sent {:.3} s after the token's exp",
                asked - exp
            );
            revoked_answers += 1;
        } else {
            assert_exact_error(
                status,
                &body,
                StatusCode::UNAUTHORIZED,
                "token_expired",
                "the token has expired",
            );
            assert!(
                answered >= exp,
                "token_expired {:.3} s before the token's exp",
                exp - answered
            );
            break;
        }
        assert!(
            answered < exp + EXPIRY_PATIENCE_SECS,
            "the revoked token still answers token_revoked {EXPIRY_PATIENCE_SECS} s after its exp"
        );
    }
    assert!(
        revoked_answers > 0,
        "the revocation was never seen before the token expired"
    );
}

async fn health_endpoints_answer(engine: Engine) {
    let Some(client) = Client::start(engine).await else {
        return;
    };
    let (status, body) = client.get("/healthz", None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = client.get("/readyz", None).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ready"))
    );
}

palaver_integration_tests::on_every_engine!(
    register_returns_the_account_without_secrets,
    every_validation_rule_is_refused_and_names_the_field,
    malformed_bodies_get_clear_errors,
    duplicates_conflict_case_insensitively,
    login_by_username_or_email_sets_a_locked_down_cookie,
    wrong_password_and_unknown_user_get_the_same_answer,
    me_answers_by_bearer_or_cookie_and_refuses_everything_else,
    logout_revokes_the_token_until_it_expires,
    health_endpoints_answer,
);
