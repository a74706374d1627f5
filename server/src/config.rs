//! Configuration: defaults, an optional TOML file, `CONFAB_*` environment
//! variables and command-line flags, in increasing order of precedence.
//!
//! [`Cli`] is what clap parses (every flag also reads its environment
//! variable); [`FileConfig`] is what a `--config` file may set; both fold
//! into one [`Config`] that the rest of the server reads.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use confab_protocol::frame::{DEFAULT_MAX_FRAME_LEN, MAX_SERVER_FRAME_LEN};
use serde::Deserialize;

/// Everything the server needs to know at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    /// Plain TCP listener for the binary protocol.
    pub listen: SocketAddr,
    /// Directory for the embedded SQLite database (`confab.db`).
    pub data_dir: PathBuf,
    /// Postgres database to use instead of the embedded SQLite file (from
    /// `--database-url`, `CONFAB_DATABASE_URL`, `DATABASE_URL` or the
    /// file's `database_url`). Shown redacted by `Debug`.
    pub database_url: Option<confab_store::postgres::DatabaseUrl>,
    /// How batches send their events to Postgres (unnest or copy).
    pub pg_batch_mode: confab_store::postgres::PgBatchMode,
    /// Number of room shards (tasks that own rooms).
    pub shards: usize,
    /// Largest frame length accepted (the length field's value).
    pub max_frame_len: u32,
    /// Largest message body in bytes.
    pub max_message_len: u32,
    /// Clients must send something at least this often.
    pub heartbeat: Duration,
    /// HELLO must arrive within this time.
    pub handshake_timeout: Duration,
    /// Bound of each connection's outbound queue; beyond it the connection
    /// is closed as a slow consumer.
    pub outbound_queue_bytes: usize,
    /// The batch writer commits at most this many operations at once.
    pub batch_max_items: usize,
    /// How long the batch writer waits for more operations before committing
    /// a batch that is not full (0: commit as soon as the writer is free).
    pub batch_max_delay: Duration,
    /// Recent events kept in memory per room (for resume and history).
    pub room_tail_events: usize,
    /// Where the write spool keeps batches while the database is
    /// unreachable (`None`: `DATA_DIR/spool`).
    pub spool_dir: Option<PathBuf>,
    /// Largest size of the write spool's records; beyond it writes are
    /// refused while the database is unreachable. 0 disables the spool.
    pub spool_max_bytes: u64,
    /// Messages per second per connection (0: unlimited).
    pub rate_limit_per_sec: u32,
    /// Burst allowance of the message rate limit.
    pub rate_limit_burst: u32,
    /// How long a session token stays valid.
    pub session_ttl: Duration,
    /// argon2id memory cost in KiB.
    pub kdf_memory_kib: u32,
    /// argon2id iterations.
    pub kdf_iterations: u32,
    /// Ended user–room associations (room log) older than this are removed.
    pub room_log_retention: Duration,
    /// Notifications older than this are removed.
    pub notification_retention: Duration,
    /// How often housekeeping runs.
    pub housekeeping_interval: Duration,
    /// Admin listener serving Prometheus `/metrics`. `None` in
    /// `Config::default()` (embedded servers and tests); the `confabd`
    /// binary defaults to `127.0.0.1:9464`.
    pub metrics_listen: Option<SocketAddr>,
    /// The TLS, HTTP and WebSocket doors (`net/config.rs`).
    pub net: crate::net::NetConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 7400)),
            data_dir: PathBuf::from("confab-data"),
            database_url: None,
            pg_batch_mode: confab_store::postgres::PgBatchMode::default(),
            shards: std::thread::available_parallelism()
                .map(|n| n.get())
                .unwrap_or(1),
            max_frame_len: confab_protocol::frame::DEFAULT_MAX_FRAME_LEN,
            max_message_len: 4096,
            heartbeat: Duration::from_secs(30),
            handshake_timeout: Duration::from_secs(10),
            outbound_queue_bytes: 4 * 1024 * 1024,
            batch_max_items: 1024,
            batch_max_delay: Duration::ZERO,
            room_tail_events: 256,
            spool_dir: None,
            spool_max_bytes: 1024 * 1024 * 1024,
            rate_limit_per_sec: 50,
            rate_limit_burst: 100,
            session_ttl: Duration::from_secs(30 * 24 * 3600),
            kdf_memory_kib: 19 * 1024,
            kdf_iterations: 2,
            room_log_retention: Duration::from_secs(30 * DAY_SECS),
            notification_retention: Duration::from_secs(90 * DAY_SECS),
            housekeeping_interval: Duration::from_secs(3600),
            metrics_listen: None,
            net: crate::net::NetConfig::default(),
        }
    }
}

/// `confabd` command line. Every flag can also be set by the environment
/// variable named beside it, or in the `--config` TOML file under the same
/// name with underscores (e.g. `max_message_len = 8192`).
#[derive(Debug, Parser, Default)]
#[command(
    name = "confabd",
    version,
    about = "Confab: a fast, durable real-time chat-room server"
)]
pub struct Cli {
    /// TOML configuration file (flags and environment variables override it).
    #[arg(long, env = "CONFAB_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address of the plain TCP listener for the binary protocol [default: 127.0.0.1:7400].
    #[arg(long, env = "CONFAB_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Data directory; the embedded SQLite store lives in DATA_DIR/confab.db [default: ./confab-data].
    #[arg(long, env = "CONFAB_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Postgres database (postgres://user:password@host:port/db) instead of the embedded SQLite file; DATABASE_URL is read too when it names a Postgres database [default: none, SQLite].
    #[arg(long, env = "CONFAB_DATABASE_URL")]
    pub database_url: Option<String>,
    /// How each batch sends its events to Postgres: "unnest" (INSERT … SELECT FROM unnest) or "copy" (COPY … FROM STDIN binary) [default: unnest].
    #[arg(long, env = "CONFAB_PG_BATCH_MODE")]
    pub pg_batch_mode: Option<String>,
    /// Number of room shards [default: number of CPU cores].
    #[arg(long, env = "CONFAB_SHARDS")]
    pub shards: Option<usize>,
    /// Maximum frame length in bytes [default: 65536].
    #[arg(long, env = "CONFAB_MAX_FRAME_LEN")]
    pub max_frame_len: Option<u32>,
    /// Maximum message body in bytes [default: 4096].
    #[arg(long, env = "CONFAB_MAX_MESSAGE_LEN")]
    pub max_message_len: Option<u32>,
    /// Heartbeat interval in milliseconds announced to clients; silent connections are closed after 3 intervals [default: 30000].
    #[arg(long, env = "CONFAB_HEARTBEAT_MS")]
    pub heartbeat_ms: Option<u64>,
    /// Milliseconds a new connection has to send HELLO [default: 10000].
    #[arg(long, env = "CONFAB_HANDSHAKE_TIMEOUT_MS")]
    pub handshake_timeout_ms: Option<u64>,
    /// Per-connection outbound queue bound in bytes; a connection that falls this far behind is closed [default: 4194304].
    #[arg(long, env = "CONFAB_OUTBOUND_QUEUE_BYTES")]
    pub outbound_queue_bytes: Option<usize>,
    /// Maximum operations per storage commit (group commit) [default: 1024].
    #[arg(long, env = "CONFAB_BATCH_MAX_ITEMS")]
    pub batch_max_items: Option<usize>,
    /// Milliseconds the batch writer may wait to fill a batch; 0 commits as soon as the writer is free [default: 0].
    #[arg(long, env = "CONFAB_BATCH_MAX_DELAY_MS")]
    pub batch_max_delay_ms: Option<u64>,
    /// Recent events kept in memory per room for resume and fast history [default: 256].
    #[arg(long, env = "CONFAB_ROOM_TAIL_EVENTS")]
    pub room_tail_events: Option<usize>,
    /// Directory of the write spool, where writes wait (fsync'd) while the database is unreachable [default: DATA_DIR/spool].
    #[arg(long, env = "CONFAB_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Largest size of the write spool in bytes; when it is full (or unwritable) writes are refused with STORAGE_UNAVAILABLE while the database is unreachable; 0 disables the spool [default: 1073741824].
    #[arg(long, env = "CONFAB_SPOOL_MAX_BYTES")]
    pub spool_max_bytes: Option<u64>,
    /// Messages per second allowed per connection; 0 disables the limit [default: 50].
    #[arg(long, env = "CONFAB_RATE_LIMIT_PER_SEC")]
    pub rate_limit_per_sec: Option<u32>,
    /// Burst of messages allowed above the rate [default: 100].
    #[arg(long, env = "CONFAB_RATE_LIMIT_BURST")]
    pub rate_limit_burst: Option<u32>,
    /// Session token lifetime in hours [default: 720].
    #[arg(long, env = "CONFAB_SESSION_TTL_HOURS")]
    pub session_ttl_hours: Option<u64>,
    /// argon2id memory cost in KiB [default: 19456].
    #[arg(long, env = "CONFAB_KDF_MEMORY_KIB")]
    pub kdf_memory_kib: Option<u32>,
    /// argon2id iterations [default: 2].
    #[arg(long, env = "CONFAB_KDF_ITERATIONS")]
    pub kdf_iterations: Option<u32>,
    /// Days after which a user's ended association with a room (not a ban) is forgotten [default: 30].
    #[arg(long, env = "CONFAB_ROOM_LOG_RETENTION_DAYS")]
    pub room_log_retention_days: Option<u64>,
    /// Days after which notifications are deleted [default: 90].
    #[arg(long, env = "CONFAB_NOTIFICATION_RETENTION_DAYS")]
    pub notification_retention_days: Option<u64>,
    /// Seconds between housekeeping passes [default: 3600].
    #[arg(long, env = "CONFAB_HOUSEKEEPING_INTERVAL_SECS")]
    pub housekeeping_interval_secs: Option<u64>,
    /// Log format: "text" or "json" [default: text]. Levels come from RUST_LOG (default "info").
    #[arg(long, env = "CONFAB_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Admin listener serving Prometheus metrics at /metrics; "off" disables it [default: 127.0.0.1:9464].
    #[arg(long, env = "CONFAB_METRICS_LISTEN")]
    pub metrics_listen: Option<String>,
    #[command(flatten)]
    pub net: crate::net::NetFlags,
}

/// What a `--config` TOML file may contain. Unknown keys are errors, so a
/// typo does not silently fall back to a default.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub database_url: Option<String>,
    pub pg_batch_mode: Option<String>,
    pub shards: Option<usize>,
    pub max_frame_len: Option<u32>,
    pub max_message_len: Option<u32>,
    pub heartbeat_ms: Option<u64>,
    pub handshake_timeout_ms: Option<u64>,
    pub outbound_queue_bytes: Option<usize>,
    pub batch_max_items: Option<usize>,
    pub batch_max_delay_ms: Option<u64>,
    pub room_tail_events: Option<usize>,
    pub spool_dir: Option<PathBuf>,
    pub spool_max_bytes: Option<u64>,
    pub rate_limit_per_sec: Option<u32>,
    pub rate_limit_burst: Option<u32>,
    pub session_ttl_hours: Option<u64>,
    pub kdf_memory_kib: Option<u32>,
    pub kdf_iterations: Option<u32>,
    pub room_log_retention_days: Option<u64>,
    pub notification_retention_days: Option<u64>,
    pub housekeeping_interval_secs: Option<u64>,
    pub log_format: Option<String>,
    pub metrics_listen: Option<String>,
    // The doors (`net/config.rs`); same names as the flags.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_self_signed: Option<bool>,
    pub tls_listen: Option<SocketAddr>,
    pub http_listen: Option<String>,
    pub allowed_origins: Option<String>,
}

/// A configuration value that cannot work.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
    #[error("invalid setting {name}: {reason}")]
    Invalid { name: &'static str, reason: String },
}

impl Cli {
    /// Folds defaults, the config file (if any) and these flags into a
    /// validated [`Config`]; also returns the log format.
    pub fn resolve(self) -> Result<(Config, String), ConfigError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str::<FileConfig>(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source,
                })?
            }
            None => FileConfig::default(),
        };
        let d = Config::default();
        let ms = Duration::from_millis;
        let net = crate::net::NetConfig::resolve(self.net, &file)?;
        let cfg = Config {
            listen: self.listen.or(file.listen).unwrap_or(d.listen),
            data_dir: self.data_dir.or(file.data_dir).unwrap_or(d.data_dir),
            database_url: resolve_database_url(
                self.database_url,
                std::env::var("DATABASE_URL").ok(),
                file.database_url,
            )?,
            pg_batch_mode: match self.pg_batch_mode.or(file.pg_batch_mode) {
                Some(mode) => mode.parse().map_err(|reason| ConfigError::Invalid {
                    name: "pg_batch_mode",
                    reason,
                })?,
                None => d.pg_batch_mode,
            },
            shards: self.shards.or(file.shards).unwrap_or(d.shards),
            max_frame_len: self
                .max_frame_len
                .or(file.max_frame_len)
                .unwrap_or(d.max_frame_len),
            max_message_len: self
                .max_message_len
                .or(file.max_message_len)
                .unwrap_or(d.max_message_len),
            heartbeat: self
                .heartbeat_ms
                .or(file.heartbeat_ms)
                .map(ms)
                .unwrap_or(d.heartbeat),
            handshake_timeout: self
                .handshake_timeout_ms
                .or(file.handshake_timeout_ms)
                .map(ms)
                .unwrap_or(d.handshake_timeout),
            outbound_queue_bytes: self
                .outbound_queue_bytes
                .or(file.outbound_queue_bytes)
                .unwrap_or(d.outbound_queue_bytes),
            batch_max_items: self
                .batch_max_items
                .or(file.batch_max_items)
                .unwrap_or(d.batch_max_items),
            batch_max_delay: self
                .batch_max_delay_ms
                .or(file.batch_max_delay_ms)
                .map(ms)
                .unwrap_or(d.batch_max_delay),
            room_tail_events: self
                .room_tail_events
                .or(file.room_tail_events)
                .unwrap_or(d.room_tail_events),
            spool_dir: self.spool_dir.or(file.spool_dir).or(d.spool_dir),
            spool_max_bytes: self
                .spool_max_bytes
                .or(file.spool_max_bytes)
                .unwrap_or(d.spool_max_bytes),
            rate_limit_per_sec: self
                .rate_limit_per_sec
                .or(file.rate_limit_per_sec)
                .unwrap_or(d.rate_limit_per_sec),
            rate_limit_burst: self
                .rate_limit_burst
                .or(file.rate_limit_burst)
                .unwrap_or(d.rate_limit_burst),
            session_ttl: self
                .session_ttl_hours
                .or(file.session_ttl_hours)
                .map(|h| Duration::from_secs(h * 3600))
                .unwrap_or(d.session_ttl),
            kdf_memory_kib: self
                .kdf_memory_kib
                .or(file.kdf_memory_kib)
                .unwrap_or(d.kdf_memory_kib),
            kdf_iterations: self
                .kdf_iterations
                .or(file.kdf_iterations)
                .unwrap_or(d.kdf_iterations),
            room_log_retention: days(
                self.room_log_retention_days
                    .or(file.room_log_retention_days),
            )
            .unwrap_or(d.room_log_retention),
            notification_retention: days(
                self.notification_retention_days
                    .or(file.notification_retention_days),
            )
            .unwrap_or(d.notification_retention),
            housekeeping_interval: self
                .housekeeping_interval_secs
                .or(file.housekeeping_interval_secs)
                .map(Duration::from_secs)
                .unwrap_or(d.housekeeping_interval),
            metrics_listen: parse_metrics_listen(self.metrics_listen.or(file.metrics_listen))?,
            net,
        };
        let log_format = self
            .log_format
            .or(file.log_format)
            .unwrap_or_else(|| "text".into());
        if log_format != "text" && log_format != "json" {
            return Err(ConfigError::Invalid {
                name: "log_format",
                reason: format!("{log_format:?} is not text or json"),
            });
        }
        cfg.validate()?;
        Ok((cfg, log_format))
    }
}

const DAY_SECS: u64 = 24 * 3600;

fn days(n: Option<u64>) -> Option<Duration> {
    n.map(|d| Duration::from_secs(d * DAY_SECS))
}

/// The Postgres URL, by precedence: `--database-url` (or
/// `CONFAB_DATABASE_URL`), then `DATABASE_URL`, then the file. A URL given
/// for Confab that is not Postgres' is an error; the generic
/// `DATABASE_URL` is only taken when it names a Postgres database (other
/// tools set it for other databases).
fn resolve_database_url(
    explicit: Option<String>,
    generic_env: Option<String>,
    file: Option<String>,
) -> Result<Option<confab_store::postgres::DatabaseUrl>, ConfigError> {
    use confab_store::postgres::DatabaseUrl;
    if let Some(url) = generic_env
        .as_deref()
        .filter(|_| explicit.is_none())
        .and_then(DatabaseUrl::postgres)
    {
        return Ok(Some(url));
    }
    match explicit.or(file).filter(|u| !u.is_empty()) {
        None => Ok(None),
        Some(url) => match DatabaseUrl::postgres(&url) {
            Some(url) => Ok(Some(url)),
            None => Err(ConfigError::Invalid {
                name: "database_url",
                reason: format!(
                    "{} is not a postgres:// URL (without one, confabd uses SQLite in data_dir)",
                    confab_store::postgres::redact_url(&url)
                ),
            }),
        },
    }
}

/// `--metrics-listen`: an address, or `off`; absent means the default.
fn parse_metrics_listen(value: Option<String>) -> Result<Option<SocketAddr>, ConfigError> {
    let value = value.unwrap_or_else(|| crate::metrics::DEFAULT_METRICS_LISTEN.to_owned());
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| ConfigError::Invalid {
        name: "metrics_listen",
        reason: format!("{value:?} is not an address (host:port) or \"off\""),
    })
}

impl Config {
    /// The write spool's directory: `spool_dir`, or `DATA_DIR/spool`.
    pub fn spool_dir(&self) -> PathBuf {
        self.spool_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("spool"))
    }

    /// Rejects settings that cannot work, with the reason.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |name, reason: &str| {
            Err(ConfigError::Invalid {
                name,
                reason: reason.into(),
            })
        };
        if self.shards == 0 || self.shards > 1024 {
            return bad("shards", "must be 1-1024");
        }
        // 64 KiB minimum: clients send HELLO before WELCOME announces the
        // limit, so every server accepts at least the default.
        if self.max_frame_len < DEFAULT_MAX_FRAME_LEN || self.max_frame_len > MAX_SERVER_FRAME_LEN {
            return bad("max_frame_len", "must be 65536 bytes - 16 MiB");
        }
        if self.max_message_len == 0
            || self.max_message_len as u64 + 1024 > self.max_frame_len as u64
        {
            return bad(
                "max_message_len",
                "must be at least 1 and 1 KiB below max_frame_len",
            );
        }
        if self.heartbeat < Duration::from_millis(100) {
            return bad("heartbeat_ms", "must be at least 100");
        }
        if self.outbound_queue_bytes < self.max_frame_len as usize {
            return bad("outbound_queue_bytes", "must be at least max_frame_len");
        }
        if self.batch_max_items == 0 {
            return bad("batch_max_items", "must be at least 1");
        }
        if self.room_tail_events == 0 {
            return bad("room_tail_events", "must be at least 1");
        }
        if self.rate_limit_per_sec > 0 && self.rate_limit_burst == 0 {
            return bad(
                "rate_limit_burst",
                "must be at least 1 when rate_limit_per_sec is set",
            );
        }
        if self.housekeeping_interval < Duration::from_secs(1) {
            return bad("housekeeping_interval_secs", "must be at least 1");
        }
        if self.kdf_memory_kib < 8 || self.kdf_iterations == 0 {
            return bad(
                "kdf",
                "memory must be at least 8 KiB and iterations at least 1",
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_precedence_and_validation() {
        let pg = |s: &str| Some(s.to_owned());
        let url = |r: Result<Option<confab_store::postgres::DatabaseUrl>, ConfigError>| {
            r.unwrap().map(|u| u.expose().to_owned())
        };
        // The flag beats DATABASE_URL, which beats the file
        let got = resolve_database_url(
            pg("postgres://a/x"),
            pg("postgres://b/x"),
            pg("postgres://c/x"),
        );
        assert_eq!(url(got).as_deref(), Some("postgres://a/x"));
        let got = resolve_database_url(None, pg("postgres://b/x"), pg("postgres://c/x"));
        assert_eq!(url(got).as_deref(), Some("postgres://b/x"));
        // A DATABASE_URL for another database is not ours: the file, or SQLite
        let got = resolve_database_url(None, pg("sqlite://x.db"), pg("postgresql://c/x"));
        assert_eq!(url(got).as_deref(), Some("postgresql://c/x"));
        assert_eq!(url(resolve_database_url(None, pg("mysql://m"), None)), None);
        // But one given to confabd itself must be Postgres, and the error
        // does not show the password
        let err = resolve_database_url(pg("mysql://u:secret@h/db"), None, None).unwrap_err();
        assert!(err.to_string().contains("mysql://u:***@h/db"), "{err}");
        assert!(!err.to_string().contains("secret"), "{err}");
    }

    #[test]
    fn no_arguments_gives_the_documented_defaults() {
        let (cfg, fmt) = Cli::default().resolve().unwrap();
        // (`::<SocketAddr>`: rkyv's `PartialEq<ArchivedSocketAddr>` makes
        // the comparison ambiguous otherwise)
        assert_eq!(cfg.listen, "127.0.0.1:7400".parse::<SocketAddr>().unwrap());
        assert_eq!(cfg.data_dir, PathBuf::from("confab-data"));
        assert_eq!(cfg.metrics_listen, Some("127.0.0.1:9464".parse().unwrap()));
        assert_eq!(fmt, "text");
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("confab.toml");
        std::fs::write(&path, "max_message_len = 2000\nshards = 3\n").unwrap();
        let cli = Cli {
            config: Some(path),
            shards: Some(5),
            ..Cli::default()
        };
        let (cfg, _) = cli.resolve().unwrap();
        assert_eq!((cfg.max_message_len, cfg.shards), (2000, 5));
    }

    #[test]
    fn unknown_file_keys_and_impossible_values_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("confab.toml");
        std::fs::write(&path, "max_mesage_len = 2000\n").unwrap();
        let err = Cli {
            config: Some(path),
            ..Cli::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().contains("max_mesage_len"), "{err}");
        let err = Cli {
            shards: Some(0),
            ..Cli::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().contains("shards"), "{err}");
    }
}
