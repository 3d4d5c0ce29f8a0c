//! The WebSocket commands (PROTOCOL §3): every client frame `{"type": …, "id": …, "data": {…}}` decodes into one
//! [`Command`], and [`Command::run`] is the single dispatch point from a command to its action. Adding a command is
//! a request type and a function in its action file, a variant here, and its replies' rendering in the runtime's
//! codec.

use serde::Deserialize;
use serde::de::value::MapDeserializer;
use serde_json::value::RawValue;

use crate::actions::{
    block_user, create_room, delete_message, delete_room, edit_message, get_messages, join_room,
    kick, leave_room, list_members, list_rooms, mark_read, open_dm, react, room_message, search,
    set_role, transfer_ownership, typing, unblock_user, unreact,
};
use crate::context::Context;
use crate::error::Error;
use crate::event::{Outcome, Session};

/// One client command, decoded from its frame's `type` and `data`. Unknown types, unknown or missing fields and
/// mistyped values all fail to decode, and the client is answered [`Error::InvalidMessage`] with the connection left
/// open.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", content = "data", rename_all = "snake_case")]
pub enum Command {
    CreateRoom(create_room::CreateRoomRequest),
    JoinRoom(join_room::JoinRoomRequest),
    LeaveRoom(leave_room::LeaveRoomRequest),
    DeleteRoom(delete_room::DeleteRoomRequest),
    ListRooms(list_rooms::ListRoomsRequest),
    RoomMessage(room_message::RoomMessageRequest),
    GetMessages(get_messages::GetMessagesRequest),
    ListMembers(list_members::ListMembersRequest),
    Typing(typing::TypingRequest),
    EditMessage(edit_message::EditMessageRequest),
    DeleteMessage(delete_message::DeleteMessageRequest),
    React(react::ReactionRequest),
    Unreact(react::ReactionRequest),
    MarkRead(mark_read::MarkReadRequest),
    Search(search::SearchRequest),
    OpenDm(open_dm::OpenDmRequest),
    BlockUser(block_user::BlockRequest),
    UnblockUser(block_user::BlockRequest),
    SetRole(set_role::SetRoleRequest),
    TransferOwnership(transfer_ownership::TransferOwnershipRequest),
    Kick(kick::KickRequest),
}

/// A frame as it arrived, decoded: the client's correlation id (answered on every reply to it) and the command, or
/// why the frame is not one.
#[derive(Debug)]
pub struct Decoded {
    /// The frame's `id`: a string, or a number shown as a string.
    pub id: Option<String>,
    pub command: Result<Command, Error>,
}

/// The parts of a command frame, borrowed from it: `type` and `data` are decoded into a [`Command`] only once the
/// envelope is known to be an object (a missing or `null` `data` is an empty object, so `{"type":"list_rooms"}` is a
/// command).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(rename = "type", borrow)]
    kind: &'a RawValue,
    #[serde(default)]
    id: Option<serde_json::Value>,
    #[serde(default, borrow)]
    data: Option<&'a RawValue>,
}

/// Only the correlation id of a frame, for answering a frame that is not a command.
#[derive(Deserialize)]
struct IdOnly {
    #[serde(default)]
    id: Option<serde_json::Value>,
}

/// The command's correlation id as the client gave it (a string, or a number shown as a string).
fn correlation_id(id: Option<serde_json::Value>) -> Option<String> {
    match id? {
        serde_json::Value::String(id) => Some(id),
        serde_json::Value::Number(id) => Some(id.to_string()),
        _ => None,
    }
}

impl Command {
    /// Decodes a text frame. A frame that is not even an envelope (not JSON, not an object, no `type`) has no id.
    pub fn decode(frame: &str) -> Decoded {
        let Ok(envelope) = serde_json::from_str::<Envelope>(frame) else {
            return Decoded {
                id: None,
                command: Err(Error::InvalidMessage),
            };
        };
        let empty: &RawValue = serde_json::from_str("{}").expect("an empty object is JSON");
        let data = envelope.data.unwrap_or(empty);
        let parts = MapDeserializer::<_, serde_json::Error>::new(
            [("type", envelope.kind), ("data", data)].into_iter(),
        );
        Decoded {
            id: correlation_id(envelope.id),
            command: Command::deserialize(parts).map_err(|_| Error::InvalidMessage),
        }
    }

    /// The correlation id of the frame, if it has one, whether or not it is a valid command (for answering a frame
    /// refused before it is decoded, such as one over the rate limit).
    pub fn id_of(frame: &str) -> Option<String> {
        serde_json::from_str::<IdOnly>(frame)
            .ok()
            .and_then(|frame| correlation_id(frame.id))
    }

    /// The command's wire name (its `type`), for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Command::CreateRoom(_) => "create_room",
            Command::JoinRoom(_) => "join_room",
            Command::LeaveRoom(_) => "leave_room",
            Command::DeleteRoom(_) => "delete_room",
            Command::ListRooms(_) => "list_rooms",
            Command::RoomMessage(_) => "room_message",
            Command::GetMessages(_) => "get_messages",
            Command::ListMembers(_) => "list_members",
            Command::Typing(_) => "typing",
            Command::EditMessage(_) => "edit_message",
            Command::DeleteMessage(_) => "delete_message",
            Command::React(_) => "react",
            Command::Unreact(_) => "unreact",
            Command::MarkRead(_) => "mark_read",
            Command::Search(_) => "search",
            Command::OpenDm(_) => "open_dm",
            Command::BlockUser(_) => "block_user",
            Command::UnblockUser(_) => "unblock_user",
            Command::SetRole(_) => "set_role",
            Command::TransferOwnership(_) => "transfer_ownership",
            Command::Kick(_) => "kick",
        }
    }

    /// Runs the command for `session`: its replies, or (a post) the replies that follow once it is stored.
    pub async fn run(self, ctx: &dyn Context, session: &Session) -> Result<Outcome, Error> {
        Ok(match self {
            Command::CreateRoom(req) => create_room::create_room(ctx, session, req).await?.into(),
            Command::JoinRoom(req) => join_room::join_room(ctx, session, req).await?.into(),
            Command::LeaveRoom(req) => leave_room::leave_room(ctx, session, req).await?.into(),
            Command::DeleteRoom(req) => delete_room::delete_room(ctx, session, req).await?.into(),
            Command::ListRooms(req) => list_rooms::list_rooms(ctx, session, req).await?.into(),
            Command::RoomMessage(req) => {
                room_message::room_message(ctx, session, req).await?.into()
            }
            Command::GetMessages(req) => {
                get_messages::get_messages(ctx, session, req).await?.into()
            }
            Command::ListMembers(req) => {
                list_members::list_members(ctx, session, req).await?.into()
            }
            Command::Typing(req) => typing::typing(ctx, session, req).await?.into(),
            Command::EditMessage(req) => {
                edit_message::edit_message(ctx, session, req).await?.into()
            }
            Command::DeleteMessage(req) => delete_message::delete_message(ctx, session, req)
                .await?
                .into(),
            Command::React(req) => react::react(ctx, session, req).await?.into(),
            Command::Unreact(req) => unreact::unreact(ctx, session, req).await?.into(),
            Command::MarkRead(req) => mark_read::mark_read(ctx, session, req).await?.into(),
            Command::Search(req) => search::search(ctx, session, req).await?.into(),
            Command::OpenDm(req) => open_dm::open_dm(ctx, session, req).await?.into(),
            Command::BlockUser(req) => block_user::block_user(ctx, session, req).await?.into(),
            Command::UnblockUser(req) => {
                unblock_user::unblock_user(ctx, session, req).await?.into()
            }
            Command::SetRole(req) => set_role::set_role(ctx, session, req).await?.into(),
            Command::Kick(req) => kick::kick(ctx, session, req).await?.into(),
            Command::TransferOwnership(req) => {
                transfer_ownership::transfer_ownership(ctx, session, req)
                    .await?
                    .into()
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::Reply;
    use crate::testing::TestContext;
    use crate::testing::fixtures::{on, user};

    /// Decodes and runs `frame` to its end, as the runtime's session does: (id, replies or the error).
    async fn dispatch(
        ctx: &TestContext,
        session: &Session,
        frame: &str,
    ) -> (Option<String>, Result<Vec<Reply>, Error>) {
        let Decoded { id, command } = Command::decode(frame);
        let replies = match command {
            Ok(command) => match command.run(ctx, session).await {
                Ok(Outcome::Done(replies)) => Ok(replies),
                Ok(Outcome::Pending(pending)) => pending.await,
                Err(err) => Err(err),
            },
            Err(err) => Err(err),
        };
        (id, replies)
    }

    #[tokio::test]
    async fn malformed_frames_are_invalid_messages() {
        let ctx = TestContext::new();
        let session = on(1, &user(&ctx, "john_doe").await);
        for frame in [
            "not json",
            "[]",
            r#"{"data":{}}"#,
            r#"{"type":"bogus"}"#,
            r#"{"type":5}"#,
            r#"{"type":"join_room","data":{}}"#,
            r#"{"type":"join_room","data":{"name":5}}"#,
            r#"{"type":"join_room","data":"general"}"#,
            r#"{"type":"create_room","data":{"name":"general","colour":"red"}}"#,
        ] {
            let (_, replies) = dispatch(&ctx, &session, frame).await;
            assert_eq!(replies, Err(Error::InvalidMessage), "{frame}");
        }
    }

    #[test]
    fn every_wire_type_decodes_to_its_command() {
        let cases = [
            (
                r#"{"type":"create_room","data":{"name":"general"}}"#,
                "create_room",
            ),
            (
                r#"{"type":"join_room","data":{"name":"general","after_seq":4}}"#,
                "join_room",
            ),
            (r#"{"type":"leave_room"}"#, "leave_room"),
            (
                r#"{"type":"delete_room","data":{"name":"general"}}"#,
                "delete_room",
            ),
            (r#"{"type":"list_rooms","data":null}"#, "list_rooms"),
            (
                r#"{"data":{"content":"hi"},"type":"room_message"}"#,
                "room_message",
            ),
            (
                r#"{"type":"get_messages","data":{"name":"general","limit":5}}"#,
                "get_messages",
            ),
            (
                r#"{"type":"list_members","data":{"name":"general"}}"#,
                "list_members",
            ),
            (r#"{"type":"typing","data":{"room":"general"}}"#, "typing"),
            (
                r#"{"type":"edit_message","data":{"room":"general","seq":3,"content":"fixed"}}"#,
                "edit_message",
            ),
            (
                r#"{"type":"delete_message","data":{"room":"general","seq":3}}"#,
                "delete_message",
            ),
            (
                r#"{"type":"react","data":{"room":"general","seq":3,"emoji":"👍"}}"#,
                "react",
            ),
            (
                r#"{"type":"unreact","data":{"room":"general","seq":3,"emoji":":ok:"}}"#,
                "unreact",
            ),
            (
                r#"{"type":"room_message","data":{"content":"re","reply_to":3}}"#,
                "room_message",
            ),
            (
                r#"{"type":"mark_read","data":{"room":"general","seq":3}}"#,
                "mark_read",
            ),
            (
                r#"{"type":"search","data":{"query":"hello","room":"general","limit":5}}"#,
                "search",
            ),
            (
                r#"{"type":"open_dm","data":{"username":"jane_doe"}}"#,
                "open_dm",
            ),
            (
                r#"{"type":"block_user","data":{"username":"jane_doe"}}"#,
                "block_user",
            ),
            (
                r#"{"type":"unblock_user","data":{"username":"jane_doe"}}"#,
                "unblock_user",
            ),
            // An escaped type is the same type.
            (r#"{"type":"list\u005frooms"}"#, "list_rooms"),
        ];
        for (frame, name) in cases {
            let decoded = Command::decode(frame);
            let command = decoded
                .command
                .unwrap_or_else(|err| panic!("{frame}: {err}"));
            assert_eq!(command.name(), name, "{frame}");
        }
    }

    #[test]
    fn the_correlation_id_is_a_string_or_a_number() {
        let decoded = Command::decode(r#"{"type":"list_rooms","id":"c1"}"#);
        assert_eq!(decoded.id.as_deref(), Some("c1"));
        let decoded = Command::decode(r#"{"type":"list_rooms","id":7}"#);
        assert_eq!(decoded.id.as_deref(), Some("7"));
        let decoded = Command::decode(r#"{"type":"list_rooms","id":{"x":1}}"#);
        assert_eq!(decoded.id, None);
        // A bad command keeps its id, so the error answers it.
        let decoded = Command::decode(r#"{"type":"bogus","id":"b2"}"#);
        assert_eq!(
            (decoded.id.as_deref(), decoded.command.err()),
            (Some("b2"), Some(Error::InvalidMessage))
        );
        assert_eq!(
            Command::id_of(r#"{"type":"typing","id":"t9","data":{"room":"x"}}"#).as_deref(),
            Some("t9")
        );
        assert_eq!(Command::id_of(r#"{"id":"t9"}"#).as_deref(), Some("t9"));
        assert_eq!(Command::id_of("not json"), None);
    }

    #[tokio::test]
    async fn a_post_is_put_in_line_and_acknowledged_later() {
        let ctx = TestContext::new();
        let session = on(1, &user(&ctx, "john_doe").await);
        dispatch(
            &ctx,
            &session,
            r#"{"type":"create_room","data":{"name":"general"}}"#,
        )
        .await
        .1
        .unwrap();
        let Decoded { id, command } =
            Command::decode(r#"{"type":"room_message","id":"m1","data":{"content":"hi"}}"#);
        let outcome = command.unwrap().run(&ctx, &session).await.unwrap();
        let Outcome::Pending(pending) = outcome else {
            panic!("a post is acknowledged later, got {outcome:?}");
        };
        assert_eq!(id.as_deref(), Some("m1"));
        assert_eq!(
            pending.await,
            Ok(vec![Reply::Ack {
                room: "general".into(),
                seq: 1
            }])
        );
        // A post refused by its rule is refused at once, not later.
        let Decoded { command, .. } =
            Command::decode(r#"{"type":"room_message","data":{"content":"  "}}"#);
        let refused = command.unwrap().run(&ctx, &session).await;
        assert_eq!(refused.map(|_| ()).unwrap_err().code(), "invalid_message");
    }

    #[tokio::test]
    async fn commands_reach_their_action_and_keep_their_id() {
        let ctx = TestContext::new();
        let session = on(1, &user(&ctx, "john_doe").await);
        let (id, replies) = dispatch(
            &ctx,
            &session,
            r#"{"type":"create_room","id":"c1","data":{"name":"general"}}"#,
        )
        .await;
        assert_eq!(id.as_deref(), Some("c1"));
        let replies = replies.unwrap();
        assert!(matches!(replies[0], Reply::RoomCreated(_)), "{replies:?}");
        let (id, replies) = dispatch(&ctx, &session, r#"{"type":"list_rooms","id":7}"#).await;
        assert_eq!(id.as_deref(), Some("7"));
        let replies = replies.unwrap();
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
        assert_eq!(replies, Err(Error::RoomNotFound));
    }

    #[test]
    fn requests_decode_from_the_protocols_data_objects() {
        use crate::actions::{
            create_room::CreateRoomRequest, delete_room::DeleteRoomRequest,
            get_messages::GetMessagesRequest, join_room::JoinRoomRequest,
            leave_room::LeaveRoomRequest, list_members::ListMembersRequest,
            list_rooms::ListRoomsRequest, room_message::RoomMessageRequest, typing::TypingRequest,
        };
        use serde_json::from_str;

        let create: CreateRoomRequest =
            from_str(r#"{"name":"general","private":true,"password":"open sesame"}"#).unwrap();
        assert_eq!(
            (create.private, create.password.as_deref()),
            (Some(true), Some("open sesame"))
        );
        let create: CreateRoomRequest = from_str(r#"{"name":"general"}"#).unwrap();
        assert_eq!((create.private, create.password), (None, None));
        let join: JoinRoomRequest =
            from_str(r#"{"name":"general","password":"pw","after_seq":41}"#).unwrap();
        assert_eq!(join.after_seq, Some(41));
        let leave: LeaveRoomRequest = from_str("{}").unwrap();
        assert_eq!(leave.name, None);
        from_str::<DeleteRoomRequest>(r#"{"name":"general"}"#).unwrap();
        from_str::<ListRoomsRequest>("{}").unwrap();
        let message: RoomMessageRequest =
            from_str(r#"{"content":"hi","client_msg_id":"k1"}"#).unwrap();
        assert_eq!(
            (message.room, message.client_msg_id.as_deref()),
            (None, Some("k1"))
        );
        let history: GetMessagesRequest = from_str(
            r#"{"name":"general","limit":20,"before_seq":9,"after_seq":1,"sender":"jane",
                "contains":"hi","since":"2026-11-25T15:00:00Z","until":"2026-11-25T16:00:00Z"}"#,
        )
        .unwrap();
        assert_eq!((history.limit, history.before_seq), (Some(20), Some(9)));
        from_str::<ListMembersRequest>(r#"{"name":"general"}"#).unwrap();
        from_str::<TypingRequest>(r#"{"room":"general"}"#).unwrap();

        // Unknown, missing and mistyped fields are refused (the runtime answers `invalid message format`).
        assert!(from_str::<JoinRoomRequest>(r#"{"name":"general","pasword":"pw"}"#).is_err());
        assert!(from_str::<ListRoomsRequest>(r#"{"name":"general"}"#).is_err());
        assert!(from_str::<RoomMessageRequest>(r#"{"room":"general"}"#).is_err());
        assert!(from_str::<TypingRequest>("{}").is_err());
        assert!(from_str::<JoinRoomRequest>(r#"{"name":"general","after_seq":"7"}"#).is_err());
        assert!(from_str::<CreateRoomRequest>(r#"{"name":"general","private":"yes"}"#).is_err());
    }
}
