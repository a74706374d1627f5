//! Conversions from stored records to the protocol's views of them.

use confab_protocol::{AuditItem, Notification, RoomLogItem};
use confab_store::{AuditRecord, NotificationRecord, RoomLogEntry};

pub fn notification(r: &NotificationRecord) -> Notification {
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

pub fn room_log_item(e: RoomLogEntry) -> RoomLogItem {
    RoomLogItem {
        room: e.room,
        first_joined_at: e.first_joined_at,
        last_joined_at: e.last_joined_at,
        left_at: e.left_at,
        reason: e.reason,
        terminated: e.terminated,
    }
}

pub fn audit_item(r: AuditRecord) -> AuditItem {
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
