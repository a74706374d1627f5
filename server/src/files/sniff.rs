//! What a file really is, from its leading bytes: the content-type
//! allowlist, each type's signature (magic number), and an image's size
//! in pixels from its own header (PNG IHDR, GIF logical screen, JPEG SOFn,
//! WebP VP8/VP8L/VP8X). Pure functions over bytes; no image library.
//!
//! Plain text has no signature: it is text when the whole file is UTF-8
//! without NUL, which [`TextCheck`] decides chunk by chunk as the upload
//! streams in.

/// An allowlisted type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Png,
    Jpeg,
    Gif,
    Webp,
    Pdf,
    Zip,
    Text,
}

impl Kind {
    /// Every allowlisted type.
    pub const ALL: [Kind; 7] = [
        Kind::Png,
        Kind::Jpeg,
        Kind::Gif,
        Kind::Webp,
        Kind::Pdf,
        Kind::Zip,
        Kind::Text,
    ];

    /// The type's media type (its essence, as uploads declare it).
    pub fn essence(self) -> &'static str {
        match self {
            Kind::Png => "image/png",
            Kind::Jpeg => "image/jpeg",
            Kind::Gif => "image/gif",
            Kind::Webp => "image/webp",
            Kind::Pdf => "application/pdf",
            Kind::Zip => "application/zip",
            Kind::Text => "text/plain",
        }
    }

    /// The Content-Type it is stored and served with.
    pub fn content_type(self) -> &'static str {
        match self {
            Kind::Text => "text/plain; charset=utf-8",
            other => other.essence(),
        }
    }

    /// Images a browser may show inline (served without `attachment`).
    pub fn is_image(self) -> bool {
        matches!(self, Kind::Png | Kind::Jpeg | Kind::Gif | Kind::Webp)
    }

    /// The allowlisted type a declared Content-Type names (parameters and
    /// case ignored; `image/jpg` is read as `image/jpeg`), if any.
    pub fn declared(content_type: &str) -> Option<Kind> {
        let essence = content_type.split(';').next()?.trim().to_ascii_lowercase();
        let essence = if essence == "image/jpg" {
            "image/jpeg"
        } else {
            essence.as_str()
        };
        Kind::ALL.into_iter().find(|k| k.essence() == essence)
    }

    /// Whether `head`, the file's first bytes, carries this type's
    /// signature. (Text is checked over the whole file by [`TextCheck`].)
    pub fn signed_by(self, head: &[u8]) -> bool {
        match self {
            Kind::Png => head.starts_with(b"\x89PNG\r\n\x1a\n"),
            Kind::Jpeg => head.starts_with(&[0xFF, 0xD8, 0xFF]),
            Kind::Gif => head.starts_with(b"GIF87a") || head.starts_with(b"GIF89a"),
            Kind::Webp => head.len() >= 12 && &head[..4] == b"RIFF" && &head[8..12] == b"WEBP",
            Kind::Pdf => head.starts_with(b"%PDF-"),
            // A local file header, or the end record of an empty archive.
            Kind::Zip => head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06"),
            Kind::Text => true,
        }
    }
}

/// An image's width and height in pixels, from its header in `head`;
/// `None` when the header is not there or is malformed (the upload is
/// then not the image it claims to be). Not an image: `None`.
pub fn dimensions(kind: Kind, head: &[u8]) -> Option<(u32, u32)> {
    let dims = match kind {
        Kind::Png => png(head),
        Kind::Gif => gif(head),
        Kind::Jpeg => jpeg(head),
        Kind::Webp => webp(head),
        _ => None,
    }?;
    (dims.0 > 0 && dims.1 > 0).then_some(dims)
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_be_bytes(
        b.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn le16(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from(u16::from_le_bytes(
        b.get(at..at + 2)?.try_into().ok()?,
    )))
}

fn le24(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at + 3)?;
    Some(u32::from(s[0]) | u32::from(s[1]) << 8 | u32::from(s[2]) << 16)
}

/// The first chunk after the signature must be IHDR: length 13, then
/// width and height as big-endian u32.
fn png(b: &[u8]) -> Option<(u32, u32)> {
    if be32(b, 8)? != 13 || b.get(12..16)? != b"IHDR" {
        return None;
    }
    Some((be32(b, 16)?, be32(b, 20)?))
}

/// The logical screen descriptor follows the 6-byte signature.
fn gif(b: &[u8]) -> Option<(u32, u32)> {
    Some((le16(b, 6)?, le16(b, 8)?))
}

/// Walks the marker segments from SOI to the first start-of-frame
/// (SOF0-SOF15 but DHT C4, JPG C8 and DAC CC), whose payload is
/// precision, height, width.
fn jpeg(b: &[u8]) -> Option<(u32, u32)> {
    let mut at = 2;
    loop {
        // Fill bytes (0xFF) may precede a marker.
        while *b.get(at)? == 0xFF && *b.get(at + 1)? == 0xFF {
            at += 1;
        }
        if *b.get(at)? != 0xFF {
            return None;
        }
        let marker = *b.get(at + 1)?;
        match marker {
            // Standalone markers: no length.
            0x01 | 0xD0..=0xD7 => {
                at += 2;
                continue;
            }
            // End of image or start of scan before any frame header.
            0xD9 | 0xDA => return None,
            _ => {}
        }
        let len = be16(b, at + 2)? as usize;
        if len < 2 {
            return None;
        }
        if (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC) {
            let height = be16(b, at + 5)?;
            let width = be16(b, at + 7)?;
            return Some((width, height));
        }
        at += 2 + len;
    }
}

/// RIFF header, then the first chunk: VP8 (lossy: a key frame's start
/// code and 14-bit sizes), VP8L (lossless: signature 0x2F and two 14-bit
/// sizes minus one) or VP8X (extended: 24-bit canvas sizes minus one).
fn webp(b: &[u8]) -> Option<(u32, u32)> {
    let chunk = b.get(12..16)?;
    let data = 20;
    match chunk {
        b"VP8 " => {
            if b.get(data + 3..data + 6)? != [0x9D, 0x01, 0x2A] {
                return None;
            }
            Some((le16(b, data + 6)? & 0x3FFF, le16(b, data + 8)? & 0x3FFF))
        }
        b"VP8L" => {
            if *b.get(data)? != 0x2F {
                return None;
            }
            let bits = u32::from_le_bytes(b.get(data + 1..data + 5)?.try_into().ok()?);
            Some(((bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1))
        }
        b"VP8X" => Some((le24(b, data + 4)? + 1, le24(b, data + 7)? + 1)),
        _ => None,
    }
}

/// Whether a stream of chunks is UTF-8 text without NUL, decided as the
/// chunks arrive (a character split between chunks is carried over).
#[derive(Debug, Default)]
pub struct TextCheck {
    /// The start of a character the last chunk ended inside (at most 3).
    carry: Vec<u8>,
    bad: bool,
}

impl TextCheck {
    /// Feeds the next chunk.
    pub fn feed(&mut self, mut chunk: &[u8]) {
        if self.bad {
            return;
        }
        if chunk.contains(&0) {
            self.bad = true;
            return;
        }
        // Complete the carried character first.
        while !self.carry.is_empty() {
            let Some((&next, rest)) = chunk.split_first() else {
                return;
            };
            self.carry.push(next);
            chunk = rest;
            match std::str::from_utf8(&self.carry) {
                Ok(_) => self.carry.clear(),
                Err(e) if e.error_len().is_none() && self.carry.len() < 4 => {}
                Err(_) => {
                    self.bad = true;
                    return;
                }
            }
        }
        match std::str::from_utf8(chunk) {
            Ok(_) => {}
            Err(e) if e.error_len().is_none() => {
                self.carry = chunk[e.valid_up_to()..].to_vec();
            }
            Err(_) => self.bad = true,
        }
    }

    /// Whether everything fed was text (no character left unfinished).
    pub fn is_text(&self) -> bool {
        !self.bad && self.carry.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn png_bytes(w: u32, h: u32) -> Vec<u8> {
        let mut b = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
        b.extend(w.to_be_bytes());
        b.extend(h.to_be_bytes());
        b.extend([8, 6, 0, 0, 0, 0, 0, 0, 0]);
        b
    }

    #[test]
    fn declared_types_are_read_by_their_essence() {
        assert_eq!(Kind::declared("image/PNG"), Some(Kind::Png));
        assert_eq!(
            Kind::declared("text/plain; charset=utf-8"),
            Some(Kind::Text)
        );
        assert_eq!(Kind::declared("image/jpg"), Some(Kind::Jpeg));
        assert_eq!(Kind::declared("application/x-msdownload"), None);
        assert_eq!(Kind::declared("image/svg+xml"), None);
        assert_eq!(Kind::declared(""), None);
    }

    #[test]
    fn signatures_tell_types_apart() {
        let png = png_bytes(3, 2);
        assert!(Kind::Png.signed_by(&png));
        assert!(!Kind::Jpeg.signed_by(&png));
        assert!(!Kind::Png.signed_by(b"MZ\x90\x00 an executable"));
        assert!(!Kind::Png.signed_by(b"\x7fELF\x02\x01\x01"));
        assert!(Kind::Pdf.signed_by(b"%PDF-1.7\n"));
        assert!(Kind::Zip.signed_by(b"PK\x03\x04...."));
        assert!(Kind::Webp.signed_by(b"RIFF\x10\x00\x00\x00WEBPVP8 "));
        assert!(!Kind::Webp.signed_by(b"RIFF\x10\x00\x00\x00WAVEfmt "));
    }

    #[test]
    fn png_and_gif_sizes_come_from_their_headers() {
        assert_eq!(
            dimensions(Kind::Png, &png_bytes(640, 480)),
            Some((640, 480))
        );
        assert_eq!(dimensions(Kind::Png, &png_bytes(0, 480)), None);
        assert_eq!(dimensions(Kind::Png, &png_bytes(640, 480)[..20]), None);
        let gif = b"GIF89a\x40\x01\xf0\x00\x80\x00\x00";
        assert_eq!(dimensions(Kind::Gif, gif), Some((320, 240)));
        assert_eq!(dimensions(Kind::Gif, b"GIF89a\x40"), None);
        assert_eq!(dimensions(Kind::Pdf, b"%PDF-1.7"), None);
    }

    #[test]
    fn jpeg_size_is_in_the_first_frame_header_after_other_segments() {
        let mut j = vec![0xFF, 0xD8];
        // APP0 (JFIF), 16 bytes, then DHT (C4, not a frame), then SOF2.
        j.extend([0xFF, 0xE0, 0x00, 0x10]);
        j.extend(b"JFIF\0\x01\x01\0\0\x01\0\x01\0\0");
        j.extend([0xFF, 0xC4, 0x00, 0x03, 0x00]);
        j.extend([
            0xFF, 0xFF, 0xC2, 0x00, 0x11, 0x08, 0x01, 0xE0, 0x02, 0x80, 0x03,
        ]);
        assert_eq!(dimensions(Kind::Jpeg, &j), Some((640, 480)));
        // Cut before the frame header: unknown.
        assert_eq!(dimensions(Kind::Jpeg, &j[..26]), None);
        // A scan before any frame: malformed.
        assert_eq!(
            dimensions(Kind::Jpeg, &[0xFF, 0xD8, 0xFF, 0xDA, 0, 2]),
            None
        );
    }

    #[test]
    fn webp_sizes_in_each_of_its_three_forms() {
        let riff = |chunk: &[u8], data: &[u8]| {
            let mut b = b"RIFF\0\0\0\0WEBP".to_vec();
            b.extend(chunk);
            b.extend([0, 0, 0, 0]);
            b.extend(data);
            b
        };
        // VP8: frame tag (3), start code, 14-bit width and height.
        let lossy = riff(
            b"VP8 ",
            &[0, 0, 0, 0x9D, 0x01, 0x2A, 0x80, 0x02, 0xE0, 0x01],
        );
        assert_eq!(dimensions(Kind::Webp, &lossy), Some((640, 480)));
        // VP8L: 0x2F, then (w-1) in 14 bits and (h-1) in the next 14.
        let bits: u32 = 639 | (479 << 14);
        let mut data = vec![0x2F];
        data.extend(bits.to_le_bytes());
        assert_eq!(
            dimensions(Kind::Webp, &riff(b"VP8L", &data)),
            Some((640, 480))
        );
        // VP8X: flags (4), then 24-bit (w-1) and (h-1).
        let ext = riff(b"VP8X", &[0, 0, 0, 0, 0x7F, 0x02, 0x00, 0xDF, 0x01, 0x00]);
        assert_eq!(dimensions(Kind::Webp, &ext), Some((640, 480)));
        assert_eq!(dimensions(Kind::Webp, &riff(b"ALPH", &[0; 10])), None);
    }

    #[test]
    fn text_is_utf8_without_nul_across_chunk_boundaries() {
        let check = |chunks: &[&[u8]]| {
            let mut t = TextCheck::default();
            for c in chunks {
                t.feed(c);
            }
            t.is_text()
        };
        let e = "été ✓".as_bytes();
        assert!(check(&[e]));
        // Split inside the 3-byte check mark, and byte by byte.
        assert!(check(&[&e[..7], &e[7..]]));
        let bytes: Vec<&[u8]> = e.chunks(1).collect();
        assert!(check(&bytes));
        assert!(!check(&[b"a\0b"]));
        assert!(!check(&[b"\xff"]));
        assert!(!check(&[&e[..7]]), "ends inside a character");
        assert!(!check(&[b"\x89PNG"]));
    }
}
