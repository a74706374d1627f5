//! A room's tail: its most recent events, already encoded as EVENT frames,
//! in sequence order. It serves three things without touching the store:
//! the recent part of HISTORY, resume after a reconnect, and readers of
//! events that are broadcast but not yet in the database.
//!
//! **Invariant:** the tail never drops an event that is not yet in the
//! database, whatever its capacity — so every event a client may have
//! seen is in memory or in the database, and HISTORY (tail above, database
//! below) has no holes. An event in the write spool is durable (it was
//! acknowledged) but not yet in the database: the tail keeps it until the
//! replay has applied it.
//!
//! Pure data: no I/O, no tasks; the shard owns one per room.

use std::collections::VecDeque;

use bytes::Bytes;
use confab_protocol::Seq;

/// One recent event, already encoded as an EVENT frame.
#[derive(Debug, Clone)]
pub struct TailEntry {
    pub seq: Seq,
    pub frame: Bytes,
}

/// Recent events of a room, for HISTORY.
#[derive(Debug, Clone, PartialEq)]
pub struct TailSlice {
    /// EVENT frames with `seq < before`, newest first.
    pub frames: Vec<Bytes>,
    /// The lowest sequence number the tail holds (`last_seq + 1` when the
    /// tail is empty): older events must come from the store.
    pub floor: Seq,
}

/// What a connection resuming after `after` must be sent.
#[derive(Debug, PartialEq, Eq)]
pub enum Resume {
    /// It saw everything: nothing to send.
    UpToDate,
    /// These frames, oldest first, then live events.
    Replay(Vec<Bytes>),
    /// The tail no longer holds everything it missed, or it claims to have
    /// seen events that do not exist (broadcast, then lost in a crash
    /// before they committed: their numbers will be reused). It must
    /// reload history.
    Gap,
}

/// A room's recent events, oldest first.
#[derive(Debug, Default)]
pub struct Tail {
    entries: VecDeque<TailEntry>,
}

impl Tail {
    /// A tail holding `entries` (ascending seq).
    pub fn from_entries(entries: impl IntoIterator<Item = TailEntry>) -> Tail {
        Tail {
            entries: entries.into_iter().collect(),
        }
    }

    /// Appends the room's newest event.
    pub fn push(&mut self, seq: Seq, frame: Bytes) {
        debug_assert!(self.entries.back().is_none_or(|e| e.seq < seq));
        self.entries.push_back(TailEntry { seq, frame });
    }

    /// Replaces the frame of the event `seq`, if the tail holds it (an
    /// edited message, a tombstone: HISTORY and resume show the latest
    /// form).
    pub fn replace(&mut self, seq: Seq, frame: Bytes) {
        if let Ok(i) = self.entries.binary_search_by_key(&seq, |e| e.seq) {
            self.entries[i].frame = frame;
        }
    }

    /// Events held now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Up to `limit` events with `seq < before` (`before` 0: from the
    /// newest), newest first; `last_seq` is the room's latest number.
    pub fn slice(&self, before: Seq, limit: usize, last_seq: Seq) -> TailSlice {
        let upper = if before.0 == 0 { u64::MAX } else { before.0 };
        let frames = self
            .entries
            .iter()
            .rev()
            .filter(|e| e.seq.0 < upper)
            .take(limit)
            .map(|e| e.frame.clone())
            .collect();
        let floor = self
            .entries
            .front()
            .map(|e| e.seq)
            .unwrap_or(Seq(last_seq.0 + 1));
        TailSlice { frames, floor }
    }

    /// What a connection that saw every event up to `after` must be sent
    /// to catch up with a room whose latest event is `last`.
    pub fn resume(&self, after: Seq, last: Seq) -> Resume {
        if after == last {
            return Resume::UpToDate;
        }
        if after > last {
            return Resume::Gap;
        }
        match self.entries.front() {
            Some(first) if first.seq.0 <= after.0 + 1 => Resume::Replay(
                self.entries
                    .iter()
                    .filter(|e| e.seq > after)
                    .map(|e| e.frame.clone())
                    .collect(),
            ),
            _ => Resume::Gap,
        }
    }

    /// Drops the oldest entries beyond `cap` — but never one newer than
    /// `stored`, the highest sequence number known to be in the database.
    pub fn trim(&mut self, cap: usize, stored: Seq) {
        while self.entries.len() > cap {
            match self.entries.front() {
                Some(e) if e.seq <= stored => {
                    self.entries.pop_front();
                }
                _ => break,
            }
        }
    }

    /// The sequence numbers held, oldest first.
    #[cfg(test)]
    pub fn seqs(&self) -> impl Iterator<Item = Seq> + '_ {
        self.entries.iter().map(|e| e.seq)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_changes_only_a_held_event() {
        let mut t = tail([4, 5, 6]);
        t.replace(Seq(5), Bytes::from("five'"));
        t.replace(Seq(9), Bytes::from("nine"));
        assert_eq!(
            frames(&t.slice(Seq(0), 10, Seq(6)).frames),
            vec!["6", "five'", "4"]
        );
    }

    fn tail(seqs: impl IntoIterator<Item = u64>) -> Tail {
        let mut t = Tail::default();
        for s in seqs {
            t.push(Seq(s), Bytes::from(s.to_string()));
        }
        t
    }

    fn frames(f: &[Bytes]) -> Vec<String> {
        f.iter()
            .map(|b| String::from_utf8(b.to_vec()).unwrap())
            .collect()
    }

    #[test]
    fn a_slice_is_newest_first_below_before_and_names_its_floor() {
        let t = tail(5..=9);
        let s = t.slice(Seq(0), 3, Seq(9));
        assert_eq!(frames(&s.frames), ["9", "8", "7"]);
        assert_eq!(s.floor, Seq(5));
        let s = t.slice(Seq(7), 10, Seq(9));
        assert_eq!(frames(&s.frames), ["6", "5"], "strictly below `before`");
        let empty = Tail::default().slice(Seq(0), 10, Seq(4));
        assert!(empty.frames.is_empty());
        assert_eq!(empty.floor, Seq(5), "nothing in memory: all from the store");
    }

    #[test]
    fn resume_replays_exactly_the_missed_events() {
        let t = tail(5..=9);
        assert_eq!(t.resume(Seq(9), Seq(9)), Resume::UpToDate);
        match t.resume(Seq(6), Seq(9)) {
            Resume::Replay(f) => assert_eq!(frames(&f), ["7", "8", "9"]),
            other => panic!("{other:?}"),
        }
        match t.resume(Seq(4), Seq(9)) {
            Resume::Replay(f) => assert_eq!(frames(&f), ["5", "6", "7", "8", "9"]),
            other => panic!("the tail starts right after the point: {other:?}"),
        }
    }

    #[test]
    fn resume_says_gap_when_the_tail_lost_events_or_the_point_is_from_the_future() {
        let t = tail(5..=9);
        assert_eq!(t.resume(Seq(3), Seq(9)), Resume::Gap, "event 4 is gone");
        assert_eq!(
            t.resume(Seq(12), Seq(9)),
            Resume::Gap,
            "events 10-12 were broadcast, then lost before they committed"
        );
        assert_eq!(Tail::default().resume(Seq(1), Seq(3)), Resume::Gap);
        assert_eq!(Tail::default().resume(Seq(0), Seq(0)), Resume::UpToDate);
    }

    #[test]
    fn trimming_keeps_the_cap_but_never_drops_what_is_not_stored() {
        let mut t = tail(1..=10);
        t.trim(4, Seq(10));
        assert_eq!(t.seqs().map(|s| s.0).collect::<Vec<_>>(), [7, 8, 9, 10]);
        let mut t = tail(1..=10);
        t.trim(4, Seq(3));
        assert_eq!(
            t.seqs().map(|s| s.0).collect::<Vec<_>>(),
            [4, 5, 6, 7, 8, 9, 10],
            "4 and later are not yet committed: they stay"
        );
        t.trim(4, Seq(0));
        assert_eq!(t.len(), 7, "nothing stored, nothing dropped");
    }
}
