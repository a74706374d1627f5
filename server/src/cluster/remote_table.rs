//! The relay's table (`relay.rs`), as a plain state machine: which of
//! this node's connections receive which rooms other nodes serve, and
//! what a room's ops do to them. No NATS, no tasks: the relay holds one
//! subscription per watched room (`S`, dropped with its entry, which
//! unsubscribes) and feeds the table what arrives, in order.
//!
//! Events are delivered by sequence number, each once and in order: per
//! watched room the table keeps the last event it delivered and the
//! highest owner epoch it saw ([`RoomOp::Epoch`]).
//!
//! - An event at or below the last one is a duplicate and dropped.
//! - An event past the next one reveals a gap (ops lost while NATS was
//!   down, or the old owner's last ops): the room's ops are held and the
//!   table asks the relay for the missing events ([`Fill`], from the
//!   owner's tail); [`RemoteTable::filled`] delivers them and then what
//!   was held. When the owner cannot give them all, the members get
//!   RESUME_GAP at the event before the held ones (SPEC.md §9), so they
//!   reload history and miss nothing.
//! - A buffer from a lower epoch than seen is a fenced owner's: dropped.
//!   The first event of a higher epoch (a new owner) at or below the last
//!   delivered one means the events delivered after its predecessor's
//!   last stored one were never stored (the old owner broadcasts before
//!   it commits, then died): the members get RESUME_GAP at the event
//!   before it, as a single node's resume does after a crash.
//! - A connection attaching with a resume point is *catching up*: what
//!   arrives for it is held until the owner's tail, asked after the
//!   room's subscription, replays what it missed ([`RemoteTable::caught_up`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use confab_protocol::{RoomId, Seq, ServerMsg, UserId};

use super::routing::{Seen, SeenRooms};
use super::wire::{event_seq, RoomOp};
use crate::outbound::{ConnId, OutboundQueue, Touched};
use crate::shard::TailSlice;

/// A remote room some connection here receives (or a join is under way
/// to).
struct Watched<S> {
    /// Members with connections on this node.
    members: HashSet<UserId>,
    /// Joins forwarded and not answered yet: the room stays watched.
    pending_joins: u32,
    /// The highest owner epoch seen (0: none yet).
    epoch: u64,
    /// The epoch rose and no event came since: the next event is checked
    /// for reused sequence numbers.
    new_owner: bool,
    /// The last event delivered here (`None`: none yet, the next one is
    /// taken as it comes).
    last: Option<Seq>,
    /// Ops held while a gap is filled.
    held: Option<Vec<RoomOp>>,
    /// Connections catching up from a resume point, and what is held for
    /// each meanwhile.
    catching: HashMap<ConnId, Catching>,
    /// The room's subscription: dropped when the room is no longer
    /// watched.
    _sub: S,
}

/// A connection replayed from its resume point before it gets live events.
struct Catching {
    user: UserId,
    after: Seq,
    /// Frames held meanwhile, with their seq when events.
    held: Vec<(Option<Seq>, Bytes)>,
}

/// Missing events to ask the room's owner for: those after `after` and
/// before `before` (`Seq(0)`: every one after `after`, a probe), by a
/// member's right to read them (`user`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fill {
    pub(super) room: RoomId,
    pub(super) user: UserId,
    pub(super) after: Seq,
    pub(super) before: Seq,
}

/// See the module doc.
pub(super) struct RemoteTable<S> {
    /// Every attached connection here, by user.
    conns: HashMap<UserId, Vec<Arc<OutboundQueue>>>,
    rooms: HashMap<RoomId, Watched<S>>,
    /// The watched rooms each user with connections here is a member of.
    user_rooms: HashMap<UserId, HashSet<RoomId>>,
}

impl<S> Default for RemoteTable<S> {
    fn default() -> Self {
        RemoteTable {
            conns: HashMap::new(),
            rooms: HashMap::new(),
            user_rooms: HashMap::new(),
        }
    }
}

impl<S> RemoteTable<S> {
    pub(super) fn attach(&mut self, user: UserId, conn: Arc<OutboundQueue>) {
        self.conns.entry(user).or_default().push(conn);
    }

    /// The connection has gone; a user left without connections here is
    /// no member of any watched room here any more. Whether it was
    /// attached.
    pub(super) fn detach(&mut self, user: UserId, conn: ConnId) -> bool {
        let Some(conns) = self.conns.get_mut(&user) else {
            return false;
        };
        let before = conns.len();
        conns.retain(|c| c.id != conn);
        let gone = conns.len() < before;
        for room in self.user_rooms.get(&user).into_iter().flatten() {
            if let Some(r) = self.rooms.get_mut(room) {
                r.catching.remove(&conn);
            }
        }
        if conns.is_empty() {
            self.conns.remove(&user);
            for room in self.user_rooms.remove(&user).unwrap_or_default() {
                if let Some(r) = self.rooms.get_mut(&room) {
                    r.members.remove(&user);
                }
                self.unwatch_if_idle(room);
            }
        }
        gone
    }

    /// Whether `user` has a connection attached here.
    pub(super) fn has_user(&self, user: UserId) -> bool {
        self.conns.contains_key(&user)
    }

    /// The connections of `user` attached here.
    pub(super) fn conn_ids(&self, user: UserId) -> Vec<ConnId> {
        self.conns
            .get(&user)
            .map_or_else(Vec::new, |conns| conns.iter().map(|c| c.id).collect())
    }

    /// Whether `user` is a member of the watched `room` here.
    pub(super) fn is_member(&self, room: RoomId, user: UserId) -> bool {
        self.rooms
            .get(&room)
            .is_some_and(|r| r.members.contains(&user))
    }

    /// `user` is no longer a member of `room` (the owner said so after a
    /// `Joined` push added them here).
    pub(super) fn leave(&mut self, room: RoomId, user: UserId) {
        self.remove_member(room, user);
        self.unwatch_if_idle(room);
    }

    /// Every user with connections here, and how many.
    pub(super) fn connected(&self) -> Vec<(UserId, u32)> {
        self.conns
            .iter()
            .map(|(user, conns)| (*user, u32::try_from(conns.len()).unwrap_or(u32::MAX)))
            .collect()
    }

    pub(super) fn watches(&self, room: RoomId) -> bool {
        self.rooms.contains_key(&room)
    }

    /// Starts watching `room` through `sub`, with no members yet.
    pub(super) fn watch(&mut self, room: RoomId, sub: S) {
        self.rooms.insert(
            room,
            Watched {
                members: HashSet::new(),
                pending_joins: 0,
                epoch: 0,
                new_owner: false,
                last: None,
                held: None,
                catching: HashMap::new(),
                _sub: sub,
            },
        );
    }

    /// The watched `room` was served here until now and its connections
    /// here were sent every event up to `last`: its next owner (a higher
    /// epoch) continues from there.
    pub(super) fn seen_here(&mut self, room: RoomId, last: Seq) {
        if let Some(r) = self.rooms.get_mut(&room) {
            r.epoch = 0;
            r.new_owner = false;
            r.last = Some(last);
            r.held = None;
            r.catching.clear();
        }
    }

    /// Adds `user` to the watched `room`'s members, if connected here.
    pub(super) fn add_member(&mut self, room: RoomId, user: UserId) {
        if !self.conns.contains_key(&user) {
            return;
        }
        if let Some(r) = self.rooms.get_mut(&room) {
            r.members.insert(user);
            self.user_rooms.entry(user).or_default().insert(room);
        }
    }

    fn remove_member(&mut self, room: RoomId, user: UserId) {
        if let Some(r) = self.rooms.get_mut(&room) {
            r.members.remove(&user);
        }
        if let Some(rooms) = self.user_rooms.get_mut(&user) {
            rooms.remove(&room);
            if rooms.is_empty() {
                self.user_rooms.remove(&user);
            }
        }
    }

    /// Forgets every member of `room` (its entry stays, if watched).
    pub(super) fn clear_members(&mut self, room: RoomId) {
        let members = self
            .rooms
            .get_mut(&room)
            .map(|r| std::mem::take(&mut r.members));
        for user in members.unwrap_or_default() {
            self.remove_member(room, user);
        }
    }

    /// A join to the watched `room` was sent.
    pub(super) fn join_sent(&mut self, room: RoomId) {
        if let Some(r) = self.rooms.get_mut(&room) {
            r.pending_joins += 1;
        }
    }

    /// A join of `user` to `room` was answered (`joined`: it succeeded).
    pub(super) fn join_answered(&mut self, room: RoomId, user: UserId, joined: bool) {
        if let Some(r) = self.rooms.get_mut(&room) {
            r.pending_joins = r.pending_joins.saturating_sub(1);
        }
        if joined {
            self.add_member(room, user);
        }
        self.unwatch_if_idle(room);
    }

    /// Stops watching `room` once no connection here receives it and no
    /// join is under way.
    pub(super) fn unwatch_if_idle(&mut self, room: RoomId) {
        if self
            .rooms
            .get(&room)
            .is_some_and(|r| r.members.is_empty() && r.pending_joins == 0)
        {
            self.rooms.remove(&room);
        }
    }

    /// Stops watching `room` whatever it holds (this node serves it now).
    pub(super) fn forget(&mut self, room: RoomId) {
        self.clear_members(room);
        self.rooms.remove(&room);
    }

    /// This node is about to serve the rooms of `partition` (of `of`):
    /// stops watching them and says what their connections here saw.
    pub(super) fn hand_over(&mut self, partition: u32, of: u32) -> SeenRooms {
        let rooms: Vec<RoomId> = self
            .rooms
            .keys()
            .filter(|r| super::partition_of(**r, of) == partition)
            .copied()
            .collect();
        let mut seen = SeenRooms::new();
        for room in rooms {
            if let Some(r) = self.rooms.get(&room) {
                let conns = r.catching.iter().map(|(c, k)| (*c, k.after)).collect();
                seen.insert(
                    room,
                    Seen {
                        last: r.last,
                        conns,
                    },
                );
            }
            self.forget(room);
        }
        seen
    }

    /// `conn` of `user`, a member of the watched `room`, resumes after
    /// `after`: what arrives for it is held until [`RemoteTable::caught_up`].
    pub(super) fn catch_up(&mut self, room: RoomId, conn: ConnId, user: UserId, after: Seq) {
        if let Some(r) = self.rooms.get_mut(&room) {
            let held = Vec::new();
            r.catching.insert(conn, Catching { user, after, held });
        }
    }

    /// The user `conn` catches up `room` for, if it still does.
    pub(super) fn catching(&self, room: RoomId, conn: ConnId) -> Option<UserId> {
        Some(self.rooms.get(&room)?.catching.get(&conn)?.user)
    }

    /// The owner's tail for `conn`'s resume in `room` (`None`: it could
    /// not be had; the connection gets what was held as it is): replays
    /// what the connection missed — or RESUME_GAP when the tail does not
    /// reach back to its resume point (SPEC.md §9) — then what was held.
    pub(super) fn caught_up(
        &mut self,
        room: RoomId,
        conn_id: ConnId,
        tail: Option<TailSlice>,
        touched: &mut Touched,
    ) {
        let Some(k) = self
            .rooms
            .get_mut(&room)
            .and_then(|r| r.catching.remove(&conn_id))
        else {
            return;
        };
        let Some(conn) = self
            .conns
            .get(&k.user)
            .and_then(|cs| cs.iter().find(|c| c.id == conn_id))
        else {
            return;
        };
        let mut upto = None;
        if let Some(tail) = tail {
            let mut events: Vec<(Seq, Bytes)> = tail
                .frames
                .into_iter()
                .filter_map(|f| Some((event_seq(&f)?, f)))
                .collect();
            events.sort_by_key(|(seq, _)| *seq);
            let last = events
                .last()
                .map_or(Seq(tail.floor.0.saturating_sub(1)), |(seq, _)| *seq);
            let reaches = events.first().is_none_or(|(s, _)| s.0 <= k.after.0 + 1);
            if k.after > last || !reaches {
                tracing::info!(%room, after = k.after.0, last = last.0, "RESUME_GAP: a resume the owner's tail cannot serve");
                conn.push(resume_gap(room, last));
            } else {
                for (seq, frame) in events {
                    if seq > k.after {
                        conn.push(frame);
                    }
                }
            }
            upto = Some(last);
        }
        for (seq, frame) in k.held {
            if seq.is_none() || seq > upto {
                conn.push(frame);
            }
        }
        touched.note(conn);
    }

    /// Replays the owner's `ops` of `room` on this node's connections, in
    /// order: a frame goes to every connection of every member (noted in
    /// `touched`), membership changes take effect between frames, events
    /// go once each in order (see the module doc). `Some`: a gap to fill
    /// first; the rest is held until [`RemoteTable::filled`].
    pub(super) fn replay(
        &mut self,
        room: RoomId,
        ops: Vec<RoomOp>,
        touched: &mut Touched,
    ) -> Option<Fill> {
        let r = self.rooms.get_mut(&room)?;
        if let Some(held) = &mut r.held {
            held.extend(ops);
            return None;
        }
        let mut stale = false;
        let mut ops = ops.into_iter();
        while let Some(op) = ops.next() {
            match op {
                RoomOp::Epoch(epoch) => {
                    let Some(r) = self.rooms.get_mut(&room) else {
                        break;
                    };
                    stale = epoch < r.epoch;
                    if epoch > r.epoch {
                        r.new_owner = r.epoch != 0 || r.last.is_some();
                        r.epoch = epoch;
                    }
                }
                // A fenced owner's: what of it was stored, the next owner
                // has (and a gap fill brings).
                _ if stale => {}
                RoomOp::Subscribe(user) => self.add_member(room, user),
                RoomOp::Unsubscribe(user) => self.remove_member(room, user),
                RoomOp::Frame(frame) => self.deliver(room, None, None, &frame, touched),
                RoomOp::FrameExcept(user, frame) => {
                    self.deliver(room, Some(user), None, &frame, touched)
                }
                RoomOp::Event(seq, frame) => {
                    let Some(r) = self.rooms.get_mut(&room) else {
                        break;
                    };
                    if std::mem::take(&mut r.new_owner) && r.last.is_some_and(|l| seq <= l) {
                        // Delivered here, never stored: their numbers are
                        // the new owner's now.
                        let last = Seq(seq.0.saturating_sub(1));
                        tracing::info!(%room, delivered = r.last.map(|l| l.0), first = seq.0, epoch = r.epoch, "RESUME_GAP: a new owner reuses seqs delivered here but never stored");
                        r.last = Some(last);
                        self.deliver(room, None, None, &resume_gap(room, last), touched);
                    }
                    let Some(r) = self.rooms.get_mut(&room) else {
                        break;
                    };
                    match r.last {
                        Some(l) if seq <= l => continue,
                        Some(l) if seq.0 > l.0 + 1 => {
                            if let Some(&user) = r.members.iter().next() {
                                let mut held = vec![RoomOp::Event(seq, frame)];
                                held.extend(ops);
                                r.held = Some(held);
                                return Some(Fill {
                                    room,
                                    user,
                                    after: l,
                                    before: seq,
                                });
                            }
                        }
                        _ => {}
                    }
                    r.last = Some(seq);
                    self.deliver(room, None, Some(seq), &frame, touched);
                }
            }
        }
        self.unwatch_if_idle(room);
        None
    }

    /// Every watched room with members here and events delivered is held
    /// and checked against its owner's tail (after a NATS outage, whose
    /// ops are lost: nothing may follow to reveal the gap).
    pub(super) fn probe_all(&mut self) -> Vec<Fill> {
        let mut fills = Vec::new();
        for (&room, r) in &mut self.rooms {
            let (Some(after), Some(&user), None) = (r.last, r.members.iter().next(), &r.held)
            else {
                continue;
            };
            r.held = Some(Vec::new());
            let before = Seq(0);
            fills.push(Fill {
                room,
                user,
                after,
                before,
            });
        }
        fills
    }

    /// The owner's answer to `fill` (`None`: none could be had): delivers
    /// the missing events, or RESUME_GAP at the event before the held ones
    /// when they are not all there, then replays what was held (which may
    /// reveal another gap).
    pub(super) fn filled(
        &mut self,
        fill: Fill,
        tail: Option<TailSlice>,
        touched: &mut Touched,
    ) -> Option<Fill> {
        let r = self.rooms.get_mut(&fill.room)?;
        let held = r.held.take()?;
        let probe = fill.before == Seq(0);
        let floor = tail.as_ref().map(|t| t.floor);
        let answered = tail.as_ref().map(|t| t.frames.len());
        let mut events: Vec<(Seq, Bytes)> = tail
            .map(|t| t.frames)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|f| Some((event_seq(&f)?, f)))
            .filter(|(seq, _)| *seq > fill.after && (probe || *seq < fill.before))
            .collect();
        events.sort_by_key(|(seq, _)| *seq);
        events.dedup_by_key(|(seq, _)| *seq);
        // A probe runs up to the owner's last event (the tail's newest,
        // or the one before its floor when empty).
        let last = match (probe, events.last(), floor) {
            (false, _, _) => Seq(fill.before.0 - 1),
            (true, Some((seq, _)), _) => *seq,
            (true, None, Some(floor)) => Seq(floor.0.saturating_sub(1)).max(fill.after),
            (true, None, None) => fill.after,
        };
        r.last = Some(last);
        let complete = events
            .iter()
            .enumerate()
            .all(|(i, (seq, _))| seq.0 == fill.after.0 + 1 + i as u64);
        if complete && events.len() as u64 == last.0 - fill.after.0 {
            for (seq, frame) in events {
                self.deliver(fill.room, None, Some(seq), &frame, touched);
            }
        } else {
            crate::metrics::cluster_handover("gap");
            tracing::info!(room = %fill.room, after = fill.after.0, last = last.0, ?answered, ?floor, "RESUME_GAP: the owner's tail cannot fill a gap");
            let gap = resume_gap(fill.room, last);
            self.deliver(fill.room, None, None, &gap, touched);
        }
        self.replay(fill.room, held, touched)
    }

    fn deliver(
        &mut self,
        room: RoomId,
        except: Option<UserId>,
        seq: Option<Seq>,
        frame: &Bytes,
        touched: &mut Touched,
    ) {
        let Some(r) = self.rooms.get_mut(&room) else {
            return;
        };
        for user in &r.members {
            if Some(*user) == except {
                continue;
            }
            for conn in self.conns.get(user).into_iter().flatten() {
                match r.catching.get_mut(&conn.id) {
                    Some(k) => k.held.push((seq, frame.clone())),
                    None => {
                        conn.push(frame.clone());
                        touched.note(conn);
                    }
                }
            }
        }
    }

    /// Pushes `frame` to every connection of `user` here but `except`.
    pub(super) fn push(
        &self,
        user: UserId,
        except: Option<ConnId>,
        frame: &Bytes,
        touched: &mut Touched,
    ) {
        for conn in self.conns.get(&user).into_iter().flatten() {
            if Some(conn.id) != except {
                conn.push(frame.clone());
                touched.note(conn);
            }
        }
    }

    /// Pushes `frame` to every connection here.
    pub(super) fn push_all(&self, frame: &Bytes, touched: &mut Touched) {
        for conn in self.conns.values().flatten() {
            conn.push(frame.clone());
            touched.note(conn);
        }
    }

    /// Stops watching every room.
    pub(super) fn clear(&mut self) {
        self.rooms.clear();
        self.user_rooms.clear();
    }
}

/// RESUME_GAP for `room` at `last` (SPEC.md §9): "reload history up to
/// `last`; live events continue after it".
fn resume_gap(room: RoomId, last_seq: Seq) -> Bytes {
    let mut buf = BytesMut::with_capacity(24);
    ServerMsg::ResumeGap { room, last_seq }.encode(0, &mut buf);
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outbound::OutboundRx;

    fn conn(id: u64) -> (Arc<OutboundQueue>, OutboundRx) {
        OutboundQueue::detached(ConnId(id), 1 << 20)
    }

    fn frames(rx: &mut OutboundRx) -> Vec<Bytes> {
        std::iter::from_fn(|| rx.try_recv())
            .map(|o| o.frame().clone())
            .collect()
    }

    const ROOM: RoomId = RoomId(7);
    const ANN: UserId = UserId(1);
    const BOB: UserId = UserId(2);

    fn table() -> (RemoteTable<()>, OutboundRx, OutboundRx) {
        let mut t = RemoteTable::default();
        let (ann, ann_rx) = conn(1);
        let (bob, bob_rx) = conn(2);
        t.attach(ANN, ann);
        t.attach(BOB, bob);
        t.watch(ROOM, ());
        t.add_member(ROOM, ANN);
        t.add_member(ROOM, BOB);
        (t, ann_rx, bob_rx)
    }

    #[test]
    fn a_member_removed_by_an_op_gets_nothing_after_it() {
        let (mut t, mut ann, mut bob) = table();
        let mut touched = Touched::default();
        let ops = vec![
            RoomOp::Frame(Bytes::from_static(b"kick")),
            RoomOp::Unsubscribe(BOB),
            RoomOp::Frame(Bytes::from_static(b"after")),
        ];
        t.replay(ROOM, ops, &mut touched);
        assert_eq!(frames(&mut ann), ["kick", "after"]);
        assert_eq!(frames(&mut bob), ["kick"]);
    }

    #[test]
    fn a_typing_notice_skips_the_typist_and_a_joiner_gets_what_follows() {
        let mut t = RemoteTable::default();
        let (ann, mut ann_rx) = conn(1);
        let (bob, mut bob_rx) = conn(2);
        t.attach(ANN, ann);
        t.attach(BOB, bob);
        t.watch(ROOM, ());
        t.add_member(ROOM, ANN);
        let mut touched = Touched::default();
        let ops = vec![
            RoomOp::Frame(Bytes::from_static(b"before")),
            RoomOp::Subscribe(BOB),
            RoomOp::Frame(Bytes::from_static(b"joined")),
            RoomOp::FrameExcept(ANN, Bytes::from_static(b"ann types")),
        ];
        t.replay(ROOM, ops, &mut touched);
        assert_eq!(frames(&mut ann_rx), ["before", "joined"]);
        assert_eq!(frames(&mut bob_rx), ["joined", "ann types"]);
    }

    #[test]
    fn a_room_is_unwatched_when_its_last_member_here_goes_unless_a_join_is_under_way() {
        let (mut t, _ann, _bob) = table();
        t.join_sent(ROOM);
        t.detach(ANN, ConnId(1));
        t.detach(BOB, ConnId(2));
        assert!(t.watches(ROOM), "a join is under way");
        t.join_answered(ROOM, UserId(3), false);
        assert!(!t.watches(ROOM));
    }

    #[test]
    fn a_successful_join_adds_the_member_and_only_members_connected_here_count() {
        let mut t = RemoteTable::default();
        let (carol, mut carol_rx) = conn(3);
        t.attach(UserId(3), carol);
        t.watch(ROOM, ());
        t.join_sent(ROOM);
        t.join_answered(ROOM, UserId(3), true);
        t.add_member(ROOM, UserId(9)); // not connected here: ignored
        let mut touched = Touched::default();
        t.replay(
            ROOM,
            vec![RoomOp::Frame(Bytes::from_static(b"hi"))],
            &mut touched,
        );
        assert_eq!(frames(&mut carol_rx), ["hi"]);
        t.detach(UserId(3), ConnId(3));
        assert!(!t.watches(ROOM), "nobody here receives it");
    }

    #[test]
    fn a_member_who_left_elsewhere_gets_nothing_more_and_the_idle_room_is_unwatched() {
        let (mut t, mut ann, mut bob) = table();
        let mut touched = Touched::default();
        t.leave(ROOM, BOB);
        t.replay(
            ROOM,
            vec![RoomOp::Frame(Bytes::from_static(b"x"))],
            &mut touched,
        );
        assert_eq!(frames(&mut ann), ["x"]);
        assert!(frames(&mut bob).is_empty());
        t.leave(ROOM, ANN);
        assert!(!t.watches(ROOM), "nobody here receives it");
        t.push_all(&Bytes::from_static(b"all"), &mut touched);
        assert_eq!(frames(&mut ann), ["all"]);
        assert_eq!(frames(&mut bob), ["all"]);
        assert!(t.has_user(ANN) && !t.has_user(UserId(9)));
        assert!(!t.is_member(ROOM, ANN));
    }

    #[test]
    fn cleared_members_get_nothing_and_a_forgotten_room_is_unwatched() {
        let (mut t, mut ann, _bob) = table();
        t.clear_members(ROOM);
        assert!(t.watches(ROOM), "the entry stays until unwatched");
        let mut touched = Touched::default();
        t.replay(
            ROOM,
            vec![RoomOp::Frame(Bytes::from_static(b"x"))],
            &mut touched,
        );
        assert!(frames(&mut ann).is_empty());
        assert!(!t.watches(ROOM), "idle after the replay");
        t.watch(ROOM, ());
        t.add_member(ROOM, ANN);
        t.forget(ROOM);
        assert!(!t.watches(ROOM));
    }
    /// An EVENT frame of `ROOM` at `seq` (< 128): what `event_seq` reads.
    fn ev(seq: u64) -> Bytes {
        Bytes::from(vec![0, 0, 0, 7, 0x80, 0, 0, 0, 0, ROOM.0 as u8, seq as u8])
    }

    fn event(seq: u64) -> RoomOp {
        RoomOp::Event(Seq(seq), ev(seq))
    }

    fn seqs(rx: &mut OutboundRx) -> Vec<Option<u64>> {
        frames(rx)
            .iter()
            .map(|f| event_seq(f).map(|s| s.0))
            .collect()
    }

    fn tail(seqs: &[u64], floor: u64) -> TailSlice {
        TailSlice {
            frames: seqs.iter().rev().map(|&s| ev(s)).collect(),
            floor: Seq(floor),
        }
    }

    #[test]
    fn events_go_once_in_order_and_a_gap_is_filled_before_what_follows() {
        let (mut t, mut ann, _bob) = table();
        let mut touched = Touched::default();
        let ops = vec![RoomOp::Epoch(1), event(1), event(2), event(2)];
        assert_eq!(t.replay(ROOM, ops, &mut touched), None);
        assert_eq!(
            seqs(&mut ann),
            [Some(1), Some(2)],
            "the duplicate is dropped"
        );
        // 3 and 4 were lost: 5 and 6 wait for them.
        let fill = t.replay(ROOM, vec![RoomOp::Epoch(1), event(5)], &mut touched);
        let fill = fill.expect("a gap to fill");
        assert_eq!((fill.after, fill.before), (Seq(2), Seq(5)));
        assert_eq!(
            t.replay(ROOM, vec![RoomOp::Epoch(1), event(6)], &mut touched),
            None
        );
        assert!(frames(&mut ann).is_empty(), "held until filled");
        let next = t.filled(fill, Some(tail(&[1, 2, 3, 4, 5, 6], 1)), &mut touched);
        assert_eq!(next, None);
        assert_eq!(seqs(&mut ann), [Some(3), Some(4), Some(5), Some(6)]);
    }

    #[test]
    fn a_gap_the_owner_cannot_fill_is_a_resume_gap_before_what_follows() {
        let (mut t, mut ann, _bob) = table();
        let mut touched = Touched::default();
        t.replay(ROOM, vec![RoomOp::Epoch(1), event(1)], &mut touched);
        frames(&mut ann);
        let fill = t.replay(ROOM, vec![event(9)], &mut touched).expect("a gap");
        // The tail starts at 5: 2 to 4 are gone from it.
        t.filled(fill, Some(tail(&[5, 6, 7, 8, 9], 5)), &mut touched);
        let got = frames(&mut ann);
        assert_eq!(got, [resume_gap(ROOM, Seq(8)), ev(9)]);
    }

    #[test]
    fn a_fenced_owner_is_ignored_and_a_new_one_reusing_seqs_is_a_resume_gap() {
        let (mut t, mut ann, _bob) = table();
        let mut touched = Touched::default();
        t.replay(
            ROOM,
            vec![RoomOp::Epoch(3), event(1), event(2)],
            &mut touched,
        );
        frames(&mut ann);
        // The old owner's late ops, and ops of a node that lost its trust.
        t.replay(ROOM, vec![RoomOp::Epoch(2), event(3)], &mut touched);
        t.replay(ROOM, vec![RoomOp::Epoch(0), event(3)], &mut touched);
        assert!(frames(&mut ann).is_empty());
        // The new owner stored up to 1: 2 was delivered but never stored.
        t.replay(ROOM, vec![RoomOp::Epoch(4), event(2)], &mut touched);
        let got = frames(&mut ann);
        assert_eq!(got, [resume_gap(ROOM, Seq(1)), ev(2)]);
    }

    #[test]
    fn a_resuming_connection_is_replayed_its_missed_events_then_what_was_held() {
        let (mut t, mut ann, mut bob) = table();
        let mut touched = Touched::default();
        t.catch_up(ROOM, ConnId(1), ANN, Seq(2));
        t.replay(
            ROOM,
            vec![RoomOp::Epoch(1), event(5), event(6)],
            &mut touched,
        );
        assert_eq!(seqs(&mut bob), [Some(5), Some(6)]);
        assert!(frames(&mut ann).is_empty(), "held while it catches up");
        let seen = {
            let mut probe = RemoteTable::<()>::default();
            let (c, _rx) = conn(1);
            probe.attach(ANN, c);
            probe.watch(ROOM, ());
            probe.add_member(ROOM, ANN);
            probe.catch_up(ROOM, ConnId(1), ANN, Seq(4));
            probe.hand_over(crate::cluster::partition_of(ROOM, 4), 4)
        };
        assert_eq!(seen[&ROOM].after(ConnId(1)), Some(Seq(4)));
        assert_eq!(seen[&ROOM].after(ConnId(9)), None);
        // The owner answered when it was at 5.
        t.caught_up(
            ROOM,
            ConnId(1),
            Some(tail(&[1, 2, 3, 4, 5], 1)),
            &mut touched,
        );
        assert_eq!(seqs(&mut ann), [Some(3), Some(4), Some(5), Some(6)]);
        assert_eq!(
            t.hand_over(crate::cluster::partition_of(ROOM, 4), 4)[&ROOM].last,
            Some(Seq(6))
        );
        assert!(!t.watches(ROOM), "handed over to the shards");
    }
}
