-- Palaver's schema for PostgreSQL. A shipped migration is never edited: changes go in V2__…, V3__….
-- Table names are unqualified on purpose: the schema comes from the connection's search_path, so a test can run in a
-- schema of its own (and refinery's history table lands beside the tables it describes).
-- The store tells which uniqueness rule a failed write broke by the constraint names below.

CREATE TABLE users (
    id            uuid        NOT NULL PRIMARY KEY,
    username      text        NOT NULL,
    email         text        NOT NULL,
    password_hash text        NOT NULL,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL
);

-- Usernames and emails are unique ignoring ASCII case, as the protocol compares them. lower() under the "C"
-- collation folds exactly the ASCII letters whatever the database's locale, like SQLite's lower().
-- The username index is created first on purpose: PostgreSQL checks unique indexes in creation order, so a
-- registration repeating both an existing username and email is refused for its username, as in the other engines.
CREATE UNIQUE INDEX users_username_key ON users (lower(username COLLATE "C"));
CREATE UNIQUE INDEX users_email_key ON users (lower(email COLLATE "C"));

CREATE TABLE rooms (
    id            uuid        NOT NULL PRIMARY KEY,
    name          text        NOT NULL,
    -- The name in Unicode lower case, computed by the server: room names may hold any letters ("Café"), and what
    -- lower() folds depends on the database's locale, so an index on lower(name) could let "CAFÉ" and "café" coexist.
    name_key      text        NOT NULL,
    private       boolean     NOT NULL,
    password_hash text,
    owner_id      uuid        NOT NULL REFERENCES users (id),
    created_at    timestamptz NOT NULL,
    -- The seq of the newest message; the next message of the room gets last_seq + 1. Updating it takes the row lock
    -- that serialises writers of one room, which is what keeps seqs gapless.
    last_seq      bigint      NOT NULL DEFAULT 0,
    -- Creation order, to list rooms created in the same microsecond in the order they were stored.
    position      bigint      GENERATED ALWAYS AS IDENTITY
);

CREATE UNIQUE INDEX rooms_name_key ON rooms (name_key);
CREATE INDEX rooms_owner_id_idx ON rooms (owner_id);

CREATE TABLE room_members (
    room_id   uuid        NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   uuid        NOT NULL REFERENCES users (id),
    joined_at timestamptz NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

CREATE INDEX room_members_user_id_idx ON room_members (user_id);

CREATE TABLE messages (
    id            uuid        NOT NULL PRIMARY KEY,
    room_id       uuid        NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    seq           bigint      NOT NULL,
    user_id       uuid        NOT NULL REFERENCES users (id),
    content       text        NOT NULL,
    client_msg_id text,
    created_at    timestamptz NOT NULL,
    -- Serves history: newest first by (room_id, seq DESC), and keyset pages on seq.
    CONSTRAINT messages_room_seq_key UNIQUE (room_id, seq)
);

-- A sender's idempotency key is stored once.
CREATE UNIQUE INDEX messages_client_msg_id_key ON messages (user_id, client_msg_id) WHERE client_msg_id IS NOT NULL;

-- No foreign key on user_id: recording what happened must not depend on the account existing.
CREATE TABLE audit_log (
    id         bigserial   NOT NULL PRIMARY KEY,
    at         timestamptz NOT NULL,
    event      text        NOT NULL,
    user_id    uuid,
    username   text,
    ip         text,
    user_agent text,
    outcome    text        NOT NULL,
    details    jsonb       NOT NULL
);

CREATE INDEX audit_log_at_idx ON audit_log (at);

CREATE TABLE revoked_tokens (
    jti        text        NOT NULL PRIMARY KEY,
    user_id    uuid        NOT NULL REFERENCES users (id),
    expires_at timestamptz NOT NULL
);

CREATE INDEX revoked_tokens_expires_at_idx ON revoked_tokens (expires_at);
