-- WebSocket tickets are signed, not stored; a ticket's use is recorded here, which makes it single use. A row is
-- needed only until the ticket expires (it is refused for that then), and is purged after.
CREATE TABLE used_ws_tickets (
    id         TEXT    NOT NULL PRIMARY KEY,
    expires_at INTEGER NOT NULL
) STRICT;

CREATE INDEX used_ws_tickets_expires_at_idx ON used_ws_tickets (expires_at);
