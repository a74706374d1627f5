//! The web client at `/` (src/net/web.rs): the embedded `web/dist`, the
//! single-page-app fallback, caching headers and the Content-Security-
//! Policy, over plain HTTP and TLS; `/api`, `/ws` and `/healthz` keep
//! their own answers.

mod common;

use common::doors::tls_connect;
use common::http::{exchange, HttpReply};
use common::{TestServer, Transport};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A file of the committed web/dist, which the binary embeds.
fn dist(path: &str) -> Vec<u8> {
    let full = format!("{}/../web/dist{path}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&full).unwrap_or_else(|e| panic!("{full}: {e}"))
}

/// The path of the page's script, `/assets/index-….js`.
fn script_path() -> String {
    let index = String::from_utf8(dist("/index.html")).expect("UTF-8");
    let start = index
        .find("src=\"/assets/")
        .expect("a script under /assets/")
        + 5;
    let end = start + index[start..].find('"').expect("end of the src");
    index[start..end].to_owned()
}

async fn get(srv: &TestServer, method: &str, path: &str, headers: &[(&str, &str)]) -> HttpReply {
    exchange(
        srv.addr_for(Transport::Ws),
        None,
        method,
        path,
        headers,
        b"",
    )
    .await
}

fn assert_json_error(r: &HttpReply, status: u16, name: &str) {
    assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&r.body));
    let v: Value = r.json();
    assert_eq!(v["error"]["name"], name, "{v}");
}

#[tokio::test]
async fn the_page_is_served_at_the_root_and_at_every_client_route() {
    let srv = TestServer::start().await;
    let index = dist("/index.html");
    for path in [
        "/",
        "/index.html",
        "/chat/12",
        "/chat/12/admin",
        "/rooms",
        "/profile",
    ] {
        let r = get(&srv, "GET", path, &[]).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body, index, "{path}");
        assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
        assert_eq!(r.header("cache-control"), Some("no-cache"), "{path}");
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("x-frame-options"), Some("deny"));
        let csp = r.header("content-security-policy").expect("a CSP");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "connect-src 'self' ws://127.0.0.1 wss://127.0.0.1;",
            "worker-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(csp.contains(directive), "{directive} in {csp}");
        }
        assert!(!csp.contains("unsafe"), "{csp}");
    }
    srv.stop().await;
}

#[tokio::test]
async fn hashed_assets_are_immutable_and_the_rest_revalidates_with_etags() {
    let srv = TestServer::start().await;
    let script = script_path();
    let r = get(&srv, "GET", &script, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, dist(&script));
    assert_eq!(
        r.header("content-type"),
        Some("text/javascript; charset=utf-8")
    );
    assert_eq!(
        r.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert!(r.header("content-security-policy").is_none());

    // index.html: 304 for the ETag it was served with, the page for any other.
    let first = get(&srv, "GET", "/", &[]).await;
    let etag = first.header("etag").expect("an ETag").to_owned();
    let again = get(&srv, "GET", "/chat/3", &[("if-none-match", &etag)]).await;
    assert_eq!(again.status, 304);
    assert!(again.body.is_empty());
    assert_eq!(again.header("etag"), Some(etag.as_str()));
    let other = get(
        &srv,
        "GET",
        "/",
        &[("if-none-match", "\"0000000000000000\"")],
    )
    .await;
    assert_eq!(other.status, 200);
    assert_eq!(other.body, dist("/index.html"));

    // HEAD: the headers without the body.
    let head = get(&srv, "HEAD", "/", &[]).await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    assert_eq!(
        head.header("content-length"),
        Some(dist("/index.html").len().to_string().as_str())
    );

    // The service worker and the icon are files of their own, revalidated.
    for (path, ty) in [
        ("/sw.js", "text/javascript; charset=utf-8"),
        ("/favicon.svg", "image/svg+xml"),
    ] {
        let r = get(&srv, "GET", path, &[]).await;
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.body, dist(path));
        assert_eq!(r.header("content-type"), Some(ty));
        assert_eq!(r.header("cache-control"), Some("no-cache"));
    }
    srv.stop().await;
}

#[tokio::test]
async fn the_api_the_websocket_and_missing_files_keep_their_answers() {
    let srv = TestServer::start().await;
    // Unknown API paths stay the API's JSON 404, never the page.
    for path in ["/api", "/api/", "/api/nothing/here", "/api/rooms/1/nothing"] {
        assert_json_error(
            &get(&srv, "GET", path, &[]).await,
            404,
            "UNKNOWN_FRAME_TYPE",
        );
    }
    // A missing asset or file is a 404, not the page (a script must not get HTML).
    for path in ["/assets/gone.js", "/assets/later", "/nope.png"] {
        assert_json_error(
            &get(&srv, "GET", path, &[]).await,
            404,
            "UNKNOWN_FRAME_TYPE",
        );
    }
    // The client is read-only: other methods are refused with 405 and Allow.
    let post = get(&srv, "POST", "/chat/1", &[]).await;
    assert_json_error(&post, 405, "UNKNOWN_FRAME_TYPE");
    assert_eq!(post.header("allow"), Some("get, head"));
    // The routes of their own are untouched.
    assert_eq!(get(&srv, "GET", "/ws", &[]).await.status, 426);
    let health = get(&srv, "GET", "/healthz", &[]).await;
    assert_eq!(health.status, 200);
    assert_eq!(health.json()["status"], "ok");
    let openapi = get(&srv, "GET", "/api/openapi.json", &[]).await;
    assert_eq!(openapi.status, 200);
    assert!(openapi.json()["paths"].is_object());
    srv.stop().await;
}

#[tokio::test]
async fn the_tls_port_serves_the_page_too() {
    let srv = TestServer::start().await;
    let addr = srv.addr_for(Transport::Tls);
    let mut tls = tls_connect(&srv, addr, &[b"http/1.1"]).await.expect("TLS");
    tls.write_all(b"GET /chat/7 HTTP/1.1\r\nhost: localhost:7443\r\nconnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut raw = Vec::new();
    tls.read_to_end(&mut raw).await.expect("read");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("headers");
    let head = String::from_utf8_lossy(&raw[..split]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("connect-src 'self' ws://localhost:7443 wss://localhost:7443;"),
        "{head}"
    );
    assert_eq!(raw[split + 4..], dist("/index.html")[..]);
    srv.stop().await;
}
