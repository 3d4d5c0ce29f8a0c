//! Every shape Palaver puts on the wire, rendered from the handlers' plain data and nowhere else: the two WebSocket
//! codecs — the seed's text lines ([`text`], PROTOCOL §4) and structured JSON frames ([`json`], `palaver.v1.json`,
//! §5) — the JSON bodies the REST routes share with them, and HTTP error responses ([`http`]). Rendering is pure; the
//! hub renders each event once per codec through [`Codec`]'s [`crate::hub::Render`].

pub mod http;
pub mod json;
pub mod text;

use palaver_handlers::event::{Broadcast, Reply};
use time::OffsetDateTime;

use crate::hub::Render;

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

impl Codec {
    /// The frame for a room event; `prefixed` when the connection is in several rooms.
    pub fn event_frame(self, broadcast: &Broadcast, prefixed: bool) -> String {
        match self {
            Codec::Text => text::event(broadcast, prefixed),
            Codec::Json => json::event(broadcast),
        }
    }

    /// The frames for a reply to a command with correlation `id`; `prefixed` when the connection is in several
    /// rooms. Some replies are no frame at all in a codec (the text protocol has no ack).
    pub fn reply_frames(self, id: Option<&str>, reply: &Reply, prefixed: bool) -> Vec<String> {
        match self {
            Codec::Text => text::reply(reply, prefixed),
            Codec::Json => json::reply(id, reply).into_iter().collect(),
        }
    }

    /// This codec as the hub's renderer.
    pub fn renderer(self) -> &'static dyn Render {
        match self {
            Codec::Text => &Codec::Text,
            Codec::Json => &Codec::Json,
        }
    }
}

impl Render for Codec {
    fn event(&self, broadcast: &Broadcast, prefixed: bool) -> String {
        self.event_frame(broadcast, prefixed)
    }

    fn prefixes(&self) -> bool {
        *self == Codec::Text
    }
}

/// RFC 3339 in UTC with the stored precision, for JSON frames and bodies.
pub(crate) fn timestamp(at: OffsetDateTime) -> String {
    at.to_offset(time::UtcOffset::UTC)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use palaver_handlers::Error;
    use palaver_handlers::event::{MemberView, RoomEvent, RoomView};
    use palaver_handlers::model::{Body, MessageBody};
    use palaver_handlers::model::{HistoryMessage, HistoryPage, LogEntry};
    use serde_json::json;
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

    fn message() -> LogEntry {
        LogEntry {
            id: Uuid::nil(),
            room_id: Uuid::nil(),
            seq: 42,
            user_id: Uuid::nil(),
            username: "john_doe".into(),
            body: Body::Message(MessageBody::posted("hello there", None)),
            client_msg_id: Some("c-1".into()),
            created_at: datetime!(2026-11-25 15:31:02 UTC),
        }
    }

    fn text(event: RoomEvent, prefixed: bool) -> String {
        Codec::Text.event_frame(&broadcast(event), prefixed)
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
            text(RoomEvent::Entry(message()), false),
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
            Codec::Text.reply_frames(None, &welcome, false),
            ["[15:30:45] Welcome to room 'general-chat'!"]
        );
        assert_eq!(
            Codec::Text.reply_frames(
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
            direct: false,
            with: None,
            last_read_seq: Some(3),
            unread: Some(2),
        };
        assert_eq!(
            Codec::Text.reply_frames(None, &Reply::RoomCreated(room.clone()), false),
            [
                r#"ROOM_CREATE_SUCCESS:{"name":"general","private":false,"id":"00000000-0000-0000-0000-000000000000"}"#
            ]
        );
        let list = Codec::Text.reply_frames(None, &Reply::Rooms(vec![room]), false);
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
                last_read_seq: 4,
                role: "owner",
            }],
        };
        assert_eq!(
            Codec::Text.reply_frames(None, &members, false),
            [
                r#"MEMBERS_LIST:[{"username":"john_doe","online":true,"last_read_seq":4,"role":"owner"}]"#
            ]
        );
        assert!(
            list[0].ends_with(r#""member":true,"last_read_seq":3,"unread":2}]"#),
            "{}",
            list[0]
        );
        let read = Codec::Json.reply_frames(
            Some("r1"),
            &Reply::Read {
                room: "general".into(),
                seq: 4,
            },
            false,
        );
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&read[0]).unwrap(),
            json!({"type": "read", "room": "general", "seq": 4, "id": "r1"})
        );
        let event = |event| Codec::Json.event_frame(&broadcast(event), false);
        assert_eq!(
            event(RoomEvent::Receipt {
                username: "jane_doe".into(),
                seq: 4
            }),
            r#"{"type":"receipt","room":"general-chat","username":"jane_doe","seq":4}"#
        );
        assert_eq!(
            text(
                RoomEvent::Receipt {
                    username: "jane_doe".into(),
                    seq: 4
                },
                true
            ),
            "#general-chat RECEIPT:jane_doe:4"
        );
        assert_eq!(
            text(
                RoomEvent::Read {
                    user_id: Uuid::nil(),
                    seq: 4
                },
                false
            ),
            "READ:4"
        );
        let mut hi = message();
        hi.seq = 1;
        hi.body = Body::Message(MessageBody::posted("hi", None));
        let page = HistoryPage {
            messages: vec![HistoryMessage::plain(hi)],
            next_before: Some(1),
            has_more: false,
            as_of: 1,
        };
        assert_eq!(
            Codec::Text.reply_frames(
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
            Codec::Text
                .reply_frames(
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
            text::error(&Error::RoomNotFound),
            "Error: room does not exist"
        );
        assert_eq!(
            text::error(&Error::BadRoomPassword),
            "Error: incorrect room password"
        );
        assert_eq!(
            text::error(&Error::RateLimited),
            "Error: rate limit exceeded"
        );
        assert_eq!(
            text::error(&Error::RoomExists),
            "Error: room already exists"
        );
        assert_eq!(
            text::error(&Error::NotOwner),
            "Error: only the room owner can delete it"
        );
        assert_eq!(
            text::error(&Error::NotInRoom),
            "Error: you are not in that room"
        );
        assert_eq!(
            text::error(&Error::InvalidMessage),
            "Error: invalid message format"
        );
        assert_eq!(
            text::error(&Error::MessageTooLarge { max: 65536 }),
            "Message rejected: message too large (max 65536 bytes)"
        );
        let frame: serde_json::Value =
            serde_json::from_str(&json::error(Some("7"), &Error::RoomNotFound)).unwrap();
        assert_eq!(
            frame,
            json!({"type": "error", "id": "7", "code": "room_not_found", "message": "room does not exist"})
        );
    }

    #[test]
    fn json_frames_carry_type_room_and_the_commands_id() {
        let frame: serde_json::Value = serde_json::from_str(
            &Codec::Json.event_frame(&broadcast(RoomEvent::Entry(message())), false),
        )
        .unwrap();
        assert_eq!(
            frame,
            json!({"type": "message", "room": "general-chat", "seq": 42, "id": Uuid::nil(), "username": "john_doe",
                   "content": "hello there", "timestamp": "2026-11-25T15:31:02Z", "client_msg_id": "c-1"})
        );
        let ack = Codec::Json.reply_frames(
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
            serde_json::from_str(&Codec::Json.reply_frames(None, &welcome, true)[0]).unwrap();
        assert_eq!(welcome["type"], "welcome");
        assert_eq!(welcome["last_seq"], 7);
    }

    /// `message()` changed into another kind of entry, with seq 43.
    fn entry(body: Body) -> LogEntry {
        LogEntry {
            seq: 43,
            client_msg_id: None,
            created_at: datetime!(2026-11-25 15:31:40 UTC),
            body,
            ..message()
        }
    }

    fn edited() -> LogEntry {
        entry(Body::Edit {
            target_seq: 42,
            content: "hello again".into(),
        })
    }

    fn reacted(added: bool) -> LogEntry {
        entry(Body::Reaction {
            target_seq: 42,
            emoji: "👍".into(),
            added,
        })
    }

    fn json_event(event: RoomEvent) -> serde_json::Value {
        serde_json::from_str(&Codec::Json.event_frame(&broadcast(event), false)).unwrap()
    }

    #[test]
    fn changes_have_their_json_frames() {
        assert_eq!(
            json_event(RoomEvent::Entry(edited())),
            json!({"type": "message_edited", "room": "general-chat", "seq": 43, "target_seq": 42,
                   "username": "john_doe", "content": "hello again", "edited_at": "2026-11-25T15:31:40Z"})
        );
        assert_eq!(
            json_event(RoomEvent::Entry(entry(Body::Delete { target_seq: 42 }))),
            json!({"type": "message_deleted", "room": "general-chat", "seq": 43, "target_seq": 42,
                   "username": "john_doe"})
        );
        for added in [true, false] {
            assert_eq!(
                json_event(RoomEvent::Entry(reacted(added))),
                json!({"type": "reaction", "room": "general-chat", "seq": 43, "target_seq": 42,
                       "username": "john_doe", "emoji": "👍", "added": added})
            );
        }
        let mut reply = message();
        reply.body = Body::Message(MessageBody::posted("re", Some(41)));
        assert_eq!(json_event(RoomEvent::Entry(reply))["reply_to"], 41);
    }

    #[test]
    fn replayed_messages_are_in_their_current_state() {
        let mut changed = message();
        changed.body = Body::Message(MessageBody {
            edited_at: Some(datetime!(2026-11-25 15:31:40 UTC)),
            ..MessageBody::posted("hello again", None)
        });
        let reply = |entry| Reply::Entry {
            room: "general".into(),
            entry,
        };
        let frame: serde_json::Value = serde_json::from_str(
            &Codec::Json.reply_frames(None, &reply(changed.clone()), false)[0],
        )
        .unwrap();
        assert_eq!(frame["edited_at"], "2026-11-25T15:31:40Z");
        assert_eq!(frame["content"], "hello again");
        let mut gone = message();
        gone.body = Body::Message(MessageBody {
            deleted: true,
            ..MessageBody::posted("", None)
        });
        let frame: serde_json::Value =
            serde_json::from_str(&Codec::Json.reply_frames(None, &reply(gone.clone()), false)[0])
                .unwrap();
        assert_eq!(
            frame,
            json!({"type": "message", "room": "general", "seq": 42, "deleted": true})
        );
        assert_eq!(
            Codec::Text.reply_frames(None, &reply(gone), true),
            ["#general [15:31:02] (a deleted message)"]
        );
    }

    #[test]
    fn changes_have_their_text_lines() {
        assert_eq!(
            text(RoomEvent::Entry(edited()), false),
            "[15:31:40] john_doe edited a message: hello again"
        );
        assert_eq!(
            text(
                RoomEvent::Entry(entry(Body::Delete { target_seq: 42 })),
                true
            ),
            "#general-chat [15:31:40] john_doe deleted a message"
        );
        assert_eq!(
            text(RoomEvent::Entry(reacted(true)), false),
            "[15:31:40] john_doe reacted 👍"
        );
        assert_eq!(
            text(RoomEvent::Entry(reacted(false)), false),
            "[15:31:40] john_doe took back the reaction 👍"
        );
    }

    #[test]
    fn history_items_are_messages_in_their_current_state() {
        use palaver_handlers::model::ReactionCount;
        let mut edited = message();
        edited.body = Body::Message(MessageBody {
            edited_at: Some(datetime!(2026-11-25 15:31:40.25 UTC)),
            ..MessageBody::posted("hello again", Some(7))
        });
        let mut gone = message();
        gone.seq = 41;
        gone.body = Body::Message(MessageBody {
            deleted: true,
            ..MessageBody::posted("", None)
        });
        let page = HistoryPage {
            messages: vec![
                HistoryMessage {
                    entry: edited,
                    reactions: vec![ReactionCount {
                        emoji: "👍".into(),
                        count: 3,
                        me: true,
                    }],
                    replies: 2,
                },
                HistoryMessage::plain(gone),
            ],
            next_before: Some(41),
            has_more: false,
            as_of: 44,
        };
        let body = json::history_body(&page);
        assert_eq!(
            body["messages"],
            json!([
                {"seq": 42, "id": Uuid::nil(), "username": "john_doe", "content": "hello again",
                 "timestamp": "2026-11-25T15:31:02Z", "client_msg_id": "c-1", "reply_to": 7,
                 "edited_at": "2026-11-25T15:31:40.25Z", "reactions": [{"emoji": "👍", "count": 3, "me": true}],
                 "replies": 2},
                {"seq": 41, "deleted": true},
            ])
        );
        let text = Codec::Text.reply_frames(
            None,
            &Reply::History {
                room: "general".into(),
                page,
            },
            false,
        );
        assert_eq!(
            text,
            [
                r#"MESSAGES:{"messages":[{"seq":42,"username":"john_doe","content":"hello again","timestamp":"2026-11-25T15:31:02Z","reply_to":7,"edited_at":"2026-11-25T15:31:40Z","reactions":[{"emoji":"👍","count":3,"me":true}],"replies":2},{"seq":41,"deleted":true}],"next_before":41,"has_more":false}"#
            ]
        );
    }

    #[test]
    fn message_content_is_never_interpreted() {
        let mut evil = message();
        let text = "<script>alert(1)</script>\n\u{1b}[31m\"quoted\"";
        evil.body = Body::Message(MessageBody::posted(text, None));
        let frame = Codec::Json.event_frame(&broadcast(RoomEvent::Entry(evil.clone())), false);
        let parsed: serde_json::Value = serde_json::from_str(&frame).unwrap();
        assert_eq!(parsed["content"], text);
    }
}
