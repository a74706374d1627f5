//! Helpers for tests that drive the server through the Rust SDK: a
//! registered user, the next room event of a kind, the event at a seq.

use std::time::Duration;

use confab_protocol::{EventBody, ResumePoint, RoomEvent, RoomId, Seq, Visibility};
use confab_sdk::{Client, Event};

use super::Door;

/// How long a helper waits for an event.
pub const WAIT: Duration = Duration::from_secs(5);

/// A new client on `door`, registered as `name` ([`Door::register`]).
pub async fn user(door: &Door, name: &str) -> Client {
    door.register(name).await.0
}

/// The next room event matching `pick`, skipping others.
pub async fn room_event(c: &Client, pick: impl Fn(&EventBody) -> bool) -> RoomEvent {
    loop {
        match c.next_event_timeout(WAIT).await.ok().flatten() {
            Some(Event::Room(ev)) if pick(&ev.body) => return ev,
            Some(_) => continue,
            None => panic!("no matching room event within {WAIT:?}"),
        }
    }
}

/// The event at `seq` in the room's history, as HISTORY serves it.
pub async fn event_at(c: &Client, room: RoomId, seq: Seq) -> RoomEvent {
    let page = c.history(room, Some(Seq(seq.0 + 1)), 1).await.unwrap();
    page.events.into_iter().next().expect("an event at seq")
}

/// alice, who creates the public room `name` on `door`, and bob, who joins
/// it.
pub async fn alice_and_bob_in(door: &Door, name: &str) -> (Client, Client, RoomId) {
    let alice = user(door, "alice").await;
    let bob = user(door, "bob").await;
    let room = alice
        .create_room(name, "", Visibility::Public)
        .await
        .expect("create the room")
        .id;
    bob.join_room(room).await.expect("bob joins");
    (alice, bob, room)
}

/// A new connection on `door` with `token`'s session that resumes `room`
/// after `after`: it is replayed the room's events from `after + 1`.
pub async fn resumed(door: &Door, token: &str, room: RoomId, after: Seq) -> Client {
    door.connect_with(|o| {
        o.with_token(token.to_owned())
            .with_resume(vec![ResumePoint { room, after }])
    })
    .await
    .expect("a resumed connection")
}
