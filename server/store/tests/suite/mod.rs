//! The store contract as tests, written once for every backend
//! (DESIGN.md invariant 7). Each scenario is a `pub async fn` over a fresh,
//! empty store; each backend's test file (`tests/sqlite.rs`,
//! `tests/postgres.rs`) runs every one of them against its own store.
//!
//! Scenarios create their users through the store (rooms and memberships
//! reference real users) and pick room ids themselves, as the shards do.

use std::future::Future;
use std::sync::Arc;

use confab_protocol::{Millis, Role, RoomId, RoomInfo, Seq, UserId, Visibility};
use confab_store::{
    AccountOutcome, AccountWrite, MemberRecord, RoomFilter, RoomRecord, Store, StoreError,
    StoredEvent, WriteOp,
};

mod direct;
mod files;
mod governance;
mod profiles;
mod replay;
pub use direct::*;
pub use files::*;
pub use governance::*;
pub use profiles::*;
pub use replay::*;

/// Calls `$m!(…)` with the name of every scenario that takes a fresh store
/// (all but `data_survives_reopening`, which takes an opener), so that
/// each backend's harness runs all of them and none can be forgotten.
macro_rules! for_each_scenario {
    ($m:ident) => {
        $m!(
            users_are_found_by_name_and_id,
            duplicate_username_is_a_conflict,
            sessions_resolve_until_expiry_and_deletion,
            account_writes_commit_together_and_a_taken_name_writes_nothing,
            a_failed_account_write_commits_none_of_its_call,
            batch_writes_rooms_members_and_events_for_loading,
            recent_events_are_the_newest_per_room_in_ascending_order,
            append_event_is_idempotent,
            events_read_alike_before_and_after_upkeep,
            failed_batch_leaves_nothing_behind,
            membership_upserts_changes_role_and_removes,
            private_rooms_are_listed_only_to_members,
            room_search_matches_name_or_topic_case_insensitively,
            room_search_treats_wildcards_literally,
            rooms_are_found_by_exact_name_whatever_the_case,
            room_list_pages_with_total_and_counts,
            rooms_of_user_lists_memberships_by_room_id,
            history_pages_backwards_newest_first,
            large_batches_store_every_event_byte_for_byte,
            update_room_renames_and_search_follows,
            set_owner_changes_the_rooms_owner,
            terminate_room_clears_members_invites_and_requests_but_keeps_bans,
            terminated_rooms_are_never_listed,
            banned_users_do_not_see_the_room,
            bans_are_replaced_loaded_with_names_and_lifted,
            invites_are_replaced_loaded_with_names_and_deleted,
            join_requests_load_oldest_first_per_room,
            ops_of_different_kinds_apply_in_batch_order,
            failed_batch_rolls_back_governance_ops,
            notifications_page_newest_first_per_user,
            add_notification_is_idempotent_by_id,
            mark_read_counts_and_filters_unread,
            a_mark_covers_notifications_committed_after_it,
            purging_notifications_removes_old_ones_and_keeps_the_id_counter,
            room_log_records_joins_and_leaves_most_recent_first,
            room_log_shows_rooms_as_they_are_now,
            purging_the_room_log_keeps_current_recent_and_banned,
            audit_trail_pages_newest_first_per_room_with_names,
            purging_sessions_removes_only_expired_ones,
            replaying_batches_in_order_converges_on_the_same_state,
            rewritten_events_read_as_their_latest_form_in_either_table,
            read_markers_only_rise_and_count_others_live_messages,
            direct_rooms_load_with_their_pair_show_the_other_user_and_are_never_listed,
            a_pair_has_one_direct_room_and_setting_it_again_is_a_replay,
            a_password_change_keeps_one_session_and_ends_the_others,
            profiles_are_replaced_read_back_and_cleared,
            files_are_recorded_with_every_field_and_ids_are_never_reused,
            a_file_is_claimed_once_by_its_uploader_in_its_room,
            a_message_attached_and_deleted_in_one_batch_ends_with_its_files_deleted,
            a_claim_whose_message_never_committed_expires_like_an_unreferenced_upload,
            housekeeping_expires_files_and_forgets_only_dead_hashes,
            tombstones_expire_files_in_either_event_table,
        );
    };
}
pub(crate) use for_each_scenario;

// ---- fixtures -------------------------------------------------------------

async fn user(store: &dyn Store, name: &str) -> UserId {
    store
        .create_user(name, &format!("$argon2id$hash-of-{name}"), 1_000)
        .await
        .expect("create_user")
}

fn create_room(id: u64, name: &str, topic: &str, visibility: Visibility, owner: UserId) -> WriteOp {
    WriteOp::CreateRoom {
        room: RoomId(id),
        name: name.to_owned(),
        topic: topic.to_owned(),
        visibility,
        owner,
        created_at: 10_000 + id,
    }
}

fn add_member(room: u64, user: UserId, role: Role, joined_at: Millis) -> WriteOp {
    WriteOp::AddMember {
        room: RoomId(room),
        user,
        role,
        joined_at,
    }
}

fn event(room: u64, seq: u64, actor: UserId, text: &str) -> StoredEvent {
    StoredEvent {
        room: RoomId(room),
        seq: Seq(seq),
        at: 20_000 + seq,
        actor,
        actor_name: format!("user{}", actor.0),
        kind: 1,
        body: text.as_bytes().to_vec(),
    }
}

fn append(room: u64, seq: u64, actor: UserId, text: &str) -> WriteOp {
    WriteOp::AppendEvent(event(room, seq, actor, text))
}

/// `(room, seq)` pairs, to compare event lists at a glance.
fn keys(events: &[StoredEvent]) -> Vec<(u64, u64)> {
    events.iter().map(|e| (e.room.0, e.seq.0)).collect()
}

fn ids(rooms: &[RoomInfo]) -> Vec<u64> {
    rooms.iter().map(|r| r.id.0).collect()
}

async fn apply(store: &dyn Store, ops: Vec<WriteOp>) {
    store.apply_batch(&ops).await.expect("apply_batch");
}

async fn list(store: &dyn Store, viewer: UserId, query: &str) -> Vec<u64> {
    list_by(store, viewer, RoomFilter::Contains(query)).await
}

async fn list_by(store: &dyn Store, viewer: UserId, filter: RoomFilter<'_>) -> Vec<u64> {
    let (rooms, total) = store
        .list_rooms(viewer, filter, 0, 100)
        .await
        .expect("list_rooms");
    assert_eq!(
        total as usize,
        rooms.len(),
        "total for {filter:?} disagrees with a full page"
    );
    ids(&rooms)
}

// ---- users ------------------------------------------------------------------

pub async fn users_are_found_by_name_and_id(store: &dyn Store) {
    // Given two registered users
    let alice = store
        .create_user("alice", "$argon2id$a", 1_234)
        .await
        .expect("create alice");
    let bob = store
        .create_user("bob", "$argon2id$b", 5_678)
        .await
        .expect("create bob");
    assert_ne!(alice, bob, "user ids are distinct");

    // Then each is found by name and by id, with every field as stored
    let by_name = store
        .user_by_name("alice")
        .await
        .expect("by name")
        .expect("alice exists");
    assert_eq!(by_name.id, alice);
    assert_eq!(by_name.username, "alice");
    assert_eq!(by_name.password_hash, "$argon2id$a");
    assert_eq!(by_name.created_at, 1_234);
    assert_eq!(store.user_by_id(alice).await.expect("by id"), Some(by_name));

    let bob_rec = store
        .user_by_id(bob)
        .await
        .expect("by id")
        .expect("bob exists");
    assert_eq!(
        (bob_rec.username.as_str(), bob_rec.created_at),
        ("bob", 5_678)
    );

    // And unknown names and ids are None, not errors
    assert_eq!(store.user_by_name("carol").await.expect("by name"), None);
    assert_eq!(
        store
            .user_by_id(UserId(alice.0 + bob.0 + 100))
            .await
            .expect("by id"),
        None
    );
    assert_eq!(
        store.user_by_id(UserId(u64::MAX)).await.expect("huge id"),
        None
    );
}

pub async fn duplicate_username_is_a_conflict(store: &dyn Store) {
    // Given alice is registered
    let alice = store
        .create_user("alice", "$argon2id$first", 1)
        .await
        .expect("create alice");

    // When someone registers "alice" again
    let again = store.create_user("alice", "$argon2id$second", 2).await;

    // Then it is a conflict on the username, and the first account is intact
    assert!(
        matches!(again, Err(StoreError::Conflict("username"))),
        "got {again:?}"
    );
    let rec = store
        .user_by_name("alice")
        .await
        .expect("by name")
        .expect("alice exists");
    assert_eq!(
        (rec.id, rec.password_hash.as_str()),
        (alice, "$argon2id$first")
    );
    // And a different name still registers
    store
        .create_user("alice2", "$argon2id$x", 3)
        .await
        .expect("a different name is fine");
}

// ---- sessions ---------------------------------------------------------------

fn register(name: &str, token: u8) -> AccountWrite {
    AccountWrite::Register {
        username: name.to_owned(),
        password_hash: format!("$argon2id$hash-of-{name}"),
        token_hash: [token; 32],
        now: 1_000,
        expires_at: 9_000,
    }
}

pub async fn account_writes_commit_together_and_a_taken_name_writes_nothing(store: &dyn Store) {
    // Given an existing account
    let alice = user(store, "alice").await;

    // When one call registers bob, alice again, carol, bob again, and
    // logs alice in
    let outcomes = store
        .write_accounts(&[
            register("bob", 1),
            register("alice", 2),
            register("carol", 3),
            register("bob", 4),
            AccountWrite::Session {
                user: alice,
                token_hash: [5; 32],
                now: 1_000,
                expires_at: 9_000,
            },
        ])
        .await
        .expect("write_accounts");

    // Then bob and carol are new accounts, the taken names are refused,
    // and alice's login made a session
    let bob = store
        .user_by_name("bob")
        .await
        .expect("lookup")
        .expect("bob");
    let carol = store
        .user_by_name("carol")
        .await
        .expect("lookup")
        .expect("carol");
    assert_eq!(
        outcomes,
        vec![
            AccountOutcome::Registered(bob.id),
            AccountOutcome::UsernameTaken,
            AccountOutcome::Registered(carol.id),
            AccountOutcome::UsernameTaken,
            AccountOutcome::SessionCreated,
        ]
    );
    assert_ne!(bob.id, carol.id);
    assert_eq!(bob.password_hash, "$argon2id$hash-of-bob");

    // And each created session resolves to its own user; a refused
    // registration's token resolves to nobody (not to the name's owner)
    let owner = |token: u8| async move {
        store
            .session_user(&[token; 32], 2_000)
            .await
            .expect("lookup")
            .map(|u| u.username)
    };
    assert_eq!(owner(1).await.as_deref(), Some("bob"));
    assert_eq!(owner(2).await, None);
    assert_eq!(owner(3).await.as_deref(), Some("carol"));
    assert_eq!(owner(4).await, None);
    assert_eq!(owner(5).await.as_deref(), Some("alice"));
    // alice's account is as it was
    let a = store
        .user_by_name("alice")
        .await
        .expect("lookup")
        .expect("alice");
    assert_eq!(
        (a.id, a.password_hash.as_str()),
        (alice, "$argon2id$hash-of-alice")
    );

    // And an empty call writes nothing and answers nothing
    assert_eq!(store.write_accounts(&[]).await.expect("empty"), vec![]);
}

pub async fn a_failed_account_write_commits_none_of_its_call(store: &dyn Store) {
    // Given an existing session token
    let alice = user(store, "alice").await;
    store
        .create_session(&[9; 32], alice, 1_000, 9_000)
        .await
        .expect("session");

    // When a call registers dave and then reuses that token for a login
    let result = store
        .write_accounts(&[
            register("dave", 1),
            AccountWrite::Session {
                user: alice,
                token_hash: [9; 32],
                now: 1_000,
                expires_at: 9_000,
            },
        ])
        .await;

    // Then the call fails and dave was not created either
    assert!(
        result.is_err(),
        "a duplicate token must fail the call: {result:?}"
    );
    assert_eq!(store.user_by_name("dave").await.expect("lookup"), None);
    assert_eq!(
        store.session_user(&[1; 32], 2_000).await.expect("lookup"),
        None
    );
}

pub async fn sessions_resolve_until_expiry_and_deletion(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let alice_token = [7u8; 32];
    let bob_token = [9u8; 32];

    // Given sessions for alice (expiring at 2000) and bob
    store
        .create_session(&alice_token, alice, 1_000, 2_000)
        .await
        .expect("session a");
    store
        .create_session(&bob_token, bob, 1_000, 9_000)
        .await
        .expect("session b");

    // Then each token resolves to its own user before expiry
    let who = store
        .session_user(&alice_token, 1_999)
        .await
        .expect("lookup");
    assert_eq!(
        who.map(|u| (u.id, u.username)),
        Some((alice, "alice".to_owned()))
    );
    let who = store.session_user(&bob_token, 1_500).await.expect("lookup");
    assert_eq!(who.map(|u| u.id), Some(bob));

    // And not at or after expires_at
    assert_eq!(
        store
            .session_user(&alice_token, 2_000)
            .await
            .expect("lookup"),
        None
    );
    assert_eq!(
        store
            .session_user(&alice_token, 5_000)
            .await
            .expect("lookup"),
        None
    );

    // And an unknown token resolves to nobody
    assert_eq!(
        store.session_user(&[1u8; 32], 1_500).await.expect("lookup"),
        None
    );

    // When bob's session is deleted, it no longer resolves; alice's is untouched
    store.delete_session(&bob_token).await.expect("delete");
    assert_eq!(
        store.session_user(&bob_token, 1_500).await.expect("lookup"),
        None
    );
    assert!(store
        .session_user(&alice_token, 1_500)
        .await
        .expect("lookup")
        .is_some());

    // And deleting an unknown or already deleted session is not an error
    store
        .delete_session(&bob_token)
        .await
        .expect("delete again");
    store
        .delete_session(&[2u8; 32])
        .await
        .expect("delete unknown");
}

// ---- start-up loading -------------------------------------------------------

pub async fn batch_writes_rooms_members_and_events_for_loading(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let carol = user(store, "carol").await;

    // Given two rooms created with members and events in one batch.
    // Room 2 is listed first and members join out of id order, to show
    // that loading orders by room, then join time, then user id.
    apply(
        store,
        vec![
            create_room(2, "Beta", "second", Visibility::Private, bob),
            create_room(1, "Alpha", "first", Visibility::Public, alice),
            add_member(1, carol, Role::Member, 300),
            add_member(1, alice, Role::Owner, 100),
            add_member(1, bob, Role::Admin, 300), // same time as carol
            add_member(2, bob, Role::Owner, 50),
            append(1, 1, alice, "hello"),
            append(1, 2, bob, "hi"),
            append(2, 1, bob, "beta"),
        ],
    )
    .await;

    // Then load_rooms returns both, by id, with last_seq raised by the events
    let rooms = store.load_rooms().await.expect("load_rooms");
    assert_eq!(
        rooms,
        vec![
            RoomRecord {
                id: RoomId(1),
                name: "Alpha".into(),
                topic: "first".into(),
                visibility: Visibility::Public,
                owner: alice,
                created_at: 10_001,
                last_seq: Seq(2),
                terminated_at: None,
                direct: None,
            },
            RoomRecord {
                id: RoomId(2),
                name: "Beta".into(),
                topic: "second".into(),
                visibility: Visibility::Private,
                owner: bob,
                created_at: 10_002,
                last_seq: Seq(1),
                terminated_at: None,
                direct: None,
            },
        ]
    );

    // And load_members orders by room, then joined_at, then user id
    let members = store.load_members().await.expect("load_members");
    let (first, second) = if bob.0 < carol.0 {
        (bob, carol)
    } else {
        (carol, bob)
    };
    let role_of = |u: UserId| if u == bob { Role::Admin } else { Role::Member };
    let name_of = |u: UserId| if u == bob { "bob" } else { "carol" };
    assert_eq!(
        members,
        vec![
            MemberRecord {
                room: RoomId(1),
                user: alice,
                username: "alice".into(),
                role: Role::Owner,
                joined_at: 100
            },
            MemberRecord {
                room: RoomId(1),
                user: first,
                username: name_of(first).into(),
                role: role_of(first),
                joined_at: 300
            },
            MemberRecord {
                room: RoomId(1),
                user: second,
                username: name_of(second).into(),
                role: role_of(second),
                joined_at: 300
            },
            MemberRecord {
                room: RoomId(2),
                user: bob,
                username: "bob".into(),
                role: Role::Owner,
                joined_at: 50
            },
        ]
    );

    // And the events come back byte for byte
    let events = store
        .load_recent_events(10)
        .await
        .expect("load_recent_events");
    assert_eq!(
        events,
        vec![
            event(1, 1, alice, "hello"),
            event(1, 2, bob, "hi"),
            event(2, 1, bob, "beta")
        ]
    );
}

pub async fn recent_events_are_the_newest_per_room_in_ascending_order(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let mut ops = vec![
        create_room(1, "one", "", Visibility::Public, alice),
        create_room(2, "two", "", Visibility::Public, alice),
        create_room(3, "three", "", Visibility::Public, alice),
    ];
    // Given room 1 with 6 events, room 2 with 2 and room 3 with none
    ops.extend((1..=6).map(|s| append(1, s, alice, "m")));
    ops.extend((1..=2).map(|s| append(2, s, alice, "m")));
    apply(store, ops).await;

    // When loading 3 per room
    let events = store
        .load_recent_events(3)
        .await
        .expect("load_recent_events");

    // Then room 1 yields its newest three in ascending order, room 2 all it has
    assert_eq!(keys(&events), vec![(1, 4), (1, 5), (1, 6), (2, 1), (2, 2)]);

    // And per_room bounds each room separately
    let events = store
        .load_recent_events(1)
        .await
        .expect("load_recent_events");
    assert_eq!(keys(&events), vec![(1, 6), (2, 2)]);
    assert!(store.load_recent_events(0).await.expect("zero").is_empty());
}

// ---- apply_batch semantics ----------------------------------------------

pub async fn append_event_is_idempotent(store: &dyn Store) {
    let alice = user(store, "alice").await;
    apply(
        store,
        vec![create_room(1, "r", "", Visibility::Public, alice)],
    )
    .await;

    // Given event 1 and 2 stored, with event 1 applied twice in one batch
    apply(
        store,
        vec![
            append(1, 1, alice, "one"),
            append(1, 1, alice, "one"),
            append(1, 2, alice, "two"),
        ],
    )
    .await;

    // When the same batch is replayed, and event 1 is retried with other bytes
    apply(
        store,
        vec![append(1, 1, alice, "one"), append(1, 2, alice, "two")],
    )
    .await;
    apply(store, vec![append(1, 1, alice, "a forgery")]).await;

    // Then each event is stored once, as first written
    let history = store
        .history(RoomId(1), Seq(0), 100)
        .await
        .expect("history");
    assert_eq!(
        history,
        vec![event(1, 2, alice, "two"), event(1, 1, alice, "one")]
    );

    // And last_seq is the highest seq; replaying an older event did not lower it
    let rooms = store.load_rooms().await.expect("load_rooms");
    assert_eq!(
        rooms.iter().map(|r| r.last_seq).collect::<Vec<_>>(),
        vec![Seq(2)]
    );
}

/// Store upkeep (`BatchSink::tidy`; SQLite folds its event log into
/// `events`) changes no read, and events replayed after it are still
/// stored once, as first written.
pub async fn events_read_alike_before_and_after_upkeep(store: &dyn Store) {
    let alice = user(store, "alice").await;
    apply(
        store,
        vec![
            create_room(1, "r", "", Visibility::Public, alice),
            create_room(2, "s", "", Visibility::Public, alice),
        ],
    )
    .await;
    apply(
        store,
        vec![append(1, 1, alice, "one"), append(1, 2, alice, "two")],
    )
    .await;
    store.tidy(true).await.expect("tidy");
    // Events 3 and 4 only written, events 1 and 2 replayed (one as a forgery).
    apply(
        store,
        vec![
            append(1, 1, alice, "a forgery"),
            append(1, 2, alice, "two"),
            append(1, 3, alice, "three"),
            append(2, 1, alice, "elsewhere"),
        ],
    )
    .await;
    apply(store, vec![append(1, 4, alice, "four")]).await;

    let expected = vec![
        event(1, 4, alice, "four"),
        event(1, 3, alice, "three"),
        event(1, 2, alice, "two"),
        event(1, 1, alice, "one"),
    ];
    for round in ["written", "tidied", "tidied twice"] {
        let history = store
            .history(RoomId(1), Seq(0), 100)
            .await
            .expect("history");
        assert_eq!(history, expected, "{round}");
        // A page that straddles what was folded and what was not.
        let page = store.history(RoomId(1), Seq(4), 2).await.expect("history");
        assert_eq!(page, expected[1..3].to_vec(), "{round}");
        let recent = store.load_recent_events(3).await.expect("recent");
        assert_eq!(
            keys(&recent),
            vec![(1, 2), (1, 3), (1, 4), (2, 1)],
            "{round}"
        );
        let rooms = store.load_rooms().await.expect("load_rooms");
        let last: Vec<_> = rooms.iter().map(|r| r.last_seq).collect();
        assert_eq!(last, vec![Seq(4), Seq(1)], "{round}");
        let (listed, _) = store
            .list_rooms(alice, RoomFilter::Contains(""), 0, 10)
            .await
            .expect("list_rooms");
        let last: Vec<_> = listed.iter().map(|r| r.last_seq).collect();
        assert_eq!(last, vec![Seq(4), Seq(1)], "{round}");
        store.tidy(true).await.expect("tidy");
    }
}

/// An edit or a delete rewrites the event in place (kind and body; time
/// and actor stay), in the batch that appends it or later, before and after
/// upkeep; the later of two rewrites wins; a rewrite of an event the store
/// never got changes nothing; replaying the batches converges.
pub async fn rewritten_events_read_as_their_latest_form_in_either_table(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let rewrite = |seq: u64, kind: u8, body: &str| {
        WriteOp::RewriteEvent(StoredEvent {
            kind,
            ..event(1, seq, alice, body)
        })
    };
    let batches = vec![
        vec![create_room(1, "r", "", Visibility::Public, alice)],
        vec![
            append(1, 1, alice, "one"),
            append(1, 2, alice, "two"),
            rewrite(2, 1, "two, edited"),
            rewrite(2, 1, "two, edited again"),
        ],
        vec![append(1, 3, alice, "three"), rewrite(9, 12, "")],
    ];
    for b in &batches {
        apply(store, b.clone()).await;
    }
    store.tidy(true).await.expect("tidy");
    // Event 3 is rewritten after upkeep moved it (on SQLite), 1 before.
    apply(store, vec![rewrite(1, 12, ""), append(1, 4, alice, "four")]).await;
    apply(store, vec![rewrite(3, 1, "three, edited")]).await;
    let expected = vec![
        event(1, 4, alice, "four"),
        event(1, 3, alice, "three, edited"),
        event(1, 2, alice, "two, edited again"),
        StoredEvent {
            kind: 12,
            ..event(1, 1, alice, "")
        },
    ];
    let history = || async {
        store
            .history(RoomId(1), Seq(0), 100)
            .await
            .expect("history")
    };
    assert_eq!(history().await, expected);
    // A replay of the early batches must not undo the later rewrites of
    // events it re-appends (appends are ignored, rewrites re-applied in
    // order, then the later batches follow again).
    for b in &batches {
        apply(store, b.clone()).await;
    }
    apply(store, vec![rewrite(1, 12, ""), append(1, 4, alice, "four")]).await;
    apply(store, vec![rewrite(3, 1, "three, edited")]).await;
    assert_eq!(history().await, expected);
}

pub async fn failed_batch_leaves_nothing_behind(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    apply(
        store,
        vec![
            create_room(1, "existing", "", Visibility::Public, alice),
            add_member(1, alice, Role::Owner, 1),
        ],
    )
    .await;

    // When a batch's last operation violates a constraint (a membership of
    // a user who does not exist; a duplicate room would be a replay, which
    // succeeds)
    let result = store
        .apply_batch(&[
            add_member(1, bob, Role::Member, 2),
            append(1, 1, bob, "lost"),
            WriteOp::SetRole {
                room: RoomId(1),
                user: alice,
                role: Role::Admin,
            },
            create_room(2, "new", "", Visibility::Public, bob),
            add_member(2, UserId(alice.0 + bob.0 + 100), Role::Member, 3),
        ])
        .await;

    // Then the batch fails as a whole
    assert!(
        matches!(result, Err(StoreError::Database { .. })),
        "got {result:?}"
    );

    // And none of its earlier operations is visible
    let rooms = store.load_rooms().await.expect("load_rooms");
    assert_eq!(rooms.len(), 1, "room 2 must not exist: {rooms:?}");
    assert_eq!(
        (rooms[0].name.as_str(), rooms[0].last_seq),
        ("existing", Seq(0))
    );
    let members = store.load_members().await.expect("load_members");
    assert_eq!(
        members.iter().map(|m| (m.user, m.role)).collect::<Vec<_>>(),
        vec![(alice, Role::Owner)]
    );
    assert!(store
        .history(RoomId(1), Seq(0), 10)
        .await
        .expect("history")
        .is_empty());

    // And the store still accepts the next batch
    apply(store, vec![append(1, 1, alice, "after")]).await;
    assert_eq!(
        keys(&store.history(RoomId(1), Seq(0), 10).await.expect("history")),
        vec![(1, 1)]
    );
}

pub async fn membership_upserts_changes_role_and_removes(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    apply(
        store,
        vec![
            create_room(1, "r", "", Visibility::Public, alice),
            add_member(1, bob, Role::Member, 10),
        ],
    )
    .await;

    // When bob is added again with another role and time
    apply(store, vec![add_member(1, bob, Role::Admin, 20)]).await;
    // Then there is still one membership, with the new role and time
    let members = store.load_members().await.expect("load_members");
    assert_eq!(
        members
            .iter()
            .map(|m| (m.user, m.role, m.joined_at))
            .collect::<Vec<_>>(),
        vec![(bob, Role::Admin, 20)]
    );

    // When his role is set
    apply(
        store,
        vec![WriteOp::SetRole {
            room: RoomId(1),
            user: bob,
            role: Role::Member,
        }],
    )
    .await;
    let members = store.load_members().await.expect("load_members");
    assert_eq!(
        members.iter().map(|m| (m.user, m.role)).collect::<Vec<_>>(),
        vec![(bob, Role::Member)]
    );

    // When he is removed, the room has no members and he has no rooms
    apply(
        store,
        vec![WriteOp::RemoveMember {
            room: RoomId(1),
            user: bob,
        }],
    )
    .await;
    assert!(store.load_members().await.expect("load_members").is_empty());
    assert!(store
        .rooms_of_user(bob)
        .await
        .expect("rooms_of_user")
        .is_empty());
}

// ---- room listing -----------------------------------------------------------

pub async fn private_rooms_are_listed_only_to_members(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    apply(
        store,
        vec![
            create_room(1, "lobby", "", Visibility::Public, alice),
            create_room(2, "secret", "", Visibility::Private, alice),
            add_member(2, alice, Role::Owner, 1),
            create_room(3, "also secret", "", Visibility::Private, alice),
        ],
    )
    .await;

    // A non-member sees only the public room
    assert_eq!(list(store, bob, "").await, vec![1]);
    assert_eq!(list(store, bob, "secret").await, Vec::<u64>::new());
    // A member also sees the private room she belongs to, but not the other
    assert_eq!(list(store, alice, "").await, vec![1, 2]);
    assert_eq!(list(store, alice, "secret").await, vec![2]);

    // Once bob joins, he sees it too
    apply(store, vec![add_member(2, bob, Role::Member, 2)]).await;
    assert_eq!(list(store, bob, "").await, vec![1, 2]);
}

pub async fn room_search_matches_name_or_topic_case_insensitively(store: &dyn Store) {
    let alice = user(store, "alice").await;
    apply(
        store,
        vec![
            create_room(
                1,
                "Rust Users",
                "systems programming",
                Visibility::Public,
                alice,
            ),
            create_room(
                2,
                "Cooking",
                "RUSTIC bread and pasta",
                Visibility::Public,
                alice,
            ),
            create_room(3, "Gardening", "tomatoes", Visibility::Public, alice),
            create_room(4, "Café Société", "Über alles", Visibility::Public, alice),
        ],
    )
    .await;

    // Name (1) and topic (2) both match, whatever the case on either side
    assert_eq!(list(store, alice, "rust").await, vec![1, 2]);
    assert_eq!(list(store, alice, "RuSt").await, vec![1, 2]);
    assert_eq!(list(store, alice, "Tomato").await, vec![3]);
    assert_eq!(list(store, alice, "programming").await, vec![1]);
    assert_eq!(
        list(store, alice, "nothing like this").await,
        Vec::<u64>::new()
    );
    // Case-insensitive beyond ASCII too
    assert_eq!(list(store, alice, "CAFÉ").await, vec![4]);
    assert_eq!(list(store, alice, "über").await, vec![4]);
    // The empty query matches every room
    assert_eq!(list(store, alice, "").await, vec![1, 2, 3, 4]);
}

pub async fn room_search_treats_wildcards_literally(store: &dyn Store) {
    let alice = user(store, "alice").await;
    apply(
        store,
        vec![
            create_room(1, "100% uptime", "", Visibility::Public, alice),
            create_room(2, "100 percent", "", Visibility::Public, alice),
            create_room(3, "snake_case", "", Visibility::Public, alice),
            create_room(4, "snakeXcase", "", Visibility::Public, alice),
            create_room(5, "back\\slash", "", Visibility::Public, alice),
            create_room(6, "wow!", "", Visibility::Public, alice),
        ],
    )
    .await;

    assert_eq!(list(store, alice, "%").await, vec![1]);
    assert_eq!(list(store, alice, "100%").await, vec![1]);
    assert_eq!(list(store, alice, "_").await, vec![3]);
    assert_eq!(list(store, alice, "e_c").await, vec![3]);
    assert_eq!(list(store, alice, "\\").await, vec![5]);
    assert_eq!(list(store, alice, "k\\s").await, vec![5]);
    assert_eq!(list(store, alice, "!").await, vec![6]);
    assert_eq!(list(store, alice, "w!").await, vec![6]);
}

pub async fn rooms_are_found_by_exact_name_whatever_the_case(store: &dyn Store) {
    let alice = user(store, "alice").await;
    apply(
        store,
        vec![
            create_room(1, "General", "", Visibility::Public, alice),
            create_room(2, "general chat", "General", Visibility::Public, alice),
            create_room(3, "GENERAL", "", Visibility::Public, alice),
            create_room(4, "Straße", "", Visibility::Public, alice),
        ],
    )
    .await;
    let named = |name| list_by(store, alice, RoomFilter::Named(name));
    // Names are not unique: both rooms named "general" in any case match,
    // not the one that merely contains it, nor a topic.
    assert_eq!(named("general").await, vec![1, 3]);
    assert_eq!(named("  GeNeRaL ").await, vec![1, 3], "trimmed, any case");
    assert_eq!(named("gen").await, Vec::<u64>::new(), "whole names only");
    // Lowercasing, not case folding (SPEC.md §5.3.3): ß is not "ss".
    assert_eq!(named("STRASSE").await, Vec::<u64>::new());
    assert_eq!(named("STRAßE").await, vec![4]);
    assert_eq!(
        named("").await,
        Vec::<u64>::new(),
        "no room has an empty name"
    );
}

pub async fn room_list_pages_with_total_and_counts(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let mut ops: Vec<WriteOp> = (1..=5)
        .map(|id| create_room(id, &format!("room {id}"), "", Visibility::Public, alice))
        .collect();
    ops.push(create_room(6, "other", "", Visibility::Public, alice));
    ops.extend([
        add_member(2, alice, Role::Owner, 1),
        add_member(2, bob, Role::Member, 2),
        add_member(3, bob, Role::Member, 3),
    ]);
    ops.extend([append(3, 1, bob, "x"), append(3, 2, bob, "y")]);
    apply(store, ops).await;

    // A middle page: the right rooms by id, and the total of all matches
    let (page, total) = store
        .list_rooms(bob, RoomFilter::Contains("room"), 1, 2)
        .await
        .expect("list_rooms");
    assert_eq!((ids(&page), total), (vec![2, 3], 5));
    // With member_count and last_seq filled in
    assert_eq!(
        page.iter()
            .map(|r| (r.member_count, r.last_seq))
            .collect::<Vec<_>>(),
        vec![(2, Seq(0)), (1, Seq(2))]
    );
    assert_eq!(
        (page[0].name.as_str(), page[0].owner, page[0].created_at),
        ("room 2", alice, 10_002)
    );

    // The last, partial page
    let (page, total) = store
        .list_rooms(bob, RoomFilter::Contains("room"), 4, 2)
        .await
        .expect("list_rooms");
    assert_eq!((ids(&page), total), (vec![5], 5));
    // Past the end: no rooms, but still the total
    let (page, total) = store
        .list_rooms(bob, RoomFilter::Contains("room"), 10, 2)
        .await
        .expect("list_rooms");
    assert_eq!((ids(&page), total), (vec![], 5));
    // A zero limit still counts
    let (page, total) = store
        .list_rooms(bob, RoomFilter::Contains(""), 0, 0)
        .await
        .expect("list_rooms");
    assert_eq!((ids(&page), total), (vec![], 6));
}

pub async fn rooms_of_user_lists_memberships_by_room_id(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    apply(
        store,
        vec![
            create_room(3, "c", "", Visibility::Private, alice),
            create_room(1, "a", "", Visibility::Public, alice),
            create_room(2, "b", "", Visibility::Public, alice),
            add_member(3, bob, Role::Member, 1),
            add_member(3, alice, Role::Owner, 1),
            add_member(1, bob, Role::Admin, 2),
            append(3, 1, alice, "hi"),
        ],
    )
    .await;

    // Bob's rooms — including the private one — by id, with counts
    let rooms = store.rooms_of_user(bob).await.expect("rooms_of_user");
    assert_eq!(
        rooms
            .iter()
            .map(|r| (r.id.0, r.visibility, r.member_count, r.last_seq))
            .collect::<Vec<_>>(),
        vec![
            (1, Visibility::Public, 1, Seq(0)),
            (3, Visibility::Private, 2, Seq(1))
        ]
    );
    assert_eq!(
        ids(&store.rooms_of_user(alice).await.expect("rooms_of_user")),
        vec![3]
    );
    assert!(store
        .rooms_of_user(UserId(alice.0 + bob.0 + 100))
        .await
        .expect("unknown")
        .is_empty());
}

// ---- history ----------------------------------------------------------------

pub async fn history_pages_backwards_newest_first(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let mut ops = vec![
        create_room(1, "r", "", Visibility::Public, alice),
        create_room(2, "other", "", Visibility::Public, alice),
    ];
    ops.extend((1..=10).map(|s| append(1, s, alice, &format!("m{s}"))));
    ops.extend((1..=20).map(|s| append(2, s, alice, "other room")));
    apply(store, ops).await;

    let page = |before: u64, limit: u32| async move {
        let events = store
            .history(RoomId(1), Seq(before), limit)
            .await
            .expect("history");
        assert!(
            events.iter().all(|e| e.room == RoomId(1)),
            "only room 1's events"
        );
        events.iter().map(|e| e.seq.0).collect::<Vec<_>>()
    };

    // before = 0 means from the newest
    assert_eq!(page(0, 3).await, vec![10, 9, 8]);
    // Then each page continues strictly below the oldest seq seen
    assert_eq!(page(8, 3).await, vec![7, 6, 5]);
    assert_eq!(page(5, 3).await, vec![4, 3, 2]);
    assert_eq!(page(2, 3).await, vec![1]);
    assert_eq!(page(1, 3).await, Vec::<u64>::new());
    // A bound above the newest is no bound
    assert_eq!(page(1_000, 2).await, vec![10, 9]);
    // The event bytes come back intact
    let top = store.history(RoomId(1), Seq(0), 1).await.expect("history");
    assert_eq!(top, vec![event(1, 10, alice, "m10")]);
    // An unknown room has no history
    assert!(store
        .history(RoomId(99), Seq(0), 10)
        .await
        .expect("history")
        .is_empty());
}

/// Big batches take a backend's bulk path (UNNEST / COPY in Postgres):
/// every byte value, empty bodies, non-ASCII names, duplicates inside the
/// batch and rows already stored must all come through exactly once.
pub async fn large_batches_store_every_event_byte_for_byte(store: &dyn Store) {
    let alice = user(store, "alice").await;
    apply(
        store,
        vec![
            create_room(1, "a", "", Visibility::Public, alice),
            create_room(2, "b", "", Visibility::Public, alice),
        ],
    )
    .await;
    let make = |room: u64, seq: u64| StoredEvent {
        room: RoomId(room),
        seq: Seq(seq),
        at: 1_700_000_000_000 + seq,
        actor: alice,
        actor_name: format!("ünïcødé \t\"'{seq}"),
        kind: (seq % 256) as u8,
        // 0..=255 byte values, including NUL and invalid UTF-8; every
        // 100th body empty.
        body: (0..(seq % 100) * 3).map(|i| (i * 7 + seq) as u8).collect(),
    };
    // Given 1 200 events already stored in room 1
    apply(
        store,
        (1..=1_200)
            .map(|s| WriteOp::AppendEvent(make(1, s)))
            .collect(),
    )
    .await;

    // When a batch of 2 600 events arrives that repeats 200 of them with
    // other bytes, interleaves two rooms and repeats some within itself
    let mut ops = Vec::new();
    for s in 1_001..=2_400 {
        let mut ev = make(1, s);
        if s <= 1_200 {
            ev.body = b"replayed with other bytes".to_vec();
        }
        ops.push(WriteOp::AppendEvent(ev));
        if s == 1_500 {
            // A duplicate right behind the original, with other bytes:
            // the first one wins however the backend groups rows
            let mut again = make(1, s);
            again.body = b"second write, adjacent".to_vec();
            ops.push(WriteOp::AppendEvent(again));
        }
        if s % 2 == 0 {
            ops.push(WriteOp::AppendEvent(make(2, s / 2)));
        }
    }
    ops.extend((1..=500).map(|s| WriteOp::AppendEvent(make(2, s))));
    ops.extend((450..=550).map(|s| WriteOp::AppendEvent(make(2, s))));
    // A duplicate within the batch with other bytes: the first one wins
    let mut late = make(1, 1_500);
    late.body = b"second write of 1/1500".to_vec();
    ops.push(WriteOp::AppendEvent(late));
    assert!(ops.len() >= 2_000);
    apply(store, ops).await;

    // Then each room holds every event once, as first written
    let room1 = store
        .history(RoomId(1), Seq(0), 5_000)
        .await
        .expect("history");
    assert_eq!(room1.len(), 2_400);
    assert!(room1.iter().rev().zip(1..).all(|(ev, s)| *ev == make(1, s)));
    let room2 = store
        .history(RoomId(2), Seq(0), 5_000)
        .await
        .expect("history");
    assert_eq!(room2.len(), 1_200);
    assert!(room2.iter().rev().zip(1..).all(|(ev, s)| *ev == make(2, s)));
    let rooms = store.load_rooms().await.expect("load_rooms");
    assert_eq!(
        rooms.iter().map(|r| r.last_seq).collect::<Vec<_>>(),
        vec![Seq(2_400), Seq(1_200)]
    );
}

// ---- durability -------------------------------------------------------------

/// `open` opens the same database each time it is called.
pub async fn data_survives_reopening<F, Fut>(open: F)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Arc<dyn Store>>,
{
    let token = [5u8; 32];
    let alice;
    {
        // Given a store with a user, a session, a room, a member and an event
        let store = open().await;
        alice = user(&*store, "alice").await;
        store
            .create_session(&token, alice, 1, 1_000)
            .await
            .expect("session");
        apply(
            &*store,
            vec![
                create_room(1, "kept", "topic", Visibility::Private, alice),
                add_member(1, alice, Role::Owner, 5),
                append(1, 1, alice, "still here"),
            ],
        )
        .await;
        // and a read marker
        assert!(store
            .raise_read_marker(alice, RoomId(1), Seq(1))
            .await
            .expect("raise_read_marker"));
    } // and then closed

    // When it is opened again
    let store = open().await;

    // Then everything is still there
    assert_eq!(
        store
            .user_by_name("alice")
            .await
            .expect("by name")
            .map(|u| u.id),
        Some(alice)
    );
    assert_eq!(
        store
            .session_user(&token, 2)
            .await
            .expect("session")
            .map(|u| u.id),
        Some(alice)
    );
    let rooms = store.load_rooms().await.expect("load_rooms");
    assert_eq!(
        rooms
            .iter()
            .map(|r| (r.id.0, r.name.as_str(), r.last_seq))
            .collect::<Vec<_>>(),
        vec![(1, "kept", Seq(1))]
    );
    assert_eq!(store.load_members().await.expect("load_members").len(), 1);
    assert_eq!(
        store.history(RoomId(1), Seq(0), 10).await.expect("history"),
        vec![event(1, 1, alice, "still here")]
    );
    let marker = store.room_unread(alice, RoomId(1)).await.expect("marker");
    assert_eq!((marker.read_seq, marker.unread), (Seq(1), 0));
    // And a new user gets a fresh id
    let bob = user(&*store, "bob").await;
    assert_ne!(bob, alice);
}

/// A read marker only rises (a lower or equal one is no move); a room's
/// unread count is its messages after the marker sent by others — not the
/// user's own, not other kinds of event, not tombstones — wherever the
/// events are stored (before and after upkeep), and MY_ROOMS' statement
/// gives the same per room, 0 for a room never marked with nothing in it.
pub async fn read_markers_only_rise_and_count_others_live_messages(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let tombstone = |seq: u64| {
        WriteOp::RewriteEvent(StoredEvent {
            kind: 12,
            ..event(1, seq, bob, "")
        })
    };
    let joined = |seq: u64| {
        WriteOp::AppendEvent(StoredEvent {
            kind: 2,
            body: Vec::new(),
            ..event(1, seq, bob, "")
        })
    };
    apply(
        store,
        vec![
            create_room(1, "one", "", Visibility::Public, alice),
            add_member(1, alice, Role::Owner, 10),
            add_member(1, bob, Role::Member, 11),
            create_room(2, "two", "", Visibility::Public, alice),
            add_member(2, alice, Role::Owner, 12),
            append(1, 1, bob, "b1"),
            append(1, 2, alice, "a2"),
            joined(3),
            append(1, 4, bob, "b4"),
        ],
    )
    .await;
    store.tidy(true).await.expect("tidy");
    apply(
        store,
        vec![
            append(1, 5, bob, "b5"),
            append(1, 6, bob, "b6"),
            tombstone(5),
        ],
    )
    .await;
    let unread = |user: UserId| async move {
        let r = store
            .room_unread(user, RoomId(1))
            .await
            .expect("room_unread");
        (r.read_seq.0, r.unread)
    };
    // b1, b4, b6 (b5 is deleted); bob's count: alice's a2 alone.
    assert_eq!(unread(alice).await, (0, 3));
    assert_eq!(unread(bob).await, (0, 1));

    let raise = |seq: u64| store.raise_read_marker(alice, RoomId(1), Seq(seq));
    assert!(raise(4).await.expect("raise"), "0 -> 4 moves");
    assert_eq!(unread(alice).await, (4, 1), "b6 only");
    assert!(!raise(2).await.expect("raise"), "never back");
    assert!(!raise(4).await.expect("raise"), "nor to where it is");
    assert_eq!(unread(alice).await, (4, 1));
    assert!(raise(6).await.expect("raise"));
    assert_eq!(unread(alice).await, (6, 0));
    assert_eq!(unread(bob).await, (0, 1), "markers are per user");
    assert!(
        !store
            .raise_read_marker(bob, RoomId(2), Seq(0))
            .await
            .expect("raise"),
        "a first marker at 0 is no move"
    );

    let mine = store.my_rooms(alice).await.expect("my_rooms");
    let got: Vec<_> = mine
        .iter()
        .map(|m| (m.info.id.0, m.read_seq.0, m.unread, m.info.member_count))
        .collect();
    assert_eq!(got, vec![(1, 6, 0, 2), (2, 0, 0, 1)]);
    let mine = store.my_rooms(bob).await.expect("my_rooms");
    let got: Vec<_> = mine
        .iter()
        .map(|m| (m.info.id.0, m.read_seq.0, m.unread))
        .collect();
    assert_eq!(got, vec![(1, 0, 1)]);
    assert_eq!(mine[0].info, store.rooms_of_user(bob).await.unwrap()[0]);
}
