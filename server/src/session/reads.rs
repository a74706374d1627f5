//! Requests answered from the store: room listings, HISTORY (the shard's
//! in-memory tail for recent events, the store for older ones), the
//! user's notifications and room log, and a room's audit trail.
//!
//! Each read runs in a task of its own so that a slow query never holds up
//! the connection's other requests; the answer is pushed into the
//! connection's outbound queue like any other reply.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use confab_protocol::frame::{begin_frame, end_frame, kind, HEADER_LEN, MAX_SERVER_FRAME_LEN};
use confab_protocol::wire::{put_bool, put_varint};
use confab_protocol::{
    AuditItem, ErrorCode, Notification, ReadState, RoomId, RoomLogItem, Seq, ServerMsg,
    UnreadSummary, UserId,
};
use confab_store::{RoomFilter, StoredEvent};
use tokio::sync::oneshot;

use super::validate::check_page_limit;
use super::{storage_error, Session};
use crate::outbound::OutboundQueue;
use crate::shard::ShardCmd;
use crate::state::ServerState;

/// Unread notifications pushed to a connection when it authenticates.
const UNREAD_ON_CONNECT: u32 = 50;

/// The largest frame a server sends (clients accept 16 MiB, SPEC.md §10.1).
const MAX_SERVER_FRAME: usize = MAX_SERVER_FRAME_LEN as usize;

impl Session {
    pub(super) fn list_rooms(
        &self,
        req_id: u32,
        user: UserId,
        query: String,
        exact: bool,
        offset: u32,
        limit: u32,
    ) -> Result<(), ErrorCode> {
        check_page_limit(limit)?;
        let (state, conn) = (self.state.clone(), self.conn.clone());
        tokio::spawn(answer(conn.clone(), async move {
            let filter = if exact {
                RoomFilter::Named(&query)
            } else {
                RoomFilter::Contains(&query)
            };
            let query = state.store.list_rooms(user, filter, offset, limit);
            match crate::metrics::query("list_rooms", query).await {
                Ok((rooms, total)) => {
                    let unread = None;
                    conn.reply(
                        req_id,
                        &ServerMsg::RoomList {
                            rooms,
                            total,
                            unread,
                        },
                    );
                }
                Err(e) => storage_error(&conn, req_id, e),
            }
        }));
        Ok(())
    }

    pub(super) fn my_rooms(&self, req_id: u32, user: UserId) -> Result<(), ErrorCode> {
        let (state, conn) = (self.state.clone(), self.conn.clone());
        tokio::spawn(answer(conn.clone(), async move {
            match crate::metrics::query("my_rooms", state.store.my_rooms(user)).await {
                Ok(mine) => {
                    let total = mine.len() as u32;
                    let read: Vec<ReadState> = mine
                        .iter()
                        .map(|m| ReadState {
                            room: m.info.id,
                            read_seq: m.read_seq,
                            unread: m.unread,
                        })
                        .collect();
                    let unread = UnreadSummary {
                        total: read.iter().fold(0u32, |t, r| t.saturating_add(r.unread)),
                        rooms: read,
                    };
                    let rooms = mine.into_iter().map(|m| m.info).collect();
                    conn.reply(
                        req_id,
                        &ServerMsg::RoomList {
                            rooms,
                            total,
                            unread: Some(unread),
                        },
                    );
                }
                Err(e) => storage_error(&conn, req_id, e),
            }
        }));
        Ok(())
    }

    pub(super) fn history(
        &self,
        req_id: u32,
        user: UserId,
        room: RoomId,
        before: Seq,
        limit: u32,
    ) -> Result<(), ErrorCode> {
        check_page_limit(limit)?;
        let (state, conn) = (self.state.clone(), self.conn.clone());
        let work = history(
            state,
            conn.clone(),
            req_id,
            user,
            room,
            before,
            limit as usize,
        );
        tokio::spawn(answer(conn, work));
        Ok(())
    }

    pub(super) fn notifications(
        &self,
        req_id: u32,
        user: UserId,
        before: u64,
        limit: u32,
        unread_only: bool,
    ) -> Result<(), ErrorCode> {
        check_page_limit(limit)?;
        let (state, conn) = (self.state.clone(), self.conn.clone());
        tokio::spawn(answer(conn.clone(), async move {
            let store = &state.store;
            let page = store.notifications(user, before, limit + 1, unread_only);
            let page = crate::metrics::query("notifications", page).await;
            let unread = crate::metrics::query("unread_count", store.unread_count(user)).await;
            match (page, unread) {
                (Ok(mut items), Ok(unread)) => {
                    let has_more = items.len() > limit as usize;
                    items.truncate(limit as usize);
                    let items = items.iter().map(Notification::from).collect();
                    conn.reply(
                        req_id,
                        &ServerMsg::NotificationList {
                            unread,
                            has_more,
                            items,
                        },
                    );
                }
                (Err(e), _) | (_, Err(e)) => storage_error(&conn, req_id, e),
            }
        }));
        Ok(())
    }

    pub(super) fn mark_read(&self, req_id: u32, user: UserId, up_to: u64) -> Result<(), ErrorCode> {
        let (state, conn) = (self.state.clone(), self.conn.clone());
        tokio::spawn(answer(conn.clone(), async move {
            match crate::metrics::query("mark_read", state.store.mark_read(user, up_to)).await {
                Ok(unread) => {
                    conn.reply(req_id, &ServerMsg::UnreadCount { unread });
                }
                Err(e) => storage_error(&conn, req_id, e),
            }
        }));
        Ok(())
    }

    /// SET_READ_MARKER (SPEC.md §5.9): the room's shard checks the
    /// caller and the seq; the marker is raised in the store directly
    /// (never lowered) and answered after it committed, with the room's
    /// unread count; if it moved, the user's other connections are told.
    pub(super) async fn set_read_marker(
        &self,
        req_id: u32,
        user: UserId,
        room: RoomId,
        seq: Seq,
    ) -> Result<(), ErrorCode> {
        let (tx, rx) = oneshot::channel();
        let check = ShardCmd::CheckReadMarker {
            room,
            user,
            seq,
            reply: tx,
        };
        self.state.router.send(room, check).await?;
        let (state, conn) = (self.state.clone(), self.conn.clone());
        tokio::spawn(answer(conn.clone(), async move {
            let code = match rx.await {
                Ok(Ok(())) => None,
                Ok(Err(code)) => Some(code),
                Err(_) => Some(ErrorCode::ShuttingDown),
            };
            if let Some(code) = code {
                conn.error(req_id, code, code.default_message());
                return;
            }
            let raise = state.store.raise_read_marker(user, room, seq);
            let moved = match crate::metrics::query("raise_read_marker", raise).await {
                Ok(moved) => moved,
                Err(e) => return storage_error(&conn, req_id, e),
            };
            crate::metrics::read_marker(moved);
            let now = state.store.room_unread(user, room);
            let now = match crate::metrics::query("room_unread", now).await {
                Ok(now) => ReadState {
                    room,
                    read_seq: now.read_seq,
                    unread: now.unread,
                },
                Err(e) => return storage_error(&conn, req_id, e),
            };
            conn.reply(req_id, &ServerMsg::ReadMarker(now));
            if moved {
                let mut frame = BytesMut::with_capacity(24);
                ServerMsg::ReadMarkerMoved(now).encode(0, &mut frame);
                let frame = frame.freeze();
                // Cluster mode: the user's connections on the other nodes.
                if let Some(relay) = &state.relay {
                    relay.push(crate::cluster::wire::UserPush::ToUser {
                        user,
                        frame: frame.clone(),
                    });
                }
                let others = ShardCmd::ToUser {
                    user,
                    except: conn.id,
                    frame,
                };
                // Only at shutdown can this fail; the marker is stored.
                let _ = state.router.send(room, others).await;
            }
        }));
        Ok(())
    }

    pub(super) fn room_log(&self, req_id: u32, user: UserId) -> Result<(), ErrorCode> {
        let (state, conn) = (self.state.clone(), self.conn.clone());
        tokio::spawn(answer(conn.clone(), async move {
            match crate::metrics::query("room_log", state.store.room_log(user)).await {
                Ok(entries) => {
                    let items = entries.into_iter().map(RoomLogItem::from).collect();
                    conn.reply(req_id, &ServerMsg::RoomLogList { items });
                }
                Err(e) => storage_error(&conn, req_id, e),
            }
        }));
        Ok(())
    }

    /// ROOM_AUDIT: the room's shard checks that `user` administers it, then
    /// the page comes from the store.
    pub(super) async fn room_audit(
        &self,
        req_id: u32,
        user: UserId,
        room: RoomId,
        before: u64,
        limit: u32,
    ) -> Result<(), ErrorCode> {
        check_page_limit(limit)?;
        let (tx, rx) = oneshot::channel();
        let check = ShardCmd::CheckAdmin {
            room,
            user,
            reply: tx,
        };
        self.state.router.send(room, check).await?;
        let (state, conn) = (self.state.clone(), self.conn.clone());
        tokio::spawn(answer(conn.clone(), async move {
            match rx.await {
                Ok(Ok(())) => {}
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
            }
            let page = state.store.audit(room, before, limit + 1);
            match crate::metrics::query("audit", page).await {
                Ok(mut records) => {
                    let has_more = records.len() > limit as usize;
                    records.truncate(limit as usize);
                    let items = records.into_iter().map(AuditItem::from).collect();
                    conn.reply(
                        req_id,
                        &ServerMsg::AuditPage {
                            room,
                            has_more,
                            items,
                        },
                    );
                }
                Err(e) => storage_error(&conn, req_id, e),
            }
        }));
        Ok(())
    }

    /// Pushes the user's unread notifications (oldest first) right after
    /// the connection authenticated, so nothing waits for a poll.
    pub(super) fn push_unread_notifications(&self, user: UserId) {
        let (state, conn) = (self.state.clone(), self.conn.clone());
        tokio::spawn(answer(conn.clone(), async move {
            let unread = state.store.notifications(user, 0, UNREAD_ON_CONNECT, true);
            match crate::metrics::query("notifications", unread).await {
                Ok(mut unread) => {
                    unread.reverse();
                    for n in &unread {
                        conn.reply(0, &ServerMsg::Notification(n.into()));
                    }
                }
                Err(e) => tracing::warn!(error = %e, "could not load unread notifications"),
            }
        }));
    }
}

/// Runs `work`, which answers on `conn`, then writes the answer.
async fn answer(conn: Arc<OutboundQueue>, work: impl std::future::Future<Output = ()>) {
    work.await;
    conn.flush();
}

/// Serves HISTORY: recent events from the owning shard's tail (which holds
/// every not-yet-durable event), older ones from the store, built into one
/// HISTORY_PAGE without decoding the tail's event frames again.
async fn history(
    state: Arc<ServerState>,
    conn: Arc<OutboundQueue>,
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
    let slice = match state.router.send(room, cmd).await {
        Err(code) => Err(code),
        Ok(()) => rx.await.unwrap_or(Err(ErrorCode::ShuttingDown)),
    };
    let slice = match slice {
        Ok(slice) => slice,
        Err(code) => {
            conn.error(req_id, code, code.default_message());
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
        let older = state
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
    conn.push_reply(req_id, history_page(req_id, room, has_more, &frames));
}

/// A stored event as an EVENT frame.
fn event_frame(ev: StoredEvent) -> Option<Bytes> {
    let ev = ev.to_event().ok()?;
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
        let fields = &f[HEADER_LEN..];
        put_varint(&mut buf, fields.len() as u64);
        buf.extend_from_slice(fields);
    }
    end_frame(&mut buf, start);
    buf.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use confab_protocol::{EventBody, RoomEvent};

    #[test]
    fn history_page_from_event_frames_decodes_to_the_events() {
        let ev = RoomEvent {
            room: RoomId(3),
            seq: Seq(9),
            at: 5,
            actor: UserId(1),
            actor_name: "a".into(),
            body: EventBody::text("hi"),
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
