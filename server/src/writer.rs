//! The writer task of a connection: drains its outbound queue into the
//! transport, coalescing whatever is queued into one write.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use confab_protocol::frame::kind;
use confab_protocol::ServerMsg;

use crate::outbound::{Conn, OutboundRx};
use crate::transport::FrameSink;

/// Most frames coalesced into one write.
const MAX_BATCH_FRAMES: usize = 512;
/// Most bytes coalesced into one write.
const MAX_BATCH_BYTES: usize = 256 * 1024;

fn is_close(frame: &Bytes) -> bool {
    frame.len() > 4 && frame[4] == kind::CLOSE
}

/// Drains a connection's outbound queue into its transport, coalescing
/// whatever is queued into one write. Ends after writing CLOSE, on a write
/// error, or at once when the connection is aborted (slow consumer).
pub async fn writer_loop<K: FrameSink>(mut sink: K, mut out: OutboundRx, conn: Arc<Conn>) {
    let mut batch: Vec<Bytes> = Vec::new();
    let mut aborted_mid_write = false;
    let abort = conn.abort_token().clone();
    loop {
        let first = tokio::select! {
            biased;
            _ = abort.cancelled() => break,
            f = out.rx.recv() => match f { Some(f) => f, None => break },
        };
        let mut counted = 0usize;
        let mut closing = is_close(&first);
        if !closing {
            counted += first.len();
        }
        batch.push(first);
        while !closing && batch.len() < MAX_BATCH_FRAMES && counted < MAX_BATCH_BYTES {
            match out.rx.try_recv() {
                Ok(f) => {
                    closing = is_close(&f);
                    if !closing {
                        counted += f.len();
                    }
                    batch.push(f);
                }
                Err(_) => break,
            }
        }
        let result = tokio::select! {
            biased;
            _ = abort.cancelled() => { aborted_mid_write = true; break }
            r = sink.write_frames(&batch) => r,
        };
        conn.written(counted);
        crate::metrics::frames_written(&conn.stats, &batch, counted + conn.queued_bytes());
        batch.clear();
        if batch.capacity() > 64 {
            batch = Vec::new();
        }
        if result.is_err() || closing {
            break;
        }
    }
    if abort.is_cancelled() && !aborted_mid_write {
        if let Some(code) = conn.close_reason() {
            let mut buf = BytesMut::new();
            ServerMsg::Close {
                code: code as u16,
                message: code.default_message().into(),
            }
            .encode(0, &mut buf);
            let _ = tokio::time::timeout(
                Duration::from_millis(500),
                sink.write_frames(&[buf.freeze()]),
            )
            .await;
        }
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
    conn.finished_token().cancel();
}
