-- Search indexing leaves the commit path. FTS5 pays a fixed cost per transaction, which, paid in every group commit,
-- was most of what indexing cost a message. Now a new message is only queued here (one small insert in its commit),
-- and the store moves the queue into message_search and messages_fts in large batches: in the background, a few
-- times a second, and before every search, so a search still sees every committed message. Edits and deletions keep
-- their triggers (V5); a message edited or deleted while queued is indexed in its state at indexing time.
CREATE TABLE search_pending (
    pending_id INTEGER PRIMARY KEY,
    room_id    TEXT    NOT NULL,
    seq        INTEGER NOT NULL
) STRICT;

DROP TRIGGER messages_search_insert;

CREATE TRIGGER messages_search_queue AFTER INSERT ON messages
WHEN new.kind = 'message' AND new.deleted_at IS NULL
BEGIN
    INSERT INTO search_pending (room_id, seq) VALUES (new.room_id, new.seq);
END;
