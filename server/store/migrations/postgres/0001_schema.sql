-- Confab Postgres schema, version 1. The same tables, keys and meaning as
-- the SQLite schema (migrations/sqlite/, versions 1 and 2); see the module
-- doc of src/postgres.rs for what differs and why. Ids and timestamps are
-- bigint (the store converts its u64 values with checked conversions);
-- codes (role, visibility, kind, reason) are smallint.

-- GENERATED ALWAYS AS IDENTITY: ids come from a sequence and are never
-- reused.
CREATE TABLE users (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    username      text   NOT NULL UNIQUE,
    password_hash text   NOT NULL,
    created_at    bigint NOT NULL
);

-- Keyed by SHA-256(token): the token itself is never stored.
CREATE TABLE sessions (
    token_hash bytea  PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id    bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at bigint NOT NULL,
    expires_at bigint NOT NULL
);

-- Housekeeping deletes expired sessions.
CREATE INDEX sessions_by_expiry ON sessions (expires_at);

-- Room ids are assigned by the server (shards). name_folded/topic_folded
-- hold the name and topic lowercased by Rust's str::to_lowercase, exactly as
-- in SQLite, so that both backends answer a search identically whatever
-- the database's collation or ctype (Postgres' lower() depends on them).
-- terminated_at is NULL while the room lives.
CREATE TABLE rooms (
    id            bigint   PRIMARY KEY,
    name          text     NOT NULL,
    topic         text     NOT NULL,
    name_folded   text     NOT NULL,
    topic_folded  text     NOT NULL,
    visibility    smallint NOT NULL CHECK (visibility IN (0, 1)),
    owner_id      bigint   NOT NULL REFERENCES users(id),
    created_at    bigint   NOT NULL,
    last_seq      bigint   NOT NULL DEFAULT 0,
    terminated_at bigint
);

-- The primary key (room_id, user_id) serves "members of a room" and the
-- member counts; memberships_by_user serves "rooms of a user" and the
-- visibility check of the room search.
CREATE TABLE memberships (
    room_id   bigint   NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id   bigint   NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role      smallint NOT NULL CHECK (role IN (0, 1, 2)),
    joined_at bigint   NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

CREATE INDEX memberships_by_user ON memberships (user_id, room_id);

-- History pages and the start-up tail are backward range scans of the
-- primary key (room_id, seq). actor_name is denormalised so history needs no
-- join, and a system actor need not be a registered user. No foreign key
-- to rooms, unlike SQLite: in Postgres a foreign key is a trigger run per
-- inserted row, and this is the one table written at message rate (an
-- INSERT of 1 000-row batches ran 1.8x slower with it). The batch function
-- checks instead, once per room per batch, that every event's room exists
-- (0002_apply_batch.sql), so a shard bug still fails the batch.
CREATE TABLE events (
    room_id    bigint   NOT NULL,
    seq        bigint   NOT NULL CHECK (seq > 0),
    at         bigint   NOT NULL,
    actor_id   bigint   NOT NULL,
    actor_name text     NOT NULL,
    kind       smallint NOT NULL CHECK (kind BETWEEN 0 AND 255),
    body       bytea    NOT NULL,
    PRIMARY KEY (room_id, seq)
);

-- Governance (issue 5). by_id carries no foreign key: who banned or invited
-- is a record of the past, like events.actor_id.
CREATE TABLE bans (
    room_id bigint NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    by_id   bigint NOT NULL,
    at      bigint NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

CREATE TABLE invites (
    room_id bigint NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    by_id   bigint NOT NULL,
    at      bigint NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

CREATE TABLE join_requests (
    room_id bigint NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    user_id bigint NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    at      bigint NOT NULL,
    PRIMARY KEY (room_id, user_id)
);

-- Ids are assigned by the server, so the live notification and the stored
-- one share their id and re-applying a batch stores nothing twice.
CREATE TABLE notifications (
    id         bigint   PRIMARY KEY,
    user_id    bigint   NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind       smallint NOT NULL CHECK (kind BETWEEN 0 AND 255),
    room_id    bigint   NOT NULL,
    room_name  text     NOT NULL,
    actor_id   bigint   NOT NULL,
    actor_name text     NOT NULL,
    at         bigint   NOT NULL,
    read       boolean  NOT NULL DEFAULT false
);

CREATE INDEX notifications_by_user ON notifications (user_id, id);
CREATE INDEX notifications_unread ON notifications (user_id, id) WHERE NOT read;
CREATE INDEX notifications_by_at ON notifications (at);

-- The highest notification id ever stored, kept when housekeeping deletes
-- the newest rows, so that ids are never reused after a restart.
CREATE TABLE notification_id_floor (
    one    smallint PRIMARY KEY CHECK (one = 1),
    max_id bigint   NOT NULL
);
INSERT INTO notification_id_floor (one, max_id) VALUES (1, 0);

-- A user's room log; left_at is NULL (and reason 0) while a member.
CREATE TABLE room_log (
    user_id         bigint   NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    room_id         bigint   NOT NULL REFERENCES rooms(id) ON DELETE CASCADE,
    first_joined_at bigint   NOT NULL,
    last_joined_at  bigint   NOT NULL,
    left_at         bigint,
    reason          smallint NOT NULL DEFAULT 0 CHECK (reason BETWEEN 0 AND 255),
    PRIMARY KEY (user_id, room_id)
);

CREATE INDEX room_log_by_left_at ON room_log (left_at) WHERE left_at IS NOT NULL;

-- Identity ids increase in insertion order and are never reused (paging
-- relies on it). No foreign keys: the actor may be the system (0), the
-- room may be absent (login), and a trail outlives what it mentions.
CREATE TABLE audit (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at        bigint NOT NULL,
    actor_id  bigint NOT NULL,
    action    text   NOT NULL,
    room_id   bigint,
    target_id bigint,
    detail    text   NOT NULL
);

CREATE INDEX audit_by_room ON audit (room_id, id) WHERE room_id IS NOT NULL;
