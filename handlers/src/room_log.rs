//! The rules of a room's log, in one place for every store: how a batch of new entries is numbered (each takes its
//! room's next seq, gapless, in batch order), which changes are refused (an edit of someone else's message, a
//! reaction to a deleted one) and what each stored entry does to the messages it targets. A store looks up what
//! [`wanted`] names under its rooms' locks, lets [`plan`] decide, and writes the [`Plan`] in the same transaction,
//! so two engines can never disagree on a rule and no concurrent change slips between a check and its write.

use std::collections::{BTreeSet, HashMap};

use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::StoreError;
use crate::model::{Appended, Body, Change, LogEntry, MessageBody, NewEntry, Refusal};

/// One user's reaction with one emoji to one message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReactionKey {
    pub room_id: Uuid,
    pub target_seq: i64,
    pub user_id: Uuid,
    pub emoji: String,
}

/// What the rules need to know of a stored message an entry targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Its author.
    pub user_id: Uuid,
    pub created_at: OffsetDateTime,
    pub deleted: bool,
    /// The distinct emojis it carries.
    pub emojis: BTreeSet<String>,
}

/// What a batch needs looked up, beyond its rooms' last seqs, its users' names and its idempotency keys.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    /// The (room, seq) of every message the batch edits, deletes, reacts or replies to, once each.
    pub targets: Vec<(Uuid, i64)>,
    /// Every reaction the batch adds or removes, once each.
    pub reactions: Vec<ReactionKey>,
}

impl Wanted {
    /// Whether the batch is posts only, with no reply: nothing to look up.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty() && self.reactions.is_empty()
    }
}

/// What a store read for a batch, under the locks of the batch's rooms.
#[derive(Debug, Clone, Default)]
pub struct Lookup {
    /// The last seq of each existing room of the batch.
    pub last_seqs: HashMap<Uuid, i64>,
    /// The username of each existing user of the batch.
    pub usernames: HashMap<Uuid, String>,
    /// Stored entries carrying one of the batch's (user, client_msg_id).
    pub originals: Vec<LogEntry>,
    /// The stored messages among [`Wanted::targets`] (entries that are not messages are absent).
    pub targets: HashMap<(Uuid, i64), Target>,
    /// The stored reactions among [`Wanted::reactions`], with the seq of the entry that added each.
    pub reactions: HashMap<ReactionKey, i64>,
}

/// An edited stored message's content after the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edited {
    pub room_id: Uuid,
    pub seq: i64,
    pub content: String,
    pub edited_at: OffsetDateTime,
}

/// What a batch does, for the store to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// The outcome of each entry, in batch order, as it happened (a message posted then edited in one batch is
    /// delivered as posted, then the edit).
    pub outcomes: Vec<Appended>,
    /// (room, its new last seq) for every room that receives an entry.
    pub moved_rooms: Vec<(Uuid, i64)>,
    /// The new entries as they are to be stored: in their state after the batch (a message edited or deleted in the
    /// batch is stored edited or erased).
    pub inserts: Vec<LogEntry>,
    /// Stored messages the batch edits (and does not delete), with their final content.
    pub edits: Vec<Edited>,
    /// Stored messages the batch deletes, with the time: their content and that of their edits is erased and
    /// their reactions removed.
    pub deletions: Vec<(Uuid, i64, OffsetDateTime)>,
    /// Reactions to store, with the seq of the entry that added each.
    pub reactions_added: Vec<(ReactionKey, i64)>,
    /// Stored reactions to remove.
    pub reactions_removed: Vec<ReactionKey>,
}

/// What [`plan`] must have looked up for `batch`.
pub fn wanted(batch: &[NewEntry]) -> Wanted {
    let mut targets = BTreeSet::new();
    let mut reactions = BTreeSet::new();
    for entry in batch {
        let target = match &entry.change {
            Change::Post { reply_to, .. } => *reply_to,
            Change::Edit { target_seq, .. } | Change::Delete { target_seq, .. } => {
                Some(*target_seq)
            }
            Change::React {
                target_seq, emoji, ..
            }
            | Change::Unreact { target_seq, emoji } => {
                reactions.insert(ReactionKey {
                    room_id: entry.room_id,
                    target_seq: *target_seq,
                    user_id: entry.user_id,
                    emoji: emoji.clone(),
                });
                Some(*target_seq)
            }
        };
        if let Some(seq) = target {
            targets.insert((entry.room_id, seq));
        }
    }
    Wanted {
        targets: targets.into_iter().collect(),
        reactions: reactions.into_iter().collect(),
    }
}

/// A message the batch knows of: stored before, or posted earlier in the batch (at `insert` among the inserts).
struct Known {
    target: Target,
    insert: Option<usize>,
}

/// The batch's view of the log while it is planned.
struct State {
    /// Whether anything in the batch can name a message (an edit, deletion, reaction or reply); a batch of plain
    /// posts, the common case, keeps no record of its messages as targets.
    tracks_targets: bool,
    last_seqs: HashMap<Uuid, i64>,
    targets: HashMap<(Uuid, i64), Known>,
    /// Every reaction the batch touched: `Some(seq)` present (added by that entry), `None` absent.
    reactions: HashMap<ReactionKey, Option<i64>>,
    inserts: Vec<LogEntry>,
    edits: HashMap<(Uuid, i64), Edited>,
    deletions: Vec<(Uuid, i64, OffsetDateTime)>,
}

/// Decides the outcome of each entry of `batch` in order, against what was looked up and what the batch did
/// before it. An entry naming an unknown room or user refuses the whole batch (nothing is stored); a change that
/// breaks a rule is refused alone ([`Appended::Refused`]) and takes no seq.
pub fn plan(batch: &[NewEntry], lookup: Lookup) -> Result<Plan, StoreError> {
    let Lookup {
        last_seqs,
        usernames,
        originals,
        targets,
        reactions,
    } = lookup;
    let locked_seqs = last_seqs.clone();
    let tracks_targets = batch
        .iter()
        .any(|new| !matches!(new.change, Change::Post { reply_to: None, .. }));
    let mut state = State {
        tracks_targets,
        last_seqs,
        targets: targets
            .into_iter()
            .map(|(key, target)| {
                (
                    key,
                    Known {
                        target,
                        insert: None,
                    },
                )
            })
            .collect(),
        reactions: HashMap::new(),
        inserts: Vec::new(),
        edits: HashMap::new(),
        deletions: Vec::new(),
    };
    let mut outcomes: Vec<Appended> = Vec::with_capacity(batch.len());
    let mut first_with_key: HashMap<(Uuid, &str), usize> = HashMap::new();
    for new in batch {
        if let Some(original) = original_of(new, &originals, &first_with_key, &outcomes) {
            outcomes.push(Appended::Duplicate(original));
            continue;
        }
        let username = usernames
            .get(&new.user_id)
            .ok_or_else(|| StoreError::Backend(format!("no user {}", new.user_id)))?;
        if !state.last_seqs.contains_key(&new.room_id) {
            return Err(StoreError::Backend(format!("no room {}", new.room_id)));
        }
        let outcome = match state.decide(new, &reactions) {
            Ok(body) => {
                if let Some(key) = new.client_msg_id.as_deref() {
                    first_with_key.insert((new.user_id, key), outcomes.len());
                }
                Appended::Stored(state.apply(new, username, body))
            }
            Err(Refused::Rule(refusal)) => Appended::Refused(refusal),
            Err(Refused::Unchanged(seq)) => Appended::Unchanged {
                room_id: new.room_id,
                seq,
            },
        };
        outcomes.push(outcome);
    }
    let deleted: BTreeSet<(Uuid, i64)> = state
        .deletions
        .iter()
        .map(|(room, seq, _)| (*room, *seq))
        .collect();
    let mut reactions_added = Vec::new();
    let mut reactions_removed = Vec::new();
    for (key, now) in state.reactions {
        if deleted.contains(&(key.room_id, key.target_seq)) {
            // The deletion removes every stored reaction of the message; none of the batch's is stored.
            continue;
        }
        let before = reactions.get(&key).copied();
        if before == now {
            continue;
        }
        if before.is_some() {
            reactions_removed.push(key.clone());
        }
        if let Some(seq) = now {
            reactions_added.push((key, seq));
        }
    }
    reactions_added.sort();
    reactions_removed.sort();
    let mut edits: Vec<Edited> = state.edits.into_values().collect();
    edits.sort_by_key(|edit| (edit.room_id, edit.seq));
    let moved_rooms = state
        .last_seqs
        .into_iter()
        .filter(|(room_id, seq)| locked_seqs.get(room_id) != Some(seq))
        .collect();
    Ok(Plan {
        outcomes,
        moved_rooms,
        inserts: state.inserts,
        edits,
        deletions: state.deletions,
        reactions_added,
        reactions_removed,
    })
}

/// Why an entry is not stored.
enum Refused {
    Rule(Refusal),
    /// A reaction already made, by the entry with this seq.
    Unchanged(i64),
}

impl State {
    /// The message `seq` of the room, if it exists and is not deleted.
    fn live_target(&self, room_id: Uuid, seq: i64) -> Result<&Known, Refused> {
        match self.targets.get(&(room_id, seq)) {
            None => Err(Refused::Rule(Refusal::NoSuchMessage { seq })),
            Some(known) if known.target.deleted => Err(Refused::Rule(Refusal::Deleted { seq })),
            Some(known) => Ok(known),
        }
    }

    /// Whether the user's reaction is present now.
    fn reaction(&self, key: &ReactionKey, stored: &HashMap<ReactionKey, i64>) -> Option<i64> {
        match self.reactions.get(key) {
            Some(now) => *now,
            None => stored.get(key).copied(),
        }
    }

    /// The body `new` is stored with, or why it is not stored.
    fn decide(&self, new: &NewEntry, stored: &HashMap<ReactionKey, i64>) -> Result<Body, Refused> {
        let room_id = new.room_id;
        let key = |target_seq: i64, emoji: &str| ReactionKey {
            room_id,
            target_seq,
            user_id: new.user_id,
            emoji: emoji.to_owned(),
        };
        Ok(match &new.change {
            Change::Post { content, reply_to } => {
                if let Some(seq) = reply_to {
                    self.live_target(room_id, *seq)?;
                }
                Body::Message(MessageBody::posted(content.clone(), *reply_to))
            }
            Change::Edit {
                target_seq,
                content,
                not_before,
            } => {
                let target = &self.live_target(room_id, *target_seq)?.target;
                if target.user_id != new.user_id {
                    return Err(Refused::Rule(Refusal::NotAuthor));
                }
                if not_before.is_some_and(|not_before| target.created_at < not_before) {
                    return Err(Refused::Rule(Refusal::EditWindowClosed));
                }
                Body::Edit {
                    target_seq: *target_seq,
                    content: content.clone(),
                }
            }
            Change::Delete {
                target_seq,
                any_author,
            } => {
                let target = &self.live_target(room_id, *target_seq)?.target;
                if target.user_id != new.user_id && !any_author {
                    return Err(Refused::Rule(Refusal::NotAuthorOrOwner));
                }
                Body::Delete {
                    target_seq: *target_seq,
                }
            }
            Change::React {
                target_seq,
                emoji,
                max_emojis,
            } => {
                let target = &self.live_target(room_id, *target_seq)?.target;
                if let Some(seq) = self.reaction(&key(*target_seq, emoji), stored) {
                    return Err(Refused::Unchanged(seq));
                }
                if !target.emojis.contains(emoji) && target.emojis.len() >= *max_emojis {
                    return Err(Refused::Rule(Refusal::TooManyReactions {
                        max: *max_emojis,
                    }));
                }
                Body::Reaction {
                    target_seq: *target_seq,
                    emoji: emoji.clone(),
                    added: true,
                }
            }
            Change::Unreact { target_seq, emoji } => {
                self.live_target(room_id, *target_seq)?;
                if self.reaction(&key(*target_seq, emoji), stored).is_none() {
                    return Err(Refused::Rule(Refusal::NoSuchReaction));
                }
                Body::Reaction {
                    target_seq: *target_seq,
                    emoji: emoji.clone(),
                    added: false,
                }
            }
        })
    }

    /// Numbers `new` with its room's next seq and applies what it does; the entry as delivered.
    fn apply(&mut self, new: &NewEntry, username: &str, body: Body) -> LogEntry {
        let room_id = new.room_id;
        let seq = self.last_seqs.get_mut(&room_id).map_or(0, |last| {
            *last += 1;
            *last
        });
        let at = to_micros(new.created_at);
        let entry = LogEntry {
            id: new.id,
            room_id,
            seq,
            user_id: new.user_id,
            username: username.to_owned(),
            client_msg_id: new.client_msg_id.clone(),
            created_at: at,
            body,
        };
        match &entry.body {
            Body::Message(_) if !self.tracks_targets => {}
            Body::Message(_) => {
                let target = Target {
                    user_id: new.user_id,
                    created_at: at,
                    deleted: false,
                    emojis: BTreeSet::new(),
                };
                let insert = Some(self.inserts.len());
                self.targets
                    .insert((room_id, seq), Known { target, insert });
            }
            Body::Edit {
                target_seq,
                content,
            } => {
                let insert = self
                    .targets
                    .get(&(room_id, *target_seq))
                    .and_then(|known| known.insert);
                match insert.and_then(|index| self.inserts.get_mut(index)) {
                    Some(LogEntry {
                        body: Body::Message(message),
                        ..
                    }) => {
                        message.content.clone_from(content);
                        message.edited_at = Some(at);
                    }
                    _ => {
                        let edited = Edited {
                            room_id,
                            seq: *target_seq,
                            content: content.clone(),
                            edited_at: at,
                        };
                        self.edits.insert((room_id, *target_seq), edited);
                    }
                }
            }
            Body::Delete { target_seq } => self.delete(room_id, *target_seq, at),
            Body::Reaction {
                target_seq,
                emoji,
                added,
            } => {
                let key = ReactionKey {
                    room_id,
                    target_seq: *target_seq,
                    user_id: new.user_id,
                    emoji: emoji.clone(),
                };
                self.reactions.insert(key, added.then_some(seq));
                if *added && let Some(known) = self.targets.get_mut(&(room_id, *target_seq)) {
                    known.target.emojis.insert(emoji.clone());
                }
            }
        }
        self.inserts.push(entry.clone());
        entry
    }

    /// Deletes the message `seq`: erased where the batch inserts it or edits of it, and listed for the store to
    /// erase where it is stored.
    fn delete(&mut self, room_id: Uuid, seq: i64, at: OffsetDateTime) {
        let Some(known) = self.targets.get_mut(&(room_id, seq)) else {
            return;
        };
        known.target.deleted = true;
        known.target.emojis.clear();
        match known.insert.and_then(|index| self.inserts.get_mut(index)) {
            Some(LogEntry {
                body: Body::Message(message),
                ..
            }) => {
                message.content.clear();
                message.edited_at = None;
                message.deleted = true;
            }
            _ => {
                self.edits.remove(&(room_id, seq));
                self.deletions.push((room_id, seq, at));
            }
        }
        for insert in &mut self.inserts {
            if insert.room_id == room_id
                && let Body::Edit {
                    target_seq,
                    content,
                } = &mut insert.body
                && *target_seq == seq
            {
                content.clear();
            }
        }
    }
}

/// The entry `new` repeats, if its (user, client_msg_id) was stored before or came earlier in the batch.
fn original_of(
    new: &NewEntry,
    originals: &[LogEntry],
    first_with_key: &HashMap<(Uuid, &str), usize>,
    outcomes: &[Appended],
) -> Option<LogEntry> {
    let key = new.client_msg_id.as_deref()?;
    originals
        .iter()
        .find(|original| {
            original.user_id == new.user_id && original.client_msg_id.as_deref() == Some(key)
        })
        .or_else(|| {
            let earlier = first_with_key.get(&(new.user_id, key))?;
            outcomes.get(*earlier).and_then(Appended::entry)
        })
        .cloned()
}

/// `at` in UTC and whole microseconds, the precision both databases keep: what a write returns equals what a later
/// read returns.
pub fn to_micros(at: OffsetDateTime) -> OffsetDateTime {
    let at = at.to_offset(time::UtcOffset::UTC);
    let nanos = at.nanosecond();
    at.replace_nanosecond(nanos - nanos % 1_000).unwrap_or(at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const T0: OffsetDateTime = datetime!(2026-11-25 15:30:45 UTC);

    struct Batch {
        room: Uuid,
        alice: Uuid,
        bob: Uuid,
    }

    impl Batch {
        fn new() -> Self {
            Batch {
                room: Uuid::new_v4(),
                alice: Uuid::new_v4(),
                bob: Uuid::new_v4(),
            }
        }

        fn entry(&self, user_id: Uuid, change: Change) -> NewEntry {
            NewEntry {
                id: Uuid::new_v4(),
                room_id: self.room,
                user_id,
                change,
                client_msg_id: None,
                created_at: T0,
            }
        }

        fn lookup(&self, last_seq: i64, targets: Vec<(i64, Target)>) -> Lookup {
            Lookup {
                last_seqs: HashMap::from([(self.room, last_seq)]),
                usernames: HashMap::from([
                    (self.alice, "alice".to_owned()),
                    (self.bob, "bob".to_owned()),
                ]),
                originals: Vec::new(),
                targets: targets
                    .into_iter()
                    .map(|(seq, target)| ((self.room, seq), target))
                    .collect(),
                reactions: HashMap::new(),
            }
        }

        fn by(&self, user_id: Uuid) -> Target {
            Target {
                user_id,
                created_at: T0,
                deleted: false,
                emojis: BTreeSet::new(),
            }
        }
    }

    fn post(content: &str) -> Change {
        Change::Post {
            content: content.into(),
            reply_to: None,
        }
    }

    fn edit(target_seq: i64, content: &str) -> Change {
        Change::Edit {
            target_seq,
            content: content.into(),
            not_before: None,
        }
    }

    fn react(target_seq: i64, emoji: &str, max_emojis: usize) -> Change {
        Change::React {
            target_seq,
            emoji: emoji.into(),
            max_emojis,
        }
    }

    fn seqs(plan: &Plan) -> Vec<Option<i64>> {
        plan.outcomes
            .iter()
            .map(|outcome| outcome.entry().map(|entry| entry.seq))
            .collect()
    }

    #[test]
    fn every_kind_of_entry_takes_the_next_seq_and_refusals_take_none() {
        let b = Batch::new();
        let batch = [
            b.entry(b.alice, post("hello")),
            b.entry(b.bob, edit(1, "not mine")),
            b.entry(b.alice, edit(1, "hello!")),
            b.entry(b.bob, react(1, "👍", 20)),
            b.entry(
                b.bob,
                Change::Unreact {
                    target_seq: 1,
                    emoji: "🎉".into(),
                },
            ),
            b.entry(b.alice, edit(99, "nothing there")),
        ];
        let plan = plan(&batch, b.lookup(0, Vec::new())).unwrap();
        assert_eq!(
            seqs(&plan),
            vec![Some(1), None, Some(2), Some(3), None, None]
        );
        assert_eq!(plan.outcomes[1], Appended::Refused(Refusal::NotAuthor));
        assert_eq!(plan.outcomes[4], Appended::Refused(Refusal::NoSuchReaction));
        assert_eq!(
            plan.outcomes[5],
            Appended::Refused(Refusal::NoSuchMessage { seq: 99 })
        );
        assert_eq!(plan.moved_rooms, vec![(b.room, 3)]);
        // The post is delivered as posted, but stored as edited.
        assert_eq!(plan.outcomes[0].entry().unwrap().content(), Some("hello"));
        let stored = plan.inserts[0].message().unwrap();
        assert_eq!(
            (stored.content.as_str(), stored.edited_at),
            ("hello!", Some(T0))
        );
        assert_eq!(plan.inserts.len(), 3);
        assert!(plan.edits.is_empty(), "the edited message is a new one");
        assert_eq!(plan.reactions_added.len(), 1);
        assert_eq!(plan.reactions_added[0].1, 3);
    }

    #[test]
    fn a_deletion_erases_the_message_and_its_edits_and_ends_its_changes() {
        let b = Batch::new();
        let batch = [
            b.entry(b.alice, edit(5, "typo fixed")),
            b.entry(b.bob, react(5, "👍", 20)),
            b.entry(
                b.bob,
                Change::Delete {
                    target_seq: 5,
                    any_author: false,
                },
            ),
            b.entry(
                b.bob,
                Change::Delete {
                    target_seq: 5,
                    any_author: true,
                },
            ),
            b.entry(b.alice, edit(5, "again")),
            b.entry(b.bob, react(5, "🎉", 20)),
            b.entry(
                b.alice,
                Change::Post {
                    content: "re".into(),
                    reply_to: Some(5),
                },
            ),
        ];
        let plan = plan(&batch, b.lookup(7, vec![(5, b.by(b.alice))])).unwrap();
        assert_eq!(
            seqs(&plan),
            vec![Some(8), Some(9), None, Some(10), None, None, None]
        );
        assert_eq!(
            plan.outcomes[2],
            Appended::Refused(Refusal::NotAuthorOrOwner)
        );
        for refused in &plan.outcomes[4..] {
            assert_eq!(refused, &Appended::Refused(Refusal::Deleted { seq: 5 }));
        }
        assert_eq!(plan.deletions, vec![(b.room, 5, T0)]);
        assert!(plan.edits.is_empty(), "erased, not edited");
        assert!(
            plan.reactions_added.is_empty(),
            "a deleted message keeps none"
        );
        // The edit entry is stored erased; its delivery carried the text.
        assert_eq!(plan.inserts[0].content(), Some(""));
        assert_eq!(
            plan.outcomes[0].entry().unwrap().content(),
            Some("typo fixed")
        );
    }

    #[test]
    fn reactions_are_one_per_user_and_emoji_and_bounded_per_message() {
        let b = Batch::new();
        let mut target = b.by(b.alice);
        target.emojis = BTreeSet::from(["👍".to_owned(), "🎉".to_owned()]);
        let mut lookup = b.lookup(3, vec![(3, target)]);
        let mine = ReactionKey {
            room_id: b.room,
            target_seq: 3,
            user_id: b.bob,
            emoji: "👍".into(),
        };
        lookup.reactions.insert(mine.clone(), 2);
        let batch = [
            b.entry(b.bob, react(3, "👍", 2)),
            b.entry(b.bob, react(3, ":rocket:", 2)),
            b.entry(b.alice, react(3, "🎉", 2)),
            b.entry(
                b.bob,
                Change::Unreact {
                    target_seq: 3,
                    emoji: "👍".into(),
                },
            ),
            b.entry(b.bob, react(3, "👍", 2)),
        ];
        let plan = plan(&batch, lookup).unwrap();
        assert_eq!(
            plan.outcomes[0],
            Appended::Unchanged {
                room_id: b.room,
                seq: 2
            }
        );
        assert_eq!(
            plan.outcomes[1],
            Appended::Refused(Refusal::TooManyReactions { max: 2 })
        );
        assert_eq!(seqs(&plan)[2..], [Some(4), Some(5), Some(6)]);
        // Bob's 👍 went and came back: the stored one is replaced by the newer entry's.
        assert_eq!(plan.reactions_removed, vec![mine.clone()]);
        let alices = ReactionKey {
            user_id: b.alice,
            emoji: "🎉".into(),
            ..mine.clone()
        };
        let mut added = plan.reactions_added.clone();
        added.sort_by_key(|(_, seq)| *seq);
        assert_eq!(added, vec![(alices, 4), (mine, 6)]);
    }

    #[test]
    fn the_edit_window_and_replies_check_the_target() {
        let b = Batch::new();
        let mut old = b.by(b.alice);
        old.created_at = T0 - time::Duration::hours(1);
        let window = Change::Edit {
            target_seq: 1,
            content: "late".into(),
            not_before: Some(T0 - time::Duration::minutes(15)),
        };
        let batch = [
            b.entry(b.alice, window),
            b.entry(
                b.bob,
                Change::Post {
                    content: "re".into(),
                    reply_to: Some(1),
                },
            ),
            b.entry(
                b.bob,
                Change::Post {
                    content: "re".into(),
                    reply_to: Some(2),
                },
            ),
        ];
        let plan = plan(&batch, b.lookup(1, vec![(1, old)])).unwrap();
        assert_eq!(
            plan.outcomes[0],
            Appended::Refused(Refusal::EditWindowClosed)
        );
        assert_eq!(
            plan.outcomes[1]
                .entry()
                .unwrap()
                .message()
                .unwrap()
                .reply_to,
            Some(1)
        );
        // Seq 2 is the reply just posted: a reply to a reply is a reply to a message.
        assert_eq!(
            plan.outcomes[2]
                .entry()
                .unwrap()
                .message()
                .unwrap()
                .reply_to,
            Some(2)
        );
    }

    #[test]
    fn wanted_names_each_target_and_reaction_once() {
        let b = Batch::new();
        let batch = [
            b.entry(b.alice, post("plain")),
            b.entry(b.alice, edit(4, "x")),
            b.entry(b.bob, react(4, "👍", 20)),
            b.entry(b.bob, react(4, "👍", 20)),
        ];
        let wanted = wanted(&batch);
        assert_eq!(wanted.targets, vec![(b.room, 4)]);
        assert_eq!(wanted.reactions.len(), 1);
        assert!(crate::room_log::wanted(&batch[..1]).is_empty());
    }

    #[test]
    fn unknown_rooms_and_users_refuse_the_batch() {
        let b = Batch::new();
        let stranger = b.entry(Uuid::new_v4(), post("hi"));
        assert!(plan(&[stranger], b.lookup(0, Vec::new())).is_err());
        let mut elsewhere = b.entry(b.alice, post("hi"));
        elsewhere.room_id = Uuid::new_v4();
        assert!(plan(&[elsewhere], b.lookup(0, Vec::new())).is_err());
    }
}
