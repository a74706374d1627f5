//! Start-up ([`start`]), the running server's [`ServerHandle`] and graceful
//! shutdown: the one module that wires every part together.
//!
//! [`start`] opens the store, replays a leftover write spool, restores
//! every room into its shard, starts the batch writer and the shards, binds
//! the listeners (`net`) and returns a [`ServerHandle`]. Shutdown runs in
//! reverse: stop accepting, close every connection (`SHUTTING_DOWN`), stop
//! the shards, let the batch writer commit what is queued, then return.
//!
//! In cluster mode (`--cluster-nats`) [`start`] also joins the cluster and
//! runs the lease manager (`cluster::lease`) before anything else: the
//! batch writer fences every batch with the leases its writes carry, the
//! write spool is off, and shutdown releases the leases after the last
//! batch committed.

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use confab_store::sqlite::SqliteStore;
use confab_store::{IdKind, LeaseStore, Store};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{self, GuardLimits, Kdf, KdfLimits, KdfParams, LoginGuard};
use crate::clock::Clock;
use crate::cluster::{
    Hosted, IdBlocks, IdSource, LeaseConfig, LeaseManager, RoomHost, RoomsHere, Routing, Subjects,
};
use crate::config::{ClusterSettings, Config};
use crate::persist::batch::{self, BatchConfig};
use crate::persist::restore::Restored;
use crate::persist::spool::{Spool, SpoolConfig};
use crate::shard::{spawn_shards, Router, ShardCmd, ShardConfig};
use crate::state::{DirectRooms, ServerState, SessionRegistry};

/// A running server.
pub struct ServerHandle {
    /// Where each door listens.
    addrs: crate::net::Addrs,
    /// The admin listener serving `/metrics`, if enabled.
    metrics_addr: Option<SocketAddr>,
    clock: Clock,
    /// The shards, for [`ServerHandle::tick_shards`].
    router: Router,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
    /// What [`ServerHandle::housekeeping_pass`] runs on.
    store: Arc<dyn Store>,
    files: Arc<crate::files::Files>,
    retention: crate::persist::housekeeping::Retention,
    /// Cluster mode: the partitions this node serves.
    hosted: Option<Arc<Hosted>>,
    /// Set by [`ServerHandle::crash`]: shutdown leaves the leases to
    /// expire instead of releasing them.
    abandon_leases: Arc<std::sync::atomic::AtomicBool>,
    parker: Arc<crate::session::park::Parker>,
}

impl ServerHandle {
    /// Connections parked now, without a task of their own
    /// ([`crate::session::park`]).
    pub fn parked_connections(&self) -> usize {
        self.parker.parked()
    }

    /// The address the plain TCP listener is bound to.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.addrs.tcp
    }

    /// The plain HTTP listener's address (JSON API, `ws://…/ws`), if enabled.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.addrs.http
    }

    /// The TLS listener's address, if a certificate is configured.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.addrs.tls
    }

    /// SHA-256 fingerprint of the TLS certificate, `AB:CD:…`.
    pub fn tls_fingerprint(&self) -> Option<&str> {
        self.addrs.tls_fingerprint.as_deref()
    }

    /// The PEM file `--tls-self-signed` wrote, for clients to trust.
    pub fn tls_cert_pem(&self) -> Option<&std::path::Path> {
        self.addrs.tls_cert_pem.as_deref()
    }

    /// The address of the admin listener serving `/metrics`, if enabled.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Runs one tick on every shard now (typing expiry, presence and
    /// profile pushes) and waits until each has handled it: a test that
    /// froze the clock learns that a pending push has gone out.
    pub async fn tick_shards(&self) {
        self.router.tick_all().await;
    }

    /// The server's clock: advancing it moves the server's time forward
    /// (session expiry, housekeeping), for tests that must not sleep.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Runs one housekeeping pass now, at the server clock's time (the
    /// periodic task runs the same), for tests that step the clock.
    pub async fn housekeeping_pass(
        &self,
    ) -> Result<crate::persist::housekeeping::Removed, confab_store::StoreError> {
        let now = self.clock.now_ms();
        crate::persist::housekeeping::run_once(
            self.store.as_ref(),
            &self.files,
            self.retention,
            now,
        )
        .await
    }

    /// Stops the server gracefully and waits until everything queued is
    /// committed.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        let _ = self.task.await;
    }

    /// Stops the server as a crash would leave its leases: they are
    /// neither renewed nor released, so other nodes take its partitions
    /// only once they expired (tests of a node's death; connections are
    /// closed and queued writes committed, as after a graceful stop).
    pub async fn crash(self) {
        self.abandon_leases
            .store(true, std::sync::atomic::Ordering::SeqCst);
        self.shutdown().await;
    }

    /// Cluster mode: the partitions whose rooms this node serves now
    /// (empty on a single node).
    pub fn served_partitions(&self) -> Vec<u32> {
        self.hosted
            .as_ref()
            .map(|h| h.serving())
            .unwrap_or_default()
    }

    /// A token that stops the server when cancelled (e.g. from a signal).
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Waits until the server has stopped.
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Opens the store and restores the rooms, then starts serving.
pub async fn start(config: Config) -> anyhow::Result<ServerHandle> {
    // Refused before anything is opened: cluster mode on SQLite, say.
    let cluster = config.cluster()?;
    // Postgres when a database URL is configured, else the embedded SQLite
    // file. Errors name the URL without its password.
    let store: Arc<dyn Store> = match config.database_url.as_ref() {
        Some(url) => {
            let options = confab_store::postgres::PgStoreOptions {
                batch_mode: config.pg_batch_mode,
                max_connections: config.pg_connections(),
                ..Default::default()
            };
            let store = confab_store::postgres::PgStore::open(url.0.expose(), options)
                .await
                .with_context(|| format!("opening the Postgres store at {url}"))?;
            let store = Arc::new(store);
            if let Some(cluster) = cluster {
                let node = join_cluster(&config, cluster, store.clone()).await?;
                return start_inner(config, store, Some(node)).await;
            }
            store
        }
        None => {
            let db_path = config.data_dir.join("confab.db");
            let store = SqliteStore::open(&db_path)
                .await
                .with_context(|| format!("opening the SQLite store at {}", db_path.display()))?;
            Arc::new(store)
        }
    };
    start_with_store(config, store).await
}

/// Starts serving on an already opened store (a single node: cluster mode
/// needs [`start`], which opens the Postgres store it keeps leases in).
pub async fn start_with_store(
    config: Config,
    store: Arc<dyn Store>,
) -> anyhow::Result<ServerHandle> {
    if config.cluster()?.is_some() {
        anyhow::bail!("cluster mode is started by app::start, which opens the Postgres store");
    }
    start_inner(config, store, None).await
}

/// This node's part in a cluster, for [`start_inner`]: joined, its lease
/// rounds not started yet (they start once the shards can take rooms).
struct ClusterNode {
    store: Arc<dyn LeaseStore>,
    manager: LeaseManager,
    lease: Duration,
    /// The connection to the nodes' NATS server.
    nats: async_nats::Client,
}

/// Joins the cluster. Refuses a leftover write spool: replaying it would
/// write without a fence (start once without `--cluster-nats` to replay
/// it).
async fn join_cluster(
    config: &Config,
    cluster: ClusterSettings,
    store: Arc<confab_store::postgres::PgStore>,
) -> anyhow::Result<ClusterNode> {
    let spool_dir = config.spool_dir();
    if crate::persist::spool::holds_records(&spool_dir) {
        anyhow::bail!(
            "the write spool in {} holds writes that may not be in the database yet, and \
             cluster mode runs without a spool: start this node once without --cluster-nats \
             to replay it",
            spool_dir.display()
        );
    }
    // Reached before joining: a node that cannot route takes no lease.
    let nats = crate::cluster::routing::connect(&cluster.nats, &cluster.node_id)
        .await
        .with_context(|| {
            format!(
                "connecting to the cluster's NATS server at {}",
                cluster.nats
            )
        })?;
    let manager = LeaseManager::join(
        store.clone(),
        LeaseConfig {
            node_id: cluster.node_id.clone(),
            partitions: cluster.partitions,
            lease: cluster.lease,
        },
    )
    .await?;
    Ok(ClusterNode {
        store,
        manager,
        lease: cluster.lease,
        nats,
    })
}

async fn start_inner(
    config: Config,
    store: Arc<dyn Store>,
    cluster: Option<ClusterNode>,
) -> anyhow::Result<ServerHandle> {
    crate::metrics::install();
    let stickers =
        crate::stickers::Catalogue::load(config.stickers_dir.as_ref().map(|d| d.0.as_path()))
            .context("loading the sticker catalogue")?;
    tracing::info!(stickers = stickers.len(), "sticker catalogue loaded");
    // Batches an earlier run spooled (acknowledged while the database was
    // unreachable) reach the store before anything is loaded from it.
    let spool = match cluster {
        None => open_spool(&config, store.as_ref()).await?,
        // An acknowledgement must never rest on a lease the node may have
        // lost by the time the spool is replayed.
        Some(_) => None,
    };
    // A single node holds every room from the start; a cluster node only
    // those of the partitions it owns, installed as it gains them.
    let (restored, room_ids, notification_ids) = match &cluster {
        None => {
            let restored = restore(store.as_ref(), config.room_tail_events).await?;
            let next_notification = store
                .max_notification_id()
                .await
                .context("reading notification ids")?
                + 1;
            let next_room = restored.max_room + 1;
            (
                restored,
                IdSource::local(next_room),
                IdSource::local(next_notification),
            )
        }
        Some(node) => {
            let blocks = |kind| IdBlocks::open(node.store.clone(), kind);
            let rooms = blocks(IdKind::Rooms).await.context("taking room ids")?;
            let notes = blocks(IdKind::Notifications)
                .await
                .context("taking notification ids")?;
            (
                Restored::default(),
                IdSource::Blocks(rooms),
                IdSource::Blocks(notes),
            )
        }
    };
    tracing::info!(rooms = restored.slots.len(), "rooms restored");
    let directs = Arc::new(DirectRooms::new(restored.pairs));

    let batch_config = BatchConfig {
        max_items: config.batch_max_items,
        max_items_deep: config.batch_items_deep(),
        max_delay: config.batch_max_delay_ms.get(),
        min_interval: config.batch_min_interval_ms.get(),
        window_max: config.batch_window_max_ms.get(),
        lanes: config.write_lanes(),
        deep_parts: config.deep_parts(),
    };
    let (batch, batch_task) = match &cluster {
        None => batch::spawn_with_spool(store.clone(), batch_config, spool),
        Some(node) => batch::spawn_cluster(store.clone(), batch_config, node.manager.incarnation()),
    };
    let cluster_store = cluster.as_ref().map(|node| node.store.clone());
    let (ownership, rooms_here, mut routing) = match &cluster {
        Some(node) => {
            let hosted = Arc::new(Hosted::new(node.manager.ownership().partitions()));
            let routing = Routing::new(batch.downgrade());
            let here = RoomsHere {
                hosted,
                remote: routing.remote.clone(),
                fanout: Some(routing.fanout.clone()),
            };
            (Some(node.manager.ownership()), Some(here), Some(routing))
        }
        None => (None, None, None),
    };
    let hosted = rooms_here.as_ref().map(|r| r.hosted.clone());
    let clock = Clock::default();
    let (router, shard_tasks) = spawn_shards(
        config.shards,
        restored.slots,
        batch.clone(),
        ShardConfig {
            tail_cap: config.room_tail_events,
            queue_len: 8192,
            notification_ids: Arc::new(notification_ids),
            clock: clock.clone(),
            presence_max_members: config.presence_max_members,
            flush_linger_max: config.flush_linger_max_ms.get(),
            ownership: ownership.clone(),
            rooms_here,
        },
    );
    let shutdown = CancellationToken::new();
    // Cluster mode: the task serving other nodes' commands (it stops at
    // the start of shutdown; awaited so that it has unsubscribed).
    let mut serving = None;
    // Cluster mode: routing over NATS, the first lease round, its
    // partitions' rooms installed before any door opens, then the rounds
    // and the room host in the background.
    let sessions = Arc::new(SessionRegistry::default());
    let leases = match (cluster, ownership, &hosted) {
        (Some(mut node), Some(ownership), Some(hosted)) => {
            let subjects = Subjects::new(ROUTING_PREFIX);
            if let Some(routing) = &mut routing {
                routing.spawn(
                    node.nats.clone(),
                    subjects.clone(),
                    hosted.clone(),
                    batch.downgrade(),
                    (router.clone(), sessions.clone()),
                    shutdown.clone(),
                );
            }
            serving = Some(tokio::spawn(crate::cluster::serve::run(
                node.nats.clone(),
                subjects,
                hosted.clone(),
                router.clone(),
                shutdown.clone(),
            )));
            let host = Arc::new(RoomHost {
                store: node.store.clone(),
                router: router.clone(),
                hosted: hosted.clone(),
                ownership,
                batch: batch.downgrade(),
                directs: directs.clone(),
                tail: config.room_tail_events as u32,
                retry: node.lease / 3,
                turns: Default::default(),
                relay: routing.as_ref().map(|r| r.handle.clone()),
            });
            crate::metrics::cluster_started();
            let mut events = node.manager.subscribe();
            node.manager.set_handover(host.clone());
            if let Err(e) = node.manager.tick().await {
                tracing::warn!(error = %e, "first lease round failed: retrying in the background");
            }
            host.catch_up(&mut events).await;
            tracing::info!(
                partitions = hosted.serving().len(),
                "cluster mode: partitions are leased, writes fenced, rooms follow the leases, \
                 commands, room events and per-user pushes are routed between nodes over NATS, \
                 and the write spool is off"
            );
            host.spawn(events);
            Some(node.manager.spawn())
        }
        _ => None,
    };

    let kdf = Kdf::new(
        KdfParams {
            memory_kib: config.kdf_memory_kib,
            iterations: config.kdf_iterations,
        },
        KdfLimits {
            workers: config.kdf_workers,
            queue: config.kdf_queue,
            patience: config.kdf_wait_ms.get(),
        },
    )
    .map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
    let dummy_hash: Arc<str> = kdf
        .hash(auth::DUMMY_PASSWORD.into())
        .await
        .map_err(|e| anyhow::anyhow!("hashing the dummy password: {e:?}"))?
        .into();
    tracing::info!(
        workers = config.kdf_workers,
        memory_mib = kdf.memory_bound() / (1024 * 1024),
        "password hashing bounded"
    );
    let guard = LoginGuard::new(
        GuardLimits {
            per_address: config.login_failures_per_address,
            per_username: config.login_failures_per_username,
            window: config.login_window_secs.get(),
            registrations_per_hour: config.registrations_per_address_per_hour,
            exempt: config.auth_limit_exempt.clone(),
        },
        clock.clone(),
    );
    let doors = crate::net::bind(&config).await?;

    let metrics_addr = match config.metrics_listen.addr() {
        Some(addr) => Some(
            crate::metrics::admin::serve(addr, shutdown.clone())
                .await
                .with_context(|| format!("binding the metrics listener to {addr}"))?,
        ),
        None => None,
    };
    if let Some(addr) = metrics_addr {
        tracing::info!(%addr, "serving Prometheus metrics at /metrics");
    }
    let accounts = crate::persist::accounts::AccountWriter::spawn(store.clone());
    let limits = Arc::new(crate::limit::Limits::new(&config, &clock));
    let files = crate::files::Files::open(
        &config.data_dir,
        config.max_upload_bytes,
        config.file_link_ttl_secs.get(),
    )
    .with_context(|| {
        format!(
            "opening the file store in {}",
            config.data_dir.join("files").display()
        )
    })?;
    let files = Arc::new(files.with_avatars(config.max_avatar_bytes, config.max_avatar_side));
    let retention = crate::persist::housekeeping::Retention {
        room_log: config.room_log_retention_days.get(),
        notifications: config.notification_retention_days.get(),
        unreferenced_uploads: config.upload_unreferenced_hours.get(),
    };
    let housekeeping_store = store.clone();
    let tracker = TaskTracker::new();
    let parker = Arc::new(crate::session::park::Parker::new(tracker.clone()));
    let state = Arc::new(ServerState {
        config,
        store,
        accounts,
        router: router.clone(),
        room_ids,
        hosted,
        relay: routing.map(|r| r.handle.clone()),
        cluster_store,
        next_conn_id: AtomicU64::new(1),
        sessions,
        shutdown: shutdown.clone(),
        parker: parker.clone(),
        kdf,
        dummy_hash,
        guard,
        batch,
        clock: clock.clone(),
        directs,
        stickers,
        limits: limits.clone(),
        files: files.clone(),
    });
    crate::persist::housekeeping::spawn(
        state.store.clone(),
        limits,
        files.clone(),
        retention,
        state.config.housekeeping_interval_secs.get(),
        clock.clone(),
        shutdown.clone(),
    );
    // On the tracker: shutdown's wait for connections lasts until the
    // parked ones run again (and close).
    tracker.spawn(parker.clone().sweep(
        shutdown.clone(),
        crate::session::park::Parker::tick(state.config.heartbeat()),
    ));
    let (addrs, accepts) = doors.serve(state.clone(), tracker.clone())?;

    let token = shutdown.clone();
    let handle_router = router.clone();
    let abandon_leases = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let abandon = abandon_leases.clone();
    let handle_hosted = state.hosted.clone();
    let task = tokio::spawn(async move {
        token.cancelled().await;
        tracing::info!("shutting down: closing connections");
        for accept in accepts {
            let _ = accept.await;
        }
        tracker.close();
        if tokio::time::timeout(Duration::from_secs(10), tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("some connections did not close within 10 s");
        }
        if let Some(serving) = serving {
            let _ = serving.await;
        }
        router.send_all(|| ShardCmd::Stop).await;
        for t in shard_tasks {
            let _ = t.await;
        }
        drop(router);
        drop(state);
        // The shards held the last batch handles: the writer commits what is
        // queued and stops.
        let _ = batch_task.await;
        // Only now, with nothing left to write, hand the partitions over.
        if let Some(leases) = leases {
            if abandon.load(std::sync::atomic::Ordering::SeqCst) {
                leases.abandon();
            } else {
                leases.stop().await;
            }
        }
        tracing::info!("shutdown complete");
    });
    Ok(ServerHandle {
        addrs,
        metrics_addr,
        clock,
        router: handle_router,
        shutdown,
        task,
        store: housekeeping_store,
        files,
        retention,
        hosted: handle_hosted,
        abandon_leases,
        parker,
    })
}

/// Opens the write spool (unless `spool_max_bytes` is 0) and replays what
/// an earlier run left in it.
async fn open_spool(config: &Config, store: &dyn Store) -> anyhow::Result<Option<Arc<Spool>>> {
    if config.spool_max_bytes == 0 {
        tracing::warn!("write spool disabled: writes fail while the database is unreachable");
        return Ok(None);
    }
    let dir = config.spool_dir();
    let spool = Spool::open(SpoolConfig {
        dir: dir.clone(),
        max_bytes: config.spool_max_bytes,
    })
    .await
    .with_context(|| format!("opening the write spool in {}", dir.display()))?;
    spool
        .replay_at_startup(store, SPOOL_STARTUP_PATIENCE)
        .await
        .with_context(|| {
            format!(
                "replaying the write spool in {} (it holds acknowledged writes that are not in the \
                 database yet; confabd will not serve without them)",
                dir.display()
            )
        })?;
    // What the replay wrote is read back at start-up (rooms, their tails)
    // from the store's settled form.
    store
        .tidy(true)
        .await
        .context("settling the replayed writes in the store")?;
    Ok(Some(Arc::new(spool)))
}

/// The first token of every NATS subject of a deployment's nodes (one
/// NATS server, or account, per deployment).
const ROUTING_PREFIX: &str = "confab";

/// How long start-up waits for the store to take a leftover spool.
const SPOOL_STARTUP_PATIENCE: Duration = Duration::from_secs(60);

/// Loads every room with its members, bans, invitations, join requests
/// and recent events into room slots (a single node's start-up).
async fn restore(store: &dyn Store, tail: usize) -> anyhow::Result<Restored> {
    let state = store
        .load_all_rooms(tail as u32)
        .await
        .context("loading rooms")?;
    Restored::build(state)
}
