//! What the file and avatar tests share: the files a server keeps on
//! disk, and an error body's code and reason (PNG bytes: `http::png`).

use std::path::Path;

use super::http::HttpReply;

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
