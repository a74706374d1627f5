//! `@username` mentions (SPEC.md §8.13), end to end: the real server,
//! driven through the Rust SDK over every door and on both stores, and
//! through the HTTP JSON API on both stores. A mention is a persisted
//! `mentioned` notification, delivered live, kept across a restart; nobody
//! else is notified. (The token syntax and the per-message limit are
//! unit-tested in `server/src/room/`.)

mod common;

use std::time::Duration;

use common::http::{api, create_room, register};
use common::{Backend, Door, TestServer, Transport};
use confab_protocol::{Notification, NotificationKind, RoomId, UserRef, Visibility};
use confab_sdk::{Client, Event};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);
const PASSWORD: &str = "password123";

async fn user(door: &Door, name: &str) -> Client {
    let c = door.connect().await;
    c.register(name, PASSWORD).await.expect("register");
    c
}

/// `c`'s stored `mentioned` notifications about `room`, newest first.
async fn mentions(c: &Client, room: RoomId) -> Vec<Notification> {
    let page = c
        .notifications(None, 200, false)
        .await
        .expect("notifications");
    page.items
        .into_iter()
        .filter(|n| n.kind == NotificationKind::Mentioned && n.room == room)
        .collect()
}

async fn mentions_notify_each_named_member_once_and_persist(t: Transport, backend: Backend) {
    let Some(mut srv) = TestServer::start_on(backend, "mentions", |_| {}).await else {
        return;
    };
    let door = srv.door(t);
    let alice = user(&door, "alice").await;
    let bob = user(&door, "bob").await;
    let carol = user(&door, "carol").await;
    let dave = user(&door, "dave").await;
    let erin = user(&door, "erin").await;
    let room = alice
        .create_room("mentions", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    for c in [&bob, &carol, &dave] {
        c.join_room(room).await.unwrap();
    }
    alice.ban(room, UserRef::Name("dave".into())).await.unwrap();

    let sent = alice
        .send_message(
            room,
            "hey @bob @BOB and @carol. cc @alice @dave @erin @ghost erin@example.org",
        )
        .await
        .unwrap();

    // Live, once the message is durable: bob is told who and where.
    let live = loop {
        match bob.next_event_timeout(WAIT).await.ok().flatten() {
            Some(Event::Notification(n)) if n.kind == NotificationKind::Mentioned => break n,
            Some(_) => continue,
            None => panic!("no mention notification within {WAIT:?}"),
        }
    };
    assert_eq!(
        (live.room, live.actor_name.as_str(), live.at, live.read),
        (room, "alice", sent.at, false)
    );
    assert_eq!(live.room_name, "mentions");

    let check = |who: Vec<(Client, usize)>| async move {
        for (c, want) in &who {
            let got = mentions(c, room).await;
            assert_eq!(got.len(), *want, "{:?}", c.session().map(|s| s.username));
        }
        who
    };
    // One each for bob (named twice) and carol (with a full stop); none
    // for the sender, the banned dave, the non-member erin.
    let who = check(vec![(bob, 1), (carol, 1), (alice, 0), (dave, 0), (erin, 0)]).await;
    let live_id = live.id;
    drop(who);

    srv.restart().await;
    let door = srv.door(t);
    let bob = door.connect().await;
    bob.login("bob", PASSWORD).await.unwrap();
    let kept = mentions(&bob, room).await;
    assert_eq!(kept.len(), 1, "a restart keeps the notification");
    assert_eq!((kept[0].id, kept[0].at), (live_id, sent.at));
    srv.stop().await;
}

over_transports!(mentions_notify_each_named_member_once_and_persist);

on_both_stores!(mentions_over_http);

/// Over the HTTP API: `POST /api/rooms/{id}/messages` naming a member, a
/// non-member and the sender notifies the member alone, once, and the
/// notification is in `GET /api/me/notifications` when the POST answers
/// (it is durable with the message).
async fn mentions_over_http(backend: Backend) {
    let Some(srv) = TestServer::start_on(backend, "mentions_over_http", |_| {}).await else {
        return;
    };
    let addr = srv.addr_for(Transport::Ws);
    let (alice, alice_id) = register(addr, "alice").await;
    let (bob, _) = register(addr, "bob").await;
    let (carol, _) = register(addr, "carol").await;
    let id = create_room(addr, &alice, "plaza").await;
    let (status, v) = api(
        addr,
        "POST",
        &format!("/api/rooms/{id}/join"),
        Some(&bob),
        None,
    )
    .await;
    assert_eq!(status, 200, "{v}");

    let (status, sent) = api(
        addr,
        "POST",
        &format!("/api/rooms/{id}/messages"),
        Some(&alice),
        Some(json!({"text": "@bob meet @carol, says @alice (cc @bob)"})),
    )
    .await;
    assert_eq!(status, 201, "{sent}");

    let notifications = |token: String| async move {
        let (status, v) = api(addr, "GET", "/api/me/notifications", Some(&token), None).await;
        assert_eq!(status, 200, "{v}");
        v
    };
    let v = notifications(bob).await;
    let items = v["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "one notification, however often named: {v}");
    let n = &items[0];
    assert!(n["id"].as_u64().is_some(), "{n}");
    assert_eq!(
        (
            &n["kind"],
            &n["room"],
            &n["room_name"],
            &n["actor"],
            &n["actor_name"],
            &n["at"],
            &n["read"]
        ),
        (
            &json!("mentioned"),
            &json!(id),
            &json!("plaza"),
            &json!(alice_id),
            &json!("alice"),
            &sent["at"],
            &json!(false)
        ),
        "{n}"
    );
    assert_eq!(v["unread"], json!(1), "{v}");
    // Neither the non-member nor the sender naming herself.
    for (who, token) in [("carol", carol), ("alice", alice)] {
        let v = notifications(token).await;
        assert_eq!(v["items"], json!([]), "{who}: {v}");
        assert_eq!(v["unread"], json!(0), "{who}: {v}");
    }
    srv.stop().await;
}
