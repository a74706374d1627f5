//! What nodes send each other over NATS (phase 3): a command forwarded to
//! the node serving its room, that node's answer, and a room's events.
//!
//! Every payload starts with [`VERSION`]; a node refuses a payload of
//! another version (the sender answers `ROOM_MOVING`, so the client
//! retries, as during a rolling upgrade). Fields use the client
//! protocol's primitives (`confab_protocol::wire`: varints, strings,
//! nested spans and attachments), and the frames inside — a reply, an
//! event — are the client protocol's frames, encoded once by the room's
//! owner and written to clients as they are.
//!
//! - [`Forwarded`]: a room command with what the owner needs to rebuild
//!   its `ShardCmd` (the connection's request id, not the connection);
//! - [`Answer`]: what came back — a reply frame, a check's result, a tail
//!   slice, or "ask the store" for an edit;
//! - [`RoomOps`]: a room's events and membership changes in the order
//!   its shard carried them out, which every node with members of the
//!   room replays on its own connections;
//! - [`UserPush`]: a per-user push (a notification, a room announcement,
//!   a read marker, a membership change, presence, a profile) for the
//!   user's connections on every other node.

use bytes::{BufMut, Bytes, BytesMut};
use confab_protocol::wire::{put_bool, put_opt_str, put_str, put_varint, Reader};
use confab_protocol::{Attachment, DecodeError, ErrorCode, Role, RoomId, Seq, UserId};

use crate::room::{Command, Lookup, MessageFacts, Rich};
use crate::shard::{RosterList, TailSlice};

/// The version of every payload here.
pub const VERSION: u8 = 1;

/// A command for a room, as forwarded to the node serving it.
#[derive(Debug, Clone, PartialEq)]
pub struct Forwarded {
    pub room: RoomId,
    pub what: What,
}

/// The forwarded command itself. `req_id` is the request's on the
/// requesting connection: the owner encodes its reply with it.
#[derive(Debug, Clone, PartialEq)]
pub enum What {
    Apply {
        req_id: u32,
        cmd: Command,
    },
    ChangeMessage {
        req_id: u32,
        cmd: Command,
    },
    OpenDirect {
        req_id: u32,
        opener: (UserId, String),
        other: (UserId, String),
    },
    Members {
        req_id: u32,
        user: UserId,
    },
    Typing {
        req_id: u32,
        user: UserId,
        start: bool,
    },
    Roster {
        req_id: u32,
        user: UserId,
        which: RosterList,
    },
    Tail {
        user: UserId,
        before: Seq,
        limit: u32,
    },
    CheckAdmin {
        user: UserId,
    },
    CheckMember {
        user: UserId,
    },
    CheckReadMarker {
        user: UserId,
        seq: Seq,
    },
}

/// The owner's answer to a [`Forwarded`] command.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The reply frame for the requesting connection (already carrying
    /// its request id); `error` is its code if it is an ERROR.
    Reply {
        error: Option<ErrorCode>,
        frame: Bytes,
    },
    /// An edit or delete the room can rule on only with the store's copy
    /// of the message, at this change generation (`ShardCmd::ChangeMessage`).
    NeedStore(u64),
    /// A check's result (`CheckAdmin`, `CheckMember`, `CheckReadMarker`).
    Checked(Result<(), ErrorCode>),
    Tail(Result<TailSlice, ErrorCode>),
    /// Not applied: the owner does not serve the room (any more), or
    /// could not take the command. The requester answers `code`.
    Refused(ErrorCode),
}

/// One step of a room's fan-out, in the owner shard's order.
#[derive(Debug, Clone, PartialEq)]
pub enum RoomOp {
    /// `user` became a member: their connections receive the room from
    /// here on.
    Subscribe(UserId),
    /// `user` is no longer a member: nothing more of the room reaches
    /// their connections.
    Unsubscribe(UserId),
    /// A frame for every connection receiving the room.
    Frame(Bytes),
    /// A frame for every connection receiving the room but `user`'s (a
    /// typing notice is not sent back to the typist).
    FrameExcept(UserId, Bytes),
    /// The room's event `seq` (an EVENT frame) for every connection
    /// receiving the room: receivers deliver each seq once, in order, and
    /// fill a gap before going on (`remote_table.rs`).
    Event(Seq, Bytes),
    /// The lease epoch the owner held the room's partition at when it
    /// carried out what follows (first in a buffer with events): a higher
    /// one than a receiver saw is a new owner, a lower one a fenced one.
    Epoch(u64),
}

/// A room's ops of one shard pass, encoded as they are added: what the
/// owner publishes, once, for every node with members of the room.
#[derive(Debug, Default)]
pub struct RoomOps {
    buf: BytesMut,
    /// Whether any frame was added (membership changes alone are
    /// published too, but an empty buffer is not).
    len: usize,
}

impl RoomOps {
    pub fn push(&mut self, op: &RoomOp) {
        if self.buf.is_empty() {
            self.buf.put_u8(VERSION);
        }
        // An epoch alone is not worth publishing.
        self.len += usize::from(!matches!(op, RoomOp::Epoch(_)));
        match op {
            RoomOp::Subscribe(user) => {
                self.buf.put_u8(1);
                put_varint(&mut self.buf, user.0);
            }
            RoomOp::Unsubscribe(user) => {
                self.buf.put_u8(2);
                put_varint(&mut self.buf, user.0);
            }
            RoomOp::Frame(frame) => {
                self.buf.put_u8(3);
                put_bytes(&mut self.buf, frame);
            }
            RoomOp::FrameExcept(user, frame) => {
                self.buf.put_u8(4);
                put_varint(&mut self.buf, user.0);
                put_bytes(&mut self.buf, frame);
            }
            RoomOp::Event(seq, frame) => {
                self.buf.put_u8(5);
                put_varint(&mut self.buf, seq.0);
                put_bytes(&mut self.buf, frame);
            }
            RoomOp::Epoch(epoch) => {
                self.buf.put_u8(6);
                put_varint(&mut self.buf, *epoch);
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn finish(self) -> Bytes {
        self.buf.freeze()
    }
}

/// The seq of a client-protocol EVENT frame (length, type `0x80`, request
/// id, then room and seq), or `None` for any other frame.
pub fn event_seq(frame: &[u8]) -> Option<Seq> {
    if frame.get(4) != Some(&0x80) {
        return None;
    }
    let mut r = Reader::new(frame.get(9..)?);
    r.varint().ok()?;
    r.varint().ok().map(Seq)
}

/// Reads the ops [`RoomOps`] wrote. The frames share `payload`'s memory.
pub fn room_ops(payload: &Bytes) -> Result<Vec<RoomOp>, DecodeError> {
    let mut r = Reader::new(payload);
    version(&mut r)?;
    let mut ops = Vec::new();
    while r.remaining() > 0 {
        let op = match r.u8()? {
            1 => RoomOp::Subscribe(user(&mut r)?),
            2 => RoomOp::Unsubscribe(user(&mut r)?),
            3 => RoomOp::Frame(slice(&mut r, payload)?),
            4 => {
                let u = user(&mut r)?;
                RoomOp::FrameExcept(u, slice(&mut r, payload)?)
            }
            5 => {
                let seq = Seq(r.varint()?);
                RoomOp::Event(seq, slice(&mut r, payload)?)
            }
            6 => RoomOp::Epoch(r.varint()?),
            v => return Err(invalid("room op", v.into())),
        };
        ops.push(op);
    }
    Ok(ops)
}

/// A per-user push (`confab.user.<p>`): what the node that produced it
/// delivered to its own connections, for the user's connections on every
/// other node (no echo: never back to the sender).
#[derive(Debug, Clone, PartialEq)]
pub enum UserPush {
    /// A frame for every connection of `user` (a notification, a room
    /// announcement, READ_MARKER_MOVED).
    ToUser { user: UserId, frame: Bytes },
    /// A frame for every authenticated connection (a public room's
    /// ROOM_ANNOUNCED).
    ToEveryone { frame: Bytes },
    /// `user` became a member of `room`: their connections receive its
    /// events after `after` (the event before the first one the user's
    /// connections on the owner got: their own MEMBER_JOINED, say), so a
    /// node that starts watching the room for them fetches what it
    /// published before the subscription took effect. (A member's removal
    /// needs no push: a node with connections of a member receives the
    /// room's ops, whose `Unsubscribe` comes in order with its frames.)
    Joined {
        user: UserId,
        room: RoomId,
        after: Seq,
    },
    /// A connection of `user` opened (`open`) or closed on node `node`
    /// (a number each node draws at start).
    Connection { node: u64, user: UserId, open: bool },
    /// Every user with connections on node `node` and how many, sent
    /// every few seconds: a node that missed connections (it started
    /// later, NATS was down) catches up, and one that stops hearing from
    /// `node` (it died) counts its connections closed.
    Present {
        node: u64,
        users: Vec<(UserId, u32)>,
    },
    /// SET_AWAY of `user` on the sender.
    Away { user: UserId, away: bool },
    /// `user`'s public profile changed.
    Profile(confab_protocol::Profile),
    /// Sessions ended in the store: LOGOUT of `token_hash`'s session
    /// (`others` false), or CHANGE_PASSWORD from it, which ends every
    /// other session of `user` (`others` true). Every node closes the
    /// connections it has under them.
    Revoke {
        user: UserId,
        token_hash: [u8; 32],
        others: bool,
    },
}

impl UserPush {
    /// The user whose partition's subject carries it (`None`: everyone's).
    pub fn user(&self) -> Option<UserId> {
        match self {
            UserPush::ToUser { user, .. }
            | UserPush::Joined { user, .. }
            | UserPush::Connection { user, .. }
            | UserPush::Away { user, .. }
            | UserPush::Revoke { user, .. } => Some(*user),
            UserPush::Profile(p) => Some(p.user),
            UserPush::ToEveryone { .. } | UserPush::Present { .. } => None,
        }
    }

    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(match self {
            UserPush::ToUser { frame, .. } | UserPush::ToEveryone { frame } => frame.len() + 12,
            UserPush::Present { users, .. } => 16 + users.len() * 6,
            _ => 24,
        });
        b.put_u8(VERSION);
        match self {
            UserPush::ToUser { user, frame } => {
                b.put_u8(1);
                put_varint(&mut b, user.0);
                put_bytes(&mut b, frame);
            }
            UserPush::ToEveryone { frame } => {
                b.put_u8(2);
                put_bytes(&mut b, frame);
            }
            UserPush::Joined { user, room, after } => {
                b.put_u8(3);
                put_varint(&mut b, user.0);
                put_varint(&mut b, room.0);
                put_varint(&mut b, after.0);
            }
            UserPush::Connection { node, user, open } => {
                b.put_u8(5);
                put_varint(&mut b, *node);
                put_varint(&mut b, user.0);
                put_bool(&mut b, *open);
            }
            UserPush::Present { node, users } => {
                b.put_u8(8);
                put_varint(&mut b, *node);
                put_varint(&mut b, users.len() as u64);
                for (user, conns) in users {
                    put_varint(&mut b, user.0);
                    put_varint(&mut b, u64::from(*conns));
                }
            }
            UserPush::Away { user, away } => {
                b.put_u8(6);
                put_varint(&mut b, user.0);
                put_bool(&mut b, *away);
            }
            UserPush::Profile(profile) => {
                b.put_u8(7);
                profile.encode_fields(&mut b);
            }
            UserPush::Revoke {
                user,
                token_hash,
                others,
            } => {
                b.put_u8(9);
                put_varint(&mut b, user.0);
                put_bytes(&mut b, token_hash);
                put_bool(&mut b, *others);
            }
        }
        b.freeze()
    }

    /// Reads what [`UserPush::encode`] wrote; frames share `payload`'s
    /// memory.
    pub fn decode(payload: &Bytes) -> Result<UserPush, DecodeError> {
        let mut r = Reader::new(payload);
        version(&mut r)?;
        let push = match r.u8()? {
            1 => {
                let user = user(&mut r)?;
                UserPush::ToUser {
                    user,
                    frame: slice(&mut r, payload)?,
                }
            }
            2 => UserPush::ToEveryone {
                frame: slice(&mut r, payload)?,
            },
            3 => UserPush::Joined {
                user: user(&mut r)?,
                room: RoomId(r.varint()?),
                after: Seq(r.varint()?),
            },
            5 => UserPush::Connection {
                node: r.varint()?,
                user: user(&mut r)?,
                open: r.bool()?,
            },
            8 => {
                let node = r.varint()?;
                let n = r.count()?;
                let mut users = Vec::with_capacity(n.min(r.remaining()));
                for _ in 0..n {
                    let u = user(&mut r)?;
                    let conns =
                        u32::try_from(r.varint()?).map_err(|_| invalid("connections", u64::MAX))?;
                    users.push((u, conns));
                }
                UserPush::Present { node, users }
            }
            6 => UserPush::Away {
                user: user(&mut r)?,
                away: r.bool()?,
            },
            7 => UserPush::Profile(confab_protocol::Profile::decode_fields(&mut r)?),
            9 => UserPush::Revoke {
                user: user(&mut r)?,
                token_hash: slice(&mut r, payload)?
                    .as_ref()
                    .try_into()
                    .map_err(|_| invalid("token hash", 0))?,
                others: r.bool()?,
            },
            v => return Err(invalid("user push", v.into())),
        };
        Ok(push)
    }
}

impl Forwarded {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(64);
        b.put_u8(VERSION);
        put_varint(&mut b, self.room.0);
        match &self.what {
            What::Apply { req_id, cmd } => {
                b.put_u8(1);
                put_varint(&mut b, (*req_id).into());
                put_command(&mut b, cmd);
            }
            What::ChangeMessage { req_id, cmd } => {
                b.put_u8(2);
                put_varint(&mut b, (*req_id).into());
                put_command(&mut b, cmd);
            }
            What::OpenDirect {
                req_id,
                opener,
                other,
            } => {
                b.put_u8(3);
                put_varint(&mut b, (*req_id).into());
                put_varint(&mut b, opener.0 .0);
                put_str(&mut b, &opener.1);
                put_varint(&mut b, other.0 .0);
                put_str(&mut b, &other.1);
            }
            What::Members { req_id, user } => {
                b.put_u8(4);
                put_varint(&mut b, (*req_id).into());
                put_varint(&mut b, user.0);
            }
            What::Typing {
                req_id,
                user,
                start,
            } => {
                b.put_u8(5);
                put_varint(&mut b, (*req_id).into());
                put_varint(&mut b, user.0);
                put_bool(&mut b, *start);
            }
            What::Roster {
                req_id,
                user,
                which,
            } => {
                b.put_u8(6);
                put_varint(&mut b, (*req_id).into());
                put_varint(&mut b, user.0);
                put_bool(&mut b, *which == RosterList::Bans);
            }
            What::Tail {
                user,
                before,
                limit,
            } => {
                b.put_u8(7);
                put_varint(&mut b, user.0);
                put_varint(&mut b, before.0);
                put_varint(&mut b, (*limit).into());
            }
            What::CheckAdmin { user } => {
                b.put_u8(8);
                put_varint(&mut b, user.0);
            }
            What::CheckMember { user } => {
                b.put_u8(9);
                put_varint(&mut b, user.0);
            }
            What::CheckReadMarker { user, seq } => {
                b.put_u8(10);
                put_varint(&mut b, user.0);
                put_varint(&mut b, seq.0);
            }
        }
        b.freeze()
    }

    pub fn decode(payload: &[u8]) -> Result<Forwarded, DecodeError> {
        let mut r = Reader::new(payload);
        version(&mut r)?;
        let room = RoomId(r.varint()?);
        let what = match r.u8()? {
            1 => What::Apply {
                req_id: r.varint_u32()?,
                cmd: get_command(&mut r)?,
            },
            2 => What::ChangeMessage {
                req_id: r.varint_u32()?,
                cmd: get_command(&mut r)?,
            },
            3 => What::OpenDirect {
                req_id: r.varint_u32()?,
                opener: (user(&mut r)?, r.str()?),
                other: (user(&mut r)?, r.str()?),
            },
            4 => What::Members {
                req_id: r.varint_u32()?,
                user: user(&mut r)?,
            },
            5 => What::Typing {
                req_id: r.varint_u32()?,
                user: user(&mut r)?,
                start: r.bool()?,
            },
            6 => What::Roster {
                req_id: r.varint_u32()?,
                user: user(&mut r)?,
                which: if r.bool()? {
                    RosterList::Bans
                } else {
                    RosterList::JoinRequests
                },
            },
            7 => What::Tail {
                user: user(&mut r)?,
                before: Seq(r.varint()?),
                limit: r.varint_u32()?,
            },
            8 => What::CheckAdmin {
                user: user(&mut r)?,
            },
            9 => What::CheckMember {
                user: user(&mut r)?,
            },
            10 => What::CheckReadMarker {
                user: user(&mut r)?,
                seq: Seq(r.varint()?),
            },
            v => return Err(invalid("forwarded command", v.into())),
        };
        Ok(Forwarded { room, what })
    }
}

impl Answer {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(match self {
            Answer::Reply { frame, .. } => frame.len() + 8,
            _ => 16,
        });
        b.put_u8(VERSION);
        match self {
            Answer::Reply { error, frame } => {
                b.put_u8(1);
                put_varint(&mut b, error.map_or(0, |c| c as u64));
                put_bytes(&mut b, frame);
            }
            Answer::NeedStore(generation) => {
                b.put_u8(2);
                put_varint(&mut b, *generation);
            }
            Answer::Checked(result) => {
                b.put_u8(3);
                put_varint(&mut b, result.err().map_or(0, |c| c as u64));
            }
            Answer::Tail(Ok(slice)) => {
                b.put_u8(4);
                put_varint(&mut b, slice.floor.0);
                put_varint(&mut b, slice.frames.len() as u64);
                for frame in &slice.frames {
                    put_bytes(&mut b, frame);
                }
            }
            Answer::Tail(Err(code)) => {
                b.put_u8(5);
                put_varint(&mut b, *code as u64);
            }
            Answer::Refused(code) => {
                b.put_u8(6);
                put_varint(&mut b, *code as u64);
            }
        }
        b.freeze()
    }

    /// Reads an answer; its frames share `payload`'s memory.
    pub fn decode(payload: &Bytes) -> Result<Answer, DecodeError> {
        let mut r = Reader::new(payload);
        version(&mut r)?;
        Ok(match r.u8()? {
            1 => {
                let error = match r.varint_u16()? {
                    0 => None,
                    n => Some(code(n)?),
                };
                Answer::Reply {
                    error,
                    frame: slice(&mut r, payload)?,
                }
            }
            2 => Answer::NeedStore(r.varint()?),
            3 => Answer::Checked(match r.varint_u16()? {
                0 => Ok(()),
                n => Err(code(n)?),
            }),
            4 => {
                let floor = Seq(r.varint()?);
                let n = r.count()?;
                let mut frames = Vec::with_capacity(n);
                for _ in 0..n {
                    frames.push(slice(&mut r, payload)?);
                }
                Answer::Tail(Ok(TailSlice { frames, floor }))
            }
            5 => Answer::Tail(Err(code(r.varint_u16()?)?)),
            6 => Answer::Refused(code(r.varint_u16()?)?),
            v => return Err(invalid("answer", v.into())),
        })
    }
}

fn put_command(b: &mut BytesMut, cmd: &Command) {
    match cmd {
        Command::Join { user, username } => {
            b.put_u8(1);
            put_varint(b, user.0);
            put_str(b, username);
        }
        Command::Leave { user } => {
            b.put_u8(2);
            put_varint(b, user.0);
        }
        Command::Post { user, text, rich } => {
            b.put_u8(3);
            put_varint(b, user.0);
            put_str(b, text);
            confab_protocol::rich::put_spans(b, &rich.spans);
            put_opt_str(b, rich.sticker.as_deref());
            confab_protocol::attach::put_attachments(b, &rich.attachments);
        }
        Command::Invite {
            by,
            target,
            target_name,
        } => {
            b.put_u8(4);
            put_varint(b, by.0);
            put_varint(b, target.0);
            put_str(b, target_name);
        }
        Command::RespondInvite {
            user,
            username,
            accept,
        } => {
            b.put_u8(5);
            put_varint(b, user.0);
            put_str(b, username);
            put_bool(b, *accept);
        }
        Command::RequestJoin { user, username } => {
            b.put_u8(6);
            put_varint(b, user.0);
            put_str(b, username);
        }
        Command::Decide {
            by,
            target,
            approve,
        } => {
            b.put_u8(7);
            put_varint(b, by.0);
            put_varint(b, target.0);
            put_bool(b, *approve);
        }
        Command::Kick { by, target } => {
            b.put_u8(8);
            put_varint(b, by.0);
            put_varint(b, target.0);
        }
        Command::Ban {
            by,
            target,
            target_name,
        } => {
            b.put_u8(9);
            put_varint(b, by.0);
            put_varint(b, target.0);
            put_str(b, target_name);
        }
        Command::Unban { by, target } => {
            b.put_u8(10);
            put_varint(b, by.0);
            put_varint(b, target.0);
        }
        Command::SetRole { by, target, role } => {
            b.put_u8(11);
            put_varint(b, by.0);
            put_varint(b, target.0);
            b.put_u8(*role as u8);
        }
        Command::Update { by, name, topic } => {
            b.put_u8(12);
            put_varint(b, by.0);
            put_str(b, name);
            put_str(b, topic);
        }
        Command::EditMessage {
            user,
            seq,
            text,
            spans,
            stored,
        } => {
            b.put_u8(13);
            put_varint(b, user.0);
            put_varint(b, seq.0);
            put_str(b, text);
            confab_protocol::rich::put_spans(b, spans);
            put_lookup(b, stored);
        }
        Command::DeleteMessage { user, seq, stored } => {
            b.put_u8(14);
            put_varint(b, user.0);
            put_varint(b, seq.0);
            put_lookup(b, stored);
        }
        Command::OpenDirect { user, username } => {
            b.put_u8(15);
            put_varint(b, user.0);
            put_str(b, username);
        }
    }
}

fn get_command(r: &mut Reader<'_>) -> Result<Command, DecodeError> {
    Ok(match r.u8()? {
        1 => Command::Join {
            user: user(r)?,
            username: r.str()?,
        },
        2 => Command::Leave { user: user(r)? },
        3 => Command::Post {
            user: user(r)?,
            text: r.str()?,
            rich: Rich {
                spans: confab_protocol::rich::get_spans(r)?,
                sticker: r.opt_str()?,
                attachments: attachments(r)?,
            },
        },
        4 => Command::Invite {
            by: user(r)?,
            target: user(r)?,
            target_name: r.str()?,
        },
        5 => Command::RespondInvite {
            user: user(r)?,
            username: r.str()?,
            accept: r.bool()?,
        },
        6 => Command::RequestJoin {
            user: user(r)?,
            username: r.str()?,
        },
        7 => Command::Decide {
            by: user(r)?,
            target: user(r)?,
            approve: r.bool()?,
        },
        8 => Command::Kick {
            by: user(r)?,
            target: user(r)?,
        },
        9 => Command::Ban {
            by: user(r)?,
            target: user(r)?,
            target_name: r.str()?,
        },
        10 => Command::Unban {
            by: user(r)?,
            target: user(r)?,
        },
        11 => Command::SetRole {
            by: user(r)?,
            target: user(r)?,
            role: {
                let v = r.u8()?;
                Role::from_code(v).ok_or_else(|| invalid("role", v.into()))?
            },
        },
        12 => Command::Update {
            by: user(r)?,
            name: r.str()?,
            topic: r.str()?,
        },
        13 => Command::EditMessage {
            user: user(r)?,
            seq: Seq(r.varint()?),
            text: r.str()?,
            spans: confab_protocol::rich::get_spans(r)?,
            stored: get_lookup(r)?,
        },
        14 => Command::DeleteMessage {
            user: user(r)?,
            seq: Seq(r.varint()?),
            stored: get_lookup(r)?,
        },
        15 => Command::OpenDirect {
            user: user(r)?,
            username: r.str()?,
        },
        v => return Err(invalid("room command", v.into())),
    })
}

fn put_lookup(b: &mut BytesMut, stored: &Lookup) {
    match stored {
        Lookup::NotRead => b.put_u8(0),
        Lookup::Read { generation, found } => {
            b.put_u8(1);
            put_varint(b, *generation);
            match found {
                None => b.put_u8(0),
                Some(facts) => {
                    b.put_u8(1);
                    put_varint(b, facts.sender.0);
                    put_str(b, &facts.sender_name);
                    put_varint(b, facts.at);
                    put_bool(b, facts.deleted);
                    put_bool(b, facts.sticker);
                    confab_protocol::attach::put_attachments(b, &facts.attachments);
                }
            }
        }
    }
}

fn get_lookup(r: &mut Reader<'_>) -> Result<Lookup, DecodeError> {
    Ok(match r.u8()? {
        0 => Lookup::NotRead,
        1 => Lookup::Read {
            generation: r.varint()?,
            found: match r.u8()? {
                0 => None,
                _ => Some(MessageFacts {
                    sender: user(r)?,
                    sender_name: r.str()?,
                    at: r.varint()?,
                    deleted: r.bool()?,
                    sticker: r.bool()?,
                    attachments: attachments(r)?,
                }),
            },
        },
        v => return Err(invalid("lookup", v.into())),
    })
}

fn attachments(r: &mut Reader<'_>) -> Result<Vec<Attachment>, DecodeError> {
    let n = r.count()?;
    let mut files = Vec::with_capacity(n);
    for _ in 0..n {
        files.push(Attachment::decode(r)?);
    }
    Ok(files)
}

fn put_bytes(b: &mut BytesMut, bytes: &[u8]) {
    put_varint(b, bytes.len() as u64);
    b.put_slice(bytes);
}

/// The next length-prefixed bytes of `payload` (read through `r`), as a
/// slice of it: no copy.
fn slice(r: &mut Reader<'_>, payload: &Bytes) -> Result<Bytes, DecodeError> {
    let len = r.count()?;
    let start = payload.len() - r.remaining();
    r.bytes(len)?;
    Ok(payload.slice(start..start + len))
}

fn version(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    match r.u8()? {
        VERSION => Ok(()),
        v => Err(invalid("cluster payload version", v.into())),
    }
}

fn user(r: &mut Reader<'_>) -> Result<UserId, DecodeError> {
    Ok(UserId(r.varint()?))
}

fn code(n: u16) -> Result<ErrorCode, DecodeError> {
    ErrorCode::from_u16(n).ok_or_else(|| invalid("error code", n.into()))
}

fn invalid(field: &'static str, value: u64) -> DecodeError {
    DecodeError::InvalidValue { field, value }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_protocol::{Span, Style};

    fn round_trip(what: What) {
        let f = Forwarded {
            room: RoomId(77),
            what,
        };
        assert_eq!(Forwarded::decode(&f.encode()).unwrap(), f);
    }

    #[test]
    fn forwarded_commands_round_trip() {
        let rich = Rich {
            spans: vec![Span::new(0..2, Style::Bold)],
            sticker: None,
            attachments: vec![Attachment {
                id: 9,
                name: "a.png".into(),
                content_type: "image/png".into(),
                size: 10,
                width: Some(3),
                height: Some(4),
            }],
        };
        let cmds = [
            Command::Join {
                user: UserId(1),
                username: "ann".into(),
            },
            Command::Post {
                user: UserId(1),
                text: "hi".into(),
                rich,
            },
            Command::SetRole {
                by: UserId(1),
                target: UserId(2),
                role: Role::Admin,
            },
            Command::EditMessage {
                user: UserId(1),
                seq: Seq(5),
                text: "new".into(),
                spans: Vec::new(),
                stored: Lookup::Read {
                    generation: 3,
                    found: Some(MessageFacts {
                        sender: UserId(1),
                        sender_name: "ann".into(),
                        at: 12,
                        deleted: false,
                        sticker: false,
                        attachments: Vec::new(),
                    }),
                },
            },
            Command::DeleteMessage {
                user: UserId(1),
                seq: Seq(5),
                stored: Lookup::NotRead,
            },
        ];
        for cmd in cmds {
            round_trip(What::Apply {
                req_id: 7,
                cmd: cmd.clone(),
            });
            round_trip(What::ChangeMessage { req_id: 8, cmd });
        }
        round_trip(What::Roster {
            req_id: 1,
            user: UserId(2),
            which: RosterList::Bans,
        });
        round_trip(What::Tail {
            user: UserId(2),
            before: Seq(0),
            limit: 51,
        });
        round_trip(What::CheckReadMarker {
            user: UserId(2),
            seq: Seq(4),
        });
    }

    #[test]
    fn answers_and_room_ops_round_trip() {
        for answer in [
            Answer::Reply {
                error: Some(ErrorCode::NotAMember),
                frame: Bytes::from_static(b"frame"),
            },
            Answer::NeedStore(4),
            Answer::Checked(Ok(())),
            Answer::Checked(Err(ErrorCode::RoomNotFound)),
            Answer::Tail(Ok(TailSlice {
                frames: vec![Bytes::from_static(b"a"), Bytes::from_static(b"bc")],
                floor: Seq(3),
            })),
            Answer::Refused(ErrorCode::RoomMoving),
        ] {
            assert_eq!(Answer::decode(&answer.encode()).unwrap(), answer);
        }
        let ops = [
            RoomOp::Subscribe(UserId(3)),
            RoomOp::Frame(Bytes::from_static(b"event")),
            RoomOp::FrameExcept(UserId(3), Bytes::from_static(b"typing")),
            RoomOp::Unsubscribe(UserId(3)),
            RoomOp::Epoch(7),
            RoomOp::Event(Seq(12), Bytes::from_static(b"message")),
        ];
        let mut out = RoomOps::default();
        assert!(out.is_empty());
        for op in &ops {
            out.push(op);
        }
        assert_eq!(room_ops(&out.finish()).unwrap(), ops);
    }

    #[test]
    fn user_pushes_round_trip() {
        for push in [
            UserPush::ToUser {
                user: UserId(3),
                frame: Bytes::from_static(b"note"),
            },
            UserPush::ToEveryone {
                frame: Bytes::from_static(b"announced"),
            },
            UserPush::Joined {
                user: UserId(3),
                room: RoomId(70),
                after: Seq(12),
            },
            UserPush::Connection {
                node: 77,
                user: UserId(4),
                open: true,
            },
            UserPush::Present {
                node: 77,
                users: vec![(UserId(4), 2), (UserId(6), 1)],
            },
            UserPush::Away {
                user: UserId(4),
                away: false,
            },
            UserPush::Profile(confab_protocol::Profile {
                user: UserId(5),
                username: "eve".into(),
                display_name: Some("Eve".into()),
                bio: String::new(),
                email: None,
                avatar: Some(9),
            }),
            UserPush::Revoke {
                user: UserId(6),
                token_hash: [0xab; 32],
                others: true,
            },
        ] {
            assert_eq!(UserPush::decode(&push.encode()).unwrap(), push);
        }
        assert!(UserPush::decode(&Bytes::from_static(&[VERSION, 99])).is_err());
        // A revocation whose token hash is not 32 bytes is refused.
        let mut short = BytesMut::new();
        short.put_u8(VERSION);
        short.put_u8(9);
        put_varint(&mut short, 6);
        put_bytes(&mut short, &[1; 31]);
        put_bool(&mut short, false);
        assert!(UserPush::decode(&short.freeze()).is_err());
    }

    #[test]
    fn another_version_is_refused() {
        let mut payload = Forwarded {
            room: RoomId(1),
            what: What::CheckAdmin { user: UserId(1) },
        }
        .encode()
        .to_vec();
        payload[0] = VERSION + 1;
        assert!(Forwarded::decode(&payload).is_err());
        assert!(room_ops(&Bytes::from_static(&[9, 3, 0])).is_err());
    }
}
