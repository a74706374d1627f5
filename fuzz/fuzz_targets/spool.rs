//! The write spool's record reader (server/src/persist/spool/): recovery
//! at start-up and the replay's reads, on a real file.
//!
//! Two kinds of input:
//! - *records*: batches of write operations, written as the batch writer
//!   writes them behind a header with a checkpoint, then damaged (cut,
//!   bit flipped, bytes overwritten, garbage appended) or not;
//! - *forged*: such records, one of whose payloads is then changed (bytes
//!   overwritten, cut or extended) and given a valid frame again (length
//!   and CRC-32C), so that the archive decoder behind the checksum sees
//!   damaged archives;
//! - *raw*: any bytes as the file (after a valid header or not).
//!
//! Checked:
//! - reading never panics, and a failure is a clean error naming an
//!   offset inside the file;
//! - what is read is a run of the records written, each exactly as
//!   written, starting at the checkpoint (or at the first record, if the
//!   header was damaged), and it includes every record that lies wholly
//!   before the first damaged byte: damage never loses records before it;
//! - undamaged and merely cut files always open (a cut is a torn append);
//!   an error never points before the first damaged record;
//! - recovery is idempotent: once everything read is checkpointed,
//!   reopening finds nothing pending and nothing torn;
//! - a forged record either fails as a clean error at its own offset, or
//!   decodes to operations that survive encode → decode unchanged, and
//!   the records around it read as written.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use confab_protocol::{
    AuditAction, LeaveReason, NotificationKind, Role, RoomId, Seq, UserId, Visibility,
};
use confab_server::fuzzing::spool::{
    encode_record, file_header, recover_and_replay, Replay, FILE_NAME, HEADER_LEN,
    RECORD_HEADER_LEN,
};
use confab_store::{AuditEntry, NotificationRecord, StoredEvent, WriteOp};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct ArbOp {
    tag: u8,
    a: u64,
    b: u64,
    c: u64,
    s1: String,
    s2: String,
    small: u8,
    flag: bool,
    bytes: Vec<u8>,
}

impl ArbOp {
    fn op(self) -> WriteOp {
        let (room, user, other) = (RoomId(self.a), UserId(self.b), UserId(self.c));
        let role = [Role::Member, Role::Admin, Role::Owner][usize::from(self.small % 3)];
        match self.tag % 22 {
            0 => WriteOp::CreateRoom {
                room,
                name: self.s1,
                topic: self.s2,
                visibility: if self.flag {
                    Visibility::Private
                } else {
                    Visibility::Public
                },
                owner: user,
                created_at: self.c,
            },
            1 => WriteOp::AddMember {
                room,
                user,
                role,
                joined_at: self.c,
            },
            2 => WriteOp::RemoveMember { room, user },
            3 => WriteOp::SetRole { room, user, role },
            4 => WriteOp::AppendEvent(StoredEvent {
                room,
                seq: Seq(self.b),
                at: self.c,
                actor: other,
                actor_name: self.s1,
                kind: self.small,
                body: self.bytes,
            }),
            5 => WriteOp::UpdateRoom {
                room,
                name: self.s1,
                topic: self.s2,
            },
            6 => WriteOp::SetOwner { room, owner: user },
            7 => WriteOp::TerminateRoom { room, at: self.c },
            8 => WriteOp::Ban {
                room,
                user,
                by: other,
                at: self.c,
            },
            9 => WriteOp::Unban { room, user },
            10 => WriteOp::PutInvite {
                room,
                user,
                by: other,
                at: self.c,
            },
            11 => WriteOp::DeleteInvite { room, user },
            12 => WriteOp::PutJoinRequest {
                room,
                user,
                at: self.c,
            },
            13 => WriteOp::DeleteJoinRequest { room, user },
            14 => WriteOp::AddNotification(NotificationRecord {
                id: self.c,
                user,
                kind: NotificationKind::from_code(self.small),
                room,
                room_name: self.s1,
                actor: other,
                actor_name: self.s2,
                at: self.a ^ self.c,
                read: self.flag,
            }),
            15 => WriteOp::LogJoin {
                user,
                room,
                at: self.c,
            },
            16 => WriteOp::LogLeave {
                user,
                room,
                at: self.c,
                reason: LeaveReason::from_code(self.small),
            },
            17 => WriteOp::SetDirect {
                room,
                low: user,
                high: other,
            },
            18 => WriteOp::AttachFiles {
                room,
                seq: Seq(self.b),
                files: self.bytes.iter().map(|&b| u64::from(b) ^ self.c).collect(),
            },
            19 => WriteOp::ReleaseFiles {
                files: self.bytes.iter().map(|&b| u64::from(b) ^ self.a).collect(),
            },
            20 => WriteOp::DropMessageFiles {
                room,
                seq: Seq(self.c),
            },
            _ => WriteOp::Audit(AuditEntry {
                at: self.c,
                actor: user,
                action: AuditAction::ALL[usize::from(self.small) % AuditAction::ALL.len()],
                room: self.flag.then_some(room),
                target: (self.a & 1 == 1).then_some(other),
                detail: self.s1,
            }),
        }
    }
}

#[derive(Arbitrary, Debug)]
struct Batch {
    first: ArbOp,
    more: Vec<ArbOp>,
    /// Where requests end inside the batch (taken modulo its length).
    cuts: Vec<u8>,
}

#[derive(Arbitrary, Debug)]
enum Damage {
    None,
    Truncate(u32),
    Flip { at: u32, bit: u8 },
    Overwrite { at: u32, bytes: Vec<u8> },
    Append(Vec<u8>),
}

/// A change to one record's payload, after which its frame is made valid.
#[derive(Arbitrary, Debug)]
struct Forge {
    record: u8,
    at: u16,
    bytes: Vec<u8>,
    /// Bytes cut from the end (negative) or zeros appended (positive).
    resize: i8,
}

#[derive(Arbitrary, Debug)]
enum Input {
    Records {
        batches: Vec<Batch>,
        /// Records the header's checkpoint says are replayed (modulo the
        /// count plus one).
        checkpoint: u8,
        damage: Damage,
        /// Operations per replay read, less one (modulo 8).
        max_ops: u8,
    },
    Forged {
        batches: Vec<Batch>,
        checkpoint: u8,
        forge: Forge,
        max_ops: u8,
    },
    Raw {
        with_header: bool,
        bytes: Vec<u8>,
        max_ops: u8,
    },
}

/// One directory per process, in memory when /dev/shm exists.
fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let base = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        let dir = base.join(format!("confab-fuzz-spool-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        dir
    })
}

/// Writes `bytes` as the spool file and replays it.
fn replay(bytes: &[u8], max_ops: u8) -> Result<Replay, confab_server::fuzzing::spool::ReadError> {
    let path = dir().join(FILE_NAME);
    std::fs::write(&path, bytes).expect("writing the spool file");
    recover_and_replay(dir(), 1 + usize::from(max_ops % 8))
}

/// Reopening after a full replay finds nothing to do.
fn assert_idempotent(len_after: u64) {
    let again = recover_and_replay(dir(), usize::MAX).expect("a recovered spool reopens");
    assert_eq!(
        again.pending_records, 0,
        "pending records after a full replay"
    );
    assert_eq!(again.torn_bytes, 0, "torn bytes after recovery");
    assert!(again.records.is_empty());
    assert_eq!(again.end, len_after);
}

fn check_raw(with_header: bool, raw: &[u8], max_ops: u8) {
    let mut bytes = Vec::new();
    if with_header {
        bytes.extend_from_slice(&file_header(HEADER_LEN));
    }
    bytes.extend_from_slice(raw);
    match replay(&bytes, max_ops) {
        Ok(r) => {
            assert!(r.end <= (bytes.len() as u64).max(HEADER_LEN));
            let mut last = HEADER_LEN;
            for (end, _) in &r.records {
                assert!(*end > last && *end <= r.end, "record ends out of order");
                last = *end;
            }
            assert_eq!(r.pending_records, r.records.len() as u64);
            assert_idempotent(r.end);
        }
        Err(e) => {
            let offset = e
                .offset
                .unwrap_or_else(|| panic!("an I/O error: {}", e.message));
            assert!(
                offset < bytes.len() as u64,
                "error past the end: {}",
                e.message
            );
        }
    }
}

/// Records as the batch writer writes them.
struct Written {
    /// Each record's requests.
    requests: Vec<Vec<Vec<WriteOp>>>,
    /// Each record's bytes.
    records: Vec<Vec<u8>>,
}

fn write_batches(batches: Vec<Batch>) -> Written {
    let mut written = Written {
        requests: Vec::new(),
        records: Vec::new(),
    };
    for batch in batches.into_iter().take(8) {
        let ops: Vec<WriteOp> = std::iter::once(batch.first)
            .chain(batch.more)
            .take(16)
            .map(ArbOp::op)
            .collect();
        let mut cut: Vec<usize> = batch
            .cuts
            .iter()
            .map(|&c| 1 + usize::from(c) % ops.len())
            .collect();
        cut.push(ops.len());
        cut.sort_unstable();
        cut.dedup();
        let record = encode_record(&ops, &cut).expect("a batch encodes");
        let mut requests = Vec::new();
        let mut from = 0;
        for &to in &cut {
            requests.push(ops[from..to].to_vec());
            from = to;
        }
        written.requests.push(requests);
        written.records.push(record);
    }
    written
}

/// Where each record starts and ends in a file of `records`.
fn layout(records: &[Vec<u8>]) -> (Vec<u64>, Vec<u64>) {
    let (mut starts, mut ends) = (Vec::new(), Vec::new());
    let mut at = HEADER_LEN;
    for r in records {
        starts.push(at);
        at += r.len() as u64;
        ends.push(at);
    }
    (starts, ends)
}

/// The request boundaries of `requests`, as the batch writer gives them.
fn boundaries(requests: &[Vec<WriteOp>]) -> Vec<usize> {
    requests
        .iter()
        .scan(0, |end, r| {
            *end += r.len();
            Some(*end)
        })
        .collect()
}

fn check_forged(batches: Vec<Batch>, checkpoint: u8, forge: Forge, max_ops: u8) {
    let Written {
        requests,
        mut records,
    } = write_batches(batches);
    if records.is_empty() {
        return;
    }
    let n = records.len();
    let k = usize::from(forge.record) % n;
    // The payload, changed, in a valid frame.
    let mut payload = records[k][RECORD_HEADER_LEN..].to_vec();
    let at = usize::from(forge.at) % (payload.len() + 1);
    for (i, b) in forge.bytes.iter().take(32).enumerate() {
        if let Some(slot) = payload.get_mut(at + i) {
            *slot = *b;
        }
    }
    let resize = isize::from(forge.resize);
    if resize < 0 {
        payload.truncate(payload.len().saturating_sub(resize.unsigned_abs()));
    } else {
        payload.resize(payload.len() + resize as usize, 0);
    }
    let forged = frame(&payload);
    let unchanged = forged == records[k];
    records[k] = forged;
    let (starts, ends) = layout(&records);
    let done = usize::from(checkpoint) % (n + 1);
    let mut bytes = file_header(if done == 0 {
        HEADER_LEN
    } else {
        ends[done - 1]
    })
    .to_vec();
    for r in &records {
        bytes.extend_from_slice(r);
    }
    match replay(&bytes, max_ops) {
        Ok(r) => {
            // First, while the file is this one (the round trip below
            // writes another).
            assert_idempotent(r.end);
            let from = done.min(n);
            assert_eq!(r.records.len(), n - from, "a forged record was skipped");
            for (i, (end, got)) in r.records.iter().enumerate() {
                let j = from + i;
                assert_eq!(*end, ends[j]);
                if j != k || unchanged {
                    assert_eq!(got, &requests[j], "record {j} differs");
                } else {
                    // What decoded must survive encode → decode.
                    let ops: Vec<WriteOp> = got.concat();
                    let again = encode_record(&ops, &boundaries(got)).expect("it encodes");
                    let mut file = file_header(HEADER_LEN).to_vec();
                    file.extend_from_slice(&again);
                    let back = replay(&file, 7).expect("a re-encoded record reads");
                    assert_eq!(back.records.len(), 1);
                    assert_eq!(&back.records[0].1, got, "decode → encode → decode differs");
                }
            }
        }
        Err(e) => {
            assert!(!unchanged, "an intact spool failed: {}", e.message);
            // Scanning checks frames only; the archive fails when read.
            let offset = e
                .offset
                .unwrap_or_else(|| panic!("an I/O error: {}", e.message));
            assert_eq!(
                offset, starts[k],
                "the error is not at the forged record: {}",
                e.message
            );
        }
    }
}

/// A record frame (server/src/persist/spool/record.rs) around `payload`.
fn frame(payload: &[u8]) -> Vec<u8> {
    static CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
    let len = payload.len() as u32;
    let mut digest = CRC32C.digest();
    digest.update(&1u16.to_le_bytes());
    digest.update(&0u16.to_le_bytes());
    digest.update(&len.to_le_bytes());
    digest.update(payload);
    let mut out = b"CFSR".to_vec();
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&digest.finalize().to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn check_records(batches: Vec<Batch>, checkpoint: u8, damage: Damage, max_ops: u8) {
    let Written {
        requests: written,
        records,
    } = write_batches(batches);
    let (starts, ends) = layout(&records);
    let body = records.concat();
    let n = written.len();
    let done = usize::from(checkpoint) % (n + 1);
    let checkpoint_at = if done == 0 {
        HEADER_LEN
    } else {
        ends[done - 1]
    };
    let mut original = file_header(checkpoint_at).to_vec();
    original.extend_from_slice(&body);

    let mut bytes = original.clone();
    let mut cut_to = None;
    match damage {
        Damage::None => {}
        Damage::Truncate(t) => {
            let t = t as usize % (bytes.len() + 1);
            bytes.truncate(t);
            cut_to = Some(t as u64);
        }
        Damage::Flip { at, bit } => {
            let at = at as usize % bytes.len();
            bytes[at] ^= 1 << (bit % 8);
        }
        Damage::Overwrite { at, bytes: with } => {
            let at = at as usize % bytes.len();
            for (i, b) in with.into_iter().take(64).enumerate() {
                if let Some(slot) = bytes.get_mut(at + i) {
                    *slot = b;
                }
            }
        }
        Damage::Append(more) => bytes.extend(more.into_iter().take(256)),
    }
    // The first damaged byte: the first that differs, or where the file was
    // cut, or where garbage begins.
    let damaged = original
        .iter()
        .zip(&bytes)
        .position(|(a, b)| a != b)
        .map_or(original.len().min(bytes.len()), |p| p) as u64;
    let only_cut_or_intact = damaged >= original.len() as u64 || cut_to.is_some();
    // Records wholly before the damage; the record the damage is in.
    let intact = ends.iter().filter(|&&e| e <= damaged).count();
    let header_damaged = damaged < HEADER_LEN;

    match replay(&bytes, max_ops) {
        Ok(r) => {
            // Where the read began: the checkpoint, or the first record if
            // the damaged header's checksum failed.
            let from = match r.records.first() {
                Some((end, _)) => ends
                    .iter()
                    .position(|e| e == end)
                    .expect("a record boundary"),
                None => done,
            };
            if !header_damaged {
                assert!(
                    from == done || r.records.is_empty(),
                    "read began at {from}, not {done}"
                );
            } else {
                assert!(from == done || from == 0, "read began at {from}");
            }
            for (i, (end, requests)) in r.records.iter().enumerate() {
                let k = from + i;
                assert!(k < n, "more records than were written");
                assert_eq!(*end, ends[k], "record {k} ends elsewhere");
                assert_eq!(requests, &written[k], "record {k} differs");
            }
            let read_to = from + r.records.len();
            if !header_damaged && done < intact {
                assert!(
                    read_to >= intact,
                    "records {read_to}..{intact} lay before the damage at {damaged} and were lost"
                );
            }
            if damaged >= original.len() as u64 && cut_to.is_none() && bytes.len() == original.len()
            {
                assert_eq!(r.torn_bytes, 0);
                assert_eq!(read_to, n);
            }
            if let Some(t) = cut_to.filter(|&t| t >= HEADER_LEN) {
                // A cut file keeps exactly the records before the cut.
                let kept = ends.iter().filter(|&&e| e <= t).count();
                let kept_end = if kept == 0 {
                    HEADER_LEN
                } else {
                    ends[kept - 1]
                };
                assert_eq!(r.torn_bytes, t - kept_end);
                assert_eq!(r.end, kept_end);
                assert_eq!(read_to, kept.max(done));
            }
            assert_eq!(r.pending_records, r.records.len() as u64);
            assert_idempotent(r.end);
        }
        Err(e) => {
            let offset = e
                .offset
                .unwrap_or_else(|| panic!("an I/O error: {}", e.message));
            assert!(
                offset < bytes.len() as u64,
                "error past the end: {}",
                e.message
            );
            if let Some(t) = cut_to {
                assert!(
                    t < HEADER_LEN && t > 0,
                    "a file cut at {t} must open: {}",
                    e.message
                );
            } else {
                assert!(
                    !only_cut_or_intact || bytes.len() > original.len(),
                    "{}",
                    e.message
                );
            }
            if !header_damaged {
                // Errors name the damaged record or a later one.
                let first_damaged = starts.get(intact).copied().unwrap_or(original.len() as u64);
                assert!(
                    offset >= first_damaged,
                    "error at {offset}, before the damage at {damaged}: {}",
                    e.message
                );
            }
        }
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::Forged {
            batches,
            checkpoint,
            forge,
            max_ops,
        } => check_forged(batches, checkpoint, forge, max_ops),
        Input::Raw {
            with_header,
            bytes,
            max_ops,
        } => check_raw(with_header, &bytes, max_ops),
        Input::Records {
            batches,
            checkpoint,
            damage,
            max_ops,
        } => check_records(batches, checkpoint, damage, max_ops),
    }
    let _ = std::fs::remove_file(dir().join(FILE_NAME));
});
