//! `GET /metrics`: Prometheus's text format. Open by default (bind the server to a private address), or behind a
//! bearer token when `metrics_token` is set.

use std::sync::Arc;

use http::StatusCode;
use warp::Reply;
use warp::reply::Response;

use super::auth::Presented;
use super::csrf::constant_time_eq;
use super::error::json_error;
use crate::context::AppContext;

/// The current metrics, with the pool usage read at scrape time.
pub async fn metrics(ctx: Arc<AppContext>, presented: Presented) -> Response {
    let required = &ctx.settings.metrics_token;
    if !required.is_empty() {
        let given = match &presented {
            Presented::Bearer(token) => token.as_str(),
            _ => "",
        };
        if !constant_time_eq(given.as_bytes(), required.as_bytes()) {
            return json_error(
                StatusCode::UNAUTHORIZED,
                "a metrics token is required",
                "unauthorized",
                None,
            );
        }
    }
    if let Some(pool) = &ctx.pool {
        let status = pool.status();
        let in_use = status.size.saturating_sub(status.available);
        ctx.metrics
            .db_pool_in_use
            .set(i64::try_from(in_use).unwrap_or(i64::MAX));
    }
    let body = ctx.metrics.render();
    warp::reply::with_header(
        body,
        http::header::CONTENT_TYPE,
        "text/plain; version=0.0.4",
    )
    .into_response()
}
