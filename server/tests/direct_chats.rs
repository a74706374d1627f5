//! Direct chats (OPEN_DIRECT, SPEC.md §5.3.7), end to end: the real server,
//! driven through the Rust SDK over every door and on both stores (a
//! restart keeps the room and the pair), and through the HTTP JSON API.

mod common;

use std::time::Duration;

use common::http::{api, register};
use common::{next_announced, Backend, Door, TestServer, Transport};
use confab_protocol::{
    DirectWith, ErrorCode, EventBody, Role, RoomId, Seq, UserId, UserRef, Visibility,
};
use confab_sdk::{Client, Error, Event};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);
const PASSWORD: &str = common::TEST_PASSWORD;

async fn user(door: &Door, name: &str) -> (Client, UserId) {
    door.register(name).await
}

/// The next message `c` receives live in `room`.
async fn next_message(c: &Client, room: RoomId) -> String {
    loop {
        match c.next_event_timeout(WAIT).await.ok().flatten() {
            Some(Event::Room(ev)) if ev.room == room => {
                if let EventBody::Message { text, .. } = ev.body {
                    return text;
                }
            }
            Some(_) => continue,
            None => panic!("no message in {room} within {WAIT:?}"),
        }
    }
}

/// `c`'s rooms (MY_ROOMS): id and name as `c` sees it.
async fn my_rooms(c: &Client) -> Vec<(RoomId, String)> {
    let mut rooms: Vec<(RoomId, String)> = c
        .my_rooms()
        .await
        .expect("my_rooms")
        .into_iter()
        .map(|r| (r.id, r.name))
        .collect();
    rooms.sort();
    rooms
}

fn with(user: UserId, username: &str) -> Option<DirectWith> {
    Some(DirectWith {
        user,
        username: username.to_owned(),
    })
}

fn code<T: std::fmt::Debug>(r: Result<T, Error>) -> Option<ErrorCode> {
    r.expect_err("refused").code()
}

async fn a_direct_chat_is_one_room_of_two_without_governance_and_survives_a_restart(
    t: Transport,
    backend: Backend,
) {
    let Some(mut srv) = TestServer::start_on(backend, "direct_chats", |_| {}).await else {
        return;
    };
    let door = srv.door(t);
    let (alice, alice_id) = user(&door, "alice").await;
    let (bob, bob_id) = user(&door, "bob").await;
    let (carol, carol_id) = user(&door, "carol").await;

    // Bad input first: each refused with its code, nothing stored.
    assert_eq!(
        code(alice.open_direct(UserRef::name("alice")).await),
        Some(ErrorCode::CannotTargetSelf)
    );
    assert_eq!(
        code(alice.open_direct(UserRef::id(alice_id)).await),
        Some(ErrorCode::CannotTargetSelf)
    );
    assert_eq!(
        code(alice.open_direct(UserRef::name("nobody")).await),
        Some(ErrorCode::NoSuchUser)
    );
    assert_eq!(
        code(alice.open_direct(UserRef::id(UserId(999_999))).await),
        Some(ErrorCode::NoSuchUser)
    );
    assert!(my_rooms(&alice).await.is_empty(), "nothing stored");

    // alice opens her chat with bob (by name, any case): a private room of
    // the two, named "bob" for her and "alice" for him.
    let room = alice
        .open_direct(UserRef::name("Bob"))
        .await
        .expect("open_direct");
    assert_eq!(room.name, "bob");
    assert_eq!(room.direct_with, with(bob_id, "bob"));
    assert_eq!(
        (room.visibility, room.member_count, room.owner),
        (Visibility::Private, 2, alice_id)
    );
    assert_eq!(next_announced(&alice).await.id, room.id);
    let to_bob = next_announced(&bob).await;
    assert_eq!(
        (to_bob.id, to_bob.name.as_str(), to_bob.direct_with),
        (room.id, "alice", with(alice_id, "alice"))
    );

    // Either side opening it again gets the same room.
    let again = bob.open_direct(UserRef::id(alice_id)).await.unwrap();
    assert_eq!((again.id, again.name.as_str()), (room.id, "alice"));
    assert_eq!(
        alice.open_direct(UserRef::id(bob_id)).await.unwrap().id,
        room.id
    );
    assert_eq!(my_rooms(&alice).await, vec![(room.id, "bob".into())]);
    assert_eq!(my_rooms(&bob).await, vec![(room.id, "alice".into())]);
    assert!(my_rooms(&carol).await.is_empty());

    // The directory never lists it, to anyone, by any query.
    for c in [&alice, &bob, &carol] {
        let page = c.list_rooms("", 0, 200).await.unwrap();
        assert!(page.rooms.iter().all(|r| r.id != room.id));
        let named = c.rooms_named("alice & bob", 0, 200).await.unwrap();
        assert!(named.rooms.is_empty());
    }

    // Messages flow both ways.
    alice.send_message(room.id, "hi bob").await.unwrap();
    assert_eq!(next_message(&bob, room.id).await, "hi bob");

    // No governance: DIRECT_ROOM for every way in and every change.
    let id = room.id;
    let refusals = [
        code(carol.join_room(id).await),
        code(carol.request_join(id).await),
        code(carol.accept_invite(id).await),
        code(alice.invite(id, UserRef::name("carol")).await),
        code(alice.decide_request(id, carol_id, true).await),
        code(alice.kick(id, bob_id).await),
        code(alice.ban(id, UserRef::id(bob_id)).await),
        code(alice.unban(id, carol_id).await),
        code(alice.set_role(id, bob_id, Role::Admin).await),
        code(alice.update_room(id, "renamed", "").await),
    ];
    assert!(
        refusals.iter().all(|c| *c == Some(ErrorCode::DirectRoom)),
        "{refusals:?}"
    );
    let members: Vec<UserId> = bob
        .members(id)
        .await
        .unwrap()
        .iter()
        .map(|m| m.user)
        .collect();
    assert_eq!(members, vec![alice_id, bob_id], "nothing changed");
    let last = alice.history(id, None, 1).await.unwrap().events[0].seq;

    // bob leaves: the room stays for alice (no termination), who can post.
    bob.leave_room(id).await.unwrap();
    assert!(my_rooms(&bob).await.is_empty());
    assert_eq!(my_rooms(&alice).await, vec![(id, "bob".into())]);
    alice.send_message(id, "are you there?").await.unwrap();
    assert_eq!(
        code(bob.history(id, None, 10).await),
        Some(ErrorCode::NotAMember)
    );
    let page = alice.history(id, None, 10).await.unwrap();
    assert!(page
        .events
        .iter()
        .all(|e| !matches!(e.body, EventBody::RoomTerminated)));

    // bob opens it again: the same room, history intact.
    let back = bob.open_direct(UserRef::name("alice")).await.unwrap();
    assert_eq!((back.id, back.member_count), (id, 2));
    let page = bob.history(id, None, 20).await.unwrap();
    let texts: Vec<&str> = page
        .events
        .iter()
        .rev()
        .filter_map(|e| match &e.body {
            EventBody::Message { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(texts, vec!["hi bob", "are you there?"]);
    assert!(page.events[0].seq > last);

    // A restart keeps the room, its pair and its names.
    drop((alice, bob, carol));
    srv.restart().await;
    let door = srv.door(t);
    let alice = door.connect().await;
    alice.login("alice", PASSWORD).await.unwrap();
    let bob = door.connect().await;
    bob.login("bob", PASSWORD).await.unwrap();
    assert_eq!(my_rooms(&bob).await, vec![(id, "alice".into())]);
    let reopened = alice.open_direct(UserRef::name("bob")).await.unwrap();
    assert_eq!(
        (reopened.id, reopened.direct_with, reopened.member_count),
        (id, with(bob_id, "bob"), 2)
    );
    assert_eq!(
        code(alice.kick(id, bob_id).await),
        Some(ErrorCode::DirectRoom)
    );
    // Another pair gets another room, after the restart too.
    let carol = door.connect().await;
    carol.login("carol", PASSWORD).await.unwrap();
    let other = carol.open_direct(UserRef::name("bob")).await.unwrap();
    assert_ne!(other.id, id);
    assert_eq!(
        my_rooms(&bob).await,
        vec![(id, "alice".into()), (other.id, "carol".into())]
    );
    srv.stop().await;
}

/// Both users open their chat at the same moment, for many pairs at once:
/// each pair ends up with exactly one room, on the server and in the store.
async fn both_sides_opening_at_once_make_one_room(t: Transport, backend: Backend) {
    let Some(mut srv) = TestServer::start_on(backend, "direct_chats_race", |_| {}).await else {
        return;
    };
    let door = srv.door(t);
    const PAIRS: usize = 8;
    let mut pairs = Vec::new();
    for i in 0..PAIRS {
        let a = user(&door, &format!("left{i}")).await;
        let b = user(&door, &format!("right{i}")).await;
        pairs.push((a, b));
    }
    let opened = futures_util::future::join_all(pairs.iter().map(|((a, a_id), (b, b_id))| {
        let (a_id, b_id) = (*a_id, *b_id);
        async move {
            let (x, y) = tokio::join!(
                a.open_direct(UserRef::id(b_id)),
                b.open_direct(UserRef::id(a_id))
            );
            (x.expect("a opens"), y.expect("b opens"))
        }
    }))
    .await;
    let mut ids = Vec::new();
    for ((x, y), ((a, _), (b, _))) in opened.iter().zip(&pairs) {
        assert_eq!(x.id, y.id, "one room per pair");
        assert_eq!((x.member_count, y.member_count), (2, 2));
        assert_eq!(a.my_rooms().await.unwrap().len(), 1);
        assert_eq!(b.my_rooms().await.unwrap().len(), 1);
        ids.push(x.id);
    }
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), PAIRS, "a room for each pair");
    drop(pairs);
    srv.restart().await;
    let door = srv.door(t);
    let c = door.connect().await;
    c.login("left0", PASSWORD).await.unwrap();
    assert_eq!(
        c.my_rooms().await.unwrap().len(),
        1,
        "one room stored per pair"
    );
    srv.stop().await;
}

/// Both leave; whoever comes back first owns the room again, and the
/// other comes back as a member: the room never terminated.
async fn an_empty_direct_room_waits_for_its_users(t: Transport, backend: Backend) {
    let Some(srv) = TestServer::start_on(backend, "direct_chats_empty", |_| {}).await else {
        return;
    };
    let door = srv.door(t);
    let (alice, alice_id) = user(&door, "alice").await;
    let (bob, bob_id) = user(&door, "bob").await;
    let room = alice.open_direct(UserRef::id(bob_id)).await.unwrap();
    alice.send_message(room.id, "before").await.unwrap();
    alice.leave_room(room.id).await.unwrap();
    bob.leave_room(room.id).await.unwrap();
    assert!(alice.my_rooms().await.unwrap().is_empty());
    assert!(bob.my_rooms().await.unwrap().is_empty());

    let back = bob.open_direct(UserRef::id(alice_id)).await.unwrap();
    assert_eq!(
        (back.id, back.member_count, back.owner),
        (room.id, 1, bob_id)
    );
    let back = alice.open_direct(UserRef::id(bob_id)).await.unwrap();
    assert_eq!((back.id, back.member_count), (room.id, 2));
    let roles: Vec<(UserId, Role)> = alice
        .members(room.id)
        .await
        .unwrap()
        .iter()
        .map(|m| (m.user, m.role))
        .collect();
    assert_eq!(roles, vec![(bob_id, Role::Owner), (alice_id, Role::Member)]);
    let page = alice.history(room.id, None, 50).await.unwrap();
    assert!(page
        .events
        .iter()
        .any(|e| matches!(&e.body, EventBody::Message { text, .. } if text == "before")));
    assert_eq!(page.events.last().map(|e| e.seq), Some(Seq(1)));
    srv.stop().await;
}

over_transports!(
    a_direct_chat_is_one_room_of_two_without_governance_and_survives_a_restart,
    both_sides_opening_at_once_make_one_room,
    an_empty_direct_room_waits_for_its_users,
);

on_both_stores!(direct_chats_over_http);

async fn direct_chats_over_http(backend: Backend) {
    let Some(srv) = TestServer::start_on(backend, "direct_chats_over_http", |_| {}).await else {
        return;
    };
    let addr = srv.addr_for(Transport::Ws);
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    for name in ["alice", "bob", "carol"] {
        let (token, id) = register(addr, name).await;
        tokens.push(token);
        ids.push(id);
    }
    let (alice, bob) = (tokens[0].clone(), tokens[1].clone());
    let open = |token: String, body: serde_json::Value| async move {
        api(addr, "POST", "/api/direct", Some(&token), Some(body)).await
    };

    let refusals = [
        (json!({"username": "alice"}), 403, "CANNOT_TARGET_SELF"),
        (json!({"user_id": ids[0]}), 403, "CANNOT_TARGET_SELF"),
        (json!({"username": "nobody"}), 404, "NO_SUCH_USER"),
        (json!({"user_id": 999_999}), 404, "NO_SUCH_USER"),
        (json!({"user": "bob"}), 400, "MALFORMED_FRAME"),
    ];
    for (body, status, name) in refusals {
        let (got, v) = open(alice.clone(), body.clone()).await;
        assert_eq!(
            (got, &v["error"]["name"]),
            (status, &json!(name)),
            "{body}: {v}"
        );
    }
    let (status, v) = api(addr, "GET", "/api/me/rooms", Some(&alice), None).await;
    assert_eq!((status, &v["rooms"]), (200, &json!([])), "nothing stored");

    let (status, v) = open(alice.clone(), json!({"username": "bob"})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["name"], json!("bob"));
    assert_eq!(v["direct_with"], json!({"user": ids[1], "username": "bob"}));
    assert_eq!(v["visibility"], json!("private"));
    let room = v["id"].as_u64().unwrap();
    let (status, v) = open(bob.clone(), json!({"user_id": ids[0]})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["id"].as_u64(), &v["name"]),
        (Some(room), &json!("alice"))
    );

    let (status, v) = api(addr, "GET", "/api/me/rooms", Some(&bob), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["rooms"][0]["direct_with"]["username"], json!("alice"));
    let (status, v) = api(addr, "GET", "/api/rooms", Some(&alice), None).await;
    assert_eq!((status, &v["rooms"]), (200, &json!([])), "never listed");
    // A room that is not direct has no direct_with.
    let (_, v) = api(
        addr,
        "POST",
        "/api/rooms",
        Some(&alice),
        Some(json!({"name": "lounge"})),
    )
    .await;
    assert!(v.get("direct_with").is_none(), "{v}");

    let (status, v) = api(
        addr,
        "POST",
        &format!("/api/rooms/{room}/invitations"),
        Some(&alice),
        Some(json!({"username": "carol"})),
    )
    .await;
    assert_eq!((status, &v["error"]["code"]), (403, &json!(325)), "{v}");
    let (status, v) = api(
        addr,
        "POST",
        &format!("/api/rooms/{room}/join"),
        Some(&tokens[2]),
        None,
    )
    .await;
    assert_eq!((status, &v["error"]["name"]), (403, &json!("DIRECT_ROOM")));
    srv.stop().await;
}
