-- Lazy deletion from the event log (server/store/src/sqlite/write.rs,
-- "The event log"). A fold copies a slice of the log into `events` and
-- raises its rooms' bounds here in the same transaction, but leaves the
-- log rows where they are: deleting a room's slice from a log clustered
-- by arrival dirtied log pages all over. Reads take a log row only above
-- its room's bound (`common::sql::EVENTS_AND_LOG`); folded rows leave the
-- log later in cheap ranges of the oldest ids, or all at once.
--
-- Invariant: for every room, the log's rows with seq <= `seq` here are in
-- `events` (copies), and its rows above it are not.
--
-- Version 14: 11-13 are Postgres' (cluster) and stay unused here, so a
-- version names one change in either backend.
CREATE TABLE event_log_folded (
    room_id INTEGER PRIMARY KEY,
    seq     INTEGER NOT NULL
);
