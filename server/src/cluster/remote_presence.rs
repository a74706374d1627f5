//! The other nodes' connections, as this node counts them in its users'
//! presence (`ShardCmd::RemoteConnection`), kept per node: a plain state
//! machine fed by the per-user pushes in the order they came (`relay.rs`
//! hands them over through the task in `routing.rs`), unit-tested without
//! NATS. Each call returns the connections to count opened (`true`) or
//! closed (`false`), one entry per connection.
//!
//! A node sends each connection it opens and closes, and every
//! [`PRESENT_EVERY`] the whole list of its users with their counts, from
//! one task and so in order: the list replaces what was counted for that
//! node (a node that started later, or missed pushes while NATS was down,
//! catches up), and a node not heard for [`PRESENT_TTL`] — it died, or
//! this node is cut off — has its connections counted closed.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use confab_protocol::UserId;

/// How often a node sends the list of its connected users.
pub const PRESENT_EVERY: Duration = Duration::from_secs(5);

/// A node not heard for this long has its connections counted closed.
pub const PRESENT_TTL: Duration = Duration::from_secs(15);

/// One connection of a user opened (`true`) or closed (`false`).
pub(super) type Change = (UserId, bool);

struct Origin {
    users: HashMap<UserId, u32>,
    seen: Instant,
}

/// See the module doc.
#[derive(Default)]
pub(super) struct RemotePresence {
    origins: HashMap<u64, Origin>,
}

impl RemotePresence {
    fn origin(&mut self, node: u64, now: Instant) -> &mut Origin {
        let origin = self.origins.entry(node).or_insert_with(|| Origin {
            users: HashMap::new(),
            seen: now,
        });
        origin.seen = now;
        origin
    }

    /// A connection of `user` opened or closed on `node`.
    pub(super) fn connection(
        &mut self,
        node: u64,
        user: UserId,
        open: bool,
        now: Instant,
    ) -> Option<Change> {
        let users = &mut self.origin(node, now).users;
        if open {
            *users.entry(user).or_default() += 1;
            return Some((user, true));
        }
        let count = users.get_mut(&user)?;
        *count -= 1;
        if *count == 0 {
            users.remove(&user);
        }
        Some((user, false))
    }

    /// `node`'s whole list: the differences from what was counted.
    pub(super) fn present(
        &mut self,
        node: u64,
        listed: Vec<(UserId, u32)>,
        now: Instant,
    ) -> Vec<Change> {
        let origin = self.origin(node, now);
        let mut now_counted: HashMap<UserId, u32> =
            listed.into_iter().filter(|(_, n)| *n > 0).collect();
        let mut changes = Vec::new();
        for (user, before) in &origin.users {
            let after = now_counted.get(user).copied().unwrap_or(0);
            changes.extend(std::iter::repeat_n(
                (*user, false),
                before.saturating_sub(after) as usize,
            ));
        }
        for (user, after) in &now_counted {
            let before = origin.users.get(user).copied().unwrap_or(0);
            changes.extend(std::iter::repeat_n(
                (*user, true),
                after.saturating_sub(before) as usize,
            ));
        }
        std::mem::swap(&mut origin.users, &mut now_counted);
        changes
    }

    /// Closes the connections of every node not heard since `now - ttl`.
    pub(super) fn expire(&mut self, now: Instant, ttl: Duration) -> Vec<Change> {
        let mut changes = Vec::new();
        self.origins.retain(|_, origin| {
            if now.duration_since(origin.seen) < ttl {
                return true;
            }
            for (user, n) in &origin.users {
                changes.extend(std::iter::repeat_n((*user, false), *n as usize));
            }
            false
        });
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ANN: UserId = UserId(1);
    const BOB: UserId = UserId(2);

    fn sorted(mut changes: Vec<Change>) -> Vec<Change> {
        changes.sort();
        changes
    }

    #[test]
    fn connections_count_per_node_and_an_unknown_close_changes_nothing() {
        let mut p = RemotePresence::default();
        let t = Instant::now();
        assert_eq!(p.connection(1, ANN, true, t), Some((ANN, true)));
        assert_eq!(
            p.connection(2, ANN, false, t),
            None,
            "not counted for node 2"
        );
        assert_eq!(p.connection(1, ANN, false, t), Some((ANN, false)));
        assert_eq!(p.connection(1, ANN, false, t), None);
    }

    #[test]
    fn a_list_replaces_what_was_counted_for_its_node() {
        let mut p = RemotePresence::default();
        let t = Instant::now();
        p.connection(1, ANN, true, t);
        p.connection(1, ANN, true, t);
        // A node that started later learns bob; ann has one connection
        // left; node 2's count stays.
        p.connection(2, BOB, true, t);
        let changes = p.present(1, vec![(ANN, 1), (BOB, 1)], t);
        assert_eq!(sorted(changes), [(ANN, false), (BOB, true)]);
        assert!(p.present(1, vec![(ANN, 1), (BOB, 1)], t).is_empty());
        assert_eq!(p.present(1, vec![], t).len(), 2);
    }

    #[test]
    fn a_node_not_heard_for_the_ttl_has_its_connections_closed() {
        let mut p = RemotePresence::default();
        let t = Instant::now();
        p.present(1, vec![(ANN, 2)], t);
        p.connection(2, BOB, true, t + Duration::from_secs(10));
        let changes = p.expire(t + Duration::from_secs(16), PRESENT_TTL);
        assert_eq!(changes, [(ANN, false), (ANN, false)]);
        assert!(p
            .expire(t + Duration::from_secs(16), PRESENT_TTL)
            .is_empty());
        assert_eq!(
            p.expire(t + Duration::from_secs(26), PRESENT_TTL),
            [(BOB, false)]
        );
    }
}
