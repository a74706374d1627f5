//! Read markers and unread counts (SPEC.md §5.9, §5.3.5), end to end: the
//! real server, driven through the Rust SDK over every door and on both
//! stores (a restart keeps the markers), and through the HTTP JSON API.

mod common;

use std::time::Duration;

use common::http::api;
use common::{Backend, Door, TestServer, Transport};
use confab_protocol::{ErrorCode, EventBody, ReadState, RoomId, Seq, Visibility};
use confab_sdk::{Client, Event};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);
const PASSWORD: &str = "password123";

async fn user(door: &Door, name: &str) -> Client {
    let c = door.connect().await;
    c.register(name, PASSWORD).await.expect("register");
    c
}

/// Every READ_MARKER_MOVED `c` receives until the room message `marker`
/// arrives (sent by the test after what it checks), in order.
async fn moved_until(c: &Client, marker: &str) -> Vec<ReadState> {
    let mut seen = Vec::new();
    loop {
        match c.next_event_timeout(WAIT).await.ok().flatten() {
            Some(Event::ReadMarkerMoved(s)) => seen.push(s),
            Some(Event::Room(ev)) if matches!(&ev.body, EventBody::Message { text, .. } if text == marker) => {
                return seen
            }
            Some(_) => continue,
            None => panic!("message {marker:?} did not arrive within {WAIT:?}"),
        }
    }
}

/// `(room, read_seq, unread)` of each of `c`'s rooms, and the total.
async fn unread_of(c: &Client) -> (Vec<(RoomId, Seq, u32)>, u32) {
    let u = c.unread().await.expect("unread");
    let rooms = u
        .rooms
        .iter()
        .map(|s| (s.room, s.read_seq, s.unread))
        .collect();
    (rooms, u.total)
}

async fn markers_count_unread_reach_other_devices_and_survive_a_restart(
    t: Transport,
    backend: Backend,
) {
    let Some(mut srv) = TestServer::start_on(backend, "read_markers", |_| {}).await else {
        return;
    };
    let door = srv.door(t);
    let alice = user(&door, "alice").await;
    let phone = door.connect().await;
    phone.login("alice", PASSWORD).await.unwrap();
    let bob = user(&door, "bob").await;
    let carol = user(&door, "carol").await;
    let room = alice
        .create_room("unread", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    bob.join_room(room).await.unwrap();
    let m1 = bob.send_message(room, "m1").await.unwrap();
    let m2 = bob.send_message(room, "m2").await.unwrap();
    alice.send_message(room, "mine").await.unwrap();
    let m3 = bob.send_message(room, "m3").await.unwrap();
    let gone = bob.send_message(room, "oops").await.unwrap();
    let del = bob.delete_message(room, gone.seq).await.unwrap();
    let other = alice
        .create_room("other", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    bob.join_room(other).await.unwrap();
    bob.send_message(other, "x").await.unwrap();
    bob.send_message(other, "y").await.unwrap();

    // Never marked: every message of others counts, not her own, not the
    // deleted one, not joins; the total is over both rooms.
    assert_eq!(
        unread_of(&alice).await,
        (vec![(room, Seq(0), 3), (other, Seq(0), 2)], 5)
    );
    assert_eq!(
        unread_of(&bob).await,
        (vec![(room, Seq(0), 1), (other, Seq(0), 0)], 1)
    );

    // Alice reads up to m2 on one device: the answer has the new count,
    // her phone is told, she is not (her own connection).
    let set = alice.set_read_marker(room, m2.seq).await.unwrap();
    let want = ReadState {
        room,
        read_seq: m2.seq,
        unread: 1,
    };
    assert_eq!(set, want);
    bob.send_message(other, "sync1").await.unwrap();
    assert_eq!(moved_until(&phone, "sync1").await, vec![want]);
    assert_eq!(moved_until(&alice, "sync1").await, vec![]);

    // Backwards (or in place) is accepted and changes nothing: no event.
    assert_eq!(phone.set_read_marker(room, m1.seq).await.unwrap(), want);
    assert_eq!(phone.set_read_marker(room, m2.seq).await.unwrap(), want);
    // Up to the last event (the delete), which leaves nothing unread.
    let all = phone.set_read_marker(room, del.seq).await.unwrap();
    assert_eq!((all.read_seq, all.unread), (del.seq, 0));
    assert!(m3.seq < del.seq);

    // Refusals: beyond the last event, not a member, no such room.
    let beyond = alice
        .set_read_marker(room, Seq(del.seq.0 + 1))
        .await
        .unwrap_err();
    assert_eq!(beyond.code(), Some(ErrorCode::InvalidReadMarker));
    let stranger = carol.set_read_marker(room, m1.seq).await.unwrap_err();
    assert_eq!(stranger.code(), Some(ErrorCode::NotAMember));
    let missing = alice
        .set_read_marker(RoomId(999_999), Seq(1))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Some(ErrorCode::RoomNotFound));
    bob.send_message(other, "sync2").await.unwrap();
    assert_eq!(
        moved_until(&alice, "sync2").await,
        vec![ReadState {
            room,
            read_seq: del.seq,
            unread: 0
        }],
        "only the phone's forward move reached the laptop"
    );
    let after = (vec![(room, del.seq, 0), (other, Seq(0), 4)], 4);
    assert_eq!(unread_of(&alice).await, after);

    drop((alice, phone, bob, carol));
    srv.restart().await;
    let alice = srv.door(t).connect().await;
    alice.login("alice", PASSWORD).await.unwrap();
    assert_eq!(unread_of(&alice).await, after, "markers survive a restart");
    srv.stop().await;
}

over_transports!(markers_count_unread_reach_other_devices_and_survive_a_restart);

on_both_stores!(read_markers_over_http);

async fn read_markers_over_http(backend: Backend) {
    let Some(srv) = TestServer::start_on(backend, "read_markers_over_http", |_| {}).await else {
        return;
    };
    let door = srv.door(Transport::Tcp);
    let owner = user(&door, "owner").await;
    let room = owner
        .create_room("plaza", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    let first = owner.send_message(room, "one").await.unwrap();
    let second = owner.send_message(room, "two").await.unwrap();
    let addr = srv.addr_for(Transport::Ws);
    let (status, v) = api(
        addr,
        "POST",
        "/api/register",
        None,
        Some(json!({"username": "reader", "password": PASSWORD})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let reader = v["token"].as_str().unwrap().to_owned();
    let path = format!("/api/rooms/{}/read-marker", room.0);
    let put = |seq: u64| {
        let (path, reader) = (path.clone(), reader.clone());
        async move {
            api(
                addr,
                "PUT",
                &path,
                Some(&reader),
                Some(json!({ "seq": seq })),
            )
            .await
        }
    };

    // A seq past 2^63 - 1 is malformed (as every id in the API), refused
    // before the room is even looked at.
    let (status, v) = put(1 << 63).await;
    assert_eq!(status, 400, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("2^63"),
        "{v}"
    );
    let (status, v) = put(first.seq.0).await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["error"]["name"], json!("NOT_A_MEMBER"));
    let join = format!("/api/rooms/{}/join", room.0);
    assert_eq!(api(addr, "POST", &join, Some(&reader), None).await.0, 200);

    let (status, v) = api(addr, "GET", "/api/me/rooms", Some(&reader), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["unread_total"], json!(2));
    assert_eq!(
        v["read_states"],
        json!([{"room": room.0, "read_seq": 0, "unread": 2}])
    );
    let (status, v) = put(first.seq.0).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v,
        json!({"room": room.0, "read_seq": first.seq.0, "unread": 1})
    );
    // The joiner's MEMBER_JOINED is the room's last event.
    let (status, v) = put(second.seq.0 + 2).await;
    assert_eq!(status, 400, "{v}");
    assert_eq!(v["error"]["name"], json!("INVALID_READ_MARKER"));
    let (status, v) = api(addr, "GET", "/api/me/rooms", Some(&reader), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        v["unread_total"],
        json!(1),
        "the refused marker stored nothing"
    );
    let (status, v) = api(addr, "GET", "/api/rooms?q=plaza", Some(&reader), None).await;
    assert_eq!(status, 200, "{v}");
    assert!(v.get("unread_total").is_none(), "LIST_ROOMS has no unread");
    srv.stop().await;
}
