//! A small HTTP client for black-box tests of the API.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{Engine, TestServer};

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
