//! Files over HTTP (SPEC.md §13), end to end against the real server on
//! both stores: uploads by members only, every bad input refused with its
//! reason and nothing kept, the same bytes stored once, downloads with
//! ranges and the right headers, signed links (expired, tampered), a
//! restart, housekeeping on the frozen server clock, and a refused 1 GiB
//! upload that leaves the server's memory flat.

mod common;
#[path = "common/confabd.rs"]
mod confabd;

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::http::{api, exchange, png, HttpReply};
use common::{Backend, TestServer, Transport};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const PASSWORD: &str = "password123";

async fn register(http: SocketAddr, name: &str) -> String {
    let body = json!({"username": name, "password": PASSWORD});
    let (status, v) = api(http, "POST", "/api/register", None, Some(body)).await;
    assert_eq!(status, 201, "{v}");
    v["token"].as_str().expect("token").to_owned()
}

/// alice owns a public room bob joined; carol is in no room.
struct Cast {
    http: SocketAddr,
    alice: String,
    bob: String,
    carol: String,
    room: u64,
}

async fn cast(srv: &TestServer) -> Cast {
    let c = cast_on(srv.addr_for(Transport::Ws)).await;
    let path = format!("/api/rooms/{}/join", c.room);
    let (status, v) = api(c.http, "POST", &path, Some(&c.bob), None).await;
    assert_eq!(status, 200, "{v}");
    c
}

/// `POST /api/rooms/{room}/files?{query}` with `content_type` (if any).
async fn upload(
    http: SocketAddr,
    token: &str,
    room: u64,
    query: &str,
    content_type: Option<&str>,
    bytes: &[u8],
) -> HttpReply {
    let bearer = format!("Bearer {token}");
    let mut headers = vec![("authorization", bearer.as_str())];
    if let Some(t) = content_type {
        headers.push(("content-type", t));
    }
    let path = format!("/api/rooms/{room}/files?{query}");
    exchange(http, None, "POST", &path, &headers, bytes).await
}

/// An upload that must be taken: its file as JSON.
async fn upload_ok(c: &Cast, token: &str, name: &str, ct: &str, bytes: &[u8]) -> serde_json::Value {
    let query = format!("name={name}");
    let up = upload(c.http, token, c.room, &query, Some(ct), bytes).await;
    assert_eq!(up.status, 201, "{}", String::from_utf8_lossy(&up.body));
    up.json()
}

/// `GET /api/files/{id}` with `token`, and a `Range` if given.
async fn fetch(c: &Cast, id: u64, token: &str, range: Option<&str>) -> HttpReply {
    get(c.http, &format!("/api/files/{id}"), Some(token), range).await
}

async fn get(http: SocketAddr, path: &str, token: Option<&str>, range: Option<&str>) -> HttpReply {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = Vec::new();
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    if let Some(r) = range {
        headers.push(("range", r));
    }
    exchange(http, None, "GET", path, &headers, b"").await
}

/// The error body's code and reason.
fn refusal(r: &HttpReply) -> (u16, u64, String) {
    let v = r.json();
    let reason = v["error"]["reason"].as_str().unwrap_or("").to_owned();
    (r.status, v["error"]["code"].as_u64().unwrap_or(0), reason)
}

/// Every file under `DATA_DIR/files` but the temporary directory.
fn blobs(data_dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(&data_dir.join("files"), &mut out);
    out.retain(|n| !n.starts_with("upload-"));
    out.sort();
    out
}

fn tmp_is_empty(data_dir: &Path) -> bool {
    std::fs::read_dir(data_dir.join("files/tmp"))
        .map(|mut d| d.next().is_none())
        .unwrap_or(true)
}

macro_rules! on_both_stores {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario(super::Backend::Sqlite).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $scenario() {
                super::$scenario(super::Backend::Postgres).await;
            })*
        }
    };
}

on_both_stores!(
    members_upload_and_download_the_same_bytes_stored_once_across_a_restart,
    bad_uploads_are_refused_with_their_reason_and_keep_nothing,
    signed_links_work_without_a_token_until_they_expire_or_are_tampered_with,
    housekeeping_deletes_unreferenced_uploads_and_their_bytes_when_unused,
);

async fn members_upload_and_download_the_same_bytes_stored_once_across_a_restart(b: Backend) {
    let Some(mut srv) = TestServer::start_on(b, "files_roundtrip", |_| {}).await else {
        return;
    };
    let c = cast(&srv).await;
    let bytes = png(64, 48, 5_000);

    // alice uploads a PNG: its size comes from its header.
    let f = upload_ok(&c, &c.alice, "pic.png", "image/png", &bytes).await;
    let id = f["id"].as_u64().unwrap();
    assert_eq!(f["room"], c.room);
    assert_eq!(f["name"], "pic.png");
    assert_eq!(f["content_type"], "image/png");
    assert_eq!(f["size"], 5_000);
    assert_eq!(
        (f["width"].as_u64(), f["height"].as_u64()),
        (Some(64), Some(48))
    );
    let sha = f["sha256"].as_str().unwrap().to_owned();
    assert_eq!(sha.len(), 64);

    // bob uploads the same bytes, named by Content-Disposition: a second
    // file, the same bytes on disk once.
    let bearer = format!("Bearer {}", c.bob);
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "image/png"),
        (
            "content-disposition",
            "attachment; filename=\"copy of pic.png\"",
        ),
    ];
    let path = format!("/api/rooms/{}/files", c.room);
    let twin = exchange(c.http, None, "POST", &path, &headers, &bytes).await;
    assert_eq!(twin.status, 201, "{}", String::from_utf8_lossy(&twin.body));
    let twin = twin.json();
    assert_ne!(twin["id"].as_u64(), Some(id));
    assert_eq!(twin["name"], "copy of pic.png");
    assert_eq!(twin["sha256"], sha.as_str());
    assert_eq!(blobs(srv.dir.path()), vec![sha.clone()]);

    // A text file: served as an attachment.
    let text = "notes — été\n".as_bytes();
    let name = "notes%20%E2%80%94%20%C3%A9t%C3%A9.txt";
    let up = upload_ok(&c, &c.bob, name, "text/plain", text).await;
    let text_id = up["id"].as_u64().unwrap();
    assert_eq!(up["content_type"], "text/plain; charset=utf-8");
    assert!(up.get("width").is_none());

    // bob (a member) downloads alice's image: bytes and headers.
    let d = fetch(&c, id, &c.bob, None).await;
    assert_eq!(d.status, 200);
    assert_eq!(d.body, bytes);
    assert_eq!(d.header("content-type"), Some("image/png"));
    assert_eq!(d.header("content-length"), Some("5000"));
    assert_eq!(d.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(d.header("etag"), Some(format!("\"{sha}\"").as_str()));
    assert_eq!(d.header("accept-ranges"), Some("bytes"));
    let disposition = d.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with("inline; filename=\"pic.png\""),
        "{disposition}"
    );
    let d = fetch(&c, text_id, &c.alice, None).await;
    assert_eq!(d.body, text);
    let disposition = d.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with("attachment; filename=\"notes _ _t_.txt\"")
            && disposition.contains("filename*=utf-8''notes%20%e2%80%94%20%c3%a9t%c3%a9.txt"),
        "{disposition}"
    );

    // Ranges: one is served (206); one past the end is not (416).
    let d = fetch(&c, id, &c.bob, Some("bytes=0-9")).await;
    assert_eq!(d.status, 206);
    assert_eq!(d.body, bytes[..10]);
    assert_eq!(d.header("content-range"), Some("bytes 0-9/5000"));
    assert_eq!(d.header("content-length"), Some("10"));
    let d = fetch(&c, id, &c.bob, Some("bytes=-100")).await;
    assert_eq!((d.status, d.body.as_slice()), (206, &bytes[4_900..]));
    let d = fetch(&c, id, &c.bob, Some("bytes=5000-")).await;
    assert_eq!(d.status, 416);
    assert_eq!(d.header("content-range"), Some("bytes */5000"));

    // carol is no member: she may neither upload nor read.
    let up = upload(
        c.http,
        &c.carol,
        c.room,
        "name=x.png",
        Some("image/png"),
        &bytes,
    )
    .await;
    assert_eq!(refusal(&up), (403, 301, String::new()));
    let d = fetch(&c, id, &c.carol, None).await;
    assert_eq!(refusal(&d), (403, 301, String::new()));
    let d = get(
        c.http,
        &format!("/api/files/{id}/url"),
        Some(&c.carol),
        None,
    )
    .await;
    assert_eq!(d.status, 403);
    // No credential at all; an unknown file.
    let d = get(c.http, &format!("/api/files/{id}"), None, None).await;
    assert_eq!(refusal(&d).0, 401);
    let d = get(c.http, "/api/files/999999", Some(&c.bob), None).await;
    assert_eq!(refusal(&d), (404, 412, String::new()));

    // A restart keeps files, their bytes and the link secret.
    let link = f["url"].as_str().unwrap().to_owned();
    srv.restart().await;
    let http = srv.addr_for(Transport::Ws);
    let d = get(http, &format!("/api/files/{id}"), Some(&c.bob), None).await;
    assert_eq!((d.status, d.body == bytes), (200, true));
    let d = get(http, &link, None, None).await;
    assert_eq!((d.status, d.body == bytes), (200, true));
    srv.stop().await;
}

async fn bad_uploads_are_refused_with_their_reason_and_keep_nothing(b: Backend) {
    let Some(srv) = TestServer::start_on(b, "files_refused", |c| c.max_upload_bytes = 4096).await
    else {
        return;
    };
    let c = cast(&srv).await;
    let up = |query: &'static str, ct: Option<&'static str>, bytes: Vec<u8>| {
        let (http, token, room) = (c.http, c.alice.clone(), c.room);
        async move { refusal(&upload(http, &token, room, query, ct, &bytes).await) }
    };
    let refused = |status, reason: &str| (status, 414, reason.to_owned());
    let elf = b"\x7fELF\x02\x01\x01\x00 pretending to be a picture".to_vec();
    // The type: a lie, none allowed, none given.
    assert_eq!(
        up("name=a.png", Some("image/png"), elf.clone()).await,
        refused(415, "type_mismatch")
    );
    assert_eq!(
        up("name=a.png", Some("image/jpeg"), png(2, 2, 100)).await,
        refused(415, "type_mismatch")
    );
    assert_eq!(
        up("name=a.txt", Some("text/plain"), b"nul \0 inside".to_vec()).await,
        refused(415, "type_mismatch")
    );
    assert_eq!(
        up("name=a.exe", Some("application/x-msdownload"), elf.clone()).await,
        refused(415, "type_not_allowed")
    );
    assert_eq!(
        up("name=a", None, elf).await,
        refused(415, "type_not_allowed")
    );
    // A PNG signature without its header is not a PNG.
    assert_eq!(
        up(
            "name=a.png",
            Some("image/png"),
            b"\x89PNG\r\n\x1a\nxx".to_vec()
        )
        .await,
        refused(415, "type_mismatch")
    );
    // Empty; over the limit by Content-Length.
    assert_eq!(
        up("name=a.txt", Some("text/plain"), vec![]).await,
        refused(400, "empty")
    );
    assert_eq!(
        up("name=a.txt", Some("text/plain"), vec![b'a'; 4097]).await,
        refused(413, "too_large")
    );
    // Names.
    let ok = png(1, 1, 50);
    for (query, reason) in [
        ("name=..%2Fetc%2Fpasswd", "name_has_path"),
        ("name=a%5Cb.png", "name_has_path"),
        ("name=a%0Ab.png", "name_invalid"),
        ("name=a%1Bb.png", "name_invalid"),
        ("name=", "name_missing"),
        ("", "name_missing"),
    ] {
        assert_eq!(
            up(query, Some("image/png"), ok.clone()).await,
            refused(400, reason),
            "{query}"
        );
    }
    let long = format!("name={}", "a".repeat(256));
    let r = refusal(&upload(c.http, &c.alice, c.room, &long, Some("image/png"), &ok).await);
    assert_eq!(r, refused(400, "name_too_long"));

    // Over the limit, chunked: the server cuts it off at the limit.
    let r = chunked_upload(c.http, &c.alice, c.room, "text/plain", 4096 + 1, 512).await;
    assert_eq!(r.status, Some(413), "{r:?}");
    // Over the limit by Content-Length, the body never sent: answered at once.
    let r = declared_only(c.http, &c.alice, c.room, 1 << 30).await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");

    // Nothing was kept: no bytes, no temporary file, no row (the first
    // file recorded now gets the first id).
    assert!(blobs(srv.dir.path()).is_empty());
    assert!(tmp_is_empty(srv.dir.path()));
    let up = upload_ok(&c, &c.alice, "ok.png", "image/png", &ok).await;
    assert_eq!(up["id"], 1);
    // A chunked upload within the limit is taken.
    let r = chunked_upload(c.http, &c.alice, c.room, "text/plain", 4096, 500).await;
    assert_eq!(r.status, Some(201), "{r:?}");
    srv.stop().await;
}

async fn signed_links_work_without_a_token_until_they_expire_or_are_tampered_with(b: Backend) {
    let Some(srv) = TestServer::start_on(b, "files_links", |c| {
        c.file_link_ttl_secs = confab_server::config::Secs(60);
    })
    .await
    else {
        return;
    };
    let clock = srv.handle.as_ref().unwrap().clock().clone();
    clock.freeze();
    let c = cast(&srv).await;
    let bytes = png(3, 3, 300);
    let f = upload_ok(&c, &c.alice, "p.png", "image/png", &bytes).await;
    let id = f["id"].as_u64().unwrap();
    let link = f["url"].as_str().unwrap().to_owned();
    assert!(
        link.starts_with(&format!("/api/files/{id}?expires=")),
        "{link}"
    );

    // Anyone holding the link reads the file, without a token.
    let d = get(c.http, &link, None, None).await;
    assert_eq!((d.status, d.body == bytes), (200, true));
    // A member asks for a fresh link.
    let fresh = get(c.http, &format!("/api/files/{id}/url"), Some(&c.bob), None).await;
    assert_eq!(fresh.status, 200);
    let fresh = fresh.json()["url"].as_str().unwrap().to_owned();
    assert_eq!(get(c.http, &fresh, None, None).await.status, 200);

    // Tampered: another id, a later expiry, a changed signature, none.
    let other = upload_ok(&c, &c.alice, "q.png", "image/png", &png(4, 4, 90)).await;
    let other_id = other["id"].as_u64().unwrap();
    let query = link.split_once('?').unwrap().1.to_owned();
    let expires: u64 = query.split('&').next().unwrap()[8..].parse().unwrap();
    let sig = query.split_once("&sig=").unwrap().1.to_owned();
    let mut flipped = sig.clone().into_bytes();
    flipped[0] = if flipped[0] == b'0' { b'1' } else { b'0' };
    let flipped = String::from_utf8(flipped).unwrap();
    let bad = refusal(
        &get(
            c.http,
            &format!("/api/files/{other_id}?{query}"),
            None,
            None,
        )
        .await,
    );
    assert_eq!(bad, (403, 415, "bad_signature".into()));
    for tampered in [
        format!("/api/files/{id}?expires={}&sig={sig}", expires + 3600),
        format!("/api/files/{id}?expires={expires}&sig={flipped}"),
        format!("/api/files/{id}?expires={expires}&sig=nothex"),
        format!("/api/files/{id}?expires={expires}"),
    ] {
        let r = refusal(&get(c.http, &tampered, None, None).await);
        assert_eq!(r, (403, 415, "bad_signature".into()), "{tampered}");
    }

    // Past its expiry (the server clock stepped, no sleep) it is refused.
    clock.advance(Duration::from_secs(61));
    let r = refusal(&get(c.http, &link, None, None).await);
    assert_eq!(r, (403, 415, "expired".into()));
    srv.stop().await;
}

async fn housekeeping_deletes_unreferenced_uploads_and_their_bytes_when_unused(b: Backend) {
    let Some(srv) = TestServer::start_on(b, "files_housekeeping", |_| {}).await else {
        return;
    };
    let handle = srv.handle.as_ref().unwrap();
    let clock = handle.clock().clone();
    clock.freeze();
    let c = cast(&srv).await;
    let bytes = png(8, 8, 700);
    let first = upload_ok(&c, &c.alice, "a.png", "image/png", &bytes).await;
    let sha = first["sha256"].as_str().unwrap().to_owned();
    let link = first["url"].as_str().unwrap().to_owned();
    // Twelve hours later, the same bytes again.
    clock.advance(Duration::from_secs(12 * 3600));
    let second = upload_ok(&c, &c.bob, "b.png", "image/png", &bytes).await;
    let second_id = second["id"].as_u64().unwrap();

    // A day and an hour after the first upload: it was never referenced,
    // so it is deleted; its bytes stay, for the second still uses them.
    clock.advance(Duration::from_secs(13 * 3600));
    let removed = handle.housekeeping_pass().await.unwrap();
    assert_eq!((removed.files, removed.file_blobs), (1, 0));
    assert_eq!(blobs(srv.dir.path()), vec![sha.clone()]);
    let id = first["id"].as_u64().unwrap();
    let d = fetch(&c, id, &c.bob, None).await;
    assert_eq!(refusal(&d), (410, 412, "deleted".into()));
    let d = get(c.http, &link, None, None).await;
    assert_eq!(
        refusal(&d),
        (403, 415, "expired".into()),
        "ten minutes are long over"
    );
    let d = fetch(&c, second_id, &c.bob, None).await;
    assert_eq!(d.status, 200);

    // Another day: the second goes too, and with it the bytes.
    clock.advance(Duration::from_secs(24 * 3600));
    let removed = handle.housekeeping_pass().await.unwrap();
    assert_eq!((removed.files, removed.file_blobs), (1, 1));
    assert!(blobs(srv.dir.path()).is_empty());
    let d = fetch(&c, second_id, &c.bob, None).await;
    assert_eq!(refusal(&d), (404, 412, String::new()));
    // A pass with nothing to do.
    let removed = handle.housekeeping_pass().await.unwrap();
    assert_eq!((removed.files, removed.file_blobs), (0, 0));
    srv.stop().await;
}

/// What a streamed upload got back.
#[derive(Debug)]
struct Streamed {
    /// The response's status, if one could be read.
    status: Option<u16>,
    /// Body bytes the server let the client write before it stopped.
    sent: u64,
}

/// Streams `total` bytes of `a`s in chunks of `chunk` with chunked
/// transfer encoding (from a generator: nothing is held but one chunk),
/// reading the response meanwhile; stops writing when the server stops
/// reading or answers.
async fn chunked_upload(
    http: SocketAddr,
    token: &str,
    room: u64,
    content_type: &str,
    total: u64,
    chunk: usize,
) -> Streamed {
    let stream = TcpStream::connect(http).await.expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST /api/rooms/{room}/files?name=big.txt HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         content-type: {content_type}\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    let reader = tokio::spawn(async move { status_of(&read_head(&mut rd).await) });
    let mut sent = 0u64;
    let data = vec![b'a'; chunk];
    let writer = async {
        wr.write_all(head.as_bytes()).await?;
        while sent < total {
            let n = chunk.min((total - sent) as usize);
            wr.write_all(format!("{n:x}\r\n").as_bytes()).await?;
            wr.write_all(&data[..n]).await?;
            wr.write_all(b"\r\n").await?;
            sent += n as u64;
        }
        wr.write_all(b"0\r\n\r\n").await
    };
    let mut reader = reader;
    let status = tokio::time::timeout(Duration::from_secs(120), async {
        tokio::select! {
            // Written (or the server stopped reading): the answer follows.
            _ = writer => tokio::time::timeout(Duration::from_secs(10), &mut reader)
                .await
                .ok()
                .and_then(Result::ok)
                .flatten(),
            // Answered while still writing.
            r = &mut reader => r.ok().flatten(),
        }
    })
    .await
    .expect("the upload neither finished nor was cut off");
    Streamed { status, sent }
}

/// Sends only the head of an upload declaring `length` bytes; returns
/// the response's head.
async fn declared_only(http: SocketAddr, token: &str, room: u64, length: u64) -> String {
    let mut s = TcpStream::connect(http).await.expect("connect");
    let head = format!(
        "POST /api/rooms/{room}/files?name=big.txt HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         content-type: text/plain\r\ncontent-length: {length}\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), read_head(&mut s))
        .await
        .expect("no answer without the body")
}

/// Reads a response up to the end of its head (or of the connection).
async fn read_head(r: &mut (impl AsyncReadExt + Unpin)) -> String {
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    while !raw.windows(4).any(|w| w == b"\r\n\r\n") {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => raw.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&raw).into_owned()
}

fn status_of(head: &str) -> Option<u16> {
    head.split(' ').nth(1).and_then(|s| s.parse().ok())
}

/// `VmHWM` (peak resident memory) of process `pid`, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// A 1 GiB upload, refused: by its Content-Length at once, and streamed
/// chunked from a generator, cut off at the limit. The server (the real
/// binary, so its memory is its own) reads at most the limit and its
/// peak memory does not grow by anything near the body's size.
#[tokio::test]
async fn a_refused_1_gib_upload_leaves_the_servers_memory_flat() {
    let dir = tempfile::tempdir().unwrap();
    let srv = confabd::Confabd::start_with(dir.path(), None, &[]);
    let c = cast_on(srv.http).await;
    // Warm up: one accepted upload, so the peak includes a normal one.
    upload_ok(&c, &c.alice, "w.txt", "text/plain", b"warm").await;
    let before = peak_rss_kib(srv.pid());

    let r = declared_only(c.http, &c.alice, c.room, 1 << 30).await;
    assert!(r.starts_with("HTTP/1.1 413"), "{r}");
    let r = chunked_upload(c.http, &c.alice, c.room, "text/plain", 1 << 30, 64 * 1024).await;
    // The default limit is 10 MiB: the server stopped reading there (what
    // else was written sits in socket buffers).
    assert!(
        r.sent < 64 << 20,
        "the server read on: {} bytes sent",
        r.sent
    );
    if let Some(status) = r.status {
        assert_eq!(status, 413);
    }
    let after = peak_rss_kib(srv.pid());
    let grown = after.saturating_sub(before);
    assert!(
        grown < 32 * 1024,
        "peak memory grew by {grown} KiB during a refused 1 GiB upload ({before} -> {after} KiB)"
    );
    assert!(tmp_is_empty(dir.path()));
    assert!(blobs(dir.path()).len() == 1);
}

/// [`cast`] on a server reached at `http` alone.
async fn cast_on(http: SocketAddr) -> Cast {
    let alice = register(http, "alice").await;
    let bob = register(http, "bob").await;
    let carol = register(http, "carol").await;
    let (status, v) = api(
        http,
        "POST",
        "/api/rooms",
        Some(&alice),
        Some(json!({"name": "files"})),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    Cast {
        http,
        alice,
        bob,
        carol,
        room: v["id"].as_u64().unwrap(),
    }
}
