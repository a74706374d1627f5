//! Prometheus metrics (DESIGN.md invariant 9): every metric name and
//! description in one place ([`name`], `describe`), the handles and cheap
//! recording helpers the rest of the server calls, per-request timing
//! ([`requests`]) and the admin listener that serves `/metrics`
//! ([`admin`]). No other module names a metric. `docs/METRICS.md` explains
//! each one.
//!
//! Design constraints:
//!
//! - **Handles, not lookups.** `metrics::counter!(...)` hashes its key into
//!   the registry on every call. Everything the hot path touches is a
//!   [`Counter`]/[`Gauge`]/[`Histogram`] handle created once, after the
//!   recorder is installed, and kept in [`Metrics`] (or in a per-kind or
//!   per-shard slot). Rare events (errors, connection open/close) may use
//!   the macros directly.
//! - **Per broadcast, never per recipient.** Fan-out records one
//!   histogram sample and one counter add per event; writers count frames
//!   and bytes per coalesced write, not per frame, and a flush of many
//!   connections sums its writes on its thread and adds them once
//!   (`WriteTally`), into a histogram the server keeps itself
//!   ([`CountHistogram`]).
//! - **Bounded labels.** Labels are transports, request kinds, error-code
//!   names, shard indexes and store operations. Never a room or user id.
//! - **Real histograms.** Every histogram has explicit buckets (otherwise
//!   the exporter renders summaries, which cannot be aggregated), and a
//!   background thread runs `run_upkeep()` so samples do not pile up
//!   between scrapes.
//!
//! The recorder is process-global: [`install`] is idempotent, so tests that
//! start many servers in one process share it.

pub mod admin;
mod requests;

use std::fmt::Write as _;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use ::metrics::{
    counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram, Counter,
    Gauge, Histogram, Unit,
};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

pub use requests::{
    auth_failed, connection_ended, ending_label, frames_written, handshake_ok, hello_received,
    observe_queue, request_received, ConnStats, Ending, WriteTally,
};

/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// Latency buckets in seconds: 50 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0, 10.0,
];
/// Fan-out durations are microseconds: finer buckets, 1 µs to 100 ms.
const FANOUT_SECONDS_BUCKETS: &[f64] = &[
    0.000_001,
    0.000_002_5,
    0.000_005,
    0.000_01,
    0.000_025,
    0.000_05,
    0.000_1,
    0.000_25,
    0.000_5,
    0.001,
    0.002_5,
    0.01,
    0.1,
];
const RECIPIENT_BUCKETS: &[f64] = &[
    0.0, 1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0, 5000.0, 10000.0,
    50000.0,
];
const BATCH_OPS_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0,
];
const WRITE_FRAMES_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Metric names, so docs, dashboards and code agree on one spelling.
pub mod name {
    pub const CONNECTIONS: &str = "confab_connections";
    pub const CONNECTIONS_OPENED: &str = "confab_connections_opened_total";
    pub const DISCONNECTS: &str = "confab_disconnects_total";
    pub const HANDSHAKES: &str = "confab_handshakes_total";
    pub const AUTH_FAILURES: &str = "confab_auth_failures_total";
    pub const AUTH_REFUSED: &str = "confab_auth_refused_total";
    pub const AUTH_UNTRACKED: &str = "confab_auth_untracked_total";
    pub const KDF_REFUSED: &str = "confab_kdf_refused_total";
    pub const FRAMES_RECEIVED: &str = "confab_frames_received_total";
    pub const FRAMES_SENT: &str = "confab_frames_sent_total";
    pub const BYTES_RECEIVED: &str = "confab_received_bytes_total";
    pub const BYTES_SENT: &str = "confab_sent_bytes_total";
    pub const WRITE_FRAMES: &str = "confab_write_frames";
    pub const REQUESTS: &str = "confab_requests_total";
    pub const REQUEST_DURATION: &str = "confab_request_duration_seconds";
    pub const RATE_LIMITED: &str = "confab_rate_limited_total";
    pub const BROADCASTS: &str = "confab_broadcast_recipients";
    pub const BROADCAST_DURATION: &str = "confab_broadcast_duration_seconds";
    pub const DELIVERIES: &str = "confab_deliveries_total";
    pub const SHARD_QUEUE_DEPTH: &str = "confab_shard_queue_depth";
    pub const SHARD_LINGER: &str = "confab_shard_flush_linger_seconds";
    pub const SHARD_COMMANDS: &str = "confab_shard_commands_total";
    pub const SHARD_PASS: &str = "confab_shard_pass_commands";
    pub const OUTBOUND_QUEUED: &str = "confab_outbound_queued_bytes";
    pub const SLOW_CONSUMERS: &str = "confab_slow_consumer_disconnects_total";
    pub const BATCH_OPS: &str = "confab_batch_operations";
    pub const BATCH_COMMIT: &str = "confab_batch_commit_duration_seconds";
    pub const BATCH_PENDING: &str = "confab_batch_pending_requests";
    pub const WRITE_BACKLOG: &str = "confab_write_backlog_operations";
    pub const WRITE_PUSHBACK: &str = "confab_write_pushback_total";
    pub const ACCOUNT_BATCH: &str = "confab_account_batch_writes";
    pub const SPOOL_BYTES: &str = "confab_spool_bytes";
    pub const SPOOL_RECORDS: &str = "confab_spool_records_total";
    pub const SPOOL_REPLAYED_RECORDS: &str = "confab_spool_replayed_records_total";
    pub const SPOOL_REPLAYS: &str = "confab_spool_replays_total";
    pub const SPOOL_REFUSED: &str = "confab_spool_refused_total";
    pub const SPOOL_DROPPED: &str = "confab_spool_dropped_requests_total";
    pub const HOUSEKEEPING_REMOVED: &str = "confab_housekeeping_removed_total";
    pub const HOUSEKEEPING_RUNS: &str = "confab_housekeeping_runs_total";
    pub const DB_ERRORS: &str = "confab_db_errors_total";
    pub const STORE_QUERY: &str = "confab_store_query_duration_seconds";
    pub const ROOMS: &str = "confab_rooms";
    pub const MEMBERSHIPS: &str = "confab_room_memberships";
    pub const ONLINE_USERS: &str = "confab_online_users";
    pub const PARKED_CONNECTIONS: &str = "confab_parked_connections";
    pub const BUILD_INFO: &str = "confab_build_info";
    pub const TYPING_FORWARDED: &str = "confab_typing_forwarded_total";
    pub const TYPING_DELIVERIES: &str = "confab_typing_deliveries_total";
    pub const TYPING_SUPPRESSED: &str = "confab_typing_suppressed_total";
    pub const PRESENCE_PUSHED: &str = "confab_presence_pushed_total";
    pub const PRESENCE_CHANGES: &str = "confab_presence_changes_total";
    pub const PRESENCE_DELIVERIES: &str = "confab_presence_deliveries_total";
    pub const PRESENCE_SUPPRESSED: &str = "confab_presence_suppressed_total";
    pub const READ_MARKERS: &str = "confab_read_markers_total";
    pub const PROFILE_PUSHED: &str = "confab_profile_changed_pushed_total";
    pub const PROFILE_DELIVERIES: &str = "confab_profile_changed_deliveries_total";
    pub const PROFILE_COALESCED: &str = "confab_profile_changes_coalesced_total";
    pub const PASSWORD_CHANGES: &str = "confab_password_changes_total";
    pub const FILE_UPLOADS: &str = "confab_file_uploads_total";
    pub const FILE_UPLOAD_BYTES: &str = "confab_file_upload_bytes_total";
    pub const FILE_REFUSED: &str = "confab_file_uploads_refused_total";
    pub const FILE_DOWNLOADS: &str = "confab_file_downloads_total";
    pub const FILE_DOWNLOAD_BYTES: &str = "confab_file_download_bytes_total";
    pub const CLUSTER_PARTITIONS_OWNED: &str = "confab_cluster_partitions_owned";
    pub const CLUSTER_LIVE_NODES: &str = "confab_cluster_live_nodes";
    pub const CLUSTER_LEASE_ACQUISITIONS: &str = "confab_cluster_lease_acquisitions_total";
    pub const CLUSTER_LEASE_RENEWALS: &str = "confab_cluster_lease_renewals_total";
    pub const CLUSTER_LEASE_LOSSES: &str = "confab_cluster_lease_losses_total";
    pub const CLUSTER_FENCED_BATCHES: &str = "confab_cluster_fenced_batches_total";
    pub const CLUSTER_ROOM_MOVING: &str = "confab_cluster_room_moving_total";
    pub const CLUSTER_HANDOVERS: &str = "confab_cluster_handovers_total";
    pub const CLUSTER_FORWARDED: &str = "confab_cluster_forwarded_total";
    pub const CLUSTER_FORWARD_DURATION: &str = "confab_cluster_forward_seconds";
    pub const CLUSTER_SERVED: &str = "confab_cluster_served_total";
    pub const CLUSTER_SERVE_DURATION: &str = "confab_cluster_serve_seconds";
    pub const CLUSTER_NATS_BYTES: &str = "confab_cluster_nats_bytes_total";
    pub const CLUSTER_USER_PUSHES: &str = "confab_cluster_user_pushes_total";
}

/// The handles the hot path uses, created once after the recorder exists.
pub struct Metrics {
    pub frames_received: Counter,
    pub bytes_received: Counter,
    pub frames_sent: Counter,
    pub bytes_sent: Counter,
    /// Kept by the server, not the exporter ([`CountHistogram`]).
    pub write_frames: CountHistogram,
    pub rate_limited_messages: Counter,
    pub rate_limited_profile: Counter,
    pub rate_limited_uploads: Counter,
    pub broadcast_recipients: Histogram,
    pub broadcast_duration: Histogram,
    pub deliveries: Counter,
    pub outbound_queued: Gauge,
    pub slow_consumers: Counter,
    pub batch_ops: Histogram,
    pub account_batch: Histogram,
    pub shard_pass: Histogram,
    pub batch_commit: Histogram,
    pub write_backlog: Gauge,
    pub write_pushback: Counter,
    pub batch_errors: Counter,
    pub query_errors: Counter,
    pub rooms: Gauge,
    pub memberships: Gauge,
    pub online_users: Gauge,
    pub parked_connections: Gauge,
    pub typing_started: Counter,
    pub typing_stopped: Counter,
    pub typing_expired: Counter,
    pub typing_deliveries: Counter,
    pub typing_suppressed: Counter,
    pub presence_pushed: Counter,
    pub presence_changes: Counter,
    pub presence_deliveries: Counter,
    pub presence_coalesced: Counter,
    pub presence_large_room: Counter,
    pub profile_pushed: Counter,
    pub profile_deliveries: Counter,
    pub profile_coalesced: Counter,
}

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Installs the Prometheus recorder (once per process), starts its upkeep
/// thread and creates the handles. If another recorder is already
/// installed, metrics go to it and this server's `/metrics` is empty.
pub fn install() -> &'static Metrics {
    HANDLE.get_or_init(|| {
        let handle = build_recorder()
            .map_err(|e| tracing::warn!(error = %e, "metrics recorder not installed"))
            .ok()?;
        describe();
        let upkeep = handle.clone();
        let _ = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || loop {
                std::thread::sleep(UPKEEP_EVERY);
                upkeep.run_upkeep();
            });
        Some(handle)
    });
    METRICS.get_or_init(Metrics::new)
}

/// The hot-path handles (installing the recorder first if needed).
#[inline]
pub fn get() -> &'static Metrics {
    match METRICS.get() {
        Some(m) => m,
        None => install(),
    }
}

fn build_recorder() -> Result<PrometheusHandle, metrics_exporter_prometheus::BuildError> {
    use name::*;
    let full = |n: &str| Matcher::Full(n.to_owned());
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), LATENCY_BUCKETS)?
        .set_buckets_for_metric(full(BROADCAST_DURATION), FANOUT_SECONDS_BUCKETS)?
        .set_buckets_for_metric(full(BROADCASTS), RECIPIENT_BUCKETS)?
        .set_buckets_for_metric(full(BATCH_OPS), BATCH_OPS_BUCKETS)?
        .set_buckets_for_metric(full(SHARD_PASS), BATCH_OPS_BUCKETS)?
        .install_recorder()
}

fn describe() {
    use name::*;
    describe_gauge!(CONNECTIONS, "Open client connections, by transport.");
    describe_counter!(
        CONNECTIONS_OPENED,
        "Client connections accepted, by transport."
    );
    describe_counter!(
        DISCONNECTS,
        "Connections ended, by reason: `client_closed` (the client closed or went away), `slow_consumer`, `idle_timeout`, `handshake_timeout`, `shutdown`, `logged_out`, `invalid_token`, `protocol_error` (a frame broke the protocol), `storage_unavailable`, `internal`, `server_closed` (another CLOSE), `write_failed`."
    );
    describe_counter!(
        HANDSHAKES,
        "HELLO handshakes, by result: `ok` or the code that ended the connection."
    );
    describe_counter!(
        AUTH_FAILURES,
        "Failed authentications, by reason (`invalid_token`, `invalid_credentials`)."
    );
    describe_counter!(
        AUTH_REFUSED,
        "Logins and registrations refused before the password was checked, by the limit that refused them (`address`, `username`, `registrations`)."
    );
    describe_counter!(
        AUTH_UNTRACKED,
        "Failed logins or registrations not counted because a limit's table was full (100,000 keys)."
    );
    describe_counter!(
        KDF_REFUSED,
        "Logins and registrations refused with OVERLOADED because every password-hashing worker was busy and the queue full (or the wait ran out)."
    );
    describe_counter!(FRAMES_RECEIVED, "Frames received from clients.");
    describe_counter!(
        BYTES_RECEIVED,
        Unit::Bytes,
        "Bytes of frames received from clients."
    );
    describe_counter!(FRAMES_SENT, "Frames written to clients.");
    describe_counter!(BYTES_SENT, Unit::Bytes, "Bytes written to clients.");
    describe_counter!(
        REQUESTS,
        "Requests answered, by kind and result code (`ok` or the error code name)."
    );
    describe_histogram!(
        REQUEST_DURATION,
        Unit::Seconds,
        "Time from a request's arrival to its response being written, by kind."
    );
    describe_counter!(
        RATE_LIMITED,
        "Requests refused by a per-user limit, by limit (`messages`: SEND_MESSAGE and EDIT_MESSAGE; `profile`: UPDATE_PROFILE)."
    );
    describe_counter!(
        PROFILE_PUSHED,
        "PROFILE_CHANGED frames queued (one per room per coalescing tick)."
    );
    describe_counter!(
        PROFILE_DELIVERIES,
        "PROFILE_CHANGED frames queued to connections (sum of recipients)."
    );
    describe_counter!(
        PROFILE_COALESCED,
        "Profile changes never sent on their own: a later change of the same user within the second replaced them."
    );
    describe_counter!(
        PASSWORD_CHANGES,
        "CHANGE_PASSWORD requests, by result (`changed`, `wrong_password`)."
    );
    describe_histogram!(
        BROADCASTS,
        "Recipients (connections) per broadcast room event."
    );
    describe_histogram!(
        BROADCAST_DURATION,
        Unit::Seconds,
        "Time to queue one room event to all its recipients."
    );
    describe_counter!(
        DELIVERIES,
        "Event frames queued to connections (sum of broadcast recipients)."
    );
    describe_gauge!(
        SHARD_QUEUE_DEPTH,
        "Commands waiting in a shard's queue, by shard."
    );
    describe_counter!(SHARD_COMMANDS, "Commands processed, by shard.");
    describe_gauge!(
        SHARD_LINGER,
        "How long a busy shard currently holds its writes back to send more frames per write (flush pacing), by shard; 0 while it is not busy."
    );
    describe_histogram!(
        SHARD_PASS,
        "Commands a shard applied in one pass before writing to the connections they touched."
    );
    describe_gauge!(
        OUTBOUND_QUEUED,
        Unit::Bytes,
        "Bytes waiting in all outbound queues (sampled by each writer when it wakes)."
    );
    describe_counter!(
        SLOW_CONSUMERS,
        "Connections closed because their outbound queue overflowed."
    );
    describe_histogram!(BATCH_OPS, "Write operations per batch commit.");
    describe_histogram!(
        BATCH_COMMIT,
        Unit::Seconds,
        "Duration of one batch commit (transaction and fsync)."
    );
    describe_gauge!(
        BATCH_PENDING,
        "Write requests waiting for a batch writer lane after it took a batch (label lane; one lane unless write_lanes > 1)."
    );
    describe_gauge!(
        WRITE_BACKLOG,
        "Write operations waiting for the batch writer after it took a batch (push-back starts above write_backlog_max)."
    );
    describe_histogram!(
        ACCOUNT_BATCH,
        "Account writes (registrations, logins) per account commit."
    );
    describe_counter!(
        WRITE_PUSHBACK,
        "Writes (SEND_MESSAGE, CREATE_ROOM) refused with OVERLOADED because the write backlog was over write_backlog_max."
    );
    describe_gauge!(
        SPOOL_BYTES,
        Unit::Bytes,
        "Bytes in the on-disk spool of not-yet-committed writes."
    );
    describe_counter!(
        SPOOL_RECORDS,
        "Batches appended to the write spool while the database was unreachable."
    );
    describe_counter!(
        SPOOL_REPLAYED_RECORDS,
        "Spooled batches applied to the database by a replay."
    );
    describe_counter!(SPOOL_REPLAYS, "Replays that emptied the write spool.");
    describe_counter!(
        SPOOL_REFUSED,
        "Batches refused because the write spool was full or unwritable, by reason."
    );
    describe_counter!(
        SPOOL_DROPPED,
        "Acknowledged write requests the database refused when the spool replayed them (lost)."
    );
    describe_counter!(
        HOUSEKEEPING_REMOVED,
        "Rows removed by housekeeping, by kind (`room_log`, `notifications`, `sessions`)."
    );
    describe_counter!(HOUSEKEEPING_RUNS, "Housekeeping passes run.");
    describe_counter!(
        FILE_UPLOADS,
        "Files uploaded and kept, by whether their bytes were new (`stored`) or already there (`deduplicated`)."
    );
    describe_counter!(
        FILE_UPLOAD_BYTES,
        Unit::Bytes,
        "Bytes of the files uploaded and kept."
    );
    describe_gauge!(
        CLUSTER_PARTITIONS_OWNED,
        "Partitions this node holds the lease of (cluster mode)."
    );
    describe_gauge!(
        CLUSTER_LIVE_NODES,
        "Nodes whose heartbeat has not expired, as this node last read them (cluster mode)."
    );
    describe_counter!(
        CLUSTER_LEASE_ACQUISITIONS,
        "Partition leases this node acquired (each at a new epoch)."
    );
    describe_counter!(
        CLUSTER_LEASE_RENEWALS,
        "Partition leases this node renewed (one per partition per renewal round)."
    );
    describe_counter!(
        CLUSTER_LEASE_LOSSES,
        "Partition leases this node stopped holding, by reason (`expired`: not renewed in time; `released`: given up to balance or at shutdown)."
    );
    describe_counter!(
        CLUSTER_FENCED_BATCHES,
        "Write batches the store refused because this node no longer held a lease they carried (nothing of them committed)."
    );
    describe_counter!(
        CLUSTER_ROOM_MOVING,
        "Commands for rooms this node does not serve (owned by another node, or moving), answered ROOM_MOVING."
    );
    describe_counter!(
        CLUSTER_HANDOVERS,
        "Partitions this node loaded (`gained`), let go after a lease loss (`lost`), or drained before a release (`drained`; `drain_timeout` when the wait for the batch writer ran out)."
    );
    describe_counter!(
        CLUSTER_FORWARDED,
        "Commands for rooms another node serves, sent to it over NATS, by result (`answered`; `no_responders`, `timeout`, `error`, `unreadable`: answered ROOM_MOVING here; `overloaded`: the forwarding queue was full, answered OVERLOADED)."
    );
    describe_histogram!(
        CLUSTER_FORWARD_DURATION,
        Unit::Seconds,
        "From sending a command to the node serving its room to its answer (after the owner's commit, for a write)."
    );
    describe_counter!(
        CLUSTER_SERVED,
        "Commands other nodes forwarded that this node answered."
    );
    describe_histogram!(
        CLUSTER_SERVE_DURATION,
        Unit::Seconds,
        "From receiving a forwarded command to publishing its answer, on the node serving the room."
    );
    describe_counter!(
        CLUSTER_NATS_BYTES,
        Unit::Bytes,
        "Payload bytes this node published to (`published`) and received from (`received`) NATS: forwarded commands, their answers, rooms' events and per-user pushes."
    );
    describe_counter!(
        CLUSTER_USER_PUSHES,
        "Per-user pushes (notifications, room announcements, read markers, users added to rooms, connections and presence, profile changes) this node published for the other nodes (`published`) or received from them (`received`)."
    );
    describe_counter!(
        FILE_REFUSED,
        "Uploads refused, by reason (`too_large`, `empty`, `type_not_allowed`, `type_mismatch`, `name_*`, `not_member`)."
    );
    describe_counter!(
        FILE_DOWNLOADS,
        "File downloads served, by how they were authorised (`token`, `link`) and whether a range was asked (`full`, `range`)."
    );
    describe_counter!(
        FILE_DOWNLOAD_BYTES,
        Unit::Bytes,
        "Bytes of file downloads served."
    );
    describe_counter!(
        DB_ERRORS,
        "Database errors, by source (`batch` commit attempts, `query` reads)."
    );
    describe_histogram!(
        STORE_QUERY,
        Unit::Seconds,
        "Store read/account query latency, by operation."
    );
    describe_gauge!(ROOMS, "Live rooms.");
    describe_gauge!(
        MEMBERSHIPS,
        "Room memberships (sum of members over all rooms)."
    );
    describe_gauge!(
        ONLINE_USERS,
        "Users with at least one authenticated connection."
    );
    describe_gauge!(
        PARKED_CONNECTIONS,
        "Connections parked without a task of their own (quiet, nothing half-read)."
    );
    describe_gauge!(BUILD_INFO, "Always 1; labels carry the server version.");
    describe_counter!(
        TYPING_FORWARDED,
        "TYPING events forwarded to a room's other members (one per event, not per recipient), by kind: `start`, `stop` (TYPING_STOP), `expired` (the server's STOP after 5 s without renewal)."
    );
    describe_counter!(
        TYPING_DELIVERIES,
        "TYPING event frames queued to connections (sum of recipients)."
    );
    describe_counter!(
        TYPING_SUPPRESSED,
        "TYPING_START requests not forwarded because the user's last forwarded START in the room was under 2 s old."
    );
    describe_counter!(
        PRESENCE_PUSHED,
        "PRESENCE frames pushed, one per room per coalescing tick (more only when a list is split), not per recipient."
    );
    describe_counter!(
        PRESENCE_CHANGES,
        "User presence changes carried by PRESENCE frames, one per (user, room): the sum of the frames' list lengths."
    );
    describe_counter!(
        PRESENCE_DELIVERIES,
        "PRESENCE frames queued to connections (sum of recipients)."
    );
    describe_counter!(
        PRESENCE_SUPPRESSED,
        "Presence changes not pushed, by reason: `coalesced` (a later change within the user's 1 s interval replaced it, or the state came back to the one last pushed), `large_room` (a user change not pushed to a room above presence_max_members, one per (user, room))."
    );
    describe_counter!(
        READ_MARKERS,
        "SET_READ_MARKER requests stored, by result: `moved` (the marker rose; the user's other connections were told) or `unchanged` (at or below the marker)."
    );
}

impl Metrics {
    fn new() -> Metrics {
        use name::*;
        gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        // Registered now so that it exists (at 0) before the spool does.
        gauge!(SPOOL_BYTES).set(0.0);
        // Known label values start at zero, so rates exist before the first event.
        for reason in ["invalid_token", "invalid_credentials"] {
            counter!(AUTH_FAILURES, "reason" => reason).absolute(0);
        }
        for limit in ["address", "username", "registrations"] {
            counter!(AUTH_REFUSED, "limit" => limit).absolute(0);
        }
        counter!(AUTH_UNTRACKED).absolute(0);
        for result in ["moved", "unchanged"] {
            counter!(READ_MARKERS, "result" => result).absolute(0);
        }
        counter!(KDF_REFUSED).absolute(0);
        for result in ["changed", "wrong_password"] {
            counter!(PASSWORD_CHANGES, "result" => result).absolute(0);
        }
        Metrics {
            frames_received: counter!(FRAMES_RECEIVED),
            bytes_received: counter!(BYTES_RECEIVED),
            frames_sent: counter!(FRAMES_SENT),
            bytes_sent: counter!(BYTES_SENT),
            write_frames: CountHistogram::new(WRITE_FRAMES_BUCKETS),
            rate_limited_messages: counter!(RATE_LIMITED, "limit" => "messages"),
            rate_limited_profile: counter!(RATE_LIMITED, "limit" => "profile"),
            rate_limited_uploads: counter!(RATE_LIMITED, "limit" => "uploads"),
            broadcast_recipients: histogram!(BROADCASTS),
            broadcast_duration: histogram!(BROADCAST_DURATION),
            deliveries: counter!(DELIVERIES),
            outbound_queued: gauge!(OUTBOUND_QUEUED),
            slow_consumers: counter!(SLOW_CONSUMERS),
            batch_ops: histogram!(BATCH_OPS),
            account_batch: histogram!(ACCOUNT_BATCH),
            shard_pass: histogram!(SHARD_PASS),
            batch_commit: histogram!(BATCH_COMMIT),
            write_backlog: gauge!(WRITE_BACKLOG),
            write_pushback: counter!(WRITE_PUSHBACK),
            batch_errors: counter!(DB_ERRORS, "source" => "batch"),
            query_errors: counter!(DB_ERRORS, "source" => "query"),
            rooms: gauge!(ROOMS),
            memberships: gauge!(MEMBERSHIPS),
            online_users: gauge!(ONLINE_USERS),
            parked_connections: gauge!(PARKED_CONNECTIONS),
            typing_started: counter!(TYPING_FORWARDED, "kind" => "start"),
            typing_stopped: counter!(TYPING_FORWARDED, "kind" => "stop"),
            typing_expired: counter!(TYPING_FORWARDED, "kind" => "expired"),
            typing_deliveries: counter!(TYPING_DELIVERIES),
            typing_suppressed: counter!(TYPING_SUPPRESSED),
            presence_pushed: counter!(PRESENCE_PUSHED),
            presence_changes: counter!(PRESENCE_CHANGES),
            presence_deliveries: counter!(PRESENCE_DELIVERIES),
            presence_coalesced: counter!(PRESENCE_SUPPRESSED, "reason" => "coalesced"),
            presence_large_room: counter!(PRESENCE_SUPPRESSED, "reason" => "large_room"),
            profile_pushed: counter!(PROFILE_PUSHED),
            profile_deliveries: counter!(PROFILE_DELIVERIES),
            profile_coalesced: counter!(PROFILE_COALESCED),
        }
    }
}

// ---------------------------------------------------------------------------
// Connections

/// Counts one open connection of a transport (`"tcp"`, `"tls"`, `"ws"` …)
/// for as long as it lives. Listeners create one per accepted connection.
/// Holds a handle shared by every connection of its transport: a gauge
/// registered per connection kept ~130 bytes of the recorder's per
/// connection.
#[must_use = "the connection counts as open while the guard lives"]
pub struct ConnectionGuard {
    open: &'static Gauge,
}

/// The open-connection gauge of each transport, registered once.
static OPEN_GAUGES: Mutex<Vec<(&'static str, &'static Gauge)>> = Mutex::new(Vec::new());

/// A connection of `transport` was accepted.
pub fn connection_opened(transport: &'static str) -> ConnectionGuard {
    get();
    counter!(name::CONNECTIONS_OPENED, "transport" => transport).increment(1);
    let open = {
        let mut gauges = OPEN_GAUGES.lock().unwrap_or_else(|e| e.into_inner());
        match gauges.iter().find(|(t, _)| *t == transport) {
            Some((_, g)) => *g,
            None => {
                let g: &'static Gauge = Box::leak(Box::new(
                    gauge!(name::CONNECTIONS, "transport" => transport),
                ));
                gauges.push((transport, g));
                g
            }
        }
    };
    open.increment(1.0);
    ConnectionGuard { open }
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        self.open.decrement(1.0);
    }
}

/// A request was refused by the per-user limit `kind`.
pub fn rate_limited(kind: crate::limit::LimitKind) {
    let m = get();
    match kind {
        crate::limit::LimitKind::Messages => m.rate_limited_messages.increment(1),
        crate::limit::LimitKind::Profile => m.rate_limited_profile.increment(1),
        crate::limit::LimitKind::Uploads => m.rate_limited_uploads.increment(1),
    }
}

/// One PROFILE_CHANGED frame was queued to `recipients` connections.
pub fn profile_pushed(recipients: usize) {
    let m = get();
    m.profile_pushed.increment(1);
    m.profile_deliveries.increment(recipients as u64);
}

/// `n` profile changes were replaced by later ones before they were sent.
pub fn profile_coalesced(n: u64) {
    if n > 0 {
        get().profile_coalesced.increment(n);
    }
}

/// A CHANGE_PASSWORD was carried out (`true`) or refused for a wrong
/// current password.
pub fn password_change(changed: bool) {
    let result = if changed { "changed" } else { "wrong_password" };
    counter!(name::PASSWORD_CHANGES, "result" => result).increment(1);
}

/// Why a TYPING event was forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypingForward {
    Start,
    Stop,
    Expired,
}

/// One TYPING event was queued to `recipients` connections.
pub fn typing_forwarded(why: TypingForward, recipients: usize) {
    let m = get();
    match why {
        TypingForward::Start => m.typing_started.increment(1),
        TypingForward::Stop => m.typing_stopped.increment(1),
        TypingForward::Expired => m.typing_expired.increment(1),
    }
    m.typing_deliveries.increment(recipients as u64);
}

/// Why presence changes were not pushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PresenceSuppressed {
    Coalesced,
    LargeRoom,
}

/// One PRESENCE frame carrying `changes` user changes was queued to
/// `recipients` connections.
pub fn presence_pushed(changes: usize, recipients: usize) {
    let m = get();
    m.presence_pushed.increment(1);
    m.presence_changes.increment(changes as u64);
    m.presence_deliveries.increment(recipients as u64);
}

/// `n` presence changes (or room pushes) were not pushed.
pub fn presence_suppressed(why: PresenceSuppressed, n: u64) {
    if n == 0 {
        return;
    }
    let m = get();
    match why {
        PresenceSuppressed::Coalesced => m.presence_coalesced.increment(n),
        PresenceSuppressed::LargeRoom => m.presence_large_room.increment(n),
    }
}

/// A TYPING_START was suppressed by the per-user throttle.
pub fn typing_suppressed() {
    get().typing_suppressed.increment(1);
}

/// A SET_READ_MARKER was stored: the marker rose (`moved`) or stayed.
pub fn read_marker(moved: bool) {
    let result = if moved { "moved" } else { "unchanged" };
    counter!(name::READ_MARKERS, "result" => result).increment(1);
}

/// A write was refused because the write backlog was over its bound.
pub fn write_pushback() {
    get().write_pushback.increment(1);
}

// ---------------------------------------------------------------------------
// Fan-out and shards

/// One room event was queued to `recipients` connections, starting at
/// `started`.
#[inline]
pub fn broadcast(recipients: usize, started: Instant) {
    let m = get();
    m.broadcast_duration.record(started.elapsed().as_secs_f64());
    m.broadcast_recipients.record(recipients as f64);
    m.deliveries.increment(recipients as u64);
}

/// Handles of one shard.
pub struct ShardMetrics {
    commands: Counter,
    queue_depth: Gauge,
}

/// Shard `index`'s flush pacing now holds writes back up to `linger`.
pub fn shard_linger(index: usize, linger: std::time::Duration) {
    gauge!(name::SHARD_LINGER, "shard" => index.to_string()).set(linger.as_secs_f64());
}

/// Shards are at most 1024 (`config::validate`).
static SHARDS: [OnceLock<ShardMetrics>; 1024] = [const { OnceLock::new() }; 1024];

/// Shard `index` applied `taken` commands in one pass, then wrote to the
/// connections they touched; `queued` more are waiting.
#[inline]
pub fn shard_pass(index: usize, taken: usize, queued: usize) {
    let Some(slot) = SHARDS.get(index) else {
        return;
    };
    let m = slot.get_or_init(|| {
        get();
        let shard = index.to_string();
        ShardMetrics {
            commands: counter!(name::SHARD_COMMANDS, "shard" => shard.clone()),
            queue_depth: gauge!(name::SHARD_QUEUE_DEPTH, "shard" => shard),
        }
    });
    m.commands.increment(taken as u64);
    m.queue_depth.set(queued as f64);
    get().shard_pass.record(taken as f64);
}

/// A connection was closed as a slow consumer.
pub fn slow_consumer() {
    get().slow_consumers.increment(1);
}

// ---------------------------------------------------------------------------
// Storage

/// The batch writer committed `ops` operations in `took`, leaving `pending`
/// requests queued.
pub fn batch_committed(
    lane: &Gauge,
    ops: usize,
    took: Duration,
    pending: usize,
    backlog_ops: usize,
) {
    let m = get();
    lane.set(pending as f64);
    m.write_backlog.set(backlog_ops as f64);
    if ops == 0 {
        return; // a flush marker: nothing was written
    }
    m.batch_ops.record(ops as f64);
    m.batch_commit.record(took.as_secs_f64());
}

/// The gauge of batch writer lane `lane`'s queued requests.
pub fn batch_lane(lane: usize) -> Gauge {
    gauge!(name::BATCH_PENDING, "lane" => lane.to_string())
}

/// The account writer commits `writes` registrations and logins together.
pub fn account_batch(writes: usize) {
    get().account_batch.record(writes as f64);
}

/// A batch commit attempt failed.
pub fn batch_error() {
    get().batch_errors.increment(1);
}

/// A login or registration was refused by a brute-force limit.
pub fn auth_refused(limit: &'static str) {
    counter!(name::AUTH_REFUSED, "limit" => limit).increment(1);
}

/// A failed login or registration could not be counted (a limit's table
/// was full).
pub fn auth_untracked() {
    counter!(name::AUTH_UNTRACKED).increment(1);
}

/// A password hash was refused: every worker busy, the queue full.
pub fn kdf_refused() {
    counter!(name::KDF_REFUSED).increment(1);
}

/// A store query failed.
pub fn query_error() {
    get().query_errors.increment(1);
}

/// Runs a store query, recording its latency under `op`.
pub async fn query<F: Future>(op: &'static str, fut: F) -> F::Output {
    let started = Instant::now();
    let out = fut.await;
    histogram!(name::STORE_QUERY, "op" => op).record(started.elapsed().as_secs_f64());
    out
}

/// Rooms and memberships restored at start-up.
pub fn restored(rooms: usize, memberships: usize) {
    let m = get();
    m.rooms.increment(rooms as f64);
    m.memberships.increment(memberships as f64);
}

// ---------------------------------------------------------------------------
// Cluster (rare: once per lease round or per fenced batch)

/// Cluster mode started: its counters of rare events are exported at 0
/// from now on, so a dashboard's rate of them is 0 rather than no data
/// until the first one happens.
pub fn cluster_started() {
    for reason in ["expired", "released"] {
        counter!(name::CLUSTER_LEASE_LOSSES, "reason" => reason).increment(0);
    }
    counter!(name::CLUSTER_FENCED_BATCHES).increment(0);
    counter!(name::CLUSTER_ROOM_MOVING).increment(0);
    counter!(name::CLUSTER_SERVED).increment(0);
    counter!(name::CLUSTER_FORWARDED, "result" => "answered").increment(0);
    for direction in ["published", "received"] {
        counter!(name::CLUSTER_USER_PUSHES, "direction" => direction).increment(0);
    }
}

/// The node holds `n` partitions.
pub fn cluster_partitions_owned(n: usize) {
    gauge!(name::CLUSTER_PARTITIONS_OWNED).set(n as f64);
}

/// `n` nodes are live.
pub fn cluster_live_nodes(n: u32) {
    gauge!(name::CLUSTER_LIVE_NODES).set(f64::from(n));
}

/// A lease was acquired.
pub fn cluster_lease_acquired() {
    counter!(name::CLUSTER_LEASE_ACQUISITIONS).increment(1);
}

/// `n` leases were renewed.
pub fn cluster_leases_renewed(n: usize) {
    counter!(name::CLUSTER_LEASE_RENEWALS).increment(n as u64);
}

/// A lease stopped being held (`reason`: `expired`, `released`).
pub fn cluster_lease_lost(reason: &'static str) {
    counter!(name::CLUSTER_LEASE_LOSSES, "reason" => reason).increment(1);
}

/// The store refused a batch as fenced.
pub fn cluster_fenced_batch() {
    counter!(name::CLUSTER_FENCED_BATCHES).increment(1);
}

/// A command for a room this node does not serve was refused.
pub fn cluster_room_moving() {
    counter!(name::CLUSTER_ROOM_MOVING).increment(1);
}

/// A partition's rooms changed hands here (`what`: `gained`, `lost`,
/// `drained`, `drain_timeout`).
pub fn cluster_handover(what: &'static str) {
    counter!(name::CLUSTER_HANDOVERS, "what" => what).increment(1);
}

/// A forwarded command ended with `result`; `started`: when it was sent
/// (none if it never was).
pub fn cluster_forwarded(result: &'static str, started: Option<Instant>) {
    counter!(name::CLUSTER_FORWARDED, "result" => result).increment(1);
    if let Some(started) = started {
        histogram!(name::CLUSTER_FORWARD_DURATION).record(started.elapsed().as_secs_f64());
    }
}

/// A forwarded command received at `started` was answered.
pub fn cluster_served(started: Instant) {
    counter!(name::CLUSTER_SERVED).increment(1);
    histogram!(name::CLUSTER_SERVE_DURATION).record(started.elapsed().as_secs_f64());
}

/// `n` payload bytes went to (`published`) or came from (`received`) NATS.
pub fn cluster_nats_bytes(direction: &'static str, n: usize) {
    counter!(name::CLUSTER_NATS_BYTES, "direction" => direction).increment(n as u64);
}

/// A per-user push was `published` for the other nodes or `received`
/// from one.
pub fn cluster_user_push(direction: &'static str) {
    counter!(name::CLUSTER_USER_PUSHES, "direction" => direction).increment(1);
}

// ---------------------------------------------------------------------------
// Persistence

/// The spool appended a batch.
pub fn spool_recorded() {
    counter!(name::SPOOL_RECORDS).increment(1);
}

/// `records` spooled batches reached the database.
pub fn spool_replayed(records: usize) {
    counter!(name::SPOOL_REPLAYED_RECORDS).increment(records as u64);
}

/// A replay emptied the spool.
pub fn spool_emptied() {
    counter!(name::SPOOL_REPLAYS).increment(1);
}

/// The spool refused a batch (`reason`: `full`, `unwritable`).
pub fn spool_refused(reason: &'static str) {
    counter!(name::SPOOL_REFUSED, "reason" => reason).increment(1);
}

/// An acknowledged request the database refused at replay was dropped.
pub fn spool_dropped() {
    counter!(name::SPOOL_DROPPED).increment(1);
}

/// The spool holds `bytes` not yet replayed.
pub fn spool_bytes(bytes: u64) {
    gauge!(name::SPOOL_BYTES).set(bytes as f64);
}

/// A housekeeping pass removed `n` rows of `kind`.
pub fn housekeeping_removed(kind: &'static str, n: u64) {
    counter!(name::HOUSEKEEPING_REMOVED, "kind" => kind).increment(n);
}

/// An upload was kept (`deduplicated`: its bytes were there already).
pub fn file_uploaded(bytes: u64, deduplicated: bool) {
    let how = if deduplicated {
        "deduplicated"
    } else {
        "stored"
    };
    counter!(name::FILE_UPLOADS, "result" => how).increment(1);
    counter!(name::FILE_UPLOAD_BYTES).increment(bytes);
}

/// An upload was refused for `reason` (a fixed word).
pub fn file_refused(reason: &'static str) {
    counter!(name::FILE_REFUSED, "reason" => reason).increment(1);
}

/// A download was served.
pub fn file_downloaded(by_link: bool, range: bool, bytes: u64) {
    let by = if by_link { "link" } else { "token" };
    let part = if range { "range" } else { "full" };
    counter!(name::FILE_DOWNLOADS, "auth" => by, "part" => part).increment(1);
    counter!(name::FILE_DOWNLOAD_BYTES).increment(bytes);
}

/// A housekeeping pass finished.
pub fn housekeeping_ran() {
    counter!(name::HOUSEKEEPING_RUNS).increment(1);
}

/// The recorder's handle, to render `/metrics` (`None` if another recorder
/// was installed first).
pub(crate) fn handle() -> Option<&'static PrometheusHandle> {
    install();
    HANDLE.get().and_then(Option::as_ref)
}

/// Everything `/metrics` shows: the exporter's metrics, then the
/// histograms the server keeps itself ([`CountHistogram`]).
pub fn render() -> String {
    let Some(handle) = handle() else {
        return String::new();
    };
    let mut text = handle.render();
    get().write_frames.render(
        &mut text,
        name::WRITE_FRAMES,
        "Frames coalesced into one transport write.",
    );
    text
}

/// A histogram of whole numbers that the server keeps itself instead of
/// the exporter, for the hottest path (one sample per socket write): the
/// exporter keeps every sample with its time stamp until its upkeep
/// folds them into buckets (a clock read and an epoch-guarded push per
/// sample, and `record_many` is as many pushes), where this adds `n`
/// samples of one value with three relaxed atomic adds. Rendered in the
/// exporter's text format by [`render`], with the same buckets.
pub struct CountHistogram {
    bounds: &'static [f64],
    /// Samples per bucket (not cumulative); the last is `+Inf`'s own.
    buckets: Box<[AtomicU64]>,
    sum: AtomicU64,
    count: AtomicU64,
}

impl CountHistogram {
    fn new(bounds: &'static [f64]) -> CountHistogram {
        CountHistogram {
            bounds,
            buckets: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
            count: AtomicU64::new(0),
        }
    }

    /// Records `n` samples of `value`.
    pub fn record_n(&self, value: u64, n: u64) {
        if n == 0 {
            return;
        }
        let at = self
            .bounds
            .iter()
            .position(|&b| value as f64 <= b)
            .unwrap_or(self.bounds.len());
        self.buckets[at].fetch_add(n, Ordering::Relaxed);
        self.sum.fetch_add(value * n, Ordering::Relaxed);
        self.count.fetch_add(n, Ordering::Relaxed);
    }

    /// Appends the histogram to `out` as the exporter writes one.
    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} histogram");
        let mut below = 0;
        for (bound, bucket) in self.bounds.iter().zip(self.buckets.iter()) {
            below += bucket.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{bound}\"}} {below}");
        }
        below += self.buckets[self.bounds.len()].load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {below}");
        let _ = writeln!(out, "{name}_sum {}", self.sum.load(Ordering::Relaxed));
        let _ = writeln!(out, "{name}_count {}", self.count.load(Ordering::Relaxed));
        out.push('\n');
    }
}

/// The handle, for tests that read what was recorded.
#[cfg(test)]
pub(crate) fn install_for_tests() -> &'static PrometheusHandle {
    handle().expect("the Prometheus recorder is installed")
}
