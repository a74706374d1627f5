-- Read markers (SET_READ_MARKER, SPEC.md §5.9): per user and room, the seq
-- of the last event the user has read. Only ever raised. A room's unread
-- count is its messages after the marker that others sent (kind 1 only:
-- a deleted message is a tombstone, kind 12), counted from `events` and
-- `event_log` by key range. No foreign keys: a marker of a room the user
-- left is harmless and is what they come back to.
CREATE TABLE read_markers (
    user_id INTEGER NOT NULL,
    room_id INTEGER NOT NULL,
    seq     INTEGER NOT NULL CHECK (seq >= 0),
    PRIMARY KEY (user_id, room_id)
) WITHOUT ROWID;
