//! Parked connections (ARCHITECTURE.md, "Connections"): a connection that
//! has been quiet for `park_after_ms` with nothing half-read gives up its
//! task. Everything a running session does must still happen to it:
//! pushes reach it, its requests are answered, LOGOUT closes it, the idle
//! timeout closes it, shutdown closes it — over every door and on both
//! stores. The same holds for deep-parked connections (parked for
//! `deep_park_after_ms` with nothing queued: their sockets off tokio's
//! reactor, watched by the server's own epoll set).

mod common;

use std::time::Duration;

use common::{Backend, RawClient, TestServer, Transport};
use confab_protocol::{ErrorCode, EventBody, Request, RoomId, ServerMsg, Visibility};
use confab_server::ServerHandle;

/// Parks after 20 ms of silence: the tests wait for parking, not for time.
/// Deep parking is off, so that these tests see ordinary parking alone.
fn quick_parking(c: &mut confab_server::Config) {
    c.park_after_ms = confab_server::config::Millis(20);
    c.deep_park_after_ms = confab_server::config::Millis(0);
}

/// Parks at once, and deep after 20 ms parked (the sweep ticks every
/// 10 ms then).
fn quick_deep_parking(c: &mut confab_server::Config) {
    c.park_after_ms = confab_server::config::Millis(0);
    c.deep_park_after_ms = confab_server::config::Millis(20);
}

/// Whether connections deep-park (every door does, on Linux).
fn deepens(_: Transport) -> bool {
    cfg!(target_os = "linux")
}

/// Waits until `n` connections are parked, and all of them deep if `t`
/// deep-parks (none otherwise).
async fn deep_parked(srv: &TestServer, t: Transport, n: usize) {
    parked(srv, n).await;
    let deep = if deepens(t) { n } else { 0 };
    counted(
        srv,
        "deep-parked",
        deep,
        ServerHandle::deep_parked_connections,
    )
    .await;
    let handle = srv.handle.as_ref().expect("running");
    assert_eq!(handle.parked_connections(), n, "deep ones are parked too");
}

/// Waits until `n` connections are parked (each test's server is its own).
async fn parked(srv: &TestServer, n: usize) {
    counted(srv, "parked", n, ServerHandle::parked_connections).await;
}

/// Waits until `count` of the server's connections is `n`.
async fn counted(srv: &TestServer, what: &str, n: usize, count: fn(&ServerHandle) -> usize) {
    let handle = srv.handle.as_ref().expect("running");
    let waited = tokio::time::timeout(Duration::from_secs(5), async {
        while count(handle) != n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "{} connections {what}, not {n}",
        count(handle)
    );
}

/// A raw client of `t` that registered `name`: its token.
async fn registered(srv: &TestServer, t: Transport, name: &str) -> (RawClient, String) {
    let mut c = RawClient::connect_via(srv, t).await;
    assert!(matches!(c.hello(None).await, ServerMsg::Welcome(_)));
    match c.register(2, name).await {
        ServerMsg::Session { token, .. } => (c, token.into_string()),
        other => panic!("{other:?}"),
    }
}

/// The next room message `c` receives (skipping other frames).
async fn next_message(c: &mut RawClient) -> String {
    loop {
        if let (0, ServerMsg::Event(ev)) = c.recv().await {
            if let EventBody::Message { text, .. } = ev.body {
                return text;
            }
        }
    }
}

async fn send_message(c: &mut RawClient, req_id: u32, room: RoomId, body: &str) {
    let send = Request::SendMessage {
        room,
        body: body.into(),
        spans: vec![],
        sticker: None,
        attachments: Vec::new(),
    };
    c.send(req_id, &send).await;
    assert!(matches!(
        c.reply_to(req_id).await,
        ServerMsg::MessageAck { .. }
    ));
}

/// Alice and Bob in one room, both parked as `parking` parks them: their
/// room.
async fn pair(srv: &TestServer, t: Transport, parking: Parking) -> (RawClient, RawClient, RoomId) {
    let (mut alice, _) = registered(srv, t, "alice").await;
    let (mut bob, _) = registered(srv, t, "bob").await;
    let create = Request::CreateRoom {
        name: "quiet".into(),
        topic: String::new(),
        visibility: Visibility::Public,
        members: Vec::new(),
    };
    alice.send(3, &create).await;
    let room = match alice.reply_to(3).await {
        ServerMsg::Room(info) => info.id,
        other => panic!("{other:?}"),
    };
    bob.send(3, &Request::JoinRoom { room }).await;
    assert!(matches!(bob.reply_to(3).await, ServerMsg::Room(_)));
    parking.settled(srv, t, 2).await;
    (alice, bob, room)
}

async fn a_parked_connection_gets_pushes_answers_and_parks_again(t: Transport, backend: Backend) {
    let Some(srv) = TestServer::start_on(backend, "parked_pushes", quick_parking).await else {
        return;
    };
    let (mut alice, mut bob, room) = pair(&srv, t, Parking::Ordinary).await;

    // A push to a parked connection is written by its pusher.
    send_message(&mut alice, 4, room, "to a parked bob").await;
    assert_eq!(next_message(&mut bob).await, "to a parked bob");
    // Alice's request resumed her session; both park again.
    parked(&srv, 2).await;
    // A parked connection's request wakes it, and is answered.
    bob.send(5, &Request::Ping { nonce: 7 }).await;
    assert_eq!(bob.reply_to(5).await, ServerMsg::Pong { nonce: 7 });
    send_message(&mut bob, 6, room, "from a resumed bob").await;
    assert_eq!(next_message(&mut alice).await, "from a resumed bob");
    parked(&srv, 2).await;
    srv.stop().await;
}

async fn a_deep_parked_connection_gets_pushes_in_order_and_is_served(
    t: Transport,
    backend: Backend,
) {
    let Some(srv) = TestServer::start_on(backend, "deep_pushes", quick_deep_parking).await else {
        return;
    };
    let (mut alice, mut bob, room) = pair(&srv, t, Parking::Deep).await;
    // Pipelined: the first push wakes Bob's slot, the next ones queue
    // behind it while his socket goes back to tokio; all arrive in order.
    let bodies = ["one", "two", "three", "four"];
    for (i, body) in bodies.iter().enumerate() {
        let send = Request::SendMessage {
            room,
            body: (*body).into(),
            spans: vec![],
            sticker: None,
            attachments: Vec::new(),
        };
        alice.send(10 + i as u32, &send).await;
    }
    for (i, _) in bodies.iter().enumerate() {
        assert!(matches!(
            alice.reply_to(10 + i as u32).await,
            ServerMsg::MessageAck { .. }
        ));
    }
    for body in bodies {
        assert_eq!(next_message(&mut bob).await, body);
    }
    deep_parked(&srv, t, 2).await;
    // A deep-parked connection that sends is served (its readiness comes
    // through the parker's epoll set), and both go deep again.
    bob.send(20, &Request::Ping { nonce: 9 }).await;
    assert_eq!(bob.reply_to(20).await, ServerMsg::Pong { nonce: 9 });
    deep_parked(&srv, t, 2).await;
    send_message(&mut bob, 21, room, "from a deep bob").await;
    assert_eq!(next_message(&mut alice).await, "from a deep bob");
    deep_parked(&srv, t, 2).await;
    srv.stop().await;
}

/// How a test's connections park.
#[derive(Clone, Copy)]
enum Parking {
    /// Parked, their sockets registered with tokio.
    Ordinary,
    /// Deep-parked.
    Deep,
}

impl Parking {
    fn configure(self, c: &mut confab_server::Config) {
        match self {
            Parking::Ordinary => quick_parking(c),
            Parking::Deep => quick_deep_parking(c),
        }
    }

    /// A database name for a test of this kind.
    fn name(self, test: &str) -> String {
        match self {
            Parking::Ordinary => format!("parked_{test}"),
            Parking::Deep => format!("deep_{test}"),
        }
    }

    /// Waits until `n` connections are parked this way.
    async fn settled(self, srv: &TestServer, t: Transport, n: usize) {
        match self {
            Parking::Ordinary => parked(srv, n).await,
            Parking::Deep => deep_parked(srv, t, n).await,
        }
    }
}

/// The CLOSE is written by LOGOUT's session; the other connection of the
/// session learns that its writer finished (or, deep-parked, is woken by
/// the CLOSE queued for it, registers its socket again and writes it),
/// resumes, and detaches. Bob's stays as it was.
async fn logout_closes_a_connection_of_the_session(t: Transport, backend: Backend, p: Parking) {
    let Some(srv) = TestServer::start_on(backend, &p.name("logout"), |c| p.configure(c)).await
    else {
        return;
    };
    let (mut first, token) = registered(&srv, t, "alice").await;
    let mut second = RawClient::connect_via(&srv, t).await;
    assert!(matches!(
        second.hello(Some(token)).await,
        ServerMsg::Welcome(_)
    ));
    let (_bob, _) = registered(&srv, t, "bob").await;
    p.settled(&srv, t, 3).await;
    first.send(3, &Request::Logout).await;
    assert_eq!(first.reply_to(3).await, ServerMsg::Ok);
    first.expect_close(ErrorCode::LoggedOut).await;
    second.expect_close(ErrorCode::LoggedOut).await;
    p.settled(&srv, t, 1).await;
    srv.stop().await;
}

async fn logout_closes_a_parked_connection_of_the_session(t: Transport, backend: Backend) {
    logout_closes_a_connection_of_the_session(t, backend, Parking::Ordinary).await
}

async fn logout_closes_a_deep_parked_connection_of_the_session(t: Transport, backend: Backend) {
    logout_closes_a_connection_of_the_session(t, backend, Parking::Deep).await
}

async fn shutdown_closes_connections(t: Transport, backend: Backend, p: Parking) {
    let Some(srv) = TestServer::start_on(backend, &p.name("shutdown"), |c| p.configure(c)).await
    else {
        return;
    };
    let (mut alice, _) = registered(&srv, t, "alice").await;
    let mut anonymous = RawClient::connect_via(&srv, t).await;
    assert!(matches!(anonymous.hello(None).await, ServerMsg::Welcome(_)));
    p.settled(&srv, t, 2).await;
    tokio::join!(
        srv.stop(),
        alice.expect_close(ErrorCode::ShuttingDown),
        anonymous.expect_close(ErrorCode::ShuttingDown),
    );
}

async fn shutdown_closes_parked_connections(t: Transport, backend: Backend) {
    shutdown_closes_connections(t, backend, Parking::Ordinary).await
}

async fn shutdown_closes_deep_parked_connections(t: Transport, backend: Backend) {
    shutdown_closes_connections(t, backend, Parking::Deep).await
}

async fn a_connection_is_closed_when_idle(t: Transport, backend: Backend, p: Parking) {
    let Some(srv) = TestServer::start_on(backend, &p.name("idle"), |c| {
        p.configure(c);
        c.heartbeat_ms = confab_server::config::Millis(300);
    })
    .await
    else {
        return;
    };
    let (mut alice, _) = registered(&srv, t, "alice").await;
    p.settled(&srv, t, 1).await;
    alice.expect_close(ErrorCode::IdleTimeout).await;
    p.settled(&srv, t, 0).await;
    srv.stop().await;
}

async fn a_parked_connection_is_closed_when_idle(t: Transport, backend: Backend) {
    a_connection_is_closed_when_idle(t, backend, Parking::Ordinary).await
}

async fn a_deep_parked_connection_is_closed_when_idle(t: Transport, backend: Backend) {
    a_connection_is_closed_when_idle(t, backend, Parking::Deep).await
}

/// A client that goes away while deep-parked: the parker's epoll set sees
/// the end of the stream, and the session ends and detaches.
async fn a_deep_parked_connection_whose_client_leaves_ends(t: Transport, backend: Backend) {
    let Some(srv) = TestServer::start_on(backend, "deep_gone", quick_deep_parking).await else {
        return;
    };
    let (alice, _) = registered(&srv, t, "alice").await;
    let (_bob, _) = registered(&srv, t, "bob").await;
    deep_parked(&srv, t, 2).await;
    drop(alice);
    deep_parked(&srv, t, 1).await;
    srv.stop().await;
}

/// Over TCP and TLS: the tests' WebSocket client keeps its socket open in
/// its reader task when it is dropped, so it cannot leave this way.
#[tokio::test]
async fn a_deep_parked_tcp_connection_whose_client_leaves_ends() {
    a_deep_parked_connection_whose_client_leaves_ends(Transport::Tcp, Backend::Sqlite).await
}

#[tokio::test]
async fn a_deep_parked_tls_connection_whose_client_leaves_ends() {
    a_deep_parked_connection_whose_client_leaves_ends(Transport::Tls, Backend::Sqlite).await
}

over_transports!(
    a_deep_parked_connection_gets_pushes_in_order_and_is_served,
    logout_closes_a_deep_parked_connection_of_the_session,
    shutdown_closes_deep_parked_connections,
    a_deep_parked_connection_is_closed_when_idle,
    a_parked_connection_gets_pushes_answers_and_parks_again,
    logout_closes_a_parked_connection_of_the_session,
    shutdown_closes_parked_connections,
    a_parked_connection_is_closed_when_idle,
);

/// The idle timeout of a parked connection on tokio's paused clock: the
/// parker's sweep, not a timer of the connection's, closes it, 90 s (3 ×
/// the default heartbeat) after its last frame and not before.
#[tokio::test]
async fn the_idle_timeout_of_a_parked_connection_on_a_paused_clock() {
    let srv = TestServer::start_with(quick_parking).await;
    let mut c = RawClient::connect(srv.addr).await;
    assert!(matches!(c.hello(None).await, ServerMsg::Welcome(_)));
    parked(&srv, 1).await;
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(85)).await;
    // Still open: it answers.
    c.send(2, &Request::Ping { nonce: 1 }).await;
    assert_eq!(c.reply_to(2).await, ServerMsg::Pong { nonce: 1 });
    parked(&srv, 1).await;
    tokio::time::advance(Duration::from_secs(89)).await;
    assert_eq!(srv.handle.as_ref().unwrap().parked_connections(), 1);
    tokio::time::advance(Duration::from_secs(2)).await;
    c.expect_close(ErrorCode::IdleTimeout).await;
    srv.stop().await;
}

/// Deep parking on tokio's paused clock: the sweep counts its ticks, so a
/// connection goes deep after `deep_park_after_ms` of parked time (3 s by
/// default), not before; deep, it is served, goes deep again, and its idle
/// timeout still closes it 90 s after its last frame.
#[tokio::test]
async fn deep_parking_on_a_paused_clock() {
    let srv = TestServer::start_with(|c| {
        c.park_after_ms = confab_server::config::Millis(0);
        c.deep_park_after_ms = confab_server::config::Millis(3000);
    })
    .await;
    let handle = srv.handle.as_ref().unwrap();
    let mut c = RawClient::connect(srv.addr).await;
    assert!(matches!(c.hello(None).await, ServerMsg::Welcome(_)));
    parked(&srv, 1).await;
    tokio::time::pause();
    let step = |s| tokio::time::advance(Duration::from_secs(s));
    let deep = usize::from(cfg!(target_os = "linux"));
    // The sweep runs when the test yields to it, not on every step: steps
    // until it went deep (or 12 s, far past 3 s and the sweep's 1 s).
    let until_deep = async |steps: u32| {
        for _ in 0..steps {
            step(1).await;
            if handle.deep_parked_connections() == deep {
                break;
            }
        }
        handle.deep_parked_connections()
    };
    step(1).await;
    step(1).await;
    assert_eq!(handle.deep_parked_connections(), 0, "deep too early");
    assert_eq!(until_deep(12).await, deep);
    // Served while deep, then deep again.
    c.send(2, &Request::Ping { nonce: 1 }).await;
    assert_eq!(c.reply_to(2).await, ServerMsg::Pong { nonce: 1 });
    let pinged = tokio::time::Instant::now();
    parked(&srv, 1).await;
    assert_eq!(until_deep(12).await, deep);
    // The idle deadline: 90 s after the PING, not before.
    while pinged.elapsed() < Duration::from_secs(88) {
        step(1).await;
    }
    assert_eq!(handle.parked_connections(), 1, "closed too early");
    step(3).await;
    c.expect_close(ErrorCode::IdleTimeout).await;
    srv.stop().await;
}
