//! PLACEHOLDER: being written. Every method fails until the real implementation replaces this file.
use async_trait::async_trait;
use palaver_handlers::model::*;
use palaver_handlers::{Store, StoreError};
use time::OffsetDateTime;
use uuid::Uuid;

pub struct SqliteStore;

impl SqliteStore {
    pub async fn open(_path: &std::path::Path) -> Result<Self, StoreError> {
        Err(StoreError::Backend("not yet".into()))
    }
}

fn nope<T>() -> Result<T, StoreError> {
    Err(StoreError::Backend("not yet".into()))
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<(), StoreError> { nope() }
    async fn create_user(&self, _u: NewUser) -> Result<User, StoreError> { nope() }
    async fn user_by_id(&self, _id: Uuid) -> Result<Option<User>, StoreError> { nope() }
    async fn user_by_login(&self, _l: &str) -> Result<Option<User>, StoreError> { nope() }
    async fn revoke_token(&self, _t: &str, _u: Uuid, _e: OffsetDateTime) -> Result<(), StoreError> { nope() }
    async fn is_token_revoked(&self, _t: &str) -> Result<bool, StoreError> { nope() }
    async fn purge_revoked_tokens(&self, _n: OffsetDateTime) -> Result<u64, StoreError> { nope() }
    async fn create_room(&self, _r: NewRoom) -> Result<Room, StoreError> { nope() }
    async fn room_by_name(&self, _n: &str) -> Result<Option<Room>, StoreError> { nope() }
    async fn list_rooms(&self) -> Result<Vec<Room>, StoreError> { nope() }
    async fn count_rooms_owned(&self, _o: Uuid) -> Result<u64, StoreError> { nope() }
    async fn delete_room(&self, _r: Uuid) -> Result<bool, StoreError> { nope() }
    async fn add_member(&self, _r: Uuid, _u: Uuid, _a: OffsetDateTime) -> Result<bool, StoreError> { nope() }
    async fn remove_member(&self, _r: Uuid, _u: Uuid) -> Result<bool, StoreError> { nope() }
    async fn is_member(&self, _r: Uuid, _u: Uuid) -> Result<bool, StoreError> { nope() }
    async fn members(&self, _r: Uuid) -> Result<Vec<Member>, StoreError> { nope() }
    async fn append_messages(&self, _b: &[NewMessage]) -> Result<Vec<Appended>, StoreError> { nope() }
    async fn history(&self, _r: Uuid, _q: &HistoryQuery) -> Result<HistoryPage, StoreError> { nope() }
    async fn record_audit(&self, _e: &[AuditEvent]) -> Result<(), StoreError> { nope() }
    async fn audit_since(&self, _s: OffsetDateTime, _l: u32) -> Result<Vec<AuditEvent>, StoreError> { nope() }
}
