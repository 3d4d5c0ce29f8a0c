//! From a client's text frame to an action call: decode `{"type", "id", "data"}`, pick the handler, decode its data.
//! Anything that is not a well-formed command answers `invalid message format` and leaves the connection open.

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

/// Runs the command in `frame` for `session`; returns the command's id (if it had one) and its replies.
pub async fn dispatch(
    ctx: &dyn Context,
    session: &Session,
    frame: &str,
) -> (Option<String>, Vec<Reply>) {
    let envelope: Envelope = match serde_json::from_str(frame) {
        Ok(envelope) => envelope,
        Err(_) => return (None, vec![Reply::Error(Error::InvalidMessage)]),
    };
    let id = correlation_id(envelope.id);
    let result = run(ctx, session, &envelope.kind, envelope.data).await;
    let replies = result.unwrap_or_else(|err| {
        if let Some(detail) = err.log_detail() {
            tracing::error!(conn = session.conn, command = %envelope.kind, detail, "command failed");
        }
        vec![Reply::Error(err)]
    });
    (id, replies)
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
        "room_message" => message::message(ctx, session, data(payload)?).await,
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
