-- WebSocket tickets are signed, not stored, so any node can check one; a ticket's use is recorded here, which makes
-- it single use across the cluster. A row is needed only until the ticket expires (it is refused for that then), and
-- is purged after.
CREATE TABLE used_ws_tickets (
    id         text        NOT NULL PRIMARY KEY,
    expires_at timestamptz NOT NULL
);

CREATE INDEX used_ws_tickets_expires_at_idx ON used_ws_tickets (expires_at);
