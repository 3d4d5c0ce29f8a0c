//! The audit log.

use palaver_handlers::model::AuditEvent;
use rusqlite::{Connection, Row, TransactionBehavior, params};
use time::OffsetDateTime;

use super::convert::{
    Failure, backend, id_text, json_at, micros, micros_ceil, optional_uuid_at, time_at,
};

/// Appends events in one transaction.
pub(super) fn record_audit(
    connection: &mut Connection,
    events: &[AuditEvent],
) -> Result<(), Failure> {
    let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for event in events {
        insert(&tx, event)?;
    }
    tx.commit()?;
    Ok(())
}

fn insert(tx: &Connection, event: &AuditEvent) -> Result<(), Failure> {
    let details = serde_json::to_string(&event.details)
        .map_err(|err| backend(format!("audit details are not JSON: {err}")))?;
    tx.prepare_cached(
        "INSERT INTO audit_log (at, event, user_id, username, ip, user_agent, outcome, details)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        micros(event.at),
        event.event,
        event.user_id.map(id_text),
        event.username,
        event.ip,
        event.user_agent,
        event.outcome,
        details,
    ])?;
    Ok(())
}

/// Events at or after `since`, oldest first (same-time events in the order recorded), at most `limit`.
pub(super) fn audit_since(
    connection: &Connection,
    since: OffsetDateTime,
    limit: u32,
) -> Result<Vec<AuditEvent>, Failure> {
    let mut statement = connection.prepare_cached(
        "SELECT at, event, user_id, username, ip, user_agent, outcome, details FROM audit_log
         WHERE at >= ?1
         ORDER BY at, id
         LIMIT ?2",
    )?;
    let events = statement
        .query_map(params![micros_ceil(since), limit], event_from_row)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(events)
}

fn event_from_row(row: &Row<'_>) -> rusqlite::Result<AuditEvent> {
    Ok(AuditEvent {
        at: time_at(row, 0)?,
        event: row.get(1)?,
        user_id: optional_uuid_at(row, 2)?,
        username: row.get(3)?,
        ip: row.get(4)?,
        user_agent: row.get(5)?,
        outcome: row.get(6)?,
        details: json_at(row, 7)?,
    })
}
