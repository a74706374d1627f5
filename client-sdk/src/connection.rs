//! One live connection: the HELLO/WELCOME handshake, then a reader task and
//! a writer task around the transport.
//!
//! The reader task only reads and decodes, so that a transport whose reads
//! are not cancel-safe (WebSocket) never sits inside a `select!`. The writer
//! task drains its queue in batches, so that frames queued together reach
//! the socket in one write.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use confab_protocol::frame::kind::is_event;
use confab_protocol::{DecodeError, Hello, RawFrame, Request, ServerMsg, Welcome};

use crate::endpoint::Endpoint;
use crate::error::Code;
use crate::transport::{self, FrameSink, FrameSource};
use crate::Error;

/// Most frames the writer coalesces into one write.
const MAX_BATCH: usize = 64;
/// Capacity of the reader → supervisor queue. When full, the reader stops
/// reading and TCP pushes back on the server.
const INBOUND_QUEUE: usize = 256;

/// What the reader and writer tasks report.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// A frame and its decoded form (decoding may fail per frame without
    /// losing framing).
    Frame {
        req_id: u32,
        kind: u8,
        msg: Result<ServerMsg, DecodeError>,
    },
    /// The connection is unusable; the string says why (for logs).
    Lost(String),
}

impl Inbound {
    fn decode(frame: RawFrame) -> Inbound {
        Inbound::Frame {
            req_id: frame.req_id,
            kind: frame.kind,
            msg: ServerMsg::decode(&frame),
        }
    }
}

/// An established, handshaken connection.
pub(crate) struct Live {
    pub(crate) welcome: Welcome,
    /// Frames that arrived before WELCOME. A conforming server sends none;
    /// they are kept rather than lost.
    pub(crate) early: Vec<Inbound>,
    /// Frames and failures from the reader and writer tasks.
    pub(crate) inbound: mpsc::Receiver<Inbound>,
    writer_tx: Option<mpsc::UnboundedSender<Bytes>>,
    reader: JoinHandle<()>,
    writer: Option<JoinHandle<()>>,
}

impl Live {
    /// Queues one whole encoded frame; `false` if the writer has stopped.
    pub(crate) fn send(&self, frame: Bytes) -> bool {
        self.writer_tx
            .as_ref()
            .is_some_and(|tx| tx.send(frame).is_ok())
    }

    /// Lets the writer flush what is queued (up to `grace`), then closes.
    pub(crate) async fn close(mut self, grace: Duration) {
        self.writer_tx = None;
        self.reader.abort();
        if let Some(mut writer) = self.writer.take() {
            if tokio::time::timeout(grace, &mut writer).await.is_err() {
                writer.abort();
            }
        }
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.reader.abort();
        if let Some(writer) = &self.writer {
            writer.abort();
        }
    }
}

/// Dials `endpoint`, sends HELLO with request id `hello_id` and waits for
/// WELCOME. The caller bounds the time this takes.
pub(crate) async fn establish(
    endpoint: &Endpoint,
    hello: Hello,
    hello_id: u32,
    dial: transport::Dial,
) -> Result<Live, Error> {
    let (mut source, mut sink) = transport::open(endpoint, &dial).await?;
    let mut buf = BytesMut::new();
    Request::Hello(hello).encode(hello_id, &mut buf);
    sink.send_batch(&[buf.freeze()]).await?;

    let mut early = Vec::new();
    let welcome = loop {
        let frame = match source.next_frame().await {
            Some(frame) => frame?,
            None => return Err(Error::Disconnected),
        };
        let (req_id, frame_kind) = (frame.req_id, frame.kind);
        match ServerMsg::decode(&frame) {
            Ok(ServerMsg::Welcome(w)) if req_id == hello_id => break w,
            Ok(ServerMsg::Error {
                code,
                message,
                retry_after_ms,
            }) if req_id == hello_id => return Err(Error::server(code, message, retry_after_ms)),
            Ok(ServerMsg::Close { code, message }) => {
                return Err(Error::Closed {
                    code: Code::from_u16(code),
                    message,
                })
            }
            Ok(msg) if is_event(frame_kind) => early.push(Inbound::Frame {
                req_id,
                kind: frame_kind,
                msg: Ok(msg),
            }),
            Err(DecodeError::UnknownFrameType(k)) if is_event(k) => {}
            Err(e) => return Err(Error::Protocol(e)),
            Ok(_) => {
                return Err(Error::UnexpectedReply {
                    request: "hello",
                    kind: frame_kind,
                })
            }
        }
    };
    if welcome.version != confab_protocol::PROTOCOL_VERSION {
        tracing::warn!(
            server_version = welcome.version,
            "server speaks another protocol version"
        );
    }
    tracing::debug!(server = %welcome.server, %endpoint, "connected");

    let (inbound_tx, inbound) = mpsc::channel(INBOUND_QUEUE);
    let (writer_tx, writer_rx) = mpsc::unbounded_channel();
    let writer = tokio::spawn(write_loop(sink, writer_rx, inbound_tx.clone()));
    let reader = tokio::spawn(read_loop(source, inbound_tx));
    Ok(Live {
        welcome,
        early,
        inbound,
        writer_tx: Some(writer_tx),
        reader,
        writer: Some(writer),
    })
}

async fn read_loop(mut source: FrameSource, tx: mpsc::Sender<Inbound>) {
    loop {
        let inbound = match source.next_frame().await {
            Some(Ok(frame)) => Inbound::decode(frame),
            Some(Err(e)) => Inbound::Lost(format!("read failed: {e}")),
            None => Inbound::Lost("the server closed the connection".to_owned()),
        };
        let last = matches!(inbound, Inbound::Lost(_));
        if tx.send(inbound).await.is_err() || last {
            return;
        }
    }
}

async fn write_loop(
    mut sink: FrameSink,
    mut rx: mpsc::UnboundedReceiver<Bytes>,
    lost: mpsc::Sender<Inbound>,
) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if let Err(e) = sink.send_batch(&batch).await {
            let _ = lost.send(Inbound::Lost(format!("write failed: {e}"))).await;
            return;
        }
        batch.clear();
    }
    // Every sender is gone: the client is closing. Half-close politely.
    let _ = sink.shutdown().await;
}
