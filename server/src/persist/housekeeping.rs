//! Housekeeping: the periodic clean-up of seed 001's TODOs.
//!
//! - user–room associations (room-log entries) that are not bans and were
//!   not joined for `room_log_retention` are removed;
//! - notifications older than `notification_retention` are removed;
//! - expired sessions are removed;
//! - the per-user rate limits forget idle users and give back their
//!   tables' spare capacity (`crate::limit::Limits::shrink`).
//! - files (SPEC.md §13) of deleted messages, and uploads no message
//!   referenced within `unreferenced_uploads`, are deleted; their bytes go
//!   when no live file uses them any more (`files::Files::sweep`).
//!
//! [`run_once`] takes `now` from its caller, so tests step the clock; the
//! periodic task passes the wall clock. Each pass is counted in
//! `confab_housekeeping_removed_total{kind}`.

use std::sync::Arc;
use std::time::Duration;

use confab_protocol::Millis;
use confab_store::{Store, StoreError};
use tokio_util::sync::CancellationToken;

use crate::files::Files;

/// How old things may get.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub room_log: Duration,
    pub notifications: Duration,
    /// How long an upload may wait for a message to reference it.
    pub unreferenced_uploads: Duration,
}

/// What one pass removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Removed {
    pub room_log: u64,
    pub notifications: u64,
    pub sessions: u64,
    /// Files newly deleted (of deleted messages, or never referenced).
    pub files: u64,
    /// Content hashes whose bytes were removed from disk.
    pub file_blobs: u64,
}

/// One housekeeping pass as of `now`.
pub async fn run_once(
    store: &dyn Store,
    files: &Files,
    retention: Retention,
    now: Millis,
) -> Result<Removed, StoreError> {
    let cutoff = |age: Duration| now.saturating_sub(age.as_millis() as Millis);
    let swept = files
        .sweep(store, cutoff(retention.unreferenced_uploads))
        .await?;
    let removed = Removed {
        room_log: store.purge_room_log(cutoff(retention.room_log)).await?,
        notifications: store
            .purge_notifications(cutoff(retention.notifications))
            .await?,
        sessions: store.purge_expired_sessions(now).await?,
        files: swept.expired,
        file_blobs: swept.blobs,
    };
    for (kind, n) in [
        ("room_log", removed.room_log),
        ("notifications", removed.notifications),
        ("sessions", removed.sessions),
        ("files", removed.files),
        ("file_blobs", removed.file_blobs),
    ] {
        crate::metrics::housekeeping_removed(kind, n);
    }
    crate::metrics::housekeeping_ran();
    Ok(removed)
}

/// Runs [`run_once`] (and shrinks `limits`) every `interval` until `stop`
/// is cancelled.
pub fn spawn(
    store: Arc<dyn Store>,
    limits: Arc<crate::limit::Limits>,
    files: Arc<Files>,
    retention: Retention,
    interval: Duration,
    clock: crate::clock::Clock,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            limits.shrink();
            match run_once(store.as_ref(), &files, retention, clock.now_ms()).await {
                Ok(r) => tracing::info!(
                    room_log = r.room_log,
                    notifications = r.notifications,
                    sessions = r.sessions,
                    files = r.files,
                    file_blobs = r.file_blobs,
                    "housekeeping pass"
                ),
                Err(e) => tracing::warn!(error = %e, "housekeeping pass failed"),
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_protocol::{LeaveReason, NotificationKind};
    use confab_protocol::{Role, RoomId, Visibility};
    use confab_store::sqlite::SqliteStore;
    use confab_store::{AccountStore, BatchSink, NotificationRecord, RoomReads, WriteOp};

    const DAY: Millis = 24 * 3600 * 1000;
    const RETENTION: Retention = Retention {
        room_log: Duration::from_secs(30 * 24 * 3600),
        notifications: Duration::from_secs(90 * 24 * 3600),
        unreferenced_uploads: Duration::from_secs(24 * 3600),
    };

    #[tokio::test]
    async fn stale_associations_old_notifications_and_expired_sessions_go_but_bans_stay() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("h.db")).await.unwrap();
        let files = Files::open(dir.path(), 1024, Duration::from_secs(60)).unwrap();
        let alice = store.create_user("alice", "x", 0).await.unwrap();
        let bob = store.create_user("bob", "x", 0).await.unwrap();
        let carol = store.create_user("carol", "x", 0).await.unwrap();
        let room = RoomId(1);
        let t0 = 1_000 * DAY;
        let mut ops = vec![WriteOp::CreateRoom {
            room,
            name: "r".into(),
            topic: String::new(),
            visibility: Visibility::Public,
            owner: alice,
            created_at: t0,
        }];
        // bob left on day 0, carol was banned on day 0, alice is still in.
        for (user, reason) in [(bob, LeaveReason::Left), (carol, LeaveReason::Banned)] {
            ops.push(WriteOp::LogJoin { user, room, at: t0 });
            ops.push(WriteOp::LogLeave {
                user,
                room,
                at: t0,
                reason,
            });
        }
        ops.push(WriteOp::Ban {
            room,
            user: carol,
            by: alice,
            at: t0,
        });
        ops.push(WriteOp::AddMember {
            room,
            user: alice,
            role: Role::Owner,
            joined_at: t0,
        });
        ops.push(WriteOp::LogJoin {
            user: alice,
            room,
            at: t0,
        });
        ops.push(WriteOp::AddNotification(NotificationRecord {
            id: 1,
            user: bob,
            kind: NotificationKind::Kicked,
            room,
            room_name: "r".into(),
            actor: alice,
            actor_name: "alice".into(),
            at: t0,
            read: false,
        }));
        store.apply_batch(&ops).await.unwrap();
        store
            .create_session(&[7; 32], bob, t0, t0 + 40 * DAY)
            .await
            .unwrap();

        // Day 29: nothing is old enough yet.
        let r = run_once(&store, &files, RETENTION, t0 + 29 * DAY)
            .await
            .unwrap();
        assert_eq!(r, Removed::default());
        // Day 31: bob's association goes; carol's stays (a ban); alice's stays (a member).
        let r = run_once(&store, &files, RETENTION, t0 + 31 * DAY)
            .await
            .unwrap();
        assert_eq!(
            r,
            Removed {
                room_log: 1,
                ..Removed::default()
            }
        );
        assert!(store.room_log(bob).await.unwrap().is_empty());
        assert_eq!(store.room_log(carol).await.unwrap().len(), 1);
        assert_eq!(store.room_log(alice).await.unwrap().len(), 1);
        // Day 41: the session has expired. Day 91: the notification is old.
        let r = run_once(&store, &files, RETENTION, t0 + 41 * DAY)
            .await
            .unwrap();
        assert_eq!(r.sessions, 1);
        let r = run_once(&store, &files, RETENTION, t0 + 91 * DAY)
            .await
            .unwrap();
        assert_eq!(r.notifications, 1);
        assert!(store
            .notifications(bob, 0, 10, false)
            .await
            .unwrap()
            .is_empty());
    }
}
