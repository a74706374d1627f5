//! Editing and deleting messages (SPEC.md §5.4.5), end to end: the real
//! server, driven through the Rust SDK over every door and on both stores,
//! and through the HTTP JSON API.

mod common;

use common::http::{api, assert_api_err, create_room, register_token};
use common::sdk::{alice_and_bob_in, event_at, room_event, user};
use common::{Backend, TestServer, Transport};
use confab_protocol::{AuditItem, ErrorCode, EventBody, RoomId, Seq, Visibility};
use confab_sdk::Client;
use serde_json::{json, Value};

fn code(e: confab_sdk::Error) -> Option<ErrorCode> {
    e.code()
}

async fn edits_and_deletes_are_events_kept_in_history_and_across_a_restart(
    t: Transport,
    backend: Backend,
) {
    let Some(mut srv) = TestServer::start_on(backend, "edits_and_deletes_are_kept", |_| {}).await
    else {
        return;
    };
    let (alice, bob, room) = alice_and_bob_in(&srv.door(t), "edits").await;
    let typo = bob.send_message(room, "helo").await.unwrap();
    let spam = bob.send_message(room, "buy now").await.unwrap();

    // The sender edits: every member sees MESSAGE_EDITED with the text.
    let edit = bob.edit_message(room, typo.seq, "hello").await.unwrap();
    assert_eq!(
        edit.seq,
        Seq(spam.seq.0 + 1),
        "an edit has a seq of its own"
    );
    let seen = room_event(&alice, |b| matches!(b, EventBody::MessageEdited { .. })).await;
    assert_eq!((seen.seq, seen.actor_name.as_str()), (edit.seq, "bob"));
    assert_eq!(
        seen.body,
        EventBody::MessageEdited {
            target: typo.seq,
            text: "hello".into(),
            spans: vec![],
        }
    );
    // The owner deletes bob's message: an event, and the audit trail.
    let del = alice.delete_message(room, spam.seq).await.unwrap();
    let seen = room_event(&bob, |b| matches!(b, EventBody::MessageDeleted { .. })).await;
    assert_eq!(seen.seq, del.seq);
    assert_eq!(seen.body, EventBody::MessageDeleted { target: spam.seq });

    let check = |c: Client| async move {
        let m = event_at(&c, room, typo.seq).await;
        assert_eq!((m.actor_name.as_str(), m.at), ("bob", typo.at));
        assert_eq!(
            m.body,
            EventBody::Message {
                text: "hello".into(),
                edited_at: Some(edit.at),
                spans: vec![],
                sticker: None,
                attachments: Vec::new(),
            }
        );
        let gone = event_at(&c, room, spam.seq).await;
        assert_eq!((gone.actor_name.as_str(), gone.at), ("bob", spam.at));
        assert_eq!(gone.body, EventBody::Tombstone, "no body left");
        assert_eq!(
            event_at(&c, room, edit.seq).await.body,
            EventBody::MessageEdited {
                target: typo.seq,
                text: String::new(),
                spans: vec![],
            },
            "history keeps the edit without its text"
        );
        let audit: Vec<AuditItem> = c.room_audit(room, None, 10).await.unwrap().items;
        assert_eq!(audit[0].action, "message_deleted");
        assert_eq!(
            (audit[0].actor_name.as_str(), audit[0].target_name.as_str()),
            ("alice", "bob")
        );
        c
    };
    let alice = check(alice).await;
    let token = bob.token().unwrap();
    drop((alice, bob));
    srv.restart().await;

    let door = srv.door(t);
    let alice = door.connect().await;
    alice.login("alice", "password123").await.unwrap();
    let alice = check(alice).await;
    // After the restart the room rules on the stored copy.
    let bob = door.connect_with(|o| o.with_token(token)).await.unwrap();
    let again = bob
        .edit_message(room, typo.seq, "hello again")
        .await
        .unwrap();
    assert_eq!(
        event_at(&alice, room, typo.seq).await.body,
        EventBody::Message {
            text: "hello again".into(),
            edited_at: Some(again.at),
            spans: vec![],
            sticker: None,
            attachments: Vec::new(),
        }
    );
    let refused = bob.edit_message(room, spam.seq, "back").await.unwrap_err();
    assert_eq!(code(refused), Some(ErrorCode::MessageDeleted));
    srv.stop().await;
}

async fn refused_changes_get_their_code_and_change_nothing(t: Transport, backend: Backend) {
    let Some(srv) = TestServer::start_on(backend, "refused_changes", |c| {
        c.max_message_len = 16;
    })
    .await
    else {
        return;
    };
    let door = srv.door(t);
    let alice = user(&door, "alice").await;
    let bob = user(&door, "bob").await;
    let carol = user(&door, "carol").await;
    let room = alice
        .create_room("rules", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    bob.join_room(room).await.unwrap();
    let mine = alice.send_message(room, "owner's").await.unwrap();
    let his = bob.send_message(room, "bob's").await.unwrap();
    let before = bob.history(room, None, 50).await.unwrap().events;

    let refusals = [
        (
            carol.edit_message(room, his.seq, "x").await,
            ErrorCode::NotAMember,
        ),
        (
            carol.delete_message(room, his.seq).await,
            ErrorCode::NotAMember,
        ),
        (
            alice.edit_message(room, his.seq, "x").await,
            ErrorCode::NotYourMessage,
        ),
        (
            bob.delete_message(room, mine.seq).await,
            ErrorCode::NotYourMessage,
        ),
        (
            bob.edit_message(room, his.seq, " \u{200b} ").await,
            ErrorCode::MessageEmpty,
        ),
        (
            bob.edit_message(room, his.seq, &"x".repeat(17)).await,
            ErrorCode::MessageTooLong,
        ),
        (
            bob.edit_message(room, Seq(1), "x").await,
            ErrorCode::MessageNotFound,
        ),
        (
            bob.delete_message(room, Seq(0)).await,
            ErrorCode::MessageNotFound,
        ),
        (
            bob.delete_message(room, Seq(his.seq.0 + 9)).await,
            ErrorCode::MessageNotFound,
        ),
        (
            bob.delete_message(RoomId(999_999), his.seq).await,
            ErrorCode::RoomNotFound,
        ),
    ];
    for (i, (got, want)) in refusals.into_iter().enumerate() {
        assert_eq!(got.err().and_then(code), Some(want), "refusal {i}");
    }
    assert_eq!(bob.history(room, None, 50).await.unwrap().events, before);
    // Deleted once, then never again.
    bob.delete_message(room, his.seq).await.unwrap();
    let twice = alice.delete_message(room, his.seq).await.unwrap_err();
    assert_eq!(code(twice), Some(ErrorCode::MessageDeleted));
    srv.stop().await;
}

over_transports!(
    edits_and_deletes_are_events_kept_in_history_and_across_a_restart,
    refused_changes_get_their_code_and_change_nothing,
);

// --- the HTTP JSON API ------------------------------------------------------------

on_both_stores!(edit_and_delete_over_http);

async fn edit_and_delete_over_http(backend: Backend) {
    let Some(srv) = TestServer::start_on(backend, "edit_and_delete_over_http", |_| {}).await else {
        return;
    };
    let addr = srv.addr_for(Transport::Ws);
    let olga = register_token(addr, "olga").await;
    let max = register_token(addr, "max").await;
    let id = create_room(addr, &olga, "plaza").await;
    let r = |p: &str| format!("/api/rooms/{id}{p}");
    assert_eq!(
        api(addr, "POST", &r("/join"), Some(&max), None).await.0,
        200
    );
    let post = |text: &'static str| {
        let path = r("/messages");
        let max = max.clone();
        async move {
            let (s, v) = api(addr, "POST", &path, Some(&max), Some(json!({"text": text}))).await;
            assert_eq!(s, 201, "{v}");
            v["seq"].as_u64().unwrap()
        }
    };
    let first = post("helo").await;
    let second = post("spam").await;
    let msg = |seq: u64| r(&format!("/messages/{seq}"));

    let (s, v) = api(
        addr,
        "PATCH",
        &msg(first),
        Some(&max),
        Some(json!({"text": "hello"})),
    )
    .await;
    assert_eq!(s, 200, "{v}");
    assert_eq!(v["seq"], json!(second + 1));
    assert_api_err(
        api(
            addr,
            "PATCH",
            &msg(first),
            Some(&olga),
            Some(json!({"text": "x"})),
        )
        .await,
        403,
        ErrorCode::NotYourMessage,
    );
    assert_api_err(
        api(
            addr,
            "PATCH",
            &msg(first),
            Some(&max),
            Some(json!({"text": ""})),
        )
        .await,
        400,
        ErrorCode::MessageEmpty,
    );
    assert_api_err(
        api(addr, "DELETE", &msg(1), Some(&max), None).await,
        404,
        ErrorCode::MessageNotFound,
    );
    let (s, v) = api(addr, "DELETE", &msg(second), Some(&olga), None).await;
    assert_eq!(s, 200, "{v}");
    assert_api_err(
        api(addr, "DELETE", &msg(second), Some(&max), None).await,
        410,
        ErrorCode::MessageDeleted,
    );

    let (_, page) = api(addr, "GET", &r("/messages?limit=200"), Some(&max), None).await;
    let by_seq = |seq: u64| -> Value {
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["seq"] == json!(seq))
            .map(|e| e["body"].clone())
            .unwrap()
    };
    let edited = by_seq(first);
    assert_eq!(edited["kind"], "message");
    assert_eq!(edited["text"], "hello");
    assert!(edited["edited_at"].as_u64().is_some(), "{edited}");
    assert_eq!(by_seq(second), json!({"kind": "tombstone"}));
    assert_eq!(
        by_seq(second + 1),
        json!({"kind": "message_edited", "target_seq": first, "text": ""})
    );
    assert_eq!(
        by_seq(second + 2),
        json!({"kind": "message_deleted", "target_seq": second})
    );
    srv.stop().await;
}
