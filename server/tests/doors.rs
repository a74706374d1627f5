//! The TLS, WebSocket and HTTP doors: each speaks the same domain, and each
//! refuses bad input with a clear answer while everyone else is served.
//! (The scenarios of `e2e.rs` also run over TLS and WebSocket.)

mod common;

use std::time::Duration;

use common::doors::{tls_connect, ws_upgrade, RawWs};
use common::{RawClient, TestServer, Transport, STEP};
use confab_protocol::{ErrorCode, Hello, Request, ServerMsg, Visibility, PROTOCOL_VERSION};
use confab_sdk::{Client, ConnectOptions, Event, EventBody, TlsTrust};
use fastwebsockets::{Frame, OpCode, Payload, Role, WebSocket};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

fn encode(req_id: u32, req: &Request) -> Vec<u8> {
    let mut buf = bytes::BytesMut::new();
    req.encode(req_id, &mut buf);
    buf.to_vec()
}

fn hello() -> Vec<u8> {
    encode(
        1,
        &Request::Hello(Hello {
            version: PROTOCOL_VERSION,
            client: "doors-test".into(),
            token: None,
            resume: vec![],
        }),
    )
}

fn decode(message: &[u8]) -> ServerMsg {
    let mut buf = bytes::BytesMut::from(message);
    let frame = confab_protocol::frame::split_frame(&mut buf, 1 << 24)
        .expect("a frame")
        .expect("a whole frame");
    assert!(buf.is_empty(), "exactly one frame per message");
    ServerMsg::decode(&frame).expect("decodes")
}

/// Every transport still serves a fresh client.
async fn all_doors_still_serve(srv: &TestServer) {
    for t in [
        Transport::Tcp,
        Transport::Tls,
        Transport::Ws,
        Transport::Wss,
    ] {
        let mut c = RawClient::connect_via(srv, t).await;
        assert!(
            matches!(c.hello(None).await, ServerMsg::Welcome(_)),
            "{t:?}"
        );
        c.send(9, &Request::Ping { nonce: 7 }).await;
        assert_eq!(c.reply_to(9).await, ServerMsg::Pong { nonce: 7 }, "{t:?}");
    }
}

/// A bare HTTP/1.1 exchange (Connection: close): status, headers, body.
async fn http(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, String, Vec<u8>) {
    let r = common::http::exchange(addr, None, method, path, headers, body).await;
    (r.status, r.head, r.body)
}

/// Asserts the API's error shape with `status` and `code`.
fn assert_api_error(status: u16, body: &[u8], want_status: u16, code: ErrorCode) -> String {
    let v: Value = serde_json::from_slice(body).expect("JSON error body");
    assert_eq!(status, want_status, "{v}");
    assert_eq!(v["error"]["code"], json!(code as u16), "{v}");
    let name = v["error"]["name"].as_str().expect("name");
    assert!(
        name.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
        "{name}"
    );
    let message = v["error"]["message"].as_str().expect("message");
    assert!(!message.is_empty());
    message.to_owned()
}

#[tokio::test]
async fn all_doors_see_the_same_rooms_and_messages() {
    let srv = TestServer::start().await;
    let tcp = srv.door(Transport::Tcp).connect().await;
    tcp.register("alice", "password123").await.unwrap();
    let room = tcp
        .create_room("lobby", "every door", Visibility::Public)
        .await
        .unwrap();
    let mut others = Vec::new();
    for (t, name) in [
        (Transport::Tls, "bob"),
        (Transport::Ws, "carol"),
        (Transport::Wss, "dave"),
    ] {
        let c = srv.door(t).connect().await;
        c.register(name, "password123").await.unwrap();
        c.join_room(room.id).await.unwrap();
        others.push(c);
    }
    // A backend joins and posts through the HTTP API.
    let http_addr = srv.addr_for(Transport::Ws);
    let creds = br#"{"username":"erin","password":"password123"}"#;
    let ct = ("content-type", "application/json");
    let (status, _, body) = http(http_addr, "POST", "/api/register", &[ct], creds).await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    let token = serde_json::from_slice::<Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let auth = format!("Bearer {token}");
    let auth = ("authorization", auth.as_str());
    let path = format!("/api/rooms/{}/join", room.id);
    assert_eq!(http(http_addr, "POST", &path, &[auth], b"").await.0, 200);
    let path = format!("/api/rooms/{}/messages", room.id);
    let (status, _, body) = http(
        http_addr,
        "POST",
        &path,
        &[auth, ct],
        br#"{"text":"from http"}"#,
    )
    .await;
    assert_eq!(status, 201, "{}", String::from_utf8_lossy(&body));
    tcp.send_message(room.id, "from tcp").await.unwrap();
    for (i, c) in others.iter().enumerate() {
        c.send_message(room.id, &format!("from door {i}"))
            .await
            .unwrap();
    }
    // Every SDK client, whatever its transport, sees all five messages.
    let expected = [
        "from http",
        "from tcp",
        "from door 0",
        "from door 1",
        "from door 2",
    ];
    for c in std::iter::once(&tcp).chain(others.iter()) {
        let mut texts = Vec::new();
        while texts.len() < expected.len() {
            match c.next_event_timeout(STEP).await.ok().flatten() {
                Some(Event::Room(ev)) => {
                    if let EventBody::Message { text, .. } = ev.body {
                        texts.push(text);
                    }
                }
                Some(_) => {}
                None => panic!("missing messages, got {texts:?}"),
            }
        }
        assert_eq!(texts, expected);
    }
    // And the HTTP history holds the same, newest first.
    let (status, _, body) = http(http_addr, "GET", &format!("{path}?limit=5"), &[auth], b"").await;
    assert_eq!(status, 200);
    let v: Value = serde_json::from_slice(&body).unwrap();
    let texts: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["body"]["text"].as_str().unwrap())
        .collect();
    let mut newest_first = expected.to_vec();
    newest_first.reverse();
    assert_eq!(texts, newest_first);
    srv.stop().await;
}

#[tokio::test]
async fn alpn_picks_the_protocol_on_the_tls_port() {
    let srv = TestServer::start().await;
    let addr = srv.addr_for(Transport::Tls);
    // confab/1: frames.
    let mut tls = tls_connect(&srv, addr, &[b"confab/1"]).await.unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"confab/1"[..]));
    tls.write_all(&hello()).await.unwrap();
    let mut buf = vec![0u8; 4];
    tls.read_exact(&mut buf).await.unwrap();
    let len = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    buf.resize(4 + len, 0);
    tls.read_exact(&mut buf[4..]).await.unwrap();
    assert!(matches!(decode(&buf), ServerMsg::Welcome(_)));
    // http/1.1 and no ALPN at all: HTTP.
    for alpn in [&[&b"http/1.1"[..]][..], &[]] {
        let mut tls = tls_connect(&srv, addr, alpn).await.unwrap();
        tls.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        tls.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200"), "{out}");
        assert!(out.contains(r#"{"status":"ok"}"#), "{out}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn an_unknown_alpn_is_refused_in_the_handshake() {
    let srv = TestServer::start().await;
    let err = tls_connect(&srv, srv.addr_for(Transport::Tls), &[b"h2", b"spdy/3"])
        .await
        .expect_err("handshake refused");
    assert!(
        err.to_string().contains("NoApplicationProtocol"),
        "RFC 7301 alert expected, got {err}"
    );
    all_doors_still_serve(&srv).await;
    srv.stop().await;
}

#[tokio::test]
async fn plaintext_on_the_tls_port_is_told_to_use_tls() {
    let srv = TestServer::start().await;
    let addr = srv.addr_for(Transport::Tls);
    // An HTTP client that forgot https://.
    let (status, _, body) = http(addr, "GET", "/api/rooms", &[], b"").await;
    let message = assert_api_error(status, &body, 400, ErrorCode::MalformedFrame);
    assert!(message.contains("speaks TLS"), "{message}");
    // A protocol client that forgot confabs://.
    let mut c = RawClient::connect(addr).await;
    c.send_bytes(&hello()).await;
    match c.recv().await.1 {
        ServerMsg::Close { code, message } => {
            assert_eq!(code, ErrorCode::MalformedFrame as u16);
            assert!(message.contains("speaks TLS"), "{message}");
        }
        other => panic!("expected CLOSE, got {other:?}"),
    }
    assert!(c.recv_raw().await.is_none(), "then the socket closes");
    all_doors_still_serve(&srv).await;
    srv.stop().await;
}

#[tokio::test]
async fn the_sdk_trusts_a_pem_or_a_fingerprint_and_nothing_else() {
    let srv = TestServer::start().await;
    let url = srv.url_for(Transport::Tls);
    let pem = std::fs::read(srv.tls_cert_pem()).unwrap();
    let c = Client::connect(&url, ConnectOptions::default().with_trusted_pem(pem))
        .await
        .expect("PEM trust");
    c.register("alice", "password123").await.unwrap();
    // The public CAs do not vouch for a self-signed certificate…
    let err = Client::connect(&url, ConnectOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, confab_sdk::Error::Tls(_)), "{err}");
    // …and a wrong pin is refused, over confabs:// and wss:// alike.
    let wrong = ConnectOptions::default().with_tls_trust(TlsTrust::Fingerprint([7; 32]));
    for url in [url.clone(), srv.url_for(Transport::Wss)] {
        let err = Client::connect(&url, wrong.clone()).await.unwrap_err();
        assert!(err.to_string().contains("fingerprint"), "{err}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn certificates_from_pem_files_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    let srv = TestServer::start_with(|c| {
        c.set_tls(confab_server::config::TlsSource::Pem {
            cert: cert_path.clone(),
            key: key_path.clone(),
        })
    })
    .await;
    let options = ConnectOptions::default().with_trusted_pem(cert.cert.pem());
    let c = Client::connect(&srv.url_for(Transport::Tls), options)
        .await
        .expect("connects with the file's certificate");
    c.register("alice", "password123").await.unwrap();
    srv.stop().await;
}

/// A raw WebSocket client on the plain HTTP port.
async fn raw_ws(srv: &TestServer) -> RawWs {
    let tcp = TcpStream::connect(srv.addr_for(Transport::Ws))
        .await
        .unwrap();
    RawWs::new(ws_upgrade(tcp, "/ws", &[]).await.expect("upgrade"))
}

#[tokio::test]
async fn websocket_text_messages_are_refused_with_a_close_code() {
    let srv = TestServer::start().await;
    let mut bystander = RawClient::connect_via(&srv, Transport::Ws).await;
    assert!(matches!(bystander.hello(None).await, ServerMsg::Welcome(_)));
    let mut ws = raw_ws(&srv).await;
    ws.send(OpCode::Binary, &hello()).await.unwrap();
    assert!(matches!(
        decode(&ws.messages.recv().await.unwrap()),
        ServerMsg::Welcome(_)
    ));
    ws.send(OpCode::Text, b"hello?").await.unwrap();
    match decode(&ws.messages.recv().await.expect("CLOSE frame")) {
        ServerMsg::Close { code, message } => {
            assert_eq!(code, ErrorCode::MalformedFrame as u16);
            assert!(message.contains("text"), "{message}");
        }
        other => panic!("expected CLOSE, got {other:?}"),
    }
    let (code, reason) = ws.close_frame().await.expect("close frame");
    assert_eq!(code, 1003, "unsupported data");
    assert!(reason.contains("MALFORMED_FRAME"), "{reason}");
    bystander.send(2, &Request::Ping { nonce: 1 }).await;
    assert_eq!(bystander.reply_to(2).await, ServerMsg::Pong { nonce: 1 });
    all_doors_still_serve(&srv).await;
    srv.stop().await;
}

#[tokio::test]
async fn websocket_messages_over_one_frame_are_refused_and_one_full_frame_is_not() {
    let srv = TestServer::start().await;
    let max = srv.config.max_frame_len as usize;
    // A PING padded to exactly max_frame_len (receivers skip trailing
    // bytes): the largest legal message, max_frame_len + 4 bytes.
    let mut ping = encode(5, &Request::Ping { nonce: 3 });
    ping.resize(4 + max, 0);
    ping[..4].copy_from_slice(&(max as u32).to_be_bytes());
    let mut ws = raw_ws(&srv).await;
    ws.send(OpCode::Binary, &hello()).await.unwrap();
    ws.messages.recv().await.unwrap();
    ws.send(OpCode::Binary, &ping).await.unwrap();
    assert_eq!(
        decode(&ws.messages.recv().await.unwrap()),
        ServerMsg::Pong { nonce: 3 }
    );
    // One byte more, whole or in fragments: refused before it is buffered.
    for fragmented in [false, true] {
        let mut ws = raw_ws(&srv).await;
        let big = vec![0u8; max + 5];
        if fragmented {
            ws.send_fragmented(&big, 16 * 1024).await.unwrap();
        } else {
            ws.send(OpCode::Binary, &big).await.unwrap();
        }
        match decode(&ws.messages.recv().await.expect("CLOSE frame")) {
            ServerMsg::Close { code, .. } => assert_eq!(code, ErrorCode::FrameTooLarge as u16),
            other => panic!("expected CLOSE, got {other:?}"),
        }
        let (code, _) = ws.close_frame().await.expect("close frame");
        assert_eq!(code, 1009, "message too big (fragmented: {fragmented})");
    }
    // A frame whose length field says too much: the protocol's own check.
    let mut ws = raw_ws(&srv).await;
    let mut lying = hello();
    lying[..4].copy_from_slice(&(max as u32 + 1).to_be_bytes());
    ws.send(OpCode::Binary, &lying).await.unwrap();
    match decode(&ws.messages.recv().await.expect("CLOSE frame")) {
        ServerMsg::Close { code, .. } => assert_eq!(code, ErrorCode::FrameTooLarge as u16),
        other => panic!("expected CLOSE, got {other:?}"),
    }
    assert_eq!(ws.close_frame().await.map(|c| c.0), Some(1009));
    all_doors_still_serve(&srv).await;
    srv.stop().await;
}

#[tokio::test]
async fn websocket_messages_must_hold_exactly_one_whole_frame() {
    let srv = TestServer::start().await;
    let two = [hello(), encode(2, &Request::Ping { nonce: 1 })].concat();
    let half = hello()[..10].to_vec();
    for bad in [two, half] {
        let mut ws = raw_ws(&srv).await;
        ws.send(OpCode::Binary, &bad).await.unwrap();
        match decode(&ws.messages.recv().await.expect("CLOSE frame")) {
            ServerMsg::Close { code, message } => {
                assert_eq!(code, ErrorCode::MalformedFrame as u16);
                assert!(message.contains("exactly one"), "{message}");
            }
            other => panic!("expected CLOSE, got {other:?}"),
        }
        assert_eq!(ws.close_frame().await.map(|c| c.0), Some(1007));
    }
    all_doors_still_serve(&srv).await;
    srv.stop().await;
}

#[tokio::test]
async fn websocket_pings_get_pongs_and_a_client_close_is_answered() {
    let srv = TestServer::start().await;
    let tcp = TcpStream::connect(srv.addr_for(Transport::Ws))
        .await
        .unwrap();
    let io = ws_upgrade(tcp, "/ws", &[]).await.unwrap();
    let mut ws = WebSocket::after_handshake(io, Role::Client);
    ws.set_auto_close(false);
    ws.write_frame(Frame::new(
        true,
        OpCode::Ping,
        None,
        Payload::Borrowed(b"are you there"),
    ))
    .await
    .unwrap();
    let pong = tokio::time::timeout(STEP, ws.read_frame())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(pong.opcode, OpCode::Pong);
    assert_eq!(&pong.payload[..], b"are you there");
    ws.write_frame(Frame::close(1000, b"bye")).await.unwrap();
    let echo = tokio::time::timeout(STEP, ws.read_frame())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(echo.opcode, OpCode::Close);
    assert_eq!(&echo.payload[..2], &1000u16.to_be_bytes());
    srv.stop().await;
}

#[tokio::test]
async fn server_closes_reach_websocket_clients_as_protocol_and_websocket_closes() {
    let srv = TestServer::start().await;
    let mut ws = raw_ws(&srv).await;
    ws.send(OpCode::Binary, &encode(1, &Request::Ping { nonce: 1 }))
        .await
        .unwrap();
    match decode(&ws.messages.recv().await.expect("CLOSE")) {
        ServerMsg::Close { code, .. } => assert_eq!(code, ErrorCode::HandshakeRequired as u16),
        other => panic!("expected CLOSE, got {other:?}"),
    }
    let (code, reason) = ws.close_frame().await.expect("close frame");
    assert_eq!(
        (code, reason.starts_with("HANDSHAKE_REQUIRED")),
        (1008, true),
        "{reason}"
    );
    // Shutdown: SHUTTING_DOWN, then 1001 going away.
    let mut ws = raw_ws(&srv).await;
    ws.send(OpCode::Binary, &hello()).await.unwrap();
    ws.messages.recv().await.unwrap();
    let stop = tokio::spawn(srv.stop());
    match decode(&ws.messages.recv().await.expect("CLOSE")) {
        ServerMsg::Close { code, .. } => assert_eq!(code, ErrorCode::ShuttingDown as u16),
        other => panic!("expected CLOSE, got {other:?}"),
    }
    assert_eq!(ws.close_frame().await.map(|c| c.0), Some(1001));
    stop.await.unwrap();
}

#[tokio::test]
async fn malformed_upgrades_get_clear_http_statuses() {
    let srv = TestServer::start().await;
    let addr = srv.addr_for(Transport::Ws);
    // Not an upgrade at all.
    let (status, _, body) = http(addr, "GET", "/ws", &[], b"").await;
    let message = assert_api_error(status, &body, 426, ErrorCode::MalformedFrame);
    assert!(message.contains("WebSocket"), "{message}");
    let upgrade = [("upgrade", "websocket"), ("connection", "upgrade")];
    // No key.
    let (status, _, body) = http(
        addr,
        "GET",
        "/ws",
        &[upgrade[0], upgrade[1], ("sec-websocket-version", "13")],
        b"",
    )
    .await;
    let message = assert_api_error(status, &body, 400, ErrorCode::MalformedFrame);
    assert!(message.contains("Sec-WebSocket-Key"), "{message}");
    // A key that is not 16 bytes in base64.
    for key in ["not a key", "dGVzdA=="] {
        let headers = [
            upgrade[0],
            upgrade[1],
            ("sec-websocket-key", key),
            ("sec-websocket-version", "13"),
        ];
        let (status, _, body) = http(addr, "GET", "/ws", &headers, b"").await;
        let message = assert_api_error(status, &body, 400, ErrorCode::MalformedFrame);
        assert!(message.contains("Sec-WebSocket-Key"), "{key}: {message}");
    }
    // A version this server does not speak: 400 naming the one it does.
    let headers = [
        upgrade[0],
        upgrade[1],
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("sec-websocket-version", "8"),
    ];
    let (status, head, body) = http(addr, "GET", "/ws", &headers, b"").await;
    assert_api_error(status, &body, 400, ErrorCode::MalformedFrame);
    assert!(head.contains("sec-websocket-version: 13"), "{head}");
    // The wrong method.
    let (status, _, body) = http(addr, "POST", "/ws", &upgrade, b"").await;
    assert_api_error(status, &body, 405, ErrorCode::UnknownFrameType);
    all_doors_still_serve(&srv).await;
    srv.stop().await;
}

#[tokio::test]
async fn allowed_origins_are_checked_on_upgrade() {
    let srv = TestServer::start_with(|c| {
        c.allowed_origins = "https://chat.example".parse().unwrap();
    })
    .await;
    let addr = srv.addr_for(Transport::Ws);
    let tcp = TcpStream::connect(addr).await.unwrap();
    let err = ws_upgrade(tcp, "/ws", &[("origin", "https://evil.example")])
        .await
        .expect_err("refused");
    assert!(err.contains("403"), "{err}");
    let (status, _, body) = http(
        addr,
        "GET",
        "/ws",
        &[
            ("upgrade", "websocket"),
            ("connection", "upgrade"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ("sec-websocket-version", "13"),
            ("origin", "https://evil.example"),
        ],
        b"",
    )
    .await;
    let message = assert_api_error(status, &body, 403, ErrorCode::MalformedFrame);
    assert!(message.contains("evil.example"), "{message}");
    // The allowed origin, and a non-browser client without Origin, get in.
    for headers in [&[("origin", "https://chat.example")][..], &[]] {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let mut c = RawWs::new(ws_upgrade(tcp, "/ws", headers).await.expect("allowed"));
        c.send(OpCode::Binary, &hello()).await.unwrap();
        assert!(matches!(
            decode(&c.messages.recv().await.unwrap()),
            ServerMsg::Welcome(_)
        ));
    }
    srv.stop().await;
}

#[tokio::test]
async fn the_http_api_refuses_bad_requests_in_one_error_shape() {
    let srv = TestServer::start().await;
    let addr = srv.addr_for(Transport::Ws);
    let ct = ("content-type", "application/json");
    // Malformed JSON and missing fields.
    for body in [
        &b"{\"username\": \"al"[..],
        br#"{"username":"alice"}"#,
        b"[]",
    ] {
        let (status, _, resp) = http(addr, "POST", "/api/register", &[ct], body).await;
        let message = assert_api_error(status, &resp, 400, ErrorCode::MalformedFrame);
        assert!(message.contains("JSON"), "{message}");
    }
    // Not JSON at all.
    let (status, _, resp) = http(
        addr,
        "POST",
        "/api/login",
        &[("content-type", "text/plain")],
        b"hi",
    )
    .await;
    assert_api_error(status, &resp, 415, ErrorCode::MalformedFrame);
    // Too large.
    let big = format!(
        r#"{{"username":"{}","password":"x"}}"#,
        "a".repeat(srv.config.max_frame_len as usize)
    );
    let (status, _, resp) = http(addr, "POST", "/api/login", &[ct], big.as_bytes()).await;
    assert_api_error(status, &resp, 413, ErrorCode::FrameTooLarge);
    // Missing, malformed and unknown bearer tokens.
    let (status, head, resp) = http(addr, "GET", "/api/me/rooms", &[], b"").await;
    assert_api_error(status, &resp, 401, ErrorCode::NotAuthenticated);
    assert!(head.contains("www-authenticate: bearer"), "{head}");
    let (status, _, resp) = http(
        addr,
        "GET",
        "/api/me/rooms",
        &[("authorization", "Basic YTpi")],
        b"",
    )
    .await;
    assert_api_error(status, &resp, 401, ErrorCode::InvalidToken);
    let (status, _, resp) = http(
        addr,
        "GET",
        "/api/me/rooms",
        &[("authorization", "Bearer nope")],
        b"",
    )
    .await;
    assert_api_error(status, &resp, 401, ErrorCode::InvalidToken);
    // Unknown routes and methods; bad path and query values.
    let (status, _, resp) = http(addr, "GET", "/api/nothing/here", &[], b"").await;
    assert_api_error(status, &resp, 404, ErrorCode::UnknownFrameType);
    let (status, _, resp) = http(addr, "DELETE", "/api/rooms", &[], b"").await;
    assert_api_error(status, &resp, 405, ErrorCode::UnknownFrameType);
    let (status, _, body) = http(
        addr,
        "POST",
        "/api/register",
        &[ct],
        br#"{"username":"alice","password":"password123"}"#,
    )
    .await;
    assert_eq!(status, 201);
    let token = serde_json::from_slice::<Value>(&body).unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let auth = format!("Bearer {token}");
    let auth = ("authorization", auth.as_str());
    let (status, _, resp) = http(addr, "POST", "/api/rooms/abc/join", &[auth], b"").await;
    assert_api_error(status, &resp, 400, ErrorCode::MalformedFrame);
    let (status, _, resp) = http(addr, "GET", "/api/rooms?limit=-1", &[auth], b"").await;
    assert_api_error(status, &resp, 400, ErrorCode::MalformedFrame);
    // Domain refusals keep their protocol code.
    let (status, _, resp) = http(addr, "GET", "/api/rooms?limit=500", &[auth], b"").await;
    assert_api_error(status, &resp, 400, ErrorCode::InvalidPaging);
    let (status, _, resp) = http(addr, "POST", "/api/rooms/999/join", &[auth], b"").await;
    assert_api_error(status, &resp, 404, ErrorCode::RoomNotFound);
    let (status, _, resp) = http(
        addr,
        "POST",
        "/api/register",
        &[ct],
        br#"{"username":"alice","password":"password123"}"#,
    )
    .await;
    assert_api_error(status, &resp, 409, ErrorCode::UsernameTaken);
    // Logout ends the token everywhere.
    assert_eq!(http(addr, "POST", "/api/logout", &[auth], b"").await.0, 204);
    let (status, _, resp) = http(addr, "GET", "/api/me/rooms", &[auth], b"").await;
    assert_api_error(status, &resp, 401, ErrorCode::InvalidToken);
    // Nothing broke.
    assert_eq!(http(addr, "GET", "/healthz", &[], b"").await.0, 200);
    assert_eq!(http(addr, "GET", "/readyz", &[], b"").await.0, 200);
    all_doors_still_serve(&srv).await;
    // The account made over HTTP is the same account on every door.
    let c = srv.door(Transport::Tcp).connect().await;
    let err = c.login("alice", "wrong-password").await.unwrap_err();
    assert_eq!(err.code(), Some(ErrorCode::InvalidCredentials));
    c.login("alice", "password123").await.expect("same account");
    srv.stop().await;
}

#[tokio::test]
async fn health_readiness_and_the_openapi_document_are_served() {
    let srv = TestServer::start().await;
    let addr = srv.addr_for(Transport::Ws);
    let (status, _, body) = http(addr, "GET", "/healthz", &[], b"").await;
    assert_eq!((status, body), (200, br#"{"status":"ok"}"#.to_vec()));
    let (status, _, body) = http(addr, "GET", "/readyz", &[], b"").await;
    assert_eq!((status, body), (200, br#"{"status":"ready"}"#.to_vec()));
    let (status, _, body) = http(addr, "GET", "/api/openapi.json", &[], b"").await;
    assert_eq!(status, 200);
    let doc: Value = serde_json::from_slice(&body).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    for path in [
        "/api/register",
        "/api/rooms/{id}/messages",
        "/api/me/rooms",
        "/readyz",
        "/api/rooms/{id}/invitations",
        "/api/rooms/{id}/bans/{user_id}",
        "/api/rooms/{id}/audit",
        "/api/me/notifications",
    ] {
        assert!(doc["paths"].get(path).is_some(), "{path} documented");
    }
    tokio::time::timeout(Duration::from_secs(15), srv.stop())
        .await
        .expect("stops");
}
