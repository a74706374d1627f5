//! What every session, door and background task of one server shares
//! ([`ServerState`]), and the registry of authenticated connections.
//!
//! This module depends only on the parts below it (config, store, router,
//! batch writer, outbound queues, clock), so sessions and doors can hold
//! the state without depending on start-up (`app`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use confab_protocol::{ErrorCode, RoomId, UserId};
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
    /// Room ids to assign (ids are never reused, even after a restart: a
    /// single node continues after the highest stored id; a cluster node
    /// takes blocks no other node has).
    pub room_ids: crate::cluster::IdSource,
    /// Cluster mode: the partitions whose rooms this node serves (a new
    /// room's id is taken in one of them). `None` on a single node.
    pub hosted: Option<Arc<crate::cluster::Hosted>>,
    /// Cluster mode: where connections attach to the rooms other nodes
    /// serve (their events arrive over NATS). `None` on a single node.
    pub relay: Option<crate::cluster::RelayHandle>,
    /// Cluster mode: the store's cluster statements (OPEN_DIRECT claims a
    /// pair's room there). `None` on a single node.
    pub cluster_store: Option<Arc<dyn confab_store::LeaseStore>>,
    /// The next connection number, for logs and registries.
    pub next_conn_id: AtomicU64,
    /// Authenticated connections by session token, so LOGOUT can close
    /// every connection of a session.
    /// Shared with the cluster relay, which ends sessions revoked on
    /// another node.
    pub sessions: Arc<SessionRegistry>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// Quiet connections without a task of their own
    /// ([`crate::session::park`]).
    pub parker: Arc<crate::session::park::Parker>,
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
    pub directs: Arc<DirectRooms>,
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

    /// The direct room of `pair` known here, if any.
    pub fn get(&self, pair: (UserId, UserId)) -> Option<RoomId> {
        let map = self.by_pair.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&pair).copied()
    }

    /// Records the direct rooms of rooms installed after start-up (cluster
    /// mode: a gained partition's), replacing what the pair map had.
    pub fn learn(&self, pairs: impl IntoIterator<Item = ((UserId, UserId), RoomId)>) {
        let mut map = self.by_pair.lock().unwrap_or_else(|e| e.into_inner());
        map.extend(pairs);
    }
}

/// Authenticated connections by user, each with the SHA-256 of the session
/// token it runs under. Touched only when a connection authenticates,
/// ends, logs out or changes its password. One entry per user with one
/// slot per connection (a user's connections are few), where a map by
/// token beside a map by user cost every connection ~350 bytes.
///
/// **Revocation races.** LOGOUT and CHANGE_PASSWORD first delete sessions
/// in the store, then [`SessionRegistry::take`] the connections running
/// under them. A connection that checked its token against the store
/// just before the delete but registers just after the take would keep a
/// dead session open. So every take counts a revocation, a connection
/// reads the count ([`SessionRegistry::ticket`]) before it checks its
/// token or creates its session, and [`SessionRegistry::register_if`]
/// refuses it if a revocation came in between: it checks its token again
/// (that check now sees the delete) and takes a new ticket.
#[derive(Default)]
pub struct SessionRegistry {
    by_user: Mutex<HashMap<UserId, Vec<SessionConn>>>,
    /// Takes so far (changed only under `by_user`'s lock).
    revocations: AtomicU64,
}

/// Which sessions of a user [`SessionRegistry::end`] ends: the one of the
/// token (LOGOUT) or all but it (CHANGE_PASSWORD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    This,
    AllBut,
}

/// The registry's revocation count as a connection read it before
/// checking its token against the store ([`SessionRegistry::register_if`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ticket(u64);

/// A registered connection: the SHA-256 of its session token, its queue.
type SessionConn = ([u8; 32], Arc<OutboundQueue>);

impl SessionRegistry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Vec<SessionConn>>> {
        self.by_user.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Read before checking a token against the store (or creating a
    /// session), for [`SessionRegistry::register_if`].
    pub fn ticket(&self) -> Ticket {
        Ticket(self.revocations.load(Ordering::Acquire))
    }

    /// Records that `conn` runs under `user`'s session `token_hash` —
    /// unless a session was revoked since `ticket` was read: then nothing
    /// is recorded and the answer is `false` (check the token again).
    pub fn register_if(
        &self,
        ticket: Ticket,
        user: UserId,
        token_hash: [u8; 32],
        conn: Arc<OutboundQueue>,
    ) -> bool {
        let mut by_user = self.lock();
        if self.revocations.load(Ordering::Acquire) != ticket.0 {
            return false;
        }
        by_user
            .entry(user)
            .or_insert_with(|| Vec::with_capacity(1))
            .push((token_hash, conn));
        true
    }

    /// Forgets `conn` (it ended).
    pub fn unregister(&self, user: UserId, token_hash: &[u8; 32], conn: ConnId) {
        self.take_where(user, |t, c| t == token_hash && c.id == conn);
    }

    /// Removes and returns every connection of the session (LOGOUT).
    pub fn take(&self, user: UserId, token_hash: &[u8; 32]) -> Vec<Arc<OutboundQueue>> {
        self.revoke(user, |t, _| t == token_hash)
    }

    /// Removes and returns every connection of `user`'s sessions but
    /// `keep` (CHANGE_PASSWORD).
    pub fn take_others(&self, user: UserId, keep: &[u8; 32]) -> Vec<Arc<OutboundQueue>> {
        self.revoke(user, |t, _| t != keep)
    }

    /// Takes the connections of the sessions `which` names and closes them
    /// with LOGGED_OUT (`This`) or PASSWORD_CHANGED (`AllBut`): LOGOUT and
    /// CHANGE_PASSWORD on this node, and their `UserPush::Revoke` from
    /// another. How many closed.
    pub fn end(&self, user: UserId, token_hash: &[u8; 32], which: Ended) -> usize {
        let (ended, code, why) = match which {
            Ended::This => (
                self.take(user, token_hash),
                ErrorCode::LoggedOut,
                "the session was logged out",
            ),
            Ended::AllBut => (
                self.take_others(user, token_hash),
                ErrorCode::PasswordChanged,
                ErrorCode::PasswordChanged.default_message(),
            ),
        };
        for conn in &ended {
            conn.close(code, why);
        }
        ended.len()
    }

    /// [`SessionRegistry::take_where`], counted as a revocation under the
    /// same lock.
    fn revoke(
        &self,
        user: UserId,
        pick: impl Fn(&[u8; 32], &Arc<OutboundQueue>) -> bool,
    ) -> Vec<Arc<OutboundQueue>> {
        let mut by_user = self.lock();
        self.revocations.fetch_add(1, Ordering::AcqRel);
        Self::take_from(&mut by_user, user, pick)
    }

    /// Removes and returns `user`'s connections that `pick` picks.
    fn take_where(
        &self,
        user: UserId,
        pick: impl Fn(&[u8; 32], &Arc<OutboundQueue>) -> bool,
    ) -> Vec<Arc<OutboundQueue>> {
        Self::take_from(&mut self.lock(), user, pick)
    }

    fn take_from(
        by_user: &mut HashMap<UserId, Vec<SessionConn>>,
        user: UserId,
        pick: impl Fn(&[u8; 32], &Arc<OutboundQueue>) -> bool,
    ) -> Vec<Arc<OutboundQueue>> {
        let Some(conns) = by_user.get_mut(&user) else {
            return Vec::new();
        };
        let mut taken = Vec::new();
        let mut i = 0;
        while i < conns.len() {
            if pick(&conns[i].0, &conns[i].1) {
                taken.push(conns.swap_remove(i).1);
            } else {
                i += 1;
            }
        }
        if conns.is_empty() {
            by_user.remove(&user);
        }
        taken
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn(id: u64) -> Arc<OutboundQueue> {
        OutboundQueue::detached(ConnId(id), 1 << 16).0
    }

    #[test]
    fn a_revocation_between_ticket_and_registration_refuses_it() {
        let reg = SessionRegistry::default();
        let (alice, token) = (UserId(1), [7; 32]);
        // The connection reads its ticket, checks its token; meanwhile
        // LOGOUT deletes the session and takes its connections (none yet).
        let ticket = reg.ticket();
        assert!(reg.take(alice, &token).is_empty());
        assert!(!reg.register_if(ticket, alice, token, conn(1)));
        // Nothing was registered: a later take finds nothing to close.
        assert!(reg.take(alice, &token).is_empty());
        // A fresh ticket (after checking the token again) registers.
        let ticket = reg.ticket();
        assert!(reg.register_if(ticket, alice, token, conn(2)));
        assert_eq!(reg.take(alice, &token).len(), 1);
    }

    #[test]
    fn a_registration_before_the_revocation_is_taken_by_it() {
        let reg = SessionRegistry::default();
        let (alice, keep, other) = (UserId(1), [1; 32], [2; 32]);
        let ticket = reg.ticket();
        assert!(reg.register_if(ticket, alice, other, conn(1)));
        assert!(reg.register_if(ticket, alice, keep, conn(2)));
        // CHANGE_PASSWORD from `keep`'s connection ends the other session.
        let taken = reg.take_others(alice, &keep);
        assert_eq!(taken.iter().map(|c| c.id).collect::<Vec<_>>(), [ConnId(1)]);
        // An old ticket no longer registers; ending a connection
        // (unregister) is no revocation.
        assert!(!reg.register_if(ticket, alice, other, conn(3)));
        let ticket = reg.ticket();
        reg.unregister(alice, &keep, ConnId(2));
        assert!(reg.register_if(ticket, alice, keep, conn(4)));
    }
}
