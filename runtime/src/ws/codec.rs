//! The two wire formats of server frames, rendered from one event model: the seed's text protocol (PROTOCOL §4) and
//! structured JSON (`palaver.v1.json`, §5). Rendering is pure: the hub calls it once per codec per event.

use palaver_handlers::Error;
use palaver_handlers::event::{Broadcast, MemberView, Reply, RoomEvent, RoomView};
use palaver_handlers::model::{HistoryPage, StoredMessage};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use time::macros::format_description;

/// The sub-protocol that selects JSON frames.
pub const JSON_PROTOCOL: &str = "palaver.v1.json";

/// Which format a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Codec {
    /// PROTOCOL §4: the seed's plain-text lines.
    Text,
    /// PROTOCOL §5: one JSON object per frame.
    Json,
}

/// `HH:MM:SS` in UTC, the text protocol's clock.
fn clock(at: OffsetDateTime) -> String {
    let at = at.to_offset(time::UtcOffset::UTC);
    format!("{:02}:{:02}:{:02}", at.hour(), at.minute(), at.second())
}

/// RFC 3339 in UTC, whole seconds (`2026-11-25T15:31:02Z`), as the text protocol's history shows it.
fn seconds_timestamp(at: OffsetDateTime) -> String {
    let format = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    at.to_offset(time::UtcOffset::UTC)
        .format(&format)
        .unwrap_or_default()
}

/// RFC 3339 in UTC with the stored precision, for JSON frames.
fn timestamp(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn prefix(room: &str, prefixed: bool) -> String {
    if prefixed {
        format!("#{room} ")
    } else {
        String::new()
    }
}

/// A chat message as a JSON frame.
#[derive(Serialize)]
struct MessageFrame<'a> {
    r#type: &'static str,
    room: &'a str,
    seq: i64,
    id: uuid::Uuid,
    username: &'a str,
    content: &'a str,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_msg_id: Option<&'a str>,
}

fn message_json(room: &str, message: &StoredMessage) -> String {
    let frame = MessageFrame {
        r#type: "message",
        room,
        seq: message.seq,
        id: message.id,
        username: &message.username,
        content: &message.content,
        timestamp: timestamp(message.created_at),
        client_msg_id: message.client_msg_id.as_deref(),
    };
    serde_json::to_string(&frame).unwrap_or_default()
}

fn message_text(room: &str, message: &StoredMessage, prefixed: bool) -> String {
    format!(
        "{}[{}] {}: {}",
        prefix(room, prefixed),
        clock(message.created_at),
        message.username,
        message.content
    )
}

/// The frame for a room event.
pub fn event_frame(codec: Codec, broadcast: &Broadcast, prefixed: bool) -> String {
    let room = broadcast.room.as_str();
    let at = broadcast.at;
    match (codec, &broadcast.event) {
        (Codec::Text, RoomEvent::Joined { username }) => {
            format!("{}[{}] {username} has joined the room", prefix(room, prefixed), clock(at))
        }
        (Codec::Text, RoomEvent::Left { username }) => {
            format!("{}[{}] {username} has left the room", prefix(room, prefixed), clock(at))
        }
        (Codec::Text, RoomEvent::Message(message)) => message_text(room, message, prefixed),
        (Codec::Text, RoomEvent::Deleted { by }) => {
            format!("{}[{}] Room '{room}' has been deleted by {by}", prefix(room, prefixed), clock(at))
        }
        (Codec::Text, RoomEvent::Typing { username }) => format!("{}TYPING:{username}", prefix(room, prefixed)),
        (Codec::Json, RoomEvent::Joined { username }) => {
            json!({"type": "joined", "room": room, "username": username, "timestamp": timestamp(at)}).to_string()
        }
        (Codec::Json, RoomEvent::Left { username }) => {
            json!({"type": "left", "room": room, "username": username, "timestamp": timestamp(at)}).to_string()
        }
        (Codec::Json, RoomEvent::Message(message)) => message_json(room, message),
        (Codec::Json, RoomEvent::Deleted { by }) => {
            json!({"type": "room_deleted", "room": room, "by": by, "timestamp": timestamp(at)}).to_string()
        }
        (Codec::Json, RoomEvent::Typing { username }) => {
            json!({"type": "typing", "room": room, "username": username}).to_string()
        }
    }
}

/// The text line for an error: the seed's exact sentences.
pub fn error_text(error: &Error) -> String {
    match error {
        Error::MessageTooLarge { .. } => format!("Message rejected: {error}"),
        other => format!("Error: {other}"),
    }
}

/// The JSON frame for an error, carrying the command's id when there was one.
pub fn error_json(id: Option<&str>, error: &Error) -> String {
    let mut frame = json!({"type": "error", "code": error.code(), "message": error.to_string()});
    if let Some(id) = id {
        frame["id"] = json!(id);
    }
    frame.to_string()
}

fn history_text(page: &HistoryPage) -> String {
    let messages: Vec<_> = page
        .messages
        .iter()
        .map(|m| {
            json!({"seq": m.seq, "username": m.username, "content": m.content, "timestamp": seconds_timestamp(m.created_at)})
        })
        .collect();
    let body =
        json!({"messages": messages, "next_before": page.next_before, "has_more": page.has_more});
    format!("MESSAGES:{body}")
}

/// One message of a history page (JSON protocol and REST): the message frame without `type` and `room`.
#[derive(Serialize)]
pub struct HistoryItem<'a> {
    seq: i64,
    id: uuid::Uuid,
    username: &'a str,
    content: &'a str,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_msg_id: Option<&'a str>,
}

impl<'a> From<&'a StoredMessage> for HistoryItem<'a> {
    fn from(message: &'a StoredMessage) -> Self {
        HistoryItem {
            seq: message.seq,
            id: message.id,
            username: &message.username,
            content: &message.content,
            timestamp: timestamp(message.created_at),
            client_msg_id: message.client_msg_id.as_deref(),
        }
    }
}

/// The body of a history page, for the REST route: `{messages, next_before, has_more}`.
pub fn history_body(page: &HistoryPage) -> serde_json::Value {
    let messages: Vec<HistoryItem> = page.messages.iter().map(HistoryItem::from).collect();
    json!({"messages": messages, "next_before": page.next_before, "has_more": page.has_more})
}

fn history_json(id: Option<&str>, room: &str, page: &HistoryPage) -> serde_json::Value {
    let messages: Vec<HistoryItem> = page.messages.iter().map(HistoryItem::from).collect();
    with_id(
        json!({"type": "history", "room": room, "messages": messages, "next_before": page.next_before, "has_more": page.has_more}),
        id,
    )
}

fn with_id(mut frame: serde_json::Value, id: Option<&str>) -> serde_json::Value {
    if let (Some(id), Some(object)) = (id, frame.as_object_mut()) {
        object.insert("id".into(), json!(id));
    }
    frame
}

fn created_text(room: &RoomView) -> String {
    let body = json!({"name": room.name, "private": room.private, "id": room.id});
    format!("ROOM_CREATE_SUCCESS:{body}")
}

fn list_json<T: Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

fn members_text(members: &[MemberView]) -> String {
    format!("MEMBERS_LIST:{}", list_json(members))
}

/// The frames for a reply to a command with correlation `id`; `prefixed` when the connection is in several rooms.
pub fn reply_frames(codec: Codec, id: Option<&str>, reply: &Reply, prefixed: bool) -> Vec<String> {
    match codec {
        Codec::Text => reply_text(reply, prefixed),
        Codec::Json => reply_json(id, reply).into_iter().collect(),
    }
}

fn reply_text(reply: &Reply, prefixed: bool) -> Vec<String> {
    match reply {
        Reply::Welcome { room, at, .. } => {
            vec![format!(
                "{}[{}] Welcome to room '{room}'!",
                prefix(room, prefixed),
                clock(*at)
            )]
        }
        Reply::Message { room, message } => vec![message_text(room, message, prefixed)],
        Reply::LeftRoom { room } => vec![
            format!("You have left the room \"{room}\""),
            "ROOM_LEAVE_SUCCESS:You have successfully left the room".to_owned(),
        ],
        Reply::RoomCreated(room) => vec![created_text(room)],
        Reply::Rooms(rooms) => vec![format!("ROOMS_LIST:{}", list_json(rooms))],
        Reply::History { page, .. } => vec![history_text(page)],
        Reply::Members { members, .. } => vec![members_text(members)],
        // The text protocol has no acknowledgement: the sender sees its own message arrive.
        Reply::Ack { .. } | Reply::CaughtUp { .. } => Vec::new(),
        Reply::Error(error) => vec![error_text(error)],
    }
}

fn reply_json(id: Option<&str>, reply: &Reply) -> Option<String> {
    let frame = match reply {
        Reply::Welcome { room, last_seq, at } => {
            json!({"type": "welcome", "room": room, "last_seq": last_seq, "timestamp": timestamp(*at)})
        }
        Reply::Message { room, message } => return Some(message_json(room, message)),
        Reply::CaughtUp { .. } => return None,
        Reply::LeftRoom { room } => json!({"type": "left_room", "room": room}),
        Reply::RoomCreated(room) => json!({"type": "room_created", "room": room}),
        Reply::Rooms(rooms) => json!({"type": "rooms", "rooms": rooms}),
        Reply::History { room, page } => return Some(history_json(id, room, page).to_string()),
        Reply::Members { room, members } => {
            json!({"type": "members", "room": room, "members": members})
        }
        Reply::Ack { room, seq } => json!({"type": "ack", "room": room, "seq": seq}),
        Reply::Error(error) => return Some(error_json(id, error)),
    };
    Some(with_id(frame, id).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;
    use uuid::Uuid;

    const AT: OffsetDateTime = datetime!(2026-11-25 15:30:45 UTC);

    fn broadcast(event: RoomEvent) -> Broadcast {
        Broadcast {
            room_id: Uuid::nil(),
            room: "general-chat".into(),
            at: AT,
            event,
            skip_user: None,
        }
    }

    fn message() -> StoredMessage {
        StoredMessage {
            id: Uuid::nil(),
            room_id: Uuid::nil(),
            seq: 42,
            user_id: Uuid::nil(),
            username: "john_doe".into(),
            content: "hello there".into(),
            client_msg_id: Some("c-1".into()),
            created_at: datetime!(2026-11-25 15:31:02 UTC),
        }
    }

    fn text(event: RoomEvent, prefixed: bool) -> String {
        event_frame(Codec::Text, &broadcast(event), prefixed)
    }

    #[test]
    fn text_events_are_the_seeds_lines() {
        let joined = RoomEvent::Joined {
            username: "john_doe".into(),
        };
        assert_eq!(
            text(joined.clone(), false),
            "[15:30:45] john_doe has joined the room"
        );
        assert_eq!(
            text(joined, true),
            "#general-chat [15:30:45] john_doe has joined the room"
        );
        assert_eq!(
            text(
                RoomEvent::Left {
                    username: "john_doe".into()
                },
                false
            ),
            "[15:30:45] john_doe has left the room"
        );
        assert_eq!(
            text(RoomEvent::Message(message()), false),
            "[15:31:02] john_doe: hello there"
        );
        assert_eq!(
            text(
                RoomEvent::Deleted {
                    by: "john_doe".into()
                },
                false
            ),
            "[15:30:45] Room 'general-chat' has been deleted by john_doe"
        );
        assert_eq!(
            text(
                RoomEvent::Typing {
                    username: "john_doe".into()
                },
                false
            ),
            "TYPING:john_doe"
        );
    }

    #[test]
    fn text_replies_are_the_seeds_lines() {
        let welcome = Reply::Welcome {
            room: "general-chat".into(),
            last_seq: 0,
            at: AT,
        };
        assert_eq!(
            reply_frames(Codec::Text, None, &welcome, false),
            ["[15:30:45] Welcome to room 'general-chat'!"]
        );
        assert_eq!(
            reply_frames(
                Codec::Text,
                None,
                &Reply::LeftRoom {
                    room: "general-chat".into()
                },
                false
            ),
            [
                "You have left the room \"general-chat\"",
                "ROOM_LEAVE_SUCCESS:You have successfully left the room"
            ]
        );
        let room = RoomView {
            name: "general".into(),
            private: false,
            id: Uuid::nil(),
            members_online: 1,
            created_by: Uuid::nil(),
            created_at: AT,
            member: true,
        };
        assert_eq!(
            reply_frames(Codec::Text, None, &Reply::RoomCreated(room.clone()), false),
            [
                r#"ROOM_CREATE_SUCCESS:{"name":"general","private":false,"id":"00000000-0000-0000-0000-000000000000"}"#
            ]
        );
        let list = reply_frames(Codec::Text, None, &Reply::Rooms(vec![room]), false);
        assert!(
            list[0].starts_with(r#"ROOMS_LIST:[{"name":"general","private":false,"id":"00000000-0000-0000-0000-000000000000""#),
            "{}",
            list[0]
        );
        let members = Reply::Members {
            room: "general".into(),
            members: vec![MemberView {
                username: "john_doe".into(),
                online: true,
            }],
        };
        assert_eq!(
            reply_frames(Codec::Text, None, &members, false),
            [r#"MEMBERS_LIST:[{"username":"john_doe","online":true}]"#]
        );
        let mut hi = message();
        hi.seq = 1;
        hi.content = "hi".into();
        let page = HistoryPage {
            messages: vec![hi],
            next_before: Some(1),
            has_more: false,
        };
        assert_eq!(
            reply_frames(
                Codec::Text,
                None,
                &Reply::History {
                    room: "general".into(),
                    page
                },
                false
            ),
            [
                r#"MESSAGES:{"messages":[{"seq":1,"username":"john_doe","content":"hi","timestamp":"2026-11-25T15:31:02Z"}],"next_before":1,"has_more":false}"#
            ]
        );
        assert!(
            reply_frames(
                Codec::Text,
                None,
                &Reply::Ack {
                    room: "general".into(),
                    seq: 1
                },
                false
            )
            .is_empty()
        );
    }

    #[test]
    fn errors_use_the_literal_texts() {
        assert_eq!(
            error_text(&Error::RoomNotFound),
            "Error: room does not exist"
        );
        assert_eq!(
            error_text(&Error::BadRoomPassword),
            "Error: incorrect room password"
        );
        assert_eq!(
            error_text(&Error::RateLimited),
            "Error: rate limit exceeded"
        );
        assert_eq!(error_text(&Error::RoomExists), "Error: room already exists");
        assert_eq!(
            error_text(&Error::NotOwner),
            "Error: only the room owner can delete it"
        );
        assert_eq!(
            error_text(&Error::NotInRoom),
            "Error: you are not in that room"
        );
        assert_eq!(
            error_text(&Error::InvalidMessage),
            "Error: invalid message format"
        );
        assert_eq!(
            error_text(&Error::MessageTooLarge { max: 65536 }),
            "Message rejected: message too large (max 65536 bytes)"
        );
        let frame: serde_json::Value =
            serde_json::from_str(&error_json(Some("7"), &Error::RoomNotFound)).unwrap();
        assert_eq!(
            frame,
            json!({"type": "error", "id": "7", "code": "room_not_found", "message": "room does not exist"})
        );
    }

    #[test]
    fn json_frames_carry_type_room_and_the_commands_id() {
        let frame: serde_json::Value = serde_json::from_str(&event_frame(
            Codec::Json,
            &broadcast(RoomEvent::Message(message())),
            false,
        ))
        .unwrap();
        assert_eq!(
            frame,
            json!({"type": "message", "room": "general-chat", "seq": 42, "id": Uuid::nil(), "username": "john_doe",
                   "content": "hello there", "timestamp": "2026-11-25T15:31:02Z", "client_msg_id": "c-1"})
        );
        let ack = reply_frames(
            Codec::Json,
            Some("abc"),
            &Reply::Ack {
                room: "general".into(),
                seq: 42,
            },
            false,
        );
        let ack: serde_json::Value = serde_json::from_str(&ack[0]).unwrap();
        assert_eq!(
            ack,
            json!({"type": "ack", "id": "abc", "room": "general", "seq": 42})
        );
        let welcome = Reply::Welcome {
            room: "general".into(),
            last_seq: 7,
            at: AT,
        };
        let welcome: serde_json::Value =
            serde_json::from_str(&reply_frames(Codec::Json, None, &welcome, true)[0]).unwrap();
        assert_eq!(welcome["type"], "welcome");
        assert_eq!(welcome["last_seq"], 7);
    }

    #[test]
    fn message_content_is_never_interpreted() {
        let mut evil = message();
        evil.content = "<script>alert(1)</script>\n\u{1b}[31m\"quoted\"".into();
        let frame = event_frame(
            Codec::Json,
            &broadcast(RoomEvent::Message(evil.clone())),
            false,
        );
        let parsed: serde_json::Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(parsed["content"], evil.content.as_str());
    }
}
