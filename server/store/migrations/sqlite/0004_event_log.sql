-- New events land in a small append-only log and are folded into
-- `events` in bulk (server/store/src/sqlite/write.rs, "The event log").
--
-- `events` is clustered by (room_id, seq): a commit that appends one event
-- to each of 100 rooms dirties 100 leaf pages, and SQLite writes every
-- dirty page whole to the WAL at each commit. The log is clustered by
-- arrival (`id`), so a commit's events share a few pages; its key index
-- covers only the rows not yet folded, so it stays a few pages too. A fold
-- moves thousands of rows at once, a page per room.
CREATE TABLE event_log (
    id         INTEGER PRIMARY KEY,
    room_id    INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL CHECK (seq > 0),
    at         INTEGER NOT NULL,
    actor_id   INTEGER NOT NULL,
    actor_name TEXT    NOT NULL,
    kind       INTEGER NOT NULL CHECK (kind BETWEEN 0 AND 255),
    body       BLOB    NOT NULL
);
CREATE UNIQUE INDEX event_log_key ON event_log (room_id, seq);
