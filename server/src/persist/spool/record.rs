//! One spool record: the frame around it and the archived batch inside.
//!
//! The frame (16 bytes, little-endian) is plain bytes, outside the
//! archive, because rkyv 0.8 archives have no schema evolution and cannot
//! say how long they are or whether they were torn:
//!
//! ```text
//! 0..4    magic      b"CFSR"
//! 4..6    version    u16   archive schema version (RECORD_VERSION)
//! 6..8    flags      u16   0 (reserved)
//! 8..12   length     u32   payload bytes
//! 12..16  checksum   u32   CRC-32C of bytes 4..12 and of the payload
//! 16..    payload    the rkyv archive of a `SpoolBatch` (root at its end)
//! ```
//!
//! The archived types below are the spool's own copy of
//! `confab_store::WriteOp`, with plain integers for ids, roles and
//! visibility. They are frozen for `RECORD_VERSION` 1: any change to them
//! (or to how a `WriteOp` maps onto them) is a new version, and the
//! decoder must keep reading the old one. The conversions match on every
//! variant, so a new `WriteOp` does not compile until it is mapped here.

use confab_protocol::{
    AuditAction, LeaveReason, NotificationKind, Role, RoomId, Seq, UserId, Visibility,
};
use confab_store::{AuditEntry, NotificationRecord, StoredEvent, WriteOp};
use rkyv::rancor;
use rkyv::util::AlignedVec;

pub(super) const RECORD_MAGIC: [u8; 4] = *b"CFSR";
/// The archive schema this build writes. Version 2 appended one variant,
/// `SpoolOp::RewriteEvent`, after all the others and no larger than
/// `AppendEvent`: every other variant archives as in version 1, so a
/// version 1 record is a valid version 2 archive and both are read.
/// Version 3 appended `SpoolOp::SetDirect` the same way (after
/// `RewriteEvent`, smaller than `AppendEvent`), so records of versions 1
/// and 2 are valid version 3 archives. Version 4 appended the file ops
/// (`AttachFiles`, `ReleaseFiles`, `DropMessageFiles`) the same way.
pub(super) const RECORD_VERSION: u16 = 4;
/// The archive schemas this build reads.
const READABLE_VERSIONS: [u16; 4] = [1, 2, 3, 4];
pub(super) const RECORD_HEADER_LEN: usize = 16;
/// A sanity bound on one record's payload, far above any batch (a batch is
/// at most `batch_max_items` ops of at most one frame each): a corrupt
/// length must not make the reader allocate gigabytes.
pub(super) const MAX_PAYLOAD_LEN: u32 = 256 * 1024 * 1024;

static CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// The batch one record holds: the operations of one or more write
/// requests, in order, and where each request's operations end (so that a
/// replay the store refuses can be split per request, as the batch writer
/// does).
#[derive(Debug, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(super) struct SpoolBatch {
    /// Exclusive end index in `ops` of each request, increasing; the last
    /// is `ops.len()`.
    pub ends: Vec<u32>,
    pub ops: Vec<SpoolOp>,
}

/// `confab_store::WriteOp`, version 4 (version 3 without the file ops,
/// version 2 without `SetDirect` either, version 1 without `RewriteEvent`
/// either). Roles: 0 member, 1 admin, 2 owner;
/// visibility: 0 public, 1 private (the wire codes).
#[derive(Debug, PartialEq, rkyv::Archive, rkyv::Serialize, rkyv::Deserialize)]
pub(super) enum SpoolOp {
    CreateRoom {
        room: u64,
        name: String,
        topic: String,
        visibility: u8,
        owner: u64,
        created_at: u64,
    },
    AddMember {
        room: u64,
        user: u64,
        role: u8,
        joined_at: u64,
    },
    RemoveMember {
        room: u64,
        user: u64,
    },
    SetRole {
        room: u64,
        user: u64,
        role: u8,
    },
    AppendEvent {
        room: u64,
        seq: u64,
        at: u64,
        actor: u64,
        actor_name: String,
        kind: u8,
        body: Vec<u8>,
    },
    UpdateRoom {
        room: u64,
        name: String,
        topic: String,
    },
    SetOwner {
        room: u64,
        owner: u64,
    },
    TerminateRoom {
        room: u64,
        at: u64,
    },
    Ban {
        room: u64,
        user: u64,
        by: u64,
        at: u64,
    },
    Unban {
        room: u64,
        user: u64,
    },
    PutInvite {
        room: u64,
        user: u64,
        by: u64,
        at: u64,
    },
    DeleteInvite {
        room: u64,
        user: u64,
    },
    PutJoinRequest {
        room: u64,
        user: u64,
        at: u64,
    },
    DeleteJoinRequest {
        room: u64,
        user: u64,
    },
    AddNotification {
        id: u64,
        user: u64,
        kind: u8,
        room: u64,
        room_name: String,
        actor: u64,
        actor_name: String,
        at: u64,
        read: bool,
    },
    LogJoin {
        user: u64,
        room: u64,
        at: u64,
    },
    LogLeave {
        user: u64,
        room: u64,
        at: u64,
        reason: u8,
    },
    Audit {
        at: u64,
        actor: u64,
        action: String,
        room: Option<u64>,
        target: Option<u64>,
        detail: String,
    },
    /// Version 2. Last, so that every earlier variant keeps its tag.
    RewriteEvent {
        room: u64,
        seq: u64,
        at: u64,
        actor: u64,
        actor_name: String,
        kind: u8,
        body: Vec<u8>,
    },
    /// Version 3. Last, so that every earlier variant keeps its tag.
    SetDirect {
        room: u64,
        low: u64,
        high: u64,
    },
    /// Version 4, like the two after it. Last, so that every earlier
    /// variant keeps its tag.
    AttachFiles {
        room: u64,
        seq: u64,
        files: Vec<u64>,
    },
    ReleaseFiles {
        files: Vec<u64>,
    },
    DropMessageFiles {
        room: u64,
        seq: u64,
    },
}

/// A frame header as read from disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RecordHeader {
    pub version: u16,
    pub flags: u16,
    pub len: u32,
    pub checksum: u32,
}

/// Why bytes are not a valid record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum RecordError {
    #[error("bad record magic")]
    Magic,
    #[error("unsupported record version {0} (this build reads {RECORD_VERSION})")]
    Version(u16),
    #[error("record length {0} exceeds the limit")]
    Length(u32),
    #[error("record checksum mismatch")]
    Checksum,
    #[error("record payload does not decode: {0}")]
    Payload(String),
}

impl RecordHeader {
    pub fn parse(bytes: &[u8; RECORD_HEADER_LEN]) -> Result<RecordHeader, RecordError> {
        if bytes[0..4] != RECORD_MAGIC {
            return Err(RecordError::Magic);
        }
        let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
        let u32_at =
            |i: usize| u32::from_le_bytes([bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]]);
        let header = RecordHeader {
            version: u16_at(4),
            flags: u16_at(6),
            len: u32_at(8),
            checksum: u32_at(12),
        };
        if !READABLE_VERSIONS.contains(&header.version) || header.flags != 0 {
            return Err(RecordError::Version(header.version));
        }
        if header.len > MAX_PAYLOAD_LEN {
            return Err(RecordError::Length(header.len));
        }
        Ok(header)
    }

    /// Total bytes of the record on disk.
    pub fn record_len(&self) -> u64 {
        RECORD_HEADER_LEN as u64 + u64::from(self.len)
    }

    /// Whether `payload` is the one this header was written with.
    pub fn verify(&self, payload: &[u8]) -> Result<(), RecordError> {
        if payload.len() as u64 == u64::from(self.len)
            && checksum(self.version, self.flags, self.len, payload) == self.checksum
        {
            Ok(())
        } else {
            Err(RecordError::Checksum)
        }
    }
}

fn checksum(version: u16, flags: u16, len: u32, payload: &[u8]) -> u32 {
    let mut digest = CRC32C.digest();
    digest.update(&version.to_le_bytes());
    digest.update(&flags.to_le_bytes());
    digest.update(&len.to_le_bytes());
    digest.update(payload);
    digest.finalize()
}

/// The framed record for the requests whose operations are `ops`, each
/// request ending at the matching index of `ends`.
pub(super) fn encode(ops: &[WriteOp], ends: &[usize]) -> Result<Vec<u8>, RecordError> {
    let batch = SpoolBatch {
        ends: ends
            .iter()
            .map(|&e| u32::try_from(e).map_err(|_| RecordError::Length(u32::MAX)))
            .collect::<Result<_, _>>()?,
        ops: ops.iter().map(SpoolOp::from).collect(),
    };
    let payload =
        rkyv::to_bytes::<rancor::Error>(&batch).map_err(|e| RecordError::Payload(e.to_string()))?;
    let len = u32::try_from(payload.len())
        .ok()
        .filter(|&l| l <= MAX_PAYLOAD_LEN)
        .ok_or(RecordError::Length(u32::MAX))?;
    let mut out = Vec::with_capacity(RECORD_HEADER_LEN + payload.len());
    out.extend_from_slice(&RECORD_MAGIC);
    out.extend_from_slice(&RECORD_VERSION.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&checksum(RECORD_VERSION, 0, len, &payload).to_le_bytes());
    out.extend_from_slice(&payload);
    Ok(out)
}

/// The requests of a verified payload: each request's operations, in order.
pub(super) fn decode(payload: &[u8]) -> Result<Vec<Vec<WriteOp>>, RecordError> {
    // rkyv reads archives in place: they must be aligned, and a byte slice
    // read from a file is not.
    let mut aligned = AlignedVec::<16>::with_capacity(payload.len());
    aligned.extend_from_slice(payload);
    let batch = rkyv::from_bytes::<SpoolBatch, rancor::Error>(&aligned)
        .map_err(|e| RecordError::Payload(e.to_string()))?;
    let bad = |why: &str| RecordError::Payload(why.to_owned());
    let mut ops = batch.ops.into_iter();
    let mut start = 0u32;
    let mut requests = Vec::with_capacity(batch.ends.len());
    for end in batch.ends {
        let n = end
            .checked_sub(start)
            .ok_or_else(|| bad("request ends decrease"))?;
        let request = ops
            .by_ref()
            .take(n as usize)
            .map(WriteOp::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        if request.len() != n as usize {
            return Err(bad("request ends beyond the operations"));
        }
        requests.push(request);
        start = end;
    }
    if ops.next().is_some() {
        return Err(bad("operations after the last request"));
    }
    Ok(requests)
}

// The v1 record stores roles, visibilities, notification kinds and leave
// reasons by their wire numbers and audit actions by their names, so these
// conversions are the protocol's own (and frozen with it).

fn role_code(role: Role) -> u8 {
    role.code()
}

fn role_from(code: u8) -> Result<Role, RecordError> {
    Role::from_code(code).ok_or_else(|| RecordError::Payload(format!("unknown role code {code}")))
}

fn visibility_code(v: Visibility) -> u8 {
    v.code()
}

fn visibility_from(code: u8) -> Result<Visibility, RecordError> {
    Visibility::from_code(code)
        .ok_or_else(|| RecordError::Payload(format!("unknown visibility code {code}")))
}

impl From<&WriteOp> for SpoolOp {
    fn from(op: &WriteOp) -> SpoolOp {
        match op {
            WriteOp::CreateRoom {
                room,
                name,
                topic,
                visibility,
                owner,
                created_at,
            } => SpoolOp::CreateRoom {
                room: room.0,
                name: name.clone(),
                topic: topic.clone(),
                visibility: visibility_code(*visibility),
                owner: owner.0,
                created_at: *created_at,
            },
            WriteOp::AddMember {
                room,
                user,
                role,
                joined_at,
            } => SpoolOp::AddMember {
                room: room.0,
                user: user.0,
                role: role_code(*role),
                joined_at: *joined_at,
            },
            WriteOp::RemoveMember { room, user } => SpoolOp::RemoveMember {
                room: room.0,
                user: user.0,
            },
            WriteOp::SetRole { room, user, role } => SpoolOp::SetRole {
                room: room.0,
                user: user.0,
                role: role_code(*role),
            },
            WriteOp::AppendEvent(ev) => SpoolOp::AppendEvent {
                room: ev.room.0,
                seq: ev.seq.0,
                at: ev.at,
                actor: ev.actor.0,
                actor_name: ev.actor_name.clone(),
                kind: ev.kind,
                body: ev.body.clone(),
            },
            WriteOp::RewriteEvent(ev) => SpoolOp::RewriteEvent {
                room: ev.room.0,
                seq: ev.seq.0,
                at: ev.at,
                actor: ev.actor.0,
                actor_name: ev.actor_name.clone(),
                kind: ev.kind,
                body: ev.body.clone(),
            },
            WriteOp::UpdateRoom { room, name, topic } => SpoolOp::UpdateRoom {
                room: room.0,
                name: name.clone(),
                topic: topic.clone(),
            },
            WriteOp::SetOwner { room, owner } => SpoolOp::SetOwner {
                room: room.0,
                owner: owner.0,
            },
            WriteOp::TerminateRoom { room, at } => SpoolOp::TerminateRoom {
                room: room.0,
                at: *at,
            },
            WriteOp::Ban { room, user, by, at } => SpoolOp::Ban {
                room: room.0,
                user: user.0,
                by: by.0,
                at: *at,
            },
            WriteOp::Unban { room, user } => SpoolOp::Unban {
                room: room.0,
                user: user.0,
            },
            WriteOp::PutInvite { room, user, by, at } => SpoolOp::PutInvite {
                room: room.0,
                user: user.0,
                by: by.0,
                at: *at,
            },
            WriteOp::DeleteInvite { room, user } => SpoolOp::DeleteInvite {
                room: room.0,
                user: user.0,
            },
            WriteOp::PutJoinRequest { room, user, at } => SpoolOp::PutJoinRequest {
                room: room.0,
                user: user.0,
                at: *at,
            },
            WriteOp::DeleteJoinRequest { room, user } => SpoolOp::DeleteJoinRequest {
                room: room.0,
                user: user.0,
            },
            WriteOp::AddNotification(n) => SpoolOp::AddNotification {
                id: n.id,
                user: n.user.0,
                kind: n.kind.code(),
                room: n.room.0,
                room_name: n.room_name.clone(),
                actor: n.actor.0,
                actor_name: n.actor_name.clone(),
                at: n.at,
                read: n.read,
            },
            WriteOp::LogJoin { user, room, at } => SpoolOp::LogJoin {
                user: user.0,
                room: room.0,
                at: *at,
            },
            WriteOp::LogLeave {
                user,
                room,
                at,
                reason,
            } => SpoolOp::LogLeave {
                user: user.0,
                room: room.0,
                at: *at,
                reason: reason.code(),
            },
            WriteOp::Audit(a) => SpoolOp::Audit {
                at: a.at,
                actor: a.actor.0,
                action: a.action.as_str().to_owned(),
                room: a.room.map(|r| r.0),
                target: a.target.map(|u| u.0),
                detail: a.detail.clone(),
            },
            WriteOp::SetDirect { room, low, high } => SpoolOp::SetDirect {
                room: room.0,
                low: low.0,
                high: high.0,
            },
            WriteOp::AttachFiles { room, seq, files } => SpoolOp::AttachFiles {
                room: room.0,
                seq: seq.0,
                files: files.clone(),
            },
            WriteOp::ReleaseFiles { files } => SpoolOp::ReleaseFiles {
                files: files.clone(),
            },
            WriteOp::DropMessageFiles { room, seq } => SpoolOp::DropMessageFiles {
                room: room.0,
                seq: seq.0,
            },
        }
    }
}

impl TryFrom<SpoolOp> for WriteOp {
    type Error = RecordError;

    fn try_from(op: SpoolOp) -> Result<WriteOp, RecordError> {
        Ok(match op {
            SpoolOp::CreateRoom {
                room,
                name,
                topic,
                visibility,
                owner,
                created_at,
            } => WriteOp::CreateRoom {
                room: RoomId(room),
                name,
                topic,
                visibility: visibility_from(visibility)?,
                owner: UserId(owner),
                created_at,
            },
            SpoolOp::AddMember {
                room,
                user,
                role,
                joined_at,
            } => WriteOp::AddMember {
                room: RoomId(room),
                user: UserId(user),
                role: role_from(role)?,
                joined_at,
            },
            SpoolOp::RemoveMember { room, user } => WriteOp::RemoveMember {
                room: RoomId(room),
                user: UserId(user),
            },
            SpoolOp::SetRole { room, user, role } => WriteOp::SetRole {
                room: RoomId(room),
                user: UserId(user),
                role: role_from(role)?,
            },
            SpoolOp::AppendEvent {
                room,
                seq,
                at,
                actor,
                actor_name,
                kind,
                body,
            } => WriteOp::AppendEvent(StoredEvent {
                room: RoomId(room),
                seq: Seq(seq),
                at,
                actor: UserId(actor),
                actor_name,
                kind,
                body,
            }),
            SpoolOp::RewriteEvent {
                room,
                seq,
                at,
                actor,
                actor_name,
                kind,
                body,
            } => WriteOp::RewriteEvent(StoredEvent {
                room: RoomId(room),
                seq: Seq(seq),
                at,
                actor: UserId(actor),
                actor_name,
                kind,
                body,
            }),
            SpoolOp::UpdateRoom { room, name, topic } => WriteOp::UpdateRoom {
                room: RoomId(room),
                name,
                topic,
            },
            SpoolOp::SetOwner { room, owner } => WriteOp::SetOwner {
                room: RoomId(room),
                owner: UserId(owner),
            },
            SpoolOp::TerminateRoom { room, at } => WriteOp::TerminateRoom {
                room: RoomId(room),
                at,
            },
            SpoolOp::Ban { room, user, by, at } => WriteOp::Ban {
                room: RoomId(room),
                user: UserId(user),
                by: UserId(by),
                at,
            },
            SpoolOp::Unban { room, user } => WriteOp::Unban {
                room: RoomId(room),
                user: UserId(user),
            },
            SpoolOp::PutInvite { room, user, by, at } => WriteOp::PutInvite {
                room: RoomId(room),
                user: UserId(user),
                by: UserId(by),
                at,
            },
            SpoolOp::DeleteInvite { room, user } => WriteOp::DeleteInvite {
                room: RoomId(room),
                user: UserId(user),
            },
            SpoolOp::PutJoinRequest { room, user, at } => WriteOp::PutJoinRequest {
                room: RoomId(room),
                user: UserId(user),
                at,
            },
            SpoolOp::DeleteJoinRequest { room, user } => WriteOp::DeleteJoinRequest {
                room: RoomId(room),
                user: UserId(user),
            },
            SpoolOp::AddNotification {
                id,
                user,
                kind,
                room,
                room_name,
                actor,
                actor_name,
                at,
                read,
            } => WriteOp::AddNotification(NotificationRecord {
                id,
                user: UserId(user),
                kind: NotificationKind::from_code(kind),
                room: RoomId(room),
                room_name,
                actor: UserId(actor),
                actor_name,
                at,
                read,
            }),
            SpoolOp::LogJoin { user, room, at } => WriteOp::LogJoin {
                user: UserId(user),
                room: RoomId(room),
                at,
            },
            SpoolOp::LogLeave {
                user,
                room,
                at,
                reason,
            } => WriteOp::LogLeave {
                user: UserId(user),
                room: RoomId(room),
                at,
                reason: LeaveReason::from_code(reason),
            },
            SpoolOp::Audit {
                at,
                actor,
                action,
                room,
                target,
                detail,
            } => WriteOp::Audit(AuditEntry {
                at,
                actor: UserId(actor),
                action: AuditAction::from_name(&action).ok_or_else(|| {
                    RecordError::Payload(format!("unknown audit action {action:?}"))
                })?,
                room: room.map(RoomId),
                target: target.map(UserId),
                detail,
            }),
            SpoolOp::SetDirect { room, low, high } => WriteOp::SetDirect {
                room: RoomId(room),
                low: UserId(low),
                high: UserId(high),
            },
            SpoolOp::AttachFiles { room, seq, files } => WriteOp::AttachFiles {
                room: RoomId(room),
                seq: Seq(seq),
                files,
            },
            SpoolOp::ReleaseFiles { files } => WriteOp::ReleaseFiles { files },
            SpoolOp::DropMessageFiles { room, seq } => WriteOp::DropMessageFiles {
                room: RoomId(room),
                seq: Seq(seq),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One op of every kind, with values that use every field.
    pub(crate) fn every_op() -> Vec<WriteOp> {
        let (r, u, v) = (RoomId(7), UserId(3), UserId(4));
        vec![
            WriteOp::CreateRoom {
                room: r,
                name: "général".into(),
                topic: "t".into(),
                visibility: Visibility::Private,
                owner: u,
                created_at: 1,
            },
            WriteOp::AddMember {
                room: r,
                user: v,
                role: Role::Admin,
                joined_at: 2,
            },
            WriteOp::RemoveMember { room: r, user: v },
            WriteOp::SetRole {
                room: r,
                user: u,
                role: Role::Owner,
            },
            WriteOp::AppendEvent(StoredEvent {
                room: r,
                seq: Seq(u64::MAX),
                at: 3,
                actor: u,
                actor_name: "alice".into(),
                kind: 9,
                body: vec![0, 1, 255],
            }),
            WriteOp::UpdateRoom {
                room: r,
                name: "n".into(),
                topic: String::new(),
            },
            WriteOp::SetOwner { room: r, owner: v },
            WriteOp::TerminateRoom { room: r, at: 4 },
            WriteOp::Ban {
                room: r,
                user: v,
                by: u,
                at: 5,
            },
            WriteOp::Unban { room: r, user: v },
            WriteOp::PutInvite {
                room: r,
                user: v,
                by: u,
                at: 6,
            },
            WriteOp::DeleteInvite { room: r, user: v },
            WriteOp::PutJoinRequest {
                room: r,
                user: v,
                at: 7,
            },
            WriteOp::DeleteJoinRequest { room: r, user: v },
            WriteOp::AddNotification(NotificationRecord {
                id: 11,
                user: v,
                kind: NotificationKind::JoinRequest,
                room: r,
                room_name: "n".into(),
                actor: u,
                actor_name: "alice".into(),
                at: 8,
                read: true,
            }),
            WriteOp::LogJoin {
                user: v,
                room: r,
                at: 9,
            },
            WriteOp::LogLeave {
                user: v,
                room: r,
                at: 10,
                reason: LeaveReason::Banned,
            },
            WriteOp::Audit(AuditEntry {
                at: 12,
                actor: u,
                action: AuditAction::MemberBanned,
                room: Some(r),
                target: None,
                detail: "d".into(),
            }),
            WriteOp::RewriteEvent(StoredEvent {
                room: r,
                seq: Seq(2),
                at: 3,
                actor: u,
                actor_name: "alice".into(),
                kind: 12,
                body: Vec::new(),
            }),
            WriteOp::SetDirect {
                room: r,
                low: u,
                high: v,
            },
            WriteOp::AttachFiles {
                room: r,
                seq: Seq(5),
                files: vec![7, 8],
            },
            WriteOp::ReleaseFiles { files: vec![9] },
            WriteOp::DropMessageFiles {
                room: r,
                seq: Seq(5),
            },
        ]
    }

    fn split(record: &[u8]) -> (RecordHeader, &[u8]) {
        let header = RecordHeader::parse(record[..RECORD_HEADER_LEN].try_into().unwrap()).unwrap();
        (header, &record[RECORD_HEADER_LEN..])
    }

    #[test]
    fn every_op_kind_survives_a_round_trip_with_request_boundaries() {
        let ops = every_op();
        let record = encode(&ops, &[1, 5, ops.len()]).unwrap();
        let (header, payload) = split(&record);
        assert_eq!(header.record_len(), record.len() as u64);
        header.verify(payload).unwrap();
        let requests = decode(payload).unwrap();
        assert_eq!(requests.len(), 3);
        assert_eq!(requests[0], ops[..1]);
        assert_eq!(requests[1], ops[1..5]);
        assert_eq!(requests.concat(), ops);
    }

    #[test]
    fn a_flipped_bit_anywhere_after_the_magic_is_detected() {
        let ops = every_op();
        let record = encode(&ops, &[ops.len()]).unwrap();
        for i in 4..record.len() {
            let mut bad = record.clone();
            bad[i] ^= 0x10;
            let header = RecordHeader::parse(bad[..RECORD_HEADER_LEN].try_into().unwrap());
            let caught = match header {
                Err(_) => true,
                Ok(h) => h.verify(&bad[RECORD_HEADER_LEN..]).is_err(),
            };
            assert!(caught, "flip at byte {i} went unnoticed");
        }
    }

    #[test]
    fn unknown_versions_and_absurd_lengths_are_refused_before_reading_the_payload() {
        let mut record = encode(&every_op()[..1], &[1]).unwrap();
        let next = RECORD_VERSION + 1;
        record[4..6].copy_from_slice(&next.to_le_bytes());
        let header: &[u8; RECORD_HEADER_LEN] = record[..RECORD_HEADER_LEN].try_into().unwrap();
        assert_eq!(RecordHeader::parse(header), Err(RecordError::Version(next)));
        let mut record = encode(&every_op()[..1], &[1]).unwrap();
        record[8..12].copy_from_slice(&u32::MAX.to_le_bytes());
        let header: &[u8; RECORD_HEADER_LEN] = record[..RECORD_HEADER_LEN].try_into().unwrap();
        assert_eq!(
            RecordHeader::parse(header),
            Err(RecordError::Length(u32::MAX))
        );
    }

    /// The ops a record of `version` can hold, framed as that version
    /// wrote them: earlier versions are later ones without the variants
    /// appended since, archived alike.
    fn old_record(version: u16) -> (Vec<WriteOp>, Vec<u8>) {
        let ops: Vec<WriteOp> = every_op()
            .into_iter()
            .filter(|op| match op {
                WriteOp::RewriteEvent(_) => version >= 2,
                WriteOp::SetDirect { .. } => version >= 3,
                WriteOp::AttachFiles { .. }
                | WriteOp::ReleaseFiles { .. }
                | WriteOp::DropMessageFiles { .. } => version >= 4,
                _ => true,
            })
            .collect();
        let mut record = encode(&ops, &[ops.len()]).unwrap();
        let len = u32::from_le_bytes(record[8..12].try_into().unwrap());
        record[4..6].copy_from_slice(&version.to_le_bytes());
        let sum = checksum(version, 0, len, &record[RECORD_HEADER_LEN..]);
        record[12..16].copy_from_slice(&sum.to_le_bytes());
        (ops, record)
    }

    #[test]
    fn version_1_2_and_3_records_are_still_read() {
        for version in [1, 2, 3] {
            let (ops, record) = old_record(version);
            let (header, payload) = split(&record);
            assert_eq!(header.version, version);
            header.verify(payload).unwrap();
            assert_eq!(decode(payload).unwrap().concat(), ops, "version {version}");
        }
    }

    #[test]
    fn a_version_2_archive_from_disk_decodes_as_before() {
        let (ops, record) = old_record(2);
        assert_eq!(RECORD_VERSION, 4, "later versions append variants");
        assert!(!ops.iter().any(|op| matches!(op, WriteOp::SetDirect { .. })));
        // The archive of a SetDirect-free batch is the same whether the
        // enum has the variant or not: the variant only adds a tag.
        let (header, payload) = split(&record);
        header.verify(payload).unwrap();
        assert_eq!(decode(payload).unwrap().concat(), ops);
    }

    #[test]
    fn inconsistent_request_ends_are_a_decode_error_not_a_panic() {
        let ops = every_op();
        for ends in [vec![3, 2, 20], vec![21], vec![5]] {
            let record = encode(&ops, &ends).unwrap();
            let (_, payload) = split(&record);
            assert!(decode(payload).is_err(), "{ends:?}");
        }
        // Garbage that passes no validation
        assert!(decode(&[0xAB; 64]).is_err());
    }
}
