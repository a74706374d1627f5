//! The test vectors in `vectors/` (SPEC.md §12), checked against the crate.
//!
//! - Every round-trip vector decodes to its canonical JSON form, re-encodes
//!   byte for byte, and re-encodes byte for byte from the JSON form too.
//! - Every decode-only vector decodes to its canonical JSON form.
//! - Every reject vector is rejected with its error code.
//! - Every refuse vector round-trips and breaks the rule of its code.
//! - Every frame type has at least one round-trip vector.
//! - The committed files are exactly what the generator writes.
//!
//! To (re)write the files after changing `support/vector_set.rs`:
//! `CONFAB_WRITE_VECTORS=1 cargo test -p confab-protocol --test vectors`.

#[path = "support/attach_set.rs"]
mod attach_set;
#[path = "support/canonical.rs"]
mod canonical;
#[path = "support/conversation_set.rs"]
mod conversation_set;
#[path = "support/rich_set.rs"]
mod rich_set;
#[path = "support/vector_set.rs"]
mod vector_set;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Once;

use bytes::BytesMut;
use confab_protocol::frame::{kind, FrameError};
use confab_protocol::{ErrorCode, FrameCodec, RawFrame, Request, ServerMsg};
use serde_json::Value;
use tokio_util::codec::Decoder;

use canonical::J;
use vector_set::Msg;

/// Every frame type of protocol version 1 (SPEC.md §4): the protocol
/// crate's tables.
fn all_types() -> Vec<u8> {
    let mut all = kind::REQUESTS.to_vec();
    all.extend(kind::SERVER_FRAMES);
    all
}

/// Every event kind of protocol version 1 (SPEC.md §5.5.2), by canonical
/// name.
const ALL_EVENT_KINDS: [&str; 12] = [
    "message",
    "member_joined",
    "member_left",
    "room_created",
    "member_kicked",
    "member_banned",
    "role_changed",
    "room_updated",
    "room_terminated",
    "message_edited",
    "message_deleted",
    "tombstone",
];

/// Every notification kind of protocol version 1 (SPEC.md §5.8.1), by
/// canonical name.
const ALL_NOTIFICATION_KINDS: [&str; 10] = [
    "invited",
    "join_request",
    "request_approved",
    "request_denied",
    "kicked",
    "banned",
    "unbanned",
    "role_changed",
    "room_terminated",
    "mentioned",
];

// ------------------------------------------------------------ file access

fn vectors_dir() -> PathBuf {
    static WRITE: Once = Once::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("vectors");
    // Tests run in parallel: write once, before any test reads.
    WRITE.call_once(|| {
        if std::env::var("CONFAB_WRITE_VECTORS").is_ok_and(|v| v == "1") {
            write_all(&dir);
        }
    });
    dir
}

/// Every `*.json` file directly in `dir`, parsed, in name order.
fn load_dir(dir: &Path) -> Vec<(String, Value)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("reading {}: {e}", p.display()));
            let value = serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("parsing {}: {e}", p.display()));
            (
                p.file_name()
                    .expect("file name")
                    .to_string_lossy()
                    .into_owned(),
                value,
            )
        })
        .collect()
}

fn str_field<'a>(file: &str, v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("{file}: {key:?} must be a string"))
}

fn num_field(file: &str, v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{file}: {key:?} must be a non-negative integer"))
}

// --------------------------------------------------------------- generator

fn render(fields: Vec<(&'static str, J)>) -> String {
    let mut out = String::new();
    J::Obj(fields).render(0, &mut out);
    out.push('\n');
    out
}

fn canonical(msg: &Msg) -> J {
    match msg {
        Msg::Client(r) => canonical::request(r),
        Msg::Server(m) => canonical::server_msg(m),
    }
}

fn encode(msg: &Msg, req_id: u32) -> Vec<u8> {
    let mut buf = BytesMut::new();
    match msg {
        Msg::Client(r) => r.encode(req_id, &mut buf),
        Msg::Server(m) => m.encode(req_id, &mut buf),
    }
    buf.to_vec()
}

fn frame_file(name: &str, msg: &Msg, bytes: &[u8]) -> String {
    render(vec![
        ("name", J::Str(name.into())),
        ("direction", J::Str(msg.direction().into())),
        ("type", J::Num(bytes[4].into())),
        (
            "request_id",
            J::Num(u32::from_be_bytes([bytes[5], bytes[6], bytes[7], bytes[8]]).into()),
        ),
        ("hex", J::Str(hex::encode(bytes))),
        ("decoded", canonical(msg)),
    ])
}

/// What the generator writes: (path relative to `vectors/`, contents).
fn generated_files() -> Vec<(String, String)> {
    let mut files = Vec::new();
    for v in vector_set::round_trip() {
        files.push((
            v.file.to_owned(),
            frame_file(v.name, &v.msg, &encode(&v.msg, v.req_id)),
        ));
    }
    for v in vector_set::decode_only() {
        files.push((
            format!("decode_only/{}", v.file),
            frame_file(v.name, &v.msg, &v.bytes),
        ));
    }
    for v in vector_set::reject() {
        let contents = render(vec![
            ("name", J::Str(v.name.into())),
            ("direction", J::Str(v.direction.into())),
            ("max_frame_len", J::Num(v.max_frame_len.into())),
            ("hex", J::Str(hex::encode(&v.bytes))),
            ("error_code", J::Num(v.error_code as u64)),
        ]);
        files.push((format!("reject/{}", v.file), contents));
    }
    for v in rich_set::refuse()
        .into_iter()
        .chain(attach_set::refuse())
        .chain(conversation_set::refuse())
    {
        let msg = Msg::Client(v.msg);
        let bytes = encode(&msg, v.req_id);
        let mut contents = frame_file(v.name, &msg, &bytes);
        // The frame file's fields, then the code, before the closing brace.
        let end = contents.rfind("\n}").expect("an object");
        contents.insert_str(
            end,
            &format!(",\n  \"error_code\": {}", v.error_code as u16),
        );
        files.push((format!("refuse/{}", v.file), contents));
    }
    files
}

fn write_all(dir: &Path) {
    for sub in ["", "decode_only", "reject", "refuse"] {
        std::fs::create_dir_all(dir.join(sub)).expect("create vectors directory");
    }
    for (path, contents) in generated_files() {
        std::fs::write(dir.join(&path), contents).unwrap_or_else(|e| panic!("writing {path}: {e}"));
    }
}

// ------------------------------------------------------------------ checks

/// Splits `bytes` into exactly one frame with the default codec.
fn one_frame(file: &str, bytes: &[u8]) -> RawFrame {
    let mut buf = BytesMut::from(bytes);
    let frame = FrameCodec::default()
        .decode(&mut buf)
        .unwrap_or_else(|e| panic!("{file}: framing failed: {e}"))
        .unwrap_or_else(|| panic!("{file}: hex holds less than one frame"));
    assert!(buf.is_empty(), "{file}: hex holds more than one frame");
    frame
}

/// Decodes the file's frame and compares it with `decoded`; returns the
/// frame, the decoded message and its canonical JSON.
fn check_decodes(file: &str, v: &Value) -> (RawFrame, Msg) {
    let bytes =
        hex::decode(str_field(file, v, "hex")).unwrap_or_else(|e| panic!("{file}: bad hex: {e}"));
    let frame = one_frame(file, &bytes);
    assert_eq!(
        u64::from(frame.kind),
        num_field(file, v, "type"),
        "{file}: type"
    );
    assert_eq!(
        u64::from(frame.req_id),
        num_field(file, v, "request_id"),
        "{file}: request_id"
    );
    let msg = match str_field(file, v, "direction") {
        "client_to_server" => Msg::Client(
            Request::decode(&frame).unwrap_or_else(|e| panic!("{file}: decoding request: {e}")),
        ),
        "server_to_client" => Msg::Server(
            ServerMsg::decode(&frame)
                .unwrap_or_else(|e| panic!("{file}: decoding server frame: {e}")),
        ),
        other => panic!("{file}: unknown direction {other:?}"),
    };
    assert_eq!(
        canonical(&msg).to_value(),
        v["decoded"],
        "{file}: decoded form"
    );
    (frame, msg)
}

#[test]
fn every_vector_decodes_to_its_canonical_form_and_re_encodes_byte_for_byte() {
    let files = load_dir(&vectors_dir());
    assert!(
        files.len() >= all_types().len(),
        "expected at least one vector per frame type"
    );
    for (file, v) in &files {
        let (frame, msg) = check_decodes(file, v);
        let hex = str_field(file, v, "hex");
        assert_eq!(
            hex::encode(encode(&msg, frame.req_id)),
            hex,
            "{file}: re-encoding the decoded frame"
        );

        // The canonical form alone must be enough to rebuild the frame.
        let from_json = match &msg {
            Msg::Client(_) => Msg::Client(canonical::request_from(frame.kind, &v["decoded"])),
            Msg::Server(_) => Msg::Server(canonical::server_msg_from(frame.kind, &v["decoded"])),
        };
        assert_eq!(
            hex::encode(encode(&from_json, frame.req_id)),
            hex,
            "{file}: encoding the canonical form"
        );
    }
}

#[test]
fn every_frame_type_has_a_round_trip_vector() {
    let covered: BTreeSet<u64> = load_dir(&vectors_dir())
        .iter()
        .map(|(f, v)| num_field(f, v, "type"))
        .collect();
    let missing: Vec<String> = all_types()
        .iter()
        .filter(|t| !covered.contains(&u64::from(**t)))
        .map(|t| format!("0x{t:02x}"))
        .collect();
    assert!(
        missing.is_empty(),
        "frame types without a vector: {missing:?}"
    );
}

/// Every `body.kind` of the EVENT vectors and every notification `kind` of
/// the NOTIFICATION and NOTIFICATION_LIST vectors.
fn covered_kinds() -> (BTreeSet<String>, BTreeSet<String>) {
    let mut events = BTreeSet::new();
    let mut notifications = BTreeSet::new();
    for (file, v) in load_dir(&vectors_dir()) {
        let decoded = &v["decoded"];
        let t = num_field(&file, &v, "type");
        if t == u64::from(kind::EVENT) {
            events.insert(decoded["body"]["kind"].to_string());
        } else if t == u64::from(kind::NOTIFICATION) {
            notifications.insert(decoded["notification"]["kind"].to_string());
        } else if t == u64::from(kind::NOTIFICATION_LIST) {
            for item in decoded["items"].as_array().expect("items") {
                notifications.insert(item["kind"].to_string());
            }
        }
    }
    (events, notifications)
}

#[test]
fn every_event_and_notification_kind_has_a_round_trip_vector() {
    let (events, notifications) = covered_kinds();
    for (covered, all, what) in [
        (&events, &ALL_EVENT_KINDS[..], "event kinds"),
        (
            &notifications,
            &ALL_NOTIFICATION_KINDS[..],
            "notification kinds",
        ),
    ] {
        let missing: Vec<&str> = all
            .iter()
            .filter(|k| !covered.contains(&format!("{k:?}")))
            .copied()
            .collect();
        assert!(missing.is_empty(), "{what} without a vector: {missing:?}");
        // And one of an unknown kind, written as a number.
        assert!(
            covered.iter().any(|k| k.parse::<u8>().is_ok()),
            "{what}: no vector of an unknown kind"
        );
    }
}

#[test]
fn decode_only_vectors_decode_to_their_canonical_form() {
    let files = load_dir(&vectors_dir().join("decode_only"));
    assert!(!files.is_empty());
    for (file, v) in &files {
        let (frame, msg) = check_decodes(file, v);
        // They are decode-only because a conforming encoder writes other bytes.
        assert_ne!(
            hex::encode(encode(&msg, frame.req_id)),
            str_field(file, v, "hex"),
            "{file}: is a round trip"
        );
    }
}

/// The code a server (or, for `server_to_client`, a client) reports for
/// `bytes`, and the crate's error message.
fn rejection(file: &str, direction: &str, max_frame_len: u32, bytes: &[u8]) -> (ErrorCode, String) {
    let mut buf = BytesMut::from(bytes);
    let frame = match FrameCodec::new(max_frame_len).decode(&mut buf) {
        Err(e @ FrameError::TooShort(_)) => return (ErrorCode::MalformedFrame, e.to_string()),
        Err(e @ FrameError::TooLarge { .. }) => return (ErrorCode::FrameTooLarge, e.to_string()),
        Err(e) => panic!("{file}: unexpected framing error {e}"),
        Ok(None) => panic!("{file}: incomplete frame, neither accepted nor rejected"),
        Ok(Some(frame)) => frame,
    };
    let err = match direction {
        "client_to_server" => Request::decode(&frame).err(),
        "server_to_client" => ServerMsg::decode(&frame).err(),
        other => panic!("{file}: unknown direction {other:?}"),
    };
    let err = err.unwrap_or_else(|| panic!("{file}: decoded, but must be rejected"));
    (err.code(), err.to_string())
}

#[test]
fn reject_vectors_are_rejected_with_their_code() {
    let files = load_dir(&vectors_dir().join("reject"));
    assert!(!files.is_empty());
    for (file, v) in &files {
        let bytes = hex::decode(str_field(file, v, "hex"))
            .unwrap_or_else(|e| panic!("{file}: bad hex: {e}"));
        let max =
            u32::try_from(num_field(file, v, "max_frame_len")).expect("max_frame_len fits u32");
        let (code, _) = rejection(file, str_field(file, v, "direction"), max, &bytes);
        assert_eq!(
            u64::from(code as u16),
            num_field(file, v, "error_code"),
            "{file}: rejected as {code}"
        );
    }
}

/// The refusal a server answers a well-formed request with on the request
/// alone, if any: for its spans or sticker shape (SPEC.md §5.11), its file
/// ids (§13.5), an edit's blank text (§5.4.1) or too many initial members
/// (§5.3.2).
fn refusal(req: &Request) -> Option<ErrorCode> {
    let checked = match req {
        Request::SendMessage {
            body,
            spans,
            sticker,
            attachments,
            ..
        } => confab_protocol::rich::check_content(body, spans, sticker.as_deref())
            .and_then(|()| confab_protocol::attach::check_file_ids(attachments, sticker.is_some())),
        Request::EditMessage { text, .. } if confab_protocol::rich::is_blank(text) => {
            return Some(ErrorCode::MessageEmpty);
        }
        Request::EditMessage { text, spans, .. } => {
            confab_protocol::rich::check_content(text, spans, None)
        }
        Request::CreateRoom { members, .. } => confab_protocol::check_initial_members(members),
        _ => Ok(()),
    };
    checked.err().map(|r| r.code)
}

#[test]
fn refuse_vectors_round_trip_and_are_refused_with_their_code() {
    let files = load_dir(&vectors_dir().join("refuse"));
    assert!(!files.is_empty());
    for (file, v) in &files {
        let (frame, msg) = check_decodes(file, v);
        assert_eq!(
            hex::encode(encode(&msg, frame.req_id)),
            str_field(file, v, "hex"),
            "{file}: re-encoding"
        );
        let Msg::Client(req) = msg else {
            panic!("{file}: refuse vectors are requests");
        };
        assert_eq!(
            refusal(&req).map(|c| u64::from(c as u16)),
            Some(num_field(file, v, "error_code")),
            "{file}: refusal"
        );
    }
    // The round-trip vectors of requests are accepted.
    for v in vector_set::round_trip() {
        if let Msg::Client(req) = &v.msg {
            assert_eq!(refusal(req), None, "{}", v.file);
        }
    }
}

#[test]
fn committed_vectors_are_what_the_generator_writes() {
    let dir = vectors_dir();
    for (path, contents) in generated_files() {
        let on_disk = std::fs::read_to_string(dir.join(&path)).unwrap_or_else(|e| {
            panic!("{path}: {e}; run CONFAB_WRITE_VECTORS=1 cargo test -p confab-protocol --test vectors")
        });
        assert_eq!(
            on_disk, contents,
            "{path} is stale; regenerate with CONFAB_WRITE_VECTORS=1"
        );
    }
}

#[test]
fn reject_vectors_fail_for_the_stated_reason() {
    for v in vector_set::reject() {
        let (_, message) = rejection(v.file, v.direction, v.max_frame_len, &v.bytes);
        assert!(
            message.contains(v.detail),
            "{}: rejected because {message:?}, expected {:?}",
            v.file,
            v.detail
        );
    }
}
