//! Housekeeping the stores need while the server runs: revocations of tokens that have expired and the uses of
//! tickets that have expired are forgotten, so those tables hold only what could still be presented.

use std::sync::Arc;
use std::time::Duration;

use palaver_handlers::Store;
use time::OffsetDateTime;

use crate::shutdown::Shutdown;

/// How often expired revocations and ticket uses are purged (a busy node records a ticket use per browser socket).
pub const PURGE_EVERY: Duration = Duration::from_secs(60);

/// Purges revocations of expired tokens and uses of expired tickets every `every` until the server stops. A failed
/// purge is logged and tried again next time: nothing depends on it but the tables' size.
pub async fn purge_expired(store: Arc<dyn Store>, every: Duration, mut shutdown: Shutdown) {
    let mut ticks = tokio::time::interval(every);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.stopped() => return,
        }
        let now = OffsetDateTime::now_utc();
        match store.purge_revoked_tokens(now).await {
            Ok(0) => {}
            Ok(purged) => tracing::info!(purged, "revocations of expired tokens purged"),
            Err(err) => tracing::warn!(error = %err, "revocations of expired tokens not purged"),
        }
        match store.purge_used_tickets(now).await {
            Ok(purged) => tracing::debug!(purged, "uses of expired tickets purged"),
            Err(err) => tracing::warn!(error = %err, "uses of expired tickets not purged"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palaver_handlers::model::NewUser;
    use palaver_handlers::testing::MemoryStore;
    use uuid::Uuid;

    #[tokio::test(start_paused = true)]
    async fn expired_revocations_and_ticket_uses_are_purged_each_period_until_shutdown() {
        let store = Arc::new(MemoryStore::new());
        let user = Uuid::now_v7();
        let now = OffsetDateTime::now_utc();
        store
            .create_user(NewUser {
                id: user,
                username: "john_doe".into(),
                email: "john@example.com".into(),
                password_hash: "x".into(),
                created_at: now,
            })
            .await
            .unwrap();
        let expired = now - time::Duration::hours(1);
        let live = now + time::Duration::hours(1);
        store.revoke_token("expired", user, expired).await.unwrap();
        store.revoke_token("live", user, live).await.unwrap();
        store.use_ticket("expired-ticket", expired).await.unwrap();
        store.use_ticket("live-ticket", live).await.unwrap();
        let (stop, shutdown) = crate::shutdown::channel();
        let purging = tokio::spawn(purge_expired(
            store.clone(),
            Duration::from_secs(60),
            shutdown,
        ));
        // The first purge runs at once; yield until it has.
        for _ in 0..100 {
            if !store.is_token_revoked("expired").await.unwrap() {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert!(!store.is_token_revoked("expired").await.unwrap());
        assert!(
            store.is_token_revoked("live").await.unwrap(),
            "a live revocation stays"
        );
        assert!(
            store.use_ticket("expired-ticket", live).await.unwrap(),
            "an expired ticket's use is forgotten"
        );
        assert!(
            !store.use_ticket("live-ticket", live).await.unwrap(),
            "a live ticket's use stays"
        );
        stop.stop();
        tokio::time::timeout(Duration::from_secs(1), purging)
            .await
            .expect("the purge stops with the server")
            .unwrap();
    }
}
