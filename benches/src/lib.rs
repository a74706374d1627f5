//! Shared inputs of the criterion benches in `benches/` (see BENCHMARKS.md).

#![forbid(unsafe_code)]

use std::path::PathBuf;

/// One canonical frame from `protocol-spec/vectors/`.
pub struct Vector {
    /// The file name without `.json`, e.g. `80_event_message`.
    pub name: String,
    /// Whether the frame goes client → server (a request).
    pub request: bool,
    /// The whole frame, length prefix included.
    pub bytes: Vec<u8>,
}

/// One round-trip vector per frame type (for EVENT, the message event: the
/// hot one), in type order.
pub fn vectors_per_type() -> Vec<Vector> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../protocol-spec/vectors");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("protocol-spec/vectors exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".json"))
        .collect();
    names.sort();
    let mut out: Vec<Vector> = Vec::new();
    for name in names {
        let ty = &name[..2];
        let prefer = name.contains("message");
        if let Some(last) = out.last_mut() {
            if &last.name[..2] == ty {
                if prefer {
                    *last = load(&dir, &name);
                }
                continue;
            }
        }
        out.push(load(&dir, &name));
    }
    out
}

fn load(dir: &std::path::Path, name: &str) -> Vector {
    let text = std::fs::read_to_string(dir.join(name)).expect("readable vector");
    let v: serde_json::Value = serde_json::from_str(&text).expect("vector is JSON");
    Vector {
        name: name.trim_end_matches(".json").to_owned(),
        request: v["direction"] == "client_to_server",
        bytes: hex::decode(v["hex"].as_str().expect("hex field")).expect("valid hex"),
    }
}
