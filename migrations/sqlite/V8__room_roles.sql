-- Roles per room: exactly one owner (the room's owner_id), admins, moderators and members. Existing owners get their
-- role; everyone else is a member.
ALTER TABLE room_members ADD COLUMN role TEXT NOT NULL DEFAULT 'member'
    CHECK (role IN ('owner', 'admin', 'moderator', 'member'));

UPDATE room_members SET role = 'owner'
WHERE EXISTS (
    SELECT 1 FROM rooms AS r
    WHERE r.id = room_members.room_id AND r.owner_id = room_members.user_id AND r.dm_key IS NULL
);
