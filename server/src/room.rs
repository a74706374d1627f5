//! The room state machine: every rule about a room, with no I/O.
//!
//! `Room::apply(command, now)` checks a command against the room's state,
//! mutates it and returns the [`Effect`]s for the shard to carry out
//! (broadcast and persist events, persist state changes, change fan-out
//! subscriptions). It knows nothing of sockets, tasks or databases, so every
//! rule is tested here, fast and deterministically, with explicit clocks.
//!
//! **Invariant:** sequence numbers of a room are 1, 2, 3, … without gaps;
//! each `Effect::Event` carries the next one.

use confab_protocol::{
    ErrorCode, EventBody, Millis, Role, RoomEvent, RoomId, RoomInfo, Seq, UserId, Visibility,
};
use confab_store::WriteOp;

/// One member of a room, in join order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberState {
    pub user: UserId,
    pub username: String,
    pub role: Role,
    pub joined_at: Millis,
}

/// What a shard must do after a command was applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// A new sequenced event: broadcast it to the room's online members,
    /// keep it in the room's tail and persist it.
    Event(RoomEvent),
    /// A state change to persist, ordered with the events around it.
    Persist(WriteOp),
    /// Start delivering the room's events to this user's connections.
    Subscribe(UserId),
    /// Stop delivering the room's events to this user's connections.
    Unsubscribe(UserId),
}

/// A request to change a room, already authenticated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Join { user: UserId, username: String },
    Leave { user: UserId },
    Post { user: UserId, text: String },
}

/// A live room's state, owned by exactly one shard.
#[derive(Debug, Clone)]
pub struct Room {
    pub id: RoomId,
    pub name: String,
    pub topic: String,
    pub visibility: Visibility,
    pub owner: UserId,
    pub created_at: Millis,
    /// The sequence number of the latest event.
    pub last_seq: Seq,
    /// Members in join order.
    members: Vec<MemberState>,
}

impl Room {
    /// A new room created by `creator`, who becomes owner and first member.
    pub fn create(
        id: RoomId,
        name: String,
        topic: String,
        visibility: Visibility,
        creator: UserId,
        creator_name: String,
        now: Millis,
    ) -> (Room, Vec<Effect>) {
        let mut room = Room {
            id,
            name: name.clone(),
            topic: topic.clone(),
            visibility,
            owner: creator,
            created_at: now,
            last_seq: Seq(0),
            members: vec![MemberState {
                user: creator,
                username: creator_name.clone(),
                role: Role::Owner,
                joined_at: now,
            }],
        };
        let mut fx = vec![
            Effect::Persist(WriteOp::CreateRoom {
                room: id,
                name: name.clone(),
                topic: topic.clone(),
                visibility,
                owner: creator,
                created_at: now,
            }),
            Effect::Persist(WriteOp::AddMember {
                room: id,
                user: creator,
                role: Role::Owner,
                joined_at: now,
            }),
            Effect::Subscribe(creator),
        ];
        fx.push(room.event(
            creator,
            creator_name,
            now,
            EventBody::RoomCreated { name, topic },
        ));
        (room, fx)
    }

    /// A room reloaded from the store at start-up.
    pub fn restore(
        id: RoomId,
        name: String,
        topic: String,
        visibility: Visibility,
        owner: UserId,
        created_at: Millis,
        last_seq: Seq,
        members: Vec<MemberState>,
    ) -> Room {
        Room {
            id,
            name,
            topic,
            visibility,
            owner,
            created_at,
            last_seq,
            members,
        }
    }

    pub fn members(&self) -> &[MemberState] {
        &self.members
    }

    pub fn member(&self, user: UserId) -> Option<&MemberState> {
        self.members.iter().find(|m| m.user == user)
    }

    pub fn is_member(&self, user: UserId) -> bool {
        self.member(user).is_some()
    }

    pub fn info(&self) -> RoomInfo {
        RoomInfo {
            id: self.id,
            name: self.name.clone(),
            topic: self.topic.clone(),
            visibility: self.visibility,
            owner: self.owner,
            member_count: self.members.len() as u32,
            last_seq: self.last_seq,
            created_at: self.created_at,
        }
    }

    /// Applies `cmd` at time `now`. On error the room is unchanged.
    pub fn apply(&mut self, cmd: Command, now: Millis) -> Result<Vec<Effect>, ErrorCode> {
        match cmd {
            Command::Join { user, username } => self.join(user, username, now),
            Command::Leave { user } => self.leave(user, now),
            Command::Post { user, text } => self.post(user, text, now),
        }
    }

    fn join(
        &mut self,
        user: UserId,
        username: String,
        now: Millis,
    ) -> Result<Vec<Effect>, ErrorCode> {
        if self.is_member(user) {
            return Err(ErrorCode::AlreadyMember);
        }
        if self.visibility == Visibility::Private {
            return Err(ErrorCode::RoomPrivate);
        }
        self.members.push(MemberState {
            user,
            username: username.clone(),
            role: Role::Member,
            joined_at: now,
        });
        Ok(vec![
            Effect::Persist(WriteOp::AddMember {
                room: self.id,
                user,
                role: Role::Member,
                joined_at: now,
            }),
            Effect::Subscribe(user),
            self.event(user, username, now, EventBody::MemberJoined),
        ])
    }

    fn leave(&mut self, user: UserId, now: Millis) -> Result<Vec<Effect>, ErrorCode> {
        let idx = self
            .members
            .iter()
            .position(|m| m.user == user)
            .ok_or(ErrorCode::NotAMember)?;
        let member = self.members.remove(idx);
        // The leaver's connections still receive MEMBER_LEFT, then nothing more.
        Ok(vec![
            Effect::Persist(WriteOp::RemoveMember {
                room: self.id,
                user,
            }),
            self.event(user, member.username, now, EventBody::MemberLeft),
            Effect::Unsubscribe(user),
        ])
    }

    fn post(&mut self, user: UserId, text: String, now: Millis) -> Result<Vec<Effect>, ErrorCode> {
        let name = self
            .member(user)
            .ok_or(ErrorCode::NotAMember)?
            .username
            .clone();
        Ok(vec![self.event(
            user,
            name,
            now,
            EventBody::Message { text },
        )])
    }

    /// Numbers the next event of this room.
    fn event(&mut self, actor: UserId, actor_name: String, at: Millis, body: EventBody) -> Effect {
        self.last_seq = Seq(self.last_seq.0 + 1);
        Effect::Event(RoomEvent {
            room: self.id,
            seq: self.last_seq,
            at,
            actor,
            actor_name,
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: UserId = UserId(1);
    const BOB: UserId = UserId(2);
    const CAROL: UserId = UserId(3);

    fn public_room() -> Room {
        Room::create(
            RoomId(7),
            "general".into(),
            "chat".into(),
            Visibility::Public,
            ALICE,
            "alice".into(),
            1_000,
        )
        .0
    }

    fn events(fx: &[Effect]) -> Vec<&RoomEvent> {
        fx.iter()
            .filter_map(|e| {
                if let Effect::Event(ev) = e {
                    Some(ev)
                } else {
                    None
                }
            })
            .collect()
    }

    #[test]
    fn creator_becomes_owner_member_and_first_event_is_room_created() {
        let (room, fx) = Room::create(
            RoomId(7),
            "general".into(),
            "chat".into(),
            Visibility::Public,
            ALICE,
            "alice".into(),
            1_000,
        );
        assert_eq!(room.member(ALICE).map(|m| m.role), Some(Role::Owner));
        assert_eq!(room.owner, ALICE);
        let evs = events(&fx);
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].seq, Seq(1));
        assert!(matches!(evs[0].body, EventBody::RoomCreated { .. }));
        assert!(fx.contains(&Effect::Subscribe(ALICE)));
        assert!(
            matches!(fx[0], Effect::Persist(WriteOp::CreateRoom { .. })),
            "room row persisted before its event"
        );
    }

    #[test]
    fn join_adds_member_subscribes_and_announces() {
        let mut room = public_room();
        let fx = room
            .apply(
                Command::Join {
                    user: BOB,
                    username: "bob".into(),
                },
                2_000,
            )
            .unwrap();
        assert_eq!(
            room.member(BOB).map(|m| (m.role, m.joined_at)),
            Some((Role::Member, 2_000))
        );
        assert!(fx.contains(&Effect::Subscribe(BOB)));
        let evs = events(&fx);
        assert_eq!(
            (evs[0].seq, evs[0].actor, &evs[0].body),
            (Seq(2), BOB, &EventBody::MemberJoined)
        );
    }

    #[test]
    fn joining_twice_is_already_member_and_changes_nothing() {
        let mut room = public_room();
        room.apply(
            Command::Join {
                user: BOB,
                username: "bob".into(),
            },
            2_000,
        )
        .unwrap();
        let seq = room.last_seq;
        assert_eq!(
            room.apply(
                Command::Join {
                    user: BOB,
                    username: "bob".into()
                },
                3_000
            ),
            Err(ErrorCode::AlreadyMember)
        );
        assert_eq!(room.last_seq, seq);
        assert_eq!(room.members().len(), 2);
    }

    #[test]
    fn private_room_refuses_direct_join() {
        let (mut room, _) = Room::create(
            RoomId(8),
            "secret".into(),
            String::new(),
            Visibility::Private,
            ALICE,
            "alice".into(),
            0,
        );
        assert_eq!(
            room.apply(
                Command::Join {
                    user: BOB,
                    username: "bob".into()
                },
                1
            ),
            Err(ErrorCode::RoomPrivate)
        );
        assert!(!room.is_member(BOB));
    }

    #[test]
    fn only_members_may_post_and_posts_are_numbered_in_order() {
        let mut room = public_room();
        assert_eq!(
            room.apply(
                Command::Post {
                    user: BOB,
                    text: "hi".into()
                },
                5
            ),
            Err(ErrorCode::NotAMember)
        );
        room.apply(
            Command::Join {
                user: BOB,
                username: "bob".into(),
            },
            6,
        )
        .unwrap();
        let a = room
            .apply(
                Command::Post {
                    user: BOB,
                    text: "one".into(),
                },
                7,
            )
            .unwrap();
        let b = room
            .apply(
                Command::Post {
                    user: ALICE,
                    text: "two".into(),
                },
                8,
            )
            .unwrap();
        let (a, b) = (events(&a)[0].clone(), events(&b)[0].clone());
        assert_eq!((a.seq, b.seq), (Seq(3), Seq(4)));
        assert_eq!(a.actor_name, "bob");
        assert_eq!(b.body, EventBody::Message { text: "two".into() });
        assert_eq!(b.at, 8);
    }

    #[test]
    fn leave_announces_then_unsubscribes_and_non_members_cannot_leave() {
        let mut room = public_room();
        room.apply(
            Command::Join {
                user: BOB,
                username: "bob".into(),
            },
            6,
        )
        .unwrap();
        assert_eq!(
            room.apply(Command::Leave { user: CAROL }, 7),
            Err(ErrorCode::NotAMember)
        );
        let fx = room.apply(Command::Leave { user: BOB }, 8).unwrap();
        assert!(!room.is_member(BOB));
        let ev_pos = fx
            .iter()
            .position(|e| matches!(e, Effect::Event(_)))
            .unwrap();
        let unsub_pos = fx
            .iter()
            .position(|e| *e == Effect::Unsubscribe(BOB))
            .unwrap();
        assert!(ev_pos < unsub_pos, "the leaver sees its own MEMBER_LEFT");
        assert!(fx.contains(&Effect::Persist(WriteOp::RemoveMember {
            room: RoomId(7),
            user: BOB
        })));
        assert_eq!(
            room.apply(
                Command::Post {
                    user: BOB,
                    text: "x".into()
                },
                9
            ),
            Err(ErrorCode::NotAMember)
        );
    }

    #[test]
    fn a_user_who_left_may_join_again_and_keeps_join_order_at_the_end() {
        let mut room = public_room();
        room.apply(
            Command::Join {
                user: BOB,
                username: "bob".into(),
            },
            2,
        )
        .unwrap();
        room.apply(
            Command::Join {
                user: CAROL,
                username: "carol".into(),
            },
            3,
        )
        .unwrap();
        room.apply(Command::Leave { user: BOB }, 4).unwrap();
        room.apply(
            Command::Join {
                user: BOB,
                username: "bob".into(),
            },
            5,
        )
        .unwrap();
        let order: Vec<_> = room.members().iter().map(|m| m.user).collect();
        assert_eq!(order, vec![ALICE, CAROL, BOB]);
    }

    #[test]
    fn info_reflects_members_and_last_seq() {
        let mut room = public_room();
        room.apply(
            Command::Join {
                user: BOB,
                username: "bob".into(),
            },
            2,
        )
        .unwrap();
        let info = room.info();
        assert_eq!(
            (info.member_count, info.last_seq, info.owner),
            (2, Seq(2), ALICE)
        );
    }
}
