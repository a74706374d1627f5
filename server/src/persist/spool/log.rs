//! The spool file: a header, then records appended one after the other
//! (layout in `spool.rs`). Synchronous I/O; `Spool` calls it on the
//! blocking pool while holding its lock, so one caller at a time.
//!
//! Header (32 bytes, little-endian):
//!
//! ```text
//! 0..8    magic       b"CONFABSP"
//! 8..12   version     u32   file format version (FILE_VERSION)
//! 12..16  reserved    u32   0
//! 16..24  replayed    u64   records before this offset are in the store
//! 24..28  checksum    u32   CRC-32C of bytes 0..24
//! 28..32  reserved    u32   0
//! ```
//!
//! Recovery ([`SpoolFile::open`]) walks the records. The first invalid one
//! is a *torn tail* — the append that was in flight when the process or
//! the machine died, never acknowledged — if nothing but it (or zeros)
//! follows: the file is cut there. Anything else is corruption of
//! acknowledged data, and opening fails rather than skip it.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use confab_store::WriteOp;

use super::record::{self, RecordHeader, RECORD_HEADER_LEN};

const FILE_MAGIC: [u8; 8] = *b"CONFABSP";
const FILE_VERSION: u32 = 1;
pub(super) const HEADER_LEN: u64 = 32;
/// The spool's file name inside its directory.
pub(super) const FILE_NAME: &str = "spool.log";

static CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);

/// The file could not be used.
#[derive(Debug, thiserror::Error)]
pub(super) enum LogError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error(
        "{path} is corrupt at byte {offset}: {why}; it may hold acknowledged writes, so \
             confabd will not skip it (move it aside to start without it)"
    )]
    Corrupt {
        path: PathBuf,
        offset: u64,
        why: String,
    },
}

/// What recovery found.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct Recovery {
    /// Records not yet replayed.
    pub pending_records: u64,
    /// Bytes of a torn last append that were cut off.
    pub torn_bytes: u64,
}

/// One record read back for replay.
pub(super) struct ReadRecord {
    /// Offset just past the record (the checkpoint once it is replayed).
    pub end: u64,
    /// Its requests' operations.
    pub requests: Vec<Vec<WriteOp>>,
}

/// An open spool file. `end` and `replayed` mirror what is on disk.
pub(super) struct SpoolFile {
    file: File,
    path: PathBuf,
    /// Just past the last complete, fsync'd record: where the next goes.
    end: u64,
    /// Records before this offset are committed to the store.
    replayed: u64,
}

/// The file header with the checkpoint `replayed`.
pub(super) fn header_bytes(replayed: u64) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[0..8].copy_from_slice(&FILE_MAGIC);
    h[8..12].copy_from_slice(&FILE_VERSION.to_le_bytes());
    h[16..24].copy_from_slice(&replayed.to_le_bytes());
    let crc = CRC32C.checksum(&h[0..24]);
    h[24..28].copy_from_slice(&crc.to_le_bytes());
    h
}

impl SpoolFile {
    /// Opens `dir/spool.log`, creating the directory and the file if
    /// needed, and recovers it (see the module doc).
    pub fn open(dir: &Path) -> Result<(SpoolFile, Recovery), LogError> {
        let path = dir.join(FILE_NAME);
        let io_err = |source| LogError::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(|source| LogError::Io {
            path: dir.to_owned(),
            source,
        })?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        let len = file.metadata().map_err(io_err)?.len();
        let mut spool = SpoolFile {
            file,
            path: path.clone(),
            end: HEADER_LEN,
            replayed: HEADER_LEN,
        };
        if len == 0 {
            // New: the header, then make the file's name (and the
            // directory's, which may be new too) durable.
            spool.write_header(HEADER_LEN).map_err(io_err)?;
            spool.file.sync_all().map_err(io_err)?;
            File::open(dir).and_then(|d| d.sync_all()).map_err(io_err)?;
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                File::open(parent)
                    .and_then(|d| d.sync_all())
                    .map_err(io_err)?;
            }
            return Ok((spool, Recovery::default()));
        }
        let replayed = spool.read_header(len)?;
        let (end, boundaries, torn_bytes) = spool.scan(len)?;
        if torn_bytes > 0 {
            tracing::warn!(
                path = %path.display(),
                offset = end,
                bytes = torn_bytes,
                "spool: cutting off a torn last record (an append that never completed, never acknowledged)"
            );
            spool.file.set_len(end).map_err(io_err)?;
            spool.file.sync_all().map_err(io_err)?;
        }
        spool.end = end;
        // The checkpoint is a record boundary at or before the end. Past the
        // end, a truncation after a complete replay was interrupted: all was
        // replayed. Elsewhere (cannot happen unless the header is damaged in
        // a way its checksum missed), replay everything: replay is idempotent.
        spool.replayed = if replayed >= end {
            end
        } else if boundaries.binary_search(&replayed).is_ok() {
            replayed
        } else {
            HEADER_LEN
        };
        let pending_records = boundaries.iter().filter(|&&b| b > spool.replayed).count() as u64;
        Ok((
            spool,
            Recovery {
                pending_records,
                torn_bytes,
            },
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes of records in the file (replayed or not).
    pub fn record_bytes(&self) -> u64 {
        self.end - HEADER_LEN
    }

    /// Bytes of records not yet replayed.
    pub fn pending_bytes(&self) -> u64 {
        self.end - self.replayed
    }

    /// Just past the last record.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Appends one framed record and makes it durable. On failure the
    /// file is cut back to where it was, best effort (after a failed
    /// fsync the state of unflushed pages is unknown, so nothing of the
    /// record may count as written; the next append overwrites it).
    pub fn append(&mut self, record: &[u8]) -> io::Result<()> {
        let written = self
            .file
            .write_all_at(record, self.end)
            .and_then(|()| self.file.sync_data());
        match written {
            Ok(()) => {
                self.end += record.len() as u64;
                Ok(())
            }
            Err(e) => {
                let _ = self.file.set_len(self.end);
                Err(e)
            }
        }
    }

    /// Reads the records after the checkpoint, stopping after `max_ops`
    /// operations or `max_bytes` bytes (at least one record).
    pub fn read_pending(
        &self,
        max_ops: usize,
        max_bytes: u64,
    ) -> Result<Vec<ReadRecord>, LogError> {
        let mut out = Vec::new();
        let (mut pos, mut ops, mut bytes) = (self.replayed, 0usize, 0u64);
        while pos < self.end && (out.is_empty() || (ops < max_ops && bytes < max_bytes)) {
            let (header, payload) = self.read_record(pos, self.end)?;
            let requests =
                record::decode(&payload).map_err(|e| self.corrupt(pos, e.to_string()))?;
            ops += requests.iter().map(Vec::len).sum::<usize>();
            bytes += header.record_len();
            pos += header.record_len();
            out.push(ReadRecord { end: pos, requests });
        }
        Ok(out)
    }

    /// Records everything before `offset` as replayed (durably: a crash
    /// after this does not replay those records again).
    pub fn checkpoint(&mut self, offset: u64) -> io::Result<()> {
        debug_assert!(offset >= self.replayed && offset <= self.end);
        self.write_header(offset)?;
        self.file.sync_data()?;
        self.replayed = offset;
        Ok(())
    }

    /// Empties the file once every record is replayed. The length goes
    /// first: if the checkpoint reset does not follow (crash), the stale
    /// checkpoint lies past the end, which recovery reads as "all replayed".
    pub fn truncate(&mut self) -> io::Result<()> {
        self.file.set_len(HEADER_LEN)?;
        self.file.sync_all()?;
        self.end = HEADER_LEN;
        self.write_header(HEADER_LEN)?;
        self.file.sync_data()?;
        self.replayed = HEADER_LEN;
        Ok(())
    }

    fn write_header(&self, replayed: u64) -> io::Result<()> {
        self.file.write_all_at(&header_bytes(replayed), 0)
    }

    /// The checkpoint from the header, or the first record if the
    /// checkpoint is unreadable (a torn header write: replay is idempotent).
    fn read_header(&self, len: u64) -> Result<u64, LogError> {
        if len < HEADER_LEN {
            return Err(self.corrupt(0, format!("{len} bytes is shorter than the header")));
        }
        let mut h = [0u8; HEADER_LEN as usize];
        self.file
            .read_exact_at(&mut h, 0)
            .map_err(|source| LogError::Io {
                path: self.path.clone(),
                source,
            })?;
        if h[0..8] != FILE_MAGIC {
            return Err(self.corrupt(0, "not a Confab spool (bad magic)".into()));
        }
        let version = u32::from_le_bytes([h[8], h[9], h[10], h[11]]);
        if version != FILE_VERSION {
            return Err(self.corrupt(8, format!("unsupported spool format version {version}")));
        }
        let crc = u32::from_le_bytes([h[24], h[25], h[26], h[27]]);
        if CRC32C.checksum(&h[0..24]) != crc {
            tracing::warn!(path = %self.path.display(), "spool: checkpoint unreadable, replaying every record");
            return Ok(HEADER_LEN);
        }
        let mut replayed = [0u8; 8];
        replayed.copy_from_slice(&h[16..24]);
        Ok(u64::from_le_bytes(replayed).max(HEADER_LEN))
    }

    /// Walks the records from the header to `len`. Returns the end of the
    /// last valid record, every record boundary (the offsets just past each
    /// record), and how many bytes of torn tail follow.
    fn scan(&self, len: u64) -> Result<(u64, Vec<u64>, u64), LogError> {
        let mut pos = HEADER_LEN;
        let mut boundaries = vec![HEADER_LEN];
        while pos < len {
            match self.read_record(pos, len) {
                Ok((header, _)) => {
                    pos += header.record_len();
                    boundaries.push(pos);
                }
                Err(LogError::Corrupt { why, .. }) => {
                    if self.only_torn_record_or_zeros(pos, len)? {
                        return Ok((pos, boundaries, len - pos));
                    }
                    return Err(self.corrupt(pos, why));
                }
                Err(e) => return Err(e),
            }
        }
        Ok((pos, boundaries, 0))
    }

    /// Whether the bytes from `pos` to `len` can only be an append that
    /// never completed: all zeros (the file grew but the data never made
    /// it), or one record whose frame claims to reach the end of the file
    /// or beyond (its write was cut short).
    fn only_torn_record_or_zeros(&self, pos: u64, len: u64) -> Result<bool, LogError> {
        let mut header = [0u8; RECORD_HEADER_LEN];
        let n = ((len - pos) as usize).min(RECORD_HEADER_LEN);
        self.file
            .read_exact_at(&mut header[..n], pos)
            .map_err(|source| LogError::Io {
                path: self.path.clone(),
                source,
            })?;
        if n < RECORD_HEADER_LEN {
            return Ok(true);
        }
        if let Ok(h) = RecordHeader::parse(&header) {
            if pos + h.record_len() >= len {
                return Ok(true);
            }
        }
        // All zeros to the end?
        let mut buf = vec![0u8; 64 * 1024];
        let mut at = pos;
        while at < len {
            let n = ((len - at) as usize).min(buf.len());
            self.file
                .read_exact_at(&mut buf[..n], at)
                .map_err(|source| LogError::Io {
                    path: self.path.clone(),
                    source,
                })?;
            if buf[..n].iter().any(|&b| b != 0) {
                return Ok(false);
            }
            at += n as u64;
        }
        Ok(true)
    }

    /// The verified record at `pos` (which must end by `limit`).
    fn read_record(&self, pos: u64, limit: u64) -> Result<(RecordHeader, Vec<u8>), LogError> {
        let io_err = |source| LogError::Io {
            path: self.path.clone(),
            source,
        };
        if limit - pos < RECORD_HEADER_LEN as u64 {
            return Err(self.corrupt(pos, "truncated record header".into()));
        }
        let mut raw = [0u8; RECORD_HEADER_LEN];
        self.file.read_exact_at(&mut raw, pos).map_err(io_err)?;
        let header = RecordHeader::parse(&raw).map_err(|e| self.corrupt(pos, e.to_string()))?;
        if pos + header.record_len() > limit {
            return Err(self.corrupt(pos, "record extends past the end of the file".into()));
        }
        let mut payload = vec![0u8; header.len as usize];
        self.file
            .read_exact_at(&mut payload, pos + RECORD_HEADER_LEN as u64)
            .map_err(io_err)?;
        header
            .verify(&payload)
            .map_err(|e| self.corrupt(pos, e.to_string()))?;
        Ok((header, payload))
    }

    fn corrupt(&self, offset: u64, why: String) -> LogError {
        LogError::Corrupt {
            path: self.path.clone(),
            offset,
            why,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::persist::spool::record::encode;
    use confab_protocol::{RoomId, Seq, UserId};
    use confab_store::StoredEvent;

    fn event(seq: u64) -> WriteOp {
        WriteOp::AppendEvent(StoredEvent {
            room: RoomId(1),
            seq: Seq(seq),
            at: seq,
            actor: UserId(1),
            actor_name: "a".into(),
            kind: 1,
            body: vec![seq as u8; 100],
        })
    }

    fn record(seq: u64) -> Vec<u8> {
        encode(&[event(seq)], &[1]).unwrap()
    }

    fn seqs(file: &SpoolFile) -> Vec<u64> {
        file.read_pending(usize::MAX, u64::MAX)
            .unwrap()
            .into_iter()
            .flat_map(|r| r.requests.concat())
            .map(|op| match op {
                WriteOp::AppendEvent(e) => e.seq.0,
                _ => unreachable!(),
            })
            .collect()
    }

    fn file_len(dir: &Path) -> u64 {
        std::fs::metadata(dir.join(FILE_NAME)).unwrap().len()
    }

    fn append_bytes(dir: &Path, bytes: &[u8]) {
        use std::io::Write;
        let mut f = OpenOptions::new()
            .append(true)
            .open(dir.join(FILE_NAME))
            .unwrap();
        f.write_all(bytes).unwrap();
    }

    #[test]
    fn records_survive_reopening_in_order_and_the_checkpoint_skips_replayed_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (mut f, rec) = SpoolFile::open(dir.path()).unwrap();
        assert_eq!(rec, Recovery::default());
        for seq in 1..=3 {
            f.append(&record(seq)).unwrap();
        }
        let first = f.read_pending(1, u64::MAX).unwrap();
        assert_eq!(first.len(), 1);
        f.checkpoint(first[0].end).unwrap();
        drop(f);

        let (f, rec) = SpoolFile::open(dir.path()).unwrap();
        assert_eq!(rec.pending_records, 2);
        assert_eq!(seqs(&f), vec![2, 3]);
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_the_spool_stays_usable() {
        let dir = tempfile::tempdir().unwrap();
        let (mut f, _) = SpoolFile::open(dir.path()).unwrap();
        f.append(&record(1)).unwrap();
        drop(f);
        let good_len = file_len(dir.path());
        // The process died half-way through writing record 2
        let torn = record(2);
        append_bytes(dir.path(), &torn[..torn.len() / 2]);

        let (mut f, rec) = SpoolFile::open(dir.path()).unwrap();
        assert_eq!(rec.torn_bytes, (torn.len() / 2) as u64);
        assert_eq!(file_len(dir.path()), good_len);
        f.append(&record(3)).unwrap();
        assert_eq!(seqs(&f), vec![1, 3]);
    }

    #[test]
    fn a_zero_filled_tail_is_a_torn_append() {
        let dir = tempfile::tempdir().unwrap();
        let (mut f, _) = SpoolFile::open(dir.path()).unwrap();
        f.append(&record(1)).unwrap();
        drop(f);
        append_bytes(dir.path(), &[0u8; 5000]);
        let (f, rec) = SpoolFile::open(dir.path()).unwrap();
        assert_eq!(rec.torn_bytes, 5000);
        assert_eq!(seqs(&f), vec![1]);
    }

    #[test]
    fn corruption_before_the_last_record_refuses_to_open() {
        let dir = tempfile::tempdir().unwrap();
        let (mut f, _) = SpoolFile::open(dir.path()).unwrap();
        for seq in 1..=3 {
            f.append(&record(seq)).unwrap();
        }
        drop(f);
        // A flipped byte inside record 2's payload
        let second = HEADER_LEN + record(1).len() as u64 + 40;
        let file = OpenOptions::new()
            .write(true)
            .open(dir.path().join(FILE_NAME))
            .unwrap();
        file.write_all_at(&[0xFF], second).unwrap();
        let err = SpoolFile::open(dir.path())
            .err()
            .expect("corrupt spool must not open");
        let msg = err.to_string();
        assert!(
            msg.contains("corrupt at byte") && msg.contains("acknowledged"),
            "{msg}"
        );
    }

    #[test]
    fn truncate_empties_the_file_and_an_interrupted_truncate_means_all_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let (mut f, _) = SpoolFile::open(dir.path()).unwrap();
        f.append(&record(1)).unwrap();
        f.append(&record(2)).unwrap();
        let end = f.end;
        f.checkpoint(end).unwrap();
        // Crash between set_len and the header reset: the checkpoint points
        // past the (now empty) end.
        f.file.set_len(HEADER_LEN).unwrap();
        drop(f);
        let (mut f, rec) = SpoolFile::open(dir.path()).unwrap();
        assert_eq!(rec.pending_records, 0);
        assert_eq!(f.pending_bytes(), 0);
        f.append(&record(3)).unwrap();
        assert_eq!(seqs(&f), vec![3]);
        f.truncate().unwrap();
        assert_eq!(file_len(dir.path()), HEADER_LEN);
        assert_eq!((f.record_bytes(), f.pending_bytes()), (0, 0));
    }

    #[test]
    fn a_file_that_is_not_a_spool_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE_NAME),
            b"some other file, long enough for a header",
        )
        .unwrap();
        assert!(SpoolFile::open(dir.path()).is_err());
    }
}
