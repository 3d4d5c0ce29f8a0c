-- Palaver's schema for SQLite.
-- Ids are UUIDs as hyphenated lowercase TEXT; times are INTEGER microseconds since the Unix epoch (UTC), so that
-- ordering and range filters work on them; booleans are INTEGER 0/1; audit details are JSON TEXT.
-- The writer relies on the index and column names below to tell which uniqueness rule a failed insert broke.

CREATE TABLE users (
    id            TEXT    NOT NULL PRIMARY KEY,
    username      TEXT    NOT NULL,
    email         TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
) STRICT;

-- Usernames and emails are unique ignoring ASCII case: SQLite's lower() folds exactly the ASCII letters, as the
-- protocol's comparison does (usernames are ASCII by validation).
CREATE UNIQUE INDEX users_username_key ON users (lower(username));
CREATE UNIQUE INDEX users_email_key ON users (lower(email));

CREATE TABLE rooms (
    id            TEXT    NOT NULL PRIMARY KEY,
    name          TEXT    NOT NULL,
    -- The name in Unicode lower case, computed by the server: room names may hold any letters ("Café"), and
    -- SQLite's built-in lower() folds only ASCII, so an index on lower(name) would let "CAFÉ" and "café" coexist.
    name_key      TEXT    NOT NULL,
    private       INTEGER NOT NULL CHECK (private IN (0, 1)),
    password_hash TEXT,
    owner_id      TEXT    NOT NULL REFERENCES users (id),
    created_at    INTEGER NOT NULL,
    -- The seq of the newest message; the next message of the room gets last_seq + 1.
    last_seq      INTEGER NOT NULL DEFAULT 0
) STRICT;

CREATE UNIQUE INDEX rooms_name_key ON rooms (name_key);
CREATE INDEX rooms_owner_id_idx ON rooms (owner_id);

CREATE TABLE room_members (
    room_id   TEXT    NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   TEXT    NOT NULL REFERENCES users (id),
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
) STRICT;

CREATE INDEX room_members_user_id_idx ON room_members (user_id);

CREATE TABLE messages (
    id            TEXT    NOT NULL PRIMARY KEY,
    room_id       TEXT    NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq           INTEGER NOT NULL,
    user_id       TEXT    NOT NULL REFERENCES users (id),
    content       TEXT    NOT NULL,
    client_msg_id TEXT,
    created_at    INTEGER NOT NULL,
    -- Serves history: newest first by (room_id, seq DESC), and keyset pages on seq.
    UNIQUE (room_id, seq)
) STRICT;

-- A sender's idempotency key is stored once.
CREATE UNIQUE INDEX messages_client_msg_id_key ON messages (user_id, client_msg_id) WHERE client_msg_id IS NOT NULL;

-- No foreign key on user_id: recording what happened must not depend on the account still existing.
CREATE TABLE audit_log (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    at         INTEGER NOT NULL,
    event      TEXT    NOT NULL,
    user_id    TEXT,
    username   TEXT,
    ip         TEXT,
    user_agent TEXT,
    outcome    TEXT    NOT NULL,
    details    TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_log_at_idx ON audit_log (at);

CREATE TABLE revoked_tokens (
    jti        TEXT    NOT NULL PRIMARY KEY,
    user_id    TEXT    NOT NULL REFERENCES users (id),
    expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX revoked_tokens_expires_at_idx ON revoked_tokens (expires_at);
