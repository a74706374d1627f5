-- Avatars (SPEC.md §5.2.5, §13.6): an avatar is an uploaded image kept like
-- any other file (its bytes once per content hash, a row in `files`), marked
-- `avatar`. It belongs to no room (`room_id` 0, which no room has) and no
-- message ever references it; its uploader is the user whose avatar it is,
-- and `users.avatar_file` (0008) names the one in use.
--
-- Setting an avatar inserts its row, then points `users.avatar_file` at it
-- and marks the user's other avatars deleted in one account write; clearing
-- one does the latter alone. Housekeeping removes the bytes of deleted
-- files as for any file, and marks deleted an avatar row older than a day
-- that is not its user's avatar (an upload whose account write never
-- happened).
ALTER TABLE files ADD COLUMN avatar boolean NOT NULL DEFAULT false
    CHECK (NOT avatar OR (room_id = 0 AND message_seq IS NULL));

-- A user's avatars (the ones to mark deleted when it changes).
CREATE INDEX files_avatars ON files (uploader_id) WHERE avatar;
