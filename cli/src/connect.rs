//! Reaching the server: which URL, which TLS trust, which stored session,
//! and naming a room by id or by name.

use std::time::Duration;

use confab_sdk::{Client, ConnectOptions, ReconnectPolicy, RoomId, RoomInfo};

use crate::exit::{Failure, Kind};
use crate::session::{self, Stored};

/// The URL used when neither `--url`, `CONFAB_URL` nor a stored session
/// names one.
pub const DEFAULT_URL: &str = "confab://127.0.0.1:7400";

/// Where to connect and how to trust TLS (the global flags).
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// `--url` or `CONFAB_URL`, if given: one server's URL, or the nodes
    /// of one cluster comma-separated (passed as they are to
    /// [`Client::connect`], which tries them in order and moves on to the
    /// next after losing one).
    pub url: Option<String>,
    /// `--ca-cert`: a PEM file to trust instead of the public CAs.
    pub ca_cert: Option<std::path::PathBuf>,
    /// `--fingerprint`: the one certificate to trust (self-signed servers).
    pub fingerprint: Option<String>,
}

impl Target {
    /// The URL (or comma-separated URLs) to use: the flag, else the
    /// stored session's server, else [`DEFAULT_URL`]; a list written
    /// with spaces after its commas is the same list without them.
    pub fn url(&self, stored: Option<&Stored>) -> String {
        let url = self
            .url
            .clone()
            .or_else(|| stored.map(|s| s.url.clone()))
            .unwrap_or_else(|| DEFAULT_URL.to_owned());
        normalize(&url)
    }

    /// Connect options with the TLS trust asked for.
    pub fn options(&self) -> Result<ConnectOptions, Failure> {
        let mut options = ConnectOptions::new().with_connect_timeout(Duration::from_secs(10));
        if let Some(path) = &self.ca_cert {
            let pem = std::fs::read(path).map_err(|e| {
                Failure::usage(format!("cannot read --ca-cert {}: {e}", path.display()))
            })?;
            options = options.with_trusted_pem(pem);
        }
        if let Some(fp) = &self.fingerprint {
            options = options
                .with_fingerprint(fp)
                .map_err(|e| Failure::usage(format!("--fingerprint: {e}")))?;
        }
        Ok(options)
    }

    /// A client authenticated with the stored session for this target's
    /// server; `Auth` failures when there is none or it no longer works.
    pub async fn connect_stored(&self, follow: bool) -> Result<(Client, Stored), Failure> {
        let stored = session::load().ok_or_else(Failure::not_logged_in)?;
        let url = self.url(Some(&stored));
        if url != normalize(&stored.url) {
            return Err(Failure::new(
                Kind::Auth,
                format!(
                    "not logged in to {url} (the stored session is for {}): run `confab login`",
                    stored.url
                ),
            ));
        }
        let mut options = self.options()?.with_token(stored.token.clone());
        if follow {
            options = options.with_reconnect(reconnect_policy());
        }
        let client = Client::connect(&url, options).await?;
        Ok((client, stored))
    }
}

/// `urls` with each comma-separated URL trimmed and empty entries left
/// out, so that `a, b` and `a,b` name the same servers (and the same
/// stored session). Anything else — order, scheme, host — is left to
/// [`Client::connect`] to parse and report.
pub fn normalize(urls: &str) -> String {
    let list: Vec<&str> = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    if list.is_empty() {
        // Nothing to connect to: let the SDK say so.
        return urls.to_owned();
    }
    list.join(",")
}

/// How long-running modes (tail, the UI) reconnect.
pub fn reconnect_policy() -> ReconnectPolicy {
    ReconnectPolicy::exponential(Duration::from_millis(250), Duration::from_secs(10))
}

/// The room `name` names among the caller's rooms: `#12` or `12` by id,
/// else by name (case-insensitive; a direct chat by the other user's
/// name). Falls back to the rooms visible by that exact name.
pub async fn resolve_room(client: &Client, name: &str) -> Result<RoomInfo, Failure> {
    let mine = client.my_rooms().await?;
    if let Some(id) = parse_room_id(name) {
        if let Some(room) = mine.iter().find(|r| r.id == id) {
            return Ok(room.clone());
        }
        return Err(Failure::new(
            Kind::NotFound,
            format!("you are not in a room #{}", id.0),
        ));
    }
    let wanted = name.trim();
    let matching: Vec<&RoomInfo> = mine
        .iter()
        .filter(|r| r.name.eq_ignore_ascii_case(wanted))
        .collect();
    match matching.as_slice() {
        [one] => return Ok((*one).clone()),
        [] => {}
        several => return Err(ambiguous(wanted, several.iter().copied())),
    }
    let visible = client.rooms_named(wanted, 0, 20).await?;
    match visible.rooms.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(Failure::new(
            Kind::NotFound,
            format!("no room named {wanted:?}"),
        )),
        several => Err(ambiguous(wanted, several.iter())),
    }
}

/// `12` or `#12` as a room id.
pub fn parse_room_id(text: &str) -> Option<RoomId> {
    text.trim()
        .strip_prefix('#')
        .unwrap_or(text.trim())
        .parse::<u64>()
        .ok()
        .map(RoomId)
}

fn ambiguous<'a>(name: &str, rooms: impl Iterator<Item = &'a RoomInfo>) -> Failure {
    let ids: Vec<String> = rooms.map(|r| format!("#{}", r.id.0)).collect();
    Failure::new(
        Kind::NotFound,
        format!(
            "several rooms are named {name:?} ({}): name one by id",
            ids.join(", ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_with_or_without_hash() {
        assert_eq!(parse_room_id("12"), Some(RoomId(12)));
        assert_eq!(parse_room_id("#7"), Some(RoomId(7)));
        assert_eq!(parse_room_id("general"), None);
        assert_eq!(parse_room_id("#"), None);
    }

    #[test]
    fn the_url_flag_wins_over_the_stored_session() {
        let stored = Stored {
            url: "confab://stored:1".into(),
            username: "a".into(),
            token: "t".into(),
        };
        let flag = Target {
            url: Some("ws://flag:2/ws".into()),
            ..Target::default()
        };
        assert_eq!(flag.url(Some(&stored)), "ws://flag:2/ws");
        assert_eq!(Target::default().url(Some(&stored)), "confab://stored:1");
        assert_eq!(Target::default().url(None), DEFAULT_URL);
    }

    #[test]
    fn a_list_of_servers_is_kept_in_order_without_spaces() {
        let flag = Target {
            url: Some(" confab://a:1 , confab://b:2,,confab://c:3 ".into()),
            ..Target::default()
        };
        assert_eq!(flag.url(None), "confab://a:1,confab://b:2,confab://c:3");
        assert_eq!(normalize("confab://a:1"), "confab://a:1");
        assert_eq!(normalize(" , "), " , ", "left for the SDK to refuse");
    }
}
