-- Conversations: every change to a room's messages is an entry of the room's log, taking the room's next seq like a
-- message does, so a client resuming with after_seq replays edits, deletions and reactions in order.
-- kind: 'message' (a post), 'edit' (new content for target_seq), 'delete' (target_seq deleted), 'react' and
-- 'unreact' (the entry's user added or removed emoji on target_seq). A message row holds its current state: edited
-- content with edited_at, or, once deleted, empty content with deleted_at (the text is erased, not hidden).
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'message'
    CHECK (kind IN ('message', 'edit', 'delete', 'react', 'unreact'));
ALTER TABLE messages ADD COLUMN target_seq INTEGER;
ALTER TABLE messages ADD COLUMN reply_to INTEGER;
ALTER TABLE messages ADD COLUMN emoji TEXT;
ALTER TABLE messages ADD COLUMN edited_at INTEGER;
ALTER TABLE messages ADD COLUMN deleted_at INTEGER;

-- Threads and reply counts.
CREATE INDEX messages_reply_to_idx ON messages (room_id, reply_to) WHERE reply_to IS NOT NULL;
-- Erasing a deleted message's edits.
CREATE INDEX messages_target_seq_idx ON messages (room_id, target_seq) WHERE target_seq IS NOT NULL;

-- The reactions present now (the log keeps their history): one per (message, emoji, user), with the seq of the
-- entry that added it.
CREATE TABLE reactions (
    room_id    TEXT    NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    target_seq INTEGER NOT NULL,
    emoji      TEXT    NOT NULL,
    user_id    TEXT    NOT NULL REFERENCES users (id),
    seq        INTEGER NOT NULL,
    PRIMARY KEY (room_id, target_seq, emoji, user_id)
) STRICT;
