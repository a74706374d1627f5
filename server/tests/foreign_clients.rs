//! Every door checked by a client nobody here wrote: `openssl s_client`
//! (TLS + ALPN confab/1), a Python `websockets` client written from SPEC.md
//! (WebSocket), `curl` (the HTTP API end to end) and schemathesis (the
//! OpenAPI document against the running server).
//!
//! The Python tools live in the workspace's `.venv`, which `scripts/test`
//! creates (`CONFAB_VENV` overrides where to look). Every child process is
//! bounded in time; everything talks to loopback only.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::Duration;

use common::{TestServer, Transport, STEP};
use confab_protocol::frame::split_frame;
use confab_protocol::{Hello, Request, ServerMsg, Visibility, PROTOCOL_VERSION};
use confab_sdk::{Event, EventBody};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

/// The virtualenv with `websockets` and `schemathesis`.
fn venv() -> PathBuf {
    let dir = std::env::var_os("CONFAB_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv"));
    assert!(
        dir.join("bin/python").exists(),
        "no Python virtualenv at {}: run scripts/test, which creates it with websockets and schemathesis",
        dir.display()
    );
    dir
}

/// Runs `cmd` to completion within `limit`, killing it otherwise.
async fn run(cmd: &mut Command, limit: Duration) -> Output {
    cmd.kill_on_drop(true).stdin(Stdio::null());
    let child = cmd.output();
    tokio::time::timeout(limit, child)
        .await
        .unwrap_or_else(|_| panic!("{cmd:?} did not finish within {limit:?}"))
        .expect("the tool runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test]
async fn openssl_s_client_gets_a_welcome_over_alpn_confab_1() {
    let srv = TestServer::start().await;
    let addr = srv.addr_for(Transport::Tls);
    let pem = srv.tls_cert_pem();
    let mut child = Command::new("openssl")
        .args([
            "s_client",
            "-quiet",
            "-connect",
            &addr.to_string(),
            "-alpn",
            "confab/1",
        ])
        .arg("-CAfile")
        .arg(&pem)
        .args(["-verify_return_error", "-verify_ip", "127.0.0.1"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("openssl runs");
    let mut hello = bytes::BytesMut::new();
    Request::Hello(Hello {
        version: PROTOCOL_VERSION,
        client: "openssl".into(),
        token: None,
        resume: vec![],
    })
    .encode(1, &mut hello);
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&hello).await.unwrap();
    stdin.flush().await.unwrap();
    // Read exactly one frame back.
    let mut stdout = child.stdout.take().unwrap();
    let mut buf = bytes::BytesMut::new();
    let frame = tokio::time::timeout(STEP, async {
        loop {
            if let Some(frame) = split_frame(&mut buf, 1 << 20).expect("a valid frame") {
                return frame;
            }
            let mut chunk = [0u8; 512];
            let n = stdout.read(&mut chunk).await.expect("read");
            assert!(n > 0, "openssl ended before a frame arrived");
            buf.extend_from_slice(&chunk[..n]);
        }
    })
    .await
    .expect("a frame within the step");
    match ServerMsg::decode(&frame).unwrap() {
        ServerMsg::Welcome(w) => assert_eq!(w.version, PROTOCOL_VERSION),
        other => panic!("expected WELCOME, got {other:?}"),
    }
    drop(stdin);
    let _ = child.kill().await;

    // An ALPN id the server does not speak fails the handshake with the
    // RFC 7301 alert.
    let out = run(
        Command::new("openssl")
            .args(["s_client", "-connect", &addr.to_string(), "-alpn", "h2"])
            .arg("-CAfile")
            .arg(&pem),
        STEP,
    )
    .await;
    let stderr = text(&out.stderr);
    assert!(!out.status.success(), "handshake must fail");
    assert!(stderr.contains("no application protocol"), "{stderr}");
    srv.stop().await;
}

#[tokio::test]
async fn a_python_websockets_client_chats_with_an_sdk_client() {
    let venv = venv();
    let srv = TestServer::start().await;
    let alice = srv.door(Transport::Tcp).connect().await;
    alice.register("alice", "password123").await.unwrap();
    let room = alice
        .create_room("polyglot", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/foreign/ws_client.py");
    for (t, user) in [(Transport::Ws, "pyws"), (Transport::Wss, "pywss")] {
        let mut cmd = Command::new(venv.join("bin/python"));
        cmd.arg(&script)
            .args([
                srv.url_for(t).as_str(),
                user,
                "password123",
                &room.0.to_string(),
            ])
            .args([format!("hello from {user}"), format!("hello {user}")])
            .arg("--ca")
            .arg(srv.tls_cert_pem())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let child = cmd.spawn().expect("python runs");
        // alice answers once the Python client has spoken.
        loop {
            match alice.next_event_timeout(STEP).await.ok().flatten() {
                Some(Event::Room(ev)) => {
                    if let EventBody::Message { text, .. } = &ev.body {
                        if text == &format!("hello from {user}") {
                            assert_eq!(ev.actor_name, user);
                            break;
                        }
                    }
                }
                Some(_) => {}
                None => {
                    let out = child.wait_with_output().await.unwrap();
                    panic!("no message from {user}: {}", text(&out.stderr));
                }
            }
        }
        alice
            .send_message(room, &format!("hello {user}"))
            .await
            .unwrap();
        let out = tokio::time::timeout(Duration::from_secs(15), child.wait_with_output())
            .await
            .expect("python finishes")
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let steps: Vec<Value> = text(&out.stdout)
            .lines()
            .map(|l| serde_json::from_str(l).expect("JSON line"))
            .collect();
        let last = steps.last().expect("output");
        assert_eq!(last["step"], "received", "{steps:?}");
        assert_eq!(last["actor"], "alice");
        assert_eq!(last["text"], format!("hello {user}"));
    }
    srv.stop().await;
}

/// `curl -sS` with the server's certificate trusted; returns (status, JSON).
async fn curl(pem: &Path, args: &[&str]) -> (u16, Value) {
    let out = run(
        Command::new("curl")
            .args(["-sS", "--max-time", "5", "-w", "\n%{http_code}", "--cacert"])
            .arg(pem)
            .args(args),
        Duration::from_secs(10),
    )
    .await;
    assert!(out.status.success(), "curl failed: {}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let (body, status) = stdout.rsplit_once('\n').expect("status line");
    let json = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
    };
    (status.parse().expect("status"), json)
}

#[tokio::test]
async fn curl_drives_the_http_api_end_to_end_over_https() {
    let srv = TestServer::start().await;
    let pem = srv.tls_cert_pem();
    // https:// on the TLS port (ALPN http/1.1), as a deployment would use.
    let base = format!("https://{}", srv.addr_for(Transport::Tls));
    let json = ["-H", "content-type: application/json"];
    let url = |p: &str| format!("{base}{p}");
    let creds = r#"{"username":"curly","password":"password123"}"#;
    let (status, v) = curl(
        &pem,
        &[&json[..], &["-d", creds, &url("/api/register")]].concat(),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let (status, v) = curl(
        &pem,
        &[&json[..], &["-d", creds, &url("/api/login")]].concat(),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let auth = format!("authorization: Bearer {}", v["token"].as_str().unwrap());
    let auth = ["-H", auth.as_str()];
    let (status, room) = curl(
        &pem,
        &[
            &json[..],
            &auth,
            &[
                "-d",
                r#"{"name":"curl room","topic":"by hand"}"#,
                &url("/api/rooms"),
            ],
        ]
        .concat(),
    )
    .await;
    assert_eq!(status, 201, "{room}");
    assert_eq!(
        (room["name"].as_str(), room["visibility"].as_str()),
        (Some("curl room"), Some("public"))
    );
    let id = room["id"].as_u64().unwrap();
    let messages = url(&format!("/api/rooms/{id}/messages"));
    for text in ["first", "second"] {
        let body = format!(r#"{{"text":"{text}"}}"#);
        let (status, ack) = curl(
            &pem,
            &[&json[..], &auth, &["-d", &body, &messages]].concat(),
        )
        .await;
        assert_eq!(status, 201, "{ack}");
    }
    // The same room and messages through the SDK.
    let sdk = srv.door(Transport::Tls).connect().await;
    sdk.login("curly", "password123").await.unwrap();
    let page = sdk
        .history(confab_protocol::RoomId(id), None, 10)
        .await
        .unwrap();
    assert_eq!(page.events.len(), 3, "created + two messages");
    // History through curl, newest first, with paging.
    let (status, page) = curl(
        &pem,
        &[&auth[..], &[&format!("{messages}?limit=2")]].concat(),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let texts: Vec<&str> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["body"]["text"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(texts, ["second", "first"]);
    assert_eq!(page["has_more"], true);
    let (status, mine) = curl(&pem, &[&auth[..], &[&url("/api/me/rooms")]].concat()).await;
    assert_eq!((status, mine["total"].as_u64()), (200, Some(1)));
    let (status, members) = curl(
        &pem,
        &[&auth[..], &[&url(&format!("/api/rooms/{id}/members"))]].concat(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(members["members"][0]["role"], "owner");
    // Errors keep the shape, through curl too.
    let (status, err) = curl(
        &pem,
        &[&auth[..], &[&url("/api/rooms/424242/members")]].concat(),
    )
    .await;
    assert_eq!(
        (status, err["error"]["name"].as_str()),
        (404, Some("ROOM_NOT_FOUND"))
    );
    srv.stop().await;
}

/// One API call through curl: `method` on `path` with an optional bearer
/// token and JSON body; returns (status, JSON).
async fn curl_api(
    pem: &Path,
    base: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&str>,
) -> (u16, Value) {
    let url = format!("{base}{path}");
    let auth = token.map(|t| format!("authorization: Bearer {t}"));
    let mut args = vec!["-X", method];
    if let Some(a) = &auth {
        args.extend(["-H", a.as_str()]);
    }
    if let Some(b) = body {
        args.extend(["-H", "content-type: application/json", "-d", b]);
    }
    args.push(&url);
    curl(pem, &args).await
}

#[tokio::test]
async fn curl_drives_room_governance_end_to_end() {
    let srv = TestServer::start().await;
    let pem = srv.tls_cert_pem();
    let base = format!("https://{}", srv.addr_for(Transport::Tls));
    let call = |method: &'static str, path: String, token: Option<String>, body: Option<String>| {
        let (pem, base) = (pem.clone(), base.clone());
        async move {
            curl_api(
                &pem,
                &base,
                method,
                &path,
                token.as_deref(),
                body.as_deref(),
            )
            .await
        }
    };
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    for name in ["ada", "bob"] {
        let creds = format!(r#"{{"username":"{name}","password":"password123"}}"#);
        let (status, v) = call("POST", "/api/register".into(), None, Some(creds)).await;
        assert_eq!(status, 201, "{v}");
        tokens.push(Some(v["token"].as_str().unwrap().to_owned()));
        ids.push(v["user"].as_u64().unwrap());
    }
    let (ada, bob, bob_id) = (tokens[0].clone(), tokens[1].clone(), ids[1]);
    let code = |v: &Value| v["error"]["name"].as_str().unwrap_or("").to_owned();

    // A private room: bob cannot see it or walk in.
    let body = r#"{"name":"back room","visibility":"private"}"#.to_owned();
    let (status, room) = call("POST", "/api/rooms".into(), ada.clone(), Some(body)).await;
    assert_eq!(status, 201, "{room}");
    let id = room["id"].as_u64().unwrap();
    let r = |p: &str| format!("/api/rooms/{id}{p}");
    let (status, v) = call("POST", r("/join"), bob.clone(), None).await;
    assert_eq!((status, code(&v)), (403, "ROOM_PRIVATE".into()));

    // Invite by username -> bob is notified -> accepts.
    let (status, v) = call(
        "POST",
        r("/invitations"),
        ada.clone(),
        Some(r#"{"username":"Bob"}"#.into()),
    )
    .await;
    assert_eq!(status, 204, "{v}");
    let (status, n) = call("GET", "/api/me/notifications".into(), bob.clone(), None).await;
    assert_eq!(status, 200, "{n}");
    assert_eq!(
        (
            n["items"][0]["kind"].as_str(),
            n["items"][0]["actor_name"].as_str()
        ),
        (Some("invited"), Some("ada"))
    );
    let (status, joined) = call("POST", r("/invitation/accept"), bob.clone(), None).await;
    assert_eq!(
        (status, joined["name"].as_str()),
        (200, Some("back room")),
        "{joined}"
    );

    // A member cannot read the audit trail.
    let (status, v) = call("GET", r("/audit"), bob.clone(), None).await;
    assert_eq!((status, code(&v)), (403, "NOT_ADMIN".into()));

    // Kick -> bob is out -> asks to come back -> ada approves.
    let (status, v) = call(
        "DELETE",
        r(&format!("/members/{bob_id}")),
        ada.clone(),
        None,
    )
    .await;
    assert_eq!(status, 204, "{v}");
    let (status, v) = call("GET", r("/messages"), bob.clone(), None).await;
    assert_eq!((status, code(&v)), (403, "NOT_A_MEMBER".into()));
    let (status, v) = call("POST", r("/join-requests"), bob.clone(), None).await;
    assert_eq!(status, 204, "{v}");
    let (status, pending) = call("GET", r("/join-requests"), ada.clone(), None).await;
    assert_eq!(
        (status, pending["users"][0]["user"].as_u64()),
        (200, Some(bob_id)),
        "{pending}"
    );
    let (status, v) = call(
        "POST",
        r(&format!("/join-requests/{bob_id}/approve")),
        ada.clone(),
        None,
    )
    .await;
    assert_eq!(status, 204, "{v}");
    let (status, listed) = call("GET", "/api/rooms?q=back".into(), bob.clone(), None).await;
    assert_eq!(
        (status, listed["rooms"][0]["id"].as_u64()),
        (200, Some(id)),
        "{listed}"
    );

    // Ban: the room vanishes from bob's search, public or not.
    let body = r#"{"name":"back yard"}"#.to_owned();
    let (_, yard) = call("POST", "/api/rooms".into(), ada.clone(), Some(body)).await;
    let yard = yard["id"].as_u64().unwrap();
    let search = |token: Option<String>| {
        let call = &call;
        async move {
            let (status, v) = call("GET", "/api/rooms?q=back".into(), token, None).await;
            assert_eq!(status, 200, "{v}");
            let mut ids: Vec<u64> = v["rooms"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["id"].as_u64().unwrap())
                .collect();
            ids.sort();
            ids
        }
    };
    assert_eq!(search(bob.clone()).await, [id, yard]);
    let ban = format!(r#"{{"user_id":{bob_id}}}"#);
    for room in [id, yard] {
        let path = format!("/api/rooms/{room}/bans");
        let (status, v) = call("POST", path, ada.clone(), Some(ban.clone())).await;
        assert_eq!(status, 204, "{v}");
    }
    assert_eq!(search(bob.clone()).await, Vec::<u64>::new());
    assert_eq!(
        search(ada.clone()).await,
        [id, yard],
        "hidden from bob only"
    );
    let (status, v) = call("POST", r("/join-requests"), bob.clone(), None).await;
    assert_eq!((status, code(&v)), (403, "BANNED".into()));

    // The admin reads what happened: audit newest first, events by name.
    let (status, audit) = call("GET", r("/audit"), ada.clone(), None).await;
    assert_eq!(status, 200, "{audit}");
    let actions: Vec<&str> = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "member_banned",
            "request_approved",
            "member_joined",
            "join_requested",
            "member_kicked",
            "member_joined",
            "invited",
            "room_created",
        ]
    );
    let (status, page) = call("GET", r("/messages"), ada.clone(), None).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(
        page["events"][0]["body"],
        serde_json::json!({"kind": "member_banned", "target": bob_id, "target_name": "bob"})
    );
    // bob's room log remembers how it ended.
    let (status, log) = call("GET", "/api/me/room-log".into(), bob.clone(), None).await;
    assert_eq!(status, 200, "{log}");
    assert_eq!(
        (
            log["items"][0]["room"]["id"].as_u64(),
            log["items"][0]["reason"].as_str()
        ),
        (Some(id), Some("banned"))
    );
    srv.stop().await;
}

#[tokio::test]
async fn schemathesis_finds_the_running_server_true_to_its_openapi_document() {
    let venv = venv();
    // No per-user limits: schemathesis sends far more than a person would.
    let srv = TestServer::start_with(|c| {
        c.rate_limit_per_sec = 0;
        c.profile_changes_per_hour = 0;
    })
    .await;
    let base = format!("http://{}", srv.addr_for(Transport::Ws));
    let user = srv.door(Transport::Tcp).connect().await;
    let session = user.register("schemathesis", "password123").await.unwrap();
    user.create_room("fuzzed", "", Visibility::Public)
        .await
        .unwrap();
    let work = tempfile::tempdir().unwrap(); // hypothesis writes its database here
    let out = run(
        Command::new(venv.join("bin/schemathesis"))
            .current_dir(work.path())
            .env("NO_COLOR", "1")
            .args(["run", &format!("{base}/api/openapi.json"), "--url", &base])
            .args(["-H", &format!("Authorization: Bearer {}", session.token)])
            // Every check but positive_data_acceptance: the domain may refuse
            // schema-valid values (a blank room name, a password of 256
            // multi-byte characters) with a documented 4xx.
            .args([
                "--checks",
                "all",
                "--exclude-checks",
                "positive_data_acceptance",
            ])
            // Logging out would end the token for every later case; the
            // logout path is tested in doors.rs.
            .args(["--exclude-path", "/api/logout"])
            .args([
                "--phases",
                "examples,coverage,fuzzing",
                "--max-examples",
                "5",
            ])
            // One worker: Python 3.11's `ast` is not thread-safe ("AST
            // constructor recursion depth mismatch", CPython gh-106905), and
            // hypothesis parses filter lambdas in each worker thread. The
            // GIL makes a second worker add little anyway.
            .args(["--max-time", "20", "--workers", "1"])
            // A fixed seed: CI runs exactly the cases a local run does.
            .args(["--seed", "20261121"]),
        Duration::from_secs(90),
    )
    .await;
    let report = text(&out.stdout);
    assert!(
        out.status.success(),
        "schemathesis found problems:\n{report}\n{}",
        text(&out.stderr)
    );
    // Every operation of the document but logout was selected, and every
    // selected one ran (the count follows the document as routes are added).
    let number_after = |label: &str| -> Option<(u32, Option<u32>)> {
        let rest = report.split(label).nth(1)?.trim_start();
        let field: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '/')
            .collect();
        let mut parts = field.split('/').map(|n| n.parse::<u32>().ok());
        Some((parts.next()??, parts.next().flatten()))
    };
    let selected = number_after("Selected:");
    let tested = number_after("Tested:");
    assert!(
        matches!((selected, tested), (Some((n, Some(total))), Some((t, None))) if n + 1 == total && t == n && n > 0),
        "every operation but logout ran (selected {selected:?}, tested {tested:?}):\n{report}"
    );
    srv.stop().await;
}
