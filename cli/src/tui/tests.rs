//! The state machine and the screen, without a terminal or a server:
//! keys and events in, state and effects out; golden buffers drawn on
//! ratatui's `TestBackend`.

use confab_sdk::{
    Attachment, Color as Palette, DirectWith, Event, EventBody, Member, Notification,
    NotificationKind, Presence, ReadState, Role, RoomEvent, RoomId, RoomInfo, Seq, Span as Format,
    Sticker, Style as Format2, UnreadSummary, UserId, Visibility,
};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::{Color, Modifier};
use ratatui::Terminal;

use super::app::{App, Conn, OutState};
use super::command::{Slash, Which};
use super::effect::{Effect, Update};
use super::render::render;

const ALICE: UserId = UserId(1);
const BOB: UserId = UserId(2);
const GENERAL: RoomId = RoomId(1);
const RANDOM: RoomId = RoomId(2);
const DIRECT: RoomId = RoomId(3);
/// 2026-11-28 09:30 UTC.
const T0: u64 = 1_795_858_200_000;

fn room(id: RoomId, name: &str, topic: &str) -> RoomInfo {
    RoomInfo {
        id,
        name: name.into(),
        topic: topic.into(),
        visibility: Visibility::Public,
        owner: ALICE,
        member_count: 2,
        last_seq: Seq(0),
        created_at: T0,
        direct_with: None,
    }
}

fn direct_with_bob() -> RoomInfo {
    RoomInfo {
        direct_with: Some(DirectWith {
            user: BOB,
            username: "bob".into(),
        }),
        ..room(DIRECT, "alice & bob", "")
    }
}

fn event(room: RoomId, seq: u64, actor: UserId, body: EventBody) -> RoomEvent {
    RoomEvent {
        room,
        seq: Seq(seq),
        at: T0 + seq * 60_000,
        actor,
        actor_name: if actor == ALICE { "alice" } else { "bob" }.into(),
        body,
    }
}

fn member(user: UserId, name: &str, role: Role, presence: Presence) -> Member {
    Member {
        user,
        username: name.into(),
        role,
        online: presence != Presence::Offline,
        joined_at: T0,
        presence: Some(presence),
    }
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn type_text(app: &mut App, text: &str) -> Vec<Effect> {
    let mut effects = Vec::new();
    for c in text.chars() {
        effects.extend(app.on_key(key(KeyCode::Char(c))));
    }
    effects
}

fn enter(app: &mut App, line: &str) -> Vec<Effect> {
    let mut effects = type_text(app, line);
    effects.extend(app.on_key(key(KeyCode::Enter)));
    effects
}

/// alice, in #general (current, loaded) and #random, with a direct chat
/// with bob.
fn alice() -> App {
    let mut app = App::new(ALICE, "alice", "confab://test");
    let effects = app.apply(Update::Rooms(
        vec![
            room(GENERAL, "general", "anything goes"),
            room(RANDOM, "random", ""),
            direct_with_bob(),
        ],
        UnreadSummary {
            total: 2,
            rooms: vec![ReadState {
                room: RANDOM,
                read_seq: Seq(0),
                unread: 2,
            }],
        },
    ));
    assert_eq!(
        effects,
        vec![Effect::LoadRoom(GENERAL)],
        "the first room opens"
    );
    app.apply(Update::Stickers(vec![Sticker {
        id: "wave".into(),
        name: "Wave".into(),
        art: "\\o/\n |".into(),
    }]));
    app.apply(Update::History(confab_sdk::HistoryPage::new(
        GENERAL,
        vec![
            event(
                GENERAL,
                4,
                BOB,
                EventBody::Message {
                    text: String::new(),
                    edited_at: None,
                    spans: vec![],
                    sticker: Some("wave".into()),
                    attachments: Vec::new(),
                },
            ),
            event(
                GENERAL,
                3,
                ALICE,
                EventBody::Message {
                    text: "deploy is green".into(),
                    edited_at: Some(T0),
                    spans: vec![
                        Format::new(0..6, Format2::Bold),
                        Format::new(10..15, Format2::Color(Palette::Green)),
                    ],
                    sticker: None,
                    attachments: Vec::new(),
                },
            ),
            event(GENERAL, 2, BOB, EventBody::Tombstone),
            event(GENERAL, 1, BOB, EventBody::MemberJoined),
        ],
        false,
    )));
    app.apply(Update::Members(
        GENERAL,
        vec![
            member(ALICE, "alice", Role::Owner, Presence::Online),
            member(BOB, "bob", Role::Member, Presence::Away),
        ],
    ));
    app
}

fn draw(app: &App, width: u16, height: u16) -> Buffer {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal.draw(|frame| render(frame, app)).expect("draws");
    terminal.backend().buffer().clone()
}

/// The buffer's text, one string per row, trailing blanks trimmed.
fn text_of(buffer: &Buffer) -> Vec<String> {
    let area = buffer.area;
    (0..area.height)
        .map(|y| {
            let row: String = (0..area.width)
                .map(|x| buffer[(x, y)].symbol().to_owned())
                .collect();
            row.trim_end().to_owned()
        })
        .collect()
}

/// The cell where `needle` starts on some row.
fn find(buffer: &Buffer, needle: &str) -> (u16, u16) {
    let rows = text_of(buffer);
    for (y, row) in rows.iter().enumerate() {
        if let Some(byte) = row.find(needle) {
            return (row[..byte].chars().count() as u16, y as u16);
        }
    }
    panic!("{needle:?} not on screen:\n{}", rows.join("\n"));
}

#[test]
fn the_main_screen() {
    let app = alice();
    let buffer = draw(&app, 90, 12);
    let expected = [
        "Rooms              │#general — anything goes                            │Members (2)",
        " #general          │#1   09:31 * bob joined                             │● ~alice",
        " #random          2│#2   09:32 bob: (message deleted)                   │◐  bob",
        "Direct             │#3   09:33 alice: deploy is green (edited)          │",
        " @bob              │#4   09:34 bob: :wave:                              │",
        "                   │      \\o/                                           │",
        "                   │       |                                            │",
        "                   │                                                    │",
        "                   │                                                    │",
        "                   │                                                    │",
        "[connected] alice [2 unread]",
        ">",
    ];
    assert_eq!(
        text_of(&buffer),
        expected,
        "\n{}",
        text_of(&buffer).join("\n")
    );
    // Formatting: bold "deploy", green "green"; the current room reversed.
    let (x, y) = find(&buffer, "deploy");
    assert!(buffer[(x, y)].modifier.contains(Modifier::BOLD));
    let (x, y) = find(&buffer, "green (edited)");
    assert_eq!(buffer[(x, y)].fg, Color::Green);
    let (x, y) = find(&buffer, "#general   ");
    assert!(buffer[(x, y)].modifier.contains(Modifier::REVERSED));
    let (x, y) = find(&buffer, "●");
    assert_eq!(buffer[(x, y)].fg, Color::Green, "online");
}

#[test]
fn a_mention_elsewhere_is_highlighted_and_counted() {
    let mut app = alice();
    let effects = app.on_event(Event::Room(event(
        RANDOM,
        7,
        BOB,
        EventBody::text("@alice look"),
    )));
    assert!(effects.is_empty(), "an unloaded room loads when opened");
    let view = app.room(RANDOM).expect("random");
    assert!(view.mentioned);
    assert_eq!(view.unread, 3);
    let buffer = draw(&app, 90, 12);
    let (x, y) = find(&buffer, "#random");
    assert_eq!(buffer[(x, y)].fg, Color::Magenta);
    assert!(
        text_of(&buffer)[2].contains("@3"),
        "{:?}",
        text_of(&buffer)[2]
    );
    assert!(text_of(&buffer)[10].contains("[3 unread]"));
}

#[test]
fn a_message_in_the_current_room_is_shown_and_marked_read() {
    let mut app = alice();
    let effects = app.on_event(Event::Room(event(
        GENERAL,
        5,
        BOB,
        EventBody::text("hi all"),
    )));
    assert_eq!(effects, vec![Effect::MarkRead(GENERAL, Seq(5))]);
    let rows = text_of(&draw(&app, 90, 12));
    assert!(rows[7].contains("#5   09:35 bob: hi all"), "{rows:?}");
    // The user's own name stands out.
    app.on_event(Event::Room(event(
        GENERAL,
        6,
        BOB,
        EventBody::text("ping @alice now"),
    )));
    let buffer = draw(&app, 90, 12);
    let (x, y) = find(&buffer, "@alice now");
    assert_eq!(buffer[(x, y)].fg, Color::Magenta);
    assert_ne!(buffer[(x + 7, y)].fg, Color::Magenta, "only the name");
}

#[test]
fn files_show_as_names_with_sizes_under_their_message() {
    let mut app = alice();
    let file = |id, name: &str, size| Attachment {
        id,
        name: name.into(),
        content_type: "application/pdf".into(),
        size,
        width: None,
        height: None,
    };
    app.on_event(Event::Room(event(
        GENERAL,
        5,
        BOB,
        EventBody::Message {
            text: String::new(),
            edited_at: None,
            spans: vec![],
            sticker: None,
            attachments: vec![file(41, "plan.pdf", 70_000), file(42, "b.pdf", 900)],
        },
    )));
    let rows = text_of(&draw(&app, 90, 14));
    // (The buffer holds 📎 in two cells: the text shows a second space.)
    let first = rows
        .iter()
        .position(|r| r.contains("#5   09:35 bob: 📎  plan.pdf (70.0 kB, #41)"));
    let first = first.unwrap_or_else(|| panic!("{rows:#?}"));
    assert!(
        rows[first + 1].contains("│      📎  b.pdf (900 B, #42)"),
        "{rows:#?}"
    );
}

#[test]
fn edits_and_deletions_change_the_message_in_place() {
    let mut app = alice();
    app.on_event(Event::Room(event(
        GENERAL,
        5,
        ALICE,
        EventBody::MessageEdited {
            target: Seq(3),
            text: "deploy is red".into(),
            spans: vec![],
        },
    )));
    app.on_event(Event::Room(event(
        GENERAL,
        6,
        ALICE,
        EventBody::MessageDeleted { target: Seq(4) },
    )));
    let rows = text_of(&draw(&app, 90, 12)).join("\n");
    assert!(rows.contains("alice: deploy is red (edited)"), "{rows}");
    assert!(rows.contains("#4   09:34 bob: (message deleted)"), "{rows}");
    assert!(!rows.contains("\\o/"), "{rows}");
}

#[test]
fn the_status_line_shows_errors_and_connection_states() {
    let mut app = alice();
    app.apply(Update::Failed(
        "NOT_ADMIN: only room admins may do this".into(),
    ));
    let buffer = draw(&app, 90, 12);
    let (x, y) = find(&buffer, "NOT_ADMIN");
    assert_eq!(buffer[(x, y)].fg, Color::Red);
    app.on_event(Event::Disconnected);
    assert_eq!(app.conn, Conn::Reconnecting);
    assert!(text_of(&draw(&app, 90, 12))[10].starts_with("[reconnecting…]"));
    app.on_event(Event::Closed {
        code: confab_sdk::ErrorCode::InvalidToken.into(),
        message: "invalid or expired session token".into(),
    });
    let status = &text_of(&draw(&app, 120, 12))[10];
    assert!(status.starts_with("[disconnected]"), "{status}");
    assert!(status.contains("INVALID_TOKEN"), "{status}");
    assert!(status.contains("run `confab login` again"), "{status}");
}

#[test]
fn a_message_typed_offline_is_queued_then_sent_on_reconnect() {
    let mut app = alice();
    app.on_event(Event::Disconnected);
    let effects = enter(&mut app, "are you there?");
    assert!(effects.is_empty(), "nothing goes out while disconnected");
    assert_eq!(app.outgoing[0].state, OutState::Queued);
    let rows = text_of(&draw(&app, 90, 12)).join("\n");
    assert!(
        rows.contains("alice: are you there? (queued: offline)"),
        "{rows}"
    );
    let effects = app.on_event(Event::Reconnected);
    assert_eq!(
        effects,
        vec![
            Effect::LoadRooms,
            Effect::Send {
                local: 1,
                room: GENERAL,
                text: "are you there?".into()
            }
        ]
    );
    app.apply(Update::SendFailed(1, "RATE_LIMITED: slow down".into()));
    let rows = text_of(&draw(&app, 120, 12)).join("\n");
    assert!(rows.contains("(failed: RATE_LIMITED: slow down)"), "{rows}");
}

#[test]
fn enter_sends_alt_enter_breaks_the_line() {
    let mut app = alice();
    type_text(&mut app, "line one");
    app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::ALT));
    let effects = enter(&mut app, "line two");
    assert_eq!(
        effects,
        vec![
            Effect::Typing(GENERAL, false),
            Effect::Send {
                local: 1,
                room: GENERAL,
                text: "line one\nline two".into()
            }
        ]
    );
    assert_eq!(app.outgoing.len(), 1, "pending until its event or ack");
    // Its own event replaces the pending line at once.
    app.on_event(Event::Room(event(
        GENERAL,
        9,
        ALICE,
        EventBody::text("line one\nline two"),
    )));
    assert!(app.outgoing.is_empty());
    app.apply(Update::Sent(
        1,
        confab_sdk::MessageAck::new(GENERAL, Seq(9), T0),
    ));
    assert!(app.outgoing.is_empty());
    // Up brings it back.
    app.on_key(key(KeyCode::Up));
    assert_eq!(app.editor.text(), "line one\nline two");
}

#[test]
fn typing_is_announced_renewed_and_stopped() {
    let mut app = alice();
    assert_eq!(app.on_tick(), vec![], "nothing typed");
    assert_eq!(
        type_text(&mut app, "hel"),
        vec![Effect::Typing(GENERAL, true)]
    );
    assert_eq!(
        app.on_tick(),
        vec![Effect::Typing(GENERAL, true)],
        "renewed"
    );
    app.on_key(key(KeyCode::Backspace));
    app.on_key(key(KeyCode::Backspace));
    assert_eq!(
        app.on_key(key(KeyCode::Backspace)),
        vec![Effect::Typing(GENERAL, false)],
        "emptied"
    );
    assert!(
        type_text(&mut app, "/kick").is_empty(),
        "a command is not a message"
    );
    assert_eq!(app.on_tick(), vec![]);
}

#[test]
fn others_typing_shows_until_they_stop_or_go_quiet() {
    let mut app = alice();
    let typing = |typing| Event::Typing {
        room: GENERAL,
        user: BOB,
        username: "bob".into(),
        typing,
    };
    app.on_event(typing(true));
    assert!(text_of(&draw(&app, 90, 12))[0].contains("bob typing…"));
    app.on_event(typing(false));
    assert!(!text_of(&draw(&app, 90, 12))[0].contains("typing"));
    app.on_event(typing(true));
    app.on_tick();
    app.on_event(typing(true));
    app.on_tick();
    assert!(
        text_of(&draw(&app, 90, 12))[0].contains("bob typing…"),
        "renewed"
    );
    app.on_tick();
    assert!(
        !text_of(&draw(&app, 90, 12))[0].contains("typing"),
        "gone quiet"
    );
}

#[test]
fn slash_commands_become_effects_or_errors() {
    let mut app = alice();
    assert_eq!(
        enter(&mut app, "/kick bob"),
        vec![Effect::Slash(Some(GENERAL), Slash::Kick("bob".into()))]
    );
    assert!(enter(&mut app, "/frobnicate").is_empty());
    assert_eq!(
        app.status,
        Some(("unknown command /frobnicate: /help lists them".into(), true))
    );
    assert!(enter(&mut app, "/ban").is_empty());
    assert_eq!(app.status, Some(("usage: /ban USER".into(), true)));
    // "/delete" names the user's own last message.
    assert_eq!(
        enter(&mut app, "/delete"),
        vec![Effect::Slash(
            Some(GENERAL),
            Slash::Delete(Which::Seq(Seq(3)))
        )]
    );
    // "//" sends a message that starts with "/".
    assert_eq!(
        enter(&mut app, "//shrug"),
        vec![Effect::Send {
            local: 1,
            room: GENERAL,
            text: "/shrug".into()
        }]
    );
    enter(&mut app, "/help");
    assert!(app.panel.is_some());
    app.on_key(key(KeyCode::Esc));
    assert!(app.panel.is_none());
    // Room commands need a room.
    let mut lonely = App::new(ALICE, "alice", "confab://test");
    assert!(enter(&mut lonely, "/kick bob").is_empty());
    assert_eq!(
        lonely.status,
        Some((
            "no room selected: /join ROOM, /create NAME or /dm USER first".into(),
            true
        ))
    );
    assert!(
        enter(&mut lonely, "hello?").is_empty(),
        "nowhere to send it"
    );
    assert_eq!(
        enter(&mut lonely, "/join general"),
        vec![Effect::Slash(None, Slash::Join("general".into()))]
    );
    assert_eq!(enter(&mut app, "/quit"), vec![Effect::Quit]);
    assert!(app.quit);
}

#[test]
fn the_password_prompt_is_masked_and_kept_out_of_history() {
    let mut app = alice();
    assert!(enter(&mut app, "/password").is_empty());
    assert!(app.editor.masked);
    type_text(&mut app, "old-secret");
    let rows = text_of(&draw(&app, 90, 12));
    assert_eq!(rows[11], "password> **********");
    app.on_key(key(KeyCode::Enter));
    let effects = enter(&mut app, "new-secret");
    assert_eq!(
        effects,
        vec![Effect::ChangePassword {
            current: "old-secret".into(),
            new: "new-secret".into()
        }]
    );
    assert!(!app.editor.masked);
    app.on_key(key(KeyCode::Up));
    assert_eq!(
        app.editor.text(),
        "/password",
        "the passwords are not in the history"
    );
}

#[test]
fn a_long_panel_scrolls_with_page_keys() {
    let mut app = alice();
    app.page = 4;
    enter(&mut app, "/help");
    let top = text_of(&draw(&app, 90, 12));
    app.on_key(key(KeyCode::PageDown));
    assert_eq!(app.panel_scroll, 4);
    let scrolled = text_of(&draw(&app, 90, 12));
    let pane = |row: &str| row.split('│').nth(1).unwrap_or("").to_owned();
    assert!(pane(&top[1]).starts_with("/accept"), "{top:?}");
    // Sorted: /accept, /approve, /audit, /away, then /ban four entries on.
    assert!(pane(&scrolled[1]).starts_with("/ban USER"), "{scrolled:?}");
    app.on_key(key(KeyCode::PageUp));
    assert_eq!(text_of(&draw(&app, 90, 12)), top);
    assert_eq!(
        app.room(GENERAL).map(|r| r.scroll),
        Some(0),
        "the room did not move"
    );
}

#[test]
fn tab_completes_members_and_commands() {
    let mut app = alice();
    type_text(&mut app, "hi @b");
    app.on_key(key(KeyCode::Tab));
    assert_eq!(app.editor.text(), "hi @bob ");
    app.on_key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL));
    type_text(&mut app, "/unb");
    app.on_key(key(KeyCode::Tab));
    assert_eq!(app.editor.text(), "/unban ");
}

#[test]
fn rooms_switch_with_alt_arrows_and_load_once() {
    let mut app = alice();
    let effects = app.on_key(KeyEvent::new(KeyCode::Down, KeyModifiers::ALT));
    assert_eq!(effects, vec![Effect::LoadRoom(RANDOM)]);
    assert_eq!(app.current, Some(RANDOM));
    assert_eq!(app.room(RANDOM).map(|r| r.unread), Some(0));
    app.on_key(KeyEvent::new(KeyCode::Down, KeyModifiers::ALT));
    assert_eq!(app.current, Some(DIRECT));
    let rows = text_of(&draw(&app, 90, 12));
    assert!(
        rows[0].contains("│@bob"),
        "a direct chat by the other's name: {rows:?}"
    );
    let effects = app.on_key(KeyEvent::new(KeyCode::Down, KeyModifiers::ALT));
    assert_eq!(app.current, Some(GENERAL));
    assert_eq!(effects, vec![Effect::MarkRead(GENERAL, Seq(4))]);
}

#[test]
fn page_up_scrolls_back_and_loads_older_history() {
    let mut app = alice();
    app.page = 3;
    let events: Vec<RoomEvent> = (10..40)
        .rev()
        .map(|s| event(GENERAL, s, BOB, EventBody::text(format!("message {s}"))))
        .collect();
    // A fresh first page with more before it.
    app.room_mut(GENERAL).expect("general").entries.clear();
    app.apply(Update::History(confab_sdk::HistoryPage::new(
        GENERAL, events, true,
    )));
    let rows = text_of(&draw(&app, 90, 12));
    assert!(rows[9].contains("message 39"), "{rows:?}");
    let mut loads = Vec::new();
    for _ in 0..9 {
        loads.extend(app.on_key(key(KeyCode::PageUp)));
    }
    assert_eq!(
        loads,
        vec![Effect::LoadOlder(GENERAL, Seq(10))],
        "asked once"
    );
    let rows = text_of(&draw(&app, 90, 12));
    assert!(
        rows[1].contains("message 10"),
        "scrolled to the top: {rows:?}"
    );
    app.on_key(key(KeyCode::PageDown));
    assert_eq!(app.room(GENERAL).map(|r| r.scroll), Some(24));
    // A message arriving while scrolled back is unread until the bottom.
    app.on_event(Event::Room(event(GENERAL, 40, BOB, EventBody::text("new"))));
    assert_eq!(app.room(GENERAL).map(|r| r.unread), Some(1));
    let mut effects = Vec::new();
    for _ in 0..8 {
        effects.extend(app.on_key(key(KeyCode::PageDown)));
    }
    assert_eq!(effects, vec![Effect::MarkRead(GENERAL, Seq(40))]);
    assert_eq!(app.room(GENERAL).map(|r| r.unread), Some(0));
}

#[test]
fn an_invitation_notification_says_how_to_answer() {
    let mut app = alice();
    app.on_event(Event::Notification(Notification {
        id: 1,
        kind: NotificationKind::Invited,
        room: RoomId(9),
        room_name: "secret".into(),
        actor: BOB,
        actor_name: "bob".into(),
        at: T0,
        read: false,
    }));
    assert_eq!(app.notifications_unread, 1);
    let status = app.status.clone().expect("a status").0;
    assert!(status.contains("/accept 9"), "{status}");
}

#[test]
fn being_kicked_drops_the_room() {
    let mut app = alice();
    let effects = app.on_event(Event::Room(event(
        GENERAL,
        5,
        BOB,
        EventBody::MemberKicked {
            target: ALICE,
            target_name: "alice".into(),
        },
    )));
    assert!(app.room(GENERAL).is_none());
    assert_eq!(app.current, Some(RANDOM));
    assert_eq!(effects, vec![Effect::LoadRoom(RANDOM)]);
    assert!(app
        .status
        .clone()
        .expect("status")
        .0
        .contains("bob kicked alice"));
}

#[test]
fn tiny_and_odd_terminal_sizes_draw_without_panicking() {
    let mut app = alice();
    type_text(&mut app, "a long line that is wider than the terminal");
    app.on_key(KeyEvent::new(KeyCode::Enter, KeyModifiers::ALT));
    type_text(&mut app, "second");
    app.apply(Update::Failed(
        "an error message longer than twenty columns".into(),
    ));
    for (w, h) in [
        (20, 5),
        (1, 1),
        (0, 0),
        (5, 2),
        (30, 3),
        (20, 1),
        (1, 20),
        (200, 60),
    ] {
        let buffer = draw(&app, w, h);
        assert_eq!(buffer.area.width, w);
    }
    let rows = text_of(&draw(&app, 20, 5));
    assert_eq!(rows.len(), 5);
    assert!(rows[0].starts_with("#general"), "{rows:?}");
}

mod random {
    use super::*;
    use proptest::prelude::*;

    fn any_key() -> impl Strategy<Value = KeyEvent> {
        let plain = prop_oneof![
            any::<char>().prop_map(KeyCode::Char),
            Just(KeyCode::Enter),
            Just(KeyCode::Backspace),
            Just(KeyCode::Delete),
            Just(KeyCode::Left),
            Just(KeyCode::Right),
            Just(KeyCode::Home),
            Just(KeyCode::End),
            Just(KeyCode::Up),
            Just(KeyCode::Down),
            Just(KeyCode::Tab),
            Just(KeyCode::PageUp),
            Just(KeyCode::PageDown),
            Just(KeyCode::Esc),
            Just(KeyCode::Char('/')),
            Just(KeyCode::Char('@')),
            Just(KeyCode::Char('é')),
        ];
        let modifiers = prop_oneof![
            4 => Just(KeyModifiers::NONE),
            1 => Just(KeyModifiers::ALT),
            1 => Just(KeyModifiers::CONTROL),
            1 => Just(KeyModifiers::SHIFT),
        ];
        (plain, modifiers).prop_map(|(code, m)| KeyEvent::new(code, m))
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever is typed, and whatever the terminal's size, the state
        /// machine and the renderer never panic, and the cursor stays on
        /// a character boundary of the input.
        #[test]
        fn any_keys_at_any_size(
            keys in proptest::collection::vec(any_key(), 0..60),
            width in 0u16..120,
            height in 0u16..40,
        ) {
            let mut app = alice();
            for key in keys {
                if key.code == KeyCode::Char('c') && key.modifiers == KeyModifiers::CONTROL {
                    continue;
                }
                let _ = app.on_key(key);
                let _ = draw(&app, width, height);
            }
            prop_assert!(app.editor.cursor_position().0 <= app.editor.shown().matches('\n').count());
        }
    }
}
