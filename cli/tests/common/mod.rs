//! What the end-to-end tests share: a real server (the server crate's
//! `start`, on loopback ports over a SQLite file in a temp dir), users
//! made through the SDK, and the `confab` binary run with a config
//! directory of its own.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use confab_sdk::{Client, ConnectOptions, Event, EventBody, RoomEvent};
use confab_server::{Config, ServerHandle};

/// How long a test waits for anything it waits on.
pub const WAIT: Duration = Duration::from_secs(10);

pub const PASSWORD: &str = "password123";

/// A server on 127.0.0.1 over a temp data dir: cheap password hashing,
/// no message rate limit, two shards.
pub struct TestServer {
    handle: Option<ServerHandle>,
    _dir: tempfile::TempDir,
    /// As started, with the port it got, so a restart gets it again.
    config: Config,
    pub url: String,
}

impl TestServer {
    pub async fn start() -> TestServer {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = Config {
            shards: 2,
            kdf_memory_kib: 64,
            kdf_iterations: 1,
            rate_limit_per_sec: 0,
            // The HTTP API too, for /upload and /download.
            http_listen: confab_server::config::values::Listen::On(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                0,
            ))),
            ..Config::embedded(dir.path().to_path_buf())
        };
        let handle = confab_server::start(config.clone())
            .await
            .expect("server starts");
        let url = format!("confab://{}", handle.tcp_addr());
        let config = Config {
            listen: handle.tcp_addr(),
            ..config
        };
        TestServer {
            handle: Some(handle),
            _dir: dir,
            config,
            url,
        }
    }

    /// The HTTP API's URL, `http://127.0.0.1:port`.
    pub fn http_url(&self) -> String {
        let handle = self.handle.as_ref().expect("the server runs");
        format!("http://{}", handle.http_addr().expect("an HTTP listener"))
    }

    /// Stops the server (its clients see the connection drop).
    pub async fn shut_down(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
    }

    /// Starts it again on the same port and data.
    pub async fn start_again(&mut self) {
        let handle = confab_server::start(self.config.clone())
            .await
            .expect("server restarts");
        self.handle = Some(handle);
    }

    /// A new SDK client registered as `name`.
    pub async fn user(&self, name: &str) -> Client {
        let client = Client::connect(&self.url, ConnectOptions::new())
            .await
            .expect("connect");
        client.register(name, PASSWORD).await.expect("register");
        client
    }

    /// alice, who creates the public room `name`, and bob, who joins it.
    pub async fn alice_and_bob_in(&self, name: &str) -> (Client, Client, confab_sdk::RoomInfo) {
        let alice = self.user("alice").await;
        let bob = self.user("bob").await;
        let room = alice
            .create_room(name, "", confab_sdk::Visibility::Public)
            .await
            .expect("create the room");
        bob.join_room(room.id).await.expect("bob joins");
        (alice, bob, room)
    }

    pub async fn stop(mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
    }
}

/// The next room event on `client` whose body `pick` accepts.
pub async fn room_event(client: &Client, pick: impl Fn(&EventBody) -> bool) -> RoomEvent {
    loop {
        match client.next_event_timeout(WAIT).await {
            Ok(Some(Event::Room(ev))) if pick(&ev.body) => return ev,
            Ok(Some(_)) => continue,
            other => panic!("no matching room event within {WAIT:?}: {other:?}"),
        }
    }
}

/// A home for one user of the CLI: its own XDG config directory.
pub struct Home {
    dir: tempfile::TempDir,
    pub url: String,
}

impl Home {
    pub fn new(url: &str) -> Home {
        Home {
            dir: tempfile::tempdir().expect("temp dir"),
            url: url.to_owned(),
        }
    }

    pub fn config(&self) -> &Path {
        self.dir.path()
    }

    pub fn session_file(&self) -> PathBuf {
        self.dir.path().join("confab").join("session.json")
    }

    /// `confab ARGS` with this home and `--url`, nothing inherited that
    /// could change what it does.
    pub fn command(&self, args: &[&str]) -> tokio::process::Command {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_confab"));
        cmd.env_remove("CONFAB_URL")
            .env("XDG_CONFIG_HOME", self.config())
            .env("HOME", self.config())
            .arg("--url")
            .arg(&self.url)
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        cmd
    }

    /// Runs `confab ARGS` to the end (within [`WAIT`]).
    pub async fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, None).await
    }

    /// Runs `confab ARGS` with `input` on its standard input.
    pub async fn run_with_stdin(&self, args: &[&str], input: Option<&str>) -> Output {
        use tokio::io::AsyncWriteExt;
        let mut cmd = self.command(args);
        cmd.stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        if input.is_some() {
            cmd.stdin(std::process::Stdio::piped());
        }
        let mut child = cmd.spawn().expect("spawn confab");
        if let Some(text) = input {
            let mut stdin = child.stdin.take().expect("stdin");
            stdin.write_all(text.as_bytes()).await.expect("write stdin");
        }
        tokio::time::timeout(WAIT, child.wait_with_output())
            .await
            .expect("confab finishes in time")
            .expect("confab runs")
    }

    /// `confab login NAME --password-stdin`, which must succeed.
    pub async fn login(&self, name: &str) {
        let out = self
            .run_with_stdin(
                &["login", name, "--password-stdin"],
                Some(&format!("{PASSWORD}\n")),
            )
            .await;
        assert_eq!(out.status.code(), Some(0), "login: {}", text(&out.stderr));
    }
}

impl Home {
    /// Puts `token` in place of the stored one (a token that expired, or
    /// was never issued); returns the one it replaced.
    pub fn replace_token(&self, token: &str) -> String {
        let path = self.session_file();
        let mut stored: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("a stored session"))
                .expect("JSON");
        let old = stored["token"].as_str().expect("a token").to_owned();
        stored["token"] = serde_json::Value::from(token);
        std::fs::write(&path, stored.to_string()).expect("write the session");
        old
    }
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
