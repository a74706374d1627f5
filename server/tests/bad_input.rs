//! Bad input over real sockets: every malformed or invalid thing a client
//! can send gets the stable code from SPEC.md, nothing panics, and the
//! server keeps serving everyone else.

mod common;

use common::{assert_error, RawClient, TestServer};
use confab_protocol::frame::kind;
use confab_protocol::{ErrorCode, Request, RoomId, ServerMsg, Visibility};
use confab_server::config::{Hours, Millis};

/// After each abuse, a well-behaved client must still be served.
async fn server_still_serves(addr: std::net::SocketAddr) {
    let mut c = RawClient::connect(addr).await;
    assert!(matches!(c.hello(None).await, ServerMsg::Welcome(_)));
    c.send(9, &Request::Ping { nonce: 42 }).await;
    assert_eq!(c.reply_to(9).await, ServerMsg::Pong { nonce: 42 });
}

#[tokio::test]
async fn garbage_before_the_handshake_is_refused_and_others_are_unaffected() {
    let srv = TestServer::start().await;
    let mut bystander = RawClient::connect(srv.addr).await;
    assert!(matches!(bystander.hello(None).await, ServerMsg::Welcome(_)));

    let mut c = RawClient::connect(srv.addr).await;
    c.send_bytes(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    // "GET " read as a length is far beyond the maximum frame size.
    c.expect_close(ErrorCode::FrameTooLarge).await;

    let mut c = RawClient::connect(srv.addr).await;
    c.send_bytes(&[0, 0, 0, 1, 0xff]).await;
    c.expect_close(ErrorCode::MalformedFrame).await;

    bystander.send(2, &Request::Ping { nonce: 1 }).await;
    assert_eq!(bystander.reply_to(2).await, ServerMsg::Pong { nonce: 1 });
    server_still_serves(srv.addr).await;
    srv.stop().await;
}

#[tokio::test]
async fn a_request_before_hello_is_handshake_required() {
    let srv = TestServer::start().await;
    let mut c = RawClient::connect(srv.addr).await;
    c.send(1, &Request::Ping { nonce: 1 }).await;
    c.expect_close(ErrorCode::HandshakeRequired).await;
    srv.stop().await;
}

#[tokio::test]
async fn a_second_hello_and_a_wrong_version_are_refused() {
    let srv = TestServer::start().await;
    let mut c = RawClient::connect(srv.addr).await;
    c.hello(None).await;
    c.send(
        2,
        &Request::Hello(confab_protocol::Hello {
            version: 1,
            client: "x".into(),
            token: None,
            resume: vec![],
        }),
    )
    .await;
    c.expect_close(ErrorCode::HandshakeRequired).await;

    let mut c = RawClient::connect(srv.addr).await;
    let hello = confab_protocol::Hello {
        version: 99,
        client: "future".into(),
        token: None,
        resume: vec![],
    };
    c.send(1, &Request::Hello(hello)).await;
    c.expect_close(ErrorCode::UnsupportedVersion).await;
    srv.stop().await;
}

#[tokio::test]
async fn silence_after_connecting_hits_the_handshake_timeout() {
    let srv = TestServer::start_with(|c| c.handshake_timeout_ms = Millis(200)).await;
    let mut c = RawClient::connect(srv.addr).await;
    c.expect_close(ErrorCode::HandshakeTimeout).await;
    srv.stop().await;
}

#[tokio::test]
async fn unknown_and_server_only_frame_types_close_the_connection() {
    let srv = TestServer::start().await;
    let mut c = RawClient::connect(srv.addr).await;
    c.hello(None).await;
    // Type 0x3e lies in the request range but is unassigned.
    c.send_bytes(&[0, 0, 0, 5, 0x3e, 0, 0, 0, 7]).await;
    c.expect_close(ErrorCode::UnknownFrameType).await;

    let mut c = RawClient::connect(srv.addr).await;
    c.hello(None).await;
    c.send_bytes(&[0, 0, 0, 5, kind::WELCOME, 0, 0, 0, 7]).await;
    c.expect_close(ErrorCode::UnexpectedFrame).await;
    server_still_serves(srv.addr).await;
    srv.stop().await;
}

#[tokio::test]
async fn a_malformed_payload_is_a_protocol_error() {
    let srv = TestServer::start().await;
    let mut c = RawClient::connect(srv.addr).await;
    c.hello(None).await;
    // REGISTER whose username claims 100 bytes but the frame ends.
    c.send_bytes(&[0, 0, 0, 7, kind::REGISTER, 0, 0, 0, 3, 100, b'a'])
        .await;
    c.expect_close(ErrorCode::MalformedFrame).await;

    let mut c = RawClient::connect(srv.addr).await;
    c.hello(None).await;
    // Invalid UTF-8 in a string.
    c.send_bytes(&[0, 0, 0, 9, kind::LOGIN, 0, 0, 0, 3, 2, 0xff, 0xfe, 0])
        .await;
    c.expect_close(ErrorCode::MalformedFrame).await;
    server_still_serves(srv.addr).await;
    srv.stop().await;
}

#[tokio::test]
async fn an_oversize_frame_is_refused_by_its_length_alone() {
    let srv = TestServer::start().await;
    let mut c = RawClient::connect(srv.addr).await;
    c.hello(None).await;
    let len = srv.config.max_frame_len + 1;
    c.send_bytes(&len.to_be_bytes()).await;
    c.expect_close(ErrorCode::FrameTooLarge).await;
    server_still_serves(srv.addr).await;
    srv.stop().await;
}

#[tokio::test]
async fn bad_tokens_are_refused_with_invalid_token() {
    let srv = TestServer::start().await;
    let mut c = RawClient::connect(srv.addr).await;
    match c.hello(Some("0".repeat(64))).await {
        msg @ ServerMsg::Error { .. } => assert_error(&msg, ErrorCode::InvalidToken),
        other => panic!("expected INVALID_TOKEN, got {other:?}"),
    }
    c.expect_close(ErrorCode::InvalidToken).await;
    srv.stop().await;
}

#[tokio::test]
async fn expired_tokens_are_refused_with_invalid_token() {
    let srv = TestServer::start_with(|c| c.session_ttl_hours = Hours(1)).await;
    let mut c = RawClient::connect(srv.addr).await;
    c.hello(None).await;
    let ServerMsg::Session { token, .. } = c.register(2, "shortlived").await else {
        panic!("registered")
    };
    let token = token.into_string();
    // Still valid right away.
    let mut again = RawClient::connect(srv.addr).await;
    assert!(
        matches!(again.hello(Some(token.clone())).await, ServerMsg::Welcome(w) if w.session.is_some())
    );
    // An hour and a second later, by the server's clock.
    let handle = srv.handle.as_ref().expect("running");
    handle.clock().advance(std::time::Duration::from_secs(3601));
    let mut late = RawClient::connect(srv.addr).await;
    assert_error(&late.hello(Some(token)).await, ErrorCode::InvalidToken);
    late.expect_close(ErrorCode::InvalidToken).await;
    srv.stop().await;
}

#[tokio::test]
async fn account_rules_give_specific_errors_and_keep_the_connection() {
    let srv = TestServer::start().await;
    let mut c = RawClient::connect(srv.addr).await;
    c.hello(None).await;
    let reg = |u: &str, p: &str| Request::Register {
        username: u.into(),
        password: p.into(),
    };
    c.send(2, &reg("ab", "password123")).await;
    assert_error(&c.reply_to(2).await, ErrorCode::InvalidUsername);
    c.send(3, &reg("has space", "password123")).await;
    assert_error(&c.reply_to(3).await, ErrorCode::InvalidUsername);
    c.send(4, &reg("carol", "short")).await;
    assert_error(&c.reply_to(4).await, ErrorCode::InvalidPassword);
    c.send(
        5,
        &Request::CreateRoom {
            name: "x".into(),
            topic: String::new(),
            visibility: Visibility::Public,
            members: Vec::new(),
        },
    )
    .await;
    assert_error(&c.reply_to(5).await, ErrorCode::NotAuthenticated);
    assert!(
        matches!(c.register(6, "Carol").await, ServerMsg::Session { ref username, .. } if username == "carol")
    );
    c.send(7, &reg("dave", "password123")).await;
    assert_error(&c.reply_to(7).await, ErrorCode::AlreadyAuthenticated);

    let mut d = RawClient::connect(srv.addr).await;
    d.hello(None).await;
    assert_error(&d.register(2, "CAROL").await, ErrorCode::UsernameTaken);
    d.send(
        3,
        &Request::Login {
            username: "carol".into(),
            password: "wrong-password".into(),
        },
    )
    .await;
    assert_error(&d.reply_to(3).await, ErrorCode::InvalidCredentials);
    d.send(
        4,
        &Request::Login {
            username: "nobody".into(),
            password: "password123".into(),
        },
    )
    .await;
    assert_error(&d.reply_to(4).await, ErrorCode::InvalidCredentials);
    d.send(
        5,
        &Request::Login {
            username: "carol".into(),
            password: "password123".into(),
        },
    )
    .await;
    assert!(matches!(d.reply_to(5).await, ServerMsg::Session { .. }));
    srv.stop().await;
}

#[tokio::test]
async fn room_and_message_rules_give_specific_errors() {
    let srv = TestServer::start().await;
    let mut a = RawClient::connect(srv.addr).await;
    a.hello(None).await;
    a.register(2, "alice").await;
    let create = |name: &str, topic: &str| Request::CreateRoom {
        name: name.into(),
        topic: topic.into(),
        visibility: Visibility::Public,
        members: Vec::new(),
    };
    a.send(3, &create("   ", "")).await;
    assert_error(&a.reply_to(3).await, ErrorCode::InvalidRoomName);
    a.send(4, &create(&"n".repeat(65), "")).await;
    assert_error(&a.reply_to(4).await, ErrorCode::InvalidRoomName);
    a.send(5, &create("ok", &"t".repeat(257))).await;
    assert_error(&a.reply_to(5).await, ErrorCode::InvalidTopic);
    a.send(6, &create("general", "chat")).await;
    let ServerMsg::Room(room) = a.reply_to(6).await else {
        panic!("room created")
    };

    a.send(
        7,
        &Request::JoinRoom {
            room: RoomId(999_999),
        },
    )
    .await;
    assert_error(&a.reply_to(7).await, ErrorCode::RoomNotFound);
    a.send(8, &Request::JoinRoom { room: room.id }).await;
    assert_error(&a.reply_to(8).await, ErrorCode::AlreadyMember);
    a.send(
        9,
        &Request::SendMessage {
            room: room.id,
            body: "  \n ".into(),
            spans: vec![],
            sticker: None,
            attachments: Vec::new(),
        },
    )
    .await;
    assert_error(&a.reply_to(9).await, ErrorCode::MessageEmpty);
    // Invisible characters alone are blank too (SPEC.md §5.4.1).
    a.send(
        19,
        &Request::SendMessage {
            room: room.id,
            body: "\u{200b}\u{feff} \u{2060}".into(),
            spans: vec![],
            sticker: None,
            attachments: Vec::new(),
        },
    )
    .await;
    assert_error(&a.reply_to(19).await, ErrorCode::MessageEmpty);
    let too_long = "x".repeat(srv.config.max_message_len as usize + 1);
    a.send(
        10,
        &Request::SendMessage {
            room: room.id,
            body: too_long,
            spans: vec![],
            sticker: None,
            attachments: Vec::new(),
        },
    )
    .await;
    assert_error(&a.reply_to(10).await, ErrorCode::MessageTooLong);
    a.send(
        11,
        &Request::History {
            room: room.id,
            before: confab_protocol::Seq(0),
            limit: 0,
        },
    )
    .await;
    assert_error(&a.reply_to(11).await, ErrorCode::InvalidPaging);

    let mut b = RawClient::connect(srv.addr).await;
    b.hello(None).await;
    b.register(2, "bob").await;
    b.send(
        3,
        &Request::SendMessage {
            room: room.id,
            body: "hi".into(),
            spans: vec![],
            sticker: None,
            attachments: Vec::new(),
        },
    )
    .await;
    assert_error(&b.reply_to(3).await, ErrorCode::NotAMember);
    b.send(
        4,
        &Request::History {
            room: room.id,
            before: confab_protocol::Seq(0),
            limit: 10,
        },
    )
    .await;
    assert_error(&b.reply_to(4).await, ErrorCode::NotAMember);
    b.send(5, &Request::ListMembers { room: room.id }).await;
    assert_error(&b.reply_to(5).await, ErrorCode::NotAMember);
    b.send(6, &Request::LeaveRoom { room: room.id }).await;
    assert_error(&b.reply_to(6).await, ErrorCode::NotAMember);
    b.send(
        7,
        &Request::SendMessage {
            room: RoomId(424_242),
            body: "hi".into(),
            spans: vec![],
            sticker: None,
            attachments: Vec::new(),
        },
    )
    .await;
    assert_error(&b.reply_to(7).await, ErrorCode::RoomNotFound);

    // Nothing invalid was stored: the room's history holds only its creation.
    a.send(
        12,
        &Request::History {
            room: room.id,
            before: confab_protocol::Seq(0),
            limit: 50,
        },
    )
    .await;
    let ServerMsg::HistoryPage {
        events, has_more, ..
    } = a.reply_to(12).await
    else {
        panic!("history")
    };
    assert_eq!(events.len(), 1);
    assert!(!has_more);
    srv.stop().await;
}

#[tokio::test]
async fn message_rate_limit_answers_rate_limited_and_recovers() {
    let srv = TestServer::start_with(|c| {
        c.rate_limit_per_sec = 5;
        c.rate_limit_burst = 3;
    })
    .await;
    let mut a = RawClient::connect(srv.addr).await;
    // WELCOME announces the limit, so a client need not learn it by error.
    match a.hello(None).await {
        ServerMsg::Welcome(w) => assert_eq!(
            w.rate_limit,
            Some(confab_protocol::RateLimit {
                per_sec: 5,
                burst: 3
            })
        ),
        other => panic!("expected WELCOME, got {other:?}"),
    }
    a.register(2, "alice").await;
    a.send(
        3,
        &Request::CreateRoom {
            name: "r".into(),
            topic: String::new(),
            visibility: Visibility::Public,
            members: Vec::new(),
        },
    )
    .await;
    let ServerMsg::Room(room) = a.reply_to(3).await else {
        panic!("room")
    };
    for i in 0..4u32 {
        a.send(
            10 + i,
            &Request::SendMessage {
                room: room.id,
                body: format!("m{i}"),
                spans: vec![],
                sticker: None,
                attachments: Vec::new(),
            },
        )
        .await;
    }
    let replies = a.replies(&[10, 11, 12, 13]).await;
    for i in 10..13u32 {
        assert!(
            matches!(replies[&i], ServerMsg::MessageAck { .. }),
            "{:?}",
            replies[&i]
        );
    }
    assert_error(&replies[&13], ErrorCode::RateLimited);
    // A quarter of a second later, by the server's clock.
    srv.handle
        .as_ref()
        .expect("running")
        .clock()
        .advance(std::time::Duration::from_millis(250));
    a.send(
        20,
        &Request::SendMessage {
            room: room.id,
            body: "later".into(),
            spans: vec![],
            sticker: None,
            attachments: Vec::new(),
        },
    )
    .await;
    assert!(matches!(a.reply_to(20).await, ServerMsg::MessageAck { .. }));
    srv.stop().await;
}

#[tokio::test]
async fn idle_connections_are_closed_after_three_heartbeats() {
    let srv = TestServer::start_with(|c| c.heartbeat_ms = Millis(100)).await;
    let mut c = RawClient::connect(srv.addr).await;
    match c.hello(None).await {
        ServerMsg::Welcome(w) => assert_eq!(w.heartbeat_ms, 100),
        other => panic!("{other:?}"),
    }
    c.expect_close(ErrorCode::IdleTimeout).await;
    srv.stop().await;
}
