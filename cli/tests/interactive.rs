//! The full-screen UI end to end: `confab` in a pseudo-terminal against a
//! real server, typed at like a person, read off its screen; another user
//! on the SDK at the other end.

mod common;
mod pty;

use std::process::Command;

use confab_sdk::{Event, EventBody, NotificationKind, Span, Style, Visibility};

use common::{room_event, Home, TestServer, PASSWORD, WAIT};
use pty::Pty;

fn confab_in_pty(home: &Home, rows: u16, cols: u16) -> Pty {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_confab"));
    cmd.env_remove("CONFAB_URL")
        .env("XDG_CONFIG_HOME", home.config())
        .env("HOME", home.config())
        .env("TERM", "xterm-256color")
        .arg("--url")
        .arg(&home.url);
    Pty::spawn(cmd, rows, cols)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_in_join_chat_moderate_and_survive_a_tiny_terminal() {
    let server = TestServer::start().await;
    let bob = server.user("bob").await;
    let general = bob
        .create_room("general", "all welcome", Visibility::Public)
        .await
        .expect("create");
    let alice = server.user("alice").await;
    alice.close().await;
    let home = Home::new(&server.url);

    // Logging in: asked on the terminal, the password not echoed.
    let mut ui = confab_in_pty(&home, 24, 100);
    ui.wait_for("username:", WAIT);
    ui.send("alice\r");
    ui.wait_for("password:", WAIT);
    ui.send(&format!("{PASSWORD}\r"));
    ui.wait_for("[connected] alice", WAIT);
    assert!(
        !ui.contents().contains(PASSWORD),
        "the password never shows"
    );
    assert!(home.session_file().exists(), "the session is stored");
    ui.wait_for("No room selected.", WAIT);

    // Joining by name.
    ui.send("/join general\r");
    ui.wait_for("#general — all welcome", WAIT);
    ui.wait_for("~bob", WAIT);

    // Sending: bob receives it.
    ui.send("hello from the terminal\r");
    let ev = room_event(&bob, |b| matches!(b, EventBody::Message { .. })).await;
    assert_eq!(ev.actor_name, "alice");
    assert_eq!(ev.body, EventBody::text("hello from the terminal"));

    // Marks become formatting.
    ui.send("ship it **today**\r");
    let ev = room_event(&bob, |b| matches!(b, EventBody::Message { .. })).await;
    match ev.body {
        EventBody::Message { text, spans, .. } => {
            assert_eq!(text, "ship it today");
            assert_eq!(spans, vec![Span::new(8..13, Style::Bold)]);
        }
        other => panic!("{other:?}"),
    }

    // Receiving bob's message.
    bob.send_message(general.id, "hi alice, welcome")
        .await
        .expect("bob sends");
    ui.wait_for("bob: hi alice, welcome", WAIT);

    // A forbidden governance command: its error in the status line.
    ui.send("/kick bob\r");
    ui.wait_for("NOT_ADMIN", WAIT);

    // Bad input: an unknown command, a missing argument.
    ui.send("/frobnicate\r");
    ui.wait_for("unknown command /frobnicate", WAIT);
    ui.send("/ban\r");
    ui.wait_for("usage: /ban USER", WAIT);

    // A governance command of her own room: bob is told.
    ui.send("/create ops --private the on-call room\r");
    ui.wait_for("#ops — the on-call room", WAIT);
    ui.send("/invite bob\r");
    ui.wait_for("invited bob", WAIT);
    loop {
        match bob.next_event_timeout(WAIT).await {
            Ok(Some(Event::Notification(n))) if n.kind == NotificationKind::Invited => {
                assert_eq!(n.room_name, "ops");
                assert_eq!(n.actor_name, "alice");
                break;
            }
            Ok(Some(_)) => continue,
            other => panic!("no invitation for bob: {other:?}"),
        }
    }

    // A terminal shrunk to 20×5 still draws, and grows back.
    ui.resize(5, 20);
    ui.wait_until(WAIT, "a 20x5 screen", |screen| {
        let rows: Vec<&str> = screen.lines().collect();
        rows.len() == 5 && rows[0].starts_with("#ops") && rows[3].starts_with("[connected]")
    });
    assert!(ui.running(), "no panic on a tiny terminal");
    ui.resize(24, 100);
    ui.wait_until(WAIT, "the screen grown back", |screen| {
        screen
            .lines()
            .nth(22)
            .is_some_and(|row| row.starts_with("[connected] alice"))
    });

    // Ctrl-C quits cleanly.
    ui.send("\u{3}");
    let status = ui.wait_exit(WAIT);
    assert!(status.success(), "{status:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_session_asks_to_log_in_again() {
    let server = TestServer::start().await;
    server.user("alice").await;
    let home = Home::new(&server.url);
    home.login("alice").await;
    // The stored token stops working (as when it expires).
    home.replace_token(&"ff".repeat(32));

    let mut ui = confab_in_pty(&home, 24, 100);
    ui.wait_for("expired or was revoked", WAIT);
    ui.wait_for("username:", WAIT);
    ui.send("alice\r");
    ui.wait_for("password:", WAIT);
    ui.send(&format!("{PASSWORD}\r"));
    ui.wait_for("[connected] alice", WAIT);
    ui.send("/quit\r");
    assert!(ui.wait_exit(WAIT).success());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_typed_during_an_outage_is_sent_after_reconnecting() {
    let mut server = TestServer::start().await;
    let bob = server.user("bob").await;
    let general = bob
        .create_room("general", "", Visibility::Public)
        .await
        .expect("create");
    server.user("alice").await;
    let home = Home::new(&server.url);
    home.login("alice").await;
    let mut ui = confab_in_pty(&home, 24, 100);
    ui.wait_for("[connected] alice", WAIT);
    ui.send("/join general\r");
    ui.wait_for("#general", WAIT);
    ui.wait_for("* alice joined", WAIT);

    // The server goes away: the UI says it is reconnecting, and queues
    // what is typed meanwhile.
    server.shut_down().await;
    ui.wait_for("[reconnecting…]", WAIT);
    ui.send("typed while offline\r");
    ui.wait_for("alice: typed while offline (queued: offline)", WAIT);

    // It comes back: the UI reconnects and sends the message.
    server.start_again().await;
    ui.wait_until(WAIT, "the message stored", |screen| {
        screen.contains("[connected] alice")
            && screen
                .lines()
                .any(|l| l.contains("alice: typed while offline") && !l.contains(" ("))
    });
    let reader = server.user("carol").await;
    reader.join_room(general.id).await.expect("join");
    let page = reader.history(general.id, None, 10).await.expect("history");
    assert!(
        page.events
            .iter()
            .any(|e| e.body == EventBody::text("typed while offline")),
        "stored once the server was back: {:?}",
        page.events
    );
    ui.send("\u{3}");
    assert!(ui.wait_exit(WAIT).success());
    drop(bob);
    server.stop().await;
}
