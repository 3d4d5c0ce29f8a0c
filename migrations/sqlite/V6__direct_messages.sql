-- Direct messages: the one room between two users. dm_key names the pair (the two user ids, lower first, joined by
-- ':'), so opening it again finds the same room; a room without dm_key is an ordinary room.
ALTER TABLE rooms ADD COLUMN dm_key TEXT;
CREATE UNIQUE INDEX rooms_dm_key_key ON rooms (dm_key) WHERE dm_key IS NOT NULL;

-- Who refuses direct messages from whom.
CREATE TABLE blocks (
    blocker_id TEXT    NOT NULL REFERENCES users (id),
    blocked_id TEXT    NOT NULL REFERENCES users (id),
    created_at INTEGER NOT NULL,
    PRIMARY KEY (blocker_id, blocked_id)
) STRICT;
