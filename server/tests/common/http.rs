//! Bare HTTP/1.1 exchanges (one request per connection, `Connection:
//! close`) from any loopback source address, so that tests see exactly
//! what a client would: status, headers, body.

use std::net::{IpAddr, SocketAddr};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::STEP;

/// A PNG of `w` × `h` as far as its header goes, padded to `len` bytes.
pub fn png(w: u32, h: u32, len: usize) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    b.extend(w.to_be_bytes());
    b.extend(h.to_be_bytes());
    b.extend([8, 6, 0, 0, 0]);
    b.resize(len, 0x42);
    b
}

/// One response.
#[derive(Debug)]
pub struct HttpReply {
    pub status: u16,
    /// The status line and headers, lowercased.
    pub head: String,
    pub body: Vec<u8>,
}

impl HttpReply {
    /// The body as JSON (`null` when empty).
    pub fn json(&self) -> Value {
        if self.body.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }

    /// A header's value (`name` in lowercase).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            (k.trim() == name).then(|| v.trim())
        })
    }
}

/// Connects to `addr`, from `from` when given (any 127.0.0.0/8 address
/// works on loopback).
pub async fn connect_from(addr: SocketAddr, from: Option<IpAddr>) -> TcpStream {
    match from {
        None => TcpStream::connect(addr).await.expect("connect"),
        Some(ip) => {
            let socket = match ip {
                IpAddr::V4(_) => TcpSocket::new_v4(),
                IpAddr::V6(_) => TcpSocket::new_v6(),
            }
            .expect("socket");
            socket
                .bind((ip, 0).into())
                .expect("bind the source address");
            socket.connect(addr).await.expect("connect")
        }
    }
}

/// Sends one request and reads the whole response.
pub async fn exchange(
    addr: SocketAddr,
    from: Option<IpAddr>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpReply {
    let length = body.len().to_string();
    let mut all = vec![("content-length", length.as_str())];
    all.extend_from_slice(headers);
    raw_exchange(addr, from, method, path, &all, body).await
}

/// Sends a request head with exactly `headers` — its framing too, a
/// `content-length` or `transfer-encoding` of the caller's choosing — then
/// `body`, which may be less than the head announces (the server is to
/// answer before the rest), and reads the whole response.
pub async fn raw_exchange(
    addr: SocketAddr,
    from: Option<IpAddr>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> HttpReply {
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let talk = async {
        let mut stream = connect_from(addr, from).await;
        stream.write_all(req.as_bytes()).await.expect("write");
        stream.write_all(body).await.expect("write body");
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await.expect("read");
        raw
    };
    let raw = tokio::time::timeout(STEP, talk)
        .await
        .expect("response in time");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status");
    HttpReply {
        status,
        head,
        body: raw[split + 4..].to_vec(),
    }
}

/// A JSON API call with an optional bearer token and body: status and JSON.
/// Registers `name` (password [`super::TEST_PASSWORD`]) over the HTTP
/// API: its bearer token and user id.
pub async fn register(addr: SocketAddr, name: &str) -> (String, u64) {
    let body = serde_json::json!({"username": name, "password": super::TEST_PASSWORD});
    let (status, v) = api(addr, "POST", "/api/register", None, Some(body)).await;
    assert_eq!(status, 201, "{v}");
    let token = v["token"].as_str().expect("a token").to_owned();
    (token, v["user"].as_u64().expect("a user id"))
}

pub async fn api(
    addr: SocketAddr,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let r = api_from(addr, None, method, path, token, body).await;
    (r.status, r.json())
}

/// [`api`] from a given source address, with the whole reply.
pub async fn api_from(
    addr: SocketAddr,
    from: Option<IpAddr>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> HttpReply {
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = Vec::new();
    if !body.is_empty() {
        headers.push(("content-type", "application/json"));
    }
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    exchange(addr, from, method, path, &headers, body.as_bytes()).await
}

/// Creates a room named `name` over the JSON API as the user of `token`
/// (asserting 201 Created); its id.
pub async fn create_room(addr: SocketAddr, token: &str, name: &str) -> u64 {
    let body = serde_json::json!({ "name": name });
    let (status, v) = api(addr, "POST", "/api/rooms", Some(token), Some(body)).await;
    assert_eq!(status, 201, "{v}");
    v["id"].as_u64().expect("a room id")
}

/// Registers `name` (password `password123`) over the JSON API; its token.
pub async fn register_token(addr: SocketAddr, name: &str) -> String {
    let (status, v) = api(
        addr,
        "POST",
        "/api/register",
        None,
        Some(serde_json::json!({"username": name, "password": "password123"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    v["token"].as_str().expect("a token").to_owned()
}

/// An error answer with status `want` and the protocol code `code`.
#[track_caller]
pub fn assert_api_err((status, v): (u16, Value), want: u16, code: confab_protocol::ErrorCode) {
    assert_eq!(status, want, "{v}");
    assert_eq!(v["error"]["name"], serde_json::json!(code.name()), "{v}");
}
