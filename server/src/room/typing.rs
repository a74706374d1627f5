//! Typing indicators (SPEC.md §5.5.7): who is typing in one room, the
//! throttle on forwarded TYPING_STARTs and the expiry of a typing state.
//! Pure: the caller passes `now` (the server clock), nothing is stored.
//!
//! Rules:
//! - a START makes the user a typist until `now + TYPING_TTL_MS`; a
//!   later START renews that deadline;
//! - a START is forwarded only if the user's last forwarded START in this
//!   room is at least `START_INTERVAL_MS` old; otherwise it is
//!   suppressed: it renews a typist's deadline, and a user who is not a
//!   typist (they sent STOP within the interval) stays one who is not;
//! - a STOP of a typist ends the state and is forwarded; a STOP of a user
//!   who is not typing changes nothing;
//! - a typist whose deadline has passed expires: the room forwards a STOP
//!   on their behalf.

use std::collections::HashMap;

use confab_protocol::{Millis, UserId};

/// A typing state lasts this long without renewal.
pub const TYPING_TTL_MS: Millis = 5_000;
/// At most one forwarded START per user per room in this interval.
pub const START_INTERVAL_MS: Millis = 2_000;

/// What a TYPING_START or TYPING_STOP amounts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypingOutcome {
    /// Forward a TYPING event (`true`: started, `false`: stopped).
    Forward(bool),
    /// A START within the throttle interval: not forwarded.
    Suppressed,
    /// A STOP from a user who was not typing: nothing to forward.
    Unchanged,
}

/// The typing state of one room.
#[derive(Debug, Clone, Default)]
pub struct Typing {
    /// Current typists and when their state expires.
    expires: HashMap<UserId, Millis>,
    /// When each user's last forwarded START went out (kept until the
    /// throttle interval is over, whether or not they still type).
    last_start: HashMap<UserId, Millis>,
}

impl Typing {
    /// TYPING_START by `user` at `now`.
    pub fn start(&mut self, user: UserId, now: Millis) -> TypingOutcome {
        let throttled = self
            .last_start
            .get(&user)
            .is_some_and(|&at| now < at.saturating_add(START_INTERVAL_MS));
        if throttled {
            if let Some(deadline) = self.expires.get_mut(&user) {
                *deadline = now.saturating_add(TYPING_TTL_MS);
            }
            return TypingOutcome::Suppressed;
        }
        self.last_start.insert(user, now);
        self.expires.insert(user, now.saturating_add(TYPING_TTL_MS));
        TypingOutcome::Forward(true)
    }

    /// TYPING_STOP by `user`.
    pub fn stop(&mut self, user: UserId) -> TypingOutcome {
        if self.expires.remove(&user).is_some() {
            TypingOutcome::Forward(false)
        } else {
            TypingOutcome::Unchanged
        }
    }

    /// Ends the states whose deadline is at or before `now` and returns
    /// their users (ascending), for whom a STOP is due; forgets throttle
    /// records that are over.
    pub fn expire(&mut self, now: Millis) -> Vec<UserId> {
        let mut due: Vec<UserId> = self
            .expires
            .iter()
            .filter(|(_, &deadline)| deadline <= now)
            .map(|(&user, _)| user)
            .collect();
        due.sort_unstable();
        for user in &due {
            self.expires.remove(user);
        }
        self.last_start
            .retain(|_, at| now < at.saturating_add(START_INTERVAL_MS));
        due
    }

    /// Forgets `user` without a STOP (they left the room: MEMBER_LEFT,
    /// MEMBER_KICKED or MEMBER_BANNED already tells the others).
    pub fn forget(&mut self, user: UserId) {
        self.expires.remove(&user);
        self.last_start.remove(&user);
    }

    /// Forgets everyone (the room terminated).
    pub fn clear(&mut self) {
        self.expires.clear();
        self.last_start.clear();
    }

    pub fn is_typing(&self, user: UserId) -> bool {
        self.expires.contains_key(&user)
    }

    /// Whether anything is left for [`Typing::expire`] to do.
    pub fn is_idle(&self) -> bool {
        self.expires.is_empty() && self.last_start.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: UserId = UserId(1);
    const B: UserId = UserId(2);

    #[test]
    fn first_start_is_forwarded_and_makes_a_typist() {
        let mut t = Typing::default();
        assert_eq!(t.start(A, 10_000), TypingOutcome::Forward(true));
        assert!(t.is_typing(A));
    }

    #[test]
    fn starts_within_two_seconds_are_suppressed_then_one_is_forwarded_again() {
        let mut t = Typing::default();
        assert_eq!(t.start(A, 10_000), TypingOutcome::Forward(true));
        for at in [10_000, 10_500, 11_000, 11_999] {
            assert_eq!(t.start(A, at), TypingOutcome::Suppressed, "at {at}");
        }
        assert_eq!(t.start(A, 12_000), TypingOutcome::Forward(true));
        assert_eq!(t.start(A, 12_001), TypingOutcome::Suppressed);
    }

    #[test]
    fn the_throttle_is_per_user() {
        let mut t = Typing::default();
        assert_eq!(t.start(A, 10_000), TypingOutcome::Forward(true));
        assert_eq!(t.start(B, 10_100), TypingOutcome::Forward(true));
        assert_eq!(t.start(A, 10_200), TypingOutcome::Suppressed);
    }

    #[test]
    fn a_typing_state_expires_five_seconds_after_the_last_start() {
        let mut t = Typing::default();
        t.start(A, 10_000);
        assert!(t.expire(14_999).is_empty());
        assert_eq!(t.expire(15_000), vec![A]);
        assert!(!t.is_typing(A));
        assert!(t.expire(20_000).is_empty(), "a STOP is due once only");
    }

    #[test]
    fn a_suppressed_start_still_renews_the_deadline() {
        let mut t = Typing::default();
        t.start(A, 10_000);
        assert_eq!(t.start(A, 11_500), TypingOutcome::Suppressed);
        assert!(t.expire(15_000).is_empty(), "renewed to 16,500");
        assert_eq!(t.expire(16_500), vec![A]);
    }

    #[test]
    fn a_forwarded_renewal_renews_too() {
        let mut t = Typing::default();
        t.start(A, 10_000);
        assert_eq!(t.start(A, 13_000), TypingOutcome::Forward(true));
        assert!(t.expire(17_999).is_empty());
        assert_eq!(t.expire(18_000), vec![A]);
    }

    #[test]
    fn stop_ends_the_state_once_and_a_quick_restart_is_suppressed_without_a_state() {
        let mut t = Typing::default();
        t.start(A, 10_000);
        assert_eq!(t.stop(A), TypingOutcome::Forward(false));
        assert_eq!(t.stop(A), TypingOutcome::Unchanged);
        // Within the interval: not forwarded, and no state to expire
        // later (the others were told A stopped).
        assert_eq!(t.start(A, 11_000), TypingOutcome::Suppressed);
        assert!(!t.is_typing(A));
        assert!(t.expire(30_000).is_empty());
        assert_eq!(t.start(A, 30_000), TypingOutcome::Forward(true));
    }

    #[test]
    fn expiry_returns_every_due_typist_in_order_and_keeps_the_others() {
        let mut t = Typing::default();
        t.start(B, 10_000);
        t.start(A, 10_000);
        let c = UserId(3);
        t.start(c, 12_000);
        assert_eq!(t.expire(15_000), vec![A, B]);
        assert!(t.is_typing(c));
    }

    #[test]
    fn expire_forgets_throttle_records_that_are_over() {
        let mut t = Typing::default();
        t.start(A, 10_000);
        t.stop(A);
        assert!(!t.is_idle(), "the throttle record is kept");
        t.expire(11_999);
        assert!(!t.is_idle());
        t.expire(12_000);
        assert!(t.is_idle());
    }

    #[test]
    fn forget_drops_state_and_throttle_silently() {
        let mut t = Typing::default();
        t.start(A, 10_000);
        t.forget(A);
        assert!(t.expire(20_000).is_empty());
        assert_eq!(t.start(A, 10_001), TypingOutcome::Forward(true));
    }
}
