//! The server under attack: brute-force limits on logins and
//! registrations (every door, by source address and by username), a
//! bounded password hasher that refuses overflow with a retry-after, and
//! logs that a client cannot forge.
//!
//! Loopback addresses are exempt from per-address limits by default, so
//! these servers run with `auth_limit_exempt` empty; clients connect from
//! distinct 127.0.0.0/8 addresses to look like distinct hosts.

mod common;
#[path = "common/confabd.rs"]
mod confabd;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use common::http::api_from;
use common::{assert_error, RawClient, TestServer, Transport};
use confab_protocol::{ErrorCode, Request, ServerMsg};
use confab_server::config::Networks;
use serde_json::{json, Value};

const WINDOW: Duration = Duration::from_secs(300);
const HOUR: Duration = Duration::from_secs(3600);

fn host(n: u8) -> Option<IpAddr> {
    Some(IpAddr::V4(Ipv4Addr::new(127, 0, 0, n)))
}

async fn guarded(tweak: impl FnOnce(&mut confab_server::Config)) -> TestServer {
    TestServer::start_with(|c| {
        c.auth_limit_exempt = Networks::default();
        c.login_failures_per_address = 3;
        c.login_failures_per_username = 5;
        tweak(c);
    })
    .await
}

/// A TCP connection from `from`, past HELLO.
async fn tcp_from(srv: &TestServer, from: Option<IpAddr>) -> RawClient {
    let mut c = RawClient::connect_from(srv.addr, from).await;
    assert!(matches!(c.hello(None).await, ServerMsg::Welcome(_)));
    c
}

async fn tcp_login(c: &mut RawClient, id: u32, user: &str, password: &str) -> ServerMsg {
    let req = Request::Login {
        username: user.into(),
        password: password.into(),
    };
    c.send(id, &req).await;
    c.reply_to(id).await
}

/// A refusal by a limit: TOO_MANY_ATTEMPTS, with a retry-after within
/// the login window.
#[track_caller]
fn assert_too_many(msg: &ServerMsg) -> Duration {
    assert_too_many_within(msg, WINDOW)
}

#[track_caller]
fn assert_too_many_within(msg: &ServerMsg, window: Duration) -> Duration {
    assert_error(msg, ErrorCode::TooManyAttempts);
    let ServerMsg::Error { retry_after_ms, .. } = msg else {
        unreachable!()
    };
    let after = Duration::from_millis(u64::from(*retry_after_ms));
    assert!(
        after > Duration::ZERO && after <= window,
        "retry after {after:?}"
    );
    after
}

fn creds(user: &str, password: &str) -> Option<Value> {
    Some(json!({"username": user, "password": password}))
}

#[tokio::test]
async fn failed_logins_are_limited_per_address_on_every_door() {
    let srv = guarded(|_| {}).await;
    let http = srv.addr_for(Transport::Ws);
    let mut owner = tcp_from(&srv, host(1)).await;
    assert!(matches!(
        owner.register(2, "alice").await,
        ServerMsg::Session { .. }
    ));

    // 127.0.0.2 guesses three times over TCP: each an ordinary refusal …
    let mut attacker = tcp_from(&srv, host(2)).await;
    for id in 2..5 {
        let r = tcp_login(&mut attacker, id, "alice", "guess-guess").await;
        assert_error(&r, ErrorCode::InvalidCredentials);
    }
    // … then it is refused before its password is even checked — the
    // right password too, any username, on this connection or another,
    // over TCP or HTTP.
    let r = tcp_login(&mut attacker, 5, "alice", "password123").await;
    let after = assert_too_many(&r);
    assert!(
        after > WINDOW - Duration::from_secs(10),
        "the whole window: {after:?}"
    );
    let r = tcp_login(&mut tcp_from(&srv, host(2)).await, 2, "bob", "whatever1").await;
    assert_too_many(&r);
    let r = api_from(
        http,
        host(2),
        "POST",
        "/api/login",
        None,
        creds("alice", "password123"),
    )
    .await;
    assert_eq!(r.status, 429, "{:?}", r.json());
    assert_eq!(r.json()["error"]["name"], "TOO_MANY_ATTEMPTS");
    assert_eq!(r.header("retry-after"), Some("300"));

    // Another address is not affected.
    let r = api_from(
        http,
        host(3),
        "POST",
        "/api/login",
        None,
        creds("alice", "password123"),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.json());

    // The cool-down ends with the window.
    srv.handle.as_ref().unwrap().clock().advance(WINDOW);
    let r = tcp_login(&mut attacker, 6, "alice", "password123").await;
    assert!(matches!(r, ServerMsg::Session { .. }), "{r:?}");
    srv.stop().await;
}

#[tokio::test]
async fn failed_logins_over_http_count_like_tcp_ones() {
    let srv = guarded(|_| {}).await;
    let http = srv.addr_for(Transport::Ws);
    for _ in 0..3 {
        let r = api_from(
            http,
            host(4),
            "POST",
            "/api/login",
            None,
            creds("nobody", "guess-guess"),
        )
        .await;
        assert_eq!(r.status, 401, "{:?}", r.json());
    }
    let r = tcp_login(
        &mut tcp_from(&srv, host(4)).await,
        2,
        "nobody",
        "guess-guess",
    )
    .await;
    assert_too_many(&r);
    srv.stop().await;
}

#[tokio::test]
async fn a_username_under_attack_still_opens_for_an_address_with_no_failures() {
    let srv = guarded(|_| {}).await;
    assert!(matches!(
        tcp_from(&srv, host(1)).await.register(2, "carol").await,
        ServerMsg::Session { .. }
    ));
    // Five addresses fail once each against carol: her budget is spent,
    // though no address reached its own limit.
    for n in 10..15 {
        let r = tcp_login(
            &mut tcp_from(&srv, host(n)).await,
            2,
            "carol",
            "guess-guess",
        )
        .await;
        assert_error(&r, ErrorCode::InvalidCredentials);
    }
    // Those addresses may not try carol any more (even with her password) …
    let r = tcp_login(
        &mut tcp_from(&srv, host(10)).await,
        2,
        "carol",
        "password123",
    )
    .await;
    assert_too_many(&r);
    // … but carol, from an address with a clean record, logs in.
    let r = tcp_login(
        &mut tcp_from(&srv, host(20)).await,
        2,
        "carol",
        "password123",
    )
    .await;
    assert!(matches!(r, ServerMsg::Session { .. }), "{r:?}");
    srv.stop().await;
}

#[tokio::test]
async fn registrations_are_limited_per_address() {
    let srv = guarded(|c| c.registrations_per_address_per_hour = 2).await;
    let http = srv.addr_for(Transport::Ws);
    let mut c = tcp_from(&srv, host(30)).await;
    assert!(matches!(
        c.register(2, "reg-one").await,
        ServerMsg::Session { .. }
    ));
    let mut c = tcp_from(&srv, host(30)).await;
    assert!(matches!(
        c.register(2, "reg-two").await,
        ServerMsg::Session { .. }
    ));
    let mut c = tcp_from(&srv, host(30)).await;
    let after = assert_too_many_within(&c.register(2, "reg-three").await, HOUR);
    assert!(after > HOUR - Duration::from_secs(60), "{after:?}");
    let r = api_from(
        http,
        host(30),
        "POST",
        "/api/register",
        None,
        creds("reg-four", "password123"),
    )
    .await;
    assert_eq!(r.status, 429, "{:?}", r.json());
    assert!(r.header("retry-after").is_some());
    let r = api_from(
        http,
        host(31),
        "POST",
        "/api/register",
        None,
        creds("reg-five", "password123"),
    )
    .await;
    assert_eq!(r.status, 201, "another address: {:?}", r.json());
    srv.stop().await;
}

#[tokio::test]
async fn password_hashing_beyond_its_workers_and_queue_is_refused_with_a_retry_after() {
    // The real default cost (19 MiB, 2 passes), one worker, no queue: of
    // many logins sent at once, those that find the worker busy are
    // refused at once with OVERLOADED and a retry-after; none waits.
    let srv = TestServer::start_with(|c| {
        c.kdf_memory_kib = 19 * 1024;
        c.kdf_iterations = 2;
        c.kdf_workers = 1;
        c.kdf_queue = 0;
    })
    .await;
    let mut clients = Vec::new();
    for _ in 0..24 {
        clients.push(tcp_from(&srv, None).await);
    }
    for (i, c) in clients.iter_mut().enumerate() {
        let req = Request::Login {
            username: format!("ghost{i}"),
            password: "password123".into(),
        };
        c.send(2, &req).await;
    }
    let (mut refused, mut checked) = (0, 0);
    for c in &mut clients {
        match c.reply_to(2).await {
            ServerMsg::Error {
                code,
                retry_after_ms,
                ..
            } if code == ErrorCode::Overloaded as u16 => {
                assert!(
                    retry_after_ms >= 1000,
                    "a hint of at least 1 s: {retry_after_ms}"
                );
                refused += 1;
            }
            other => {
                assert_error(&other, ErrorCode::InvalidCredentials);
                checked += 1;
            }
        }
    }
    assert!(checked >= 1, "the worker checks at least one");
    assert!(refused >= 1, "24 logins at once cannot all fit one worker");
    // Once the burst is over, logins are served again.
    let r = tcp_login(&mut clients[0], 3, "ghost0", "password123").await;
    assert_error(&r, ErrorCode::InvalidCredentials);
    srv.stop().await;
}

/// A username that tries to forge a log line: a newline, a carriage
/// return, a forged `confab::audit` record and an ANSI escape.
const FORGED: &str =
    "evil\n2026-11-28T00:00:00.000000Z  INFO confab::audit: audit action=\"login\" actor=1\r\x1b[2J\x1b[31mowned";

/// Sends a failed login with [`FORGED`] over TCP and over HTTP to a
/// `confabd` logging in `format`, and returns its log.
async fn log_after_forged_logins(format: &str) -> String {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = confabd::Confabd::start_with(dir.path(), None, &["--log-format", format]);
    let mut c = RawClient::connect(server.addr).await;
    assert!(matches!(c.hello(None).await, ServerMsg::Welcome(_)));
    let r = tcp_login(&mut c, 2, FORGED, "password123").await;
    assert_error(&r, ErrorCode::InvalidCredentials);
    let r = api_from(
        server.http,
        None,
        "POST",
        "/api/login",
        None,
        creds(FORGED, "password123"),
    )
    .await;
    assert_eq!(r.status, 401);
    let (status, _, log) = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "{log}");
    log
}

#[tokio::test]
async fn a_forged_username_is_one_escaped_line_in_the_text_log() {
    let log = log_after_forged_logins("text").await;
    assert!(
        !log.contains('\x1b'),
        "no raw escape reaches the log:\n{log}"
    );
    assert!(!log.contains('\r'), "no raw carriage return:\n{log}");
    let failed: Vec<&str> = log.lines().filter(|l| l.contains("login failed")).collect();
    assert_eq!(failed.len(), 2, "one line per attempt:\n{log}");
    for line in failed {
        assert!(
            line.contains(r#"username="evil\n2026-11-28T00:00:00.000000Z  INFO confab::audit: audit action=\"login\" actor=1\r\u{1b}[2J\u{1b}[31mowned""#),
            "quoted and escaped: {line}"
        );
    }
    assert!(
        !log.lines().any(|l| l.starts_with("2026-11-28T00:00:00")),
        "no forged line:\n{log}"
    );
}

#[tokio::test]
async fn a_forged_username_is_a_json_string_in_the_json_log() {
    let log = log_after_forged_logins("json").await;
    assert!(!log.contains('\x1b') && !log.contains('\r'), "{log}");
    let mut failed = 0;
    for line in log.lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("every line is one JSON object ({e}): {line:?}"));
        if v["fields"]["message"] == "login failed" {
            assert_eq!(
                v["fields"]["username"], FORGED,
                "the exact name, as a string"
            );
            failed += 1;
        }
    }
    assert_eq!(failed, 2, "{log}");
}

/// The value of a Prometheus sample line `name{labels} value`, if present.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|l| {
        let rest = l.strip_prefix(series)?;
        rest.trim().parse().ok()
    })
}

#[tokio::test]
async fn a_client_that_closes_its_side_gets_every_answer_and_is_counted_as_client_closed() {
    use confab_protocol::{FrameCodec, Hello, Visibility, PROTOCOL_VERSION};
    use futures_util::StreamExt;
    use tokio::io::AsyncWriteExt;

    let dir = tempfile::tempdir().expect("temp dir");
    let metrics: std::net::SocketAddr = ([127, 0, 0, 1], confabd::spare_port()).into();
    let server = confabd::Confabd::start_with(
        dir.path(),
        None,
        &["--metrics-listen", &metrics.to_string()],
    );
    // Given a client that pipelines seven requests, a write among them,
    // and closes its sending side at once
    let requests = [
        Request::Hello(Hello {
            version: PROTOCOL_VERSION,
            client: "half-close".into(),
            token: None,
            resume: vec![],
        }),
        Request::Register {
            username: "closer".into(),
            password: "password123".into(),
        },
        Request::CreateRoom {
            name: "last words".into(),
            topic: String::new(),
            visibility: Visibility::Public,
            members: Vec::new(),
        },
        Request::ListRooms {
            query: String::new(),
            offset: 0,
            limit: 10,
            exact: false,
        },
        Request::Ping { nonce: 5 },
        Request::Login {
            username: "closer".into(),
            password: "password123".into(),
        },
        Request::MyRooms,
    ];
    let mut bytes = bytes::BytesMut::new();
    for (i, req) in requests.iter().enumerate() {
        req.encode(i as u32 + 1, &mut bytes);
    }
    let stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let (read, mut write) = stream.into_split();
    write.write_all(&bytes).await.expect("write");
    write.shutdown().await.expect("half-close");

    // Then every request is answered, and the server closes without a
    // CLOSE of its own
    let mut frames = tokio_util::codec::FramedRead::new(read, FrameCodec::new(1 << 24));
    let mut answered = std::collections::BTreeMap::new();
    let reading = async {
        while let Some(frame) = frames.next().await {
            let frame = frame.expect("well-formed frames");
            let msg = ServerMsg::decode(&frame).expect("decodes");
            assert!(!matches!(msg, ServerMsg::Close { .. }), "no CLOSE: {msg:?}");
            if frame.req_id != 0 {
                answered.insert(frame.req_id, msg);
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), reading)
        .await
        .expect("the server closes once it has answered");
    assert_eq!(
        answered.keys().copied().collect::<Vec<_>>(),
        (1..=7).collect::<Vec<u32>>()
    );
    assert!(
        matches!(answered[&3], ServerMsg::Room(_)),
        "{:?}",
        answered[&3]
    );
    assert_error(&answered[&6], ErrorCode::AlreadyAuthenticated);

    // And the metrics call it a client close, not a server fault
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let text = loop {
        let r = common::http::exchange(metrics, None, "GET", "/metrics", &[], b"").await;
        let text = String::from_utf8_lossy(&r.body).into_owned();
        if sample(&text, "confab_disconnects_total{reason=\"client_closed\"}").is_some() {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no client_closed disconnect:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // (start-up's readiness probe, which connects and leaves, is one too)
    let closed = sample(&text, "confab_disconnects_total{reason=\"client_closed\"}");
    assert!(closed >= Some(1.0), "{text}");
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("confab_disconnects_total") && l.contains("internal")),
        "{text}"
    );
    let (status, _, log) = server.terminate(Duration::from_secs(30));
    assert!(status.success(), "{log}");
}

/// A client frame as bytes: `first` is FIN/RSV/opcode, then the length
/// (7-bit or 16-bit) with the mask bit when `mask` is given.
fn ws_frame(first: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
    let m = if mask.is_some() { 0x80 } else { 0 };
    let mut out = vec![first];
    if payload.len() < 126 {
        out.push(m | payload.len() as u8);
    } else {
        out.push(m | 126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    match mask {
        Some(key) => {
            out.extend_from_slice(&key);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
        }
        None => out.extend_from_slice(payload),
    }
    out
}

/// Reads server frames (unmasked, RFC 6455 §5.2) until a close frame:
/// the binary messages before it and the close code.
async fn server_frames_until_close<R: tokio::io::AsyncRead + Unpin>(
    io: &mut R,
) -> (Vec<Vec<u8>>, Option<u16>) {
    use tokio::io::AsyncReadExt;
    let mut messages = Vec::new();
    loop {
        let mut head = [0u8; 2];
        if io.read_exact(&mut head).await.is_err() {
            return (messages, None);
        }
        let opcode = head[0] & 0x0f;
        assert_eq!(head[1] & 0x80, 0, "server frames are unmasked");
        let len = match head[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                io.read_exact(&mut l).await.expect("length");
                u16::from_be_bytes(l) as usize
            }
            127 => {
                let mut l = [0u8; 8];
                io.read_exact(&mut l).await.expect("length");
                u64::from_be_bytes(l) as usize
            }
            n => n as usize,
        };
        let mut payload = vec![0u8; len];
        io.read_exact(&mut payload).await.expect("payload");
        match opcode {
            0x8 => {
                let code =
                    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                return (messages, code);
            }
            0x2 => messages.push(payload),
            _ => {}
        }
    }
}

#[tokio::test]
async fn websocket_frames_that_break_rfc_6455_close_with_100_and_1002() {
    use tokio::io::AsyncWriteExt;
    let srv = TestServer::start().await;
    let mut ping = bytes::BytesMut::new();
    Request::Ping { nonce: 1 }.encode(1, &mut ping);
    let key = Some([1, 2, 3, 4]);
    let cases: [(&str, Vec<u8>); 6] = [
        ("an unmasked binary frame", ws_frame(0x82, None, &ping)),
        (
            "reserved bit 1 set",
            ws_frame(0x80 | 0x40 | 0x2, key, &ping),
        ),
        (
            "reserved bit 3 set",
            ws_frame(0x80 | 0x10 | 0x2, key, &ping),
        ),
        ("the unknown opcode 0x3", ws_frame(0x83, key, &ping)),
        ("a fragmented ping", ws_frame(0x09, key, b"part")),
        ("a ping of 126 bytes", ws_frame(0x89, key, &[7u8; 126])),
    ];
    for (what, bytes) in cases {
        let tcp = tokio::net::TcpStream::connect(srv.addr_for(Transport::Ws))
            .await
            .expect("connect");
        let mut io = common::doors::ws_upgrade(tcp, "/ws", &[])
            .await
            .expect("upgrade");
        io.write_all(&bytes).await.expect("write");
        io.flush().await.expect("flush");
        let (messages, code) =
            tokio::time::timeout(Duration::from_secs(5), server_frames_until_close(&mut io))
                .await
                .unwrap_or_else(|_| panic!("{what}: no close within 5 s"));
        assert_eq!(
            code,
            Some(1002),
            "{what}: WebSocket close 1002 (protocol error)"
        );
        let last = messages
            .last()
            .unwrap_or_else(|| panic!("{what}: a protocol CLOSE first"));
        let raw =
            confab_protocol::frame::split_frame(&mut bytes::BytesMut::from(&last[..]), 1 << 20)
                .expect("a frame")
                .expect("a whole frame");
        match ServerMsg::decode(&raw).expect("decodes") {
            ServerMsg::Close { code, .. } => {
                assert_eq!(code, ErrorCode::MalformedFrame as u16, "{what}")
            }
            other => panic!("{what}: expected CLOSE 100, got {other:?}"),
        }
        assert!(
            messages.len() == 1,
            "{what}: nothing was processed before the close: {messages:?}"
        );
    }
    srv.stop().await;
}

/// When the store cannot keep up, the write backlog stays bounded: past
/// `write_backlog_max` waiting operations, SEND_MESSAGE and CREATE_ROOM are
/// refused with OVERLOADED and a retry hint and nothing is applied (SPEC
/// §7.5), while other requests are served; once the store takes writes
/// again every accepted message is acknowledged and sending works again.
/// The store is stalled for real: another connection holds SQLite's write
/// lock, so the batch writer waits in its busy handler.
#[tokio::test]
async fn a_write_backlog_over_its_bound_pushes_back_on_senders() {
    use confab_protocol::{RoomId, Seq, Visibility};
    use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
    use sqlx::Connection;

    const MAX: usize = 8;
    let srv = TestServer::start_with(|c| {
        c.write_backlog_max = MAX;
        c.rate_limit_per_sec = 0;
    })
    .await;
    let mut c = RawClient::connect(srv.addr).await;
    assert!(matches!(c.hello(None).await, ServerMsg::Welcome(_)));
    assert!(matches!(
        c.register(1, "flooder").await,
        ServerMsg::Session { .. }
    ));
    let create = |name: &str| Request::CreateRoom {
        name: name.into(),
        topic: String::new(),
        visibility: Visibility::Public,
        members: Vec::new(),
    };
    c.send(2, &create("busy")).await;
    let ServerMsg::Room(info) = c.reply_to(2).await else {
        panic!("room not created")
    };
    let room: RoomId = info.id;

    let db = srv.dir.path().join("confab.db");
    let mut lock = SqliteConnection::connect_with(&SqliteConnectOptions::new().filename(&db))
        .await
        .expect("open the server's database");
    sqlx::query("BEGIN IMMEDIATE")
        .execute(&mut lock)
        .await
        .expect("take the write lock");

    // One message at a time, each until its broadcast (the shard has
    // queued its write by then) or its refusal.
    let mut accepted = Vec::new();
    let mut refusal = None;
    for i in 0..(4 * MAX as u32) {
        let id = 100 + i;
        c.send(
            id,
            &Request::SendMessage {
                room,
                body: format!("m{i}"),
                spans: vec![],
                sticker: None,
                attachments: Vec::new(),
            },
        )
        .await;
        let answer = loop {
            match c.recv().await {
                (0, ServerMsg::Event(_)) => break None,
                (rid, msg) if rid == id => break Some(msg),
                _ => continue,
            }
        };
        match answer {
            None => accepted.push(id),
            Some(msg) => {
                refusal = Some(msg);
                break;
            }
        }
    }
    let refusal = refusal.expect("the backlog was never pushed back");
    assert_error(&refusal, ErrorCode::Overloaded);
    let ServerMsg::Error { retry_after_ms, .. } = refusal else {
        unreachable!()
    };
    assert!(retry_after_ms > 0, "a retry hint");
    assert!(
        (MAX..=2 * MAX + 2).contains(&accepted.len()),
        "{} accepted before the push-back (bound {MAX})",
        accepted.len()
    );
    // New rooms are pushed back too; reads are still served.
    c.send(3, &create("another")).await;
    assert_error(&c.reply_to(3).await, ErrorCode::Overloaded);
    c.send(4, &Request::Ping { nonce: 7 }).await;
    assert!(matches!(c.reply_to(4).await, ServerMsg::Pong { nonce: 7 }));

    // The store takes writes again: every accepted message is acknowledged.
    sqlx::query("ROLLBACK").execute(&mut lock).await.unwrap();
    lock.close().await.unwrap();
    for (id, msg) in c.replies(&accepted).await {
        assert!(matches!(msg, ServerMsg::MessageAck { .. }), "{id}: {msg:?}");
    }
    c.send(
        5,
        &Request::SendMessage {
            room,
            body: "after".into(),
            spans: vec![],
            sticker: None,
            attachments: Vec::new(),
        },
    )
    .await;
    assert!(matches!(c.reply_to(5).await, ServerMsg::MessageAck { .. }));

    // History holds the accepted messages and the last one, nothing refused.
    c.send(
        6,
        &Request::History {
            room,
            before: Seq(0),
            limit: 100,
        },
    )
    .await;
    let ServerMsg::HistoryPage { events, .. } = c.reply_to(6).await else {
        panic!("no history")
    };
    let messages = events
        .iter()
        .filter(|e| matches!(e.body, confab_protocol::EventBody::Message { .. }))
        .count();
    assert_eq!(messages, accepted.len() + 1);
    srv.stop().await;
}
