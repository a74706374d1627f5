//! Per-user coalescing of the updates pushed to a user's rooms (SPEC.md
//! §5.10.2 for presence, §5.2.5 for profiles). Pure: the caller passes
//! `now` (the server clock). Presence and profile changes share it, and
//! the shard's coalescing tick runs both.
//!
//! Rules:
//! - at most one update per user per [`PUSH_INTERVAL_MS`]: a change is
//!   pushed at once if the user's last push is that old (or there was
//!   none), otherwise when the interval is over, with the value as it is
//!   then (the latest wins);
//! - if by then the value is back to the one last pushed (a flap), nothing
//!   is pushed at all;
//! - a user is remembered while a change waits or their interval runs, and
//!   after that only where the caller keeps them (presence keeps users
//!   with a connection open, so that it knows what others were told).

use std::collections::{BTreeMap, HashMap, HashSet};

use confab_protocol::{Millis, RoomId, UserId};

/// At most one update per user in this interval.
pub const PUSH_INTERVAL_MS: Millis = 1_000;

#[derive(Debug, Clone)]
struct Slot<V> {
    /// What the others were last told (`None`: nothing yet).
    shown: Option<V>,
    /// The value now, if it changed since the last push.
    latest: Option<V>,
    /// When the last update was pushed.
    last_push: Option<Millis>,
    /// Changes since the last push (0: nothing pending).
    changes: u32,
}

/// An update due: tell `user`'s rooms about `value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update<V> {
    pub user: UserId,
    pub value: V,
    /// Changes this update stands for beyond itself (coalesced).
    pub coalesced: u32,
}

/// What [`Coalescer::due`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Due<V> {
    /// Updates to push now (ascending user).
    pub updates: Vec<Update<V>>,
    /// Changes dropped because the value came back to the one last pushed
    /// before the interval was over.
    pub flapped: u32,
}

/// The users with a change waiting or an interval running.
#[derive(Debug, Clone)]
pub struct Coalescer<V> {
    slots: HashMap<UserId, Slot<V>>,
    /// Users [`Coalescer::due`] has to look at.
    pending: HashSet<UserId>,
    /// What the others are taken to know of a user never pushed about
    /// (presence: offline; profiles: nothing).
    unseen: Option<V>,
}

impl<V: Clone + PartialEq> Coalescer<V> {
    pub fn new(unseen: Option<V>) -> Coalescer<V> {
        Coalescer {
            slots: HashMap::new(),
            pending: HashSet::new(),
            unseen,
        }
    }

    /// `user`'s value changed to `value`.
    pub fn change(&mut self, user: UserId, value: V) {
        let slot = self.slots.entry(user).or_insert_with(|| Slot {
            shown: None,
            latest: None,
            last_push: None,
            changes: 0,
        });
        slot.latest = Some(value);
        slot.changes += 1;
        self.pending.insert(user);
    }

    /// Whether [`Coalescer::due`] has anything to look at.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The updates to push at `now`. Users whose interval is over and who
    /// wait for nothing are forgotten unless `keep` says otherwise.
    pub fn due(&mut self, now: Millis, keep: impl Fn(UserId) -> bool) -> Due<V> {
        let mut due = Due {
            updates: Vec::new(),
            flapped: 0,
        };
        let (slots, unseen) = (&mut self.slots, &self.unseen);
        self.pending.retain(|user| {
            let Some(s) = slots.get_mut(user) else {
                return false;
            };
            let open = s
                .last_push
                .is_none_or(|at| now >= at.saturating_add(PUSH_INTERVAL_MS));
            if s.changes > 0 && open {
                let value = s.latest.take();
                if value.is_some() && value.as_ref() == s.shown.as_ref().or(unseen.as_ref()) {
                    due.flapped += s.changes;
                } else if let Some(value) = value {
                    due.updates.push(Update {
                        user: *user,
                        value: value.clone(),
                        coalesced: s.changes - 1,
                    });
                    s.shown = Some(value);
                    s.last_push = Some(now);
                }
                s.changes = 0;
            }
            if s.changes > 0 {
                return true;
            }
            if keep(*user) {
                return false;
            }
            let cooling = s
                .last_push
                .is_some_and(|at| now < at.saturating_add(PUSH_INTERVAL_MS));
            if !cooling {
                slots.remove(user);
            }
            cooling
        });
        due.updates.sort_unstable_by_key(|u| u.user);
        due
    }

    /// Users remembered now.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.slots.len()
    }
}

/// An entry of a per-room list (PRESENCE's changes, PROFILE_CHANGED's
/// profiles).
pub trait ListEntry {
    /// The most bytes the entry takes in the frame.
    fn encoded_len(&self) -> usize;
}

impl ListEntry for confab_protocol::Profile {
    fn encoded_len(&self) -> usize {
        confab_protocol::Profile::encoded_len(self)
    }
}

/// The updates of one tick grouped by room: what each room's frames list.
#[derive(Debug, Clone)]
pub struct RoomBatches<T> {
    rooms: BTreeMap<RoomId, Vec<T>>,
}

impl<T> Default for RoomBatches<T> {
    fn default() -> RoomBatches<T> {
        RoomBatches {
            rooms: BTreeMap::new(),
        }
    }
}

impl<T: ListEntry> RoomBatches<T> {
    /// `entry` is to be told in `room`.
    pub fn add(&mut self, room: RoomId, entry: T) {
        self.rooms.entry(room).or_default().push(entry);
    }

    /// The frames to push: one per room (ascending room, the entries in
    /// the order added), a room's list split over several only where it
    /// would exceed `max_payload` bytes.
    pub fn into_frames(self, max_payload: usize) -> Vec<(RoomId, Vec<T>)> {
        let mut frames = Vec::with_capacity(self.rooms.len());
        for (room, entries) in self.rooms {
            // room and count: at most 10 bytes each.
            let mut size = 20;
            let mut current = Vec::new();
            for e in entries {
                let len = e.encoded_len();
                if !current.is_empty() && size + len > max_payload {
                    frames.push((room, std::mem::take(&mut current)));
                    size = 20;
                }
                size += len;
                current.push(e);
            }
            if !current.is_empty() {
                frames.push((room, current));
            }
        }
        frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: UserId = UserId(1);
    const B: UserId = UserId(2);

    fn values(d: &Due<&'static str>) -> Vec<(UserId, &'static str, u32)> {
        d.updates
            .iter()
            .map(|u| (u.user, u.value, u.coalesced))
            .collect()
    }

    #[test]
    fn one_update_per_user_per_second_the_latest_value_winning() {
        let mut c = Coalescer::new(None);
        c.change(A, "one");
        assert_eq!(values(&c.due(10_000, |_| false)), vec![(A, "one", 0)]);
        c.change(A, "two");
        c.change(A, "three");
        c.change(B, "bee");
        assert_eq!(
            values(&c.due(10_500, |_| false)),
            vec![(B, "bee", 0)],
            "A waits for 11,000; B is new"
        );
        assert_eq!(values(&c.due(11_000, |_| false)), vec![(A, "three", 1)]);
        assert!(c.has_pending(), "A's interval runs until 12,000");
        c.due(12_000, |_| false);
        assert!(!c.has_pending());
        assert_eq!(c.len(), 0, "forgotten once their intervals are over");
    }

    #[test]
    fn a_change_back_to_what_was_shown_sends_nothing() {
        let mut c = Coalescer::new(None);
        c.change(A, "one");
        c.due(10_000, |_| false);
        c.change(A, "two");
        c.change(A, "one");
        let d = c.due(11_000, |_| false);
        assert!(d.updates.is_empty());
        assert_eq!(d.flapped, 2);
    }

    #[test]
    fn the_unseen_value_counts_as_shown() {
        let mut c = Coalescer::new(Some("offline"));
        c.change(A, "offline");
        let d = c.due(10_000, |_| true);
        assert!(d.updates.is_empty());
        assert_eq!(d.flapped, 1);
    }

    #[test]
    fn kept_users_remember_what_was_shown() {
        let mut c = Coalescer::new(None);
        c.change(A, "one");
        c.due(10_000, |_| true);
        c.due(20_000, |_| true);
        assert_eq!(c.len(), 1);
        c.change(A, "one");
        assert!(c.due(30_000, |_| true).updates.is_empty(), "still shown");
    }
}
