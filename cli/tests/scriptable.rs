//! The scriptable commands end to end: `confab` as a child process
//! against a real server, checked by what it prints and how it exits, and
//! by what another (SDK) client sees.

mod common;

use std::os::unix::fs::PermissionsExt;

use confab_sdk::{EventBody, Visibility};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};

use common::{room_event, text, Home, TestServer, WAIT};

async fn next(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> Value {
    let line = tokio::time::timeout(WAIT, lines.next_line())
        .await
        .expect("a line in time")
        .expect("read")
        .expect("tail still running");
    serde_json::from_str(&line).expect("JSON")
}

fn json_lines(stdout: &[u8]) -> Vec<Value> {
    text(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_history_and_rooms_as_lines_and_json() {
    let server = TestServer::start().await;
    // Given alice's account, a room she is in with bob, and her login
    // stored by `confab login`.
    let (_alice, bob, general) = server.alice_and_bob_in("general").await;
    let home = Home::new(&server.url);
    home.login("alice").await;
    let mode = std::fs::metadata(home.session_file())
        .expect("session stored")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "only its owner reads the token");

    // When she sends from the shell (by name, then by id)…
    let out = home
        .run(&["send", "general", "hello", "from", "the", "shell"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // …bob receives it.
    let ev = room_event(&bob, |b| matches!(b, EventBody::Message { .. })).await;
    assert_eq!(ev.actor_name, "alice");
    assert_eq!(
        ev.body,
        EventBody::text("hello from the shell"),
        "the words are joined with spaces"
    );
    let out = home
        .run(&["send", &format!("#{}", general.id.0), "second", "--json"])
        .await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let ack = &json_lines(&out.stdout)[0];
    assert_eq!(ack["room"], general.id.0);
    assert!(ack["seq"].as_u64().is_some(), "{ack}");

    bob.send_message(general.id, "hi alice")
        .await
        .expect("bob sends");

    // History: oldest first, as lines and as JSON.
    let out = home.run(&["history", "general", "--limit", "3"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let lines = text(&out.stdout);
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(
        lines[0].ends_with("alice: hello from the shell"),
        "{lines:?}"
    );
    assert!(lines[1].ends_with("alice: second"), "{lines:?}");
    assert!(lines[2].ends_with("bob: hi alice"), "{lines:?}");
    let out = home.run(&["history", "general", "-n", "2", "--json"]).await;
    let events = json_lines(&out.stdout);
    assert_eq!(events.len(), 2);
    assert_eq!(events[1]["kind"], "message");
    assert_eq!(events[1]["user"], "bob");
    assert_eq!(events[1]["text"], "hi alice");
    assert!(events[0]["seq"].as_u64() < events[1]["seq"].as_u64());

    // Rooms, with bob's message unread.
    let out = home.run(&["rooms", "--json"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rooms = json_lines(&out.stdout);
    assert_eq!(rooms.len(), 1);
    assert_eq!(rooms[0]["name"], "general");
    assert_eq!(rooms[0]["unread"], 1);
    assert_eq!(rooms[0]["members"], 2);
    let out = home.run(&["rooms"]).await;
    assert!(
        text(&out.stdout).starts_with(&format!(
            "#{}\tgeneral\tpublic\t2 members\t1 unread",
            general.id.0
        )),
        "{}",
        text(&out.stdout)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_prints_the_backlog_then_new_messages_as_they_come() {
    let server = TestServer::start().await;
    let (_alice, bob, room) = server.alice_and_bob_in("ops").await;
    bob.send_message(room.id, "before").await.expect("send");
    let home = Home::new(&server.url);
    home.login("alice").await;

    let mut child = home
        .command(&["tail", "ops", "-n", "1", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn tail");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    // The backlog's one line says tail is connected and following.
    assert_eq!(next(&mut lines).await["text"], "before");
    bob.send_message(room.id, "live one").await.expect("send");
    let ev = next(&mut lines).await;
    assert_eq!(ev["text"], "live one");
    assert_eq!(ev["user"], "bob");
    bob.send_message(room.id, "live two").await.expect("send");
    assert_eq!(next(&mut lines).await["text"], "live two");
    assert!(
        child.try_wait().expect("status").is_none(),
        "tail runs until interrupted"
    );
    child.kill().await.expect("kill tail");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_failure_has_its_exit_code() {
    let server = TestServer::start().await;
    let alice = server.user("alice").await;
    let bob = server.user("bob").await;
    alice
        .create_room("general", "", Visibility::Public)
        .await
        .expect("create");
    bob.create_room("elsewhere", "", Visibility::Public)
        .await
        .expect("create");

    // 4: not logged in.
    let fresh = Home::new(&server.url);
    let out = fresh.run(&["rooms"]).await;
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out.stderr).contains("confab login"),
        "{}",
        text(&out.stderr)
    );

    // 4: a wrong password.
    let out = fresh
        .run_with_stdin(
            &["login", "alice", "--password-stdin"],
            Some("wrong-password\n"),
        )
        .await;
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out.stderr).contains("INVALID_CREDENTIALS"),
        "{}",
        text(&out.stderr)
    );

    let home = Home::new(&server.url);
    home.login("alice").await;
    // 5: no such room.
    let out = home.run(&["send", "nowhere", "hi"]).await;
    assert_eq!(out.status.code(), Some(5));
    assert!(
        text(&out.stderr).contains("no room named \"nowhere\""),
        "{}",
        text(&out.stderr)
    );
    // 6: refused by the server (a room she is not in).
    let out = home.run(&["send", "elsewhere", "hi"]).await;
    assert_eq!(out.status.code(), Some(6));
    assert!(
        text(&out.stderr).contains("NOT_A_MEMBER"),
        "{}",
        text(&out.stderr)
    );
    // 2: usage.
    for args in [
        &["history"][..],
        &["history", "general", "--limit", "0"],
        &["send", "general"],
        &["frobnicate"],
    ] {
        let out = home.run(args).await;
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    let out = Home::new("http://127.0.0.1:1")
        .run_with_stdin(
            &["login", "alice", "--password-stdin"],
            Some("password123\n"),
        )
        .await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("unsupported URL scheme"),
        "{}",
        text(&out.stderr)
    );

    // 3: a server nobody listens on (a port bound, then freed).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let unreachable = Home::new(&format!("confab://127.0.0.1:{port}"));
    let out = unreachable
        .run_with_stdin(
            &["login", "alice", "--password-stdin"],
            Some("password123\n"),
        )
        .await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("cannot reach the server"),
        "{}",
        text(&out.stderr)
    );
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_or_invalid_token_asks_to_log_in_again_and_logout_forgets_it() {
    let server = TestServer::start().await;
    server.user("alice").await;
    let home = Home::new(&server.url);
    home.login("alice").await;
    // A token the server does not know (expired, or never issued).
    let token = home.replace_token(&"00".repeat(32));
    let out = home.run(&["rooms"]).await;
    assert_eq!(out.status.code(), Some(4));
    assert!(
        text(&out.stderr).contains("expired or was revoked: run `confab login` again"),
        "{}",
        text(&out.stderr)
    );

    // Logout revokes the real token and removes the file.
    home.replace_token(&token);
    let out = home.run(&["logout"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(!home.session_file().exists());
    let reuse = confab_sdk::Client::connect(
        &server.url,
        confab_sdk::ConnectOptions::new().with_token(token),
    )
    .await;
    assert!(
        matches!(&reuse, Err(e) if e.code() == Some(confab_sdk::ErrorCode::InvalidToken)),
        "the token no longer works: {reuse:?}"
    );
    let out = home.run(&["rooms"]).await;
    assert_eq!(out.status.code(), Some(4));
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_urls_use_the_first_that_answers_and_tail_follows_it_back() {
    let mut server = TestServer::start().await;
    let (_alice, bob, room) = server.alice_and_bob_in("general").await;
    // The first node of the list is down (a port bound, then freed); the
    // second is the server. Spaces after the comma are allowed.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let list = format!("confab://127.0.0.1:{down}, {}", server.url);
    let home = Home::new(&list);
    home.login("alice").await;
    let stored: Value =
        serde_json::from_str(&std::fs::read_to_string(home.session_file()).expect("stored"))
            .expect("JSON");
    assert_eq!(
        stored["url"],
        format!("confab://127.0.0.1:{down},{}", server.url),
        "the session is for the whole list"
    );

    // A command with the list reaches the server through its second URL…
    let out = home.run(&["send", "general", "via", "the", "second"]).await;
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let ev = room_event(&bob, |b| matches!(b, EventBody::Message { .. })).await;
    assert_eq!(ev.body, EventBody::text("via the second"));
    // …and so does one without --url, from the stored list.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_confab"))
        .env_remove("CONFAB_URL")
        .env("XDG_CONFIG_HOME", home.config())
        .env("HOME", home.config())
        .args(["history", "general", "-n", "1"])
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, out)
        .await
        .expect("history in time")
        .expect("history runs");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).ends_with("alice: via the second\n"));

    // tail follows: when the server goes away it tries again round the
    // list (the server, then the dead first URL, then the server) and
    // prints what was sent once it is back.
    let mut child = home
        .command(&["tail", "general", "-n", "1", "--json"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn tail");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    assert_eq!(next(&mut lines).await["text"], "via the second");
    server.shut_down().await;
    server.start_again().await;
    let bob = confab_sdk::Client::connect(&server.url, confab_sdk::ConnectOptions::new())
        .await
        .expect("bob connects again");
    bob.login("bob", common::PASSWORD)
        .await
        .expect("bob logs in");
    bob.send_message(room.id, "after the restart")
        .await
        .expect("send");
    let ev = next(&mut lines).await;
    assert_eq!(ev["text"], "after the restart", "{ev}");
    assert!(
        child.try_wait().expect("status").is_none(),
        "tail runs until interrupted"
    );
    child.kill().await.expect("kill tail");
    server.stop().await;
}
