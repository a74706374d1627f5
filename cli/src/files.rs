//! Files over the server's HTTP API (SPEC.md §13) for `/upload` and
//! `/download`: where the API is, and what type a file is declared as.

use confab_sdk::{Client, ConnectOptions, Error, HttpApi};

/// The HTTP port a server listens on unless configured otherwise.
const DEFAULT_HTTP_PORT: u16 = 7480;

/// The server's HTTP API as this session's user. A `ws://`, `wss://` or
/// `confabs://` connection's API is on its own port (the SDK's
/// `Client::http`); a `confab://` port serves no HTTP, so the API is
/// `CONFAB_HTTP_URL` if set, else the same host on the default HTTP port
/// (7480).
pub fn http_api(client: &Client) -> Result<HttpApi, Error> {
    let url = match client.http() {
        Ok(api) => return Ok(api),
        Err(Error::InvalidUrl { url, .. }) => url,
        Err(e) => return Err(e),
    };
    let http = std::env::var("CONFAB_HTTP_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| default_http_url(&url));
    let api = HttpApi::new(&http, &ConnectOptions::default())?;
    Ok(match client.token() {
        Some(token) => api.with_token(token),
        None => api,
    })
}

/// `confab://host:port/…` → `http://host:7480`; of a comma-separated
/// list (a cluster's nodes), the first's host.
fn default_http_url(url: &str) -> String {
    let url = url.split(',').map(str::trim).next().unwrap_or(url);
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    let host = match authority.rsplit_once(':') {
        // A bracketed IPv6 address keeps its brackets; a bare one has no
        // port to strip.
        Some((host, port)) if !port.contains(']') => host,
        _ => authority,
    };
    format!("http://{host}:{DEFAULT_HTTP_PORT}")
}

/// The type a file is declared as, from its name's extension: one of the
/// server's allowlist (SPEC.md §13.1), which checks the bytes agree;
/// anything else is sent as `application/octet-stream`, which it refuses
/// with a clear reason.
pub fn content_type_of(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "pdf" => "application/pdf",
        "zip" => "application/zip",
        "txt" | "text" | "md" | "log" | "csv" => "text/plain",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_confab_url_maps_to_its_hosts_http_port() {
        assert_eq!(
            default_http_url("confab://chat.example:7400"),
            "http://chat.example:7480"
        );
        assert_eq!(
            default_http_url("confab://127.0.0.1"),
            "http://127.0.0.1:7480"
        );
        assert_eq!(default_http_url("confab://[::1]:7400"), "http://[::1]:7480");
        assert_eq!(
            default_http_url("confab://node-a:7400,confab://node-b:7400"),
            "http://node-a:7480"
        );
    }

    #[test]
    fn types_come_from_the_extension() {
        assert_eq!(content_type_of("Cat.PNG"), "image/png");
        assert_eq!(content_type_of("minutes.pdf"), "application/pdf");
        assert_eq!(content_type_of("notes.txt"), "text/plain");
        assert_eq!(content_type_of("setup.exe"), "application/octet-stream");
        assert_eq!(content_type_of("README"), "application/octet-stream");
    }
}
