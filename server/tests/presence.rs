//! Presence (SPEC.md §5.10), end to end: the real server driven through
//! the Rust SDK over every door and on both stores, and through the HTTP
//! JSON API on both stores. The 1 s
//! coalescing interval runs on the server's clock, which the test steps
//! forward (no sleeps); updates go out on the shards' 250 ms tick, one
//! PRESENCE frame per room listing every change of the tick, which the SDK
//! reports as one `Event::Presence` per entry. The timing rules and the
//! grouping are unit-tested on explicit times in
//! `server/src/shard/presence.rs` (and the one frame per room per tick in
//! `server/src/shard/tests.rs`).

mod common;

use std::time::Duration;

use common::http::api;
use common::{Backend, TestServer, Transport};
use confab_protocol::{EventBody, Presence, RoomId, UserId, Visibility};
use confab_sdk::{Client, Event};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);
const PASSWORD: &str = "password123";

/// A PRESENCE event as the SDK reports it.
type Seen = (RoomId, UserId, Presence);

/// Every PRESENCE event about `about` that `c` receives until the room
/// message `marker` arrives (sent by the test after what it checks).
async fn presence_until(c: &Client, about: UserId, marker: &str) -> Vec<Seen> {
    let mut seen = Vec::new();
    loop {
        match c.next_event_timeout(WAIT).await.ok().flatten() {
            Some(Event::Presence {
                room,
                user,
                presence,
                ..
            }) if user == about => seen.push((room, user, presence)),
            Some(Event::Room(ev)) if matches!(&ev.body, EventBody::Message { text, .. } if text == marker) => {
                return seen
            }
            Some(_) => continue,
            None => panic!("message {marker:?} did not arrive within {WAIT:?}"),
        }
    }
}

/// The next PRESENCE event about `about` that `c` receives.
async fn next_presence(c: &Client, about: UserId) -> (Seen, String) {
    loop {
        match c.next_event_timeout(WAIT).await.ok().flatten() {
            Some(Event::Presence {
                room,
                user,
                username,
                presence,
            }) if user == about => return ((room, user, presence), username),
            Some(_) => continue,
            None => panic!("no PRESENCE about {about:?} within {WAIT:?}"),
        }
    }
}

/// `user`'s presence as LIST_MEMBERS of `room` reports it to `c`.
async fn listed(c: &Client, room: RoomId, user: UserId) -> Option<Presence> {
    c.members(room)
        .await
        .unwrap()
        .into_iter()
        .find(|m| m.user == user)
        .and_then(|m| m.presence)
}

async fn devices_away_coalescing_and_large_rooms(t: Transport, backend: Backend) {
    // Presence is pushed in rooms of at most 2 members.
    let Some(srv) = TestServer::start_on(backend, "presence", |c| {
        c.presence_max_members = 2;
    })
    .await
    else {
        return;
    };
    let clock = srv.handle.as_ref().unwrap().clock().clone();
    // Frozen: only the steps move it, so however long the requests below
    // take on a loaded machine, each falls in the interval the test means.
    clock.freeze();
    let step = || clock.advance(Duration::from_millis(1_100));
    let door = srv.door(t);
    let bob = door.connect().await;
    let bob_id = bob.register("bob", PASSWORD).await.unwrap().user;
    let alice1 = door.connect().await;
    let alice_id = alice1.register("alice", PASSWORD).await.unwrap().user;
    // Alice's coming online goes out on the next tick, to the rooms she
    // is in then: none. Without this, a tick falling after bob joins the
    // pair room below would tell him, and the checks would see it. (The
    // round trip first: the session attaches to the shards right after
    // REGISTER's reply, before it reads the next request.)
    alice1.my_rooms().await.unwrap();
    srv.handle.as_ref().unwrap().tick_shards().await;
    let carol = door.connect().await;
    carol.register("carol", PASSWORD).await.unwrap();
    let pair = alice1
        .create_room("pair", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    bob.join_room(pair).await.unwrap();
    // Three members: above the configured limit of 2.
    let big = alice1
        .create_room("big", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    bob.join_room(big).await.unwrap();
    carol.join_room(big).await.unwrap();
    assert_eq!(listed(&bob, pair, alice_id).await, Some(Presence::Online));

    // Alice's second device: still one "online", nothing to push.
    step();
    let alice2 = door.connect().await;
    alice2.login("alice", PASSWORD).await.unwrap();
    alice1.close().await;
    assert_eq!(listed(&bob, pair, alice_id).await, Some(Presence::Online));
    alice2.send_message(pair, "m1").await.unwrap();
    assert_eq!(
        presence_until(&bob, alice_id, "m1").await,
        vec![],
        "online while either device is connected"
    );

    // Away, set from the second device: seen by bob in the pair room (and
    // by alice's own device), never in the big room.
    step();
    alice2.set_away(true).await.unwrap();
    assert_eq!(
        next_presence(&bob, alice_id).await,
        ((pair, alice_id, Presence::Away), "alice".to_owned())
    );
    assert_eq!(
        next_presence(&alice2, alice_id).await.0,
        (pair, alice_id, Presence::Away)
    );
    assert_eq!(listed(&bob, pair, alice_id).await, Some(Presence::Away));
    assert_eq!(listed(&carol, big, alice_id).await, Some(Presence::Away));
    alice2.send_message(big, "m2").await.unwrap();
    assert_eq!(
        presence_until(&carol, alice_id, "m2").await,
        vec![],
        "no push in a room above presence_max_members"
    );

    // Coalescing: within the second after that push, back, away again,
    // back: one update when the second is over, the latest (online).
    alice2.set_away(false).await.unwrap();
    alice2.set_away(true).await.unwrap();
    alice2.set_away(false).await.unwrap();
    alice2.send_message(pair, "m3").await.unwrap();
    assert_eq!(presence_until(&bob, alice_id, "m3").await, vec![]);
    step();
    assert_eq!(
        next_presence(&bob, alice_id).await.0,
        (pair, alice_id, Presence::Online)
    );
    // A flap that ends where it started sends nothing at all, even once
    // the second is over: the first update after it is the next real
    // change (away), not the online the flap ended at.
    alice2.set_away(true).await.unwrap();
    alice2.set_away(false).await.unwrap();
    step();
    alice2.set_away(false).await.unwrap();
    alice2.send_message(pair, "m4").await.unwrap();
    assert_eq!(
        presence_until(&bob, alice_id, "m4").await,
        vec![],
        "the flap online→away→online sent nothing"
    );
    step();
    alice2.set_away(true).await.unwrap();
    assert_eq!(
        next_presence(&bob, alice_id).await.0,
        (pair, alice_id, Presence::Away),
        "the flap sent nothing before the next change"
    );

    // The last device goes: offline (and away is forgotten).
    step();
    alice2.close().await;
    assert_eq!(
        next_presence(&bob, alice_id).await.0,
        (pair, alice_id, Presence::Offline)
    );
    assert_eq!(listed(&bob, pair, alice_id).await, Some(Presence::Offline));
    step();
    let alice3 = door.connect().await;
    alice3.login("alice", PASSWORD).await.unwrap();
    assert_eq!(
        next_presence(&bob, alice_id).await.0,
        (pair, alice_id, Presence::Online),
        "back online, not away"
    );
    assert_eq!(listed(&alice3, pair, bob_id).await, Some(Presence::Online));
    srv.stop().await;
}

over_transports!(devices_away_coalescing_and_large_rooms);

on_both_stores!(presence_over_http);

async fn presence_over_http(backend: Backend) {
    let Some(srv) = TestServer::start_on(backend, "presence_over_http", |_| {}).await else {
        return;
    };
    let door = srv.door(Transport::Tcp);
    let owner = door.connect().await;
    owner.register("owner", PASSWORD).await.unwrap();
    let room = owner
        .create_room("plaza", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    // The bot's connection, and its HTTP session.
    let bot = door.connect().await;
    let bot_id = bot.register("bot", PASSWORD).await.unwrap().user;
    bot.join_room(room).await.unwrap();
    let addr = srv.addr_for(Transport::Ws);
    let (status, v) = api(
        addr,
        "POST",
        "/api/login",
        None,
        Some(json!({"username": "bot", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let token = v["token"].as_str().unwrap().to_owned();

    srv.handle
        .as_ref()
        .unwrap()
        .clock()
        .advance(Duration::from_millis(1_100));
    let (status, v) = api(
        addr,
        "PUT",
        "/api/me/presence",
        Some(&token),
        Some(json!({"away": true})),
    )
    .await;
    assert_eq!(status, 204, "{v}");
    assert_eq!(
        next_presence(&owner, bot_id).await,
        ((room, bot_id, Presence::Away), "bot".to_owned())
    );
    let path = format!("/api/rooms/{}/members", room.0);
    let (status, v) = api(addr, "GET", &path, Some(&token), None).await;
    assert_eq!(status, 200, "{v}");
    let presence: Vec<_> = v["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["username"].clone(), m["presence"].clone()))
        .collect();
    assert_eq!(
        presence,
        vec![
            (json!("owner"), json!("online")),
            (json!("bot"), json!("away"))
        ]
    );
    let (status, v) = api(
        addr,
        "PUT",
        "/api/me/presence",
        Some(&token),
        Some(json!({"away": "yes"})),
    )
    .await;
    assert_eq!(status, 400, "{v}");
    srv.stop().await;
}
