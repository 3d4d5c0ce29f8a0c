//! `search` (WebSocket) and `GET /api/search`: full-text search over the messages of the rooms the user is a member
//! of, ranked, paged, with highlighted snippets. Edited messages are found by their current text; deleted ones are
//! gone from the index.

use serde::Deserialize;

use crate::actions::room_access::find_room;
use crate::context::Context;
use crate::error::{Error, Field};
use crate::event::{Reply, Session};
use crate::model::{Principal, SearchPage, SearchQuery};

/// The page size when none is asked for.
pub const DEFAULT_LIMIT: u32 = 20;
/// The largest page served; larger requests are served this many.
pub const MAX_LIMIT: u32 = 100;
/// The longest query, in characters.
pub const MAX_QUERY_CHARS: usize = 200;

/// The `data` of a `search` command, and the query string of `GET /api/search` (`q` there).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// Words to find, all of them (case and accents do not matter).
    #[serde(alias = "q")]
    pub query: String,
    /// Only this room.
    pub room: Option<String>,
    /// Page size: default 20, clamped to 1..=100.
    pub limit: Option<i64>,
    /// The `next` of the previous page.
    pub cursor: Option<u64>,
}

/// Reply: a page of results, best first.
pub async fn search(
    ctx: &dyn Context,
    session: &Session,
    req: SearchRequest,
) -> Result<Vec<Reply>, Error> {
    Ok(vec![Reply::SearchResults(
        search_for(ctx, &session.principal, &req).await?,
    )])
}

/// The core of both the WebSocket command and the REST route.
pub async fn search_for(
    ctx: &dyn Context,
    principal: &Principal,
    req: &SearchRequest,
) -> Result<SearchPage, Error> {
    let words = req.query.trim();
    if words.is_empty() {
        return Err(Error::invalid(Field::Query, "query must not be empty"));
    }
    if words.chars().count() > MAX_QUERY_CHARS {
        return Err(Error::invalid(
            Field::Query,
            format!("query must be at most {MAX_QUERY_CHARS} characters long"),
        ));
    }
    let room_id = match req.room.as_deref().filter(|room| !room.is_empty()) {
        Some(name) => {
            let room = find_room(ctx, name).await?;
            if !ctx.store().is_member(room.id, principal.user_id).await? {
                return Err(Error::NotInRoom);
            }
            Some(room.id)
        }
        None => None,
    };
    let limit = req.limit.map_or(DEFAULT_LIMIT, |limit| {
        limit.clamp(1, i64::from(MAX_LIMIT)) as u32
    });
    let query = SearchQuery {
        user_id: principal.user_id,
        words: words.to_owned(),
        room_id,
        limit,
        offset: req.cursor.unwrap_or(0),
    };
    Ok(ctx.store().search(&query).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::TestContext;
    use crate::testing::fixtures::*;

    fn query(words: &str, room: Option<&str>) -> SearchRequest {
        SearchRequest {
            query: words.into(),
            room: room.map(Into::into),
            ..SearchRequest::default()
        }
    }

    #[tokio::test]
    async fn finds_in_the_users_rooms_and_refuses_bad_queries() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let stranger = on(2, &user(&ctx, "stranger").await);
        let room = public_room(&ctx, &john, "general").await;
        post(
            &ctx,
            &room,
            &john.principal,
            &["lunch at noon?", "noon works"],
        )
        .await;
        let replies = search(&ctx, &john, query("NOON lunch", None))
            .await
            .unwrap();
        let [Reply::SearchResults(page)] = replies.as_slice() else {
            panic!("{replies:?}");
        };
        assert_eq!(page.results.len(), 1);
        assert_eq!(page.results[0].snippet, "**lunch** at **noon**?");
        assert_eq!(page.results[0].room, "general");
        // Not a member: nothing found, and naming the room is refused.
        let theirs = search_for(&ctx, &stranger.principal, &query("noon", None))
            .await
            .unwrap();
        assert!(theirs.results.is_empty());
        assert_eq!(
            search_for(&ctx, &stranger.principal, &query("noon", Some("general"))).await,
            Err(Error::NotInRoom)
        );
        assert_eq!(
            search_for(&ctx, &john.principal, &query("noon", Some("nowhere"))).await,
            Err(Error::RoomNotFound)
        );
        for bad in ["", "   ", &"x".repeat(MAX_QUERY_CHARS + 1)] {
            let err = search_for(&ctx, &john.principal, &query(bad, None))
                .await
                .unwrap_err();
            assert_eq!(err.code(), "invalid_query", "{bad:?}");
        }
        // Limits are clamped, and a page's next is the following offset.
        let mut paged = query("noon", None);
        paged.limit = Some(0);
        let page = search_for(&ctx, &john.principal, &paged).await.unwrap();
        assert_eq!((page.results.len(), page.next), (1, Some(1)));
        paged.cursor = page.next;
        let page = search_for(&ctx, &john.principal, &paged).await.unwrap();
        assert_eq!((page.results.len(), page.next), (1, None));
    }
}
