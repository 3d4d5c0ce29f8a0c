//! `get_messages` (WebSocket) and `GET /api/rooms/{name}/messages`: a page of a room's history, newest first, with
//! cursors and filters (PROTOCOL §5).

use serde::Deserialize;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::actions::room_access::{find_room, may_enter};
use crate::context::Context;
use crate::error::Error;
use crate::event::{Reply, Session};
use crate::model::{HistoryPage, HistoryQuery, Principal, Room};

/// The page size when none is asked for.
pub const DEFAULT_LIMIT: u32 = 50;
/// The largest page served; larger requests are served this many.
pub const MAX_LIMIT: u32 = 200;

/// The `data` of a `get_messages` command.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GetMessagesRequest {
    pub name: String,
    /// A private room's password, for a user who is not a member.
    pub password: Option<String>,
    pub limit: Option<i64>,
    pub before_seq: Option<i64>,
    pub after_seq: Option<i64>,
    pub sender: Option<String>,
    pub contains: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
    pub thread: Option<i64>,
}

/// The query of a history request as clients send it (the REST route's query string); [`HistoryParams::query`]
/// checks and converts it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// Page size: default 50, clamped to 1..=200.
    pub limit: Option<i64>,
    /// Only messages older than this seq (the previous page's `next_before`).
    pub before_seq: Option<i64>,
    /// Only messages newer than this seq.
    pub after_seq: Option<i64>,
    /// Only messages by this username (case-insensitive).
    pub sender: Option<String>,
    /// Only messages containing this text (case-insensitive).
    pub contains: Option<String>,
    /// Only messages created at or after this RFC 3339 time.
    pub since: Option<String>,
    /// Only messages created at or before this RFC 3339 time.
    pub until: Option<String>,
    /// Only the thread of this message: the message and its replies.
    pub thread: Option<i64>,
}

impl HistoryParams {
    /// The store query these parameters ask for: the limit clamped, empty filters dropped, times parsed.
    pub fn query(&self) -> Result<HistoryQuery, Error> {
        let limit = self.limit.map_or(DEFAULT_LIMIT, |limit| {
            limit.clamp(1, i64::from(MAX_LIMIT)) as u32
        });
        Ok(HistoryQuery {
            limit,
            before_seq: self.before_seq,
            after_seq: self.after_seq,
            sender: non_empty(&self.sender),
            contains: non_empty(&self.contains),
            since: time_field("since", &self.since)?,
            until: time_field("until", &self.until)?,
            thread: self.thread,
            viewer: None,
        })
    }
}

impl GetMessagesRequest {
    /// The query part of the request.
    pub fn params(&self) -> HistoryParams {
        HistoryParams {
            limit: self.limit,
            before_seq: self.before_seq,
            after_seq: self.after_seq,
            sender: self.sender.clone(),
            contains: self.contains.clone(),
            since: self.since.clone(),
            until: self.until.clone(),
            thread: self.thread,
        }
    }
}

fn non_empty(value: &Option<String>) -> Option<String> {
    value.clone().filter(|value| !value.is_empty())
}

fn time_field(field: &str, value: &Option<String>) -> Result<Option<OffsetDateTime>, Error> {
    match value.as_deref() {
        None | Some("") => Ok(None),
        Some(value) => OffsetDateTime::parse(value, &Rfc3339)
            .map(Some)
            .map_err(|_| {
                Error::Malformed(format!(
                    "{field} must be an RFC 3339 time, like 2026-11-25T15:31:02Z"
                ))
            }),
    }
}

/// Reply: a page of the room's history, newest first.
pub async fn get_messages(
    ctx: &dyn Context,
    session: &Session,
    req: GetMessagesRequest,
) -> Result<Vec<Reply>, Error> {
    let (room, page) = get_messages_for(
        ctx,
        &session.principal,
        &req.name,
        &req.params(),
        req.password.as_deref(),
    )
    .await?;
    Ok(vec![Reply::History {
        room: room.name,
        page,
    }])
}

/// A page of the history of the room called `room_name`, if `principal` may read it: members may; anyone may read a
/// public room; a private room's password lets a non-member read without joining. The core of both the WebSocket
/// command and the REST route.
pub async fn get_messages_for(
    ctx: &dyn Context,
    principal: &Principal,
    room_name: &str,
    params: &HistoryParams,
    password: Option<&str>,
) -> Result<(Room, HistoryPage), Error> {
    let mut query = params.query()?;
    query.viewer = Some(principal.user_id);
    let room = find_room(ctx, room_name).await?;
    // A non-member naming no password is simply not in the room; a wrong password is said to be wrong.
    may_enter(ctx, principal, &room, password, Error::NotInRoom).await?;
    let page = ctx.store().history(room.id, &query).await?;
    Ok((room, page))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::HistoryMessage;
    use crate::testing::TestContext;
    use crate::testing::fixtures::*;
    use crate::{ErrorKind, Store};
    use time::macros::datetime;

    fn request(name: &str) -> GetMessagesRequest {
        GetMessagesRequest {
            name: name.into(),
            ..GetMessagesRequest::default()
        }
    }

    fn page_of(replies: Vec<Reply>) -> HistoryPage {
        match <[Reply; 1]>::try_from(replies) {
            Ok([Reply::History { page, .. }]) => page,
            Ok(other) => panic!("unexpected reply {other:?}"),
            Err(replies) => panic!("unexpected replies {replies:?}"),
        }
    }

    fn seqs(page: &HistoryPage) -> Vec<i64> {
        page.messages.iter().map(|m| m.entry.seq).collect()
    }

    #[tokio::test]
    async fn a_member_reads_the_newest_first() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let room = public_room(&ctx, &john, "general").await;
        let stored = post(&ctx, &room, &john.principal, &["one", "two", "three"]).await;
        let replies = get_messages(&ctx, &john, request("GENERAL")).await.unwrap();
        assert_eq!(
            replies,
            vec![Reply::History {
                room: "general".into(),
                page: HistoryPage {
                    messages: stored
                        .into_iter()
                        .rev()
                        .map(HistoryMessage::plain)
                        .collect(),
                    next_before: Some(1),
                    has_more: false,
                    as_of: 3,
                },
            }]
        );
    }

    #[tokio::test]
    async fn pages_go_back_with_before_seq() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let room = public_room(&ctx, &john, "general").await;
        post(&ctx, &room, &john.principal, &["1", "2", "3", "4", "5"]).await;
        let mut req = request("general");
        req.limit = Some(2);
        let page = page_of(get_messages(&ctx, &john, req.clone()).await.unwrap());
        assert_eq!(
            (seqs(&page), page.next_before, page.has_more),
            (vec![5, 4], Some(4), true)
        );
        req.before_seq = page.next_before;
        let page = page_of(get_messages(&ctx, &john, req.clone()).await.unwrap());
        assert_eq!((seqs(&page), page.has_more), (vec![3, 2], true));
        req.before_seq = page.next_before;
        let page = page_of(get_messages(&ctx, &john, req.clone()).await.unwrap());
        assert_eq!((seqs(&page), page.has_more), (vec![1], false));
        req.before_seq = None;
        req.after_seq = Some(3);
        req.limit = None;
        let page = page_of(get_messages(&ctx, &john, req).await.unwrap());
        assert_eq!(seqs(&page), vec![5, 4]);
    }

    #[tokio::test]
    async fn the_limit_defaults_to_50_and_is_clamped() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let room = public_room(&ctx, &john, "general").await;
        let contents: Vec<String> = (1..=250).map(|n| n.to_string()).collect();
        let contents: Vec<&str> = contents.iter().map(String::as_str).collect();
        post(&ctx, &room, &john.principal, &contents).await;
        for (limit, served) in [
            (None, 50),
            (Some(0), 1),
            (Some(-5), 1),
            (Some(7), 7),
            (Some(200), 200),
            (Some(10_000), 200),
        ] {
            let mut req = request("general");
            req.limit = limit;
            let page = page_of(get_messages(&ctx, &john, req).await.unwrap());
            assert_eq!(page.messages.len(), served, "{limit:?}");
            assert!(page.has_more);
        }
    }

    #[tokio::test]
    async fn filters_by_sender_text_and_time() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let room = public_room(&ctx, &john, "general").await;
        enter(&ctx, &jane, "general").await;
        // At 15:30:46, :47, :48 and :49.
        post(&ctx, &room, &john.principal, &["Hello world", "bye"]).await;
        post(&ctx, &room, &jane.principal, &["HELLO again", "later"]).await;

        let cases = [
            (
                GetMessagesRequest {
                    sender: Some("JANE_DOE".into()),
                    ..request("general")
                },
                vec![4, 3],
            ),
            (
                GetMessagesRequest {
                    contains: Some("hello".into()),
                    ..request("general")
                },
                vec![3, 1],
            ),
            (
                GetMessagesRequest {
                    since: Some("2026-11-25T15:30:47Z".into()),
                    ..request("general")
                },
                vec![4, 3, 2],
            ),
            (
                GetMessagesRequest {
                    until: Some("2026-11-25T16:30:47+01:00".into()),
                    ..request("general")
                },
                vec![2, 1],
            ),
            (
                GetMessagesRequest {
                    sender: Some("john_doe".into()),
                    contains: Some("HELLO".into()),
                    ..request("general")
                },
                vec![1],
            ),
            // Empty filters filter nothing.
            (
                GetMessagesRequest {
                    sender: Some(String::new()),
                    contains: Some(String::new()),
                    since: Some(String::new()),
                    ..request("general")
                },
                vec![4, 3, 2, 1],
            ),
        ];
        for (req, expected) in cases {
            let page = page_of(get_messages(&ctx, &jane, req.clone()).await.unwrap());
            assert_eq!(seqs(&page), expected, "{req:?}");
        }
    }

    #[tokio::test]
    async fn bad_times_are_refused_naming_the_field() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        public_room(&ctx, &john, "general").await;
        for (req, field) in [
            (
                GetMessagesRequest {
                    since: Some("yesterday".into()),
                    ..request("general")
                },
                "since",
            ),
            (
                GetMessagesRequest {
                    until: Some("2026-11-25 15:30".into()),
                    ..request("general")
                },
                "until",
            ),
        ] {
            let err = get_messages(&ctx, &john, req).await.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::Invalid);
            assert!(
                err.to_string()
                    .starts_with(&format!("{field} must be an RFC 3339 time")),
                "{err}"
            );
        }
    }

    #[test]
    fn params_convert_to_a_store_query() {
        let params = HistoryParams {
            limit: Some(500),
            before_seq: Some(9),
            after_seq: Some(2),
            sender: Some("jane".into()),
            contains: Some(String::new()),
            since: Some("2026-11-25T15:30:45Z".into()),
            until: None,
            thread: Some(4),
        };
        assert_eq!(
            params.query().unwrap(),
            HistoryQuery {
                limit: 200,
                before_seq: Some(9),
                after_seq: Some(2),
                sender: Some("jane".into()),
                contains: None,
                since: Some(datetime!(2026-11-25 15:30:45 UTC)),
                until: None,
                thread: Some(4),
                viewer: None,
            }
        );
        assert_eq!(
            HistoryParams::default().query().unwrap(),
            HistoryQuery::latest(50)
        );
    }

    #[tokio::test]
    async fn anyone_may_read_a_public_room() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let room = public_room(&ctx, &john, "general").await;
        post(&ctx, &room, &john.principal, &["hi"]).await;
        let page = page_of(get_messages(&ctx, &jane, request("general")).await.unwrap());
        assert_eq!(seqs(&page), vec![1]);
        assert!(
            !ctx.store
                .is_member(room.id, jane.principal.user_id)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn a_private_room_is_for_members_or_password_holders() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let jane = on(2, &user(&ctx, "jane_doe").await);
        let room = private_room(&ctx, &john, "secret").await;
        post(&ctx, &room, &john.principal, &["hush"]).await;

        let err = get_messages(&ctx, &jane, request("secret"))
            .await
            .unwrap_err();
        assert_eq!(err, Error::NotInRoom);
        let wrong = GetMessagesRequest {
            password: Some("wrong password".into()),
            ..request("secret")
        };
        let err = get_messages(&ctx, &jane, wrong).await.unwrap_err();
        assert_eq!(err, Error::BadRoomPassword);
        assert_eq!(err.to_string(), "incorrect room password");

        let right = GetMessagesRequest {
            password: Some(ROOM_PASSWORD.into()),
            ..request("secret")
        };
        let page = page_of(get_messages(&ctx, &jane, right).await.unwrap());
        assert_eq!(seqs(&page), vec![1]);
        // Reading with the password does not make a member.
        assert!(
            !ctx.store
                .is_member(room.id, jane.principal.user_id)
                .await
                .unwrap()
        );
        // Members need no password, and a wrong one does not matter to them.
        let page = page_of(get_messages(&ctx, &john, request("secret")).await.unwrap());
        assert_eq!(seqs(&page), vec![1]);
        let wrong = GetMessagesRequest {
            password: Some("wrong password".into()),
            ..request("secret")
        };
        assert!(get_messages(&ctx, &john, wrong).await.is_ok());
    }

    #[tokio::test]
    async fn an_unknown_room_is_not_found() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let err = get_messages(&ctx, &john, request("nowhere"))
            .await
            .unwrap_err();
        assert_eq!(err, Error::RoomNotFound);
    }

    #[tokio::test]
    async fn the_rest_core_answers_the_room_and_page() {
        let ctx = TestContext::new();
        let john = on(1, &user(&ctx, "john_doe").await);
        let room = public_room(&ctx, &john, "general").await;
        post(&ctx, &room, &john.principal, &["hi"]).await;
        let (found, page) = get_messages_for(
            &ctx,
            &john.principal,
            "general",
            &HistoryParams::default(),
            None,
        )
        .await
        .unwrap();
        assert_eq!(
            found,
            ctx.store.room_by_name("general").await.unwrap().unwrap()
        );
        assert_eq!(seqs(&page), vec![1]);
        ctx.store.set_unavailable(true);
        let err = get_messages_for(
            &ctx,
            &john.principal,
            "general",
            &HistoryParams::default(),
            None,
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
    }
}
