//! Password changes, profiles and the per-user abuse limits (SPEC.md
//! §5.2.4, §5.2.5, §10.1), end to end on both stores: raw frames where the
//! test must see CLOSE codes, the SDK and the HTTP JSON API elsewhere. The
//! server's clock is frozen so that only the test's steps move the
//! coalescing interval and the rate limits (no sleeps).

mod common;

use std::time::Duration;

use common::http::{api, api_from};
use common::{assert_error, start_frozen, Backend, RawClient, TestServer, Transport};
use confab_protocol::{
    ErrorCode, EventBody, PasswordChange, Profile, ProfileUpdate, Request, ServerMsg, UserId,
    Visibility,
};
use confab_sdk::{Client, Event};
use serde_json::json;

const WAIT: Duration = Duration::from_secs(5);
const PASSWORD: &str = "password123";

fn change(current: &str, new: &str) -> Request {
    Request::ChangePassword(PasswordChange {
        current: current.into(),
        new: new.into(),
    })
}

/// Logs `user` in on a new raw connection; returns it and its token.
async fn raw_login(srv: &TestServer, user: &str, password: &str) -> (RawClient, String) {
    let mut c = RawClient::connect(srv.addr).await;
    c.hello(None).await;
    c.send(
        2,
        &Request::Login {
            username: user.into(),
            password: password.into(),
        },
    )
    .await;
    match c.reply_to(2).await {
        ServerMsg::Session { token, .. } => (c, token.into_string()),
        other => panic!("login: {other:?}"),
    }
}

/// A raw connection authenticated by HELLO with `token`.
async fn raw_resume(srv: &TestServer, token: &str) -> (RawClient, ServerMsg) {
    let mut c = RawClient::connect(srv.addr).await;
    let welcome = c.hello(Some(token.to_owned())).await;
    (c, welcome)
}

async fn http_login(srv: &TestServer, user: &str, password: &str) -> (u16, String) {
    let (status, v) = api(
        srv.addr_for(Transport::Ws),
        "POST",
        "/api/login",
        None,
        Some(json!({"username": user, "password": password})),
    )
    .await;
    (status, v["token"].as_str().unwrap_or_default().to_owned())
}

async fn password_change_ends_the_other_sessions(backend: Backend) {
    // Two failed checks of alice's password are her username's budget;
    // loopback is exempt from the per-address limit but never "clean", so
    // the per-username limit holds it.
    let Some((srv, clock)) = start_frozen(backend, "password_change", |c| {
        c.login_failures_per_username = 2;
    })
    .await
    else {
        return;
    };
    let http = srv.addr_for(Transport::Ws);

    // Given alice on four sessions: A (this raw connection), B (a login,
    // and a second connection resuming B by token), C (HTTP).
    let mut a = RawClient::connect(srv.addr).await;
    a.hello(None).await;
    a.register(2, "alice").await;
    let (mut b1, token_b) = raw_login(&srv, "alice", PASSWORD).await;
    let (mut b2, welcome) = raw_resume(&srv, &token_b).await;
    assert!(matches!(welcome, ServerMsg::Welcome(_)), "{welcome:?}");
    let (status, token_c) = http_login(&srv, "alice", PASSWORD).await;
    assert_eq!(status, 200);

    // A new password of the wrong length: INVALID_PASSWORD, before any
    // check of the current one.
    a.send(3, &change(PASSWORD, "short")).await;
    assert_error(&a.reply_to(3).await, ErrorCode::InvalidPassword);
    a.send(4, &change(PASSWORD, &"x".repeat(257))).await;
    assert_error(&a.reply_to(4).await, ErrorCode::InvalidPassword);

    // The wrong current password: INVALID_CREDENTIALS, twice; that spends
    // the username's failed-login budget, so the next attempt — even with
    // the right password — and a LOGIN are refused with a retry hint.
    for id in [5, 6] {
        a.send(id, &change("wrong-password", "new-password-1"))
            .await;
        assert_error(&a.reply_to(id).await, ErrorCode::InvalidCredentials);
    }
    a.send(7, &change(PASSWORD, "new-password-1")).await;
    match a.reply_to(7).await {
        ServerMsg::Error {
            code,
            retry_after_ms,
            ..
        } => {
            assert_eq!(code, ErrorCode::TooManyAttempts as u16);
            assert!(retry_after_ms > 0);
        }
        other => panic!("expected TOO_MANY_ATTEMPTS, got {other:?}"),
    }
    let (status, _) = http_login(&srv, "alice", PASSWORD).await;
    assert_eq!(status, 429, "LOGIN is held by the same limit");

    // Nothing was stored by the refusals: every session still works.
    let (status, _) = api(http, "GET", "/api/me/rooms", Some(&token_c), None).await;
    assert_eq!(status, 200);
    b1.send(9, &Request::MyRooms).await;
    assert!(matches!(b1.reply_to(9).await, ServerMsg::RoomList { .. }));

    // When the window has passed, the change goes through from A.
    clock.advance(Duration::from_secs(301));
    a.send(10, &change(PASSWORD, "new-password-1")).await;
    assert_eq!(a.reply_to(10).await, ServerMsg::Ok);

    // Then B's connections are closed with PASSWORD_CHANGED …
    b1.expect_close(ErrorCode::PasswordChanged).await;
    b2.expect_close(ErrorCode::PasswordChanged).await;
    // … B's and C's tokens no longer work, by HELLO or HTTP …
    let (mut again, refused) = raw_resume(&srv, &token_b).await;
    assert_error(&refused, ErrorCode::InvalidToken);
    again.expect_close(ErrorCode::InvalidToken).await;
    let (status, v) = api(http, "GET", "/api/me/rooms", Some(&token_c), None).await;
    assert_eq!(status, 401, "{v}");
    // … A goes on …
    a.send(11, &Request::MyRooms).await;
    assert!(matches!(a.reply_to(11).await, ServerMsg::RoomList { .. }));
    // … and only the new password logs in.
    assert_eq!(http_login(&srv, "alice", PASSWORD).await.0, 401);
    let (status, token_d) = http_login(&srv, "alice", "new-password-1").await;
    assert_eq!(status, 200);

    // Over HTTP (in a new failed-login window: the failures above count):
    // the same rules, and the caller's own token survives.
    let path = "/api/me/password";
    let body = |cur: &str, new: &str| Some(json!({"current_password": cur, "new_password": new}));
    let (status, v) = api(
        http,
        "POST",
        path,
        Some(&token_d),
        body("new-password-1", "short"),
    )
    .await;
    assert_eq!((status, v["error"]["code"].as_u64()), (400, Some(205)));
    let (status, v) = api(
        http,
        "POST",
        path,
        Some(&token_d),
        body("nope-nope", "new-password-2"),
    )
    .await;
    assert_eq!((status, v["error"]["code"].as_u64()), (401, Some(202)));
    clock.advance(Duration::from_secs(301));
    let (status, v) = api(
        http,
        "POST",
        path,
        Some(&token_d),
        body("new-password-1", "new-password-2"),
    )
    .await;
    assert_eq!(status, 204, "{v}");
    a.expect_close(ErrorCode::PasswordChanged).await;
    let (status, _) = api(http, "GET", "/api/me/rooms", Some(&token_d), None).await;
    assert_eq!(status, 200, "the changing session stays");
    srv.stop().await;
}

#[tokio::test]
async fn password_change_sqlite() {
    password_change_ends_the_other_sessions(Backend::Sqlite).await
}

#[tokio::test]
async fn password_change_postgres() {
    password_change_ends_the_other_sessions(Backend::Postgres).await
}

/// Every PROFILE_CHANGED about `about` that `c` receives until the room
/// message `marker` arrives.
async fn profiles_until(c: &Client, about: UserId, marker: &str) -> Vec<Profile> {
    let mut seen = Vec::new();
    loop {
        match c.next_event_timeout(WAIT).await.ok().flatten() {
            Some(Event::ProfileChanged { profile, .. }) if profile.user == about => {
                seen.push(profile)
            }
            Some(Event::Room(ev)) if matches!(&ev.body, EventBody::Message { text, .. } if text == marker) => {
                return seen
            }
            Some(_) => continue,
            None => panic!("message {marker:?} did not arrive within {WAIT:?}"),
        }
    }
}

/// The next PROFILE_CHANGED about `about` that `c` receives (sent on the
/// shards' next coalescing tick).
async fn next_profile(c: &Client, about: UserId) -> Profile {
    loop {
        match c.next_event_timeout(WAIT).await.ok().flatten() {
            Some(Event::ProfileChanged { profile, .. }) if profile.user == about => return profile,
            Some(_) => continue,
            None => panic!("no PROFILE_CHANGED about {about:?} within {WAIT:?}"),
        }
    }
}

fn named(display_name: &str, bio: &str) -> ProfileUpdate {
    ProfileUpdate {
        display_name: Some(display_name.into()),
        bio: bio.into(),
        email: None,
    }
}

fn code_of(e: confab_sdk::Error) -> Option<ErrorCode> {
    e.code()
}

async fn profiles_rules_coalescing_and_limit(backend: Backend) {
    // Four profile changes at once, then one a minute.
    let Some((srv, clock)) = start_frozen(backend, "profiles", |c| {
        c.profile_changes_per_hour = 60;
        c.profile_changes_burst = 4;
    })
    .await
    else {
        return;
    };
    let step = || clock.advance(Duration::from_millis(1_100));
    let door = srv.door(Transport::Tcp);
    let alice = door.connect().await;
    let alice_id = alice.register("alice", PASSWORD).await.unwrap().user;
    let bob = door.connect().await;
    let bob_id = bob.register("bob", PASSWORD).await.unwrap().user;
    let room = alice
        .create_room("den", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    bob.join_room(room).await.unwrap();
    let blank = Profile {
        user: alice_id,
        username: "alice".into(),
        ..Profile::default()
    };

    // Each bad value is refused with its code, and nothing is stored.
    let bad = [
        (named(&"x".repeat(65), ""), ErrorCode::InvalidDisplayName),
        (named("   ", ""), ErrorCode::InvalidDisplayName),
        (named("a\u{1b}[2J", ""), ErrorCode::InvalidDisplayName),
        (named("Alice", &"y".repeat(501)), ErrorCode::InvalidBio),
        (named("Alice", "tab\there"), ErrorCode::InvalidBio),
        (
            ProfileUpdate {
                email: Some("alice@localhost".into()),
                ..named("Alice", "")
            },
            ErrorCode::InvalidEmail,
        ),
        (
            ProfileUpdate {
                email: Some("not an address".into()),
                ..ProfileUpdate::default()
            },
            ErrorCode::InvalidEmail,
        ),
    ];
    for (update, code) in bad {
        let e = alice.update_profile(update.clone()).await.unwrap_err();
        assert_eq!(code_of(e), Some(code), "{update:?}");
    }
    assert_eq!(alice.profile(alice_id).await.unwrap(), blank);
    assert_eq!(
        code_of(alice.profile(UserId(999_999)).await.unwrap_err()),
        Some(ErrorCode::NoSuchUser)
    );

    // A valid update: the caller sees the email, bob never does, and bob
    // is told at once (her first change).
    let mine = alice
        .update_profile(ProfileUpdate {
            email: Some(" alice@example.org ".into()),
            ..named("  Alice Ö. ", "line one\nline two")
        })
        .await
        .unwrap();
    let public = Profile {
        display_name: Some("Alice Ö.".into()),
        bio: "line one\nline two".into(),
        ..blank.clone()
    };
    assert_eq!(
        mine,
        Profile {
            email: Some("alice@example.org".into()),
            ..public.clone()
        }
    );
    assert_eq!(alice.profile(alice_id).await.unwrap(), mine);
    assert_eq!(bob.profile(alice_id).await.unwrap(), public);
    assert_eq!(next_profile(&bob, alice_id).await, public);

    // Coalescing: two more changes within the second are held back (no
    // PROFILE_CHANGED before the message sent after them, however many
    // ticks pass while it travels), and one PROFILE_CHANGED with the
    // latest goes out when the second is over — the first bob sees.
    alice.update_profile(named("Al", "")).await.unwrap();
    alice.update_profile(named("Ally", "")).await.unwrap();
    alice.send_message(room, "m2").await.unwrap();
    assert_eq!(profiles_until(&bob, alice_id, "m2").await, vec![]);
    step();
    let latest = Profile {
        display_name: Some("Ally".into()),
        ..blank.clone()
    };
    assert_eq!(next_profile(&bob, alice_id).await, latest);

    // The limit: four changes spent, the fifth is refused with a retry
    // hint of about a minute, and nothing of it is stored or pushed.
    alice.update_profile(named("Ally", "bio")).await.unwrap();
    let e = alice.update_profile(named("Spam", "")).await.unwrap_err();
    assert_eq!(e.code(), Some(ErrorCode::ProfileRateLimited));
    let wait = e.retry_after().expect("a retry hint");
    assert!(
        (Duration::from_secs(1)..=Duration::from_secs(60)).contains(&wait),
        "{wait:?}"
    );
    assert_ne!(
        alice
            .profile(alice_id)
            .await
            .unwrap()
            .display_name
            .as_deref(),
        Some("Spam")
    );
    clock.advance(Duration::from_secs(60));
    alice.update_profile(named("Allie", "")).await.unwrap();

    // Over HTTP: the same rules and codes, and the same budget.
    let http = srv.addr_for(Transport::Ws);
    let (_, token) = http_login(&srv, "bob", PASSWORD).await;
    let put = |body| api(http, "PUT", "/api/me/profile", Some(&token), Some(body));
    let (status, v) = put(json!({"display_name": "x".repeat(65)})).await;
    assert_eq!((status, v["error"]["code"].as_u64()), (400, Some(208)));
    let (status, v) = put(json!({"bio": "\u{7}"})).await;
    assert_eq!((status, v["error"]["code"].as_u64()), (400, Some(209)));
    let (status, v) = put(json!({"email": "bob@"})).await;
    assert_eq!((status, v["error"]["code"].as_u64()), (400, Some(210)));
    let (status, v) = put(json!({"display_name": "Bob", "email": "bob@example.org"})).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["email"], "bob@example.org");
    let path = format!("/api/users/{}/profile", bob_id.0);
    let (status, v) = api(http, "GET", &path, Some(&token), None).await;
    assert_eq!((status, v["display_name"].as_str()), (200, Some("Bob")));
    let path = format!("/api/users/{}/profile", alice_id.0);
    let (status, v) = api(http, "GET", &path, Some(&token), None).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        (v["email"].clone(), v["avatar"].clone()),
        (json!(null), json!(null))
    );
    let (status, _) = api(http, "GET", "/api/users/999999/profile", Some(&token), None).await;
    assert_eq!(status, 404);
    // Bob's budget: 1 spent over HTTP; 3 more, then 429 with Retry-After.
    for _ in 0..3 {
        assert_eq!(put(json!({"display_name": "Bob"})).await.0, 200);
    }
    let r = api_from(
        http,
        None,
        "PUT",
        "/api/me/profile",
        Some(&token),
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 429);
    assert_eq!(r.json()["error"]["code"], 211);
    assert!(r.header("retry-after").is_some(), "{}", r.head);
    srv.stop().await;
}

#[tokio::test]
async fn profiles_sqlite() {
    profiles_rules_coalescing_and_limit(Backend::Sqlite).await
}

#[tokio::test]
async fn profiles_postgres() {
    profiles_rules_coalescing_and_limit(Backend::Postgres).await
}

/// One message budget per user, shared by every connection and HTTP.
async fn one_message_budget_per_user(backend: Backend) {
    let Some((srv, clock)) = start_frozen(backend, "message_budget", |c| {
        c.rate_limit_per_sec = 1;
        c.rate_limit_burst = 4;
    })
    .await
    else {
        return;
    };
    let door = srv.door(Transport::Tcp);
    let one = door.connect().await;
    one.register("alice", PASSWORD).await.unwrap();
    let two = srv.door(Transport::Ws).connect().await;
    two.login("alice", PASSWORD).await.unwrap();
    let room = one
        .create_room("r", "", Visibility::Public)
        .await
        .unwrap()
        .id;
    let http = srv.addr_for(Transport::Ws);
    let (_, token) = http_login(&srv, "alice", PASSWORD).await;
    let messages = format!("/api/rooms/{}/messages", room.0);
    let post = |text: &str| {
        api_from(
            http,
            None,
            "POST",
            &messages,
            Some(&token),
            Some(json!({"text": text})),
        )
    };

    // Four messages from three doors spend the burst …
    let first = one.send_message(room, "1").await.unwrap();
    two.send_message(room, "2").await.unwrap();
    assert_eq!(post("3").await.status, 201);
    one.edit_message(room, first.seq, "1'").await.unwrap();

    // … and each door is refused now, with a retry hint.
    for e in [
        one.send_message(room, "5").await.unwrap_err(),
        two.send_message(room, "5").await.unwrap_err(),
    ] {
        assert_eq!(e.code(), Some(ErrorCode::RateLimited));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(1)));
    }
    let r = post("5").await;
    assert_eq!(
        (r.status, r.json()["error"]["code"].as_u64()),
        (429, Some(402))
    );
    assert_eq!(r.header("retry-after"), Some("1"));

    // A second later, one more message from any door, then none.
    clock.advance(Duration::from_secs(1));
    two.send_message(room, "6").await.unwrap();
    assert_eq!(
        one.send_message(room, "7").await.unwrap_err().code(),
        Some(ErrorCode::RateLimited)
    );
    // Another user's budget is their own.
    let bob = door.connect().await;
    bob.register("bob", PASSWORD).await.unwrap();
    bob.join_room(room).await.unwrap();
    bob.send_message(room, "bob's").await.unwrap();
    srv.stop().await;
}

#[tokio::test]
async fn message_budget_sqlite() {
    one_message_budget_per_user(Backend::Sqlite).await
}

#[tokio::test]
async fn message_budget_postgres() {
    one_message_budget_per_user(Backend::Postgres).await
}
