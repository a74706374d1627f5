//! Thin wrappers over the spool file and record format for
//! [`crate::fuzzing`]: the real recovery and replay reads, no copy of them.

use std::path::Path;

use confab_store::WriteOp;

use super::log::{self, LogError, SpoolFile};
use super::record;

/// Bytes of the file header.
pub const HEADER_LEN: u64 = log::HEADER_LEN;
/// Bytes of a record's frame (before its payload).
pub const RECORD_HEADER_LEN: usize = record::RECORD_HEADER_LEN;
/// The spool's file name inside its directory.
pub const FILE_NAME: &str = log::FILE_NAME;

/// A valid file header whose checkpoint is `replayed`.
pub fn file_header(replayed: u64) -> [u8; HEADER_LEN as usize] {
    log::header_bytes(replayed)
}

/// The framed record the batch writer would append for `ops` (`ends`:
/// where each request's operations end).
pub fn encode_record(ops: &[WriteOp], ends: &[usize]) -> Result<Vec<u8>, String> {
    record::encode(ops, ends).map_err(|e| e.to_string())
}

/// Why the spool could not be recovered or read.
#[derive(Debug)]
pub struct ReadError {
    /// Where the corruption is; `None` for an I/O error.
    pub offset: Option<u64>,
    pub message: String,
}

impl From<LogError> for ReadError {
    fn from(e: LogError) -> ReadError {
        let offset = match &e {
            LogError::Corrupt { offset, .. } => Some(*offset),
            LogError::Io { .. } => None,
        };
        ReadError {
            offset,
            message: e.to_string(),
        }
    }
}

/// What recovery found and what the replay read.
#[derive(Debug)]
pub struct Replay {
    /// Records recovery counted as not yet replayed.
    pub pending_records: u64,
    /// Bytes of a torn tail that recovery cut off.
    pub torn_bytes: u64,
    /// Each record read, in order: the offset just past it and its
    /// requests' operations.
    pub records: Vec<(u64, Vec<Vec<WriteOp>>)>,
    /// The file's length after recovery.
    pub end: u64,
}

/// Opens (recovers) the spool in `dir` as start-up does, then reads every
/// pending record as the replay task does — at most `max_ops` operations
/// per read, with a checkpoint after each read — but without truncating
/// the file at the end. The first error ends it.
pub fn recover_and_replay(dir: &Path, max_ops: usize) -> Result<Replay, ReadError> {
    let (mut file, recovery) = SpoolFile::open(dir)?;
    let mut records = Vec::new();
    while file.pending_bytes() > 0 {
        let read = file.read_pending(max_ops, u64::MAX)?;
        let Some(last) = read.last() else {
            return Err(ReadError {
                offset: None,
                message: "read_pending returned nothing with bytes pending".into(),
            });
        };
        file.checkpoint(last.end).map_err(|e| ReadError {
            offset: None,
            message: e.to_string(),
        })?;
        records.extend(read.into_iter().map(|r| (r.end, r.requests)));
    }
    Ok(Replay {
        pending_records: recovery.pending_records,
        torn_bytes: recovery.torn_bytes,
        records,
        end: file.end(),
    })
}
