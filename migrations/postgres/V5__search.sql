-- Search: the current text of every message that is not deleted, as a tsvector kept by the database itself (a
-- generated column), so an edit is searched as edited and a deletion leaves nothing in the index. The 'simple'
-- configuration lower-cases words without stemming or stop words, whatever the language.
ALTER TABLE messages ADD COLUMN search tsvector GENERATED ALWAYS AS (
    CASE WHEN kind = 'message' AND deleted_at IS NULL THEN to_tsvector('simple', content) END
) STORED;

CREATE INDEX messages_search_idx ON messages USING GIN (search);
