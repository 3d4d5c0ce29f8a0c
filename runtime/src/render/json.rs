//! The JSON protocol (`palaver.v1.json`, PROTOCOL §5): one JSON object per frame with a `type`; room-scoped frames
//! carry `room`, replies carry the command's `id`. Also the JSON bodies the REST routes share with it (a history
//! page).

use palaver_handlers::Error;
use palaver_handlers::event::{Broadcast, Reply, RoomEvent};
use palaver_handlers::model::{Body, HistoryMessage, HistoryPage, LogEntry, SearchPage};
use serde::Serialize;
use serde_json::json;

use super::timestamp;

/// A chat message as a JSON frame (live, or replayed in its current state).
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
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    edited_at: Option<String>,
}

/// The frame of one entry of a room's log: `message`, `message_edited`, `message_deleted` or `reaction`.
fn entry(room: &str, entry: &LogEntry) -> String {
    let frame = match &entry.body {
        Body::Message(message) if message.deleted => {
            json!({"type": "message", "room": room, "seq": entry.seq, "deleted": true})
        }
        Body::Message(message) => {
            let frame = MessageFrame {
                r#type: "message",
                room,
                seq: entry.seq,
                id: entry.id,
                username: &entry.username,
                content: &message.content,
                timestamp: timestamp(entry.created_at),
                client_msg_id: entry.client_msg_id.as_deref(),
                reply_to: message.reply_to,
                edited_at: message.edited_at.map(timestamp),
            };
            return serde_json::to_string(&frame).unwrap_or_default();
        }
        Body::Edit {
            target_seq,
            content,
        } => {
            json!({"type": "message_edited", "room": room, "seq": entry.seq, "target_seq": target_seq,
                    "username": entry.username, "content": content, "edited_at": timestamp(entry.created_at)})
        }
        Body::Delete { target_seq } => {
            json!({"type": "message_deleted", "room": room, "seq": entry.seq,
                                               "target_seq": target_seq, "username": entry.username})
        }
        Body::Reaction {
            target_seq,
            emoji,
            added,
        } => json!({"type": "reaction", "room": room, "seq": entry.seq, "target_seq": target_seq,
                    "username": entry.username, "emoji": emoji, "added": added}),
    };
    frame.to_string()
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
        RoomEvent::Entry(stored) => entry(room, stored),
        RoomEvent::Deleted { by } => {
            json!({"type": "room_deleted", "room": room, "by": by, "timestamp": at}).to_string()
        }
        RoomEvent::Typing { username } => {
            json!({"type": "typing", "room": room, "username": username}).to_string()
        }
        RoomEvent::Read { seq, .. } => {
            json!({"type": "read", "room": room, "seq": seq}).to_string()
        }
        RoomEvent::Receipt { username, seq } => {
            json!({"type": "receipt", "room": room, "username": username, "seq": seq}).to_string()
        }
        RoomEvent::RoleChanged { username, role, by } => {
            json!({"type": "role_changed", "room": room,
            "username": username, "role": role.as_str(), "by": by})
            .to_string()
        }
        RoomEvent::Kicked {
            username,
            by,
            reason,
        } => json!({"type": "kicked", "room": room, "username": username, "by": by, "reason": reason})
            .to_string(),
        RoomEvent::Removed { .. } => json!({"type": "left_room", "room": room}).to_string(),
        RoomEvent::DirectOpened { with, .. } => {
            json!({"type": "dm_opened", "room": room, "with": with}).to_string()
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

/// One message of a history page (JSON protocol and REST) in its current state: the message frame without `type`
/// and `room`, with its reactions and reply count when it has any; a deleted message is a tombstone
/// `{"seq": …, "deleted": true}`.
pub fn history_item(message: &HistoryMessage) -> serde_json::Value {
    let entry = &message.entry;
    let Some(body) = entry.message() else {
        return json!({"seq": entry.seq});
    };
    if body.deleted {
        return json!({"seq": entry.seq, "deleted": true});
    }
    let mut item = json!({
        "seq": entry.seq,
        "id": entry.id,
        "username": entry.username,
        "content": body.content,
        "timestamp": timestamp(entry.created_at),
    });
    if let Some(fields) = item.as_object_mut() {
        if let Some(key) = &entry.client_msg_id {
            fields.insert("client_msg_id".into(), json!(key));
        }
        extras(
            fields,
            message,
            body.reply_to,
            body.edited_at.map(timestamp),
        );
    }
    item
}

/// The fields a history item has only when they say something: `reply_to`, `edited_at`, `reactions` and `replies`.
pub(crate) fn extras(
    fields: &mut serde_json::Map<String, serde_json::Value>,
    message: &HistoryMessage,
    reply_to: Option<i64>,
    edited_at: Option<String>,
) {
    if let Some(reply_to) = reply_to {
        fields.insert("reply_to".into(), json!(reply_to));
    }
    if let Some(edited_at) = edited_at {
        fields.insert("edited_at".into(), json!(edited_at));
    }
    if !message.reactions.is_empty() {
        let reactions: Vec<_> = message
            .reactions
            .iter()
            .map(|r| json!({"emoji": r.emoji, "count": r.count, "me": r.me}))
            .collect();
        fields.insert("reactions".into(), json!(reactions));
    }
    if message.replies > 0 {
        fields.insert("replies".into(), json!(message.replies));
    }
}

/// The body of a history page, for the REST route: `{messages, next_before, has_more}`.
pub fn history_body(page: &HistoryPage) -> serde_json::Value {
    let messages: Vec<_> = page.messages.iter().map(history_item).collect();
    json!({"messages": messages, "next_before": page.next_before, "has_more": page.has_more,
           "as_of": page.as_of})
}

fn history(id: Option<&str>, room: &str, page: &HistoryPage) -> serde_json::Value {
    let messages: Vec<_> = page.messages.iter().map(history_item).collect();
    with_id(
        json!({"type": "history", "room": room, "messages": messages, "next_before": page.next_before,
               "has_more": page.has_more, "as_of": page.as_of}),
        id,
    )
}

/// The body of a page of search results (JSON protocol, text protocol and REST): `{results, next}`, each result
/// `{room, seq, username, snippet, timestamp}`.
pub fn search_body(page: &SearchPage) -> serde_json::Value {
    let results: Vec<_> = page
        .results
        .iter()
        .map(|hit| {
            json!({"room": hit.room, "seq": hit.seq, "username": hit.username, "snippet": hit.snippet,
                   "timestamp": timestamp(hit.created_at)})
        })
        .collect();
    json!({"results": results, "next": page.next})
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
        Reply::Entry {
            room,
            entry: stored,
        } => return Some(entry(room, stored)),
        Reply::CaughtUp { .. } => return None,
        Reply::LeftRoom { room } => json!({"type": "left_room", "room": room}),
        Reply::RoomCreated(room) => json!({"type": "room_created", "room": room}),
        Reply::Rooms(rooms) => json!({"type": "rooms", "rooms": rooms}),
        Reply::History { room, page } => return Some(history(id, room, page).to_string()),
        Reply::Members { room, members } => {
            json!({"type": "members", "room": room, "members": members})
        }
        Reply::Ack { room, seq } => json!({"type": "ack", "room": room, "seq": seq}),
        Reply::Read { room, seq } => json!({"type": "read", "room": room, "seq": seq}),
        Reply::DirectOpened { room, with } => {
            json!({"type": "dm_opened", "room": room, "with": with})
        }
        Reply::Blocked { username, blocked } => {
            let kind = if *blocked { "blocked" } else { "unblocked" };
            json!({"type": kind, "username": username})
        }
        Reply::SearchResults(page) => {
            let mut frame = json!({"type": "search_results"});
            if let (Some(frame), serde_json::Value::Object(body)) =
                (frame.as_object_mut(), search_body(page))
            {
                frame.extend(body);
            }
            frame
        }
        Reply::Error(err) => return Some(error(id, err)),
    };
    Some(with_id(frame, id).to_string())
}
