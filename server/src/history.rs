//! HISTORY: a page of a room's events, newest first — the recent part
//! from the owning shard's in-memory tail (which holds every event not yet
//! durable), the older part from the store — built into one HISTORY_PAGE
//! without decoding the event frames again.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use confab_protocol::frame::{begin_frame, end_frame, kind};
use confab_protocol::wire::{put_bool, put_varint, Reader};
use confab_protocol::{ErrorCode, EventBody, RoomEvent, RoomId, Seq, UserId};
use confab_store::StoredEvent;
use tokio::sync::oneshot;

use crate::outbound::Conn;
use crate::session::{storage_error, Shared};
use crate::shard::ShardCmd;

/// The largest frame a server sends (SPEC.md: clients accept 16 MiB).
const MAX_SERVER_FRAME: usize = confab_protocol::frame::MAX_SERVER_FRAME_LEN as usize;

/// Serves HISTORY: recent events from the owning shard's tail (which holds
/// every not-yet-durable event), older ones from the store.
pub(crate) async fn history(
    shared: Arc<Shared>,
    conn: Arc<Conn>,
    req_id: u32,
    user: UserId,
    room: RoomId,
    before: Seq,
    limit: usize,
) {
    let (tx, rx) = oneshot::channel();
    let cmd = ShardCmd::Tail {
        room,
        user,
        before,
        limit: limit + 1,
        reply: tx,
    };
    if shared.router.send(room, cmd).await.is_err() {
        conn.error(
            req_id,
            ErrorCode::ShuttingDown,
            ErrorCode::ShuttingDown.default_message(),
        );
        return;
    }
    let slice = match rx.await {
        Ok(Ok(slice)) => slice,
        Ok(Err(code)) => {
            conn.error(req_id, code, code.default_message());
            return;
        }
        Err(_) => {
            conn.error(
                req_id,
                ErrorCode::ShuttingDown,
                ErrorCode::ShuttingDown.default_message(),
            );
            return;
        }
    };
    let mut frames = slice.frames;
    let want = limit + 1;
    if frames.len() < want && slice.floor.0 > 1 {
        let upper = if before.0 == 0 {
            slice.floor
        } else {
            Seq(before.0.min(slice.floor.0))
        };
        let older = shared
            .store
            .history(room, upper, (want - frames.len()) as u32);
        match crate::metrics::query("history", older).await {
            Ok(events) => {
                for ev in events {
                    match event_frame(ev) {
                        Some(f) => frames.push(f),
                        None => {
                            conn.error(
                                req_id,
                                ErrorCode::Internal,
                                "a stored event could not be decoded",
                            );
                            return;
                        }
                    }
                }
            }
            Err(e) => return storage_error(&conn, req_id, e),
        }
    }
    let mut has_more = frames.len() > limit;
    frames.truncate(limit);
    // Stay within the largest frame clients must accept: a page of huge
    // messages ends early and says there is more.
    let mut size = 64;
    if let Some(fit) = frames.iter().position(|f| {
        size += f.len() + 5;
        size > MAX_SERVER_FRAME
    }) {
        frames.truncate(fit.max(1));
        has_more = true;
    }
    conn.push(history_page(req_id, room, has_more, &frames));
}

/// A stored event as an EVENT frame.
fn event_frame(ev: StoredEvent) -> Option<Bytes> {
    let body = EventBody::decode_fields(ev.kind, &mut Reader::new(&ev.body)).ok()?;
    let ev = RoomEvent {
        room: ev.room,
        seq: ev.seq,
        at: ev.at,
        actor: ev.actor,
        actor_name: ev.actor_name,
        body,
    };
    let mut buf = BytesMut::new();
    ev.encode_frame(&mut buf);
    Some(buf.freeze())
}

/// Builds a HISTORY_PAGE from EVENT frames without decoding them: an
/// event's fields are the EVENT frame minus its 9-byte header.
fn history_page(req_id: u32, room: RoomId, has_more: bool, frames: &[Bytes]) -> Bytes {
    let size: usize = frames.iter().map(|f| f.len()).sum();
    let mut buf = BytesMut::with_capacity(32 + size);
    let start = begin_frame(&mut buf, kind::HISTORY_PAGE, req_id);
    put_varint(&mut buf, room.0);
    put_bool(&mut buf, has_more);
    put_varint(&mut buf, frames.len() as u64);
    for f in frames {
        let fields = &f[confab_protocol::frame::HEADER_LEN..];
        put_varint(&mut buf, fields.len() as u64);
        buf.extend_from_slice(fields);
    }
    end_frame(&mut buf, start);
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_protocol::ServerMsg;

    #[test]
    fn history_page_from_event_frames_decodes_to_the_events() {
        let ev = RoomEvent {
            room: RoomId(3),
            seq: Seq(9),
            at: 5,
            actor: UserId(1),
            actor_name: "a".into(),
            body: EventBody::Message { text: "hi".into() },
        };
        let mut buf = BytesMut::new();
        ev.encode_frame(&mut buf);
        let page = history_page(4, RoomId(3), true, &[buf.freeze()]);
        let mut bm = BytesMut::from(&page[..]);
        let raw = confab_protocol::frame::split_frame(&mut bm, 1 << 20)
            .unwrap()
            .unwrap();
        assert_eq!(raw.req_id, 4);
        assert_eq!(
            ServerMsg::decode(&raw).unwrap(),
            ServerMsg::HistoryPage {
                room: RoomId(3),
                events: vec![ev],
                has_more: true
            }
        );
    }
}
