//! The web client at `/`: the files of `web/dist`, embedded at compile
//! time by `build.rs` (see ARCHITECTURE.md, "The web client").
//!
//! This is the HTTP router's fallback, so `/ws`, `/healthz`, `/readyz` and
//! every `/api` route keep their handlers. Here:
//! - `/api` and anything under it that no route matched: the API's JSON
//!   404 ([`api::no_route`]), as before;
//! - a file of `web/dist` (`/index.html`, `/assets/index-3f2a….js`, …):
//!   that file. Files under `/assets/` carry a content hash in their name
//!   and are cached for a year (`immutable`); the others (`index.html`,
//!   the service worker, the icon) are revalidated on every use
//!   (`no-cache`, with an ETag answered by 304);
//! - any other path without a file extension (`/`, `/chat/12`, `/rooms`):
//!   `index.html`, whose script routes on the path (a single-page app);
//! - anything else (`/assets/gone.js`, `/nope.png`): the JSON 404.
//!
//! Only GET and HEAD are served; other methods get the API's JSON 405.
//! HTML answers carry a Content-Security-Policy that allows what the
//! client needs and nothing more: its own scripts, styles and images, and
//! WebSocket connections back to the host it was loaded from.

use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};

use super::api;

include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));

/// One embedded file.
#[derive(Debug, Clone, Copy)]
pub struct Asset {
    pub path: &'static str,
    pub bytes: &'static [u8],
    pub etag: &'static str,
}

/// The embedded file at URL path `path`, if any.
pub fn asset(path: &str) -> Option<Asset> {
    let i = ASSETS.binary_search_by(|(p, _, _)| (*p).cmp(path)).ok()?;
    let (path, bytes, etag) = ASSETS[i];
    Some(Asset { path, bytes, etag })
}

/// Cache lifetime of content-hashed files: a year, never revalidated.
const IMMUTABLE: &str = "public, max-age=31536000, immutable";
/// Everything else: may be stored, but is revalidated (ETag) before use.
const REVALIDATE: &str = "no-cache";

/// The router's fallback: the web client, or the API's JSON 404/405.
pub async fn serve(method: Method, uri: Uri, headers: HeaderMap) -> Response {
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") {
        return api::no_route(method, uri).await.into_response();
    }
    let Some(file) = asset(path).or_else(|| is_client_route(path).then(index).flatten()) else {
        return api::no_route(method, uri).await.into_response();
    };
    if method != Method::GET && method != Method::HEAD {
        let mut resp = api::method_not_allowed(method, uri).await.into_response();
        resp.headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        return resp;
    }
    respond(file, &headers, method == Method::HEAD)
}

/// `index.html`, the page of every client route.
fn index() -> Option<Asset> {
    asset("/index.html")
}

/// A path the client's router handles: no file extension in its last
/// segment, and not under `/assets/` (a missing script must not be
/// answered with a page).
fn is_client_route(path: &str) -> bool {
    let last = path.rsplit('/').next().unwrap_or("");
    !path.starts_with("/assets/") && !last.contains('.')
}

fn respond(file: Asset, headers: &HeaderMap, head: bool) -> Response {
    let cache = if file.path.starts_with("/assets/") {
        IMMUTABLE
    } else {
        REVALIDATE
    };
    let content_type = content_type(file.path);
    let not_modified = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|t| t.trim() == file.etag || t.trim() == "*")
        });
    let status = if not_modified {
        StatusCode::NOT_MODIFIED
    } else {
        StatusCode::OK
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CACHE_CONTROL, cache)
        .header(header::ETAG, file.etag)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    if content_type.starts_with("text/html") {
        builder = builder
            .header(header::CONTENT_SECURITY_POLICY, csp(headers))
            .header(header::REFERRER_POLICY, "no-referrer")
            .header(header::X_FRAME_OPTIONS, "DENY");
    }
    if !not_modified {
        builder = builder
            .header(header::CONTENT_TYPE, content_type)
            .header(header::CONTENT_LENGTH, file.bytes.len());
    }
    let body = if head || not_modified {
        axum::body::Body::empty()
    } else {
        axum::body::Body::from(file.bytes)
    };
    builder
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// The Content-Security-Policy of the client's page: scripts, styles,
/// images and the service worker from this origin only; connections to
/// this origin, including its WebSocket (`ws://` or `wss://` and the
/// page's host, named as well as `'self'` for browsers whose `'self'` does
/// not cover WebSocket schemes); no plugins, frames, or foreign forms.
pub fn csp(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .filter(|h| is_plain_host(h));
    let connect = match host {
        Some(h) => format!("'self' ws://{h} wss://{h}"),
        None => "'self'".to_owned(),
    };
    format!(
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; \
         font-src 'self'; connect-src {connect}; worker-src 'self'; manifest-src 'self'; \
         base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    )
}

/// A Host header that can be put in a policy as is: a name or address and
/// an optional port, nothing that could end a directive.
fn is_plain_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']'))
}

/// The Content-Type of a file, by its extension.
fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
    match ext {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "json" => "application/json",
        "webmanifest" => "application/manifest+json",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_routes_are_paths_without_an_extension_outside_assets() {
        assert!(is_client_route("/"));
        assert!(is_client_route("/chat/12"));
        assert!(is_client_route("/rooms"));
        assert!(!is_client_route("/assets/index-abc.js"));
        assert!(!is_client_route("/assets/later"));
        assert!(!is_client_route("/favicon.png"));
    }

    #[test]
    fn only_plain_hosts_are_named_in_the_policy() {
        assert!(is_plain_host("127.0.0.1:7480"));
        assert!(is_plain_host("[::1]:7480"));
        assert!(is_plain_host("chat.example"));
        assert!(!is_plain_host("evil; script-src *"));
        assert!(!is_plain_host(""));
        let mut h = HeaderMap::new();
        h.insert(header::HOST, HeaderValue::from_static("x; script-src *"));
        assert!(csp(&h).contains("connect-src 'self';"));
        h.insert(header::HOST, HeaderValue::from_static("localhost:7480"));
        assert!(csp(&h).contains("connect-src 'self' ws://localhost:7480 wss://localhost:7480;"));
    }

    #[test]
    fn the_table_is_sorted_for_binary_search() {
        assert!(ASSETS.windows(2).all(|w| w[0].0 < w[1].0));
    }

    #[test]
    fn content_types_follow_the_extension() {
        assert_eq!(content_type("/index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("/assets/a.js"),
            "text/javascript; charset=utf-8"
        );
        assert_eq!(content_type("/assets/a.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("/x"), "application/octet-stream");
    }
}
