//! Room events as text: one line each for `tail` and `history`, or one
//! JSON object each with `--json`, and the clock times both use (UTC).

use confab_sdk::{Attachment, EventBody, Millis, Role, RoomEvent, Span, Style};
use serde_json::{json, Value};

/// Days since 1970-01-01 as a civil (year, month, day), proleptic
/// Gregorian (the usual era-based conversion).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// `2026-11-28T21:50:07Z`.
pub fn rfc3339(at: Millis) -> String {
    let secs = (at / 1000) as i64;
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        s / 3600,
        (s / 60) % 60,
        s % 60
    )
}

/// `21:50`, the UI's time of day (UTC).
pub fn clock(at: Millis) -> String {
    let s = ((at / 1000) % 86_400) as i64;
    format!("{:02}:{:02}", s / 3600, (s / 60) % 60)
}

/// The role's name as people read it.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Admin => "admin",
        Role::Member => "member",
    }
}

/// What an event says, without who or when: the message's text, or a
/// description of a membership or room change.
pub fn describe(ev: &RoomEvent) -> String {
    match &ev.body {
        EventBody::Message {
            text,
            sticker: Some(id),
            ..
        } if text.is_empty() => format!(":{id}:"),
        EventBody::Message { text, .. } => text.clone(),
        EventBody::MemberJoined => format!("{} joined", ev.actor_name),
        EventBody::MemberLeft => format!("{} left", ev.actor_name),
        EventBody::RoomCreated { name, .. } => format!("{} created {name}", ev.actor_name),
        EventBody::MemberKicked { target_name, .. } => {
            format!("{} kicked {target_name}", ev.actor_name)
        }
        EventBody::MemberBanned { target_name, .. } => {
            format!("{} banned {target_name}", ev.actor_name)
        }
        EventBody::RoleChanged {
            target_name, role, ..
        } => format!("{target_name} is now {}", role_name(*role)),
        EventBody::RoomUpdated { name, topic } => {
            format!(
                "{} set the name to {name:?} and the topic to {topic:?}",
                ev.actor_name
            )
        }
        EventBody::RoomTerminated => "the room terminated".to_owned(),
        EventBody::MessageEdited { target, text, .. } if text.is_empty() => {
            format!("{} edited #{}", ev.actor_name, target.0)
        }
        EventBody::MessageEdited { target, text, .. } => {
            format!("{} edited #{}: {text}", ev.actor_name, target.0)
        }
        EventBody::MessageDeleted { target } => {
            format!("{} deleted #{}", ev.actor_name, target.0)
        }
        EventBody::Tombstone => "(deleted)".to_owned(),
        EventBody::Unknown { kind, .. } => format!("(an event of kind {kind})"),
    }
}

/// The event's kind as a stable name (the JSON `kind`).
pub fn kind_name(body: &EventBody) -> &'static str {
    match body {
        EventBody::Message { .. } => "message",
        EventBody::MemberJoined => "member_joined",
        EventBody::MemberLeft => "member_left",
        EventBody::RoomCreated { .. } => "room_created",
        EventBody::MemberKicked { .. } => "member_kicked",
        EventBody::MemberBanned { .. } => "member_banned",
        EventBody::RoleChanged { .. } => "role_changed",
        EventBody::RoomUpdated { .. } => "room_updated",
        EventBody::RoomTerminated => "room_terminated",
        EventBody::MessageEdited { .. } => "message_edited",
        EventBody::MessageDeleted { .. } => "message_deleted",
        EventBody::Tombstone => "tombstone",
        EventBody::Unknown { .. } => "unknown",
    }
}

/// A size for people: `900 B`, `48.2 kB`, `3.1 MB`.
pub fn human_size(bytes: u64) -> String {
    match bytes {
        0..=999 => format!("{bytes} B"),
        1_000..=999_999 => format!("{:.1} kB", bytes as f64 / 1e3),
        _ => format!("{:.1} MB", bytes as f64 / 1e6),
    }
}

/// A file a message carries, for people: `📎 plan.pdf (70.0 kB, #301)`;
/// an image adds its pixels.
pub fn file_label(f: &Attachment) -> String {
    let pixels = match (f.width, f.height) {
        (Some(w), Some(h)) => format!(", {w}×{h}"),
        _ => String::new(),
    };
    format!("📎 {} ({}{pixels}, #{})", f.name, human_size(f.size), f.id)
}

/// One line for people: `2026-11-28T21:50:07Z #5 alice: hello`; other
/// events as `… #6 * alice joined`. Line breaks in a message become `⏎`
/// so that each event stays one line.
pub fn line(ev: &RoomEvent) -> String {
    let when = rfc3339(ev.at);
    let text = describe(ev).replace('\n', " ⏎ ");
    match &ev.body {
        EventBody::Message {
            edited_at,
            attachments,
            ..
        } => {
            let edited = if edited_at.is_some() { " (edited)" } else { "" };
            // The text, then each file, one space apart.
            let files = attachments.iter().map(file_label);
            let body: Vec<String> = Some(text)
                .filter(|t| !t.is_empty())
                .into_iter()
                .chain(files)
                .collect();
            format!(
                "{when} #{} {}: {}{edited}",
                ev.seq.0,
                ev.actor_name,
                body.join(" ")
            )
        }
        EventBody::Tombstone => format!("{when} #{} {}: (deleted)", ev.seq.0, ev.actor_name),
        _ => format!("{when} #{} * {text}", ev.seq.0),
    }
}

fn span_json(span: &Span) -> Value {
    let mut v = json!({
        "start": span.start,
        "end": span.end,
        "style": span.style.name().unwrap_or("unknown"),
    });
    match &span.style {
        Style::Link(url) => v["url"] = json!(url),
        Style::Color(c) => v["color"] = json!(c.name().unwrap_or("unknown")),
        _ => {}
    }
    v
}

/// One JSON object: room, seq, time (ms and RFC 3339), who, kind, and the
/// kind's fields.
pub fn json(ev: &RoomEvent) -> Value {
    let mut v = json!({
        "room": ev.room.0,
        "seq": ev.seq.0,
        "at": ev.at,
        "time": rfc3339(ev.at),
        "user_id": ev.actor.0,
        "user": ev.actor_name,
        "kind": kind_name(&ev.body),
    });
    match &ev.body {
        EventBody::Message {
            text,
            edited_at,
            spans,
            sticker,
            attachments,
        } => {
            v["text"] = json!(text);
            v["edited_at"] = json!(edited_at);
            v["spans"] = Value::Array(spans.iter().map(span_json).collect());
            v["sticker"] = json!(sticker);
            v["attachments"] = Value::Array(
                attachments
                    .iter()
                    .map(|f| {
                        json!({
                            "id": f.id,
                            "name": f.name,
                            "content_type": f.content_type,
                            "size": f.size,
                            "width": f.width,
                            "height": f.height,
                        })
                    })
                    .collect(),
            );
        }
        EventBody::MessageEdited {
            target,
            text,
            spans,
        } => {
            v["target"] = json!(target.0);
            v["text"] = json!(text);
            v["spans"] = Value::Array(spans.iter().map(span_json).collect());
        }
        EventBody::MessageDeleted { target } => v["target"] = json!(target.0),
        EventBody::MemberKicked {
            target,
            target_name,
        }
        | EventBody::MemberBanned {
            target,
            target_name,
        } => {
            v["target_id"] = json!(target.0);
            v["target"] = json!(target_name);
        }
        EventBody::RoleChanged {
            target,
            target_name,
            role,
        } => {
            v["target_id"] = json!(target.0);
            v["target"] = json!(target_name);
            v["role"] = json!(role_name(*role));
        }
        EventBody::RoomCreated { name, topic } | EventBody::RoomUpdated { name, topic } => {
            v["name"] = json!(name);
            v["topic"] = json!(topic);
        }
        _ => {}
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_sdk::{RoomId, Seq, UserId};

    #[test]
    fn times_are_utc_civil_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        // 2000-02-29 12:34:56 UTC, a leap day.
        assert_eq!(rfc3339(951_827_696_000), "2000-02-29T12:34:56Z");
        assert_eq!(clock(951_827_696_000), "12:34");
    }

    #[test]
    fn a_message_is_one_line_and_one_object() {
        let ev = RoomEvent {
            room: RoomId(3),
            seq: Seq(9),
            at: 0,
            actor: UserId(1),
            actor_name: "alice".into(),
            body: EventBody::text("two\nlines"),
        };
        assert_eq!(line(&ev), "1970-01-01T00:00:00Z #9 alice: two ⏎ lines");
        let v = json(&ev);
        assert_eq!(v["kind"], "message");
        assert_eq!(v["text"], "two\nlines");
        assert_eq!(v["user"], "alice");
        assert_eq!(v["seq"], 9);
    }

    #[test]
    fn files_follow_the_text_with_their_sizes() {
        let photo = Attachment {
            id: 7,
            name: "cat.png".into(),
            content_type: "image/png".into(),
            size: 48_213,
            width: Some(640),
            height: Some(480),
        };
        let notes = Attachment {
            id: 8,
            name: "notes.txt".into(),
            content_type: "text/plain; charset=utf-8".into(),
            size: 12,
            width: None,
            height: None,
        };
        let ev = |text: &str| RoomEvent {
            room: RoomId(3),
            seq: Seq(9),
            at: 0,
            actor: UserId(1),
            actor_name: "alice".into(),
            body: EventBody::Message {
                text: text.into(),
                edited_at: None,
                spans: vec![],
                sticker: None,
                attachments: vec![photo.clone(), notes.clone()],
            },
        };
        assert_eq!(
            line(&ev("look")),
            "1970-01-01T00:00:00Z #9 alice: look 📎 cat.png (48.2 kB, 640×480, #7) 📎 notes.txt (12 B, #8)"
        );
        assert_eq!(
            line(&ev("")),
            "1970-01-01T00:00:00Z #9 alice: 📎 cat.png (48.2 kB, 640×480, #7) 📎 notes.txt (12 B, #8)"
        );
        let v = json(&ev(""));
        assert_eq!(v["attachments"][0]["width"], 640);
        assert_eq!(v["attachments"][1]["name"], "notes.txt");
        assert_eq!(v["attachments"][1]["width"], Value::Null);
        assert_eq!(human_size(3_100_000), "3.1 MB");
    }
}
