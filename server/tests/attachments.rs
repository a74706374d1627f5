//! Files in messages (SPEC.md §13.5), end to end against the real server
//! on both stores and over every door: uploaded over HTTP, attached by
//! SEND_MESSAGE through the Rust SDK, described to every member live, in
//! history, on resume and after a restart, kept through an edit, deleted
//! with their message; every refusal with its code, nothing stored, and
//! the claims of a refused message given back; the HTTP JSON API.

mod common;

use std::net::SocketAddr;

use common::http::{api, exchange, png, HttpReply};
use common::sdk::{alice_and_bob_in, event_at, resumed, room_event};
use common::{Backend, TestServer, Transport};
use confab_protocol::{
    Attachment, ErrorCode, EventBody, Request, RoomId, Seq, ServerMsg, Visibility,
};
use confab_sdk::{Client, RichText};
use serde_json::json;

fn pdf(len: usize) -> Vec<u8> {
    let mut b = b"%PDF-1.7\n".to_vec();
    b.resize(len, b'x');
    b
}

/// Uploads `bytes` as `name` to `room` with `client`'s session: the file.
async fn upload(
    http: SocketAddr,
    client: &Client,
    room: RoomId,
    name: &str,
    content_type: &str,
    bytes: &[u8],
) -> Attachment {
    let reply = upload_raw(http, client, room, name, content_type, bytes).await;
    assert_eq!(
        reply.status,
        201,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let v = reply.json();
    let side = |k: &str| v[k].as_u64().map(|n| u32::try_from(n).unwrap());
    Attachment {
        id: v["id"].as_u64().unwrap(),
        name: v["name"].as_str().unwrap().to_owned(),
        content_type: v["content_type"].as_str().unwrap().to_owned(),
        size: v["size"].as_u64().unwrap(),
        width: side("width"),
        height: side("height"),
    }
}

async fn upload_raw(
    http: SocketAddr,
    client: &Client,
    room: RoomId,
    name: &str,
    content_type: &str,
    bytes: &[u8],
) -> HttpReply {
    let bearer = format!("Bearer {}", client.token().expect("a session"));
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", content_type),
    ];
    let path = format!("/api/rooms/{}/files?name={name}", room.0);
    exchange(http, None, "POST", &path, &headers, bytes).await
}

/// `GET /api/files/{id}` with `client`'s session: the status.
async fn download_status(http: SocketAddr, client: &Client, id: u64) -> u16 {
    let bearer = format!("Bearer {}", client.token().expect("a session"));
    let path = format!("/api/files/{id}");
    let headers = [("authorization", bearer.as_str())];
    exchange(http, None, "GET", &path, &headers, b"")
        .await
        .status
}

fn with_files(text: &str, edited_at: Option<u64>, files: &[Attachment]) -> EventBody {
    EventBody::Message {
        text: text.into(),
        edited_at,
        spans: vec![],
        sticker: None,
        attachments: files.to_vec(),
    }
}

/// SEND_MESSAGE with `files` (and a sticker if given), answered raw: the
/// refusal's code, `None` when acknowledged.
async fn send_raw(
    c: &Client,
    room: RoomId,
    body: &str,
    sticker: Option<&str>,
    files: Vec<u64>,
) -> Option<ErrorCode> {
    let req = Request::SendMessage {
        room,
        body: body.into(),
        spans: vec![],
        sticker: sticker.map(str::to_owned),
        attachments: files,
    };
    match c.raw_request(req).await {
        Ok(ServerMsg::MessageAck { .. }) => None,
        Ok(other) => panic!("unexpected reply {other:?}"),
        Err(e) => e.code(),
    }
}

async fn files_travel_with_their_message_and_go_with_it(t: Transport, backend: Backend) {
    let Some(mut srv) = TestServer::start_on(backend, "files_travel", |_| {}).await else {
        return;
    };
    let http = srv.addr_for(Transport::Ws);
    let (alice, bob, room) = alice_and_bob_in(&srv.door(t), "files").await;

    // Given two uploads of alice's ...
    let photo = upload(
        http,
        &alice,
        room,
        "sunset.png",
        "image/png",
        &png(640, 480, 2_000),
    )
    .await;
    let minutes = upload(
        http,
        &alice,
        room,
        "minutes.pdf",
        "application/pdf",
        &pdf(900),
    )
    .await;
    assert_eq!((photo.width, photo.height), (Some(640), Some(480)));
    assert_eq!((minutes.width, minutes.size), (None, 900));

    // When she sends them with no text, every member sees their
    // descriptions live.
    let files = [photo.clone(), minutes.clone()];
    let sent = alice
        .send_files(room, &RichText::new(), &[photo.id, minutes.id])
        .await
        .unwrap();
    let live = room_event(&bob, |b| matches!(b, EventBody::Message { .. })).await;
    assert_eq!(
        (live.seq, live.body),
        (sent.seq, with_files("", None, &files))
    );

    // A file goes with one message only.
    assert_eq!(
        send_raw(&alice, room, "again", None, vec![photo.id]).await,
        Some(ErrorCode::AttachmentNotYours)
    );

    // An edit replaces the text and keeps the files; history and resume
    // show the edited message with them.
    let edit = alice
        .edit_message(room, sent.seq, "the sunset and the minutes")
        .await
        .unwrap();
    let edited = with_files("the sunset and the minutes", Some(edit.at), &files);
    assert_eq!(event_at(&bob, room, sent.seq).await.body, edited);
    let token = bob.token().unwrap();
    let resumed = resumed(&srv.door(t), &token, room, Seq(sent.seq.0 - 1)).await;
    let replayed = room_event(&resumed, |b| matches!(b, EventBody::Message { .. })).await;
    assert_eq!((replayed.seq, replayed.body), (sent.seq, edited.clone()));
    drop(resumed);

    // A second message with a file, sent over HTTP's JSON API, is shown
    // there with the file's description.
    let notes = upload(http, &bob, room, "notes.txt", "text/plain", b"buy milk\n").await;
    let path = format!("/api/rooms/{}/messages", room.0);
    let body = json!({"text": "notes", "attachments": [notes.id]});
    let (status, v) = api(http, "POST", &path, Some(&token), Some(body)).await;
    assert_eq!(status, 201, "{v}");
    let notes_seq = Seq(v["seq"].as_u64().unwrap());
    let hist = format!(
        "/api/rooms/{}/messages?before={}&limit=1",
        room.0,
        notes_seq.0 + 1
    );
    let (status, v) = api(http, "GET", &hist, Some(&token), None).await;
    assert_eq!(status, 200, "{v}");
    let shown = &v["events"][0]["body"]["attachments"][0];
    assert_eq!(shown["id"], notes.id);
    assert_eq!(shown["name"], "notes.txt");
    assert_eq!(shown["content_type"], "text/plain; charset=utf-8");
    assert_eq!(shown["size"], 9);
    assert!(shown.get("width").is_none(), "{shown}");

    // After a restart the store serves the files with their message.
    drop((alice, bob));
    srv.restart().await;
    let http = srv.addr_for(Transport::Ws);
    let door = srv.door(t);
    let alice = door.connect().await;
    alice.login("alice", "password123").await.unwrap();
    assert_eq!(event_at(&alice, room, sent.seq).await.body, edited);

    // Deleting the message stops its files being served at once, and
    // only its own.
    assert_eq!(download_status(http, &alice, photo.id).await, 200);
    alice.delete_message(room, sent.seq).await.unwrap();
    assert_eq!(download_status(http, &alice, photo.id).await, 410);
    assert_eq!(download_status(http, &alice, minutes.id).await, 410);
    assert_eq!(download_status(http, &alice, notes.id).await, 200);
    srv.stop().await;
}

async fn bad_attachments_get_their_codes_store_nothing_and_free_their_claims(
    t: Transport,
    backend: Backend,
) {
    let Some(srv) = TestServer::start_on(backend, "bad_attachments", |c| {
        c.rate_limit_per_sec = 0;
    })
    .await
    else {
        return;
    };
    let http = srv.addr_for(Transport::Ws);
    let (alice, bob, room) = alice_and_bob_in(&srv.door(t), "strict").await;
    let elsewhere = alice
        .create_room("elsewhere", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    let mine = upload(http, &alice, room, "a.png", "image/png", &png(2, 2, 100)).await;
    let other_room = upload(
        http,
        &alice,
        elsewhere,
        "b.png",
        "image/png",
        &png(2, 2, 101),
    )
    .await;
    let bobs = upload(http, &bob, room, "c.png", "image/png", &png(2, 2, 102)).await;
    let before = alice.history(room, None, 50).await.unwrap().events;

    let eleven: Vec<u64> = (0..11).map(|i| mine.id + 1_000 + i).collect();
    let cases: Vec<(&str, Option<&str>, Vec<u64>, ErrorCode)> = vec![
        ("eleven files", None, eleven, ErrorCode::InvalidAttachments),
        (
            "one file twice",
            None,
            vec![mine.id, mine.id],
            ErrorCode::InvalidAttachments,
        ),
        (
            "a sticker with a file",
            Some("shrug"),
            vec![mine.id],
            ErrorCode::StickerMessage,
        ),
        (
            "no such file",
            None,
            vec![mine.id + 10_000],
            ErrorCode::UnknownFile,
        ),
        (
            "someone else's",
            None,
            vec![bobs.id],
            ErrorCode::AttachmentNotYours,
        ),
        (
            "another room's",
            None,
            vec![other_room.id],
            ErrorCode::AttachmentNotYours,
        ),
        // The first claim is given back when the second is refused.
        (
            "a good file, then an unknown one",
            None,
            vec![mine.id, u64::MAX],
            ErrorCode::UnknownFile,
        ),
    ];
    for (what, sticker, files, code) in cases {
        let body = if sticker.is_some() { "" } else { "look" };
        assert_eq!(
            send_raw(&alice, room, body, sticker, files).await,
            Some(code),
            "{what}"
        );
    }
    assert_eq!(alice.history(room, None, 50).await.unwrap().events, before);

    // A message the room refuses gives its claims back too: bob, kicked,
    // cannot send his file; back in the room, he can.
    alice.kick(room, bob.session().unwrap().user).await.unwrap();
    assert_eq!(
        send_raw(&bob, room, "mine", None, vec![bobs.id]).await,
        Some(ErrorCode::NotAMember)
    );
    bob.join_room(room).await.unwrap();
    assert_eq!(
        send_raw(&bob, room, "mine", None, vec![bobs.id]).await,
        None
    );
    // And alice's file, whose claim the unknown one's refusal released,
    // can still be sent.
    assert_eq!(send_raw(&alice, room, "", None, vec![mine.id]).await, None);
    srv.stop().await;
}

over_transports!(
    files_travel_with_their_message_and_go_with_it,
    bad_attachments_get_their_codes_store_nothing_and_free_their_claims,
);
