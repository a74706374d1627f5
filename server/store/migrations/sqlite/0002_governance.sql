-- Confab SQLite schema, version 2: room governance (issue 5). See the module
-- doc of src/sqlite.rs for the why of each table.

-- When the room terminated; NULL while it lives. Terminated rooms keep
-- their row (ids are never reused, former members may read history).
ALTER TABLE rooms ADD COLUMN terminated_at INTEGER;

-- by_id has no foreign key on purpose: who banned or invited is a record of
-- the past, like events.actor_id, not a reference that must stay valid.
-- The primary key (room_id, user_id) serves "is this user banned here" and
-- the listing filter; the whole table is loaded at start-up.
CREATE TABLE bans (
    room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    by_id   INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;

CREATE TABLE invites (
    room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    by_id   INTEGER NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;

CREATE TABLE join_requests (
    room_id INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    at      INTEGER NOT NULL,
    PRIMARY KEY (room_id, user_id)
) WITHOUT ROWID;

-- Ids are assigned by the server (not AUTOINCREMENT), so a notification can
-- be broadcast live before its batch commits and stored idempotently.
-- room_name/actor_name are copied at creation, like events.actor_name, and
-- room_id/actor_id carry no foreign key (the actor may be the system, 0).
CREATE TABLE notifications (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind       INTEGER NOT NULL CHECK (kind BETWEEN 0 AND 255),
    room_id    INTEGER NOT NULL,
    room_name  TEXT    NOT NULL,
    actor_id   INTEGER NOT NULL,
    actor_name TEXT    NOT NULL,
    at         INTEGER NOT NULL,
    read       INTEGER NOT NULL DEFAULT 0 CHECK (read IN (0, 1))
);

-- A user's list, newest first, paged by id.
CREATE INDEX notifications_by_user ON notifications (user_id, id);
-- The unread badge and the unread-only list touch unread rows only.
CREATE INDEX notifications_unread ON notifications (user_id, id) WHERE read = 0;
-- Housekeeping deletes by age.
CREATE INDEX notifications_by_at ON notifications (at);

-- The highest notification id ever stored, kept when housekeeping deletes
-- the newest rows, so max_notification_id never goes back and the server
-- never reuses an id after a restart. Exactly one row.
CREATE TABLE notification_id_floor (
    one    INTEGER PRIMARY KEY CHECK (one = 1),
    max_id INTEGER NOT NULL
);
INSERT INTO notification_id_floor (one, max_id) VALUES (1, 0);

-- A user's room log: one row per (user, room) they were ever a member of.
-- left_at is NULL (and reason 0) while the user is a member.
CREATE TABLE room_log (
    user_id         INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    room_id         INTEGER NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    first_joined_at INTEGER NOT NULL,
    last_joined_at  INTEGER NOT NULL,
    left_at         INTEGER,
    reason          INTEGER NOT NULL DEFAULT 0 CHECK (reason BETWEEN 0 AND 255),
    PRIMARY KEY (user_id, room_id)
) WITHOUT ROWID;

-- Housekeeping deletes ended associations by age.
CREATE INDEX room_log_by_left_at ON room_log (left_at) WHERE left_at IS NOT NULL;

-- Memberships that exist before this migration start their room log.
INSERT INTO room_log (user_id, room_id, first_joined_at, last_joined_at, left_at, reason)
SELECT user_id, room_id, joined_at, joined_at, NULL, 0 FROM memberships;

-- AUTOINCREMENT: audit ids are increasing and never reused (paging relies
-- on it). No foreign keys: the actor may be the system (0), the room may be
-- absent (login), and an audit trail outlives what it mentions.
CREATE TABLE audit (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        INTEGER NOT NULL,
    actor_id  INTEGER NOT NULL,
    action    TEXT    NOT NULL,
    room_id   INTEGER,
    target_id INTEGER,
    detail    TEXT    NOT NULL
);

-- A room's trail, newest first, paged by id.
CREATE INDEX audit_by_room ON audit (room_id, id) WHERE room_id IS NOT NULL;

-- Housekeeping deletes expired sessions.
CREATE INDEX sessions_by_expiry ON sessions (expires_at);
