//! The soak's verdict on the rooms' histories, read after the final
//! restart, against what the clients recorded ([`Ledger`]):
//!
//! - each room's seqs run 1, 2, 3, … with no gap and no repeat;
//! - every acknowledged message is in its room's history exactly once, at
//!   the seq its acknowledgement gave; no message text appears twice;
//! - every event a client received live is the event history holds under
//!   that seq — except where the server process that sent it was killed
//!   (`kill -9`) under load and the event was not acknowledged: the
//!   protocol broadcasts before the commit, so such an event may be lost
//!   and its seq reused (SPEC §7.5). Those are counted, not failed.
//!
//! Pure: no I/O, so that the checker itself is tested (below) on histories
//! with the faults it must find.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use confab_sdk::{RoomEvent, RoomId, Seq};
use serde::Serialize;

use super::ledger::{fingerprint, Faults, Generation, Ledger, MsgId, Tag};

/// What the check found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Verdict {
    pub rooms: usize,
    pub history_events: u64,
    /// Messages of this run found in history.
    pub history_messages: u64,
    /// Acknowledged messages looked for.
    pub acked_checked: u64,
    /// Acknowledged but not in history.
    pub lost: Faults,
    /// A message text found more than once.
    pub duplicates: Faults,
    /// Acknowledged at one seq, found at another.
    pub misplaced: Faults,
    /// Seqs that skip or repeat.
    pub seq_faults: Faults,
    /// Live events compared with history.
    pub live_checked: u64,
    /// Live events history holds differently, or not at all.
    pub live_mismatched: Faults,
    /// Unacknowledged live events from a process killed under load that
    /// history does not hold (allowed: lost before their commit).
    pub live_lost_in_crash: u64,
}

impl Verdict {
    /// One line per kind of failure.
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut add = |what: &str, f: &Faults| {
            if !f.is_empty() {
                out.push(format!(
                    "{what}: {} (e.g. {})",
                    f.count,
                    f.examples.join("; ")
                ));
            }
        };
        add("acknowledged messages lost", &self.lost);
        add("duplicated messages", &self.duplicates);
        add("acknowledged messages at another seq", &self.misplaced);
        add("room seqs with gaps or repeats", &self.seq_faults);
        add(
            "live events that differ from history",
            &self.live_mismatched,
        );
        out
    }
}

/// Checks `histories` (each room's events, oldest first) against `ledger`.
/// `killed` are the server processes killed under load.
pub fn check(
    ledger: &Ledger,
    histories: &BTreeMap<RoomId, Vec<RoomEvent>>,
    killed: &BTreeSet<Generation>,
    tag: &Tag,
) -> Verdict {
    let mut v = Verdict {
        rooms: histories.len(),
        ..Verdict::default()
    };
    // Where each message of this run is, and each (room, seq)'s event.
    let mut found: HashMap<MsgId, Vec<(RoomId, Seq)>> = HashMap::new();
    let mut stored: HashMap<(RoomId, Seq), u64> = HashMap::new();
    for (&room, events) in histories {
        let mut expected = 1u64;
        for ev in events {
            v.history_events += 1;
            if ev.room != room {
                v.seq_faults.push(|| {
                    format!(
                        "room {room}'s history holds an event of room {} (seq {})",
                        ev.room, ev.seq
                    )
                });
                continue;
            }
            if ev.seq.0 != expected {
                v.seq_faults.push(|| {
                    if ev.seq.0 == expected + 1 {
                        format!("room {room}: seq {expected} missing")
                    } else if ev.seq.0 > expected {
                        format!("room {room}: seqs {expected}-{} missing", ev.seq.0 - 1)
                    } else {
                        format!("room {room}: seq {} after {}", ev.seq, expected - 1)
                    }
                });
            }
            expected = expected.max(ev.seq.0 + 1);
            if stored.insert((room, ev.seq), fingerprint(ev)).is_some() {
                continue; // a repeated seq, reported above
            }
            if let Some(id) = tag.message(ev) {
                v.history_messages += 1;
                found.entry(id).or_default().push((room, ev.seq));
            }
        }
    }
    for (id, places) in &found {
        if places.len() > 1 {
            v.duplicates.push(|| {
                format!(
                    "message {}.{} stored {} times: {}",
                    id.user,
                    id.n,
                    places.len(),
                    places
                        .iter()
                        .map(|(r, s)| format!("room {r} seq {s}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            });
        }
    }
    let mut acked: Vec<(&MsgId, &(RoomId, Seq))> = ledger.acked.iter().collect();
    acked.sort();
    for (id, &(room, seq)) in acked {
        v.acked_checked += 1;
        match found.get(id).map(Vec::as_slice) {
            None | Some([]) => v.lost.push(|| {
                format!(
                    "message {}.{} acknowledged as room {room} seq {seq}",
                    id.user, id.n
                )
            }),
            Some(places) if !places.contains(&(room, seq)) => v.misplaced.push(|| {
                format!(
                    "message {}.{} acknowledged as room {room} seq {seq}, stored at room {} seq {}",
                    id.user, id.n, places[0].0, places[0].1
                )
            }),
            Some(_) => {}
        }
    }
    let mut live: Vec<_> = ledger.live.iter().collect();
    live.sort_by_key(|(k, _)| **k);
    for (&(room, seq, generation), seen) in live {
        v.live_checked += 1;
        if stored.get(&(room, seq)) == Some(&seen.fingerprint) {
            continue;
        }
        let acked = seen.msg.is_some_and(|id| ledger.acked.contains_key(&id));
        if killed.contains(&generation) && !acked {
            v.live_lost_in_crash += 1;
            continue;
        }
        v.live_mismatched.push(|| {
            let what = match seen.msg {
                Some(id) => format!("message {}.{}", id.user, id.n),
                None => "an event".to_owned(),
            };
            let held = if stored.contains_key(&(room, seq)) {
                "a different event"
            } else {
                "nothing"
            };
            format!(
                "room {room} seq {seq}: {what} received live from process {generation}, history holds {held}"
            )
        });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_sdk::{EventBody, UserId};

    const ROOM: RoomId = RoomId(1);

    fn tag() -> Tag {
        Tag("t35t".into())
    }

    fn created() -> RoomEvent {
        RoomEvent {
            room: ROOM,
            seq: Seq(1),
            at: 1,
            actor: UserId(1),
            actor_name: "u1".into(),
            body: EventBody::RoomCreated {
                name: "r".into(),
                topic: String::new(),
            },
        }
    }

    fn message(seq: u64, n: u32) -> RoomEvent {
        RoomEvent {
            room: ROOM,
            seq: Seq(seq),
            at: 1,
            actor: UserId(1),
            actor_name: "u1".into(),
            body: EventBody::text(tag().text(MsgId { user: 1, n })),
        }
    }

    /// A room whose history is `events` after RoomCreated, with messages
    /// `acked` acknowledged at their seqs.
    fn run(
        events: Vec<RoomEvent>,
        acked: &[(u32, u64)],
    ) -> (Ledger, BTreeMap<RoomId, Vec<RoomEvent>>) {
        let mut ledger = Ledger::default();
        for &(n, seq) in acked {
            ledger.ack(MsgId { user: 1, n }, ROOM, Seq(seq));
        }
        let mut history = vec![created()];
        history.extend(events);
        (ledger, BTreeMap::from([(ROOM, history)]))
    }

    #[test]
    fn a_complete_history_passes() {
        let (ledger, h) = run(vec![message(2, 1), message(3, 2)], &[(1, 2), (2, 3)]);
        let v = check(&ledger, &h, &BTreeSet::new(), &tag());
        assert!(v.failures().is_empty(), "{:?}", v.failures());
        assert_eq!((v.acked_checked, v.history_messages), (2, 2));
    }

    #[test]
    fn a_missing_acknowledged_message_is_reported_as_lost() {
        // Message 2 was acknowledged at seq 3, but history ends at seq 2.
        let (ledger, h) = run(vec![message(2, 1)], &[(1, 2), (2, 3)]);
        let v = check(&ledger, &h, &BTreeSet::new(), &tag());
        assert_eq!(v.lost.count, 1, "{v:?}");
        assert!(v.lost.examples[0].contains("message 1.2"), "{v:?}");
        assert!(v.failures()[0].starts_with("acknowledged messages lost: 1"));
    }

    #[test]
    fn a_message_stored_twice_is_reported_as_a_duplicate() {
        let (ledger, h) = run(
            vec![message(2, 1), message(3, 2), message(4, 1)],
            &[(1, 2), (2, 3)],
        );
        let v = check(&ledger, &h, &BTreeSet::new(), &tag());
        assert_eq!(v.duplicates.count, 1, "{v:?}");
        assert!(v.duplicates.examples[0].contains("stored 2 times"));
        assert!(v.lost.is_empty() && v.seq_faults.is_empty());
        assert_eq!(v.failures().len(), 1);
    }

    #[test]
    fn gaps_and_repeated_seqs_are_reported() {
        let (ledger, h) = run(vec![message(3, 1), message(3, 2)], &[]);
        let v = check(&ledger, &h, &BTreeSet::new(), &tag());
        assert_eq!(v.seq_faults.count, 2, "{v:?}");
        assert!(v.seq_faults.examples[0].contains("seq 2 missing"));
        assert!(v.seq_faults.examples[1].contains("seq 3 after 3"));
    }

    #[test]
    fn an_acknowledged_message_at_another_seq_is_reported() {
        let (ledger, h) = run(vec![message(2, 1)], &[(1, 5)]);
        let v = check(&ledger, &h, &BTreeSet::new(), &tag());
        assert_eq!(v.misplaced.count, 1, "{v:?}");
    }

    #[test]
    fn live_events_must_match_history_unless_lost_unacknowledged_in_a_kill() {
        // Seq 2 was broadcast as message 1 by process 0 and message 9 by
        // process 1; history holds message 9 (message 1 was lost).
        let (mut ledger, h) = run(vec![message(2, 9)], &[(9, 2)]);
        ledger.observe(&message(2, 1), 0, &tag());
        ledger.observe(&message(2, 9), 1, &tag());
        let v = check(&ledger, &h, &BTreeSet::from([0]), &tag());
        assert!(v.failures().is_empty(), "{:?}", v.failures());
        assert_eq!((v.live_checked, v.live_lost_in_crash), (2, 1));

        // Process 0 shut down gracefully: nothing it broadcast may be lost.
        let v = check(&ledger, &h, &BTreeSet::new(), &tag());
        assert_eq!(v.live_mismatched.count, 1, "{v:?}");

        // An acknowledged message is never excused.
        ledger.ack(MsgId { user: 1, n: 1 }, ROOM, Seq(2));
        let v = check(&ledger, &h, &BTreeSet::from([0]), &tag());
        assert_eq!(v.live_mismatched.count, 1, "{v:?}");
        assert_eq!(v.lost.count, 1, "{v:?}");
    }
}
