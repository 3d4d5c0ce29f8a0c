//! From a client's text frame to an action call: decode `{"type", "id", "data"}`, pick the handler, decode its data.
//! Anything that is not a well-formed command answers `invalid message format` and leaves the connection open.

use palaver_handlers::actions::message::PendingReplies;
use palaver_handlers::actions::{
    create_room, delete_room, history, join, leave, list_rooms, members, message, typing,
};
use palaver_handlers::event::{Reply, Session};
use palaver_handlers::{Context, Error};
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// A command frame before its `data` is decoded for the action.
#[derive(Debug, Deserialize)]
struct Envelope {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default)]
    data: Option<serde_json::Value>,
}

/// The command's correlation id as the client gave it (a string, or a number shown as a string).
fn correlation_id(id: Option<serde_json::Value>) -> Option<String> {
    match id? {
        serde_json::Value::String(id) => Some(id),
        serde_json::Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

fn data<T: DeserializeOwned>(data: Option<serde_json::Value>) -> Result<T, Error> {
    let data = data.unwrap_or_else(|| serde_json::Value::Object(Default::default()));
    serde_json::from_value(data).map_err(|_| Error::InvalidMessage)
}

/// Only the correlation id of a command frame, for answering one that is refused before it is run.
#[derive(Deserialize)]
struct IdOnly {
    #[serde(default)]
    id: Option<serde_json::Value>,
}

/// The correlation id of the command in `frame`, if it has one (without decoding its data).
pub fn command_id(frame: &str) -> Option<String> {
    serde_json::from_str::<IdOnly>(frame)
        .ok()
        .and_then(|command| correlation_id(command.id))
}

/// What starting a command gave: its replies now, or (a posted message) replies that resolve once it is stored.
pub enum Dispatched {
    Done(Option<String>, Vec<Reply>),
    Pending(Option<String>, PendingReplies),
}

/// Starts the command in `frame` for `session`. A `room_message` is only put in line to be stored: its ack comes
/// later, so a connection can pipeline its messages (they are stored and acknowledged in the order sent).
pub async fn start(ctx: &dyn Context, session: &Session, frame: &str) -> Dispatched {
    let envelope: Envelope = match serde_json::from_str(frame) {
        Ok(envelope) => envelope,
        Err(_) => return Dispatched::Done(None, vec![Reply::Error(Error::InvalidMessage)]),
    };
    let id = correlation_id(envelope.id);
    let result = if envelope.kind == "room_message" {
        let submitted = match data(envelope.data) {
            Ok(request) => message::submit(ctx, session, request).await,
            Err(err) => Err(err),
        };
        match submitted {
            Ok(pending) => return Dispatched::Pending(id, pending),
            Err(err) => Err(err),
        }
    } else {
        run(ctx, session, &envelope.kind, envelope.data).await
    };
    let replies = result.unwrap_or_else(|err| vec![failure(session, &envelope.kind, err)]);
    Dispatched::Done(id, replies)
}

/// Runs the command in `frame` to its end; returns the command's id (if it had one) and its replies.
pub async fn dispatch(
    ctx: &dyn Context,
    session: &Session,
    frame: &str,
) -> (Option<String>, Vec<Reply>) {
    match start(ctx, session, frame).await {
        Dispatched::Done(id, replies) => (id, replies),
        Dispatched::Pending(id, pending) => {
            let replies = pending
                .await
                .unwrap_or_else(|err| vec![failure(session, "room_message", err)]);
            (id, replies)
        }
    }
}

/// The reply for a failed command; what the client must not see is logged.
pub fn failure(session: &Session, command: &str, err: Error) -> Reply {
    if let Some(detail) = err.log_detail() {
        tracing::error!(conn = session.conn, command, detail, "command failed");
    }
    Reply::Error(err)
}

async fn run(
    ctx: &dyn Context,
    session: &Session,
    kind: &str,
    payload: Option<serde_json::Value>,
) -> Result<Vec<Reply>, Error> {
    match kind {
        "create_room" => create_room::create_room(ctx, session, data(payload)?).await,
        "join_room" => join::join(ctx, session, data(payload)?).await,
        "leave_room" => leave::leave(ctx, session, data(payload)?).await,
        "delete_room" => delete_room::delete_room(ctx, session, data(payload)?).await,
        "list_rooms" => list_rooms::list_rooms(ctx, session, data(payload)?).await,
        "get_messages" => history::history(ctx, session, data(payload)?).await,
        "list_members" => members::members(ctx, session, data(payload)?).await,
        "typing" => typing::typing(ctx, session, data(payload)?).await,
        _ => Err(Error::InvalidMessage),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use palaver_handlers::actions::authenticate::authenticate;
    use palaver_handlers::testing::TestContext;

    async fn session(ctx: &TestContext) -> Session {
        let (_, token) = ctx.register_and_login("john_doe").await;
        Session {
            conn: 1,
            principal: authenticate(ctx, Some(&token)).await.unwrap(),
        }
    }

    #[tokio::test]
    async fn malformed_frames_are_invalid_messages() {
        let ctx = TestContext::new();
        let session = session(&ctx).await;
        for frame in [
            "not json",
            "[]",
            r#"{"data":{}}"#,
            r#"{"type":"bogus"}"#,
            r#"{"type":"join_room","data":{}}"#,
            r#"{"type":"join_room","data":{"name":5}}"#,
            r#"{"type":"create_room","data":{"name":"general","colour":"red"}}"#,
        ] {
            let (_, replies) = dispatch(&ctx, &session, frame).await;
            assert_eq!(
                replies,
                vec![Reply::Error(Error::InvalidMessage)],
                "{frame}"
            );
        }
    }

    #[tokio::test]
    async fn a_post_is_put_in_line_and_acknowledged_later() {
        let ctx = TestContext::new();
        let session = session(&ctx).await;
        dispatch(
            &ctx,
            &session,
            r#"{"type":"create_room","data":{"name":"general"}}"#,
        )
        .await;
        let posted = start(
            &ctx,
            &session,
            r#"{"type":"room_message","id":"m1","data":{"content":"hi"}}"#,
        )
        .await;
        let Dispatched::Pending(id, pending) = posted else {
            panic!("a post is acknowledged later");
        };
        assert_eq!(id.as_deref(), Some("m1"));
        assert_eq!(
            pending.await,
            Ok(vec![Reply::Ack {
                room: "general".into(),
                seq: 1
            }])
        );
        let refused = start(
            &ctx,
            &session,
            r#"{"type":"room_message","data":{"content":"  "}}"#,
        )
        .await;
        assert!(
            matches!(refused, Dispatched::Done(None, ref replies) if matches!(replies[..], [Reply::Error(_)]))
        );
    }

    #[tokio::test]
    async fn commands_reach_their_action_and_keep_their_id() {
        let ctx = TestContext::new();
        let session = session(&ctx).await;
        let (id, replies) = dispatch(
            &ctx,
            &session,
            r#"{"type":"create_room","id":"c1","data":{"name":"general"}}"#,
        )
        .await;
        assert_eq!(id.as_deref(), Some("c1"));
        assert!(matches!(replies[0], Reply::RoomCreated(_)), "{replies:?}");
        assert_eq!(
            command_id(r#"{"type":"typing","id":"t9","data":{"room":"x"}}"#).as_deref(),
            Some("t9")
        );
        assert_eq!(command_id("not json"), None);
        let (id, replies) = dispatch(&ctx, &session, r#"{"type":"list_rooms","id":7}"#).await;
        assert_eq!(id.as_deref(), Some("7"));
        assert!(
            matches!(&replies[0], Reply::Rooms(rooms) if rooms.len() == 1),
            "{replies:?}"
        );
        let (_, replies) = dispatch(
            &ctx,
            &session,
            r#"{"type":"join_room","data":{"name":"nowhere"}}"#,
        )
        .await;
        assert_eq!(replies, vec![Reply::Error(Error::RoomNotFound)]);
    }
}
