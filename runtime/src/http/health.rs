//! `/healthz` (the process runs) and `/readyz` (its dependencies answer: the database, and NATS when clustered).

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

/// 200 when the database answers (and, on a clustered node, NATS is connected and the node hears itself in the
/// cluster), else 503 saying which does not.
pub async fn readyz(ctx: Arc<AppContext>) -> Response {
    let database = match ctx.store.ping().await {
        Ok(()) => true,
        Err(err) => {
            tracing::warn!(error = %err, "readiness check failed: database");
            false
        }
    };
    let nats = ctx.cluster.as_ref().map(|node| node.cluster.connected());
    let in_cluster = ctx.cluster.as_ref().map(|node| !node.presence.is_cut());
    let ready = database && nats != Some(false) && in_cluster != Some(false);
    let state = |up: bool| if up { "ok" } else { "unavailable" };
    let mut body = json!({
        "status": if ready { "ready" } else { "unavailable" },
        "database": state(database),
    });
    if let Some(nats) = nats {
        body["nats"] = state(nats).into();
    }
    if let Some(in_cluster) = in_cluster {
        body["cluster"] = state(in_cluster).into();
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}
