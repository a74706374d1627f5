//! What the server pushes without being asked, plus connection changes.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, Mutex};

use confab_protocol::{Notification, RoomEvent, RoomId, RoomInfo, Seq};

use crate::error::Code;

/// One item of a client's event stream, in the order things happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A sequenced room event (message, join, leave, room created), live or
    /// replayed after a reconnect. Duplicates (`seq` at or below the last one
    /// seen in that room) are dropped before they get here.
    Room(RoomEvent),
    /// After a reconnect the server could not replay this room's missed
    /// events: reload its history up to `last_seq`; live events continue
    /// after it.
    ResumeGap { room: RoomId, last_seq: Seq },
    /// A persistent notification for this user (invited, kicked, join
    /// request, …), live or — right after connecting — one still unread.
    /// The same notification may arrive twice around a reconnect; its `id`
    /// identifies it.
    Notification(Notification),
    /// A room that concerns this user was created (every public room, and
    /// private rooms this user created on another connection).
    RoomAnnounced(RoomInfo),
    /// The server sent CLOSE; [`Event::Disconnected`] follows. Also sent,
    /// after [`Event::Disconnected`] and as the stream's last item, when a
    /// reconnect is refused for good (`INVALID_TOKEN`: the session expired
    /// or was revoked meanwhile).
    Closed { code: Code, message: String },
    /// The connection dropped. With reconnection enabled, either
    /// [`Event::Reconnected`] follows or the stream ends.
    Disconnected,
    /// A new connection is up, authenticated with the remembered token and
    /// resumed from the last seen seq of every tracked room. Replayed events
    /// follow.
    Reconnected,
}

/// A handle on a client's event stream. Clones share one stream: each event
/// goes to whichever clone asks first. The stream ends (`None`) when the
/// client stops for good: it was closed or dropped, the server logged it
/// out, or the connection dropped and reconnection is disabled or gave up.
///
/// Events are buffered without bound until read; a client that never reads
/// them keeps them all in memory.
#[derive(Debug, Clone)]
pub struct Events {
    rx: Arc<Mutex<mpsc::UnboundedReceiver<Event>>>,
}

impl Events {
    pub(crate) fn new(rx: mpsc::UnboundedReceiver<Event>) -> Self {
        Events {
            rx: Arc::new(Mutex::new(rx)),
        }
    }

    /// Waits for the next event; `None` once the stream has ended.
    /// Cancel-safe: no event is lost if the future is dropped.
    pub async fn next(&self) -> Option<Event> {
        self.rx.lock().await.recv().await
    }

    /// Like [`Events::next`], but gives up after `timeout` (returning `None`).
    pub async fn next_timeout(&self, timeout: Duration) -> Option<Event> {
        tokio::time::timeout(timeout, self.next())
            .await
            .ok()
            .flatten()
    }

    /// An event that is already buffered, without waiting. Returns `None`
    /// if there is none, or if another task is waiting on this stream.
    pub fn try_next(&self) -> Option<Event> {
        self.rx.try_lock().ok()?.try_recv().ok()
    }
}
