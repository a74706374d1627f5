//! [`AccountStore`], [`RoomReads`] and [`Housekeeping`] for every
//! [`Backend`], written once: reads on [`Backend::readers`], writes on
//! [`Backend::writer`].

use confab_protocol::{Millis, RoomId, RoomInfo, Seq, UserId};

use super::convert::count;
use super::sql;
use super::{max_below, rows, to_db, to_db_opt, Arg, Backend, Columns, Sql, Step};
use crate::search::{folded_name, like_contains_pattern, RoomFilter};
use crate::{
    AccountOutcome, AccountStore, AccountWrite, AuditRecord, BanRecord, Housekeeping, InviteRecord,
    JoinRequestRecord, MemberRecord, MyRoom, NotificationRecord, RoomLogEntry, RoomReads,
    RoomRecord, RoomUnread, StoreError, StoreResult, StoredEvent, UserRecord,
};

use Arg::{Bytes, Int, Text};

/// Every row through `map`.
fn all<R, T>(rows: Vec<R>, map: impl Fn(&R) -> StoreResult<T>) -> StoreResult<Vec<T>> {
    rows.iter().map(map).collect()
}

/// A password or profile change's outcome: whether its account's row was
/// there to update.
fn updated_or_missing<R>(row: Option<R>) -> AccountOutcome {
    match row {
        Some(_) => AccountOutcome::Updated,
        None => AccountOutcome::NoSuchUser,
    }
}

#[async_trait::async_trait]
impl<B: Backend> AccountStore for B {
    async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        now: Millis,
    ) -> StoreResult<UserId> {
        let now = to_db(now, "created_at")?;
        let args = [Text(username), Text(password_hash), Int(now)];
        let row = self
            .writer()
            .insert_unique("create_user", "username", sql::CREATE_USER, &args)
            .await?
            .ok_or_else(|| StoreError::database("create_user: no id returned"))?;
        Ok(UserId(row.u64("id")?))
    }

    async fn user_by_name(&self, username: &str) -> StoreResult<Option<UserRecord>> {
        let args = [Text(username)];
        let row = self
            .readers()
            .row("user_by_name", sql::USER_BY_NAME, &args)
            .await?;
        row.map(|row| rows::user(&row)).transpose()
    }

    async fn user_by_id(&self, id: UserId) -> StoreResult<Option<UserRecord>> {
        let Some(id) = to_db_opt(id.0) else {
            return Ok(None);
        };
        let row = self
            .readers()
            .row("user_by_id", sql::USER_BY_ID, &[Int(id)])
            .await?;
        row.map(|row| rows::user(&row)).transpose()
    }

    async fn create_session(
        &self,
        token_hash: &[u8; 32],
        user: UserId,
        now: Millis,
        expires_at: Millis,
    ) -> StoreResult<()> {
        let args = [
            Bytes(token_hash),
            Int(to_db(user.0, "user id")?),
            Int(to_db(now, "created_at")?),
            Int(to_db(expires_at, "expires_at")?),
        ];
        self.writer()
            .insert_unique(
                "create_session",
                "session token",
                sql::CREATE_SESSION,
                &args,
            )
            .await
            .map(drop)
    }

    async fn session_user(
        &self,
        token_hash: &[u8; 32],
        now: Millis,
    ) -> StoreResult<Option<UserRecord>> {
        // A `now` beyond i64::MAX is past every storable expiry.
        let Some(now) = to_db_opt(now) else {
            return Ok(None);
        };
        let args = [Bytes(token_hash), Int(now)];
        let row = self
            .readers()
            .row("session_user", sql::SESSION_USER, &args)
            .await?;
        row.map(|row| rows::user(&row)).transpose()
    }

    async fn write_accounts(&self, writes: &[AccountWrite]) -> StoreResult<Vec<AccountOutcome>> {
        // Per write: a registration is its user (no row if the name is
        // taken) and, only if that made a row, its session; a login is its
        // session.
        let mut steps = Vec::with_capacity(writes.len() * 2);
        for w in writes {
            match w {
                AccountWrite::Register {
                    username,
                    password_hash,
                    token_hash,
                    now,
                    expires_at,
                } => {
                    let (now, expires) = (
                        to_db(*now, "created_at")?,
                        to_db(*expires_at, "expires_at")?,
                    );
                    let user = steps.len();
                    steps.push(Step {
                        sql: sql::CREATE_USER_UNLESS_TAKEN,
                        args: vec![Text(username), Text(password_hash), Int(now)],
                        if_row_from: None,
                    });
                    steps.push(Step {
                        sql: sql::CREATE_SESSION_BY_NAME,
                        args: vec![Bytes(token_hash), Text(username), Int(now), Int(expires)],
                        if_row_from: Some(user),
                    });
                }
                AccountWrite::Session {
                    user,
                    token_hash,
                    now,
                    expires_at,
                } => steps.push(Step {
                    sql: sql::CREATE_SESSION,
                    args: vec![
                        Bytes(token_hash),
                        Int(to_db(user.0, "user id")?),
                        Int(to_db(*now, "created_at")?),
                        Int(to_db(*expires_at, "expires_at")?),
                    ],
                    if_row_from: None,
                }),
                AccountWrite::ChangePassword {
                    user,
                    password_hash,
                    keep,
                } => {
                    let user = Int(to_db(user.0, "user id")?);
                    let updated = steps.len();
                    steps.push(Step {
                        sql: sql::SET_PASSWORD,
                        args: vec![user, Text(password_hash)],
                        if_row_from: None,
                    });
                    steps.push(Step {
                        sql: sql::DELETE_OTHER_SESSIONS,
                        args: vec![user, Bytes(keep)],
                        if_row_from: Some(updated),
                    });
                }
                AccountWrite::UpdateProfile {
                    user,
                    display_name,
                    bio,
                    email,
                } => steps.push(Step {
                    sql: sql::SET_PROFILE,
                    args: vec![
                        Int(to_db(user.0, "user id")?),
                        Text(display_name.as_deref().unwrap_or("")),
                        Text(bio),
                        Text(email.as_deref().unwrap_or("")),
                    ],
                    if_row_from: None,
                }),
                AccountWrite::SetAvatar { user, file } => {
                    let user = Int(to_db(user.0, "user id")?);
                    let file = Int(to_db(file.unwrap_or(0), "file id")?);
                    let updated = steps.len();
                    steps.push(Step {
                        sql: sql::SET_AVATAR,
                        args: vec![user, file],
                        if_row_from: None,
                    });
                    steps.push(Step {
                        sql: sql::RETIRE_AVATARS,
                        args: vec![user, file],
                        if_row_from: Some(updated),
                    });
                }
            }
        }
        let rows = self.writer().transaction("write_accounts", &steps).await?;
        let mut rows = rows.into_iter();
        let mut outcomes = Vec::with_capacity(writes.len());
        for w in writes {
            outcomes.push(match w {
                AccountWrite::Register { .. } => {
                    let user = rows.next().flatten();
                    rows.next();
                    match user {
                        Some(row) => AccountOutcome::Registered(UserId(row.u64("id")?)),
                        None => AccountOutcome::UsernameTaken,
                    }
                }
                AccountWrite::Session { .. } => {
                    rows.next();
                    AccountOutcome::SessionCreated
                }
                AccountWrite::ChangePassword { .. } => {
                    let updated = rows.next().flatten();
                    rows.next();
                    updated_or_missing(updated)
                }
                AccountWrite::UpdateProfile { .. } => updated_or_missing(rows.next().flatten()),
                AccountWrite::SetAvatar { .. } => {
                    let updated = rows.next().flatten();
                    rows.next();
                    updated_or_missing(updated)
                }
            });
        }
        Ok(outcomes)
    }

    async fn profile(&self, user: UserId) -> StoreResult<Option<confab_protocol::Profile>> {
        let Some(id) = to_db_opt(user.0) else {
            return Ok(None);
        };
        let row = self
            .readers()
            .row("profile", sql::PROFILE, &[Int(id)])
            .await?;
        row.map(|row| rows::profile(&row)).transpose()
    }

    async fn delete_session(&self, token_hash: &[u8; 32]) -> StoreResult<()> {
        let args = [Bytes(token_hash)];
        self.writer()
            .execute("delete_session", sql::DELETE_SESSION, &args)
            .await
            .map(drop)
    }

    async fn raise_read_marker(&self, user: UserId, room: RoomId, seq: Seq) -> StoreResult<bool> {
        let args = [
            Int(to_db(user.0, "user id")?),
            Int(to_db(room.0, "room id")?),
            Int(to_db(seq.0, "read marker")?),
        ];
        let changed = self
            .writer()
            .execute("raise_read_marker", sql::RAISE_READ_MARKER, &args)
            .await?;
        // A first marker at 0 is no move: 0 is every user's marker.
        Ok(changed > 0 && seq.0 > 0)
    }

    async fn mark_read(&self, user: UserId, up_to: u64) -> StoreResult<u32> {
        let Some(user) = to_db_opt(user.0) else {
            return Ok(0);
        };
        // An `up_to` beyond i64::MAX is above every stored id.
        let up_to = to_db_opt(up_to).unwrap_or(i64::MAX);
        count(
            self.mark_read_then_count(user, up_to).await?,
            "unread count",
        )
    }
}

#[async_trait::async_trait]
impl<B: Backend> RoomReads for B {
    async fn load_rooms(&self) -> StoreResult<Vec<RoomRecord>> {
        let found = self
            .readers()
            .rows("load_rooms", B::ROOM_SQL.load_rooms, &[])
            .await?;
        all(found, rows::room)
    }

    async fn load_members(&self) -> StoreResult<Vec<MemberRecord>> {
        let found = self
            .readers()
            .rows("load_members", sql::LOAD_MEMBERS, &[])
            .await?;
        all(found, rows::member)
    }

    async fn load_recent_events(&self, per_room: u32) -> StoreResult<Vec<StoredEvent>> {
        if per_room == 0 {
            return Ok(Vec::new());
        }
        let args = [Int(i64::from(per_room))];
        let found = self
            .readers()
            .rows("load_recent_events", B::RECENT_EVENTS, &args)
            .await?;
        all(found, rows::event)
    }

    async fn load_bans(&self) -> StoreResult<Vec<BanRecord>> {
        let found = self
            .readers()
            .rows("load_bans", sql::LOAD_BANS, &[])
            .await?;
        all(found, rows::ban)
    }

    async fn load_invites(&self) -> StoreResult<Vec<InviteRecord>> {
        let found = self
            .readers()
            .rows("load_invites", sql::LOAD_INVITES, &[])
            .await?;
        all(found, rows::invite)
    }

    async fn load_join_requests(&self) -> StoreResult<Vec<JoinRequestRecord>> {
        let found = self
            .readers()
            .rows("load_join_requests", sql::LOAD_JOIN_REQUESTS, &[])
            .await?;
        all(found, rows::join_request)
    }

    async fn max_notification_id(&self) -> StoreResult<u64> {
        let found = self
            .readers()
            .row("max_notification_id", sql::MAX_NOTIFICATION_ID, &[])
            .await?;
        match found {
            Some(row) => row.u64("id"),
            None => Ok(0),
        }
    }

    async fn list_rooms(
        &self,
        viewer: UserId,
        filter: RoomFilter<'_>,
        offset: u32,
        limit: u32,
    ) -> StoreResult<(Vec<RoomInfo>, u32)> {
        // An unrepresentable viewer id belongs to no room: public rooms only.
        let viewer = to_db_opt(viewer.0).unwrap_or(-1);
        let (statement, pattern) = match filter {
            RoomFilter::Contains(text) => (B::ROOM_SQL.list_rooms, like_contains_pattern(text)),
            RoomFilter::Named(name) => (B::ROOM_SQL.list_rooms_named, folded_name(name)),
        };
        let args = [
            Int(viewer),
            Text(&pattern),
            Int(i64::from(limit)),
            Int(i64::from(offset)),
        ];
        let found = self.readers().rows("list_rooms", statement, &args).await?;
        let mut total = 0;
        let mut rooms = Vec::with_capacity(limit.min(1024) as usize);
        for row in found {
            total = row.int("total")?;
            // An empty page is one row with the total and NULL rooms.
            if row.opt_int("id")?.is_some() {
                rooms.push(rows::room_info(&row)?);
            }
        }
        Ok((rooms, count(total, "room count")?))
    }

    async fn rooms_of_user(&self, user: UserId) -> StoreResult<Vec<RoomInfo>> {
        let Some(user) = to_db_opt(user.0) else {
            return Ok(Vec::new());
        };
        let found = self
            .readers()
            .rows("rooms_of_user", B::ROOM_SQL.rooms_of_user, &[Int(user)])
            .await?;
        all(found, rows::room_info)
    }

    async fn my_rooms(&self, user: UserId) -> StoreResult<Vec<MyRoom>> {
        let Some(user) = to_db_opt(user.0) else {
            return Ok(Vec::new());
        };
        let found = self
            .readers()
            .rows("my_rooms", B::ROOM_SQL.my_rooms, &[Int(user)])
            .await?;
        all(found, |row| {
            Ok(MyRoom {
                info: rows::room_info(row)?,
                read_seq: Seq(row.u64("read_seq")?),
                unread: count(row.int("unread")?, "unread")?,
            })
        })
    }

    async fn room_unread(&self, user: UserId, room: RoomId) -> StoreResult<RoomUnread> {
        let none = RoomUnread {
            room,
            read_seq: Seq(0),
            unread: 0,
        };
        let (Some(db_user), Some(db_room)) = (to_db_opt(user.0), to_db_opt(room.0)) else {
            return Ok(none);
        };
        let found = self
            .readers()
            .row(
                "room_unread",
                B::ROOM_SQL.room_unread,
                &[Int(db_user), Int(db_room)],
            )
            .await?;
        match found {
            Some(row) => Ok(RoomUnread {
                room,
                read_seq: Seq(row.u64("read_seq")?),
                unread: count(row.int("unread")?, "unread")?,
            }),
            None => Ok(none),
        }
    }

    async fn history(
        &self,
        room: RoomId,
        before: Seq,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvent>> {
        let Some(room) = to_db_opt(room.0) else {
            return Ok(Vec::new());
        };
        let args = [Int(room), Int(max_below(before.0)), Int(i64::from(limit))];
        let found = self
            .readers()
            .rows("history", B::ROOM_SQL.history, &args)
            .await?;
        all(found, rows::event)
    }

    async fn notifications(
        &self,
        user: UserId,
        before: u64,
        limit: u32,
        unread_only: bool,
    ) -> StoreResult<Vec<NotificationRecord>> {
        let Some(user) = to_db_opt(user.0) else {
            return Ok(Vec::new());
        };
        // Two statements rather than a flag in one, so that the unread-only
        // one matches the partial index on unread rows.
        let sql = match unread_only {
            true => B::UNREAD_NOTIFICATIONS,
            false => sql::NOTIFICATIONS,
        };
        let args = [Int(user), Int(max_below(before)), Int(i64::from(limit))];
        let found = self.readers().rows("notifications", sql, &args).await?;
        all(found, rows::notification)
    }

    async fn unread_count(&self, user: UserId) -> StoreResult<u32> {
        let Some(user) = to_db_opt(user.0) else {
            return Ok(0);
        };
        let found = self
            .readers()
            .row("unread_count", B::UNREAD_COUNT, &[Int(user)])
            .await?;
        match found {
            Some(row) => count(row.int("n")?, "unread count"),
            None => Ok(0),
        }
    }

    async fn room_log(&self, user: UserId) -> StoreResult<Vec<RoomLogEntry>> {
        let Some(user) = to_db_opt(user.0) else {
            return Ok(Vec::new());
        };
        let found = self
            .readers()
            .rows("room_log", B::ROOM_SQL.room_log, &[Int(user)])
            .await?;
        all(found, rows::room_log_entry)
    }

    async fn audit(&self, room: RoomId, before: u64, limit: u32) -> StoreResult<Vec<AuditRecord>> {
        let Some(room) = to_db_opt(room.0) else {
            return Ok(Vec::new());
        };
        let args = [Int(room), Int(max_below(before)), Int(i64::from(limit))];
        let found = self.readers().rows("audit", sql::AUDIT, &args).await?;
        all(found, rows::audit)
    }

    async fn ping(&self) -> StoreResult<()> {
        self.readers().row("ping", B::PING, &[]).await.map(drop)
    }
}

#[async_trait::async_trait]
impl<B: Backend> Housekeeping for B {
    async fn purge_room_log(&self, cutoff: Millis) -> StoreResult<u64> {
        let cutoff = to_db_opt(cutoff).unwrap_or(i64::MAX);
        let args = [Int(cutoff)];
        self.writer()
            .execute("purge_room_log", sql::PURGE_ROOM_LOG, &args)
            .await
    }

    async fn purge_notifications(&self, cutoff: Millis) -> StoreResult<u64> {
        let cutoff = to_db_opt(cutoff).unwrap_or(i64::MAX);
        self.purge_notifications_before(cutoff).await
    }

    async fn purge_expired_sessions(&self, now: Millis) -> StoreResult<u64> {
        let now = to_db_opt(now).unwrap_or(i64::MAX);
        let args = [Int(now)];
        self.writer()
            .execute("purge_expired_sessions", sql::PURGE_EXPIRED_SESSIONS, &args)
            .await
    }
}
