//! Rich messages (SPEC.md §5.11), end to end: formatting spans and
//! stickers through the Rust SDK over every door and on both stores —
//! live, through edits, in history, on resume and after a restart —, every
//! refusal with its code and nothing stored, the HTTP JSON API, and the
//! sticker catalogue read from the configured directory.

mod common;

use common::http::{api, assert_api_err, register_token};
use common::sdk::{alice_and_bob_in, event_at, resumed, room_event, user};
use common::{Backend, TestServer, Transport};
use confab_protocol::{
    Color, ErrorCode, EventBody, Request, RoomId, Seq, ServerMsg, Span, Style, Visibility,
};
use confab_sdk::{Client, RichText};
use confab_server::config::Cli;
use serde_json::{json, Value};

fn deploy() -> RichText {
    RichText::new()
        .bold("Deploy")
        .plain(" is ")
        .color("green", Color::Green)
        .plain(" 👍: see ")
        .styled(
            "the docs",
            [
                Style::Italic,
                Style::Link("https://confab.example/docs".into()),
            ],
        )
}

fn rollback() -> RichText {
    RichText::new()
        .strikethrough("Deploy")
        .plain(" rolled back:\n")
        .code_block("git revert HEAD")
}

fn message(text: &str, edited_at: Option<u64>, spans: &[Span]) -> EventBody {
    EventBody::Message {
        text: text.into(),
        edited_at,
        spans: spans.to_vec(),
        sticker: None,
        attachments: Vec::new(),
    }
}

fn sticker(id: &str) -> EventBody {
    EventBody::Message {
        text: format!(":{id}:"),
        edited_at: None,
        spans: vec![],
        sticker: Some(id.into()),
        attachments: Vec::new(),
    }
}

async fn spans_and_stickers_survive_edits_history_resume_and_a_restart(
    t: Transport,
    backend: Backend,
) {
    let Some(mut srv) = TestServer::start_on(backend, "spans_and_stickers_survive", |_| {}).await
    else {
        return;
    };
    let (alice, bob, room) = alice_and_bob_in(&srv.door(t), "rich").await;

    // Given a formatted message, live: every member sees text and spans.
    let first = deploy();
    let sent = bob.send_rich(room, &first).await.unwrap();
    let live = room_event(&alice, |b| matches!(b, EventBody::Message { .. })).await;
    assert_eq!(live.seq, sent.seq);
    assert_eq!(live.body, message(first.text(), None, first.spans()));

    // When bob edits it, the edit carries the new text and spans ...
    let second = rollback();
    let edit = bob.edit_rich(room, sent.seq, &second).await.unwrap();
    let seen = room_event(&alice, |b| matches!(b, EventBody::MessageEdited { .. })).await;
    assert_eq!(
        seen.body,
        EventBody::MessageEdited {
            target: sent.seq,
            text: second.text().into(),
            spans: second.spans().to_vec(),
        }
    );
    // ... and a sticker goes by id, with its fallback text.
    let shrug = bob.send_sticker(room, "shrug").await.unwrap();
    let live = room_event(&alice, |b| matches!(b, EventBody::Message { .. })).await;
    assert_eq!((live.seq, live.body), (shrug.seq, sticker("shrug")));
    // A plain edit drops the formatting with the old text.
    let plain = bob.send_rich(room, &deploy()).await.unwrap();
    let plain_edit = bob
        .edit_message(room, plain.seq, "plain now")
        .await
        .unwrap();

    // Then history shows the latest form of each, and the edit's own
    // event without its text or spans.
    let edited = message(second.text(), Some(edit.at), second.spans());
    let want = vec![
        (sent.seq, edited.clone()),
        (
            edit.seq,
            EventBody::MessageEdited {
                target: sent.seq,
                text: String::new(),
                spans: vec![],
            },
        ),
        (shrug.seq, sticker("shrug")),
        (plain.seq, message("plain now", Some(plain_edit.at), &[])),
    ];
    check_history(&alice, room, &want).await;

    // And a connection resuming after the room's creation is replayed
    // the same forms.
    let token = alice.token().unwrap();
    let resumed = resumed(&srv.door(t), &token, room, Seq(sent.seq.0 - 1)).await;
    let replayed = room_event(&resumed, |b| matches!(b, EventBody::Message { .. })).await;
    assert_eq!((replayed.seq, replayed.body), (sent.seq, edited));
    let replayed = room_event(&resumed, |b| matches!(b, EventBody::Message { .. })).await;
    assert_eq!((replayed.seq, replayed.body), (shrug.seq, sticker("shrug")));
    drop((alice, bob, resumed));

    // After a restart the store serves them, and the room refuses to edit
    // the sticker from the stored copy.
    srv.restart().await;
    let door = srv.door(t);
    let alice = door.connect_with(|o| o.with_token(token)).await.unwrap();
    check_history(&alice, room, &want).await;
    let bob = door.connect().await;
    bob.login("bob", "password123").await.unwrap();
    let refused = bob
        .edit_message(room, shrug.seq, "no")
        .await
        .unwrap_err()
        .code();
    assert_eq!(refused, Some(ErrorCode::StickerMessage));
    srv.stop().await;
}

/// Each `(seq, body)` is what HISTORY serves at that seq.
async fn check_history(c: &Client, room: RoomId, want: &[(Seq, EventBody)]) {
    for (seq, body) in want {
        assert_eq!(&event_at(c, room, *seq).await.body, body, "seq {}", seq.0);
    }
}

/// SEND_MESSAGE with `body`, `spans` and `sticker`, answered raw.
async fn send_raw(
    c: &Client,
    room: RoomId,
    body: &str,
    spans: Vec<Span>,
    sticker: Option<&str>,
) -> Option<ErrorCode> {
    let req = Request::SendMessage {
        room,
        body: body.into(),
        spans,
        sticker: sticker.map(str::to_owned),
        attachments: Vec::new(),
    };
    match c.raw_request(req).await {
        Ok(ServerMsg::MessageAck { .. }) => None,
        Ok(other) => panic!("unexpected reply {other:?}"),
        Err(e) => e.code(),
    }
}

async fn bad_spans_and_stickers_get_their_codes_and_store_nothing(t: Transport, backend: Backend) {
    let Some(srv) = TestServer::start_on(backend, "bad_spans_and_stickers", |c| {
        c.rate_limit_per_sec = 0;
    })
    .await
    else {
        return;
    };
    let door = srv.door(t);
    let alice = user(&door, "alice").await;
    let room = alice
        .create_room("strict", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    let text_msg = alice.send_message(room, "hello").await.unwrap();
    let sticker_msg = alice.send_sticker(room, "cat").await.unwrap();
    let before = alice.history(room, None, 50).await.unwrap().events;

    let bold = |(start, end): (u32, u32)| Span {
        start,
        end,
        style: Style::Bold,
    };
    let many: Vec<Span> = (0..65)
        .map(|i| Span::new(i..i + 1, Style::Italic))
        .collect();
    let long = "x".repeat(65);
    // (what, body, spans, sticker, the code)
    type Case<'a> = (&'a str, &'a str, Vec<Span>, Option<&'a str>, ErrorCode);
    let cases: Vec<Case> = vec![
        (
            "out of range",
            "hello",
            vec![bold((2, 6))],
            None,
            ErrorCode::InvalidSpans,
        ),
        (
            "empty",
            "hello",
            vec![bold((3, 3))],
            None,
            ErrorCode::InvalidSpans,
        ),
        (
            "backwards",
            "hello",
            vec![bold((4, 1))],
            None,
            ErrorCode::InvalidSpans,
        ),
        (
            "splits 👍",
            "ok 👍",
            vec![bold((0, 4))],
            None,
            ErrorCode::InvalidSpans,
        ),
        (
            "same kind overlapping",
            "hello world",
            vec![bold((0, 6)), bold((5, 11))],
            None,
            ErrorCode::InvalidSpans,
        ),
        (
            "over a code block",
            "let x = 1;",
            vec![
                Span::new(0..10, Style::CodeBlock),
                Span::new(4..5, Style::Italic),
            ],
            None,
            ErrorCode::InvalidSpans,
        ),
        (
            "unknown kind",
            "hello",
            vec![Span::new(
                0..5,
                Style::Unknown {
                    kind: 99,
                    data: vec![],
                },
            )],
            None,
            ErrorCode::InvalidSpans,
        ),
        ("too many", &long, many, None, ErrorCode::InvalidSpans),
        (
            "unknown colour",
            "hello",
            vec![Span::new(0..5, Style::Color(Color::from_code(16)))],
            None,
            ErrorCode::UnknownColor,
        ),
        (
            "javascript link",
            "click",
            vec![Span::new(0..5, Style::Link("javascript:alert(1)".into()))],
            None,
            ErrorCode::InvalidLink,
        ),
        (
            "data link",
            "click",
            vec![Span::new(0..5, Style::Link("data:text/html,x".into()))],
            None,
            ErrorCode::InvalidLink,
        ),
        (
            "unknown sticker",
            "",
            vec![],
            Some("no-such"),
            ErrorCode::UnknownSticker,
        ),
        (
            "sticker with text",
            "hi",
            vec![],
            Some("cat"),
            ErrorCode::StickerMessage,
        ),
        (
            "sticker with spans",
            "",
            vec![bold((0, 1))],
            Some("cat"),
            ErrorCode::StickerMessage,
        ),
    ];
    for (what, body, spans, sticker, want) in cases {
        assert_eq!(
            send_raw(&alice, room, body, spans, sticker).await,
            Some(want),
            "{what}"
        );
    }
    let edits = [
        (
            alice
                .edit_rich(
                    room,
                    text_msg.seq,
                    &RichText::new().plain("hi").span(0..3, Style::Bold),
                )
                .await,
            ErrorCode::InvalidSpans,
        ),
        (
            alice
                .edit_rich(room, text_msg.seq, &RichText::new().link("x", "ftp://host"))
                .await,
            ErrorCode::InvalidLink,
        ),
        (
            alice.edit_message(room, sticker_msg.seq, "text").await,
            ErrorCode::StickerMessage,
        ),
    ];
    for (i, (got, want)) in edits.into_iter().enumerate() {
        assert_eq!(got.err().and_then(|e| e.code()), Some(want), "edit {i}");
    }
    // Nothing of any refused request was stored or broadcast.
    assert_eq!(alice.history(room, None, 50).await.unwrap().events, before);
    srv.stop().await;
}

over_transports!(
    spans_and_stickers_survive_edits_history_resume_and_a_restart,
    bad_spans_and_stickers_get_their_codes_and_store_nothing,
);

#[tokio::test]
async fn the_catalogue_lists_builtin_stickers_and_the_configured_directory_overrides_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("shrug.toml"),
        "name = \"Shrug harder\"\nart = '''\n\\_(O_O)_/\n'''\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("duck.toml"),
        "name = \"Duck\"\nart = \"<(o )___\"\n",
    )
    .unwrap();
    let builtin = {
        let srv = TestServer::start().await;
        let c = user(&srv.door(Transport::Tcp), "alice").await;
        let list = c.list_stickers().await.unwrap();
        assert!(list.len() >= 20, "{} stickers", list.len());
        let ids: Vec<&str> = list.iter().map(|s| s.id.as_str()).collect();
        let mut sorted = ids.clone();
        sorted.sort_unstable();
        assert_eq!(ids, sorted, "in id order");
        srv.stop().await;
        list
    };
    // The directory is named in the TOML config file, as an operator would.
    let etc = tempfile::tempdir().unwrap();
    let toml = etc.path().join("confab.toml");
    std::fs::write(
        &toml,
        format!("stickers_dir = {:?}\n", dir.path().display().to_string()),
    )
    .unwrap();
    let file = Cli {
        config: Some(toml),
        ..Cli::default()
    }
    .resolve()
    .unwrap();
    assert_eq!(
        file.stickers_dir.as_ref().map(|p| p.0.clone()),
        Some(dir.path().to_owned())
    );
    let srv = TestServer::start_with(|c| c.stickers_dir = file.stickers_dir).await;
    let c = user(&srv.door(Transport::Tcp), "alice").await;
    let list = c.list_stickers().await.unwrap();
    assert_eq!(list.len(), builtin.len() + 1);
    let shrug = list.iter().find(|s| s.id == "shrug").unwrap();
    assert_eq!(
        (shrug.name.as_str(), shrug.art.as_str()),
        ("Shrug harder", "\\_(O_O)_/")
    );
    let room = c
        .create_room("ducks", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    c.send_sticker(room, "duck").await.unwrap();
    let code = c.send_sticker(room, "nope").await.unwrap_err().code();
    assert_eq!(code, Some(ErrorCode::UnknownSticker));
    srv.stop().await;
}

// --- the HTTP JSON API ------------------------------------------------------------

#[tokio::test]
async fn formatted_messages_and_stickers_over_http() {
    let srv = TestServer::start().await;
    let addr = srv.addr_for(Transport::Ws);
    let olga = register_token(addr, "olga").await;
    let (_, room) = api(
        addr,
        "POST",
        "/api/rooms",
        Some(&olga),
        Some(json!({"name": "plaza"})),
    )
    .await;
    let id = room["id"].as_u64().unwrap();
    let msgs = format!("/api/rooms/{id}/messages");
    let post = |body: Value| {
        let (msgs, olga) = (msgs.clone(), olga.clone());
        async move { api(addr, "POST", &msgs, Some(&olga), Some(body)).await }
    };
    let spans = json!([
        {"start": 0, "end": 5, "kind": "bold"},
        {"start": 0, "end": 5, "kind": "color", "color": "bright_red"},
        {"start": 6, "end": 11, "kind": "link", "url": "mailto:olga@example.com"}
    ]);
    let (s, v) = post(json!({"text": "hello world", "spans": spans})).await;
    assert_eq!(s, 201, "{v}");
    let formatted = v["seq"].as_u64().unwrap();
    let (s, v) = post(json!({"sticker": "ferris"})).await;
    assert_eq!(s, 201, "{v}");
    let ferris = v["seq"].as_u64().unwrap();
    let (s, v) = api(
        addr,
        "PATCH",
        &format!("{msgs}/{ferris}"),
        Some(&olga),
        Some(json!({"text": "x"})),
    )
    .await;
    assert_api_err((s, v), 400, ErrorCode::StickerMessage);

    let bad = [
        (
            json!({"text": "hi", "spans": [{"start": 0, "end": 9, "kind": "bold"}]}),
            ErrorCode::InvalidSpans,
        ),
        (
            json!({"text": "hi", "spans": [{"start": 0, "end": 2, "kind": "blink"}]}),
            ErrorCode::InvalidSpans,
        ),
        (
            json!({"text": "hi", "spans": [{"start": 0, "end": 2, "kind": "link"}]}),
            ErrorCode::InvalidSpans,
        ),
        (
            json!({"text": "hi", "spans": [{"start": 0, "end": 2, "kind": "bold", "url": "https://x"}]}),
            ErrorCode::InvalidSpans,
        ),
        (
            json!({"text": "hi", "spans": [{"start": 0, "end": 2, "kind": "color", "color": "pink"}]}),
            ErrorCode::UnknownColor,
        ),
        (
            json!({"text": "hi", "spans": [{"start": 0, "end": 2, "kind": "link", "url": "javascript:alert(1)"}]}),
            ErrorCode::InvalidLink,
        ),
        (json!({"sticker": "no-such"}), ErrorCode::UnknownSticker),
        (
            json!({"text": "hi", "sticker": "ferris"}),
            ErrorCode::StickerMessage,
        ),
    ];
    for (body, code) in bad {
        let got = post(body.clone()).await;
        assert_eq!(got.0, 400, "{body}: {}", got.1);
        assert_eq!(
            got.1["error"]["code"],
            json!(code as u16),
            "{body}: {}",
            got.1
        );
    }

    let (s, page) = api(addr, "GET", &format!("{msgs}?limit=200"), Some(&olga), None).await;
    assert_eq!(s, 200, "{page}");
    let events = page["events"].as_array().unwrap();
    let body = |seq: u64| {
        events
            .iter()
            .find(|e| e["seq"] == json!(seq))
            .map(|e| e["body"].clone())
            .unwrap()
    };
    assert_eq!(
        body(formatted),
        json!({"kind": "message", "text": "hello world", "spans": spans})
    );
    assert_eq!(
        body(ferris),
        json!({"kind": "message", "text": ":ferris:", "sticker": "ferris"})
    );

    let (s, v) = api(addr, "GET", "/api/stickers", Some(&olga), None).await;
    assert_eq!(s, 200, "{v}");
    let ferris = v["stickers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == "ferris")
        .unwrap();
    assert_eq!(ferris["name"], "Ferris");
    assert!(ferris["art"].as_str().unwrap().contains("o o"));
    assert_api_err(
        api(addr, "GET", "/api/stickers", None, None).await,
        401,
        ErrorCode::NotAuthenticated,
    );
}
