//! Per-room "last seen sequence number" bookkeeping, for dropping duplicate
//! events and for the resume points sent in HELLO after a reconnect.

use std::collections::HashMap;

use confab_protocol::{ResumePoint, RoomId, Seq};

/// The last event sequence number seen in each room.
#[derive(Debug, Default, Clone)]
pub(crate) struct SeqTracker {
    last: HashMap<RoomId, Seq>,
}

impl SeqTracker {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    /// Records an event; `false` means it was already seen (`seq` at or
    /// below the room's last) and must be dropped.
    pub(crate) fn observe(&mut self, room: RoomId, seq: Seq) -> bool {
        match self.last.get_mut(&room) {
            Some(last) if seq <= *last => false,
            Some(last) => {
                *last = seq;
                true
            }
            None => {
                self.last.insert(room, seq);
                true
            }
        }
    }

    /// Raises the room's last seen seq to at least `seq` (never lowers it),
    /// starting to track the room if it was not tracked.
    pub(crate) fn raise(&mut self, room: RoomId, seq: Seq) {
        let last = self.last.entry(room).or_default();
        *last = (*last).max(seq);
    }

    /// Sets the last seen seq of a room, even lower than before (after
    /// RESUME_GAP the server's numbering is authoritative).
    pub(crate) fn set(&mut self, room: RoomId, seq: Seq) {
        self.last.insert(room, seq);
    }

    /// Stops tracking a room (the user left it).
    pub(crate) fn forget(&mut self, room: RoomId) {
        self.last.remove(&room);
    }

    #[cfg(test)]
    pub(crate) fn last_seen(&self, room: RoomId) -> Option<Seq> {
        self.last.get(&room).copied()
    }

    /// One resume point per tracked room, ordered by room id.
    pub(crate) fn resume_points(&self) -> Vec<ResumePoint> {
        let mut points: Vec<ResumePoint> = self
            .last
            .iter()
            .map(|(&room, &after)| ResumePoint { room, after })
            .collect();
        points.sort_by_key(|p| p.room);
        points
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: RoomId = RoomId(1);
    const B: RoomId = RoomId(2);

    #[test]
    fn new_events_pass_and_duplicates_are_dropped() {
        let mut t = SeqTracker::new();
        assert!(t.observe(A, Seq(1)));
        assert!(t.observe(A, Seq(2)));
        assert!(!t.observe(A, Seq(2)), "same seq again");
        assert!(!t.observe(A, Seq(1)), "older seq");
        assert!(t.observe(A, Seq(5)), "a gap still moves forward");
        assert_eq!(t.last_seen(A), Some(Seq(5)));
    }

    #[test]
    fn rooms_are_tracked_independently() {
        let mut t = SeqTracker::new();
        assert!(t.observe(A, Seq(7)));
        assert!(t.observe(B, Seq(1)));
        assert!(!t.observe(A, Seq(3)));
        assert_eq!(t.last_seen(B), Some(Seq(1)));
    }

    #[test]
    fn raise_never_lowers_and_seeds_untracked_rooms() {
        let mut t = SeqTracker::new();
        t.raise(A, Seq(10));
        assert!(!t.observe(A, Seq(10)));
        t.raise(A, Seq(4));
        assert_eq!(t.last_seen(A), Some(Seq(10)));
        assert!(t.observe(A, Seq(11)));
    }

    #[test]
    fn set_may_lower_the_last_seen_seq() {
        let mut t = SeqTracker::new();
        t.observe(A, Seq(10));
        t.set(A, Seq(7));
        assert_eq!(t.last_seen(A), Some(Seq(7)));
        assert!(
            t.observe(A, Seq(8)),
            "a reused number is delivered after the gap"
        );
    }

    #[test]
    fn resume_points_list_every_tracked_room_in_order() {
        let mut t = SeqTracker::new();
        t.observe(B, Seq(3));
        t.observe(A, Seq(9));
        assert_eq!(
            t.resume_points(),
            vec![
                ResumePoint {
                    room: A,
                    after: Seq(9)
                },
                ResumePoint {
                    room: B,
                    after: Seq(3)
                }
            ]
        );
        t.forget(A);
        assert_eq!(
            t.resume_points(),
            vec![ResumePoint {
                room: B,
                after: Seq(3)
            }]
        );
        assert!(t.observe(A, Seq(1)), "a forgotten room starts afresh");
    }
}
