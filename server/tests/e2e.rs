//! End-to-end scenarios: the real server on ephemeral ports, real SQLite
//! file, driven through the Rust SDK over real sockets.
//!
//! Every scenario takes the [`Transport`] it runs over; the macro at the
//! end generates one test per scenario and transport (`tcp::…`, `tls::…`,
//! `ws::…`), so the same suite proves each door.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Backend, CutProxy, Door, RawClient, TestServer, Transport};
use confab_protocol::{
    ErrorCode, EventBody, Request, RoomEvent, RoomId, Seq, ServerMsg, Visibility,
};
use confab_sdk::{Client, Event, ReconnectPolicy};

const WAIT: Duration = Duration::from_secs(5);

async fn user(door: &Door, name: &str) -> Client {
    let c = door.connect().await;
    c.register(name, "password123").await.expect("register");
    c
}

/// The next room event, skipping connection-state events.
async fn next_room_event(c: &Client) -> RoomEvent {
    loop {
        match c.next_event_timeout(WAIT).await.ok().flatten() {
            Some(Event::Room(ev)) => return ev,
            Some(_) => continue,
            None => panic!("no room event within {WAIT:?}"),
        }
    }
}

/// Collects room messages until `n` have arrived; returns (room, text) pairs.
async fn messages(c: &Client, n: usize) -> Vec<(RoomId, String)> {
    let mut out = Vec::new();
    while out.len() < n {
        let ev = next_room_event(c).await;
        if let EventBody::Message { text, .. } = ev.body {
            out.push((ev.room, text));
        }
    }
    out
}

/// Asserts that no room message arrives for a short while.
async fn no_more_messages(c: &Client) {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(300);
    while let Some(ev) = tokio::time::timeout_at(deadline, c.next_event())
        .await
        .ok()
        .flatten()
    {
        if let Event::Room(RoomEvent {
            body: EventBody::Message { text, .. },
            ..
        }) = ev
        {
            panic!("unexpected message {text:?}");
        }
    }
}

async fn users_receive_exactly_their_rooms_messages_in_order(t: Transport, backend: Backend) {
    let Some(srv) = TestServer::start_on(
        backend,
        "users_receive_exactly_their_rooms_messages_in_order",
        |_| {},
    )
    .await
    else {
        return;
    };
    let door = srv.door(t);
    let (alice, bob, carol) = (
        user(&door, "alice").await,
        user(&door, "bob").await,
        user(&door, "carol").await,
    );
    // Enough rooms that both shards own some.
    let mut rooms = Vec::new();
    for i in 0..4 {
        rooms.push(
            alice
                .create_room(&format!("room-{i}"), "", Visibility::Public)
                .await
                .unwrap()
                .id,
        );
    }
    // bob is in rooms 0 and 1; carol in 1, 2 and 3.
    for r in &rooms[0..2] {
        bob.join_room(*r).await.unwrap();
    }
    for r in &rooms[1..4] {
        carol.join_room(*r).await.unwrap();
    }
    // Each room gets 20 messages, interleaved across rooms.
    let mut acks = Vec::new();
    for i in 0..20 {
        for (k, r) in rooms.iter().enumerate() {
            acks.push(alice.send_message(*r, &format!("r{k}-m{i}")).await.unwrap());
        }
    }
    assert!(acks.iter().all(|a| a.seq.0 > 1));

    let check = |got: Vec<(RoomId, String)>, mine: &[RoomId]| {
        let mut per_room: HashMap<RoomId, Vec<String>> = HashMap::new();
        for (room, text) in got {
            assert!(
                mine.contains(&room),
                "message from a room the user is not in: {room}"
            );
            per_room.entry(room).or_default().push(text);
        }
        for r in mine {
            let k = rooms.iter().position(|x| x == r).unwrap();
            let expected: Vec<String> = (0..20).map(|i| format!("r{k}-m{i}")).collect();
            assert_eq!(per_room.get(r), Some(&expected), "room {r} in order");
        }
    };
    check(messages(&bob, 40).await, &rooms[0..2]);
    check(messages(&carol, 60).await, &rooms[1..4]);
    no_more_messages(&bob).await;
    srv.stop().await;
}

async fn every_member_sees_sender_timestamp_and_consecutive_sequence_numbers(
    t: Transport,
    backend: Backend,
) {
    let Some(srv) = TestServer::start_on(
        backend,
        "every_member_sees_sender_timestamp_and_consecutive_sequence_numbers",
        |_| {},
    )
    .await
    else {
        return;
    };
    let door = srv.door(t);
    let (alice, bob) = (user(&door, "alice").await, user(&door, "bob").await);
    let room = alice
        .create_room("seq", "numbers", Visibility::Public)
        .await
        .unwrap();
    assert_eq!(room.last_seq, Seq(1), "ROOM_CREATED is seq 1");
    let joined = bob.join_room(room.id).await.unwrap();
    assert_eq!(joined.member_count, 2);
    let before = confab_server::clock::now_ms();
    let ack = bob.send_message(room.id, "hello").await.unwrap();
    assert_eq!(ack.seq, Seq(3));
    // alice sees bob's join (2) then the message (3), enriched by the server.
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let ev = next_room_event(&alice).await;
        if ev.seq > Seq(1) {
            seen.push(ev);
        }
    }
    assert_eq!(
        (seen[0].seq, &seen[0].body),
        (Seq(2), &EventBody::MemberJoined)
    );
    assert_eq!(seen[1].seq, Seq(3));
    assert_eq!(seen[1].actor_name, "bob");
    assert_eq!(seen[1].at, ack.at);
    assert!(seen[1].at >= before);
    let members = alice.members(room.id).await.unwrap();
    let names: Vec<_> = members
        .iter()
        .map(|m| (m.username.as_str(), m.online))
        .collect();
    assert_eq!(
        names,
        vec![("alice", true), ("bob", true)],
        "join order with presence"
    );
    srv.stop().await;
}

async fn history_pages_backwards_across_memory_and_store(t: Transport, backend: Backend) {
    // A tiny tail forces older pages to come from SQLite.
    let Some(srv) = TestServer::start_on(
        backend,
        "history_pages_backwards_across_memory_and_store",
        |c| {
            c.room_tail_events = 8;
            c.rate_limit_per_sec = 0;
        },
    )
    .await
    else {
        return;
    };
    let alice = user(&srv.door(t), "alice").await;
    let room = alice
        .create_room("history", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    for i in 1..=30 {
        alice.send_message(room, &format!("m{i}")).await.unwrap();
    }
    // Events: seq 1 ROOM_CREATED, seq 2..=31 the messages m1..m30.
    let mut seqs = Vec::new();
    let mut before = None;
    loop {
        let page = alice.history(room, before, 7).await.unwrap();
        assert!(page.events.len() <= 7);
        for w in page.events.windows(2) {
            assert!(w[0].seq > w[1].seq, "newest first");
        }
        seqs.extend(page.events.iter().map(|e| e.seq.0));
        match page.events.last() {
            Some(last) if page.has_more => before = Some(last.seq),
            _ => break,
        }
    }
    assert_eq!(seqs, (1..=31).rev().collect::<Vec<u64>>());
    let page = alice.history(room, Some(Seq(5)), 2).await.unwrap();
    let texts: Vec<_> = page.events.iter().map(|e| e.body.clone()).collect();
    assert_eq!(texts, vec![EventBody::text("m3"), EventBody::text("m2")]);
    assert!(page.has_more);
    srv.stop().await;
}

async fn a_dropped_connection_resumes_with_exactly_the_missed_events(
    t: Transport,
    backend: Backend,
) {
    let Some(srv) = TestServer::start_on(
        backend,
        "a_dropped_connection_resumes_with_exactly_the_missed_events",
        |c| c.rate_limit_per_sec = 0,
    )
    .await
    else {
        return;
    };
    let proxy = CutProxy::start(srv.addr_for(t)).await;
    let proxied = srv.door_via(t, proxy.addr);
    let bob = proxied
        .connect_with(|o| {
            o.with_reconnect(ReconnectPolicy::exponential(
                Duration::from_millis(50),
                Duration::from_millis(200),
            ))
        })
        .await
        .unwrap();
    bob.register("bob", "password123").await.unwrap();
    let alice = user(&srv.door(t), "alice").await;
    let room = alice
        .create_room("resume", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    bob.join_room(room).await.unwrap();
    alice.send_message(room, "before").await.unwrap();
    assert_eq!(messages(&bob, 1).await, vec![(room, "before".to_string())]);

    // Cut bob off and keep him off while alice talks.
    proxy.set_accepting(false);
    proxy.cut();
    for i in 0..5 {
        alice
            .send_message(room, &format!("missed-{i}"))
            .await
            .unwrap();
    }
    proxy.set_accepting(true);
    // He reconnects with his token and resume point: the five missed
    // messages arrive once each, in order, then live traffic continues.
    let got = messages(&bob, 5).await;
    let expected: Vec<_> = (0..5).map(|i| (room, format!("missed-{i}"))).collect();
    assert_eq!(got, expected);
    alice.send_message(room, "live").await.unwrap();
    assert_eq!(messages(&bob, 1).await, vec![(room, "live".to_string())]);
    no_more_messages(&bob).await;
    srv.stop().await;
}

async fn resume_beyond_the_tail_says_reload_history(t: Transport, backend: Backend) {
    let Some(srv) =
        TestServer::start_on(backend, "resume_beyond_the_tail_says_reload_history", |c| {
            c.room_tail_events = 4;
            c.rate_limit_per_sec = 0;
        })
        .await
    else {
        return;
    };
    let alice = user(&srv.door(t), "alice").await;
    let room = alice
        .create_room("gap", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    for i in 0..10 {
        alice.send_message(room, &format!("m{i}")).await.unwrap();
    }
    let token = alice.token().unwrap();
    // Resuming from seq 1 needs events 2..=11 but memory holds only 4.
    let mut raw = RawClient::connect_via(&srv, t).await;
    let hello = confab_protocol::Hello {
        version: 1,
        client: "t".into(),
        token: Some(token.clone()),
        resume: vec![confab_protocol::ResumePoint {
            room,
            after: Seq(1),
        }],
    };
    raw.send(1, &Request::Hello(hello)).await;
    assert!(matches!(raw.recv().await.1, ServerMsg::Welcome(_)));
    assert_eq!(
        raw.recv().await.1,
        ServerMsg::ResumeGap {
            room,
            last_seq: Seq(11)
        }
    );
    // From seq 8 the tail suffices: exactly 9, 10, 11.
    let mut raw = RawClient::connect_via(&srv, t).await;
    let hello = confab_protocol::Hello {
        version: 1,
        client: "t".into(),
        token: Some(token),
        resume: vec![confab_protocol::ResumePoint {
            room,
            after: Seq(8),
        }],
    };
    raw.send(1, &Request::Hello(hello)).await;
    assert!(matches!(raw.recv().await.1, ServerMsg::Welcome(_)));
    for expected in 9..=11 {
        match raw.recv().await.1 {
            ServerMsg::Event(ev) => assert_eq!(ev.seq, Seq(expected)),
            other => panic!("expected replayed event {expected}, got {other:?}"),
        }
    }
    srv.stop().await;
}

async fn a_restart_keeps_users_rooms_memberships_and_messages(t: Transport, backend: Backend) {
    let Some(mut srv) = TestServer::start_on(
        backend,
        "a_restart_keeps_users_rooms_memberships_and_messages",
        |_| {},
    )
    .await
    else {
        return;
    };
    let alice = user(&srv.door(t), "alice").await;
    let bob = user(&srv.door(t), "bob").await;
    let room = alice
        .create_room("durable", "kept", Visibility::Public)
        .await
        .unwrap();
    let secret = alice
        .create_room("secret", "", Visibility::Private)
        .await
        .unwrap();
    bob.join_room(room.id).await.unwrap();
    for i in 0..3 {
        bob.send_message(room.id, &format!("m{i}")).await.unwrap();
    }
    let token = bob.token().unwrap();
    drop((alice, bob));
    srv.restart().await;

    // The old token still works; so does the password.
    let door = srv.door(t);
    let bob = door.connect_with(|o| o.with_token(token)).await.unwrap();
    assert_eq!(bob.session().map(|s| s.username), Some("bob".into()));
    let alice = door.connect().await;
    alice.login("alice", "password123").await.unwrap();
    let mine: Vec<_> = alice
        .my_rooms()
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(mine, vec![room.id, secret.id]);
    let members: Vec<_> = alice
        .members(room.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.username)
        .collect();
    assert_eq!(members, vec!["alice", "bob"]);
    let page = bob.history(room.id, None, 10).await.unwrap();
    let texts: Vec<_> = page
        .events
        .iter()
        .filter_map(|e| {
            if let EventBody::Message { text, .. } = &e.body {
                Some(text.clone())
            } else {
                None
            }
        })
        .collect();
    assert_eq!(texts, vec!["m2", "m1", "m0"]);
    // Numbering continues where it stopped; new ids do not collide.
    let ack = bob.send_message(room.id, "after restart").await.unwrap();
    assert_eq!(ack.seq, Seq(page.events[0].seq.0 + 1));
    let fresh = alice
        .create_room("fresh", "", Visibility::Public)
        .await
        .unwrap();
    assert!(fresh.id > secret.id);
    srv.stop().await;
}

async fn a_slow_reader_is_disconnected_while_the_others_keep_receiving(
    t: Transport,
    backend: Backend,
) {
    let Some(srv) = TestServer::start_on(
        backend,
        "a_slow_reader_is_disconnected_while_the_others_keep_receiving",
        |c| {
            // Healthy readers absorb bursts of 10 x 50 KB; the slow one cannot.
            c.outbound_queue_bytes = 1024 * 1024;
            c.max_message_len = 60_000;
            c.rate_limit_per_sec = 0;
        },
    )
    .await
    else {
        return;
    };
    let alice = user(&srv.door(t), "alice").await;
    let bob = user(&srv.door(t), "bob").await;
    let room = alice
        .create_room("firehose", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    bob.join_room(room).await.unwrap();
    // The slow reader joins, then never reads again.
    let mut slow = RawClient::connect_via(&srv, t).await;
    slow.hello(None).await;
    slow.register(2, "slowpoke").await;
    slow.send(3, &Request::JoinRoom { room }).await;
    slow.reply_to(3).await;

    let body = "x".repeat(50_000);
    // 30 MB in all: far more than loopback socket buffers plus the 1 MiB
    // queue can hold for a reader that never reads.
    let total = 600;
    for _ in 0..total / 10 {
        let sends = (0..10).map(|_| alice.send_message(room, &body));
        for ack in futures_util::future::join_all(sends).await {
            ack.unwrap();
        }
    }
    // bob got every message, in order.
    let mut last = Seq(0);
    let mut count = 0;
    while count < total {
        let ev = next_room_event(&bob).await;
        if matches!(ev.body, EventBody::Message { .. }) {
            assert!(ev.seq > last);
            last = ev.seq;
            count += 1;
        }
    }
    // The server closed the slow reader: it shows offline in the room.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let members = alice.members(room).await.unwrap();
        let slow_online = members
            .iter()
            .find(|m| m.username == "slowpoke")
            .map(|m| m.online);
        if slow_online == Some(false) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "slow reader still connected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Its stream ends early: fewer than all messages, then end of stream
    // (possibly mid-frame: the server aborts a write that cannot progress).
    let mut received = 0;
    loop {
        use futures_util::StreamExt;
        match tokio::time::timeout(WAIT, slow.read.next())
            .await
            .expect("stream ends")
        {
            Some(Ok(frame)) => match ServerMsg::decode(&frame) {
                Ok(ServerMsg::Event(_)) => received += 1,
                Ok(ServerMsg::Close { code, .. }) => {
                    assert_eq!(code, ErrorCode::SlowConsumer as u16)
                }
                _ => {}
            },
            Some(Err(_)) | None => break,
        }
    }
    assert!(
        received < total,
        "the slow reader was cut off ({received} of {total})"
    );
    srv.stop().await;
}

async fn logout_closes_every_connection_of_the_session(t: Transport, backend: Backend) {
    let Some(srv) = TestServer::start_on(
        backend,
        "logout_closes_every_connection_of_the_session",
        |_| {},
    )
    .await
    else {
        return;
    };
    let door = srv.door(t);
    let first = user(&door, "alice").await;
    let token = first.token().unwrap();
    let second = door
        .connect_with(|o| o.with_token(token.clone()))
        .await
        .unwrap();
    first.logout().await.unwrap();
    let closed = loop {
        match second.next_event_timeout(WAIT).await.ok().flatten() {
            Some(Event::Closed { code, .. }) => break code,
            Some(_) => continue,
            None => panic!("second connection was not closed"),
        }
    };
    assert_eq!(closed.known(), Some(ErrorCode::LoggedOut));
    let err = door
        .connect_with(|o| o.with_token(token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidToken));
    srv.stop().await;
}

async fn listing_searches_pages_counts_members_and_hides_private_rooms(
    t: Transport,
    backend: Backend,
) {
    let Some(srv) = TestServer::start_on(
        backend,
        "listing_searches_pages_counts_members_and_hides_private_rooms",
        |_| {},
    )
    .await
    else {
        return;
    };
    let alice = user(&srv.door(t), "alice").await;
    let bob = user(&srv.door(t), "bob").await;
    let rust = alice
        .create_room("Rustaceans", "systems talk", Visibility::Public)
        .await
        .unwrap();
    let go = alice
        .create_room("gophers", "RUST vs go", Visibility::Public)
        .await
        .unwrap();
    let private = alice
        .create_room("rust-core", "private", Visibility::Private)
        .await
        .unwrap();
    bob.join_room(rust.id).await.unwrap();

    let (found, total) = bob
        .list_rooms("rust", 0, 50)
        .await
        .map(|p| (p.rooms, p.total))
        .unwrap();
    let ids: Vec<_> = found.iter().map(|r| r.id).collect();
    assert_eq!(
        ids,
        vec![rust.id, go.id],
        "name or topic, any case; private hidden"
    );
    assert_eq!(total, 2);
    assert_eq!(found[0].member_count, 2);
    let (found, _) = alice
        .list_rooms("rust", 0, 50)
        .await
        .map(|p| (p.rooms, p.total))
        .unwrap();
    assert!(
        found.iter().any(|r| r.id == private.id),
        "members see their private rooms"
    );
    let (page, total) = alice
        .list_rooms("", 1, 1)
        .await
        .map(|p| (p.rooms, p.total))
        .unwrap();
    assert_eq!((page.len(), total), (1, 3));
    assert_eq!(page[0].id, go.id);
    let err = bob.join_room(private.id).await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::RoomPrivate));
    bob.leave_room(rust.id).await.unwrap();
    assert!(bob.my_rooms().await.unwrap().is_empty());
    // By exact name: names are not unique, any case, whole names only.
    let twin = bob
        .create_room("RUST-CORE", "another", Visibility::Public)
        .await
        .unwrap();
    let named = alice.rooms_named(" Rust-Core ", 0, 50).await.unwrap();
    let ids: Vec<_> = named.rooms.iter().map(|r| r.id).collect();
    assert_eq!(ids, vec![private.id, twin.id]);
    let named = bob.rooms_named("rust-core", 0, 50).await.unwrap();
    assert_eq!(named.total, 1, "the private one stays hidden");
    assert_eq!(bob.rooms_named("rust", 0, 50).await.unwrap().total, 0);
    srv.stop().await;
}

async fn a_resume_point_beyond_the_last_event_says_reload_history(t: Transport, backend: Backend) {
    // A client that saw events lost in a crash (broadcast before commit)
    // resumes from a seq the server never stored: it must reload.
    let Some(srv) = TestServer::start_on(
        backend,
        "a_resume_point_beyond_the_last_event_says_reload_history",
        |_| {},
    )
    .await
    else {
        return;
    };
    let alice = user(&srv.door(t), "alice").await;
    let room = alice
        .create_room("ahead", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    let mut raw = RawClient::connect_via(&srv, t).await;
    let hello = confab_protocol::Hello {
        version: 1,
        client: "t".into(),
        token: alice.token(),
        resume: vec![confab_protocol::ResumePoint {
            room,
            after: Seq(40),
        }],
    };
    raw.send(1, &Request::Hello(hello)).await;
    assert!(matches!(raw.recv().await.1, ServerMsg::Welcome(_)));
    assert_eq!(
        raw.recv().await.1,
        ServerMsg::ResumeGap {
            room,
            last_seq: Seq(1)
        }
    );
    srv.stop().await;
}

over_transports!(
    users_receive_exactly_their_rooms_messages_in_order,
    every_member_sees_sender_timestamp_and_consecutive_sequence_numbers,
    history_pages_backwards_across_memory_and_store,
    a_dropped_connection_resumes_with_exactly_the_missed_events,
    resume_beyond_the_tail_says_reload_history,
    a_restart_keeps_users_rooms_memberships_and_messages,
    a_slow_reader_is_disconnected_while_the_others_keep_receiving,
    logout_closes_every_connection_of_the_session,
    listing_searches_pages_counts_members_and_hides_private_rooms,
    a_resume_point_beyond_the_last_event_says_reload_history,
);
