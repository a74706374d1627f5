//! The SDK against a scripted fake server on loopback: what goes on the
//! wire for the typed methods, and how the bounded event buffer behaves.

use std::time::Duration;

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_util::codec::FramedRead;

use confab_sdk::raw::protocol::{FrameCodec, Request, ServerMsg, Welcome};
use confab_sdk::{
    Client, ConnectOptions, Event, EventBody, RoomEvent, RoomId, Seq, SessionUser, UserId,
};

const WAIT: Duration = Duration::from_secs(5);
const ROOM: RoomId = RoomId(1);
const TOKEN: &str = "feedfacefeedfacefeedfacefeedface";

/// The server's end of one connection.
struct Peer {
    read: FramedRead<tokio::net::tcp::OwnedReadHalf, FrameCodec>,
    write: OwnedWriteHalf,
}

impl Peer {
    async fn accept(listener: TcpListener) -> Peer {
        let (stream, _) = listener.accept().await.unwrap();
        let (read, write) = stream.into_split();
        Peer {
            read: FramedRead::new(read, FrameCodec::new(64 * 1024)),
            write,
        }
    }

    /// The next request and its id; `None` once the client has gone.
    async fn recv(&mut self) -> Option<(u32, Request)> {
        let frame = self.read.next().await?.ok()?;
        Some((frame.req_id, Request::decode(&frame).unwrap()))
    }

    async fn send(&mut self, req_id: u32, msg: ServerMsg) {
        let mut buf = BytesMut::new();
        msg.encode(req_id, &mut buf);
        self.write.write_all(&buf).await.unwrap();
    }

    /// Answers HELLO with WELCOME (authenticated if HELLO had a token).
    async fn handshake(&mut self) {
        let (id, req) = self.recv().await.unwrap();
        let Request::Hello(hello) = req else {
            panic!("expected HELLO, got {req:?}")
        };
        let session = hello.token.map(|_| SessionUser {
            user: UserId(7),
            username: "alice".into(),
        });
        let welcome = Welcome {
            version: confab_sdk::PROTOCOL_VERSION,
            server: "fake".into(),
            max_frame_len: 64 * 1024,
            max_message_len: 4096,
            heartbeat_ms: 0,
            session,
            rate_limit: None,
        };
        self.send(id, ServerMsg::Welcome(welcome)).await;
    }

    /// Answers the next request, which must be PING.
    async fn pong(&mut self) {
        let (id, req) = self.recv().await.unwrap();
        let Request::Ping { nonce } = req else {
            panic!("expected PING, got {req:?}")
        };
        self.send(id, ServerMsg::Pong { nonce }).await;
    }
}

fn message(seq: u64) -> RoomEvent {
    RoomEvent {
        room: ROOM,
        seq: Seq(seq),
        at: 1_700_000_000_000,
        actor: UserId(2),
        actor_name: "bob".into(),
        body: EventBody::text(format!("m{seq}")),
    }
}

/// A fake server running `script` on the first connection to it.
async fn fake<F, Fut>(script: F) -> (String, JoinHandle<()>)
where
    F: FnOnce(Peer) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("confab://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        let mut peer = Peer::accept(listener).await;
        peer.handshake().await;
        script(peer).await;
    });
    (url, task)
}

async fn next(events: &mut confab_sdk::Events) -> Option<Event> {
    events.next_timeout(WAIT).await.expect("an event in time")
}

/// A full bounded buffer drops events into one `Event::Overflow` instead
/// of holding up the connection: the reply to a request sent after the
/// events arrives at once, and later events are delivered as usual.
#[tokio::test]
async fn a_full_event_buffer_reports_an_overflow_and_never_holds_up_replies() {
    let (go, go_rx) = oneshot::channel::<()>();
    let (url, server) = fake(|mut peer| async move {
        for seq in 1..=10 {
            peer.send(0, ServerMsg::Event(message(seq))).await;
        }
        peer.pong().await;
        go_rx.await.unwrap();
        peer.send(0, ServerMsg::Event(message(11))).await;
        // Then the connection drops.
    })
    .await;
    let client = Client::connect(&url, ConnectOptions::new().with_event_buffer(2))
        .await
        .unwrap();
    // Nobody reads events yet; the PONG comes after all ten of them.
    tokio::time::timeout(WAIT, client.ping())
        .await
        .expect("the reply is not held up by unread events")
        .unwrap();

    let mut events = client.events();
    assert_eq!(next(&mut events).await, Some(Event::Room(message(1))));
    assert_eq!(next(&mut events).await, Some(Event::Room(message(2))));
    let Some(Event::Overflow(overflow)) = next(&mut events).await else {
        panic!("expected an overflow")
    };
    assert_eq!(overflow.dropped, 8);
    assert_eq!(
        overflow.rooms.into_iter().collect::<Vec<_>>(),
        [(ROOM, Seq(10))]
    );
    assert!(!overflow.notifications && !overflow.rooms_announced);

    go.send(()).unwrap();
    assert_eq!(next(&mut events).await, Some(Event::Room(message(11))));
    assert_eq!(next(&mut events).await, Some(Event::Disconnected));
    assert_eq!(
        next(&mut events).await,
        None,
        "no reconnect: the stream ends"
    );
    server.await.unwrap();
}

/// Connection-state events are never dropped: they wait behind the
/// overflow, in order, and the stream still ends after them.
#[tokio::test]
async fn connection_events_survive_a_full_buffer() {
    let (url, server) = fake(|mut peer| async move {
        for seq in 1..=3 {
            peer.send(0, ServerMsg::Event(message(seq))).await;
        }
        peer.pong().await;
    })
    .await;
    let client = Client::connect(&url, ConnectOptions::new().with_event_buffer(1))
        .await
        .unwrap();
    client.ping().await.unwrap();
    server.await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    while client.is_connected() {
        assert!(tokio::time::Instant::now() < deadline, "still connected");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Let the supervisor hold `Disconnected` back before anything is read.
    tokio::time::sleep(Duration::from_millis(50)).await;

    let all: Vec<Event> = tokio::time::timeout(WAIT, client.events().collect())
        .await
        .expect("the stream ends");
    let mut overflow = confab_sdk::Overflow::new();
    overflow.dropped = 2;
    overflow.rooms.insert(ROOM, Seq(3));
    assert_eq!(
        all,
        [
            Event::Room(message(1)),
            Event::Overflow(overflow),
            Event::Disconnected
        ]
    );
}

/// "From the newest" is `None`, never a magic number, and "before the
/// first" asks for nothing rather than for the newest.
#[tokio::test]
async fn paging_bounds_go_on_the_wire_without_sentinels() {
    let (seen_tx, seen_rx) = oneshot::channel::<Vec<u64>>();
    let (url, server) = fake(|mut peer| async move {
        let mut seen = Vec::new();
        while let Some((id, req)) = peer.recv().await {
            let reply = match req {
                Request::History { room, before, .. } => {
                    seen.push(before.0);
                    ServerMsg::HistoryPage {
                        room,
                        events: vec![message(1)],
                        has_more: false,
                    }
                }
                Request::ListNotifications { before, .. } => {
                    seen.push(before);
                    ServerMsg::NotificationList {
                        unread: 0,
                        has_more: false,
                        items: Vec::new(),
                    }
                }
                Request::RoomAudit { room, before, .. } => {
                    seen.push(before);
                    ServerMsg::AuditPage {
                        room,
                        has_more: false,
                        items: Vec::new(),
                    }
                }
                Request::ListRooms { offset, .. } => {
                    seen.push(u64::from(offset));
                    ServerMsg::RoomList {
                        rooms: Vec::new(),
                        total: 42,
                        unread: None,
                    }
                }
                Request::Ping { nonce } => ServerMsg::Pong { nonce },
                other => panic!("unexpected {other:?}"),
            };
            peer.send(id, reply).await;
        }
        seen_tx.send(seen).unwrap();
    })
    .await;
    let client = Client::connect(&url, ConnectOptions::new().with_token(TOKEN))
        .await
        .unwrap();
    let shown = format!("{client:?}");
    assert!(!shown.contains(TOKEN), "{shown}");
    assert_eq!(client.token().as_deref(), Some(TOKEN));

    let page = client.history(ROOM, None, 10).await.unwrap();
    assert_eq!((page.room, page.events.len()), (ROOM, 1));
    client.history(ROOM, Some(Seq(0)), 10).await.unwrap();
    client.history(ROOM, Some(Seq(5)), 10).await.unwrap();
    client.notifications(None, 10, false).await.unwrap();
    client.notifications(Some(9), 10, false).await.unwrap();
    client.room_audit(ROOM, None, 10).await.unwrap();
    client.room_audit(ROOM, Some(0), 10).await.unwrap();
    let rooms = client.list_rooms("", 3, 10).await.unwrap();
    assert_eq!((rooms.rooms.len(), rooms.total), (0, 42));
    let raw = client
        .raw_request(confab_sdk::raw::Request::Ping { nonce: 5 })
        .await
        .unwrap();
    assert_eq!(raw, confab_sdk::raw::ServerMsg::Pong { nonce: 5 });
    client.close().await;
    server.await.unwrap();
    assert_eq!(seen_rx.await.unwrap(), [0, 1, 5, 0, 9, 0, 1, 3]);
}

/// The stream of a default (unbounded) client yields every event in
/// order, then ends when the connection drops.
#[tokio::test]
async fn the_event_stream_yields_everything_in_order_then_ends() {
    let (url, server) = fake(|mut peer| async move {
        for seq in 1..=50 {
            peer.send(0, ServerMsg::Event(message(seq))).await;
        }
        // A duplicate is dropped by the client.
        peer.send(0, ServerMsg::Event(message(50))).await;
    })
    .await;
    let client = Client::connect(&url, ConnectOptions::new()).await.unwrap();
    let events: Vec<Event> = tokio::time::timeout(WAIT, client.events().collect())
        .await
        .expect("the stream ends");
    server.await.unwrap();
    let mut want: Vec<Event> = (1..=50).map(|s| Event::Room(message(s))).collect();
    want.push(Event::Disconnected);
    assert_eq!(events, want);
}

/// A server that reads what the client sends first, answers `reply` and
/// keeps the connection open until the client gives up.
async fn answer_once(reply: &'static [u8]) -> (std::net::SocketAddr, JoinHandle<()>) {
    use tokio::io::AsyncReadExt;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let mut buf = vec![0u8; 4096];
        let _ = stream.read(&mut buf).await.unwrap();
        stream.write_all(reply).await.unwrap();
        // Until the client closes.
        while matches!(stream.read(&mut buf).await, Ok(n) if n > 0) {}
    });
    (addr, task)
}

/// A failed TLS handshake keeps rustls' error as its source, and says
/// what failed in `Display`.
#[tokio::test]
async fn tls_errors_keep_their_source() {
    use std::error::Error as _;
    let (addr, server) = answer_once(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
    let options = ConnectOptions::new().with_tls_trust(confab_sdk::TlsTrust::Fingerprint([1; 32]));
    let err = Client::connect(&format!("confabs://{addr}"), options)
        .await
        .unwrap_err();
    let confab_sdk::Error::Tls(tls) = &err else {
        panic!("expected a TLS error, got {err:?}")
    };
    assert_eq!(tls.kind(), confab_sdk::TlsErrorKind::Handshake);
    let shown = err.to_string();
    assert!(
        shown.starts_with("TLS handshake with 127.0.0.1 failed: "),
        "{shown}"
    );
    let source = err.source().expect("the underlying error");
    assert!(
        source
            .downcast_ref::<confab_sdk::tls::rustls::Error>()
            .is_some(),
        "{source:?}"
    );
    server.await.unwrap();
}

/// A refused WebSocket upgrade is typed, with the HTTP status.
#[tokio::test]
async fn a_refused_websocket_upgrade_tells_the_status() {
    let (addr, server) = answer_once(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").await;
    let err = Client::connect(&format!("ws://{addr}/ws"), ConnectOptions::new())
        .await
        .unwrap_err();
    let confab_sdk::Error::WebSocket(ws) = &err else {
        panic!("expected a WebSocket error, got {err:?}")
    };
    assert_eq!(ws.kind(), confab_sdk::WebSocketErrorKind::Refused);
    assert_eq!(ws.status(), Some(404));
    assert!(err.to_string().contains("HTTP 404"), "{err}");
    server.await.unwrap();
}

/// A loopback address nothing listens on (connecting is refused).
async fn dead_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    format!("confab://{}", listener.local_addr().unwrap())
}

/// Of a comma-separated list of servers, a client whose first one is
/// down connects to the next.
#[tokio::test]
async fn a_client_whose_first_server_is_down_connects_to_the_next() {
    let dead = dead_url().await;
    let (live, server) = fake(|mut peer| async move { peer.pong().await }).await;
    let client = Client::connect(&format!("{dead},{live}"), ConnectOptions::new())
        .await
        .unwrap();
    assert_eq!(client.welcome().server, "fake");
    tokio::time::timeout(WAIT, client.ping())
        .await
        .unwrap()
        .unwrap();
    server.await.unwrap();

    let err = Client::connect(
        &format!("{dead},{}", dead_url().await),
        ConnectOptions::new(),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, confab_sdk::Error::Io(_)), "{err:?}");
}

/// A client that loses its server reconnects to the next one of its list
/// when the first no longer answers.
#[tokio::test]
async fn a_client_that_loses_its_server_reconnects_to_the_next() {
    let (first, gone) = fake(|_peer| async move {}).await;
    let (second, server) = fake(|mut peer| async move { peer.pong().await }).await;
    let policy = confab_sdk::ReconnectPolicy::exponential(
        Duration::from_millis(10),
        Duration::from_millis(50),
    );
    let client = Client::connect(
        &format!("{first},{second}"),
        ConnectOptions::new().with_reconnect(policy),
    )
    .await
    .unwrap();
    gone.await.unwrap();
    let mut events = client.events();
    assert_eq!(next(&mut events).await, Some(Event::Disconnected));
    assert_eq!(next(&mut events).await, Some(Event::Reconnected));
    tokio::time::timeout(WAIT, client.ping())
        .await
        .unwrap()
        .unwrap();
    server.await.unwrap();
}
