//! How a room event travels between nodes: one JSON object per NATS message, naming the node it comes from. Besides
//! the events the room's sockets are shown, a room's subject carries one the nodes act on themselves: a user's
//! membership ended ([`MembershipEnded`]). Decoding never panics: a message another version or a stranger sent that
//! does not decode is counted and dropped, and the database repairs whatever it should have carried.

use std::borrow::Cow;

use palaver_handlers::event::{Broadcast, RoomEvent};
use palaver_handlers::model::{Body, LogEntry, MessageBody};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

/// What a room's subject carries from another node.
#[derive(Debug, Clone, PartialEq)]
pub enum Received {
    /// An event for the room's subscribed connections.
    Event(Broadcast),
    /// A user's membership of the room ended: every node unsubscribes the user's connections from it.
    MembershipEnded(MembershipEnded),
}

/// A user left a room (their membership is over, in the database): their connections on every node leave it too.
#[derive(Debug, Clone, PartialEq)]
pub struct MembershipEnded {
    pub room_id: Uuid,
    pub room: String,
    pub at: OffsetDateTime,
    pub user_id: Uuid,
}

/// A room event on the wire between nodes. Its text borrows from the broadcast when encoding (a message's content is
/// not copied to be sent) and is owned when decoded.
#[derive(Debug, Serialize, Deserialize)]
struct Wire<'a> {
    /// The node that published it.
    node: Cow<'a, str>,
    room_id: Uuid,
    room: Cow<'a, str>,
    #[serde(with = "time::serde::rfc3339")]
    at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    skip_user: Option<Uuid>,
    event: Event<'a>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event<'a> {
    Message {
        id: Uuid,
        seq: i64,
        user_id: Uuid,
        username: Cow<'a, str>,
        content: Cow<'a, str>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_msg_id: Option<Cow<'a, str>>,
        #[serde(with = "time::serde::rfc3339")]
        created_at: OffsetDateTime,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reply_to: Option<i64>,
    },
    /// An edit, a deletion or a reaction: an entry of the room's log like a message, with the seq it took.
    Change {
        id: Uuid,
        seq: i64,
        user_id: Uuid,
        username: Cow<'a, str>,
        #[serde(with = "time::serde::rfc3339")]
        created_at: OffsetDateTime,
        change: Change<'a>,
    },
    Joined {
        username: Cow<'a, str>,
    },
    Left {
        username: Cow<'a, str>,
    },
    Typing {
        username: Cow<'a, str>,
    },
    Deleted {
        by: Cow<'a, str>,
    },
    /// For the connections of `user_id` only.
    Read {
        user_id: Uuid,
        seq: i64,
    },
    Receipt {
        username: Cow<'a, str>,
        seq: i64,
    },
    RoleChanged {
        username: Cow<'a, str>,
        role: Cow<'a, str>,
        by: Cow<'a, str>,
    },
    Kicked {
        username: Cow<'a, str>,
        by: Cow<'a, str>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<Cow<'a, str>>,
    },
    /// For the connections of `user_id` only: they are out of the room (their membership ended).
    Removed {
        user_id: Uuid,
    },
    /// For the connections of `user_id` only (a node publishes it to its own hub; it is here for completeness).
    DirectOpened {
        user_id: Uuid,
        with: Cow<'a, str>,
    },
    /// Not shown to anyone: the nodes unsubscribe the user's connections.
    MembershipEnded {
        user_id: Uuid,
    },
}

/// What an entry that is not a message did.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum Change<'a> {
    Edit {
        target_seq: i64,
        content: Cow<'a, str>,
    },
    Delete {
        target_seq: i64,
    },
    Reaction {
        target_seq: i64,
        emoji: Cow<'a, str>,
        added: bool,
    },
}

/// The wire form of a log entry (live entries only: a message is as posted, never edited or deleted yet).
fn entry_event(entry: &LogEntry) -> Event<'_> {
    let change = match &entry.body {
        Body::Message(message) => {
            return Event::Message {
                id: entry.id,
                seq: entry.seq,
                user_id: entry.user_id,
                username: Cow::Borrowed(&entry.username),
                content: Cow::Borrowed(&message.content),
                client_msg_id: entry.client_msg_id.as_deref().map(Cow::Borrowed),
                created_at: entry.created_at,
                reply_to: message.reply_to,
            };
        }
        Body::Edit {
            target_seq,
            content,
        } => Change::Edit {
            target_seq: *target_seq,
            content: Cow::Borrowed(content),
        },
        Body::Delete { target_seq } => Change::Delete {
            target_seq: *target_seq,
        },
        Body::Reaction {
            target_seq,
            emoji,
            added,
        } => Change::Reaction {
            target_seq: *target_seq,
            emoji: Cow::Borrowed(emoji),
            added: *added,
        },
    };
    Event::Change {
        id: entry.id,
        seq: entry.seq,
        user_id: entry.user_id,
        username: Cow::Borrowed(&entry.username),
        created_at: entry.created_at,
        change,
    }
}

/// The bytes that carry `broadcast` from node `node`.
pub fn encode(node: &str, broadcast: &Broadcast) -> Vec<u8> {
    let event = match &broadcast.event {
        RoomEvent::Entry(entry) => entry_event(entry),
        RoomEvent::Joined { username } => Event::Joined {
            username: Cow::Borrowed(username),
        },
        RoomEvent::Left { username } => Event::Left {
            username: Cow::Borrowed(username),
        },
        RoomEvent::Typing { username } => Event::Typing {
            username: Cow::Borrowed(username),
        },
        RoomEvent::Deleted { by } => Event::Deleted {
            by: Cow::Borrowed(by),
        },
        RoomEvent::Read { user_id, seq } => Event::Read {
            user_id: *user_id,
            seq: *seq,
        },
        RoomEvent::Receipt { username, seq } => Event::Receipt {
            username: Cow::Borrowed(username),
            seq: *seq,
        },
        RoomEvent::RoleChanged { username, role, by } => Event::RoleChanged {
            username: Cow::Borrowed(username),
            role: Cow::Borrowed(role.as_str()),
            by: Cow::Borrowed(by),
        },
        RoomEvent::Kicked {
            username,
            by,
            reason,
        } => Event::Kicked {
            username: Cow::Borrowed(username),
            by: Cow::Borrowed(by),
            reason: reason.as_deref().map(Cow::Borrowed),
        },
        RoomEvent::Removed { user_id } => Event::Removed { user_id: *user_id },
        RoomEvent::DirectOpened { user_id, with } => Event::DirectOpened {
            user_id: *user_id,
            with: Cow::Borrowed(with),
        },
    };
    let wire = Wire {
        node: Cow::Borrowed(node),
        room_id: broadcast.room_id,
        room: Cow::Borrowed(&broadcast.room),
        at: broadcast.at,
        skip_user: broadcast.skip_user,
        event,
    };
    serde_json::to_vec(&wire).unwrap_or_default()
}

/// The bytes that carry `ended` from node `node`.
pub fn encode_membership_ended(node: &str, ended: &MembershipEnded) -> Vec<u8> {
    let wire = Wire {
        node: Cow::Borrowed(node),
        room_id: ended.room_id,
        room: Cow::Borrowed(&ended.room),
        at: ended.at,
        skip_user: None,
        event: Event::MembershipEnded {
            user_id: ended.user_id,
        },
    };
    serde_json::to_vec(&wire).unwrap_or_default()
}

/// Whether `payload` was published by node `node`, without decoding it: the encoding names the node first, and a
/// node hears its own events back from NATS, which it skips.
pub fn is_from(payload: &[u8], node: &str) -> bool {
    let rest = payload.strip_prefix(br#"{"node":""#.as_slice());
    rest.and_then(|rest| rest.strip_prefix(node.as_bytes()))
        .is_some_and(|rest| rest.first() == Some(&b'"'))
}

/// The node and what `payload` carries, or `None` when it is not a room event.
pub fn decode(payload: &[u8]) -> Option<(String, Received)> {
    let wire: Wire = serde_json::from_slice(payload).ok()?;
    let node = wire.node.into_owned();
    let event = match wire.event {
        Event::Message {
            id,
            seq,
            user_id,
            username,
            content,
            client_msg_id,
            created_at,
            reply_to,
        } => RoomEvent::Entry(LogEntry {
            id,
            room_id: wire.room_id,
            seq,
            user_id,
            username: username.into_owned(),
            client_msg_id: client_msg_id.map(Cow::into_owned),
            created_at,
            body: Body::Message(MessageBody::posted(content.into_owned(), reply_to)),
        }),
        Event::Change {
            id,
            seq,
            user_id,
            username,
            created_at,
            change,
        } => RoomEvent::Entry(LogEntry {
            id,
            room_id: wire.room_id,
            seq,
            user_id,
            username: username.into_owned(),
            client_msg_id: None,
            created_at,
            body: match change {
                Change::Edit {
                    target_seq,
                    content,
                } => Body::Edit {
                    target_seq,
                    content: content.into_owned(),
                },
                Change::Delete { target_seq } => Body::Delete { target_seq },
                Change::Reaction {
                    target_seq,
                    emoji,
                    added,
                } => Body::Reaction {
                    target_seq,
                    emoji: emoji.into_owned(),
                    added,
                },
            },
        }),
        Event::Joined { username } => RoomEvent::Joined {
            username: username.into_owned(),
        },
        Event::Left { username } => RoomEvent::Left {
            username: username.into_owned(),
        },
        Event::Typing { username } => RoomEvent::Typing {
            username: username.into_owned(),
        },
        Event::Deleted { by } => RoomEvent::Deleted {
            by: by.into_owned(),
        },
        Event::Read { user_id, seq } => RoomEvent::Read { user_id, seq },
        Event::Receipt { username, seq } => RoomEvent::Receipt {
            username: username.into_owned(),
            seq,
        },
        Event::RoleChanged { username, role, by } => RoomEvent::RoleChanged {
            username: username.into_owned(),
            role: palaver_handlers::model::Role::parse(&role)?,
            by: by.into_owned(),
        },
        Event::Kicked {
            username,
            by,
            reason,
        } => RoomEvent::Kicked {
            username: username.into_owned(),
            by: by.into_owned(),
            reason: reason.map(Cow::into_owned),
        },
        Event::Removed { user_id } => RoomEvent::Removed { user_id },
        Event::DirectOpened { user_id, with } => RoomEvent::DirectOpened {
            user_id,
            with: with.into_owned(),
        },
        Event::MembershipEnded { user_id } => {
            let ended = MembershipEnded {
                room_id: wire.room_id,
                room: wire.room.into_owned(),
                at: wire.at,
                user_id,
            };
            return Some((node, Received::MembershipEnded(ended)));
        }
    };
    let broadcast = Broadcast {
        room_id: wire.room_id,
        room: wire.room.into_owned(),
        at: wire.at,
        event,
        skip_user: wire.skip_user,
    };
    Some((node, Received::Event(broadcast)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use palaver_handlers::model::{Body, MessageBody};
    use time::macros::datetime;

    fn broadcast(event: RoomEvent) -> Broadcast {
        Broadcast {
            room_id: Uuid::now_v7(),
            room: "general chat".into(),
            at: datetime!(2026-11-25 15:30:45.123456 UTC),
            event,
            skip_user: Some(Uuid::now_v7()),
        }
    }

    #[test]
    fn every_event_round_trips() {
        let message = LogEntry {
            id: Uuid::now_v7(),
            room_id: Uuid::nil(),
            seq: 42,
            user_id: Uuid::now_v7(),
            username: "john_doe".into(),
            body: Body::Message(MessageBody::posted("héllo \"there\"\n", None)),
            client_msg_id: Some("k1".into()),
            created_at: datetime!(2026-11-25 15:31:02.5 UTC),
        };
        let change = |body| LogEntry {
            id: Uuid::now_v7(),
            seq: 43,
            client_msg_id: None,
            body,
            ..message.clone()
        };
        let reply = LogEntry {
            body: Body::Message(MessageBody::posted("re", Some(41))),
            ..message.clone()
        };
        let events = [
            RoomEvent::Entry(message.clone()),
            RoomEvent::Entry(reply),
            RoomEvent::Entry(change(Body::Edit {
                target_seq: 42,
                content: "edited \"again\"".into(),
            })),
            RoomEvent::Entry(change(Body::Delete { target_seq: 42 })),
            RoomEvent::Entry(change(Body::Reaction {
                target_seq: 42,
                emoji: "👍🏽".into(),
                added: true,
            })),
            RoomEvent::Entry(change(Body::Reaction {
                target_seq: 42,
                emoji: ":wave:".into(),
                added: false,
            })),
            RoomEvent::Joined {
                username: "jane_doe".into(),
            },
            RoomEvent::Left {
                username: "jane_doe".into(),
            },
            RoomEvent::Typing {
                username: "jane_doe".into(),
            },
            RoomEvent::Deleted {
                by: "john_doe".into(),
            },
            RoomEvent::Read {
                user_id: Uuid::now_v7(),
                seq: 42,
            },
            RoomEvent::Receipt {
                username: "jane_doe".into(),
                seq: 42,
            },
        ];
        for event in events {
            let mut sent = broadcast(event);
            if let RoomEvent::Entry(message) = &mut sent.event {
                message.room_id = sent.room_id;
            }
            let (node, received) = decode(&encode("node-a", &sent)).expect("it decodes");
            assert_eq!(node, "node-a");
            assert_eq!(received, Received::Event(sent));
        }
    }

    #[test]
    fn an_ended_membership_round_trips() {
        let sent = MembershipEnded {
            room_id: Uuid::now_v7(),
            room: "general chat".into(),
            at: datetime!(2026-11-25 15:30:45.123456 UTC),
            user_id: Uuid::now_v7(),
        };
        let payload = encode_membership_ended("node-a", &sent);
        assert!(
            is_from(&payload, "node-a"),
            "the sender leads, like every room event"
        );
        let json: serde_json::Value = serde_json::from_slice(&payload).expect("JSON");
        assert_eq!(
            json["event"],
            serde_json::json!({"type": "membership_ended", "user_id": sent.user_id})
        );
        assert!(json.get("skip_user").is_none(), "{json}");
        let (node, received) = decode(&payload).expect("it decodes");
        assert_eq!(node, "node-a");
        assert_eq!(received, Received::MembershipEnded(sent));
        // As PROTOCOL §10 writes it.
        let written = br#"{"node":"node-b","room_id":"0190a3c5-6b6e-7000-8000-000000000001","room":"r","at":"2026-11-25T15:30:45Z","event":{"type":"membership_ended","user_id":"0190a3c5-6b6e-7000-8000-000000000002"}}"#;
        let (node, received) = decode(written).expect("it decodes");
        assert_eq!(node, "node-b");
        let Received::MembershipEnded(ended) = received else {
            panic!("{received:?}");
        };
        assert_eq!(
            ended.user_id.to_string(),
            "0190a3c5-6b6e-7000-8000-000000000002"
        );
    }

    #[test]
    fn the_sender_is_read_from_the_first_bytes() {
        let sent = broadcast(RoomEvent::Typing {
            username: "jane_doe".into(),
        });
        let payload = encode("node-a", &sent);
        assert!(is_from(&payload, "node-a"));
        assert!(
            !is_from(&payload, "node-"),
            "a prefix of the id is another node"
        );
        assert!(!is_from(&payload, "node-ab"));
        assert!(!is_from(&encode("node-b", &sent), "node-a"));
        assert!(!is_from(b"", "node-a"));
    }

    #[test]
    fn what_does_not_decode_is_no_event() {
        for payload in [
            &b""[..],
            b"{}",
            b"not json",
            br#"{"node":"a","event":{"type":"nope"}}"#,
            // An ended membership names its user.
            br#"{"node":"a","room_id":"0190a3c5-6b6e-7000-8000-000000000001","room":"r","at":"2026-11-25T15:30:45Z","event":{"type":"membership_ended"}}"#,
            br#"{"node":"a","room_id":"0190a3c5-6b6e-7000-8000-000000000001","room":"r","at":"2026-11-25T15:30:45Z","event":{"type":"membership_ended","user_id":"nobody"}}"#,
        ] {
            assert!(
                decode(payload).is_none(),
                "{:?}",
                String::from_utf8_lossy(payload)
            );
        }
    }
}
