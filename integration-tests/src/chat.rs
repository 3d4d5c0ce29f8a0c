//! A server with two registered, logged-in users, john_doe and jane_doe: where most WebSocket suites start.

use crate::api::Client;
use crate::server::{Engine, TestServer};
use crate::ws::WsClient;

/// A test server and the tokens of its two users.
pub struct Chat {
    pub client: Client,
    pub john: String,
    pub jane: String,
}

impl Chat {
    /// A server with the default settings; `None` when the engine is unavailable here (the test is skipped).
    pub async fn start(engine: Engine) -> Option<Chat> {
        Self::start_with(engine, &[]).await
    }

    /// A server with `extra` settings (environment variables) on top of the test defaults.
    pub async fn start_with(engine: Engine, extra: &[(&str, &str)]) -> Option<Chat> {
        let server = TestServer::start_with(engine, extra).await?;
        let client = Client {
            server,
            http: reqwest::Client::new(),
        };
        let john = client.user("john_doe").await;
        let jane = client.user("jane_doe").await;
        Some(Chat { client, john, jane })
    }

    pub fn server(&self) -> &TestServer {
        &self.client.server
    }

    /// A text-protocol connection with `token`.
    pub async fn text(&self, token: &str) -> WsClient {
        WsClient::text(self.server(), token).await
    }

    /// A JSON-protocol connection with `token`.
    pub async fn json(&self, token: &str) -> WsClient {
        WsClient::json(self.server(), token).await
    }

    /// `http://127.0.0.1:<port>`: the server's own origin.
    pub fn own_origin(&self) -> String {
        self.server().url("")
    }
}
