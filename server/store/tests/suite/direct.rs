//! Direct rooms in the store contract (OPEN_DIRECT, SPEC.md §5.3.7): a
//! room marked with its pair of users loads with the pair, is shown to
//! each of them named after the other, is never listed in the directory,
//! and a pair has at most one direct room.

use confab_protocol::{DirectWith, LeaveReason, Role, RoomId, UserId, Visibility};
use confab_store::{RoomFilter, Store, WriteOp};

use super::{add_member, apply, create_room, list, list_by, user};

fn set_direct(room: u64, low: UserId, high: UserId) -> WriteOp {
    WriteOp::SetDirect {
        room: RoomId(room),
        low,
        high,
    }
}

pub async fn direct_rooms_load_with_their_pair_show_the_other_user_and_are_never_listed(
    store: &dyn Store,
) {
    // Given alice's direct room with bob (and a private room of alice's)
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    let carol = user(store, "carol").await;
    assert!(alice < bob);
    apply(
        store,
        vec![
            create_room(1, "alice & bob", "", Visibility::Private, alice),
            set_direct(1, alice, bob),
            add_member(1, alice, Role::Owner, 1),
            add_member(1, bob, Role::Member, 1),
            WriteOp::LogJoin {
                user: bob,
                room: RoomId(1),
                at: 1,
            },
            create_room(2, "plans", "", Visibility::Private, alice),
            add_member(2, alice, Role::Owner, 2),
        ],
    )
    .await;

    // Then start-up loads the pair with both names, lower id first
    let rooms = store.load_rooms().await.expect("load_rooms");
    assert_eq!(
        rooms[0].direct,
        Some([(alice, "alice".to_owned()), (bob, "bob".to_owned())])
    );
    assert_eq!(rooms[1].direct, None);

    // Each side sees the room named after the other, with direct_with
    let seen = |rooms: Vec<confab_protocol::RoomInfo>| {
        rooms
            .into_iter()
            .map(|r| (r.id.0, r.name, r.direct_with))
            .collect::<Vec<_>>()
    };
    let with = |user: UserId, username: &str| {
        Some(DirectWith {
            user,
            username: username.to_owned(),
        })
    };
    assert_eq!(
        seen(store.rooms_of_user(alice).await.expect("rooms_of_user")),
        vec![
            (1, "bob".into(), with(bob, "bob")),
            (2, "plans".into(), None)
        ]
    );
    let mine = store.my_rooms(bob).await.expect("my_rooms");
    assert_eq!(
        seen(mine.into_iter().map(|m| m.info).collect()),
        vec![(1, "alice".into(), with(alice, "alice"))]
    );
    let log = store.room_log(bob).await.expect("room_log");
    assert_eq!(
        seen(log.into_iter().map(|e| e.room).collect()),
        vec![(1, "alice".into(), with(alice, "alice"))]
    );

    // And the directory never lists it, by any query, to anyone
    assert_eq!(list(store, alice, "").await, vec![2]);
    assert_eq!(list(store, bob, "").await, Vec::<u64>::new());
    assert_eq!(list(store, carol, "").await, Vec::<u64>::new());
    assert_eq!(
        list_by(store, alice, RoomFilter::Named("alice & bob")).await,
        Vec::<u64>::new()
    );

    // Also after both left: the room and its pair stay
    apply(
        store,
        vec![
            WriteOp::RemoveMember {
                room: RoomId(1),
                user: bob,
            },
            WriteOp::LogLeave {
                user: bob,
                room: RoomId(1),
                at: 5,
                reason: LeaveReason::Left,
            },
        ],
    )
    .await;
    assert!(store.rooms_of_user(bob).await.expect("rooms").is_empty());
    assert!(store.load_rooms().await.expect("load")[0].direct.is_some());
}

pub async fn a_pair_has_one_direct_room_and_setting_it_again_is_a_replay(store: &dyn Store) {
    let alice = user(store, "alice").await;
    let bob = user(store, "bob").await;
    apply(
        store,
        vec![
            create_room(1, "alice & bob", "", Visibility::Private, alice),
            set_direct(1, alice, bob),
        ],
    )
    .await;

    // Setting the same pair on the same room again (a replay) is harmless
    apply(store, vec![set_direct(1, alice, bob)]).await;

    // A second room for the pair fails its batch, which stores nothing
    let second = vec![
        create_room(2, "alice & bob", "", Visibility::Private, bob),
        set_direct(2, alice, bob),
        add_member(2, bob, Role::Owner, 3),
    ];
    assert!(store.apply_batch(&second).await.is_err());
    let rooms = store.load_rooms().await.expect("load_rooms");
    assert_eq!(rooms.iter().map(|r| r.id.0).collect::<Vec<_>>(), vec![1]);
    assert!(store.rooms_of_user(bob).await.expect("rooms").is_empty());
}
