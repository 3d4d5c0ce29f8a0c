//! A small HTTP client for black-box tests of the API.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{Engine, TEST_JWT_SECRET, TestServer};

/// The password [`Client::register`] uses.
pub const PASSWORD: &str = "correct horse battery";

/// A test server and an HTTP client for it.
pub struct Client {
    pub server: TestServer,
    pub http: reqwest::Client,
}

impl Client {
    /// A server on `engine` (see [`TestServer::start`]) and a client.
    pub async fn start(engine: Engine) -> Option<Client> {
        let server = TestServer::start(engine).await?;
        Some(Client {
            server,
            http: reqwest::Client::new(),
        })
    }

    /// A server on `engine` with extra `PALAVER_*` settings (see [`TestServer::start_with`]) and a client.
    pub async fn start_with(engine: Engine, extra: &[(&str, &str)]) -> Option<Client> {
        let server = TestServer::start_with(engine, extra).await?;
        Some(Client {
            server,
            http: reqwest::Client::new(),
        })
    }

    /// POSTs JSON without credentials.
    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .http
            .post(self.server.url(path))
            .json(&body)
            .send()
            .await
            .expect("request sent");
        read(response).await
    }

    /// GETs, with a Bearer token when given.
    pub async fn get(&self, path: &str, token: Option<&str>) -> (StatusCode, Value) {
        let mut request = self.http.get(self.server.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        read(request.send().await.expect("request sent")).await
    }

    /// Registers `username` (`<username>@example.com`, [`PASSWORD`]) and returns the account.
    pub async fn register(&self, username: &str) -> Value {
        let (status, body) = self
            .post(
                "/api/register",
                json!({"username": username, "email": format!("{username}@example.com"), "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body
    }

    /// Logs in and returns the token.
    pub async fn login(&self, login: &str) -> String {
        let (status, body) = self
            .post(
                "/api/login",
                json!({"username": login, "password": PASSWORD}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["token"].as_str().expect("a token").to_owned()
    }
}

impl Client {
    /// POSTs JSON with a Bearer token.
    pub async fn post_as(&self, token: &str, path: &str, body: Value) -> (StatusCode, Value) {
        let request = self
            .http
            .post(self.server.url(path))
            .bearer_auth(token)
            .json(&body);
        read(request.send().await.expect("request sent")).await
    }

    /// GETs with a Bearer token and extra request headers (e.g. `X-Room-Password`).
    pub async fn get_with(
        &self,
        path: &str,
        token: &str,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = self.http.get(self.server.url(path)).bearer_auth(token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        read(request.send().await.expect("request sent")).await
    }

    /// DELETEs with a Bearer token.
    pub async fn delete_as(&self, token: &str, path: &str) -> (StatusCode, Value) {
        let request = self.http.delete(self.server.url(path)).bearer_auth(token);
        read(request.send().await.expect("request sent")).await
    }

    /// The usernames `GET /api/rooms/{room}/members` lists, asked with `token`.
    pub async fn member_names(&self, token: &str, room: &str) -> Vec<String> {
        let (status, body) = self
            .get(&format!("/api/rooms/{room}/members"), Some(token))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body.as_array()
            .or_else(|| body["members"].as_array())
            .expect("a member list")
            .iter()
            .filter_map(|member| member["username"].as_str().map(str::to_owned))
            .collect()
    }

    /// Registers and logs in `username`; returns the token.
    pub async fn user(&self, username: &str) -> String {
        self.register(username).await;
        self.login(username).await
    }
}

/// The status and JSON body (or `Null` when empty) of a response.
pub async fn read(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let text = response.text().await.expect("a body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or(Value::String(text))
    };
    (status, body)
}

/// Asserts an error answer: its status, its code, and a non-empty sentence.
pub fn assert_error(status: StatusCode, body: &Value, expected_status: StatusCode, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["error"].as_str().is_some_and(|text| !text.is_empty()),
        "{body}"
    );
}

/// The body of an error answer without a `field` (PROTOCOL §1.1): `{"error":"<text>","code":"<code>"}`.
pub fn error_body(code: &str, text: &str) -> Value {
    json!({"error": text, "code": code})
}

/// Asserts an error answer exactly: its status and its whole body, `{"error":"<text>","code":"<code>"}` and nothing
/// else (PROTOCOL §9 lists every code and text).
pub fn assert_exact_error(
    status: StatusCode,
    body: &Value,
    expected_status: StatusCode,
    code: &str,
    text: &str,
) {
    assert_eq!(
        (status, body),
        (expected_status, &error_body(code, text)),
        "expected {expected_status} {code} {text:?}"
    );
}

/// The claims of a token the test server issued (or one signed with [`TEST_JWT_SECRET`]), checked for signature,
/// issuer and audience but not for its times: e.g. to learn a token's `exp`.
///
/// # Panics
/// When the token is not one of the test server's.
pub fn token_claims(token: &str) -> Value {
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.set_issuer(&["palaver"]);
    validation.set_audience(&["palaver-clients"]);
    let key = jsonwebtoken::DecodingKey::from_secret(TEST_JWT_SECRET.as_bytes());
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .unwrap_or_else(|err| panic!("not a token of the test server ({err}): {token}"))
        .claims
}

/// Now, in seconds since the Unix epoch with a fraction: the clock the server reads too (they share the machine's),
/// to judge an answer by the time it was asked and answered.
pub fn unix_now() -> f64 {
    let now = time::OffsetDateTime::now_utc();
    now.unix_timestamp() as f64 + f64::from(now.nanosecond()) / 1e9
}
