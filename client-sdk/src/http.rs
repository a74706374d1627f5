//! The server's HTTP API for what does not travel as frames: files and
//! avatars (SPEC.md §13).
//!
//! **Where.** The API is served by the server's HTTP listener and, as
//! HTTPS, by its TLS listener — not by the plain binary port. So a
//! `ws://host:port/…` connection's API is `http://host:port`, a `wss://`
//! or `confabs://` one's is `https://host:port` (the TLS port speaks HTTP
//! to a client that offers ALPN `http/1.1`), and a `confab://` connection
//! names its HTTP URL explicitly ([`HttpApi::new`] with `http://…` or
//! `https://…`). HTTPS trusts what the connection's
//! [`crate::ConnectOptions::tls_trust`] says.
//!
//! **How.** Each call is one HTTP/1.1 request on its own connection,
//! with the session token as `Authorization: Bearer`. Replies that are not
//! a success become [`Error::Http`] with the server's code, `reason` and
//! retry-after.

use std::time::Duration;

use bytes::Bytes;
use confab_protocol::{Profile, RoomId, UserId};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST, RETRY_AFTER};
use hyper::{Method, Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::endpoint::{host_port, invalid_url, split_scheme, Endpoint, Scheme};
use crate::error::Code;
use crate::tls::TlsTrust;
use crate::transport::open_http;
use crate::{ConnectOptions, Error};

/// The HTTP API of one server, as one user (or none).
#[derive(Clone)]
pub struct HttpApi {
    tls: bool,
    host: String,
    port: u16,
    trust: TlsTrust,
    token: Option<String>,
    timeout: Duration,
}

impl std::fmt::Debug for HttpApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpApi")
            .field("base", &self.base())
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// A file stored by the server (an upload's reply).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredFile {
    /// What a message attaches and [`HttpApi::download`] fetches.
    pub id: u64,
    /// The room it was uploaded to; only its members may read it.
    pub room: RoomId,
    /// Who uploaded it.
    pub uploader: UserId,
    /// Its name.
    pub name: String,
    /// The type its bytes were checked to be.
    pub content_type: String,
    /// Bytes.
    pub size: u64,
    /// SHA-256 of the bytes, hex.
    pub sha256: String,
    /// An image's size in pixels.
    pub width: Option<u32>,
    /// An image's size in pixels.
    pub height: Option<u32>,
    /// A signed link to the bytes that needs no token.
    pub link: FileLink,
}

/// A signed link to a file: anyone holding it may fetch the file until it
/// expires (for an `<img src>`, say).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileLink {
    /// The absolute URL (`https://host:port/api/files/{id}?expires=…&sig=…`).
    pub url: String,
    /// Unix seconds.
    pub expires: u64,
}

/// A downloaded file.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Download {
    /// Its Content-Type.
    pub content_type: String,
    /// Its bytes.
    pub bytes: Bytes,
}

impl HttpApi {
    /// The API at `url`: `http://host[:port]` or `https://host[:port]`
    /// (80 and 443 when none is named), or a connection URL — `ws://` and
    /// `wss://` map to `http://` and `https://` on the same host and port,
    /// `confabs://` to `https://` on its port. A `confab://` URL has no
    /// HTTP API on its port: [`Error::InvalidUrl`]. TLS trust and the
    /// request timeout come from `options`, and so does the token, if any
    /// ([`HttpApi::with_token`] sets another).
    pub fn new(url: &str, options: &ConnectOptions) -> Result<HttpApi, Error> {
        let invalid = |reason| invalid_url(url, reason);
        let (scheme, rest) = split_scheme(url)?;
        let tls = match scheme.to_ascii_lowercase().as_str() {
            "http" => false,
            "https" => true,
            _ => {
                let endpoint = Endpoint::parse(url)?;
                return HttpApi::for_endpoint(&endpoint, options).ok_or_else(|| {
                    invalid("the binary protocol's port serves no HTTP: give the server's http:// or https:// URL")
                });
            }
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#', '@']) {
            return Err(invalid("expected http(s)://host[:port], without a path"));
        }
        let (host, port) = host_port(authority, if tls { 443 } else { 80 }).map_err(invalid)?;
        Ok(HttpApi {
            tls,
            host,
            port,
            trust: options.tls_trust.clone(),
            token: options.token.clone(),
            timeout: options.request_timeout,
        })
    }

    /// The API of the server a connection to `endpoint` reaches; `None`
    /// for `confab://`, whose port serves no HTTP.
    pub(crate) fn for_endpoint(endpoint: &Endpoint, options: &ConnectOptions) -> Option<HttpApi> {
        let tls = match endpoint.scheme {
            Scheme::Ws => false,
            Scheme::Wss | Scheme::Tls => true,
            _ => return None,
        };
        Some(HttpApi {
            tls,
            host: endpoint.host.clone(),
            port: endpoint.port,
            trust: options.tls_trust.clone(),
            token: options.token.clone(),
            timeout: options.request_timeout,
        })
    }

    /// The same API as the user whose session token this is.
    pub fn with_token(mut self, token: impl Into<String>) -> HttpApi {
        self.token = Some(token.into());
        self
    }

    /// `http://host:port` or `https://host:port`.
    pub fn base(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://{}", self.authority())
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Uploads `bytes` named `name` to `room` (`POST /api/rooms/{id}/files`),
    /// declared as `content_type` (one of the server's allowlisted types,
    /// which the bytes must be). Refusals are [`Error::Http`] with
    /// FILE_REFUSED and a reason, NOT_A_MEMBER, UPLOAD_RATE_LIMITED, ….
    pub async fn upload(
        &self,
        room: RoomId,
        name: &str,
        content_type: &str,
        bytes: impl Into<Bytes>,
    ) -> Result<StoredFile, Error> {
        let path = format!("/api/rooms/{}/files?name={}", room.0, percent(name));
        let reply = self
            .send(Method::POST, &path, Some(content_type), bytes.into())
            .await?;
        let v = json(reply).await?;
        self.stored_file(&v)
            .ok_or_else(|| malformed("an upload's reply is not a file"))
    }

    /// Downloads file `id` (`GET /api/files/{id}`) into memory.
    pub async fn download(&self, id: u64) -> Result<Download, Error> {
        let reply = self.fetch(id).await?;
        let content_type = content_type(&reply);
        let bytes = reply
            .into_body()
            .collect()
            .await
            .map_err(broken)?
            .to_bytes();
        Ok(Download {
            content_type,
            bytes,
        })
    }

    /// Downloads file `id` into `out` as it arrives, never holding more
    /// than a chunk; returns how many bytes were written.
    pub async fn download_to<W: AsyncWrite + Unpin>(
        &self,
        id: u64,
        out: &mut W,
    ) -> Result<u64, Error> {
        let mut body = self.fetch(id).await?.into_body();
        let mut written = 0u64;
        while let Some(frame) = body.frame().await {
            if let Ok(data) = frame.map_err(broken)?.into_data() {
                out.write_all(&data).await?;
                written += data.len() as u64;
            }
        }
        out.flush().await?;
        Ok(written)
    }

    /// A fresh signed link to file `id` (`GET /api/files/{id}/url`).
    pub async fn file_link(&self, id: u64) -> Result<FileLink, Error> {
        let path = format!("/api/files/{id}/url");
        let v = json(self.send(Method::GET, &path, None, Bytes::new()).await?).await?;
        self.link(&v["url"], &v["expires"])
            .ok_or_else(|| malformed("a link reply has no url"))
    }

    /// Makes the image `bytes` (`content_type` image/png, image/jpeg,
    /// image/gif or image/webp) the caller's avatar (`PUT /api/me/avatar`);
    /// returns the caller's profile as it now is, `avatar` the new file's
    /// id.
    pub async fn set_avatar(
        &self,
        content_type: &str,
        bytes: impl Into<Bytes>,
    ) -> Result<Profile, Error> {
        let reply = self
            .send(
                Method::PUT,
                "/api/me/avatar",
                Some(content_type),
                bytes.into(),
            )
            .await?;
        profile(&json(reply).await?).ok_or_else(|| malformed("an avatar's reply is not a profile"))
    }

    /// Clears the caller's avatar (`DELETE /api/me/avatar`); returns their
    /// profile as it now is.
    pub async fn clear_avatar(&self) -> Result<Profile, Error> {
        let reply = self
            .send(Method::DELETE, "/api/me/avatar", None, Bytes::new())
            .await?;
        profile(&json(reply).await?).ok_or_else(|| malformed("the reply is not a profile"))
    }

    async fn fetch(&self, id: u64) -> Result<Response<Incoming>, Error> {
        let path = format!("/api/files/{id}");
        self.send(Method::GET, &path, None, Bytes::new()).await
    }

    /// One request on a new connection; a reply that is not a success
    /// becomes [`Error::Http`]. The timeout bounds everything up to the
    /// reply's head.
    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: Option<&str>,
        body: Bytes,
    ) -> Result<Response<Incoming>, Error> {
        let exchange = async {
            let io = open_http(&self.host, self.port, self.tls, &self.trust).await?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
                .await
                .map_err(broken)?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let mut req = Request::builder()
                .method(method)
                .uri(path)
                .header(HOST, self.authority());
            if let Some(token) = &self.token {
                req = req.header(AUTHORIZATION, format!("Bearer {token}"));
            }
            if let Some(ct) = content_type {
                req = req.header(CONTENT_TYPE, ct);
            }
            let req = req.body(Full::new(body)).map_err(broken)?;
            sender.send_request(req).await.map_err(broken)
        };
        let reply = tokio::time::timeout(self.timeout, exchange)
            .await
            .map_err(|_| Error::Timeout)??;
        if reply.status().is_success() {
            return Ok(reply);
        }
        Err(refusal(reply).await)
    }

    fn link(&self, url: &Value, expires: &Value) -> Option<FileLink> {
        Some(FileLink {
            url: format!("{}{}", self.base(), url.as_str()?),
            expires: expires.as_u64()?,
        })
    }

    fn stored_file(&self, v: &Value) -> Option<StoredFile> {
        let side = |k: &str| v[k].as_u64().and_then(|n| u32::try_from(n).ok());
        Some(StoredFile {
            id: v["id"].as_u64()?,
            room: RoomId(v["room"].as_u64()?),
            uploader: UserId(v["uploader"].as_u64()?),
            name: v["name"].as_str()?.to_owned(),
            content_type: v["content_type"].as_str()?.to_owned(),
            size: v["size"].as_u64()?,
            sha256: v["sha256"].as_str()?.to_owned(),
            width: side("width"),
            height: side("height"),
            link: self.link(&v["url"], &v["url_expires"])?,
        })
    }
}

fn broken(e: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Io(std::io::Error::other(e))
}

fn malformed(what: &str) -> Error {
    Error::Io(std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        what.to_owned(),
    ))
}

fn content_type(reply: &Response<Incoming>) -> String {
    reply
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/octet-stream")
        .to_owned()
}

/// Longest error body read.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// A reply's JSON body.
async fn json(reply: Response<Incoming>) -> Result<Value, Error> {
    let body = reply
        .into_body()
        .collect()
        .await
        .map_err(broken)?
        .to_bytes();
    serde_json::from_slice(&body).map_err(broken)
}

/// A reply that is not a success, as [`Error::Http`].
async fn refusal(reply: Response<Incoming>) -> Error {
    let status = reply.status().as_u16();
    let header_wait = reply
        .headers()
        .get(RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(Duration::from_secs);
    let body = http_body_util::Limited::new(reply.into_body(), MAX_ERROR_BODY)
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let e = &v["error"];
    let code = e["code"]
        .as_u64()
        .and_then(|c| u16::try_from(c).ok())
        .map(Code::from_u16);
    let body_wait = e["retry_after_ms"].as_u64().map(Duration::from_millis);
    Error::Http {
        status,
        code,
        reason: e["reason"].as_str().map(str::to_owned),
        message: e["message"].as_str().map_or_else(
            || String::from_utf8_lossy(&body).into_owned(),
            str::to_owned,
        ),
        retry_after: body_wait.or(header_wait),
    }
}

/// The API's profile shape as a [`Profile`].
fn profile(v: &Value) -> Option<Profile> {
    let text = |k: &str| v[k].as_str().map(str::to_owned);
    Some(Profile {
        user: UserId(v["user"].as_u64()?),
        username: text("username")?,
        display_name: text("display_name"),
        bio: text("bio").unwrap_or_default(),
        email: text("email"),
        avatar: v["avatar"].as_u64(),
    })
}

/// `name` for a query string: unreserved bytes as they are, the rest
/// percent-encoded.
fn percent(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn api(url: &str) -> Result<HttpApi, Error> {
        HttpApi::new(url, &ConnectOptions::default())
    }

    #[test]
    fn the_api_is_found_from_http_urls_and_connection_urls() {
        let base = |url: &str| api(url).map(|a| a.base());
        assert_eq!(base("http://h:7480").unwrap(), "http://h:7480");
        assert_eq!(base("https://h/").unwrap(), "https://h:443");
        assert_eq!(base("http://[::1]").unwrap(), "http://[::1]:80");
        assert_eq!(base("ws://h:7480/ws").unwrap(), "http://h:7480");
        assert_eq!(base("wss://h/ws").unwrap(), "https://h:443");
        assert_eq!(base("confabs://h").unwrap(), "https://h:7443");
        assert!(matches!(
            api("confab://h:7400"),
            Err(Error::InvalidUrl { .. })
        ));
        assert!(matches!(api("http://h/api"), Err(Error::InvalidUrl { .. })));
        assert!(matches!(api("http://h:0"), Err(Error::InvalidUrl { .. })));
        assert!(matches!(api("ftp://h"), Err(Error::UnsupportedScheme(_))));
    }

    #[test]
    fn names_are_percent_encoded_for_the_query() {
        assert_eq!(percent("a b/é.png"), "a%20b%2F%C3%A9.png");
        assert_eq!(percent("plain-name_1.txt"), "plain-name_1.txt");
    }
}
