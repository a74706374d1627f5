//! What the file and avatar tests share: image bytes as far as their
//! headers go, the files a server keeps on disk, and an error body's
//! code and reason.

use std::path::Path;

use super::http::HttpReply;

/// A PNG of `w` × `h` as far as its header goes, padded to `len` bytes.
pub fn png(w: u32, h: u32, len: usize) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR".to_vec();
    b.extend(w.to_be_bytes());
    b.extend(h.to_be_bytes());
    b.extend([8, 6, 0, 0, 0]);
    b.resize(len, 0x42);
    b
}

/// The error body's status, code and reason (empty when none).
pub fn refusal(r: &HttpReply) -> (u16, u64, String) {
    let v = r.json();
    let reason = v["error"]["reason"].as_str().unwrap_or("").to_owned();
    (r.status, v["error"]["code"].as_u64().unwrap_or(0), reason)
}

/// Every file under `DATA_DIR/files` but uploads in progress, sorted.
pub fn blobs(data_dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, out);
            } else {
                out.push(p.file_name().unwrap().to_string_lossy().into_owned());
            }
        }
    }
    let mut out = Vec::new();
    walk(&data_dir.join("files"), &mut out);
    out.retain(|n| !n.starts_with("upload-"));
    out.sort();
    out
}
