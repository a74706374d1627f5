//! Replay safety: the server's write spool (`confab_server::persist::spool`) and a
//! crash during its replay re-apply batches that may already be stored, in
//! their original order. Every backend must converge on the same state
//! however often a prefix of the batch sequence is applied again.

use confab_protocol::{
    AuditAction, LeaveReason, NotificationKind, Role, RoomId, Seq, UserId, Visibility,
};
use confab_store::{AuditEntry, NotificationRecord, Store, WriteOp};

use super::{add_member, append, create_room, user};

/// Everything a batch can change, except the audit trail (audit entries
/// have no natural key: a replayed batch appends them again, as
/// `confab_store`'s contract says).
#[derive(Debug, PartialEq)]
struct Snapshot {
    rooms: Vec<confab_store::RoomRecord>,
    members: Vec<confab_store::MemberRecord>,
    bans: Vec<confab_store::BanRecord>,
    invites: Vec<confab_store::InviteRecord>,
    requests: Vec<confab_store::JoinRequestRecord>,
    events: Vec<confab_store::StoredEvent>,
    notifications: Vec<NotificationRecord>,
    room_logs: Vec<Vec<confab_store::RoomLogEntry>>,
    max_notification_id: u64,
}

async fn snapshot(store: &dyn Store, users: &[UserId]) -> Snapshot {
    let mut notifications = Vec::new();
    let mut room_logs = Vec::new();
    for &u in users {
        notifications.extend(
            store
                .notifications(u, 0, 100, false)
                .await
                .expect("notifications"),
        );
        room_logs.push(store.room_log(u).await.expect("room_log"));
    }
    let mut events = store
        .history(RoomId(1), Seq(0), 100)
        .await
        .expect("history");
    events.extend(
        store
            .history(RoomId(2), Seq(0), 100)
            .await
            .expect("history"),
    );
    Snapshot {
        rooms: store.load_rooms().await.expect("rooms"),
        members: store.load_members().await.expect("members"),
        bans: store.load_bans().await.expect("bans"),
        invites: store.load_invites().await.expect("invites"),
        requests: store.load_join_requests().await.expect("requests"),
        events,
        notifications,
        room_logs,
        max_notification_id: store.max_notification_id().await.expect("max id"),
    }
}

fn audit(at: u64, actor: UserId, action: AuditAction, room: u64) -> WriteOp {
    WriteOp::Audit(AuditEntry {
        at,
        actor,
        action,
        room: Some(RoomId(room)),
        target: None,
        detail: String::new(),
    })
}

fn notification(id: u64, user: UserId, actor: UserId) -> WriteOp {
    WriteOp::AddNotification(NotificationRecord {
        id,
        user,
        kind: NotificationKind::Invited,
        room: RoomId(1),
        room_name: "general".into(),
        actor,
        actor_name: format!("user{}", actor.0),
        at: 30_000 + id,
        read: false,
    })
}

pub async fn replaying_batches_in_order_converges_on_the_same_state(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let carol = user(store, "carol").await;
    let dave = user(store, "dave").await;
    let (r1, r2) = (RoomId(1), RoomId(2));
    // Given a sequence of batches that uses every kind of operation, where
    // later batches undo what earlier ones did (join then leave, ban then
    // unban, invite then withdraw)
    let batches: Vec<Vec<WriteOp>> = vec![
        vec![
            create_room(1, "general", "all", Visibility::Public, alice),
            add_member(1, alice, Role::Owner, 100),
            WriteOp::LogJoin {
                user: alice,
                room: r1,
                at: 100,
            },
            audit(100, alice, AuditAction::RoomCreated, 1),
            append(1, 1, alice, "hello"),
        ],
        vec![
            add_member(1, bob, Role::Member, 200),
            WriteOp::LogJoin {
                user: bob,
                room: r1,
                at: 200,
            },
            append(1, 2, bob, "hi"),
            WriteOp::PutInvite {
                room: r1,
                user: carol,
                by: alice,
                at: 210,
            },
            notification(1, carol, alice),
            WriteOp::PutJoinRequest {
                room: r1,
                user: dave,
                at: 220,
            },
        ],
        vec![
            WriteOp::SetRole {
                room: r1,
                user: bob,
                role: Role::Admin,
            },
            WriteOp::UpdateRoom {
                room: r1,
                name: "General".into(),
                topic: "everything".into(),
            },
            WriteOp::DeleteInvite {
                room: r1,
                user: carol,
            },
            WriteOp::DeleteJoinRequest {
                room: r1,
                user: dave,
            },
            append(1, 3, alice, "renamed"),
            audit(300, alice, AuditAction::RoomUpdated, 1),
        ],
        vec![
            WriteOp::RemoveMember {
                room: r1,
                user: bob,
            },
            WriteOp::LogLeave {
                user: bob,
                room: r1,
                at: 400,
                reason: LeaveReason::Banned,
            },
            WriteOp::Ban {
                room: r1,
                user: bob,
                by: alice,
                at: 400,
            },
            WriteOp::SetOwner {
                room: r1,
                owner: alice,
            },
            append(1, 4, alice, "bye bob"),
            notification(2, bob, alice),
        ],
        vec![
            WriteOp::Unban {
                room: r1,
                user: bob,
            },
            create_room(2, "side", "", Visibility::Private, carol),
            add_member(2, carol, Role::Owner, 500),
            WriteOp::LogJoin {
                user: carol,
                room: r2,
                at: 500,
            },
            append(2, 1, carol, "mine"),
            WriteOp::Ban {
                room: r2,
                user: dave,
                by: carol,
                at: 510,
            },
            WriteOp::TerminateRoom { room: r2, at: 520 },
            WriteOp::LogLeave {
                user: carol,
                room: r2,
                at: 520,
                reason: LeaveReason::Terminated,
            },
        ],
    ];
    for batch in &batches {
        store.apply_batch(batch).await.expect("first application");
    }
    let users = [alice, bob, carol, dave];
    let expected = snapshot(store, &users).await;
    // (the sequence did what it says, so the comparisons below mean something)
    assert_eq!(expected.rooms.len(), 2);
    assert_eq!(expected.rooms[0].name, "General");
    assert!(expected.rooms[1].terminated_at.is_some());
    assert_eq!(expected.members.len(), 1, "{:?}", expected.members);
    assert_eq!(expected.events.len(), 5);
    assert_eq!(
        expected.bans.len(),
        1,
        "bob unbanned, dave still banned from room 2"
    );
    assert!(expected.invites.is_empty() && expected.requests.is_empty());

    // When the whole sequence is replayed, as after a crash that lost the
    // spool's checkpoint
    for batch in &batches {
        store.apply_batch(batch).await.expect("replay");
    }
    // Then nothing changed
    assert_eq!(snapshot(store, &users).await, expected);

    // When a replay stops half-way (a second crash) and starts over
    for batch in &batches[..3] {
        store.apply_batch(batch).await.expect("partial replay");
    }
    for batch in &batches {
        store.apply_batch(batch).await.expect("replay");
    }
    // Then, again, nothing changed
    assert_eq!(snapshot(store, &users).await, expected);

    // And the whole sequence as one batch (the spool merges records when
    // it replays) converges too
    let merged: Vec<WriteOp> = batches.concat();
    store.apply_batch(&merged).await.expect("merged replay");
    assert_eq!(snapshot(store, &users).await, expected);
}
