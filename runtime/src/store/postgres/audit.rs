//! The audit log.

use palaver_handlers::StoreError;
use palaver_handlers::model::AuditEvent;
use time::OffsetDateTime;
use uuid::Uuid;

use super::PostgresStore;
use super::convert::{audit_from_row, pg_error, to_micros};

/// Appends a non-empty list of events with one statement, so all of them or none are stored.
pub(super) async fn record_audit(
    store: &PostgresStore,
    events: &[AuditEvent],
) -> Result<(), StoreError> {
    // One array per column, unnested into rows: one round trip whatever the number of events.
    let at: Vec<OffsetDateTime> = events.iter().map(|e| to_micros(e.at)).collect();
    let event: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    let user_id: Vec<Option<Uuid>> = events.iter().map(|e| e.user_id).collect();
    let username: Vec<Option<&str>> = events.iter().map(|e| e.username.as_deref()).collect();
    let ip: Vec<Option<&str>> = events.iter().map(|e| e.ip.as_deref()).collect();
    let user_agent: Vec<Option<&str>> = events.iter().map(|e| e.user_agent.as_deref()).collect();
    let outcome: Vec<&str> = events.iter().map(|e| e.outcome.as_str()).collect();
    let details: Vec<&serde_json::Value> = events.iter().map(|e| &e.details).collect();
    store
        .execute(
            "INSERT INTO audit_log (at, event, user_id, username, ip, user_agent, outcome, details)
             SELECT * FROM UNNEST($1::timestamptz[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                                  $7::text[], $8::jsonb[])",
            &[&at, &event, &user_id, &username, &ip, &user_agent, &outcome, &details],
        )
        .await
        .map(drop)
}

/// At most `limit` events recorded at or after `since`, oldest first.
pub(super) async fn audit_since(
    store: &PostgresStore,
    since: OffsetDateTime,
    limit: u32,
) -> Result<Vec<AuditEvent>, StoreError> {
    let rows = store
        .query(
            "SELECT at, event, user_id, username, ip, user_agent, outcome, details FROM audit_log
                 WHERE at >= $1 ORDER BY at, id LIMIT $2",
            &[&since, &i64::from(limit)],
        )
        .await?;
    rows.iter()
        .map(audit_from_row)
        .collect::<Result<_, _>>()
        .map_err(pg_error)
}
