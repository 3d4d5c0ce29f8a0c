//! The in-memory [`Context`] every handler test runs over.

use async_trait::async_trait;

use super::{FakeCredentials, ManualClock, MemoryGuard, MemoryHub, MemoryReceipts, MemoryStore};
use crate::context::{
    Broker, Clock, Context, Credentials, Guard, Hub, Limits, MessageLog, Posted, Presence,
    Receipts, Store,
};
use crate::error::StoreError;
use crate::event::{Broadcast, RoomEvent};
use crate::model::{Appended, NewEntry};

/// The in-memory context: public fields so tests can look inside.
pub struct TestContext {
    pub store: MemoryStore,
    pub credentials: FakeCredentials,
    pub clock: ManualClock,
    pub hub: MemoryHub,
    pub guard: MemoryGuard,
    pub receipts: MemoryReceipts,
    pub limits: Limits,
}

impl Default for TestContext {
    fn default() -> Self {
        Self::new()
    }
}

impl TestContext {
    /// An empty context whose clock stands at 2026-11-25 15:30:45 UTC.
    pub fn new() -> Self {
        TestContext {
            store: MemoryStore::new(),
            credentials: FakeCredentials::default(),
            clock: ManualClock::at(time::macros::datetime!(2026-11-25 15:30:45 UTC)),
            hub: MemoryHub::default(),
            guard: MemoryGuard::default(),
            receipts: MemoryReceipts::default(),
            limits: Limits::default(),
        }
    }

    /// Registers `username` (email `<username>@example.com`) with `password`.
    pub async fn register(&self, username: &str, password: &str) -> crate::model::UserView {
        let request = crate::actions::register::RegisterRequest {
            username: Some(username.into()),
            email: Some(format!("{username}@example.com")),
            password: Some(password.into()),
        };
        crate::actions::register::register(self, request)
            .await
            .expect("test registration is valid")
    }

    /// Logs `username` in with the password [`TestContext::register_and_login`] uses; returns the token.
    pub async fn login(&self, username: &str) -> String {
        let request = crate::actions::login::LoginRequest {
            username: Some(username.into()),
            password: Some(TEST_PASSWORD.into()),
        };
        crate::actions::login::login(self, request)
            .await
            .expect("test login is valid")
            .token
    }

    /// Registers `username` and logs in; returns the account and a token.
    pub async fn register_and_login(&self, username: &str) -> (crate::model::UserView, String) {
        let user = self.register(username, TEST_PASSWORD).await;
        let token = self.login(username).await;
        (user, token)
    }
}

/// The password test helpers register with.
pub const TEST_PASSWORD: &str = "correct horse battery";

impl Context for TestContext {
    fn store(&self) -> &dyn Store {
        &self.store
    }

    fn credentials(&self) -> &dyn Credentials {
        &self.credentials
    }

    fn clock(&self) -> &dyn Clock {
        &self.clock
    }

    fn hub(&self) -> &dyn Hub {
        &self.hub
    }

    fn broker(&self) -> &dyn Broker {
        &self.hub
    }

    fn presence(&self) -> &dyn Presence {
        &self.hub
    }

    fn limits(&self) -> &Limits {
        &self.limits
    }

    fn messages(&self) -> &dyn MessageLog {
        self
    }

    fn guard(&self) -> &dyn Guard {
        &self.guard
    }

    fn receipts(&self) -> &dyn Receipts {
        &self.receipts
    }
}

/// Posting in the test context: append to the memory store, then publish through the memory hub (one task, so in
/// seq order).
#[async_trait]
impl MessageLog for TestContext {
    async fn submit(&self, room: &str, message: NewEntry) -> Result<Posted, StoreError> {
        let outcome = self
            .store
            .append_messages(std::slice::from_ref(&message))
            .await?
            .pop()
            .ok_or_else(|| StoreError::Backend("no outcome for a message".into()))?;
        if let Appended::Stored(stored) = &outcome {
            Broker::publish(
                &self.hub,
                Broadcast {
                    room_id: stored.room_id,
                    room: room.to_owned(),
                    at: stored.created_at,
                    event: RoomEvent::Entry(stored.clone()),
                    skip_user: None,
                },
            );
        }
        Ok(Box::pin(std::future::ready(Ok(outcome))))
    }
}
