//! Typing indicators (SPEC.md §5.5.7), end to end: the real server, driven
//! through the Rust SDK over every door and on both stores, and through
//! the HTTP JSON API. Expiry runs on the server's clock, moved forward by
//! the test (no sleeps); the throttle's timing is unit-tested in
//! `server/src/room/typing.rs`.

mod common;

use std::time::Duration;

use common::http::api;
use common::{Backend, Door, TestServer, Transport};
use confab_protocol::{ErrorCode, EventBody, RoomId, UserId, Visibility};
use confab_sdk::{Client, Event};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);
const PASSWORD: &str = "password123";

async fn user(door: &Door, name: &str) -> (Client, UserId) {
    let c = door.connect().await;
    let s = c.register(name, PASSWORD).await.expect("register");
    (c, s.user)
}

/// A TYPING event as the SDK reports it: (room, user, typing).
type Typed = (RoomId, UserId, bool);

/// Every TYPING event `c` receives until the room message `marker`
/// arrives (which the test sends after what it checks), in order.
async fn typing_until(c: &Client, marker: &str) -> Vec<Typed> {
    let mut seen = Vec::new();
    loop {
        match c.next_event_timeout(WAIT).await.ok().flatten() {
            Some(Event::Typing {
                room, user, typing, ..
            }) => seen.push((room, user, typing)),
            Some(Event::Room(ev)) if matches!(&ev.body, EventBody::Message { text, .. } if text == marker) => {
                return seen
            }
            Some(_) => continue,
            None => panic!("message {marker:?} did not arrive within {WAIT:?}"),
        }
    }
}

/// The next TYPING event `c` receives, skipping other events.
async fn next_typing(c: &Client) -> (Typed, String) {
    loop {
        match c.next_event_timeout(WAIT).await.ok().flatten() {
            Some(Event::Typing {
                room,
                user,
                username,
                typing,
            }) => return ((room, user, typing), username),
            Some(_) => continue,
            None => panic!("no TYPING event within {WAIT:?}"),
        }
    }
}

async fn typing_is_forwarded_to_the_others_throttled_and_expires(t: Transport, backend: Backend) {
    let Some(srv) = TestServer::start_on(backend, "typing_is_forwarded", |_| {}).await else {
        return;
    };
    let door = srv.door(t);
    let (alice, alice_id) = user(&door, "alice").await;
    // Alice's second device.
    let alice2 = door.connect().await;
    alice2.login("alice", PASSWORD).await.unwrap();
    let (bob, bob_id) = user(&door, "bob").await;
    let (carol, _) = user(&door, "carol").await;
    let room = alice
        .create_room("typing", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    bob.join_room(room).await.unwrap();

    // One START goes to bob; a flood of them is taken (each answered OK,
    // the connection stays open) but not forwarded.
    alice.typing_start(room).await.unwrap();
    assert_eq!(
        next_typing(&bob).await,
        ((room, alice_id, true), "alice".to_owned())
    );
    for _ in 0..20 {
        alice.typing_start(room).await.unwrap();
    }
    alice.send_message(room, "one").await.unwrap();
    assert_eq!(
        typing_until(&bob, "one").await,
        vec![],
        "the flood within 2 s forwarded nothing more"
    );
    assert_eq!(
        typing_until(&alice2, "one").await,
        vec![],
        "never to the typist's own connections"
    );
    assert_eq!(typing_until(&alice, "one").await, vec![]);

    // No renewal for 5 s (on the server's clock): the server sends the
    // STOP on alice's behalf, to bob only.
    srv.handle
        .as_ref()
        .unwrap()
        .clock()
        .advance(Duration::from_secs(5));
    assert_eq!(
        next_typing(&bob).await,
        ((room, alice_id, false), "alice".to_owned())
    );
    alice.send_message(room, "two").await.unwrap();
    assert_eq!(typing_until(&alice2, "two").await, vec![]);
    assert_eq!(typing_until(&bob, "two").await, vec![], "one STOP only");

    // An explicit STOP is forwarded; a second one has nothing to stop.
    bob.typing_start(room).await.unwrap();
    bob.typing_stop(room).await.unwrap();
    bob.typing_stop(room).await.unwrap();
    bob.send_message(room, "three").await.unwrap();
    for device in [&alice, &alice2] {
        assert_eq!(
            typing_until(device, "three").await,
            vec![(room, bob_id, true), (room, bob_id, false)]
        );
    }

    // Not a member, no such room: refused with their codes.
    let refused = carol.typing_start(room).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::NotAMember));
    let refused = carol.typing_stop(room).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::NotAMember));
    let refused = alice.typing_start(RoomId(999_999)).await.unwrap_err();
    assert_eq!(refused.code(), Some(ErrorCode::RoomNotFound));
    bob.send_message(room, "four").await.unwrap();
    assert_eq!(
        typing_until(&alice, "four").await,
        vec![],
        "a refused START forwards nothing"
    );
    srv.stop().await;
}

over_transports!(typing_is_forwarded_to_the_others_throttled_and_expires);

on_both_stores!(typing_over_http);

async fn typing_over_http(backend: Backend) {
    let Some(srv) = TestServer::start_on(backend, "typing_over_http", |_| {}).await else {
        return;
    };
    let door = srv.door(Transport::Tcp);
    let (owner, _) = user(&door, "owner").await;
    let room = owner
        .create_room("plaza", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    let addr = srv.addr_for(Transport::Ws);
    let (status, v) = api(
        addr,
        "POST",
        "/api/register",
        None,
        Some(json!({"username": "bot", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let bot = v["token"].as_str().unwrap().to_owned();
    let bot_id = UserId(v["user"].as_u64().expect("user"));
    let path = format!("/api/rooms/{}/typing", room.0);

    let (status, v) = api(
        addr,
        "POST",
        &path,
        Some(&bot),
        Some(json!({"typing": true})),
    )
    .await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"]["name"], json!("NOT_A_MEMBER"));
    let join = format!("/api/rooms/{}/join", room.0);
    assert_eq!(api(addr, "POST", &join, Some(&bot), None).await.0, 200);

    let (status, v) = api(
        addr,
        "POST",
        &path,
        Some(&bot),
        Some(json!({"typing": true})),
    )
    .await;
    assert_eq!(status, 204, "{v}");
    assert_eq!(
        next_typing(&owner).await,
        ((room, bot_id, true), "bot".to_owned())
    );
    let (status, v) = api(
        addr,
        "POST",
        &path,
        Some(&bot),
        Some(json!({"typing": false})),
    )
    .await;
    assert_eq!(status, 204, "{v}");
    assert_eq!(
        next_typing(&owner).await,
        ((room, bot_id, false), "bot".to_owned())
    );
    let (status, v) = api(
        addr,
        "POST",
        &path,
        Some(&bot),
        Some(json!({"typing": "yes"})),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    srv.stop().await;
}
