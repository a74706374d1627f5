//! The HTTP JSON API (server/src/net/api/): every endpoint, with any body
//! or query string, sent to a real server over loopback, as a client
//! would, and handled all the way through the room shards and the store.
//!
//! Input: byte 0 picks the endpoint, byte 1 how the request is dressed
//! (token, Content-Type, which ids go in the path), bytes 2..10 an id for
//! the path; the rest is the JSON body (methods with a body) or the query
//! string (GET, percent-encoded as needed).
//!
//! Checked: the server never panics (a panic in any of its threads aborts
//! the process) and never hangs (10 s per request); every answer is a
//! whole HTTP response on a connection that stays open; no answer is a
//! 5xx (the store is healthy, so a 5xx is a bug); a 2xx carries JSON
//! (or nothing, for 204) and every 4xx the API's error shape
//! `{"error": {"code", "name", "message"}}` with a name that matches the
//! code.

#![no_main]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use confab_server::config::Listen;
use confab_server::{Config, ServerHandle};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// The endpoints: method, path (`{id}`: a room, `{user_id}`: a user), and
/// whether the fuzzed bytes are a query string rather than a body.
const ROUTES: &[(&str, &str, bool)] = &[
    ("POST", "/api/register", false),
    ("POST", "/api/login", false),
    ("POST", "/api/logout", false),
    ("GET", "/api/rooms", true),
    ("POST", "/api/rooms", false),
    ("POST", "/api/rooms/{id}/join", false),
    ("POST", "/api/rooms/{id}/leave", false),
    ("GET", "/api/rooms/{id}/members", true),
    ("GET", "/api/rooms/{id}/messages", true),
    ("POST", "/api/rooms/{id}/messages", false),
    ("GET", "/api/me/rooms", true),
    ("PATCH", "/api/rooms/{id}", false),
    ("POST", "/api/rooms/{id}/invitations", false),
    ("POST", "/api/rooms/{id}/invitation/accept", false),
    ("POST", "/api/rooms/{id}/invitation/decline", false),
    ("GET", "/api/rooms/{id}/join-requests", true),
    ("POST", "/api/rooms/{id}/join-requests", false),
    (
        "POST",
        "/api/rooms/{id}/join-requests/{user_id}/approve",
        false,
    ),
    (
        "POST",
        "/api/rooms/{id}/join-requests/{user_id}/deny",
        false,
    ),
    ("DELETE", "/api/rooms/{id}/members/{user_id}", false),
    ("PUT", "/api/rooms/{id}/members/{user_id}/role", false),
    ("GET", "/api/rooms/{id}/bans", true),
    ("POST", "/api/rooms/{id}/bans", false),
    ("DELETE", "/api/rooms/{id}/bans/{user_id}", false),
    ("GET", "/api/rooms/{id}/audit", true),
    ("GET", "/api/me/notifications", true),
    ("POST", "/api/me/notifications/read", false),
    ("GET", "/api/me/room-log", true),
    ("GET", "/healthz", true),
    ("GET", "/readyz", true),
];

struct Harness {
    addr: SocketAddr,
    conn: Option<TcpStream>,
    /// The fuzzer's own session, and a second user's.
    token: String,
    other_token: String,
    user: u64,
    other: u64,
    /// A public and a private room the fuzzer's user owns.
    rooms: [u64; 2],
}

struct Answer {
    status: u16,
    body: Vec<u8>,
}

/// Removes the scratch directories of fuzzing processes that are gone.
fn scratch_dir(prefix: &str) -> PathBuf {
    let base = if std::path::Path::new("/dev/shm").is_dir() {
        PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    if let Ok(entries) = std::fs::read_dir(&base) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(pid) = name.strip_prefix(prefix) {
                if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                    let _ = std::fs::remove_dir_all(entry.path());
                }
            }
        }
    }
    base.join(format!("{prefix}{}", std::process::id()))
}

impl Harness {
    fn start() -> Harness {
        let dir = scratch_dir("confab-fuzz-http-");
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = Config::embedded(&dir);
        config.http_listen = Listen::On(SocketAddr::from(([127, 0, 0, 1], 0)));
        config.shards = 1;
        config.kdf_workers = 1;
        // Cheap password hashing: registrations and logins are fuzzed too.
        config.kdf_memory_kib = 64;
        config.kdf_iterations = 1;
        // Fuzzed logins fail often; the harness must always be able to
        // log in again (the limits' refusals are 429s like any other).
        config.login_failures_per_address = 0;
        config.login_failures_per_username = 0;
        config.registrations_per_address_per_hour = 0;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a runtime");
        let handle: ServerHandle = runtime
            .block_on(confab_server::start(config))
            .expect("the server starts");
        let addr = handle.http_addr().expect("an HTTP listener");
        // The server runs for the life of the process.
        std::mem::forget(handle);
        std::mem::forget(runtime);
        let mut h = Harness {
            addr,
            conn: None,
            token: String::new(),
            other_token: String::new(),
            user: 0,
            other: 0,
            rooms: [0; 2],
        };
        (h.user, h.token) = h.register("fuzzer");
        (h.other, h.other_token) = h.register("bystander");
        for (i, visibility) in ["public", "private"].into_iter().enumerate() {
            let body = format!(r#"{{"name":"room {i}","visibility":"{visibility}"}}"#);
            let token = format!("Bearer {}", h.token);
            let a = h.send(
                "POST",
                "/api/rooms",
                Some(&token),
                Some("application/json"),
                body.as_bytes(),
            );
            assert_eq!(a.status, 201, "{}", String::from_utf8_lossy(&a.body));
            h.rooms[i] = json(&a.body)["id"].as_u64().expect("a room id");
        }
        h
    }

    fn register(&mut self, name: &str) -> (u64, String) {
        let body = format!(r#"{{"username":"{name}","password":"password1"}}"#);
        let a = self.send(
            "POST",
            "/api/register",
            None,
            Some("application/json"),
            body.as_bytes(),
        );
        let a = if a.status == 409 {
            self.send(
                "POST",
                "/api/login",
                None,
                Some("application/json"),
                body.as_bytes(),
            )
        } else {
            a
        };
        assert!(
            a.status == 200 || a.status == 201,
            "{}",
            String::from_utf8_lossy(&a.body)
        );
        let v = json(&a.body);
        let user = v["user"].as_u64().expect("a user id");
        (user, v["token"].as_str().expect("a token").to_owned())
    }

    /// Sends one request on the kept-alive connection and reads the answer.
    fn send(
        &mut self,
        method: &str,
        target: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: &[u8],
    ) -> Answer {
        let mut req = format!("{method} {target} HTTP/1.1\r\nHost: fuzz\r\n");
        if let Some(t) = token {
            req.push_str(&format!("Authorization: {t}\r\n"));
        }
        if let Some(ct) = content_type {
            req.push_str(&format!("Content-Type: {ct}\r\n"));
        }
        if method != "GET" {
            req.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        if method != "GET" {
            bytes.extend_from_slice(body);
        }
        if self.conn.is_none() {
            let s = TcpStream::connect(self.addr).expect("connecting to the server");
            s.set_read_timeout(Some(Duration::from_secs(10)))
                .expect("a timeout");
            s.set_nodelay(true).expect("nodelay");
            self.conn = Some(s);
        }
        let conn = self.conn.as_mut().expect("a connection");
        conn.write_all(&bytes).expect("sending the request");
        let (answer, keep) = read_response(conn);
        if !keep {
            self.conn = None;
        }
        answer
    }
}

fn json(body: &[u8]) -> Value {
    serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(body)))
}

/// Reads one HTTP/1.1 response: its status, its body, and whether the
/// connection stays open.
fn read_response(conn: &mut TcpStream) -> (Answer, bool) {
    let mut r = BufReader::new(conn);
    let mut line = String::new();
    r.read_line(&mut line)
        .expect("the server answers (or it hung)");
    assert!(line.starts_with("HTTP/1.1 "), "a status line, not {line:?}");
    let status: u16 = line[9..12].parse().expect("a status code");
    let (mut length, mut chunked, mut keep) = (0usize, false, true);
    loop {
        line.clear();
        r.read_line(&mut line).expect("a header line");
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let (name, value) = l.split_once(':').expect("a header");
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().expect("a length"),
            "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
            "connection" => keep = !value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line).expect("a chunk size");
            let size = usize::from_str_radix(line.trim(), 16).expect("a chunk size");
            let mut chunk = vec![0; size + 2];
            r.read_exact(&mut chunk).expect("a chunk");
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        body.resize(length, 0);
        r.read_exact(&mut body).expect("the body");
    }
    assert!(r.buffer().is_empty(), "bytes after the response");
    (Answer { status, body }, keep)
}

fn harness() -> &'static Mutex<Harness> {
    static H: OnceLock<Mutex<Harness>> = OnceLock::new();
    H.get_or_init(|| Mutex::new(Harness::start()))
}

/// Percent-encodes what may not stand in a query string as it is.
fn query(bytes: &[u8]) -> String {
    let mut out = String::new();
    for &b in bytes {
        if b.is_ascii_alphanumeric() || b"-._~=&+,:@/!$'()*;".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let [route, dress, rest @ ..] = data else {
        return;
    };
    let (id_bytes, payload) = rest.split_at(rest.len().min(8));
    let mut id = [0u8; 8];
    id[..id_bytes.len()].copy_from_slice(id_bytes);
    let id = u64::from_le_bytes(id);

    let mut guard = harness().lock().unwrap_or_else(|e| e.into_inner());
    let h = &mut *guard;
    let (method, template, is_query) = ROUTES[usize::from(*route) % ROUTES.len()];
    let room = match (dress >> 4) & 3 {
        0 => h.rooms[0],
        1 => h.rooms[1],
        2 => id,
        _ => u64::MAX - (id & 0xff),
    };
    let user = match (dress >> 6) & 3 {
        0 => h.other,
        1 => h.user,
        2 => id,
        _ => 0,
    };
    let mut target = template
        .replace("{id}", &room.to_string())
        .replace("{user_id}", &user.to_string());
    if is_query && !payload.is_empty() {
        target.push('?');
        target.push_str(&query(payload));
    }
    let token = match dress & 3 {
        // A logout ends the session of its token: log out a fresh one, so
        // that the harness's sessions live on.
        0 | 1 if template == "/api/logout" => {
            let (_, t) = h.register(if dress & 3 == 0 {
                "fuzzer"
            } else {
                "bystander"
            });
            Some(format!("Bearer {t}"))
        }
        0 => Some(format!("Bearer {}", h.token)),
        1 => Some(format!("Bearer {}", h.other_token)),
        2 => None,
        _ => Some("Bearer not-a-token".to_owned()),
    };
    let content_type = match (dress >> 2) & 3 {
        0 | 1 => Some("application/json"),
        2 => None,
        _ => Some("text/plain"),
    };
    let body = if is_query { &[][..] } else { payload };
    let a = h.send(method, &target, token.as_deref(), content_type, body);

    assert!(
        a.status < 500,
        "{} on {method} {target}: {}",
        a.status,
        String::from_utf8_lossy(&a.body)
    );
    match a.status {
        204 => assert!(a.body.is_empty()),
        200..=299 => {
            json(&a.body);
        }
        400..=499 => {
            let v = json(&a.body);
            let e = &v["error"];
            let code = e["code"].as_u64().expect("an error code");
            let name = e["name"].as_str().expect("an error name");
            assert!(e["message"].is_string(), "{v}");
            if let Some(known) = u16::try_from(code)
                .ok()
                .and_then(confab_protocol::ErrorCode::from_u16)
            {
                assert_eq!(name, known.name(), "{v}");
            }
        }
        s => panic!("status {s} on {method} {target}"),
    }
});
