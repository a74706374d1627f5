//! Room state machine tests: one behaviour each, explicit clocks.
use super::*;

const ALICE: UserId = UserId(1);
const BOB: UserId = UserId(2);
const CAROL: UserId = UserId(3);

fn public_room() -> Room {
    Room::create(
        RoomId(7),
        "general".into(),
        "chat".into(),
        Visibility::Public,
        ALICE,
        "alice".into(),
        1_000,
    )
    .0
}

fn events(fx: &[Effect]) -> Vec<&RoomEvent> {
    fx.iter()
        .filter_map(|e| {
            if let Effect::Event(ev) = e {
                Some(ev)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn creator_becomes_owner_member_and_first_event_is_room_created() {
    let (room, fx) = Room::create(
        RoomId(7),
        "general".into(),
        "chat".into(),
        Visibility::Public,
        ALICE,
        "alice".into(),
        1_000,
    );
    assert_eq!(room.member(ALICE).map(|m| m.role), Some(Role::Owner));
    assert_eq!(room.owner, ALICE);
    let evs = events(&fx);
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].seq, Seq(1));
    assert!(matches!(evs[0].body, EventBody::RoomCreated { .. }));
    assert!(fx.contains(&Effect::Subscribe(ALICE)));
    assert!(
        matches!(fx[0], Effect::Persist(WriteOp::CreateRoom { .. })),
        "room row persisted before its event"
    );
}

#[test]
fn group_created_with_members_adds_them_in_the_same_effects() {
    let (room, fx) = Room::create_group(
        RoomId(7),
        "trip".into(),
        String::new(),
        Visibility::Private,
        (ALICE, "alice".into()),
        vec![(BOB, "bob".into()), (CAROL, "carol".into())],
        1_000,
    );
    let roles: Vec<(UserId, Role)> = room.members().iter().map(|m| (m.user, m.role)).collect();
    assert_eq!(
        roles,
        vec![
            (ALICE, Role::Owner),
            (BOB, Role::Member),
            (CAROL, Role::Member)
        ]
    );
    let added: Vec<UserId> = fx
        .iter()
        .filter_map(|e| match e {
            Effect::Persist(WriteOp::AddMember { user, .. }) => Some(*user),
            _ => None,
        })
        .collect();
    assert_eq!(added, vec![ALICE, BOB, CAROL], "one write list, one step");
    for u in [ALICE, BOB, CAROL] {
        assert!(fx.contains(&Effect::Subscribe(u)));
    }
    let evs: Vec<(Seq, UserId, bool)> = events(&fx)
        .iter()
        .map(|e| (e.seq, e.actor, matches!(e.body, EventBody::MemberJoined)))
        .collect();
    assert_eq!(
        evs,
        vec![
            (Seq(1), ALICE, false),
            (Seq(2), BOB, true),
            (Seq(3), CAROL, true)
        ]
    );
    assert_eq!(room.info().member_count, 3);
}

#[test]
fn join_adds_member_subscribes_and_announces() {
    let mut room = public_room();
    let fx = room
        .apply(
            Command::Join {
                user: BOB,
                username: "bob".into(),
            },
            2_000,
        )
        .unwrap();
    assert_eq!(
        room.member(BOB).map(|m| (m.role, m.joined_at)),
        Some((Role::Member, 2_000))
    );
    assert!(fx.contains(&Effect::Subscribe(BOB)));
    let evs = events(&fx);
    assert_eq!(
        (evs[0].seq, evs[0].actor, &evs[0].body),
        (Seq(2), BOB, &EventBody::MemberJoined)
    );
}

#[test]
fn joining_twice_is_already_member_and_changes_nothing() {
    let mut room = public_room();
    room.apply(
        Command::Join {
            user: BOB,
            username: "bob".into(),
        },
        2_000,
    )
    .unwrap();
    let seq = room.last_seq;
    assert_eq!(
        room.apply(
            Command::Join {
                user: BOB,
                username: "bob".into()
            },
            3_000
        ),
        Err(ErrorCode::AlreadyMember)
    );
    assert_eq!(room.last_seq, seq);
    assert_eq!(room.members().len(), 2);
}

#[test]
fn private_room_refuses_direct_join() {
    let (mut room, _) = Room::create(
        RoomId(8),
        "secret".into(),
        String::new(),
        Visibility::Private,
        ALICE,
        "alice".into(),
        0,
    );
    assert_eq!(
        room.apply(
            Command::Join {
                user: BOB,
                username: "bob".into()
            },
            1
        ),
        Err(ErrorCode::RoomPrivate)
    );
    assert!(!room.is_member(BOB));
}

#[test]
fn only_members_may_post_and_posts_are_numbered_in_order() {
    let mut room = public_room();
    assert_eq!(
        room.apply(
            Command::Post {
                user: BOB,
                text: "hi".into(),
                rich: Rich::default(),
            },
            5
        ),
        Err(ErrorCode::NotAMember)
    );
    room.apply(
        Command::Join {
            user: BOB,
            username: "bob".into(),
        },
        6,
    )
    .unwrap();
    let a = room
        .apply(
            Command::Post {
                user: BOB,
                text: "one".into(),
                rich: Rich::default(),
            },
            7,
        )
        .unwrap();
    let b = room
        .apply(
            Command::Post {
                user: ALICE,
                text: "two".into(),
                rich: Rich::default(),
            },
            8,
        )
        .unwrap();
    let (a, b) = (events(&a)[0].clone(), events(&b)[0].clone());
    assert_eq!((a.seq, b.seq), (Seq(3), Seq(4)));
    assert_eq!(a.actor_name, "bob");
    assert_eq!(b.body, EventBody::text("two"));
    assert_eq!(b.at, 8);
}

#[test]
fn leave_announces_then_unsubscribes_and_non_members_cannot_leave() {
    let mut room = public_room();
    room.apply(
        Command::Join {
            user: BOB,
            username: "bob".into(),
        },
        6,
    )
    .unwrap();
    assert_eq!(
        room.apply(Command::Leave { user: CAROL }, 7),
        Err(ErrorCode::NotAMember)
    );
    let fx = room.apply(Command::Leave { user: BOB }, 8).unwrap();
    assert!(!room.is_member(BOB));
    let ev_pos = fx
        .iter()
        .position(|e| matches!(e, Effect::Event(_)))
        .unwrap();
    let unsub_pos = fx
        .iter()
        .position(|e| *e == Effect::Unsubscribe(BOB))
        .unwrap();
    assert!(ev_pos < unsub_pos, "the leaver sees its own MEMBER_LEFT");
    assert!(fx.contains(&Effect::Persist(WriteOp::RemoveMember {
        room: RoomId(7),
        user: BOB
    })));
    assert_eq!(
        room.apply(
            Command::Post {
                user: BOB,
                text: "x".into(),
                rich: Rich::default(),
            },
            9
        ),
        Err(ErrorCode::NotAMember)
    );
}

#[test]
fn a_user_who_left_may_join_again_and_keeps_join_order_at_the_end() {
    let mut room = public_room();
    room.apply(
        Command::Join {
            user: BOB,
            username: "bob".into(),
        },
        2,
    )
    .unwrap();
    room.apply(
        Command::Join {
            user: CAROL,
            username: "carol".into(),
        },
        3,
    )
    .unwrap();
    room.apply(Command::Leave { user: BOB }, 4).unwrap();
    room.apply(
        Command::Join {
            user: BOB,
            username: "bob".into(),
        },
        5,
    )
    .unwrap();
    let order: Vec<_> = room.members().iter().map(|m| m.user).collect();
    assert_eq!(order, vec![ALICE, CAROL, BOB]);
}

#[test]
fn info_reflects_members_and_last_seq() {
    let mut room = public_room();
    room.apply(
        Command::Join {
            user: BOB,
            username: "bob".into(),
        },
        2,
    )
    .unwrap();
    let info = room.info();
    assert_eq!(
        (info.member_count, info.last_seq, info.owner),
        (2, Seq(2), ALICE)
    );
}

// ---- governance -----------------------------------------------------------

const DAVE: UserId = UserId(4);

fn join(room: &mut Room, user: UserId, name: &str, at: Millis) {
    room.apply(
        Command::Join {
            user,
            username: name.into(),
        },
        at,
    )
    .expect("join");
}

/// alice (owner), bob, carol, in that order.
fn trio() -> Room {
    let mut room = public_room();
    join(&mut room, BOB, "bob", 2);
    join(&mut room, CAROL, "carol", 3);
    room
}

fn private_room() -> Room {
    Room::create(
        RoomId(8),
        "secret".into(),
        String::new(),
        Visibility::Private,
        ALICE,
        "alice".into(),
        0,
    )
    .0
}

fn notifications(fx: &[Effect]) -> Vec<(UserId, Notify)> {
    fx.iter()
        .filter_map(|e| {
            if let Effect::Notify { user, kind, .. } = e {
                Some((*user, *kind))
            } else {
                None
            }
        })
        .collect()
}

fn bodies(fx: &[Effect]) -> Vec<EventBody> {
    events(fx).into_iter().map(|e| e.body.clone()).collect()
}

fn roles(room: &Room) -> Vec<(UserId, Role)> {
    room.members().iter().map(|m| (m.user, m.role)).collect()
}

fn audits(fx: &[Effect]) -> Vec<&'static str> {
    fx.iter()
        .filter_map(|e| {
            if let Effect::Audit { action, .. } = e {
                Some(action.as_str())
            } else {
                None
            }
        })
        .collect()
}

fn make_admin(room: &mut Room, user: UserId) {
    room.apply(
        Command::SetRole {
            by: ALICE,
            target: user,
            role: Role::Admin,
        },
        10,
    )
    .expect("promote");
}

#[test]
fn only_admins_invite_and_the_invitee_is_notified() {
    let mut room = private_room();
    let fx = room
        .apply(
            Command::Invite {
                by: ALICE,
                target: BOB,
                target_name: "bob".into(),
            },
            5,
        )
        .unwrap();
    assert_eq!(notifications(&fx), vec![(BOB, Notify::Invited)]);
    assert_eq!(audits(&fx), vec!["invited"]);
    assert!(fx.contains(&Effect::Persist(WriteOp::PutInvite {
        room: RoomId(8),
        user: BOB,
        by: ALICE,
        at: 5
    })));
    room.apply(
        Command::RespondInvite {
            user: BOB,
            username: "bob".into(),
            accept: true,
        },
        6,
    )
    .unwrap();
    assert_eq!(
        room.apply(
            Command::Invite {
                by: BOB,
                target: CAROL,
                target_name: "carol".into()
            },
            7
        ),
        Err(ErrorCode::NotAdmin)
    );
    assert_eq!(
        room.apply(
            Command::Invite {
                by: DAVE,
                target: CAROL,
                target_name: "carol".into()
            },
            7
        ),
        Err(ErrorCode::NotAMember)
    );
}

#[test]
fn accepting_an_invitation_joins_a_private_room_and_consumes_it() {
    let mut room = private_room();
    room.apply(
        Command::Invite {
            by: ALICE,
            target: BOB,
            target_name: "bob".into(),
        },
        5,
    )
    .unwrap();
    let fx = room
        .apply(
            Command::RespondInvite {
                user: BOB,
                username: "bob".into(),
                accept: true,
            },
            6,
        )
        .unwrap();
    assert!(room.is_member(BOB));
    assert!(room.invites().is_empty());
    assert!(fx.contains(&Effect::Subscribe(BOB)));
    assert!(fx.contains(&Effect::Persist(WriteOp::DeleteInvite {
        room: RoomId(8),
        user: BOB
    })));
    assert_eq!(bodies(&fx), vec![EventBody::MemberJoined]);
}

#[test]
fn a_direct_join_of_a_private_room_works_with_an_invitation() {
    let mut room = private_room();
    room.apply(
        Command::Invite {
            by: ALICE,
            target: BOB,
            target_name: "bob".into(),
        },
        5,
    )
    .unwrap();
    room.apply(
        Command::Join {
            user: BOB,
            username: "bob".into(),
        },
        6,
    )
    .unwrap();
    assert!(room.is_member(BOB));
    assert_eq!(
        room.apply(
            Command::Join {
                user: CAROL,
                username: "carol".into()
            },
            7
        ),
        Err(ErrorCode::RoomPrivate)
    );
}

#[test]
fn declining_removes_the_invitation_and_responding_without_one_fails() {
    let mut room = private_room();
    room.apply(
        Command::Invite {
            by: ALICE,
            target: BOB,
            target_name: "bob".into(),
        },
        5,
    )
    .unwrap();
    let fx = room
        .apply(
            Command::RespondInvite {
                user: BOB,
                username: "bob".into(),
                accept: false,
            },
            6,
        )
        .unwrap();
    assert!(!room.is_member(BOB) && room.invites().is_empty());
    assert_eq!(audits(&fx), vec!["invite_declined"]);
    assert_eq!(
        room.apply(
            Command::RespondInvite {
                user: BOB,
                username: "bob".into(),
                accept: true
            },
            7
        ),
        Err(ErrorCode::NotInvited)
    );
}

#[test]
fn inviting_members_twice_or_banned_users_is_refused() {
    let mut room = trio();
    let invite = |t: UserId| Command::Invite {
        by: ALICE,
        target: t,
        target_name: "x".into(),
    };
    assert_eq!(room.apply(invite(BOB), 5), Err(ErrorCode::AlreadyMember));
    room.apply(invite(DAVE), 5).unwrap();
    assert_eq!(room.apply(invite(DAVE), 6), Err(ErrorCode::AlreadyInvited));
    room.apply(
        Command::Ban {
            by: ALICE,
            target: UserId(9),
            target_name: "eve".into(),
        },
        7,
    )
    .unwrap();
    assert_eq!(
        room.apply(invite(UserId(9)), 8),
        Err(ErrorCode::TargetBanned)
    );
}

#[test]
fn join_requests_notify_every_admin_and_approval_adds_the_member() {
    let mut room = private_room();
    room.apply(
        Command::Invite {
            by: ALICE,
            target: BOB,
            target_name: "bob".into(),
        },
        1,
    )
    .unwrap();
    room.apply(
        Command::RespondInvite {
            user: BOB,
            username: "bob".into(),
            accept: true,
        },
        2,
    )
    .unwrap();
    make_admin(&mut room, BOB);
    let fx = room
        .apply(
            Command::RequestJoin {
                user: CAROL,
                username: "carol".into(),
            },
            3,
        )
        .unwrap();
    assert_eq!(
        notifications(&fx),
        vec![(ALICE, Notify::JoinRequest), (BOB, Notify::JoinRequest)]
    );
    assert_eq!(
        room.apply(
            Command::RequestJoin {
                user: CAROL,
                username: "carol".into()
            },
            4
        ),
        Err(ErrorCode::AlreadyRequested)
    );
    assert_eq!(room.requests().len(), 1);
    let fx = room
        .apply(
            Command::Decide {
                by: BOB,
                target: CAROL,
                approve: true,
            },
            5,
        )
        .unwrap();
    assert!(room.is_member(CAROL) && room.requests().is_empty());
    assert_eq!(notifications(&fx), vec![(CAROL, Notify::RequestApproved)]);
    assert!(fx.contains(&Effect::Subscribe(CAROL)));
    // SPEC.md §8.11: the join, then the decision.
    assert_eq!(audits(&fx), vec!["member_joined", "request_approved"]);
    assert_eq!(
        room.apply(
            Command::Decide {
                by: BOB,
                target: CAROL,
                approve: true
            },
            6
        ),
        Err(ErrorCode::NoSuchRequest)
    );
}

#[test]
fn denial_notifies_and_only_admins_decide() {
    let mut room = private_room();
    room.apply(
        Command::RequestJoin {
            user: BOB,
            username: "bob".into(),
        },
        1,
    )
    .unwrap();
    assert_eq!(
        room.apply(
            Command::Decide {
                by: CAROL,
                target: BOB,
                approve: true
            },
            2
        ),
        Err(ErrorCode::NotAMember)
    );
    let fx = room
        .apply(
            Command::Decide {
                by: ALICE,
                target: BOB,
                approve: false,
            },
            3,
        )
        .unwrap();
    assert_eq!(notifications(&fx), vec![(BOB, Notify::RequestDenied)]);
    assert!(!room.is_member(BOB) && room.requests().is_empty());
    // A denied user may ask again.
    room.apply(
        Command::RequestJoin {
            user: BOB,
            username: "bob".into(),
        },
        4,
    )
    .unwrap();
}

#[test]
fn members_cannot_request_to_join_their_own_room() {
    let mut room = trio();
    assert_eq!(
        room.apply(
            Command::RequestJoin {
                user: BOB,
                username: "bob".into()
            },
            5
        ),
        Err(ErrorCode::AlreadyMember)
    );
}

#[test]
fn kick_removes_notifies_and_the_kicked_may_request_again_or_be_invited() {
    let mut room = trio();
    let fx = room
        .apply(
            Command::Kick {
                by: ALICE,
                target: BOB,
            },
            5,
        )
        .unwrap();
    assert!(!room.is_member(BOB));
    assert_eq!(notifications(&fx), vec![(BOB, Notify::Kicked)]);
    let ev = events(&fx)[0].clone();
    assert_eq!(ev.actor, ALICE);
    assert_eq!(
        ev.body,
        EventBody::MemberKicked {
            target: BOB,
            target_name: "bob".into()
        }
    );
    let ev_pos = fx
        .iter()
        .position(|e| matches!(e, Effect::Event(_)))
        .unwrap();
    let unsub = fx
        .iter()
        .position(|e| *e == Effect::Unsubscribe(BOB))
        .unwrap();
    assert!(ev_pos < unsub, "the kicked user sees the kick");
    assert!(fx.contains(&Effect::Persist(WriteOp::LogLeave {
        user: BOB,
        room: RoomId(7),
        at: 5,
        reason: LeaveReason::Kicked
    })));
    room.apply(
        Command::RequestJoin {
            user: BOB,
            username: "bob".into(),
        },
        6,
    )
    .unwrap();
    room.apply(
        Command::Invite {
            by: ALICE,
            target: BOB,
            target_name: "bob".into(),
        },
        7,
    )
    .unwrap();
}

#[test]
fn kick_rules_self_owner_non_member_and_admins() {
    let mut room = trio();
    make_admin(&mut room, BOB);
    assert_eq!(
        room.apply(
            Command::Kick {
                by: BOB,
                target: BOB
            },
            5
        ),
        Err(ErrorCode::CannotTargetSelf)
    );
    assert_eq!(
        room.apply(
            Command::Kick {
                by: BOB,
                target: ALICE
            },
            5
        ),
        Err(ErrorCode::CannotTargetOwner)
    );
    assert_eq!(
        room.apply(
            Command::Kick {
                by: BOB,
                target: DAVE
            },
            5
        ),
        Err(ErrorCode::TargetNotMember)
    );
    assert_eq!(
        room.apply(
            Command::Kick {
                by: CAROL,
                target: BOB
            },
            5
        ),
        Err(ErrorCode::NotAdmin)
    );
    make_admin(&mut room, CAROL);
    assert_eq!(
        room.apply(
            Command::Kick {
                by: CAROL,
                target: BOB
            },
            5
        ),
        Err(ErrorCode::NotOwner),
        "admins cannot kick admins"
    );
    room.apply(
        Command::Kick {
            by: ALICE,
            target: BOB,
        },
        6,
    )
    .unwrap();
}

#[test]
fn ban_removes_hides_and_blocks_join_request_and_invite_until_unban() {
    let mut room = trio();
    room.apply(
        Command::RequestJoin {
            user: DAVE,
            username: "dave".into(),
        },
        4,
    )
    .unwrap();
    let fx = room
        .apply(
            Command::Ban {
                by: ALICE,
                target: BOB,
                target_name: "bob".into(),
            },
            5,
        )
        .unwrap();
    assert!(!room.is_member(BOB) && room.is_banned(BOB));
    assert_eq!(notifications(&fx), vec![(BOB, Notify::Banned)]);
    assert_eq!(
        bodies(&fx),
        vec![EventBody::MemberBanned {
            target: BOB,
            target_name: "bob".into()
        }]
    );
    assert!(fx.contains(&Effect::Unsubscribe(BOB)));
    assert_eq!(
        room.apply(
            Command::Join {
                user: BOB,
                username: "bob".into()
            },
            6
        ),
        Err(ErrorCode::Banned)
    );
    assert_eq!(
        room.apply(
            Command::RequestJoin {
                user: BOB,
                username: "bob".into()
            },
            6
        ),
        Err(ErrorCode::Banned)
    );
    assert_eq!(
        room.apply(
            Command::Ban {
                by: ALICE,
                target: BOB,
                target_name: "bob".into()
            },
            6
        ),
        Err(ErrorCode::AlreadyBanned)
    );
    // A pending request is dropped by a ban.
    room.apply(
        Command::Ban {
            by: ALICE,
            target: DAVE,
            target_name: "dave".into(),
        },
        7,
    )
    .unwrap();
    assert!(room.requests().is_empty());

    let fx = room
        .apply(
            Command::Unban {
                by: ALICE,
                target: BOB,
            },
            8,
        )
        .unwrap();
    assert_eq!(notifications(&fx), vec![(BOB, Notify::Unbanned)]);
    assert_eq!(
        room.apply(
            Command::Unban {
                by: ALICE,
                target: BOB
            },
            9
        ),
        Err(ErrorCode::NotBanned)
    );
    room.apply(
        Command::RequestJoin {
            user: BOB,
            username: "bob".into(),
        },
        10,
    )
    .unwrap();
    room.apply(
        Command::Join {
            user: BOB,
            username: "bob".into(),
        },
        11,
    )
    .unwrap();
}

#[test]
fn banning_the_owner_or_oneself_is_refused() {
    let mut room = trio();
    make_admin(&mut room, BOB);
    assert_eq!(
        room.apply(
            Command::Ban {
                by: BOB,
                target: ALICE,
                target_name: "alice".into()
            },
            5
        ),
        Err(ErrorCode::CannotTargetOwner)
    );
    assert_eq!(
        room.apply(
            Command::Ban {
                by: BOB,
                target: BOB,
                target_name: "bob".into()
            },
            5
        ),
        Err(ErrorCode::CannotTargetSelf)
    );
    assert_eq!(
        room.apply(
            Command::Ban {
                by: CAROL,
                target: BOB,
                target_name: "bob".into()
            },
            5
        ),
        Err(ErrorCode::NotAdmin)
    );
}

#[test]
fn only_the_owner_makes_and_unmakes_admins() {
    let mut room = trio();
    make_admin(&mut room, BOB);
    assert_eq!(
        room.apply(
            Command::SetRole {
                by: BOB,
                target: CAROL,
                role: Role::Admin
            },
            5
        ),
        Err(ErrorCode::NotOwner),
        "promotion by a non-owner admin"
    );
    assert_eq!(
        room.apply(
            Command::SetRole {
                by: CAROL,
                target: BOB,
                role: Role::Member
            },
            5
        ),
        Err(ErrorCode::NotOwner)
    );
    assert_eq!(
        room.apply(
            Command::SetRole {
                by: ALICE,
                target: BOB,
                role: Role::Owner
            },
            5
        ),
        Err(ErrorCode::InvalidRole)
    );
    assert_eq!(
        room.apply(
            Command::SetRole {
                by: ALICE,
                target: ALICE,
                role: Role::Member
            },
            5
        ),
        Err(ErrorCode::CannotTargetSelf)
    );
    assert_eq!(
        room.apply(
            Command::SetRole {
                by: ALICE,
                target: DAVE,
                role: Role::Admin
            },
            5
        ),
        Err(ErrorCode::TargetNotMember)
    );
    let fx = room
        .apply(
            Command::SetRole {
                by: ALICE,
                target: BOB,
                role: Role::Member,
            },
            6,
        )
        .unwrap();
    assert_eq!(notifications(&fx), vec![(BOB, Notify::RoleChanged)]);
    assert_eq!(
        bodies(&fx),
        vec![EventBody::RoleChanged {
            target: BOB,
            target_name: "bob".into(),
            role: Role::Member
        }]
    );
    assert!(room
        .apply(
            Command::SetRole {
                by: ALICE,
                target: BOB,
                role: Role::Member
            },
            7
        )
        .unwrap()
        .is_empty());
}

#[test]
fn when_the_owner_leaves_the_earliest_admin_becomes_owner() {
    let mut room = trio();
    join(&mut room, DAVE, "dave", 4);
    make_admin(&mut room, CAROL);
    let fx = room.apply(Command::Leave { user: ALICE }, 20).unwrap();
    assert_eq!(room.owner, CAROL, "the admin, although bob joined earlier");
    assert_eq!(
        roles(&room),
        vec![
            (BOB, Role::Member),
            (CAROL, Role::Owner),
            (DAVE, Role::Member)
        ]
    );
    let last = events(&fx).last().cloned().unwrap();
    assert_eq!(last.actor, SYSTEM);
    assert_eq!(
        last.body,
        EventBody::RoleChanged {
            target: CAROL,
            target_name: "carol".into(),
            role: Role::Owner
        }
    );
    assert!(fx.contains(&Effect::Persist(WriteOp::SetOwner {
        room: RoomId(7),
        owner: CAROL
    })));
    assert_eq!(notifications(&fx), vec![(CAROL, Notify::RoleChanged)]);
}

#[test]
fn owner_leaving_with_only_non_admins_passes_ownership_by_join_order() {
    let mut room = trio();
    room.apply(Command::Leave { user: ALICE }, 20).unwrap();
    assert_eq!(room.owner, BOB);
    assert_eq!(
        roles(&room),
        vec![(BOB, Role::Owner), (CAROL, Role::Member)]
    );
    assert!(!room.terminated);
}

#[test]
fn two_admins_one_leaves_the_other_stays_admin_and_nobody_else_is_promoted() {
    let mut room = trio();
    make_admin(&mut room, BOB);
    join(&mut room, DAVE, "dave", 4);
    let fx = room.apply(Command::Leave { user: BOB }, 20).unwrap();
    assert_eq!(
        roles(&room),
        vec![
            (ALICE, Role::Owner),
            (CAROL, Role::Member),
            (DAVE, Role::Member)
        ]
    );
    assert!(notifications(&fx).is_empty());
}

#[test]
fn when_one_non_admin_is_left_the_room_terminates_and_tells_them() {
    let mut room = public_room();
    join(&mut room, BOB, "bob", 2);
    let fx = room.apply(Command::Leave { user: ALICE }, 20).unwrap();
    assert!(room.terminated);
    assert!(room.members().is_empty());
    assert_eq!(notifications(&fx), vec![(BOB, Notify::RoomTerminated)]);
    assert_eq!(
        bodies(&fx),
        vec![EventBody::MemberLeft, EventBody::RoomTerminated]
    );
    let term = fx
        .iter()
        .position(|e| matches!(e, Effect::Event(ev) if ev.body == EventBody::RoomTerminated))
        .unwrap();
    let unsub = fx
        .iter()
        .position(|e| *e == Effect::Unsubscribe(BOB))
        .unwrap();
    assert!(term < unsub, "the last member sees the termination");
    assert!(fx.contains(&Effect::Persist(WriteOp::TerminateRoom {
        room: RoomId(7),
        at: 20
    })));
    assert!(fx.contains(&Effect::Persist(WriteOp::LogLeave {
        user: BOB,
        room: RoomId(7),
        at: 20,
        reason: LeaveReason::Terminated
    })));
}

#[test]
fn a_lone_admin_keeps_the_room_until_they_leave() {
    let mut room = public_room();
    join(&mut room, BOB, "bob", 2);
    room.apply(Command::Leave { user: BOB }, 3).unwrap();
    assert!(!room.terminated, "the owner alone keeps the room");
    let fx = room.apply(Command::Leave { user: ALICE }, 4).unwrap();
    assert!(room.terminated);
    assert_eq!(
        bodies(&fx),
        vec![EventBody::MemberLeft, EventBody::RoomTerminated]
    );
}

#[test]
fn a_lone_admin_left_by_the_owner_becomes_owner() {
    let mut room = public_room();
    join(&mut room, BOB, "bob", 2);
    make_admin(&mut room, BOB);
    room.apply(Command::Leave { user: ALICE }, 3).unwrap();
    assert!(!room.terminated);
    assert_eq!(roles(&room), vec![(BOB, Role::Owner)]);
    assert_eq!(room.owner, BOB);
}

#[test]
fn the_last_two_members_leaving_at_once_terminate_the_room_either_way() {
    // Commands are applied one at a time; whichever order, the room ends
    // terminated with nobody left and never without an admin meanwhile.
    for first in [ALICE, BOB] {
        let mut room = public_room();
        join(&mut room, BOB, "bob", 2);
        let other = if first == ALICE { BOB } else { ALICE };
        room.apply(Command::Leave { user: first }, 3).unwrap();
        if !room.terminated {
            assert!(
                room.members().iter().all(|m| m.role.is_admin()),
                "only an admin may remain alone"
            );
            room.apply(Command::Leave { user: other }, 3).unwrap();
        } else {
            assert_eq!(
                room.apply(Command::Leave { user: other }, 3),
                Err(ErrorCode::RoomTerminated)
            );
        }
        assert!(room.terminated && room.members().is_empty());
    }
}

#[test]
fn kicking_down_to_one_member_keeps_the_room_because_the_kicker_is_admin() {
    let mut room = public_room();
    join(&mut room, BOB, "bob", 2);
    room.apply(
        Command::Kick {
            by: ALICE,
            target: BOB,
        },
        3,
    )
    .unwrap();
    assert!(!room.terminated);
    assert_eq!(roles(&room), vec![(ALICE, Role::Owner)]);
}

#[test]
fn every_command_on_a_terminated_room_is_refused() {
    let mut room = public_room();
    room.apply(Command::Leave { user: ALICE }, 3).unwrap();
    assert!(room.terminated);
    let seq = room.last_seq;
    let commands = vec![
        Command::Join {
            user: BOB,
            username: "bob".into(),
        },
        Command::Leave { user: ALICE },
        Command::Post {
            user: ALICE,
            text: "x".into(),
            rich: Rich::default(),
        },
        Command::Invite {
            by: ALICE,
            target: BOB,
            target_name: "bob".into(),
        },
        Command::RespondInvite {
            user: BOB,
            username: "bob".into(),
            accept: true,
        },
        Command::RequestJoin {
            user: BOB,
            username: "bob".into(),
        },
        Command::Decide {
            by: ALICE,
            target: BOB,
            approve: true,
        },
        Command::Kick {
            by: ALICE,
            target: BOB,
        },
        Command::Ban {
            by: ALICE,
            target: BOB,
            target_name: "bob".into(),
        },
        Command::Unban {
            by: ALICE,
            target: BOB,
        },
        Command::SetRole {
            by: ALICE,
            target: BOB,
            role: Role::Admin,
        },
        Command::Update {
            by: ALICE,
            name: "n".into(),
            topic: String::new(),
        },
        Command::EditMessage {
            user: ALICE,
            seq: Seq(1),
            text: "x".into(),
            spans: vec![],
            stored: Lookup::NotRead,
        },
        Command::DeleteMessage {
            user: ALICE,
            seq: Seq(1),
            stored: Lookup::NotRead,
        },
    ];
    for cmd in commands {
        assert_eq!(
            room.apply(cmd.clone(), 4),
            Err(ErrorCode::RoomTerminated),
            "{cmd:?}"
        );
    }
    assert_eq!(room.last_seq, seq);
    assert_eq!(room.check_reader(ALICE), Err(ErrorCode::RoomTerminated));
}

#[test]
fn only_admins_rename_and_the_room_sees_it() {
    let mut room = trio();
    assert_eq!(
        room.apply(
            Command::Update {
                by: BOB,
                name: "x".into(),
                topic: String::new()
            },
            5
        ),
        Err(ErrorCode::NotAdmin)
    );
    let fx = room
        .apply(
            Command::Update {
                by: ALICE,
                name: "lounge".into(),
                topic: "t".into(),
            },
            5,
        )
        .unwrap();
    assert_eq!(room.info().name, "lounge");
    assert_eq!(
        bodies(&fx),
        vec![EventBody::RoomUpdated {
            name: "lounge".into(),
            topic: "t".into()
        }]
    );
}

#[test]
fn a_room_is_never_left_without_an_owner_among_its_members() {
    // A deterministic pseudo-random walk of joins, leaves, kicks, bans and
    // role changes: after every applied command, a live room with members
    // has exactly one owner, who is a member, and seqs have no gaps.
    let mut room = public_room();
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut last_seq = room.last_seq;
    for step in 0..4_000u64 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let user = UserId(1 + x % 6);
        let other = UserId(1 + (x >> 8) % 6);
        let cmd = match (x >> 16) % 6 {
            0 | 1 => Command::Join {
                user,
                username: format!("u{}", user.0),
            },
            2 => Command::Leave { user },
            3 => Command::Kick {
                by: user,
                target: other,
            },
            4 => Command::Ban {
                by: user,
                target: other,
                target_name: format!("u{}", other.0),
            },
            _ => Command::SetRole {
                by: user,
                target: other,
                role: if x.is_multiple_of(2) {
                    Role::Admin
                } else {
                    Role::Member
                },
            },
        };
        if let Ok(fx) = room.apply(cmd, step) {
            for ev in events(&fx) {
                assert_eq!(ev.seq.0, last_seq.0 + 1, "no gaps");
                last_seq = ev.seq;
            }
        }
        if room.terminated {
            assert!(room.members().is_empty());
            room = public_room();
            last_seq = room.last_seq;
            continue;
        }
        let owners: Vec<_> = room
            .members()
            .iter()
            .filter(|m| m.role == Role::Owner)
            .collect();
        assert_eq!(
            owners.len(),
            1,
            "exactly one owner at step {step}: {:?}",
            roles(&room)
        );
        assert_eq!(owners[0].user, room.owner);
        if step % 97 == 0 {
            // Unban everyone now and then so that the walk keeps moving.
            for u in 1..=6 {
                let _ = room.apply(
                    Command::Unban {
                        by: room.owner,
                        target: UserId(u),
                    },
                    step,
                );
            }
        }
    }
}

// ---------------------------------------------------------------- edit and delete

fn post(room: &mut Room, user: UserId, text: &str, at: Millis) -> Seq {
    room.apply(
        Command::Post {
            user,
            text: text.into(),
            rich: Rich::default(),
        },
        at,
    )
    .expect("post");
    room.last_seq
}

fn edit(user: UserId, seq: Seq, text: &str) -> Command {
    Command::EditMessage {
        user,
        seq,
        text: text.into(),
        spans: vec![],
        stored: Lookup::NotRead,
    }
}

#[test]
fn spans_travel_with_a_post_and_are_replaced_by_an_edit() {
    use confab_protocol::{Color, Span, Style};
    let mut room = trio();
    let bold = vec![Span::new(0..2, Style::Bold)];
    let fx = room
        .apply(
            Command::Post {
                user: BOB,
                text: "hi there".into(),
                rich: Rich {
                    spans: bold.clone(),
                    sticker: None,
                    attachments: Vec::new(),
                },
            },
            100,
        )
        .unwrap();
    let m = room.last_seq;
    assert_eq!(
        events(&fx)[0].body,
        EventBody::Message {
            text: "hi there".into(),
            edited_at: None,
            spans: bold,
            sticker: None,
            attachments: Vec::new(),
        }
    );
    let red = vec![Span::new(3..8, Style::Color(Color::Red))];
    let cmd = Command::EditMessage {
        user: BOB,
        seq: m,
        text: "hi world".into(),
        spans: red.clone(),
        stored: Lookup::NotRead,
    };
    let fx = room.apply(cmd, 200).unwrap();
    assert_eq!(
        events(&fx)[0].body,
        EventBody::MessageEdited {
            target: m,
            text: "hi world".into(),
            spans: red.clone(),
        }
    );
    assert_eq!(
        rewrites(&fx)[0].body,
        EventBody::Message {
            text: "hi world".into(),
            edited_at: Some(200),
            spans: red,
            sticker: None,
            attachments: Vec::new(),
        },
        "the message's latest form carries the edit's spans"
    );
}

#[test]
fn a_sticker_message_cannot_be_edited_but_can_be_deleted() {
    let mut room = trio();
    room.apply(
        Command::Post {
            user: BOB,
            text: ":cat:".into(),
            rich: Rich {
                spans: vec![],
                sticker: Some("cat".into()),
                attachments: Vec::new(),
            },
        },
        100,
    )
    .unwrap();
    let m = room.last_seq;
    let before = room.last_seq;
    assert_eq!(
        room.apply(edit(BOB, m, "words"), 110).unwrap_err(),
        ErrorCode::StickerMessage
    );
    assert_eq!(room.last_seq, before, "nothing happened");
    // Another's sticker: whose it is comes first.
    assert_eq!(
        room.apply(edit(ALICE, m, "words"), 110).unwrap_err(),
        ErrorCode::NotYourMessage
    );
    room.apply(delete(BOB, m), 120).unwrap();
}

fn delete(user: UserId, seq: Seq) -> Command {
    Command::DeleteMessage {
        user,
        seq,
        stored: Lookup::NotRead,
    }
}

fn rewrites(fx: &[Effect]) -> Vec<&RoomEvent> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Rewrite(ev) => Some(ev),
            _ => None,
        })
        .collect()
}

#[test]
fn the_sender_edits_their_message_which_then_reads_with_the_new_text_and_edited_at() {
    let mut room = trio();
    let m = post(&mut room, BOB, "helo", 100);
    let fx = room.apply(edit(BOB, m, "hello"), 160).unwrap();
    let evs = events(&fx);
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].seq, Seq(m.0 + 1), "an edit is an event of its own");
    assert_eq!((evs[0].actor, evs[0].at), (BOB, 160));
    assert_eq!(
        evs[0].body,
        EventBody::MessageEdited {
            target: m,
            text: "hello".into(),
            spans: vec![],
        }
    );
    let rw = rewrites(&fx);
    assert_eq!(rw.len(), 1);
    assert_eq!((rw[0].seq, rw[0].at, rw[0].actor), (m, 100, BOB));
    assert_eq!(rw[0].actor_name, "bob");
    assert_eq!(
        rw[0].body,
        EventBody::Message {
            text: "hello".into(),
            edited_at: Some(160),
            spans: vec![],
            sticker: None,
            attachments: Vec::new(),
        }
    );
    assert!(audits(&fx).is_empty(), "editing is not audited");
}

#[test]
fn only_the_sender_may_edit_even_an_admin_or_owner_may_not() {
    let mut room = trio();
    let m = post(&mut room, BOB, "mine", 100);
    let last = room.last_seq;
    assert_eq!(
        room.apply(edit(CAROL, m, "x"), 101),
        Err(ErrorCode::NotYourMessage)
    );
    assert_eq!(
        room.apply(edit(ALICE, m, "x"), 101),
        Err(ErrorCode::NotYourMessage)
    );
    assert_eq!(room.last_seq, last, "nothing happened");
}

#[test]
fn the_sender_or_an_admin_deletes_a_message_leaving_a_tombstone() {
    let mut room = trio();
    let m1 = post(&mut room, BOB, "one", 100);
    let m2 = post(&mut room, BOB, "two", 101);
    // The sender, a plain member.
    let fx = room.apply(delete(BOB, m1), 200).unwrap();
    assert_eq!(bodies(&fx), vec![EventBody::MessageDeleted { target: m1 }]);
    let rw = rewrites(&fx);
    assert_eq!(
        (rw[0].seq, rw[0].at, rw[0].actor, &rw[0].body),
        (m1, 100, BOB, &EventBody::Tombstone)
    );
    assert!(
        audits(&fx).is_empty(),
        "deleting one's own message is not audited"
    );
    // The owner deletes bob's other message: audited, bob as the target.
    let fx = room.apply(delete(ALICE, m2), 201).unwrap();
    assert_eq!(events(&fx)[0].actor, ALICE);
    assert_eq!(audits(&fx), vec!["message_deleted"]);
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::Audit { target: Some(t), actor, .. } if *t == BOB && *actor == ALICE
    )));
}

#[test]
fn an_admin_deletes_others_messages_and_a_member_may_not() {
    let mut room = trio();
    make_admin(&mut room, CAROL);
    let m = post(&mut room, BOB, "spam", 100);
    let a = post(&mut room, ALICE, "owner's", 101);
    assert_eq!(
        room.apply(delete(BOB, a), 102),
        Err(ErrorCode::NotYourMessage)
    );
    let fx = room.apply(delete(CAROL, m), 103).unwrap();
    assert_eq!(audits(&fx), vec!["message_deleted"]);
    // An admin may delete the owner's message too.
    assert!(room.apply(delete(CAROL, a), 104).is_ok());
}

#[test]
fn a_deleted_message_cannot_be_edited_or_deleted_again() {
    let mut room = trio();
    let m = post(&mut room, BOB, "x", 100);
    room.apply(delete(BOB, m), 101).unwrap();
    let last = room.last_seq;
    assert_eq!(
        room.apply(edit(BOB, m, "y"), 102),
        Err(ErrorCode::MessageDeleted)
    );
    assert_eq!(
        room.apply(delete(ALICE, m), 102),
        Err(ErrorCode::MessageDeleted)
    );
    assert_eq!(room.last_seq, last);
}

#[test]
fn changes_need_membership_and_an_existing_message() {
    let mut room = trio();
    let m = post(&mut room, BOB, "x", 100);
    room.apply(Command::Leave { user: BOB }, 101).unwrap();
    assert_eq!(
        room.apply(edit(BOB, m, "y"), 102),
        Err(ErrorCode::NotAMember)
    );
    assert_eq!(room.apply(delete(BOB, m), 102), Err(ErrorCode::NotAMember));
    let beyond = Seq(room.last_seq.0 + 1);
    assert_eq!(
        room.apply(edit(CAROL, beyond, "y"), 102),
        Err(ErrorCode::MessageNotFound)
    );
    assert_eq!(
        room.apply(delete(ALICE, Seq(0)), 102),
        Err(ErrorCode::MessageNotFound)
    );
    // Seq 1 is ROOM_CREATED, not a message: the store says so.
    let not_message = Lookup::Read {
        generation: 0,
        found: None,
    };
    let cmd = Command::DeleteMessage {
        user: ALICE,
        seq: Seq(1),
        stored: Lookup::NotRead,
    };
    assert_eq!(room.needs_stored_message(&cmd), Some(0));
    let cmd = Command::DeleteMessage {
        user: ALICE,
        seq: Seq(1),
        stored: not_message,
    };
    assert_eq!(room.needs_stored_message(&cmd), None);
    assert_eq!(room.apply(cmd, 102), Err(ErrorCode::MessageNotFound));
}

#[test]
fn a_durable_message_is_ruled_on_from_the_store_copy_the_room_asked_for() {
    let mut room = trio();
    let m = post(&mut room, BOB, "x", 100);
    // Before it is durable the room knows it.
    assert_eq!(room.needs_stored_message(&edit(BOB, m, "y")), None);
    room.forget_durable(room.last_seq);
    let generation = room
        .needs_stored_message(&edit(BOB, m, "y"))
        .expect("the room asks for the store's copy");
    // Non-members are refused without a read.
    assert_eq!(room.needs_stored_message(&edit(UserId(99), m, "y")), None);
    let read = Lookup::Read {
        generation,
        found: Some(MessageFacts {
            sender: BOB,
            sender_name: "bob".into(),
            at: 100,
            deleted: false,
            sticker: false,
            attachments: Vec::new(),
        }),
    };
    let cmd = Command::EditMessage {
        user: BOB,
        seq: m,
        text: "y".into(),
        spans: vec![],
        stored: read.clone(),
    };
    assert_eq!(room.needs_stored_message(&cmd), None);
    let fx = room.apply(cmd, 150).unwrap();
    assert_eq!(rewrites(&fx)[0].at, 100);
    // The room now knows the edit, whatever an older read says.
    let again = Command::DeleteMessage {
        user: BOB,
        seq: m,
        stored: read,
    };
    assert!(room.apply(again, 151).is_ok());
    assert_eq!(
        room.apply(delete(BOB, m), 152),
        Err(ErrorCode::MessageDeleted),
        "the delete is known until durable"
    );
}

// --- typing (SPEC.md §5.5.7; the timing rules are in typing.rs) -----------------

#[test]
fn typing_is_for_members_of_a_live_room_only() {
    let mut room = public_room();
    assert_eq!(room.typing(BOB, true, 2_000), Err(ErrorCode::NotAMember));
    assert_eq!(room.typing(BOB, false, 2_000), Err(ErrorCode::NotAMember));
    assert!(!room.has_typing(), "a refused START leaves nothing behind");
    room.apply(Command::Leave { user: ALICE }, 2_000).unwrap();
    assert!(room.terminated);
    assert_eq!(
        room.typing(ALICE, true, 3_000),
        Err(ErrorCode::RoomTerminated)
    );
}

#[test]
fn typing_start_stop_and_expiry_through_the_room() {
    use typing::TypingOutcome::*;
    let mut room = public_room();
    room.apply(
        Command::Join {
            user: BOB,
            username: "bob".into(),
        },
        1_500,
    )
    .unwrap();
    assert_eq!(room.typing(BOB, true, 2_000), Ok(Forward(true)));
    assert_eq!(room.typing(BOB, true, 2_100), Ok(Suppressed));
    assert_eq!(room.typing(ALICE, false, 2_100), Ok(Unchanged));
    assert!(room.expire_typing(7_099).is_empty());
    assert_eq!(room.expire_typing(7_100), vec![(BOB, "bob".to_owned())]);
    assert_eq!(room.typing(BOB, true, 8_000), Ok(Forward(true)));
    assert_eq!(room.typing(BOB, false, 8_100), Ok(Forward(false)));
    assert!(room.expire_typing(20_000).is_empty());
}

#[test]
fn a_typist_who_leaves_is_forgotten_without_a_stop() {
    let mut room = public_room();
    for (user, name) in [(BOB, "bob"), (CAROL, "carol")] {
        room.apply(
            Command::Join {
                user,
                username: name.into(),
            },
            1_500,
        )
        .unwrap();
    }
    room.typing(BOB, true, 2_000).unwrap();
    room.typing(CAROL, true, 2_000).unwrap();
    room.apply(Command::Leave { user: BOB }, 3_000).unwrap();
    assert_eq!(
        room.expire_typing(10_000),
        vec![(CAROL, "carol".to_owned())],
        "MEMBER_LEFT told the others already"
    );
    assert!(!room.has_typing());
}

// --- read markers (SPEC.md §5.9) ---------------------------------------------------

#[test]
fn a_read_marker_is_for_members_up_to_the_last_seq() {
    let mut room = public_room();
    room.apply(
        Command::Post {
            user: ALICE,
            text: "hi".into(),
            rich: Rich::default(),
        },
        2_000,
    )
    .unwrap();
    assert_eq!(room.last_seq, Seq(2));
    assert_eq!(room.check_read_marker(ALICE, Seq(0)), Ok(()));
    assert_eq!(room.check_read_marker(ALICE, Seq(2)), Ok(()));
    assert_eq!(
        room.check_read_marker(ALICE, Seq(3)),
        Err(ErrorCode::InvalidReadMarker)
    );
    assert_eq!(
        room.check_read_marker(BOB, Seq(1)),
        Err(ErrorCode::NotAMember)
    );
    room.apply(Command::Leave { user: ALICE }, 3_000).unwrap();
    assert_eq!(
        room.check_read_marker(ALICE, Seq(1)),
        Err(ErrorCode::RoomTerminated)
    );
}

// --- mentions (SPEC.md §8.13; the token syntax is in mentions.rs) ----------------

#[test]
fn a_message_notifies_each_mentioned_member_once_and_nobody_else() {
    let mut room = public_room();
    join(&mut room, BOB, "bob", 1_500);
    join(&mut room, CAROL, "carol", 1_500);
    let dave = UserId(4);
    join(&mut room, dave, "dave", 1_500);
    room.apply(
        Command::Ban {
            by: ALICE,
            target: dave,
            target_name: "dave".into(),
        },
        1_600,
    )
    .unwrap();
    let fx = room
        .apply(
            Command::Post {
                user: ALICE,
                text: "@Bob, @bob and @carol. Also @alice @dave @nobody bob@x.org".into(),
                rich: Rich::default(),
            },
            2_000,
        )
        .unwrap();
    assert_eq!(
        notifications(&fx),
        vec![(BOB, Notify::Mentioned), (CAROL, Notify::Mentioned)],
        "once each; not the sender, a banned user or an unknown name"
    );
    let Effect::Notify {
        actor,
        actor_name,
        at,
        ..
    } = &fx[1]
    else {
        panic!("the event first, then the notifications: {fx:?}");
    };
    assert_eq!((*actor, actor_name.as_str(), *at), (ALICE, "alice", 2_000));
    assert_eq!(
        events(&fx)[0].at,
        2_000,
        "the notification's time is the message's"
    );
}

#[test]
fn a_member_who_left_is_not_notified_and_edits_notify_nobody() {
    let mut room = public_room();
    join(&mut room, BOB, "bob", 1_500);
    join(&mut room, CAROL, "carol", 1_500);
    room.apply(Command::Leave { user: CAROL }, 1_700).unwrap();
    let fx = room
        .apply(
            Command::Post {
                user: BOB,
                text: "hi @carol".into(),
                rich: Rich::default(),
            },
            2_000,
        )
        .unwrap();
    assert!(notifications(&fx).is_empty());
    let seq = events(&fx)[0].seq;
    let fx = room
        .apply(
            Command::EditMessage {
                user: BOB,
                seq,
                text: "hi @alice".into(),
                spans: vec![],
                stored: Lookup::NotRead,
            },
            2_100,
        )
        .unwrap();
    assert!(notifications(&fx).is_empty(), "only SEND_MESSAGE mentions");
}

#[test]
fn at_most_twenty_members_are_notified_per_message() {
    let mut room = public_room();
    let mut text = String::new();
    for i in 0..25u64 {
        let name = format!("user{i:02}");
        join(&mut room, UserId(100 + i), &name, 1_500);
        text.push_str(&format!("@{name} "));
    }
    let fx = room
        .apply(
            Command::Post {
                user: ALICE,
                text,
                rich: Rich::default(),
            },
            2_000,
        )
        .unwrap();
    let notified: Vec<UserId> = notifications(&fx).into_iter().map(|(u, _)| u).collect();
    assert_eq!(notified.len(), MAX_MENTIONS);
    assert_eq!(
        notified,
        (100..120).map(UserId).collect::<Vec<_>>(),
        "the first named"
    );
}
