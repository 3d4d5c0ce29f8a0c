//! `/healthz` (the process runs) and `/readyz` (its dependencies answer).

use std::sync::Arc;

use http::StatusCode;
use serde_json::json;
use warp::Reply;
use warp::reply::Response;

use crate::context::AppContext;

/// 200 whenever the process can answer.
pub async fn healthz() -> Response {
    warp::reply::json(&json!({"status": "ok"})).into_response()
}

/// 200 when the database answers, else 503 with the reason.
pub async fn readyz(ctx: Arc<AppContext>) -> Response {
    match ctx.store.ping().await {
        Ok(()) => warp::reply::json(&json!({"status": "ready", "database": "ok"})).into_response(),
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed");
            let body =
                warp::reply::json(&json!({"status": "unavailable", "database": "unavailable"}));
            warp::reply::with_status(body, StatusCode::SERVICE_UNAVAILABLE).into_response()
        }
    }
}
