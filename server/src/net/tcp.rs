//! Plain TCP: the binary protocol's frames back to back on the socket.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::frames::{Channel, ChannelSink, Framing, ProtocolFrames};
use crate::outbound::Writer;
use crate::session;
use crate::state::ServerState;

/// The task that serves one accepted TCP connection until it closes: the
/// session's own future, with nothing wrapped around it.
pub fn serve(
    server: Arc<ServerState>,
    stream: TcpStream,
    peer: SocketAddr,
) -> impl Future<Output = ()> + Send + 'static {
    let open = crate::metrics::connection_opened("tcp");
    let _ = stream.set_nodelay(true);
    let channel = Channel::plain(stream);
    let frames = ProtocolFrames::new(channel.clone(), server.config.max_frame_len);
    let writer = Writer::new(ChannelSink::new(channel, Framing::Raw));
    session::serve(server, frames, writer, peer, open)
}
