//! Presence (SPEC.md §5.10): each user's online / away / offline state
//! from all of their connections; the updates pushed about it are
//! coalesced by `coalesce.rs`. Pure: the caller passes `now` (the server
//! clock).
//!
//! Rules:
//! - a user is `online` while at least one connection is open, `away`
//!   when they also set SET_AWAY from any connection, `offline` with none;
//! - away is cleared by SET_AWAY false or when the last connection closes
//!   (a SET_AWAY with no connection open changes nothing);
//! - at most one update per user per [`super::coalesce::PUSH_INTERVAL_MS`]:
//!   a change is pushed at once if the user's last push is that old (or
//!   there was none), otherwise when the interval is over, with the state
//!   as it is then (the latest wins); if by then the state is back to the
//!   one last pushed, nothing is pushed at all;
//! - the updates of one coalescing tick are grouped by room
//!   ([`RoomBatches`]): one PRESENCE frame per room lists every member
//!   whose update is due, split over several frames only when the list
//!   would exceed [`MAX_FRAME_PAYLOAD`].

use std::collections::HashMap;

use confab_protocol::{Millis, Presence, PresenceChange, UserId};

use super::coalesce::{Coalescer, ListEntry};
#[cfg(test)]
use {super::coalesce::RoomBatches, confab_protocol::RoomId};

/// At most this many payload bytes per PRESENCE (or PROFILE_CHANGED)
/// frame: a tick's list for a room that would be longer is split over
/// several frames (SPEC.md §5.10.2). The default `max_frame_len` (65,536)
/// less the frame header's type and request id.
pub const MAX_FRAME_PAYLOAD: usize = 65_536 - 5;

/// A user with a connection open.
#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    /// Open connections (at least 1).
    conns: u32,
    away: bool,
}

/// An update due: tell `user`'s rooms they are now `presence`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Update {
    pub user: UserId,
    pub presence: Presence,
    /// State changes this update stands for beyond itself (coalesced).
    pub coalesced: u32,
}

/// What [`Presences::due`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Due {
    /// Updates to push now (ascending user).
    pub updates: Vec<Update>,
    /// State changes dropped because the state came back to the one last
    /// pushed before the interval was over.
    pub flapped: u32,
}

/// The presence of every user with a connection, and the coalescing of
/// the updates about it (`coalesce.rs`: offline is what others know of a
/// user never pushed about).
#[derive(Debug, Clone)]
pub struct Presences {
    users: HashMap<UserId, Entry>,
    pushes: Coalescer<Presence>,
}

impl Default for Presences {
    fn default() -> Presences {
        Presences {
            users: HashMap::new(),
            pushes: Coalescer::new(Some(Presence::Offline)),
        }
    }
}

impl Presences {
    /// The current presence of `user`.
    pub fn state(&self, user: UserId) -> Presence {
        match self.users.get(&user) {
            None => Presence::Offline,
            Some(e) if e.away => Presence::Away,
            Some(_) => Presence::Online,
        }
    }

    /// A connection of `user` opened.
    pub fn connect(&mut self, user: UserId) {
        self.change(user, |users| users.entry(user).or_default().conns += 1);
    }

    /// A connection of `user` closed (the last one clears away).
    pub fn disconnect(&mut self, user: UserId) {
        self.change(user, |users| {
            if let Some(e) = users.get_mut(&user) {
                e.conns = e.conns.saturating_sub(1);
                if e.conns == 0 {
                    users.remove(&user);
                }
            }
        });
    }

    /// SET_AWAY: `away` set or cleared (no effect without a connection).
    pub fn set_away(&mut self, user: UserId, away: bool) {
        self.change(user, |users| {
            if let Some(e) = users.get_mut(&user) {
                e.away = away;
            }
        });
    }

    fn change(&mut self, user: UserId, f: impl FnOnce(&mut HashMap<UserId, Entry>)) {
        let before = self.state(user);
        f(&mut self.users);
        let after = self.state(user);
        if after != before {
            self.pushes.change(user, after);
        }
    }

    /// Whether [`Presences::due`] has anything to look at.
    pub fn has_pending(&self) -> bool {
        self.pushes.has_pending()
    }

    /// The updates to push at `now`; forgets offline users once their
    /// interval is over.
    pub fn due(&mut self, now: Millis) -> Due {
        let users = &self.users;
        let due = self.pushes.due(now, |u| users.contains_key(&u));
        Due {
            updates: due
                .updates
                .into_iter()
                .map(|u| Update {
                    user: u.user,
                    presence: u.value,
                    coalesced: u.coalesced,
                })
                .collect(),
            flapped: due.flapped,
        }
    }
}

impl ListEntry for PresenceChange {
    fn encoded_len(&self) -> usize {
        PresenceChange::encoded_len(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: UserId = UserId(1);
    const B: UserId = UserId(2);

    fn pushed(d: &Due) -> Vec<(UserId, Presence)> {
        d.updates.iter().map(|u| (u.user, u.presence)).collect()
    }

    #[test]
    fn online_while_any_connection_is_open() {
        let mut p = Presences::default();
        assert_eq!(p.state(A), Presence::Offline);
        p.connect(A);
        p.connect(A);
        assert_eq!(p.state(A), Presence::Online);
        p.disconnect(A);
        assert_eq!(p.state(A), Presence::Online, "the second device is open");
        p.disconnect(A);
        assert_eq!(p.state(A), Presence::Offline);
    }

    #[test]
    fn away_from_any_device_until_cleared_or_all_connections_drop() {
        let mut p = Presences::default();
        p.set_away(A, true);
        assert_eq!(p.state(A), Presence::Offline, "no connection: no away");
        p.connect(A);
        p.connect(A);
        p.set_away(A, true);
        assert_eq!(p.state(A), Presence::Away);
        p.disconnect(A);
        assert_eq!(p.state(A), Presence::Away, "one device left");
        p.set_away(A, false);
        assert_eq!(p.state(A), Presence::Online);
        p.set_away(A, true);
        p.disconnect(A);
        assert_eq!(p.state(A), Presence::Offline);
        p.connect(A);
        assert_eq!(
            p.state(A),
            Presence::Online,
            "away ended with the last connection"
        );
    }

    #[test]
    fn the_first_change_is_pushed_at_once() {
        let mut p = Presences::default();
        p.connect(A);
        assert!(p.has_pending());
        let d = p.due(10_000);
        assert_eq!(pushed(&d), vec![(A, Presence::Online)]);
        assert_eq!(d.updates[0].coalesced, 0);
        assert!(!p.has_pending());
        assert_eq!(p.due(10_000), Due::default(), "once");
    }

    #[test]
    fn at_most_one_update_per_second_and_the_latest_state_wins() {
        let mut p = Presences::default();
        p.connect(A);
        p.due(10_000);
        p.set_away(A, true);
        p.set_away(A, false);
        p.set_away(A, true);
        assert!(p.due(10_500).updates.is_empty());
        assert!(p.due(10_999).updates.is_empty());
        let d = p.due(11_000);
        assert_eq!(pushed(&d), vec![(A, Presence::Away)]);
        assert_eq!(d.updates[0].coalesced, 2);
        // The next change waits for 12,000.
        p.disconnect(A);
        assert!(p.due(11_999).updates.is_empty());
        assert_eq!(pushed(&p.due(12_000)), vec![(A, Presence::Offline)]);
    }

    #[test]
    fn a_flap_that_ends_where_it_started_sends_nothing() {
        let mut p = Presences::default();
        p.connect(A);
        p.due(10_000);
        p.disconnect(A);
        p.connect(A);
        let d = p.due(11_000);
        assert!(d.updates.is_empty());
        assert_eq!(d.flapped, 2);
        assert!(!p.has_pending());
        // The interval still counts from the last push: a change now goes
        // out at once.
        p.set_away(A, true);
        assert_eq!(pushed(&p.due(11_001)), vec![(A, Presence::Away)]);
    }

    #[test]
    fn a_change_after_a_quiet_second_goes_out_at_once() {
        let mut p = Presences::default();
        p.connect(A);
        p.due(10_000);
        p.set_away(A, true);
        assert_eq!(pushed(&p.due(25_000)), vec![(A, Presence::Away)]);
        p.set_away(A, true);
        assert!(!p.has_pending(), "no change");
    }

    #[test]
    fn users_are_coalesced_independently_and_listed_in_order() {
        let mut p = Presences::default();
        p.connect(B);
        p.connect(A);
        assert_eq!(
            pushed(&p.due(10_000)),
            vec![(A, Presence::Online), (B, Presence::Online)]
        );
        p.set_away(A, true);
        assert!(p.due(10_200).updates.is_empty());
        p.connect(UserId(3));
        assert_eq!(pushed(&p.due(10_300)), vec![(UserId(3), Presence::Online)]);
        assert_eq!(pushed(&p.due(11_000)), vec![(A, Presence::Away)]);
    }

    #[test]
    fn a_redundant_change_is_no_change() {
        let mut p = Presences::default();
        p.connect(A);
        p.due(10_000);
        p.connect(A);
        p.set_away(A, false);
        assert!(p.due(10_000).updates.is_empty(), "still online");
        assert!(!p.has_pending());
    }

    #[test]
    fn offline_users_are_forgotten_once_their_interval_is_over() {
        let mut p = Presences::default();
        p.connect(A);
        p.due(10_000);
        p.disconnect(A);
        assert_eq!(pushed(&p.due(11_000)), vec![(A, Presence::Offline)]);
        assert_eq!(p.pushes.len(), 1, "the interval runs until 12,000");
        p.due(12_000);
        assert!(p.users.is_empty() && p.pushes.len() == 0);
    }

    /// The frames of the updates due at `now`, each user in the rooms
    /// `rooms` lists for them.
    fn frames(
        p: &mut Presences,
        now: Millis,
        rooms: &[(UserId, &[u64])],
        max_payload: usize,
    ) -> Vec<(u64, Vec<(UserId, Presence)>)> {
        let mut batches = RoomBatches::default();
        for u in p.due(now).updates {
            let (_, of) = rooms.iter().find(|(user, _)| *user == u.user).unwrap();
            for room in *of {
                batches.add(
                    RoomId(*room),
                    PresenceChange {
                        user: u.user,
                        username: format!("user{}", u.user.0),
                        presence: u.presence,
                    },
                );
            }
        }
        batches
            .into_frames(max_payload)
            .into_iter()
            .map(|(room, changes)| {
                let list = changes.iter().map(|c| (c.user, c.presence)).collect();
                (room.0, list)
            })
            .collect()
    }

    const C: UserId = UserId(3);

    #[test]
    fn several_users_changing_in_one_tick_make_one_frame_per_room() {
        let mut p = Presences::default();
        // A in rooms 1 and 2, B in 1, C in 2 and 3.
        let rooms: &[(UserId, &[u64])] = &[(A, &[1, 2]), (B, &[1]), (C, &[2, 3])];
        p.connect(C);
        p.connect(A);
        p.connect(B);
        assert_eq!(
            frames(&mut p, 10_000, rooms, MAX_FRAME_PAYLOAD),
            vec![
                (1, vec![(A, Presence::Online), (B, Presence::Online)]),
                (2, vec![(A, Presence::Online), (C, Presence::Online)]),
                (3, vec![(C, Presence::Online)]),
            ]
        );
        // Within the second: held back, then one frame per room with the
        // latest state of each, and nothing for a flap (B).
        p.set_away(A, true);
        p.disconnect(C);
        p.disconnect(B);
        p.connect(B);
        assert!(frames(&mut p, 10_250, rooms, MAX_FRAME_PAYLOAD).is_empty());
        p.set_away(A, false);
        p.set_away(A, true);
        assert_eq!(
            frames(&mut p, 11_000, rooms, MAX_FRAME_PAYLOAD),
            vec![
                (1, vec![(A, Presence::Away)]),
                (2, vec![(A, Presence::Away), (C, Presence::Offline)]),
                (3, vec![(C, Presence::Offline)]),
            ]
        );
    }

    #[test]
    fn a_reconnect_storm_is_one_frame_per_room() {
        let mut p = Presences::default();
        let members: Vec<(UserId, Vec<u64>)> =
            (0..1_000).map(|u| (UserId(u), vec![u / 100])).collect();
        let rooms: Vec<(UserId, &[u64])> =
            members.iter().map(|(u, r)| (*u, r.as_slice())).collect();
        for (u, _) in &members {
            p.connect(*u);
        }
        let f = frames(&mut p, 10_000, &rooms, MAX_FRAME_PAYLOAD);
        assert_eq!(f.len(), 10);
        assert!(f.iter().all(|(_, list)| list.len() == 100));
    }

    #[test]
    fn a_list_over_the_frame_limit_is_split() {
        let mut p = Presences::default();
        let rooms: &[(UserId, &[u64])] = &[(A, &[7]), (B, &[7]), (C, &[7])];
        p.connect(A);
        p.connect(B);
        p.connect(C);
        // Room and count (20) and two entries of 36 bytes ("userN") fit.
        assert_eq!(
            frames(&mut p, 10_000, rooms, 20 + 2 * 36),
            vec![
                (7, vec![(A, Presence::Online), (B, Presence::Online)]),
                (7, vec![(C, Presence::Online)]),
            ]
        );
    }
}
