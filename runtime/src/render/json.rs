//! The JSON protocol (`palaver.v1.json`, PROTOCOL §5): one JSON object per frame with a `type`; room-scoped frames
//! carry `room`, replies carry the command's `id`. Also the JSON bodies the REST routes share with it (a history
//! page).

use palaver_handlers::Error;
use palaver_handlers::event::{Broadcast, Reply, RoomEvent};
use palaver_handlers::model::{HistoryPage, LogEntry};
use serde::Serialize;
use serde_json::json;

use super::timestamp;

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

fn message(room: &str, message: &LogEntry) -> String {
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

/// The frame for a room event.
pub fn event(broadcast: &Broadcast) -> String {
    let room = broadcast.room.as_str();
    let at = timestamp(broadcast.at);
    match &broadcast.event {
        RoomEvent::Joined { username } => {
            json!({"type": "joined", "room": room, "username": username, "timestamp": at})
                .to_string()
        }
        RoomEvent::Left { username } => {
            json!({"type": "left", "room": room, "username": username, "timestamp": at}).to_string()
        }
        RoomEvent::Entry(stored) => message(room, stored),
        RoomEvent::Deleted { by } => {
            json!({"type": "room_deleted", "room": room, "by": by, "timestamp": at}).to_string()
        }
        RoomEvent::Typing { username } => {
            json!({"type": "typing", "room": room, "username": username}).to_string()
        }
    }
}

/// The frame for an error, carrying the command's id when there was one.
pub fn error(id: Option<&str>, error: &Error) -> String {
    let mut frame = json!({"type": "error", "code": error.code(), "message": error.to_string()});
    if let Some(id) = id {
        frame["id"] = json!(id);
    }
    frame.to_string()
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

impl<'a> From<&'a LogEntry> for HistoryItem<'a> {
    fn from(message: &'a LogEntry) -> Self {
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

fn history(id: Option<&str>, room: &str, page: &HistoryPage) -> serde_json::Value {
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

/// The frame for a reply to a command with correlation `id`, if the reply is a frame at all.
pub fn reply(id: Option<&str>, reply: &Reply) -> Option<String> {
    let frame = match reply {
        Reply::Welcome { room, last_seq, at } => {
            json!({"type": "welcome", "room": room, "last_seq": last_seq, "timestamp": timestamp(*at)})
        }
        Reply::Message {
            room,
            message: stored,
        } => return Some(message(room, stored)),
        Reply::CaughtUp { .. } => return None,
        Reply::LeftRoom { room } => json!({"type": "left_room", "room": room}),
        Reply::RoomCreated(room) => json!({"type": "room_created", "room": room}),
        Reply::Rooms(rooms) => json!({"type": "rooms", "rooms": rooms}),
        Reply::History { room, page } => return Some(history(id, room, page).to_string()),
        Reply::Members { room, members } => {
            json!({"type": "members", "room": room, "members": members})
        }
        Reply::Ack { room, seq } => json!({"type": "ack", "room": room, "seq": seq}),
        Reply::Error(err) => return Some(error(id, err)),
    };
    Some(with_id(frame, id).to_string())
}
