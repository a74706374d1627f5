//! Start-up, listeners and graceful shutdown.
//!
//! [`start`] opens the store, restores every room into its shard, starts
//! the batch writer and the shards, binds the listeners and returns a
//! [`ServerHandle`]. Shutdown runs in reverse: stop accepting, close every
//! connection (`SHUTTING_DOWN`), stop the shards, let the batch writer
//! commit what is queued, then return.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use confab_protocol::{EventBody, RoomEvent, RoomId};
use confab_store::sqlite::SqliteStore;
use confab_store::Store;
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{self, KdfParams};
use crate::batch::{self, BatchConfig};
use crate::config::Config;
use crate::room::{MemberState, Room};
use crate::session::{self, Shared};
use crate::shard::{spawn_shards, RoomSlot, ShardCmd, ShardConfig};
use crate::transport::{frame_reader, StreamSink};

/// A running server.
pub struct ServerHandle {
    tcp_addr: SocketAddr,
    shutdown: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl ServerHandle {
    /// The address the plain TCP listener is bound to.
    pub fn tcp_addr(&self) -> SocketAddr {
        self.tcp_addr
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
    let db_path = config.data_dir.join("confab.db");
    let store = SqliteStore::open(&db_path)
        .await
        .with_context(|| format!("opening the SQLite store at {}", db_path.display()))?;
    start_with_store(config, Arc::new(store)).await
}

/// Starts serving on an already opened store.
pub async fn start_with_store(
    config: Config,
    store: Arc<dyn Store>,
) -> anyhow::Result<ServerHandle> {
    let (slots, max_room) = restore(store.as_ref(), config.room_tail_events).await?;
    tracing::info!(rooms = slots.len(), "rooms restored");

    let (batch, batch_task) = batch::spawn(
        store.clone(),
        BatchConfig {
            max_items: config.batch_max_items,
            max_delay: config.batch_max_delay,
        },
    );
    let (router, shard_tasks) = spawn_shards(
        config.shards,
        slots,
        batch,
        ShardConfig {
            tail_cap: config.room_tail_events,
            queue_len: 8192,
        },
    );

    let kdf = KdfParams {
        memory_kib: config.kdf_memory_kib,
        iterations: config.kdf_iterations,
    };
    let dummy_hash = tokio::task::spawn_blocking(move || auth::dummy_hash(kdf)).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding the TCP listener to {}", config.listen))?;
    let tcp_addr = listener.local_addr()?;
    tracing::info!(addr = %tcp_addr, shards = config.shards, "listening (plain TCP, binary protocol)");

    let shutdown = CancellationToken::new();
    let shared = Arc::new(Shared {
        config,
        store,
        router: router.clone(),
        next_room_id: AtomicU64::new(max_room + 1),
        next_conn_id: AtomicU64::new(1),
        sessions: Mutex::new(HashMap::new()),
        shutdown: shutdown.clone(),
        kdf,
        dummy_hash,
    });
    let tracker = TaskTracker::new();
    let accept = tokio::spawn(accept_tcp(listener, shared.clone(), tracker.clone()));

    let token = shutdown.clone();
    let task = tokio::spawn(async move {
        token.cancelled().await;
        tracing::info!("shutting down: closing connections");
        let _ = accept.await;
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
        drop(shared);
        // The shards held the last batch handles: the writer commits what is
        // queued and stops.
        let _ = batch_task.await;
        tracing::info!("shutdown complete");
    });
    Ok(ServerHandle {
        tcp_addr,
        shutdown,
        task,
    })
}

async fn accept_tcp(listener: TcpListener, shared: Arc<Shared>, tracker: TaskTracker) {
    loop {
        let accepted = tokio::select! {
            _ = shared.shutdown.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                tracker.spawn(serve_tcp(shared.clone(), stream, peer));
            }
            Err(e) => {
                // Usually EMFILE: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn serve_tcp(shared: Arc<Shared>, stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let frames = frame_reader(read, shared.config.max_frame_len);
    session::serve(shared, frames, StreamSink::new(write), peer).await;
}

/// Loads rooms, members and recent events into room slots. Returns the
/// slots and the highest room id seen.
async fn restore(store: &dyn Store, tail: usize) -> anyhow::Result<(Vec<RoomSlot>, u64)> {
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
    let mut recent: HashMap<RoomId, Vec<RoomEvent>> = HashMap::new();
    for ev in store
        .load_recent_events(tail as u32)
        .await
        .context("loading recent events")?
    {
        let body =
            EventBody::decode_fields(ev.kind, &mut confab_protocol::wire::Reader::new(&ev.body))
                .with_context(|| format!("stored event {}/{} is corrupt", ev.room, ev.seq))?;
        recent.entry(ev.room).or_default().push(RoomEvent {
            room: ev.room,
            seq: ev.seq,
            at: ev.at,
            actor: ev.actor,
            actor_name: ev.actor_name,
            body,
        });
    }
    let mut max_room = 0;
    let mut slots = Vec::with_capacity(rooms.len());
    for r in rooms {
        max_room = max_room.max(r.id.0);
        let room = Room::restore(
            r.id,
            r.name,
            r.topic,
            r.visibility,
            r.owner,
            r.created_at,
            r.last_seq,
            members.remove(&r.id).unwrap_or_default(),
        );
        slots.push(RoomSlot::restored(
            room,
            recent.remove(&r.id).unwrap_or_default(),
        ));
    }
    Ok((slots, max_room))
}
