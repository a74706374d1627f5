//! What every session, door and background task of one server shares
//! ([`ServerState`]), and the registry of authenticated connections.
//!
//! This module depends only on the parts below it (config, store, router,
//! batch writer, outbound queues, clock), so sessions and doors can hold
//! the state without depending on start-up (`app`).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use confab_store::Store;
use tokio_util::sync::CancellationToken;

use crate::auth::{Kdf, LoginGuard};
use crate::clock::Clock;
use crate::config::Config;
use crate::outbound::{ConnId, OutboundQueue};
use crate::persist::accounts::AccountWriter;
use crate::persist::batch::BatchHandle;
use crate::shard::Router;
use crate::stickers::Catalogue;

/// What every session, door and background task of one server shares.
pub struct ServerState {
    /// The validated configuration the server started with.
    pub config: Config,
    /// Reads go here directly; room writes go through `batch`, account
    /// writes through `accounts`.
    pub store: Arc<dyn Store>,
    /// Carries room commands to the shard that owns the room.
    pub router: Router,
    /// The next room id to assign (ids are never reused, even after a
    /// restart: start-up continues after the highest stored id).
    pub next_room_id: AtomicU64,
    /// The next connection number, for logs and registries.
    pub next_conn_id: AtomicU64,
    /// Authenticated connections by session token, so LOGOUT can close
    /// every connection of a session.
    pub sessions: SessionRegistry,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// The password hasher: a fixed number of workers with reused memory.
    pub kdf: Arc<Kdf>,
    /// Verified against when a login names an unknown user, so that it
    /// costs what a wrong password costs (timing reveals no usernames).
    pub dummy_hash: Arc<str>,
    /// Failed-login and registration limits.
    pub guard: LoginGuard,
    /// For writes that belong to no room (the server-wide login audit).
    pub batch: BatchHandle,
    /// Registrations and logins, committed together (group commit).
    pub accounts: AccountWriter,
    /// The time every part of the server reads (tests move it forward).
    pub clock: Clock,
    /// The stickers messages may name (built in, or from `stickers_dir`).
    pub stickers: Catalogue,
    /// Uploaded files' bytes, the upload limit and the link secret.
    pub files: Arc<crate::files::Files>,
}

/// Authenticated connections by the SHA-256 of their session token.
/// Touched only when a connection authenticates, ends or logs out.
#[derive(Default)]
pub struct SessionRegistry {
    by_token: Mutex<HashMap<[u8; 32], Vec<Arc<OutboundQueue>>>>,
}

impl SessionRegistry {
    /// Records that `conn` runs under the session `token_hash`.
    pub fn register(&self, token_hash: [u8; 32], conn: Arc<OutboundQueue>) {
        let mut map = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(token_hash).or_default().push(conn);
    }

    /// Forgets `conn` (it ended).
    pub fn unregister(&self, token_hash: &[u8; 32], conn: ConnId) {
        let mut map = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(list) = map.get_mut(token_hash) {
            list.retain(|c| c.id != conn);
            if list.is_empty() {
                map.remove(token_hash);
            }
        }
    }

    /// Removes and returns every connection of the session (LOGOUT).
    pub fn take(&self, token_hash: &[u8; 32]) -> Vec<Arc<OutboundQueue>> {
        let mut map = self.by_token.lock().unwrap_or_else(|e| e.into_inner());
        map.remove(token_hash).unwrap_or_default()
    }
}
