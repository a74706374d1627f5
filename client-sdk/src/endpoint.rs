//! Server addresses: `confab://host:port` and friends.
//!
//! Parsing knows every scheme Confab speaks; how each is dialled is the
//! `transport` module's business.

use crate::Error;

/// Port used when a `confab://` URL names none.
pub const DEFAULT_PORT: u16 = 7400;
/// Port used when a `confabs://` URL names none.
pub const DEFAULT_TLS_PORT: u16 = 7443;

/// How the frames travel.
///
/// Non-exhaustive: later versions may add transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Scheme {
    /// `confab://`: plain TCP.
    Tcp,
    /// `confabs://`: TLS (ALPN `confab/1`).
    Tls,
    /// `ws://`: WebSocket, one frame per binary message.
    Ws,
    /// `wss://`: WebSocket over TLS.
    Wss,
}

impl Scheme {
    /// The scheme as written in a URL.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Tcp => "confab",
            Scheme::Tls => "confabs",
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
        }
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Tcp => DEFAULT_PORT,
            Scheme::Tls => DEFAULT_TLS_PORT,
            Scheme::Ws => 80,
            Scheme::Wss => 443,
        }
    }
}

/// A parsed server URL, from [`Endpoint::parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Endpoint {
    /// How the frames travel.
    pub scheme: Scheme,
    /// Host name or IP address; IPv6 addresses without their brackets.
    pub host: String,
    /// The port, the scheme's default when the URL names none.
    pub port: u16,
    /// The path (WebSocket upgrade target); `/` when the URL has none.
    pub path: String,
}

impl Endpoint {
    /// Parses `scheme://host[:port][/path]`. Unknown schemes are
    /// [`Error::UnsupportedScheme`]; malformed URLs are [`Error::InvalidUrl`].
    /// Only WebSocket URLs may carry a path other than `/`.
    pub fn parse(url: &str) -> Result<Endpoint, Error> {
        let invalid = |reason| invalid_url(url, reason);
        let (scheme, rest) = split_scheme(url)?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "confab" => Scheme::Tcp,
            "confabs" => Scheme::Tls,
            "ws" => Scheme::Ws,
            "wss" => Scheme::Wss,
            "" => return Err(invalid("missing scheme")),
            _ => return Err(Error::UnsupportedScheme(scheme.to_owned())),
        };
        if rest.contains(['?', '#']) {
            return Err(invalid("query strings and fragments are not supported"));
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.contains('@') {
            return Err(invalid("user information is not supported"));
        }
        if path != "/" && !matches!(scheme, Scheme::Ws | Scheme::Wss) {
            return Err(invalid("only WebSocket URLs may have a path"));
        }
        let (host, port) = host_port(authority, scheme.default_port()).map_err(invalid)?;
        Ok(Endpoint {
            scheme,
            host,
            port,
            path: path.to_owned(),
        })
    }
}

/// A comma-separated list of server URLs (the nodes of one cluster), in
/// the order to try them; one URL is a list of one.
pub(crate) fn parse_list(urls: &str) -> Result<Vec<Endpoint>, Error> {
    let endpoints = urls
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(Endpoint::parse)
        .collect::<Result<Vec<_>, _>>()?;
    if endpoints.is_empty() {
        return Err(invalid_url(urls, "no URL"));
    }
    Ok(endpoints)
}

/// [`Error::InvalidUrl`] for `url`.
pub(crate) fn invalid_url(url: &str, reason: &'static str) -> Error {
    Error::InvalidUrl {
        url: url.to_owned(),
        reason,
    }
}

/// `scheme://rest` split at the `://`.
pub(crate) fn split_scheme(url: &str) -> Result<(&str, &str), Error> {
    url.split_once("://")
        .ok_or_else(|| invalid_url(url, "expected scheme://host:port"))
}

/// `host[:port]` or `[v6][:port]`: the host (IPv6 without brackets) and
/// the port, `default_port` when none is written.
pub(crate) fn host_port(authority: &str, default_port: u16) -> Result<(String, u16), &'static str> {
    let (host, port) = split_host_port(authority)?;
    if host.is_empty() {
        return Err("missing host");
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(p) if p != 0 => p,
            _ => return Err("port must be a number from 1 to 65535"),
        },
    };
    Ok((host.to_owned(), port))
}

/// Splits `host[:port]` or `[v6][:port]`.
fn split_host_port(authority: &str) -> Result<(&str, Option<&str>), &'static str> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or("unclosed '[' in IPv6 address")?;
        return match after {
            "" => Ok((host, None)),
            _ => after
                .strip_prefix(':')
                .map(|p| (host, Some(p)))
                .ok_or("unexpected text after ']'"),
        };
    }
    match authority.split_once(':') {
        None => Ok((authority, None)),
        Some((_, p)) if p.contains(':') => Err("IPv6 addresses must be written in brackets"),
        Some((h, p)) => Ok((h, Some(p))),
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = self.scheme.as_str();
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)?;
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)?;
        }
        if self.path != "/" {
            f.write_str(&self.path)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(url: &str) -> Endpoint {
        match Endpoint::parse(url) {
            Ok(e) => e,
            Err(e) => panic!("{url}: {e}"),
        }
    }

    fn invalid(url: &str) -> bool {
        matches!(Endpoint::parse(url), Err(Error::InvalidUrl { .. }))
    }

    #[test]
    fn plain_tcp_url_with_port() {
        let e = ok("confab://127.0.0.1:7400");
        assert_eq!(
            (e.scheme, e.host.as_str(), e.port, e.path.as_str()),
            (Scheme::Tcp, "127.0.0.1", 7400, "/")
        );
        assert_eq!(e.to_string(), "confab://127.0.0.1:7400");
    }

    #[test]
    fn a_comma_separated_list_is_parsed_in_order() {
        let list = parse_list("confab://a:7400, confab://b:7401,").unwrap();
        assert_eq!(list, vec![ok("confab://a:7400"), ok("confab://b:7401")]);
        assert_eq!(parse_list("confab://a").unwrap(), vec![ok("confab://a")]);
        assert!(matches!(parse_list(" , "), Err(Error::InvalidUrl { .. })));
        assert!(matches!(
            parse_list("confab://a,http://b"),
            Err(Error::UnsupportedScheme(_))
        ));
    }

    #[test]
    fn port_defaults_per_scheme() {
        assert_eq!(ok("confab://chat.example").port, DEFAULT_PORT);
        assert_eq!(ok("confabs://chat.example/").port, DEFAULT_TLS_PORT);
        assert_eq!(ok("ws://chat.example").port, 80);
        assert_eq!(ok("wss://chat.example").port, 443);
    }

    #[test]
    fn scheme_is_case_insensitive() {
        assert_eq!(ok("CONFAB://localhost:1").scheme, Scheme::Tcp);
    }

    #[test]
    fn ipv6_hosts_use_brackets() {
        let e = ok("confab://[::1]:9000");
        assert_eq!((e.host.as_str(), e.port), ("::1", 9000));
        assert_eq!(e.to_string(), "confab://[::1]:9000");
        assert_eq!(ok("confab://[::1]").port, DEFAULT_PORT);
        assert!(invalid("confab://::1:9000"));
        assert!(invalid("confab://[::1"));
        assert!(invalid("confab://[::1]x"));
    }

    #[test]
    fn websocket_urls_keep_their_path() {
        let e = ok("wss://chat.example:8443/confab");
        assert_eq!(
            (e.scheme, e.port, e.path.as_str()),
            (Scheme::Wss, 8443, "/confab")
        );
    }

    #[test]
    fn unknown_schemes_are_unsupported_not_invalid() {
        assert!(
            matches!(Endpoint::parse("http://x:1"), Err(Error::UnsupportedScheme(s)) if s == "http")
        );
    }

    #[test]
    fn malformed_urls_are_invalid() {
        for url in [
            "",
            "127.0.0.1:7400",
            "://host:1",
            "confab://",
            "confab://:7400",
            "confab://host:",
            "confab://host:0",
            "confab://host:65536",
            "confab://host:abc",
            "confab://user@host:1",
            "confab://host:1/path",
            "confab://host:1?x=1",
        ] {
            assert!(invalid(url), "{url:?} should be invalid");
        }
    }
}
