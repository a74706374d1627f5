//! Avatars and the upload byte budget (SPEC.md §5.2.5, §13.2, §13.6), end
//! to end against the real server on both stores: an avatar set over HTTP
//! reaches the members of the user's rooms as PROFILE_CHANGED, any
//! authenticated user (and only they, or a signed link's holder) reads
//! it, a replaced or cleared one is removed by housekeeping; every bad
//! avatar is refused with its reason and nothing kept; avatar changes
//! count as profile changes; uploads draw on one hourly byte budget that
//! refuses with 429 UPLOAD_RATE_LIMITED and refills on the server's frozen
//! clock; and the SDK's HTTP helpers round-trip over http:// and https://
//! (from ws://, wss:// and confabs:// clients).

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::files::{blobs, refusal};
use common::http::{api, exchange, png, raw_exchange, HttpReply};
use common::{start_frozen, Backend, TestServer, Transport};
use confab_protocol::{ErrorCode, Profile, UserId, Visibility};
use confab_sdk::{Client, Event, HttpApi};

const WAIT: Duration = Duration::from_secs(5);
const KIB: usize = 1024;

/// A JPEG whose frame header (200 × 100) comes after `app1` segments of
/// 64 KiB of metadata.
fn jpeg_after_metadata(app1: usize) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8];
    for _ in 0..app1 {
        b.extend([0xFF, 0xE1, 0xFF, 0xFF]);
        b.extend(std::iter::repeat_n(0u8, 0xFFFF - 2));
    }
    b.extend([0xFF, 0xC0, 0x00, 0x11, 0x08, 0x00, 0x64, 0x00, 0xC8, 0x03]);
    b.extend([0u8; 9]);
    b.extend([0xFF, 0xD9]);
    b
}

/// `PUT /api/me/avatar` with `content_type` (if any) and `bytes`.
async fn put_avatar(
    http: SocketAddr,
    token: Option<&str>,
    content_type: Option<&str>,
    bytes: &[u8],
) -> HttpReply {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = Vec::new();
    if let Some(b) = &bearer {
        headers.push(("authorization", b.as_str()));
    }
    if let Some(t) = content_type {
        headers.push(("content-type", t));
    }
    exchange(http, None, "PUT", "/api/me/avatar", &headers, bytes).await
}

async fn get(http: SocketAddr, path: &str, token: Option<&str>) -> HttpReply {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<_> = bearer
        .iter()
        .map(|b| ("authorization", b.as_str()))
        .collect();
    exchange(http, None, "GET", path, &headers, b"").await
}

/// A 429's `retry_after_ms` and `Retry-After`, which must agree.
fn retry_after(r: &HttpReply) -> Duration {
    let ms = r.json()["error"]["retry_after_ms"]
        .as_u64()
        .expect("retry_after_ms");
    let header: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert_eq!(
        header,
        ms.div_ceil(1000),
        "the header is the body's, in seconds"
    );
    Duration::from_millis(ms)
}

/// The next PROFILE_CHANGED about `about` that `c` receives.
async fn next_profile(c: &Client, about: UserId) -> Profile {
    loop {
        match c.next_event_timeout(WAIT).await.ok().flatten() {
            Some(Event::ProfileChanged { profile, .. }) if profile.user == about => return profile,
            Some(_) => continue,
            None => panic!("no PROFILE_CHANGED about {about:?} within {WAIT:?}"),
        }
    }
}

/// alice and bob (SDK clients on the WebSocket door) share a room; carol
/// (HTTP only) shares nothing with them.
struct Cast {
    http: SocketAddr,
    alice: Client,
    alice_id: UserId,
    bob: Client,
    carol: String,
    room: u64,
}

async fn cast(srv: &TestServer) -> Cast {
    let door = srv.door(Transport::Ws);
    let (alice, alice_id) = door.register("alice").await;
    let (bob, _) = door.register("bob").await;
    let room = alice
        .create_room("den", "", Visibility::Public)
        .await
        .expect("create the room")
        .id;
    bob.join_room(room).await.expect("bob joins");
    let http = srv.addr_for(Transport::Ws);
    let (carol, _) = common::http::register(http, "carol").await;
    Cast {
        http,
        alice,
        alice_id,
        bob,
        carol,
        room: room.0,
    }
}

fn token(c: &Client) -> String {
    c.token().expect("logged in")
}

on_both_stores!(
    an_avatar_is_set_read_by_anyone_replaced_cleared_and_removed,
    bad_avatars_are_refused_with_their_reason_and_keep_nothing,
    avatar_changes_count_as_profile_changes,
    the_upload_budget_refuses_with_retry_after_and_refills_on_the_clock,
    the_sdk_uploads_downloads_and_sets_avatars_over_http_and_https,
);

async fn an_avatar_is_set_read_by_anyone_replaced_cleared_and_removed(b: Backend) {
    let Some((srv, clock)) = start_frozen(b, "avatars_lifecycle", |_| {}).await else {
        return;
    };
    let handle = srv.handle.as_ref().unwrap();
    let c = cast(&srv).await;
    let alice = token(&c.alice);
    let first = png(64, 48, 3_000);

    // alice sets an avatar: her profile names it, bob is told.
    let r = put_avatar(c.http, Some(&alice), Some("image/png"), &first).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    let id = v["avatar"].as_u64().expect("an avatar id");
    assert_eq!(v["user"].as_u64(), Some(c.alice_id.0));
    let told = next_profile(&c.bob, c.alice_id).await;
    assert_eq!(told.avatar, Some(id));
    let seen = c.bob.profile(c.alice_id).await.unwrap();
    assert_eq!(seen.avatar, Some(id));

    // carol shares no room with alice, yet reads the avatar (any
    // authenticated user may read any profile).
    let d = get(c.http, &format!("/api/files/{id}"), Some(&c.carol)).await;
    assert_eq!((d.status, d.body == first), (200, true));
    assert_eq!(d.header("content-type"), Some("image/png"));
    assert_eq!(d.header("x-content-type-options"), Some("nosniff"));
    let disposition = d.header("content-disposition").unwrap();
    assert!(
        disposition.starts_with("inline; filename=\"avatar.png\""),
        "{disposition}"
    );
    // Without a token: only with a signed link, which carol may ask for.
    let d = get(c.http, &format!("/api/files/{id}"), None).await;
    assert_eq!(refusal(&d).0, 401);
    let link = get(c.http, &format!("/api/files/{id}/url"), Some(&c.carol)).await;
    assert_eq!(link.status, 200);
    let url = link.json()["url"].as_str().unwrap().to_owned();
    let d = get(c.http, &url, None).await;
    assert_eq!((d.status, d.body == first), (200, true));
    // The signature's last hex digit changed (to another one, always).
    let flipped = if url.ends_with('0') { '1' } else { '0' };
    let tampered = format!("{}{flipped}", &url[..url.len() - 1]);
    let d = get(c.http, &tampered, None).await;
    assert_eq!(refusal(&d), (403, 415, "bad_signature".into()));
    // Its bytes are stored once, like any file's.
    assert_eq!(blobs(srv.dir.path()).len(), 1);
    // An avatar is in no room: no message may carry it, not even its
    // owner's.
    let path = format!("/api/rooms/{}/messages", c.room);
    let body = serde_json::json!({"text": "me", "attachments": [id]});
    let (status, v) = api(c.http, "POST", &path, Some(&alice), Some(body)).await;
    assert_eq!(
        (status, v["error"]["code"].as_u64()),
        (403, Some(413)),
        "{v}"
    );

    // A second avatar replaces the first, which is no longer served.
    clock.advance(Duration::from_millis(1_100));
    let second = png(32, 32, 2_000);
    let r = put_avatar(c.http, Some(&alice), Some("image/png"), &second).await;
    assert_eq!(r.status, 200);
    let id2 = r.json()["avatar"].as_u64().unwrap();
    assert!(id2 > id);
    assert_eq!(next_profile(&c.bob, c.alice_id).await.avatar, Some(id2));
    let d = get(c.http, &format!("/api/files/{id}"), Some(&c.carol)).await;
    assert_eq!(refusal(&d), (410, 412, "deleted".into()));
    // Housekeeping removes the replaced one's bytes.
    assert_eq!(blobs(srv.dir.path()).len(), 2);
    let removed = handle.housekeeping_pass().await.unwrap();
    assert_eq!(removed.file_blobs, 1);
    assert_eq!(blobs(srv.dir.path()).len(), 1);
    let d = get(c.http, &format!("/api/files/{id2}"), Some(&c.carol)).await;
    assert_eq!((d.status, d.body == second), (200, true));

    // Clearing: no avatar, bob is told, the bytes go at the next pass.
    clock.advance(Duration::from_millis(1_100));
    let (status, v) = api(c.http, "DELETE", "/api/me/avatar", Some(&alice), None).await;
    assert_eq!(status, 200, "{v}");
    assert!(v["avatar"].is_null(), "{v}");
    assert_eq!(next_profile(&c.bob, c.alice_id).await.avatar, None);
    let d = get(c.http, &format!("/api/files/{id2}"), Some(&c.carol)).await;
    assert_eq!(refusal(&d), (410, 412, "deleted".into()));
    handle.housekeeping_pass().await.unwrap();
    assert!(blobs(srv.dir.path()).is_empty());
    // Clearing again changes nothing.
    let (status, v) = api(c.http, "DELETE", "/api/me/avatar", Some(&alice), None).await;
    assert_eq!((status, v["avatar"].is_null()), (200, true));
    // A day on, housekeeping has nothing more to do.
    clock.advance(Duration::from_secs(25 * 3600));
    let removed = handle.housekeeping_pass().await.unwrap();
    assert_eq!((removed.files, removed.file_blobs), (0, 0));
    srv.stop().await;
}

async fn bad_avatars_are_refused_with_their_reason_and_keep_nothing(b: Backend) {
    let Some((srv, _clock)) = start_frozen(b, "avatars_refused", |c| {
        c.max_avatar_bytes = 300 * 1024;
        c.max_avatar_side = 256;
        c.profile_changes_per_hour = 0;
    })
    .await
    else {
        return;
    };
    let c = cast(&srv).await;
    let alice = token(&c.alice);
    let elf = {
        let mut b = b"\x7fELF\x02\x01\x01".to_vec();
        b.resize(2_000, 0);
        b
    };
    // Declared type, bytes, and the refusal: status, code, reason.
    type Case<'a> = (Option<&'a str>, Vec<u8>, (u16, u64, &'a str));
    let cases: Vec<Case> = vec![
        (
            Some("text/plain"),
            b"hello".to_vec(),
            (415, 414, "not_image"),
        ),
        (
            Some("application/pdf"),
            b"%PDF-1.7 x".to_vec(),
            (415, 414, "not_image"),
        ),
        (Some("text/html"), b"<p>".to_vec(), (415, 414, "not_image")),
        (None, png(8, 8, 100), (415, 414, "not_image")),
        (Some("image/png"), elf.clone(), (415, 414, "type_mismatch")),
        (
            Some("image/gif"),
            png(8, 8, 100),
            (415, 414, "type_mismatch"),
        ),
        (Some("image/png"), Vec::new(), (400, 414, "empty")),
        (
            Some("image/png"),
            png(16, 16, 300 * KIB + 1),
            (413, 414, "too_large"),
        ),
        (
            Some("image/png"),
            png(257, 16, 500),
            (400, 414, "too_many_pixels"),
        ),
        (
            Some("image/png"),
            png(16, 2_000, 500),
            (400, 414, "too_many_pixels"),
        ),
        (
            Some("image/jpeg"),
            jpeg_after_metadata(4),
            (400, 414, "no_dimensions"),
        ),
    ];
    for (content_type, bytes, want) in cases {
        let r = put_avatar(c.http, Some(&alice), content_type, &bytes).await;
        let got = refusal(&r);
        assert_eq!(
            (got.0, got.1, got.2.as_str()),
            want,
            "{content_type:?}, {} bytes",
            bytes.len()
        );
    }
    // Not authenticated: refused before anything is read.
    let r = put_avatar(c.http, None, Some("image/png"), &png(8, 8, 100)).await;
    assert_eq!(refusal(&r).0, 401);
    // Nothing was kept, nothing changed, nobody was told.
    assert!(blobs(srv.dir.path()).is_empty());
    let files_tmp = std::fs::read_dir(srv.dir.path().join("files/tmp")).unwrap();
    assert_eq!(files_tmp.count(), 0);
    assert_eq!(c.bob.profile(c.alice_id).await.unwrap().avatar, None);
    // The limits are the limits: 256 × 256 and 300 KiB are taken, as is a
    // JPEG whose size is in its first 256 KiB.
    for (ct, bytes) in [
        ("image/png", png(256, 256, 300 * KIB)),
        ("image/jpeg", jpeg_after_metadata(3)),
    ] {
        let r = put_avatar(c.http, Some(&alice), Some(ct), &bytes).await;
        assert_eq!(r.status, 200, "{ct}: {}", String::from_utf8_lossy(&r.body));
    }
    srv.stop().await;
}

async fn avatar_changes_count_as_profile_changes(b: Backend) {
    // Two profile changes at once, then one a minute.
    let Some((srv, clock)) = start_frozen(b, "avatars_limited", |c| {
        c.profile_changes_per_hour = 60;
        c.profile_changes_burst = 2;
    })
    .await
    else {
        return;
    };
    let c = cast(&srv).await;
    let alice = token(&c.alice);
    let body = serde_json::json!({"bio": "hi"});
    let (status, _) = api(c.http, "PUT", "/api/me/profile", Some(&alice), Some(body)).await;
    assert_eq!(status, 200);
    let r = put_avatar(c.http, Some(&alice), Some("image/png"), &png(8, 8, 100)).await;
    assert_eq!(r.status, 200);
    // The third change, an avatar's or a clear's, waits a minute.
    let r = put_avatar(c.http, Some(&alice), Some("image/png"), &png(9, 9, 100)).await;
    assert_eq!(refusal(&r), (429, 211, String::new()));
    assert_eq!(retry_after(&r), Duration::from_secs(60));
    let r = exchange(
        c.http,
        None,
        "DELETE",
        "/api/me/avatar",
        &[("authorization", &format!("Bearer {alice}"))],
        b"",
    )
    .await;
    assert_eq!(refusal(&r), (429, 211, String::new()));
    assert_eq!(
        blobs(srv.dir.path()).len(),
        1,
        "the refused avatar is not kept"
    );
    clock.advance(Duration::from_secs(60));
    let (status, v) = api(c.http, "DELETE", "/api/me/avatar", Some(&alice), None).await;
    assert_eq!((status, v["avatar"].is_null()), (200, true), "{v}");
    srv.stop().await;
}

/// `POST /api/rooms/{room}/files` of `bytes` as a PNG.
async fn upload(http: SocketAddr, token: &str, room: u64, bytes: &[u8]) -> HttpReply {
    let bearer = format!("Bearer {token}");
    let headers = [
        ("authorization", bearer.as_str()),
        ("content-type", "image/png"),
    ];
    let path = format!("/api/rooms/{room}/files?name=a.png");
    exchange(http, None, "POST", &path, &headers, bytes).await
}

/// `confab_rate_limited_total{limit="uploads"}` as the server exports it
/// (one recorder per process: every server of this test binary counts).
async fn uploads_limited(srv: &TestServer) -> u64 {
    let addr = srv
        .handle
        .as_ref()
        .unwrap()
        .metrics_addr()
        .expect("metrics");
    let text = String::from_utf8(get(addr, "/metrics", None).await.body).unwrap();
    text.lines()
        .find(|l| l.starts_with("confab_rate_limited_total{limit=\"uploads\"}"))
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or(0)
}

async fn the_upload_budget_refuses_with_retry_after_and_refills_on_the_clock(b: Backend) {
    // 360 KiB an hour: one KiB every ten seconds.
    let Some((srv, clock)) = start_frozen(b, "upload_budget", |c| {
        c.upload_bytes_per_hour = 360 * 1024;
        c.metrics_listen = confab_server::config::Listen::On(([127, 0, 0, 1], 0).into());
    })
    .await
    else {
        return;
    };
    let c = cast(&srv).await;
    let alice = token(&c.alice);
    let limited = uploads_limited(&srv).await;

    // 200 KiB are taken; 160 KiB are left.
    let a = upload(c.http, &alice, c.room, &png(8, 8, 200 * KIB)).await;
    assert_eq!(a.status, 201);
    // Another 200 KiB, refused by its Content-Length before a byte is
    // read: 40 KiB short, 400 s to wait. Nothing is kept.
    let bearer = format!("Bearer {alice}");
    let declared = (200 * KIB).to_string();
    let path = format!("/api/rooms/{}/files?name=b.png", c.room);
    let head_only = [
        ("authorization", bearer.as_str()),
        ("content-type", "image/png"),
        ("content-length", declared.as_str()),
    ];
    let r = raw_exchange(c.http, None, "POST", &path, &head_only, b"").await;
    assert_eq!(refusal(&r), (429, 417, String::new()));
    assert_eq!(retry_after(&r), Duration::from_secs(400));
    assert_eq!(blobs(srv.dir.path()).len(), 1);
    // (The counter is the process's: the other store's run may add to it.)
    assert!(uploads_limited(&srv).await > limited);

    // An avatar draws on the same budget: 60 KiB of it.
    let r = put_avatar(
        c.http,
        Some(&alice),
        Some("image/png"),
        &png(8, 8, 60 * KIB),
    )
    .await;
    assert_eq!(r.status, 200);
    // bob's budget is his own.
    let r = upload(c.http, &token(&c.bob), c.room, &png(8, 8, 300 * KIB)).await;
    assert_eq!(r.status, 201);

    // The budget refills on the clock: 100 KiB left, after 1000 s 200.
    let r = raw_exchange(c.http, None, "POST", &path, &head_only, b"").await;
    assert_eq!(retry_after(&r), Duration::from_secs(1_000));
    clock.advance(Duration::from_secs(1_000));
    let r = upload(c.http, &alice, c.room, &png(9, 9, 200 * KIB)).await;
    assert_eq!(r.status, 201, "{}", String::from_utf8_lossy(&r.body));

    // A chunked upload (no Content-Length) is counted as it streams: the
    // budget is spent, so its first 2 KiB are refused at once.
    let chunked = [
        ("authorization", bearer.as_str()),
        ("content-type", "image/png"),
        ("transfer-encoding", "chunked"),
    ];
    let mut body = format!("{:x}\r\n", 2 * KIB).into_bytes();
    body.extend(png(8, 8, 2 * KIB));
    body.extend(b"\r\n");
    let r = raw_exchange(c.http, None, "POST", &path, &chunked, &body).await;
    assert_eq!(refusal(&r), (429, 417, String::new()));
    assert_eq!(retry_after(&r), Duration::from_secs(20));
    assert!(uploads_limited(&srv).await >= limited + 3);
    srv.stop().await;
}

async fn the_sdk_uploads_downloads_and_sets_avatars_over_http_and_https(b: Backend) {
    let Some(srv) =
        TestServer::start_on(b, "avatars_sdk", |c| c.max_upload_bytes = 64 * 1024).await
    else {
        return;
    };
    let bytes = png(40, 30, 20_000);
    for (transport, name) in [
        (Transport::Ws, "ann"),
        (Transport::Wss, "ben"),
        (Transport::Tls, "cyd"),
    ] {
        let door = srv.door(transport);
        let (client, me) = door.register(name).await;
        let room = client
            .create_room(&format!("{name}s room"), "", Visibility::Private)
            .await
            .unwrap()
            .id;
        let api = client
            .http()
            .expect("ws://, wss:// and confabs:// have an HTTP API");
        let scheme = if transport == Transport::Ws {
            "http"
        } else {
            "https"
        };
        assert!(api.base().starts_with(scheme), "{}", api.base());

        // Upload, download into memory and into a writer, a signed link.
        let f = api
            .upload(room, "pic 1.png", "image/png", bytes.clone())
            .await
            .unwrap();
        assert_eq!(
            (f.room, f.uploader, f.name.as_str()),
            (room, me, "pic 1.png")
        );
        assert_eq!((f.size, f.width, f.height), (20_000, Some(40), Some(30)));
        let d = api.download(f.id).await.unwrap();
        assert_eq!(
            (d.content_type.as_str(), d.bytes.as_ref()),
            ("image/png", &bytes[..])
        );
        let mut out = Vec::new();
        assert_eq!(api.download_to(f.id, &mut out).await.unwrap(), 20_000);
        assert_eq!(out, bytes);
        let link = api.file_link(f.id).await.unwrap();
        assert!(link.url.starts_with(&api.base()), "{}", link.url);
        assert!(link.url.contains("&sig="), "{}", link.url);

        // Refusals carry the server's code and reason.
        let e = api
            .upload(room, "x.png", "image/png", b"MZ\x90\x00 not a png".to_vec())
            .await
            .unwrap_err();
        assert_eq!(
            (e.code(), e.reason()),
            (Some(ErrorCode::FileRefused), Some("type_mismatch"))
        );
        assert!(
            matches!(e, confab_sdk::Error::Http { status: 415, .. }),
            "{e}"
        );
        let e = api
            .upload(room, "big.png", "image/png", png(8, 8, 64 * 1024 + 1))
            .await
            .unwrap_err();
        assert_eq!(e.reason(), Some("too_large"));
        let e = api.download(f.id + 1_000).await.unwrap_err();
        assert_eq!(e.code(), Some(ErrorCode::UnknownFile));

        // The avatar: set, read by another user through the SDK, cleared.
        let p = api.set_avatar("image/png", png(64, 64, 500)).await.unwrap();
        let avatar = p.avatar.expect("an avatar");
        assert_eq!(client.profile(me).await.unwrap().avatar, Some(avatar));
        let (other, _) = door.register(&format!("{name}2")).await;
        let theirs = other.http().unwrap();
        assert_eq!(theirs.download(avatar).await.unwrap().bytes.len(), 500);
        let e = theirs.download(f.id).await.unwrap_err();
        assert_eq!(
            e.code(),
            Some(ErrorCode::NotAMember),
            "a room's file is its members'"
        );
        let e = theirs
            .set_avatar("text/plain", b"hi".to_vec())
            .await
            .unwrap_err();
        assert_eq!(e.reason(), Some("not_image"));
        assert_eq!(api.clear_avatar().await.unwrap().avatar, None);

        // Without a token the API refuses; the explicit URL is the same API.
        let anonymous = HttpApi::new(&api.base(), &door.options).unwrap();
        let e = anonymous.download(avatar).await.unwrap_err();
        assert!(
            matches!(e, confab_sdk::Error::Http { status: 401, .. }),
            "{e}"
        );
    }
    // The binary port serves no HTTP: the SDK says so instead of guessing.
    let tcp = srv.door(Transport::Tcp).connect().await;
    assert!(matches!(
        tcp.http(),
        Err(confab_sdk::Error::InvalidUrl { .. })
    ));
    srv.stop().await;
}
