//! The value types of settings. Each parses from text (`FromStr`: flags,
//! environment variables and TOML values alike) and prints as it parses
//! (`Display`: the defaults `--help` shows), so the settings table needs
//! nothing else from them.

use std::fmt;
use std::net::SocketAddr;
use std::ops::Deref;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use confab_store::postgres::{redact_url, DatabaseUrl};

/// An optional value: absent by default, `none` (or empty) to unset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opt<T>(pub Option<T>);

impl<T> Default for Opt<T> {
    fn default() -> Self {
        Opt(None)
    }
}

impl<T> Opt<T> {
    pub fn as_ref(&self) -> Option<&T> {
        self.0.as_ref()
    }
}

impl<T: FromStr> FromStr for Opt<T> {
    type Err = T::Err;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() || s.eq_ignore_ascii_case("none") {
            return Ok(Opt(None));
        }
        s.parse().map(|v| Opt(Some(v)))
    }
}

impl<T: fmt::Display> fmt::Display for Opt<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(v) => v.fmt(f),
            None => f.write_str("none"),
        }
    }
}

/// A path (always parses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Path(pub PathBuf);

impl FromStr for Path {
    type Err = std::convert::Infallible;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Path(PathBuf::from(s)))
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.display().fmt(f)
    }
}

impl Deref for Path {
    type Target = std::path::Path;

    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

/// Defines a duration setting written as a whole number of one unit.
macro_rules! duration_in {
    ($(#[$meta:meta])* $name:ident, $unit_secs_num:expr, $unit_secs_den:expr) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub struct $name(pub u64);

        impl $name {
            /// The duration.
            pub fn get(self) -> Duration {
                Duration::from_nanos(
                    (self.0 as u128 * 1_000_000_000 * $unit_secs_num / $unit_secs_den)
                        .min(u64::MAX as u128) as u64,
                )
            }
        }

        impl FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

duration_in!(
    /// A duration in milliseconds.
    Millis, 1, 1000
);
duration_in!(
    /// A duration in seconds.
    Secs, 1, 1
);
duration_in!(
    /// A duration in hours.
    Hours, 3600, 1
);
duration_in!(
    /// A duration in days.
    Days, 86_400, 1
);

/// A listener: an address, or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listen {
    Off,
    On(SocketAddr),
}

impl Listen {
    /// The address, unless the listener is off.
    pub fn addr(self) -> Option<SocketAddr> {
        match self {
            Listen::Off => None,
            Listen::On(addr) => Some(addr),
        }
    }
}

impl FromStr for Listen {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("off") {
            return Ok(Listen::Off);
        }
        s.parse()
            .map(Listen::On)
            .map_err(|_| format!("{s:?} is not an address (host:port) or \"off\""))
    }
}

impl fmt::Display for Listen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Listen::Off => f.write_str("off"),
            Listen::On(addr) => addr.fmt(f),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("{s:?} is not text or json")),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// A comma-separated list of WebSocket origins; blanks are dropped and a
/// trailing slash is ignored (browsers send `https://host`, people write
/// `https://host/`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Origins(pub Vec<String>);

impl FromStr for Origins {
    type Err = std::convert::Infallible;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        Ok(Origins(
            list.split(',')
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect(),
        ))
    }
}

impl fmt::Display for Origins {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

/// A comma-separated list of networks in CIDR notation (`10.0.0.0/8`,
/// `::1`, `fd00::/8`); a bare address is a network of one. "none" or
/// empty: no networks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Networks(pub Vec<(std::net::IpAddr, u8)>);

impl Networks {
    /// Whether `ip` is in one of the networks (an IPv4-mapped IPv6
    /// address counts as its IPv4 address).
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr;
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        self.0.iter().any(|&(net, bits)| match (net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - bits as u32).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - bits as u32).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        })
    }
}

impl FromStr for Networks {
    type Err = String;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        if list.trim() == "none" {
            return Ok(Networks::default());
        }
        let mut nets = Vec::new();
        for item in list.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let (addr, bits) = match item.split_once('/') {
                Some((a, b)) => (a, Some(b)),
                None => (item, None),
            };
            let addr: std::net::IpAddr = addr
                .parse()
                .map_err(|_| format!("{item:?} is not an IP address or network"))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let bits = match bits {
                None => max,
                Some(b) => b
                    .parse::<u8>()
                    .ok()
                    .filter(|&b| b <= max)
                    .ok_or_else(|| format!("{item:?}: the prefix length must be 0-{max}"))?,
            };
            nets.push((addr, bits));
        }
        Ok(Networks(nets))
    }
}

impl fmt::Display for Networks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("none");
        }
        let items: Vec<String> = self.0.iter().map(|(a, b)| format!("{a}/{b}")).collect();
        f.write_str(&items.join(","))
    }
}

/// A `postgres://` (or `postgresql://`) URL; shown without its password.
#[derive(Debug, Clone)]
pub struct PostgresUrl(pub DatabaseUrl);

impl FromStr for PostgresUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatabaseUrl::postgres(s).map(PostgresUrl).ok_or_else(|| {
            format!(
                "{} is not a postgres:// URL (without one, confabd uses SQLite in data_dir)",
                redact_url(s)
            )
        })
    }
}

impl fmt::Display for PostgresUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl PartialEq for PostgresUrl {
    fn eq(&self, other: &Self) -> bool {
        self.0.expose() == other.0.expose()
    }
}

/// Any count or size that may be 0 (`u64` under another name, so that the
/// table reads like its documentation).
pub type Count = u64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_whole_numbers_of_their_unit() {
        assert_eq!(
            "250".parse::<Millis>().unwrap().get(),
            Duration::from_millis(250)
        );
        assert_eq!(Hours(2).get(), Duration::from_secs(7200));
        assert_eq!(Days(30).get(), Duration::from_secs(30 * 86_400));
        assert_eq!(
            Days(u64::MAX).get(),
            Duration::from_nanos(u64::MAX),
            "saturates"
        );
        assert!("1.5".parse::<Secs>().is_err());
    }

    #[test]
    fn listeners_are_addresses_or_off() {
        assert_eq!("off".parse::<Listen>().unwrap(), Listen::Off);
        assert_eq!("OFF".parse::<Listen>().unwrap().addr(), None);
        let on = "127.0.0.1:9".parse::<Listen>().unwrap();
        assert_eq!(on.to_string(), "127.0.0.1:9");
        let err = "localhost".parse::<Listen>().unwrap_err();
        assert!(err.contains("not an address"), "{err}");
    }

    #[test]
    fn origins_are_split_trimmed_and_normalised() {
        let o: Origins = " https://a.example/, http://b.example:8080 ,,"
            .parse()
            .unwrap();
        assert_eq!(o.0, ["https://a.example", "http://b.example:8080"]);
        assert!("".parse::<Origins>().unwrap().0.is_empty());
    }

    #[test]
    fn networks_parse_and_match() {
        let n: Networks = "127.0.0.0/8, ::1, 10.1.2.3, fd00::/8".parse().unwrap();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(n.contains(ip("127.9.9.9")) && n.contains(ip("::1")) && n.contains(ip("10.1.2.3")));
        assert!(n.contains(ip("::ffff:127.0.0.1")), "IPv4-mapped");
        assert!(n.contains(ip("fdab::1")));
        assert!(
            !n.contains(ip("10.1.2.4")) && !n.contains(ip("::2")) && !n.contains(ip("128.0.0.1"))
        );
        assert_eq!(n.to_string(), "127.0.0.0/8,::1/128,10.1.2.3/32,fd00::/8");
        assert_eq!(n.to_string().parse::<Networks>().unwrap(), n, "round trip");
        assert!("0.0.0.0/0"
            .parse::<Networks>()
            .unwrap()
            .contains(ip("8.8.8.8")));
        assert!("none".parse::<Networks>().unwrap().0.is_empty());
        assert!("10.0.0.0/33".parse::<Networks>().is_err());
        assert!("example.com".parse::<Networks>().is_err());
    }

    #[test]
    fn optional_values_unset_with_none() {
        assert_eq!("none".parse::<Opt<u32>>().unwrap(), Opt(None));
        assert_eq!("".parse::<Opt<u32>>().unwrap(), Opt(None));
        assert_eq!("7".parse::<Opt<u32>>().unwrap(), Opt(Some(7)));
        assert_eq!(Opt::<u32>(None).to_string(), "none");
    }

    #[test]
    fn postgres_urls_are_checked_and_never_shown_with_their_password() {
        let url: PostgresUrl = "postgres://u:secret@h/db".parse().unwrap();
        assert_eq!(url.to_string(), "postgres://u:***@h/db");
        let err = "mysql://u:secret@h/db".parse::<PostgresUrl>().unwrap_err();
        assert!(
            err.contains("mysql://u:***@h/db") && !err.contains("secret"),
            "{err}"
        );
    }
}
