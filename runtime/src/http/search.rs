//! `GET /api/search?q=…&room=…&limit=…&cursor=…`: full-text search over the caller's rooms, over the same handler
//! core as the WebSocket `search` command.

use std::sync::Arc;

use palaver_handlers::Error;
use palaver_handlers::actions::search::{SearchRequest, search_for};
use warp::Reply;
use warp::reply::Response;

use super::respond;
use crate::auth::{self, Presented};
use crate::context::AppContext;
use crate::render::json::search_body;

/// `GET /api/search` → `{results, next}`.
pub async fn search(ctx: Arc<AppContext>, presented: Presented, query: String) -> Response {
    respond(
        async {
            let principal = auth::reader(&ctx, &presented).await?;
            let request: SearchRequest = serde_urlencoded::from_str(&query)
                .map_err(|err| Error::Malformed(format!("query string is not valid: {err}")))?;
            let page = search_for(ctx.as_ref(), &principal, &request).await?;
            Ok(warp::reply::json(&search_body(&page)).into_response())
        }
        .await,
    )
}
