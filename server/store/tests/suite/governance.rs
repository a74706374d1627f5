//! The governance half of the store contract (issue 5): room updates and
//! termination, bans, invitations, join requests, notifications, the room
//! log, the audit trail and housekeeping.

use confab_protocol::{
    AuditAction, LeaveReason, Millis, NotificationKind, Role, RoomId, Seq, UserId, Visibility,
};
use confab_store::{
    AuditEntry, BanRecord, InviteRecord, JoinRequestRecord, NotificationRecord, RoomFilter, Store,
    StoreError, WriteOp,
};

use super::{add_member, append, apply, create_room, ids, list, user};

// ---- fixtures -------------------------------------------------------------

fn ban(room: u64, user: UserId, by: UserId, at: Millis) -> WriteOp {
    WriteOp::Ban {
        room: RoomId(room),
        user,
        by,
        at,
    }
}

fn unban(room: u64, user: UserId) -> WriteOp {
    WriteOp::Unban {
        room: RoomId(room),
        user,
    }
}

fn invite(room: u64, user: UserId, by: UserId, at: Millis) -> WriteOp {
    WriteOp::PutInvite {
        room: RoomId(room),
        user,
        by,
        at,
    }
}

fn request(room: u64, user: UserId, at: Millis) -> WriteOp {
    WriteOp::PutJoinRequest {
        room: RoomId(room),
        user,
        at,
    }
}

fn terminate(room: u64, at: Millis) -> WriteOp {
    WriteOp::TerminateRoom {
        room: RoomId(room),
        at,
    }
}

fn notification(id: u64, user: UserId, kind: NotificationKind, at: Millis) -> NotificationRecord {
    NotificationRecord {
        id,
        user,
        kind,
        room: RoomId(1),
        room_name: "Café".to_owned(),
        actor: UserId(0),
        actor_name: String::new(),
        at,
        read: false,
    }
}

fn notify(id: u64, user: UserId, at: Millis) -> WriteOp {
    WriteOp::AddNotification(notification(id, user, NotificationKind::Invited, at))
}

fn log_join(user: UserId, room: u64, at: Millis) -> WriteOp {
    WriteOp::LogJoin {
        user,
        room: RoomId(room),
        at,
    }
}

fn log_leave(user: UserId, room: u64, at: Millis, reason: LeaveReason) -> WriteOp {
    WriteOp::LogLeave {
        user,
        room: RoomId(room),
        at,
        reason,
    }
}

fn audit_entry(at: Millis, actor: UserId, action: AuditAction, room: Option<u64>) -> AuditEntry {
    AuditEntry {
        at,
        actor,
        action,
        room: room.map(RoomId),
        target: None,
        detail: String::new(),
    }
}

async fn ban_keys(store: &dyn Store) -> Vec<(u64, UserId)> {
    store
        .load_bans()
        .await
        .expect("load_bans")
        .iter()
        .map(|b| (b.room.0, b.user))
        .collect()
}

async fn notification_ids(store: &dyn Store, user: UserId, before: u64, limit: u32) -> Vec<u64> {
    store
        .notifications(user, before, limit, false)
        .await
        .expect("notifications")
        .iter()
        .map(|n| n.id)
        .collect()
}

/// `(room id, left_at, reason)` of `user`'s room log, in its order.
async fn log_keys(store: &dyn Store, user: UserId) -> Vec<(u64, Option<Millis>, LeaveReason)> {
    store
        .room_log(user)
        .await
        .expect("room_log")
        .iter()
        .map(|e| (e.room.id.0, e.left_at, e.reason))
        .collect()
}

// ---- rooms ----------------------------------------------------------------

pub async fn update_room_renames_and_search_follows(store: &dyn Store) {
    let alice = user(store, "alice").await;
    apply(
        store,
        vec![create_room(
            1,
            "Old Name",
            "old topic",
            Visibility::Public,
            alice,
        )],
    )
    .await;

    // When the room is renamed and its topic changed (beyond ASCII)
    apply(
        store,
        vec![WriteOp::UpdateRoom {
            room: RoomId(1),
            name: "ÉCOLE".to_owned(),
            topic: "Straße".to_owned(),
        }],
    )
    .await;

    // Then loading sees the new name and topic
    let rooms = store.load_rooms().await.expect("load_rooms");
    assert_eq!(
        rooms
            .iter()
            .map(|r| (r.name.as_str(), r.topic.as_str()))
            .collect::<Vec<_>>(),
        vec![("ÉCOLE", "Straße")]
    );
    // And the search finds it by the new name and topic, case-insensitively
    assert_eq!(list(store, alice, "école").await, vec![1]);
    assert_eq!(list(store, alice, "straße").await, vec![1]);
    // And no longer by the old ones
    assert_eq!(list(store, alice, "old").await, Vec::<u64>::new());
}

pub async fn set_owner_changes_the_rooms_owner(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    apply(
        store,
        vec![
            create_room(1, "r", "", Visibility::Public, alice),
            WriteOp::SetOwner {
                room: RoomId(1),
                owner: bob,
            },
        ],
    )
    .await;

    let rooms = store.load_rooms().await.expect("load_rooms");
    assert_eq!(rooms.iter().map(|r| r.owner).collect::<Vec<_>>(), vec![bob]);
    let (listed, _) = store
        .list_rooms(alice, RoomFilter::Contains(""), 0, 10)
        .await
        .expect("list");
    assert_eq!(
        listed.iter().map(|r| r.owner).collect::<Vec<_>>(),
        vec![bob]
    );
}

pub async fn terminate_room_clears_members_invites_and_requests_but_keeps_bans(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let carol = user(store, "carol").await;
    let dave = user(store, "dave").await;
    // Given two rooms, each with a member, an invitation, a request and a ban
    let mut ops = Vec::new();
    for room in [1, 2] {
        ops.extend([
            create_room(room, &format!("room {room}"), "", Visibility::Public, alice),
            add_member(room, alice, Role::Owner, 1),
            invite(room, bob, alice, 2),
            request(room, carol, 3),
            ban(room, dave, alice, 4),
        ]);
    }
    apply(store, ops).await;

    // When room 1 terminates (and the termination is replayed later)
    apply(store, vec![terminate(1, 500)]).await;
    apply(store, vec![terminate(1, 900)]).await;

    // Then it is marked terminated at the first time, room 2 untouched
    let rooms = store.load_rooms().await.expect("load_rooms");
    assert_eq!(
        rooms
            .iter()
            .map(|r| (r.id.0, r.terminated_at))
            .collect::<Vec<_>>(),
        vec![(1, Some(500)), (2, None)]
    );
    // And only room 2 keeps members, invitations and requests
    let members = store.load_members().await.expect("load_members");
    assert_eq!(
        members.iter().map(|m| m.room.0).collect::<Vec<_>>(),
        vec![2]
    );
    let invites = store.load_invites().await.expect("load_invites");
    assert_eq!(
        invites.iter().map(|i| i.room.0).collect::<Vec<_>>(),
        vec![2]
    );
    let requests = store.load_join_requests().await.expect("requests");
    assert_eq!(
        requests.iter().map(|r| r.room.0).collect::<Vec<_>>(),
        vec![2]
    );
    // But both bans stay
    assert_eq!(ban_keys(store).await, vec![(1, dave), (2, dave)]);
    // And the former owner has no rooms
    assert_eq!(
        ids(&store.rooms_of_user(alice).await.expect("rooms_of_user")),
        vec![2]
    );
}

pub async fn terminated_rooms_are_never_listed(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    apply(
        store,
        vec![
            create_room(1, "chat public", "", Visibility::Public, alice),
            create_room(2, "chat private", "", Visibility::Private, alice),
            add_member(2, alice, Role::Owner, 1),
            create_room(3, "chat other", "", Visibility::Public, alice),
        ],
    )
    .await;
    assert_eq!(list(store, alice, "chat").await, vec![1, 2, 3]);

    // When rooms 1 and 2 terminate
    apply(store, vec![terminate(1, 50), terminate(2, 60)]).await;

    // Then nobody sees them, in listing or search, and the totals agree
    assert_eq!(list(store, alice, "").await, vec![3]);
    assert_eq!(list(store, alice, "chat").await, vec![3]);
    assert_eq!(list(store, bob, "public").await, Vec::<u64>::new());
    let (_, total) = store
        .list_rooms(bob, RoomFilter::Contains(""), 0, 0)
        .await
        .expect("list_rooms");
    assert_eq!(total, 1);
}

// ---- bans, invitations, requests ------------------------------------------

pub async fn banned_users_do_not_see_the_room(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let carol = user(store, "carol").await;
    apply(
        store,
        vec![
            create_room(1, "lobby", "", Visibility::Public, alice),
            create_room(2, "club", "", Visibility::Private, alice),
            add_member(2, bob, Role::Member, 1),
            create_room(3, "lounge", "", Visibility::Public, alice),
        ],
    )
    .await;
    assert_eq!(list(store, bob, "").await, vec![1, 2, 3]);

    // When bob is banned from the public room and (while still a member,
    // as the shard may order it) from the private one
    apply(store, vec![ban(1, bob, alice, 10), ban(2, bob, alice, 11)]).await;

    // Then neither is listed or found for him, with a matching total
    assert_eq!(list(store, bob, "").await, vec![3]);
    assert_eq!(list(store, bob, "lobby").await, Vec::<u64>::new());
    let (_, total) = store
        .list_rooms(bob, RoomFilter::Contains(""), 0, 0)
        .await
        .expect("list_rooms");
    assert_eq!(total, 1);
    // But everyone else still sees the public room
    assert_eq!(list(store, carol, "").await, vec![1, 3]);

    // When he is unbanned from the lobby, he sees it again
    apply(store, vec![unban(1, bob)]).await;
    assert_eq!(list(store, bob, "").await, vec![1, 3]);
}

pub async fn bans_are_replaced_loaded_with_names_and_lifted(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let carol = user(store, "carol").await;
    apply(
        store,
        vec![
            create_room(1, "a", "", Visibility::Public, alice),
            create_room(2, "b", "", Visibility::Public, alice),
            ban(2, carol, alice, 5),
            ban(1, bob, alice, 6),
            // Banned again by someone else: one ban, the newer one
            ban(1, bob, carol, 7),
        ],
    )
    .await;

    assert_eq!(
        store.load_bans().await.expect("load_bans"),
        vec![
            BanRecord {
                room: RoomId(1),
                user: bob,
                username: "bob".into(),
                by: carol,
                at: 7
            },
            BanRecord {
                room: RoomId(2),
                user: carol,
                username: "carol".into(),
                by: alice,
                at: 5
            },
        ]
    );

    // Unbanning lifts only that ban, and lifting an absent one is no error
    apply(store, vec![unban(1, bob), unban(1, bob), unban(2, alice)]).await;
    assert_eq!(ban_keys(store).await, vec![(2, carol)]);
}

pub async fn invites_are_replaced_loaded_with_names_and_deleted(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let carol = user(store, "carol").await;
    apply(
        store,
        vec![
            create_room(1, "a", "", Visibility::Private, alice),
            invite(1, carol, alice, 5),
            invite(1, bob, alice, 6),
            invite(1, bob, carol, 8), // re-invited by another admin
        ],
    )
    .await;

    let (first, second) = if bob.0 < carol.0 {
        ((bob, "bob", carol, 8), (carol, "carol", alice, 5))
    } else {
        ((carol, "carol", alice, 5), (bob, "bob", carol, 8))
    };
    let record = |(user, name, by, at): (UserId, &str, UserId, Millis)| InviteRecord {
        room: RoomId(1),
        user,
        username: name.to_owned(),
        by,
        at,
    };
    assert_eq!(
        store.load_invites().await.expect("load_invites"),
        vec![record(first), record(second)]
    );

    apply(
        store,
        vec![
            WriteOp::DeleteInvite {
                room: RoomId(1),
                user: bob,
            },
            WriteOp::DeleteInvite {
                room: RoomId(1),
                user: bob,
            },
        ],
    )
    .await;
    let left = store.load_invites().await.expect("load_invites");
    assert_eq!(left.iter().map(|i| i.user).collect::<Vec<_>>(), vec![carol]);
}

pub async fn join_requests_load_oldest_first_per_room(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let carol = user(store, "carol").await;
    apply(
        store,
        vec![
            create_room(2, "b", "", Visibility::Private, alice),
            create_room(1, "a", "", Visibility::Private, alice),
            request(2, bob, 30),
            request(1, carol, 20),
            request(1, bob, 10),
            request(2, carol, 5),
        ],
    )
    .await;

    assert_eq!(
        store.load_join_requests().await.expect("requests"),
        vec![
            JoinRequestRecord {
                room: RoomId(1),
                user: bob,
                username: "bob".into(),
                at: 10
            },
            JoinRequestRecord {
                room: RoomId(1),
                user: carol,
                username: "carol".into(),
                at: 20
            },
            JoinRequestRecord {
                room: RoomId(2),
                user: carol,
                username: "carol".into(),
                at: 5
            },
            JoinRequestRecord {
                room: RoomId(2),
                user: bob,
                username: "bob".into(),
                at: 30
            },
        ]
    );

    // A request asked again keeps one row; a decided one is deleted
    apply(
        store,
        vec![
            request(1, bob, 40),
            WriteOp::DeleteJoinRequest {
                room: RoomId(2),
                user: carol,
            },
            WriteOp::DeleteJoinRequest {
                room: RoomId(2),
                user: alice,
            },
        ],
    )
    .await;
    let left = store.load_join_requests().await.expect("requests");
    assert_eq!(
        left.iter()
            .map(|r| (r.room.0, r.user, r.at))
            .collect::<Vec<_>>(),
        vec![(1, carol, 20), (1, bob, 40), (2, bob, 30)]
    );
}

// ---- ordering and atomicity ---------------------------------------------

pub async fn ops_of_different_kinds_apply_in_batch_order(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    // One batch in which later ops undo or redo earlier ones: a backend
    // that groups ops by kind (bulk paths) must still honour the order.
    apply(
        store,
        vec![
            create_room(1, "r", "", Visibility::Public, alice),
            add_member(1, bob, Role::Member, 1),
            WriteOp::RemoveMember {
                room: RoomId(1),
                user: bob,
            },
            add_member(1, bob, Role::Admin, 2),
            ban(1, alice, bob, 3),
            unban(1, alice),
            ban(1, alice, bob, 4),
            invite(1, alice, bob, 5),
            WriteOp::DeleteInvite {
                room: RoomId(1),
                user: alice,
            },
            log_join(bob, 1, 6),
            log_leave(bob, 1, 7, LeaveReason::Left),
            log_join(bob, 1, 8),
            append(1, 1, bob, "first"),
            append(1, 2, bob, "second"),
            create_room(2, "t", "", Visibility::Public, alice),
            add_member(2, bob, Role::Member, 9),
            terminate(2, 10),
            add_member(2, alice, Role::Owner, 11), // after termination: stays
            append(2, 1, alice, "late"),
        ],
    )
    .await;

    let members = store.load_members().await.expect("load_members");
    assert_eq!(
        members
            .iter()
            .map(|m| (m.room.0, m.user, m.role))
            .collect::<Vec<_>>(),
        vec![(1, bob, Role::Admin), (2, alice, Role::Owner)]
    );
    assert_eq!(ban_keys(store).await, vec![(1, alice)]);
    assert!(store.load_invites().await.expect("invites").is_empty());
    assert_eq!(
        log_keys(store, bob).await,
        vec![(1, None, LeaveReason::Active)]
    );
    let rooms = store.load_rooms().await.expect("load_rooms");
    assert_eq!(
        rooms
            .iter()
            .map(|r| (r.id.0, r.last_seq, r.terminated_at))
            .collect::<Vec<_>>(),
        vec![(1, Seq(2), None), (2, Seq(1), Some(10))]
    );
}

pub async fn failed_batch_rolls_back_governance_ops(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    apply(
        store,
        vec![create_room(1, "r", "", Visibility::Public, alice)],
    )
    .await;

    // When a batch of every governance kind ends with a failing op
    let result = store
        .apply_batch(&[
            ban(1, bob, alice, 1),
            invite(1, alice, alice, 1),
            request(1, bob, 1),
            notify(1, bob, 1),
            log_join(bob, 1, 1),
            WriteOp::Audit(audit_entry(1, alice, AuditAction::MemberBanned, Some(1))),
            WriteOp::UpdateRoom {
                room: RoomId(1),
                name: "renamed".into(),
                topic: String::new(),
            },
            terminate(1, 1),
            // A membership of a user who does not exist
            add_member(1, UserId(alice.0 + bob.0 + 100), Role::Member, 1),
        ])
        .await;
    assert!(
        matches!(result, Err(StoreError::Database { .. })),
        "got {result:?}"
    );

    // Then none of it is visible
    assert!(store.load_bans().await.expect("bans").is_empty());
    assert!(store.load_invites().await.expect("invites").is_empty());
    assert!(store.load_join_requests().await.expect("reqs").is_empty());
    assert_eq!(store.max_notification_id().await.expect("max id"), 0);
    assert!(store.room_log(bob).await.expect("room_log").is_empty());
    assert!(store
        .audit(RoomId(1), 0, 10)
        .await
        .expect("audit")
        .is_empty());
    let rooms = store.load_rooms().await.expect("load_rooms");
    assert_eq!(
        rooms
            .iter()
            .map(|r| (r.name.as_str(), r.terminated_at))
            .collect::<Vec<_>>(),
        vec![("r", None)]
    );
}

// ---- notifications ----------------------------------------------------------

pub async fn notifications_page_newest_first_per_user(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    apply(
        store,
        vec![create_room(1, "Café", "", Visibility::Public, alice)],
    )
    .await;
    // Given alice's notifications 1, 2, 4, 5, 7 and bob's 3 and 6
    let mut full = notification(7, alice, NotificationKind::RoomTerminated, 700);
    full.actor = bob;
    full.actor_name = "bob".into();
    apply(
        store,
        vec![
            notify(1, alice, 100),
            notify(2, alice, 200),
            notify(3, bob, 300),
            notify(4, alice, 400),
            notify(5, alice, 500),
            notify(6, bob, 600),
            WriteOp::AddNotification(full.clone()),
        ],
    )
    .await;

    // Then each user sees only their own, newest first, paged by id
    assert_eq!(notification_ids(store, alice, 0, 3).await, vec![7, 5, 4]);
    assert_eq!(notification_ids(store, alice, 4, 3).await, vec![2, 1]);
    assert_eq!(
        notification_ids(store, alice, 1, 3).await,
        Vec::<u64>::new()
    );
    assert_eq!(notification_ids(store, bob, 0, 10).await, vec![6, 3]);
    assert_eq!(notification_ids(store, alice, u64::MAX, 1).await, vec![7]);
    // With every field as stored
    let top = store
        .notifications(alice, 0, 1, false)
        .await
        .expect("notifications");
    assert_eq!(top, vec![full]);
    // And the highest id overall is known for the server's id counter
    assert_eq!(store.max_notification_id().await.expect("max id"), 7);
}

pub async fn add_notification_is_idempotent_by_id(store: &dyn Store) {
    let alice = user(store, "alice").await;
    apply(store, vec![notify(1, alice, 100), notify(1, alice, 100)]).await;
    // A replay with other content changes nothing
    let mut forged = notification(1, alice, NotificationKind::Unknown(42), 999);
    forged.room_name = "forged".into();
    apply(store, vec![WriteOp::AddNotification(forged)]).await;

    let stored = store
        .notifications(alice, 0, 10, false)
        .await
        .expect("notifications");
    assert_eq!(
        stored,
        vec![notification(1, alice, NotificationKind::Invited, 100)]
    );
}

/// Notification ids are handed out by the shards, but each shard's writes
/// reach the store on their own: a notification can commit after a mark
/// that covers its id (SPEC.md §5.8.3: a mark covers every id up to it).
pub async fn a_mark_covers_notifications_committed_after_it(store: &dyn Store) {
    let alice = user(store, "alice").await;
    apply(store, vec![notify(11, alice, 1_100)]).await;
    assert_eq!(store.mark_read(alice, 11).await.expect("mark"), 0);

    // When notification 10, made earlier by another shard, commits now
    apply(
        store,
        vec![notify(10, alice, 1_000), notify(12, alice, 1_200)],
    )
    .await;

    // Then it is read, as the mark said; 12 is not
    assert_eq!(store.unread_count(alice).await.expect("unread"), 1);
    let all = store
        .notifications(alice, 0, 10, false)
        .await
        .expect("notifications");
    assert_eq!(
        all.iter().map(|n| (n.id, n.read)).collect::<Vec<_>>(),
        vec![(12, false), (11, true), (10, true)]
    );
    let unread = store
        .notifications(alice, 0, 10, true)
        .await
        .expect("notifications");
    assert_eq!(unread.iter().map(|n| n.id).collect::<Vec<_>>(), vec![12]);
    // A lower mark never moves the mark back
    assert_eq!(store.mark_read(alice, 5).await.expect("mark"), 1);
    apply(store, vec![notify(9, alice, 900)]).await;
    assert_eq!(store.unread_count(alice).await.expect("unread"), 1);
}

pub async fn mark_read_counts_and_filters_unread(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    apply(
        store,
        (1..=5)
            .map(|id| notify(id, alice, id * 100))
            .chain([notify(6, bob, 600)])
            .collect(),
    )
    .await;
    assert_eq!(store.unread_count(alice).await.expect("unread"), 5);

    // When alice marks up to 3 read
    let left = store.mark_read(alice, 3).await.expect("mark_read");

    // Then two remain unread, bob's are untouched
    assert_eq!(left, 2);
    assert_eq!(store.unread_count(alice).await.expect("unread"), 2);
    assert_eq!(store.unread_count(bob).await.expect("unread"), 1);
    // And the unread-only list holds exactly those, newest first
    let unread = store
        .notifications(alice, 0, 10, true)
        .await
        .expect("notifications");
    assert_eq!(unread.iter().map(|n| n.id).collect::<Vec<_>>(), vec![5, 4]);
    // While the full list shows the read flags
    let all = store
        .notifications(alice, 0, 10, false)
        .await
        .expect("notifications");
    assert_eq!(
        all.iter().map(|n| (n.id, n.read)).collect::<Vec<_>>(),
        vec![(5, false), (4, false), (3, true), (2, true), (1, true)]
    );
    // Paging applies to the unread-only list too
    let page = store
        .notifications(alice, 5, 10, true)
        .await
        .expect("notifications");
    assert_eq!(page.iter().map(|n| n.id).collect::<Vec<_>>(), vec![4]);

    // Marking everything read, twice, leaves none
    assert_eq!(store.mark_read(alice, u64::MAX).await.expect("mark"), 0);
    assert_eq!(store.mark_read(alice, u64::MAX).await.expect("mark"), 0);
    assert_eq!(store.unread_count(alice).await.expect("unread"), 0);
    assert_eq!(store.unread_count(bob).await.expect("unread"), 1);
}

pub async fn purging_notifications_removes_old_ones_and_keeps_the_id_counter(store: &dyn Store) {
    let alice = user(store, "alice").await;
    assert_eq!(store.max_notification_id().await.expect("max id"), 0);
    apply(
        store,
        vec![
            notify(1, alice, 100),
            notify(2, alice, 200),
            notify(3, alice, 300),
        ],
    )
    .await;

    // Older than 200: only id 1 goes
    assert_eq!(store.purge_notifications(200).await.expect("purge"), 1);
    assert_eq!(notification_ids(store, alice, 0, 10).await, vec![3, 2]);
    assert_eq!(store.unread_count(alice).await.expect("unread"), 2);

    // When every notification is purged
    assert_eq!(store.purge_notifications(1_000).await.expect("purge"), 2);
    assert!(notification_ids(store, alice, 0, 10).await.is_empty());

    // Then the highest id ever stored is still known (ids are never reused)
    assert_eq!(store.max_notification_id().await.expect("max id"), 3);
    apply(store, vec![notify(4, alice, 1_100)]).await;
    assert_eq!(store.max_notification_id().await.expect("max id"), 4);
}

// ---- room log ---------------------------------------------------------------

pub async fn room_log_records_joins_and_leaves_most_recent_first(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    apply(
        store,
        vec![
            create_room(1, "one", "", Visibility::Public, alice),
            create_room(2, "two", "", Visibility::Public, alice),
            create_room(3, "three", "", Visibility::Private, alice),
            add_member(1, bob, Role::Member, 10),
            log_join(bob, 1, 10),
            log_join(bob, 2, 20),
            log_join(bob, 3, 30),
            log_leave(bob, 2, 25, LeaveReason::Kicked),
            log_leave(bob, 3, 35, LeaveReason::Banned),
        ],
    )
    .await;

    // Then bob's log is most recently joined first, with how each ended
    assert_eq!(
        log_keys(store, bob).await,
        vec![
            (3, Some(35), LeaveReason::Banned),
            (2, Some(25), LeaveReason::Kicked),
            (1, None, LeaveReason::Active),
        ]
    );

    // When he rejoins room 2, it moves to the top, keeping its first join
    apply(store, vec![log_join(bob, 2, 40)]).await;
    let log = store.room_log(bob).await.expect("room_log");
    assert_eq!(
        log.iter()
            .map(|e| (e.room.id.0, e.first_joined_at, e.last_joined_at, e.left_at))
            .collect::<Vec<_>>(),
        vec![(2, 20, 40, None), (3, 30, 30, Some(35)), (1, 10, 10, None),]
    );
    assert_eq!(log[0].reason, LeaveReason::Active);

    // Ending an association never logged creates no entry
    apply(store, vec![log_leave(alice, 1, 50, LeaveReason::Banned)]).await;
    assert!(store.room_log(alice).await.expect("room_log").is_empty());
}

pub async fn room_log_shows_rooms_as_they_are_now(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    apply(
        store,
        vec![
            create_room(1, "before", "t", Visibility::Public, alice),
            add_member(1, alice, Role::Owner, 1),
            add_member(1, bob, Role::Member, 2),
            log_join(bob, 1, 2),
            append(1, 1, bob, "hi"),
            create_room(2, "ending", "", Visibility::Public, alice),
            add_member(2, bob, Role::Member, 3),
            log_join(bob, 2, 3),
        ],
    )
    .await;

    // When room 1 is renamed and room 2 terminates
    apply(
        store,
        vec![
            WriteOp::UpdateRoom {
                room: RoomId(1),
                name: "after".into(),
                topic: "t2".into(),
            },
            log_leave(bob, 2, 9, LeaveReason::Terminated),
            terminate(2, 9),
        ],
    )
    .await;

    // Then the log shows the current name, counts and termination
    let log = store.room_log(bob).await.expect("room_log");
    let summary: Vec<_> = log
        .iter()
        .map(|e| {
            (
                e.room.id.0,
                e.room.name.as_str(),
                e.room.member_count,
                e.room.last_seq,
                e.terminated,
                e.reason,
            )
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            (2, "ending", 0, Seq(0), true, LeaveReason::Terminated),
            (1, "after", 2, Seq(1), false, LeaveReason::Active),
        ]
    );
    assert_eq!(
        (log[1].room.topic.as_str(), log[1].room.owner),
        ("t2", alice)
    );
}

pub async fn purging_the_room_log_keeps_current_recent_and_banned(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    apply(
        store,
        vec![
            create_room(1, "current", "", Visibility::Public, alice),
            create_room(2, "left long ago", "", Visibility::Public, alice),
            create_room(3, "left recently", "", Visibility::Public, alice),
            create_room(4, "banned long ago", "", Visibility::Public, alice),
            log_join(bob, 1, 10),
            log_join(bob, 2, 10),
            log_join(bob, 3, 10),
            log_join(bob, 4, 10),
            log_leave(bob, 2, 100, LeaveReason::Left),
            log_leave(bob, 3, 1_000, LeaveReason::Kicked),
            log_leave(bob, 4, 100, LeaveReason::Banned),
            ban(4, bob, alice, 100),
        ],
    )
    .await;

    // When entries that ended before 1000 are purged
    let purged = store.purge_room_log(1_000).await.expect("purge");

    // Then only the one left long ago (and not banned) goes
    assert_eq!(purged, 1);
    let mut left: Vec<u64> = log_keys(store, bob)
        .await
        .iter()
        .map(|(room, _, _)| *room)
        .collect();
    left.sort_unstable();
    assert_eq!(left, vec![1, 3, 4]);

    // And once unbanned, the ban no longer protects its entry
    apply(store, vec![unban(4, bob)]).await;
    assert_eq!(store.purge_room_log(1_000).await.expect("purge"), 1);
    assert_eq!(store.purge_room_log(1_000).await.expect("purge"), 0);
}

// ---- audit ------------------------------------------------------------------

pub async fn audit_trail_pages_newest_first_per_room_with_names(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    apply(
        store,
        vec![create_room(1, "r", "", Visibility::Public, alice)],
    )
    .await;
    let kicked = AuditEntry {
        at: 30,
        actor: alice,
        action: AuditAction::MemberKicked,
        room: Some(RoomId(1)),
        target: Some(bob),
        detail: "spam".into(),
    };
    apply(
        store,
        vec![
            WriteOp::Audit(audit_entry(10, alice, AuditAction::RoomCreated, Some(1))),
            WriteOp::Audit(audit_entry(15, bob, AuditAction::Login, None)),
            WriteOp::Audit(audit_entry(20, bob, AuditAction::MemberJoined, Some(1))),
            WriteOp::Audit(audit_entry(25, alice, AuditAction::RoomCreated, Some(2))),
            WriteOp::Audit(kicked.clone()),
            WriteOp::Audit(audit_entry(
                40,
                UserId(0),
                AuditAction::RoleChanged,
                Some(1),
            )),
        ],
    )
    .await;

    // Room 1's trail, newest first: other rooms and room-less entries excluded
    let trail = store.audit(RoomId(1), 0, 10).await.expect("audit");
    assert_eq!(
        trail
            .iter()
            .map(|a| a.entry.action.as_str())
            .collect::<Vec<_>>(),
        vec![
            "role_changed",
            "member_kicked",
            "member_joined",
            "room_created"
        ]
    );
    // Ids increase in insertion order
    let ids: Vec<u64> = trail.iter().map(|a| a.id).collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "ids {ids:?}");
    // Names are resolved; the system actor has none
    assert_eq!(
        (trail[0].actor_name.as_str(), trail[0].target_name.as_str()),
        ("", "")
    );
    assert_eq!(trail[1].entry, kicked);
    assert_eq!(
        (trail[1].actor_name.as_str(), trail[1].target_name.as_str()),
        ("alice", "bob")
    );

    // Paging continues strictly below the oldest id seen
    let first = store.audit(RoomId(1), 0, 2).await.expect("audit");
    let rest = store
        .audit(RoomId(1), first[1].id, 10)
        .await
        .expect("audit");
    assert_eq!(
        rest.iter()
            .map(|a| a.entry.action.as_str())
            .collect::<Vec<_>>(),
        vec!["member_joined", "room_created"]
    );
    assert!(store
        .audit(RoomId(9), 0, 10)
        .await
        .expect("audit")
        .is_empty());
}

// ---- sessions housekeeping ----------------------------------------------

pub async fn purging_sessions_removes_only_expired_ones(store: &dyn Store) {
    let alice = user(store, "alice").await;
    for (i, expires) in [100u64, 200, 300].into_iter().enumerate() {
        store
            .create_session(&[i as u8 + 1; 32], alice, 1, expires)
            .await
            .expect("session");
    }

    // Sessions expiring at or before 200 go
    assert_eq!(store.purge_expired_sessions(200).await.expect("purge"), 2);
    assert_eq!(store.purge_expired_sessions(200).await.expect("purge"), 0);
    assert!(store
        .session_user(&[3u8; 32], 250)
        .await
        .expect("lookup")
        .is_some());
    assert_eq!(store.purge_expired_sessions(u64::MAX).await.expect("p"), 1);
}
