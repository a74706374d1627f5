//! Group chats created with members (SPEC.md §5.3.2), end to end: the real
//! server, driven through the Rust SDK over every door and on both stores
//! (a restart keeps the members), and through the HTTP JSON API.

mod common;

use std::time::Duration;

use common::http::{api, register};
use common::{next_announced, Backend, Door, TestServer, Transport};
use confab_protocol::{ErrorCode, EventBody, Role, RoomId, UserId, UserRef, Visibility};
use confab_sdk::{Client, Event, NewRoom};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);
const PASSWORD: &str = common::TEST_PASSWORD;

async fn user(door: &Door, name: &str) -> (Client, UserId) {
    door.register(name).await
}

/// The ids of `c`'s rooms (MY_ROOMS).
async fn my_room_ids(c: &Client) -> Vec<RoomId> {
    let mut ids: Vec<RoomId> = c
        .my_rooms()
        .await
        .expect("my_rooms")
        .iter()
        .map(|r| r.id)
        .collect();
    ids.sort();
    ids
}

async fn initial_members_join_in_one_step_are_announced_and_survive_a_restart(
    t: Transport,
    backend: Backend,
) {
    let Some(mut srv) = TestServer::start_on(backend, "group_chats", |_| {}).await else {
        return;
    };
    let door = srv.door(t);
    let (alice, alice_id) = user(&door, "alice").await;
    let (bob, bob_id) = user(&door, "bob").await;
    let (carol, carol_id) = user(&door, "carol").await;
    let (dave, _) = user(&door, "dave").await;

    // By id and by username (any case): both become members, in order.
    let trip = alice
        .create(
            NewRoom::new("weekend trip")
                .visibility(Visibility::Private)
                .member(UserRef::id(bob_id))
                .member(UserRef::name("Carol")),
        )
        .await
        .expect("create with members");
    assert_eq!(trip.member_count, 3);
    assert_eq!(trip.owner, alice_id);
    assert_eq!(trip.visibility, Visibility::Private);
    assert_eq!(next_announced(&alice).await.id, trip.id);
    let to_bob = next_announced(&bob).await;
    assert_eq!((to_bob.id, to_bob.member_count), (trip.id, 3));
    assert_eq!(next_announced(&carol).await.id, trip.id);
    let members: Vec<(UserId, Role)> = bob
        .members(trip.id)
        .await
        .expect("bob is a member")
        .iter()
        .map(|m| (m.user, m.role))
        .collect();
    assert_eq!(
        members,
        vec![
            (alice_id, Role::Owner),
            (bob_id, Role::Member),
            (carol_id, Role::Member)
        ]
    );
    let page = carol.history(trip.id, None, 10).await.expect("history");
    let kinds: Vec<(u64, UserId, bool)> = page
        .events
        .iter()
        .rev()
        .map(|e| (e.seq.0, e.actor, matches!(e.body, EventBody::MemberJoined)))
        .collect();
    assert_eq!(
        kinds,
        vec![(1, alice_id, false), (2, bob_id, true), (3, carol_id, true)],
        "ROOM_CREATED, then one MEMBER_JOINED per initial member"
    );
    // Carol's connection receives the room live without joining.
    bob.send_message(trip.id, "who brings the tent?")
        .await
        .unwrap();
    loop {
        match carol.next_event_timeout(WAIT).await.ok().flatten() {
            Some(Event::Room(ev)) if ev.room == trip.id => {
                assert!(
                    matches!(&ev.body, EventBody::Message { text, .. } if text == "who brings the tent?")
                );
                break;
            }
            Some(_) => continue,
            None => panic!("carol did not receive bob's message"),
        }
    }

    // Refusals, each storing nothing.
    let refused = |members: Vec<UserRef>| {
        alice.create(
            NewRoom::new("refused")
                .visibility(Visibility::Private)
                .members(members),
        )
    };
    let cases = [
        (
            vec![UserRef::id(bob_id), UserRef::name("BOB")],
            ErrorCode::DuplicateMember,
        ),
        (
            vec![UserRef::name("carol"), UserRef::name("nobody")],
            ErrorCode::NoSuchUser,
        ),
        (vec![UserRef::id(UserId(999_999))], ErrorCode::NoSuchUser),
        (vec![UserRef::name("not a name!")], ErrorCode::NoSuchUser),
        (
            vec![UserRef::name("bob"), UserRef::id(alice_id)],
            ErrorCode::CannotTargetSelf,
        ),
        (vec![UserRef::name("bob"); 51], ErrorCode::TooManyMembers),
    ];
    for (members, code) in cases {
        let err = refused(members.clone()).await.unwrap_err();
        assert_eq!(err.code(), Some(code), "{members:?}");
    }
    // Exactly 50 is allowed (the limit), though these are all bob.
    let err = refused(vec![UserRef::id(bob_id); 50]).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::DuplicateMember));
    assert_eq!(my_room_ids(&alice).await, vec![trip.id]);
    assert_eq!(my_room_ids(&bob).await, vec![trip.id]);
    assert_eq!(my_room_ids(&carol).await, vec![trip.id]);
    // A public room announced to everyone: dave's first announcement, so
    // he was told of neither the private group nor a refused one.
    let plaza = alice
        .create(NewRoom::new("plaza").member(UserRef::name("dave")))
        .await
        .unwrap();
    assert_eq!(plaza.member_count, 2);
    assert_eq!(next_announced(&dave).await.id, plaza.id);
    assert_eq!(my_room_ids(&dave).await, vec![plaza.id]);
    assert_eq!(my_room_ids(&bob).await, vec![trip.id], "no refused room");

    drop((alice, bob, carol, dave));
    srv.restart().await;
    let carol = srv.door(t).connect().await;
    carol.login("carol", PASSWORD).await.unwrap();
    let rooms = carol.my_rooms().await.unwrap();
    assert_eq!(rooms.len(), 1);
    assert_eq!((rooms[0].id, rooms[0].member_count), (trip.id, 3));
    assert_eq!(carol.members(trip.id).await.unwrap().len(), 3);
    srv.stop().await;
}

over_transports!(initial_members_join_in_one_step_are_announced_and_survive_a_restart);

on_both_stores!(group_chats_over_http);

async fn group_chats_over_http(backend: Backend) {
    let Some(srv) = TestServer::start_on(backend, "group_chats_over_http", |_| {}).await else {
        return;
    };
    let addr = srv.addr_for(Transport::Ws);
    let mut tokens = Vec::new();
    for name in ["owner", "bob", "carol"] {
        tokens.push(register(addr, name).await.0);
    }
    let owner = tokens[0].clone();
    let create = |members: serde_json::Value| {
        let owner = owner.clone();
        async move {
            api(
                addr,
                "POST",
                "/api/rooms",
                Some(&owner),
                Some(json!({"name": "crew", "visibility": "private", "members": members})),
            )
            .await
        }
    };

    let refusals = [
        (
            json!([{"username": "bob"}, {"username": "bob"}]),
            400,
            "DUPLICATE_MEMBER",
        ),
        (json!([{"username": "nobody"}]), 404, "NO_SUCH_USER"),
        (json!([{"username": "owner"}]), 403, "CANNOT_TARGET_SELF"),
        (
            json!(vec![json!({"username": "bob"}); 51]),
            400,
            "TOO_MANY_MEMBERS",
        ),
        (json!([{"user": "bob"}]), 400, "MALFORMED_FRAME"),
    ];
    for (members, status, name) in refusals {
        let (got, v) = create(members.clone()).await;
        assert_eq!(
            (got, &v["error"]["name"]),
            (status, &json!(name)),
            "{members}: {v}"
        );
    }
    let (status, v) = api(addr, "GET", "/api/me/rooms", Some(&owner), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["rooms"], json!([]), "nothing stored for a refusal");

    let (status, v) = create(json!([{"username": "bob"}, {"username": "carol"}])).await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["member_count"], json!(3));
    let room = v["id"].as_u64().unwrap();
    let (status, v) = api(addr, "GET", "/api/me/rooms", Some(&tokens[2]), None).await;
    assert_eq!(status, 200, "{v}");
    let ids: Vec<u64> = v["rooms"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, vec![room], "carol is a member");
    // Without `members` the body is as before: the creator alone.
    let (status, v) = api(
        addr,
        "POST",
        "/api/rooms",
        Some(&owner),
        Some(json!({"name": "solo"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["member_count"], json!(1));
    srv.stop().await;
}
