-- Confab SQLite schema, version 1. See the module doc of src/sqlite.rs for
-- the why of each table. Integers are SQLite's 64-bit signed INTEGER; the
-- store converts its u64 ids/timestamps with checked conversions.

-- AUTOINCREMENT so that a user id is never reused, even if the newest
-- account were ever removed (plain INTEGER PRIMARY KEY reuses max(rowid)+1).
CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    username      TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,
    created_at    INTEGER NOT NULL
);

-- Keyed by SHA-256(token): the token itself is never stored.
CREATE TABLE sessions (
    token_hash BLOB    PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) WITHOUT ROWID;

-- Room ids are assigned by the server (shards), hence no AUTOINCREMENT.
-- name_folded/topic_folded hold the Unicode-lowercased name and topic
-- (Rust's str::to_lowercase): SQLite's own lower() folds ASCII only, and
-- list_rooms promises a case-insensitive search. Whoever writes name or
-- topic writes the folded copy in the same statement.
CREATE TABLE rooms (
    id           INTEGER PRIMARY KEY,
    name         TEXT    NOT NULL,
    topic        TEXT    NOT NULL,
    name_folded  TEXT    NOT NULL,
    topic_folded TEXT    NOT NULL,
    visibility   INTEGER NOT NULL CHECK (visibility IN (0, 1)),
    owner_id     INTEGER NOT NULL REFERENCES users(id),
    created_at   INTEGER NOT NULL,
    last_seq     INTEGER NOT NULL DEFAULT 0
);

-- The primary key (room_id, user_id) serves "members of a room" and the
-- member_count subquery; the user_id index serves "rooms of a user" and the
-- visibility check in list_rooms.
CREATE TABLE memberships (
    room_id   INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id   INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role      INTEGER NOT NULL CHECK (role IN (0, 1, 2)),
    joined_at INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;

CREATE INDEX memberships_by_user ON memberships (user_id, room_id);

-- WITHOUT ROWID: the table *is* the (room_id, seq) B-tree, so history
-- ("seq < before ORDER BY seq DESC LIMIT n") and the start-up tail load are
-- range scans on the primary key with no separate index. actor_id has no
-- foreign key on purpose: actor_name is denormalised so history reads need
-- no join, and a system actor need not be a registered user.
CREATE TABLE events (
    room_id    INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL CHECK (seq > 0),
    at         INTEGER NOT NULL,
    actor_id   INTEGER NOT NULL,
    actor_name TEXT    NOT NULL,
    kind       INTEGER NOT NULL CHECK (kind BETWEEN 0 AND 255),
    body       BLOB    NOT NULL,
    PRIMARY KEY (room_id, seq)
) WITHOUT ROWID;
