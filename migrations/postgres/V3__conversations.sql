-- Conversations: every change to a room's messages is an entry of the room's log, taking the room's next seq like a
-- message does, so a client resuming with after_seq replays edits, deletions and reactions in order.
-- kind: 'message' (a post), 'edit' (new content for target_seq), 'delete' (target_seq deleted), 'react' and
-- 'unreact' (the entry's user added or removed emoji on target_seq). A message row holds its current state: edited
-- content with edited_at, or, once deleted, empty content with deleted_at (the text is erased, not hidden).
ALTER TABLE messages
    ADD COLUMN kind       text NOT NULL DEFAULT 'message'
        CONSTRAINT messages_kind_check CHECK (kind IN ('message', 'edit', 'delete', 'react', 'unreact')),
    ADD COLUMN target_seq bigint,
    ADD COLUMN reply_to   bigint,
    ADD COLUMN emoji      text,
    ADD COLUMN edited_at  timestamptz,
    ADD COLUMN deleted_at timestamptz,
    ADD CONSTRAINT messages_target_check CHECK ((kind = 'message') = (target_seq IS NULL)),
    ADD CONSTRAINT messages_emoji_check CHECK ((kind IN ('react', 'unreact')) = (emoji IS NOT NULL));

-- Threads and reply counts.
CREATE INDEX messages_reply_to_idx ON messages (room_id, reply_to) WHERE reply_to IS NOT NULL;
-- Erasing a deleted message's edits.
CREATE INDEX messages_target_seq_idx ON messages (room_id, target_seq) WHERE target_seq IS NOT NULL;

-- The reactions present now (the log keeps their history): one per (message, emoji, user), with the seq of the
-- entry that added it.
CREATE TABLE reactions (
    room_id    uuid   NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    target_seq bigint NOT NULL,
    emoji      text   NOT NULL,
    user_id    uuid   NOT NULL REFERENCES users (id),
    seq        bigint NOT NULL,
    PRIMARY KEY (room_id, target_seq, emoji, user_id)
);
