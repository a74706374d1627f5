//! Plain TCP: the binary protocol's frames back to back on the socket.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::frames::{Channel, ChannelSink, Framing, ProtocolFrames};
use crate::outbound::Writer;
use crate::session;
use crate::state::ServerState;

/// Serves one accepted TCP connection until it closes.
pub async fn serve(server: Arc<ServerState>, stream: TcpStream, peer: SocketAddr) {
    let _open = crate::metrics::connection_opened("tcp");
    let _ = stream.set_nodelay(true);
    let channel = Channel::plain(stream);
    let frames = ProtocolFrames::new(channel.clone(), server.config.max_frame_len);
    let writer = Writer::new(ChannelSink::new(channel, Framing::Raw));
    session::serve(server, frames, writer, peer).await;
}
