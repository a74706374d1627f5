//! The binary `COPY` format for the events staging table
//! (<https://www.postgresql.org/docs/current/sql-copy.html>, "Binary
//! Format"): a fixed header, then per row a 16-bit field count and, per
//! field, a 32-bit byte length and the value in the type's binary send
//! format (big-endian integers, UTF-8 text, raw bytea), then a trailer.
//!
//! Row layout, matching `COPY_INTO_EVENTS` in `batch.rs` (the events
//! table's columns): `room_id int8, seq int8, at int8, actor_id int8,
//! actor_name text, kind int2, body bytea`; for the staging table
//! (`COPY_EVENTS`) the same after an `ord int4`.

use crate::common::to_db;
use crate::{StoreError, StoreResult, StoredEvent};

/// `PGCOPY\n\377\r\n\0`, then 32-bit flags (0: no OIDs) and a 32-bit
/// header-extension length (0).
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// A field count of -1 ends the data.
const TRAILER: [u8; 2] = (-1i16).to_be_bytes();
/// Fields of an events row.
const FIELDS: i16 = 7;

/// Builds one COPY payload from a batch's events.
pub(super) struct EventCopyEncoder {
    buf: Vec<u8>,
    /// Rows start with their position (the staging table's `ord`).
    ord: bool,
}

impl EventCopyEncoder {
    /// An encoder for rows of the staging table (`ord` first) or, without
    /// `ord`, of the events table itself.
    pub(super) fn new(ord: bool) -> EventCopyEncoder {
        let mut buf = Vec::with_capacity(64 * 1024);
        buf.extend_from_slice(HEADER);
        EventCopyEncoder { buf, ord }
    }

    /// Appends one row; `ord` is the event's position among the batch's
    /// events, so the insert from the staging table keeps batch order
    /// (ignored for rows of the events table, which COPY appends in the
    /// order sent).
    pub(super) fn push(&mut self, ord: usize, ev: &StoredEvent) -> StoreResult<()> {
        if self.ord {
            let ord = i32::try_from(ord).map_err(|_| {
                StoreError::database(format!("batch of over {ord} events is too big"))
            })?;
            self.buf.extend_from_slice(&(FIELDS + 1).to_be_bytes());
            self.field(&ord.to_be_bytes())?;
        } else {
            self.buf.extend_from_slice(&FIELDS.to_be_bytes());
        }
        self.field(&to_db(ev.room.0, "room id")?.to_be_bytes())?;
        self.field(&to_db(ev.seq.0, "seq")?.to_be_bytes())?;
        self.field(&to_db(ev.at, "event time")?.to_be_bytes())?;
        self.field(&to_db(ev.actor.0, "actor id")?.to_be_bytes())?;
        self.field(ev.actor_name.as_bytes())?;
        self.field(&i16::from(ev.kind).to_be_bytes())?;
        self.field(&ev.body)
    }

    fn field(&mut self, value: &[u8]) -> StoreResult<()> {
        let len = i32::try_from(value.len())
            .map_err(|_| StoreError::database("a COPY field exceeds 2 GiB".to_owned()))?;
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(value);
        Ok(())
    }

    pub(super) fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&TRAILER);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_protocol::{RoomId, Seq, UserId};

    fn event() -> StoredEvent {
        StoredEvent {
            room: RoomId(1),
            seq: Seq(2),
            at: 3,
            actor: UserId(4),
            actor_name: "é".into(),
            kind: 5,
            body: vec![0, 255],
        }
    }

    #[test]
    fn encodes_header_rows_and_trailer() {
        let mut enc = EventCopyEncoder::new(true);
        enc.push(0, &event()).expect("push");
        let buf = enc.finish();

        let mut want = b"PGCOPY\n\xff\r\n\0".to_vec();
        want.extend([0, 0, 0, 0, 0, 0, 0, 0]); // flags, extension length
        want.extend([0, 8]); // 8 fields
        want.extend([0, 0, 0, 4, 0, 0, 0, 0]); // ord 0
        for v in [1u8, 2, 3, 4] {
            want.extend([0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, v]); // int8
        }
        want.extend([0, 0, 0, 2, 0xc3, 0xa9]); // "é" in UTF-8
        want.extend([0, 0, 0, 2, 0, 5]); // kind int2
        want.extend([0, 0, 0, 2, 0, 255]); // body
        want.extend([0xff, 0xff]); // trailer
        assert_eq!(buf, want);
    }

    #[test]
    fn rows_of_the_events_table_have_no_ord() {
        let mut staged = EventCopyEncoder::new(true);
        staged.push(7, &event()).expect("push");
        let staged = staged.finish();
        let mut direct = EventCopyEncoder::new(false);
        direct.push(7, &event()).expect("push");
        let direct = direct.finish();

        // The same header; then 7 fields instead of 8, without the 8
        // bytes of `ord` (its length and value); the same rest.
        assert_eq!(direct[..19], staged[..19]);
        assert_eq!(direct[19..21], [0, 7]);
        assert_eq!(staged[19..21], [0, 8]);
        assert_eq!(staged[21..29], [0, 0, 0, 4, 0, 0, 0, 7]);
        assert_eq!(direct[21..], staged[29..]);
    }

    #[test]
    fn rejects_ids_beyond_bigint() {
        let mut enc = EventCopyEncoder::new(false);
        let ev = StoredEvent {
            room: RoomId(u64::MAX),
            seq: Seq(1),
            at: 0,
            actor: UserId(1),
            actor_name: String::new(),
            kind: 0,
            body: Vec::new(),
        };
        assert!(enc.push(0, &ev).is_err());
    }
}
