//! Plain TCP: the binary protocol's frames back to back on the socket.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpStream;

use super::frames::{frame_reader, StreamSink};
use crate::session;
use crate::state::ServerState;

/// Serves one accepted TCP connection until it closes.
pub async fn serve(server: Arc<ServerState>, stream: TcpStream, peer: SocketAddr) {
    let _open = crate::metrics::connection_opened("tcp");
    let _ = stream.set_nodelay(true);
    let (read, write) = stream.into_split();
    let frames = frame_reader(read, server.config.max_frame_len);
    session::serve(server, frames, StreamSink::new(write), peer).await;
}
