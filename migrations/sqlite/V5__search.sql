-- Search: an FTS5 index of the current text of every message that is not deleted, kept by triggers, so an edit is
-- searched as edited and a deletion leaves nothing in the index. FTS5 rows are numbered by message_search's INTEGER
-- PRIMARY KEY, which (unlike the rowid of messages, whose key is text) survives a VACUUM.
CREATE TABLE message_search (
    search_id INTEGER PRIMARY KEY,
    room_id   TEXT    NOT NULL,
    seq       INTEGER NOT NULL,
    UNIQUE (room_id, seq)
) STRICT;

CREATE VIRTUAL TABLE messages_fts USING fts5(content, tokenize = 'unicode61 remove_diacritics 0');

INSERT INTO message_search (room_id, seq)
    SELECT room_id, seq FROM messages WHERE kind = 'message' AND deleted_at IS NULL ORDER BY room_id, seq;
INSERT INTO messages_fts (rowid, content)
    SELECT s.search_id, m.content FROM message_search AS s JOIN messages AS m ON m.room_id = s.room_id AND m.seq = s.seq;

CREATE TRIGGER messages_search_insert AFTER INSERT ON messages
WHEN new.kind = 'message' AND new.deleted_at IS NULL
BEGIN
    INSERT INTO message_search (room_id, seq) VALUES (new.room_id, new.seq);
    INSERT INTO messages_fts (rowid, content) VALUES (last_insert_rowid(), new.content);
END;

CREATE TRIGGER messages_search_update AFTER UPDATE OF content, deleted_at ON messages
WHEN new.kind = 'message'
BEGIN
    DELETE FROM messages_fts
        WHERE rowid = (SELECT search_id FROM message_search WHERE room_id = old.room_id AND seq = old.seq);
    INSERT INTO messages_fts (rowid, content)
        SELECT search_id, new.content FROM message_search
        WHERE room_id = new.room_id AND seq = new.seq AND new.deleted_at IS NULL;
END;

CREATE TRIGGER messages_search_delete AFTER DELETE ON messages
WHEN old.kind = 'message'
BEGIN
    DELETE FROM messages_fts
        WHERE rowid = (SELECT search_id FROM message_search WHERE room_id = old.room_id AND seq = old.seq);
    DELETE FROM message_search WHERE room_id = old.room_id AND seq = old.seq;
END;
