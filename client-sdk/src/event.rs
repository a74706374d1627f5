//! What the server pushes without being asked, plus connection changes.

use std::collections::BTreeMap;
use std::fmt;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use futures_util::stream::{FusedStream, Stream};
use tokio::sync::{mpsc, Mutex};
use tokio_util::sync::ReusableBoxFuture;

use confab_protocol::{
    Notification, Presence, Profile, ReadState, RoomEvent, RoomId, RoomInfo, Seq, UserId,
};

use crate::error::Code;

/// One item of a client's event stream, in the order things happened.
///
/// Non-exhaustive: later versions may add kinds of events, so a `match`
/// needs a wildcard arm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A sequenced room event (message, join, leave, room created), live or
    /// replayed after a reconnect. Duplicates (`seq` at or below the last one
    /// seen in that room) are dropped before they get here.
    Room(RoomEvent),
    /// After a reconnect the server could not replay this room's missed
    /// events: reload its history up to `last_seq`; live events continue
    /// after it.
    ResumeGap {
        /// The room with missed events.
        room: RoomId,
        /// The last event the server could not replay.
        last_seq: Seq,
    },
    /// A persistent notification for this user (invited, kicked, join
    /// request, …), live or — right after connecting — one still unread.
    /// The same notification may arrive twice around a reconnect; its `id`
    /// identifies it.
    Notification(Notification),
    /// A room that concerns this user was created (every public room, and
    /// private rooms this user created on another connection).
    RoomAnnounced(RoomInfo),
    /// Another member of `room` started (`typing`) or stopped typing
    /// (SPEC.md §5.5.7). Never about this user's own typing; a STOP also
    /// comes when a typist sent no renewal for 5 s. Ephemeral: not
    /// replayed after a reconnect.
    Typing {
        /// The room.
        room: RoomId,
        /// Who is typing.
        user: UserId,
        /// Their username.
        username: String,
        /// `true`: started; `false`: stopped.
        typing: bool,
    },
    /// Your read marker in a room moved: set on another of your
    /// connections (SPEC.md §5.9). Keep the highest `read_seq` you have
    /// seen per room: two devices' markers may arrive in either order.
    ReadMarkerMoved(ReadState),
    /// A member of `room` (possibly you, from another device) is now
    /// online, away or offline (SPEC.md §5.10). One per room you share
    /// with them, at most one per user per second (the latest state; a
    /// quick flap back may send nothing). The server sends the changes of
    /// one coalescing tick in a room as one PRESENCE frame listing them
    /// all; the SDK reports one `Presence` per entry, in the frame's
    /// order, so a reconnect storm arrives as a burst of these. Never sent
    /// in rooms above the server's presence size limit: read
    /// [`crate::Client::members`] there. Ephemeral: not replayed after a
    /// reconnect.
    Presence {
        /// The room whose members are told.
        room: RoomId,
        /// Whose presence changed.
        user: UserId,
        /// Their username.
        username: String,
        /// Their presence now.
        presence: Presence,
    },
    /// A member of `room` changed their profile (display name, bio,
    /// avatar; never the email). Coalesced by the server: at most one per
    /// user per second, the latest profile winning; the changes of one
    /// tick in a room arrive as one frame, reported as one event per
    /// profile. A member who shares several rooms with you is reported
    /// once per shared room. Ephemeral: not replayed after a reconnect
    /// ([`crate::Client::profile`] reads the current one).
    ProfileChanged {
        /// The room whose members are told.
        room: RoomId,
        /// The profile as it now is.
        profile: Profile,
    },
    /// The bounded event buffer ([`crate::ConnectOptions::event_buffer`])
    /// was full and events were dropped where this item stands; what came
    /// after it is delivered as usual.
    Overflow(Overflow),
    /// The server sent CLOSE; [`Event::Disconnected`] follows. Also sent,
    /// after [`Event::Disconnected`] and as the stream's last item, when a
    /// reconnect is refused for good (`INVALID_TOKEN`: the session expired
    /// or was revoked meanwhile).
    Closed {
        /// The CLOSE frame's (or the refusal's) code.
        code: Code,
        /// The server's explanation, for humans.
        message: String,
    },
    /// The connection dropped. With reconnection enabled, either
    /// [`Event::Reconnected`] follows or the stream ends.
    Disconnected,
    /// A new connection is up, authenticated with the remembered token and
    /// resumed from the last seen seq of every tracked room. Replayed events
    /// follow.
    Reconnected,
}

/// What [`Event::Overflow`] reports: the events dropped because the
/// bounded event buffer was full, and how to recover what they said.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Overflow {
    /// How many events were dropped.
    pub dropped: u64,
    /// For each room whose room events (or [`Event::ResumeGap`]) were among
    /// them, the seq of the last one: reload the room's history up to it,
    /// as after [`Event::ResumeGap`]. Live events continue after it.
    pub rooms: BTreeMap<RoomId, Seq>,
    /// Notifications were among them. They stay unread on the server:
    /// [`crate::Client::notifications`] lists them.
    pub notifications: bool,
    /// [`Event::RoomAnnounced`] events were among them:
    /// [`crate::Client::list_rooms`] finds the new rooms.
    pub rooms_announced: bool,
}

impl Overflow {
    /// Nothing dropped yet.
    pub fn new() -> Overflow {
        Overflow::default()
    }

    /// Counts `event` as dropped. Connection-state events are never
    /// dropped; they are left alone here.
    pub(crate) fn absorb(&mut self, event: &Event) {
        match event {
            Event::Room(ev) => {
                self.rooms.insert(ev.room, ev.seq);
            }
            Event::ResumeGap { room, last_seq } => {
                self.rooms.insert(*room, *last_seq);
            }
            Event::Notification(_) => self.notifications = true,
            Event::RoomAnnounced(_) => self.rooms_announced = true,
            // Ephemeral: the next START or STOP says it again.
            Event::Typing { .. } => {}
            // Ephemeral too: MY_ROOMS has every marker.
            Event::ReadMarkerMoved(_) => {}
            // Ephemeral: LIST_MEMBERS has everyone's presence.
            Event::Presence { .. } => {}
            // Ephemeral: GET_PROFILE reads the current one.
            Event::ProfileChanged { .. } => {}
            Event::Overflow(o) => {
                self.dropped += o.dropped;
                self.rooms.extend(o.rooms.iter().map(|(r, s)| (*r, *s)));
                self.notifications |= o.notifications;
                self.rooms_announced |= o.rooms_announced;
                return;
            }
            Event::Closed { .. } | Event::Disconnected | Event::Reconnected => return,
        }
        self.dropped += 1;
    }
}

impl Event {
    /// Whether the event may be dropped (and reported in an
    /// [`Event::Overflow`]) when the buffer is full.
    pub(crate) fn droppable(&self) -> bool {
        !matches!(
            self,
            Event::Closed { .. } | Event::Disconnected | Event::Reconnected
        )
    }
}

/// [`Events::next_timeout`] (or [`crate::Client::next_event_timeout`]) saw
/// no event within its timeout. The stream has not ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed {
    timeout: Duration,
}

impl Elapsed {
    pub(crate) fn new(timeout: Duration) -> Elapsed {
        Elapsed { timeout }
    }

    /// The timeout that elapsed.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "no event within {:?}", self.timeout)
    }
}

impl std::error::Error for Elapsed {}

/// [`Events::try_next`] found no event ready: none is buffered, or another
/// handle is waiting for one. The stream has not ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Empty;

impl fmt::Display for Empty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("no event ready")
    }
}

impl std::error::Error for Empty {}

/// The receiving end of the event buffer, shared by every handle.
pub(crate) type Shared = Arc<Mutex<mpsc::Receiver<Event>>>;

/// Waits for the next event from `shared`. Cancel-safe: dropping it loses
/// nothing.
pub(crate) async fn recv(shared: Shared) -> Option<Event> {
    shared.lock_owned().await.recv().await
}

/// A handle on a client's event stream: a [`Stream`] of [`Event`]s.
///
/// ```no_run
/// use confab_sdk::Event;
/// use futures_util::{future, StreamExt};
///
/// # async fn run(client: confab_sdk::Client) {
/// // Room events only, with the Stream combinators.
/// let mut room_events = client.events().filter_map(|event| {
///     future::ready(match event {
///         Event::Room(ev) => Some(ev),
///         _ => None,
///     })
/// });
/// while let Some(ev) = room_events.next().await {
///     println!("#{} in room {}", ev.seq, ev.room);
/// }
/// // The client stopped for good.
/// # }
/// ```
///
/// Clones (and [`crate::Client::next_event`]) share one stream: each event
/// goes to whichever handle asks first; handles waiting at once are served
/// in turn. The stream ends (`None`) when the client stops for good: it was
/// closed or dropped, the server logged it out, or the connection dropped
/// and reconnection is disabled or gave up.
///
/// A handle that was polled and put aside before an event arrived keeps
/// its turn until it is polled again or dropped; other handles wait
/// meanwhile. No event is lost that way: it goes to the handle when it is
/// polled.
///
/// How many events are buffered until read is
/// [`crate::ConnectOptions::event_buffer`].
pub struct Events {
    shared: Shared,
    /// The wait in progress, if `waiting`; kept across polls so that
    /// dropping a `next()` future loses no event.
    wait: Option<ReusableBoxFuture<'static, Option<Event>>>,
    waiting: bool,
    ended: bool,
}

impl Events {
    pub(crate) fn new(shared: Shared) -> Self {
        Events {
            shared,
            wait: None,
            waiting: false,
            ended: false,
        }
    }

    /// Waits for the next event; `None` once the stream has ended. The same
    /// as [`futures_util::StreamExt::next`]. Cancel-safe: no event is lost
    /// if the future is dropped.
    pub async fn next(&mut self) -> Option<Event> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Like [`Events::next`], but gives up after `timeout`: `Err(Elapsed)`
    /// if no event arrived by then, `Ok(None)` if the stream has ended.
    /// Cancel-safe.
    pub async fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Event>, Elapsed> {
        tokio::time::timeout(timeout, self.next())
            .await
            .map_err(|_| Elapsed::new(timeout))
    }

    /// An event that is already buffered, without waiting: `Ok(Some(_))`;
    /// `Ok(None)` if the stream has ended; `Err(Empty)` if no event is
    /// ready, or another handle (or this one's own pending
    /// [`Events::next`]) is waiting for one.
    pub fn try_next(&self) -> Result<Option<Event>, Empty> {
        if self.ended {
            return Ok(None);
        }
        let mut rx = self.shared.try_lock().map_err(|_| Empty)?;
        match rx.try_recv() {
            Ok(event) => Ok(Some(event)),
            Err(mpsc::error::TryRecvError::Empty) => Err(Empty),
            Err(mpsc::error::TryRecvError::Disconnected) => Ok(None),
        }
    }
}

impl Clone for Events {
    /// Another handle on the same stream, with no wait in progress.
    fn clone(&self) -> Self {
        Events::new(self.shared.clone())
    }
}

impl fmt::Debug for Events {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Events")
            .field("waiting", &self.waiting)
            .field("ended", &self.ended)
            .finish_non_exhaustive()
    }
}

impl Stream for Events {
    type Item = Event;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Event>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        if !this.waiting {
            let wait = recv(this.shared.clone());
            match &mut this.wait {
                Some(slot) => slot.set(wait),
                None => this.wait = Some(ReusableBoxFuture::new(wait)),
            }
            this.waiting = true;
        }
        let wait = this.wait.as_mut().expect("a wait is in progress");
        let event = ready!(wait.poll(cx));
        this.waiting = false;
        this.ended = event.is_none();
        Poll::Ready(event)
    }
}

impl FusedStream for Events {
    fn is_terminated(&self) -> bool {
        self.ended
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;

    use super::*;

    fn stream(capacity: usize) -> (mpsc::Sender<Event>, Events) {
        let (tx, rx) = mpsc::channel(capacity);
        (tx, Events::new(Arc::new(Mutex::new(rx))))
    }

    fn gap(n: u64) -> Event {
        Event::ResumeGap {
            room: RoomId(1),
            last_seq: Seq(n),
        }
    }

    #[tokio::test]
    async fn the_stream_yields_events_in_order_then_ends() {
        let (tx, mut events) = stream(16);
        for n in 1..=5 {
            tx.send(gap(n)).await.unwrap();
        }
        tx.send(Event::Disconnected).await.unwrap();
        drop(tx);
        let all: Vec<Event> = (&mut events).collect().await;
        let mut want: Vec<Event> = (1..=5).map(gap).collect();
        want.push(Event::Disconnected);
        assert_eq!(all, want);
        assert!(events.is_terminated());
        assert_eq!(events.next().await, None, "stays ended");
        assert_eq!(events.try_next(), Ok(None));
    }

    #[tokio::test]
    async fn next_timeout_tells_a_timeout_from_the_end() {
        let (tx, mut events) = stream(4);
        let t = Duration::from_millis(50);
        assert_eq!(events.next_timeout(t).await, Err(Elapsed::new(t)));
        tx.send(gap(1)).await.unwrap();
        assert_eq!(events.next_timeout(t).await, Ok(Some(gap(1))));
        drop(tx);
        assert_eq!(events.next_timeout(t).await, Ok(None));
    }

    #[tokio::test]
    async fn a_timed_out_wait_loses_no_event() {
        let (tx, mut events) = stream(4);
        let t = Duration::from_millis(10);
        assert!(events.next_timeout(t).await.is_err());
        // The abandoned wait is resumed, not replaced by a second one.
        tx.send(gap(7)).await.unwrap();
        assert_eq!(events.next().await, Some(gap(7)));
    }

    #[tokio::test]
    async fn try_next_tells_empty_from_ended() {
        let (tx, events) = stream(4);
        assert_eq!(events.try_next(), Err(Empty));
        tx.send(gap(1)).await.unwrap();
        assert_eq!(events.try_next(), Ok(Some(gap(1))));
        drop(tx);
        assert_eq!(events.try_next(), Ok(None));
    }

    #[tokio::test]
    async fn clones_share_one_stream_and_all_waiters_are_served() {
        let (tx, events) = stream(16);
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let mut handle = events.clone();
                tokio::spawn(async move { handle.next().await })
            })
            .collect();
        tokio::task::yield_now().await;
        for n in 1..=3 {
            tx.send(gap(n)).await.unwrap();
        }
        let mut got = Vec::new();
        for w in waiters {
            got.push(w.await.unwrap().expect("an event each"));
        }
        got.sort_by_key(|e| match e {
            Event::ResumeGap { last_seq, .. } => *last_seq,
            _ => Seq(0),
        });
        assert_eq!(got, (1..=3).map(gap).collect::<Vec<_>>());
    }

    #[test]
    fn overflow_counts_what_it_absorbs() {
        let mut o = Overflow::new();
        o.absorb(&gap(4));
        o.absorb(&gap(9));
        o.absorb(&Event::Disconnected);
        assert_eq!(o.dropped, 2);
        assert_eq!(o.rooms.get(&RoomId(1)), Some(&Seq(9)));
        assert!(!o.notifications && !o.rooms_announced);
        assert!(!Event::Reconnected.droppable());
        assert!(gap(1).droppable());
    }
}
