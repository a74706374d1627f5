//! Every slash command against a real server, through the same state
//! machine and executor the UI runs, without a terminal: keys in, effects
//! executed in order by `execute`, their outcomes applied, and what the
//! other users' SDK clients see checked.

mod common;

use confab_cli::tui::app::{App, Body};
use confab_cli::tui::effect::{execute, Effect};
use confab_sdk::{Client, ConnectOptions, EventBody, Role, RoomId, Visibility};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use common::{room_event, TestServer, PASSWORD, WAIT};

/// The UI's state machine and executor over a real connection.
struct Headless {
    app: App,
    client: Client,
}

impl Headless {
    async fn new(server: &TestServer, name: &str) -> Headless {
        let client = server.user(name).await;
        let me = client.session().expect("logged in");
        let mut ui = Headless {
            app: App::new(me.user, &me.username, &server.url),
            client,
        };
        ui.run(vec![Effect::LoadRooms]).await;
        ui
    }

    /// Runs effects, and those their outcomes ask for, to the end.
    async fn run(&mut self, mut effects: Vec<Effect>) {
        while !effects.is_empty() {
            let mut next = Vec::new();
            for effect in effects {
                if effect == Effect::Quit {
                    continue;
                }
                for update in execute(&self.client, effect).await {
                    next.extend(self.app.apply(update));
                }
            }
            effects = next;
        }
    }

    /// Types `line` and Enter, then runs what that asks for.
    async fn enter(&mut self, line: &str) {
        let mut effects = Vec::new();
        for c in line.chars() {
            effects.extend(
                self.app
                    .on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)),
            );
        }
        effects.extend(
            self.app
                .on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
        );
        self.run(effects).await;
    }

    /// Presses `code`, then runs what that asks for.
    async fn press(&mut self, code: KeyCode) {
        let effects = self.app.on_key(KeyEvent::new(code, KeyModifiers::NONE));
        self.run(effects).await;
    }

    /// Feeds the client's events to the state machine until `done` holds.
    async fn until(&mut self, what: &str, done: impl Fn(&App) -> bool) {
        while !done(&self.app) {
            match self.client.next_event_timeout(WAIT).await {
                Ok(Some(event)) => {
                    let effects = self.app.on_event(event);
                    self.run(effects).await;
                }
                other => panic!(
                    "{what}: no more events ({other:?}); status {:?}",
                    self.app.status
                ),
            }
        }
    }

    fn status(&self) -> String {
        self.app.status.clone().map(|s| s.0).unwrap_or_default()
    }

    fn is_error(&self) -> bool {
        self.app.status.as_ref().is_some_and(|s| s.1)
    }

    fn panel(&self) -> String {
        self.app
            .panel
            .as_ref()
            .map(|p| format!("{}\n{}", p.title, p.lines.join("\n")))
            .unwrap_or_default()
    }

    fn current_title(&self) -> String {
        self.app
            .current_room()
            .map(|r| r.title())
            .unwrap_or_default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rooms_messages_and_profile_commands() {
    let server = TestServer::start().await;
    let bob = server.user("bob").await;
    let lobby = bob
        .create_room("lobby", "say hi", Visibility::Public)
        .await
        .expect("create");
    let mut alice = Headless::new(&server, "alice").await;

    alice.enter("/rooms").await;
    assert!(alice.panel().contains("lobby"), "{}", alice.panel());
    alice.enter("/search lob").await;
    assert!(alice.panel().contains("say hi"), "{}", alice.panel());
    alice.enter("/join lobby").await;
    assert_eq!(alice.current_title(), "#lobby");
    assert!(alice
        .app
        .current_room()
        .is_some_and(|r| r.members.len() == 2));

    // Send, edit the last message, delete it: bob sees each.
    alice.enter("first draft").await;
    let sent = room_event(&bob, |b| matches!(b, EventBody::Message { .. })).await;
    alice
        .until("her message shown", |app| {
            app.current_room()
                .is_some_and(|r| r.entries.contains_key(&sent.seq))
        })
        .await;
    alice.enter("/edit final text").await;
    let edit = room_event(&bob, |b| matches!(b, EventBody::MessageEdited { .. })).await;
    assert_eq!(
        edit.body,
        EventBody::MessageEdited {
            target: sent.seq,
            text: "final text".into(),
            spans: vec![]
        }
    );
    alice.enter(&format!("/delete #{}", sent.seq.0)).await;
    room_event(&bob, |b| matches!(b, EventBody::MessageDeleted { .. })).await;
    alice
        .until("the tombstone", |app| {
            app.current_room()
                .and_then(|r| r.entries.get(&sent.seq))
                .is_some_and(|e| e.body == Body::Tombstone)
        })
        .await;
    alice.enter("/delete #999").await;
    assert!(
        alice.is_error() && alice.status().starts_with("MESSAGE_NOT_FOUND"),
        "{}",
        alice.status()
    );

    // Stickers: listed, then sent.
    alice.enter("/sticker").await;
    assert!(alice.panel().contains("/sticker cat"), "{}", alice.panel());
    alice.enter("/sticker cat").await;
    let sticker = room_event(&bob, |b| matches!(b, EventBody::Message { .. })).await;
    assert!(
        matches!(&sticker.body, EventBody::Message { sticker: Some(id), .. } if id == "cat"),
        "{sticker:?}"
    );
    alice.enter("/sticker no-such-sticker").await;
    assert!(
        alice.status().starts_with("UNKNOWN_STICKER"),
        "{}",
        alice.status()
    );

    // A direct chat, named after the other person.
    alice.enter("/dm bob").await;
    assert_eq!(alice.current_title(), "@bob");
    alice.enter("just us").await;
    let dm = room_event(&bob, |b| matches!(b, EventBody::Message { .. })).await;
    assert_ne!(dm.room, lobby.id);

    // Away, profile, read, log.
    alice.enter("/away").await;
    assert_eq!(alice.status(), "you are away");
    alice.enter("/away off").await;
    alice.enter("/profile set name Alice A.").await;
    assert_eq!(alice.status(), "profile saved");
    alice.enter("/profile").await;
    assert!(
        alice.panel().contains("display name: Alice A."),
        "{}",
        alice.panel()
    );
    alice.enter("/profile set email not-an-email").await;
    assert!(
        alice.status().starts_with("INVALID_EMAIL"),
        "{}",
        alice.status()
    );
    alice.enter("/read").await;
    assert_eq!(alice.status(), "marked read");
    alice.enter("/log").await;
    assert!(alice.panel().contains("lobby"), "{}", alice.panel());
    alice.enter("/notifications").await;
    assert!(
        alice.panel().starts_with("Notifications"),
        "{}",
        alice.panel()
    );

    // Leave.
    alice.enter("/leave lobby").await;
    assert!(alice.app.room(lobby.id).is_none());

    // A password change: the old one stops working, the new one logs in.
    alice.enter("/password").await;
    assert!(alice.app.editor.masked);
    alice.enter(PASSWORD).await;
    alice.enter("a-new-password").await;
    assert!(
        alice.status().starts_with("password changed"),
        "{}",
        alice.status()
    );
    let again = Client::connect(&server.url, ConnectOptions::new())
        .await
        .expect("connect");
    again
        .login("alice", "a-new-password")
        .await
        .expect("the new password");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governance_commands() {
    let server = TestServer::start().await;
    let mut alice = Headless::new(&server, "alice").await;
    let mut bob = Headless::new(&server, "bob").await;
    let mut carol = Headless::new(&server, "carol").await;
    let has_status = |text: &'static str| {
        move |app: &App| app.status.as_ref().is_some_and(|s| s.0.contains(text))
    };

    // A private room; bob invited, and accepting by its name.
    alice
        .enter("/create \"war room\" --private incidents only")
        .await;
    assert_eq!(alice.current_title(), "#war room");
    let room: RoomId = alice.app.current.expect("a room");
    alice.enter("/invite bob").await;
    assert_eq!(alice.status(), "invited bob");
    bob.until("the invitation", has_status("/accept")).await;
    bob.enter("/accept \"war room\"").await;
    assert_eq!(bob.current_title(), "#war room", "{}", bob.status());

    // carol asks to join; alice lists the request and approves it.
    carol.enter(&format!("/request #{}", room.0)).await;
    assert!(
        carol.status().starts_with("join request sent"),
        "{}",
        carol.status()
    );
    alice.enter("/requests").await;
    assert!(alice.panel().contains("carol"), "{}", alice.panel());
    alice.enter("/approve carol").await;
    assert_eq!(alice.status(), "carol may join");
    carol.until("approved", has_status("you may join")).await;
    carol.enter(&format!("/join {}", room.0)).await;
    assert_eq!(carol.current_title(), "#war room", "{}", carol.status());

    // Roles: bob made admin kicks carol; alice bans, lists and unbans her.
    alice.enter("/op bob").await;
    assert_eq!(alice.status(), "bob is now admin");
    bob.enter("/kick carol").await;
    assert_eq!(bob.status(), "kicked carol");
    carol
        .until("kicked out", |app| app.room(room).is_none())
        .await;
    alice.enter("/ban carol").await;
    assert_eq!(alice.status(), "banned carol");
    alice.enter("/bans").await;
    assert!(alice.panel().contains("carol"), "{}", alice.panel());
    alice.enter("/unban carol").await;
    assert_eq!(alice.status(), "unbanned carol");
    alice.enter("/unban carol").await;
    assert!(
        alice.status().contains("carol is not banned here"),
        "{}",
        alice.status()
    );

    // bob no longer admin: a forbidden kick is refused with its code.
    alice.enter("/deop bob").await;
    assert_eq!(alice.status(), "bob is now member");
    bob.until("his role", |app| {
        app.current_room().is_some_and(|r| {
            r.members
                .iter()
                .any(|m| m.username == "bob" && m.role == Role::Member)
        })
    })
    .await;
    bob.enter("/kick alice").await;
    assert!(
        bob.is_error() && bob.status().starts_with("NOT_ADMIN"),
        "{}",
        bob.status()
    );
    bob.enter("/audit").await;
    assert!(bob.status().starts_with("NOT_ADMIN"), "{}", bob.status());

    // Rename and topic: bob sees both.
    alice.enter("/rename ops").await;
    alice.enter("/topic all hands").await;
    bob.until("the new name and topic", |app| {
        app.room(room)
            .is_some_and(|r| r.info.name == "ops" && r.info.topic == "all hands")
    })
    .await;

    // The audit trail names what happened.
    alice.enter("/audit").await;
    for action in [
        "invited",
        "request_approved",
        "member_kicked",
        "member_banned",
        "role_changed",
        "room_updated",
    ] {
        assert!(
            alice.panel().contains(action),
            "{action}: {}",
            alice.panel()
        );
    }

    // No governance in a direct chat.
    alice.enter("/dm bob").await;
    alice.enter("/kick bob").await;
    assert!(
        alice.status().starts_with("DIRECT_ROOM"),
        "{}",
        alice.status()
    );

    // /decline: an invitation turned down.
    alice.enter("/create side --private").await;
    alice.enter("/invite carol").await;
    carol
        .until("the second invitation", has_status("invited you to side"))
        .await;
    carol.enter("/decline side").await;
    assert_eq!(carol.status(), "invitation declined");

    // /logout ends the session.
    carol.enter("/logout").await;
    assert!(carol.app.quit);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_uploaded_sent_and_downloaded() {
    let server = TestServer::start().await;
    // alice's client speaks confab://, whose port serves no HTTP: the
    // client finds the API at CONFAB_HTTP_URL (no other test reads it).
    std::env::set_var("CONFAB_HTTP_URL", server.http_url());
    let dir = tempfile::tempdir().expect("temp dir");
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "buy milk\n").unwrap();
    let bob = server.user("bob").await;
    let room = bob
        .create_room("files", "", Visibility::Public)
        .await
        .expect("create")
        .id;
    let mut alice = Headless::new(&server, "alice").await;
    alice.enter(&format!("/join {}", room.0)).await;

    // /upload sends the file in a message: bob sees its name and size.
    alice.enter(&format!("/upload {}", notes.display())).await;
    assert!(!alice.is_error(), "{}", alice.status());
    let ev = room_event(&bob, |b| matches!(b, EventBody::Message { .. })).await;
    let EventBody::Message { attachments, .. } = ev.body else {
        unreachable!()
    };
    assert_eq!(
        (
            attachments.len(),
            attachments[0].name.as_str(),
            attachments[0].size
        ),
        (1, "notes.txt", 9)
    );
    let id = attachments[0].id;
    assert!(
        alice
            .status()
            .contains(&format!("sent notes.txt (9 B) as file #{id}")),
        "{}",
        alice.status()
    );

    // /download ID names the file after the loaded message's file ...
    alice
        .until("the message", |app| {
            app.current_room().is_some_and(|r| {
                r.entries
                    .values()
                    .any(|e| matches!(&e.body, Body::Message { files, .. } if !files.is_empty()))
            })
        })
        .await;
    let effects = alice
        .app
        .on_key(KeyEvent::new(KeyCode::Char('/'), KeyModifiers::NONE));
    assert!(effects.is_empty());
    let mut effects = Vec::new();
    for c in format!("download {id}").chars() {
        effects.extend(
            alice
                .app
                .on_key(KeyEvent::new(KeyCode::Char(c), KeyModifiers::NONE)),
        );
    }
    effects.extend(
        alice
            .app
            .on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::NONE)),
    );
    assert_eq!(
        effects,
        vec![Effect::Slash(
            Some(room),
            confab_cli::tui::command::Slash::Download(id, Some("notes.txt".into()))
        )]
    );
    // ... and saves the bytes where it is told.
    let copy = dir.path().join("copy.txt");
    alice
        .enter(&format!("/download {id} {}", copy.display()))
        .await;
    assert!(!alice.is_error(), "{}", alice.status());
    assert_eq!(std::fs::read_to_string(&copy).unwrap(), "buy milk\n");

    // Refusals show in the status line and leave nothing behind.
    let exe = dir.path().join("setup.exe");
    std::fs::write(&exe, "MZ not for you").unwrap();
    alice.enter(&format!("/upload {}", exe.display())).await;
    assert!(
        alice.is_error() && alice.status().contains("FILE_REFUSED"),
        "{}",
        alice.status()
    );
    let missing = dir.path().join("missing.txt");
    alice
        .enter(&format!("/download {} {}", id + 100, missing.display()))
        .await;
    assert!(
        alice.is_error() && alice.status().contains("UNKNOWN_FILE"),
        "{}",
        alice.status()
    );
    assert!(!missing.exists());
    alice.enter("/upload").await;
    assert!(
        alice.is_error() && alice.status().contains("/upload PATH"),
        "{}",
        alice.status()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn page_up_loads_older_history_from_the_server() {
    let server = TestServer::start().await;
    let bob = server.user("bob").await;
    let room = bob
        .create_room("busy", "", Visibility::Public)
        .await
        .expect("create");
    for i in 0..80 {
        bob.send_message(room.id, &format!("message {i}"))
            .await
            .expect("send");
    }
    let mut alice = Headless::new(&server, "alice").await;
    alice.enter("/join busy").await;
    let loaded = |app: &App| app.current_room().map_or(0, |r| r.entries.len());
    let first = loaded(&alice.app);
    assert!(first < 80, "one page first: {first}");
    assert!(alice.app.current_room().is_some_and(|r| r.has_more));
    for _ in 0..40 {
        alice.press(KeyCode::PageUp).await;
    }
    let view = alice.app.current_room().expect("the room");
    assert!(!view.has_more, "the start of the room reached");
    // Created, 80 messages, alice's join.
    assert_eq!(loaded(&alice.app), 82);
    assert!(view
        .entries
        .values()
        .any(|e| matches!(&e.body, Body::Message { text, .. } if text == "message 0")));
    server.stop().await;
}
