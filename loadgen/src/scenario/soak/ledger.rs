//! What the soak's clients did and saw, kept for the final check: every
//! acknowledged message (where the server said it stored it), every room
//! event received live (a fingerprint per room, seq and server process),
//! and the faults that show up as they happen — two clients of one server
//! process shown different events under one seq, a client that missed
//! events without being told (RESUME_GAP), a history page with a hole.
//!
//! Messages carry their identity in their text (`soak TAG U.N`: user `U`'s
//! `N`th message of run `TAG`), so a message found in history says who sent
//! it and which attempt it was. No text is ever sent twice: a send whose
//! outcome is unknown (the connection dropped before the acknowledgement)
//! is not retried, so any text found twice in a room's history is a
//! duplicate the server made.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};

use confab_sdk::{EventBody, ResumePoint, RoomEvent, RoomId, Seq, UserId};
use serde::Serialize;

/// Which server process of the run (0 for the first); events are recorded
/// under the process that sent them.
pub type Generation = u32;

/// How many examples of each kind of fault a report keeps.
const EXAMPLES: usize = 20;

/// A count of faults of one kind, with the first few described.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Faults {
    pub count: u64,
    pub examples: Vec<String>,
}

impl Faults {
    pub fn push(&mut self, what: impl FnOnce() -> String) {
        self.count += 1;
        if self.examples.len() < EXAMPLES {
            self.examples.push(what());
        }
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// A message's identity: its sender (the soak's user number) and the
/// sender's message counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MsgId {
    pub user: u32,
    pub n: u32,
}

/// The run's tag, which makes message texts unique across runs.
#[derive(Debug, Clone)]
pub struct Tag(pub String);

impl Tag {
    pub fn random() -> Tag {
        Tag(format!("{:08x}", rand::random::<u32>()))
    }

    /// The text of message `id`.
    pub fn text(&self, id: MsgId) -> String {
        format!("soak {} {}.{}", self.0, id.user, id.n)
    }

    /// The identity of a message of this run, from its text.
    pub fn parse(&self, text: &str) -> Option<MsgId> {
        let rest = text.strip_prefix("soak ")?.strip_prefix(self.0.as_str())?;
        let (user, n) = rest.strip_prefix(' ')?.split_once('.')?;
        Some(MsgId {
            user: user.parse().ok()?,
            n: n.parse().ok()?,
        })
    }

    /// The identity of `ev` if it is a message of this run.
    pub fn message(&self, ev: &RoomEvent) -> Option<MsgId> {
        match &ev.body {
            EventBody::Message { text, .. } => self.parse(text),
            _ => None,
        }
    }
}

/// A hash of everything an event says (its whole EVENT frame): two
/// deliveries of one event have the same fingerprint.
pub fn fingerprint(ev: &RoomEvent) -> u64 {
    let mut buf = bytes::BytesMut::new();
    ev.encode_frame(&mut buf);
    let mut h = DefaultHasher::new();
    buf.hash(&mut h);
    h.finish()
}

/// One event as clients of one server process received it.
#[derive(Debug, Clone, Copy)]
pub struct Live {
    pub fingerprint: u64,
    /// The message it carries, if it is one of this run's.
    pub msg: Option<MsgId>,
    /// How many clients received it.
    pub observers: u32,
}

/// Counters for the progress line and the report.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counters {
    /// SEND_MESSAGE requests made.
    pub sent: u64,
    /// ... acknowledged (durable, by the protocol's promise).
    pub acked: u64,
    /// ... whose outcome is unknown: the connection dropped or the server
    /// was shutting down before an answer (never retried).
    pub unknown: u64,
    /// ... refused as expected (a kicked or banned guest trying to talk).
    pub refused_expected: u64,
    /// Automatic reconnections by the SDK (after server restarts).
    pub reconnects: u64,
    /// Clients closed on purpose and replaced by a new connection that
    /// resumed from the last seqs seen.
    pub resumes: u64,
    /// RESUME_GAP notices received.
    pub resume_gaps: u64,
    /// ... of which below what the client had seen: events broadcast, then
    /// lost in a kill -9 before their commit (their seqs are reused).
    pub resume_gaps_after_loss: u64,
    /// Room events received live (replays after a resume included).
    pub live_events: u64,
    /// Fresh sessions (LOGIN with a password), each used and logged out.
    pub logins: u64,
    /// HISTORY pages read during the run.
    pub history_reads: u64,
    /// Leaves and (re)joins of public rooms.
    pub leaves: u64,
    pub joins: u64,
    /// Acknowledged messages of chatters and guests that their own client
    /// never received live (it had left the room, say, when it resumed).
    pub own_not_received: u64,
    /// Governance actions (invite, accept, kick, ban, unban) that succeeded.
    pub governance: u64,
    /// ... refused because a reply lost in a restart left the loop out of
    /// step with the room (already invited, not banned, …).
    pub governance_out_of_step: u64,
    /// Requests of any kind interrupted by a restart (no answer).
    pub interrupted: u64,
}

/// Everything recorded during the run.
#[derive(Debug, Default)]
pub struct Ledger {
    pub counters: Counters,
    /// Acknowledged messages and where the acknowledgement placed them.
    pub acked: HashMap<MsgId, (RoomId, Seq)>,
    /// Events received live, by room, seq and the server process that
    /// sent them.
    pub live: HashMap<(RoomId, Seq, Generation), Live>,
    /// Clients of one server process received different events under one
    /// seq.
    pub live_conflicts: Faults,
    /// A client missed events of a room it follows without a RESUME_GAP,
    /// or received one twice.
    pub delivery_faults: Faults,
    /// A HISTORY page that is not a run of consecutive seqs.
    pub history_faults: Faults,
    /// Answers no step of the soak expects (by request and code).
    pub unexpected: Faults,
    /// Messages of listening users (chatters, guests) acknowledged but not
    /// (yet) received back live by their sender's own client...
    pub own_waiting: HashSet<MsgId>,
    /// ... and received back before their acknowledgement arrived.
    own_early: HashSet<MsgId>,
}

impl Ledger {
    /// A live event from server process `generation`.
    pub fn observe(&mut self, ev: &RoomEvent, generation: Generation, tag: &Tag) {
        self.counters.live_events += 1;
        let fp = fingerprint(ev);
        let entry = self
            .live
            .entry((ev.room, ev.seq, generation))
            .or_insert(Live {
                fingerprint: fp,
                msg: tag.message(ev),
                observers: 0,
            });
        entry.observers += 1;
        if entry.fingerprint != fp {
            self.live_conflicts.push(|| {
                format!(
                    "room {} seq {} (process {generation}): clients received different events, e.g. {:?}",
                    ev.room, ev.seq, ev.body
                )
            });
        }
    }

    pub fn ack(&mut self, id: MsgId, room: RoomId, seq: Seq) {
        self.counters.acked += 1;
        self.acked.insert(id, (room, seq));
    }

    /// A listening user's own message was acknowledged.
    pub fn own_acked(&mut self, id: MsgId) {
        if !self.own_early.remove(&id) {
            self.own_waiting.insert(id);
        }
    }

    /// A listening user's client received its own message.
    pub fn own_received(&mut self, id: MsgId) {
        if !self.own_waiting.remove(&id) {
            self.own_early.insert(id);
        }
    }
}

/// One client's view of the rooms it follows: the last seq it received in
/// each (what a resume asks to continue after). Mirrors the SDK's own
/// bookkeeping, so the soak sees what an application would: every event
/// exactly once and in order, a hole only where the server said RESUME_GAP.
#[derive(Debug, Clone, Default)]
pub struct Follow {
    last: HashMap<RoomId, Seq>,
}

impl Follow {
    /// Takes a received event; says what is wrong if it repeats an event
    /// or skips some.
    pub fn on_event(&mut self, me: UserId, ev: &RoomEvent) -> Result<(), String> {
        let verdict = match self.last.get(&ev.room) {
            None => Ok(()),
            Some(&last) if ev.seq <= last => Err(format!(
                "room {}: seq {} received again (last seen {last})",
                ev.room, ev.seq
            )),
            Some(&last) if ev.seq.0 == last.0 + 1 => Ok(()),
            // Removed while away (a resume point for a room one no longer
            // belongs to is ignored): the next event is one's own return.
            Some(_) if ev.actor == me && ev.body == EventBody::MemberJoined => Ok(()),
            Some(&last) => Err(format!(
                "room {}: seq {} follows {last} without a RESUME_GAP ({} events missed)",
                ev.room,
                ev.seq,
                ev.seq.0 - last.0 - 1
            )),
        };
        let gone = match &ev.body {
            EventBody::MemberLeft => ev.actor == me,
            EventBody::MemberKicked { target, .. } | EventBody::MemberBanned { target, .. } => {
                *target == me
            }
            EventBody::RoomTerminated => true,
            _ => false,
        };
        if gone {
            self.last.remove(&ev.room);
        } else {
            // Past a hole too, so that it is reported once.
            let last = self.last.entry(ev.room).or_default();
            *last = (*last).max(ev.seq);
        }
        verdict
    }

    /// RESUME_GAP: live events continue after `last_seq`, which may be
    /// lower than what was seen (events lost in a crash); says whether it
    /// is.
    pub fn on_gap(&mut self, room: RoomId, last_seq: Seq) -> bool {
        self.last
            .insert(room, last_seq)
            .is_some_and(|seen| seen > last_seq)
    }

    pub fn resume_points(&self) -> Vec<ResumePoint> {
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

    const ME: UserId = UserId(7);
    const ROOM: RoomId = RoomId(3);

    fn ev(seq: u64, actor: UserId, body: EventBody) -> RoomEvent {
        RoomEvent {
            room: ROOM,
            seq: Seq(seq),
            at: 1,
            actor,
            actor_name: format!("u{}", actor.0),
            body,
        }
    }

    fn msg(seq: u64) -> RoomEvent {
        ev(seq, UserId(1), EventBody::text("hi"))
    }

    #[test]
    fn message_texts_carry_their_identity_for_this_run_only() {
        let tag = Tag("00c0ffee".into());
        let id = MsgId { user: 4, n: 17 };
        assert_eq!(tag.parse(&tag.text(id)), Some(id));
        assert_eq!(Tag("deadbeef".into()).parse(&tag.text(id)), None);
        assert_eq!(tag.parse("soak 00c0ffee 4"), None);
    }

    #[test]
    fn a_followed_room_must_continue_without_holes_or_repeats() {
        let mut f = Follow::default();
        assert!(f.on_event(ME, &msg(5)).is_ok(), "the first event starts it");
        assert!(f.on_event(ME, &msg(6)).is_ok());
        assert!(f.on_event(ME, &msg(6)).is_err(), "a repeat");
        assert!(f.on_event(ME, &msg(9)).is_err(), "a hole");
        assert_eq!(f.resume_points()[0].after, Seq(9), "moves on past a hole");
        assert!(f.on_gap(ROOM, Seq(4)), "below what was seen");
        assert!(
            f.on_event(ME, &msg(5)).is_ok(),
            "after RESUME_GAP, reused seqs"
        );
    }

    #[test]
    fn leaving_ends_following_and_a_return_may_skip_ahead() {
        let mut f = Follow::default();
        f.on_event(ME, &msg(1)).unwrap();
        f.on_event(ME, &ev(2, ME, EventBody::MemberLeft)).unwrap();
        assert!(f.resume_points().is_empty());
        assert!(f.on_event(ME, &ev(9, ME, EventBody::MemberJoined)).is_ok());
        // Kicked while away: still followed, and the return skips ahead.
        assert!(f.on_event(ME, &ev(20, ME, EventBody::MemberJoined)).is_ok());
        assert!(f.on_event(ME, &msg(25)).is_err());
    }

    #[test]
    fn clients_of_one_process_must_agree_on_every_seq() {
        let tag = Tag("t".into());
        let mut ledger = Ledger::default();
        ledger.observe(&msg(1), 0, &tag);
        ledger.observe(&msg(1), 0, &tag);
        assert!(ledger.live_conflicts.is_empty());
        let other = ev(1, UserId(2), EventBody::text("x"));
        ledger.observe(&other, 1, &tag);
        assert!(ledger.live_conflicts.is_empty(), "another process");
        ledger.observe(&other, 0, &tag);
        assert_eq!(ledger.live_conflicts.count, 1);
    }
}
