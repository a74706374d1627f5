//! Files attached to messages (SPEC.md §13.5): what SEND_MESSAGE names
//! (file ids) and what a MESSAGE carries (each file's description, so a
//! client shows a name, a size and an image's box without asking).

use bytes::BytesMut;

use crate::error::ErrorCode;
use crate::rich::Refusal;
use crate::wire::{put_nested, put_str, put_varint, Reader};
use crate::DecodeError;

/// At most this many files in one message.
pub const MAX_ATTACHMENTS: usize = 10;

/// A file a message carries, as uploaded (SPEC.md §13.1): enough to show
/// it; its bytes are fetched over HTTP by `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    /// The file id (`GET /api/files/{id}`).
    pub id: u64,
    /// The name it was uploaded under.
    pub name: String,
    /// Its stored type (one of the allowlist of §13.1).
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// An image's size in pixels, from its header; `None` otherwise.
    pub width: Option<u32>,
    pub height: Option<u32>,
}

impl Attachment {
    /// Whether browsers may show it inline (one of the four image types).
    pub fn is_image(&self) -> bool {
        matches!(
            self.content_type.as_str(),
            "image/png" | "image/jpeg" | "image/gif" | "image/webp"
        )
    }

    /// As a nested item: id, name, content type, size; then, appended,
    /// width and height, written for an image only (0 stands for none
    /// when a later field follows).
    pub fn encode(&self, buf: &mut BytesMut) {
        put_nested(buf, |b| {
            put_varint(b, self.id);
            put_str(b, &self.name);
            put_str(b, &self.content_type);
            put_varint(b, self.size);
            if self.width.is_some() || self.height.is_some() {
                put_varint(b, self.width.map_or(0, u64::from));
            }
            if let Some(h) = self.height {
                put_varint(b, u64::from(h));
            }
        });
    }

    pub fn decode(r: &mut Reader<'_>) -> Result<Attachment, DecodeError> {
        let mut r = r.nested()?;
        let side = |r: &mut Reader<'_>| -> Result<Option<u32>, DecodeError> {
            if r.remaining() == 0 {
                return Ok(None);
            }
            Ok(Some(r.varint_u32()?).filter(|&v| v != 0))
        };
        Ok(Attachment {
            id: r.varint()?,
            name: r.str()?,
            content_type: r.str()?,
            size: r.varint()?,
            width: side(&mut r)?,
            height: side(&mut r)?,
        })
    }
}

/// Writes a list of attachments (each nested).
pub fn put_attachments(buf: &mut BytesMut, files: &[Attachment]) {
    put_varint(buf, files.len() as u64);
    for f in files {
        f.encode(buf);
    }
}

/// Reads an appended list of attachments: absent means none.
pub(crate) fn get_appended_attachments(r: &mut Reader<'_>) -> Result<Vec<Attachment>, DecodeError> {
    if r.remaining() == 0 {
        return Ok(Vec::new());
    }
    crate::reply::list(r, Attachment::decode)
}

/// Writes a list of file ids.
pub(crate) fn put_file_ids(buf: &mut BytesMut, ids: &[u64]) {
    put_varint(buf, ids.len() as u64);
    for &id in ids {
        put_varint(buf, id);
    }
}

/// Reads an appended list of file ids: absent means none.
pub(crate) fn get_appended_file_ids(r: &mut Reader<'_>) -> Result<Vec<u64>, DecodeError> {
    if r.remaining() == 0 {
        return Ok(Vec::new());
    }
    crate::reply::list(r, |r| r.varint())
}

/// Writes an appended sticker id that later fields follow: the empty
/// string stands for "not a sticker" (no sticker id is empty).
pub(crate) fn put_sticker_before_more(buf: &mut BytesMut, sticker: Option<&str>) {
    put_str(buf, sticker.unwrap_or(""));
}

/// Reads an appended sticker id: absent, or empty, means none.
pub(crate) fn get_appended_sticker(r: &mut Reader<'_>) -> Result<Option<String>, DecodeError> {
    if r.remaining() == 0 {
        return Ok(None);
    }
    Ok(Some(r.str()?).filter(|id| !id.is_empty()))
}

/// Checks the file ids of a SEND_MESSAGE (SPEC.md §13.5), before anyone
/// looks them up: at most [`MAX_ATTACHMENTS`], none named twice
/// (`INVALID_ATTACHMENTS`, 416), and none with a sticker
/// (`STICKER_MESSAGE`, 411).
pub fn check_file_ids(ids: &[u64], sticker: bool) -> Result<(), Refusal> {
    if ids.is_empty() {
        return Ok(());
    }
    if sticker {
        return Err(Refusal {
            code: ErrorCode::StickerMessage,
            message: "a sticker message carries no attachments".to_owned(),
        });
    }
    if ids.len() > MAX_ATTACHMENTS {
        return Err(Refusal {
            code: ErrorCode::InvalidAttachments,
            message: format!(
                "{} attachments: a message carries at most {MAX_ATTACHMENTS}",
                ids.len()
            ),
        });
    }
    for (i, id) in ids.iter().enumerate() {
        if ids[..i].contains(id) {
            return Err(Refusal {
                code: ErrorCode::InvalidAttachments,
                message: format!("file {id} is attached twice"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;

    fn code(ids: &[u64], sticker: bool) -> Option<ErrorCode> {
        check_file_ids(ids, sticker).err().map(|r| r.code)
    }

    #[test]
    fn file_ids_are_checked_for_count_duplicates_and_stickers() {
        assert_eq!(code(&[], true), None);
        assert_eq!(code(&[1, 2, 3], false), None);
        let ten: Vec<u64> = (1..=10).collect();
        assert_eq!(code(&ten, false), None);
        let eleven: Vec<u64> = (1..=11).collect();
        assert_eq!(code(&eleven, false), Some(ErrorCode::InvalidAttachments));
        assert_eq!(code(&[4, 5, 4], false), Some(ErrorCode::InvalidAttachments));
        assert_eq!(code(&[4], true), Some(ErrorCode::StickerMessage));
    }

    #[test]
    fn an_attachment_round_trips_and_zero_sides_read_as_none() {
        let file = Attachment {
            id: 300,
            name: "plan ü.pdf".into(),
            content_type: "application/pdf".into(),
            size: 70_000,
            width: None,
            height: None,
        };
        let mut buf = BytesMut::new();
        put_attachments(&mut buf, std::slice::from_ref(&file));
        let got = get_appended_attachments(&mut Reader::new(&buf)).unwrap();
        assert_eq!(got, vec![file]);
        assert!(!got[0].is_image());
    }

    #[test]
    fn a_nested_attachment_skips_fields_a_later_version_appends() {
        let mut buf = BytesMut::new();
        put_varint(&mut buf, 1);
        put_nested(&mut buf, |b| {
            put_varint(b, 7);
            put_str(b, "a.png");
            put_str(b, "image/png");
            put_varint(b, 10);
            put_varint(b, 2);
            put_varint(b, 3);
            b.put_u8(0xAB); // a field of a later version
        });
        let got = get_appended_attachments(&mut Reader::new(&buf)).unwrap();
        assert_eq!(got[0].id, 7);
        assert_eq!((got[0].width, got[0].height), (Some(2), Some(3)));
        assert!(got[0].is_image());
    }
}
