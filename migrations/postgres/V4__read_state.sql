-- Read state: each member's read point in the room, the seq they have read through. Unread counts are computed from
-- the log against it (the messages by others after it, not deleted), never kept as a counter, so they cannot drift.
-- A membership starts read through the room's newest seq at the time it was made (set by the store).
ALTER TABLE room_members ADD COLUMN last_read_seq bigint NOT NULL DEFAULT 0;
