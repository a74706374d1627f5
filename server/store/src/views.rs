//! Stored records as the protocol shows them, and room events as they are
//! stored: the one place these conversions are written.

use bytes::BytesMut;
use confab_protocol::wire::Reader;
use confab_protocol::{AuditItem, DecodeError, EventBody, Notification, RoomEvent, RoomLogItem};

use crate::{AuditRecord, NotificationRecord, RoomLogEntry, StoredEvent};

impl StoredEvent {
    /// The event as stored: its kind's fields in their wire encoding.
    pub fn from_event(ev: RoomEvent) -> StoredEvent {
        let mut body = BytesMut::new();
        ev.body.encode_fields(&mut body);
        StoredEvent {
            room: ev.room,
            seq: ev.seq,
            at: ev.at,
            actor: ev.actor,
            actor_name: ev.actor_name,
            kind: ev.body.kind(),
            // Takes the buffer over (no second allocation and copy per event).
            body: Vec::from(body),
        }
    }

    /// The protocol's event; an error if the body is not a valid encoding
    /// of its kind (a corrupt row).
    pub fn to_event(&self) -> Result<RoomEvent, DecodeError> {
        let body = EventBody::decode_fields(self.kind, &mut Reader::new(&self.body))?;
        Ok(RoomEvent {
            room: self.room,
            seq: self.seq,
            at: self.at,
            actor: self.actor,
            actor_name: self.actor_name.clone(),
            body,
        })
    }
}

impl From<&NotificationRecord> for Notification {
    fn from(r: &NotificationRecord) -> Notification {
        Notification {
            id: r.id,
            kind: r.kind,
            room: r.room,
            room_name: r.room_name.clone(),
            actor: r.actor,
            actor_name: r.actor_name.clone(),
            at: r.at,
            read: r.read,
        }
    }
}

impl From<RoomLogEntry> for RoomLogItem {
    fn from(e: RoomLogEntry) -> RoomLogItem {
        RoomLogItem {
            room: e.room,
            first_joined_at: e.first_joined_at,
            last_joined_at: e.last_joined_at,
            left_at: e.left_at,
            reason: e.reason,
            terminated: e.terminated,
        }
    }
}

impl From<AuditRecord> for AuditItem {
    fn from(r: AuditRecord) -> AuditItem {
        AuditItem {
            id: r.id,
            at: r.entry.at,
            actor: r.entry.actor,
            actor_name: r.actor_name,
            action: r.entry.action.as_str().to_owned(),
            target: r.entry.target.unwrap_or_default(),
            target_name: r.target_name,
            detail: r.entry.detail,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_protocol::{RoomId, Seq, UserId};

    #[test]
    fn an_event_survives_storage_unchanged() {
        let ev = RoomEvent {
            room: RoomId(3),
            seq: Seq(9),
            at: 5,
            actor: UserId(1),
            actor_name: "alice".into(),
            body: EventBody::RoomUpdated {
                name: "n".into(),
                topic: "t".into(),
            },
        };
        let stored = StoredEvent::from_event(ev.clone());
        assert_eq!(stored.to_event().unwrap(), ev);
        let corrupt = StoredEvent {
            body: vec![0xff],
            ..stored
        };
        assert!(corrupt.to_event().is_err());
    }
}
