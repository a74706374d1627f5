//! The seam between byte transports and sessions, and the connection I/O
//! they share.
//!
//! A connection's bytes travel over a [`Channel`]: plain TCP, or TLS over
//! TCP with the rustls connection behind a mutex that the reader (decrypt)
//! and the writer (encrypt) each hold for a moment. The session reads
//! frames from a [`FrameSource`] (the session's trait, implemented here) and its frames leave through a
//! [`ChannelSink`], which the connection's outbound queue drives
//! (`crate::outbound`). Both work on tokio's readiness API (`readable()`,
//! `try_read`, `try_write`), so a connection needs no task but its
//! session's, reads are cancel-safe, and writes never block the pusher.
//!
//! Framing: protocol frames back to back ([`Framing::Raw`], TCP and TLS
//! with ALPN `confab/1`), or one per WebSocket binary message
//! ([`Framing::WebSocket`]; the reading side is `net/ws.rs`).

use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};

use bytes::{Buf, BytesMut};
use confab_protocol::frame::split_frame;
use confab_protocol::{FrameError, RawFrame};
use rustls::ServerConnection;
use tokio::net::TcpStream;

use super::ws;
use crate::outbound::writer::{Sink, Writable};
use crate::outbound::{Outbound, OutboundQueue};
use crate::session::FrameSource;

/// A connection's bytes: plain TCP, or TLS over it.
#[derive(Clone)]
pub enum Channel {
    Plain(Arc<TcpStream>),
    Tls(Arc<TcpStream>, Arc<Mutex<ServerConnection>>),
}

/// Bytes read from a socket at once (per thread, reused).
const READ_CHUNK: usize = 16 * 1024;

thread_local! {
    /// Ciphertext or plain bytes, straight from the socket.
    static SCRATCH: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK]);
    /// Plaintext out of rustls (read while `SCRATCH` is borrowed).
    static PLAINTEXT: RefCell<Vec<u8>> = RefCell::new(vec![0; READ_CHUNK]);
}

fn lock(tls: &Mutex<ServerConnection>) -> MutexGuard<'_, ServerConnection> {
    tls.lock().unwrap_or_else(|e| e.into_inner())
}

impl Channel {
    pub fn plain(tcp: TcpStream) -> Channel {
        Channel::Plain(Arc::new(tcp))
    }

    pub fn tls(tcp: TcpStream, conn: ServerConnection) -> Channel {
        Channel::Tls(Arc::new(tcp), Arc::new(Mutex::new(conn)))
    }

    fn tcp(&self) -> &Arc<TcpStream> {
        match self {
            Channel::Plain(tcp) | Channel::Tls(tcp, _) => tcp,
        }
    }

    /// Polls the socket's read readiness without reading (a parked
    /// connection's wait). For TLS the socket is what counts: every read
    /// moves all the plaintext rustls decrypted into the reader's buffer,
    /// so rustls holds none that would not be announced by more bytes.
    pub fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.tcp().poll_read_ready(cx).map(|_| ())
    }

    /// Appends what the peer sent to `buf` (plaintext, for TLS); `Ok(0)`
    /// at the end of the stream. Cancel-safe.
    pub async fn read(&self, buf: &mut BytesMut, conn: &Arc<OutboundQueue>) -> io::Result<usize> {
        loop {
            if let Channel::Tls(_, tls) = self {
                // Plaintext rustls decrypted earlier (or during the
                // handshake) comes first.
                match take_plaintext(&mut lock(tls), buf)? {
                    Plaintext::Some(n) => return Ok(n),
                    Plaintext::Closed => return Ok(0),
                    Plaintext::None => {}
                }
            }
            self.tcp().readable().await?;
            let got = match self {
                Channel::Plain(tcp) => {
                    // Into the thread's scratch, then only the bytes read
                    // into `buf`: a wake-up that finds nothing to read (a
                    // stale readiness) allocates nothing, so an idle
                    // connection keeps no buffer.
                    SCRATCH.with(|scratch| {
                        let mut scratch = scratch.borrow_mut();
                        match tcp.try_read(&mut scratch) {
                            Ok(n) => {
                                buf.extend_from_slice(&scratch[..n]);
                                Ok(Some(n))
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
                            Err(e) => Err(e),
                        }
                    })?
                }
                Channel::Tls(tcp, tls) => {
                    let (got, wants_write) = SCRATCH.with(|scratch| {
                        let mut scratch = scratch.borrow_mut();
                        match tcp.try_read(&mut scratch) {
                            Ok(0) => Ok((Some(0), false)),
                            Ok(n) => {
                                let mut tls = lock(tls);
                                decrypt(&mut tls, &scratch[..n])?;
                                let got = match take_plaintext(&mut tls, buf)? {
                                    // Records without application data
                                    // (a ticket, a key update).
                                    Plaintext::None => None,
                                    Plaintext::Some(n) => Some(n),
                                    Plaintext::Closed => Some(0),
                                };
                                Ok((got, tls.wants_write()))
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok((None, false)),
                            Err(e) => Err(e),
                        }
                    })?;
                    if wants_write {
                        // rustls has something to send back (an alert, a
                        // key update): the writer sends it.
                        conn.flush();
                    }
                    got
                }
            };
            if let Some(n) = got {
                return Ok(n);
            }
        }
    }
}

enum Plaintext {
    None,
    Some(usize),
    Closed,
}

/// Feeds ciphertext to rustls and processes it.
fn decrypt(tls: &mut ServerConnection, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        tls.read_tls(&mut data)?;
        tls.process_new_packets()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    }
    Ok(())
}

/// Moves the plaintext rustls holds into `buf`, through the thread's
/// plaintext scratch: `buf` grows only by what there is.
fn take_plaintext(tls: &mut ServerConnection, buf: &mut BytesMut) -> io::Result<Plaintext> {
    PLAINTEXT.with(|plain| {
        let mut plain = plain.borrow_mut();
        let mut total = 0;
        loop {
            match tls.reader().read(&mut plain) {
                Ok(0) => {
                    return Ok(if total > 0 {
                        Plaintext::Some(total)
                    } else {
                        Plaintext::Closed
                    });
                }
                Ok(n) => {
                    buf.extend_from_slice(&plain[..n]);
                    total += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Ok(if total > 0 {
                        Plaintext::Some(total)
                    } else {
                        Plaintext::None
                    });
                }
                Err(e) => return Err(e),
            }
        }
    })
}

/// Protocol frames back to back (TCP, TLS with ALPN `confab/1`).
pub struct ProtocolFrames {
    channel: Channel,
    /// Bytes read and not yet framed. Empty (no allocation) on an idle
    /// connection.
    buf: BytesMut,
    max_frame_len: u32,
}

impl ProtocolFrames {
    pub fn new(channel: Channel, max_frame_len: u32) -> ProtocolFrames {
        ProtocolFrames {
            channel,
            buf: BytesMut::new(),
            max_frame_len,
        }
    }
}

impl FrameSource for ProtocolFrames {
    async fn next_frame(
        &mut self,
        conn: &Arc<OutboundQueue>,
    ) -> Option<Result<RawFrame, FrameError>> {
        loop {
            match split_frame(&mut self.buf, self.max_frame_len) {
                Ok(Some(frame)) => {
                    if self.buf.is_empty() {
                        // Idle connections keep no read buffer. Even with
                        // no capacity left, the empty buffer shares the
                        // allocation the frame was split from, and kept
                        // it (and its shared header, ~140 bytes) alive.
                        self.buf = BytesMut::new();
                    }
                    return Some(Ok(frame));
                }
                Ok(None) => {}
                Err(e) => return Some(Err(e)),
            }
            match self.channel.read(&mut self.buf, conn).await {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(FrameError::Io(e))),
            }
        }
    }

    fn mid_frame(&self) -> bool {
        !self.buf.is_empty()
    }

    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.channel.poll_readable(cx)
    }
}

/// How frames are laid out on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// Protocol frames back to back.
    Raw,
    /// One protocol frame per WebSocket binary message (server frames are
    /// unmasked); a protocol CLOSE is followed by the WebSocket close.
    WebSocket,
}

/// The write side of a [`Channel`]: stages frames into one buffer and
/// hands it to the socket (through rustls for TLS) without blocking.
pub struct ChannelSink {
    channel: Channel,
    framing: Framing,
    /// Staged bytes (plaintext, for TLS), written from `pos`.
    out: Vec<u8>,
    pos: usize,
}

/// Largest staging buffer kept between writes: idle connections hold no
/// big buffers.
const KEEP_STAGE: usize = 4 * 1024;

impl ChannelSink {
    pub fn new(channel: Channel, framing: Framing) -> ChannelSink {
        ChannelSink {
            channel,
            framing,
            out: Vec::new(),
            pos: 0,
        }
    }

    fn reset_if_done(&mut self) {
        if self.pos == self.out.len() {
            self.pos = 0;
            if self.out.capacity() > KEEP_STAGE {
                self.out = Vec::new();
            } else {
                self.out.clear();
            }
        }
    }
}

/// `io::Write` over a non-blocking socket (for rustls' `write_tls`).
struct NonBlocking<'a>(&'a TcpStream);

impl Write for NonBlocking<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.try_write(buf)
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        self.0.try_write_vectored(bufs)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for ChannelSink {
    fn stage(&mut self, item: &Outbound) {
        match (self.framing, item) {
            (Framing::Raw, item) => self.out.extend_from_slice(item.frame()),
            (Framing::WebSocket, Outbound::Wire(bytes)) => self.out.extend_from_slice(bytes),
            (
                Framing::WebSocket,
                Outbound::Close {
                    code,
                    message,
                    frame,
                    transport_code,
                },
            ) => {
                let code = *code as u16;
                ws::put_binary_message(&mut self.out, frame);
                let ws_code = transport_code.unwrap_or_else(|| ws::ws_close_code(code));
                ws::put_close(&mut self.out, ws_code, &ws::close_reason(code, message));
            }
            (Framing::WebSocket, item) => ws::put_binary_message(&mut self.out, item.frame()),
        }
    }

    fn staged(&self) -> usize {
        let tls_pending = match &self.channel {
            Channel::Tls(_, tls) => usize::from(lock(tls).wants_write()),
            Channel::Plain(_) => 0,
        };
        self.out.len() - self.pos + tls_pending
    }

    fn write(&mut self) -> io::Result<bool> {
        match &self.channel {
            Channel::Plain(tcp) => {
                while self.pos < self.out.len() {
                    match tcp.try_write(&self.out[self.pos..]) {
                        Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                        Ok(n) => self.pos += n,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                        Err(e) => return Err(e),
                    }
                }
            }
            Channel::Tls(tcp, tls) => {
                let mut tls = lock(tls);
                loop {
                    while tls.wants_write() {
                        match tls.write_tls(&mut NonBlocking(tcp)) {
                            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                            Ok(_) => {}
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                            Err(e) => return Err(e),
                        }
                    }
                    if self.pos == self.out.len() {
                        break;
                    }
                    // rustls takes what fits its buffer limit; the rest
                    // goes in after the records are out.
                    let n = tls.writer().write(&self.out[self.pos..])?;
                    self.pos += n;
                    if n == 0 && !tls.wants_write() {
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                }
            }
        }
        self.reset_if_done();
        Ok(true)
    }

    fn writable(&self) -> Writable {
        let tcp = self.channel.tcp().clone();
        Box::pin(async move { tcp.writable().await })
    }

    fn shutdown(&mut self, abortive: bool) {
        let how = if abortive {
            std::net::Shutdown::Both
        } else {
            if let Channel::Tls(tcp, tls) = &self.channel {
                let mut tls = lock(tls);
                tls.send_close_notify();
                let _ = tls.write_tls(&mut NonBlocking(tcp));
            }
            std::net::Shutdown::Write
        };
        let _ = socket2::SockRef::from(self.channel.tcp().as_ref()).shutdown(how);
        self.release();
    }

    fn release(&mut self) {
        self.out = Vec::new();
        self.pos = 0;
    }

    fn writes_frames_as_is(&self) -> bool {
        self.framing == Framing::Raw && matches!(self.channel, Channel::Plain(_))
    }

    fn write_frames(&mut self, frames: &[io::IoSlice<'_>]) -> io::Result<usize> {
        debug_assert!(self.pos == self.out.len(), "nothing staged");
        let Channel::Plain(tcp) = &self.channel else {
            return Err(io::ErrorKind::Unsupported.into());
        };
        match frames {
            // send(2), as a staged write: the common case, one frame.
            [one] => tcp.try_write(one),
            // sendmsg(2): tokio's vectored write is writev(2), which costs
            // the kernel more per call (the file position lock, the
            // generic write path) than the socket's own entry point.
            _ => tcp.try_io(tokio::io::Interest::WRITABLE, || {
                socket2::SockRef::from(tcp.as_ref())
                    .send_vectored_with_flags(frames, libc::MSG_NOSIGNAL)
            }),
        }
    }

    fn stage_bytes(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }
}

/// Moves already-read bytes (read ahead by the HTTP server before an
/// upgrade) in front of a source's buffer.
pub fn prepend(buf: &mut BytesMut, ahead: impl Buf) {
    if ahead.has_remaining() {
        let mut joined = BytesMut::with_capacity(ahead.remaining() + buf.len());
        joined.extend_from_slice(ahead.chunk());
        joined.extend_from_slice(buf);
        *buf = joined;
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::task::{Wake, Waker};

    use bytes::Bytes;

    use super::*;
    use crate::outbound::{ConnId, Ending, Writer};

    struct Flag(AtomicBool);

    /// A connected pair over loopback: (client, server).
    async fn socket_pair() -> (TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    impl Wake for Flag {
        fn wake(self: Arc<Self>) {
            self.0.store(true, Ordering::SeqCst);
        }
    }

    /// Once a frame is read whole, the reader keeps nothing of it: the
    /// frame's bytes are the frame's alone (an empty buffer that still
    /// shared their allocation kept ~140 bytes per idle connection).
    #[tokio::test]
    async fn a_frame_read_whole_leaves_no_buffer_behind() {
        let (mut client, server) = socket_pair().await;
        let channel = Channel::plain(server);
        let (conn, _rx) = OutboundQueue::detached(ConnId(1), 1 << 20);
        let mut frames = ProtocolFrames::new(channel, 1 << 20);
        // PING (kind 3) with an 8-byte nonce; later, half of another.
        let ping = b"\0\0\0\x0d\x03\0\0\0\x01\0\0\0\0\0\0\0\x07";
        tokio::io::AsyncWriteExt::write_all(&mut client, ping)
            .await
            .unwrap();
        let frame = frames.next_frame(&conn).await.unwrap().unwrap();
        assert!(!frames.mid_frame());
        assert!(
            frame.payload.is_unique(),
            "the reader still holds the frame's bytes"
        );
        tokio::io::AsyncWriteExt::write_all(&mut client, &ping[..3])
            .await
            .unwrap();
        while !frames.mid_frame() {
            let _ = tokio::time::timeout(
                std::time::Duration::from_millis(10),
                frames.next_frame(&conn),
            )
            .await;
        }
        // Half a frame: no parking (no readiness would say the rest came).
        assert!(frames.mid_frame());
    }

    /// Pushes to a parked connection are written by their pusher, and the
    /// queue keeps no memory after them; a running session's keeps a few
    /// slots (it gives them back itself when it waits for the client).
    #[tokio::test]
    async fn pushes_to_a_parked_connection_leave_no_queue_memory() {
        let (mut client, server) = socket_pair().await;
        let writer = Writer::new(ChannelSink::new(Channel::plain(server), Framing::Raw));
        let conn = OutboundQueue::new(ConnId(1), 1 << 20, writer);
        let frame = Bytes::from_static(b"\0\0\0\x05\x01\0\0\0\0");
        let burst = |conn: &Arc<OutboundQueue>| {
            for _ in 0..3 {
                assert!(conn.push(frame.clone()));
            }
            conn.flush();
        };
        burst(&conn);
        assert!(
            conn.queue_capacity() > 0,
            "a running session's queue keeps its slots"
        );
        let woken = Arc::new(Flag(AtomicBool::new(false)));
        conn.wake_on_finish(Some(Waker::from(woken.clone())));
        burst(&conn);
        assert_eq!(
            conn.queue_capacity(),
            0,
            "a parked connection's queue keeps nothing"
        );
        let mut got = vec![0; 6 * frame.len()];
        tokio::io::AsyncReadExt::read_exact(&mut client, &mut got)
            .await
            .unwrap();
        assert_eq!(got, frame.repeat(6), "every frame was written");
        assert!(!woken.0.load(Ordering::SeqCst));
    }

    /// Frames are written straight from the queue, several in one write;
    /// when the socket takes only part of them, the rest is staged and
    /// written once it drains: every byte arrives, in order, whatever
    /// frame a write ends in.
    #[tokio::test]
    async fn frames_the_socket_takes_in_part_arrive_whole_and_in_order() {
        let (mut client, server) = socket_pair().await;
        socket2::SockRef::from(&server)
            .set_send_buffer_size(4096)
            .unwrap();
        let writer = Writer::new(ChannelSink::new(Channel::plain(server), Framing::Raw));
        let conn = OutboundQueue::new(ConnId(1), 1 << 26, writer);
        let mut expected = Vec::new();
        for i in 0..40u32 {
            // Sizes that do not line up with the socket's buffer.
            let frame: Vec<u8> = (0..(1000 + i * 997)).map(|j| (i + j) as u8).collect();
            expected.extend_from_slice(&frame);
            assert!(conn.push(Bytes::from(frame)));
            if i % 7 == 0 {
                conn.flush();
            }
        }
        conn.flush();
        assert!(
            conn.queued_bytes() > 0,
            "the socket took everything at once"
        );
        let mut got = vec![0; expected.len()];
        tokio::io::AsyncReadExt::read_exact(&mut client, &mut got)
            .await
            .unwrap();
        assert!(got == expected, "bytes lost, repeated or out of order");
        for _ in 0..100 {
            if conn.queued_bytes() == 0 {
                break;
            }
            tokio::task::yield_now().await;
        }
        assert_eq!(conn.queued_bytes(), 0, "the backlog was not accounted for");
    }

    /// A parked connection has no task waiting for its writer: a write
    /// that fails (the peer reset the connection) must wake what it left
    /// with the queue, so the session resumes and cleans up.
    #[tokio::test]
    async fn a_failed_write_wakes_the_parked_session() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().await.unwrap();
        // Closed with a reset: the server's next write fails.
        socket2::SockRef::from(&client)
            .set_linger(Some(std::time::Duration::ZERO))
            .unwrap();
        drop(client);
        let channel = Channel::plain(server);
        let writer = Writer::new(ChannelSink::new(channel, Framing::Raw));
        let conn = OutboundQueue::new(ConnId(1), 1 << 20, writer);
        let woken = Arc::new(Flag(AtomicBool::new(false)));
        conn.wake_on_finish(Some(Waker::from(woken.clone())));
        for _ in 0..100 {
            if conn.is_finished() {
                break;
            }
            // Until the kernel has seen the reset, writes succeed.
            conn.push(Bytes::from_static(b"\0\0\0\x05\x01\0\0\0\0"));
            conn.flush();
            tokio::task::yield_now().await;
        }
        assert!(conn.is_finished(), "the write did not fail");
        assert_eq!(conn.ending(), Some(Ending::WriteFailed));
        assert!(
            woken.0.load(Ordering::SeqCst),
            "the parked session was not woken"
        );
    }
}
