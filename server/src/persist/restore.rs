//! Rooms as the shards hold them, built from their stored state
//! ([`confab_store::RoomsState`]): every room at a single node's start-up,
//! or in cluster mode the rooms of a partition the node gained. One path
//! for both, so a room taken over continues exactly as one restored at
//! start-up (its sequence from the store's last).

use std::collections::HashMap;

use anyhow::Context;
use confab_protocol::{RoomEvent, RoomId, UserId};
use confab_store::RoomsState;

use crate::room::{Direct, MemberState, PendingUser, Room, RoomSnapshot};
use crate::shard::RoomSlot;

/// Rooms built from their stored state.
#[derive(Default)]
pub struct Restored {
    pub slots: Vec<RoomSlot>,
    /// The highest room id among them (terminated rooms included: ids are
    /// never reused), 0 if none.
    pub max_room: u64,
    /// The direct rooms among them, by pair (lower id first).
    pub pairs: Vec<((UserId, UserId), RoomId)>,
}

/// `items` grouped by room, each made into what the room keeps, in their
/// order.
fn by_room<I, T>(items: Vec<I>, make: impl Fn(I) -> (RoomId, T)) -> HashMap<RoomId, Vec<T>> {
    let mut grouped: HashMap<RoomId, Vec<T>> = HashMap::new();
    for item in items {
        let (room, made) = make(item);
        grouped.entry(room).or_default().push(made);
    }
    grouped
}

impl Restored {
    /// Builds each room of `state` with its members, bans, invitations,
    /// join requests and recent events.
    pub fn build(state: RoomsState) -> anyhow::Result<Restored> {
        let mut members = by_room(state.members, |m| {
            (
                m.room,
                MemberState {
                    user: m.user,
                    username: m.username,
                    role: m.role,
                    joined_at: m.joined_at,
                },
            )
        });
        let pending = |room, user, username, by, at| {
            (
                room,
                PendingUser {
                    user,
                    username,
                    by,
                    at,
                },
            )
        };
        let mut bans = by_room(state.bans, |b| {
            pending(b.room, b.user, b.username, b.by, b.at)
        });
        let mut invites = by_room(state.invites, |i| {
            pending(i.room, i.user, i.username, i.by, i.at)
        });
        let mut requests = by_room(state.requests, |r| {
            pending(r.room, r.user, r.username, r.user, r.at)
        });
        let mut recent: HashMap<RoomId, Vec<RoomEvent>> = HashMap::new();
        for ev in state.recent {
            let (room, seq) = (ev.room, ev.seq);
            let ev = ev
                .to_event()
                .with_context(|| format!("stored event {room}/{seq} is corrupt"))?;
            recent.entry(room).or_default().push(ev);
        }
        let mut max_room = 0;
        let mut slots = Vec::with_capacity(state.rooms.len());
        let mut pairs = Vec::new();
        for r in state.rooms {
            max_room = max_room.max(r.id.0);
            let direct = r.direct.map(|[a, b]| Direct::new(a, b));
            if let Some(d) = &direct {
                pairs.push((d.pair(), r.id));
            }
            let take =
                |m: &mut HashMap<RoomId, Vec<PendingUser>>| m.remove(&r.id).unwrap_or_default();
            let room = Room::restore(RoomSnapshot {
                id: r.id,
                name: r.name,
                topic: r.topic,
                visibility: r.visibility,
                owner: r.owner,
                created_at: r.created_at,
                last_seq: r.last_seq,
                terminated: r.terminated_at.is_some(),
                members: members.remove(&r.id).unwrap_or_default(),
                bans: take(&mut bans),
                invites: take(&mut invites),
                requests: take(&mut requests),
                direct,
            });
            slots.push(RoomSlot::restored(
                room,
                recent.remove(&r.id).unwrap_or_default(),
            ));
        }
        Ok(Restored {
            slots,
            max_room,
            pairs,
        })
    }
}
