//! Configuration: defaults < a TOML file < `CONFAB_*` environment
//! variables < command-line flags.
//!
//! Every setting is written **once**, in the [`settings!`] table below: its
//! name (the flag `--max-message-len`, the TOML key `max_message_len`),
//! its type, its default, its environment variable and its documentation.
//! The table generates [`Config`] (what the server reads), [`Flags`] (what
//! clap parses; `--help` shows each real default, taken from
//! `Config::default()`), the file's keys and the fold of the three. Every
//! value parses from text the same way wherever it comes from
//! (`values.rs`).

pub mod values;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{CommandFactory, FromArgMatches, Parser};
use confab_protocol::frame::{DEFAULT_MAX_FRAME_LEN, MAX_SERVER_FRAME_LEN};
use confab_store::postgres::PgBatchMode;
use serde::Deserialize;

pub use values::{
    Count, Days, Hours, Listen, LogFormat, Millis, Networks, Opt, Origins, Path, PostgresUrl, Secs,
};

/// Where the TLS listener's certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsSource {
    /// A PEM certificate chain and its PEM private key.
    Pem { cert: PathBuf, key: PathBuf },
    /// A certificate for `localhost` and `127.0.0.1` generated at start-up
    /// (development only; its fingerprint is logged).
    SelfSigned,
}

/// Cluster mode's settings, validated ([`Config::cluster`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSettings {
    /// The NATS server the nodes share: commands for rooms another node
    /// serves, and rooms' events, go through it.
    pub nats: String,
    pub node_id: String,
    /// Partitions rooms are grouped into; fixed per deployment.
    pub partitions: u32,
    /// How long a lease lasts without renewal.
    pub lease: Duration,
}

/// Generates [`Config`], [`Flags`], [`FileSettings`] and their fold from
/// one line per setting.
macro_rules! settings {
    ($(
        $(#[doc = $doc:literal])+
        $(#[arg($($arg:tt)*)])?
        $name:ident: $ty:ty = $default:expr, env $env:literal;
    )+) => {
        /// Everything the server needs to know at start-up, validated.
        /// `Config::default()` holds the defaults `confabd --help` shows.
        #[derive(Debug, Clone)]
        pub struct Config {
            $( $(#[doc = $doc])+ pub $name: $ty, )+
        }

        impl Default for Config {
            fn default() -> Self {
                Config { $( $name: $default, )+ }
            }
        }

        /// The settings as command-line flags; each also reads its
        /// environment variable. Absent flags leave the file's value or
        /// the default.
        #[derive(Debug, Default, clap::Args)]
        pub struct Flags {
            $(
                $(#[doc = $doc])+
                #[arg(long, env = $env, value_name = "VALUE" $(, $($arg)*)?)]
                pub $name: Option<$ty>,
            )+
        }

        /// The settings a `--config` TOML file may give, under the flags'
        /// names with underscores. Unknown keys are errors, so a typo does
        /// not silently fall back to a default.
        #[derive(Debug, Default, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub struct FileSettings {
            $(
                #[serde(default, deserialize_with = "from_text")]
                pub $name: Option<$ty>,
            )+
        }

        impl Config {
            /// Flags over the file over the defaults (not yet validated).
            fn fold(flags: Flags, file: FileSettings) -> Config {
                let d = Config::default();
                Config { $( $name: flags.$name.or(file.$name).unwrap_or(d.$name), )+ }
            }

            /// Each setting's flag id and default, for `--help`.
            fn help_defaults() -> Vec<(&'static str, String)> {
                let d = Config::default();
                vec![ $( (stringify!($name), d.$name.to_string()), )+ ]
            }
        }
    };
}

settings! {
    /// Address of the plain TCP listener for the binary protocol.
    listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 7400)), env "CONFAB_LISTEN";
    /// Data directory; the embedded SQLite store lives in DATA_DIR/confab.db.
    data_dir: Path = Path(PathBuf::from("confab-data")), env "CONFAB_DATA_DIR";
    /// Postgres database (postgres://user:password@host:port/db) instead of the embedded SQLite file; DATABASE_URL is read too when it names a Postgres database.
    database_url: Opt<PostgresUrl> = Opt(None), env "CONFAB_DATABASE_URL";
    /// How each batch sends its events to Postgres: unnest (INSERT … SELECT FROM unnest), copy (COPY … FROM STDIN binary straight into events) or auto (the default: unnest below 2,048 events per batch, copy from there; batches reach that only while the backlog is deep, see batch_max_items_deep).
    pg_batch_mode: PgBatchMode = PgBatchMode::Auto, env "CONFAB_PG_BATCH_MODE";
    /// Number of room shards (tasks that own rooms); the default is the number of CPU cores.
    shards: usize = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1), env "CONFAB_SHARDS";
    /// Scheduler time slice in microseconds that the runtime's threads (the event loop and its blocking pool) ask Linux for (sched_setattr; kernels from 6.12 honour it, clamped to 100-100,000): a thread with a shorter slice than the one running preempts it when it wakes, so a message waits for no SQLite commit or other process's slice (1.4 ms on 2 cores, more on larger machines, and up to a 4 ms tick); 0 leaves the kernel's default.
    runtime_slice_us: u32 = 100, env "CONFAB_RUNTIME_SLICE_US";
    /// Longest a busy shard holds its writes back to send more frames per write (flush pacing: only while the shard works at least 80 % of the time; an idle shard writes after every pass); 0 never holds them.
    flush_linger_max_ms: Millis = Millis(8), env "CONFAB_FLUSH_LINGER_MAX_MS";
    /// Maximum frame length in bytes (the length field of client frames).
    max_frame_len: u32 = DEFAULT_MAX_FRAME_LEN, env "CONFAB_MAX_FRAME_LEN";
    /// Maximum message body in bytes.
    max_message_len: u32 = 4096, env "CONFAB_MAX_MESSAGE_LEN";
    /// Heartbeat interval in milliseconds announced to clients; silent connections are closed after 3 intervals.
    heartbeat_ms: Millis = Millis(30_000), env "CONFAB_HEARTBEAT_MS";
    /// Milliseconds of silence after which a connection with nothing half-read gives up its task (parks) until its client sends again, its writer fails, its idle timeout or shutdown; 0 (the default) parks as soon as it waits for its client.
    park_after_ms: Millis = Millis(0), env "CONFAB_PARK_AFTER_MS";
    /// Milliseconds a new connection has to send HELLO.
    handshake_timeout_ms: Millis = Millis(10_000), env "CONFAB_HANDSHAKE_TIMEOUT_MS";
    /// Per-connection outbound queue bound in bytes; a connection that falls this far behind is closed.
    outbound_queue_bytes: usize = 4 * 1024 * 1024, env "CONFAB_OUTBOUND_QUEUE_BYTES";
    /// Maximum operations per storage commit (group commit).
    batch_max_items: usize = 1024, env "CONFAB_BATCH_MAX_ITEMS";
    /// Maximum operations per commit while the write backlog is deep: a batch that reaches batch_max_items with more requests already queued takes them too, up to this many (fewer, bigger commits when the store is the limit); not above batch_max_items: a fixed bound.
    batch_max_items_deep: usize = 16_384, env "CONFAB_BATCH_MAX_ITEMS_DEEP";
    /// Milliseconds the batch writer may wait to fill a batch; 0 commits as soon as the writer is free.
    batch_max_delay_ms: Millis = Millis(0), env "CONFAB_BATCH_MAX_DELAY_MS";
    /// Milliseconds between the starts of two commits while commits are frequent (the next gathers requests meanwhile); at low rates nothing waits. Bounds what persistence costs under load; 0 commits back to back.
    batch_min_interval_ms: Millis = Millis(2), env "CONFAB_BATCH_MIN_INTERVAL_MS";
    /// Milliseconds that interval may widen to while commits are frequent and small (fewer than 8 operations: a low steady rate), so that each commit gathers more; bounds the extra acknowledgement latency. Not above batch_min_interval_ms: no widening.
    batch_window_max_ms: Millis = Millis(4), env "CONFAB_BATCH_WINDOW_MAX_MS";
    /// Batch writer lanes committing at once, each for its share of the rooms (room id mod lanes), on its own database connection: more sustained writes when Postgres is the limit, smaller batches and more commits below it; Postgres only (SQLite has a single writer and allows 1).
    write_lanes: usize = 1, env "CONFAB_WRITE_LANES";
    /// Parts a deep write backlog commits in at once: while a batch would hold 2 × batch_max_items operations or more, the rooms are split into this many stripes, each committing its rooms' writes in order on its own database connection, so commits overlap while the backlog lasts; at chat rates batches stay whole. Postgres only (SQLite has a single writer: always 1); 1 turns it off.
    batch_deep_parts: usize = 4, env "CONFAB_BATCH_DEEP_PARTS";
    /// Write operations that may wait for the batch writer; above it SEND_MESSAGE and CREATE_ROOM are refused with OVERLOADED and a retry-after until it drains. 0: no bound.
    write_backlog_max: usize = 65_536, env "CONFAB_WRITE_BACKLOG_MAX";
    /// Recent events kept in memory per room for resume and fast history.
    room_tail_events: usize = 256, env "CONFAB_ROOM_TAIL_EVENTS";
    /// Directory of the write spool, where writes wait (fsync'd) while the database is unreachable; none means DATA_DIR/spool.
    spool_dir: Opt<Path> = Opt(None), env "CONFAB_SPOOL_DIR";
    /// Largest size of the write spool in bytes; when it is full (or unwritable) writes are refused with STORAGE_UNAVAILABLE while the database is unreachable; 0 disables the spool.
    spool_max_bytes: Count = 1024 * 1024 * 1024, env "CONFAB_SPOOL_MAX_BYTES";
    /// Messages (SEND_MESSAGE and EDIT_MESSAGE) per second allowed per user, shared by all of the user's connections and HTTP requests; 0 disables the limit.
    rate_limit_per_sec: u32 = 50, env "CONFAB_RATE_LIMIT_PER_SEC";
    /// Burst of messages allowed above the rate, per user.
    rate_limit_burst: u32 = 100, env "CONFAB_RATE_LIMIT_BURST";
    /// Profile changes (UPDATE_PROFILE) allowed per user per hour, from every door together; 0 disables the limit.
    profile_changes_per_hour: u32 = 30, env "CONFAB_PROFILE_CHANGES_PER_HOUR";
    /// Burst of profile changes allowed above the hourly rate, per user.
    profile_changes_burst: u32 = 5, env "CONFAB_PROFILE_CHANGES_BURST";
    /// Session token lifetime in hours.
    session_ttl_hours: Hours = Hours(30 * 24), env "CONFAB_SESSION_TTL_HOURS";
    /// argon2id memory cost in KiB.
    kdf_memory_kib: u32 = 19 * 1024, env "CONFAB_KDF_MEMORY_KIB";
    /// argon2id iterations.
    kdf_iterations: u32 = 2, env "CONFAB_KDF_ITERATIONS";
    /// Password hashes computed at once (each holds kdf_memory_kib of memory); the default is the number of CPU cores.
    kdf_workers: usize = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1), env "CONFAB_KDF_WORKERS";
    /// Logins and registrations that may wait for a hashing worker; more are refused at once with OVERLOADED and a retry-after.
    kdf_queue: usize = 64, env "CONFAB_KDF_QUEUE";
    /// Milliseconds a login or registration waits for a hashing worker before it is refused with OVERLOADED.
    kdf_wait_ms: Millis = Millis(2_000), env "CONFAB_KDF_WAIT_MS";
    /// Failed logins from one address (IPv6: one /64) within login_window_secs before it must wait out the window (TOO_MANY_ATTEMPTS); 0 disables.
    login_failures_per_address: u32 = 10, env "CONFAB_LOGIN_FAILURES_PER_ADDRESS";
    /// Failed logins for one username within login_window_secs before addresses that have failed may no longer try it (addresses with no failures still may); 0 disables.
    login_failures_per_username: u32 = 50, env "CONFAB_LOGIN_FAILURES_PER_USERNAME";
    /// The window and cool-down of the failed-login limits, in seconds.
    login_window_secs: Secs = Secs(300), env "CONFAB_LOGIN_WINDOW_SECS";
    /// Registrations allowed from one address (IPv6: one /64) per hour; 0 disables.
    registrations_per_address_per_hour: u32 = 20, env "CONFAB_REGISTRATIONS_PER_ADDRESS_PER_HOUR";
    /// Networks exempt from the per-address login and registration limits (comma-separated CIDR, or "none"); behind a reverse proxy on the same host, set "none".
    auth_limit_exempt: Networks = "127.0.0.0/8,::1".parse().unwrap_or_default(), env "CONFAB_AUTH_LIMIT_EXEMPT";
    /// Days after which a user's ended association with a room (not a ban) is forgotten.
    room_log_retention_days: Days = Days(30), env "CONFAB_ROOM_LOG_RETENTION_DAYS";
    /// Presence updates (SPEC §5.10) are pushed only to rooms of at most this many members; in larger rooms clients read LIST_MEMBERS.
    presence_max_members: usize = 1_000, env "CONFAB_PRESENCE_MAX_MEMBERS";
    /// Directory of sticker files (<id>.toml with name and art) that replace built-in stickers of the same id and add others; none serves the built-in catalogue.
    stickers_dir: Opt<Path> = Opt(None), env "CONFAB_STICKERS_DIR";
    /// Days after which notifications are deleted.
    notification_retention_days: Days = Days(90), env "CONFAB_NOTIFICATION_RETENTION_DAYS";
    /// Largest file upload in bytes (POST /api/rooms/{id}/files); a larger one is refused with 413 as soon as that is known, without reading the rest.
    max_upload_bytes: Count = 10 * 1024 * 1024, env "CONFAB_MAX_UPLOAD_BYTES";
    /// Largest avatar upload in bytes (PUT /api/me/avatar); a larger one is refused with 413 like an over-large file.
    max_avatar_bytes: Count = 512 * 1024, env "CONFAB_MAX_AVATAR_BYTES";
    /// Largest width and height of an avatar in pixels; a larger image is refused (FILE_REFUSED, reason too_many_pixels), never resized.
    max_avatar_side: u32 = 1024, env "CONFAB_MAX_AVATAR_SIDE";
    /// Bytes a user may upload per hour (room files and avatars together, counted in whole KiB as they arrive); over it uploads are refused with 429 UPLOAD_RATE_LIMITED and a retry-after; 0 disables the limit.
    upload_bytes_per_hour: Count = 200 * 1024 * 1024, env "CONFAB_UPLOAD_BYTES_PER_HOUR";
    /// Hours an upload may wait for a message to reference it before housekeeping deletes it.
    upload_unreferenced_hours: Hours = Hours(24), env "CONFAB_UPLOAD_UNREFERENCED_HOURS";
    /// Seconds a signed file link (GET /api/files/{id}?expires=…&sig=…) stays valid.
    file_link_ttl_secs: Secs = Secs(600), env "CONFAB_FILE_LINK_TTL_SECS";
    /// Seconds between housekeeping passes.
    housekeeping_interval_secs: Secs = Secs(3600), env "CONFAB_HOUSEKEEPING_INTERVAL_SECS";
    /// Log format: text or json. Levels come from RUST_LOG (default "info").
    log_format: LogFormat = LogFormat::Text, env "CONFAB_LOG_FORMAT";
    /// Admin listener serving Prometheus metrics at /metrics, or "off".
    metrics_listen: Listen = Listen::On(SocketAddr::from(([127, 0, 0, 1], 9464))), env "CONFAB_METRICS_LISTEN";
    /// PEM certificate chain for the TLS listener (needs --tls-key).
    tls_cert: Opt<Path> = Opt(None), env "CONFAB_TLS_CERT";
    /// PEM private key of --tls-cert.
    tls_key: Opt<Path> = Opt(None), env "CONFAB_TLS_KEY";
    /// Generate a certificate for localhost and 127.0.0.1 at start-up (for development): its SHA-256 fingerprint is logged and its PEM written to DATA_DIR/self-signed-cert.pem.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    tls_self_signed: bool = false, env "CONFAB_TLS_SELF_SIGNED";
    /// Address of the TLS listener; ALPN confab/1 → binary protocol, http/1.1 → HTTP API and WebSocket. Bound only with a certificate.
    tls_listen: SocketAddr = SocketAddr::from(([127, 0, 0, 1], 7443)), env "CONFAB_TLS_LISTEN";
    /// Address of the plain HTTP listener (JSON API, ws:// at /ws, /healthz, /readyz), or "off".
    http_listen: Listen = Listen::On(SocketAddr::from(([127, 0, 0, 1], 7480))), env "CONFAB_HTTP_LISTEN";
    /// Cluster mode: the NATS server (nats://host:port) the nodes of one deployment share. Needs --node-id and a shared Postgres (--database-url); none runs a single node.
    cluster_nats: Opt<String> = Opt(None), env "CONFAB_CLUSTER_NATS";
    /// This node's name in the cluster (letters, digits, '.', '_', '-'; at most 64), unique among live nodes.
    node_id: Opt<String> = Opt(None), env "CONFAB_NODE_ID";
    /// Partitions rooms are grouped into (room id modulo this), each owned by one node at a time. Fixed per deployment: the first node stores it in the database and a node with another value refuses to start.
    cluster_partitions: u32 = 64, env "CONFAB_CLUSTER_PARTITIONS";
    /// Milliseconds a node's partition leases last without renewal (renewed every third of it): how long a dead node's rooms wait before another node takes them.
    lease_ms: Millis = Millis(5_000), env "CONFAB_LEASE_MS";
    /// No longer needed: cluster mode was refused without it while incomplete. Accepted and ignored, so that older command lines, env and TOML still start.
    #[arg(num_args = 0..=1, default_missing_value = "true")]
    cluster_experimental: bool = false, env "CONFAB_CLUSTER_EXPERIMENTAL";
    /// Comma-separated Origins allowed to open WebSocket connections, e.g. "https://chat.example"; empty allows every origin (clients that send no Origin, which are not browsers, are always allowed).
    allowed_origins: Origins = Origins::default(), env "CONFAB_ALLOWED_ORIGINS";
}

/// Reads a TOML value (string, number, boolean, or an array of strings
/// joined with commas) as text and parses it like a flag.
fn from_text<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    use serde::de::Error;
    let text = match toml::Value::deserialize(d)? {
        toml::Value::String(s) => s,
        toml::Value::Integer(i) => i.to_string(),
        toml::Value::Boolean(b) => b.to_string(),
        toml::Value::Float(f) => f.to_string(),
        toml::Value::Array(items) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| D::Error::custom("expected a list of strings"))?
            .join(","),
        other => return Err(D::Error::custom(format!("unexpected value {other}"))),
    };
    text.parse().map(Some).map_err(D::Error::custom)
}

/// `confabd` command line: a configuration file and every setting.
#[derive(Debug, Parser, Default)]
#[command(
    name = "confabd",
    version,
    about = "Confab: a fast, durable real-time chat-room server",
    after_help = "Every setting can also be given as its environment variable or in the --config file under the flag's name with underscores (max_message_len = 8192)."
)]
pub struct Cli {
    /// TOML configuration file (flags and environment variables override it).
    #[arg(long, env = "CONFAB_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: Flags,
}

impl Cli {
    /// Parses the process's arguments; `--help` shows each setting's
    /// default as `Config::default()` has it.
    pub fn parse_args() -> Cli {
        let mut cmd = Cli::command();
        for (id, default) in Config::help_defaults() {
            cmd = cmd.mut_arg(id, |a| {
                let help = a.get_help().map(ToString::to_string).unwrap_or_default();
                a.help(format!("{help} [default: {default}]"))
            });
        }
        let matches = cmd.get_matches();
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    /// Folds defaults, the config file (if any) and these flags into a
    /// validated [`Config`].
    pub fn resolve(self) -> Result<Config, ConfigError> {
        let file = match &self.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.clone(),
                    source,
                })?;
                toml::from_str::<FileSettings>(&text).map_err(|source| ConfigError::Parse {
                    path: path.clone(),
                    source,
                })?
            }
            None => FileSettings::default(),
        };
        // The generic DATABASE_URL (which other tools set too) counts only
        // when it names a Postgres database; it yields to Confab's own flag
        // or variable, and beats the file.
        let generic = match &self.settings.database_url {
            Some(_) => None,
            None => std::env::var("DATABASE_URL")
                .ok()
                .and_then(|url| url.parse::<PostgresUrl>().ok()),
        };
        let mut config = Config::fold(self.settings, file);
        if let Some(url) = generic {
            config.database_url = Opt(Some(url));
        }
        config.validate()?;
        Ok(config)
    }
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

/// The most batch writer lanes (`write_lanes`) a server runs.
pub const MAX_WRITE_LANES: usize = 16;

/// The most commits the batch writer may have landing at once
/// (`write_lanes` × `batch_deep_parts`), each on its own connection.
pub const MAX_COMMITS_AT_ONCE: usize = 64;

impl Config {
    /// Batch writer lanes to run: `write_lanes` (0 counts as 1). One by
    /// default: more lanes pay only when Postgres is the limit (measured in
    /// BENCHMARKS.md "Write lanes").
    pub fn write_lanes(&self) -> usize {
        self.write_lanes.max(1)
    }

    /// The parts a deep batch commits in at once: `batch_deep_parts` (0
    /// counts as 1) on Postgres; on SQLite 1 (a single writer).
    pub fn deep_parts(&self) -> usize {
        match self.database_url.0 {
            Some(_) => self.batch_deep_parts.max(1),
            None => 1,
        }
    }

    /// Connections in the Postgres pool: one for each commit the batch
    /// writer may have landing at once (`write_lanes` × the deep parts),
    /// and four more for reads and the spool's replay; at least 8.
    pub fn pg_connections(&self) -> u32 {
        let commits = self.write_lanes() * self.deep_parts();
        u32::try_from(commits + 4).unwrap_or(u32::MAX).max(8)
    }

    /// The batch bound while the backlog is deep: `batch_max_items_deep`
    /// on Postgres; on SQLite `batch_max_items` (deeper batches were
    /// measured on Postgres only, and the SQLite event log's fold paces
    /// itself by commits of at most `batch_max_items`).
    pub fn batch_items_deep(&self) -> usize {
        match self.database_url.0 {
            Some(_) => self.batch_max_items_deep,
            None => self.batch_max_items,
        }
    }

    /// A configuration for a server embedded in another program or a test:
    /// the defaults, with every listener on an ephemeral loopback port (TCP)
    /// or off (HTTP, metrics), and data in `data_dir`.
    pub fn embedded(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: Path(data_dir.into()),
            http_listen: Listen::Off,
            metrics_listen: Listen::Off,
            ..Config::default()
        }
    }

    /// The write spool's directory: `spool_dir`, or `DATA_DIR/spool`.
    pub fn spool_dir(&self) -> PathBuf {
        match self.spool_dir.as_ref() {
            Some(dir) => dir.0.clone(),
            None => self.data_dir.join("spool"),
        }
    }

    /// The TLS listener's certificate, if TLS is on (checked by
    /// [`Config::validate`]).
    pub fn tls(&self) -> Option<TlsSource> {
        match (self.tls_cert.as_ref(), self.tls_key.as_ref()) {
            (Some(cert), Some(key)) => Some(TlsSource::Pem {
                cert: cert.0.clone(),
                key: key.0.clone(),
            }),
            _ if self.tls_self_signed => Some(TlsSource::SelfSigned),
            _ => None,
        }
    }

    /// Turns TLS on with `source` (tests and embedding programs).
    pub fn set_tls(&mut self, source: TlsSource) {
        match source {
            TlsSource::Pem { cert, key } => {
                self.tls_cert = Opt(Some(Path(cert)));
                self.tls_key = Opt(Some(Path(key)));
                self.tls_self_signed = false;
            }
            TlsSource::SelfSigned => {
                self.tls_cert = Opt(None);
                self.tls_key = Opt(None);
                self.tls_self_signed = true;
            }
        }
    }

    pub fn heartbeat(&self) -> Duration {
        self.heartbeat_ms.get()
    }

    /// Cluster mode's settings, or `None` for a single node (no
    /// `cluster_nats`); an error when cluster mode is asked for but cannot
    /// run as configured (checked by [`Config::validate`] and again by
    /// [`crate::app::start`], for configurations built in code).
    pub fn cluster(&self) -> Result<Option<ClusterSettings>, ConfigError> {
        let Some(nats) = self.cluster_nats.as_ref() else {
            return Ok(None);
        };
        let bad = |name, reason: String| Err(ConfigError::Invalid { name, reason });
        if !nats.starts_with("nats://") && !nats.starts_with("tls://") {
            return bad("cluster_nats", format!("{nats:?} is not a nats:// URL"));
        }
        let Some(node_id) = self.node_id.as_ref() else {
            return bad(
                "node_id",
                "cluster mode (--cluster-nats) needs --node-id NAME, unique among the nodes".into(),
            );
        };
        let name_ok = (1..=64).contains(&node_id.len())
            && node_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !name_ok {
            return bad(
                "node_id",
                format!("{node_id:?}: 1-64 letters, digits, '.', '_' or '-'"),
            );
        }
        if self.database_url.as_ref().is_none() {
            return bad(
                "cluster_nats",
                "cluster mode needs the nodes' shared Postgres store; the embedded SQLite store is single-node only: add --database-url postgres://user:password@host/db"
                    .into(),
            );
        }
        if !(1..=4096).contains(&self.cluster_partitions) {
            return bad("cluster_partitions", "must be 1-4096".into());
        }
        if !(100..=600_000).contains(&self.lease_ms.0) {
            return bad("lease_ms", "must be 100 ms - 10 minutes".into());
        }
        Ok(Some(ClusterSettings {
            nats: nats.clone(),
            node_id: node_id.clone(),
            partitions: self.cluster_partitions,
            lease: self.lease_ms.get(),
        }))
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
        if !(100..=3_600_000).contains(&self.heartbeat_ms.0) {
            return bad("heartbeat_ms", "must be 100 ms - 1 hour");
        }
        if self.park_after_ms.0 > 3_600_000 {
            return bad("park_after_ms", "must be 0 - 1 hour");
        }
        if self.handshake_timeout_ms.0 == 0 || self.handshake_timeout_ms.0 > 3_600_000 {
            return bad("handshake_timeout_ms", "must be 1 ms - 1 hour");
        }
        if self.outbound_queue_bytes < self.max_frame_len as usize {
            return bad("outbound_queue_bytes", "must be at least max_frame_len");
        }
        if self.batch_max_items == 0 {
            return bad("batch_max_items", "must be at least 1");
        }
        if self.batch_max_delay_ms.0 > 10_000 {
            return bad("batch_max_delay_ms", "must be at most 10000");
        }
        if self.batch_min_interval_ms.0 > 1_000 {
            return bad("batch_min_interval_ms", "must be at most 1000");
        }
        if self.batch_window_max_ms.0 > 1_000 {
            return bad("batch_window_max_ms", "must be at most 1000");
        }
        if self.write_lanes > MAX_WRITE_LANES {
            return bad("write_lanes", "must be at most 16");
        }
        if self.batch_deep_parts > MAX_WRITE_LANES {
            return bad("batch_deep_parts", "must be at most 16");
        }
        if self.write_lanes() * self.deep_parts() > MAX_COMMITS_AT_ONCE {
            return bad(
                "batch_deep_parts",
                "write_lanes × batch_deep_parts must be at most 64 (each is a Postgres connection)",
            );
        }
        if self.write_lanes > 1 && self.database_url.as_ref().is_none() {
            return bad(
                "write_lanes",
                "the embedded SQLite store has a single writer: more than 1 lane needs \
                 --database-url (Postgres)",
            );
        }
        if self.room_tail_events == 0 {
            return bad("room_tail_events", "must be at least 1");
        }
        if self.max_upload_bytes == 0 {
            return bad("max_upload_bytes", "must be at least 1");
        }
        if self.max_avatar_bytes == 0 {
            return bad("max_avatar_bytes", "must be at least 1");
        }
        if self.max_avatar_side == 0 {
            return bad("max_avatar_side", "must be at least 1");
        }
        if self.upload_bytes_per_hour / crate::limit::UPLOAD_UNIT > u64::from(u32::MAX) {
            return bad("upload_bytes_per_hour", "must be under 4 TiB");
        }
        if self.file_link_ttl_secs.0 == 0 {
            return bad("file_link_ttl_secs", "must be at least 1");
        }
        if self.rate_limit_per_sec > 0 && self.rate_limit_burst == 0 {
            return bad(
                "rate_limit_burst",
                "must be at least 1 when rate_limit_per_sec is set",
            );
        }
        if self.profile_changes_per_hour > 0 && self.profile_changes_burst == 0 {
            return bad(
                "profile_changes_burst",
                "must be at least 1 when profile_changes_per_hour is set",
            );
        }
        if self.session_ttl_hours.0 == 0 || self.session_ttl_hours.0 > 24 * 3650 {
            return bad("session_ttl_hours", "must be 1 hour - 10 years");
        }
        if self.room_log_retention_days.0 > 36_500 || self.notification_retention_days.0 > 36_500 {
            return bad("retention", "must be at most 100 years");
        }
        if !(1..=7 * 86_400).contains(&self.housekeeping_interval_secs.0) {
            return bad("housekeeping_interval_secs", "must be 1 s - 1 week");
        }
        if self.kdf_memory_kib < 8 || self.kdf_iterations == 0 {
            return bad(
                "kdf",
                "memory must be at least 8 KiB and iterations at least 1",
            );
        }
        if !(1..=256).contains(&self.kdf_workers) {
            return bad("kdf_workers", "must be 1-256");
        }
        if self.kdf_wait_ms.0 > 60_000 {
            return bad("kdf_wait_ms", "must be at most 60000");
        }
        if !(1..=7 * 86_400).contains(&self.login_window_secs.0) {
            return bad("login_window_secs", "must be 1 s - 1 week");
        }
        self.cluster()?;
        match (
            self.tls_cert.as_ref(),
            self.tls_key.as_ref(),
            self.tls_self_signed,
        ) {
            (Some(_), Some(_), true) => {
                return bad(
                    "tls_self_signed",
                    "give either --tls-cert/--tls-key or --tls-self-signed, not both",
                )
            }
            (Some(_), None, _) => return bad("tls_key", "--tls-cert needs --tls-key"),
            (None, Some(_), _) => return bad("tls_cert", "--tls-key needs --tls-cert"),
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(flags: Flags) -> Result<Config, ConfigError> {
        Cli {
            config: None,
            settings: flags,
        }
        .resolve()
    }

    #[test]
    fn no_arguments_gives_the_documented_defaults() {
        let cfg = resolve(Flags::default()).unwrap();
        // (`::<SocketAddr>`: rkyv's `PartialEq<ArchivedSocketAddr>` makes
        // the comparison ambiguous otherwise)
        assert_eq!(cfg.listen, "127.0.0.1:7400".parse::<SocketAddr>().unwrap());
        assert_eq!(cfg.data_dir.0, PathBuf::from("confab-data"));
        assert_eq!(
            cfg.metrics_listen.addr(),
            Some("127.0.0.1:9464".parse().unwrap())
        );
        assert_eq!(
            cfg.http_listen.addr(),
            Some("127.0.0.1:7480".parse().unwrap())
        );
        assert_eq!(
            cfg.tls_listen,
            "127.0.0.1:7443".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(cfg.tls(), None);
        assert!(cfg.allowed_origins.0.is_empty());
        assert_eq!(cfg.log_format, LogFormat::Text);
    }

    #[test]
    fn help_shows_every_setting_with_its_real_default() {
        let defaults = Config::help_defaults();
        let d = Config::default();
        assert!(defaults.contains(&("max_message_len", d.max_message_len.to_string())));
        assert!(defaults.contains(&("shards", d.shards.to_string())));
        assert!(defaults.contains(&("http_listen", "127.0.0.1:7480".to_owned())));
        // Every flag the table makes exists under the id `--help` patches.
        let cmd = Cli::command();
        for (id, _) in defaults {
            assert!(
                cmd.get_arguments().any(|a| a.get_id() == id),
                "no flag for {id}"
            );
        }
    }

    #[test]
    fn flags_override_the_file_which_overrides_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("confab.toml");
        std::fs::write(
            &path,
            "max_message_len = 2000\nshards = 3\nallowed_origins = [\"https://a\", \"https://b/\"]\nmetrics_listen = \"off\"\n",
        )
        .unwrap();
        let cli = Cli {
            config: Some(path),
            settings: Flags {
                shards: Some(5),
                ..Flags::default()
            },
        };
        let cfg = cli.resolve().unwrap();
        assert_eq!((cfg.max_message_len, cfg.shards), (2000, 5));
        assert_eq!(cfg.allowed_origins.0, ["https://a", "https://b"]);
        assert_eq!(cfg.metrics_listen, Listen::Off);
    }

    #[test]
    fn unknown_file_keys_and_impossible_values_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("confab.toml");
        std::fs::write(&path, "max_mesage_len = 2000\n").unwrap();
        let err = Cli {
            config: Some(path.clone()),
            ..Cli::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().contains("max_mesage_len"), "{err}");
        std::fs::write(&path, "http_listen = \"localhost\"\n").unwrap();
        let err = Cli {
            config: Some(path),
            ..Cli::default()
        }
        .resolve()
        .unwrap_err();
        assert!(err.to_string().contains("not an address"), "{err}");
        let err = resolve(Flags {
            shards: Some(0),
            ..Flags::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("shards"), "{err}");
    }

    #[test]
    fn tls_needs_both_files_or_self_signed_alone() {
        let pem = |s: &str| Some(Opt(Some(Path(s.into()))));
        let err = resolve(Flags {
            tls_cert: pem("c.pem"),
            ..Flags::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("--tls-key"), "{err}");
        let err = resolve(Flags {
            tls_cert: pem("c.pem"),
            tls_key: pem("k.pem"),
            tls_self_signed: Some(true),
            ..Flags::default()
        })
        .unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
        let cfg = resolve(Flags {
            tls_self_signed: Some(true),
            ..Flags::default()
        })
        .unwrap();
        assert_eq!(cfg.tls(), Some(TlsSource::SelfSigned));
    }

    #[test]
    fn avatar_and_upload_budget_settings_come_from_the_file_and_flags_and_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("confab.toml");
        std::fs::write(
            &path,
            "max_avatar_bytes = 65536\nmax_avatar_side = 256\nupload_bytes_per_hour = 1048576\n",
        )
        .unwrap();
        let cli = Cli::try_parse_from([
            "confabd",
            "--config",
            path.to_str().unwrap(),
            "--max-avatar-side",
            "128",
        ])
        .unwrap();
        let cfg = cli.resolve().unwrap();
        assert_eq!(
            (
                cfg.max_avatar_bytes,
                cfg.max_avatar_side,
                cfg.upload_bytes_per_hour
            ),
            (65_536, 128, 1_048_576)
        );
        let d = Config::default();
        assert_eq!(
            (
                d.max_avatar_bytes,
                d.max_avatar_side,
                d.upload_bytes_per_hour
            ),
            (512 * 1024, 1024, 200 * 1024 * 1024)
        );
        for (flags, name) in [
            (
                Flags {
                    max_avatar_bytes: Some(0),
                    ..Flags::default()
                },
                "max_avatar_bytes",
            ),
            (
                Flags {
                    max_avatar_side: Some(0),
                    ..Flags::default()
                },
                "max_avatar_side",
            ),
            (
                Flags {
                    upload_bytes_per_hour: Some(5 << 40),
                    ..Flags::default()
                },
                "upload_bytes_per_hour",
            ),
        ] {
            let err = resolve(flags).unwrap_err();
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    /// The defaults with a Postgres database.
    fn on_postgres() -> Config {
        Config {
            database_url: Opt(Some("postgres://u@db/confab".parse().unwrap())),
            ..Config::default()
        }
    }

    /// Why `cfg` does not validate.
    fn refusal(cfg: Config) -> String {
        cfg.validate().unwrap_err().to_string()
    }

    #[test]
    fn deep_batches_grow_on_postgres_only() {
        let sqlite = Config::default();
        assert_eq!(sqlite.batch_items_deep(), sqlite.batch_max_items);
        assert_eq!(on_postgres().batch_items_deep(), 16_384);
    }

    #[test]
    fn deep_batches_commit_in_parts_on_postgres_only() {
        let sqlite = Config::default();
        assert_eq!((sqlite.batch_deep_parts, sqlite.deep_parts()), (4, 1));
        let pg = on_postgres();
        assert_eq!(pg.deep_parts(), 4);
        assert_eq!(pg.pg_connections(), 8);
        let wide = Config {
            write_lanes: 4,
            ..on_postgres()
        };
        assert_eq!(wide.pg_connections(), 20);
        wide.validate().unwrap();
        let err = refusal(Config {
            write_lanes: 16,
            batch_deep_parts: 8,
            ..on_postgres()
        });
        assert!(err.contains("at most 64"), "{err}");
        let off = Config {
            batch_deep_parts: 0,
            ..on_postgres()
        };
        assert_eq!(off.deep_parts(), 1);
        let err = refusal(Config {
            batch_deep_parts: 17,
            ..on_postgres()
        });
        assert!(
            err.contains("batch_deep_parts") && err.contains("at most 16"),
            "{err}"
        );
    }

    #[test]
    fn write_lanes_default_to_one_and_sqlite_allows_only_one() {
        let sqlite = Config::default();
        assert_eq!((sqlite.write_lanes, sqlite.write_lanes()), (1, 1));
        assert_eq!(on_postgres().write_lanes(), 1);
        let two = Config {
            write_lanes: 2,
            ..on_postgres()
        };
        assert_eq!(two.write_lanes(), 2);
        two.validate().unwrap();
        let err = refusal(Config {
            write_lanes: 2,
            ..Config::default()
        });
        assert!(err.contains("single writer"), "{err}");
        let err = refusal(Config {
            write_lanes: 17,
            ..on_postgres()
        });
        assert!(err.contains("at most 16"), "{err}");
    }

    #[test]
    fn cluster_mode_needs_a_node_id_and_postgres() {
        let d = Config::default();
        assert_eq!(d.cluster().unwrap(), None, "no --cluster-nats: one node");
        assert_eq!((d.cluster_partitions, d.lease_ms), (64, Millis(5_000)));
        let refused = |cfg: &Config| cfg.validate().unwrap_err().to_string();

        let nats = Config {
            cluster_nats: Opt(Some("nats://127.0.0.1:4222".into())),
            ..Config::default()
        };
        assert!(refused(&nats).contains("--node-id"), "{}", refused(&nats));

        // SQLite is single-node only: the message names the fix.
        let sqlite = Config {
            node_id: Opt(Some("a".into())),
            cluster_experimental: true,
            ..nats
        };
        let err = refused(&sqlite);
        assert!(
            err.contains("SQLite") && err.contains("--database-url postgres://"),
            "{err}"
        );

        // With Postgres it runs; the old switch is no longer needed.
        let postgres = Config {
            database_url: Opt(Some("postgres://u:pw@db/confab".parse().unwrap())),
            cluster_experimental: false,
            ..sqlite
        };
        assert!(postgres.cluster().unwrap().is_some());

        let bad_id = Config {
            node_id: Opt(Some("a b".into())),
            ..postgres.clone()
        };
        assert!(refused(&bad_id).contains("node_id"));

        // Flags, with their names as documented.
        let cli = Cli::try_parse_from([
            "confabd",
            "--cluster-nats",
            "nats://127.0.0.1:4222",
            "--node-id",
            "a",
            "--database-url",
            "postgres://u:pw@db/confab",
            "--cluster-experimental",
            "--cluster-partitions",
            "16",
            "--lease-ms",
            "900",
        ])
        .unwrap();
        let cluster = cli.resolve().unwrap().cluster().unwrap().unwrap();
        assert_eq!(
            cluster,
            ClusterSettings {
                nats: "nats://127.0.0.1:4222".into(),
                node_id: "a".into(),
                partitions: 16,
                lease: Duration::from_millis(900),
            }
        );
        let no_parts = Config {
            cluster_partitions: 0,
            cluster_experimental: true,
            ..postgres
        };
        assert!(refused(&no_parts).contains("cluster_partitions"));
    }

    #[test]
    fn switches_take_no_value_and_values_parse_like_the_file() {
        let cli = Cli::try_parse_from([
            "confabd",
            "--tls-self-signed",
            "--heartbeat-ms",
            "500",
            "--http-listen",
            "off",
        ])
        .unwrap();
        let cfg = cli.resolve().unwrap();
        assert!(cfg.tls_self_signed);
        assert_eq!(cfg.heartbeat(), Duration::from_millis(500));
        assert_eq!(cfg.http_listen, Listen::Off);
        assert!(Cli::try_parse_from(["confabd", "--heartbeat-ms", "soon"]).is_err());
    }
}
