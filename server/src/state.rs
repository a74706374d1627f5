//! What every session, door and background task of one server shares
//! ([`ServerState`]), and the registry of authenticated connections.
//!
//! This module depends only on the parts below it (config, store, router,
//! batch writer, outbound queues, clock), so sessions and doors can hold
//! the state without depending on start-up (`app`).

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use confab_protocol::{RoomId, UserId};
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
    /// Every direct room by its pair of users (OPEN_DIRECT).
    pub directs: DirectRooms,
    /// The per-user abuse limits (messages, profile changes), one
    /// allowance per user across every door.
    pub limits: Arc<crate::limit::Limits>,
    /// Uploaded files' bytes, the upload limit and the link secret.
    pub files: Arc<crate::files::Files>,
}

/// Every direct room by its pair of users, lower id first (SPEC.md
/// §5.3.7): what OPEN_DIRECT consults, so that a pair gets one room however
/// many of its requests arrive at once. Rebuilt from the stored rooms at
/// start-up; behind it the store keeps one direct room per pair too (a
/// unique index). Touched only by OPEN_DIRECT, for a lookup or an insert.
#[derive(Default)]
pub struct DirectRooms {
    by_pair: Mutex<HashMap<(UserId, UserId), RoomId>>,
}

impl DirectRooms {
    /// The map of the rooms loaded at start-up.
    pub fn new(rooms: impl IntoIterator<Item = ((UserId, UserId), RoomId)>) -> DirectRooms {
        DirectRooms {
            by_pair: Mutex::new(rooms.into_iter().collect()),
        }
    }

    /// The direct room of `pair` (lower id first). A pair without one yet
    /// gets `fresh()`, recorded in the same step under the lock: two
    /// requests for one pair at once get the same room, and the first of
    /// them to reach the room's shard creates it.
    pub fn room_for(&self, pair: (UserId, UserId), fresh: impl FnOnce() -> RoomId) -> RoomId {
        let mut map = self.by_pair.lock().unwrap_or_else(|e| e.into_inner());
        *map.entry(pair).or_insert_with(fresh)
    }
}

/// Authenticated connections by the SHA-256 of their session token, and
/// each user's sessions with connections open. Touched only when a
/// connection authenticates, ends, logs out or changes its password.
#[derive(Default)]
pub struct SessionRegistry {
    inner: Mutex<Sessions>,
}

#[derive(Default)]
struct Sessions {
    by_token: HashMap<[u8; 32], Vec<Arc<OutboundQueue>>>,
    /// The sessions in `by_token` of each user.
    by_user: HashMap<UserId, Vec<[u8; 32]>>,
}

impl Sessions {
    fn remove_session(&mut self, user: UserId, token_hash: &[u8; 32]) {
        if let Some(tokens) = self.by_user.get_mut(&user) {
            tokens.retain(|t| t != token_hash);
            if tokens.is_empty() {
                self.by_user.remove(&user);
            }
        }
    }
}

impl SessionRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, Sessions> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `conn` runs under `user`'s session `token_hash`.
    pub fn register(&self, user: UserId, token_hash: [u8; 32], conn: Arc<OutboundQueue>) {
        let mut s = self.lock();
        let conns = s.by_token.entry(token_hash).or_default();
        let first = conns.is_empty();
        conns.push(conn);
        if first {
            s.by_user.entry(user).or_default().push(token_hash);
        }
    }

    /// Forgets `conn` (it ended).
    pub fn unregister(&self, user: UserId, token_hash: &[u8; 32], conn: ConnId) {
        let mut s = self.lock();
        if let Some(list) = s.by_token.get_mut(token_hash) {
            list.retain(|c| c.id != conn);
            if list.is_empty() {
                s.by_token.remove(token_hash);
                s.remove_session(user, token_hash);
            }
        }
    }

    /// Removes and returns every connection of the session (LOGOUT).
    pub fn take(&self, user: UserId, token_hash: &[u8; 32]) -> Vec<Arc<OutboundQueue>> {
        let mut s = self.lock();
        s.remove_session(user, token_hash);
        s.by_token.remove(token_hash).unwrap_or_default()
    }

    /// Removes and returns every connection of `user`'s sessions but
    /// `keep` (CHANGE_PASSWORD).
    pub fn take_others(&self, user: UserId, keep: &[u8; 32]) -> Vec<Arc<OutboundQueue>> {
        let mut s = self.lock();
        let Some(tokens) = s.by_user.remove(&user) else {
            return Vec::new();
        };
        let mut taken = Vec::new();
        for token in tokens {
            if &token == keep {
                s.by_user.entry(user).or_default().push(token);
            } else if let Some(conns) = s.by_token.remove(&token) {
                taken.extend(conns);
            }
        }
        taken
    }
}
