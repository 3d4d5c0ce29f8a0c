//! The text protocol (PROTOCOL §4, the seed's formats): one line per frame, room-scoped lines prefixed `#<room> `
//! when the connection has joined several rooms, times as `HH:MM:SS` UTC.

use palaver_handlers::Error;
use palaver_handlers::event::{Broadcast, MemberView, Reply, RoomEvent, RoomView};
use palaver_handlers::model::{Body, HistoryMessage, HistoryPage, LogEntry, Role};
use serde::Serialize;
use serde_json::json;
use time::OffsetDateTime;
use time::macros::format_description;

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

fn prefix(room: &str, prefixed: bool) -> String {
    if prefixed {
        format!("#{room} ")
    } else {
        String::new()
    }
}

/// The line of one entry of a room's log: a message (`[15:31:02] john_doe: hello`), an edit, a deletion or a
/// reaction, each at the entry's time.
fn entry_line(room: &str, entry: &LogEntry, prefixed: bool) -> String {
    let head = format!("{}[{}] ", prefix(room, prefixed), clock(entry.created_at));
    let who = &entry.username;
    match &entry.body {
        Body::Message(message) if message.deleted => format!("{head}(a deleted message)"),
        Body::Message(message) => format!("{head}{who}: {}", message.content),
        Body::Edit { content, .. } => format!("{head}{who} edited a message: {content}"),
        Body::Delete { .. } => format!("{head}{who} deleted a message"),
        Body::Reaction {
            emoji, added: true, ..
        } => format!("{head}{who} reacted {emoji}"),
        Body::Reaction {
            emoji,
            added: false,
            ..
        } => format!("{head}{who} took back the reaction {emoji}"),
    }
}

/// The line for a room event.
pub fn event(broadcast: &Broadcast, prefixed: bool) -> String {
    let room = broadcast.room.as_str();
    let at = broadcast.at;
    let prefix = prefix(room, prefixed);
    match &broadcast.event {
        RoomEvent::Joined { username } => {
            format!("{prefix}[{}] {username} has joined the room", clock(at))
        }
        RoomEvent::Left { username } => {
            format!("{prefix}[{}] {username} has left the room", clock(at))
        }
        RoomEvent::Entry(entry) => entry_line(room, entry, prefixed),
        RoomEvent::Deleted { by } => {
            format!(
                "{prefix}[{}] Room '{room}' has been deleted by {by}",
                clock(at)
            )
        }
        RoomEvent::Typing { username } => format!("{prefix}TYPING:{username}"),
        RoomEvent::Read { seq, .. } => format!("{prefix}READ:{seq}"),
        RoomEvent::Receipt { username, seq } => format!("{prefix}RECEIPT:{username}:{seq}"),
        RoomEvent::DirectOpened { with, .. } => direct_opened(room, with),
        RoomEvent::Kicked {
            username,
            by,
            reason,
        } => match reason {
            Some(reason) => format!(
                "{prefix}[{}] {username} was kicked by {by} ({reason})",
                clock(at)
            ),
            None => format!("{prefix}[{}] {username} was kicked by {by}", clock(at)),
        },
        RoomEvent::Removed { .. } => format!("You have left the room \"{room}\""),
        RoomEvent::RoleChanged { username, role, by } => {
            let role = match role {
                Role::Owner => "the owner".to_owned(),
                Role::Admin => "an admin".to_owned(),
                other => format!("a {}", other.as_str()),
            };
            format!("{prefix}[{}] {by} made {username} {role}", clock(at))
        }
    }
}

/// The line for an error: the seed's exact sentences.
pub fn error(error: &Error) -> String {
    match error {
        Error::MessageTooLarge { .. } => format!("Message rejected: {error}"),
        other => format!("Error: {other}"),
    }
}

/// One message of `MESSAGES:`: seq, username, content and a whole-seconds timestamp, with `reply_to`, `edited_at`,
/// `reactions` and `replies` when it has them; a deleted message is `{"seq": …, "deleted": true}`.
fn history_item(message: &HistoryMessage) -> serde_json::Value {
    let entry = &message.entry;
    match entry.message() {
        Some(body) if !body.deleted => {
            let mut item = json!({"seq": entry.seq, "username": entry.username, "content": body.content,
                                  "timestamp": seconds_timestamp(entry.created_at)});
            if let Some(fields) = item.as_object_mut() {
                let edited_at = body.edited_at.map(seconds_timestamp);
                super::json::extras(fields, message, body.reply_to, edited_at);
            }
            item
        }
        _ => json!({"seq": entry.seq, "deleted": true}),
    }
}

fn history(page: &HistoryPage) -> String {
    let messages: Vec<_> = page.messages.iter().map(history_item).collect();
    let body =
        json!({"messages": messages, "next_before": page.next_before, "has_more": page.has_more});
    format!("MESSAGES:{body}")
}

/// `DM_OPENED:{"room":…,"with":…}`: never prefixed (it names its room).
fn direct_opened(room: &str, with: &str) -> String {
    format!("DM_OPENED:{}", json!({"room": room, "with": with}))
}

fn created(room: &RoomView) -> String {
    let body = json!({"name": room.name, "private": room.private, "id": room.id});
    format!("ROOM_CREATE_SUCCESS:{body}")
}

fn list<T: Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

fn members(members: &[MemberView]) -> String {
    format!("MEMBERS_LIST:{}", list(members))
}

/// The lines for a reply; `prefixed` when the connection is in several rooms.
pub fn reply(reply: &Reply, prefixed: bool) -> Vec<String> {
    match reply {
        Reply::Welcome { room, at, .. } => {
            vec![format!(
                "{}[{}] Welcome to room '{room}'!",
                prefix(room, prefixed),
                clock(*at)
            )]
        }
        Reply::Entry { room, entry } => vec![entry_line(room, entry, prefixed)],
        Reply::LeftRoom { room } => vec![
            format!("You have left the room \"{room}\""),
            "ROOM_LEAVE_SUCCESS:You have successfully left the room".to_owned(),
        ],
        Reply::RoomCreated(room) => vec![created(room)],
        Reply::Rooms(rooms) => vec![format!("ROOMS_LIST:{}", list(rooms))],
        Reply::History { page, .. } => vec![history(page)],
        Reply::DirectOpened { room, with } => vec![direct_opened(room, with)],
        Reply::Blocked { username, blocked } => {
            let kind = if *blocked { "BLOCKED" } else { "UNBLOCKED" };
            vec![format!("{kind}:{username}")]
        }
        Reply::SearchResults(page) => {
            vec![format!("SEARCH_RESULTS:{}", super::json::search_body(page))]
        }
        Reply::Members { members: list, .. } => vec![members(list)],
        // The text protocol has no acknowledgement: the sender sees its own message arrive.
        Reply::Ack { .. } | Reply::CaughtUp { .. } => Vec::new(),
        // The connection that marked gets the `READ:` event like the user's others; the reply would repeat it.
        Reply::Read { .. } => Vec::new(),
        Reply::Error(err) => vec![error(err)],
    }
}
