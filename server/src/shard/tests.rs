//! The shard driven directly, without sockets or tasks: commands in,
//! frames out of in-memory outbound queues, writes out of a detached batch
//! handle (completed by hand, so the tests decide what is durable).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use confab_protocol::frame::split_frame;
use confab_protocol::{
    ErrorCode, EventBody, ResumePoint, RoomId, Seq, ServerMsg, UserId, Visibility,
};
use tokio::sync::mpsc::UnboundedReceiver;

use super::*;
use crate::outbound::{ConnId, OutboundRx};
use crate::persist::batch::{BatchHandle, WriteRequest};
use crate::room::Rich;

const ALICE: UserId = UserId(1);
const BOB: UserId = UserId(2);
const ROOM: RoomId = RoomId(1);

struct Harness {
    shard: Shard,
    writes: UnboundedReceiver<WriteRequest>,
    next_conn: u64,
}

/// A connection's queue and what it received.
struct Client {
    conn: Arc<OutboundQueue>,
    rx: OutboundRx,
}

impl Client {
    /// Everything queued so far, decoded.
    fn received(&mut self) -> Vec<(u32, ServerMsg)> {
        let mut out = Vec::new();
        while let Some(item) = self.rx.try_recv() {
            let mut buf = bytes::BytesMut::from(&item.frame()[..]);
            let raw = split_frame(&mut buf, u32::MAX).unwrap().unwrap();
            out.push((raw.req_id, ServerMsg::decode(&raw).unwrap()));
        }
        out
    }

    /// The sequence numbers of the EVENT frames received so far.
    fn event_seqs(&mut self) -> Vec<u64> {
        self.received()
            .into_iter()
            .filter_map(|(_, m)| match m {
                ServerMsg::Event(ev) => Some(ev.seq.0),
                _ => None,
            })
            .collect()
    }
}

impl Harness {
    fn new(tail_cap: usize) -> Harness {
        let (batch, writes) = BatchHandle::detached();
        let cfg = ShardConfig {
            tail_cap,
            queue_len: 16,
            notification_ids: Arc::new(crate::cluster::IdSource::local(1)),
            clock: crate::clock::Clock::default(),
            presence_max_members: 1_000,
            flush_linger_max: std::time::Duration::ZERO,
            ownership: None,
            rooms_here: None,
        };
        Harness {
            shard: Shard::new(0, Vec::new(), batch, &cfg),
            writes,
            next_conn: 1,
        }
    }

    fn client(&mut self) -> Client {
        let (conn, rx) = OutboundQueue::detached(ConnId(self.next_conn), 1 << 20);
        self.next_conn += 1;
        Client { conn, rx }
    }

    fn attach(&mut self, user: UserId, client: &Client, resume: &[(RoomId, u64)]) {
        let resume = resume
            .iter()
            .map(|&(room, after)| ResumePoint {
                room,
                after: Seq(after),
            })
            .collect::<Vec<_>>();
        self.shard.handle(ShardCmd::Attach {
            user,
            conn: client.conn.clone(),
            resume: resume.into(),
        });
    }

    fn create(&mut self, by: &Client, user: UserId, name: &str) {
        self.shard.handle(ShardCmd::Create {
            room: ROOM,
            name: name.into(),
            topic: String::new(),
            visibility: Visibility::Public,
            user,
            username: name.into(),
            members: Vec::new(),
            reply: ReplyTo {
                conn: by.conn.clone(),
                req_id: 1,
            },
        });
    }

    fn apply(&mut self, by: &Client, cmd: Command) {
        self.shard.handle(ShardCmd::Apply {
            room: ROOM,
            cmd,
            reply: ReplyTo {
                conn: by.conn.clone(),
                req_id: 9,
            },
        });
    }

    fn post(&mut self, by: &Client, user: UserId, text: &str) {
        let text = text.to_owned();
        self.apply(
            by,
            Command::Post {
                user,
                text,
                rich: Rich::default(),
            },
        );
    }

    /// Commits every queued write the way the batch writer does on success
    /// (watermark, deliveries, acknowledgement).
    fn commit_all(&mut self) {
        while let Ok(req) = self.writes.try_recv() {
            if let Some((mark, seq)) = req.stored {
                mark.fetch_max(seq.0, Ordering::AcqRel);
            }
            for (conn, frame) in req.deliver {
                conn.push(frame);
            }
            if let Some(ack) = req.ack {
                ack.conn.push_reply(ack.req_id, ack.frame);
            }
        }
    }

    fn tail_seqs(&self) -> Vec<u64> {
        self.shard.rooms[&ROOM].tail.seqs().map(|s| s.0).collect()
    }
}

#[test]
fn members_online_get_each_event_once_and_the_sender_its_ack_after_commit() {
    let mut h = Harness::new(16);
    let (mut a, mut b) = (h.client(), h.client());
    h.attach(ALICE, &a, &[]);
    h.attach(BOB, &b, &[]);
    h.create(&a, ALICE, "alice");
    h.apply(
        &b,
        Command::Join {
            user: BOB,
            username: "bob".into(),
        },
    );
    h.commit_all();
    a.received();
    b.received();

    h.post(&a, ALICE, "hello");
    assert_eq!(b.event_seqs(), [3], "broadcast before commit");
    let before: Vec<_> = a.received();
    assert!(
        before.iter().all(|(req_id, _)| *req_id == 0),
        "no acknowledgement before the write commits: {before:?}"
    );
    h.commit_all();
    let after = a.received();
    assert!(
        after
            .iter()
            .any(|(req_id, m)| *req_id == 9
                && matches!(m, ServerMsg::MessageAck { seq: Seq(3), .. })),
        "{after:?}"
    );
}

#[test]
fn resume_replays_exactly_what_was_missed_before_live_events() {
    let mut h = Harness::new(16);
    let a = h.client();
    h.attach(ALICE, &a, &[]);
    h.create(&a, ALICE, "alice");
    for i in 0..4 {
        h.post(&a, ALICE, &format!("m{i}"));
    }
    h.commit_all();
    // Events 1 (created) to 5. A second device saw up to 2.
    let mut phone = h.client();
    h.attach(ALICE, &phone, &[(ROOM, 2)]);
    assert_eq!(phone.event_seqs(), [3, 4, 5]);
    h.post(&a, ALICE, "live");
    assert_eq!(phone.event_seqs(), [6], "then live, no overlap, no gap");
}

#[test]
fn a_resume_point_beyond_the_tail_or_the_last_event_gets_resume_gap() {
    let mut h = Harness::new(2);
    let a = h.client();
    h.attach(ALICE, &a, &[]);
    h.create(&a, ALICE, "alice");
    for i in 0..5 {
        h.post(&a, ALICE, &format!("m{i}"));
    }
    h.commit_all();
    h.post(&a, ALICE, "trim");
    h.commit_all();
    assert_eq!(h.tail_seqs(), [6, 7], "capped at 2");
    for after in [1, 99] {
        let mut c = h.client();
        h.attach(ALICE, &c, &[(ROOM, after)]);
        let got = c.received();
        assert!(
            matches!(
                got.as_slice(),
                [(
                    0,
                    ServerMsg::ResumeGap {
                        room: ROOM,
                        last_seq: Seq(7)
                    }
                )]
            ),
            "after {after}: {got:?}"
        );
    }
}

#[test]
fn the_tail_keeps_every_event_that_is_not_yet_stored() {
    let mut h = Harness::new(2);
    let a = h.client();
    h.attach(ALICE, &a, &[]);
    h.create(&a, ALICE, "alice");
    for i in 0..5 {
        h.post(&a, ALICE, &format!("m{i}"));
    }
    // Nothing committed yet: all six events stay in memory for readers.
    assert_eq!(h.tail_seqs(), [1, 2, 3, 4, 5, 6]);
    h.commit_all();
    h.post(&a, ALICE, "next");
    assert_eq!(h.tail_seqs(), [6, 7], "trimmed once stored");
}

#[test]
fn a_member_who_leaves_stops_receiving_and_a_stranger_cannot_read() {
    let mut h = Harness::new(16);
    let (a, mut b) = (h.client(), h.client());
    h.attach(ALICE, &a, &[]);
    h.attach(BOB, &b, &[]);
    h.create(&a, ALICE, "alice");
    h.apply(
        &b,
        Command::Join {
            user: BOB,
            username: "bob".into(),
        },
    );
    h.apply(&b, Command::Leave { user: BOB });
    h.commit_all();
    b.received();
    h.post(&a, ALICE, "after");
    assert!(b.event_seqs().is_empty(), "bob left: nothing more");
    let (tx, mut rx) = tokio::sync::oneshot::channel();
    h.shard.handle(ShardCmd::Tail {
        room: ROOM,
        user: BOB,
        before: Seq(0),
        limit: 10,
        reply: tx,
    });
    assert_eq!(rx.try_recv().unwrap().unwrap_err(), ErrorCode::NotAMember);
}

#[test]
fn a_public_room_is_announced_to_everyone_online_after_it_is_stored() {
    let mut h = Harness::new(16);
    let (a, mut b) = (h.client(), h.client());
    h.attach(ALICE, &a, &[]);
    h.attach(BOB, &b, &[]);
    h.create(&a, ALICE, "general");
    assert!(b.received().is_empty(), "not before it is durable");
    h.commit_all();
    let got = b.received();
    assert!(
        matches!(got.as_slice(), [(0, ServerMsg::RoomAnnounced(info))] if info.name == "general"),
        "{got:?}"
    );
}

#[test]
fn a_detached_connection_gets_nothing_more() {
    let mut h = Harness::new(16);
    let (a, mut b) = (h.client(), h.client());
    h.attach(ALICE, &a, &[]);
    h.attach(BOB, &b, &[]);
    h.create(&a, ALICE, "alice");
    h.apply(
        &b,
        Command::Join {
            user: BOB,
            username: "bob".into(),
        },
    );
    h.commit_all();
    b.received();
    h.shard.handle(ShardCmd::Detach {
        user: BOB,
        conn: b.conn.id,
    });
    h.post(&a, ALICE, "hi");
    assert!(b.received().is_empty());
    // The event itself is a message from alice.
    let ev = h.shard.rooms[&ROOM].tail.slice(Seq(0), 1, Seq(4)).frames;
    let mut buf = bytes::BytesMut::from(&ev[0][..]);
    let raw = split_frame(&mut buf, u32::MAX).unwrap().unwrap();
    assert!(matches!(
        ServerMsg::decode(&raw).unwrap(),
        ServerMsg::Event(e) if e.body == EventBody::text("hi")
    ));
}

/// The TYPING events (user, typing) among what `c` received, and whether
/// request 5 was answered OK.
fn typing_seen(c: &mut Client) -> (Vec<(UserId, bool)>, bool) {
    let mut typing = Vec::new();
    let mut ok = false;
    for (req_id, m) in c.received() {
        match m {
            ServerMsg::Typing {
                user, typing: t, ..
            } => typing.push((user, t)),
            ServerMsg::Ok if req_id == 5 => ok = true,
            _ => {}
        }
    }
    (typing, ok)
}

#[test]
fn typing_goes_to_the_other_members_only_and_expires_on_the_clock() {
    let mut h = Harness::new(16);
    let clock = h.shard.clock.clone();
    let (mut a, mut phone, mut b) = (h.client(), h.client(), h.client());
    h.attach(ALICE, &a, &[]);
    h.attach(ALICE, &phone, &[]);
    h.attach(BOB, &b, &[]);
    h.create(&a, ALICE, "alice");
    h.apply(
        &b,
        Command::Join {
            user: BOB,
            username: "bob".into(),
        },
    );
    h.commit_all();
    for c in [&mut a, &mut phone, &mut b] {
        c.received();
    }
    let typing = |h: &mut Harness, by: &Client, start: bool| {
        h.shard.handle(ShardCmd::Typing {
            room: ROOM,
            user: ALICE,
            start,
            reply: ReplyTo {
                conn: by.conn.clone(),
                req_id: 5,
            },
        });
    };

    typing(&mut h, &a, true);
    assert_eq!(typing_seen(&mut a), (vec![], true), "answered, not echoed");
    assert_eq!(typing_seen(&mut phone), (vec![], false), "nor to her phone");
    assert_eq!(typing_seen(&mut b), (vec![(ALICE, true)], false));
    // A renewal within 2 s is suppressed, and keeps the state alive.
    clock.advance(std::time::Duration::from_millis(1_500));
    typing(&mut h, &phone, true);
    assert_eq!(typing_seen(&mut phone), (vec![], true));
    assert_eq!(typing_seen(&mut b), (vec![], false));
    // 5 s after the first START but not after the renewal: nothing yet.
    clock.advance(std::time::Duration::from_millis(3_500));
    h.shard.handle(ShardCmd::Tick(None));
    assert_eq!(typing_seen(&mut b), (vec![], false));
    // 5 s after the renewal: the server stops it on alice's behalf.
    clock.advance(std::time::Duration::from_millis(1_500));
    h.shard.handle(ShardCmd::Tick(None));
    assert_eq!(typing_seen(&mut b), (vec![(ALICE, false)], false));
    assert_eq!(typing_seen(&mut a), (vec![], false));
    assert!(h.shard.typing_rooms.is_empty(), "nothing left to tick");
    assert!(h.writes.try_recv().is_err(), "typing is never stored");
}

/// The PRESENCE frames among what `c` received: (room, [(user, presence)]).
fn presence_frames(c: &mut Client) -> Vec<(RoomId, Vec<(UserId, confab_protocol::Presence)>)> {
    c.received()
        .into_iter()
        .filter_map(|(_, m)| match m {
            ServerMsg::Presence { room, changes } => {
                Some((room, changes.iter().map(|c| (c.user, c.presence)).collect()))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn presence_changes_of_one_tick_go_out_as_one_frame_per_room() {
    use confab_protocol::Presence::{Away, Offline, Online};
    const CAROL: UserId = UserId(3);
    let mut h = Harness::new(16);
    let clock = h.shard.clock.clone();
    clock.freeze();
    let (mut a, mut b, mut c) = (h.client(), h.client(), h.client());
    h.attach(ALICE, &a, &[]);
    h.attach(BOB, &b, &[]);
    h.attach(CAROL, &c, &[]);
    h.create(&a, ALICE, "alice");
    for (by, user, name) in [(&b, BOB, "bob"), (&c, CAROL, "carol")] {
        h.apply(
            by,
            Command::Join {
                user,
                username: name.into(),
            },
        );
    }
    h.commit_all();
    for cl in [&mut a, &mut b, &mut c] {
        cl.received();
    }
    // The three connections came up before the tick: one frame, all three.
    h.shard.handle(ShardCmd::Tick(None));
    let all_online = vec![(ROOM, vec![(ALICE, Online), (BOB, Online), (CAROL, Online)])];
    for cl in [&mut a, &mut b, &mut c] {
        assert_eq!(presence_frames(cl), all_online);
    }
    h.shard.handle(ShardCmd::Tick(None));
    assert_eq!(presence_frames(&mut a), vec![], "once");
    // Within the second: held back; when it is over, one frame with the
    // latest state of each.
    h.shard.handle(ShardCmd::SetAway {
        user: BOB,
        away: true,
    });
    h.shard.handle(ShardCmd::Detach {
        user: CAROL,
        conn: c.conn.id,
    });
    h.shard.handle(ShardCmd::Tick(None));
    assert_eq!(presence_frames(&mut a), vec![]);
    clock.advance(std::time::Duration::from_millis(1_000));
    h.shard.handle(ShardCmd::Tick(None));
    assert_eq!(
        presence_frames(&mut a),
        vec![(ROOM, vec![(BOB, Away), (CAROL, Offline)])]
    );
    assert_eq!(
        presence_frames(&mut b),
        vec![(ROOM, vec![(BOB, Away), (CAROL, Offline)])],
        "the user's own connection too"
    );
}
