-- Roles per room: exactly one owner (the room's owner_id), admins, moderators and members. Existing owners get their
-- role; everyone else is a member.
ALTER TABLE room_members ADD COLUMN role text NOT NULL DEFAULT 'member'
    CONSTRAINT room_members_role_check CHECK (role IN ('owner', 'admin', 'moderator', 'member'));

UPDATE room_members rm SET role = 'owner'
FROM rooms r WHERE r.id = rm.room_id AND r.owner_id = rm.user_id AND r.dm_key IS NULL;
