//! Direct rooms in the state machine (SPEC.md §5.3.7): two users, no
//! governance, never terminated by a leave, reopened by OPEN_DIRECT.
use super::*;

const ALICE: UserId = UserId(1);
const BOB: UserId = UserId(2);
const CAROL: UserId = UserId(3);

/// bob opens his direct room with alice.
fn bob_and_alice() -> (Room, Vec<Effect>) {
    Room::create_direct(
        RoomId(9),
        (BOB, "bob".into()),
        (ALICE, "alice".into()),
        1_000,
    )
}

fn bodies(fx: &[Effect]) -> Vec<EventBody> {
    fx.iter()
        .filter_map(|e| match e {
            Effect::Event(ev) => Some(ev.body.clone()),
            _ => None,
        })
        .collect()
}

fn open(room: &mut Room, user: UserId, name: &str, now: Millis) -> Outcome {
    let cmd = Command::OpenDirect {
        user,
        username: name.into(),
    };
    room.apply(cmd, now)
}

#[test]
fn a_direct_room_has_its_two_users_and_is_named_after_the_other_for_each() {
    let (room, fx) = bob_and_alice();
    // The opener owns it, the other is a member, in one write list
    let roles: Vec<(UserId, Role)> = room.members().iter().map(|m| (m.user, m.role)).collect();
    assert_eq!(roles, vec![(BOB, Role::Owner), (ALICE, Role::Member)]);
    assert_eq!(room.visibility, Visibility::Private);
    assert!(matches!(fx[0], Effect::Persist(WriteOp::CreateRoom { .. })));
    assert_eq!(
        fx[1],
        Effect::Persist(WriteOp::SetDirect {
            room: RoomId(9),
            low: ALICE,
            high: BOB
        }),
        "the pair, lower id first, right after the room row"
    );
    assert_eq!(
        bodies(&fx),
        vec![
            EventBody::RoomCreated {
                name: "alice & bob".into(),
                topic: String::new()
            },
            EventBody::MemberJoined
        ]
    );
    // Each side sees the other's name and who it is
    let for_bob = room.info_for(BOB);
    assert_eq!(for_bob.name, "alice");
    assert_eq!(
        for_bob.direct_with,
        Some(DirectWith {
            user: ALICE,
            username: "alice".into()
        })
    );
    let for_alice = room.info_for(ALICE);
    assert_eq!(for_alice.name, "bob");
    assert_eq!(for_alice.direct_with.map(|d| d.user), Some(BOB));
    assert_eq!(room.name_for(ALICE), "bob");
    // Anyone else sees the stored form
    assert_eq!(room.info_for(CAROL).name, "alice & bob");
    assert_eq!(room.info().direct_with, None);
}

#[test]
fn every_governance_request_is_refused_with_direct_room_and_changes_nothing() {
    let (mut room, _) = bob_and_alice();
    let before = (room.last_seq, room.members().len(), room.owner);
    let refused = [
        Command::Join {
            user: CAROL,
            username: "carol".into(),
        },
        Command::Invite {
            by: BOB,
            target: CAROL,
            target_name: "carol".into(),
        },
        Command::RespondInvite {
            user: CAROL,
            username: "carol".into(),
            accept: true,
        },
        Command::RequestJoin {
            user: CAROL,
            username: "carol".into(),
        },
        Command::Decide {
            by: BOB,
            target: CAROL,
            approve: true,
        },
        Command::Kick {
            by: BOB,
            target: ALICE,
        },
        Command::Ban {
            by: BOB,
            target: ALICE,
            target_name: "alice".into(),
        },
        Command::Unban {
            by: BOB,
            target: CAROL,
        },
        Command::SetRole {
            by: BOB,
            target: ALICE,
            role: Role::Admin,
        },
        Command::Update {
            by: BOB,
            name: "renamed".into(),
            topic: String::new(),
        },
    ];
    for cmd in refused {
        let shown = format!("{cmd:?}");
        assert_eq!(
            room.apply(cmd, 2_000),
            Err(ErrorCode::DirectRoom),
            "{shown}"
        );
    }
    assert_eq!((room.last_seq, room.members().len(), room.owner), before);
    assert!(room.invites().is_empty() && room.requests().is_empty() && room.bans().is_empty());
}

#[test]
fn leaving_never_terminates_and_opening_again_brings_a_user_back() {
    let (mut room, _) = bob_and_alice();
    // alice leaves: the room stays for bob, who can still post
    let fx = room.apply(Command::Leave { user: ALICE }, 2_000).unwrap();
    assert_eq!(bodies(&fx), vec![EventBody::MemberLeft]);
    assert!(!room.terminated);
    let post = Command::Post {
        user: BOB,
        text: "still here?".into(),
        rich: Rich::default(),
    };
    assert!(room.apply(post, 2_100).is_ok());

    // bob leaves too: empty, still live
    let fx = room.apply(Command::Leave { user: BOB }, 3_000).unwrap();
    assert_eq!(bodies(&fx), vec![EventBody::MemberLeft]);
    assert!(!room.terminated);
    assert!(room.members().is_empty());

    // alice opens it again: back, as its owner (the only member)
    let fx = open(&mut room, ALICE, "alice", 4_000).unwrap();
    assert_eq!(bodies(&fx), vec![EventBody::MemberJoined]);
    assert!(fx.contains(&Effect::Subscribe(ALICE)));
    assert!(fx.contains(&Effect::Persist(WriteOp::SetOwner {
        room: RoomId(9),
        owner: ALICE
    })));
    assert_eq!(room.owner, ALICE);
    assert_eq!(room.member(ALICE).map(|m| m.role), Some(Role::Owner));

    // bob opens it again: back as a member, same room, seqs go on
    let last = room.last_seq;
    let fx = open(&mut room, BOB, "bob", 5_000).unwrap();
    assert_eq!(bodies(&fx), vec![EventBody::MemberJoined]);
    assert_eq!(room.last_seq, Seq(last.0 + 1));
    assert_eq!(room.member(BOB).map(|m| m.role), Some(Role::Member));
}

#[test]
fn the_owner_leaving_passes_ownership_to_the_other_and_the_room_stays() {
    let (mut room, _) = bob_and_alice();
    let fx = room.apply(Command::Leave { user: BOB }, 2_000).unwrap();
    assert!(!room.terminated);
    assert_eq!(room.owner, ALICE);
    assert!(bodies(&fx).contains(&EventBody::RoleChanged {
        target: ALICE,
        target_name: "alice".into(),
        role: Role::Owner
    }));
    assert!(!bodies(&fx).contains(&EventBody::RoomTerminated));
}

#[test]
fn opening_as_a_member_changes_nothing_and_a_stranger_cannot() {
    let (mut room, _) = bob_and_alice();
    let seq = room.last_seq;
    assert_eq!(open(&mut room, ALICE, "alice", 2_000), Ok(Vec::new()));
    assert_eq!(room.last_seq, seq);
    assert_eq!(
        open(&mut room, CAROL, "carol", 2_000),
        Err(ErrorCode::Internal)
    );
    assert!(!room.is_member(CAROL));
}

#[test]
fn a_mention_in_a_direct_room_names_the_room_after_the_sender_for_the_mentioned() {
    let (mut room, _) = bob_and_alice();
    let post = Command::Post {
        user: BOB,
        text: "hi @alice".into(),
        rich: Rich::default(),
    };
    let fx = room.apply(post, 2_000).unwrap();
    assert!(fx.iter().any(|e| matches!(
        e,
        Effect::Notify {
            user: ALICE,
            kind: Notify::Mentioned,
            ..
        }
    )));
    assert_eq!(room.name_for(ALICE), "bob");
}
