//! Primitive encodings shared by every payload (SPEC.md §3).
//!
//! Integers are unsigned LEB128 varints, strings are a varint byte length
//! followed by UTF-8, booleans are one byte (0 or 1), optional values are a
//! presence byte followed by the value. The reader never panics: every
//! shortfall or invalid value becomes a [`DecodeError`].

use bytes::{BufMut, Bytes, BytesMut};

use crate::DecodeError;

/// The longest varint we accept: ten bytes hold any `u64`.
const MAX_VARINT_LEN: usize = 10;

/// Appends `v` as an unsigned LEB128 varint.
#[inline]
pub fn put_varint(buf: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Number of bytes `put_varint(v)` writes.
#[inline]
pub fn varint_len(v: u64) -> usize {
    let bits = 64 - (v | 1).leading_zeros() as usize;
    bits.div_ceil(7)
}

#[inline]
pub fn put_str(buf: &mut BytesMut, s: &str) {
    put_varint(buf, s.len() as u64);
    buf.put_slice(s.as_bytes());
}

#[inline]
pub fn put_bool(buf: &mut BytesMut, b: bool) {
    buf.put_u8(b as u8);
}

pub fn put_opt_str(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        None => buf.put_u8(0),
        Some(s) => {
            buf.put_u8(1);
            put_str(buf, s);
        }
    }
}

/// A cursor over one frame's payload.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    /// Bytes not yet consumed. Trailing bytes after the fields a decoder knows
    /// are ignored (SPEC.md §11, forward compatibility).
    pub fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(DecodeError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }

    pub fn varint(&mut self) -> Result<u64, DecodeError> {
        let mut value: u64 = 0;
        for i in 0..MAX_VARINT_LEN {
            let b = self.u8()?;
            let low = (b & 0x7f) as u64;
            if i == MAX_VARINT_LEN - 1 && low > 1 {
                return Err(DecodeError::VarintOverflow);
            }
            value |= low << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(DecodeError::VarintOverflow)
    }

    pub fn varint_u32(&mut self) -> Result<u32, DecodeError> {
        u32::try_from(self.varint()?).map_err(|_| DecodeError::VarintOverflow)
    }

    pub fn varint_u16(&mut self) -> Result<u16, DecodeError> {
        u16::try_from(self.varint()?).map_err(|_| DecodeError::VarintOverflow)
    }

    pub fn bytes(&mut self, len: usize) -> Result<&'a [u8], DecodeError> {
        if self.remaining() < len {
            return Err(DecodeError::Truncated);
        }
        let out = &self.buf[self.pos..self.pos + len];
        self.pos += len;
        Ok(out)
    }

    pub fn str(&mut self) -> Result<String, DecodeError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| DecodeError::Truncated)?;
        let raw = self.bytes(len)?;
        std::str::from_utf8(raw)
            .map(str::to_owned)
            .map_err(|_| DecodeError::InvalidUtf8)
    }

    pub fn bool(&mut self) -> Result<bool, DecodeError> {
        match self.u8()? {
            0 => Ok(false),
            1 => Ok(true),
            v => Err(DecodeError::InvalidValue {
                field: "bool",
                value: v as u64,
            }),
        }
    }

    pub fn opt_str(&mut self) -> Result<Option<String>, DecodeError> {
        Ok(if self.bool()? {
            Some(self.str()?)
        } else {
            None
        })
    }

    /// A list's element count, bounded by the bytes left so that a forged
    /// count cannot make the decoder reserve huge amounts of memory.
    pub fn count(&mut self) -> Result<usize, DecodeError> {
        let n = self.varint()?;
        if n > self.remaining() as u64 {
            return Err(DecodeError::Truncated);
        }
        Ok(n as usize)
    }

    /// A length-delimited nested item (used for list elements that newer
    /// versions may extend).
    pub fn nested(&mut self) -> Result<Reader<'a>, DecodeError> {
        let len = usize::try_from(self.varint()?).map_err(|_| DecodeError::Truncated)?;
        Ok(Reader::new(self.bytes(len)?))
    }
}

/// Writes a length-delimited nested item: reserves the body, then prefixes
/// its length. `f` writes the body.
pub fn put_nested(buf: &mut BytesMut, f: impl FnOnce(&mut BytesMut)) {
    let mut inner = BytesMut::new();
    f(&mut inner);
    put_varint(buf, inner.len() as u64);
    buf.extend_from_slice(&inner);
}

/// Convenience for tests and tools: a frozen copy of a writer's output.
pub fn freeze(buf: BytesMut) -> Bytes {
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_lengths_match_encoding() {
        for v in [0u64, 1, 127, 128, 16_383, 16_384, u32::MAX as u64, u64::MAX] {
            let mut b = BytesMut::new();
            put_varint(&mut b, v);
            assert_eq!(b.len(), varint_len(v), "length of {v}");
            assert_eq!(Reader::new(&b).varint().unwrap(), v);
        }
    }

    #[test]
    fn overlong_varint_is_rejected() {
        let bytes = [0xffu8; 11];
        assert_eq!(
            Reader::new(&bytes).varint(),
            Err(DecodeError::VarintOverflow)
        );
        // Ten bytes whose last carries more than the one bit u64 has left.
        let mut ten = [0xffu8; 10];
        ten[9] = 0x02;
        assert_eq!(Reader::new(&ten).varint(), Err(DecodeError::VarintOverflow));
    }

    #[test]
    fn forged_list_count_is_rejected_without_allocation() {
        let mut b = BytesMut::new();
        put_varint(&mut b, u64::MAX / 2);
        assert_eq!(Reader::new(&b).count(), Err(DecodeError::Truncated));
    }
}
