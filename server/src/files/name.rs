//! File names: what an upload may be called, and how a download says it
//! (`Content-Disposition`, RFC 6266 with RFC 8187's `filename*`).

/// Longest file name, in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 255;

/// Why a name is refused (the error's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadName {
    /// No name, or an empty one.
    Empty,
    /// Over [`MAX_NAME_BYTES`].
    TooLong,
    /// `/` or `\`: a name is a name, not a path.
    PathSeparator,
    /// A control character (C0, DEL, C1), or `.`/`..`.
    Invalid,
}

impl BadName {
    pub fn reason(self) -> &'static str {
        match self {
            BadName::Empty => "name_missing",
            BadName::TooLong => "name_too_long",
            BadName::PathSeparator => "name_has_path",
            BadName::Invalid => "name_invalid",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            BadName::Empty => "give the file a name: ?name=<name> or Content-Disposition: attachment; filename=\"<name>\"",
            BadName::TooLong => "the file name is longer than 255 bytes",
            BadName::PathSeparator => "the file name contains a path separator ('/' or '\\')",
            BadName::Invalid => "the file name contains a control character, or is '.' or '..'",
        }
    }
}

/// Checks an upload's file name.
pub fn check(name: &str) -> Result<(), BadName> {
    if name.is_empty() {
        return Err(BadName::Empty);
    }
    if name.len() > MAX_NAME_BYTES {
        return Err(BadName::TooLong);
    }
    if name.contains(['/', '\\']) {
        return Err(BadName::PathSeparator);
    }
    if name.chars().any(char::is_control) || name == "." || name == ".." {
        return Err(BadName::Invalid);
    }
    Ok(())
}

/// The file name a `Content-Disposition` request header gives
/// (`filename*=UTF-8''…` preferred over `filename="…"`), if any.
pub fn from_disposition(value: &str) -> Option<String> {
    let mut plain = None;
    for param in value.split(';').skip(1) {
        let Some((key, v)) = param.split_once('=') else {
            continue;
        };
        let (key, v) = (key.trim().to_ascii_lowercase(), v.trim());
        if key == "filename*" {
            let (charset, rest) = v.split_once('\'')?;
            let (_lang, encoded) = rest.split_once('\'')?;
            if !charset.eq_ignore_ascii_case("utf-8") {
                return None;
            }
            return String::from_utf8(percent_decode(encoded)?).ok();
        }
        if key == "filename" {
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .map(|q| q.replace("\\\"", "\"").replace("\\\\", "\\"))
                .unwrap_or_else(|| v.to_owned());
            plain = Some(v);
        }
    }
    plain
}

fn percent_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hi = (bytes.next()? as char).to_digit(16)?;
            let lo = (bytes.next()? as char).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
        } else {
            out.push(b);
        }
    }
    Some(out)
}

/// `Content-Disposition` for a download: `inline` or `attachment`, an
/// ASCII `filename` (quoted; anything outside printable ASCII, `"` and
/// `\` replaced by `_`) and the exact name as `filename*` (RFC 8187).
pub fn disposition(name: &str, inline: bool) -> String {
    let ascii: String = name
        .chars()
        .map(|c| match c {
            ' '..='~' if c != '"' && c != '\\' => c,
            _ => '_',
        })
        .collect();
    let mut encoded = String::with_capacity(name.len() * 3);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let kind = if inline { "inline" } else { "attachment" };
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_names_not_paths_nor_controls() {
        assert_eq!(check("photo.png"), Ok(()));
        assert_eq!(check("été ✓.txt"), Ok(()));
        assert_eq!(check(""), Err(BadName::Empty));
        assert_eq!(check(&"a".repeat(256)), Err(BadName::TooLong));
        assert_eq!(
            check(&"é".repeat(128)),
            Err(BadName::TooLong),
            "bytes, not chars"
        );
        assert_eq!(check(&"a".repeat(255)), Ok(()));
        assert_eq!(check("../etc/passwd"), Err(BadName::PathSeparator));
        assert_eq!(check("a\\b"), Err(BadName::PathSeparator));
        assert_eq!(check("a\nb"), Err(BadName::Invalid));
        assert_eq!(check("a\u{7f}"), Err(BadName::Invalid));
        assert_eq!(check("a\u{85}"), Err(BadName::Invalid));
        assert_eq!(check(".."), Err(BadName::Invalid));
    }

    #[test]
    fn disposition_names_are_read_from_either_parameter() {
        let d = |v| from_disposition(v);
        assert_eq!(
            d("attachment; filename=\"a b.png\""),
            Some("a b.png".into())
        );
        assert_eq!(
            d("attachment; filename=plain.txt"),
            Some("plain.txt".into())
        );
        assert_eq!(
            d("attachment; filename=\"x\"; filename*=UTF-8''%C3%A9t%C3%A9.txt"),
            Some("été.txt".into())
        );
        assert_eq!(d("attachment"), None);
        assert_eq!(d("attachment; filename*=latin1''x"), None);
    }

    #[test]
    fn downloads_quote_the_name_safely() {
        assert_eq!(
            disposition("a \"b\".png", true),
            "inline; filename=\"a _b_.png\"; filename*=UTF-8''a%20%22b%22.png"
        );
        assert_eq!(
            disposition("été.txt", false),
            "attachment; filename=\"_t_.txt\"; filename*=UTF-8''%C3%A9t%C3%A9.txt"
        );
    }
}
