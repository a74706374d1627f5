//! Start-up ([`start`]), the running server's [`ServerHandle`] and graceful
//! shutdown: the one module that wires every part together.
//!
//! [`start`] opens the store, replays a leftover write spool, restores
//! every room into its shard, starts the batch writer and the shards, binds
//! the listeners (`net`) and returns a [`ServerHandle`]. Shutdown runs in
//! reverse: stop accepting, close every connection (`SHUTTING_DOWN`), stop
//! the shards, let the batch writer commit what is queued, then return.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use confab_protocol::{RoomEvent, RoomId};
use confab_store::sqlite::SqliteStore;
use confab_store::Store;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{self, GuardLimits, Kdf, KdfLimits, KdfParams, LoginGuard};
use crate::clock::Clock;
use crate::config::Config;
use crate::persist::batch::{self, BatchConfig};
use crate::persist::spool::{Spool, SpoolConfig};
use crate::room::{Direct, MemberState, PendingUser, Room, RoomSnapshot};
use crate::shard::{spawn_shards, RoomSlot, Router, ShardCmd, ShardConfig};
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
}

impl ServerHandle {
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
    // Postgres when a database URL is configured, else the embedded SQLite
    // file. Errors name the URL without its password.
    let store: Arc<dyn Store> = match config.database_url.as_ref() {
        Some(url) => {
            let options = confab_store::postgres::PgStoreOptions {
                batch_mode: config.pg_batch_mode,
                ..Default::default()
            };
            let store = confab_store::postgres::PgStore::open(url.0.expose(), options)
                .await
                .with_context(|| format!("opening the Postgres store at {url}"))?;
            Arc::new(store)
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

/// Starts serving on an already opened store.
pub async fn start_with_store(
    config: Config,
    store: Arc<dyn Store>,
) -> anyhow::Result<ServerHandle> {
    crate::metrics::install();
    let stickers =
        crate::stickers::Catalogue::load(config.stickers_dir.as_ref().map(|d| d.0.as_path()))
            .context("loading the sticker catalogue")?;
    tracing::info!(stickers = stickers.len(), "sticker catalogue loaded");
    // Batches an earlier run spooled (acknowledged while the database was
    // unreachable) reach the store before anything is loaded from it.
    let spool = open_spool(&config, store.as_ref()).await?;
    let (slots, max_room, directs) = restore(store.as_ref(), config.room_tail_events).await?;
    tracing::info!(rooms = slots.len(), "rooms restored");
    let next_notification = store
        .max_notification_id()
        .await
        .context("reading notification ids")?
        + 1;

    let (batch, batch_task) = batch::spawn_with_spool(
        store.clone(),
        BatchConfig {
            max_items: config.batch_max_items,
            max_delay: config.batch_max_delay_ms.get(),
            min_interval: config.batch_min_interval_ms.get(),
        },
        spool,
    );
    let clock = Clock::default();
    let (router, shard_tasks) = spawn_shards(
        config.shards,
        slots,
        batch.clone(),
        ShardConfig {
            tail_cap: config.room_tail_events,
            queue_len: 8192,
            notification_ids: Arc::new(AtomicU64::new(next_notification)),
            clock: clock.clone(),
            presence_max_members: config.presence_max_members,
        },
    );

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

    let shutdown = CancellationToken::new();
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
    let state = Arc::new(ServerState {
        config,
        store,
        accounts,
        router: router.clone(),
        next_room_id: AtomicU64::new(max_room + 1),
        next_conn_id: AtomicU64::new(1),
        sessions: SessionRegistry::default(),
        shutdown: shutdown.clone(),
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
    let tracker = TaskTracker::new();
    let (addrs, accepts) = doors.serve(state.clone(), tracker.clone())?;

    let token = shutdown.clone();
    let handle_router = router.clone();
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
        router.send_all(|| ShardCmd::Stop).await;
        for t in shard_tasks {
            let _ = t.await;
        }
        drop(router);
        drop(state);
        // The shards held the last batch handles: the writer commits what is
        // queued and stops.
        let _ = batch_task.await;
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

/// How long start-up waits for the store to take a leftover spool.
const SPOOL_STARTUP_PATIENCE: Duration = Duration::from_secs(60);

/// Loads rooms with their members, bans, invitations, join requests and
/// recent events into room slots. Returns the slots, the highest room id
/// seen (terminated rooms included: ids are never reused) and the direct
/// rooms by pair.
async fn restore(
    store: &dyn Store,
    tail: usize,
) -> anyhow::Result<(Vec<RoomSlot>, u64, DirectRooms)> {
    let rooms = store.load_rooms().await.context("loading rooms")?;
    let mut members: HashMap<RoomId, Vec<MemberState>> = HashMap::new();
    for m in store.load_members().await.context("loading members")? {
        members.entry(m.room).or_default().push(MemberState {
            user: m.user,
            username: m.username,
            role: m.role,
            joined_at: m.joined_at,
        });
    }
    let mut bans: HashMap<RoomId, Vec<PendingUser>> = HashMap::new();
    for b in store.load_bans().await.context("loading bans")? {
        bans.entry(b.room).or_default().push(PendingUser {
            user: b.user,
            username: b.username,
            by: b.by,
            at: b.at,
        });
    }
    let mut invites: HashMap<RoomId, Vec<PendingUser>> = HashMap::new();
    for i in store.load_invites().await.context("loading invitations")? {
        invites.entry(i.room).or_default().push(PendingUser {
            user: i.user,
            username: i.username,
            by: i.by,
            at: i.at,
        });
    }
    let mut requests: HashMap<RoomId, Vec<PendingUser>> = HashMap::new();
    for r in store
        .load_join_requests()
        .await
        .context("loading join requests")?
    {
        requests.entry(r.room).or_default().push(PendingUser {
            user: r.user,
            username: r.username,
            by: r.user,
            at: r.at,
        });
    }
    let mut recent: HashMap<RoomId, Vec<RoomEvent>> = HashMap::new();
    for ev in store
        .load_recent_events(tail as u32)
        .await
        .context("loading recent events")?
    {
        let (room, seq) = (ev.room, ev.seq);
        let ev = ev
            .to_event()
            .with_context(|| format!("stored event {room}/{seq} is corrupt"))?;
        recent.entry(room).or_default().push(ev);
    }
    let mut max_room = 0;
    let mut slots = Vec::with_capacity(rooms.len());
    let mut pairs = Vec::new();
    for r in rooms {
        max_room = max_room.max(r.id.0);
        let direct = r.direct.map(|[a, b]| Direct::new(a, b));
        if let Some(d) = &direct {
            pairs.push((d.pair(), r.id));
        }
        let take = |m: &mut HashMap<RoomId, Vec<PendingUser>>| m.remove(&r.id).unwrap_or_default();
        let room = Room::restore(RoomSnapshot {
            id: r.id,
            name: r.name,
            topic: r.topic,
            visibility: r.visibility,
            owner: r.owner,
            created_at: r.created_at,
            last_seq: r.last_seq,
            terminated: r.terminated_at.is_some(),
            members: members.remove(&r.id).unwrap_or_default(),
            bans: take(&mut bans),
            invites: take(&mut invites),
            requests: take(&mut requests),
            direct,
        });
        slots.push(RoomSlot::restored(
            room,
            recent.remove(&r.id).unwrap_or_default(),
        ));
    }
    Ok((slots, max_room, DirectRooms::new(pairs)))
}
