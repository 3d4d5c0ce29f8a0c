//! `GET /metrics`: Prometheus's text format. Open by default (bind the server to a private address), or behind a
//! bearer token when `metrics_token` is set.

use std::sync::Arc;

use palaver_handlers::Error;
use warp::Reply;
use warp::reply::Response;

use crate::auth::Presented;
use crate::auth::csrf::constant_time_eq;
use crate::context::AppContext;
use crate::render::http::error_response;

/// The current metrics, with the pool usage read at scrape time.
pub async fn metrics(ctx: Arc<AppContext>, presented: Presented) -> Response {
    let required = &ctx.settings.metrics_token;
    if !required.is_empty() {
        let given = match &presented {
            Presented::Bearer(token) => token.as_str(),
            _ => "",
        };
        if !constant_time_eq(given.as_bytes(), required.as_bytes()) {
            return error_response(&Error::MetricsTokenRequired);
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
