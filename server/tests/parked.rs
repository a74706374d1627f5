//! Parked connections (ARCHITECTURE.md, "Connections"): a connection that
//! has been quiet for `park_after_ms` with nothing half-read gives up its
//! task. Everything a running session does must still happen to it:
//! pushes reach it, its requests are answered, LOGOUT closes it, the idle
//! timeout closes it, shutdown closes it — over every door and on both
//! stores.

mod common;

use std::time::Duration;

use common::{Backend, RawClient, TestServer, Transport};
use confab_protocol::{ErrorCode, EventBody, Request, RoomId, ServerMsg, Visibility};

/// Parks after 20 ms of silence: the tests wait for parking, not for time.
fn quick_parking(c: &mut confab_server::Config) {
    c.park_after_ms = confab_server::config::Millis(20);
}

/// Waits until `n` connections are parked (each test's server is its own).
async fn parked(srv: &TestServer, n: usize) {
    let handle = srv.handle.as_ref().expect("running");
    let waited = tokio::time::timeout(Duration::from_secs(5), async {
        while handle.parked_connections() != n {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(
        waited.is_ok(),
        "{} connections parked, not {n}",
        handle.parked_connections()
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

async fn a_parked_connection_gets_pushes_answers_and_parks_again(t: Transport, backend: Backend) {
    let Some(srv) = TestServer::start_on(backend, "parked_pushes", quick_parking).await else {
        return;
    };
    let (mut alice, _) = registered(&srv, t, "alice").await;
    let (mut bob, _) = registered(&srv, t, "bob").await;
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
    parked(&srv, 2).await;

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

async fn logout_closes_a_parked_connection_of_the_session(t: Transport, backend: Backend) {
    let Some(srv) = TestServer::start_on(backend, "parked_logout", quick_parking).await else {
        return;
    };
    let (mut first, token) = registered(&srv, t, "alice").await;
    let mut second = RawClient::connect_via(&srv, t).await;
    assert!(matches!(
        second.hello(Some(token)).await,
        ServerMsg::Welcome(_)
    ));
    let (_bob, _) = registered(&srv, t, "bob").await;
    parked(&srv, 3).await;
    // The CLOSE is written by LOGOUT's session; the parked one learns that
    // its writer finished, resumes, and detaches. Bob's stays parked.
    first.send(3, &Request::Logout).await;
    assert_eq!(first.reply_to(3).await, ServerMsg::Ok);
    first.expect_close(ErrorCode::LoggedOut).await;
    second.expect_close(ErrorCode::LoggedOut).await;
    parked(&srv, 1).await;
    srv.stop().await;
}

async fn shutdown_closes_parked_connections(t: Transport, backend: Backend) {
    let Some(srv) = TestServer::start_on(backend, "parked_shutdown", quick_parking).await else {
        return;
    };
    let (mut alice, _) = registered(&srv, t, "alice").await;
    let mut anonymous = RawClient::connect_via(&srv, t).await;
    assert!(matches!(anonymous.hello(None).await, ServerMsg::Welcome(_)));
    parked(&srv, 2).await;
    tokio::join!(
        srv.stop(),
        alice.expect_close(ErrorCode::ShuttingDown),
        anonymous.expect_close(ErrorCode::ShuttingDown),
    );
}

async fn a_parked_connection_is_closed_when_idle(t: Transport, backend: Backend) {
    let Some(srv) = TestServer::start_on(backend, "parked_idle", |c| {
        quick_parking(c);
        c.heartbeat_ms = confab_server::config::Millis(200);
    })
    .await
    else {
        return;
    };
    let (mut alice, _) = registered(&srv, t, "alice").await;
    parked(&srv, 1).await;
    alice.expect_close(ErrorCode::IdleTimeout).await;
    parked(&srv, 0).await;
    srv.stop().await;
}

over_transports!(
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
