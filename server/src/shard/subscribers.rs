//! A room's subscribed connections: what a broadcast walks, and what joins,
//! leaves, attaches and detaches change.
//!
//! A broadcast iterates a dense `Vec` (the hot path: one pointer chase per
//! recipient); an index from connection id to position makes adding and
//! removing a connection O(1) (`swap_remove`), so a leave in a room of
//! 10,000 connections does not walk them all. The order of subscribers is
//! not meaningful: every connection's own frames stay in order, and
//! different connections never shared an order.

use std::collections::HashMap;
use std::sync::Arc;

use crate::outbound::{ConnId, OutboundQueue};

#[derive(Default)]
pub(crate) struct Subscribers {
    conns: Vec<Arc<OutboundQueue>>,
    at: HashMap<ConnId, usize>,
}

impl Subscribers {
    pub(crate) fn len(&self) -> usize {
        self.conns.len()
    }

    /// Adds `conn` unless it is subscribed already.
    pub(crate) fn add(&mut self, conn: &Arc<OutboundQueue>) {
        if self.at.contains_key(&conn.id) {
            return;
        }
        self.at.insert(conn.id, self.conns.len());
        self.conns.push(conn.clone());
    }

    /// Removes connection `id`, if subscribed.
    pub(crate) fn remove(&mut self, id: ConnId) {
        let Some(i) = self.at.remove(&id) else {
            return;
        };
        self.conns.swap_remove(i);
        if let Some(moved) = self.conns.get(i) {
            self.at.insert(moved.id, i);
        }
    }
}

impl<'a> IntoIterator for &'a Subscribers {
    type Item = &'a Arc<OutboundQueue>;
    type IntoIter = std::slice::Iter<'a, Arc<OutboundQueue>>;

    fn into_iter(self) -> Self::IntoIter {
        self.conns.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(s: &Subscribers) -> Vec<u64> {
        let mut v: Vec<u64> = s.into_iter().map(|c| c.id.0).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn add_remove_keep_the_index_true() {
        let conns: Vec<_> = (0..5)
            .map(|i| OutboundQueue::detached(ConnId(i), 1 << 20).0)
            .collect();
        let mut s = Subscribers::default();
        for c in &conns {
            s.add(c);
        }
        s.add(&conns[2]);
        assert_eq!(ids(&s), vec![0, 1, 2, 3, 4], "no duplicates");
        s.remove(ConnId(0)); // the last one moves into its place
        s.remove(ConnId(9)); // not subscribed: nothing
        assert_eq!(ids(&s), vec![1, 2, 3, 4]);
        s.remove(ConnId(4)); // the one that moved
        s.remove(ConnId(3)); // the last one itself
        assert_eq!(ids(&s), vec![1, 2]);
        for (id, &i) in &s.at {
            assert_eq!(s.conns[i].id, *id, "index points at its connection");
        }
        s.remove(ConnId(1));
        s.remove(ConnId(2));
        assert_eq!(s.len(), 0);
        assert!(s.at.is_empty());
    }
}
