//! The statements both backends run, with `$N` placeholders (see the
//! module doc of `common` for why SQLite binds them too). Public, but
//! hidden, so that `examples/explain.rs` shows the plans of exactly what
//! the store runs (through `confab_store::postgres::sql`).
//!
//! The plans they are written for (ARCHITECTURE.md, "Queries and
//! indexes"): history is a backward range scan of the `(room_id, seq)`
//! primary key, stopping after the page; memberships by user use
//! `memberships_by_user (user_id, room_id)`; a user's notifications and a
//! room's audit trail are index ranges on `(user_id, id)` and
//! `(room_id, id)`, bounded by `id <= $2` (see `max_below`) rather than a
//! special case for "from the newest".

// ---- accounts and sessions ------------------------------------------------

/// `$1` username, `$2` password hash, `$3` now. Returns `id`.
pub const CREATE_USER: &str = "INSERT INTO users (username, password_hash, created_at) \
     VALUES ($1, $2, $3) RETURNING id";

/// [`CREATE_USER`] that yields no row when the username is taken (inside
/// a transaction of several writes, where an error would abort them all).
pub const CREATE_USER_UNLESS_TAKEN: &str = "INSERT INTO users (username, password_hash, \
     created_at) VALUES ($1, $2, $3) ON CONFLICT (username) DO NOTHING RETURNING id";

/// `$1` username.
pub const USER_BY_NAME: &str =
    "SELECT id, username, password_hash, created_at FROM users WHERE username = $1";

/// `$1` user id.
pub const USER_BY_ID: &str =
    "SELECT id, username, password_hash, created_at FROM users WHERE id = $1";

/// `$1` token hash, `$2` user, `$3` now, `$4` expiry.
pub const CREATE_SESSION: &str = "INSERT INTO sessions (token_hash, user_id, created_at, \
     expires_at) VALUES ($1, $2, $3, $4)";

/// The first session of an account created in the same transaction:
/// `$1` token hash, `$2` username, `$3` created_at, `$4` expires_at.
pub const CREATE_SESSION_BY_NAME: &str = "INSERT INTO sessions (token_hash, user_id, \
     created_at, expires_at) SELECT $1, id, $3, $4 FROM users WHERE username = $2";

/// `$1` token hash, `$2` now.
pub const SESSION_USER: &str = "SELECT u.id, u.username, u.password_hash, u.created_at \
     FROM sessions s JOIN users u ON u.id = s.user_id \
     WHERE s.token_hash = $1 AND s.expires_at > $2";

/// `$1` token hash.
pub const DELETE_SESSION: &str = "DELETE FROM sessions WHERE token_hash = $1";

/// `$1` user, `$2` new password hash. Returns `id` if the user exists.
pub const SET_PASSWORD: &str = "UPDATE users SET password_hash = $2 WHERE id = $1 RETURNING id";

/// After [`SET_PASSWORD`]: every session of `$1` but `$2`'s.
pub const DELETE_OTHER_SESSIONS: &str =
    "DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2";

/// `$1` user, `$2` display name, `$3` bio, `$4` email ('' for none).
/// Returns `id` if the user exists.
pub const SET_PROFILE: &str = "UPDATE users SET display_name = $2, bio = $3, email = $4 \
     WHERE id = $1 RETURNING id";

/// `$1` user id.
pub const PROFILE: &str = "SELECT id, username, display_name, bio, email, avatar_file \
     FROM users WHERE id = $1";

// ---- start-up loads -------------------------------------------------------

pub const LOAD_MEMBERS: &str = "SELECT m.room_id, m.user_id, u.username, m.role, m.joined_at \
     FROM memberships m JOIN users u ON u.id = m.user_id \
     ORDER BY m.room_id, m.joined_at, m.user_id";

/// Bans, invitations and join requests are alike: `(room_id, user_id)`
/// rows, loaded with the user's name, ordered by room, then `$order`.
macro_rules! pending {
    ($columns:literal, $table:literal, $order:literal) => {
        concat!(
            "SELECT t.room_id, t.user_id, u.username, ",
            $columns,
            " FROM ",
            $table,
            " t JOIN users u ON u.id = t.user_id ORDER BY t.room_id, ",
            $order
        )
    };
}

pub const LOAD_BANS: &str = pending!("t.by_id, t.at", "bans", "t.user_id");
pub const LOAD_INVITES: &str = pending!("t.by_id, t.at", "invites", "t.user_id");
/// Oldest first per room.
pub const LOAD_JOIN_REQUESTS: &str = pending!("t.at", "join_requests", "t.at, t.user_id");

/// The highest notification id ever stored: the floor remembers ids that
/// housekeeping has since deleted. Returns `id`.
pub const MAX_NOTIFICATION_ID: &str = "SELECT coalesce(max(m), 0) AS id FROM ( \
         SELECT max_id AS m FROM notification_id_floor WHERE one = 1 \
         UNION ALL SELECT max(id) FROM notifications) AS ids";

// ---- rooms and history ----------------------------------------------------

/// The statements that read events or a room's last sequence number,
/// which depend on where events are stored: in `events` alone (Postgres),
/// or in `events` and the not-yet-folded `event_log` (SQLite; see its
/// migration 0004). A backend names its set as `Backend::ROOM_SQL`.
#[derive(Debug)]
pub struct RoomSql {
    /// Every room, by id, with its last seq (start-up).
    pub load_rooms: &'static str,
    /// [`list_rooms!`]: rooms whose folded name or topic contains `$2`.
    pub list_rooms: &'static str,
    /// [`list_rooms!`]: rooms whose folded name is `$2`.
    pub list_rooms_named: &'static str,
    /// `$1` user's rooms, ordered by `m.room_id` (= `r.id`), the order of
    /// `memberships_by_user`: no sort.
    pub rooms_of_user: &'static str,
    /// `$1` user's room log, most recently joined first, rooms as they are
    /// now.
    pub room_log: &'static str,
    /// `$1` room, `$2` highest seq wanted (inclusive), `$3` limit; newest
    /// first.
    pub history: &'static str,
    /// `$1` user's rooms as [`RoomSql::rooms_of_user`] gives them, each
    /// with the user's `read_seq` and its `unread` count (MY_ROOMS). The
    /// unread count is the room's messages after the marker that someone
    /// else sent: kind 1 = `event_kind::MESSAGE` (a deleted message is a
    /// tombstone, kind 12), a key range scan of `(room_id, seq)` from the
    /// marker, so it costs what is unread.
    pub my_rooms: &'static str,
    /// `$1` user's `read_seq` in room `$2` and the room's `unread` count.
    pub room_unread: &'static str,
    /// Marks deleted every live file whose message is a tombstone (kind
    /// 12 = `event_kind::MESSAGE_DELETED`'s stored form): housekeeping's
    /// catch of a delete whose files were not marked at once.
    pub expire_files_of_deleted: &'static str,
}

/// The rooms viewer `$1` may see whose `$match` clause holds (on `$2`),
/// never a direct room (SPEC.md §5.3.7: the directory lists no direct
/// room; their `direct_with` columns are so always NULL),
/// with the total, paged by `$3` limit and `$4` offset. One statement,
/// hence one snapshot: `total` matches the page. The page is LEFT JOINed
/// so that the total comes back (with NULL room columns) even when the
/// page is empty. `r.visibility = 0` is `Visibility::Public.code()` (a unit
/// test holds that). On Postgres the visibility check is one hashed
/// subplan of the viewer's memberships, the ban check an anti-join on
/// `bans`' key, and the `LIKE`s use the `pg_trgm` indexes where migration
/// 0003 could create them; on SQLite it is a scan of `rooms`.
macro_rules! list_rooms {
    ($last_seq:literal, $match:literal) => {
        concat!(
            "WITH matches AS ( \
         SELECT r.id, r.name, r.topic, r.visibility, r.owner_id, r.created_at, ",
            $last_seq,
            ", CAST(NULL AS BIGINT) AS direct_with, CAST(NULL AS TEXT) AS direct_with_name \
         FROM rooms r \
         WHERE r.terminated_at IS NULL AND r.direct_low IS NULL \
           AND (r.visibility = 0 OR EXISTS (SELECT 1 FROM memberships m \
                WHERE m.room_id = r.id AND m.user_id = $1)) \
           AND NOT EXISTS (SELECT 1 FROM bans b \
                WHERE b.room_id = r.id AND b.user_id = $1) \
           AND ",
            $match,
            ") \
     SELECT t.total, p.* \
     FROM (SELECT count(*) AS total FROM matches) t \
     LEFT JOIN ( \
         SELECT x.*, \
                (SELECT count(*) FROM memberships c WHERE c.room_id = x.id) AS member_count \
         FROM matches x ORDER BY x.id LIMIT $3 OFFSET $4) p ON true \
     ORDER BY p.id"
        )
    };
}

/// The other user of direct room `r` as viewer `$1` sees it, and their
/// name (`direct_with`, `direct_with_name`): both NULL for any other room.
macro_rules! direct_with {
    () => {
        "CASE WHEN r.direct_low = $1 THEN r.direct_high ELSE r.direct_low END AS direct_with, \
         (SELECT u.username FROM users u WHERE u.id = \
             CASE WHEN r.direct_low = $1 THEN r.direct_high ELSE r.direct_low END) \
             AS direct_with_name"
    };
}

/// A [`RoomSql`] whose last seq is `$last_seq` (an expression on room `r`
/// named `last_seq`) and whose history is `$history`.
macro_rules! room_sql {
    ($last_seq:literal, $history:expr, $unread:literal, $tombstone:literal) => {
        RoomSql {
            load_rooms: concat!(
                "SELECT r.id, r.name, r.topic, r.visibility, r.owner_id, r.created_at, ",
                $last_seq,
                ", r.terminated_at, r.direct_low, r.direct_high, \
                 (SELECT u.username FROM users u WHERE u.id = r.direct_low) AS direct_low_name, \
                 (SELECT u.username FROM users u WHERE u.id = r.direct_high) AS direct_high_name \
                 FROM rooms r ORDER BY r.id"
            ),
            // `$2` is a `LIKE` pattern (`search::like_contains_pattern`:
            // escaped with `!`, which needs no quoting in either dialect).
            list_rooms: list_rooms!(
                $last_seq,
                "(r.name_folded LIKE $2 ESCAPE '!' OR r.topic_folded LIKE $2 ESCAPE '!')"
            ),
            // `$2` as `search::folded_name` gives it.
            list_rooms_named: list_rooms!($last_seq, "r.name_folded = $2"),
            rooms_of_user: concat!(
                "SELECT r.id, r.name, r.topic, r.visibility, r.owner_id, r.created_at, ",
                $last_seq,
                ", (SELECT count(*) FROM memberships c WHERE c.room_id = r.id) AS member_count, ",
                direct_with!(),
                " FROM memberships m JOIN rooms r ON r.id = m.room_id \
                 WHERE m.user_id = $1 \
                 ORDER BY m.room_id"
            ),
            room_log: concat!(
                "SELECT r.id, r.name, r.topic, r.visibility, r.owner_id, r.created_at, ",
                $last_seq,
                ", r.terminated_at, \
                 (SELECT count(*) FROM memberships c WHERE c.room_id = r.id) AS member_count, \
                 l.first_joined_at, l.last_joined_at, l.left_at, l.reason, ",
                direct_with!(),
                " FROM room_log l JOIN rooms r ON r.id = l.room_id \
                 WHERE l.user_id = $1 \
                 ORDER BY l.last_joined_at DESC, l.room_id DESC"
            ),
            history: $history,
            my_rooms: concat!(
                "SELECT r.id, r.name, r.topic, r.visibility, r.owner_id, r.created_at, ",
                $last_seq,
                ", (SELECT count(*) FROM memberships c WHERE c.room_id = r.id) AS member_count, \
                 k.s AS read_seq, ",
                $unread,
                " AS unread, ",
                direct_with!(),
                " \
                 FROM (SELECT m.room_id, m.user_id, coalesce(x.seq, 0) AS s \
                       FROM memberships m LEFT JOIN read_markers x \
                         ON x.user_id = m.user_id AND x.room_id = m.room_id \
                       WHERE m.user_id = $1) k \
                 JOIN rooms r ON r.id = k.room_id \
                 ORDER BY k.room_id"
            ),
            room_unread: concat!(
                "SELECT k.s AS read_seq, ",
                $unread,
                " AS unread FROM (SELECT $2 AS room_id, $1 AS user_id, \
                     coalesce((SELECT x.seq FROM read_markers x \
                         WHERE x.user_id = $1 AND x.room_id = $2), 0) AS s) k"
            ),
            expire_files_of_deleted: concat!(
                "UPDATE files SET deleted = TRUE \
                 WHERE NOT deleted AND message_seq > 0 AND (",
                $tombstone,
                ")"
            ),
        }
    };
}

/// Events in `events` only. A room's last seq is its newest event (a
/// primary-key lookup), or `rooms.last_seq` for a room without events.
pub const EVENTS_TABLE: RoomSql = room_sql!(
    "(SELECT coalesce(max(e.seq), r.last_seq) FROM events e WHERE e.room_id = r.id) AS last_seq",
    "SELECT room_id, seq, at, actor_id, actor_name, kind, body \
     FROM events WHERE room_id = $1 AND seq <= $2 \
     ORDER BY seq DESC LIMIT $3",
    "(SELECT count(*) FROM events e WHERE e.room_id = k.room_id AND e.seq > k.s \
         AND e.kind = 1 AND e.actor_id <> k.user_id)",
    "EXISTS (SELECT 1 FROM events e WHERE e.room_id = files.room_id \
         AND e.seq = files.message_seq AND e.kind = 12)"
);

/// Events in `events` and in `event_log` (SQLite). A log row at or below
/// its room's fold bound (`event_log_folded`, migration 14) is a copy of an
/// event in `events` and is skipped; one above it is in the log only (the
/// log's inserts skip events already in `events`). So history is the
/// newest `$3` of the two ranges, each a key range scan. A room's last seq
/// is a max, which copies do not change, so it takes the log unfiltered.
pub const EVENTS_AND_LOG: RoomSql = room_sql!(
    "(SELECT coalesce(max(s), r.last_seq) FROM ( \
         SELECT max(e.seq) AS s FROM events e WHERE e.room_id = r.id \
         UNION ALL SELECT max(l.seq) FROM event_log l WHERE l.room_id = r.id)) AS last_seq",
    "SELECT room_id, seq, at, actor_id, actor_name, kind, body FROM ( \
         SELECT * FROM (SELECT room_id, seq, at, actor_id, actor_name, kind, body \
             FROM events WHERE room_id = $1 AND seq <= $2 ORDER BY seq DESC LIMIT $3) \
         UNION ALL \
         SELECT * FROM (SELECT room_id, seq, at, actor_id, actor_name, kind, body \
             FROM event_log WHERE room_id = $1 AND seq <= $2 \
                 AND seq > coalesce((SELECT f.seq FROM event_log_folded f \
                                     WHERE f.room_id = $1), 0) \
             ORDER BY seq DESC LIMIT $3)) \
     ORDER BY seq DESC LIMIT $3",
    "(SELECT count(*) FROM events e WHERE e.room_id = k.room_id AND e.seq > k.s \
         AND e.kind = 1 AND e.actor_id <> k.user_id) \
     + (SELECT count(*) FROM event_log e WHERE e.room_id = k.room_id \
         AND e.seq > max(k.s, coalesce((SELECT f.seq FROM event_log_folded f \
                                        WHERE f.room_id = k.room_id), 0)) \
         AND e.kind = 1 AND e.actor_id <> k.user_id)",
    "EXISTS (SELECT 1 FROM events e WHERE e.room_id = files.room_id \
         AND e.seq = files.message_seq AND e.kind = 12) \
     OR EXISTS (SELECT 1 FROM event_log e WHERE e.room_id = files.room_id \
         AND e.seq = files.message_seq AND e.kind = 12)"
);

/// `$1` user, `$2` room, `$3` seq: raises the user's read marker in the
/// room to `$3` (inserting it if absent); changes no row when the marker
/// is at or above `$3` already.
pub const RAISE_READ_MARKER: &str = "INSERT INTO read_markers (user_id, room_id, seq) \
     VALUES ($1, $2, $3) \
     ON CONFLICT (user_id, room_id) DO UPDATE SET seq = excluded.seq \
     WHERE read_markers.seq < excluded.seq";

// ---- notifications, room log, audit ---------------------------------------

/// User `$1`'s read mark (MARK_READ): every notification with an id up to
/// it is read, whenever it was stored — ids are handed out by the shards
/// but committed by the batch writer, not necessarily in id order. A row's
/// own `read` flag is from before marks existed.
macro_rules! read_mark {
    () => {
        "coalesce((SELECT k.up_to FROM notification_marks k WHERE k.user_id = $1), 0)"
    };
}

/// A user's notifications: `$1` user, `$2` highest id wanted (inclusive),
/// `$3` limit; `$only_unread` is the backend's `AND …` that keeps unread
/// rows (its partial index's predicate, literally), or "". `read` is the
/// row's flag or the user's mark.
macro_rules! notifications_page {
    ($only_unread:literal) => {
        concat!(
            "SELECT id, user_id, kind, room_id, room_name, actor_id, actor_name, at, \
                    (read OR id <= ",
            $crate::common::sql::read_mark!(),
            ") AS read \
             FROM notifications WHERE user_id = $1 AND id <= $2",
            $only_unread,
            " ORDER BY id DESC LIMIT $3"
        )
    };
}
pub(crate) use notifications_page;

/// `$1` user, `$2` highest id wanted, `$3` limit.
pub const NOTIFICATIONS: &str = notifications_page!("");

/// `$1` user; `$unread` is the backend's predicate of unread rows (its
/// partial index's, literally). Returns `n`.
macro_rules! unread_count {
    ($unread:literal) => {
        concat!(
            "SELECT count(*) AS n FROM notifications WHERE user_id = $1 AND ",
            $unread,
            " AND id > ",
            $crate::common::sql::read_mark!()
        )
    };
}
pub(crate) use {read_mark, unread_count};

/// `$1` room, `$2` highest id wanted (inclusive), `$3` limit.
pub const AUDIT: &str = "SELECT a.id, a.at, a.actor_id, a.action, a.room_id, a.target_id, \
            a.detail, coalesce(ua.username, '') AS actor_name, \
            coalesce(ut.username, '') AS target_name \
     FROM audit a \
     LEFT JOIN users ua ON ua.id = a.actor_id \
     LEFT JOIN users ut ON ut.id = a.target_id \
     WHERE a.room_id = $1 AND a.id <= $2 \
     ORDER BY a.id DESC LIMIT $3";

// ---- housekeeping -----------------------------------------------------------

/// `$1` cutoff: associations that ended before it, except bans.
pub const PURGE_ROOM_LOG: &str = "DELETE FROM room_log \
     WHERE left_at IS NOT NULL AND left_at < $1 \
       AND NOT EXISTS (SELECT 1 FROM bans b \
                       WHERE b.room_id = room_log.room_id AND b.user_id = room_log.user_id)";

/// `$1` now.
pub const PURGE_EXPIRED_SESSIONS: &str = "DELETE FROM sessions WHERE expires_at <= $1";

// ---- files ----------------------------------------------------------------

/// `$1` room, `$2` uploader, `$3` name, `$4` content type, `$5` size,
/// `$6` SHA-256, `$7` width, `$8` height (0: none), `$9` created_at.
/// Returns `id`.
pub const INSERT_FILE: &str = "INSERT INTO files (room_id, uploader_id, name, content_type, \
     size, sha256, width, height, created_at) \
     VALUES ($1, $2, $3, $4, $5, $6, NULLIF($7, 0), NULLIF($8, 0), $9) RETURNING id";

/// `$1` file id.
pub const FILE_BY_ID: &str = concat!("SELECT ", file_columns!(), " FROM files WHERE id = $1");

/// A file row's columns, as `common::files` reads them.
macro_rules! file_columns {
    () => {
        "id, room_id, uploader_id, name, content_type, size, \
         sha256, width, height, created_at, message_seq, deleted, avatar"
    };
}
use file_columns;

/// [`INSERT_FILE`]'s arguments (`$1` room: 0), for an avatar.
pub const INSERT_AVATAR_FILE: &str = "INSERT INTO files (room_id, uploader_id, name, \
     content_type, size, sha256, width, height, created_at, avatar) \
     VALUES ($1, $2, $3, $4, $5, $6, NULLIF($7, 0), NULLIF($8, 0), $9, TRUE) RETURNING id";

/// `$1` user, `$2` their avatar's file id (0: none). Returns `id` if the
/// user exists.
pub const SET_AVATAR: &str =
    "UPDATE users SET avatar_file = NULLIF($2, 0) WHERE id = $1 RETURNING id";

/// After [`SET_AVATAR`]: `$1`'s avatars other than `$2` are deleted.
pub const RETIRE_AVATARS: &str = "UPDATE files SET deleted = TRUE \
     WHERE uploader_id = $1 AND avatar AND NOT deleted AND id <> $2";

/// `$1` file, `$2` uploader, `$3` room: the claim of a message being sent.
/// Returns the claimed file (`FILE_BY_ID`'s columns), none when refused.
pub const CLAIM_FILE: &str = concat!(
    "UPDATE files SET message_seq = 0 \
     WHERE id = $1 AND uploader_id = $2 AND room_id = $3 \
       AND message_seq IS NULL AND NOT deleted RETURNING ",
    file_columns!()
);

/// `$1` file, `$2` its room, `$3` the message's seq (`WriteOp::AttachFiles`).
pub const ATTACH_FILE: &str = "UPDATE files SET message_seq = $3 \
     WHERE id = $1 AND room_id = $2 AND message_seq = 0";

/// `$1` file (`WriteOp::ReleaseFiles`).
pub const RELEASE_FILE: &str =
    "UPDATE files SET message_seq = NULL WHERE id = $1 AND message_seq = 0";

/// `$1` room, `$2` seq (`WriteOp::DropMessageFiles`).
pub const DROP_MESSAGE_FILES: &str = "UPDATE files SET deleted = TRUE \
     WHERE room_id = $1 AND message_seq = $2 AND NOT deleted";

/// `$1` cutoff: uploads no message referenced before it. An upload that
/// old and still claimed (`message_seq` 0) is one whose message never
/// committed: a claim lasts as long as the message's batch. (Avatars are
/// never referenced by a message: [`EXPIRE_STRAY_AVATARS`].)
pub const EXPIRE_UNREFERENCED_FILES: &str = "UPDATE files SET deleted = TRUE \
     WHERE (message_seq IS NULL OR message_seq = 0) AND NOT deleted AND NOT avatar \
       AND created_at < $1";

/// `$1` cutoff: avatars uploaded before it that are not their user's
/// avatar (the account write that would have set one never happened).
pub const EXPIRE_STRAY_AVATARS: &str = "UPDATE files SET deleted = TRUE \
     WHERE avatar AND NOT deleted AND created_at < $1 \
       AND NOT EXISTS (SELECT 1 FROM users u \
                       WHERE u.id = files.uploader_id AND u.avatar_file = files.id)";

/// Hashes only deleted files use.
pub const DEAD_HASHES: &str = "SELECT DISTINCT d.sha256 FROM files d WHERE d.deleted \
     AND NOT EXISTS (SELECT 1 FROM files l WHERE l.sha256 = d.sha256 AND NOT l.deleted)";

/// `$1` hash.
pub const FORGET_FILES: &str = "DELETE FROM files WHERE sha256 = $1 AND deleted \
     AND NOT EXISTS (SELECT 1 FROM files l WHERE l.sha256 = $1 AND NOT l.deleted)";

#[cfg(test)]
mod tests {
    use confab_protocol::Visibility;

    /// The one protocol code written into the shared statements as a
    /// literal (a constant lets the planners fold it): public rooms.
    #[test]
    fn literal_codes_are_the_protocols() {
        assert_eq!(Visibility::Public.code(), 0);
        assert_eq!(confab_protocol::event_kind::MESSAGE, 1);
        for set in [&super::EVENTS_TABLE, &super::EVENTS_AND_LOG] {
            assert!(set.list_rooms.contains("r.visibility = 0 OR"));
            assert!(set.list_rooms_named.contains("r.visibility = 0 OR"));
            assert!(set.my_rooms.contains("e.kind = 1 AND"));
            assert!(set.room_unread.contains("e.kind = 1 AND"));
        }
    }
}
